//go:build !linux

package main

import "os/exec"

// dieWithParent: no parent-death signal outside Linux; the engine health check (watchEngine)
// still stops the program when the engine dies.
func dieWithParent(*exec.Cmd) {}

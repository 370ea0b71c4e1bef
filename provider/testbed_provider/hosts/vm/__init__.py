"""Hosts with a kernel of their own: QEMU VMs on the switch namespace's bridges.

The local testbed's hosts share this machine's kernel, which may lack what an experiment needs
(here: no netem qdisc, no tc classifiers). A VM boots Debian's kernel instead and is reached the
same way as a namespace host (its NICs are taps on the switch namespace's bridges).

- `image`: the image (kernel, initramfs, base disk) built from Debian's archive, cached by recipe;
- `qemu`: one VM started, waited for (SSH banner), stopped; the accelerator probe (KVM or TCG);
- `guest`: what runs in the guest before sshd, and the kernel command line it reads.
"""

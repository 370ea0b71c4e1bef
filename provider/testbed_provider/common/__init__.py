"""Helpers every layer of the provider shares, each with one set of guarantees.

- `private_files`: writing files that may hold key material (atomic, 0600 from the start, the
  file name never followed as a symlink);
- `processes`: starting, running and always reaping child processes (deadline, Cancel, output);
- `deadlines`: when to stop waiting (monotonic deadlines, the engine's Cancel, customTimeouts);
- `pids`: telling whether a recorded pid is still the process it was.

They depend on nothing but the standard library, so the host toolkit (`testbed_provider.hosts`)
and the Grid'5000 emulator use them too.
"""

"""The local backend: every host is a network namespace on this machine with its own sshd.

See /work/shared/reference/local-testbed.md for the measured recipe this follows.
"""

from .testbed import LocalTestbed

__all__ = ["LocalTestbed"]

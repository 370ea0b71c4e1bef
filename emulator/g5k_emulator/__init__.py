"""Offline emulator of the Grid'5000 REST API (OAR jobs, Kadeploy, KaVLAN, reference data) that the
unmodified python-grid5000 client works against; running nodes can be real local hosts."""

from .app import Emulator, User

__all__ = ["Emulator", "User"]

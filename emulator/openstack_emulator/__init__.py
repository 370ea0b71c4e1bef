"""Offline emulator of Chameleon Cloud's OpenStack APIs (Keystone, Nova, Neutron, Glance, Blazar)
that the unmodified openstacksdk and python-blazarclient work against; ACTIVE servers can be real
local hosts (network namespaces with sshd)."""

from .app import Emulator

__all__ = ["Emulator"]

"""What this machine can give VMs: the tools they need, free memory, a user's image.

Facts read from the machine (PATH, /proc), for the local testbed's Check rules; nothing here
starts anything.
"""

from __future__ import annotations

import os
import shutil
from typing import Iterable, Optional

from ..commands import ENV
from . import image as vm_image
from .image import VmImage

# (command or path, the Debian package holding it)
RUN_TOOLS = (("qemu-system-x86_64", "qemu-system-x86"), ("qemu-img", "qemu-utils"))
BUILD_TOOLS = (("mmdebstrap", "mmdebstrap"), ("cpio", "cpio"), ("depmod", "kmod"), (vm_image.BUSYBOX, "busybox-static"))
QCOW2_MAGIC = b"QFI\xfb"


def missing_tools(building: bool) -> list[tuple[str, str]]:
    """(tool, package) of what running VMs (and, `building`, building the image) needs but is absent."""
    wanted = RUN_TOOLS + (BUILD_TOOLS if building else ())
    return [
        (tool, package)
        for tool, package in wanted
        if not (os.access(tool, os.X_OK) if tool.startswith("/") else shutil.which(tool, path=ENV["PATH"]))
    ]


def memory_available_mb(meminfo: str = "/proc/meminfo") -> Optional[int]:
    """MemAvailable in MB (None if unreadable)."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def qemu_resident_mb(marker: str, proc: str = "/proc") -> int:
    """Resident memory (MB) of the running QEMUs whose command line contains `marker` (a
    reservation's run dir prefix): memory MemAvailable no longer counts but that a
    reservation's own update would get back."""
    total_kb = 0
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "comm")) as f:
                if not f.read().startswith("qemu-system"):
                    continue
            with open(os.path.join(proc, entry, "cmdline"), "rb") as f:
                if marker.encode() not in f.read():
                    continue
            with open(os.path.join(proc, entry, "status")) as f:
                total_kb += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
        except (OSError, ValueError):
            continue
    return total_kb // 1024


def load_image(directory: str) -> Optional[VmImage]:
    """The complete image in `directory` (as `ensure_image` builds one), or None. (image.py's
    own reader: a function added there would change its source, hence the recipe key, and
    rebuild every cached image.)"""
    return vm_image._load(os.path.abspath(directory))


def image_problem(path: str) -> Optional[str]:
    """Why `path` is not a usable VM image (a built image's directory or a qcow2 disk), or None."""
    if not os.path.exists(path):
        return f"`{path}` does not exist"
    if os.path.isdir(path):
        if load_image(path) is None:
            return (
                f"`{path}` is not a complete VM image directory (it needs {vm_image.META}, {vm_image.KERNEL}, "
                f"{vm_image.INITRD} and {vm_image.DISK}, as `python -m testbed_provider.hosts.vm.image` builds)"
            )
        return None
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as err:
        return f"`{path}` cannot be read: {err.strerror}"
    if magic != QCOW2_MAGIC:
        return f"`{path}` is not a qcow2 disk (nor an image directory)"
    return None


def user_image(path: str, default: VmImage) -> VmImage:
    """The image `path` names: a built image's directory, or a qcow2 root disk booted with the
    default image's kernel and initramfs (a disk made from the project's image)."""
    if os.path.isdir(path):
        found = load_image(path)
        if found is None:
            raise ValueError(image_problem(path) or f"{path}: not a VM image")
        return found
    return VmImage(
        directory=os.path.dirname(os.path.abspath(path)),
        kernel=default.kernel,
        initrd=default.initrd,
        disk=os.path.abspath(path),
        kernel_version=default.kernel_version,
        kernel_package=default.kernel_package,
        key=default.key,
        build_seconds=0.0,
    )


def packages(missing: Iterable[tuple[str, str]]) -> str:
    return " ".join(sorted({package for _, package in missing}))

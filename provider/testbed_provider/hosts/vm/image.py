"""The VM image: a Debian kernel, a small initramfs and a root disk, built once and cached.

Everything comes from Debian's archive through apt's configured mirror (no other download):
- the kernel `linux-image-amd64` depends on (`apt-get download`, `dpkg -x`, `depmod`), kept as an
  uncompressed `vmlinux` (booted through its PVH entry: TCG is slow at the xz decompressor);
- a minbase bookworm root file system by mmdebstrap with PACKAGES, the kernel's modules (those a
  guest can use: not sound, graphics, media…), guest.GUEST_INIT as /sbin/tb-init, the local hosts'
  sshd_config and no host key (each VM gets its own, see guest.py); an ext4 disk of DISK_SIZE,
  stored as qcow2 (each VM runs on an overlay of it, qemu.py);
- an initramfs (uncompressed newc cpio) holding busybox-static and the modules the root disk needs.

Cache: `$PULUMI_TESTBED_CACHE` (default ~/.cache/pulumi-testbed) `/vm-images/<key>/`, where `key`
hashes the recipe (suite, packages, modules, guest scripts, sshd_config, this file's source):
editing any of them builds a new image beside the old. A build runs in a temporary directory next
to it and is renamed into place when complete, under a lock (flock) so that concurrent builders
build once and the others wait and reuse it. A build takes minutes; it reports each stage and,
during long ones, a line every PROGRESS_EVERY seconds.

`python -m testbed_provider.hosts.vm.image [--json]` builds the image if needed and prints its
directory (with --json: every field of its VmImage); progress goes to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import glob
import hashlib
import json
import lzma
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import AsyncIterator, Awaitable, Callable, Optional

from ...common import processes
from ...common.deadlines import Cancelled
from ...common.ticking import ticking
from ..commands import CommandError, run
from ..sshd import SSHD_CONFIG
from . import guest

Progress = Callable[[str], Awaitable[None]]

SUITE = "bookworm"
KERNEL_META = "linux-image-amd64"
# What experiments need inside a guest that has no route to a Debian mirror: the tutorial's
# iperf3, fping for Netem's validation, node-exporter for Monitoring.
PACKAGES = (
    "openssh-server",
    "iproute2",
    "python3",
    "kmod",
    "iputils-ping",
    "procps",
    "iperf3",
    "fping",
    "prometheus-node-exporter",
    "busybox",  # udhcpc, for VMs whose address a DHCP server gives (guest.py)
)
# Module directories left out of the root disk (hardware a QEMU guest does not have).
MODULES_PRUNED = (
    "kernel/sound",
    "kernel/drivers/gpu",
    "kernel/drivers/media",
    "kernel/drivers/infiniband",
    "kernel/drivers/net/wireless",
    "kernel/drivers/staging",
    "kernel/drivers/iio",
    "kernel/drivers/bluetooth",
    "kernel/net/bluetooth",
    "kernel/net/wireless",
    "kernel/net/mac80211",
)
# What the initramfs loads to mount the root disk (with their dependencies, in order).
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "crc32c_generic", "ext4")
BUSYBOX = "/bin/busybox"  # Debian's busybox-static
DISK_SIZE = "4G"
PROGRESS_EVERY = 20.0

KERNEL = "vmlinux"
INITRD = "initrd.cpio"
DISK = "rootfs.qcow2"
META = "image.json"


@dataclass(frozen=True)
class VmImage:
    """A complete, cached image: boot `kernel` with `initrd`, run on an overlay of `disk`."""

    directory: str
    kernel: str  # uncompressed vmlinux
    initrd: str
    disk: str  # base qcow2 (never written: each VM gets an overlay)
    kernel_version: str  # e.g. 6.1.0-57-amd64
    kernel_package: str  # e.g. linux-image-6.1.0-57-amd64 (version 6.1.192-3)
    key: str  # the recipe hash, the directory's name
    build_seconds: float


def cache_root() -> str:
    base = os.environ.get("PULUMI_TESTBED_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pulumi-testbed"
    )
    return os.path.join(base, "vm-images")


def recipe_key() -> str:
    """The hash of everything the image is made of (not of what the archive serves today)."""
    with open(__file__, "rb") as f:
        own = f.read()
    recipe = {
        "suite": SUITE,
        "kernel": KERNEL_META,
        "packages": PACKAGES,
        "pruned": MODULES_PRUNED,
        "initramfs": INITRAMFS_MODULES,
        "disk": DISK_SIZE,
        "init": guest.INITRAMFS_INIT,
        "guest_init": guest.GUEST_INIT,
        "sshd_config": SSHD_CONFIG,
        "build": hashlib.sha256(own).hexdigest(),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _load(directory: str) -> Optional[VmImage]:
    try:
        with open(os.path.join(directory, META)) as f:
            meta = json.load(f)
        image = VmImage(
            directory=directory,
            kernel=os.path.join(directory, KERNEL),
            initrd=os.path.join(directory, INITRD),
            disk=os.path.join(directory, DISK),
            kernel_version=meta["kernel_version"],
            kernel_package=meta["kernel_package"],
            key=meta["key"],
            build_seconds=float(meta["build_seconds"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return image if all(os.path.isfile(p) for p in (image.kernel, image.initrd, image.disk)) else None


def cached_image() -> Optional[VmImage]:
    """The image of the current recipe if it has been built, else None (never builds)."""
    return _load(os.path.join(cache_root(), recipe_key()))


async def ensure_image(progress: Optional[Progress] = None, cancelled: Optional[asyncio.Event] = None) -> VmImage:
    """The image of the current recipe, built first if needed (minutes; reported by `progress`).

    Concurrent callers (threads, processes) build it once: the others wait for the lock, then
    find it complete. Raises CommandError naming the failing stage; leaves no partial image."""
    root = cache_root()
    key = recipe_key()
    final = os.path.join(root, key)
    found = _load(final)
    if found:
        return found
    os.makedirs(root, exist_ok=True)
    say = progress or _quiet
    async with _locked(os.path.join(root, f".{key}.lock"), say, cancelled):
        found = _load(final)
        if found:
            return found
        for stale in glob.glob(os.path.join(root, f".build-{key}-*")):
            await asyncio.to_thread(remove_tree, stale)
        if os.path.lexists(final):  # incomplete (should not happen: renamed complete); rebuild
            await asyncio.to_thread(remove_tree, final)
        work = os.path.join(root, f".build-{key}-{secrets.token_hex(4)}")
        os.makedirs(work)
        try:
            await _Build(work, key, say, cancelled).run()
            os.rename(work, final)
        finally:
            if os.path.lexists(work):
                await asyncio.to_thread(remove_tree, work)
    image = _load(final)
    if image is None:
        raise RuntimeError(f"the VM image built in {final} is incomplete")
    return image


async def _quiet(_: str) -> None:
    return None


@contextlib.asynccontextmanager
async def _locked(path: str, say: Progress, cancelled: Optional[asyncio.Event]) -> AsyncIterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        waited = 0.0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if waited == 0.0 or waited % PROGRESS_EVERY < 0.5:
                    await say(f"vm image: another process is building it; waiting ({waited:.0f} s)")
                if cancelled is not None and cancelled.is_set():
                    raise Cancelled() from None
                await asyncio.sleep(0.5)
                waited += 0.5
        yield
    finally:
        os.close(fd)  # releases the lock


def _mounts_under(path: str) -> list[str]:
    real = os.path.realpath(path).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if (point.rstrip("/") + "/").startswith(real):
                found.append(point)
    return found


def remove_tree(path: str) -> None:
    """rm -rf, refusing to descend into anything mounted below `path` (a chroot's /dev, /proc):
    mmdebstrap mounts those during its run and unmounts them; a crash could leave them."""
    mounts = _mounts_under(path)
    for point in sorted(mounts, key=len, reverse=True):
        with contextlib.suppress(OSError):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True, env=processes.SAFE_ENV)
    if _mounts_under(path):
        raise RuntimeError(f"not removing {path}: file systems are still mounted below it")
    shutil.rmtree(path, ignore_errors=True)


class _Build:
    def __init__(self, work: str, key: str, say: Progress, cancelled: Optional[asyncio.Event]):
        self.work, self.key, self.say, self.cancelled = work, key, say, cancelled
        self.t0 = time.monotonic()
        self.stage = 0

    STAGES = 6

    @contextlib.asynccontextmanager
    async def step(self, what: str) -> AsyncIterator[None]:
        self.stage += 1
        await self.say(f"vm image: [{self.stage}/{self.STAGES}] {what} ({time.monotonic() - self.t0:.0f} s)")
        line = lambda _: f"vm image: [{self.stage}/{self.STAGES}] still {what} ({time.monotonic() - self.t0:.0f} s)"  # noqa: E731
        async with ticking(self.say, line, PROGRESS_EVERY):
            yield

    async def cmd(self, argv: list[str], what: str, timeout: float = 300.0) -> str:
        return (await run(argv, what=f"building the VM image: {what}", cancelled=self.cancelled, timeout=timeout)).stdout

    async def run(self) -> None:
        w = self.work
        async with self.step(f"resolving {KERNEL_META}"):
            package = await self.kernel_package()
        kdir = os.path.join(w, "kernel")
        async with self.step(f"downloading and unpacking {package}"):
            debs = os.path.join(w, "debs")
            os.makedirs(debs)
            await self.download(package, debs)
            deb = glob.glob(os.path.join(debs, "*.deb"))[0]
            pkg_version = (await self.cmd(["dpkg-deb", "-f", deb, "Version"], "reading the kernel's version")).strip()
            await self.cmd(["dpkg-deb", "-x", deb, kdir], "unpacking the kernel", timeout=600)
            versions = os.listdir(os.path.join(kdir, "lib", "modules"))
            if len(versions) != 1:
                raise RuntimeError(f"{package} holds {len(versions)} module trees")
            version = versions[0]
            await asyncio.to_thread(_extract_vmlinux, os.path.join(kdir, "boot", f"vmlinuz-{version}"), os.path.join(w, KERNEL))
        rootfs = os.path.join(w, "rootfs")
        async with self.step(f"building a {SUITE} minbase root file system (mmdebstrap)"):
            await self.cmd(
                ["mmdebstrap", "--mode=root", "--variant=minbase", "--quiet", f"--include={','.join(PACKAGES)}", SUITE, rootfs, *mirrors()],
                "mmdebstrap",
                timeout=1800,
            )
        async with self.step("installing the kernel's modules and the guest init"):
            await asyncio.to_thread(_customize, kdir, rootfs, version)
            await self.cmd(["depmod", "-b", rootfs, version], "depmod (root file system)")
        async with self.step("building the initramfs"):
            await self.cmd(["depmod", "-b", kdir, version], "depmod (kernel tree)")
            tree = os.path.join(w, "initramfs")
            await asyncio.to_thread(_initramfs_tree, kdir, version, tree)
            await self.cpio(tree, os.path.join(w, INITRD))
        async with self.step(f"making the {DISK_SIZE} ext4 root disk (qcow2)"):
            raw = os.path.join(w, "rootfs.img")
            await self.cmd(["mkfs.ext4", "-q", "-F", "-L", "tbroot", "-d", rootfs, raw, DISK_SIZE], "mkfs.ext4", timeout=900)
            await self.cmd(["qemu-img", "convert", "-O", "qcow2", raw, os.path.join(w, DISK)], "qemu-img convert", timeout=900)
            os.unlink(raw)
            os.chmod(os.path.join(w, DISK), 0o444)
        for sub in ("rootfs", "kernel", "initramfs", "debs"):
            await asyncio.to_thread(remove_tree, os.path.join(w, sub))
        seconds = time.monotonic() - self.t0
        meta = {
            "key": self.key,
            "kernel_version": version,
            "kernel_package": f"{package} {pkg_version}",
            "suite": SUITE,
            "packages": list(PACKAGES),
            "build_seconds": round(seconds, 1),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        with open(os.path.join(w, META), "w") as f:
            json.dump(meta, f, indent=2)
        await self.say(f"vm image: built {package} {pkg_version} in {seconds:.0f} s")

    async def kernel_package(self) -> str:
        for attempt in range(2):
            try:
                out = await self.cmd(["apt-cache", "depends", KERNEL_META], f"apt-cache depends {KERNEL_META}")
            except CommandError:
                out = ""
            names = re.findall(r"Depends: (linux-image-[0-9][^\s]*)", out)
            if names:
                return names[0]
            if attempt == 0:
                await self.say("vm image: apt knows no kernel yet; apt-get update")
                await self.cmd(["apt-get", "update", "-qq"], "apt-get update", timeout=600)
        raise RuntimeError(f"apt knows no package {KERNEL_META} depends on (is a Debian mirror configured?)")

    async def download(self, package: str, into: str) -> None:
        # apt-get download writes into its working directory; commands.run has none, so go there.
        await self.cmd(
            ["sh", "-c", 'cd "$1" && exec apt-get download -q "$2"', "sh", into, package], f"apt-get download {package}", timeout=900
        )

    async def cpio(self, tree: str, out: str) -> None:
        await self.cmd(
            ["sh", "-c", 'cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 > "$2"', "sh", tree, out],
            "cpio (initramfs)",
        )


def mirrors() -> list[str]:
    """apt's configured Debian entries for SUITE (and its -updates, -security), as one-line
    `deb URI SUITE COMPONENTS`; empty (mmdebstrap's default, deb.debian.org) if none is found."""
    entries: list[str] = []
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*"))]:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if path.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.startswith(("#", " ")):
                        k, v = line.split(":", 1)
                        fields[k.strip().lower()] = v.strip()
                if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
                    continue
                for uri in fields.get("uris", "").split():
                    for suite in fields.get("suites", "").split():
                        entries.append(f"{uri} {suite} {fields.get('components', 'main')}")
        elif path.endswith(".list"):
            for line in text.splitlines():
                parts = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(parts) >= 3 and parts[0] == "deb":
                    entries.append(" ".join(parts[1:]))
    wanted = []
    for entry in entries:
        uri, suite, *components = entry.split()
        if suite == SUITE or suite.startswith(SUITE + "-"):
            line = f"deb {uri} {suite} {' '.join(c for c in components if c == 'main') or 'main'}"
            if line not in wanted:
                wanted.append(line)
    return wanted


def _extract_vmlinux(vmlinuz: str, out: str) -> None:
    """The ELF kernel inside a bzImage compressed with xz (Debian's)."""
    with open(vmlinuz, "rb") as f:
        data = f.read()
    start = data.find(b"\xfd7zXZ\x00")
    while start >= 0:
        try:
            elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
        except lzma.LZMAError:
            elf = b""
        if elf.startswith(b"\x7fELF"):
            with open(out, "wb") as f:
                f.write(elf)
            return
        start = data.find(b"\xfd7zXZ\x00", start + 1)
    raise RuntimeError(f"no xz-compressed ELF kernel found in {vmlinuz}")


def _customize(kdir: str, rootfs: str, version: str) -> None:
    """Modules, guest init, sshd_config; no host keys, no machine-id (each VM is a new machine)."""
    src = os.path.join(kdir, "lib", "modules", version)
    dst = os.path.join(rootfs, "lib", "modules", version)
    pruned = {os.path.join(src, p) for p in MODULES_PRUNED}
    shutil.copytree(src, dst, ignore=lambda d, names: [n for n in names if os.path.join(d, n) in pruned], symlinks=True)
    for key in glob.glob(os.path.join(rootfs, "etc", "ssh", "ssh_host_*")):
        os.unlink(key)
    with open(os.path.join(rootfs, "etc", "ssh", "sshd_config"), "w") as f:
        f.write(SSHD_CONFIG.replace("for one local host", "for one VM"))
    init = rootfs + guest.GUEST_INIT_PATH
    with open(init, "w") as f:
        f.write(guest.GUEST_INIT)
    os.chmod(init, 0o755)
    for path in ("etc/machine-id", "var/lib/dbus/machine-id"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(rootfs, path))
    open(os.path.join(rootfs, "etc", "machine-id"), "w").close()


def _module_deps(kdir: str, version: str) -> dict[str, tuple[str, list[str]]]:
    """Module name → (path relative to the module tree, dependency paths) from modules.dep."""
    deps: dict[str, tuple[str, list[str]]] = {}
    with open(os.path.join(kdir, "lib", "modules", version, "modules.dep")) as f:
        for line in f:
            path, _, rest = line.partition(":")
            name = os.path.basename(path).split(".ko")[0].replace("-", "_")
            deps[name] = (path, rest.split())
    return deps


def _initramfs_tree(kdir: str, version: str, tree: str) -> None:
    """busybox as /bin/busybox, /init, and the wanted modules numbered in load order."""
    deps = _module_deps(kdir, version)
    by_path = {path: name for name, (path, _) in deps.items()}
    order: list[str] = []

    def want(name: str) -> None:
        if name in order:
            return
        path, needs = deps[name]
        for dep in reversed(needs):  # modules.dep lists the deepest dependency last
            want(by_path[dep])
        order.append(name)

    builtin = _builtin_modules(kdir, version)
    for name in INITRAMFS_MODULES:
        if name in deps:
            want(name)
        elif name not in builtin:
            raise RuntimeError(f"the kernel has no module {name}")
    for sub in ("bin", "dev", "proc", "sys", "newroot", guest.MODULE_DIR.strip("/")):
        os.makedirs(os.path.join(tree, sub), exist_ok=True)
    shutil.copy2(BUSYBOX, os.path.join(tree, "bin", "busybox"))
    for i, name in enumerate(order):
        shutil.copy2(
            os.path.join(kdir, "lib", "modules", version, deps[name][0]),
            os.path.join(tree, guest.MODULE_DIR.strip("/"), f"{i:02d}-{name}.ko"),
        )
    with open(os.path.join(tree, "init"), "w") as f:
        f.write(guest.INITRAMFS_INIT)
    os.chmod(os.path.join(tree, "init"), 0o755)


def _builtin_modules(kdir: str, version: str) -> set[str]:
    try:
        with open(os.path.join(kdir, "lib", "modules", version, "modules.builtin")) as f:
            return {os.path.basename(line.strip()).split(".ko")[0].replace("-", "_") for line in f}
    except OSError:
        return set()


async def _main(argv: list[str]) -> int:
    async def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        image = await ensure_image(say)
    except (CommandError, RuntimeError) as err:
        print(f"vm image: {err}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(image), indent=2) if "--json" in argv else image.directory)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(sys.argv[1:])))

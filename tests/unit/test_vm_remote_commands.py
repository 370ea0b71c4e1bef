"""The shell that runs VMs on remote nodes, run here under the system's sh (dash on Debian)."""

import shutil
import subprocess
import time

from testbed_provider.hosts.vm import remote


def sh(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)


def test_an_image_upload_lands_once_and_replaces_a_pruned_one(tmp_path):
    image = tmp_path / "image-k"
    for name, payload in (("a", "first"), ("b", "second")):
        up = tmp_path / f"image-k.up-{name}"
        up.mkdir()
        (up / "disk").write_text(payload)
        assert sh(remote.place_image_command(str(up), str(image))).returncode == 0
        assert not up.exists()
    assert (image / "disk").read_text() == "first"  # the second upload found it there and went away
    (image / remote.COMPLETE).unlink()  # something pruned it: the next upload replaces it
    up = tmp_path / "image-k.up-c"
    up.mkdir()
    (up / "disk").write_text("third")
    assert sh(remote.place_image_command(str(up), str(image))).returncode == 0
    assert (image / "disk").read_text() == "third"
    assert sh(remote.has_image_command(str(image))).stdout.strip() == "yes"


def test_alive_lists_running_qemus_only(tmp_path):
    fake = tmp_path / "qemu-fake"
    shutil.copy("/bin/sleep", fake)
    qemu = subprocess.Popen([str(fake), "60"])
    other = subprocess.Popen(["sleep", "60"])
    try:
        assert sh(remote.alive_command([qemu.pid, other.pid, 0])).stdout.split() == [str(qemu.pid)]
        qemu.kill()  # not reaped yet: a zombie, not a running QEMU
        while open(f"/proc/{qemu.pid}/stat").read().rsplit(") ", 1)[1][0] != "Z":
            time.sleep(0.01)  # until the kernel made it a zombie (a condition, however long it takes)
        assert sh(remote.alive_command([qemu.pid])).stdout.split() == []
    finally:
        for p in (qemu, other):
            p.kill()
            p.wait()


def test_the_hosts_block_replaces_only_its_own_lines(tmp_path):
    etc = tmp_path / "hosts"
    etc.write_text("127.0.0.1 localhost\n")
    for entries in ([("10.0.0.1", ["vm-1"]), ("10.0.0.2", ["vm-2"])], [("10.0.0.3", ["vm-3", "vm-3.x"])]):
        command = remote.etc_hosts_command(entries).replace("/etc/hosts", str(etc))
        assert sh(command).returncode == 0
    assert etc.read_text() == f"127.0.0.1 localhost\n{remote.HOSTS_BEGIN}\n10.0.0.3 vm-3 vm-3.x\n{remote.HOSTS_END}\n"

"""Where SSH ControlMaster sockets can go: the length rule (from the kernel's real sun_path size
and OpenSSH's temporary suffix) and the short private runtime directory used when the usual
place is too long a path."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from testbed_provider.remote import materialize


def test_sun_path_size_is_the_kernels(tmp_path):
    """A socket path of SUN_PATH_SIZE - 1 bytes binds (its NUL fills sun_path), one byte more does not."""
    base = str(tmp_path) + "/"
    for length, binds in ((materialize.SUN_PATH_SIZE - 1, True), (materialize.SUN_PATH_SIZE, False)):
        path = base + "s" * (length - len(base))
        sock = socket.socket(socket.AF_UNIX)
        try:
            if binds:
                sock.bind(path)
                os.unlink(path)
            else:
                with pytest.raises(OSError):
                    sock.bind(path)
        finally:
            sock.close()


def test_the_rule_leaves_room_for_opensshs_temporary_name():
    # `<dir>/<40 hex>.<16 random>` and a NUL must fit in sun_path
    limit = materialize.CONTROL_DIR_MAX
    assert limit + len("/") + 40 + len(".") + 16 + 1 == materialize.SUN_PATH_SIZE
    assert materialize.control_dir_fits("/" + "d" * (limit - 1))
    assert not materialize.control_dir_fits("/" + "d" * limit)
    assert not materialize.control_dir_fits("/" + "é" * (limit // 2 + 1))  # bytes count, not characters
    # the default CLI cache of root (~/.cache/pulumi-testbed/cli/ctl-<16>) is too long: issue 10's 110 > 107
    assert not materialize.control_dir_fits("/root/.cache/pulumi-testbed/cli/ctl-" + "0" * 16)


@pytest.fixture
def short_tmp():
    """A private directory with a short path (pytest's tmp_path is too long to hold sockets)."""
    path = tempfile.mkdtemp(prefix="tbu-", dir="/tmp")
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


def test_runtime_dir_under_xdg_runtime_dir(short_tmp, monkeypatch):
    runtime = short_tmp
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    path = materialize.runtime_dir()
    assert path == str(runtime / "tb-ssh")
    st = os.lstat(path)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()


def test_runtime_dir_falls_back_to_tmp_when_xdg_is_too_long(tmp_path, monkeypatch):
    long = tmp_path / ("r" * 60)
    long.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(long))
    assert materialize.runtime_dir() == f"/tmp/tb-ssh-{os.geteuid()}"


def test_runtime_dir_refuses_a_symlink_or_a_directory_of_another_user(short_tmp, tmp_path, monkeypatch):
    runtime = short_tmp
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (runtime / "tb-ssh").symlink_to(elsewhere)
    assert materialize.runtime_dir() == f"/tmp/tb-ssh-{os.geteuid()}"  # refused: the next place
    if os.geteuid() != 0:
        return
    (runtime / "tb-ssh").unlink()
    (runtime / "tb-ssh").mkdir(mode=0o700)
    os.chown(runtime / "tb-ssh", 65534, 65534)  # nobody's
    assert materialize.runtime_dir() == f"/tmp/tb-ssh-{os.geteuid()}"


def test_a_long_tmpdir_moves_the_remote_root_to_tmp(tmp_path, monkeypatch):
    import tempfile

    long = tmp_path / ("t" * 80)
    long.mkdir()
    monkeypatch.setenv("TMPDIR", str(long))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    monkeypatch.setattr(materialize, "_root", None)
    root = materialize._root_dir()
    try:
        assert root.startswith("/tmp/tb-remote-") and stat.S_IMODE(os.stat(root).st_mode) == 0o700
        assert materialize.control_dir_fits(os.path.join(root, "ctl-" + "0" * 16))
    finally:
        os.rmdir(root)  # (monkeypatch puts the previous root back)

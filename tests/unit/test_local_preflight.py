"""Local backend preflight: one clear sentence naming what is missing, no traceback."""

from testbed_provider.testbeds.local import preflight as pf


def test_all_present(monkeypatch):
    monkeypatch.setattr(pf.os, "geteuid", lambda: 0)
    monkeypatch.setattr(pf, "effective_capabilities", lambda: (1 << 12) | (1 << 21))
    monkeypatch.setattr(pf, "missing_tools", lambda: [])
    assert pf.preflight() is None


def test_root_without_sys_admin_is_refused(monkeypatch):
    monkeypatch.setattr(pf.os, "geteuid", lambda: 0)
    monkeypatch.setattr(pf, "effective_capabilities", lambda: 1 << 12)
    monkeypatch.setattr(pf, "missing_tools", lambda: [])
    message = pf.preflight()
    assert "root" in message and "without CAP_SYS_ADMIN" in message and "\n" not in message


def test_missing_tools_are_named_with_the_remedy(monkeypatch):
    monkeypatch.setattr(pf.os, "geteuid", lambda: 0)
    monkeypatch.setattr(pf, "effective_capabilities", lambda: (1 << 12) | (1 << 21))
    monkeypatch.setattr(pf, "missing_tools", lambda: ["nc", "/usr/sbin/sshd"])
    message = pf.preflight()
    assert "nc, /usr/sbin/sshd" in message and "run `make setup`" in message


def test_capabilities_are_read_from_proc(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapEff:\t0000000000201000\n")
    caps = pf.effective_capabilities(str(status))
    assert caps >> 12 & 1 and caps >> 21 & 1
    assert pf.effective_capabilities(str(tmp_path / "missing")) == 0

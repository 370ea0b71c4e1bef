"""The console script (first stdout line, clean stop on SIGINT/SIGTERM) and the importable server."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys

import aiohttp
import pytest
import requests

from g5k_emulator import Emulator


def start_cli(*args: str) -> tuple[subprocess.Popen, str]:
    exe = os.path.join(os.path.dirname(sys.executable), "testbed-g5k-emulator")
    proc = subprocess.Popen([exe, "--port", "0", "--no-hosts", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    assert ready, "no URL printed"
    return proc, proc.stdout.readline().decode().strip()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_console_script_prints_its_url_first_and_stops_cleanly(sig, tmp_path):
    proc, url = start_cli("--state", str(tmp_path / "s.sqlite"), "--clock-speed", "60", "--user", "carol:pw")
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/stable")
        r = requests.get(f"{url}/sites", auth=("carol", "pw"), timeout=10)
        assert r.status_code == 200 and [s["uid"] for s in r.json()["items"]]
        assert requests.get(f"{url}/sites", auth=("alice", "x"), timeout=10).status_code == 401  # only configured users
        assert requests.get(url.rsplit("/", 1)[0] + "/_emulator/clock", timeout=10).json()["speed"] == 60
    finally:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert out == b""  # nothing after the URL line
    assert b"serving the Grid'5000 API emulator" in err


def test_bad_options_fail_with_a_message(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "testbed-g5k-emulator")
    r = subprocess.run([exe, "--no-hosts", "--user", "nopassword"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "NAME:PASSWORD" in r.stderr


@pytest.mark.asyncio
async def test_importable_emulator_serves_in_process(tmp_path):
    emu = Emulator(state=str(tmp_path / "state.sqlite"), clock_speed=3600)
    await emu.start(port=0)
    try:
        assert emu.url == f"http://127.0.0.1:{emu.port}/stable"
        async with aiohttp.ClientSession(headers={"Authorization": "Basic YWxpY2U6eA=="}) as http:  # alice:x
            async with http.post(f"{emu.url}/sites/lyon/jobs", json={"command": "sleep 1"}) as r:
                assert r.status == 201
                uid = (await r.json())["uid"]
            async with http.get(f"{emu.url}/sites/lyon/jobs/{uid}") as r:
                assert (await r.json())["state"] in ("waiting", "launching", "running")
    finally:
        await emu.stop()
    again = Emulator(state=str(tmp_path / "state.sqlite"))
    assert (("lyon", uid)) in again.jobs.jobs
    again.store.close()


def test_a_state_file_serves_one_emulator_at_a_time(tmp_path):
    state = str(tmp_path / "shared.sqlite")
    proc, _ = start_cli("--state", state)
    try:
        exe = os.path.join(os.path.dirname(sys.executable), "testbed-g5k-emulator")
        r = subprocess.run([exe, "--no-hosts", "--state", state], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and "in use by another emulator" in r.stderr and r.stdout == ""
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    proc, url = start_cli("--state", state)  # free again once the first one stopped
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 0 and url

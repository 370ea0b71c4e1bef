"""Per-host commands (rendered templates) and background readiness on real local hosts, through
both engines: each host runs its own rendering, the variables are those a Play sees, and a
background command is waited for (with progress lines) until it is ready, or fails naming why."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

from testbed_provider.remote import run_shell, stop_background
from testbed_provider.remote.playbook import run_play
from testbed_provider.remote.templating import render
from testbed_provider.testbeds.base import MachineGroup, NetworkSpec, ReservationSpec

from .conftest import Reservations, _teardown

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(180)]

ENGINES = ("ssh", "ansible")
LISTEN = (
    'python3 -c \'import signal,socket,sys; s=socket.socket(socket.AF_INET6); s.bind(("::", int(sys.argv[1]))); '
    "s.listen(); signal.pause()' {port}"
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def net(tmp_path_factory):
    """server-1 (its group's vars: mode=fast), client-1 and client-2 on an `experiment` network."""
    reservations = Reservations(str(tmp_path_factory.mktemp("remote-templates")))
    spec = ReservationSpec(
        name="remote-tpl", machines=[MachineGroup(["server"], 1), MachineGroup(["client"], 2)], networks=[NetworkSpec("experiment")]
    )
    inputs = {
        "machines": [
            {"roles": ["server"], "count": 1, "vars": {"mode": "fast", "label": "{{ inventory_hostname }}!"}},
            {"roles": ["client"], "count": 2},
        ]
    }
    try:
        bed = await reservations.reserve(spec)
        from testbed_provider.protocol.codec import reveal
        from testbed_provider.resources.reservation import outputs_from_state

        bed.inventory = reveal(outputs_from_state(bed.state, inputs)["inventory"])
        yield bed
    finally:
        await _teardown(reservations)


def summary(results):
    return [(r.host, r.rc, r.stdout, r.stderr, r.status) for r in results]


def experiment(bed, host: str) -> str:
    h = next(h for h in bed.inventory["hosts"] if h["name"] == host)
    return next(n["address"] for n in h["networks"] if n["id"] == "experiment")


TEMPLATE = (
    "{{ inventory_hostname }} -> {{ hostvars[groups['server'][0]].testbed_networks.experiment }}"
    ":{{ 5201 + groups['client'].index(inventory_hostname) }} from {{ testbed_networks.experiment }}"
    " ({{ testbed_roles | join(',') }}; {{ group_names }}; server mode {{ hostvars['server-1'].mode }}"
    " {{ hostvars['server-1'].label }}; {{ ansible_play_hosts | length }} hosts; t={{ duration }} {{ who }})"
)
VARS = {"duration": 10, "who": "{{ inventory_hostname | upper }}"}


async def test_each_host_runs_its_own_rendering_identically_on_both_engines(net):
    rendered = render(net.inventory, ["client-1", "client-2"], TEMPLATE, VARS)
    server = experiment(net, "server-1")
    for k, host in enumerate(["client-1", "client-2"]):
        assert rendered[host] == (
            f"{host} -> {server}:{5201 + k} from {experiment(net, host)} (client; ['client']; "
            f"server mode fast server-1!; 2 hosts; t=10 {host.upper()})"
        )
    commands = {h: f'echo {c!r}; echo "$(hostname) ran it" >&2' for h, c in rendered.items()}
    fast = await run_shell(net.inventory, "client", commands, engine="ssh")
    slow = await run_shell(net.inventory, "client", commands, engine="ansible")
    assert summary(fast) == summary(slow)
    assert [(r.host, r.stdout, r.stderr) for r in fast] == [(h, rendered[h], f"{h} ran it") for h in ("client-1", "client-2")]


async def test_a_template_sees_the_variables_a_play_sees(net):
    report = await run_play(
        net.inventory, "client", [{"name": "say", "ansible.builtin.debug": {"msg": TEMPLATE}, "register": "said"}], extra_vars=VARS
    )
    played = {h: v["said"]["msg"] for h, v in report.registered.items()}
    assert played == render(net.inventory, ["client-1", "client-2"], TEMPLATE, VARS)


class Lines:
    """Progress lines as they come; `seen` is set by the first one containing `wanted`."""

    def __init__(self, wanted: str) -> None:
        self.lines: list[str] = []
        self.wanted = wanted
        self.seen = asyncio.Event()

    async def __call__(self, line: str) -> None:
        self.lines.append(line)
        if self.wanted in line:
            self.seen.set()


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_background_server_is_waited_for_until_its_port_listens(net, engine):
    port, gate, tag = 5301 + ENGINES.index(engine), f"~/gate-{engine}", f"ready-{engine}"
    lines = Lines("waiting until ready")
    start = asyncio.ensure_future(
        run_shell(
            net.inventory,
            "server",
            f"while [ ! -e {gate} ]; do sleep 0.05; done; exec {LISTEN.format(port=port)}",
            background=tag,
            ready_port=port,
            ready_timeout=120,
            progress=lines,
            engine=engine,
        )
    )
    try:
        await asyncio.wait_for(lines.seen.wait(), 60)  # it is waited for, and says so
        assert not start.done()
        assert "waiting until ready (TCP port %d listening) on 1 host: server-1 (" % port in lines.lines[-1]
        await run_shell(net.inventory, "server", f"touch {gate}")
        [result] = await asyncio.wait_for(start, 60)
        assert result.status == "ok" and "ready after" in result.stdout and f"(TCP port {port} listening)" in result.stdout
        # the next step connects at once: no retry loop
        probe = await run_shell(
            net.inventory,
            "client-1",
            f"python3 -c 'import socket; socket.create_connection((\"{experiment(net, 'server-1')}\", {port}), 5)'",
        )
        assert probe[0].status == "ok", probe[0].stderr
    finally:
        start.cancel()
        await stop_background(net.inventory, "server", tag)
        await run_shell(net.inventory, "server", f"rm -f {gate}")


async def test_a_per_host_ready_command_waits_on_each_host(net):
    ready = render(net.inventory, ["client-1", "client-2"], "test -e ~/up-{{ inventory_hostname }}")
    lines = Lines("waiting until ready")
    start = asyncio.ensure_future(
        run_shell(net.inventory, "client", "exec sleep 300", background="ready-cmd", ready_command=ready, ready_timeout=120, progress=lines)
    )
    try:
        await asyncio.wait_for(lines.seen.wait(), 60)
        await run_shell(net.inventory, "client-1", "touch ~/up-client-1")
        await asyncio.wait_for(lines.seen.wait(), 60)
        while "on 1 host: client-2" not in lines.lines[-1]:  # client-1 is ready, client-2 still waited for
            lines.seen.clear()
            await asyncio.wait_for(lines.seen.wait(), 60)
        await run_shell(net.inventory, "client-2", "touch ~/up-client-2")
        results = await asyncio.wait_for(start, 60)
        assert [(r.host, r.status) for r in results] == [("client-1", "ok"), ("client-2", "ok")]
        assert all("(the ready command exiting 0)" in r.stdout for r in results)
    finally:
        start.cancel()
        await stop_background(net.inventory, "client", "ready-cmd")
        await run_shell(net.inventory, "client", "rm -f ~/up-client-*")


async def test_never_ready_fails_naming_why_identically_on_both_engines_and_stops_the_command(net):
    outcomes = []
    for engine in ENGINES:
        results = await run_shell(
            net.inventory,
            "server",
            "echo listening soon; exec sleep 300",
            background="never",
            ready_port=5399,
            ready_timeout=1,
            engine=engine,
        )
        outcomes.append(summary(results))
        [r] = results
        assert (r.status, r.rc) == ("failed", 1)
        assert r.stderr.splitlines() == [
            "listening soon",
            "not ready after 1 s: nothing listens on TCP port 5399 (the command was stopped; its log is above)",
        ]
        left = await run_shell(net.inventory, "server", "ls ~/.testbed/bg/ | grep -c '^never.pid$' || true")
        assert left[0].stdout == "0"
    assert outcomes[0] == outcomes[1]

"""BatchExecutor live, in a sandbox: the same kernel state as SerialExecutor, exact rollback, clean teardown."""

from __future__ import annotations

import json
import sys

import attrs
import pytest

from netnskit.errors import StepError
from netnskit.executors import BatchExecutor, SerialExecutor
from netnskit.firewall.iptables import Backend
from netnskit.firewall.rules import Rule
from netnskit.link import Bridge, Link, Route, VethPair
from netnskit.netns import Namespace
from netnskit.plan import Command, Step
from netnskit.sandbox import Sandbox
from netnskit.snapshot import HostState
from netnskit.testing import FakeRunner

GROUP = "77"
GATEWAY = "10.9.0.1"
NAMES = ("red", "blue", "green")


def rule(action: str, chain: str, *spec: str) -> Command:
    return Rule(4, "nat", chain, spec).command(Backend(), action)


def namespace_steps(name: str, index: int) -> list[Step]:
    host, inner = f"v{index}b", f"v{index}"
    ip = f"10.9.0.{index + 2}"
    nat = [
        "POSTROUTING",
        "-s",
        f"{ip}/32",
        "!",
        "-o",
        "br0",
        "-m",
        "comment",
        "--comment",
        "netnskit:t",
        "-j",
        "MASQUERADE",
    ]
    dnat = [
        "-p",
        "tcp",
        "-m",
        "addrtype",
        "--dst-type",
        "LOCAL",
        "--dport",
        str(20000 + index),
        "-m",
        "comment",
        "--comment",
        "netnskit:t",
        "-j",
        "DNAT",
        "--to-destination",
        f"{ip}:80",
    ]
    ns = Namespace(name, runner=FakeRunner())
    pair = VethPair(host, inner, peer_netns=name, master="br0", group=int(GROUP), runner=FakeRunner())
    end = Link(inner, name, runner=FakeRunner())
    default = Route("default", GATEWAY, netns=name, runner=FakeRunner())
    return [
        Step(
            f"namespace {name}",
            [ns.add_command(), Link("lo", name, runner=FakeRunner()).up_command()],
            [ns.delete_command()],
        ),
        Step(f"veth {host}", [pair.create_command(up=True), end.up_command()], [pair.delete_command()]),
        Step(f"address {name}", [end.add_address_command(f"{ip}/24")], [end.del_address_command(f"{ip}/24")]),
        Step(f"default route in {name}", [default.add_command()], [default.delete_command()]),
        Step(f"masquerade {name}", [rule("-A", *nat)], [rule("-D", *nat)]),
        Step(
            f"forward {name}",
            [rule("-A", "PREROUTING", *dnat), rule("-A", "OUTPUT", *dnat)],
            [rule("-D", "PREROUTING", *dnat), rule("-D", "OUTPUT", *dnat)],
        ),
    ]


def plan(extra: dict[int, Step] | None = None) -> list[Step]:
    bridge = Bridge("br0", group=int(GROUP), runner=FakeRunner())
    br0 = Link("br0", runner=FakeRunner())
    steps = [
        Step(
            "bridge br0",
            [bridge.create_command(up=True), br0.add_address_command(f"{GATEWAY}/24")],
            [bridge.delete_command()],
        ),
    ]
    for index, name in enumerate(NAMES):
        steps += namespace_steps(name, index)
        if extra and index in extra:
            steps.append(extra[index])
    return steps


def inside(box: Sandbox, name: str) -> dict[str, object]:
    """What a namespace holds, read with ip -j (no indexes, MACs or counters)."""

    def j(*args: str) -> list[dict[str, object]]:
        out = box.runner.run(["ip", "-n", name, "-j", *args]).check().stdout.strip()
        return [d for d in json.loads(out) if isinstance(d, dict) and d] if out else []

    return {
        "links": sorted((str(d["ifname"]), "UP" in d.get("flags", ()), str(d.get("link_type"))) for d in j("link")),
        "addresses": sorted(
            f"{d['ifname']} {a['local']}/{a['prefixlen']}"
            for d in j("addr")
            for a in d.get("addr_info", ())
            if a.get("family") == "inet"
        ),
        "routes": sorted(json.dumps(r, sort_keys=True) for r in j("route", "show", "table", "all")),
    }


def kernel_state(box: Sandbox) -> tuple[HostState, dict[str, dict[str, object]], list[str]]:
    host_links = json.loads(box.runner.run(["ip", "-j", "link", "show", "group", GROUP]).check().stdout or "[]")
    group = sorted(str(d["ifname"]) for d in host_links if isinstance(d, dict) and "ifname" in d)
    state = HostState.capture(box.runner)
    # link-local IPv6 addresses come from random MACs: the same in kind, never in value
    state = attrs.evolve(
        state,
        addresses=tuple(a for a in state.addresses if " fe80:" not in a),
        routes=tuple(r for r in state.routes if "fe80:" not in r),
    )
    return state, {n: inside(box, n) for n in NAMES}, group


@pytest.mark.parametrize("pipeline", [False, True], ids=["waves", "pipelined"])
def test_batched_apply_gives_the_same_kernel_state_as_serial_and_remove_leaves_the_host_as_before(sandbox, pipeline):
    before = HostState.capture(sandbox.runner)
    steps = plan()
    SerialExecutor().apply(steps, sandbox.runner)
    serial = kernel_state(sandbox)
    SerialExecutor().remove(steps, sandbox.runner)
    assert HostState.capture(sandbox.runner).diff(before) == []

    BatchExecutor(pipeline=pipeline).apply(steps, sandbox.runner)
    batched = kernel_state(sandbox)
    assert batched == serial
    assert batched[0].namespaces == tuple(sorted(NAMES))
    assert batched[2] == ["br0", "v0b", "v1b", "v2b"]
    assert "10.9.0.3/24" in " ".join(batched[1]["blue"]["addresses"])  # type: ignore[arg-type]
    assert batched[0].iptables.count("netnskit:t") == 9

    gone = BatchExecutor(pipeline=pipeline).remove(steps, sandbox.runner)
    assert gone == []
    assert HostState.capture(sandbox.runner).diff(before) == []
    assert sandbox.runner.run(["ip", "-j", "netns", "list"]).stdout.strip() in ("", "[]")


def test_batched_network_carries_real_traffic_between_namespaces(sandbox):
    steps = plan()
    BatchExecutor().apply(steps, sandbox.runner)
    server = sandbox.start(
        [
            sys.executable,
            "-m",
            "netnskit.probe",
            "serve",
            "--proto",
            "tcp",
            "--port",
            "80",
            "--count",
            "1",
            "--timeout",
            "10",
        ],
        netns="blue",
    )
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    client = sandbox.runner.run(
        [
            "ip",
            "netns",
            "exec",
            "red",
            sys.executable,
            "-m",
            "netnskit.probe",
            "connect",
            "--proto",
            "tcp",
            "10.9.0.3",
            "80",
        ]
    )
    assert client.ok, client.stdout + client.stderr
    reply = json.loads(client.stdout)
    assert reply["ok"] is True
    assert reply["reply"] == "netnskit-probe 10.9.0.3 10.9.0.2"  # server's own address, then the peer it saw
    server.wait(timeout=10)
    BatchExecutor().remove(steps, sandbox.runner)


def test_a_failure_inside_a_namespace_batch_names_the_step_and_rolls_back_exactly(sandbox):
    before = HostState.capture(sandbox.runner)
    unreachable = Route("10.50.0.0/24", "10.99.99.99", netns="blue", runner=FakeRunner())
    bad = Step("unreachable route in blue", [unreachable.add_command()], [unreachable.delete_command()])
    steps = plan({1: bad})
    with pytest.raises(StepError) as info:
        BatchExecutor().apply(steps, sandbox.runner)
    err = info.value
    assert err.step == "unreachable route in blue"
    assert steps[err.index] is bad
    assert "ip -n blue route add 10.50.0.0/24 via 10.99.99.99" in err.cause
    assert "gateway" in err.cause.lower() or "unreachable" in err.cause.lower()
    assert err.rollback_errors == ()
    assert HostState.capture(sandbox.runner).diff(before) == []


def test_a_failure_in_the_host_batch_rolls_back_and_leaves_the_foreign_link_that_caused_it(sandbox):
    sandbox.runner.run(["ip", "link", "add", "v1b", "type", "bridge"]).check()
    before = HostState.capture(sandbox.runner)
    steps = plan()
    with pytest.raises(StepError) as info:
        BatchExecutor().apply(steps, sandbox.runner)
    assert info.value.step == "veth v1b"
    assert "ip link add v1b group 77" in info.value.cause
    assert "File exists" in info.value.cause
    assert HostState.capture(sandbox.runner).diff(before) == []
    assert sandbox.runner.run(["ip", "link", "show", "v1b"]).ok


def test_a_failing_rule_rolls_back_and_is_named(sandbox):
    before = HostState.capture(sandbox.runner)
    bad = Step(
        "rule with no such target",
        [rule("-A", "POSTROUTING", "-s", "10.9.0.99", "-j", "NOSUCHTARGET")],
        [rule("-D", "POSTROUTING", "-s", "10.9.0.99", "-j", "NOSUCHTARGET")],
    )
    steps = plan({0: bad})
    with pytest.raises(StepError) as info:
        BatchExecutor().apply(steps, sandbox.runner)
    assert info.value.step == "rule with no such target"
    assert "iptables -w 10 -t nat -A POSTROUTING -s 10.9.0.99 -j NOSUCHTARGET" in info.value.cause
    assert "NOSUCHTARGET" in info.value.cause.split("exited")[-1]
    assert HostState.capture(sandbox.runner).diff(before) == []


def test_teardown_spares_a_foreign_link_in_the_same_group_and_reports_what_was_gone(sandbox):
    sandbox.runner.run(["ip", "link", "add", "theirs", "group", GROUP, "type", "bridge"]).check()
    before = HostState.capture(sandbox.runner)
    steps = plan()
    BatchExecutor().apply(steps, sandbox.runner)
    sandbox.runner.run(["ip", "netns", "del", "green"]).check()  # gone behind our back
    gone = BatchExecutor().remove(steps, sandbox.runner)
    assert any("netns del green" in g for g in gone)
    assert HostState.capture(sandbox.runner).diff(before) == []
    assert sandbox.runner.run(["ip", "link", "show", "theirs"]).ok


def test_group_teardown_is_one_request_and_remove_twice_is_harmless(sandbox):
    steps = plan()
    before = HostState.capture(sandbox.runner)
    BatchExecutor().apply(steps, sandbox.runner)
    BatchExecutor().remove(steps, sandbox.runner)
    assert HostState.capture(sandbox.runner).diff(before) == []
    gone = BatchExecutor().remove(steps, sandbox.runner)
    assert len(gone) == len(NAMES) + 9 + 4  # namespaces, rules, links (the group is empty)
    assert HostState.capture(sandbox.runner).diff(before) == []


def test_a_network_plan_batched_gives_the_serial_state_and_down_leaves_the_host_as_before(sandbox):
    from netnskit.network import ForwardSpec, NamespaceSpec, Network

    spaces = ("n-a", "n-b", "n-c")
    net = Network(
        name="batchtest",
        bridge="bt0",
        subnet="10.77.0.0/24",
        gateway="10.77.0.1",
        namespaces=[NamespaceSpec(name=n, host_ifname=f"bt-{n}") for n in spaces],
        masquerade=True,
        port_forwards=[ForwardSpec(18080 + i, n, 80) for i, n in enumerate(spaces)],
        runner=sandbox.runner,
    )

    def state() -> tuple[HostState, dict[str, dict[str, object]]]:
        host = HostState.capture(sandbox.runner)
        host = attrs.evolve(
            host,
            addresses=tuple(a for a in host.addresses if " fe80:" not in a),
            routes=tuple(r for r in host.routes if "fe80:" not in r),
        )
        return host, {n: inside(sandbox, n) for n in spaces}

    before = HostState.capture(sandbox.runner)
    net.up(SerialExecutor())
    serial = state()
    net.down(SerialExecutor())
    assert HostState.capture(sandbox.runner).diff(before) == []

    net.up(BatchExecutor())
    batched = state()
    assert batched == serial
    assert batched[1]["n-b"]["addresses"] == ["eth0 10.77.0.3/24", "lo 127.0.0.1/8"]
    assert "DNAT" in batched[0].iptables and "10.77.0.4:80" in batched[0].iptables
    net.down(BatchExecutor())
    assert HostState.capture(sandbox.runner).diff(before) == []

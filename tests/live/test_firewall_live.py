"""NatRule and PortForward, live in a sandbox, with iptables-nft and with iptables-legacy.

The sandbox "host" has a bridge ``nkbr0`` (192.168.15.1/24) with two namespaces on it, ``red``
(192.168.15.2, the forwards' destination) and ``blue`` (192.168.15.3, a sibling), and a LAN
stand-in namespace ``lan`` (192.168.1.2) joined to the host (192.168.1.1) by a veth. The FORWARD
policy is DROP (as on a host with Docker) and foreign rules sit in every chain netnskit touches.
Every exchange is a real TCP or UDP exchange (``netnskit.probe``) whose peer address is asserted.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from netnskit.firewall import Backend, Firewall, NatRule, PortForward, split_brain_warning
from netnskit.firewall.nftables import Nftables
from netnskit.pytest_plugin import live_required
from netnskit.runner import Runner
from netnskit.sandbox import Sandbox, sandbox_problem
from netnskit.snapshot import _clean_save

HOST_LAN = "192.168.1.1"
LAN = "192.168.1.2"
HOST_BR = "192.168.15.1"
RED = "192.168.15.2"
BLUE = "192.168.15.3"
BRIDGE = "nkbr0"
SUBNET = "192.168.15.0/24"
OWNER = "lab"
PY = sys.executable

TOPOLOGY = [
    ["ip", "link", "add", BRIDGE, "type", "bridge"],
    ["ip", "addr", "add", f"{HOST_BR}/24", "dev", BRIDGE],
    ["ip", "link", "set", BRIDGE, "up"],
    ["ip", "link", "add", "lan-h", "type", "veth", "peer", "name", "lan-n"],
    ["ip", "addr", "add", f"{HOST_LAN}/24", "dev", "lan-h"],
    ["ip", "link", "set", "lan-h", "up"],
    ["ip", "netns", "add", "lan"],
    ["ip", "link", "set", "lan-n", "netns", "lan"],
    ["ip", "-n", "lan", "addr", "add", f"{LAN}/24", "dev", "lan-n"],
    ["ip", "-n", "lan", "link", "set", "lan-n", "up"],
    ["ip", "-n", "lan", "link", "set", "lo", "up"],
]
for _ns, _addr in (("red", RED), ("blue", BLUE)):
    TOPOLOGY += [
        ["ip", "netns", "add", _ns],
        ["ip", "link", "add", f"{_ns}-h", "type", "veth", "peer", "name", f"{_ns}-n"],
        ["ip", "link", "set", f"{_ns}-h", "master", BRIDGE, "up"],
        ["ip", "link", "set", f"{_ns}-n", "netns", _ns],
        ["ip", "-n", _ns, "addr", "add", f"{_addr}/24", "dev", f"{_ns}-n"],
        ["ip", "-n", _ns, "link", "set", f"{_ns}-n", "up"],
        ["ip", "-n", _ns, "link", "set", "lo", "up"],
        ["ip", "-n", _ns, "route", "add", "default", "via", HOST_BR],
    ]


def foreign_rules(backend: str, family: int) -> list[list[str]]:
    """Rules that are not ours, in every built-in chain netnskit jumps from; FORWARD policy DROP."""
    ipt = Backend(backend).binary(family)
    one, two, net = ("fd99::1", "fd99::2", "fd99::/64") if family == 6 else ("10.99.0.1", "10.99.0.2", "10.99.0.0/24")
    return [
        [
            ipt,
            "-w",
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-d",
            one,
            "-p",
            "tcp",
            "--dport",
            "9",
            "-j",
            "DNAT",
            "--to-destination",
            f"[{two}]" if family == 6 else two,
        ],
        [ipt, "-w", "-t", "nat", "-A", "OUTPUT", "-d", one, "-j", "RETURN"],
        [ipt, "-w", "-t", "nat", "-A", "POSTROUTING", "-s", net, "-j", "MASQUERADE"],
        [ipt, "-w", "-t", "filter", "-A", "FORWARD", "-s", net, "-j", "ACCEPT"],
        [ipt, "-w", "-t", "raw", "-A", "PREROUTING", "-s", net, "-j", "ACCEPT"],
        [ipt, "-w", "-t", "filter", "-P", "FORWARD", "DROP"],
    ]


def _sandbox_or_skip() -> Sandbox:
    problem = sandbox_problem()
    if problem:
        if live_required():
            pytest.fail(f"live test cannot run: {problem}", pytrace=False)
        pytest.skip(f"live test skipped: {problem}")
    return Sandbox()


def build(box: Sandbox, backend: str) -> None:
    """The topology, the foreign rules (FORWARD policy DROP) and a forward-ready host."""
    for argv in TOPOLOGY + foreign_rules(backend, 4) + foreign_rules(backend, 6):
        box.run(argv).check()


def saves(runner: Runner, backend: str) -> dict[str, str]:
    """Both families' iptables-save of both backends, without counters and comment lines."""
    out = {}
    for kind in ("nft", "legacy"):
        for family in (4, 6):
            name = Backend(kind).binary(family, "save")
            out[name] = _clean_save(runner.run([name]).check().stdout)
    return out


def sysctls(runner: Runner) -> dict[str, str]:
    names = ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", f"net.ipv4.conf.{BRIDGE}.route_localnet"]
    results = {n: runner.run(["sysctl", "-n", n]) for n in names}
    return {n: r.stdout.strip() if r.ok else "(absent)" for n, r in results.items()}


def the_rules(box: Sandbox, backend: str) -> list[NatRule | PortForward]:
    kw: dict[str, Any] = {"owner": OWNER, "runner": box.runner, "backend": backend}
    return [
        NatRule(SUBNET, BRIDGE, **kw, uplinks=["lan-h"]),
        PortForward(8080, RED, 80, "tcp", **kw, bridge=BRIDGE),
        PortForward(8053, RED, 53, "udp", **kw, bridge=BRIDGE),
        PortForward((8100, 8102), RED, (9100, 9102), "tcp", **kw, bridge=BRIDGE),
        PortForward(8200, RED, 80, "tcp", **kw, host_address=HOST_LAN, bridge=BRIDGE),
    ]


def nft_apply(box: Sandbox, owner: str, objects: list[NatRule | PortForward]) -> None:
    """The objects' rules (resolved from the host) as ``owner``'s nft table, through the nftables backend."""
    resolved = [o.resolve() for o in objects]
    rules = list(dict.fromkeys(r for o in resolved for r in o.rules()))
    sysctls = list(dict.fromkeys(s for o in resolved for s in o.sysctls()))
    Nftables(box.runner).apply(Firewall(Backend(), box.runner), owner, rules, sysctls)


def nft_remove(box: Sandbox, owner: str) -> None:
    Nftables(box.runner).remove(Firewall(Backend(), box.runner), owner)


# "nftables": the foreign rules (FORWARD policy DROP) in iptables-nft, netnskit's in its own nft table
@pytest.fixture(scope="module", params=["nft", "legacy", "nftables"])
def lab(request: pytest.FixtureRequest) -> Iterator[tuple[Sandbox, str]]:
    """One topology per backend with every rule applied, shared by the path tests."""
    backend = request.param
    box = _sandbox_or_skip()
    with box:
        if backend == "nftables":
            build(box, "nft")
            nft_apply(box, OWNER, the_rules(box, "nft"))
        else:
            build(box, backend)
            for rule in the_rules(box, backend):
                rule.apply()
        yield box, backend


# --- exchanges ------------------------------------------------------------------------------


def serve(box: Sandbox, netns: str, proto: str, port: int, bind: str = "0.0.0.0") -> subprocess.Popen[str]:
    server = box.start(
        [
            PY,
            "-m",
            "netnskit.probe",
            "serve",
            "--proto",
            proto,
            "--port",
            str(port),
            "--bind",
            bind,
            "--count",
            "1",
            "--timeout",
            "10",
        ],
        netns=netns,
    )
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "ready"
    return server


def connect(box: Sandbox, netns: str | None, proto: str, host: str, port: int, timeout: int = 3) -> dict[str, Any]:
    argv = [PY, "-m", "netnskit.probe", "connect", "--proto", proto, host, str(port), "--timeout", str(timeout)]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    result: dict[str, Any] = json.loads(box.run(argv).stdout.strip().splitlines()[-1])
    return result


def exchange(
    box: Sandbox, server_ns: str, port: int, client_ns: str | None, host: str, host_port: int, proto: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Serve once in ``server_ns``, connect from ``client_ns``; (client result, server record)."""
    server = serve(box, server_ns, proto, port)
    client = connect(box, client_ns, proto, host, host_port)
    if not client["ok"]:
        server.kill()
        server.wait()
        pytest.fail(f"{proto} {client_ns or 'host'} -> {host}:{host_port} failed: {client}")
    assert server.stdout is not None
    record: dict[str, Any] = json.loads(server.stdout.readline())
    server.wait(timeout=10)
    return client, record


PROTOS = [("tcp", 8080, 80), ("udp", 8053, 53)]


# --- the four paths -------------------------------------------------------------------------


@pytest.mark.parametrize(("proto", "host_port", "port"), PROTOS)
def test_from_the_lan_the_destination_sees_the_lan_host(lab, proto, host_port, port):
    box, _ = lab
    client, record = exchange(box, "red", port, "lan", HOST_LAN, host_port, proto)
    assert record["peer"][0] == LAN
    assert record["local"] == [RED, port]
    assert client["reply"] == f"netnskit-probe {RED} {LAN}"


@pytest.mark.parametrize(("proto", "host_port", "port"), PROTOS)
def test_from_the_host_itself_to_its_lan_address(lab, proto, host_port, port):
    box, _ = lab
    client, record = exchange(box, "red", port, None, HOST_LAN, host_port, proto)
    assert record["peer"][0] == HOST_LAN
    assert record["local"] == [RED, port]


@pytest.mark.parametrize(("proto", "host_port", "port"), PROTOS)
def test_from_the_host_itself_to_127_0_0_1(lab, proto, host_port, port):
    box, _ = lab
    client, record = exchange(box, "red", port, None, "127.0.0.1", host_port, proto)
    # masqueraded to the bridge address, so the reply can come back
    assert record["peer"][0] == HOST_BR
    assert record["local"] == [RED, port]
    assert client["local"][0] == "127.0.0.1"


@pytest.mark.parametrize(("proto", "host_port", "port"), PROTOS)
def test_from_a_sibling_namespace_hairpin(lab, proto, host_port, port):
    box, _ = lab
    client, record = exchange(box, "red", port, "blue", HOST_LAN, host_port, proto)
    # masqueraded (no mark: by conntrack's DNAT state): the reply goes back through the host, not straight to blue
    assert record["peer"][0] == HOST_BR
    assert record["local"] == [RED, port]
    assert client["local"][0] == BLUE


@pytest.mark.parametrize(("proto", "host_port", "port"), PROTOS)
def test_through_traffic_to_the_same_port_elsewhere_is_not_captured(lab, proto, host_port, port):
    box, _ = lab
    # blue talks to port 8080/8053 of the LAN machine: it must reach the LAN machine, masqueraded
    client, record = exchange(box, "lan", host_port, "blue", LAN, host_port, proto)
    assert record["local"] == [LAN, host_port]
    assert record["peer"][0] == HOST_LAN
    assert client["reply"] == f"netnskit-probe {LAN} {HOST_LAN}"


def test_nat_the_lan_host_sees_the_host_address(lab):
    box, _ = lab
    client, record = exchange(box, "lan", 7000, "red", LAN, 7000, "tcp")
    assert record["peer"][0] == HOST_LAN
    assert client["local"][0] == RED


def test_traffic_on_the_bridge_keeps_its_source(lab):
    box, _ = lab
    client, record = exchange(box, "red", 7001, "blue", RED, 7001, "udp")
    assert record["peer"][0] == BLUE


def test_port_range_maps_one_to_one(lab):
    box, _ = lab
    client, record = exchange(box, "red", 9101, "lan", HOST_LAN, 8101, "tcp")
    assert record["local"] == [RED, 9101]
    assert record["peer"][0] == LAN


def test_host_address_forward_only_on_that_address(lab):
    box, _ = lab
    _, record = exchange(box, "red", 80, "lan", HOST_LAN, 8200, "tcp")
    assert record["peer"][0] == LAN
    # the same port on the bridge address is not forwarded (nothing listens there: refused)
    result = connect(box, "blue", "tcp", HOST_BR, 8200)
    assert result["ok"] is False


# --- exactly ours ---------------------------------------------------------------------------


@pytest.fixture(params=["nft", "legacy"])
def fresh(request: pytest.FixtureRequest) -> Iterator[tuple[Sandbox, str]]:
    """A topology of its own per test (the teardown tests change what the others rely on)."""
    box = _sandbox_or_skip()
    with box:
        build(box, request.param)
        yield box, request.param


def _guard_drops(box: Sandbox, backend: str) -> dict[str, int]:
    """Packets counted by each loopback guard rule (an independent read of the kernel's counters)."""
    out = box.run([Backend(backend).binary(4), "-w", "-t", "raw", "-S", "NETNSKIT-PREROUTING", "-v"]).check().stdout
    counts = {}
    for line in out.splitlines():
        if "127.0.0.0/8" in line:
            words = line.split()
            counts[words[words.index("127.0.0.0/8") - 1]] = int(words[words.index("-c") + 1])
    return counts


def test_loopback_guard_drops_127_traffic_arriving_on_the_bridge(fresh):
    box, backend = fresh
    fwd = PortForward(8080, RED, 80, owner=OWNER, runner=box.runner, backend=backend, bridge=BRIDGE)
    fwd.apply()
    assert _guard_drops(box, backend) == {"-s": 0, "-d": 0}
    # blue sends to 127.0.0.9 through the host, which has route_localnet on the bridge now
    for argv in (
        ["ip", "-n", "blue", "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local"],
        ["ip", "netns", "exec", "blue", "sysctl", "-w", "net.ipv4.conf.all.route_localnet=1"],
        ["ip", "-n", "blue", "route", "add", "127.0.0.9/32", "via", HOST_BR],
    ):
        box.run(argv).check()
    server = box.start(
        [
            PY,
            "-m",
            "netnskit.probe",
            "serve",
            "--proto",
            "udp",
            "--port",
            "7002",
            "--bind",
            "127.0.0.9",
            "--count",
            "1",
            "--timeout",
            "2",
        ]
    )
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "ready"
    result = connect(box, "blue", "udp", "127.0.0.9", 7002, timeout=1)
    assert result["ok"] is False
    assert server.wait(timeout=10) == 2  # timed out: nothing arrived
    assert _guard_drops(box, backend)["-d"] >= 1
    fwd.remove()


def test_apply_twice_adds_nothing_and_teardown_restores_everything(fresh):
    box, backend = fresh
    before, before_sysctls = saves(box.runner, backend), sysctls(box.runner)
    assert before_sysctls["net.ipv4.ip_forward"] == "0"
    rules = the_rules(box, backend)
    for rule in rules:
        rule.apply()
    once = saves(box.runner, backend)
    assert once != before
    assert sysctls(box.runner)["net.ipv4.ip_forward"] == "1"
    assert sysctls(box.runner)[f"net.ipv4.conf.{BRIDGE}.route_localnet"] == "1"
    for rule in rules:
        assert rule.plan() == []
        rule.apply()
        assert rule.is_applied()
    assert saves(box.runner, backend) == once
    for rule in reversed(rules):
        rule.remove()
    assert saves(box.runner, backend) == before
    assert sysctls(box.runner) == before_sysctls


def test_foreign_rules_stay_in_place_around_ours(fresh):
    box, backend = fresh
    ipt = Backend(backend).binary(4)
    fw = NatRule(SUBNET, BRIDGE, owner=OWNER, runner=box.runner, backend=backend)
    fwd = PortForward(8080, RED, 80, owner=OWNER, runner=box.runner, backend=backend, bridge=BRIDGE)
    fw.apply()
    fwd.apply()
    # more foreign rules, after ours, including one in our own chain's neighbourhood
    late = [
        [ipt, "-w", "-t", "nat", "-A", "POSTROUTING", "-s", "10.98.0.0/24", "-j", "MASQUERADE"],
        [ipt, "-w", "-t", "nat", "-I", "PREROUTING", "1", "-d", "10.98.0.1/32", "-j", "RETURN"],
        [ipt, "-w", "-t", "filter", "-A", "FORWARD", "-d", "10.98.0.0/24", "-j", "DROP"],
    ]
    for argv in late:
        box.run(argv).check()
    expected_foreign = [
        line
        for line in box.run([Backend(backend).binary(4, "save")]).check().stdout.splitlines()
        if line.startswith("-A ") and "netnskit" not in line
    ]
    fwd.remove()
    fw.remove()
    after = box.run([Backend(backend).binary(4, "save")]).check().stdout
    assert "netnskit" not in after.lower()
    assert "NETNSKIT" not in after
    assert [line for line in after.splitlines() if line.startswith("-A ")] == expected_foreign
    assert "-P FORWARD DROP" in box.run([ipt, "-S", "FORWARD"]).check().stdout


def test_a_foreign_rule_inside_our_chain_keeps_the_chain(fresh):
    box, backend = fresh
    ipt = Backend(backend).binary(4)
    nat = NatRule(SUBNET, BRIDGE, owner=OWNER, runner=box.runner, backend=backend)
    nat.apply()
    box.run([ipt, "-w", "-t", "nat", "-A", "NETNSKIT-POSTROUTING", "-s", "10.5.0.0/24", "-j", "MASQUERADE"]).check()
    nat.remove()
    chain = box.run([ipt, "-w", "-t", "nat", "-S", "NETNSKIT-POSTROUTING"]).check().stdout
    assert "-A NETNSKIT-POSTROUTING -s 10.5.0.0/24 -j MASQUERADE" in chain
    assert "netnskit:" not in chain
    assert not nat.is_applied()


def test_one_owner_leaves_the_other_owners_rules_and_shared_chains(fresh):
    box, backend = fresh
    a = PortForward(8080, RED, 80, owner="one", runner=box.runner, backend=backend, bridge=BRIDGE)
    b = PortForward(8081, RED, 80, owner="two", runner=box.runner, backend=backend, bridge=BRIDGE)
    a.apply()
    b.apply()
    a.remove()
    assert not a.is_applied()
    assert b.is_applied()
    assert sysctls(box.runner)["net.ipv4.ip_forward"] == "1"  # two still needs it
    client, record = exchange(box, "red", 80, "blue", HOST_LAN, 8081, "tcp")
    assert record["peer"][0] == HOST_BR
    b.remove()
    save = box.run([Backend(backend).binary(4, "save")]).check().stdout
    assert "NETNSKIT" not in save
    assert sysctls(box.runner)["net.ipv4.ip_forward"] == "0"


def test_two_forwards_of_one_owner_share_the_guard_until_the_last_goes(fresh):
    box, backend = fresh
    kw: dict[str, Any] = {"owner": OWNER, "runner": box.runner, "backend": backend, "bridge": BRIDGE}
    a, b = PortForward(8080, RED, 80, **kw), PortForward(8081, RED, 81, **kw)
    a.apply()
    b.apply()
    raw = [Backend(backend).binary(4, "save"), "-t", "raw"]
    guard = f"-d 127.0.0.0/8 -i {BRIDGE}"
    a.remove()
    assert guard in box.run(raw).check().stdout
    assert sysctls(box.runner)[f"net.ipv4.conf.{BRIDGE}.route_localnet"] == "1"
    b.remove()
    assert guard not in box.run(raw).check().stdout
    assert sysctls(box.runner)[f"net.ipv4.conf.{BRIDGE}.route_localnet"] == "0"


def test_bridge_is_found_by_route_when_not_given(fresh):
    box, backend = fresh
    fwd = PortForward(8080, RED, 80, owner=OWNER, runner=box.runner, backend=backend)
    fwd.apply()
    client, record = exchange(box, "red", 80, "blue", HOST_LAN, 8080, "tcp")
    assert record["peer"][0] == HOST_BR
    fwd.remove()
    assert "NETNSKIT" not in box.run([Backend(backend).binary(4, "save")]).check().stdout


def test_remove_after_the_bridge_is_gone_still_removes_everything(fresh):
    box, backend = fresh
    before = saves(box.runner, backend)
    fwd = PortForward(8080, RED, 80, owner=OWNER, runner=box.runner, backend=backend)
    fwd.apply()  # the bridge is found by ip route get: hairpin and loopback rules on nkbr0
    assert f"-o {BRIDGE}" in box.run([Backend(backend).binary(4, "save"), "-t", "nat"]).check().stdout
    box.run(["ip", "link", "del", BRIDGE]).check()
    fwd.remove()
    assert saves(box.runner, backend) == before
    assert sysctls(box.runner)["net.ipv4.ip_forward"] == "0"


def test_purge_removes_every_rule_of_an_owner(fresh):
    box, backend = fresh
    for rule in the_rules(box, backend):
        rule.apply()
    fw = Firewall(backend, box.runner)
    assert fw.purge(OWNER) > 0
    assert "NETNSKIT" not in box.run([Backend(backend).binary(4, "save")]).check().stdout
    assert sysctls(box.runner)["net.ipv4.ip_forward"] == "0"


def test_ipv6_forward_from_the_lan_goes_through_ip6tables(fresh):
    box, backend = fresh
    for argv in (
        ["ip", "addr", "add", "fd00:15::1/64", "dev", BRIDGE, "nodad"],
        ["ip", "-n", "red", "addr", "add", "fd00:15::2/64", "dev", "red-n", "nodad"],
        ["ip", "-n", "red", "route", "add", "default", "via", "fd00:15::1"],
        ["ip", "-n", "blue", "addr", "add", "fd00:15::3/64", "dev", "blue-n", "nodad"],
        ["ip", "-n", "blue", "route", "add", "default", "via", "fd00:15::1"],
        ["ip", "addr", "add", "fd00:1::1/64", "dev", "lan-h", "nodad"],
        ["ip", "-n", "lan", "addr", "add", "fd00:1::2/64", "dev", "lan-n", "nodad"],
    ):
        box.run(argv).check()
    before = saves(box.runner, backend)
    fwd = PortForward(8080, "fd00:15::2", 80, owner=OWNER, runner=box.runner, backend=backend, bridge=BRIDGE)
    fwd.apply()
    assert "NETNSKIT" in box.run([Backend(backend).binary(6, "save")]).check().stdout
    assert "NETNSKIT" not in box.run([Backend(backend).binary(4, "save")]).check().stdout
    assert sysctls(box.runner)["net.ipv6.conf.all.forwarding"] == "1"
    server = serve(box, "red", "tcp", 80, bind="::")
    client = connect(box, "lan", "tcp", "fd00:1::1", 8080)
    assert client["ok"], client
    assert server.stdout is not None
    record = json.loads(server.stdout.readline())
    assert record["peer"][0] == "fd00:1::2"
    server.wait(timeout=10)
    # hairpin works in IPv6 too: blue calls the host's LAN address, red sees the bridge address
    server = serve(box, "red", "tcp", 80, bind="::")
    client = connect(box, "blue", "tcp", "fd00:1::1", 8080)
    assert client["ok"], client
    assert server.stdout is not None
    assert json.loads(server.stdout.readline())["peer"][0] == "fd00:15::1"
    # and NAT66: the LAN machine sees the host's LAN address
    nat = NatRule("fd00:15::/64", BRIDGE, owner=OWNER, runner=box.runner, backend=backend, uplinks=["lan-h"])
    nat.apply()
    server = serve(box, "lan", "tcp", 7000, bind="::")
    client = connect(box, "red", "tcp", "fd00:1::2", 7000)
    assert client["ok"], client
    assert server.stdout is not None
    assert json.loads(server.stdout.readline())["peer"][0] == "fd00:1::1"
    nat.remove()
    fwd.remove()
    assert saves(box.runner, backend) == before
    assert sysctls(box.runner)["net.ipv6.conf.all.forwarding"] == "0"


def test_split_brain_warning_names_the_other_backend(fresh, caplog):
    box, backend = fresh
    # build() put foreign rules in the chosen backend only: the other one holds none
    assert split_brain_warning(box.runner, backend) is None
    other = "legacy" if backend == "nft" else "nft"
    foreign = ["-w", "-t", "filter", "-A", "INPUT", "-s", "10.97.0.0/24", "-j", "ACCEPT"]
    box.run([Backend(other).binary(4), *foreign]).check()
    warning = split_brain_warning(box.runner, backend)
    assert warning is not None
    assert f"iptables-{other}" in warning
    fwd = NatRule(SUBNET, BRIDGE, owner=OWNER, runner=box.runner, backend=backend)
    with caplog.at_level(logging.WARNING, logger="netnskit"):
        fwd.apply()
    assert any(f"iptables-{other}" in r.getMessage() for r in caplog.records)
    fwd.remove()


def test_the_uplinks_are_the_hosts_gateway_links_read_when_not_given(fresh):
    box, backend = fresh
    box.run(["ip", "route", "add", "default", "via", LAN]).check()  # the LAN host is the host's gateway
    nat = NatRule(SUBNET, BRIDGE, owner=OWNER, runner=box.runner, backend=backend)
    nat.apply()
    save = box.run([Backend(backend).binary(4, "save"), "-t", "filter"]).check().stdout
    assert f"-A NETNSKIT-FORWARD -s {SUBNET} -i {BRIDGE} -o lan-h" in save
    client, record = exchange(box, "lan", 7000, "red", LAN, 7000, "tcp")
    assert record["peer"][0] == HOST_LAN
    nat.remove()
    assert "NETNSKIT" not in box.run([Backend(backend).binary(4, "save")]).check().stdout


def test_the_admins_chain_is_evaluated_first_and_outlives_netnskit(fresh):
    box, backend = fresh
    ipt = Backend(backend).binary(4)
    nat = NatRule(SUBNET, BRIDGE, owner=OWNER, runner=box.runner, backend=backend, uplinks=["lan-h"])
    nat.apply()
    exchange(box, "lan", 7000, "red", LAN, 7000, "tcp")  # allowed by netnskit's rules
    # the admin forbids red to reach the LAN: netnskit's accept comes after the admin's chain
    box.run([ipt, "-w", "-A", "NETNSKIT-USER", "-s", RED, "-o", "lan-h", "-j", "DROP"]).check()
    assert connect(box, "red", "tcp", LAN, 7000, timeout=1)["ok"] is False
    exchange(box, "lan", 7000, "blue", LAN, 7000, "tcp")  # blue still may
    nat.remove()
    save = box.run([Backend(backend).binary(4, "save"), "-t", "filter"]).check().stdout
    assert "NETNSKIT-FORWARD" not in save  # ours are gone ...
    assert f"-A NETNSKIT-USER -s {RED}/32 -o lan-h -j DROP" in save  # ... the admin's chain and rule stay


def test_forwarding_stays_on_while_a_foreign_nat_needs_it_and_the_warning_says_so(fresh, caplog):
    box, backend = fresh
    ipt = Backend(backend).binary(4)
    nat = NatRule(SUBNET, BRIDGE, owner=OWNER, runner=box.runner, backend=backend, uplinks=["lan-h"])
    nat.apply()
    assert sysctls(box.runner)["net.ipv4.ip_forward"] == "1"
    # another manager starts NATing a subnet of its own after netnskit (Docker's masquerade)
    box.run([ipt, "-w", "-t", "nat", "-A", "POSTROUTING", "-s", "172.17.0.0/16", "-j", "MASQUERADE"]).check()
    with caplog.at_level(logging.WARNING, logger="netnskit"):
        nat.remove()
    assert sysctls(box.runner)["net.ipv4.ip_forward"] == "1"
    assert "net.ipv4.ip_forward left at 1 (it was 0 before netnskit): needed by foreign nat rule " in caplog.text
    assert "-A POSTROUTING -s 172.17.0.0/16 -j MASQUERADE" in caplog.text
    assert "NETNSKIT" not in box.run([Backend(backend).binary(4, "save")]).check().stdout


# --- the nftables backend: exactly its table, and nft list ruleset as it was ------------------


@pytest.fixture
def fresh_nft() -> Iterator[Sandbox]:
    """The topology with the foreign rules (FORWARD policy DROP) in iptables-nft, for the nftables backend."""
    box = _sandbox_or_skip()
    with box:
        build(box, "nft")
        yield box


def ruleset(box: Sandbox) -> str:
    """``nft -s list ruleset``: every table, iptables-nft's and native ones, without counters."""
    return box.run(["nft", "-s", "list", "ruleset"]).check().stdout


def test_nftables_apply_twice_changes_nothing_and_remove_leaves_the_ruleset_as_text(fresh_nft):
    box = fresh_nft
    before, before_sysctls = ruleset(box), sysctls(box.runner)
    nft_apply(box, OWNER, the_rules(box, "nft"))
    once = ruleset(box)
    assert "table inet netnskit-lab {" in once
    # the accepts naming the bridge also sit in iptables' FORWARD, which drops (policy DROP)
    assert "NETNSKIT-FORWARD" in box.run(["iptables-nft-save", "-t", "filter"]).check().stdout
    assert sysctls(box.runner)[f"net.ipv4.conf.{BRIDGE}.route_localnet"] == "1"
    nft_apply(box, OWNER, the_rules(box, "nft"))
    assert ruleset(box) == once
    nft_remove(box, OWNER)
    assert ruleset(box) == before
    assert sysctls(box.runner) == before_sysctls


def test_nftables_one_owner_leaves_the_others_table_and_forwarding(fresh_nft):
    box = fresh_nft
    before = ruleset(box)
    nft_apply(box, "one", [PortForward(8080, RED, 80, owner="one", runner=box.runner, bridge=BRIDGE)])
    nft_apply(box, "two", [PortForward(8081, RED, 80, owner="two", runner=box.runner, bridge=BRIDGE)])
    nft_remove(box, "one")
    assert "netnskit-one" not in ruleset(box) and "table inet netnskit-two {" in ruleset(box)
    assert sysctls(box.runner)["net.ipv4.ip_forward"] == "1"  # two still needs it
    assert sysctls(box.runner)[f"net.ipv4.conf.{BRIDGE}.route_localnet"] == "1"  # two's guard is on the bridge
    _, record = exchange(box, "red", 80, "blue", HOST_LAN, 8081, "tcp")
    assert record["peer"][0] == HOST_BR
    nft_remove(box, "two")
    assert ruleset(box) == before
    assert sysctls(box.runner)["net.ipv4.ip_forward"] == "0"


def test_nftables_loopback_guard_drops_127_traffic_arriving_on_the_bridge(fresh_nft):
    box = fresh_nft
    nft_apply(box, OWNER, [PortForward(8080, RED, 80, owner=OWNER, runner=box.runner, bridge=BRIDGE)])
    for argv in (
        ["ip", "-n", "blue", "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local"],
        ["ip", "netns", "exec", "blue", "sysctl", "-w", "net.ipv4.conf.all.route_localnet=1"],
        ["ip", "-n", "blue", "route", "add", "127.0.0.9/32", "via", HOST_BR],
    ):
        box.run(argv).check()
    argv = [PY, "-m", "netnskit.probe", "serve", "--proto", "udp", "--port", "7002", "--bind", "127.0.0.9"]
    server = box.start([*argv, "--count", "1", "--timeout", "2"])
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "ready"
    assert connect(box, "blue", "udp", "127.0.0.9", 7002, timeout=1)["ok"] is False
    assert server.wait(timeout=10) == 2  # timed out: nothing arrived
    nft_remove(box, OWNER)

"""Dual stack: the IPv6 steps as exact argv, IPv6 rules through ip6tables, validation before any
command (errors name the key and what is allowed), IPv6 state read beside IPv4, check's IPv6 probes."""

from __future__ import annotations

import json
import re
import socket
import struct
import tomllib
from pathlib import Path
from typing import Any

import attrs
import pytest
from _readme import readme_block

from netnskit import probe
from netnskit.errors import ConfigError, ValidationError
from netnskit.network import Network, RouteSpec, group_for
from netnskit.network.check import plan_check
from netnskit.testing import FakeRunner

ROOT = Path(__file__).resolve().parents[2]
DUAL = ROOT / "examples" / "seed-dual.toml"
SEED = ROOT / "examples" / "seed.toml"
G = group_for("t6")


def small6(runner: FakeRunner | None = None, **kw: Any) -> Network:
    """One namespace on a bridge, dual-stack: 10.9.0.0/24 and fd15::/64."""
    fields: dict[str, Any] = {
        "name": "t6",
        "bridge": "br-t6",
        "subnet": "10.9.0.0/24",
        "gateway": "10.9.0.1",
        "subnet6": "fd15::/64",
        "gateway6": "fd15::1",
        "namespaces": ["a"],
    }
    fields.update(kw)
    return Network(**fields, runner=runner or FakeRunner(strict=True))


def argvs(steps: list[Any], side: str = "do") -> list[list[tuple[str, ...]]]:
    return [[tuple(c.host_argv()) for c in getattr(s, side)] for s in steps]


# --- the plan ---------------------------------------------------------------------------------


def test_small_dual_plan_exact_commands() -> None:
    steps = small6().plan()
    assert argvs(steps) == [
        [("ip", "netns", "add", "a")],
        [("ip", "-n", "a", "link", "set", "lo", "up", "alias", "netnskit:t6")],
        [("ip", "link", "add", "name", "br-t6", "group", str(G), "up", "type", "bridge", "mcast_snooping", "0")],
        [("ip", "link", "set", "br-t6", "alias", "netnskit:t6")],
        [("ip", "addr", "add", "10.9.0.1/24", "dev", "br-t6")],
        [("ip", "addr", "add", "fd15::1/64", "dev", "br-t6", "nodad")],
        [("sysctl", "-w", "net/ipv4/conf/br-t6/forwarding=1")],
        [("sysctl", "-w", "net/ipv6/conf/br-t6/forwarding=1")],
        [
            ("ip", "link", "add", "veth-a", "group", str(G), "up", "master", "br-t6", "type", "veth")
            + ("peer", "name", "eth0", "netns", "a")
        ],
        # IPv6 configured: link-local addresses on the veth ends, as an IPv6 host has (cost measured: README)
        [("ip", "link", "set", "veth-a", "alias", "netnskit:t6")],
        [("ip", "-n", "a", "link", "set", "eth0", "up")],
        [("ip", "-n", "a", "addr", "add", "10.9.0.2/24", "dev", "eth0")],
        [("ip", "-n", "a", "addr", "add", "fd15::2/64", "dev", "eth0", "nodad")],
        [("ip", "-n", "a", "route", "add", "default", "via", "10.9.0.1")],
        [("ip", "-n", "a", "-6", "route", "add", "default", "via", "fd15::1")],
        [
            ("mkdir", "-p", "--", "/etc/netns/a"),
            ("tee", "--", "/etc/netns/a/hosts"),
            ("chmod", "0644", "--", "/etc/netns/a/hosts"),
        ],
        [("iptables-restore", "-w", "10", "--noflush")],
        [("ip6tables-restore", "-w", "10", "--noflush")],
        [("sysctl", "-w", "net.ipv6.conf.all.forwarding=1")],
    ]
    undo = argvs(steps, "undo")
    assert undo[5] == [("ip", "addr", "del", "fd15::1/64", "dev", "br-t6")]
    assert undo[12] == [("ip", "-n", "a", "addr", "del", "fd15::2/64", "dev", "eth0")]
    assert undo[14] == [("ip", "-n", "a", "-6", "route", "del", "default", "via", "fd15::1")]
    assert undo[-1] == [("sysctl", "-w", "net.ipv6.conf.all.forwarding=0")]
    # the bridge's accept through ip6tables, the replies of routed IPv6 (no uplink in a plan for a
    # clean host), and the value forwarding had, carried in the plan itself
    assert steps[-2].do[0].input == (
        "*filter\n-N NETNSKIT-FORWARD\n-N NETNSKIT-STATE\n-N NETNSKIT-USER\n"
        "-A NETNSKIT-FORWARD -i br-t6 -o br-t6 -m comment --comment netnskit:t6 -j ACCEPT\n"
        "-A NETNSKIT-FORWARD -d fd15::/64 -o br-t6 -m conntrack --ctstate RELATED,ESTABLISHED "
        "-m comment --comment netnskit:t6 -j ACCEPT\n"
        '-A NETNSKIT-STATE -m comment --comment "netnskit sysctl net.ipv6.conf.all.forwarding=0"\n'
        "-I NETNSKIT-FORWARD -m comment --comment netnskit -j NETNSKIT-USER\n"
        "-I FORWARD -m comment --comment netnskit -j NETNSKIT-FORWARD\nCOMMIT\n"
    )


def test_ipv4_only_plan_has_no_ipv6_step() -> None:
    text = Network.from_toml(SEED, runner=FakeRunner(strict=True)).render_script()
    assert "ip6tables" not in text and "nodad" not in text and "ipv6" not in text


def test_masquerade6_and_forwards_over_ipv6_exact_rules() -> None:
    net = small6(masquerade6=True, port_forwards=[{"host_port": 8080, "netns": "a", "port": 80}], links=[])
    six = next(s for s in net.plan() if s.do[0].host_argv()[0] == "ip6tables-restore")
    assert six.do[0].input == (
        "*nat\n-N NETNSKIT-PREROUTING\n-N NETNSKIT-OUTPUT\n-N NETNSKIT-POSTROUTING\n"
        "-A NETNSKIT-POSTROUTING -s fd15::/64 ! -o br-t6 -m comment --comment netnskit:t6 -j MASQUERADE\n"
        "-A NETNSKIT-PREROUTING -p tcp -m tcp --dport 8080 -m comment --comment netnskit:t6 -j DNAT "
        "--to-destination [fd15::2]:80\n"
        "-A NETNSKIT-OUTPUT -p tcp -m tcp --dport 8080 -m comment --comment netnskit:t6 -j DNAT "
        "--to-destination [fd15::2]:80\n"
        "-A NETNSKIT-POSTROUTING -s fd15::/64 -d fd15::2/128 -o br-t6 -p tcp -m tcp --dport 80 -m conntrack "
        "--ctstate DNAT --ctorigdstport 8080 -m comment --comment netnskit:t6 -j MASQUERADE\n"
        "-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment netnskit -j NETNSKIT-PREROUTING\n"
        "-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment netnskit -j NETNSKIT-OUTPUT\n"
        "-A POSTROUTING -m comment --comment netnskit -j NETNSKIT-POSTROUTING\nCOMMIT\n"
        "*filter\n-N NETNSKIT-FORWARD\n-N NETNSKIT-STATE\n-N NETNSKIT-USER\n"
        "-A NETNSKIT-FORWARD -i br-t6 -o br-t6 -m comment --comment netnskit:t6 -j ACCEPT\n"
        "-A NETNSKIT-FORWARD -d fd15::/64 -o br-t6 -m conntrack --ctstate RELATED,ESTABLISHED "
        "-m comment --comment netnskit:t6 -j ACCEPT\n"
        "-A NETNSKIT-FORWARD -d fd15::2/128 -o br-t6 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT "
        "--ctorigdstport 8080 -m comment --comment netnskit:t6 -j ACCEPT\n"
        "-A NETNSKIT-FORWARD -s fd15::2/128 -i br-t6 -p tcp -m tcp --sport 80 -m conntrack --ctstate DNAT "
        "--ctorigdstport 8080 -m comment --comment netnskit:t6 -j ACCEPT\n"
        '-A NETNSKIT-STATE -m comment --comment "netnskit sysctl net.ipv6.conf.all.forwarding=0"\n'
        "-I NETNSKIT-FORWARD -m comment --comment netnskit -j NETNSKIT-USER\n"
        "-I FORWARD -m comment --comment netnskit -j NETNSKIT-FORWARD\nCOMMIT\n"
    )
    # no loopback forward over IPv6 (the kernel cannot forward ::1): no raw guard, no route_localnet
    assert "::1" not in six.do[0].input and "*raw" not in six.do[0].input


def test_a_forward_bound_to_an_address_is_of_that_family_only() -> None:
    forwards = [
        {"host_port": 80, "netns": "a", "host_address": "10.9.0.1"},
        {"host_port": 81, "netns": "a", "host_address": "fd15::1"},
        {"host_port": 82, "netns": "a"},
    ]
    net = small6(port_forwards=forwards)
    assert [(f.host_port[0], str(f.destination)) for f in net.forward_rules()] == [(80, "10.9.0.2"), (82, "10.9.0.2")]
    assert [(f.host_port[0], str(f.destination)) for f in net.forward_rules6()] == [(81, "fd15::2"), (82, "fd15::2")]


def test_links_routes_and_routers_get_ipv6() -> None:
    net = small6(
        extra_namespaces=[{"name": "lan", "forwarding": True}],
        links=[
            {
                "name": "v-lan",
                "peer": "eth0",
                "peer_netns": "lan",
                "address": "192.168.1.2/24",
                "address6": "fd16::2/64",
                "peer_address6": "fd16::3/64",
            }
        ],
        routes=[
            {"netns": "lan", "to": "fd15::/64", "via": "fd16::2"},
            {"netns": "lan", "to": "default", "dev": "eth0"},
        ],
    )
    commands = [c for s in net.plan() for c in s.do]
    flat = [tuple(c.host_argv()) for c in commands]
    in_lan = ("ip", "netns", "exec", "lan")
    assert in_lan + ("sysctl", "-w", "net.ipv6.conf.all.forwarding=1") in flat
    assert ("ip", "addr", "add", "fd16::2/64", "dev", "v-lan", "nodad") in flat
    assert ("ip", "-n", "lan", "addr", "add", "fd16::3/64", "dev", "eth0", "nodad") in flat
    assert ("sysctl", "-w", "net/ipv6/conf/v-lan/forwarding=1") in flat
    assert ("ip", "-n", "lan", "-6", "route", "add", "fd15::/64", "via", "fd16::2") in flat
    # "default" by device alone: the default of each family the network has
    assert ("ip", "-n", "lan", "route", "add", "default", "dev", "eth0") in flat
    assert ("ip", "-n", "lan", "-6", "route", "add", "default", "dev", "eth0") in flat


def test_route_per_family() -> None:
    both = RouteSpec("default", via="203.0.113.1", via6="2001:db8::1")
    assert [(r.version, str(r.via)) for r in both.per_family(True)] == [(4, "203.0.113.1"), (6, "2001:db8::1")]
    assert [(r.version, str(r.via)) for r in RouteSpec("default", via="fd16::2").per_family(True)] == [(6, "fd16::2")]
    by_dev = RouteSpec("default", dev="eth0")
    assert [r.version for r in by_dev.per_family(True)] == [4, 6]
    assert [r.version for r in by_dev.per_family(False)] == [4]
    assert [r.version for r in RouteSpec("fd15::/64", via="fd16::2").per_family(True)] == [6]


def test_seed_dual_loads_and_allocates() -> None:
    net = Network.from_toml(DUAL, runner=FakeRunner(strict=True))
    assert net.dual and str(net.gateway6_interface) == "fd15::5/64" and not net.masquerade6
    assert {n: str(a) for n, a in net.addresses6().items()} == {
        "red": "fd15::1/64",
        "blue": "fd15::2/64",
        "orange": "fd15::3/64",
        "gray": "fd15::4/64",
    }
    # the seed's IPv4 half is the seed's
    seed = Network.from_toml(SEED, runner=FakeRunner(strict=True))
    assert net.addresses() == seed.addresses()


def test_addresses6_allocated_in_order_skipping_gateway_and_given() -> None:
    net = small6(namespaces=["a", {"name": "b", "address6": "fd15::2"}, "c"])
    assert {n: str(a) for n, a in net.addresses6().items()} == {"a": "fd15::3/64", "b": "fd15::2/64", "c": "fd15::4/64"}


# --- validation -------------------------------------------------------------------------------

BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"subnet6": "10.8.0.0/24"}, "subnet6", "must be an IPv6 subnet"),
    ({"subnet6": "fe80::/64", "gateway6": "fe80::1"}, "subnet6", "fe80::/10 (link-local)"),
    ({"subnet6": "ff02::/64", "gateway6": "ff02::1"}, "subnet6", "ff00::/8 (multicast)"),
    ({"subnet6": "::/0", "gateway6": "fd15::1"}, "subnet6", "it overlaps ::1/128 (loopback)"),
    ({"subnet6": "::1/128", "gateway6": "::1"}, "subnet6", "must be a global or unique-local"),
    ({"gateway6": "fd16::1"}, "gateway6", "must be a host address inside subnet6 fd15::/64"),
    ({"gateway6": "fd15::"}, "gateway6", "subnet-router anycast"),
    ({"gateway6": "10.9.0.1"}, "gateway6", "must be IPv6"),
    ({"gateway6": None}, "gateway6", "must be given with subnet6"),
    ({"subnet6": None}, "gateway6", "needs subnet6 beside it"),
    ({"subnet6": None, "gateway6": None, "masquerade6": True}, "masquerade6", "needs [network] subnet6"),
    ({"namespaces": [{"name": "a", "address6": "fd16::2"}]}, "address6", "must be a host address in subnet6"),
    ({"namespaces": [{"name": "a", "address6": "fd15::2/80"}]}, "address6", "must carry subnet6's prefix /64"),
    ({"namespaces": [{"name": "a", "address6": "fd15::1"}]}, "address6", "is already used"),
    ({"namespaces": [{"name": "a", "address6": "10.9.0.9"}]}, "address6", "must be IPv6"),
    (
        {"subnet6": None, "gateway6": None, "namespaces": [{"name": "a", "address6": "fd15::2"}]},
        "address6",
        "needs [network] subnet6 and gateway6",
    ),
    (
        {"links": [{"name": "v-l", "peer": "eth0", "peer_netns": "a", "address6": "fd16::2"}]},
        "link address6",
        "must be ADDRESS/PREFIX",
    ),
    (
        {"links": [{"name": "v-l", "peer": "eth1", "peer_netns": "a", "address6": "fd15::8/64"}]},
        "link address6",
        "overlaps fd15::/64 on the host",
    ),
    (
        {"links": [{"name": "v-l", "peer": "eth1", "peer_netns": "a", "peer_address6": "fe80::2/64"}]},
        "link address6",
        "fe80::/10",
    ),
    ({"routes": [{"to": "fd17::/64", "via": "fd16::9"}]}, "route gateway", "is not on a subnet connected to"),
    ({"routes": [{"to": "fd17::/64", "via": "10.9.0.7"}]}, "route via", "must be IPv6 like its destination"),
    ({"routes": [{"to": "fd17::/64", "via6": "fd15::7"}]}, "route via6", "is for a default route only"),
    (
        {"subnet6": None, "gateway6": None, "routes": [{"to": "fd17::/64", "dev": "br-t6"}]},
        "route",
        "the network has no subnet6",
    ),
    ({"port_forwards": [{"host_port": 80, "netns": "a", "host_address": "::1"}]}, "host address", "::1"),
]


@pytest.mark.parametrize(("fields", "what", "rule"), BAD, ids=[f"{w}-{i}" for i, (_, w, _) in enumerate(BAD)])
def test_validation_names_the_key_and_the_rule(fields: dict[str, Any], what: str, rule: str) -> None:
    fake = FakeRunner(strict=True)  # no command may run: refused before any
    with pytest.raises(ValidationError) as caught:
        small6(fake, **fields)
    assert caught.value.what == what, str(caught.value)
    assert rule in caught.value.rule, str(caught.value)
    assert fake.argvs == []


def toml_dual(**network: object) -> dict[str, Any]:
    data: dict[str, Any] = {
        "network": {
            "name": "t6",
            "bridge": "br-t6",
            "subnet": "10.9.0.0/24",
            "gateway": "10.9.0.1",
            "subnet6": "fd15::/64",
            "gateway6": "fd15::1",
        },
        "namespace": [{"name": "a"}],
    }
    data["network"].update(network)
    return data


@pytest.mark.parametrize(
    ("change", "key", "rule"),
    [
        ({"subnet6": "10.8.0.0/24"}, "network.subnet6", "must be an IPv6 subnet"),
        ({"gateway6": "fd99::1"}, "network.gateway6", "inside subnet6"),
        ({"masquerade6": "yes"}, "network.masquerade6", "must be true or false"),
    ],
)
def test_toml_errors_name_the_key(change: dict[str, object], key: str, rule: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Network.from_dict(toml_dual(**change), source="dual.toml", runner=FakeRunner(strict=True))
    assert caught.value.key == key and rule in str(caught.value), str(caught.value)


def test_toml_namespace_and_link_keys() -> None:
    data = toml_dual()
    data["namespace"] = [{"name": "a", "address6": "fd15::9/48"}]
    with pytest.raises(ConfigError) as caught:
        Network.from_dict(data, source="dual.toml", runner=FakeRunner(strict=True))
    assert caught.value.key == "namespace[0].address6" and "/64" in str(caught.value)
    data = toml_dual()
    data["link"] = [{"name": "v-l", "peer": "eth1", "peer_netns": "a", "peer_address6": "fd16::3"}]
    with pytest.raises(ConfigError) as caught:
        Network.from_dict(data, source="dual.toml", runner=FakeRunner(strict=True))
    assert caught.value.key == "link[0].peer_address6"
    data = toml_dual()
    data["route"] = [{"to": "fd17::/64", "via6": "fd15::4"}]
    with pytest.raises(ConfigError) as caught:
        Network.from_dict(data, source="dual.toml", runner=FakeRunner(strict=True))
    assert caught.value.key.startswith("route[0]") and "default route only" in str(caught.value)


# --- reading the kernel -----------------------------------------------------------------------


def test_ipv6_state_read_beside_ipv4_and_a_done_network_has_nothing_missing() -> None:
    fake = FakeRunner()
    net = small6(fake)
    up = ["UP", "LOWER_UP"]
    host_links = [
        {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP"]},
        {"ifindex": 2, "ifname": "br-t6", "group": str(G), "ifalias": "netnskit:t6", "flags": up},
        {"ifindex": 3, "ifname": "veth-a", "group": str(G), "ifalias": "netnskit:t6", "flags": up, "link_netnsid": 0},
    ]

    def batch(where: str | None, family: str, *lists: list[dict[str, object]]) -> None:
        prefix = ["ip"] if where is None else ["ip", "-n", where]
        fake.on([*prefix, family, "-j", "-batch", "-"], stdout="\n".join(json.dumps(x) for x in lists) + "\n")

    def addr(ifname: str, family: str, local: str, prefix: int, scope: str = "global") -> dict[str, object]:
        return {
            "ifname": ifname,
            "addr_info": [{"family": family, "local": local, "prefixlen": prefix, "scope": scope}],
        }

    fake.on(["ip", "-j", "netns", "list"], stdout=json.dumps([{"name": "a", "id": 0}]))
    batch(
        None, "-4", host_links, [addr("br-t6", "inet", "10.9.0.1", 24)], [], [{"interface": "br-t6", "forwarding": 1}]
    )
    batch(
        None,
        "-6",
        [addr("br-t6", "inet6", "fd15::1", 64), addr("br-t6", "inet6", "fe80::1", 64, "link")],
        [],
        [{"interface": "br-t6", "forwarding": 1}],
    )
    a_links = [
        {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP"], "ifalias": "netnskit:t6"},
        {"ifindex": 2, "ifname": "eth0", "flags": up},
    ]
    batch("a", "-4", a_links, [addr("eth0", "inet", "10.9.0.2", 24)], [{"dst": "default", "gateway": "10.9.0.1"}], [])
    batch("a", "-6", [addr("eth0", "inet6", "fd15::2", 64)], [{"dst": "default", "gateway": "fd15::1"}], [])
    facts = net._facts()
    assert facts.addresses[None] == {("br-t6", "10.9.0.1/24"), ("br-t6", "fd15::1/64")}  # no link-local
    assert facts.routes6["a"] == {("default", "fd15::1")}
    assert facts.forwarding6[None] == {"br-t6": True}
    done = {step.description for step, ok in net._entries() if ok(facts)}
    assert {
        "give the host the IPv6 gateway address fd15::1/64 on br-t6",
        "enable IPv6 forwarding on br-t6",
        "address a's eth0 as fd15::2/64",
        "route default via fd15::1 in a",
    } <= done
    missing = [step.description for step, ok in net._entries() if not ok(facts)]
    assert missing == ["write hosts under /etc/netns for a"]  # (not scripted here): every IPv6 step is done


# --- check ------------------------------------------------------------------------------------


def test_check_plan_pings_and_forwards_over_both_families() -> None:
    net = Network.from_toml(DUAL, runner=FakeRunner(strict=True))
    plan = plan_check(net)
    red = next(p for p in plan.pings if p.source == "red")
    assert [(ns, str(a)) for ns, a in red.targets] == [
        (None, "192.168.15.5"),
        ("blue", "192.168.15.2"),
        ("orange", "192.168.15.3"),
        (None, "fd15::5"),
        ("blue", "fd15::2"),
        ("orange", "fd15::3"),
    ]
    assert [(s, str(a), p) for s, _, a, p, _ in plan.forwards] == [
        (None, "192.168.15.5", 80),
        ("lan", "192.168.1.2", 80),
        (None, "fd15::5", 80),
        ("lan", "fd16::2", 80),
    ]
    assert all(a.version == 4 for _, _, a in plan.nat)  # masquerade6 is off: no IPv6 NAT probe
    six = plan_check(Network.from_dict({**_toml(DUAL), "network": {**_toml(DUAL)["network"], "masquerade6": True}}))
    assert sorted(str(a) for _, _, a in six.nat if a.version == 6) == ["2001:db8:113::10"] * 2 + ["fd16::3"] * 2


def _toml(path: Path) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(path.read_text())


def test_probe_icmpv6_echo_and_its_answers() -> None:
    assert probe.echo_request6(0x1234, 2) == struct.pack("!BBHHH", 128, 0, 0, 0x1234, 2) + b"netnskit-probe"
    reply = struct.pack("!BBHHH", 129, 0, 0xBEEF, 0x1234, 2) + b"netnskit-probe"
    assert probe.parse_icmp6(reply, "fd15::2") == ("reply", 0x1234, "fd15::2", "")
    # a router's "address unreachable": its ICMPv6 carries our packet (IPv6 header, then our echo)
    inner = struct.pack("!IHBB", 0x60000000, 22, 58, 64) + socket.inet_pton(socket.AF_INET6, "fd15::1")
    inner += socket.inet_pton(socket.AF_INET6, "fd15::9") + probe.echo_request6(0x1234, 1)
    unreachable = struct.pack("!BBHI", 1, 3, 0, 0) + inner
    assert probe.parse_icmp6(unreachable, "fd15::5") == (
        "unreachable",
        0x1234,
        "fd15::9",
        "From fd15::5: Address unreachable",
    )
    assert probe.parse_icmp6(struct.pack("!BBHI", 135, 0, 0, 0), "fe80::1") is None  # not ours
    assert probe.parse_icmp6(b"\x81", "fd15::2") is None


def test_probe_reads_an_ipv6_neighbour_message() -> None:
    address = socket.inet_pton(socket.AF_INET6, "fd15::3")
    body = struct.pack("=BBHiHBB", socket.AF_INET6, 0, 0, 1, 0x02, 0, 0) + struct.pack("=HH", 20, 1) + address
    assert probe._neighbour(body) == (("fd15::3", "lo"), True)
    incomplete = struct.pack("=BBHiHBB", socket.AF_INET6, 0, 0, 1, 0x01, 0, 0) + struct.pack("=HH", 20, 1) + address
    assert probe._neighbour(incomplete) == (("fd15::3", "lo"), False)
    assert probe._neighbour(body[:12]) is None


def test_a_ping_round_sends_ipv6_targets_to_the_probe_and_reads_its_answers() -> None:
    from netnskit.network.check import _ping_round

    fake = FakeRunner()
    net = small6(fake, namespaces=["a", "b"])
    lines = [
        {"source": "a", "target": "10.9.0.1", "ok": True, "outcome": "reply", "tries": 1},
        {"source": "a", "target": "10.9.0.3", "ok": True, "outcome": "reply", "tries": 1},
        {"source": "a", "target": "fd15::1", "ok": True, "outcome": "reply", "tries": 1},
        {"source": "a", "target": "fd15::3", "ok": False, "outcome": "no reply", "tries": 3, "detail": "lost"},
    ]
    fake.on(re.compile(r".*probe\.py ping "), stdout="".join(json.dumps(x) + "\n" for x in lines))
    pings = [p for p in plan_check(net, peers=1).pings if p.source == "a"]
    probes, _ = _ping_round(net, pings, 1.0, 3)
    assert fake.argvs[-1][-1] == "a=10.9.0.1,10.9.0.3,fd15::1,fd15::3"
    assert [(p.target, p.ok) for p in probes] == [
        ("10.9.0.1", True),
        ("10.9.0.3", True),
        ("fd15::1", True),
        ("fd15::3", False),
    ]


def test_readme_dual_stack_block_is_part_of_the_seed_dual_file() -> None:
    import tomllib

    block = readme_block("toml", "examples/seed-dual.toml, in part")
    shown, real = tomllib.loads(block), _toml(DUAL)
    assert shown["network"].items() <= real["network"].items()
    for kind in ("namespace", "link", "route"):
        for table in shown[kind]:
            assert any(table.items() <= other.items() for other in real[kind]), (kind, table)


# --- the firewall backend of a dual-stack network --------------------------------------------


DUAL_NFT_TABLE = """\
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local tcp dport 80 dnat ip to 192.168.15.2:80
		fib daddr type local meta nfproto ipv6 tcp dport 80 dnat ip6 to [fd15::2]:80
	}
"""

DUAL_NFT_FORWARD = """\
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "v-net-0" oifname "v-net-0" accept
		ip saddr 192.168.15.0/24 iifname "v-net-0" oifname "v-lan" accept
		ip daddr 192.168.15.0/24 oifname "v-net-0" ct state established,related accept
		ip daddr 192.168.15.2 oifname "v-net-0" tcp dport 80 ct status dnat ct original proto-dst 80 accept
		ip saddr 192.168.15.2 iifname "v-net-0" tcp sport 80 ct status dnat ct original proto-dst 80 accept
		meta nfproto ipv6 iifname "v-net-0" oifname "v-net-0" accept
		ip6 saddr fd15::/64 iifname "v-net-0" oifname "v-lan" accept
		ip6 daddr fd15::/64 oifname "v-net-0" ct state established,related accept
		ip6 daddr fd15::2 oifname "v-net-0" tcp dport 80 ct status dnat ct original proto-dst 80 accept
		ip6 saddr fd15::2 iifname "v-net-0" tcp sport 80 ct status dnat ct original proto-dst 80 accept
	}
"""


def test_a_dual_stack_network_on_nftables_has_both_families_in_its_one_table() -> None:
    fake = FakeRunner(strict=True)
    data = tomllib.loads(DUAL.read_text())
    data["network"]["firewall"] = "nftables"
    net = Network.from_dict(data, runner=fake)
    steps = net.plan()
    (table,) = [s for s in steps if s.description.startswith("nft table inet netnskit-seed")]
    (do,) = table.do
    assert do.argv == ("nft", "-f", "-")
    text = do.input or ""
    # IPv4 as an IPv4-only network has it; IPv6 beside it, named where no address says so
    assert DUAL_NFT_TABLE in text and DUAL_NFT_FORWARD in text
    hairpins = [line.strip() for line in text.splitlines() if "ct status dnat" in line and "masquerade" in line]
    assert hairpins[-1] == (
        'ip6 saddr fd15::/64 ip6 daddr fd15::2 oifname "v-net-0" tcp dport 80 ct status dnat '
        "ct original proto-dst 80 masquerade"
    )
    # IPv6 forwarding is the network's too, after its table; nothing goes through ip6tables
    assert [s.description for s in steps[-3:]] == [
        "set net.ipv4.ip_forward=1 (was 0)",
        "set net.ipv4.conf.v-net-0.route_localnet=1 (was 0)",
        "set net.ipv6.conf.all.forwarding=1 (was 0)",
    ]
    assert not any(c.argv[0].startswith("ip6tables") for s in steps for c in [*s.do, *s.undo])
    assert fake.argvs == []


def test_auto_chooses_for_a_dual_stack_network_as_for_any_other() -> None:
    fake = FakeRunner()
    fake.on(["nft", "--version"], stdout="nftables v1.0.6 (Lester Gooch #5)\n")
    fake.fail(["cat", "/proc/net/ip_tables_names"], "cat: No such file or directory\n")
    fake.fail(["cat", "/proc/net/ip6_tables_names"], "cat: No such file or directory\n")
    data = tomllib.loads(DUAL.read_text())
    data["network"]["firewall"] = "auto"
    choice = Network.from_dict(data, runner=fake).firewall_choice()
    assert (choice.kind, choice.reason) == ("nftables", "auto: nft is installed and no iptables-legacy rules exist")


def test_link_local_can_be_turned_off_for_a_dual_stack_network() -> None:
    steps = attrs.evolve(small6(), ipv6_link_local=False).plan()
    assert argvs(steps)[9:11] == [
        [("ip", "link", "set", "veth-a", "alias", "netnskit:t6", "addrgenmode", "none", "up")],
        [("ip", "-n", "a", "link", "set", "eth0", "addrgenmode", "none", "up")],
    ]
    assert small6().ipv6_link_local is None and small6().link_local  # unset: on, as IPv6 is configured
    four = Network.from_toml(SEED, runner=FakeRunner(strict=True))
    assert four.ipv6_link_local is None and not four.link_local  # IPv4 only: off


def test_hosts_files_name_every_node_by_both_families_nearest_first() -> None:
    net = Network.from_toml(DUAL, runner=FakeRunner(strict=True))
    red = net.hosts_file("red").splitlines()
    assert red[4:10] == [
        "192.168.15.5\thost gateway",
        "fd15::5\thost gateway",
        "192.168.1.2\thost",
        "fd16::2\thost",
        "192.168.15.1\tred",
        "fd15::1\tred",
    ]
    assert "2001:db8:113::10\tinternet" in red
    # from the LAN, the host's LAN addresses come first; address_of stays IPv4
    assert net.hosts_file("lan").splitlines()[4:6] == ["192.168.1.2\thost", "fd16::2\thost"]
    assert str(net.address_of("blue", seen_from="lan")) == "192.168.15.2"
    # an IPv4-only network's files are as before: no IPv6 line but ::1's
    seed = Network.from_toml(SEED, runner=FakeRunner(strict=True))
    lines = seed.hosts_file("red").splitlines()[2:]  # after the mark and the comment
    assert [line for line in lines if ":" in line.split("\t")[0]] == ["::1\tlocalhost ip6-localhost ip6-loopback"]

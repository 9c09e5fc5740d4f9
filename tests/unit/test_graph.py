"""The picture of a network: the seed's Mermaid and DOT as text, escaping, the status and check overlays, SVG."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from ipaddress import ip_interface
from pathlib import Path

import pytest

from netnskit import graph
from netnskit.cli import main
from netnskit.errors import CommandError, CommandNotFoundError, ValidationError
from netnskit.firewall import SavedRules
from netnskit.link import AddressInfo, LinkInfo, RouteInfo
from netnskit.network import CheckReport, NamespaceStatus, Network, NetworkStatus, Probe
from netnskit.pytest_plugin import live_required
from netnskit.runner import LiveRunner
from netnskit.testing import FakeRunner

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed.toml"
SAVED = Path(__file__).resolve().parent / "expected" / "seed_iptables_save.txt"  # iptables-save of the seed, up


def seed() -> Network:
    return Network.from_toml(SEED, runner=FakeRunner(strict=True))


# --- the seed as text ---------------------------------------------------------------------------

SEED_MERMAID_NODES = [
    'host[["host<br/>gateway 192.168.15.5/24<br/>203.0.113.0/24 via 192.168.1.3"]]',
    'bridge["bridge v-net-0<br/>192.168.15.0/24"]',
    'ns0_red(["red"])',
    'ns1_blue(["blue"])',
    'ns2_orange(["orange"])',
    'ns3_gray(["gray"])',
    'ns4_lan(["lan<br/>router (ip_forward)"])',
    'ns5_internet(["internet<br/>default via 203.0.113.1"])',
    'nat{{"NAT<br/>192.168.15.0/24 out of the host<br/>(not by v-net-0)"}}',
]
SEED_MERMAID_EDGES = [
    'host ---|"v-net-0: 192.168.15.5/24"| bridge',
    'bridge ---|"v-net-0: veth-red<br/>red: eth0 192.168.15.1/24"| ns0_red',
    'bridge ---|"v-net-0: veth-blue<br/>blue: eth0 192.168.15.2/24"| ns1_blue',
    'bridge ---|"v-net-0: veth-orange<br/>orange: eth0 192.168.15.3/24"| ns2_orange',
    'bridge ---|"v-net-0: veth-gray<br/>gray: eth0 192.168.15.4/24"| ns3_gray',
    'host ---|"host: v-lan 192.168.1.2/24<br/>lan: eth0 192.168.1.3/24"| ns4_lan',
    'ns4_lan ---|"lan: wan 203.0.113.1/24<br/>internet: eth0 203.0.113.10/24"| ns5_internet',
    'host -.-|"masquerade"| nat',
    'host -.->|"port forward tcp 80 → blue:80"| ns1_blue',
]


def test_seed_mermaid_names_every_node_and_edge() -> None:
    text = graph.mermaid(seed())
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0] == "flowchart LR"
    assert [line for line in lines if re.match(r"\w+(\[|\(|\{)", line)] == SEED_MERMAID_NODES
    assert [line for line in lines if " ---" in line or " -.-" in line] == SEED_MERMAID_EDGES
    # no overlay asked: no colours, no legend
    assert "classDef" not in text and "linkStyle" not in text and "legend" not in text


SEED_DOT_NODES = [
    '"host" [label="host\\ngateway 192.168.15.5/24\\n203.0.113.0/24 via 192.168.1.3", shape="box3d"];',
    '"bridge" [label="bridge v-net-0\\n192.168.15.0/24", shape="box", style="bold"];',
    '"ns0_red" [label="red", shape="box", style="rounded"];',
    '"ns1_blue" [label="blue", shape="box", style="rounded"];',
    '"ns2_orange" [label="orange", shape="box", style="rounded"];',
    '"ns3_gray" [label="gray", shape="box", style="rounded"];',
    '"ns4_lan" [label="lan\\nrouter (ip_forward)", shape="box", style="rounded"];',
    '"ns5_internet" [label="internet\\ndefault via 203.0.113.1", shape="box", style="rounded"];',
    '"nat" [label="NAT\\n192.168.15.0/24 out of the host\\n(not by v-net-0)", shape="hexagon"];',
]
SEED_DOT_EDGES = [
    '"host" -> "bridge" [label="v-net-0: 192.168.15.5/24"];',
    '"bridge" -> "ns0_red" [label="v-net-0: veth-red\\nred: eth0 192.168.15.1/24"];',
    '"bridge" -> "ns1_blue" [label="v-net-0: veth-blue\\nblue: eth0 192.168.15.2/24"];',
    '"bridge" -> "ns2_orange" [label="v-net-0: veth-orange\\norange: eth0 192.168.15.3/24"];',
    '"bridge" -> "ns3_gray" [label="v-net-0: veth-gray\\ngray: eth0 192.168.15.4/24"];',
    '"host" -> "ns4_lan" [label="host: v-lan 192.168.1.2/24\\nlan: eth0 192.168.1.3/24"];',
    '"ns4_lan" -> "ns5_internet" [label="lan: wan 203.0.113.1/24\\ninternet: eth0 203.0.113.10/24"];',
    '"host" -> "nat" [label="masquerade", style="dotted"];',
    '"host" -> "ns1_blue" [label="port forward tcp 80 → blue:80", style="dashed", dir="forward", '
    'color="#1565c0", fontcolor="#1565c0"];',
]


def test_seed_dot_names_every_node_and_edge() -> None:
    text = graph.dot(seed())
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0] == 'digraph "seed" {' and lines[-1] == "}"
    assert [line for line in lines if re.match(r'"\w+" \[', line)] == SEED_DOT_NODES
    assert [line for line in lines if " -> " in line] == SEED_DOT_EDGES


def test_without_masquerade_or_forwards_there_is_no_nat_and_no_forward() -> None:
    net = Network("plain", "br0", "10.0.0.0/24", "10.0.0.1", namespaces=["a"], runner=FakeRunner())
    text = graph.mermaid(net)
    assert "NAT" not in text and "forward" not in text
    assert "nat" not in graph.dot(net)
    assert [e.key for e in graph.topology(net).edges] == ["gateway", "veth:a"]


def test_a_port_range_and_udp_are_drawn_as_such() -> None:
    net = Network(
        "ranges",
        "br0",
        "10.0.0.0/24",
        "10.0.0.1",
        namespaces=["a"],
        port_forwards=[{"host_port": "9000-9010", "netns": "a", "port": "8000-8010", "protocol": "udp"}],
        runner=FakeRunner(),
    )
    assert graph.topology(net).edge("forward:0").lines == ("port forward udp 9000-9010 → a:8000-8010",)


# --- escaping -------------------------------------------------------------------------------------


def odd() -> Network:
    # names that read alike once made safe, Mermaid's words, and its edge heads ("o", "x" after "---")
    names = ["a.b", "a-b", "a_b", "end", "o", "x", "graph"]
    return Network(
        "odd.net-1_x",
        "br.0-x_1",
        "10.9.0.0/24",
        "10.9.0.1",
        namespaces=[{"name": n, "host_ifname": f"v{i}.x-y_z"} for i, n in enumerate(names)],
        extra_namespaces=["ext.1-a_b"],
        links=[{"name": "up.link-1", "peer": "e.0-1", "peer_netns": "ext.1-a_b", "address": "10.8.0.1/30"}],
        runner=FakeRunner(),
    )


def test_ids_are_derived_and_distinct_labels_keep_the_names() -> None:
    topo = graph.topology(odd())
    ids = [n.id for n in topo.nodes]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", i) for i in ids)
    assert ids[2:] == ["ns0_a_b", "ns1_a_b", "ns2_a_b", "ns3_end", "ns4_o", "ns5_x", "ns6_graph", "ns7_ext_1_a_b"]
    assert [n.lines[0] for n in topo.nodes[2:]] == ["a.b", "a-b", "a_b", "end", "o", "x", "graph", "ext.1-a_b"]
    text = graph.mermaid(odd())
    assert 'bridge ---|"br.0-x_1: v0.x-y_z<br/>a.b: eth0 10.9.0.2/24"| ns0_a_b' in text
    assert 'host ---|"host: up.link-1 10.8.0.1/30<br/>ext.1-a_b: e.0-1"| ns7_ext_1_a_b' in text
    # every edge joins two declared ids
    declared = set(re.findall(r"^    (\w+)[\[({]", text, flags=re.M))
    for source, target in re.findall(r"^    (\w+) [-.>]+(?:\|.*\|)? (\w+)$", text, flags=re.M):
        assert {source, target} <= declared


def test_mermaid_text_escapes_what_mermaid_reads() -> None:
    assert graph.mermaid_text(['say "hi" #1 <b> & a|b `x`']) == (
        '"say #34;hi#34; #35;1 #60;b#62; #38; a#124;b #96;x#96;"'
    )
    assert graph.mermaid_text(["two", "lines"]) == '"two<br/>lines"'
    assert graph.mermaid_text(["one\nline"]) == '"one line"'  # a newline inside a line cannot break the syntax


def test_dot_text_escapes_quotes_and_backslashes() -> None:
    assert graph.dot_text(['a "b" \\N c']) == '"a \\"b\\" \\\\N c"'
    assert graph.dot_text(["one", "two"]) == '"one\\ntwo"'
    assert graph.dot_text(["x\ny"]) == '"x y"'


def test_a_hand_made_topology_with_quotes_and_newlines_stays_valid() -> None:
    node = graph.Node("n0", "namespace", "namespace:x", ('he said "end"', "a\nb"))
    topo = graph.Topology('net "1"\nx', (node,), ())
    assert (
        graph._mermaid(topo)
        == 'flowchart LR\n    %% netnskit network net "1" x\n    n0(["he said #34;end#34;<br/>a b"])\n'
    )
    assert 'label="he said \\"end\\"\\na b"' in graph._dot(topo)
    assert graph._dot(topo).startswith('digraph "net \\"1\\" x" {')


# --- the status overlay ---------------------------------------------------------------------------


def link(name: str, *, up: bool = True, operstate: str | None = None) -> LinkInfo:
    flags = ("BROADCAST", "MULTICAST", "UP", "LOWER_UP") if up else ("BROADCAST", "MULTICAST")
    state = operstate or ("UP" if up else "DOWN")
    return LinkInfo(name, 1, state, None, None, "veth", "default", flags, 1500)


def addr(dev: str, address: str) -> AddressInfo:
    return AddressInfo(dev, ip_interface(address), "global")


def route(to: str, via: str | None, dev: str) -> RouteInfo:
    return RouteInfo(to, via, dev, None, None)


def seed_rules() -> tuple[str, ...]:
    """The seed's rules as Network.status() reads them: iptables-save parsed, those with its comment."""
    saved = SavedRules.parse(4, SAVED.read_text(encoding="utf-8"))
    return tuple(f"-t {r.table} {r.line()}" for r in saved.rules if r.comment == "netnskit:seed")


def without_nat(rules: tuple[str, ...]) -> tuple[str, ...]:
    """``rules`` without the masquerade's (its MASQUERADE and the accepts naming its bridge)."""
    nat = {graph._rule_key(f"-t {r.table} {r.line()}") for r in seed().nat_rule().rules()}
    return tuple(r for r in rules if graph._rule_key(r) not in nat)


def seed_status() -> NetworkStatus:
    """The seed as it is when up, by hand (what ip -j shows)."""
    spaces = []
    for i, name in enumerate(["red", "blue", "orange", "gray"], 1):
        spaces.append(
            NamespaceStatus(
                name,
                True,
                True,
                (link("lo", operstate="UNKNOWN"), link("eth0")),
                (addr("eth0", f"192.168.15.{i}/24"),),
                (route("default", "192.168.15.5", "eth0"), route("192.168.15.0/24", None, "eth0")),
            )
        )
    spaces.append(
        NamespaceStatus(
            "lan",
            True,
            True,
            (link("eth0"), link("wan")),
            (addr("eth0", "192.168.1.3/24"), addr("wan", "203.0.113.1/24")),
        )
    )
    spaces.append(
        NamespaceStatus(
            "internet",
            True,
            True,
            (link("eth0"),),
            (addr("eth0", "203.0.113.10/24"),),
            (route("default", "203.0.113.1", "eth0"),),
        )
    )
    host_links = (link("v-net-0"), *(link(f"veth-{n}") for n in ["red", "blue", "orange", "gray"]), link("v-lan"))
    host_addresses = (addr("v-net-0", "192.168.15.5/24"), addr("v-lan", "192.168.1.2/24"))
    host_routes = (route("203.0.113.0/24", "192.168.1.3", "v-lan"),)
    return NetworkStatus("seed", True, tuple(spaces), host_links, host_addresses, host_routes, seed_rules(), ())


def states(topo: graph.Topology) -> dict[str, str | None]:
    return {**{n.key: n.state for n in topo.nodes}, **{e.key: e.state for e in topo.edges}}


def replace_namespace(status: NetworkStatus, name: str, **changes: object) -> NetworkStatus:
    import attrs

    spaces = tuple(attrs.evolve(ns, **changes) if ns.name == name else ns for ns in status.namespaces)
    return attrs.evolve(status, namespaces=spaces)


def test_the_seed_up_is_all_green() -> None:
    topo = graph.topology(seed(), status=seed_status())
    found = states(topo)
    assert found.pop("legend") is None
    assert set(found.values()) == {graph.UP}, found
    assert len(found) == 9 + 9 - 1  # every node and edge (the NAT's node and edge share "nat")
    text = graph.mermaid(seed(), status=seed_status())
    assert "    classDef up fill:#e8f5e9,stroke:#2e7d32,stroke-width:2px,color:#1b5e20" in text
    assert "    class ns0_red up" in text and "    class nat up" in text
    assert "    linkStyle 0 stroke:#2e7d32,stroke-width:2px" in text
    assert "    linkStyle 8 stroke:#2e7d32,stroke-width:2px" in text  # the forward, the last edge
    assert 'legend["green: up<br/>grey, dashed: missing<br/>red: failing"]' in text


def test_a_link_set_down_is_failing_and_the_rest_stays_up() -> None:
    import attrs

    status = seed_status()
    red = next(ns for ns in status.namespaces if ns.name == "red")
    # `ip -n red link set eth0 down`: eth0 loses UP, its routes go, the host end loses its carrier
    status = replace_namespace(status, "red", links=(red.links[0], link("eth0", up=False)), routes=())
    host_links = tuple(
        link("veth-red", operstate="LOWERLAYERDOWN") if x.name == "veth-red" else x for x in status.host_links
    )
    status = attrs.evolve(status, host_links=host_links, up=False)
    found = states(graph.topology(seed(), status=status))
    assert found["veth:red"] == graph.FAILING
    assert found["namespace:red"] == graph.FAILING  # its default route is gone
    assert {k for k, v in found.items() if v == graph.FAILING} == {"veth:red", "namespace:red"}
    dot = graph.dot(seed(), status=status)
    assert (
        '"bridge" -> "ns0_red" [label="v-net-0: veth-red\\nred: eth0 192.168.15.1/24", color="#c62828", penwidth="3"];'
        in dot
    )
    red = '"ns0_red" [label="red", shape="box", style="rounded,filled", color="#c62828", fillcolor="#ffebee"'
    assert red + ', penwidth="3"];' in dot


def test_what_is_not_there_is_missing() -> None:
    import attrs

    status = seed_status()
    status = replace_namespace(status, "internet", present=False, ours=False, links=(), addresses=(), routes=())
    lan = next(ns for ns in status.namespaces if ns.name == "lan")
    status = replace_namespace(status, "lan", links=(link("eth0"),), addresses=(addr("eth0", "192.168.1.3/24"),))
    status = attrs.evolve(status, rules=without_nat(status.rules), up=False)
    assert len(lan.links) == 2
    found = states(graph.topology(seed(), status=status))
    assert found["namespace:internet"] == graph.MISSING
    assert found["link:1"] == graph.MISSING  # the wan link: both ends gone
    assert found["nat"] == graph.MISSING
    assert found["forward:0"] == graph.UP and found["link:0"] == graph.UP
    text = graph.mermaid(seed(), status=status)
    assert "    class ns5_internet missing" in text
    assert "    linkStyle 6 stroke:#9e9e9e,stroke-width:1px,stroke-dasharray:5 5" in text
    dot = graph.dot(seed(), status=status)
    nat = '"nat" [label="NAT\\n192.168.15.0/24 out of the host\\n(not by v-net-0)", shape="hexagon"'
    assert nat + ', style="dashed,filled", color="#9e9e9e", fillcolor="#f5f5f5", fontcolor="#757575"];' in dot


def test_a_forward_with_some_of_its_rules_or_no_namespace_is_failing() -> None:
    import attrs

    status = seed_status()
    dnat = [r for r in status.rules if "-j DNAT" in r]
    assert len(dnat) == 2
    partial = attrs.evolve(status, rules=tuple(r for r in status.rules if r != dnat[0]))
    assert states(graph.topology(seed(), status=partial))["forward:0"] == graph.FAILING
    no_blue = replace_namespace(status, "blue", present=False, ours=False, links=(), addresses=(), routes=())
    found = states(graph.topology(seed(), status=no_blue))
    assert found["forward:0"] == graph.FAILING and found["namespace:blue"] == graph.MISSING
    assert found["veth:blue"] == graph.MISSING


def test_a_namespace_that_is_not_ours_is_failing() -> None:
    status = replace_namespace(seed_status(), "gray", ours=False)
    assert states(graph.topology(seed(), status=status))["namespace:gray"] == graph.FAILING


def test_rules_compare_whatever_order_iptables_save_prints_options_in() -> None:
    # iptables-save printed "-d 127.0.0.0/8 -i v-net-0" for a rule made with "-i v-net-0 -d 127.0.0.0/8"
    assert any(" -d 127.0.0.0/8 -i v-net-0 " in r for r in seed_rules())
    assert graph._rule_key("-t raw -A C -i v-net-0 -d 127.0.0.0/8 -j DROP") == graph._rule_key(
        '-t raw -A C -d 127.0.0.0/8 -i "v-net-0" -j DROP'
    )
    assert graph._rule_key("-t nat -A C ! -o br0 -s 10.0.0.0/24") != graph._rule_key(
        "-t nat -A C -o br0 -s 10.0.0.0/24"
    )


def test_status_from_a_fake_runner_with_nothing_there_is_all_missing() -> None:
    net = Network.from_toml(SEED, runner=FakeRunner())  # every read answers nothing: nothing exists
    found = states(graph.topology(net, status=net.status()))
    found.pop("legend")
    assert found.pop("host") == graph.FAILING  # the host is there, its route to the internet is not
    assert set(found.values()) == {graph.MISSING}


# --- the check overlay ----------------------------------------------------------------------------


def seed_report(failing: set[tuple[str, str, str]] = frozenset()) -> CheckReport:
    """The probes Network.check makes for the seed; those in ``failing`` (kind, source, target) failed."""
    probes = []
    addresses = {"red": "192.168.15.1", "blue": "192.168.15.2", "orange": "192.168.15.3", "gray": "192.168.15.4"}
    for name in addresses:
        for target in ["192.168.15.5", *(a for n, a in addresses.items() if n != name)]:
            probes.append(("ping", name, target))
    for port, target in ((47017, "192.168.1.3"), (47021, "203.0.113.10")):
        for i, name in enumerate(addresses):
            probes.append(("nat", name, f"{target}:{port + i}"))
    probes += [("forward", "host", "192.168.15.5:80"), ("forward", "lan", "192.168.1.2:80")]
    return CheckReport(tuple(Probe(k, s, t, (k, s, t) not in failing) for k, s, t in probes))


def test_a_check_that_passed_is_all_green_on_what_it_went_through() -> None:
    found = states(graph.topology(seed(), report=seed_report()))
    assert {k for k, v in found.items() if v == graph.UP} == {
        "gateway",
        "veth:red",
        "veth:blue",
        "veth:orange",
        "veth:gray",
        "link:0",
        "link:1",
        "nat",
        "forward:0",
    }
    assert found["namespace:red"] is None  # a check says nothing of nodes but the NAT


def test_a_check_blames_what_no_probe_got_through() -> None:
    # red cut off: every probe from or to red fails; the internet unreachable: every probe to it fails
    failing = {(k, s, t) for k, s, t in _all(seed_report()) if s == "red" or t == "192.168.15.1"}
    failing |= {(k, s, t) for k, s, t in _all(seed_report()) if t.startswith("203.0.113.10")}
    failing.add(("forward", "lan", "192.168.1.2:80"))
    found = states(graph.topology(seed(), report=seed_report(failing)))
    assert found["veth:red"] == graph.FAILING
    assert found["link:1"] == graph.FAILING  # lan <-> internet: nothing got through
    # others passed through these: the fault is elsewhere
    assert found["gateway"] == found["veth:blue"] == found["link:0"] == found["nat"] == graph.UP
    assert found["forward:0"] == graph.UP  # from the host it worked; from the LAN the path is to blame


def test_a_forward_every_probe_of_which_failed_is_failing() -> None:
    failing = {("forward", "host", "192.168.15.5:80"), ("forward", "lan", "192.168.1.2:80")}
    assert states(graph.topology(seed(), report=seed_report(failing)))["forward:0"] == graph.FAILING


def test_a_nat_probe_that_was_not_masqueraded_fails_the_nat() -> None:
    failing = {(k, s, t) for k, s, t in _all(seed_report()) if k == "nat"}
    found = states(graph.topology(seed(), report=seed_report(failing)))
    assert found["nat"] == graph.FAILING
    assert found["link:1"] == graph.FAILING  # only nat probes go to the internet
    assert found["link:0"] == graph.UP  # the forward from the LAN came through it


def test_missing_wins_over_failing_and_failing_over_up() -> None:
    import attrs

    status = attrs.evolve(seed_status(), rules=without_nat(seed_status().rules))
    failing = {(k, s, t) for k, s, t in _all(seed_report()) if k == "nat"}
    found = states(graph.topology(seed(), status=status, report=seed_report(failing)))
    assert found["nat"] == graph.MISSING
    status = replace_namespace(seed_status(), "red", links=(link("eth0", up=False),))
    failing = {(k, s, t) for k, s, t in _all(seed_report()) if s == "red"}
    found = states(graph.topology(seed(), status=status, report=seed_report(failing)))
    assert found["veth:red"] == graph.FAILING and found["veth:blue"] == graph.UP


def _all(report: CheckReport) -> list[tuple[str, str, str]]:
    return [(p.kind, p.source, p.target) for p in report.probes]


# --- SVG through dot ------------------------------------------------------------------------------


def test_svg_runs_dot_with_the_dot_text_on_stdin() -> None:
    fake = FakeRunner(strict=True).on(["dot", "-Tsvg"], stdout="<svg>seed</svg>\n")
    assert graph.svg(seed(), fake) == "<svg>seed</svg>\n"
    assert fake.argvs == [["dot", "-Tsvg"]]
    assert fake.inputs == [graph.dot(seed())]


def test_svg_where_dot_is_missing_names_the_graphviz_package() -> None:
    fake = FakeRunner().on(["dot", "-Tsvg"], returncode=127, stderr="sh: dot: not found\n")
    with pytest.raises(CommandNotFoundError) as exc:
        graph.svg(seed(), fake)
    assert (exc.value.program, exc.value.package) == ("dot", "graphviz")
    assert "apt-get install graphviz" in str(exc.value)


def test_svg_with_a_live_runner_and_no_dot_on_path_names_the_package() -> None:
    with pytest.raises(CommandNotFoundError, match="install the 'graphviz' package"):
        graph.svg(seed(), LiveRunner(env={"PATH": "/nonexistent"}))


def test_svg_when_dot_fails_raises_with_what_it_said() -> None:
    fake = FakeRunner().fail(["dot", "-Tsvg"], "Error: <stdin>: syntax error in line 1\n")
    with pytest.raises(CommandError, match="drawing the network with Graphviz failed.*syntax error"):
        graph.svg(seed(), fake)


def test_render_picks_the_format() -> None:
    assert graph.render(seed(), "mermaid") == graph.mermaid(seed())
    assert graph.render(seed(), "dot") == graph.dot(seed())
    with pytest.raises(ValidationError, match="must be one of mermaid, dot, svg"):
        graph.render(seed(), "png")
    with pytest.raises(ValidationError, match="needs a runner"):
        graph.render(seed(), "svg")


def svg_texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]


def every_label_line(topo: graph.Topology) -> list[str]:
    return [line for element in (*topo.nodes, *topo.edges) for line in element.lines]


@pytest.mark.parametrize("net", [seed, odd], ids=["seed", "odd-names"])
def test_dot_really_draws_every_label_as_svg(net) -> None:
    if shutil.which("dot") is None:
        # CI installs graphviz (.ci/run): there a missing dot is a failure, not a reason to skip
        (pytest.fail if live_required() else pytest.skip)("Graphviz's dot is not installed (apt-get install graphviz)")
    network = net()
    out = graph.svg(network, LiveRunner(), status=seed_status() if net is seed else None)
    assert out.lstrip().startswith("<?xml") and "<svg" in out
    texts = svg_texts(out)
    wanted = every_label_line(graph.topology(network))
    assert [line for line in wanted if line not in texts] == []


# --- the command line -----------------------------------------------------------------------------


def test_cli_graph_prints_mermaid_by_default(capsys) -> None:
    assert main(["graph", str(SEED)], runner=FakeRunner(strict=True)) == 0
    assert capsys.readouterr().out == graph.mermaid(seed())


def test_cli_graph_dot_to_a_file(tmp_path, capsys) -> None:
    out = tmp_path / "seed.gv"
    assert main(["graph", str(SEED), "-o", str(out)], runner=FakeRunner(strict=True)) == 0
    assert out.read_text() == graph.dot(seed())  # the format from the suffix
    assert capsys.readouterr().out == ""


def test_cli_graph_svg_runs_dot_through_the_runner(tmp_path) -> None:
    fake = FakeRunner(strict=True).on(["dot", "-Tsvg"], stdout="<svg/>\n")
    out = tmp_path / "seed.picture"
    assert main(["graph", "--format", "svg", str(SEED), "-o", str(out)], runner=fake) == 0
    assert out.read_text() == "<svg/>\n"
    assert fake.argvs == [["dot", "-Tsvg"]] and fake.inputs == [graph.dot(seed())]


def test_cli_graph_without_dot_says_which_package(capsys) -> None:
    fake = FakeRunner().on(["dot", "-Tsvg"], returncode=127)
    assert main(["graph", "--format", "svg", str(SEED)], runner=fake) == 1
    assert "install the 'graphviz' package" in capsys.readouterr().err


def test_cli_graph_status_colours_from_the_host_and_exits_3_when_not_up(capsys) -> None:
    fake = FakeRunner()  # nothing there: every read answers nothing
    assert main(["graph", "--status", str(SEED)], runner=fake) == 3
    out = capsys.readouterr().out
    assert "    class ns0_red missing" in out and "    class bridge missing" in out
    assert ["ip", "-j", "netns", "list"] in fake.argvs  # it read the host through the runner


def test_cli_status_graph_prints_the_same_coloured_picture_as_graph_status(capsys) -> None:
    assert main(["graph", "--status", str(SEED)], runner=FakeRunner()) == 3
    drawn = capsys.readouterr().out
    assert main(["status", str(SEED), "--graph"], runner=FakeRunner()) == 3
    assert capsys.readouterr().out == drawn
    assert main(["status", "--graph", "dot", str(SEED)], runner=FakeRunner()) == 3
    out = capsys.readouterr().out
    assert out.startswith('digraph "seed" {')
    assert '"ns0_red" [label="red", shape="box", style="rounded,dashed,filled", color="#9e9e9e"' in out  # missing


def test_cli_status_refuses_json_with_graph(capsys) -> None:
    assert main(["status", str(SEED), "--graph", "--json"], runner=FakeRunner()) == 2
    assert "give one of them" in capsys.readouterr().err


def test_cli_graph_rejects_an_unknown_format(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["graph", "--format", "png", str(SEED)])
    assert "invalid choice: 'png'" in capsys.readouterr().err


# --- the README shows the seed's picture ----------------------------------------------------------


def test_readme_shows_the_seeds_mermaid_as_the_code_draws_it() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## A picture of the network\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```mermaid\n(.*?)^```", section, flags=re.S | re.M)
    assert blocks == [graph.mermaid(seed())]
    assert "![The seed network, drawn by netnskit graph](docs/seed.svg)" in section


def test_docs_seed_svg_is_the_seed_drawn_by_dot() -> None:
    texts = svg_texts((ROOT / "docs" / "seed.svg").read_text(encoding="utf-8"))
    assert [line for line in every_label_line(graph.topology(seed())) if line not in texts] == []
    assert "netnskit network seed" in texts

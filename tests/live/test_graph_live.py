"""``netnskit graph --status`` live in a sandbox: a network up is green; a link set down red, one deleted grey."""

from __future__ import annotations

import json
import re
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from netnskit import graph
from netnskit.cli import main
from netnskit.network import Network
from netnskit.sandbox import Sandbox
from netnskit.snapshot import HostState

TOPOLOGY = textwrap.dedent(
    """\
    [network]
    name = "pic"
    bridge = "br-pic"
    subnet = "10.78.0.0/24"
    gateway = "10.78.0.1"
    masquerade = true

    [[namespace]]
    name = "a"
    host_ifname = "pic-a"

    [[namespace]]
    name = "b"
    host_ifname = "pic-b"

    [[extra_namespace]]
    name = "lan"

    [[link]]
    name = "pic-lan"
    address = "192.168.99.1/24"
    peer = "eth0"
    peer_netns = "lan"
    peer_address = "192.168.99.2/24"

    [[port_forward]]
    host_port = 8080
    netns = "b"
    port = 80
    """
)


def link(box: Sandbox, netns: str | None, name: str) -> dict[str, object] | None:
    """One link as ``ip -j link show`` reads it (None when it is not there): the kernel's word, not netnskit's."""
    argv = ["ip", "-j", "link", "show"] if netns is None else ["ip", "-n", netns, "-j", "link", "show"]
    found = [d for d in json.loads(box.run(argv).check().stdout or "[]") if d["ifname"] == name]
    return found[0] if found else None


def picture(box: Sandbox, path: Path, *extra: str) -> tuple[int, str]:
    """``netnskit graph FILE --status --format dot`` through the sandbox's runner: (exit status, the DOT)."""
    out = path.parent / "picture.dot"
    code = main(["graph", "--status", "--format", "dot", *extra, str(path), "-o", str(out)], runner=box.runner)
    return code, out.read_text(encoding="utf-8")


def states(topo: graph.Topology) -> dict[str, str | None]:
    return {**{n.key: n.state for n in topo.nodes}, **{e.key: e.state for e in topo.edges}}


RED = 'color="#c62828"'
GREEN = 'color="#2e7d32"'
GREY = 'color="#9e9e9e"'


def test_graph_status_up_then_a_link_down_then_one_gone(sandbox: Sandbox, tmp_path: Path) -> None:
    before = HostState.capture(sandbox.runner)
    path = tmp_path / "pic.toml"
    path.write_text(TOPOLOGY, encoding="utf-8")
    net = Network.from_toml(path, runner=sandbox.runner)
    net.up()
    try:
        # up: every node and edge green, exit 0
        code, dot = picture(sandbox, path)
        assert code == 0
        lines = [line for line in dot.splitlines() if line.startswith('    "') and '"legend"' not in line]
        assert len(lines) == 6 + 6  # host, bridge, a, b, lan, NAT; gateway, 2 veths, the link, NAT, the forward
        assert [line for line in lines if GREEN not in line] == []
        found = states(graph.topology(net, status=net.status()))
        assert {k: v for k, v in found.items() if v != graph.UP} == {"legend": None}

        # a's eth0 set down: the kernel says so, and the picture shows a's veth and a (its route is gone) red
        sandbox.run(["ip", "-n", "a", "link", "set", "eth0", "down"]).check()
        down = link(sandbox, "a", "eth0")
        assert down is not None and "UP" not in down["flags"]
        code, dot = picture(sandbox, path)
        assert code == 3  # not up
        veth_a = next(line for line in dot.splitlines() if line.strip().startswith('"bridge" -> "ns0_a"'))
        assert RED in veth_a
        node_a = next(line for line in dot.splitlines() if line.strip().startswith('"ns0_a" ['))
        assert RED in node_a
        found = states(graph.topology(net, status=net.status()))
        assert {k for k, v in found.items() if v != graph.UP} == {"legend", "veth:a", "namespace:a"}

        # the probes agree: nothing got through a's veth, the rest passed
        report = net.check(timeout=1)
        failed = {(p.source, p.target) for p in report.failures}
        assert failed and all(s == "a" or t == "10.78.0.2" for s, t in failed), report.lines()
        checked = states(graph.topology(net, report=report))
        assert checked["veth:a"] == graph.FAILING
        assert checked["veth:b"] == checked["gateway"] == checked["link:0"] == checked["forward:0"] == graph.UP

        # b's veth deleted (its end in b goes with it): grey, dashed; the forward to b red
        sandbox.run(["ip", "link", "del", "pic-b"]).check()
        assert link(sandbox, None, "pic-b") is None and link(sandbox, "b", "eth0") is None
        code, dot = picture(sandbox, path)
        assert code == 3
        veth_b = next(line for line in dot.splitlines() if line.strip().startswith('"bridge" -> "ns1_b"'))
        assert GREY in veth_b and "dashed" in veth_b
        found = states(graph.topology(net, status=net.status()))
        assert found["veth:b"] == graph.MISSING
        assert found["namespace:b"] == graph.FAILING  # there, but its default route went with eth0

        # the SVG of that, drawn by dot run through the sandbox's runner
        svg = tmp_path / "picture.svg"
        assert main(["graph", "--status", str(path), "-o", str(svg)], runner=sandbox.runner) == 3
        root = ET.fromstring(svg.read_text(encoding="utf-8"))
        texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
        assert {"a", "b", "lan", "host", "bridge br-pic", "NAT"} <= texts
        strokes = {e.get("stroke") for e in root.iter("{http://www.w3.org/2000/svg}path")}
        assert {"#c62828", "#9e9e9e", "#2e7d32"} <= strokes
    finally:
        net.down()
    assert HostState.capture(sandbox.runner).diff(before) == []


def test_graph_status_of_a_network_never_up_is_all_missing(sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "pic.toml"
    path.write_text(TOPOLOGY, encoding="utf-8")
    code, dot = picture(sandbox, path)
    assert code == 3
    net = Network.from_toml(path, runner=sandbox.runner)
    found = states(graph.topology(net, status=net.status()))
    assert found.pop("legend") is None and found.pop("host") == graph.UP  # the host has no route of the network's
    assert set(found.values()) == {graph.MISSING}
    elements = [line for line in dot.splitlines() if line.startswith('    "')]
    assert len(elements) == 7 + 6 and dot.count(GREY) == 13 - 2  # all but the host and the legend


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_graph_status_of_a_network_up_in_the_sandbox_is_all_green(
    fmt: str, sandbox: Sandbox, tmp_path: Path, capsys
) -> None:
    path = tmp_path / "pic.toml"
    path.write_text(TOPOLOGY, encoding="utf-8")
    # --sandbox goes with up and demo only: a sandbox gone with the command would show nothing
    assert main(["--sandbox", "graph", "--status", "--format", fmt, str(path)]) == 2
    capsys.readouterr()
    net = Network.from_toml(path, runner=sandbox.runner)
    net.up()
    try:
        code = main(["graph", "--status", "--format", fmt, str(path)], runner=sandbox.runner)
        assert code == 0
        out = capsys.readouterr().out
        if fmt == "mermaid":
            assert "    class ns0_a up" in out
            assert re.findall(r"^    class \w+ (?:missing|failing)$", out, flags=re.M) == []
        else:
            assert GREEN in out and GREY not in out and RED not in out
    finally:
        net.down()

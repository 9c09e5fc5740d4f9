"""A picture of a network: Mermaid (renders on GitHub), Graphviz DOT, and SVG through ``dot``.

:func:`topology` turns a :class:`~netnskit.network.Network` into nodes (the host, the bridge, the
namespaces, the NAT) and edges (veths and links with each end's address, the host's gateway,
masquerade, port forwards); with a :class:`~netnskit.network.NetworkStatus` and/or a
:class:`~netnskit.network.CheckReport` each element is also marked up, missing or failing.
:func:`mermaid` and :func:`dot` write that as text (pure); :func:`svg` runs ``dot -Tsvg`` through a
runner. Labels are kept as plain text and escaped by each format; ids are derived, never a name.
"""

from __future__ import annotations

import re
import shlex
from collections import deque
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Interface
from typing import TYPE_CHECKING

import attrs

from netnskit.errors import CommandNotFoundError, ValidationError
from netnskit.network.spec import RouteSpec
from netnskit.runner import Runner

if TYPE_CHECKING:
    from netnskit.firewall import Rule
    from netnskit.link import LinkInfo
    from netnskit.network.check import CheckReport, Probe
    from netnskit.network.network import Network
    from netnskit.network.status import NamespaceStatus, NetworkStatus

__all__ = [
    "FAILING",
    "FORMATS",
    "GRAPHVIZ_PACKAGE",
    "MISSING",
    "SVG_ARGV",
    "UP",
    "Edge",
    "Node",
    "Topology",
    "dot",
    "dot_text",
    "mermaid",
    "mermaid_text",
    "render",
    "render_svg",
    "svg",
    "topology",
]

UP = "up"
MISSING = "missing"
FAILING = "failing"
FORMATS = ("mermaid", "dot", "svg")
SVG_ARGV = ("dot", "-Tsvg")  # Graphviz reads the DOT text on stdin
GRAPHVIZ_PACKAGE = "graphviz"  # the Debian package that brings dot

# wires carry packets (a probe's path is found over them); the others are rules drawn beside them
_WIRES = ("veth", "gateway", "link")


@attrs.frozen
class Node:
    """One box of the picture: the host, the bridge, a namespace, the NAT (or the legend)."""

    id: str  # letters, digits and '_' only, derived: safe as a Mermaid id and a DOT id
    kind: str  # "host", "bridge", "namespace", "extra", "nat", "legend"
    key: str  # what it stands for: "host", "bridge", "namespace:NAME", "nat"
    lines: tuple[str, ...]  # the label, one entry per line, plain text
    state: str | None = None  # UP, MISSING or FAILING with an overlay; None without


@attrs.frozen
class Edge:
    """One line of the picture between two nodes (by id): a veth, a link, the gateway, NAT, a forward."""

    kind: str  # "veth", "gateway", "link", "nat", "forward"
    key: str  # "veth:NAME", "gateway", "link:INDEX", "nat", "forward:INDEX"
    source: str
    target: str
    lines: tuple[str, ...] = ()
    state: str | None = None


@attrs.frozen
class Topology:
    """A network as nodes and edges, states set where an overlay was given."""

    name: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    @property
    def overlay(self) -> bool:
        """True when some element carries a state (the picture then has colours and a legend)."""
        return any(n.state for n in self.nodes) or any(e.state for e in self.edges)

    def node(self, key: str) -> Node:
        """The node standing for ``key`` ("host", "bridge", "namespace:NAME", "nat")."""
        for node in self.nodes:
            if node.key == key:
                return node
        raise KeyError(key)

    def edge(self, key: str) -> Edge:
        """The edge standing for ``key`` ("veth:NAME", "gateway", "link:I", "nat", "forward:I")."""
        for edge in self.edges:
            if edge.key == key:
                return edge
        raise KeyError(key)


# --- the topology ---------------------------------------------------------------------------


def _node_id(index: int, name: str) -> str:
    # the index keeps ids apart ("a.b" and "a-b" both read a_b); the prefix keeps Mermaid's words
    # ("end", "graph") and its edge heads ("o", "x" right after "---") out of the way
    return f"ns{index}_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def _ports(low_high: tuple[int, int]) -> str:
    low, high = low_high
    return str(low) if low == high else f"{low}-{high}"


def _route_line(route: RouteSpec) -> str:
    return " ".join(route.spec())


def _end(place: str | None, ifname: str, address: IPv4Interface | None) -> str:
    return f"{place or 'host'}: {ifname}" + ("" if address is None else f" {address}")


def topology(net: Network, *, status: NetworkStatus | None = None, report: CheckReport | None = None) -> Topology:
    """The network as nodes and edges (pure); with ``status`` and/or ``report``, each marked up, missing or failing.

    ``status`` (:meth:`Network.status`) says what exists: absent is missing, present but down or
    not ours is failing. ``report`` (:meth:`Network.check`) follows each probe's path: an element
    every probe through which failed is failing, one a probe passed through is up. Missing wins
    over failing, failing over up.
    """
    ids = {name: _node_id(i, name) for i, name in enumerate(net.namespace_names())}
    host_routes = [_route_line(r) for r in net.routes if r.netns is None]
    nodes = [Node("host", "host", "host", ("host", f"gateway {net.gateway_interface}", *host_routes))]
    nodes.append(Node("bridge", "bridge", "bridge", (f"bridge {net.bridge}", str(net.subnet))))
    for ns in net.namespaces:
        routes = [_route_line(r) for r in (*ns.routes, *(r for r in net.routes if r.netns == ns.name))]
        nodes.append(Node(ids[ns.name], "namespace", f"namespace:{ns.name}", (ns.name, *routes)))
    for extra in net.extra_namespaces:
        routes = [_route_line(r) for r in net.routes if r.netns == extra.name]
        role = ("router (ip_forward)",) if extra.forwarding else ()
        nodes.append(Node(ids[extra.name], "extra", f"namespace:{extra.name}", (extra.name, *role, *routes)))
    edges: list[Edge] = []
    addrs = net.addresses()
    # every edge points away from the host (host, then the bridge and links, then the namespaces):
    # the layouts rank nodes along edges (left to right), and a forward (host -> namespace) runs the same way
    edges.append(Edge("gateway", "gateway", "host", "bridge", (f"{net.bridge}: {net.gateway_interface}",)))
    for ns in net.namespaces:
        label = (_end(net.bridge, ns.host_ifname, None), _end(ns.name, ns.ifname, addrs[ns.name]))
        edges.append(Edge("veth", f"veth:{ns.name}", "bridge", ids[ns.name], label))
    for index, link in enumerate(net.links):
        ends = link.ends()
        source, target = ("host" if p is None else ids[p] for p, _, _ in ends)
        edges.append(Edge("link", f"link:{index}", source, target, tuple(_end(*e) for e in ends)))
    if net.masquerade:
        nodes.append(Node("nat", "nat", "nat", ("NAT", f"{net.subnet} out of the host", f"(not by {net.bridge})")))
        edges.append(Edge("nat", "nat", "host", "nat", ("masquerade",)))
    for index, fwd in enumerate(net.port_forwards):
        text = f"port forward {fwd.protocol} {_ports(fwd.host_port)} → {fwd.netns}:{_ports(fwd.port or fwd.host_port)}"
        edges.append(Edge("forward", f"forward:{index}", "host", ids[fwd.netns], (text,)))
    topo = Topology(net.name, tuple(nodes), tuple(edges))
    if status is None and report is None:
        return topo
    states = _combine(
        _status_states(net, status) if status is not None else {},
        _check_states(net, topo, report) if report is not None else {},
    )
    legend = Node("legend", "legend", "legend", ("green: up", "grey, dashed: missing", "red: failing"))
    return Topology(
        topo.name,
        (*(attrs.evolve(n, state=states.get(n.key)) for n in topo.nodes), legend),
        tuple(attrs.evolve(e, state=states.get(e.key)) for e in topo.edges),
    )


def _combine(*maps: dict[str, str]) -> dict[str, str]:
    rank = {UP: 0, FAILING: 1, MISSING: 2}
    out: dict[str, str] = {}
    for states in maps:
        for key, state in states.items():
            if key not in out or rank[state] > rank[out[key]]:
                out[key] = state
    return out


# --- the overlay from a status: what exists ----------------------------------------------------


def _link_state(info: LinkInfo | None) -> str:
    if info is None:
        return MISSING
    # a veth end is down when it or its peer is (LOWERLAYERDOWN): either way no packet crosses
    return UP if info.is_up and info.operstate not in ("DOWN", "LOWERLAYERDOWN") else FAILING


def _worst(states: Iterable[str]) -> str:
    found = set(states)
    return MISSING if MISSING in found else FAILING if FAILING in found else UP


def _status_states(net: Network, status: NetworkStatus) -> dict[str, str]:
    host_links = {link.name: link for link in status.host_links}
    spaces = {ns.name: ns for ns in status.namespaces}
    links = {name: {link.name: link for link in ns.links} for name, ns in spaces.items()}
    addresses: dict[str | None, set[tuple[str, str]]] = {None: {(a.dev, str(a.address)) for a in status.host_addresses}}
    routes: dict[str | None, set[tuple[str, str | None]]] = {None: {(r.to, r.via) for r in status.host_routes}}
    for name, seen in spaces.items():
        addresses[name] = {(a.dev, str(a.address)) for a in seen.addresses}
        routes[name] = {(r.to, r.via) for r in seen.routes}

    def link(place: str | None, ifname: str) -> LinkInfo | None:
        return host_links.get(ifname) if place is None else links.get(place, {}).get(ifname)

    def address(place: str | None, ifname: str, addr: IPv4Interface | None) -> str:
        return UP if addr is None or (ifname, str(addr)) in addresses.get(place, set()) else MISSING

    def has_route(place: str | None, route: RouteSpec) -> bool:
        return (str(route.to), None if route.via is None else str(route.via)) in routes.get(place, set())

    states: dict[str, str] = {}
    bridge = host_links.get(net.bridge)
    # the bridge's operstate follows its ports: its own UP flag is what says it is up
    states["bridge"] = MISSING if bridge is None else UP if bridge.is_up else FAILING
    states["gateway"] = _worst([states["bridge"], address(None, net.bridge, net.gateway_interface)])
    host_ok = all(has_route(None, r) for r in net.routes if r.netns is None)
    states["host"] = UP if host_ok else FAILING
    gateway_route = RouteSpec("default", via=net.gateway)
    addrs = net.addresses()
    for ns in net.namespaces:
        wanted = [*ns.routes, *(r for r in net.routes if r.netns == ns.name)]
        wanted += [gateway_route] if ns.default_route else []
        states[f"namespace:{ns.name}"] = _space_state(spaces.get(ns.name), [has_route(ns.name, r) for r in wanted])
        ends = [_link_state(link(None, ns.host_ifname)), _link_state(link(ns.name, ns.ifname))]
        states[f"veth:{ns.name}"] = _worst([*ends, address(ns.name, ns.ifname, addrs[ns.name])])
    for extra in net.extra_namespaces:
        wanted = [r for r in net.routes if r.netns == extra.name]
        states[f"namespace:{extra.name}"] = _space_state(
            spaces.get(extra.name), [has_route(extra.name, r) for r in wanted]
        )
    for index, spec in enumerate(net.links):
        parts = [s for p, i, a in spec.ends() for s in (_link_state(link(p, i)), address(p, i, a))]
        states[f"link:{index}"] = _worst(parts)
    rules = status.rules
    if net.masquerade:
        states["nat"] = _rules_state(net.nat_rule().rules(), rules)
    for index, (fwd, forward) in enumerate(zip(net.port_forwards, net.forward_rules(), strict=True)):
        state = _rules_state(forward.rules(), rules)
        # rules that lead to a namespace that is not there forward nothing
        if state == UP and states.get(f"namespace:{fwd.netns}") != UP:
            state = FAILING
        states[f"forward:{index}"] = state
    return states


def _space_state(found: NamespaceStatus | None, routes: list[bool]) -> str:
    if found is None or not found.present:
        return MISSING
    # someone else's namespace under our name, or one whose routes are gone (its link went down)
    return UP if found.ours and all(routes) else FAILING


def _rule_key(line: str) -> tuple[str, ...]:
    """A rule line (``-t TABLE -A CHAIN SPEC``) as its table, chain and options in a fixed order.

    iptables-save prints the options of a rule in its own order (``-d ADDR -i IF`` for a rule made
    with ``-i IF -d ADDR``): each option with its values (and a ``!`` before it) is one item, sorted.
    """
    words = shlex.split(line)
    head, spec = words[:4], words[4:]
    groups: list[list[str]] = []
    for word in spec:
        starts = word == "!" or (word.startswith("-") and not (groups and groups[-1] == ["!"]))
        if starts or not groups:
            groups.append([word])
        else:
            groups[-1].append(word)
    return (*head, *sorted(" ".join(g) for g in groups))


def _rules_state(rules: Iterable[Rule], saved: Iterable[str]) -> str:
    # NetworkStatus.rules are "-t TABLE -A CHAIN SPEC", as read back from iptables-save
    there = {_rule_key(line) for line in saved}
    found = [_rule_key(f"-t {r.table} {r.line()}") in there for r in rules]
    return UP if all(found) else MISSING if not any(found) else FAILING


# --- the overlay from a check: what carried packets ---------------------------------------------


def _check_states(net: Network, topo: Topology, report: CheckReport) -> dict[str, str]:
    owner: dict[IPv4Address, str] = {net.gateway: "host"}
    names = {n.key.split(":", 1)[1]: n.id for n in topo.nodes if n.key.startswith("namespace:")}
    for name, iface in net.addresses().items():
        owner[iface.ip] = names[name]
    for link in net.links:
        for place, _, addr in link.ends():
            if addr is not None:
                owner[addr.ip] = "host" if place is None else names[place]
    wires = [e for e in topo.edges if e.kind in _WIRES]
    passed: dict[str, int] = {}
    failed: dict[str, int] = {}
    for probe in report.probes:
        keys = _probe_path(net, probe, owner, names, wires)
        for key in keys:
            tally = passed if probe.ok else failed
            tally[key] = tally.get(key, 0) + 1
    # blame an element only when nothing got through it: a probe that passed clears it
    return {key: UP if passed.get(key) else FAILING for key in {*passed, *failed}}


def _probe_path(
    net: Network, probe: Probe, owner: dict[IPv4Address, str], names: dict[str, str], wires: list[Edge]
) -> list[str]:
    source = "host" if probe.source == "host" else names.get(probe.source)
    address, _, port = probe.target.partition(":")
    try:
        target = owner.get(IPv4Address(address))
    except ValueError:
        target = None
    if source is None or target is None:
        return []
    path = _path(wires, source, target)
    if probe.kind == "nat":
        return [*path, "nat"]
    if probe.kind == "forward" and port.isdigit():
        for index, fwd in enumerate(net.port_forwards):
            low, high = fwd.host_port
            if fwd.protocol == "tcp" and low <= int(port) <= high:
                # to the host's address, then through the forward to the namespace behind it
                return [*path, f"forward:{index}", *_path(wires, target, names[fwd.netns])]
    return path


def _path(wires: list[Edge], start: str, goal: str) -> list[str]:
    """The edge keys of the shortest path from node ``start`` to ``goal`` over the wires ([] if none)."""
    around: dict[str, list[tuple[str, str]]] = {}
    for edge in wires:
        around.setdefault(edge.source, []).append((edge.target, edge.key))
        around.setdefault(edge.target, []).append((edge.source, edge.key))
    came: dict[str, tuple[str, str] | None] = {start: None}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        if here == goal:
            break
        for there, key in around.get(here, []):
            if there not in came:
                came[there] = (here, key)
                queue.append(there)
    if goal not in came:
        return []
    keys: list[str] = []
    step = came[goal]
    while step is not None:
        keys.append(step[1])
        step = came[step[0]]
    return keys[::-1]


# --- Mermaid ------------------------------------------------------------------------------------

# Mermaid reads "#NAME;" and "#NUMBER;" as entities: the numeric ones need no list of names
_MERMAID_ESCAPES = {c: f"#{ord(c)};" for c in '"#<>&|`'}

_MERMAID_SHAPES = {
    "host": ("[[", "]]"),
    "bridge": ("[", "]"),
    "namespace": ("([", "])"),
    "extra": ("([", "])"),
    "nat": ("{{", "}}"),
    "legend": ("[", "]"),
}

_MERMAID_LINKS = {"veth": "---", "gateway": "---", "link": "---", "nat": "-.-", "forward": "-.->"}

_MERMAID_CLASSES = {
    UP: "fill:#e8f5e9,stroke:#2e7d32,stroke-width:2px,color:#1b5e20",
    MISSING: "fill:#f5f5f5,stroke:#9e9e9e,stroke-width:1px,stroke-dasharray:5 5,color:#757575",
    FAILING: "fill:#ffebee,stroke:#c62828,stroke-width:3px,color:#b71c1c",
}
_MERMAID_LINK_STYLES = {
    UP: "stroke:#2e7d32,stroke-width:2px",
    MISSING: "stroke:#9e9e9e,stroke-width:1px,stroke-dasharray:5 5",
    FAILING: "stroke:#c62828,stroke-width:3px",
}


def mermaid_text(lines: Iterable[str]) -> str:
    """Lines of plain text as one quoted Mermaid label: entities for its special characters, <br/> between lines."""
    escaped = ("".join(_MERMAID_ESCAPES.get(c, c) for c in " ".join(line.splitlines())) for line in lines)
    return '"' + "<br/>".join(escaped) + '"'


def mermaid(net: Network, *, status: NetworkStatus | None = None, report: CheckReport | None = None) -> str:
    """The network as a Mermaid ``flowchart`` (renders on GitHub in a mermaid code block); pure."""
    return _mermaid(topology(net, status=status, report=report))


def _mermaid(topo: Topology) -> str:
    out = ["flowchart LR", f"    %% netnskit network {' '.join(topo.name.split())}"]
    for node in topo.nodes:
        opening, closing = _MERMAID_SHAPES[node.kind]
        out.append(f"    {node.id}{opening}{mermaid_text(node.lines)}{closing}")
    for edge in topo.edges:
        link = _MERMAID_LINKS[edge.kind]
        label = f"|{mermaid_text(edge.lines)}|" if edge.lines else ""
        out.append(f"    {edge.source} {link}{label} {edge.target}")
    if topo.overlay:
        for state, style in _MERMAID_CLASSES.items():
            out.append(f"    classDef {state} {style}")
        out.append("    classDef legend fill:#ffffff,stroke:#bdbdbd,color:#424242")
        for node in topo.nodes:
            if node.state:
                out.append(f"    class {node.id} {node.state}")
        out.append("    class legend legend")
        for index, edge in enumerate(topo.edges):
            if edge.state:
                out.append(f"    linkStyle {index} {_MERMAID_LINK_STYLES[edge.state]}")
    return "\n".join(out) + "\n"


# --- Graphviz DOT -------------------------------------------------------------------------------

_DOT_NODES = {
    "host": {"shape": "box3d"},
    "bridge": {"shape": "box", "style": "bold"},
    "namespace": {"shape": "box", "style": "rounded"},
    "extra": {"shape": "box", "style": "rounded"},
    "nat": {"shape": "hexagon"},
    "legend": {"shape": "note"},
}
_DOT_EDGES: dict[str, dict[str, str]] = {
    "veth": {},
    "gateway": {},
    "link": {},
    "nat": {"style": "dotted"},
    "forward": {"style": "dashed", "dir": "forward", "color": "#1565c0", "fontcolor": "#1565c0"},
}
_DOT_STATES = {
    UP: {"color": "#2e7d32", "fillcolor": "#e8f5e9", "penwidth": "2"},
    MISSING: {"color": "#9e9e9e", "fillcolor": "#f5f5f5", "fontcolor": "#757575", "style": "dashed"},
    FAILING: {"color": "#c62828", "fillcolor": "#ffebee", "penwidth": "3"},
}


def dot_text(lines: Iterable[str]) -> str:
    """Lines of plain text as one quoted DOT string: quotes and backslashes escaped, \\n between lines."""
    escaped = (" ".join(line.splitlines()).replace("\\", "\\\\").replace('"', '\\"') for line in lines)
    return '"' + "\\n".join(escaped) + '"'


def _dot_attrs(attributes: dict[str, str]) -> str:
    return ", ".join(f"{key}={dot_text([value])}" for key, value in attributes.items())


def dot(net: Network, *, status: NetworkStatus | None = None, report: CheckReport | None = None) -> str:
    """The network as Graphviz DOT (``dot -Tsvg`` draws it); pure."""
    return _dot(topology(net, status=status, report=report))


def _styled(base: dict[str, str], state: str | None, *, node: bool) -> dict[str, str]:
    attributes = dict(base)
    if state is None:
        return attributes
    extra = dict(_DOT_STATES[state])
    styles = [s for s in (attributes.get("style", ""), extra.pop("style", "")) if s]
    styles = list(dict.fromkeys(",".join(styles).split(","))) if styles else []  # a dashed forward stays "dashed"
    if node:
        styles.append("filled")
    else:
        extra.pop("fillcolor")
    if styles:
        attributes["style"] = ",".join(styles)
    return {**attributes, **extra}


def _dot(topo: Topology) -> str:
    out = [
        f"digraph {dot_text([topo.name])} {{",
        f"    graph [label={dot_text(['netnskit network ' + topo.name])}, labelloc=t, rankdir=LR, "
        'fontname="Helvetica", nodesep=0.35, ranksep=0.3];',
        '    node [fontname="Helvetica", fontsize=12, margin="0.15,0.06"];',
        '    edge [fontname="Helvetica", fontsize=10, dir=none];',
    ]
    for node in topo.nodes:
        attributes = _styled(_DOT_NODES[node.kind], node.state, node=True)
        if node.kind == "legend":
            attributes = {**_DOT_NODES["legend"], "color": "#bdbdbd"}
        out.append(f"    {dot_text([node.id])} [label={dot_text(node.lines)}, {_dot_attrs(attributes)}];")
    for edge in topo.edges:
        attributes = _styled(_DOT_EDGES[edge.kind], edge.state, node=False)
        words = [f"label={dot_text(edge.lines)}"] if edge.lines else []
        words += [_dot_attrs(attributes)] if attributes else []
        listed = f" [{', '.join(words)}]" if words else ""
        out.append(f"    {dot_text([edge.source])} -> {dot_text([edge.target])}{listed};")
    out.append("}")
    return "\n".join(out) + "\n"


# --- SVG through Graphviz -----------------------------------------------------------------------


def render_svg(dot_source: str, runner: Runner, *, timeout: float | None = None) -> str:
    """Run ``dot -Tsvg`` on ``dot_source`` through ``runner``; the SVG text.

    Raises CommandNotFoundError naming the ``graphviz`` package where ``dot`` is not installed.
    """
    try:
        result = runner.run(list(SVG_ARGV), input=dot_source, timeout=timeout)
    except CommandNotFoundError as exc:
        raise CommandNotFoundError(SVG_ARGV[0], GRAPHVIZ_PACKAGE) from exc
    if result.returncode == 127:  # a runner that reports a missing program by exit status (a shell, nsenter)
        raise CommandNotFoundError(SVG_ARGV[0], GRAPHVIZ_PACKAGE)
    return result.check("drawing the network with Graphviz").stdout


def svg(
    net: Network,
    runner: Runner,
    *,
    status: NetworkStatus | None = None,
    report: CheckReport | None = None,
) -> str:
    """The network drawn as SVG by Graphviz (``dot -Tsvg``, run through ``runner``)."""
    return render_svg(dot(net, status=status, report=report), runner)


def render(
    net: Network,
    fmt: str,
    *,
    runner: Runner | None = None,
    status: NetworkStatus | None = None,
    report: CheckReport | None = None,
) -> str:
    """The picture in ``fmt`` (one of FORMATS); ``svg`` needs a runner to run ``dot``."""
    if fmt == "mermaid":
        return mermaid(net, status=status, report=report)
    if fmt == "dot":
        return dot(net, status=status, report=report)
    if fmt == "svg":
        if runner is None:
            raise ValidationError("format", fmt, "needs a runner to run dot")
        return svg(net, runner, status=status, report=report)
    raise ValidationError("format", fmt, f"must be one of {', '.join(FORMATS)}")

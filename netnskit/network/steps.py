"""The plan of a network: each step (its commands and their undo) with a ``done`` predicate on the kernel's state.

``up`` runs the steps whose predicate is false. Order: namespaces, the bridge, each namespace on the
bridge, extra links, routes; the firewall's steps come after (see :mod:`.firewall`).
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Interface
from typing import TYPE_CHECKING

from netnskit.link import Bridge, VethPair, ip_argv
from netnskit.network.spec import RouteSpec
from netnskit.network.state import _Facts
from netnskit.plan import Step

if TYPE_CHECKING:
    from netnskit.network.network import Network


def _sysctl_forwarding(ifname: str) -> list[str]:
    # the slash form keeps dots in interface names intact
    return ["sysctl", "-w", f"net/ipv4/conf/{ifname}/forwarding=1"]


def _entries(net: Network) -> list[tuple[Step, Callable[[_Facts], bool]]]:
    out: list[tuple[Step, Callable[[_Facts], bool]]] = []
    mark = net.mark

    def add(description: str, do: list[list[str]], undo: list[list[str]], done: Callable[[_Facts], bool]) -> None:
        out.append((Step(description, do, undo), done))

    def link_there(where: str | None, ifname: str) -> Callable[[_Facts], bool]:
        return lambda f: ifname in f.links.get(where, {})

    def link_marked(ifname: str) -> Callable[[_Facts], bool]:
        return lambda f: f.links.get(None, {}).get(ifname, {}).get("ifalias") == mark

    def mark_link(ifname: str, *, quiet_up: bool = False) -> None:
        # the kernel ignores an alias given to `ip link add`: it takes its own request. quiet_up: in
        # the same request, no IPv6 link-local address, then up (the link was made down for this)
        if not quiet_up:
            argv = ip_argv(None, "link", "set", ifname, "alias", mark)
            add(f"mark {ifname} as {mark}", [argv], [], link_marked(ifname))
            return
        marked, up = link_marked(ifname), link_up(None, ifname)
        add(
            f"mark {ifname} as {mark} and bring it up (no IPv6 link-local address)",
            [ip_argv(None, "link", "set", ifname, "alias", mark, "addrgenmode", "none", "up")],
            [],
            lambda f: marked(f) and up(f),
        )

    def link_up(where: str | None, ifname: str) -> Callable[[_Facts], bool]:
        return lambda f: "UP" in f.links.get(where, {}).get(ifname, {}).get("flags", ())

    def has_address(where: str | None, ifname: str, addr: IPv4Interface) -> Callable[[_Facts], bool]:
        return lambda f: (ifname, str(addr)) in f.addresses.get(where, set())

    def has_route(where: str | None, route: RouteSpec) -> Callable[[_Facts], bool]:
        dst = str(route.to)
        gw = None if route.via is None else str(route.via)
        return lambda f: (dst, gw) in f.routes.get(where, set())

    def forwarding(where: str | None, ifname: str) -> Callable[[_Facts], bool]:
        return lambda f: f.forwarding.get(where, {}).get(ifname, False)

    def ns_exists(name: str) -> Callable[[_Facts], bool]:
        return lambda f: name in f.netns

    def ns_marked(name: str) -> Callable[[_Facts], bool]:
        def done(f: _Facts) -> bool:
            lo = f.links.get(name, {}).get("lo", {})
            return lo.get("ifalias") == mark and "UP" in lo.get("flags", ())

        return done

    # namespaces, each marked by its loopback's alias
    for name in net.namespace_names():
        add(
            f"create namespace {name}",
            [["ip", "netns", "add", name]],
            [["ip", "netns", "del", name]],
            ns_exists(name),
        )
        add(
            f"mark namespace {name} as {mark} and bring its loopback up",
            [ip_argv(name, "link", "set", "lo", "up", "alias", mark)],
            [],
            ns_marked(name),
        )
    for extra in net.extra_namespaces:
        if extra.forwarding:
            add(
                f"enable IPv4 forwarding inside namespace {extra.name}",
                [["ip", "netns", "exec", extra.name, "sysctl", "-w", "net.ipv4.ip_forward=1"]],
                [],
                forwarding(extra.name, "all"),
            )

    # the bridge and the host's gateway address on it
    bridge = Bridge(net.bridge, group=net.group, mcast_snooping=net.multicast_snooping)
    add(
        f"create bridge {net.bridge} (link group {net.group})",
        [bridge.create_argv(up=True)],
        [["ip", "link", "del", net.bridge]],
        link_there(None, net.bridge),
    )
    mark_link(net.bridge)
    gw = net.gateway_interface
    add(
        f"give the host the gateway address {gw} on {net.bridge}",
        [ip_argv(None, "addr", "add", str(gw), "dev", net.bridge)],
        [ip_argv(None, "addr", "del", str(gw), "dev", net.bridge)],
        has_address(None, net.bridge, gw),
    )
    add(
        f"enable forwarding on {net.bridge}",
        [_sysctl_forwarding(net.bridge)],
        [],
        forwarding(None, net.bridge),
    )

    # each namespace on the bridge: one veth made inside it, attached and up, in one request
    addrs = net.addresses()
    for ns in net.namespaces:
        pair = VethPair(ns.host_ifname, ns.ifname, peer_netns=ns.name, master=net.bridge, group=net.group)
        add(
            f"connect namespace {ns.name} to {net.bridge} ({ns.host_ifname} <-> {ns.ifname})",
            [pair.create_argv(up=net.ipv6_link_local)],
            [["ip", "link", "del", ns.host_ifname]],
            link_there(None, ns.host_ifname),
        )
        mark_link(ns.host_ifname, quiet_up=not net.ipv6_link_local)
        # one request: the kernel applies addrgenmode before the link comes up (no address is made)
        quiet = () if net.ipv6_link_local else ("addrgenmode", "none")
        add(
            f"bring up {ns.ifname} in {ns.name}" + ("" if net.ipv6_link_local else " (no IPv6 link-local address)"),
            [ip_argv(ns.name, "link", "set", ns.ifname, *quiet, "up")],
            [ip_argv(ns.name, "link", "set", ns.ifname, "down")],
            link_up(ns.name, ns.ifname),
        )
        addr = addrs[ns.name]
        add(
            f"address {ns.name}'s {ns.ifname} as {addr}",
            [ip_argv(ns.name, "addr", "add", str(addr), "dev", ns.ifname)],
            [ip_argv(ns.name, "addr", "del", str(addr), "dev", ns.ifname)],
            has_address(ns.name, ns.ifname, addr),
        )
        routes = list(ns.routes)
        if ns.default_route:
            routes.insert(0, RouteSpec("default", via=net.gateway))
        for route in routes:
            add(
                f"route {' '.join(route.spec())} in {ns.name}",
                [ip_argv(ns.name, "route", "add", *route.spec())],
                [ip_argv(ns.name, "route", "del", *route.spec())],
                has_route(ns.name, route),
            )

    # extra links (LAN, internet stand-ins)
    for link in net.links:
        on_host = link.namespace is None
        pair = VethPair(
            link.name,
            link.peer,
            netns=link.namespace,
            peer_netns=link.peer_namespace,
            group=net.group if on_host else None,
        )
        argv = pair.create_argv(up=True)
        where = "the host" if on_host else link.namespace
        add(
            f"create link {link.name} ({where}) <-> {link.peer} ({link.peer_namespace or 'the host'})",
            [argv],
            [ip_argv(link.namespace, "link", "del", link.name)],
            link_there(link.namespace, link.name),
        )
        if on_host:
            mark_link(link.name)
        add(
            f"bring up {link.peer} in {link.peer_namespace or 'the host'}",
            [ip_argv(link.peer_namespace, "link", "set", link.peer, "up")],
            [ip_argv(link.peer_namespace, "link", "set", link.peer, "down")],
            link_up(link.peer_namespace, link.peer),
        )
        for place, ifname, address in link.ends():
            if address is not None:
                add(
                    f"address {ifname} in {place or 'the host'} as {address}",
                    [ip_argv(place, "addr", "add", str(address), "dev", ifname)],
                    [ip_argv(place, "addr", "del", str(address), "dev", ifname)],
                    has_address(place, ifname, address),
                )
            if place is None:
                add(
                    f"enable forwarding on {ifname}",
                    [_sysctl_forwarding(ifname)],
                    [],
                    forwarding(None, ifname),
                )

    for route in net.routes:
        add(
            f"route {' '.join(route.spec())} in {route.namespace or 'the host'}",
            [ip_argv(route.namespace, "route", "add", *route.spec())],
            [ip_argv(route.namespace, "route", "del", *route.spec())],
            has_route(route.namespace, route),
        )

    # firewall rules (commented netnskit:NAME) come from netnskit.firewall: see _firewall_steps
    return out

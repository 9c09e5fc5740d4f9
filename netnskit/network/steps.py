"""The plan of a network: each step (its commands and their undo) with a ``done`` predicate on the kernel's state.

``up`` runs the steps whose predicate is false. Order: namespaces, the bridge, each namespace on the
bridge, extra links (each with its MTU), routes, the namespaces' sysctls, their files under
``/etc/netns`` (see :mod:`.files`); the firewall's steps come after (see :mod:`.firewall`), then
the processes (see :mod:`.processes`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from ipaddress import IPv4Interface, IPv6Interface
from typing import TYPE_CHECKING

from netnskit.commands import sysctl
from netnskit.link import Bridge, Link, Route, VethPair
from netnskit.netns import Namespace
from netnskit.network import files
from netnskit.network.spec import LinkSpec, NamespaceSpec, RouteSpec, sysctl_path
from netnskit.network.state import _Facts
from netnskit.plan import Command, Step

if TYPE_CHECKING:
    from netnskit.network.network import Network

_Done = Callable[[_Facts], bool]


def _sysctl_forwarding(ifname: str, family: int = 4) -> Command:
    # the slash form keeps dots in interface names intact
    return sysctl(None, f"net/ipv{family}/conf/{ifname}/forwarding", "1")


# --- done predicates: does the kernel already show the step done? ---------------------------


def _ns_exists(name: str, f: _Facts) -> bool:
    return name in f.netns


def _ns_marked(mark: str, name: str, f: _Facts) -> bool:
    lo = f.links.get(name, {}).get("lo", {})
    return lo.get("ifalias") == mark and "UP" in lo.get("flags", ())


def _link_there(where: str | None, ifname: str, f: _Facts) -> bool:
    return ifname in f.links.get(where, {})


def _link_marked(mark: str, ifname: str, f: _Facts) -> bool:
    return f.links.get(None, {}).get(ifname, {}).get("ifalias") == mark


def _link_up(where: str | None, ifname: str, f: _Facts) -> bool:
    return "UP" in f.links.get(where, {}).get(ifname, {}).get("flags", ())


def _link_marked_and_up(mark: str, ifname: str, f: _Facts) -> bool:
    return _link_marked(mark, ifname, f) and _link_up(None, ifname, f)


def _has_address(where: str | None, ifname: str, addr: IPv4Interface | IPv6Interface, f: _Facts) -> bool:
    return (ifname, str(addr)) in f.addresses.get(where, set())


def _has_route(where: str | None, route: RouteSpec, f: _Facts) -> bool:
    gw = None if route.via is None else str(route.via)
    routes = f.routes6 if route.version == 6 else f.routes
    return (str(route.to), gw) in routes.get(where, set())


def _forwarding(where: str | None, ifname: str, f: _Facts) -> bool:
    return f.forwarding.get(where, {}).get(ifname, False)


def _forwarding6(where: str | None, ifname: str, f: _Facts) -> bool:
    return f.forwarding6.get(where, {}).get(ifname, False)


def _mtu_is(mtu: int, ends: tuple[tuple[str | None, str], ...], f: _Facts) -> bool:
    return all(f.links.get(where, {}).get(ifname, {}).get("mtu") == mtu for where, ifname in ends)


def _sysctl_is(netns: str, key: str, value: str, f: _Facts) -> bool:
    return f.sysctls.get(netns, {}).get(sysctl_path(key)) == " ".join(value.split())


def _files_done(net: Network, f: _Facts) -> bool:
    return files.done(net, f.files)


# --- the plan -------------------------------------------------------------------------------


class _PlanBuilder:
    """Collects one network's (step, done) pairs in plan order: one method per kind of step."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.mark = net.mark
        self.runner = net.runner
        self.entries: list[tuple[Step, _Done]] = []

    def add(self, description: str, do: list[Command], undo: list[Command], done: _Done) -> None:
        self.entries.append((Step(description, do, undo), done))

    def _link(self, name: str, where: str | None = None) -> Link:
        return Link(name, where, runner=self.runner)

    def namespace(self, name: str) -> None:
        """Create namespace ``name``, then mark it by its loopback's alias (and bring ``lo`` up)."""
        space = Namespace(name, runner=self.runner)
        self.add(
            f"create namespace {name}",
            [space.add_command()],
            [space.delete_command()],
            functools.partial(_ns_exists, name),
        )
        self.add(
            f"mark namespace {name} as {self.mark} and bring its loopback up",
            [self._link("lo", name).set_command("up", "alias", self.mark)],
            [],
            functools.partial(_ns_marked, self.mark, name),
        )

    def router(self, name: str) -> None:
        """IPv4 forwarding inside an extra namespace (and IPv6's on a dual-stack network)."""
        self.add(
            f"enable IPv4 forwarding inside namespace {name}",
            [Namespace(name, runner=self.runner).sysctl_command("net.ipv4.ip_forward", "1")],
            [],
            functools.partial(_forwarding, name, "all"),
        )
        if self.net.dual:
            self.add(
                f"enable IPv6 forwarding inside namespace {name}",
                [Namespace(name, runner=self.runner).sysctl_command("net.ipv6.conf.all.forwarding", "1")],
                [],
                functools.partial(_forwarding6, name, "all"),
            )

    def mark_link(self, ifname: str, *, quiet_up: bool = False) -> None:
        """Alias a host link ``netnskit:NAME``.

        The kernel ignores an alias given to ``ip link add``: it takes its own request. ``quiet_up``:
        in the same request, no IPv6 link-local address, then up (the link was made down for this).
        """
        if not quiet_up:
            command = self._link(ifname).set_command("alias", self.mark)
            self.add(f"mark {ifname} as {self.mark}", [command], [], functools.partial(_link_marked, self.mark, ifname))
            return
        self.add(
            f"mark {ifname} as {self.mark} and bring it up (no IPv6 link-local address)",
            [self._link(ifname).set_command("alias", self.mark, "addrgenmode", "none", "up")],
            [],
            functools.partial(_link_marked_and_up, self.mark, ifname),
        )

    def address(self, description: str, where: str | None, ifname: str, addr: IPv4Interface | IPv6Interface) -> None:
        """Address ``ifname`` in ``where`` (the host for None); an IPv6 address with ``nodad``: usable at once."""
        self.add(
            description,
            [self._link(ifname, where).add_address_command(addr, nodad=addr.version == 6)],
            [self._link(ifname, where).del_address_command(addr)],
            functools.partial(_has_address, where, ifname, addr),
        )

    def host_forwarding(self, ifname: str) -> None:
        """IPv4 forwarding on one host interface (the bridge, a host link end); IPv6's too on a dual-stack network.

        IPv6 forwards by ``net.ipv6.conf.all.forwarding`` alone (the firewall's step sets it, with a
        record); the per-link setting makes the link act as a router (no router advertisements taken).
        """
        self.add(
            f"enable forwarding on {ifname}",
            [_sysctl_forwarding(ifname)],
            [],
            functools.partial(_forwarding, None, ifname),
        )
        if self.net.dual:
            self.add(
                f"enable IPv6 forwarding on {ifname}",
                [_sysctl_forwarding(ifname, 6)],
                [],
                functools.partial(_forwarding6, None, ifname),
            )

    def mtu(self, mtu: int, ends: list[tuple[str | None, str]]) -> None:
        """The MTU of a link's ends (each in its place; the bridge follows its ports' smallest)."""
        names = " and ".join(f"{ifname} in {where or 'the host'}" for where, ifname in ends)
        self.add(
            f"set the MTU of {names} to {mtu}",
            [self._link(ifname, where).mtu_command(mtu) for where, ifname in ends],
            [],  # the links' deletion takes it along
            functools.partial(_mtu_is, mtu, tuple(ends)),
        )

    def sysctl(self, netns: str, key: str, value: str) -> None:
        """A setting inside a namespace (``sysctl -w KEY=VALUE`` there); it goes with the namespace."""
        self.add(
            f"set {key} = {value} inside namespace {netns}",
            [Namespace(netns, runner=self.runner).sysctl_command(key, value)],
            [],
            functools.partial(_sysctl_is, netns, key, value),
        )

    def files(self) -> None:
        """Each namespace's hosts (and resolv.conf where dns is asked for) under /etc/netns."""
        wanted = files.wanted(self.net)
        if wanted:
            self.entries.append((files.step(self.net, wanted), functools.partial(_files_done, self.net)))

    def route(self, where: str | None, route: RouteSpec) -> None:
        """A route in namespace ``where`` (the host for None): one per family (a default of each family)."""
        for one in route.per_family(self.net.dual):
            six = " (IPv6)" if one.version == 6 and one.via is None and one.to == "default" else ""
            self.add(
                f"route {' '.join(one.spec())}{six} in {where or 'the host'}",
                [self._route(where, one).add_command()],
                [self._route(where, one).delete_command()],
                functools.partial(_has_route, where, one),
            )

    def _route(self, where: str | None, route: RouteSpec) -> Route:
        return Route(route.to, route.via, route.dev, where, runner=self.runner, family=route.version)

    def bridge(self) -> None:
        """The bridge, marked, with the host's gateway address on it, forwarding (unless the gateway is elsewhere)."""
        net = self.net
        bridge = Bridge(net.bridge, group=net.group, multicast_snooping=net.multicast_snooping, runner=self.runner)
        self.add(
            f"create bridge {net.bridge} (link group {net.group})",
            [bridge.create_command(up=True)],
            [bridge.delete_command()],
            functools.partial(_link_there, None, net.bridge),
        )
        self.mark_link(net.bridge)
        if not net.gateway_on_host:
            return  # another host has the gateway and routes for the subnet (netnskit.cluster)
        gw = net.gateway_interface
        self.address(f"give the host the gateway address {gw} on {net.bridge}", None, net.bridge, gw)
        gw6 = net.gateway6_interface
        if gw6 is not None:
            self.address(f"give the host the IPv6 gateway address {gw6} on {net.bridge}", None, net.bridge, gw6)
        self.host_forwarding(net.bridge)

    def bridged(self, ns: NamespaceSpec, addr: IPv4Interface, addr6: IPv6Interface | None = None) -> None:
        """A namespace on the bridge: one veth made inside it, attached and up, its address and routes."""
        net = self.net
        pair = VethPair(
            ns.host_ifname,
            ns.ifname,
            peer_netns=ns.name,
            master=net.bridge,
            group=net.group,
            mtu=net.mtu,
            runner=self.runner,
        )
        self.add(
            f"connect namespace {ns.name} to {net.bridge} ({ns.host_ifname} <-> {ns.ifname})",
            [pair.create_command(up=net.link_local)],
            [pair.delete_command()],
            functools.partial(_link_there, None, ns.host_ifname),
        )
        self.mark_link(ns.host_ifname, quiet_up=not net.link_local)
        if ns.mtu is not None and ns.mtu != net.mtu:
            # the namespace's own MTU wins over the network's (which the veth was made with)
            self.mtu(ns.mtu, [(None, ns.host_ifname), (ns.name, ns.ifname)])
        # one request: the kernel applies addrgenmode before the link comes up (no address is made)
        quiet = () if net.link_local else ("addrgenmode", "none")
        self.add(
            f"bring up {ns.ifname} in {ns.name}" + ("" if net.link_local else " (no IPv6 link-local address)"),
            [self._link(ns.ifname, ns.name).set_command(*quiet, "up")],
            [self._link(ns.ifname, ns.name).down_command()],
            functools.partial(_link_up, ns.name, ns.ifname),
        )
        self.address(f"address {ns.name}'s {ns.ifname} as {addr}", ns.name, ns.ifname, addr)
        if addr6 is not None:
            self.address(f"address {ns.name}'s {ns.ifname} as {addr6}", ns.name, ns.ifname, addr6)
        routes = list(ns.routes)
        if ns.default_route:
            routes.insert(0, RouteSpec("default", via=net.gateway, via6=net.gateway6))
        for route in routes:
            self.route(ns.name, route)

    def link(self, link: LinkSpec) -> None:
        """An extra veth link (LAN, internet stand-in): made, marked on the host, up, addressed."""
        on_host = link.netns is None
        pair = VethPair(
            link.name,
            link.peer,
            netns=link.netns,
            peer_netns=link.peer_netns,
            group=self.net.group if on_host else None,
            runner=self.runner,
        )
        where = "the host" if on_host else link.netns
        self.add(
            f"create link {link.name} ({where}) <-> {link.peer} ({link.peer_netns or 'the host'})",
            [pair.create_command(up=True)],
            [pair.delete_command()],
            functools.partial(_link_there, link.netns, link.name),
        )
        if on_host:
            self.mark_link(link.name)
        if link.mtu is not None:
            self.mtu(link.mtu, [(link.netns, link.name), (link.peer_netns, link.peer)])
        self.add(
            f"bring up {link.peer} in {link.peer_netns or 'the host'}",
            [self._link(link.peer, link.peer_netns).up_command()],
            [self._link(link.peer, link.peer_netns).down_command()],
            functools.partial(_link_up, link.peer_netns, link.peer),
        )
        for (place, ifname, address), (_, _, address6) in zip(link.ends(), link.ends6(), strict=True):
            for one in (address, address6):
                if one is not None:
                    self.address(f"address {ifname} in {place or 'the host'} as {one}", place, ifname, one)
            if place is None:
                self.host_forwarding(ifname)


def _entries(net: Network) -> list[tuple[Step, _Done]]:
    """Every step of the network's plan but the firewall's, each with its ``done`` predicate."""
    plan = _PlanBuilder(net)
    for name in net.namespace_names():
        plan.namespace(name)
    for extra in net.extra_namespaces:
        if extra.forwarding:
            plan.router(extra.name)
    plan.bridge()
    addrs = net.addresses()
    addrs6 = net.addresses6()
    for ns in net.namespaces:
        plan.bridged(ns, addrs[ns.name], addrs6.get(ns.name))
    for link in net.links:
        plan.link(link)
    for route in net.routes:
        plan.route(route.netns, route)
    for space in net.spaces():
        for key, value in space.sysctls:
            plan.sysctl(space.name, key, value)
    plan.files()
    # firewall rules (commented netnskit:NAME) come from netnskit.firewall: see .firewall._firewall_steps
    return plan.entries

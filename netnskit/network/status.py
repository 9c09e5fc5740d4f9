"""The status of a network: the plan's steps the kernel does not show as done, and what exists, as typed objects."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from netnskit.link import AddressInfo, LinkInfo, Neighbour, RouteInfo, neighbours
from netnskit.network.files import digest, wanted
from netnskit.network.firewall import _firewall_steps
from netnskit.network.processes import ProcessStatus, statuses
from netnskit.network.state import _Facts, _host_link_ours, _namespace_ours
from netnskit.plan import Step

if TYPE_CHECKING:
    from netnskit.network.network import Network


@attrs.frozen
class NamespaceStatus:
    """One namespace of the network as the kernel shows it (``ip -j`` parsed into typed objects)."""

    name: str
    present: bool
    ours: bool
    links: tuple[LinkInfo, ...] = ()
    addresses: tuple[AddressInfo, ...] = ()
    routes: tuple[RouteInfo, ...] = ()
    neighbours: tuple[Neighbour, ...] = ()


@attrs.frozen
class NetworkStatus:
    """The network's state, read with ``ip -j`` and ``iptables-save``: what exists and what is missing."""

    name: str
    up: bool
    namespaces: tuple[NamespaceStatus, ...]
    host_links: tuple[LinkInfo, ...]
    host_addresses: tuple[AddressInfo, ...]
    host_routes: tuple[RouteInfo, ...]
    rules: tuple[str, ...]
    missing: tuple[str, ...]
    processes: tuple[ProcessStatus, ...] = ()
    files: tuple[str, ...] = ()  # the files under /etc/netns that hold what the network writes

    def to_json(self) -> dict[str, Any]:
        """A plain dict (addresses as strings) for ``netnskit status --json``."""
        return attrs.asdict(self, recurse=True, value_serializer=_plain)


def _plain(instance: object, field: object, value: object) -> object:
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return str(value)
    return value


def _missing(net: Network, f: _Facts) -> list[Step]:
    core = [step for step, done in net._entries() if not done(f)]
    # the firewall reads sysctls of the bridge: before it exists, all of its steps are missing
    live = net.bridge in f.links.get(None, {})
    return core + _firewall_steps(net, live=live)


def _status(net: Network, f: _Facts) -> NetworkStatus:
    def typed(where: str | None, only: Iterable[str] | None = None) -> tuple[Any, ...]:
        keep = None if only is None else set(only)
        links = tuple(
            LinkInfo.from_json(d) for n, d in sorted(f.links.get(where, {}).items()) if keep is None or n in keep
        )
        raw = f.raw.get(where, {})
        addrs = tuple(a for d in raw.get("addr", []) for a in AddressInfo.from_json(d) if keep is None or a.dev in keep)
        routes = tuple(RouteInfo.from_json(r) for r in raw.get("route", []) if keep is None or r.get("dev") in keep)
        return links, addrs, routes

    spaces = []
    for name in net.namespace_names():
        present = name in f.netns
        links, addrs, routes = typed(name) if present else ((), (), ())
        neigh = tuple(neighbours(net.runner, name)) if present else ()
        ours_ns = present and _namespace_ours(net, f, name)
        spaces.append(NamespaceStatus(name, present, ours_ns, links, addrs, routes, neigh))
    names = net.host_ifnames()
    host = f.links.get(None, {})
    ours = sorted(n for n, d in host.items() if _host_link_ours(d, net.mark, net.group, names))
    host_links, host_addresses, host_routes = typed(None, ours)
    processes = tuple(statuses(net))
    missing = tuple(step.description for step in _missing(net, f))
    missing += tuple(f"process {p.name} in {p.netns} ({p.state})" for p in processes if p.state != "running")
    written = tuple(sorted(p for p, text in wanted(net).items() if f.files.digests.get(p) == digest(text)))
    return NetworkStatus(
        net.name,
        not missing,
        tuple(spaces),
        host_links,
        host_addresses,
        host_routes,
        f.rules,
        missing,
        processes,
        written,
    )

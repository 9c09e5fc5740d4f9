"""A cluster's description: its hosts, where each namespace lives, and the split into per-host parts.

All pure: :func:`split` checks the placement and returns, for each host, the :class:`Network` it
carries (its namespaces, the network's bridge, the gateway only on the gateway host) and its
VXLAN link, before any command runs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address

import attrs

from netnskit import _validate as v
from netnskit.cluster.vxlan import VXLAN_OVERHEAD, Vxlan
from netnskit.errors import ValidationError
from netnskit.network import LinkSpec, Network, RouteSpec
from netnskit.runner import Runner

__all__ = ["DEFAULT_UNDERLAY_MTU", "HostPart", "HostSpec", "split", "vxlan_name_for"]

DEFAULT_UNDERLAY_MTU = 1500  # an Ethernet underlay; the overlay gets 1450 unless the file says mtu


def _host_name(value: object) -> str:
    # a label in messages, scripts and probe names: the rule of a namespace name
    return v.netns_name(value)


def _ssh_destination(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or value.startswith("-") or any(c.isspace() for c in value):
        raise ValidationError("ssh", value, "must be an ssh destination (user@host), without blanks, not '-...'")
    return value


def _underlay(value: object) -> IPv4Address | None:
    if value is None:
        return None
    addr = v.ip_address(value)
    if not isinstance(addr, IPv4Address):
        raise ValidationError("underlay", str(value), "must be an IPv4 address")
    return addr


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValidationError("local", value, "must be true or false")
    return value


@attrs.frozen
class HostSpec:
    """A host of a cluster: reached over ``ssh`` (``user@address``) or ``local``; ``underlay``: its VXLAN address.

    ``underlay`` defaults to the ssh destination's address when that is an IPv4 address.
    """

    name: str = attrs.field(converter=_host_name)
    ssh: str | None = attrs.field(default=None, converter=_ssh_destination)
    local: bool = attrs.field(default=False, converter=_flag)
    underlay: IPv4Address | None = attrs.field(default=None, converter=_underlay)

    def __attrs_post_init__(self) -> None:
        if (self.ssh is None) == (not self.local):
            raise ValidationError("host", self.name, 'needs exactly one of ssh = "user@address" or local = true')

    @property
    def address(self) -> IPv4Address | None:
        """The underlay address: given, else the ssh destination's if it is an IPv4 address."""
        if self.underlay is not None or self.ssh is None:
            return self.underlay
        try:
            found = ipaddress.ip_address(self.ssh.rpartition("@")[2])
        except ValueError:
            return None
        return found if isinstance(found, IPv4Address) else None

    @property
    def reached(self) -> str:
        """How the host is reached, for people: ``ssh root@10.0.0.2`` or ``local``."""
        return "local" if self.ssh is None else f"ssh {self.ssh}"


@attrs.frozen
class HostPart:
    """One host's part of a cluster: the Network it carries (through its runner) and its VXLAN link."""

    host: HostSpec
    network: Network
    vxlan: Vxlan | None  # None: a cluster of one host needs no overlay
    peers: tuple[IPv4Address, ...]

    @property
    def runner(self) -> Runner:
        """Where this host's commands run."""
        return self.network.runner


def vxlan_name_for(name: str, vni: int) -> str:
    """The VXLAN link of network ``name``: ``vx-NAME``, or ``vx-VNI`` (6 hex digits) when that is too long."""
    candidate = f"vx-{name}"
    try:
        return v.ifname(candidate)
    except ValidationError:
        return f"vx-{vni:06x}"


def _unique(what: str, items: Sequence[object]) -> None:
    for item in items:
        if items.count(item) > 1:
            raise ValidationError(what, str(item), "is used twice")


def split(
    network: Network,
    hosts: Sequence[HostSpec],
    gateway_host: str,
    placement: Mapping[str, str],
    route_hosts: Sequence[str | None],
    vni: int,
    runners: Mapping[str, Runner],
) -> dict[str, HostPart]:
    """Each host's part of ``network`` (pure); raises ValidationError for a placement that cannot work."""
    names = [h.name for h in hosts]
    if not names:
        raise ValidationError("hosts", [], "a cluster needs at least one [[host]]")
    if network.dual:
        # each host's part would silently be IPv4 only: refuse rather than drop the IPv6 half
        rule = "is not supported across hosts yet: a cluster's network is IPv4 only (leave out subnet6 and gateway6)"
        raise ValidationError("subnet6", str(network.subnet6), rule)
    _unique("host name", names)
    if gateway_host not in names:
        raise ValidationError("gateway_host", gateway_host, f"must be one of the hosts ({', '.join(names)})")
    if len(hosts) > 1:
        for host in hosts:
            if host.address is None:
                rule = 'needs an underlay address (its ssh destination is not an IPv4 address): underlay = "A.B.C.D"'
                raise ValidationError("host", host.name, rule)
        _unique("underlay address", [h.address for h in hosts])
    spaces = network.namespace_names()
    known = f"must be one of the hosts ({', '.join(names)})"
    for name, placed in placement.items():
        if name not in spaces:
            raise ValidationError("namespace", name, f"is placed on host {placed!r} but is not one of the network")
        if placed not in names:
            raise ValidationError("host", placed, f"(of namespace {name!r}) {known}")
    where = {name: placement.get(name, gateway_host) for name in spaces}
    link_host = {id(link): _link_host(link, where) for link in network.links}
    if len(route_hosts) > len(network.routes):
        raise ValidationError("route hosts", list(route_hosts), f"are more than the {len(network.routes)} routes")
    route_host = [
        _route_host(network, route, route_hosts[i] if i < len(route_hosts) else None, where, link_host, gateway_host)
        for i, route in enumerate(network.routes)
    ]
    for placed in route_host:
        if placed not in names:
            raise ValidationError("route host", placed, known)
    many = len(hosts) > 1
    mtu = network.mtu if network.mtu is not None or not many else DEFAULT_UNDERLAY_MTU - VXLAN_OVERHEAD
    addresses = network.addresses()
    vx_name = vxlan_name_for(network.name, vni)
    parts: dict[str, HostPart] = {}
    for host in hosts:
        here = host.name
        gateway = here == gateway_host
        local = [attrs.evolve(ns, address=addresses[ns.name]) for ns in network.namespaces if where[ns.name] == here]
        remote = [(ns.name, addresses[ns.name].ip) for ns in network.namespaces if where[ns.name] != here]
        part = Network(
            name=network.name,
            bridge=network.bridge,
            subnet=network.subnet,
            gateway=network.gateway,
            namespaces=local,
            masquerade=network.masquerade and gateway,
            port_forwards=network.port_forwards if gateway else (),
            extra_namespaces=[x for x in network.extra_namespaces if where[x.name] == here],
            links=[link for link in network.links if link_host[id(link)] == here],
            routes=[route for route, h in zip(network.routes, route_host, strict=True) if h == here],
            group=network.group,
            ipv6_link_local=network.ipv6_link_local,
            multicast_snooping=network.multicast_snooping,
            mtu=mtu,
            gateway_on_host=gateway,
            remote_addresses=remote if gateway else (),
            dns=network.dns,
            # one host's part knows only its own namespaces: a hosts file written from it would
            # miss the others, so a cluster writes none (resolv.conf from dns, sysctls, MTU stay)
            hosts=False,
            processes=[p for p in network.processes if where.get(p.netns) == here],
            logs=network.logs,
            overlay_links=(vx_name,),
            runner=runners[here],
            directory=network.directory,
        )
        if vx_name in part.host_ifnames():
            raise ValidationError("interface name", vx_name, f"is the network's VXLAN link on host {here!r}")
        peers = tuple(h.address for h in hosts if h.name != here and h.address is not None)
        vxlan = None
        if many and host.address is not None:
            vxlan = Vxlan(
                vx_name,
                vni,
                host.address,
                master=network.bridge,
                group=network.group,
                mtu=mtu,
                runner=runners[here],
            )
        parts[here] = HostPart(host, part, vxlan, peers)
    return parts


def _link_host(link: LinkSpec, where: Mapping[str, str]) -> str:
    """A link lives on the host of the namespaces it joins (both must be on one host)."""
    found = {where[ns] for ns in (link.netns, link.peer_netns) if ns is not None}
    if len(found) != 1:
        rule = f"joins namespaces on different hosts ({', '.join(sorted(found))}): a veth cannot cross hosts"
        raise ValidationError("link", link.name, rule)
    return found.pop()


def _route_host(
    network: Network,
    route: RouteSpec,
    given: str | None,
    where: Mapping[str, str],
    link_host: Mapping[int, str],
    gateway_host: str,
) -> str:
    """A route in a namespace lives on its host; one on a host's own table on the host given, else on
    the host whose own link ends reach its gateway, else on the gateway host."""
    if route.netns is not None:
        found = where[route.netns]
        if given is not None and given != found:
            raise ValidationError("route host", given, f"differs from the host of namespace {route.netns!r} ({found})")
        return found
    if given is not None:
        return given
    if route.via is not None:
        reaching = {
            link_host[id(link)]
            for link in network.links
            if link.netns is None and link.address is not None and route.via in link.address.network
        }
        if len(reaching) == 1:
            return reaching.pop()
    return gateway_host

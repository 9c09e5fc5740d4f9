"""The description of a network: the spec types and their converters, ownership marks, validation of a
whole network and address allocation.

All pure, checked before any process runs. IPv4 always; IPv6 beside it where the network has a
``subnet6`` (dual stack): each namespace, link end and route may then carry IPv6 too.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from typing import TYPE_CHECKING, Any

import attrs

from netnskit import _validate as v
from netnskit.errors import ValidationError
from netnskit.process import Ready, command, ready
from netnskit.qdisc import Impairment, format_time, parse_time

if TYPE_CHECKING:
    from netnskit.network.network import Network


MARK_PREFIX = "netnskit:"


def mark_for(name: str) -> str:
    """The alias and rule comment that mark what network ``name`` owns: ``netnskit:NAME``."""
    return MARK_PREFIX + name


def owner_of(alias: object) -> str | None:
    """The network a mark names (``netnskit:walk`` -> ``walk``), None for anything else."""
    text = str(alias or "")
    return text[len(MARK_PREFIX) :] if text.startswith(MARK_PREFIX) and len(text) > len(MARK_PREFIX) else None


def group_for(name: str) -> int:
    """The link group of network ``name``: a stable number from 65536 to 2**31-1 (crc32 of the name)."""
    return 65536 + zlib.crc32(f"netnskit:{name}".encode()) % (2**31 - 65536)


def _v4_address(value: object) -> IPv4Address:
    addr = v.ip_address(value)
    if not isinstance(addr, IPv4Address):
        raise ValidationError("address", str(value), "must be IPv4 (Network is IPv4 only for now)")
    return addr


def _v4_interface(value: object) -> IPv4Interface:
    iface = v.ip_interface(value)
    if not isinstance(iface, IPv4Interface):
        raise ValidationError("address", str(value), "must be IPv4 (Network is IPv4 only for now)")
    return iface


def _v4_network(value: object) -> IPv4Network:
    net = v.ip_network(value)
    if not isinstance(net, IPv4Network):
        raise ValidationError("subnet", str(value), "must be IPv4 (Network is IPv4 only for now)")
    return net


def _opt_address(value: object) -> IPv4Address | None:
    return None if value is None else _v4_address(value)


def _v6_address(value: object, what: str = "address6") -> IPv6Address:
    addr = v.ip_address(value)
    if not isinstance(addr, IPv6Address):
        raise ValidationError(what, str(value), "must be IPv6, like fd15::2")
    return addr


def _v6_interface(value: object, what: str = "address6") -> IPv6Interface:
    iface = v.ip_interface(value)
    if not isinstance(iface, IPv6Interface):
        raise ValidationError(what, str(value), "must be IPv6 with its prefix length, like fd16::2/64")
    return iface


def _opt_v6_network(value: object) -> IPv6Network | None:
    if value is None:
        return None
    net = v.ip_network(value)
    if not isinstance(net, IPv6Network):
        raise ValidationError("subnet6", str(value), "must be an IPv6 subnet, like fd15::/64 (a ULA)")
    return net


def _opt_v6_address(value: object) -> IPv6Address | None:
    return None if value is None else _v6_address(value, "gateway6")


def _opt_via6(value: object) -> IPv6Address | None:
    return None if value is None else _v6_address(value, "via6")


def _ns_address6(value: object) -> IPv6Address | IPv6Interface | None:
    # ADDRESS, or ADDRESS/PREFIX (subnet6's prefix: checked with the network, see _allocate6)
    if value is None:
        return None
    with_prefix = isinstance(value, IPv6Interface) or (isinstance(value, str) and "/" in value)
    return _v6_interface(value) if with_prefix else _v6_address(value)


def _link_address6(value: object) -> IPv6Interface | None:
    if isinstance(value, str) and "/" not in value:
        raise ValidationError("link address6", value, "must be ADDRESS/PREFIX with its prefix length, like fd16::2/64")
    return None if value is None else _v6_interface(value, "link address6")


def _opt_any_address(value: object) -> IPv4Address | IPv6Address | None:
    return None if value is None else v.ip_address(value)


def _ns_address(value: object) -> IPv4Address | IPv4Interface | None:
    # ADDRESS, or ADDRESS/PREFIX (the subnet's prefix: checked with the network, see _allocate)
    if value is None:
        return None
    with_prefix = isinstance(value, IPv4Interface) or (isinstance(value, str) and "/" in value)
    return _v4_interface(value) if with_prefix else _v4_address(value)


def _link_address(value: object) -> IPv4Interface | None:
    # a link end has no subnet to take a prefix from: its address carries one
    if isinstance(value, str) and "/" not in value:
        raise ValidationError(
            "link address", value, "must be ADDRESS/PREFIX with its prefix length, like 192.168.1.2/24"
        )
    return None if value is None else _v4_interface(value)


def _opt_ifname(value: object) -> str | None:
    return None if value is None else v.ifname(value)


def _opt_ports(value: object) -> tuple[int, int] | None:
    return None if value is None else v.port_range(value)


def _route_to(value: object) -> IPv4Network | IPv6Network | str:
    # "default" (of each family the route names a gateway for), or an IPv4 or IPv6 destination
    if value == "default":
        return "default"
    return v.ip_network(value)


def _impairment(value: object) -> Impairment | None:
    # an ``impair = {...}`` table, an Impairment, or None for none
    if value is None or isinstance(value, Impairment):
        return value
    if isinstance(value, dict):
        return Impairment.from_mapping(value)
    raise ValidationError("impair", value, 'must be a table of impairments, like { delay = "50ms", loss = "1%" }')


def _remote(value: object) -> tuple[tuple[str, IPv4Address], ...]:
    # {name: address} (or (name, address) pairs): bridged namespaces that live on other hosts
    pairs = value.items() if isinstance(value, dict) else _list("remote_addresses", value)
    out: list[tuple[str, IPv4Address]] = []
    for pair in pairs:
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise ValidationError("remote_addresses", pair, "must map a namespace name to its address")
        out.append((v.netns_name(pair[0]), _v4_address(pair[1])))
    return tuple(out)


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValidationError("flag", value, "must be true or false")
    return value


def _opt_flag(value: object) -> bool | None:
    return None if value is None else _flag(value)


def _opt_mtu(value: object) -> int | None:
    return None if value is None else v.mtu(value)


def _dns(value: object) -> tuple[IPv4Address | IPv6Address, ...]:
    # the nameservers of the namespace's resolv.conf (a DNS server may be IPv6 even on an IPv4 network)
    items = _list("dns", value)
    if len(items) > 3:
        raise ValidationError("dns", value, "may name at most 3 servers (resolv.conf reads no more)")
    return tuple(v.ip_address(item) for item in items)


def _opt_dns(value: object) -> tuple[IPv4Address | IPv6Address, ...] | None:
    return None if value is None else _dns(value)


_SYSCTL_KEY = re.compile(r"[a-z0-9_]+([./][A-Za-z0-9_-]+)+\Z")  # (no ':': a read of /proc/sys splits on it)


def sysctl_path(key: str) -> str:
    """The file under /proc/sys of a setting: dots are separators unless the key is written with slashes."""
    return "/proc/sys/" + (key if "/" in key else key.replace(".", "/"))


def _sysctls(value: object) -> tuple[tuple[str, str], ...]:
    # {"net.ipv4.ip_forward": 1}: written inside the namespace with sysctl -w KEY=VALUE, in this order
    if isinstance(value, tuple | list):
        pairs = [tuple(p) for p in value]
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        raise ValidationError("sysctls", value, 'must be a table of settings, like { "net.ipv4.ip_forward" = 1 }')
    out: list[tuple[str, str]] = []
    for pair in pairs:
        if len(pair) != 2:
            raise ValidationError("sysctls", value, "must map each setting to its value")
        key, raw = pair
        if not isinstance(key, str) or not _SYSCTL_KEY.match(key):
            raise ValidationError(
                "sysctl", key, "must be a setting's name, like net.ipv4.ip_forward or net/ipv4/conf/eth0.5/forwarding"
            )
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise ValidationError(f"sysctl {key}", raw, "must be an integer or a string")
        text = str(raw)
        if not text.strip() or not text.isprintable() or not text.isascii():
            raise ValidationError(f"sysctl {key}", raw, "must be printable ASCII, not empty")
        if key in dict(out):
            raise ValidationError("sysctl", key, "is set twice")
        out.append((key, text))
    return tuple(out)


@attrs.frozen
class RouteSpec:
    """A route on the host (``netns=None``) or inside one of the network's namespaces.

    ``to`` is ``default`` or an IPv4 or IPv6 destination; ``via`` a gateway of its family. A
    ``default`` route is one per family: ``via`` (IPv4 or IPv6) and ``via6`` (IPv6) name each
    family's gateway, and with ``dev`` alone it is the default of every family the network has.
    ``family`` (4 or 6; None: from the addresses) is set by :meth:`per_family`.
    """

    to: IPv4Network | IPv6Network | str = attrs.field(converter=_route_to)
    via: IPv4Address | IPv6Address | None = attrs.field(default=None, converter=_opt_any_address)
    dev: str | None = attrs.field(default=None, converter=_opt_ifname)
    netns: str | None = attrs.field(default=None, converter=v.optional_netns)
    via6: IPv6Address | None = attrs.field(default=None, converter=_opt_via6)
    family: int | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.via is None and self.via6 is None and self.dev is None:
            raise ValidationError("route", str(self.to), "needs a gateway (via) or a device (dev)")
        if self.via6 is not None and self.to != "default":
            raise ValidationError("route via6", str(self.via6), 'is for a default route only (to = "default")')
        if self.via6 is not None and isinstance(self.via, IPv6Address):
            raise ValidationError("route via", str(self.via), "must be IPv4 beside via6 (via6 is the IPv6 gateway)")
        to = self.to
        if self.via is not None and not isinstance(to, str) and self.via.version != to.version:
            raise ValidationError("route via", str(self.via), f"must be IPv{to.version} like its destination {to}")

    @property
    def version(self) -> int:
        """4 or 6: this route's family (a route of :meth:`per_family`, or one with an address)."""
        if self.family is not None:
            return self.family
        if not isinstance(self.to, str):
            return self.to.version
        return 6 if self.via is None and self.via6 is not None else (self.via.version if self.via else 4)

    def per_family(self, six: bool) -> list[RouteSpec]:
        """This route as one route per family (``six``: the network has IPv6, for a default by device)."""
        if self.to != "default":
            return [attrs.evolve(self, family=self.version)]
        out = []
        if isinstance(self.via, IPv4Address) or (self.via is None and self.via6 is None):
            out.append(attrs.evolve(self, via6=None, family=4))
        six_via = self.via6 if self.via6 is not None else (self.via if isinstance(self.via, IPv6Address) else None)
        if six_via is not None or (self.via is None and self.via6 is None and six):
            out.append(attrs.evolve(self, via=six_via, via6=None, family=6))
        return out

    def spec(self) -> list[str]:
        """``TO [via GW] [dev DEV]``."""
        out = [str(self.to)]
        if self.via is not None:
            out += ["via", str(self.via)]
        if self.via6 is not None:
            out += ["via6", str(self.via6)]
        if self.dev is not None:
            out += ["dev", self.dev]
        return out


def _routes(items: Iterable[RouteSpec | dict[str, Any]]) -> tuple[RouteSpec, ...]:
    if isinstance(items, str | bytes):
        raise ValidationError("routes", items, "must be a list")
    return tuple(r if isinstance(r, RouteSpec) else RouteSpec(**r) for r in items)


@attrs.frozen
class NamespaceSpec:
    """A namespace on the bridge: one veth (``ifname`` inside, ``host_ifname`` on the bridge).

    ``address``: ADDRESS or ADDRESS/PREFIX on the network's subnet (the prefix must be the subnet's);
    None takes the next free one. ``address6`` likewise on ``subnet6`` (a dual-stack network only).
    """

    name: str = attrs.field(converter=v.netns_name)
    address: IPv4Address | IPv4Interface | None = attrs.field(default=None, converter=_ns_address)
    ifname: str = attrs.field(default="eth0", converter=v.ifname)
    host_ifname: str = attrs.field(converter=v.ifname)
    default_route: bool = attrs.field(default=True, converter=_flag)
    routes: tuple[RouteSpec, ...] = attrs.field(default=(), converter=_routes)
    mtu: int | None = attrs.field(default=None, converter=_opt_mtu)  # both ends of its veth (over the network's)
    dns: tuple[IPv4Address | IPv6Address, ...] | None = attrs.field(default=None, converter=_opt_dns)
    sysctls: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_sysctls)
    impair: Impairment | None = attrs.field(default=None, converter=_impairment)  # both ends of its veth
    address6: IPv6Address | IPv6Interface | None = attrs.field(default=None, converter=_ns_address6)

    @host_ifname.default
    def _host_ifname(self) -> str:
        name = f"veth-{self.name}"
        if len(name) > v.IFNAME_MAX:
            raise ValidationError(
                "namespace name", self.name, f"too long for the default host interface {name!r}; set host_ifname"
            )
        return name


def _spec(item: NamespaceSpec | str | dict[str, Any]) -> NamespaceSpec:
    if isinstance(item, NamespaceSpec):
        return item
    if isinstance(item, str):
        return NamespaceSpec(item)
    return NamespaceSpec(**item)


@attrs.frozen
class ExtraNamespace:
    """A namespace off the bridge (a LAN host, an internet stand-in); ``forwarding`` makes it a router."""

    name: str = attrs.field(converter=v.netns_name)
    forwarding: bool = attrs.field(default=False, converter=_flag)
    dns: tuple[IPv4Address | IPv6Address, ...] | None = attrs.field(default=None, converter=_opt_dns)
    sysctls: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_sysctls)


@attrs.frozen
class LinkSpec:
    """A veth pair between the host (``netns=None``) or a namespace and another namespace."""

    name: str = attrs.field(converter=v.ifname)
    peer: str = attrs.field(converter=v.ifname)
    netns: str | None = attrs.field(default=None, converter=v.optional_netns)
    peer_netns: str | None = attrs.field(default=None, converter=v.optional_netns)
    address: IPv4Interface | None = attrs.field(default=None, converter=_link_address)
    peer_address: IPv4Interface | None = attrs.field(default=None, converter=_link_address)
    mtu: int | None = attrs.field(default=None, converter=_opt_mtu)  # both ends
    impair: Impairment | None = attrs.field(default=None, converter=_impairment)  # both ends
    address6: IPv6Interface | None = attrs.field(default=None, converter=_link_address6)
    peer_address6: IPv6Interface | None = attrs.field(default=None, converter=_link_address6)

    def __attrs_post_init__(self) -> None:
        if self.netns == self.peer_netns:
            raise ValidationError("link", self.name, "its two ends must be in different namespaces")
        if self.peer_netns is None:
            # the first end is the one created with the link group: the host's end must be it
            raise ValidationError("link", self.name, "a link's host end must be its first end (name, no netns)")

    def ends(self) -> list[tuple[str | None, str, IPv4Interface | None]]:
        """(netns, ifname, address) of both ends."""
        return [(self.netns, self.name, self.address), (self.peer_netns, self.peer, self.peer_address)]

    def ends6(self) -> list[tuple[str | None, str, IPv6Interface | None]]:
        """(netns, ifname, IPv6 address) of both ends."""
        return [(self.netns, self.name, self.address6), (self.peer_netns, self.peer, self.peer_address6)]


def _host_address(value: object) -> IPv4Address | IPv6Address | None:
    addr = _opt_any_address(value)
    if addr is None:
        return None
    if addr.is_multicast or addr.is_unspecified or addr == IPv4Address("255.255.255.255"):
        raise ValidationError("host address", str(value), "must be a unicast address of the host, like 192.168.1.2")
    if isinstance(addr, IPv6Address) and (addr.is_loopback or addr.is_link_local):
        # the kernel does not forward what arrives on ::1 (no route_localnet for IPv6), nor link-local
        rule = "must not be ::1 or link-local: the kernel cannot forward a connection to ::1 out of the host"
        raise ValidationError("host address", str(value), rule)
    return addr


@attrs.frozen
class ForwardSpec:
    """Forward host port(s) to a port of a namespace on the bridge.

    Without ``host_address`` the forward answers on every address of the host (as Docker's ``-p``
    does), over IPv6 too where the network has subnet6; with it, only on that one (of its family).
    """

    host_port: tuple[int, int] = attrs.field(converter=v.port_range)
    netns: str = attrs.field(converter=v.netns_name)
    port: tuple[int, int] | None = attrs.field(default=None, converter=_opt_ports)
    protocol: str = attrs.field(default="tcp", converter=v.protocol)
    host_address: IPv4Address | IPv6Address | None = attrs.field(default=None, converter=_host_address)


def _order(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("process order", value, "must be an integer")
    return value


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        raise ValidationError("ready_timeout", value, "must be a number of seconds from 0 to 3600")
    return float(value)


def _opt_path(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or "\0" in value or "\n" in value:
        raise ValidationError("path", value, "must be a non-empty path on one line")
    return value


@attrs.frozen
class ProcessSpec:
    """A process the network runs in one of its namespaces: started by ``up`` (in ``order``, each
    waited for until ``ready``), stopped by ``down``; its output goes to a log file."""

    name: str = attrs.field(converter=v.netns_name)
    netns: str = attrs.field(converter=v.netns_name)
    command: tuple[str, ...] = attrs.field(converter=command)
    ready: Ready | None = attrs.field(default=None, converter=ready)
    order: int = attrs.field(default=0, converter=_order)
    ready_timeout: float = attrs.field(default=10.0, converter=_seconds)
    cwd: str | None = attrs.field(default=None, converter=_opt_path)  # relative: to the network's directory


def _processes(items: Iterable[ProcessSpec | dict[str, Any]]) -> tuple[ProcessSpec, ...]:
    return tuple(x if isinstance(x, ProcessSpec) else ProcessSpec(**x) for x in _list("processes", items))


def _fault_at(value: object) -> str:
    # a fault may start at once: "0s"
    if value in ("0", "0s", "0ms", "0us"):
        return "0s"
    return format_time(parse_time("fault at", value))


def _fault_for(value: object) -> str:
    return format_time(parse_time("fault for", value))


def _fault_link(value: object) -> str:
    # a namespace's name or a link's (an interface name is a namespace name too): checked with the network
    return v.netns_name(value)


@attrs.frozen
class FaultSpec:
    """A fault on one cable (a namespace on the bridge or a link, by name) from ``at`` for ``duration``.

    The action is ``down=True`` (the cable cut: both ends down, then up again with their routes)
    or ``impair`` (an impairment in place of the file's, which comes back at the end). Times as
    tc writes them (``5s``, ``500ms``); the TOML key of ``duration`` is ``for``.
    """

    at: str = attrs.field(converter=_fault_at)
    duration: str = attrs.field(converter=_fault_for)
    link: str = attrs.field(converter=_fault_link)
    down: bool = attrs.field(default=False, converter=_flag)
    impair: Impairment | None = attrs.field(default=None, converter=_impairment)

    def __attrs_post_init__(self) -> None:
        if self.down == (self.impair is not None):
            raise ValidationError("fault", self.link, "needs one action: down = true, or an impair table")

    @property
    def start_us(self) -> int:
        """When the fault starts, in microseconds from the start of the schedule."""
        return 0 if self.at == "0s" else parse_time("fault at", self.at)

    @property
    def end_us(self) -> int:
        """When the fault ends (the cable is restored), in microseconds from the start."""
        return self.start_us + parse_time("fault for", self.duration)

    def action(self) -> str:
        """``down``, or ``impair`` and the impairment."""
        return "down" if self.impair is None else f"impair {self.impair.describe()}"


def _faults(items: Iterable[FaultSpec | dict[str, Any]]) -> tuple[FaultSpec, ...]:
    out = []
    for x in _list("faults", items):
        if not isinstance(x, FaultSpec):
            fields = dict(x)
            if "for" in fields:
                fields["duration"] = fields.pop("for")
            x = FaultSpec(**fields)
        out.append(x)
    return tuple(out)


@attrs.frozen
class Cable:
    """A veth the network makes, seen as one cable: a namespace on the bridge, or a ``[[link]]``.

    ``ends[0]`` is the namespace's end (or the link's first end), ``ends[1]`` the host's end on
    the bridge (or the link's peer); each is ``(netns or None, ifname)``. An impairment's ``out``
    acts on what ``ends[0]`` sends, ``in`` on what ``ends[1]`` sends. Loss without netem is
    dropped in the namespace at ``ends[loss_end]``: the namespace's end, or a link's peer (always
    in a namespace).
    """

    name: str
    kind: str  # "namespace" or "link"
    ends: tuple[tuple[str | None, str], tuple[str | None, str]]
    impair: Impairment | None = None

    @property
    def loss_end(self) -> int:
        """Which end's namespace holds the netfilter loss rules (0 for a namespace, 1 for a link)."""
        return 0 if self.kind == "namespace" else 1

    def describe(self) -> str:
        """``namespace red`` or ``link v-lan``."""
        return f"{self.kind} {self.name}"

    @staticmethod
    def end_text(end: tuple[str | None, str]) -> str:
        """``eth0 in red`` or ``veth-red on the host``."""
        where, ifname = end
        return f"{ifname} on the host" if where is None else f"{ifname} in {where}"


def cables(net: Network) -> list[Cable]:
    """Every cable of the network: each namespace on the bridge, then each link."""
    out = [
        Cable(ns.name, "namespace", ((ns.name, ns.ifname), (None, ns.host_ifname)), ns.impair) for ns in net.namespaces
    ]
    out += [Cable(x.name, "link", ((x.netns, x.name), (x.peer_netns, x.peer)), x.impair) for x in net.links]
    return out


def cable(net: Network, name: str) -> Cable:
    """The cable called ``name``: a namespace on the bridge or a link; a ValidationError names what exists."""
    found = [c for c in cables(net) if c.name == name]
    if len(found) == 1:
        return found[0]
    if found:
        raise ValidationError(
            "link", name, "names both a namespace and a link of the network: rename one of them to pick a cable"
        )
    extra = {x.name for x in net.extra_namespaces}
    known = ", ".join(c.name for c in cables(net)) or "none"
    if name in extra:
        rule = f"is an extra namespace, off the bridge: name one of its links instead (cables: {known})"
    else:
        rule = f"is neither a namespace on the bridge nor a link of network {net.name!r} (cables: {known})"
    raise ValidationError("link", name, rule)


def _list(what: str, items: object) -> list[Any]:
    if isinstance(items, str | bytes) or not isinstance(items, Iterable):
        raise ValidationError(what, items, "must be a list")
    return list(items)


def _forwards(items: Iterable[ForwardSpec | dict[str, Any]]) -> tuple[ForwardSpec, ...]:
    return tuple(x if isinstance(x, ForwardSpec) else ForwardSpec(**x) for x in _list("port_forwards", items))


def _extras(items: Iterable[ExtraNamespace | str | dict[str, Any]]) -> tuple[ExtraNamespace, ...]:
    out = []
    for x in _list("extra_namespaces", items):
        if not isinstance(x, ExtraNamespace):
            x = ExtraNamespace(x) if isinstance(x, str) else ExtraNamespace(**x)
        out.append(x)
    return tuple(out)


def _links(items: Iterable[LinkSpec | dict[str, Any]]) -> tuple[LinkSpec, ...]:
    return tuple(x if isinstance(x, LinkSpec) else LinkSpec(**x) for x in _list("links", items))


def _namespaces(items: Iterable[NamespaceSpec | str | dict[str, Any]]) -> tuple[NamespaceSpec, ...]:
    if isinstance(items, str | bytes):
        raise ValidationError("namespaces", items, "must be a list")
    return tuple(_spec(i) for i in items)


# Ranges no network's subnet may touch: loopback, "this network" and multicast (the kernel routes
# none of them between interfaces as a subnet on a bridge would need).
_NOT_A_SUBNET = (
    (IPv4Network("127.0.0.0/8"), "loopback"),
    (IPv4Network("0.0.0.0/8"), "'this network'"),
    (IPv4Network("224.0.0.0/4"), "multicast"),
)


def _routable(what: str, value: IPv4Network | IPv4Interface) -> None:
    net = value.network if isinstance(value, IPv4Interface) else value
    for special, name in _NOT_A_SUBNET:
        if net.overlaps(special):
            allowed = "must not overlap 127.0.0.0/8 (loopback), 0.0.0.0/8 ('this network') or 224.0.0.0/4 (multicast)"
            raise ValidationError(what, str(value), f"{allowed}; it overlaps {special} ({name})")


def _validate_network(net: Network) -> None:
    subnet = net.subnet
    _routable("subnet", subnet)
    if net.gateway not in subnet or net.gateway in (subnet.network_address, subnet.broadcast_address):
        raise ValidationError("gateway", str(net.gateway), f"must be a host address inside the subnet {subnet}")
    names = net.namespace_names() + [name for name, _ in net.remote_addresses]
    for name in names:
        if names.count(name) > 1:
            raise ValidationError("namespace name", name, "is used twice")
    host_names = net.host_ifnames()
    for name in host_names:
        if host_names.count(name) > 1:
            raise ValidationError("interface name", name, "is used twice on the host")
    known = set(names)
    # interface names inside each namespace
    inside: dict[str, list[str]] = {}
    for ns in net.namespaces:
        inside.setdefault(ns.name, []).append(ns.ifname)
    for link in net.links:
        for where, ifname, _ in link.ends():
            if where is not None:
                if where not in known:
                    raise ValidationError("link namespace", where, f"is not a namespace of network {net.name!r}")
                inside.setdefault(where, []).append(ifname)
    for where, ifnames in inside.items():
        for ifname in ifnames:
            if ifname == "lo" or ifnames.count(ifname) > 1:
                raise ValidationError("interface name", ifname, f"is used twice in namespace {where!r}")
    _allocate(net)  # addresses inside the subnet, unique, enough free ones
    # every address and subnet of the whole topology: unique addresses, no overlapping subnets per place
    seen: dict[IPv4Address, str] = {net.gateway: "the gateway"}
    for name, iface in _allocate(net).items():
        seen[iface.ip] = f"namespace {name!r}"
    for name, remote in net.remote_addresses:
        seen[remote] = f"namespace {name!r} (on another host)"
    host_subnets: list[IPv4Network] = [subnet]
    for link in net.links:
        for where, ifname, addr in link.ends():
            if addr is None:
                continue
            _routable("link address", addr)
            if addr.ip in seen:
                raise ValidationError("address", str(addr), f"is already used by {seen[addr.ip]}")
            edges = (addr.network.network_address, addr.network.broadcast_address)
            if addr.ip in edges and addr.network.prefixlen < 31:
                raise ValidationError("address", str(addr), "is the subnet's network or broadcast address")
            seen[addr.ip] = f"{ifname} in {where or 'the host'}"
            if where is None:
                for other in host_subnets:
                    if addr.network.overlaps(other):
                        raise ValidationError("link address", str(addr), f"overlaps {other} on the host")
                host_subnets.append(addr.network)
    forwarded: list[ForwardSpec] = []
    bridged = {n.name for n in net.namespaces} | {name for name, _ in net.remote_addresses}
    for fwd in net.port_forwards:
        if fwd.netns not in bridged:
            raise ValidationError("port forward namespace", fwd.netns, "must be a namespace on the bridge")
        width = fwd.host_port[1] - fwd.host_port[0]
        if fwd.port is not None and fwd.port[1] - fwd.port[0] != width:
            raise ValidationError("port forward port", fwd.port, "must be as wide as the host port range")
        for earlier in forwarded:
            # two forwards of one port on different host addresses do not meet; on no address, they do
            apart = None not in (earlier.host_address, fwd.host_address) and earlier.host_address != fwd.host_address
            clash = (
                earlier.protocol == fwd.protocol
                and not apart
                and not (earlier.host_port[1] < fwd.host_port[0] or fwd.host_port[1] < earlier.host_port[0])
            )
            if clash:
                raise ValidationError("port forward host port", fwd.host_port, f"overlaps {earlier.host_port}")
        forwarded.append(fwd)
    for ns in net.namespaces:
        for route in ns.routes:
            if route.netns not in (None, ns.name):
                raise ValidationError("route namespace", route.netns, f"differs from its namespace {ns.name!r}")
            if ns.default_route and route.to == "default":
                raise ValidationError("route", "default", f"namespace {ns.name!r} already has default_route = true")
            _check_gateways(net, route, ns.name)
    processes: list[str] = []
    for proc in net.processes:
        if proc.netns not in known:
            raise ValidationError("process namespace", proc.netns, f"is not a namespace of network {net.name!r}")
        if proc.name in processes:
            raise ValidationError("process name", proc.name, "is used twice (give each [[process]] its own name)")
        processes.append(proc.name)
    _validate_faults(net)
    for route in net.routes:
        if route.netns is not None and route.netns not in known:
            raise ValidationError("route namespace", route.netns, f"is not a namespace of network {net.name!r}")
        _check_gateways(net, route, route.netns)
    _validate_six(net)


def _check_gateways(net: Network, route: RouteSpec, where: str | None) -> None:
    """Each gateway of ``route`` is on a subnet of its family connected to ``where``; IPv6 needs subnet6."""
    place = where or "the host"
    for one in route.per_family(net.subnet6 is not None):
        if one.version == 6 and net.subnet6 is None:
            rule = "is IPv6: the network has no subnet6 (give [network] subnet6 and gateway6 for dual stack)"
            raise ValidationError("route", " ".join(route.spec()), rule)
        if one.via is None:
            continue
        subnets: list[IPv4Network] | list[IPv6Network] = (
            _subnets6_at(net, where) if one.version == 6 else _subnets_at(net, where)
        )
        if not any(one.via in s for s in subnets):
            key = "route via6" if route.via6 is not None and one.version == 6 else "route gateway"
            raise ValidationError(key, str(one.via), f"is not on a subnet connected to {place}")


# IPv6 ranges no subnet6 or link address6 may touch: the kernel routes none of them as a bridge's subnet.
_NOT_A_SUBNET6 = (
    (IPv6Network("::1/128"), "loopback"),
    (IPv6Network("::/128"), "unspecified"),
    (IPv6Network("fe80::/10"), "link-local"),
    (IPv6Network("ff00::/8"), "multicast"),
    (IPv6Network("::ffff:0:0/96"), "IPv4-mapped"),
)


def _routable6(what: str, value: IPv6Network | IPv6Interface) -> None:
    net = value.network if isinstance(value, IPv6Interface) else value
    for special, name in _NOT_A_SUBNET6:
        if net.overlaps(special):
            allowed = (
                "must be a global or unique-local (fc00::/7, like fd15::/64) IPv6 subnet: not overlapping "
                "::1/128 (loopback), ::/128, fe80::/10 (link-local), ff00::/8 (multicast) or ::ffff:0:0/96"
            )
            raise ValidationError(what, str(value), f"{allowed}; it overlaps {special} ({name})")


def _validate_six(net: Network) -> None:
    """The IPv6 half: subnet6 and gateway6 together, addresses6 only with them, each inside and unique."""
    if net.subnet6 is None:
        needs = "needs [network] subnet6 and gateway6 (the network is IPv4 only without them)"
        if net.gateway6 is not None:
            raise ValidationError("gateway6", str(net.gateway6), 'needs subnet6 beside it, like subnet6 = "fd15::/64"')
        if net.masquerade6:
            raise ValidationError("masquerade6", True, needs)
        for ns in net.namespaces:
            if ns.address6 is not None:
                raise ValidationError("address6", str(ns.address6), f"of namespace {ns.name!r} {needs}")
        for link in net.links:
            for _, ifname, addr in link.ends6():
                if addr is not None:
                    raise ValidationError("link address6", str(addr), f"of {ifname} {needs}")
        for fwd in net.port_forwards:
            if isinstance(fwd.host_address, IPv6Address):
                raise ValidationError("port forward host_address", str(fwd.host_address), f"is IPv6: it {needs}")
        return
    subnet = net.subnet6
    _routable6("subnet6", subnet)
    if net.gateway6 is None:
        raise ValidationError("gateway6", "missing", f"must be given with subnet6: a host address in {subnet}")
    if net.gateway6 not in subnet or net.gateway6 == subnet.network_address:
        rule = (
            f"must be a host address inside subnet6 {subnet} (not its subnet-router anycast {subnet.network_address})"
        )
        raise ValidationError("gateway6", str(net.gateway6), rule)
    seen: dict[IPv6Address, str] = {net.gateway6: "the gateway"}
    for name, iface in _allocate6(net).items():
        seen[iface.ip] = f"namespace {name!r}"
    host_subnets: list[IPv6Network] = [subnet]
    for link in net.links:
        for where, ifname, addr in link.ends6():
            if addr is None:
                continue
            _routable6("link address6", addr)
            if addr.ip in seen:
                raise ValidationError("address6", str(addr), f"is already used by {seen[addr.ip]}")
            if addr.ip == addr.network.network_address and addr.network.prefixlen < 127:
                raise ValidationError("address6", str(addr), "is the subnet-router anycast address of its subnet")
            seen[addr.ip] = f"{ifname} in {where or 'the host'}"
            if where is None:
                for other in host_subnets:
                    if addr.network.overlaps(other):
                        raise ValidationError("link address6", str(addr), f"overlaps {other} on the host")
                host_subnets.append(addr.network)


def _subnets6_at(net: Network, where: str | None) -> list[IPv6Network]:
    """The IPv6 subnets connected to ``where`` (the host for None)."""
    out: list[IPv6Network] = []
    if net.subnet6 is not None and (where is None or where in {n.name for n in net.namespaces}):
        out.append(net.subnet6)
    for link in net.links:
        for place, _, addr in link.ends6():
            if place == where and addr is not None:
                out.append(addr.network)
    return out


def _allocate6(net: Network) -> dict[str, IPv6Interface]:
    """Each bridged namespace's IPv6 address (empty without subnet6): given, or the next free one, in order."""
    subnet = net.subnet6
    if subnet is None:
        return {}
    taken: set[IPv6Address] = {net.gateway6} if net.gateway6 is not None else set()
    given: dict[str, IPv6Address] = {}
    for ns in net.namespaces:
        if ns.address6 is None:
            continue
        written = str(ns.address6)
        addr = ns.address6
        if isinstance(addr, IPv6Interface):  # (an IPv6Interface is an IPv6Address too: test it first)
            if addr.network.prefixlen != subnet.prefixlen:
                rule = f"of namespace {ns.name!r} must carry subnet6's prefix /{subnet.prefixlen} or none"
                raise ValidationError("address6", written, rule)
            addr = addr.ip
        if addr not in subnet or addr == subnet.network_address:
            rule = f"of namespace {ns.name!r} must be a host address in subnet6 {subnet}"
            raise ValidationError("address6", written, rule)
        if addr in taken:
            raise ValidationError("address6", written, f"of namespace {ns.name!r} is already used")
        taken.add(addr)
        given[ns.name] = addr
    free = (a for a in subnet.hosts() if a not in taken)
    out: dict[str, IPv6Interface] = {}
    for ns in net.namespaces:
        chosen = given[ns.name] if ns.name in given else next(free, None)
        if chosen is None:
            raise ValidationError("subnet6", str(subnet), f"has no free address left for namespace {ns.name!r}")
        out[ns.name] = IPv6Interface(f"{chosen}/{subnet.prefixlen}")
    return out


def _validate_faults(net: Network) -> None:
    """Each fault names a cable; faults on one cable do not overlap (which state would win is unclear)."""
    by_cable: dict[str, list[tuple[int, FaultSpec]]] = {}
    for index, fault in enumerate(net.faults):
        try:
            cable(net, fault.link)
        except ValidationError as exc:
            raise ValidationError(f"fault[{index}].link", fault.link, exc.rule) from None
        by_cable.setdefault(fault.link, []).append((index, fault))
    for name, items in by_cable.items():
        items.sort(key=lambda item: (item[1].start_us, item[0]))
        for (i, first), (j, second) in zip(items, items[1:], strict=False):
            if second.start_us < first.end_us:
                rule = (
                    f"overlaps fault[{i}] on {name!r} (at {first.at} for {first.duration}): faults on one cable "
                    "must not overlap; start it when the other ends, or put both changes in one impair table"
                )
                raise ValidationError(f"fault[{j}].at", second.at, rule)


def _subnets_at(net: Network, where: str | None) -> list[IPv4Network]:
    out: list[IPv4Network] = []
    if where is None or where in {n.name for n in net.namespaces}:
        out.append(net.subnet)
    for link in net.links:
        for place, _, addr in link.ends():
            if place == where and addr is not None:
                out.append(addr.network)
    return out


def _allocate(net: Network) -> dict[str, IPv4Interface]:
    subnet = net.subnet
    taken: set[IPv4Address] = {net.gateway}
    for name, remote in net.remote_addresses:
        # on another host of the subnet: reserved here
        if remote not in subnet or remote in (subnet.network_address, subnet.broadcast_address) or remote in taken:
            rule = f"of namespace {name!r} (on another host) must be an unused host address in {subnet}"
            raise ValidationError("address", str(remote), rule)
        taken.add(remote)
    out: dict[str, IPv4Interface] = {}
    given: dict[str, IPv4Address] = {}
    for ns in net.namespaces:
        if ns.address is None:
            continue
        written = str(ns.address)  # errors name the value as given, with its prefix if it had one
        addr = ns.address
        if isinstance(addr, IPv4Interface):  # (an IPv4Interface is an IPv4Address too: test it first)
            if addr.network.prefixlen != subnet.prefixlen:
                rule = f"of namespace {ns.name!r} must carry the subnet's prefix /{subnet.prefixlen} or none"
                raise ValidationError("address", written, rule)
            addr = addr.ip
        if addr not in subnet or addr in (subnet.network_address, subnet.broadcast_address):
            raise ValidationError("address", written, f"of namespace {ns.name!r} must be a host address in {subnet}")
        if addr in taken:
            raise ValidationError("address", written, f"of namespace {ns.name!r} is already used")
        taken.add(addr)
        given[ns.name] = addr
    free = (a for a in subnet.hosts() if a not in taken)
    for ns in net.namespaces:
        chosen = given[ns.name] if ns.name in given else next(free, None)
        if chosen is None:
            raise ValidationError("subnet", str(subnet), f"has no free address left for namespace {ns.name!r}")
        out[ns.name] = IPv4Interface(f"{chosen}/{subnet.prefixlen}")
    return out

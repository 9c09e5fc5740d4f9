"""Links and what sits on them: VethPair, Bridge, Link (up/down/addresses), Route, and readers.

Every operation has a pure ``*_argv`` method that returns the command line, and a method that
runs it through the object's runner. ``netns=None`` means the host (the runner's own namespace).
Readers parse ``ip -j`` output into typed objects.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import attrs

from netnskit import _ipjson
from netnskit import _validate as v
from netnskit.commands import ip
from netnskit.errors import AlreadyExistsError, NotFoundError, ValidationError
from netnskit.plan import Command, Resource
from netnskit.runner import Result, Runner, default_runner

__all__ = [
    "AddressInfo",
    "Bridge",
    "Link",
    "LinkInfo",
    "Neighbour",
    "Route",
    "RouteInfo",
    "VethPair",
    "Vlan",
    "addresses",
    "ip_argv",
    "links",
    "neighbours",
    "routes",
]


def ip_argv(netns: str | None, *args: str) -> list[str]:
    """``ip [-n NETNS] ARGS...``: an ip command on the host or inside a namespace."""
    head = ["ip"] if netns is None else ["ip", "-n", netns]
    return [*head, *args]


def _runner_field() -> Any:
    return attrs.field(factory=default_runner, eq=False, repr=False, kw_only=True)


def _link(name: str, netns: str | None, group: int | None = None) -> Resource:
    return Resource("link", name, netns, group)


def _address(address: object, ifname: str, netns: str | None) -> Resource:
    return Resource("address", f"{address} dev {ifname}", netns)


def _where(netns: str | None) -> str:
    return "on the host" if netns is None else f"in namespace {netns!r}"


def _run(runner: Runner, argv: list[str], action: str) -> Result:
    return runner.run(argv).check(action)


def _opt_flag(value: object) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ValidationError("multicast snooping", value, "must be true, false or None (the kernel's default)")
    return value


@attrs.frozen
class Link:
    """An existing interface on the host or in a namespace: up/down, addresses, master."""

    name: str = attrs.field(converter=v.ifname)
    netns: str | None = attrs.field(default=None, converter=v.optional_netns)
    runner: Runner = _runner_field()

    # --- plan commands, pure -----------------------------------------------------------------

    def set_command(self, *settings: str) -> Command:
        """``ip link set NAME SETTINGS...`` (e.g. ``up``, ``mtu 1400``, ``alias TEXT``)."""
        return ip(self.netns, "link", "set", self.name, *settings)

    def up_command(self) -> Command:
        """``ip link set NAME up``."""
        return self.set_command("up")

    def down_command(self) -> Command:
        """``ip link set NAME down``."""
        return self.set_command("down")

    def mtu_command(self, mtu: object) -> Command:
        """``ip link set NAME mtu MTU``."""
        return self.set_command("mtu", str(v.mtu(mtu)))

    def add_address_command(self, address: object, *, nodad: bool = False) -> Command:
        """``ip addr add ADDRESS/PREFIX dev NAME`` (``nodad``: an IPv6 address usable at once, no DAD)."""
        addr = v.ip_interface(address)
        made = _address(addr, self.name, self.netns)
        if nodad and addr.version != 6:
            raise ValidationError("nodad", str(addr), "is for IPv6 addresses only")
        flags = ["nodad"] if nodad else []
        return ip(self.netns, "addr", "add", str(addr), "dev", self.name, *flags, creates=[made])

    def del_address_command(self, address: object) -> Command:
        """``ip addr del ADDRESS/PREFIX dev NAME``."""
        addr = v.ip_interface(address)
        gone = _address(addr, self.name, self.netns)
        return ip(self.netns, "addr", "del", str(addr), "dev", self.name, removes=[gone])

    def set_master_command(self, master: str | None) -> Command:
        """``ip link set NAME master BRIDGE`` (``nomaster`` for None)."""
        return self.set_command("nomaster") if master is None else self.set_command("master", v.ifname(master))

    def delete_command(self) -> Command:
        """``ip link del NAME``."""
        return ip(self.netns, "link", "del", self.name, removes=[_link(self.name, self.netns)])

    # --- argv, pure ---------------------------------------------------------------------------

    def up_argv(self) -> list[str]:
        """``ip link set NAME up``."""
        return self.up_command().host_argv()

    def down_argv(self) -> list[str]:
        """``ip link set NAME down``."""
        return self.down_command().host_argv()

    def mtu_argv(self, mtu: object) -> list[str]:
        """``ip link set NAME mtu MTU``."""
        return self.mtu_command(mtu).host_argv()

    def add_address_argv(self, address: object) -> list[str]:
        """``ip addr add ADDRESS/PREFIX dev NAME``."""
        return self.add_address_command(address).host_argv()

    def del_address_argv(self, address: object) -> list[str]:
        """``ip addr del ADDRESS/PREFIX dev NAME``."""
        return self.del_address_command(address).host_argv()

    def set_master_argv(self, master: str | None) -> list[str]:
        """``ip link set NAME master BRIDGE`` (``nomaster`` for None)."""
        return self.set_master_command(master).host_argv()

    def delete_argv(self) -> list[str]:
        """``ip link del NAME``."""
        return self.delete_command().host_argv()

    # --- running ------------------------------------------------------------------------------

    def up(self) -> Link:
        """Bring the link up."""
        _run(self.runner, self.up_argv(), f"bringing up {self.name!r} {_where(self.netns)}")
        return self

    def down(self) -> Link:
        """Bring the link down."""
        _run(self.runner, self.down_argv(), f"bringing down {self.name!r} {_where(self.netns)}")
        return self

    def set_mtu(self, mtu: object) -> Link:
        """Set the link's MTU."""
        _run(self.runner, self.mtu_argv(mtu), f"setting the MTU of {self.name!r} {_where(self.netns)} to {mtu}")
        return self

    def add_address(self, address: object, *, exist_ok: bool = False) -> Link:
        """Add an address with its prefix; ``exist_ok`` accepts one already there."""
        argv = self.add_address_argv(address)
        try:
            _run(self.runner, argv, f"adding {address} to {self.name!r} {_where(self.netns)}")
        except AlreadyExistsError:
            if not exist_ok:
                raise
        return self

    def remove_address(self, address: object, *, missing_ok: bool = False) -> Link:
        """Remove an address; ``missing_ok`` accepts one already gone."""
        argv = self.del_address_argv(address)
        try:
            _run(self.runner, argv, f"removing {address} from {self.name!r} {_where(self.netns)}")
        except NotFoundError:
            if not missing_ok:
                raise
        return self

    def set_master(self, master: str | None) -> Link:
        """Attach the link to bridge ``master`` (detach with None)."""
        _run(self.runner, self.set_master_argv(master), f"setting master of {self.name!r} to {master!r}")
        return self

    def delete(self, *, missing_ok: bool = False) -> None:
        """Delete the link (a veth's peer goes with it)."""
        try:
            _run(self.runner, self.delete_argv(), f"deleting link {self.name!r} {_where(self.netns)}")
        except NotFoundError:
            if not missing_ok:
                raise

    def info(self) -> LinkInfo | None:
        """The link as the kernel reports it, or None if it does not exist."""
        result = self.runner.run(_ipjson.argv(self.netns, "link", "show", "dev", self.name, flags=["-d"]))
        if not result.ok:
            try:
                result.check()
            except NotFoundError:
                return None
        found = _ipjson.entries(result.stdout)
        return LinkInfo.from_json(found[0]) if found else None

    def exists(self) -> bool:
        """True if the link exists."""
        return self.info() is not None

    def addresses(self) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
        """The addresses on this link (link-local IPv6 included)."""
        return [a.address for a in addresses(self.runner, self.netns) if a.dev == self.name]


@attrs.frozen
class VethPair:
    """A veth pair: two ends, each optionally created straight inside a namespace."""

    name: str = attrs.field(converter=v.ifname)
    peer: str = attrs.field(converter=v.ifname)
    netns: str | None = attrs.field(default=None, converter=v.optional_netns)
    peer_netns: str | None = attrs.field(default=None, converter=v.optional_netns)
    master: str | None = attrs.field(default=None, converter=attrs.converters.optional(v.ifname))
    group: int | None = attrs.field(default=None, converter=v.optional_link_group)
    mtu: int | None = attrs.field(default=None, converter=attrs.converters.optional(v.mtu))
    runner: Runner = _runner_field()

    def __attrs_post_init__(self) -> None:
        if self.name == self.peer and self.netns == self.peer_netns:
            raise ValidationError("veth peer name", self.peer, "must differ from the first end in one namespace")

    def _resources(self) -> list[Resource]:
        return [_link(self.name, self.netns, self.group), _link(self.peer, self.peer_netns)]

    def create_command(self, *, up: bool = False) -> Command:
        """``ip link add NAME [netns NS] [group G] [mtu M] [up] [master BR] type veth peer name PEER ...``.

        The first end is created on the host (the runner's namespace) and, with ``netns``,
        placed straight into it; ``master`` attaches the first end to a bridge in one request;
        the peer's words are ``[mtu M] [netns NS2]``: ``mtu`` is both ends' (they should agree).
        """
        mtu = [] if self.mtu is None else ["mtu", str(self.mtu)]
        words = ["link", "add", self.name]
        if self.netns is not None:
            words += ["netns", self.netns]
        if self.group is not None:
            words += ["group", str(self.group)]
        words += mtu
        if up:
            words.append("up")
        if self.master is not None:
            words += ["master", self.master]
        words += ["type", "veth", "peer", "name", self.peer, *mtu]
        if self.peer_netns is not None:
            words += ["netns", self.peer_netns]
        return ip(None, *words, creates=self._resources())

    def delete_command(self) -> Command:
        """``ip [-n NS] link del NAME``: the peer goes with it."""
        return ip(self.netns, "link", "del", self.name, removes=self._resources())

    def move_command(self, end: str, netns: str | None) -> Command:
        """``ip [-n FROM] link set END netns TO``: move one end to another namespace."""
        here = self._netns_of(end)
        if netns is None:
            raise ValidationError("namespace", netns, "moving back to the host needs the host's namespace name or pid")
        there = v.netns_name(netns)
        return ip(here, "link", "set", end, "netns", there, creates=[_link(end, there)], removes=[_link(end, here)])

    def create_argv(self, *, up: bool = False) -> list[str]:
        """``ip link add NAME ... type veth peer name PEER ...`` (see :meth:`create_command`)."""
        return self.create_command(up=up).host_argv()

    def delete_argv(self) -> list[str]:
        """``ip [-n NS] link del NAME``: the peer goes with it."""
        return self.delete_command().host_argv()

    def move_argv(self, end: str, netns: str | None) -> list[str]:
        """``ip [-n FROM] link set END netns TO``: move one end to another namespace."""
        return self.move_command(end, netns).host_argv()

    @property
    def ends(self) -> tuple[Link, Link]:
        """Both ends as Links, each in its own namespace."""
        return (
            Link(self.name, self.netns, runner=self.runner),
            Link(self.peer, self.peer_netns, runner=self.runner),
        )

    def create(self, *, up: bool = False, exist_ok: bool = False) -> VethPair:
        """Create the pair; ``up`` brings both ends up; ``exist_ok`` accepts an existing one."""
        try:
            _run(self.runner, self.create_argv(up=up), f"creating veth pair {self.name!r}/{self.peer!r}")
        except AlreadyExistsError:
            if not exist_ok:
                raise
            if up:  # the failed create did not bring the existing first end up
                self.ends[0].up()
        if up:
            self.ends[1].up()
        return self

    def up(self) -> VethPair:
        """Bring both ends up."""
        for end in self.ends:
            end.up()
        return self

    def delete(self, *, missing_ok: bool = False) -> None:
        """Delete the pair (deleting one end removes both)."""
        try:
            _run(self.runner, self.delete_argv(), f"deleting veth pair {self.name!r}/{self.peer!r}")
        except NotFoundError:
            if not missing_ok:
                raise

    def move(self, end: str, netns: str) -> VethPair:
        """Move ``end`` into namespace ``netns``; returns the pair as it now is."""
        _run(self.runner, self.move_argv(end, netns), f"moving {end!r} into namespace {netns!r}")
        if end == self.name:
            return attrs.evolve(self, netns=netns)
        return attrs.evolve(self, peer_netns=netns)

    def _netns_of(self, end: str) -> str | None:
        if end == self.name:
            return self.netns
        if end == self.peer:
            return self.peer_netns
        raise ValidationError("veth end", end, f"must be {self.name!r} or {self.peer!r}")


@attrs.frozen
class Bridge:
    """A Linux bridge: a switch for the namespaces and an interface for the host."""

    name: str = attrs.field(converter=v.ifname)
    netns: str | None = attrs.field(default=None, converter=v.optional_netns)
    group: int | None = attrs.field(default=None, converter=v.optional_link_group)
    multicast_snooping: bool | None = attrs.field(default=None, converter=_opt_flag)
    runner: Runner = _runner_field()

    def create_command(self, *, up: bool = False) -> Command:
        """``ip link add name NAME [group G] [up] type bridge [mcast_snooping 0|1]``."""
        words = ["link", "add", "name", self.name]
        if self.group is not None:
            words += ["group", str(self.group)]
        if up:
            words.append("up")
        words += ["type", "bridge"]
        if self.multicast_snooping is not None:
            words += ["mcast_snooping", "1" if self.multicast_snooping else "0"]
        return ip(self.netns, *words, creates=[_link(self.name, self.netns, self.group)])

    def delete_command(self) -> Command:
        """``ip link del NAME``."""
        return ip(self.netns, "link", "del", self.name, removes=[_link(self.name, self.netns, self.group)])

    def attach_command(self, ifname: str) -> Command:
        """``ip link set IFNAME master NAME``."""
        return ip(self.netns, "link", "set", v.ifname(ifname), "master", self.name)

    def detach_command(self, ifname: str) -> Command:
        """``ip link set IFNAME nomaster``."""
        return ip(self.netns, "link", "set", v.ifname(ifname), "nomaster")

    def create_argv(self, *, up: bool = False) -> list[str]:
        """``ip link add name NAME [group G] [up] type bridge [mcast_snooping 0|1]``."""
        return self.create_command(up=up).host_argv()

    def attach_argv(self, ifname: str) -> list[str]:
        """``ip link set IFNAME master NAME``."""
        return self.attach_command(ifname).host_argv()

    def detach_argv(self, ifname: str) -> list[str]:
        """``ip link set IFNAME nomaster``."""
        return self.detach_command(ifname).host_argv()

    @property
    def link(self) -> Link:
        """The bridge as a Link (for up/down and addresses)."""
        return Link(self.name, self.netns, runner=self.runner)

    def create(self, *, up: bool = False, exist_ok: bool = False) -> Bridge:
        """Create the bridge; ``exist_ok`` accepts an existing one."""
        try:
            _run(self.runner, self.create_argv(up=up), f"creating bridge {self.name!r} {_where(self.netns)}")
        except AlreadyExistsError:
            if not exist_ok:
                raise
            if up:
                self.up()
        return self

    def up(self) -> Bridge:
        """Bring the bridge up."""
        self.link.up()
        return self

    def down(self) -> Bridge:
        """Bring the bridge down."""
        self.link.down()
        return self

    def attach(self, ifname: str) -> Bridge:
        """Attach an interface (a veth end) to the bridge."""
        _run(self.runner, self.attach_argv(ifname), f"attaching {ifname!r} to bridge {self.name!r}")
        return self

    def detach(self, ifname: str) -> Bridge:
        """Detach an interface from the bridge."""
        _run(self.runner, self.detach_argv(ifname), f"detaching {ifname!r} from bridge {self.name!r}")
        return self

    def delete(self, *, missing_ok: bool = False) -> None:
        """Delete the bridge (attached interfaces stay, detached)."""
        self.link.delete(missing_ok=missing_ok)

    def exists(self) -> bool:
        """True if the bridge exists."""
        return self.link.exists()


def _vlan_id(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4094:
        raise ValidationError("VLAN id", value, "must be an integer from 1 to 4094")
    return value


@attrs.frozen
class Vlan:
    """An 802.1Q VLAN link on top of another link (``type vlan id ID``), on the host or in a namespace."""

    name: str = attrs.field(converter=v.ifname)
    parent: str = attrs.field(converter=v.ifname)
    vlan_id: int = attrs.field(converter=_vlan_id)
    netns: str | None = attrs.field(default=None, converter=v.optional_netns)
    runner: Runner = _runner_field()

    def create_command(self) -> Command:
        """``ip link add link PARENT name NAME type vlan id ID``."""
        words = ["link", "add", "link", self.parent, "name", self.name, "type", "vlan", "id", str(self.vlan_id)]
        return ip(self.netns, *words, creates=[_link(self.name, self.netns)])

    def delete_command(self) -> Command:
        """``ip link del NAME``."""
        return ip(self.netns, "link", "del", self.name, removes=[_link(self.name, self.netns)])

    def create_argv(self) -> list[str]:
        """``ip [-n NS] link add link PARENT name NAME type vlan id ID``."""
        return self.create_command().host_argv()

    @property
    def link(self) -> Link:
        """The VLAN link as a Link (for up/down and addresses)."""
        return Link(self.name, self.netns, runner=self.runner)

    def create(self, *, exist_ok: bool = False) -> Vlan:
        """Create the VLAN link; ``exist_ok`` accepts an existing one."""
        try:
            _run(self.runner, self.create_argv(), f"creating VLAN {self.vlan_id} {self.name!r} on {self.parent!r}")
        except AlreadyExistsError:
            if not exist_ok:
                raise
        return self

    def delete(self, *, missing_ok: bool = False) -> None:
        """Delete the VLAN link."""
        self.link.delete(missing_ok=missing_ok)


def _route_to(value: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network | str:
    return v.route_to(value)


def _optional_address(value: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    return None if value is None else v.ip_address(value)


@attrs.frozen
class Route:
    """A route: a subnet (or 'default') via a gateway and/or out of a device."""

    to: ipaddress.IPv4Network | ipaddress.IPv6Network | str = attrs.field(converter=_route_to)
    via: ipaddress.IPv4Address | ipaddress.IPv6Address | None = attrs.field(default=None, converter=_optional_address)
    dev: str | None = attrs.field(default=None, converter=attrs.converters.optional(v.ifname))
    netns: str | None = attrs.field(default=None, converter=v.optional_netns)
    runner: Runner = _runner_field()
    # 6 for an IPv6 route with nothing to tell its family by (``default dev eth0``); None: from the addresses
    family: int | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.via is None and self.dev is None:
            raise ValidationError("route", str(self.to), "needs a gateway (via) or a device (dev)")
        if self.family not in (None, 4, 6):
            raise ValidationError("route family", self.family, "must be 4, 6 or None")
        to = self.to
        if self.via is not None and not isinstance(to, str) and self.via.version != to.version:
            raise ValidationError("gateway", str(self.via), f"must be IPv{to.version} like its destination")

    def _spec(self) -> list[str]:
        spec = [str(self.to)]
        if self.via is not None:
            spec += ["via", str(self.via)]
        if self.dev is not None:
            spec += ["dev", self.dev]
        return spec

    def _family(self) -> list[str]:
        six = (
            self.family == 6
            or (self.via is not None and self.via.version == 6)
            or (not isinstance(self.to, str) and self.to.version == 6)
        )
        return ["-6"] if six else []

    def _command(self, verb: str) -> Command:
        route = [Resource("route", " ".join(self._spec()), self.netns)]
        gone = verb == "del"
        return ip(
            self.netns,
            "route",
            verb,
            *self._spec(),
            flags=self._family(),
            creates=() if gone else route,
            removes=route if gone else (),
        )

    def add_command(self) -> Command:
        """``ip route add DEST [via GW] [dev DEV]``."""
        return self._command("add")

    def replace_command(self) -> Command:
        """``ip route replace ...``: adds or updates, never 'File exists'."""
        return self._command("replace")

    def delete_command(self) -> Command:
        """``ip route del DEST [via GW] [dev DEV]``."""
        return self._command("del")

    def add_argv(self) -> list[str]:
        """``ip route add DEST [via GW] [dev DEV]``."""
        return self.add_command().host_argv()

    def replace_argv(self) -> list[str]:
        """``ip route replace ...``: adds or updates, never 'File exists'."""
        return self.replace_command().host_argv()

    def delete_argv(self) -> list[str]:
        """``ip route del DEST [via GW] [dev DEV]``."""
        return self.delete_command().host_argv()

    def add(self, *, exist_ok: bool = False) -> Route:
        """Add the route; ``exist_ok`` uses ``ip route replace``."""
        argv = self.replace_argv() if exist_ok else self.add_argv()
        _run(self.runner, argv, f"adding route {' '.join(self._spec())} {_where(self.netns)}")
        return self

    def delete(self, *, missing_ok: bool = False) -> None:
        """Delete the route; ``missing_ok`` accepts one already gone."""
        try:
            _run(self.runner, self.delete_argv(), f"deleting route {' '.join(self._spec())} {_where(self.netns)}")
        except NotFoundError:  # iproute2 says "No such process" (ESRCH) for a missing route
            if not missing_ok:
                raise


# --- readers: typed views of `ip -j` output ------------------------------------------------


@attrs.frozen
class LinkInfo:
    """One link as ``ip -d -j link show`` reports it."""

    name: str
    ifindex: int
    operstate: str
    mac: str | None
    master: str | None
    kind: str | None
    group: str
    flags: tuple[str, ...]
    mtu: int

    @property
    def is_up(self) -> bool:
        """True if the UP flag is set."""
        return "UP" in self.flags

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LinkInfo:
        """Parse one entry of ``ip -d -j link show``."""
        kind = data.get("linkinfo", {}).get("info_kind")
        return cls(
            name=str(data["ifname"]),
            ifindex=int(data["ifindex"]),
            operstate=str(data.get("operstate", "UNKNOWN")),
            mac=data.get("address"),
            master=data.get("master"),
            kind=kind,
            group=str(data.get("group", "default")),
            flags=tuple(data.get("flags", ())),
            mtu=int(data.get("mtu", 0)),
        )


@attrs.frozen
class AddressInfo:
    """One address on one interface, from ``ip -j addr show``."""

    dev: str
    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface
    scope: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> list[AddressInfo]:
        """Parse one interface entry of ``ip -j addr show`` into its addresses."""
        return [
            cls(
                dev=str(data["ifname"]),
                address=ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}"),
                scope=str(a.get("scope", "")),
            )
            for a in data.get("addr_info", ())
            if "local" in a
        ]


@attrs.frozen
class RouteInfo:
    """One route, from ``ip -j route show``."""

    to: str
    via: str | None
    dev: str | None
    protocol: str | None
    scope: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RouteInfo:
        """Parse one entry of ``ip -j route show``."""
        return cls(
            to=str(data.get("dst", "")),
            via=data.get("gateway"),
            dev=data.get("dev"),
            protocol=data.get("protocol"),
            scope=data.get("scope"),
        )


@attrs.frozen
class Neighbour:
    """One neighbour (ARP/NDP) entry, from ``ip -j neigh show``."""

    address: str
    dev: str | None
    mac: str | None
    state: tuple[str, ...]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Neighbour:
        """Parse one entry of ``ip -j neigh show``."""
        return cls(
            address=str(data["dst"]),
            dev=data.get("dev"),
            mac=data.get("lladdr"),
            state=tuple(data.get("state", ())),
        )


def links(runner: Runner, netns: str | None = None) -> list[LinkInfo]:
    """Every link on the host or in ``netns``."""
    found = _ipjson.read(runner, v.optional_netns(netns), "link", "show", flags=["-d"])
    return [LinkInfo.from_json(d) for d in found]


def addresses(runner: Runner, netns: str | None = None) -> list[AddressInfo]:
    """Every address on the host or in ``netns``."""
    found = _ipjson.read(runner, v.optional_netns(netns), "addr", "show")
    return [a for d in found for a in AddressInfo.from_json(d)]


def routes(runner: Runner, netns: str | None = None, *, family: int = 4) -> list[RouteInfo]:
    """The main routing table on the host or in ``netns`` (``family`` 4 or 6)."""
    fam = "-6" if family == 6 else "-4"
    found = _ipjson.read(runner, v.optional_netns(netns), "route", "show", flags=[fam])
    return [RouteInfo.from_json(d) for d in found]


def neighbours(runner: Runner, netns: str | None = None) -> list[Neighbour]:
    """The neighbour (ARP/NDP) table on the host or in ``netns``."""
    found = _ipjson.read(runner, v.optional_netns(netns), "neigh", "show")
    return [Neighbour.from_json(d) for d in found]

"""Network: a whole topology as one object (or one TOML file), with plan, up, down, status and check.

A :class:`Network` is a bridge with its subnet and the host's gateway address on it, namespaces
attached to it (addresses given or allocated from the subnet), routes, masquerade, port forwards,
and extra namespaces and veth links (a LAN or an "internet" stand-in).

- :meth:`Network.plan` returns the ordered :class:`~netnskit.plan.Step` list, each with its undo;
  :meth:`Network.render_script` prints it as a shell script.
- :meth:`Network.up` reads what already exists, applies the missing steps through an executor
  (one process per command by default), and rolls back on failure. Applying a network that is
  already up runs nothing.
- :meth:`Network.down` finds what is ours on the host and removes it: links by link group *and*
  alias ``netnskit:<name>``, firewall rules by comment ``netnskit:<name>``, and the namespaces
  named in the description that carry the mark (``lo`` aliased ``netnskit:<name>``) or are still
  empty from an interrupted ``up``. It works after a crash, on a partly-removed network, twice.

Ownership marks:

- host-side links: ``group G`` (derived from the name, see :func:`group_for`), set by the request
  that creates the link, and ``alias netnskit:NAME``, set by the next command (the kernel ignores
  an alias given to ``ip link add``). A link with one of our names, our group and no alias at all
  is what a crash between those two commands leaves: it counts as ours. ``down`` removes them
  with one ``ip link del group G`` when the group holds nothing else, else one by one;
- namespaces: their ``lo`` gets ``alias netnskit:NAME`` (the command after ``ip netns add``); a
  namespace with one of our names that is still exactly as ``ip netns add`` left it (only ``lo``,
  down, no alias) is what a crash between those two leaves: ``down`` removes it, nothing else;
- firewall rules: ``-m comment --comment netnskit:NAME`` (see :mod:`netnskit.firewall`, whose
  sweep also puts back the sysctls it changed and removes its shared chains when unused).

``up`` refuses to adopt a namespace or host link with one of our names that is not ours, and a
subnet that overlaps an address on someone else's link.

Forwarding is also switched on per interface (``net/ipv4/conf/IF/forwarding``) on the host-side
links the network creates, so routing works without NAT; it goes with those links. The firewall
sets ``net.ipv4.ip_forward`` for masquerade and forwards, and its sweep puts the old value back.
IPv4 only for now.

Two bridge-wide choices make a network of many namespaces cost the same per namespace at any size
(measured in ``benchmarks/bench_netns.py``; both can be turned back on):

- ``ipv6_link_local=False`` (the default): both ends of each namespace's veth get ``addrgenmode
  none`` before they come up, so they have no IPv6 link-local address and send no IPv6
  duplicate-address probe, router solicitation or MLD report. The bridge floods those to every
  port, so with N namespaces each one costs O(N) and bring-up O(N²); and every host end going
  down walks the host's IPv6 routes, which held two per host end (O(N²) at teardown). The network
  is IPv4 only, as Docker's IPv4-only networks, which disable IPv6 on the container's interface.
  ``lo`` keeps ``::1``; the bridge keeps its own link-local address.
- ``multicast_snooping=False`` (the default): the bridge is made with ``mcast_snooping 0`` and
  floods multicast like a plain switch. With snooping on, every port that comes up or goes
  re-arms the multicast timers of every other port (O(N²) at bring-up and teardown).

Concurrency: with a :class:`~netnskit.runner.LiveRunner` (commands run in this process's own
namespaces, as from the command line), ``up``, ``down`` and ``cleanup`` hold two locks, both
released by the kernel if the process dies: a per-network claim (an abstract unix socket named
``netnskit:NAME`` in this network namespace; a second process changing the same network fails at
once with a clear error) and a host-wide claim, waited for (networks changed at the same time by
different processes take turns, as they share the firewall's chains and sysctls).
Other runners (ssh, nsenter, sudo prefixes) take no lock: serialize those callers yourself.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import functools
import hashlib
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any

import attrs

from netnskit import _validate as v
from netnskit.errors import NetnskitError, StepError, ValidationError
from netnskit.executors import Executor, SerialExecutor
from netnskit.firewall import Firewall, NatRule, PortForward, Rule, SavedRules, Sysctl
from netnskit.link import AddressInfo, Bridge, LinkInfo, Neighbour, RouteInfo, VethPair, ip_argv, neighbours
from netnskit.netns import Namespace
from netnskit.plan import Command, Step, render_script
from netnskit.runner import LiveRunner, Runner, end_process, read_line

__all__ = [
    "CheckReport",
    "NamespaceStatus",
    "ConfigError",
    "ExtraNamespace",
    "ForwardSpec",
    "LinkSpec",
    "NamespaceSpec",
    "Network",
    "NetworkStatus",
    "Probe",
    "RouteSpec",
    "Teardown",
    "cleanup",
    "group_for",
    "mark_for",
]

IPv4Interface = ipaddress.IPv4Interface
IPv4Address = ipaddress.IPv4Address
IPv4Network = ipaddress.IPv4Network

MARK_PREFIX = "netnskit:"


def mark_for(name: str) -> str:
    """The alias and rule comment that mark what network ``name`` owns: ``netnskit:NAME``."""
    return MARK_PREFIX + name


def group_for(name: str) -> int:
    """The link group of network ``name``: a stable number from 65536 to 2**31-1 (crc32 of the name)."""
    return 65536 + zlib.crc32(f"netnskit:{name}".encode()) % (2**31 - 65536)


class ConfigError(ValidationError):
    """A network description (TOML file or mapping) was rejected: the file, the key and the reason."""

    def __init__(self, path: str, key: str, value: object, reason: str) -> None:
        ValidationError.__init__(self, f"{path}: {key}", value, reason)
        self.args = (path, key, value, reason)
        self.path = path
        self.key = key

    def __str__(self) -> str:
        if self.value is _MISSING:
            return f"{self.path}: {self.key}: {self.rule}"
        return f"{self.path}: {self.key} = {self.value!r}: {self.rule}"


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"

    def __reduce__(self) -> str:
        return "_MISSING"


_MISSING: Any = _Missing()


# --- the description ----------------------------------------------------------------------------


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


def _opt_interface(value: object) -> IPv4Interface | None:
    return None if value is None else _v4_interface(value)


def _opt_ifname(value: object) -> str | None:
    return None if value is None else v.ifname(value)


def _opt_ports(value: object) -> tuple[int, int] | None:
    return None if value is None else v.port_range(value)


def _route_to(value: object) -> IPv4Network | str:
    if value == "default":
        return "default"
    return _v4_network(value)


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValidationError("flag", value, "must be true or false")
    return value


@attrs.frozen
class RouteSpec:
    """A route on the host (``namespace=None``) or inside one of the network's namespaces."""

    to: IPv4Network | str = attrs.field(converter=_route_to)
    via: IPv4Address | None = attrs.field(default=None, converter=_opt_address)
    dev: str | None = attrs.field(default=None, converter=_opt_ifname)
    namespace: str | None = attrs.field(default=None, converter=v.optional_netns)

    def __attrs_post_init__(self) -> None:
        if self.via is None and self.dev is None:
            raise ValidationError("route", str(self.to), "needs a gateway (via) or a device (dev)")

    def spec(self) -> list[str]:
        """``TO [via GW] [dev DEV]``."""
        out = [str(self.to)]
        if self.via is not None:
            out += ["via", str(self.via)]
        if self.dev is not None:
            out += ["dev", self.dev]
        return out


def _routes(items: Iterable[RouteSpec | dict[str, Any]]) -> tuple[RouteSpec, ...]:
    if isinstance(items, str | bytes):
        raise ValidationError("routes", items, "must be a list")
    return tuple(r if isinstance(r, RouteSpec) else RouteSpec(**r) for r in items)


@attrs.frozen
class NamespaceSpec:
    """A namespace on the bridge: one veth (``ifname`` inside, ``host_ifname`` on the bridge)."""

    name: str = attrs.field(converter=v.netns_name)
    address: IPv4Address | None = attrs.field(default=None, converter=_opt_address)
    ifname: str = attrs.field(default="eth0", converter=v.ifname)
    host_ifname: str = attrs.field(converter=v.ifname)
    default_route: bool = attrs.field(default=True, converter=_flag)
    routes: tuple[RouteSpec, ...] = attrs.field(default=(), converter=_routes)

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


@attrs.frozen
class LinkSpec:
    """A veth pair between the host (``namespace=None``) or a namespace and another namespace."""

    name: str = attrs.field(converter=v.ifname)
    peer: str = attrs.field(converter=v.ifname)
    namespace: str | None = attrs.field(default=None, converter=v.optional_netns)
    peer_namespace: str | None = attrs.field(default=None, converter=v.optional_netns)
    address: IPv4Interface | None = attrs.field(default=None, converter=_opt_interface)
    peer_address: IPv4Interface | None = attrs.field(default=None, converter=_opt_interface)

    def __attrs_post_init__(self) -> None:
        if self.namespace == self.peer_namespace:
            raise ValidationError("link", self.name, "its two ends must be in different namespaces")
        if self.peer_namespace is None:
            # the first end is the one created with the link group: the host's end must be it
            raise ValidationError("link", self.name, "a link's host end must be its first end (name, no namespace)")

    def ends(self) -> list[tuple[str | None, str, IPv4Interface | None]]:
        """(namespace, ifname, address) of both ends."""
        return [(self.namespace, self.name, self.address), (self.peer_namespace, self.peer, self.peer_address)]


@attrs.frozen
class ForwardSpec:
    """Forward host port(s) to a port of a namespace on the bridge."""

    host_port: tuple[int, int] = attrs.field(converter=v.port_range)
    namespace: str = attrs.field(converter=v.netns_name)
    port: tuple[int, int] | None = attrs.field(default=None, converter=_opt_ports)
    protocol: str = attrs.field(default="tcp", converter=v.protocol)


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


def _group_field(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**32 - 1:
        raise ValidationError("link group", value, "must be an integer from 1 to 4294967295")
    return value


# --- state read from the kernel -------------------------------------------------------------


def _json(runner: Runner, argv: list[str]) -> list[dict[str, Any]]:
    text = runner.run(argv).check().stdout.strip()
    if not text:
        return []
    data = json.loads(text)
    return [d for d in data if isinstance(d, dict) and d] if isinstance(data, list) else []


@attrs.frozen
class _Facts:
    """What the kernel has now, as far as one network's steps care."""

    netns: dict[str, int | None]
    links: dict[str | None, dict[str, dict[str, Any]]]  # where -> ifname -> ip -j link entry
    addresses: dict[str | None, set[tuple[str, str]]]  # where -> {(ifname, "a/p")}
    routes: dict[str | None, set[tuple[str, str | None]]]  # where -> {(dst, gateway)}
    forwarding: dict[str | None, dict[str, bool]]  # where -> ifname/"all" -> on
    rules: tuple[str, ...]  # our firewall rules, as iptables-restore lines
    read: frozenset[str | None]  # places read in full (host = None)
    raw: dict[str | None, dict[str, list[dict[str, Any]]]] = attrs.field(factory=dict)  # where -> addr/route


def _read_links(runner: Runner, where: str | None) -> dict[str, dict[str, Any]]:
    # without -d: name, flags, group, ifalias and link_netnsid are all there, and it is cheaper
    return {str(d["ifname"]): d for d in _json(runner, ip_argv(where, "-j", "link", "show"))}


_PLACE_READS = ("link show", "addr show", "route show", "netconf show")


def _json_arrays(text: str) -> list[list[dict[str, Any]]]:
    """The JSON arrays printed one after another by ``ip -j -batch``."""
    decoder = json.JSONDecoder()
    arrays: list[list[dict[str, Any]]] = []
    at = 0
    text = text.strip()
    while at < len(text):
        data, end = decoder.raw_decode(text, at)
        arrays.append([d for d in data if isinstance(d, dict) and d] if isinstance(data, list) else [])
        at = end
        while at < len(text) and text[at].isspace():
            at += 1
    return arrays


def _read_place(runner: Runner, where: str | None, facts: dict[str, Any]) -> None:
    """Links, IPv4 addresses, routes and forwarding of the host or a namespace, in one ``ip -batch``."""
    result = runner.run(ip_argv(where, "-4", "-j", "-batch", "-"), input="\n".join(_PLACE_READS) + "\n")
    arrays = _json_arrays(result.check(f"reading the state of {where or 'the host'}").stdout)
    if not arrays:  # no output at all (a fake runner): nothing there
        arrays = [[] for _ in _PLACE_READS]
    if len(arrays) != len(_PLACE_READS):
        raise NetnskitError(f"reading the state of {where or 'the host'}: expected {len(_PLACE_READS)} JSON lists")
    links, entries, route_entries, netconf = arrays
    facts["links"][where] = {str(d["ifname"]): d for d in links}
    facts.setdefault("raw", {})[where] = {"addr": entries, "route": route_entries}
    facts["addresses"][where] = {
        (str(d["ifname"]), f"{a['local']}/{a['prefixlen']}")
        for d in entries
        for a in d.get("addr_info", ())
        if a.get("family") == "inet" and "local" in a
    }
    facts["routes"][where] = {(str(r.get("dst", "")), r.get("gateway")) for r in route_entries}
    facts["forwarding"][where] = {str(d.get("interface", "")): bool(d.get("forwarding")) for d in netconf}


def _dedupe(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def _firewall_objects(net: Network) -> list[NatRule | PortForward]:
    return [*([net.nat_rule()] if net.masquerade else []), *net.forward_rules()]


def _firewall_steps(net: Network, *, live: bool) -> list[Step]:
    """The firewall's steps for the network's masquerade and forwards, as one ruleset.

    Pure (for a clean host, FORWARD policy ACCEPT) unless ``live``: then read from the host, holding
    only what is missing.
    """
    objects = _firewall_objects(net)
    if not objects:
        return []
    fw = Firewall(runner=net.runner)
    description = f"firewall rules of network {net.name} ({net.mark})"
    saved = fw.save(4) if live else None
    accept = fw.forward_policy_drop(saved) if saved is not None else False
    rules: list[Rule] = _dedupe(r for o in objects for r in o.rules(forward_accept=accept))
    sysctls: list[Sysctl] = _dedupe(s for o in objects for s in o.sysctls())
    if saved is None:
        return fw.plan(4, rules, sysctls, description, values={})
    steps = fw.plan(4, rules, sysctls, description, saved=saved)
    return [attrs.evolve(s, undo=_keep_link_forwarding(net.runner, s.undo, _any_network)) for s in steps]


def _any_network(alias: str) -> bool:
    """Does a link alias mark a netnskit network's link?"""
    return alias.startswith(MARK_PREFIX)


_IP_FORWARD = re.compile(r"net[./]ipv4[./](ip_forward|conf[./]all[./]forwarding)=")


def _keep_link_forwarding(
    runner: Runner,
    commands: Sequence[Command],
    stays: Callable[[str], bool],
    host: dict[str, dict[str, Any]] | None = None,
) -> tuple[Command, ...]:
    """``commands``, and after one that writes net.ipv4.ip_forward, other networks' per-link forwarding put back.

    The kernel copies a write of ip_forward to every interface's ``conf.IF.forwarding``: setting
    it back to 0 would also switch off the per-link forwarding that netnskit networks set on their
    bridges and host link ends (links whose alias ``stays`` accepts, not enslaved to a bridge; this
    network's own too, so that the undo of the firewall's step reverses exactly that step). Only
    those: a link of no network (an uplink) gets exactly what the write gave it, as before ``up``.
    Reads which links forward now, only when needed (``host``: the host's links, if just read).
    """
    if not any(c.argv[:2] == ("sysctl", "-w") and _IP_FORWARD.match(c.argv[-1]) for c in commands):
        return tuple(commands)
    theirs = {
        name
        for name, d in (_read_links(runner, None) if host is None else host).items()
        if stays(str(d.get("ifalias", ""))) and not d.get("master")
    }
    entries = _json(runner, ["ip", "-4", "-j", "netconf", "show"])
    forwarding = [
        str(d["interface"])
        for d in entries
        if d.get("forwarding") and d.get("interface") not in _CONF_ALL and d.get("interface") in theirs
    ]
    return (*commands, *(Command(_sysctl_forwarding(name)) for name in forwarding))


_CONF_ALL = {None, "all", "default", "lo"}


def _firewall_removal(
    runner: Runner,
    owns: Callable[[str], bool],
    families: Sequence[int] = (4,),
    stays: Callable[[str], bool] | None = None,
    host: dict[str, dict[str, Any]] | None = None,
    read: dict[int, SavedRules] | None = None,
) -> list[Step]:
    """Steps (undo order) deleting every rule whose comment ``owns`` accepts, then the firewall's sweep
    (``stays``: the link aliases of networks that stay, see _keep_link_forwarding; ``host``: the
    host's links and ``read``: the saved rules of a family, if just read)."""
    fw = Firewall(runner=runner)
    steps: list[Step] = []
    for family in families:
        given = (read or {}).get(family)
        saved = fw.save(family) if given is None else given
        mine = [r for r in saved.rules if r.comment is not None and owns(r.comment)]
        doomed = set(mine)
        after = attrs.evolve(saved, rules=tuple(r for r in saved.rules if r not in doomed))
        sweep = fw.sweep_commands(family, after)
        if family == 4:
            sweep = list(_keep_link_forwarding(runner, sweep, stays or (lambda _: False), host))
        if sweep:
            steps.append(Step(f"sweep netnskit's shared firewall state (IPv{family})", [], sweep))
        if mine:
            sections: dict[str, list[str]] = {}
            for rule in mine:
                sections.setdefault(rule.table, []).append(rule.line("-D"))
            steps.append(Step(f"{len(mine)} firewall rules (IPv{family})", [], [fw.restore_command(family, sections)]))
    return steps


# --- reports --------------------------------------------------------------------------------


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

    def to_json(self) -> dict[str, Any]:
        """A plain dict (addresses as strings) for ``netnskit status --json``."""
        return attrs.asdict(self, recurse=True, value_serializer=_plain)


def _plain(instance: object, field: object, value: object) -> object:
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return str(value)
    return value


@attrs.frozen
class Probe:
    """One reachability probe of :meth:`Network.check`: what was tried and what happened."""

    kind: str  # "ping", "nat", "forward"
    source: str
    target: str
    ok: bool
    detail: str = ""


@attrs.frozen
class CheckReport:
    """All probes of a check; ``ok`` when every probe succeeded."""

    probes: tuple[Probe, ...]

    @property
    def ok(self) -> bool:
        """True when every probe succeeded."""
        return all(p.ok for p in self.probes)

    @property
    def failures(self) -> tuple[Probe, ...]:
        """The probes that failed."""
        return tuple(p for p in self.probes if not p.ok)

    def to_json(self) -> dict[str, Any]:
        """A plain dict for scripts."""
        return {"ok": self.ok, "probes": [attrs.asdict(p) for p in self.probes]}

    def lines(self) -> list[str]:
        """One line per probe, for people."""
        return [
            f"{'ok  ' if p.ok else 'FAIL'} {p.kind:7} {p.source} -> {p.target} {p.detail}".rstrip() for p in self.probes
        ]


@attrs.frozen
class Teardown:
    """What :meth:`Network.down` removed and what was already gone."""

    removed: tuple[str, ...]
    already_gone: tuple[str, ...]
    left: tuple[str, ...] = ()


# --- the network ----------------------------------------------------------------------------


@attrs.frozen
class Network:
    """A bridge, its subnet and gateway, namespaces on it, routes, NAT, forwards and extra links."""

    name: str = attrs.field(converter=v.netns_name)
    bridge: str = attrs.field(converter=v.ifname)
    subnet: IPv4Network = attrs.field(converter=_v4_network)
    gateway: IPv4Address = attrs.field(converter=_v4_address)
    namespaces: tuple[NamespaceSpec, ...] = attrs.field(default=(), converter=_namespaces)
    masquerade: bool = attrs.field(default=False, converter=_flag)
    port_forwards: tuple[ForwardSpec, ...] = attrs.field(default=(), converter=_forwards)
    extra_namespaces: tuple[ExtraNamespace, ...] = attrs.field(default=(), converter=_extras)
    links: tuple[LinkSpec, ...] = attrs.field(default=(), converter=_links)
    routes: tuple[RouteSpec, ...] = attrs.field(default=(), converter=_routes)
    group: int = attrs.field(converter=_group_field)
    ipv6_link_local: bool = attrs.field(default=False, converter=_flag)
    multicast_snooping: bool = attrs.field(default=False, converter=_flag)
    runner: Runner = attrs.field(factory=LiveRunner, eq=False, repr=False, kw_only=True)

    @group.default
    def _group(self) -> int:
        return group_for(self.name)

    def __attrs_post_init__(self) -> None:
        _validate_network(self)

    # --- loading ---------------------------------------------------------------------------

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], *, runner: Runner | None = None) -> Network:
        """Load a description from a TOML file; errors name the file, the key and the reason."""
        where = str(path)
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(where, "file", _MISSING, f"cannot read it ({exc.strerror or exc})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(where, "syntax", _MISSING, f"not valid TOML ({exc})") from None
        return cls.from_dict(data, source=where, runner=runner)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<dict>", runner: Runner | None = None) -> Network:
        """Build from the TOML structure (``[network]``, ``[[namespace]]``, ...), strictly."""
        return _from_dict(cls, data, source, runner or LiveRunner())

    # --- derived ---------------------------------------------------------------------------

    @property
    def mark(self) -> str:
        """The alias and rule comment that mark this network's objects: ``netnskit:NAME``."""
        return mark_for(self.name)

    @property
    def gateway_interface(self) -> IPv4Interface:
        """The gateway with the subnet's prefix, as set on the bridge."""
        return IPv4Interface(f"{self.gateway}/{self.subnet.prefixlen}")

    def addresses(self) -> dict[str, IPv4Interface]:
        """Each bridged namespace's address: given, or the next free one in the subnet, in order."""
        return _allocate(self)

    def namespace_names(self) -> list[str]:
        """Every namespace of the network: those on the bridge, then the extra ones."""
        return [n.name for n in self.namespaces] + [n.name for n in self.extra_namespaces]

    def host_ifnames(self) -> list[str]:
        """Every host-side interface the network creates (bridge, veth ends, host ends of links)."""
        names = [self.bridge, *(n.host_ifname for n in self.namespaces)]
        return names + [link.name for link in self.links if link.namespace is None]

    def nat_rule(self) -> NatRule:
        """The masquerade rule for the subnet (traffic leaving by any interface but the bridge)."""
        return NatRule(self.subnet, self.bridge, owner=self.name, runner=self.runner)

    def forward_rules(self) -> list[PortForward]:
        """The DNAT rules of the port forwards."""
        addrs = self.addresses()
        return [
            PortForward(
                f.host_port,
                addrs[f.namespace].ip,
                f.port,
                f.protocol,
                owner=self.name,
                runner=self.runner,
                bridge=self.bridge,
            )
            for f in self.port_forwards
        ]

    # --- plan ------------------------------------------------------------------------------

    def plan(self) -> list[Step]:
        """The ordered steps that bring the network up on a clean host, each with its undo (pure)."""
        return [step for step, _ in self._entries()] + _firewall_steps(self, live=False)

    def render_script(self) -> str:
        """The plan as a bash script a person can review and run."""
        return render_script(self.plan(), title=f"netnskit plan for network {self.name!r} (link group {self.group})")

    def _entries(self) -> list[tuple[Step, Callable[[_Facts], bool]]]:
        return _entries(self)

    # --- running ---------------------------------------------------------------------------

    def up(self, executor: Executor | None = None) -> Network:
        """Apply the steps not already done; on failure roll back what this call did and raise StepError.

        Returns the network, so ``with network.up(): ...`` tears it down on leaving the block.
        The firewall's steps are read from the host once the bridge exists (they depend on it),
        and a failure there rolls back this call's earlier steps too.
        """
        with _exclusive(self.runner, self.name):
            return self._up(executor)

    def _up(self, executor: Executor | None) -> Network:
        run = executor or SerialExecutor()
        facts = self._facts()
        _refuse_foreign(self, facts)
        todo = [step for step, done in self._entries() if not done(facts)]
        if todo:
            run.apply(todo, self.runner)
        try:
            firewall = _firewall_steps(self, live=True)
            if firewall:
                run.apply(firewall, self.runner)
        except StepError as exc:
            failed = _remove(run, todo, self.runner)
            raise StepError(exc.step, len(todo) + exc.index, exc.cause, [*exc.rollback_errors, *failed]) from exc
        except BaseException:
            _remove(run, todo, self.runner)
            raise
        return self

    def missing_steps(self) -> list[Step]:
        """The steps of the plan that the kernel does not show as done (all of them when down)."""
        return _missing(self, self._facts())

    def down(self, executor: Executor | None = None) -> Teardown:
        """Remove everything this network owns on the host; safe after a crash, when partly gone, twice."""
        with _exclusive(self.runner, self.name):
            return _down(self, executor or SerialExecutor())

    def __enter__(self) -> Network:
        """``with network.up(): ...``: the network as it is."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Tear the network down on leaving the block."""
        self.down()

    def status(self) -> NetworkStatus:
        """The network's state as typed objects, read from ``ip -j`` and ``iptables-save``."""
        return _status(self, self._facts(full=True))

    def check(self, *, timeout: float = 2.0) -> CheckReport:
        """Reachability: every namespace to every other and to the gateway, NAT and port-forward paths."""
        return _check(self, timeout)

    def _facts(self, *, full: bool = False) -> _Facts:
        return _gather(self, full)


def _remove(executor: Executor, steps: Sequence[Step], runner: Runner) -> list[str]:
    """Undo ``steps`` through the executor; returns the real failures instead of raising them."""
    try:
        executor.remove(steps, runner)
    except StepError as exc:
        return [exc.cause]
    return []


# --- validation -----------------------------------------------------------------------------


def _validate_network(net: Network) -> None:
    subnet = net.subnet
    if net.gateway not in subnet or net.gateway in (subnet.network_address, subnet.broadcast_address):
        raise ValidationError("gateway", str(net.gateway), f"must be a host address inside the subnet {subnet}")
    names = net.namespace_names()
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
    host_subnets: list[IPv4Network] = [subnet]
    for link in net.links:
        for where, ifname, addr in link.ends():
            if addr is None:
                continue
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
    bridged = {n.name for n in net.namespaces}
    for fwd in net.port_forwards:
        if fwd.namespace not in bridged:
            raise ValidationError("port forward namespace", fwd.namespace, "must be a namespace on the bridge")
        width = fwd.host_port[1] - fwd.host_port[0]
        if fwd.port is not None and fwd.port[1] - fwd.port[0] != width:
            raise ValidationError("port forward port", fwd.port, "must be as wide as the host port range")
        for earlier in forwarded:
            clash = earlier.protocol == fwd.protocol and not (
                earlier.host_port[1] < fwd.host_port[0] or fwd.host_port[1] < earlier.host_port[0]
            )
            if clash:
                raise ValidationError("port forward host port", fwd.host_port, f"overlaps {earlier.host_port}")
        forwarded.append(fwd)
    for ns in net.namespaces:
        for route in ns.routes:
            if route.namespace not in (None, ns.name):
                raise ValidationError("route namespace", route.namespace, f"differs from its namespace {ns.name!r}")
            if ns.default_route and route.to == "default":
                raise ValidationError("route", "default", f"namespace {ns.name!r} already has default_route = true")
            if route.via is not None and not any(route.via in s for s in _subnets_at(net, ns.name)):
                raise ValidationError("route gateway", str(route.via), f"is not on a subnet connected to {ns.name!r}")
    for route in net.routes:
        if route.namespace is not None and route.namespace not in known:
            raise ValidationError("route namespace", route.namespace, f"is not a namespace of network {net.name!r}")
        if route.via is not None and not any(route.via in s for s in _subnets_at(net, route.namespace)):
            raise ValidationError(
                "route gateway", str(route.via), f"is not on a subnet connected to {route.namespace or 'the host'}"
            )


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
    out: dict[str, IPv4Interface] = {}
    for ns in net.namespaces:
        if ns.address is None:
            continue
        addr = ns.address
        if addr not in subnet or addr in (subnet.network_address, subnet.broadcast_address):
            raise ValidationError("address", str(addr), f"of namespace {ns.name!r} must be a host address in {subnet}")
        if addr in taken:
            raise ValidationError("address", str(addr), f"of namespace {ns.name!r} is already used")
        taken.add(addr)
    free = (a for a in subnet.hosts() if a not in taken)
    for ns in net.namespaces:
        chosen = ns.address if ns.address is not None else next(free, None)
        if chosen is None:
            raise ValidationError("subnet", str(subnet), f"has no free address left for namespace {ns.name!r}")
        out[ns.name] = IPv4Interface(f"{chosen}/{subnet.prefixlen}")
    return out


# --- steps ----------------------------------------------------------------------------------


def _host_link_ours(entry: dict[str, Any], mark: str, group: int | None, names: Iterable[str]) -> bool:
    """A host link is ours if it carries our alias, or (between ``ip link add`` and the alias being
    set, as after a crash) if it has one of our names, our link group and no alias at all."""
    if entry.get("ifalias") == mark:
        return True
    unmarked = not entry.get("ifalias") and group is not None and str(entry.get("group")) == str(group)
    return unmarked and entry.get("ifname") in set(names)


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


def _ports(ports: tuple[int, int]) -> str:
    return str(ports[0]) if ports[0] == ports[1] else f"{ports[0]}-{ports[1]}"


# --- reading the state ----------------------------------------------------------------------


def _gather(net: Network, full: bool) -> _Facts:
    runner = net.runner
    listed = _json(runner, ["ip", "-j", "netns", "list"])
    netns = {str(d["name"]): (int(d["id"]) if "id" in d else None) for d in listed}
    facts: dict[str, Any] = {"links": {}, "addresses": {}, "routes": {}, "forwarding": {}}
    _read_place(runner, None, facts)
    host_names = set(net.host_ifnames())
    ours_on_host = any(d.get("ifalias") == net.mark or name in host_names for name, d in facts["links"][None].items())
    present = [n for n in net.namespace_names() if n in netns]
    read: set[str | None] = {None}
    if present or ours_on_host or full:
        # something of ours (or with our names) exists: read each existing namespace in full
        for name in present:
            _read_place(runner, name, facts)
            read.add(name)
    return _Facts(
        netns=netns,
        links=facts["links"],
        addresses=facts["addresses"],
        routes=facts["routes"],
        forwarding=facts["forwarding"],
        rules=tuple(f"-t {r.table} {r.line()}" for r in Firewall(runner=runner).save(4).rules if r.comment == net.mark)
        if full
        else (),
        read=frozenset(read),
        raw=facts.get("raw", {}),
    )


def _pristine(links: dict[str, dict[str, Any]], expected: Iterable[str] = ()) -> bool:
    """A namespace as an interrupted ``up`` leaves it before its mark: ``lo`` down and unmarked,
    and no other interface than veth ends the plan puts there (``expected``), which a batching
    executor may create before it marks the namespace."""
    lo = links.get("lo", {})
    return set(links) - {"lo"} <= set(expected) and "UP" not in lo.get("flags", ()) and not lo.get("ifalias")


def _ifnames_in(net: Network, name: str) -> set[str]:
    """The interfaces the plan creates inside namespace ``name``."""
    found = {ns.ifname for ns in net.namespaces if ns.name == name}
    for link in net.links:
        found |= {ifname for place, ifname, _ in link.ends() if place == name}
    return found


def _namespace_ours(net: Network, f: _Facts, name: str) -> bool:
    lo = f.links.get(name, {}).get("lo", {})
    return lo.get("ifalias") == net.mark or _pristine(f.links.get(name, {}), _ifnames_in(net, name))


def _refuse_foreign(net: Network, f: _Facts) -> None:
    """Refuse to adopt a namespace or host link that has one of our names but not our mark."""
    for name in net.namespace_names():
        if name in f.netns and not _namespace_ours(net, f, name):
            raise NetnskitError(
                f"namespace {name!r} exists but is not marked {net.mark} (its lo has no such alias); "
                "refusing to adopt it: remove it or rename the network's namespace"
            )
    host = f.links.get(None, {})
    for ifname in net.host_ifnames():
        entry = host.get(ifname)
        if entry is not None and not _host_link_ours(entry, net.mark, net.group, [ifname]):
            raise NetnskitError(
                f"link {ifname!r} exists on the host but is not marked {net.mark} (alias "
                f"{entry.get('ifalias')!r}); refusing to adopt it"
            )
    # a subnet of ours that overlaps an address on someone else's link would break both
    mine = set(net.host_ifnames())
    for ifname, address in sorted(f.addresses.get(None, set())):
        if ifname in mine:
            continue
        theirs = ipaddress.ip_interface(address).network
        for subnet in _subnets_at(net, None):
            if theirs.version == 4 and theirs.prefixlen > 0 and subnet.overlaps(theirs) and not theirs.is_loopback:
                raise NetnskitError(
                    f"subnet {subnet} of network {net.name!r} overlaps {theirs} on {ifname!r} (not ours); "
                    "refusing to bring it up"
                )


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
        addrs = tuple(
            a for d in raw.get("addr", []) for a in AddressInfo.from_json(d) if keep is None or a.ifname in keep
        )
        routes = tuple(
            RouteInfo.from_json(r) for r in raw.get("route", []) if keep is None or r.get("dev") in keep
        )
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
    missing = tuple(step.description for step in _missing(net, f))
    return NetworkStatus(
        net.name, not missing, tuple(spaces), host_links, host_addresses, host_routes, f.rules, missing
    )


# --- teardown -------------------------------------------------------------------------------


def _link_removal(
    host: dict[str, dict[str, Any]], mark: str, group: int | None, names: Sequence[str] = ()
) -> list[Step]:
    """Steps (in creation order; their undo removes) for the host links that are ours (see _host_link_ours)."""
    steps: list[Step] = []
    ours = [n for n, d in host.items() if _host_link_ours(d, mark, group, names)]
    in_group = [n for n, d in host.items() if group is not None and str(d.get("group")) == str(group)]
    if ours and group is not None and set(in_group) == set(ours):
        names = ", ".join(sorted(ours))
        steps.append(Step(f"links of group {group} ({names})", [], [["ip", "link", "del", "group", str(group)]]))
    else:
        # a link in our group without our mark is not ours: delete ours one by one
        for name in sorted(ours):
            steps.append(Step(f"link {name}", [], [["ip", "link", "del", name]]))
    return steps


def _marked_or_pristine(runner: Runner, name: str, mark: str | None, expected: Iterable[str] = ()) -> bool:
    """Read a namespace's links: True if lo carries ``mark`` (any netnskit mark for None) or it is pristine."""
    result = runner.run(ip_argv(name, "-j", "link", "show"))
    if not result.ok:
        return False
    text = result.stdout.strip()
    entries = [d for d in json.loads(text) if isinstance(d, dict) and d] if text else []
    links = {str(d["ifname"]): d for d in entries}
    alias = str(links.get("lo", {}).get("ifalias", ""))
    if (alias == mark) if mark is not None else alias.startswith(MARK_PREFIX):
        return True
    return mark is not None and _pristine(links, expected)


def _down(net: Network, executor: Executor) -> Teardown:
    runner = net.runner
    # three independent reads at once (runners are used from several threads by BatchExecutor too)
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        reading_host = pool.submit(_read_links, runner, None)
        reading_netns = pool.submit(_json, runner, ["ip", "-j", "netns", "list"])
        reading_rules = pool.submit(Firewall(runner=runner).save, 4)
        host = reading_host.result()
        netns = {str(d["name"]): d.get("id") for d in reading_netns.result()}
        saved = reading_rules.result()
    # a namespace is ours if one of our host links has its other end there (by nsid), if its lo
    # carries our mark, or if it is still empty from an interrupted up
    names_on_host = net.host_ifnames()
    linked = {d.get("link_netnsid") for d in host.values() if _host_link_ours(d, net.mark, net.group, names_on_host)}
    linked.discard(None)
    ours: list[str] = []
    left: list[str] = []
    for name in net.namespace_names():
        if name not in netns:
            continue
        proven = netns[name] is not None and netns[name] in linked
        mine = proven or _marked_or_pristine(runner, name, net.mark, _ifnames_in(net, name))
        (ours if mine else left).append(name)
    steps = [Step(f"namespace {n}", [], [["ip", "netns", "del", n]]) for n in ours]
    steps += _link_removal(host, net.mark, net.group, names_on_host)
    # (our own links go right after the sweep: putting their forwarding back too is harmless)
    steps += _firewall_removal(runner, lambda comment: comment == net.mark, stays=_any_network, host=host,
                               read={4: saved})
    gone = [f"namespace {n}" for n in net.namespace_names() if n not in netns]
    gone += [f"link {n}" for n in net.host_ifnames() if n not in host]
    already = executor.remove(steps, runner) if steps else []
    return Teardown(
        removed=tuple(s.description for s in steps),
        already_gone=tuple(gone + list(already)),
        left=tuple(f"namespace {n} (not marked {net.mark} and not empty: not ours, left alone)" for n in left),
    )


def _families(runner: Runner) -> tuple[int, ...]:
    """4, and 6 where ip6tables-save works."""
    return (4, 6) if runner.run(["ip6tables-save"]).ok else (4,)


_HOST_CLAIM = "netnskit host lock"
_LOCK_WAIT = 120.0


def _claim(name: str) -> socket.socket | None:
    """Bind the abstract unix socket ``name``: the socket while held by nobody else, else None."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # abstract: per network namespace, gone with the process, nothing on disk; at most 107 bytes
        key = name if len(name.encode()) <= 100 else "netnskit:#" + hashlib.sha256(name.encode()).hexdigest()
        sock.bind("\0" + key)
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        return None
    return sock


@contextlib.contextmanager
def _exclusive(runner: Runner, name: str | None) -> Iterator[None]:
    """Claim network ``name`` (fail at once if another process has it), then take the host lock.

    Only for a plain LiveRunner: other runners act elsewhere (see the module docstring).
    """
    if type(runner) is not LiveRunner:
        yield
        return
    with contextlib.ExitStack() as stack:
        if name is not None:
            mine = _claim(mark_for(name))
            if mine is None:
                raise NetnskitError(
                    f"network {name!r} is being changed by another process on this host (it holds the "
                    f"claim {mark_for(name)!r}); try again when that process is done"
                )
            stack.callback(mine.close)
        deadline = time.monotonic() + _LOCK_WAIT
        while (host := _claim(_HOST_CLAIM)) is None:
            if time.monotonic() > deadline:
                raise NetnskitError(f"another netnskit process has held the host lock for {_LOCK_WAIT:.0f} s")
            time.sleep(0.01)
        stack.callback(host.close)
        yield


def cleanup(runner: Runner | None = None, executor: Executor | None = None) -> Teardown:
    """Remove every leftover netnskit marked on this host (any network), and nothing else.

    Links whose alias starts ``netnskit:``, rules whose comment does, and namespaces whose ``lo``
    alias does. A namespace left empty by an interrupted ``up`` carries no mark yet: ``down FILE``
    removes it, since the file names it.
    """
    run = runner or LiveRunner()
    with _exclusive(run, None):
        return _cleanup(run, executor)


def _cleanup(run: Runner, executor: Executor | None) -> Teardown:
    host = _read_links(run, None)
    marked = [str(d["name"]) for d in _json(run, ["ip", "-j", "netns", "list"])]
    marked = [n for n in marked if _marked_or_pristine(run, n, None)]
    marks = {str(d["ifalias"]) for d in host.values() if str(d.get("ifalias", "")).startswith(MARK_PREFIX)}
    steps = [Step(f"namespace {n}", [], [["ip", "netns", "del", n]]) for n in marked]
    for mark in sorted(marks):
        steps += _link_removal(host, mark, None)
    # every network goes: no other network's forwarding to keep
    steps += _firewall_removal(
        run, lambda comment: comment.startswith(MARK_PREFIX), _families(run), lambda _: False, host
    )
    already = (executor or SerialExecutor()).remove(steps, run) if steps else []
    return Teardown(removed=tuple(s.description for s in steps), already_gone=tuple(already))


# --- check ----------------------------------------------------------------------------------


def _inside(netns: str | None, argv: list[str]) -> list[str]:
    """``argv`` run inside ``netns`` (``ip netns exec``), or on the host for None."""
    return argv if netns is None else Namespace(netns).exec_argv(argv)


def _ping(net: Network, source: str | None, target: IPv4Address, timeout: float) -> Probe:
    argv = _inside(source, ["ping", "-n", "-c", "1", "-W", str(max(1, int(timeout))), str(target)])
    result = net.runner.run(argv, timeout=timeout + 5)
    detail = "" if result.ok else (result.stdout.strip().splitlines() or [result.stderr.strip()])[-1]
    return Probe("ping", source or "host", str(target), result.ok, detail)


def _exchange(
    net: Network,
    kind: str,
    source: str | None,
    server_ns: str,
    target: IPv4Address,
    port: int,
    timeout: float,
    server_port: int | None = None,
) -> Probe:
    """A TCP exchange through netnskit.probe: a server in ``server_ns`` on ``server_port`` (``port``
    unless forwarded), a client from ``source`` to ``target``:``port``."""
    start = getattr(net.runner, "start", None)
    label = f"{target}:{port}"
    if start is None:
        return Probe(kind, source or "host", label, False, "the runner cannot start a probe server")
    serve = [sys.executable, "-m", "netnskit.probe", "serve", "--proto", "tcp", "--port", str(server_port or port)]
    serve += ["--count", "1", "--timeout", str(max(10.0, timeout + 3) + timeout)]
    server: subprocess.Popen[str] = start(_inside(server_ns, serve))
    try:
        if _readline(server, max(10.0, timeout + 3)) != "ready":
            stderr = getattr(server, "stderr", None)
            err = stderr.read() if server.poll() is not None and stderr is not None else ""
            why = f"probe server in {server_ns} did not start {err}".strip()
            return Probe(kind, source or "host", label, False, why)
        connect = [sys.executable, "-m", "netnskit.probe", "connect", "--proto", "tcp", str(target), str(port)]
        connect += ["--timeout", str(timeout)]
        result = net.runner.run(_inside(source, connect), timeout=timeout + 10)
        if not result.ok:
            return Probe(kind, source or "host", label, False, result.stdout.strip() or result.stderr.strip())
        seen = _readline(server, timeout)
        peer = json.loads(seen)["peer"][0] if seen.startswith("{") else "?"
        return Probe(kind, source or "host", label, True, f"{server_ns} saw peer {peer}")
    finally:
        end_process(server)


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    # a runner's stand-in processes may have no output pipe (a fake one)
    return read_line(getattr(proc, "stdout", None), timeout)


_PROBE_PORT = 47001


def _check(net: Network, timeout: float) -> CheckReport:
    addrs = net.addresses()
    # independent probes run a few at a time: each NAT probe has its own server port
    jobs: list[Callable[[], Probe]] = []
    for ns in net.namespaces:
        jobs.append(functools.partial(_ping, net, ns.name, net.gateway, timeout))
        for other in net.namespaces:
            if other.name != ns.name:
                jobs.append(functools.partial(_ping, net, ns.name, addrs[other.name].ip, timeout))
    # NAT: from each namespace on the bridge to the first address of each extra namespace
    if net.masquerade:
        for extra in net.extra_namespaces:
            target = next(
                (a.ip for link in net.links for p, _, a in link.ends() if p == extra.name and a is not None), None
            )
            if target is None:
                continue
            for ns in net.namespaces:
                port = _PROBE_PORT + len(jobs)
                jobs.append(functools.partial(_nat_probe, net, ns.name, extra.name, target, port, timeout))
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        probes = list(pool.map(_twice, jobs))
    # port forwards, one at a time (they share the destination port): from the host to the
    # gateway, and from each namespace linked to the host to the host's address on that link
    for fwd in net.port_forwards:
        if fwd.protocol != "tcp":
            continue
        sources: list[tuple[str | None, IPv4Address]] = [(None, net.gateway)]
        for link in net.links:
            if link.namespace is None and link.address is not None and link.peer_namespace is not None:
                sources.append((link.peer_namespace, link.address.ip))
        dest_port = (fwd.port or fwd.host_port)[0]
        for source, address in sources:
            job = functools.partial(
                _exchange, net, "forward", source, fwd.namespace, address, fwd.host_port[0], timeout, dest_port
            )
            probes.append(_twice(job))
    return CheckReport(tuple(probes))


def _twice(job: Callable[[], Probe]) -> Probe:
    """Run a probe; a failed one is tried once more (a loaded host can drop a first ARP or be slow)."""
    probe = job()
    return probe if probe.ok else job()


def _nat_probe(net: Network, source: str, server_ns: str, target: IPv4Address, port: int, timeout: float) -> Probe:
    probe = _exchange(net, "nat", source, server_ns, target, port, timeout)
    if probe.ok and probe.detail.endswith(f" {net.addresses()[source].ip}"):
        return attrs.evolve(probe, ok=False, detail=probe.detail + " (not masqueraded)")
    return probe


# --- TOML -----------------------------------------------------------------------------------

_TOP = {"network", "namespace", "extra_namespace", "link", "route", "port_forward"}
_KEYS: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    # key -> (TOML types accepted, required)
    "network": {
        "name": (str, True),
        "bridge": (str, True),
        "subnet": (str, True),
        "gateway": (str, True),
        "masquerade": (bool, False),
        "group": (int, False),
        "ipv6_link_local": (bool, False),
        "multicast_snooping": (bool, False),
    },
    "namespace": {
        "name": (str, True),
        "address": (str, False),
        "ifname": (str, False),
        "host_ifname": (str, False),
        "default_route": (bool, False),
        "routes": (list, False),
    },
    "extra_namespace": {"name": (str, True), "forwarding": (bool, False)},
    "link": {
        "name": (str, True),
        "peer": (str, True),
        "namespace": (str, False),
        "peer_namespace": (str, False),
        "address": (str, False),
        "peer_address": (str, False),
    },
    "route": {"to": (str, True), "via": (str, False), "dev": (str, False), "namespace": (str, False)},
    "port_forward": {
        "host_port": ((int, str), True),
        "namespace": (str, True),
        "port": ((int, str), False),
        "protocol": (str, False),
    },
}
_TYPE_NAMES = {str: "a string", bool: "true or false", int: "an integer", list: "a list"}


def _table(source: str, key: str, value: object, kind: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(source, key, value, "must be a table")
    schema = _KEYS[kind]
    for k in value:
        if k not in schema:
            raise ConfigError(source, f"{key}.{k}", _MISSING, f"unknown key (known: {', '.join(schema)})")
    for k, (types, required) in schema.items():
        if k not in value:
            if required:
                raise ConfigError(source, f"{key}.{k}", _MISSING, "missing required key")
            continue
        item = value[k]
        accepted = types if isinstance(types, tuple) else (types,)
        wrong = not isinstance(item, accepted) or (bool not in accepted and isinstance(item, bool))
        if wrong:
            names = " or ".join(_TYPE_NAMES[t] for t in accepted)
            raise ConfigError(source, f"{key}.{k}", item, f"must be {names}")
    return dict(value)


def _build(source: str, key: str, make: Callable[..., Any], fields: dict[str, Any]) -> Any:
    try:
        return make(**fields)
    except ValidationError as exc:
        # name the key whose value was rejected, if it is one of this table's
        culprit = next((k for k, val in fields.items() if _same(val, exc.value)), None)
        where = f"{key}.{culprit}" if culprit else key
        raise ConfigError(source, where, exc.value, f"{exc.what}: {exc.rule}") from None


def _same(raw: object, value: object) -> bool:
    """Is ``raw`` (as written in the file) the ``value`` a check rejected (maybe after conversion)?"""
    if raw is value:
        return True
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        return False
    if isinstance(value, tuple) and len(value) == 2:  # a port range
        return str(raw) in (f"{value[0]}-{value[1]}", str(value[0]) if value[0] == value[1] else None)
    return str(raw) == str(value)


def _array(source: str, data: dict[str, Any], kind: str) -> list[tuple[str, dict[str, Any]]]:
    items = data.get(kind, [])
    if not isinstance(items, list):
        raise ConfigError(source, kind, items, f"must be an array of tables ([[{kind}]])")
    return [(f"{kind}[{i}]", _table(source, f"{kind}[{i}]", item, kind)) for i, item in enumerate(items)]


def _from_dict(cls: type[Network], data: dict[str, Any], source: str, runner: Runner) -> Network:
    for k in data:
        if k not in _TOP:
            raise ConfigError(source, k, _MISSING, f"unknown key (known: {', '.join(sorted(_TOP))})")
    if "network" not in data:
        raise ConfigError(source, "network", _MISSING, "missing required table [network]")
    top = _table(source, "network", data["network"], "network")
    namespaces = []
    for key, table in _array(source, data, "namespace"):
        routes = []
        for i, r in enumerate(table.pop("routes", [])):
            rkey = f"{key}.routes[{i}]"
            rt = _table(source, rkey, r, "route")
            routes.append(_build(source, rkey, RouteSpec, rt))
        namespaces.append(_build(source, key, NamespaceSpec, {**table, "routes": routes}))
    extras = [_build(source, k, ExtraNamespace, t) for k, t in _array(source, data, "extra_namespace")]
    links = [_build(source, k, LinkSpec, t) for k, t in _array(source, data, "link")]
    routes_top = [_build(source, k, RouteSpec, t) for k, t in _array(source, data, "route")]
    forwards = [_build(source, k, ForwardSpec, t) for k, t in _array(source, data, "port_forward")]
    fields = {
        **top,
        "namespaces": namespaces,
        "extra_namespaces": extras,
        "links": links,
        "routes": routes_top,
        "port_forwards": forwards,
    }
    try:
        return cls(**fields, runner=runner)
    except ValidationError as exc:
        where = _find_key(data, exc.value) or "network"
        raise ConfigError(source, where, exc.value, f"{exc.what}: {exc.rule}") from None


def _find_key(data: object, value: object, prefix: str = "") -> str | None:
    """The last key path in ``data`` whose value is ``value`` (for naming the culprit of a rejection)."""
    found: str | None = None
    if isinstance(data, dict):
        for k, item in data.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            found = _find_key(item, value, path) or found
    elif isinstance(data, list):
        for i, item in enumerate(data):
            found = _find_key(item, value, f"{prefix}[{i}]") or found
    elif _same(data, value):
        found = prefix
    return found

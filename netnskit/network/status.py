"""The status of a network: the plan's steps the kernel does not show as done, and what exists, as typed objects."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from netnskit.commands import NET
from netnskit.errors import CommandNotFoundError
from netnskit.firewall import Rule, SavedRules
from netnskit.firewall.host import interfaces
from netnskit.link import AddressInfo, LinkInfo, Neighbour, RouteInfo, neighbours
from netnskit.network.drift import Owned, _after_removal, _extra, _stale_core, _stale_rule_step, _stale_rules
from netnskit.network.files import digest, wanted
from netnskit.network.firewall import (
    _firewall_objects,
    _firewall_of,
    _firewall_plan,
    _host_routes,
    _host_routes6,
    _iptables_wanted,
    _saved6,
    _sweep_step,
)
from netnskit.network.impair import CableImpairment, cable_status, states_from
from netnskit.network.processes import ProcessStatus, stale, statuses
from netnskit.network.spec import owner_of
from netnskit.network.state import _conflicts, _Facts, _host_link_ours, _namespace_ours
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
    owner: str | None = None  # the network its lo's mark names (another one when not ours)


@attrs.frozen
class MissingStep:
    """A step of the plan that the kernel does not show as done: its description and what it makes.

    ``kind`` is the kind of thing the step creates (``netns``, ``link``, ``address``, ``route``,
    ``sysctl``), ``firewall`` for the network's rules, ``process`` for a process to start (or, no
    longer described, to stop), or ``setting`` for a change to something that exists (an alias, a
    link brought up); ``name`` and ``netns`` say which and where (None: the host).
    """

    step: str
    kind: str
    name: str | None = None
    netns: str | None = None

    @classmethod
    def of(cls, step: Step) -> MissingStep:
        """Describe ``step`` from the resources its commands create (pure)."""
        made = [r for c in step.do for r in c.creates]
        if made:
            first = made[0]
            return cls(step.description, first.kind, first.name, first.netns)
        firewall = any(c.channel and c.channel != NET for c in step.do)
        netns = next((c.netns for c in step.do if c.netns is not None), None)
        return cls(step.description, "firewall" if firewall else "setting", None, netns)

    def __str__(self) -> str:
        return self.step


@attrs.frozen
class NetworkStatus:
    """The network's state, read with ``ip -j`` and ``iptables-save``: what exists, what is missing, what conflicts."""

    name: str
    up: bool
    namespaces: tuple[NamespaceStatus, ...]
    host_links: tuple[LinkInfo, ...]
    host_addresses: tuple[AddressInfo, ...]
    host_routes: tuple[RouteInfo, ...]
    rules: tuple[str, ...]
    missing: tuple[MissingStep, ...]  # each prints as its step's description
    conflicts: tuple[str, ...] = ()  # what someone else holds where the network needs it (up refuses it)
    processes: tuple[ProcessStatus, ...] = ()
    files: tuple[str, ...] = ()  # the files under /etc/netns that hold what the network writes
    impairments: tuple[CableImpairment, ...] = ()  # each cable impaired in the file or in the kernel
    extra: tuple[Owned, ...] = ()  # marked with this network's name but not in its description
    firewall: str = ""  # the firewall the rules go through and why: "iptables (as set)", "nftables (auto: ...)"

    def to_json(self) -> dict[str, Any]:
        """A plain dict (addresses as strings) for ``netnskit status --json``."""
        return attrs.asdict(self, recurse=True, value_serializer=_plain)


def _plain(instance: object, field: object, value: object) -> object:
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return str(value)
    return value


def _saved(net: Network) -> SavedRules | None:
    try:
        return _firewall_of(net).save(4)
    except CommandNotFoundError:  # no iptables: no rules of ours either
        return None


def _stale(net: Network, saved: SavedRules | None, routes: list[dict[str, Any]] | None) -> list[Rule]:
    return [] if saved is None else _stale_rules(net.mark, saved, _iptables_wanted(net, routes, saved))


def _six(net: Network) -> tuple[SavedRules | None, list[dict[str, Any]] | None]:
    """The host's IPv6 rules and routes, read for a dual-stack network (None, None when IPv4 only)."""
    return (_saved6(_firewall_of(net), needed=True), _host_routes6(net)) if net.dual else (None, None)


def _stale6(net: Network, saved6: SavedRules | None, routes6: list[dict[str, Any]] | None) -> list[Rule]:
    """A dual-stack network's IPv6 rules the description lost (``saved6``, ``routes6``: :func:`_six`)."""
    return [] if saved6 is None else _stale_rules(net.mark, saved6, _iptables_wanted(net, routes6, saved6, 6))


def _missing(
    net: Network,
    f: _Facts,
    saved: SavedRules | None = None,
    routes: list[dict[str, Any]] | None = None,
    six: tuple[SavedRules | None, list[dict[str, Any]] | None] | None = None,
) -> list[Step]:
    """What ``up`` would do now, in its order: removals of what the description lost, the plan's
    missing steps, the firewall's (and its sweep, where rules go). ``saved``, ``routes``: the host's
    IPv4 rules and routes, ``six``: its IPv6 ones (:func:`_six`), if just read."""
    saved = saved if saved is not None else _saved(net)
    routes = routes if routes is not None else _host_routes(net)
    saved6, routes6 = six if six is not None else _six(net)
    then = _after_removal(net, f)  # what the removals take along is to do again
    core = _stale_core(net, f) + [step for step, done in net._entries() if not done(then)]
    core += [step for step, done in net._impair_entries(f) if not done]
    stale = _stale(net, saved, routes)
    # the firewall reads sysctls of the bridge: before it exists, all of its steps are missing
    live = net.bridge in f.links.get(None, {})
    if saved is None and not _firewall_objects(net):
        firewall: list[Step] = []  # no iptables, and no masquerade or forward needs it: nothing to filter
    else:
        firewall = _firewall_plan(
            net, live=live, saved=saved if live else None, routes=routes, saved6=saved6, routes6=routes6
        )[0]
    stale6 = _stale6(net, saved6, routes6)
    steps = core + _stale_rule_step(net, stale) + _stale_rule_step(net, stale6, 6) + firewall
    if stale and saved is not None:
        # the sweep once the stale rules are gone and the wanted ones are there
        gone = set(stale)
        rules = [r for r in saved.rules if r not in gone] + _iptables_wanted(net, routes, saved)
        after = attrs.evolve(saved, rules=tuple(rules))
        steps += _sweep_step(_firewall_of(net), after, f.links.get(None, {}), interfaces(stale)).steps
    return steps


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
        owner = owner_of(f.links.get(name, {}).get("lo", {}).get("ifalias")) if present else None
        spaces.append(NamespaceStatus(name, present, ours_ns, links, addrs, routes, neigh, owner))
    names = net.host_ifnames()
    host = f.links.get(None, {})
    ours = sorted(n for n, d in host.items() if _host_link_ours(d, net.mark, net.group, names))
    host_links, host_addresses, host_routes = typed(None, ours)
    saved = f.saved if f.saved is not None else _saved(net)
    routes = _host_routes(net)
    processes = tuple(statuses(net))
    gone = stale(net)  # processes of ours the description lost: up stops them
    six = _six(net)
    missing = tuple(MissingStep.of(step) for step in _missing(net, f, saved, routes, six))
    missing += tuple(MissingStep(f"stop process {name} (no longer described)", "process", name, None) for name in gone)
    missing += tuple(
        MissingStep(f"process {p.name} in {p.netns} ({p.state})", "process", p.name, p.netns)
        for p in processes
        if p.state != "running"
    )
    conflicts = tuple(_conflicts(net, f, saved))
    written = tuple(sorted(p for p, text in wanted(net).items() if f.files.digests.get(p) == digest(text)))
    support = f.netem or net._support_for_file()
    states = states_from(net, f.links, f.qdiscs, f.rules_in)
    impairments = cable_status(net, states, support, net._impair_entries(f))
    extra = _extra(net, f, _stale(net, saved, routes) + _stale6(net, *six))
    extra += tuple(Owned("process", name) for name in gone)
    return NetworkStatus(
        net.name,
        not missing and not conflicts,
        tuple(spaces),
        host_links,
        host_addresses,
        host_routes,
        f.rules,
        missing,
        conflicts,
        processes,
        written,
        impairments=impairments,
        extra=extra,
        firewall=str(net.firewall_choice()),
    )

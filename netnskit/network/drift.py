"""Drift: what a network owns on the host that its description no longer has, and the steps that remove it.

A network owns what carries its mark ``netnskit:NAME``: namespaces whose ``lo`` has that alias,
host links with that alias, firewall rules with that comment. Edit the file (a namespace, a link
or a port forward taken out) and those objects stay marked: ``up`` removes them (steps that
:meth:`Network.missing_steps` lists first), ``status`` lists them (``NetworkStatus.extra``),
``down`` removes them with the rest. A renamed network is another network: its marks carry the
old name, which :func:`~netnskit.network.spec.owner_of` reads back for the messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from netnskit.firewall import Backend, Firewall, Rule, SavedRules
from netnskit.firewall.rules import _rule_key
from netnskit.link import Link
from netnskit.netns import Namespace
from netnskit.network import files as _files
from netnskit.network.state import _Facts
from netnskit.plan import Step

if TYPE_CHECKING:
    from netnskit.network.network import Network

__all__ = ["Owned"]


@attrs.frozen
class Owned:
    """Something on the host marked with a network's name that its description does not have."""

    kind: str  # "namespace", "link" (a host link), "rule" (a firewall rule) or "process"
    name: str  # the namespace's, link's or process's name; a rule as ``[-6 ]-t TABLE -A CHAIN ...``


def _stale_links(net: Network, f: _Facts) -> list[str]:
    """Host links with our alias that the file does not have (by name)."""
    described = {*net.host_ifnames(), *net.overlay_links}
    return sorted(n for n, d in f.links.get(None, {}).items() if d.get("ifalias") == net.mark and n not in described)


def _stale_core(net: Network, f: _Facts) -> list[Step]:
    """Steps (``do`` removes; nothing to undo) for what ``up`` takes away before it adds.

    Dangling ``/run/netns`` entries of the file's names first (``up`` makes them again), then our
    host links the file lost (a veth end takes its peer along), then our namespaces it lost.
    """
    steps = [
        Step(
            f"remove the dangling /run/netns entry {name} (a delete was interrupted: no namespace is mounted there)",
            [Namespace(name, runner=net.runner).delete_command()],
        )
        for name in sorted(f.dangling)
    ]
    steps += [
        Step(
            f"remove link {name} (marked {net.mark}, no longer in the description)",
            [Link(name, runner=net.runner).delete_command()],
        )
        for name in _stale_links(net, f)
    ]
    steps += [
        Step(
            f"remove namespace {name} (marked {net.mark}, no longer in the description)",
            [Namespace(name, runner=net.runner).delete_command()],
        )
        for name in f.stale
    ]
    steps += _stale_files(net, f.stale)
    return steps


def _stale_files(net: Network, names: Sequence[str]) -> list[Step]:
    """A step removing the /etc/netns files of namespaces of ours the file lost (their first line
    is our mark, or they are empty from an interrupted up), and then their folders once empty."""
    if not names:
        return []
    mine = _files.ours(_files.read(net.runner, _files.candidates(names)), net.mark)
    empty_files, _ = _files.pristine(net.runner, names)
    paths = [*mine, *empty_files]
    if not paths:
        return []
    return [
        Step(
            f"remove files {', '.join(paths)} (marked {net.mark}, no longer in the description)",
            _files.remove_commands(paths, [f"{_files.ETC_NETNS}/{name}" for name in names]),
        )
    ]


def _after_removal(net: Network, f: _Facts) -> _Facts:
    """``f`` as it will be once ``_stale_core``'s links are gone: a veth end takes its peer along, and
    a peer in a namespace the description keeps may be one of its links (a renamed ``host_ifname``:
    the new pair's ``eth0`` is to be brought up and addressed again, not taken as done)."""
    doomed = set(_stale_links(net, f))
    if not doomed:
        return f
    host = f.links.get(None, {})
    by_id = {nsid: name for name, nsid in f.netns.items() if nsid is not None}
    gone: dict[str | None, set[str]] = {None: doomed}
    for name in doomed:
        entry = host.get(name, {})
        nsid = entry.get("link_netnsid")
        space = by_id.get(int(nsid)) if isinstance(nsid, int) else None
        if space is None or "link_index" not in entry:
            continue
        peers = {n for n, d in f.links.get(space, {}).items() if d.get("ifindex") == entry["link_index"]}
        gone.setdefault(space, set()).update(peers)
    links = {w: {n: d for n, d in ls.items() if n not in gone.get(w, set())} for w, ls in f.links.items()}
    addresses = {w: {a for a in v if a[0] not in gone.get(w, set())} for w, v in f.addresses.items()}
    forwarding = {w: {n: on for n, on in v.items() if n not in gone.get(w, set())} for w, v in f.forwarding.items()}
    routes, routes6 = dict(f.routes), dict(f.routes6)
    for where, names in gone.items():
        kept = [r for r in f.raw.get(where, {}).get("route", []) if r.get("dev") not in names]
        routes[where] = {(str(r.get("dst", "")), r.get("gateway")) for r in kept}
        if where in f.routes6:
            kept6 = [r for r in f.raw.get(where, {}).get("route6", []) if r.get("dev") not in names]
            routes6[where] = {(str(r.get("dst", "")), r.get("gateway")) for r in kept6}
    forwarding6 = {w: {n: on for n, on in v.items() if n not in gone.get(w, set())} for w, v in f.forwarding6.items()}
    return attrs.evolve(
        f,
        links=links,
        addresses=addresses,
        forwarding=forwarding,
        routes=routes,
        routes6=routes6,
        forwarding6=forwarding6,
    )


def _stale_rules(mark: str, saved: SavedRules, wanted: list[Rule]) -> list[Rule]:
    """Our rules (comment ``mark``) in ``saved`` that are none of ``wanted``, compared as iptables sees them."""
    ours = [r for r in saved.rules if r.comment == mark]
    if not ours:  # a first up: nothing of ours to compare (keying every wanted rule costs O(rules))
        return []
    keys = {_rule_key(r) for r in wanted}
    return [r for r in ours if _rule_key(r) not in keys]


def _stale_rule_step(net: Network, stale: list[Rule], family: int = 4) -> list[Step]:
    """One step deleting ``stale`` (rules of ``family``, in one restore), or none."""
    if not stale:
        return []
    sections: dict[str, list[str]] = {}
    for rule in stale:
        sections.setdefault(rule.table, []).append(rule.line("-D"))
    fw = Firewall(Backend(wait=net.xtables_wait), net.runner)  # the network's xtables wait
    return [
        Step(
            f"remove {len(stale)} {'IPv6 ' if family == 6 else ''}firewall rule{'s' if len(stale) != 1 else ''} "
            f"of {net.mark} no longer in the description",
            [fw.restore_command(family, sections)],
        )
    ]


def _extra(net: Network, f: _Facts, stale_rules: list[Rule]) -> tuple[Owned, ...]:
    """What ``status`` lists as ours and not described."""
    found = [Owned("namespace", name) for name in f.stale]
    found += [Owned("link", name) for name in _stale_links(net, f)]
    found += [Owned("rule", f"{'-6 ' if r.family == 6 else ''}-t {r.table} {r.line()}") for r in stale_rules]
    return tuple(found)

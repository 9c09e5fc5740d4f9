"""The glue to :mod:`netnskit.firewall`: a network's bridge, NAT and forwards as firewall steps, and removal.

The kernel copies a write of ``net.ipv4.ip_forward`` to every interface: the steps that write it also
put back the per-link forwarding of netnskit networks' links.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from netnskit import _ipjson
from netnskit.firewall import Firewall, NatRule, PortForward, Rule, SavedRules, Sysctl, SysctlRecord
from netnskit.firewall.host import interfaces, uplinks
from netnskit.firewall.rules import _unique
from netnskit.network.spec import MARK_PREFIX
from netnskit.network.state import _read_links
from netnskit.network.steps import _sysctl_forwarding
from netnskit.plan import Command, Step
from netnskit.runner import Runner

if TYPE_CHECKING:
    from netnskit.network.network import Network


def _uplinks(net: Network, routes: Sequence[dict[str, Any]] | None = None) -> tuple[str, ...]:
    """Where the masqueraded subnet may go: the network's own host links and host routes' devices, and
    (``routes``: the host's, when read) the devices of the host's routes through a gateway."""
    own = [link.name for link in net.links if link.netns is None]
    own += [r.dev for r in net.routes if r.netns is None and r.dev is not None]
    found = uplinks(routes, exclude=[net.bridge]) if routes is not None else []
    return tuple(d for d in _unique([*own, *found]) if d != net.bridge)


def _bridge_rule(net: Network) -> Rule:
    """Traffic between the network's namespaces: bridged, it passes FORWARD where br_netfilter is loaded.

    The same rule as its NatRule's (so the two are one): a network without masquerade needs it too.
    """
    spec = ["-i", net.bridge, "-o", net.bridge, "-m", "comment", "--comment", net.mark, "-j", "ACCEPT"]
    return Rule(4, "filter", "NETNSKIT-FORWARD", spec)


def _firewall_objects(net: Network, routes: Sequence[dict[str, Any]] | None = None) -> list[NatRule | PortForward]:
    return [*([net.nat_rule(_uplinks(net, routes))] if net.masquerade else []), *net.forward_rules()]


def _firewall_plan(
    net: Network, *, live: bool, saved: SavedRules | None = None
) -> tuple[list[Step], list[SysctlRecord]]:
    """The firewall's steps for the network (its bridge, masquerade and forwards, as one ruleset), and
    the sysctl records to write before they run.

    Pure (for a clean host) unless ``live``: then read from the host (``saved``: its rules, if just
    read), holding only what is missing.
    """
    fw = Firewall(runner=net.runner)
    description = f"firewall rules of network {net.name} ({net.mark})"
    routes = _ipjson.read(net.runner, None, "route", "show", flags=["-4"]) if live and net.masquerade else None
    objects = _firewall_objects(net, routes)
    rules: list[Rule] = _unique([_bridge_rule(net), *(r for o in objects for r in o.rules())])
    sysctls: list[Sysctl] = _unique(s for o in objects for s in o.sysctls())
    if not live:
        return fw.plan_changes(4, rules, sysctls, description, values={})
    steps, changes = fw.plan_changes(4, rules, sysctls, description, saved=saved or fw.save(4))
    return [attrs.evolve(s, undo=_keep_link_forwarding(net.runner, s.undo, _any_network)) for s in steps], changes


def _firewall_steps(net: Network, *, live: bool) -> list[Step]:
    """The firewall's steps of :func:`_firewall_plan`."""
    return _firewall_plan(net, live=live)[0]


def _any_network(alias: str) -> bool:
    """Does a link alias mark a netnskit network's link?"""
    return alias.startswith(MARK_PREFIX)


_IP_FORWARD = ("net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding")


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
    if not any(r.kind == "sysctl" and r.name in _IP_FORWARD for c in commands for r in c.creates):
        return tuple(commands)
    theirs = {
        name
        for name, d in (_read_links(runner, None) if host is None else host).items()
        if stays(str(d.get("ifalias", ""))) and not d.get("master")
    }
    entries = _ipjson.read(runner, None, "netconf", "show", flags=["-4"])
    forwarding = [
        str(d["interface"])
        for d in entries
        if d.get("forwarding") and d.get("interface") not in _CONF_ALL and d.get("interface") in theirs
    ]
    return (*commands, *(_sysctl_forwarding(name) for name in forwarding))


_CONF_ALL = {None, "all", "default", "lo"}


@attrs.frozen
class _Removal:
    """The steps removing netnskit's rules, what the sweep leaves on and why, and the records to drop after."""

    steps: tuple[Step, ...] = ()
    left: tuple[str, ...] = ()
    forget: tuple[str, ...] = ()


def _firewall_removal(
    runner: Runner,
    owns: Callable[[str], bool],
    families: Sequence[int] = (4,),
    stays: Callable[[str], bool] | None = None,
    host: dict[str, dict[str, Any]] | None = None,
    read: dict[int, SavedRules] | None = None,
) -> _Removal:
    """Steps (undo order) deleting every rule whose comment ``owns`` accepts, then the firewall's sweep
    (``stays``: the link aliases of networks that stay, see _keep_link_forwarding; ``host``: the
    host's links and ``read``: the saved rules of a family, if just read). Sysctls are put back from
    their records (beside the locks): those no rule needs any more, unless something else needs them."""
    fw = Firewall(runner=runner)
    records = fw.records.load()
    steps: list[Step] = []
    left: list[str] = []
    forget: list[str] = []
    for family in families:
        given = (read or {}).get(family)
        saved = fw.save(family) if given is None else given
        mine = [r for r in saved.rules if r.comment is not None and owns(r.comment)]
        doomed = set(mine)
        after = attrs.evolve(saved, rules=tuple(r for r in saved.rules if r not in doomed))
        sweep = fw.plan_sweep(
            family,
            after,
            records=records,
            value=fw.sysctl_value,
            reliance=functools.partial(fw.reliance, family, after, interfaces(mine)),
        )
        left += sweep.left
        forget += sweep.forget
        commands = list(sweep.commands)
        if family == 4:
            commands = list(_keep_link_forwarding(runner, commands, stays or (lambda _: False), host))
        if commands:
            back = f": put back {', '.join(sweep.restored)}" if sweep.restored else ""
            steps.append(Step(f"sweep netnskit's shared firewall state (IPv{family}){back}", [], commands))
        if mine:
            sections: dict[str, list[str]] = {}
            for rule in mine:
                sections.setdefault(rule.table, []).append(rule.line("-D"))
            steps.append(Step(f"{len(mine)} firewall rules (IPv{family})", [], [fw.restore_command(family, sections)]))
    return _Removal(tuple(steps), tuple(left), tuple(forget))


def _families(runner: Runner) -> tuple[int, ...]:
    """4, and 6 where ip6tables-save works."""
    return (4, 6) if runner.run(["ip6tables-save"]).ok else (4,)

"""The glue to :mod:`netnskit.firewall`: a network's masquerade and port forwards as firewall steps, and removal.

The kernel copies a write of ``net.ipv4.ip_forward`` to every interface: the steps that write it also
put back the per-link forwarding of netnskit networks' links.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from netnskit import _ipjson
from netnskit.errors import CommandNotFoundError
from netnskit.firewall import Backend, Firewall, NatRule, PortForward, Rule, SavedRules, Sysctl
from netnskit.firewall.rules import _unique
from netnskit.network.spec import MARK_PREFIX
from netnskit.network.state import _read_links
from netnskit.network.steps import _sysctl_forwarding
from netnskit.plan import Command, Step
from netnskit.runner import Runner

if TYPE_CHECKING:
    from netnskit.network.network import Network


def _firewall_objects(net: Network) -> list[NatRule | PortForward]:
    return [*([net.nat_rule()] if net.masquerade else []), *net.forward_rules()]


def _firewall_of(net: Network) -> Firewall:
    """The firewall the network's rules go through (its xtables wait)."""
    return Firewall(Backend(wait=net.xtables_wait), net.runner)


def _saved(fw: Firewall, family: int, *, needed: bool) -> SavedRules:
    """The host's rules of ``family``. Without the tool installed and not ``needed`` (no rule of the
    description): none, since no netnskit rule can have been made without it; a network with no
    masquerade or forward works on a host without iptables."""
    try:
        return fw.save(family)
    except CommandNotFoundError:
        if needed:
            raise
        return _NO_RULES


_NO_RULES = SavedRules(frozenset(), (), {})


def _wanted_rules(net: Network, saved: SavedRules | None) -> list[Rule]:
    """The rules of the network's masquerade and forwards (ACCEPT ones where ``saved`` shows FORWARD
    policy DROP; none for None, a clean host)."""
    accept = _firewall_of(net).forward_policy_drop(saved) if saved is not None else False
    return _unique(r for o in _firewall_objects(net) for r in o.rules(forward_accept=accept))


def _firewall_steps(net: Network, *, live: bool, saved: SavedRules | None = None) -> list[Step]:
    """The firewall's steps for the network's masquerade and forwards, as one ruleset.

    Pure (for a clean host, FORWARD policy ACCEPT) unless ``live``: then read from the host
    (``saved``: its iptables-save, if just read), holding only what is missing.
    """
    objects = _firewall_objects(net)
    if not objects:
        return []
    fw = _firewall_of(net)
    description = f"firewall rules of network {net.name} ({net.mark})"
    if live and saved is None:
        saved = fw.save(4)
    rules = _wanted_rules(net, saved if live else None)
    sysctls: list[Sysctl] = _unique(s for o in objects for s in o.sysctls())
    if not live:
        return fw.plan(4, rules, sysctls, description, values={})
    steps = fw.plan(4, rules, sysctls, description, saved=saved)
    return [attrs.evolve(s, undo=_keep_link_forwarding(net.runner, s.undo, _any_network)) for s in steps]


def _sweep_step(runner: Runner, saved: SavedRules, host: dict[str, dict[str, Any]]) -> list[Step]:
    """The firewall's sweep as a step to apply (``do``), computed from ``saved``: guards, sysctls,
    chains and jumps no rule needs any more; other networks' link forwarding kept (``host``: the
    host's links now; a setting of a link that is gone has nothing to put back)."""
    sweep = [c for c in Firewall(runner=runner).sweep_commands(4, saved) if _link_of(c) in (None, *host)]
    if not sweep:
        return []
    commands = _keep_link_forwarding(runner, sweep, _any_network, host)
    return [Step("sweep netnskit's shared firewall state (IPv4)", commands)]


def _link_of(command: Command) -> str | None:
    """The interface whose per-link sysctl ``command`` writes, if it writes one."""
    for resource in command.creates:
        if resource.kind == "sysctl" and resource.name.startswith("net.ipv4.conf."):
            return resource.name[len("net.ipv4.conf.") :].rpartition(".")[0]
    return None


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
    """``commands``, and right after one that writes net.ipv4.ip_forward, other networks' per-link forwarding put back.

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
    # right after the write: before the restore that deletes its memo, so that no crash between
    # them leaves those links without forwarding and nothing left to say why
    writes = [i for i, c in enumerate(commands) if any(r.kind == "sysctl" and r.name in _IP_FORWARD for r in c.creates)]
    at = writes[-1] + 1
    return (*commands[:at], *(_sysctl_forwarding(name) for name in forwarding), *commands[at:])


_CONF_ALL = {None, "all", "default", "lo"}


def _firewall_removal(
    fw: Firewall,
    owns: Callable[[str], bool],
    families: Sequence[int] = (4,),
    stays: Callable[[str], bool] | None = None,
    host: dict[str, dict[str, Any]] | None = None,
    read: dict[int, SavedRules] | None = None,
) -> list[Step]:
    """Steps (undo order) deleting every rule whose comment ``owns`` accepts, then the firewall's sweep
    (``stays``: the link aliases of networks that stay, see _keep_link_forwarding; ``host``: the
    host's links and ``read``: the saved rules of a family, if just read; a family not read is read
    here, as none where the tool is not installed)."""
    runner = fw.runner
    steps: list[Step] = []
    for family in families:
        given = (read or {}).get(family)
        saved = _saved(fw, family, needed=False) if given is None else given
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


def _families(fw: Firewall) -> tuple[int, ...]:
    """4, and 6 where ip6tables-save works (not where it is not installed)."""
    try:
        works = fw.runner.run([fw.backend.binary(6, "save")]).ok
    except CommandNotFoundError:
        works = False
    return (4, 6) if works else (4,)

"""The glue to :mod:`netnskit.firewall`: a network's bridge, NAT and forwards as firewall steps, and removal.

A dual-stack network has the same through ip6tables: its bridge's rule, masquerade6 when asked (else
the accepts of routed IPv6 to the uplinks and back), its forwards over IPv6, and
``net.ipv6.conf.all.forwarding`` (IPv6 forwards by that switch alone).

The kernel copies a write of ``net.ipv4.ip_forward`` to every interface: the steps that write it also
put back the per-link forwarding of netnskit networks' links.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from netnskit import _ipjson
from netnskit.errors import CommandError, CommandNotFoundError
from netnskit.firewall import Backend, Firewall, NatRule, PortForward, Rule, SavedRules, Sysctl, SysctlRecord
from netnskit.firewall.host import interfaces, uplinks
from netnskit.firewall.nftables import FAMILY, Nftables, forward_drops, nft_needs, ours_except, table_name
from netnskit.firewall.rules import _CHAINS, _unique
from netnskit.firewall.sysctl import _forwarding
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


def _bridge_rule(net: Network, family: int = 4) -> Rule:
    """Traffic between the network's namespaces: bridged, it passes FORWARD where br_netfilter is loaded.

    The same rule as its NatRule's (so the two are one): a network without masquerade needs it too.
    """
    spec = ["-i", net.bridge, "-o", net.bridge, "-m", "comment", "--comment", net.mark, "-j", "ACCEPT"]
    return Rule(family, "filter", "NETNSKIT-FORWARD", spec)


def _uses_nft(net: Network) -> bool:
    """Do the network's rules go through nftables (its ``firewall``, ``auto`` resolved)?"""
    return net.firewall_choice().kind == "nftables"


def _iptables_wanted(
    net: Network, routes: Sequence[dict[str, Any]] | None = None, saved: SavedRules | None = None, family: int = 4
) -> list[Rule]:
    """The rules of ``family`` the network wants in iptables (ip6tables): all of them (iptables), or
    (nftables) its accepts where that FORWARD drops (``saved``: the host's rules of the family), so
    that its own traffic still passes (``routes``: the host's routes of the family, if read)."""
    rules = _wanted_rules(net, routes) if family == 4 else _wanted_rules6(net, routes)
    if not _uses_nft(net):
        return rules
    if saved is None or not forward_drops(saved):
        return []
    return [r for r in rules if r.table == "filter"]


def _firewall_objects(net: Network, routes: Sequence[dict[str, Any]] | None = None) -> list[NatRule | PortForward]:
    return [*([net.nat_rule(_uplinks(net, routes))] if net.masquerade else []), *net.forward_rules()]


def _objects6(net: Network, routes6: Sequence[dict[str, Any]] | None = None) -> list[NatRule | PortForward]:
    """A dual-stack network's IPv6 masquerade (masquerade6) and forwards (none when IPv4 only)."""
    nat = net.nat_rule6(_uplinks(net, routes6))
    return [*([nat] if nat is not None and net.masquerade6 else []), *net.forward_rules6()]


def _routed6(net: Network, routes6: Sequence[dict[str, Any]] | None = None) -> list[Rule]:
    """Routed IPv6 (masquerade6 off): the accepts of the masquerade without it, from the bridge to each
    uplink and the replies back, so that a FORWARD that drops (ufw's default, Docker with ip6tables)
    passes the network's own traffic as it does IPv4's (none with masquerade6: its NatRule has them)."""
    nat = net.nat_rule6(_uplinks(net, routes6))
    if nat is None or net.masquerade6:
        return []
    return [r for r in nat.rules() if r.table == "filter"]


def _wanted_rules6(net: Network, routes6: Sequence[dict[str, Any]] | None = None) -> list[Rule]:
    """The IPv6 rules of a dual-stack network (none when IPv4 only)."""
    if not net.dual:
        return []
    objects = (r for o in _objects6(net, routes6) for r in o.rules())
    return _unique([_bridge_rule(net, 6), *_routed6(net, routes6), *objects])


def _sysctls6(net: Network) -> list[Sysctl]:
    """IPv6 forwarding (always, on a dual-stack network: routed IPv6 needs it) and what its objects need."""
    return _unique([_forwarding(6), *(s for o in _objects6(net) for s in o.sysctls())]) if net.dual else []


def _host_routes6(net: Network) -> list[dict[str, Any]] | None:
    """The host's IPv6 routes, read for a dual-stack network (its uplinks come from them)."""
    return _ipjson.read(net.runner, None, "route", "show", flags=["-6"]) if net.dual else None


def _plan6(
    net: Network,
    fw: Firewall,
    *,
    live: bool,
    saved6: SavedRules | None = None,
    routes6: Sequence[dict[str, Any]] | None = None,
) -> tuple[list[Step], list[SysctlRecord]]:
    """The IPv6 half of :func:`_firewall_plan` (nothing when IPv4 only); ip6tables is then needed
    (``saved6``, ``routes6``: the host's IPv6 rules and routes, if just read)."""
    if not net.dual:
        return [], []
    description = f"IPv6 firewall rules of network {net.name} ({net.mark})"
    if not live:
        return fw.plan_changes(6, _wanted_rules6(net), _sysctls6(net), description, values={})
    saved6 = saved6 if saved6 is not None else _saved(fw, 6, needed=True)
    routes6 = routes6 if routes6 is not None else _host_routes6(net)
    return fw.plan_changes(6, _wanted_rules6(net, routes6), _sysctls6(net), description, saved=saved6)


def _firewall_of(net: Network) -> Firewall:
    """The firewall the network's rules go through (its xtables wait)."""
    return Firewall(Backend(wait=net.xtables_wait), net.runner)


def _saved(fw: Firewall, family: int, *, needed: bool) -> SavedRules:
    """The host's rules of ``family``. Without the tool installed and not ``needed`` (no masquerade or
    forward in the description): none, since no netnskit rule can have been made without it; a
    network with no masquerade or forward works on a host without iptables."""
    try:
        return fw.save(family)
    except CommandNotFoundError:
        if needed:
            raise
        return _NO_RULES


_NO_RULES = SavedRules(frozenset(), (), {})


def _saved6(fw: Firewall, *, needed: bool) -> SavedRules:
    """The host's IPv6 rules; none where ip6tables-save is missing or fails, unless ``needed`` (dual stack):
    ``down`` reads them for every network, so that rules of a file that lost its subnet6 go too."""
    try:
        return fw.save(6)
    except (CommandNotFoundError, CommandError):
        if needed:
            raise
        return _NO_RULES


def _host_routes(net: Network) -> list[dict[str, Any]] | None:
    """The host's IPv4 routes, read where the network masquerades (its uplinks come from them)."""
    return _ipjson.read(net.runner, None, "route", "show", flags=["-4"]) if net.masquerade else None


def _wanted_rules(net: Network, routes: Sequence[dict[str, Any]] | None = None) -> list[Rule]:
    """The rules of the network's bridge, masquerade and forwards (``routes``: the host's, where read:
    the masquerade's uplinks)."""
    return _unique([_bridge_rule(net), *(r for o in _firewall_objects(net, routes) for r in o.rules())])


def _firewall_plan(
    net: Network,
    *,
    live: bool,
    saved: SavedRules | None = None,
    routes: Sequence[dict[str, Any]] | None = None,
    saved6: SavedRules | None = None,
    routes6: Sequence[dict[str, Any]] | None = None,
) -> tuple[list[Step], list[SysctlRecord]]:
    """The firewall's steps for the network (its bridge, masquerade and forwards, as one ruleset), and
    the sysctl records to write before they run.

    Pure (for a clean host) unless ``live``: then read from the host (``saved``: its rules and
    ``routes``: its IPv4 routes, ``saved6``, ``routes6``: its IPv6 ones, if just read), holding only
    what is missing. A host without
    iptables gets no steps for a network with no masquerade or forward (nothing filters there).
    """
    fw = _firewall_of(net)
    description = f"firewall rules of network {net.name} ({net.mark})"
    objects = _firewall_objects(net)
    if _uses_nft(net):  # both families in one inet table
        return _nft_plan(net, live=live, saved=saved, routes=routes, routes6=routes6)
    six, changes6 = _plan6(net, fw, live=live, saved6=saved6, routes6=routes6)
    if not live:
        rules = _wanted_rules(net)
        sysctls: list[Sysctl] = _unique(s for o in objects for s in o.sysctls())
        steps, changes = fw.plan_changes(4, rules, sysctls, description, values={})
        return steps + six, changes + changes6
    if saved is None:
        saved = _saved(fw, 4, needed=bool(objects))
        if saved is _NO_RULES:
            return six, changes6
    rules = _wanted_rules(net, routes if routes is not None else _host_routes(net))
    sysctls = _unique(s for o in objects for s in o.sysctls())
    steps, changes = fw.plan_changes(4, rules, sysctls, description, saved=saved)
    kept = [attrs.evolve(s, undo=_keep_link_forwarding(net.runner, s.undo, _any_network)) for s in steps]
    return kept + six, changes + changes6


def _nft_plan(
    net: Network,
    *,
    live: bool,
    saved: SavedRules | None = None,
    routes: Sequence[dict[str, Any]] | None = None,
    routes6: Sequence[dict[str, Any]] | None = None,
) -> tuple[list[Step], list[SysctlRecord]]:
    """The nftables backend's steps: where iptables' (ip6tables') FORWARD drops, the accepts of that
    family there first (through the iptables backend, in NETNSKIT-FORWARD after the admin's
    NETNSKIT-USER); then the table ``inet netnskit-NAME``, both families of a dual-stack network in
    it, written whole in one ``nft -f -`` (none when it already holds the same); then the sysctls."""
    fw = _firewall_of(net)
    nft = Nftables(net.runner)
    objects = _firewall_objects(net)
    description = f"nft table {FAMILY} {table_name(net.name)} of network {net.name} ({net.mark})"
    sysctls: list[Sysctl] = _unique([*(s for o in objects for s in o.sysctls()), *_sysctls6(net)])
    if not live:
        return nft.plan_changes(net.name, [*_wanted_rules(net), *_wanted_rules6(net)], sysctls, description, values={})
    if saved is None:
        saved = _saved(fw, 4, needed=False)
    routes = routes if routes is not None else _host_routes(net)
    rules = [*_wanted_rules(net, routes), *_wanted_rules6(net, routes6 if routes6 is not None else _host_routes6(net))]
    steps, changes = nft.plan_beside(fw, net.name, rules, sysctls, description, saved=saved)
    return [attrs.evolve(s, undo=_keep_link_forwarding(net.runner, s.undo, _any_network)) for s in steps], changes


def _firewall_steps(net: Network, *, live: bool, saved: SavedRules | None = None) -> list[Step]:
    """The firewall's steps of :func:`_firewall_plan`."""
    return _firewall_plan(net, live=live, saved=saved)[0]


@attrs.frozen
class _Removal:
    """The steps removing netnskit's rules, what the sweep leaves on and why, and the records to drop after."""

    steps: tuple[Step, ...] = ()
    left: tuple[str, ...] = ()
    forget: tuple[str, ...] = ()


def _sweep_step(
    fw: Firewall, saved: SavedRules, host: dict[str, dict[str, Any]], served: Sequence[str] = (), family: int = 4
) -> _Removal:
    """The firewall's sweep as a step to apply (``do``), computed from ``saved``: guards, sysctls
    (put back from their records, unless something else needs them; ``served``: interfaces of the
    rules that went), chains and jumps no rule needs any more; other networks' link forwarding kept
    (``host``: the host's links now; a setting of a link that is gone has nothing to put back).
    With what it leaves on and why, and the records to forget once it ran."""
    done = fw.plan_sweep(
        family,
        saved,
        records=fw.records.load(),
        value=fw.sysctl_value,
        reliance=functools.partial(fw.reliance, family, saved, served),
    )
    sweep = [c for c in done.commands if _link_of(c) in (None, *host)]
    if not sweep:
        return _Removal((), done.left, done.forget)
    commands = _keep_link_forwarding(fw.runner, sweep, _any_network, host)
    step = Step(f"sweep netnskit's shared firewall state (IPv{family})", commands)
    return _Removal((step,), done.left, done.forget)


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
    nft_owners: Sequence[str] | None = None,
    nft_tables: Sequence[tuple[str, str]] | None = None,
    records: dict[str, SysctlRecord] | None = None,
) -> _Removal:
    """Steps (undo order) deleting every rule whose comment ``owns`` accepts, then the firewall's sweep
    (``stays``: the link aliases of networks that stay, see _keep_link_forwarding; ``host``: the
    host's links and ``read``: the saved rules of a family, if just read; a family not read is read
    here, as none where the tool is not installed). Sysctls are put back from their records (beside
    the locks): those no rule needs any more, unless something else needs them.

    ``nft_owners``: the owners whose nft tables go too (None: look for the tables of the owners
    ``owns`` accepts). What the nft tables that stay still need keeps its sysctls on
    (``nft_tables``: the host's nft tables, if just listed; ``records``: the sysctl records, if just loaded).
    """
    runner = fw.runner
    records = fw.records.load() if records is None else records
    nft = Nftables(runner)
    if nft_owners is None:
        nft_tables = nft.listed() if nft_tables is None else nft_tables
        nft_owners = [o for o in nft.tables(nft_tables) if owns(f"{MARK_PREFIX}{o}")]
    # read only where a value may be put back: what the other networks' nft tables need
    needed = records or nft_owners
    ruleset = nft.ruleset(ours_except(nft_owners), nft_tables) if needed else {}
    elsewhere = {family: nft_needs(ruleset, family=family) for family in (4, 6)}
    steps: list[Step] = []
    left: list[str] = []
    forget: list[str] = []
    for family in families:
        given = (read or {}).get(family)
        saved = _saved(fw, family, needed=False) if given is None else given
        mine = [r for r in saved.rules if r.comment is not None and owns(r.comment)]
        doomed = set(mine)
        after = attrs.evolve(saved, rules=tuple(r for r in saved.rules if r not in doomed))
        sweep = fw.plan_sweep(
            family,
            after,
            records=records,
            value=fw.sysctl_value,
            reliance=functools.partial(fw.reliance, family, after, interfaces(mine)),
            elsewhere=elsewhere[family],
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
            sections = _deletion(saved, mine)
            steps.append(Step(f"{len(mine)} firewall rules (IPv{family})", [], [fw.restore_command(family, sections)]))
    steps += nft.removal(nft_owners)  # (undo order: the tables go first)
    return _Removal(tuple(steps), tuple(left), tuple(forget))


# a chain of ours holding more of the removed rules than this is flushed and its other rules put back
_FLUSH_FROM = 8


def _deletion(saved: SavedRules, mine: Sequence[Rule]) -> dict[str, list[str]]:
    """The ``iptables-restore`` lines, by table, deleting ``mine`` from ``saved``.

    One ``-D`` per rule makes iptables-nft look each up from the start of its chain: thousands of
    forwards cost seconds. A chain of netnskit's own (``NETNSKIT-*``, not the admin's
    ``NETNSKIT-USER``) that holds many of them is flushed instead, and its other rules (another
    network's, a shared jump) are appended again in their order, in the same transaction.
    """
    doomed = set(mine)
    count: dict[tuple[str, str], int] = {}
    for rule in mine:
        count[(rule.table, rule.chain)] = count.get((rule.table, rule.chain), 0) + 1
    flushed = {key for key, n in count.items() if n > _FLUSH_FROM and key[1] in _CHAINS.get(key[0], ())}
    sections: dict[str, list[str]] = {}
    for table, chain in sorted(flushed):
        lines = sections.setdefault(table, [])
        lines.append(f"-F {chain}")
        lines += [r.line("-A") for r in saved.rules if (r.table, r.chain) == (table, chain) and r not in doomed]
    for rule in mine:
        if (rule.table, rule.chain) not in flushed:
            sections.setdefault(rule.table, []).append(rule.line("-D"))
    return sections


def _families(fw: Firewall) -> tuple[int, ...]:
    """4, and 6 where ip6tables-save works (not where it is not installed)."""
    try:
        works = fw.runner.run([fw.backend.binary(6, "save")]).ok
    except CommandNotFoundError:
        works = False
    return (4, 6) if works else (4,)

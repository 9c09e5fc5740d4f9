"""Teardown: ``down`` removes what one network owns, ``cleanup`` what one network (or every one) marked.

Both read first, then remove only what carries a mark (or is pristine from an interrupted ``up``,
or is a dangling ``/run/netns`` entry of the description's names): safe after a crash, on a
partly-removed network, on an edited description, twice. Processes go first (by their
environment's mark, SIGTERM then SIGKILL), then the files under ``/etc/netns`` that start with the
mark, the firewall's rules, the links and the namespaces.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from netnskit import _ipjson
from netnskit import _validate as v
from netnskit.commands import link_group_delete
from netnskit.errors import CommandError, CommandNotFoundError
from netnskit.executors import Executor, SerialExecutor
from netnskit.firewall import Backend, Firewall
from netnskit.firewall.iptables import XTABLES_WAIT
from netnskit.firewall.nftables import Nftables
from netnskit.interrupt import Interrupt
from netnskit.link import Link
from netnskit.netns import Namespace
from netnskit.network import files as _files
from netnskit.network import processes as _processes
from netnskit.network.firewall import (
    _any_network,
    _families,
    _firewall_objects,
    _firewall_of,
    _firewall_removal,
    _saved,
    _saved6,
)
from netnskit.network.locks import _exclusive
from netnskit.network.spec import MARK_PREFIX, group_for, mark_for, owner_of
from netnskit.network.state import (
    _candidates,
    _dangling,
    _host_link_ours,
    _ifnames_in,
    _lo_marks,
    _pristine,
    _read_links,
)
from netnskit.plan import Resource, Step
from netnskit.runner import Runner, default_runner

if TYPE_CHECKING:
    from netnskit.network.network import Network


@attrs.frozen
class Teardown:
    """What :meth:`Network.down` or :func:`cleanup` removed (or, dry, would remove) and what was already gone.

    ``left``: what was left alone, and why; ``others``: the other networks whose marks are on
    things with this description's names (a renamed network is another network).
    """

    removed: tuple[str, ...]
    already_gone: tuple[str, ...]
    left: tuple[str, ...] = ()
    others: tuple[str, ...] = ()


def _link_removal(
    runner: Runner, host: dict[str, dict[str, Any]], mark: str, group: int | None, names: Sequence[str] = ()
) -> list[Step]:
    """Steps (in creation order; their undo removes) for the host links that are ours (see _host_link_ours)."""
    steps: list[Step] = []
    ours = [n for n, d in host.items() if _host_link_ours(d, mark, group, names)]
    in_group = [n for n, d in host.items() if group is not None and str(d.get("group")) == str(group)]
    if ours and group is not None and set(in_group) == set(ours):
        names = ", ".join(sorted(ours))
        gone = [Resource("link", name, None, group) for name in sorted(ours)]
        command = attrs.evolve(link_group_delete(group), removes=gone)
        steps.append(Step(f"links of group {group} ({names})", [], [command]))
    else:
        # a link in our group without our mark is not ours: delete ours one by one
        for name in sorted(ours):
            steps.append(Step(f"link {name}", [], [Link(name, runner=runner).delete_command()]))
    return steps


def _namespace_removal(runner: Runner, names: Iterable[str], dangling: Iterable[str] = ()) -> list[Step]:
    """Steps (their undo removes) deleting namespaces, and dangling /run/netns entries (the same command)."""
    steps = [
        Step(
            f"dangling /run/netns entry {n} (no namespace mounted there)",
            [],
            [Namespace(n, runner=runner).delete_command()],
        )
        for n in sorted(dangling)
    ]
    return steps + [Step(f"namespace {n}", [], [Namespace(n, runner=runner).delete_command()]) for n in names]


def _read_netns_links(runner: Runner, name: str) -> dict[str, dict[str, Any]] | None:
    """A namespace's links by name; None where it cannot be read."""
    entries = _ipjson.try_read(runner, name, "link", "show")
    return None if entries is None else {str(d["ifname"]): d for d in entries}


def _files_removal(runner: Runner, paths: Sequence[str], mark: str | None, names: Sequence[str] = ()) -> list[Step]:
    """A step whose undo removes those of ``paths`` whose first line carries ``mark`` (any netnskit mark
    for None), and the empty folders of the namespaces ``names`` (an interrupted up or down leaves them)."""
    mine = _files.ours(_files.read(runner, paths), mark)
    empty_files, empty_folders = _files.pristine(runner, names) if names else ([], [])
    if not mine and not empty_files and not empty_folders:
        return []
    what = [*mine, *(f"{p} (empty)" for p in [*empty_files, *empty_folders])]
    return [Step(f"files {', '.join(what)}", [], _files.remove_commands([*mine, *empty_files], empty_folders))]


def _down(net: Network, executor: Executor) -> Teardown:
    runner = net.runner
    # processes first: a namespace holds on while a process runs in it
    ended, still = _processes.stop_all(net)
    fw = _firewall_of(net)
    # independent reads at once (runners are used from several threads by BatchExecutor too); the nft
    # tables are listed beside them (to list them nft reads iptables-nft's rules too: slow at scale)
    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        reading_host = pool.submit(_read_links, runner, None)
        reading_netns = pool.submit(_ipjson.netns_list, runner)
        reading_rules = pool.submit(_saved, fw, 4, needed=bool(_firewall_objects(net)))
        reading_rules6 = pool.submit(_saved6, fw, needed=net.dual)
        # (only where sysctls may be put back, or the network may use nftables: see _firewall_removal)
        records = fw.records.load()
        asks_nft = net.firewall != "iptables" or bool(records)
        listing_nft = pool.submit(_nft_tables, runner) if asks_nft else None
        host = reading_host.result()
        netns = {str(d["name"]): d.get("id") for d in reading_netns.result()}
        saved = reading_rules.result()
        saved6 = reading_rules6.result()
        nft_tables = listing_nft.result() if listing_nft is not None else None
    # a namespace is ours if one of our host links has its other end there (by nsid), if its lo
    # carries our mark, or if it is still empty from an interrupted up
    names_on_host = net.host_ifnames()
    linked = {d.get("link_netnsid") for d in host.values() if _host_link_ours(d, net.mark, net.group, names_on_host)}
    linked.discard(None)
    ours: list[str] = []
    left: list[str] = []
    others: set[str] = set()
    unreadable: list[str] = []
    for name in net.namespace_names():
        if name not in netns:
            continue
        if netns[name] is not None and netns[name] in linked:
            ours.append(name)
            continue
        links = _read_netns_links(runner, name)
        if links is None:
            unreadable.append(name)
            continue
        alias = links.get("lo", {}).get("ifalias")
        if alias == net.mark or _pristine(links, _ifnames_in(net, name)):
            ours.append(name)
            continue
        left.append(f"namespace {name} ({_not_ours(net, alias)})")
        if owner_of(alias):
            others.add(str(owner_of(alias)))
    dangling = _dangling(runner, unreadable)
    left += [
        f"namespace {n} (cannot be read, yet a namespace is mounted there: left alone)"
        for n in unreadable
        if n not in dangling
    ]
    # namespaces marked with our name that the description does not have (it was edited)
    marks = _lo_marks(runner, _candidates(netns, host, net.mark, net.namespace_names()))
    ours += sorted(n for n, alias in marks.items() if alias == net.mark)
    for ifname in names_on_host:
        alias = host.get(ifname, {}).get("ifalias")
        if owner_of(alias) is not None and alias != net.mark:
            left.append(f"link {ifname} ({_not_ours(net, alias)})")
            others.add(str(owner_of(alias)))
    steps = _namespace_removal(runner, ours, dangling)
    # the files of the described namespaces and of those marked ours the description lost
    spaces = sorted({*net.namespace_names(), *ours})
    steps += _files_removal(runner, _files.candidates(spaces), net.mark, spaces)
    steps += _link_removal(runner, host, net.mark, net.group, names_on_host)
    # (our own links go right after the sweep: putting their forwarding back too is harmless)
    # IPv6's too: a dual-stack network's rules and forwarding (or those of a file that lost its subnet6)
    firewall = _firewall_removal(
        fw,
        lambda comment: comment == net.mark,
        (4, 6),
        stays=_any_network,
        host=host,
        read={4: saved, 6: saved6},
        nft_owners=_nft_owners(net),
        nft_tables=nft_tables,
        records=records,
    )
    steps += firewall.steps
    gone = [f"namespace {n}" for n in net.namespace_names() if n not in netns]
    gone += [f"link {n}" for n in net.host_ifnames() if n not in host]
    already = executor.remove(steps, runner) if steps else []
    fw.records.forget(firewall.forget)
    return Teardown(
        removed=tuple(ended + [s.description for s in steps]),
        already_gone=tuple(gone + list(already)),
        left=tuple(left + still) + firewall.left,
        others=tuple(sorted(others)),
    )


def _nft_tables(runner: Runner) -> list[tuple[str, str]] | None:
    """The host's nft tables (none without nft); None where they cannot be listed (asked again if needed)."""
    try:
        return Nftables(runner).listed()
    except CommandError:
        return None


def _nft_owners(net: Network) -> list[str]:
    """[the network's name] where its nft table exists (a network that may use nftables), else []."""
    if net.firewall == "iptables":
        return []
    try:
        return [net.name] if Nftables(net.runner).read(net.name) is not None else []
    except CommandNotFoundError:
        return []  # no nft: no table of ours either


def _not_ours(net: Network, alias: object) -> str:
    """Why a thing with one of the description's names was left alone."""
    owner = owner_of(alias)
    if owner is None:
        return f"not marked {net.mark} and not empty: not ours, left alone"
    return (
        f"marked {alias}: it belongs to network {owner!r}, not {net.name!r}; if this one was renamed from it, "
        f"`netnskit cleanup {owner}` removes it"
    )


def cleanup(
    name: str | None,
    runner: Runner | None = None,
    executor: Executor | None = None,
    *,
    dry_run: bool = False,
    interrupt: Interrupt | None = None,
    xtables_wait: int = XTABLES_WAIT,
) -> Teardown:
    """Remove what network ``name`` owns on this host (everything marked ``netnskit:NAME``), and nothing else.

    Processes whose ``NETNSKIT_OWNER`` carries the mark (where the runner acts), files under
    ``/etc/netns`` whose first line is the mark, namespaces whose ``lo`` alias is the mark, host
    links with it, rules with it as comment; the firewall's shared state is swept as after ``down``
    (other networks keep theirs). ``None``: every netnskit mark of every network (``netnskit
    cleanup --all``), and ``/run/netns`` entries no namespace is mounted on any more (left by an
    interrupted delete, whose they were cannot be told). ``dry_run``: read only; ``removed`` lists
    what would go. A namespace left empty by an interrupted ``up`` carries no mark yet: ``down
    FILE`` removes it, since the file names it. ``interrupt`` is read only while waiting for the
    lock: once removing, ``cleanup`` finishes. ``xtables_wait``: seconds the firewall's tools wait
    for the xtables lock. Where iptables is not installed there are no rules to remove.
    """
    if name is not None:
        name = v.netns_name(name)
    run = runner or default_runner()
    fw = Firewall(Backend(wait=xtables_wait), run)
    if dry_run:
        return _cleanup(run, name, executor, fw, dry_run=True)
    with _exclusive(run, name, interrupt=interrupt):
        return _cleanup(run, name, executor, fw, dry_run=False)


def _cleanup(run: Runner, name: str | None, executor: Executor | None, fw: Firewall, *, dry_run: bool) -> Teardown:
    mark = None if name is None else mark_for(name)

    def owns(alias: object) -> bool:
        text = str(alias or "")
        return text == mark if mark is not None else text.startswith(MARK_PREFIX)

    # processes first: a namespace holds on while a process runs in it
    ended, still = _processes.stop_every_network(run, name, dry_run=dry_run)
    host = _read_links(run, None)
    netns = {str(d["name"]): d.get("id") for d in _ipjson.netns_list(run)}
    marks = _lo_marks(run, _candidates(netns, host, mark, ()))
    unreadable = [n for n, alias in marks.items() if alias is None]
    dangling = _dangling(run, unreadable)
    steps = _namespace_removal(run, [n for n, alias in marks.items() if owns(alias)], dangling if mark is None else ())
    steps += _files_removal(run, _files.listed(run), mark)
    for found in sorted({str(d["ifalias"]) for d in host.values() if owns(d.get("ifalias"))}):
        steps += _link_removal(run, host, found, group_for(str(owner_of(found))))
    # cleanup NAME: other networks' link forwarding is kept; --all: every network goes
    stays = _any_network if mark is not None else (lambda _: False)
    firewall = _firewall_removal(fw, owns, _families(fw), stays, host)
    steps += firewall.steps
    left: list[str] = list(still)
    if mark is not None:
        left += [
            f"dangling /run/netns entry {n} (no namespace mounted there; whose it was cannot be told: "
            f"`netnskit cleanup --all --yes` or `ip netns del {n}` removes it)"
            for n in sorted(dangling)
        ]
    left += firewall.left
    removed = tuple(ended + [s.description for s in steps])
    if dry_run:
        return Teardown(removed=removed, already_gone=(), left=tuple(left))
    already = (executor or SerialExecutor()).remove(steps, run) if steps else []
    fw.records.forget(firewall.forget)
    return Teardown(removed=removed, already_gone=tuple(already), left=tuple(left))

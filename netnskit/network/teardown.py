"""Teardown: ``down`` removes what one network owns, ``cleanup`` everything netnskit marked on the host.

Both read first, then remove only what carries a mark (or is pristine from an interrupted ``up``):
safe after a crash, on a partly-removed network, twice. Processes go first (by their environment's
mark, SIGTERM then SIGKILL), then the files under ``/etc/netns`` that start with the mark, the
firewall's rules, the links and the namespaces.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from netnskit import _ipjson
from netnskit.commands import link_group_delete
from netnskit.executors import Executor, SerialExecutor
from netnskit.firewall import Firewall
from netnskit.link import Link
from netnskit.netns import Namespace
from netnskit.network import files as _files
from netnskit.network import processes as _processes
from netnskit.network.firewall import _any_network, _families, _firewall_removal
from netnskit.network.locks import _exclusive
from netnskit.network.spec import MARK_PREFIX
from netnskit.network.state import _host_link_ours, _ifnames_in, _pristine, _read_links
from netnskit.plan import Resource, Step
from netnskit.runner import Runner, default_runner

if TYPE_CHECKING:
    from netnskit.network.network import Network


@attrs.frozen
class Teardown:
    """What :meth:`Network.down` removed and what was already gone."""

    removed: tuple[str, ...]
    already_gone: tuple[str, ...]
    left: tuple[str, ...] = ()


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


def _marked_or_pristine(runner: Runner, name: str, mark: str | None, expected: Iterable[str] = ()) -> bool:
    """Read a namespace's links: True if lo carries ``mark`` (any netnskit mark for None) or it is pristine."""
    entries = _ipjson.try_read(runner, name, "link", "show")
    if entries is None:
        return False
    links = {str(d["ifname"]): d for d in entries}
    alias = str(links.get("lo", {}).get("ifalias", ""))
    if (alias == mark) if mark is not None else alias.startswith(MARK_PREFIX):
        return True
    return mark is not None and _pristine(links, expected)


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
    # three independent reads at once (runners are used from several threads by BatchExecutor too)
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        reading_host = pool.submit(_read_links, runner, None)
        reading_netns = pool.submit(_ipjson.netns_list, runner)
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
    steps = [Step(f"namespace {n}", [], [Namespace(n, runner=runner).delete_command()]) for n in ours]
    steps += _files_removal(runner, _files.candidates(net.namespace_names()), net.mark, net.namespace_names())
    steps += _link_removal(runner, host, net.mark, net.group, names_on_host)
    # (our own links go right after the sweep: putting their forwarding back too is harmless)
    steps += _firewall_removal(
        runner, lambda comment: comment == net.mark, stays=_any_network, host=host, read={4: saved}
    )
    gone = [f"namespace {n}" for n in net.namespace_names() if n not in netns]
    gone += [f"link {n}" for n in net.host_ifnames() if n not in host]
    already = executor.remove(steps, runner) if steps else []
    return Teardown(
        removed=tuple(ended + [s.description for s in steps]),
        already_gone=tuple(gone + list(already)),
        left=tuple(
            [f"namespace {n} (not marked {net.mark} and not empty: not ours, left alone)" for n in left] + still
        ),
    )


def cleanup(runner: Runner | None = None, executor: Executor | None = None) -> Teardown:
    """Remove every leftover netnskit marked on this host (any network), and nothing else.

    Processes whose ``NETNSKIT_OWNER`` names a network of this place, files under ``/etc/netns``
    whose first line is ``# netnskit:...``, links whose alias starts ``netnskit:``, rules whose
    comment does, and namespaces whose ``lo`` alias does. A namespace left empty by an interrupted
    ``up`` carries no mark yet: ``down FILE`` removes it, since the file names it.
    """
    run = runner or default_runner()
    with _exclusive(run, None):
        return _cleanup(run, executor)


def _cleanup(run: Runner, executor: Executor | None) -> Teardown:
    ended, still = _processes.stop_every_network(run)
    host = _read_links(run, None)
    marked = [str(d["name"]) for d in _ipjson.netns_list(run)]
    marked = [n for n in marked if _marked_or_pristine(run, n, None)]
    marks = {str(d["ifalias"]) for d in host.values() if str(d.get("ifalias", "")).startswith(MARK_PREFIX)}
    steps = [Step(f"namespace {n}", [], [Namespace(n, runner=run).delete_command()]) for n in marked]
    steps += _files_removal(run, _files.listed(run), None)
    for mark in sorted(marks):
        steps += _link_removal(run, host, mark, None)
    # every network goes: no other network's forwarding to keep
    steps += _firewall_removal(
        run, lambda comment: comment.startswith(MARK_PREFIX), _families(run), lambda _: False, host
    )
    already = (executor or SerialExecutor()).remove(steps, run) if steps else []
    return Teardown(
        removed=tuple(ended + [s.description for s in steps]), already_gone=tuple(already), left=tuple(still)
    )

"""A network's processes: started by ``up`` after the network (in order, each waited for until ready),
stopped by ``down`` (after a crash too), listed by ``status``.

Each runs as :func:`netnskit.process.spawn` starts it, marked ``NETNSKIT_OWNER=netnskit:NAME@PLACE``
(PLACE: the network namespace the runner acts in), with its pid in
``/run/netnskit/processes/PLACE/NAME/PROCESS.pid`` and its output in
``/run/netnskit/logs/PLACE/NAME/PROCESS.log`` (or the network's ``logs`` folder), where the runner
acts. ``down`` ends every process carrying the mark, by pid (those the processes started too: they
inherit it), SIGTERM then SIGKILL; the pid files tell ``status`` which process is which.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from netnskit.errors import Interrupted, NetnskitError, StepError
from netnskit.network.locks import place_of
from netnskit.network.spec import MARK_PREFIX, ProcessSpec
from netnskit.process import STATE_DIR, ProcessHandle, marked_pids, owner_mark, reap_children, spawn, stop_pids
from netnskit.runner import Runner

if TYPE_CHECKING:
    from netnskit.interrupt import Interrupt
    from netnskit.network.network import Network

STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL


def _place(runner: Runner) -> str:
    return place_of(runner, strict=True)


@attrs.frozen
class ProcessStatus:
    """One process of a network: ``running``, ``exited`` or ``not started``, its pid and its log file."""

    name: str
    netns: str
    state: str
    pid: int | None
    log: str


def _resolve(net: Network, path: str) -> str:
    # a relative path in a description is read from the network's directory (a TOML file's folder)
    return os.path.abspath(os.path.join(net.directory or os.getcwd(), path))


def state_dir(net: Network, place: str) -> str:
    """Where the network's pid files are: ``/run/netnskit/processes/PLACE/NAME``."""
    return f"{STATE_DIR}/processes/{place}/{net.name}"


def log_path(net: Network, place: str, spec: ProcessSpec) -> str:
    """The log file of ``spec``: in the network's ``logs`` folder, else ``/run/netnskit/logs/PLACE/NAME``."""
    folder = _resolve(net, net.logs) if net.logs else f"{STATE_DIR}/logs/{place}/{net.name}"
    return f"{folder}/{spec.name}.log"


def in_order(net: Network) -> list[ProcessSpec]:
    """The processes by ``order``, then as written."""
    return sorted(net.processes, key=lambda p: p.order)


def describe(net: Network) -> list[str]:
    """The processes ``up`` starts after the plan, as comment lines for the rendered script."""
    lines = []
    for spec in in_order(net):
        ready = f"; ready when {spec.ready}" if spec.ready is not None else ""
        cwd = f" (in {spec.cwd})" if spec.cwd else ""
        text = f"# then process {spec.name} in {spec.netns}: {shlex.join(spec.command)}{cwd}{ready}"
        # a newline in a word must not end the comment and start a command
        lines.append(text.replace("\n", "\n# ") + "\n")
    return ["\n", *lines] if lines else []


def read_pidfiles(runner: Runner, folder: str) -> dict[str, int]:
    """The pid files in ``folder``: process name -> pid (``grep -r``, one read)."""
    result = runner.run(["grep", "-r", "-s", "-H", "", "--", folder])
    found: dict[str, int] = {}
    for line in result.stdout.splitlines():
        path, _, text = line.rpartition(":")
        name = path[len(folder) + 1 : -len(".pid")] if path.startswith(folder + "/") and path.endswith(".pid") else ""
        if name and "/" not in name and text.strip().isdigit():
            found[name] = int(text.strip())
    return found


def statuses(net: Network, place: str | None = None) -> list[ProcessStatus]:
    """Each process of the network, from its pid file and the marks of the running processes."""
    if not net.processes:
        return []
    where = place if place is not None else _place(net.runner)
    pids = read_pidfiles(net.runner, state_dir(net, where))
    running = set(marked_pids(net.runner, owner_mark(net.mark, where)))
    out = []
    for spec in in_order(net):
        pid = pids.get(spec.name)
        state = "not started" if pid is None else ("running" if pid in running else "exited")
        out.append(ProcessStatus(spec.name, spec.netns, state, pid, log_path(net, where, spec)))
    return out


def start(net: Network, *, interrupt: Interrupt | None = None, action: str = "") -> list[ProcessHandle]:
    """Start the processes that do not run, in order, each waited for; on a failure stop them and raise.

    The StepError names the process (its index among the processes), why, and the end of its log;
    the caller rolls the network back. ``interrupt`` is read before each start: once requested,
    the processes this call started are stopped and Interrupted says how many.
    """
    if not net.processes:
        return []
    place = _place(net.runner)
    owner = owner_mark(net.mark, place)
    running = {s.name for s in statuses(net, place) if s.state == "running"}
    started: list[ProcessHandle] = []
    for index, spec in enumerate(in_order(net)):
        if spec.name in running:
            continue
        description = f"start process {spec.name} in {spec.netns}"
        try:
            if interrupt is not None:
                interrupt.check(action)
            handle = spawn(
                net.runner,
                spec.netns,
                spec.command,
                log=log_path(net, place, spec),
                name=spec.name,
                pidfile=f"{state_dir(net, place)}/{spec.name}.pid",
                cwd=_resolve(net, spec.cwd) if spec.cwd else "",
                owner=owner,
            )
            started.append(handle)
            net._started[spec.name] = handle
            handle.wait(spec.ready, spec.ready_timeout)
        except Interrupted as exc:
            failed = stop(net, started, owner)
            raise Interrupted(exc.signum, action, len(started), failed) from None
        except NetnskitError as exc:
            failed = stop(net, started, owner)
            raise StepError(description, index, str(exc), failed) from exc
        except BaseException:
            stop(net, started, owner)
            raise
    return started


def stop_started(net: Network, handles: Sequence[ProcessHandle]) -> list[str]:
    """Roll back: stop the processes an ``up`` started (``handles``); what could not be stopped."""
    if not handles:
        return []
    return stop(net, handles, owner_mark(net.mark, _place(net.runner)))


def stale(net: Network) -> list[str]:
    """The network's running processes (by their pid files' names) that the description no longer has."""
    place = _place(net.runner)
    wanted = {spec.name for spec in net.processes}
    names = sorted(name for name in read_pidfiles(net.runner, state_dir(net, place)) if name not in wanted)
    if not names:
        return []
    owner = owner_mark(net.mark, place)
    running = set(marked_pids(net.runner, owner, names=names))
    pids = read_pidfiles(net.runner, state_dir(net, place))
    return [name for name in names if pids.get(name) in running]


def stop_stale(net: Network) -> list[str]:
    """Drift: stop the network's processes (by their pid files' names) the description no longer has.

    Returns what was stopped; a process still running after SIGKILL is a StepError.
    """
    place = _place(net.runner)
    folder = state_dir(net, place)
    wanted = {spec.name for spec in net.processes}
    stale = sorted(name for name in read_pidfiles(net.runner, folder) if name not in wanted)
    if not stale:
        return []
    owner = owner_mark(net.mark, place)
    pids = marked_pids(net.runner, owner, names=stale)
    left = stop_pids(net.runner, pids, owner, timeout=STOP_TIMEOUT)
    for name in stale:
        handle = net._started.pop(name, None)
        if handle is not None:
            handle.stop(0.5)  # ended above: this reaps it
    net.runner.run(["rm", "-f", "--", *(f"{folder}/{name}.pid" for name in stale)])
    if left:
        pid_list = ", ".join(str(pid) for pid in left)
        raise StepError(f"stop processes {', '.join(stale)}", 0, f"pids {pid_list} still run after SIGKILL")
    return [f"process {name}" for name in stale]


def stop(net: Network, handles: Sequence[ProcessHandle], owner: str) -> list[str]:
    """Stop ``handles`` (last started first) and what they started; remove their pid files.

    Returns what could not be stopped (for a StepError's rollback errors).
    """
    for handle in reversed(handles):
        handle.stop(STOP_TIMEOUT)  # and what it started: they carry its mark
        net._started.pop(handle.name, None)
    names = [h.name for h in handles]
    left = marked_pids(net.runner, owner, names=names) if names else []
    pidfiles = [h.pidfile for h in handles if h.pidfile]
    if pidfiles:
        net.runner.run(["rm", "-f", "--", *pidfiles])
    return [f"process pid {pid} (marked {owner}) did not end" for pid in left]


def stop_all(net: Network) -> tuple[list[str], list[str]]:
    """End every process carrying the network's mark where the runner acts, and remove the pid files.

    Returns (what was ended, what did not end). Safe after a crash: only the marks are trusted.
    """
    runner = net.runner
    place = _place(runner)
    owner = owner_mark(net.mark, place)
    folder = state_dir(net, place)
    names = {pid: name for name, pid in read_pidfiles(runner, folder).items()}
    pids = marked_pids(runner, owner)
    left = stop_pids(runner, pids, owner, timeout=STOP_TIMEOUT)
    for handle in list(net._started.values()):
        handle.stop(0.5)  # ended above: this reaps the ones this object started
    net._started.clear()
    reap_children()  # and those other objects of this process started
    if names:
        runner.run(["rm", "-f", "--", *(f"{folder}/{name}.pid" for name in names.values())])
        runner.run(["rmdir", "--ignore-fail-on-non-empty", "--", folder])
    ended = [
        f"process {names[pid]} (pid {pid})" if pid in names else f"process pid {pid} (started by one of {net.name}'s)"
        for pid in pids
        if pid not in left
    ]
    return ended, [f"process pid {pid} (marked {owner}): still running after SIGKILL" for pid in left]


def stop_every_network(
    runner: Runner, name: str | None = None, *, dry_run: bool = False
) -> tuple[list[str], list[str]]:
    """For ``cleanup``: end every process marked by network ``name`` (None: any network) where the
    runner acts, and remove its pid files. ``dry_run``: end nothing, list what would end."""
    place = _place(runner)
    network = ".*" if name is None else re.escape(name)
    pattern = f"^NETNSKIT_OWNER={re.escape(MARK_PREFIX)}{network}@{re.escape(place)}$"
    pids = marked_pids(runner, pattern=pattern)
    if dry_run:
        return [f"process pid {pid}" for pid in pids], []
    left = stop_pids(runner, pids, pattern=pattern, timeout=STOP_TIMEOUT)
    folder = f"{STATE_DIR}/processes/{place}" + ("" if name is None else f"/{name}")
    if runner.run(["grep", "-r", "-l", "-s", "", "--", folder]).stdout.strip():
        runner.run(["rm", "-rf", "--", folder])
    ended = [f"process pid {pid}" for pid in pids if pid not in left]
    return ended, [f"process pid {pid}: still running after SIGKILL" for pid in left]

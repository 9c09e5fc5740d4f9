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
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from netnskit.errors import NetnskitError, StepError
from netnskit.network.locks import place_of
from netnskit.network.spec import MARK_PREFIX, ProcessSpec
from netnskit.process import STATE_DIR, ProcessHandle, marked_pids, owner_mark, reap_children, spawn, stop_pids
from netnskit.runner import Runner

if TYPE_CHECKING:
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


def start(net: Network) -> list[ProcessHandle]:
    """Start the processes that do not run, in order, each waited for; on a failure stop them and raise.

    The StepError names the process (its index among the processes), why, and the end of its log;
    the caller rolls the network back.
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
        except NetnskitError as exc:
            failed = stop(net, started, owner)
            raise StepError(description, index, str(exc), failed) from exc
        except BaseException:
            stop(net, started, owner)
            raise
    return started


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


def stop_every_network(runner: Runner) -> tuple[list[str], list[str]]:
    """For ``cleanup``: end every process marked by any network where the runner acts; remove the pid files."""
    place = _place(runner)
    pattern = f"^NETNSKIT_OWNER={MARK_PREFIX}.*@{place}$"
    pids = marked_pids(runner, pattern=pattern)
    left = stop_pids(runner, pids, pattern=pattern, timeout=STOP_TIMEOUT)
    folder = f"{STATE_DIR}/processes/{place}"
    if runner.run(["grep", "-r", "-l", "-s", "", "--", folder]).stdout.strip():
        runner.run(["rm", "-rf", "--", folder])
    ended = [f"process pid {pid}" for pid in pids if pid not in left]
    return ended, [f"process pid {pid}: still running after SIGKILL" for pid in left]

"""Processes started in a namespace: a handle with its pid and log file, readiness waits, a clean stop.

A process starts through the runner (``Runner.start``), as a host's process would in that namespace::

    ip netns exec NS setsid env NETNSKIT_OWNER=MARK NETNSKIT_PROCESS=NAME \\
        sh -c WRAPPER netnskit-process PIDFILE LOG CWD ARGV...

``ip netns exec`` puts the namespace's ``/etc/netns/NS/hosts`` and ``resolv.conf`` over ``/etc``;
``setsid`` detaches it from the caller's terminal session (it outlives ``netnskit up``); the
wrapper, a fixed script that takes every value as an argument (never pasted into it), sends the
output to ``LOG``, enters ``CWD``, writes its pid to ``PIDFILE``, then ``exec``s ARGV: every
program in the chain replaces itself, so the pid the runner returns is the process's own.

The environment variable ``NETNSKIT_OWNER=netnskit:NETWORK@PLACE`` marks a network's processes
(``PLACE`` is the network namespace the runner acts in, so two sandboxes' networks of one name are
told apart), and every process they start inherits it: ``down`` finds them by reading
``/proc/PID/environ`` (:func:`marked_pids`), even after the process that ran ``up`` was killed,
and ends only those, by pid.
"""

from __future__ import annotations

import os
import re
import select
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from netnskit import _validate as v
from netnskit.errors import ProcessError, ValidationError
from netnskit.netns import exec_argv  # (netns imports this module lazily)
from netnskit.runner import Process, Runner, terminate

__all__ = [
    "NAME_ENV",
    "OWNER_ENV",
    "STATE_DIR",
    "ProcessHandle",
    "Ready",
    "marked_pids",
    "owner_mark",
    "reap_children",
    "ready",
    "scan_argv",
    "spawn",
    "spawn_argv",
    "stop_pids",
]

OWNER_ENV = "NETNSKIT_OWNER"  # the mark: netnskit:NETWORK@PLACE
NAME_ENV = "NETNSKIT_PROCESS"  # the process's name in its network
STATE_DIR = "/run/netnskit"  # pid files under processes/, default logs under logs/

# Every value is an argument ($1 pid file, $2 log, $3 working folder, then the command): nothing
# is pasted into the script. Exit 125: the wrapper could not set the process up (its message is in
# the log when the log could be opened).
_WRAPPER = """pidfile=$1 log=$2 dir=$3
shift 3
mkdir -p -- "$(dirname -- "$log")" || exit 125
exec >"$log" 2>&1 </dev/null
if [ -n "$dir" ]; then cd -- "$dir" || exit 125; fi
if [ -n "$pidfile" ]; then
  mkdir -p -- "$(dirname -- "$pidfile")" && echo "$$" >"$pidfile" || exit 125
fi
exec "$@"
"""
_WRAPPER_NAME = "netnskit-process"  # $0 of the wrapper: what ps shows until the exec


@attrs.frozen
class Ready:
    """When a process counts as ready: it listens on a TCP or UDP port, or a probe command succeeds."""

    kind: str  # "tcp", "udp" or "command"
    port: int | None = None
    command: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.kind}:{self.port}" if self.port is not None else " ".join(self.command)


_READY = re.compile(r"(tcp|udp):(\d+)\Z")


def ready(value: object) -> Ready | None:
    """``"tcp:PORT"``, ``"udp:PORT"`` or a command (a list of strings, run until it exits 0), or None."""
    if value is None or isinstance(value, Ready):
        return value
    if isinstance(value, str):
        found = _READY.match(value)
        if found is None:
            raise ValidationError("ready", value, "must be 'tcp:PORT', 'udp:PORT' or a command (a list of strings)")
        return Ready(found.group(1), v.port(int(found.group(2))))
    return Ready("command", command=command(value, "ready command"))


def command(value: object, what: str = "command") -> tuple[str, ...]:
    """A command: a non-empty list of strings (never one string: it would need a shell), no NUL byte."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValidationError(what, value, "must be a list of strings (the program and its arguments)")
    words = tuple(value)
    if not words:
        raise ValidationError(what, value, "must not be empty")
    for word in words:
        if not isinstance(word, str) or "\0" in word:
            raise ValidationError(what, value, "must hold only strings without NUL bytes")
    if not words[0]:
        raise ValidationError(what, value, "must start with a program name")
    return words


def owner_mark(mark: str, place: str) -> str:
    """The value of ``NETNSKIT_OWNER`` for a network's processes: ``netnskit:NAME@PLACE``."""
    return f"{mark}@{place}"


def spawn_argv(
    argv: Sequence[str],
    *,
    netns: str | None,
    log: str,
    pidfile: str = "",
    cwd: str = "",
    owner: str | None = None,
    name: str = "",
) -> list[str]:
    """The argv that starts ``argv`` in ``netns`` with its output in ``log`` (see the module docstring)."""
    marks = [] if owner is None else ["env", f"{OWNER_ENV}={owner}", f"{NAME_ENV}={name}"]
    inner = ["setsid", *marks, "sh", "-c", _WRAPPER, _WRAPPER_NAME, pidfile, log, cwd, *command(argv)]
    return exec_argv(netns, inner)


@attrs.define(eq=False)
class ProcessHandle:
    """A process started in a namespace: its pid and log, waits for readiness, and a stop."""

    name: str
    netns: str | None
    argv: tuple[str, ...]
    log: str
    runner: Runner = attrs.field(repr=False)
    process: Process = attrs.field(repr=False)
    pidfile: str = ""
    owner: str | None = None  # its NETNSKIT_OWNER mark, which what it starts inherits

    @property
    def pid(self) -> int:
        """The process's id (every program of the start chain replaced itself: this is the process)."""
        return self.process.pid

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once it has exited (negative: the signal that ended it), else None."""
        return self.process.poll()

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the log ("" if it cannot be read)."""
        result = self.runner.run(["tail", "-n", str(lines), "--", self.log])
        return result.stdout if result.ok else ""

    def wait_for_port(self, port: int, proto: str = "tcp", timeout: float = 10.0) -> ProcessHandle:
        """Wait until something listens on ``port`` in the namespace (``ss -H -ltn``/``-lun``); returns self.

        Raises ProcessError if the process exits first or ``timeout`` seconds pass.
        """
        return self.wait(Ready(v.protocol(proto), v.port(port)), timeout)

    def wait_ready(self, probe: Sequence[str], timeout: float = 10.0) -> ProcessHandle:
        """Wait until ``probe`` (a command run in the namespace, as the process sees it) exits 0; returns self."""
        return self.wait(Ready("command", command=command(probe, "ready probe")), timeout)

    def wait(self, until: Ready | None, timeout: float = 10.0) -> ProcessHandle:
        """Wait until the process is ready as ``until`` says; ProcessError if it exits or time runs out.

        ``None``: ready as soon as it runs (ProcessError if it has already exited).
        """
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            if not self.running:
                raise self.failure(f"exited with status {self.returncode} before it was ready ({until or 'started'})")
            if until is None:
                self._close_pipes()
                return self
            if self._is_ready(until, max(1.0, deadline - time.monotonic())):
                self._close_pipes()
                return self
            if time.monotonic() > deadline:
                raise self.failure(f"did not become ready ({until}) within {timeout:g} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _is_ready(self, until: Ready, left: float) -> bool:
        if until.port is not None:
            flags = "-ltn" if until.kind == "tcp" else "-lun"
            found = self.runner.run(["ss", "-H", flags, "sport", "=", f":{until.port}"], netns=self.netns)
            # ss failing is no answer: the wait cannot go on blind
            return bool(found.check(f"reading the sockets {self.name!r} listens on").stdout.strip())
        return self.runner.run(exec_argv(self.netns, until.command), timeout=left).ok

    def failure(self, reason: str) -> ProcessError:
        """A ProcessError for this process: ``reason``, what it printed before its log, and its log's end."""
        said = ""
        if not self.running:
            # it exited: its pipes are at their end (the chain before the wrapper writes there)
            for stream in (self.process.stdout, self.process.stderr):
                try:
                    ready_to_read, _, _ = select.select([stream], [], [], 0.5) if stream else ([], [], [])
                    said += stream.read() if stream and ready_to_read else ""
                except (ValueError, OSError):  # closed meanwhile (reaped): nothing more to say
                    pass
        tail = self.log_tail()
        if said.strip():
            tail = f"{said.strip()}\n{tail}"
        return ProcessError(self.name, self.netns, reason, self.log, tail)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited after ``timeout`` seconds; its exit status.

        The processes it started and left behind (they carry its mark) are ended the same way.
        """
        terminate(self.process, timeout)
        self._close_pipes()
        if self.owner is not None:
            left = marked_pids(self.runner, self.owner, names=[self.name])
            if left:
                stop_pids(self.runner, left, self.owner, timeout=timeout)
        return self.process.poll()

    def _close_pipes(self) -> None:
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def spawn(
    runner: Runner,
    netns: str | None,
    argv: Sequence[str],
    *,
    log: str,
    name: str = "",
    pidfile: str = "",
    cwd: str = "",
    owner: str | None = None,
) -> ProcessHandle:
    """Start ``argv`` in ``netns`` through ``runner``, its output in ``log``; returns its handle at once."""
    words = command(argv)
    name = name or os.path.basename(words[0])
    started = runner.start(spawn_argv(words, netns=netns, log=log, pidfile=pidfile, cwd=cwd, owner=owner, name=name))
    _keep(started)
    return ProcessHandle(name, netns, words, log, runner, started, pidfile, owner)


# The processes started here, kept until they have ended: a handle may be dropped while its process
# runs on (a network's server outlives the object that started it), and a process object collected
# while its child runs would leave a zombie and warn. Each start and each reap_children() reaps the
# ended ones and closes their pipes.
_CHILDREN: list[Process] = []
_CHILDREN_LOCK = threading.Lock()


def _keep(proc: Process) -> None:
    reap_children()
    with _CHILDREN_LOCK:
        _CHILDREN.append(proc)


def reap_children() -> None:
    """Reap the started processes that have ended (no zombie left behind) and close their pipes."""
    with _CHILDREN_LOCK:
        ended = [p for p in _CHILDREN if p.poll() is not None]
        for proc in ended:
            _CHILDREN.remove(proc)
    for proc in ended:
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


# --- processes found by their mark (after a crash, or started by another process) ----------------


def scan_argv(owner: str | None = None, *, pattern: str | None = None) -> list[str]:
    """``find /proc ... -exec grep -l -z ...``: the ``/proc/PID/environ`` files holding our mark.

    ``owner``: exactly ``NETNSKIT_OWNER=OWNER``; ``pattern``: an extended regular expression
    matched against each ``NAME=VALUE`` entry instead.
    """
    match = ["-x", "-F", "-e", f"{OWNER_ENV}={owner}"] if pattern is None else ["-E", "-e", pattern]
    return [
        *("find", "/proc", "-mindepth", "2", "-maxdepth", "2", "-name", "environ"),
        *("-exec", "grep", "-l", "-s", "-z", *match, "{}", "+"),
    ]


_ENVIRON = re.compile(r"/proc/(\d+)/environ\Z")


def _pids(result: Any) -> list[int]:
    # find and grep exit 1 when nothing matched or a process went away meanwhile: the list holds
    if result.returncode >= 126:
        result.check("reading /proc/PID/environ for netnskit's marks")
    return sorted({int(m.group(1)) for line in result.stdout.splitlines() if (m := _ENVIRON.match(line.strip()))})


def marked_pids(
    runner: Runner, owner: str | None = None, *, names: Iterable[str] = (), pattern: str | None = None
) -> list[int]:
    """The pids whose environment carries ``NETNSKIT_OWNER=OWNER`` (or an entry matching ``pattern``).

    ``names``: only those whose ``NETNSKIT_PROCESS`` is one of them (a second read of the found ones).
    """
    found = _pids(runner.run(scan_argv(owner, pattern=pattern)))
    wanted = list(names)
    if not found or not wanted:
        return found
    picks = [w for name in wanted for w in ("-e", f"{NAME_ENV}={name}")]
    files = [f"/proc/{pid}/environ" for pid in found]
    return _pids(runner.run(["grep", "-l", "-s", "-z", "-x", "-F", *picks, "--", *files]))


def stop_pids(
    runner: Runner,
    pids: Sequence[int],
    owner: str | None = None,
    *,
    pattern: str | None = None,
    timeout: float = 5.0,
) -> list[int]:
    """SIGTERM ``pids`` (through the runner), SIGKILL those still marked after ``timeout``; the ones left.

    A pid counts as ended once no process with that pid carries the mark any more (an ended process,
    a zombie and a reused pid carry none), so nothing but our processes is signalled twice.
    """
    left = sorted(set(pids))
    for signal_name, wait in (("-TERM", timeout), ("-KILL", 5.0)):
        if not left:
            break
        runner.run(["kill", signal_name, *(str(p) for p in left)])
        deadline = time.monotonic() + wait
        delay = 0.02
        while left:
            left = sorted(set(left) & set(marked_pids(runner, owner, pattern=pattern)))
            if not left or time.monotonic() > deadline:
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
    return left

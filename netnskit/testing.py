"""Test helpers shipped with the library: a recording, scriptable runner for unit tests, and the
live harness for tests of real networks in a sandbox (:class:`Harness`, :class:`LiveNetwork`; the
pytest fixture ``netnskit_network`` drives them, see :mod:`netnskit.pytest_plugin`).

>>> from netnskit import Namespace
>>> from netnskit.testing import FakeRunner
>>> fake = FakeRunner()
>>> Namespace("red", runner=fake).create()
Namespace(name='red')
>>> fake.argvs
[['ip', 'netns', 'add', 'red']]
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import threading
from collections.abc import Callable, Sequence
from typing import IO

import attrs

from netnskit.harness import Harness, LiveNetwork, Reach, reachability_table
from netnskit.plan import Command
from netnskit.runner import Result, _argv, in_netns

__all__ = [
    "recorded",
    "reachability_table",
    "STDERR",
    "FakeProcess",
    "FakeRunner",
    "Harness",
    "LiveNetwork",
    "Reach",
    "Reply",
]

Matcher = Sequence[str] | str | re.Pattern[str] | Callable[[list[str]], bool]

# What the real tools print, for scripting realistic failures.
STDERR = {
    "netns_exists": 'Cannot create namespace file "/run/netns/{name}": File exists\n',
    "netns_missing": 'Cannot remove namespace file "/run/netns/{name}": No such file or directory\n',
    "link_exists": "RTNETLINK answers: File exists\n",
    "device_missing": 'Cannot find device "{name}"\n',
    "device_does_not_exist": 'Device "{name}" does not exist.\n',
    "address_exists": "Error: ipv4: Address already assigned.\n",
    "not_permitted": "RTNETLINK answers: Operation not permitted\n",
    "iptables_no_rule": "iptables: Bad rule (does a matching rule exist in that chain?).\n",
    "iptables_no_chain": "iptables: No chain/target/match by that name.\n",
    "iptables_chain_exists": "iptables: Chain already exists.\n",
    "iptables_not_root": (
        "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n"
    ),
}


@attrs.define
class Reply:
    """One scripted answer: which argv it matches and what the command 'printed'."""

    match: Matcher
    stdout: str = ""
    stderr: str = ""
    returncode: int = 0
    times: int | None = None  # None: every time

    def matches(self, argv: list[str]) -> bool:
        """True if this reply answers ``argv``."""
        m = self.match
        if callable(m) and not isinstance(m, str | re.Pattern):
            return bool(m(argv))
        if isinstance(m, re.Pattern):
            return m.search(shlex.join(argv)) is not None
        if isinstance(m, str):
            return fnmatch.fnmatchcase(shlex.join(argv), m)
        return list(m) == argv


@attrs.define
class FakeProcess:
    """Stands in for a started background process."""

    argv: list[str]
    pid: int = 0
    returncode: int | None = None
    stdin: IO[str] | None = None
    stdout: IO[str] | None = None
    stderr: IO[str] | None = None

    def poll(self) -> int | None:
        """The exit status once ended, else None."""
        return self.returncode

    def terminate(self) -> None:
        """Pretend to end the process."""
        self.returncode = -15

    kill = terminate

    def wait(self, timeout: float | None = None) -> int:
        """Return the exit status."""
        if self.returncode is None:
            self.returncode = 0
        return self.returncode

    def communicate(self, input: str | None = None, timeout: float | None = None) -> tuple[str, str]:
        """Return empty output."""
        self.wait()
        return ("", "")


@attrs.define
class FakeRunner:
    """Records every argv and answers from scripted replies; unmatched argv succeed silently.

    With ``strict=True`` an argv that no reply matches raises AssertionError instead. Safe to call
    from several threads (as BatchExecutor and Network.down do): a call's argv and input are
    recorded at the same position, and a reply scripted ``times=k`` answers exactly k calls.
    """

    strict: bool = False
    calls: list[list[str]] = attrs.field(factory=list)
    inputs: list[str | None] = attrs.field(factory=list)
    replies: list[Reply] = attrs.field(factory=list)
    started: list[FakeProcess] = attrs.field(factory=list)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False, eq=False)

    def on(
        self,
        match: Matcher,
        *,
        stdout: str = "",
        stderr: str = "",
        returncode: int = 0,
        times: int | None = None,
    ) -> FakeRunner:
        """Script a reply; the most recently added matching reply wins."""
        self.replies.append(Reply(match, stdout, stderr, returncode, times))
        return self

    def fail(self, match: Matcher, stderr: str, *, returncode: int = 1, times: int | None = None) -> FakeRunner:
        """Script a failure with the given stderr."""
        return self.on(match, stderr=stderr, returncode=returncode, times=times)

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float | None = None,
        netns: str | None = None,
    ) -> Result:
        """Record ``argv`` (``nsenter --net=/run/netns/NS -- ARGV`` with ``netns``); return the scripted Result."""
        args = _argv(argv) if netns is None else in_netns(netns, argv)
        with self._lock:
            self.calls.append(args)
            self.inputs.append(input)
            for reply in reversed(self.replies):
                if reply.times == 0 or not reply.matches(args):
                    continue
                if reply.times is not None:
                    reply.times -= 1
                return Result(args, reply.returncode, reply.stdout, reply.stderr)
        if self.strict:
            raise AssertionError(f"FakeRunner: no reply scripted for {shlex.join(args)}")
        return Result(args, 0, "", "")

    def start(self, argv: Sequence[str], *, netns: str | None = None, stdin: bool = False) -> FakeProcess:
        """Record a background start (as ``run`` records it) and return a FakeProcess."""
        proc = FakeProcess(_argv(argv) if netns is None else in_netns(netns, argv))
        with self._lock:
            self.calls.append(proc.argv)
            self.inputs.append(None)
            self.started.append(proc)
        return proc

    @property
    def argvs(self) -> list[list[str]]:
        """Every argv run so far, in order."""
        return [list(c) for c in self.calls]

    def clear(self) -> None:
        """Forget the recorded calls (the scripted replies stay)."""
        self.calls.clear()
        self.inputs.clear()


def recorded(command: Command) -> list[str]:
    """The argv a FakeRunner records when an executor runs ``command`` (told its namespace)."""
    return list(command.argv) if command.netns is None else in_netns(command.netns, command.argv)

"""Faults over time: a network file's ``[[fault]]`` list as a schedule of changes, run at their times.

:func:`schedule` is pure: each fault is a start change (the cable cut, or an impairment in place
of the file's) and an end change (the cable restored: both ends up with their routes, or the
file's impairment back), in time order; at one instant, ends come before starts, so a fault may
begin on a cable the moment another ends there. Faults on one cable never overlap (checked when
the network is made). :func:`run_faults` makes each change at its time, reports it as it
happens, and restores every cable it changed when it ends, early too (an exception, Ctrl-C: a
second Ctrl-C during the restore is ignored).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import attrs

from netnskit.errors import NetnskitError
from netnskit.network.spec import FaultSpec, cable
from netnskit.qdisc import Impairment, format_time

if TYPE_CHECKING:
    from netnskit.executors import Executor
    from netnskit.network.network import Network

__all__ = ["FaultChange", "FaultEvent", "run_faults", "schedule"]

CUT, RESTORE, IMPAIR, UNIMPAIR = "cut", "restore", "impair", "unimpair"
_ORDER = {RESTORE: 0, UNIMPAIR: 0, CUT: 1, IMPAIR: 1}  # at one instant: ends first


@attrs.frozen
class FaultChange:
    """One change of a schedule: at ``at_us`` from the start, ``action`` on cable ``link`` (fault ``fault``)."""

    at_us: int
    link: str
    action: str  # cut, restore, impair, unimpair
    fault: int
    impairment: Impairment | None = None  # what impair sets; what unimpair puts back (None: no impairment)

    def describe(self) -> str:
        """``red: cut (both ends down)``, ``wan: impair delay 100ms``, ..."""
        if self.action == CUT:
            return f"{self.link}: cut (both ends down)"
        if self.action == RESTORE:
            return f"{self.link}: restored (both ends up, routes back)"
        if self.action == IMPAIR:
            assert self.impairment is not None
            return f"{self.link}: impair {self.impairment.describe()}"
        back = "none" if self.impairment is None else self.impairment.describe()
        return f"{self.link}: impairment back to the file's ({back})"


def schedule(net: Network) -> list[FaultChange]:
    """The network's faults as changes in time order (ends before starts at one instant, then file order)."""
    changes: list[FaultChange] = []
    for index, fault in enumerate(net.faults):
        name = cable(net, fault.link).name
        if fault.down:
            changes.append(FaultChange(fault.start_us, name, CUT, index))
            changes.append(FaultChange(fault.end_us, name, RESTORE, index))
        else:
            changes.append(FaultChange(fault.start_us, name, IMPAIR, index, fault.impair))
            changes.append(FaultChange(fault.end_us, name, UNIMPAIR, index, cable(net, name).impair))
    return sorted(changes, key=lambda c: (c.at_us, _ORDER[c.action], c.fault))


@attrs.frozen
class FaultEvent:
    """A change made: when it was due and when it was done (seconds from the start), and what it was."""

    change: FaultChange
    due: float
    started: float
    done: float
    restoring: bool = False  # made by the final restore (after an interruption), not by the schedule

    def line(self) -> str:
        """``[  5.012s] red: cut (both ends down)``: the time the change was done."""
        note = "  (restoring after an interruption)" if self.restoring else ""
        return f"[{self.done:8.3f}s] {self.change.describe()}{note}"


def _faults_impairments(faults: Sequence[FaultSpec]) -> list[tuple[str, Impairment | None]]:
    return [(f"fault[{i}] on {f.link!r}", f.impair) for i, f in enumerate(faults)]


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ctrl-C is ignored while the cables are restored (main thread only: handlers live there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_faults(
    net: Network,
    *,
    report: Callable[[FaultEvent], None] | None = None,
    executor: Executor | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[FaultEvent]:
    """Make each change at its time; restore every cable changed when it ends, early too. Returns the events."""
    from netnskit.executors import BatchExecutor
    from netnskit.network.impair import CableState, read_cable, refuse_unsupported

    changes = schedule(net)
    run = executor or BatchExecutor()  # each change's processes at once, a batch per place
    impaired = {c.link for c in changes if c.action == IMPAIR}
    if impaired:
        refuse_unsupported(_faults_impairments(net.faults), net.netem_support())
    net._check_up({c.link for c in changes})
    # what each cable to impair has now, read once: each change then only writes (it is on time)
    known: dict[str, CableState] = {
        name: read_cable(net, cable(net, name), net.netem_support().usable) for name in sorted(impaired)
    }
    events: list[FaultEvent] = []
    altered: dict[str, FaultChange] = {}  # cable -> the start change not yet undone
    start = clock()

    def apply(change: FaultChange, due: float, restoring: bool = False) -> None:
        began = clock() - start
        if change.action in (CUT, IMPAIR):
            altered[change.link] = change  # before the change: a half-made one is restored too
        if change.action == CUT:
            net._link_down(change.link, run)
        elif change.action == RESTORE:
            net._link_up(change.link, run)
        else:
            # after an interruption, what a half-made change left is read again
            state = None if restoring else known.get(change.link)
            known[change.link] = net._impair_now(cable(net, change.link), change.impairment, run, state)
        if change.action in (RESTORE, UNIMPAIR):
            altered.pop(change.link, None)
        event = FaultEvent(change, due, began, clock() - start, restoring)
        events.append(event)
        if report is not None:
            report(event)

    try:
        for change in changes:
            due = change.at_us / 1_000_000
            while (left := due - (clock() - start)) > 0:
                sleep(min(left, 0.5))  # short naps: Ctrl-C is seen at once wherever it lands
            apply(change, due)
    finally:
        if altered:
            with _sigint_ignored():
                _restore(net, altered, apply, clock, start)
    return events


def _restore(
    net: Network,
    altered: dict[str, FaultChange],
    apply: Callable[[FaultChange, float, bool], None],
    clock: Callable[[], float],
    start: float,
) -> None:
    """Put back every cable a fault still holds (after an exception or Ctrl-C); every one is tried."""
    failures = []
    for name, change in list(altered.items()):
        back = (
            FaultChange(change.at_us, name, RESTORE, change.fault)
            if change.action == CUT
            else FaultChange(change.at_us, name, UNIMPAIR, change.fault, cable(net, name).impair)
        )
        try:
            apply(back, clock() - start, True)
        except NetnskitError as exc:
            failures.append(f"{back.describe()}: {exc}")
    if failures:
        raise NetnskitError("restoring after the fault schedule failed: " + "; ".join(failures))


def describe_schedule(net: Network) -> list[str]:
    """The schedule as lines, for review: ``at 5s: red: cut (both ends down)``."""
    return [f"at {format_time(c.at_us) if c.at_us else '0s'}: {c.describe()}" for c in schedule(net)]

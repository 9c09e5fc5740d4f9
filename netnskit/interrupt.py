"""Stopping ``up`` cleanly on SIGINT or SIGTERM: a flag that a signal handler sets, read between steps.

Python's default SIGINT raises KeyboardInterrupt wherever the main thread happens to be: half-way
through an executor's bookkeeping, with batches of other threads still running, and nothing rolled
back. Instead, :func:`on_signals` makes those signals only set an :class:`Interrupt`; executors
read it between steps (serial) or between batches (batched), let what is running finish, undo
what the call had done and raise :class:`~netnskit.errors.Interrupted`. ``down`` reads it only
before it starts: once removing, it finishes (a half-removed network is what ``down`` exists to
finish, but it never needs to be left so). ``LiveRunner`` starts each command in a process group of
its own, so a Ctrl-C at the terminal (sent to the whole foreground group) does not kill the
``ip`` or ``iptables-restore`` half-way through its batch.

>>> from netnskit.interrupt import Interrupt
>>> stop = Interrupt()
>>> stop.requested
False
>>> stop.request(2)
>>> stop.signum
2
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Sequence
from types import FrameType

import attrs

from netnskit.errors import Interrupted

__all__ = ["Interrupt", "on_signals"]


@attrs.define
class Interrupt:
    """A request to stop: set by a signal handler (or any thread), read by executors between steps."""

    signum: int | None = None  # the first signal that asked; None while nobody has

    def request(self, signum: int = signal.SIGINT) -> None:
        """Ask the running operation to stop (one assignment: safe in a signal handler)."""
        if self.signum is None:
            self.signum = int(signum)

    @property
    def requested(self) -> bool:
        """True once a stop was asked for."""
        return self.signum is not None

    def check(self, action: str = "") -> None:
        """Raise Interrupted (nothing undone here) if a stop was asked for."""
        if self.signum is not None:
            raise Interrupted(self.signum, action)


@contextlib.contextmanager
def on_signals(
    signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM), interrupt: Interrupt | None = None
) -> Iterator[Interrupt]:
    """Within the block, ``signals`` set the returned Interrupt instead of ending the process.

    The previous handlers are put back on leaving. Signal handlers can only be set from the main
    thread: elsewhere the block runs with the process's handlers unchanged (the Interrupt is still
    yours to set).
    """
    stop = interrupt if interrupt is not None else Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.request(signum)

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)

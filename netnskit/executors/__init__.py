"""Executors apply a plan through a runner: serially, or batched into few processes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from netnskit.executors.batch import Batch, BatchExecutor, batches
from netnskit.executors.serial import Progress, SerialExecutor, undo_all
from netnskit.interrupt import Interrupt
from netnskit.plan import Step
from netnskit.runner import Runner

__all__ = ["Batch", "BatchExecutor", "Executor", "Progress", "SerialExecutor", "batches", "undo_all"]


class Executor(Protocol):
    """Applies plans through a runner; the batching executor and the serial one both are."""

    def apply(self, steps: Sequence[Step], runner: Runner, *, interrupt: Interrupt | None = None) -> None:
        """Run every step; on failure roll back what was done and raise StepError.

        Once ``interrupt`` is requested, start nothing more, let what runs finish, roll back what
        was done and raise Interrupted.
        """
        ...

    def remove(self, steps: Sequence[Step], runner: Runner) -> list[str]:
        """Undo every step in reverse, tolerating what is already gone; return those messages."""
        ...

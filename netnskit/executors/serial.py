"""SerialExecutor: one process per command, in plan order, rolled back on failure."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from netnskit.errors import CommandError, Interrupted, NotFoundError, StepError
from netnskit.interrupt import Interrupt
from netnskit.plan import Step
from netnskit.runner import Runner

__all__ = ["Progress", "SerialExecutor", "undo_all"]

Progress = Callable[[int, int, str], None]
"""An executor's progress hook: (steps done, steps in all, the step just done), called as steps finish."""


def undo_all(steps: Sequence[Step], runner: Runner, progress: Progress | None = None) -> tuple[list[str], list[str]]:
    """Run the undo commands of ``steps`` in reverse; returns (already gone, real failures)."""
    gone: list[str] = []
    failed: list[str] = []
    for done, step in enumerate(reversed(steps), 1):
        for command in step.undo:
            try:
                command.check(runner, f"undoing {step.description}")
            except CommandError as exc:
                (gone if isinstance(exc, NotFoundError) else failed).append(str(exc))
        if progress is not None:
            progress(done, len(steps), step.description)
    return gone, failed


@attrs.define
class SerialExecutor:
    """One process per command, in plan order; ``progress`` is called after each step (see Progress)."""

    progress: Progress | None = attrs.field(default=None, kw_only=True)

    def apply(self, steps: Sequence[Step], runner: Runner, *, interrupt: Interrupt | None = None) -> None:
        """Run every step; on failure undo the done steps in reverse and raise StepError.

        ``interrupt`` is read before each step: once requested, the done steps are undone and
        Interrupted is raised.
        """
        for index, step in enumerate(steps):
            if interrupt is not None and interrupt.signum is not None:
                _, failed = undo_all(steps[:index], runner)
                raise Interrupted(interrupt.signum, "", _undoable(steps[:index]), failed)
            for position, command in enumerate(step.do):
                try:
                    command.check(runner, step.description)
                except CommandError as exc:
                    done = [*steps[:index]]
                    if position:
                        # part of this step ran: undo it too (its undo tolerates what is missing)
                        done.append(step)
                    _, failed = undo_all(done, runner)
                    raise StepError(step.description, index, exc, failed) from exc
                except BaseException:
                    # a KeyboardInterrupt where no on_signals() turned Ctrl-C into an Interrupt: the
                    # command was killed, whether it acted is unknown; undo this step too
                    undo_all([*steps[:index], step], runner)
                    raise
            if self.progress is not None:
                self.progress(index + 1, len(steps), step.description)

    def remove(self, steps: Sequence[Step], runner: Runner) -> list[str]:
        """Undo every step in reverse; what is already gone is reported, not raised."""
        gone, failed = undo_all(steps, runner, self.progress)
        if failed:
            raise StepError("teardown", len(steps) - 1, "; ".join(failed))
        return gone


def _undoable(steps: Sequence[Step]) -> int:
    """How many of ``steps`` have something to undo (a removal step has not)."""
    return sum(1 for step in steps if step.undo)

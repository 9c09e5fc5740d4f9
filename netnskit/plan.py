"""Plans: ordered steps, each with its undo, as data; executors that apply and roll them back.

A :class:`Step` is what a person reviews: a description, the commands that do it and the
commands that undo it. A plan renders as a shell script (:func:`render_script`). An executor
applies a plan through a runner; :class:`SerialExecutor` runs one process per command. If a step
fails, every step already done (and the failing step's own finished part) is undone in reverse
order, then :class:`~netnskit.errors.StepError` names the failing step, its command and what the
tool said.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from typing import Protocol

import attrs

from netnskit.errors import CommandError, NotFoundError, StepError
from netnskit.runner import Result, Runner

__all__ = ["Command", "Executor", "SerialExecutor", "Step", "render_script", "undo_all"]


def _strs(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(str(i) for i in items)


@attrs.frozen
class Command:
    """One process to run: its argv and, optionally, what to feed it on stdin."""

    argv: tuple[str, ...] = attrs.field(converter=_strs)
    input: str | None = None

    def run(self, runner: Runner) -> Result:
        """Run the command through ``runner`` (not checked)."""
        return runner.run(self.argv, input=self.input)

    def shell(self) -> str:
        """The command as a line of shell (with a here-document for stdin)."""
        line = shlex.join(self.argv)
        if self.input is None:
            return line
        body = self.input if self.input.endswith("\n") else self.input + "\n"
        # a body line equal to the delimiter would end the here-document early and run the
        # rest as shell: pick a delimiter that no line of the body is
        lines = set(body.split("\n"))
        tag = "NETNSKIT_EOF"
        n = 0
        while tag in lines:
            n += 1
            tag = f"NETNSKIT_EOF_{n}"
        return f"{line} <<'{tag}'\n{body}{tag}"


def _commands(items: Iterable[Command | Sequence[str]]) -> tuple[Command, ...]:
    return tuple(c if isinstance(c, Command) else Command(c) for c in items)


@attrs.frozen
class Step:
    """One reviewable step: what it does, the commands that do it, the commands that undo it."""

    description: str
    do: tuple[Command, ...] = attrs.field(converter=_commands)
    undo: tuple[Command, ...] = attrs.field(converter=_commands, default=())


class Executor(Protocol):
    """Applies plans through a runner; a batching executor can replace the serial one."""

    def apply(self, steps: Sequence[Step], runner: Runner) -> None:
        """Run every step; on failure roll back what was done and raise StepError."""
        ...

    def remove(self, steps: Sequence[Step], runner: Runner) -> list[str]:
        """Undo every step in reverse, tolerating what is already gone; return those messages."""
        ...


def undo_all(steps: Sequence[Step], runner: Runner) -> tuple[list[str], list[str]]:
    """Run the undo commands of ``steps`` in reverse; returns (already gone, real failures)."""
    gone: list[str] = []
    failed: list[str] = []
    for step in reversed(steps):
        for command in step.undo:
            try:
                command.run(runner).check(f"undoing {step.description}")
            except CommandError as exc:
                (gone if isinstance(exc, NotFoundError) else failed).append(str(exc))
    return gone, failed


@attrs.define
class SerialExecutor:
    """One process per command, in plan order."""

    def apply(self, steps: Sequence[Step], runner: Runner) -> None:
        """Run every step; on failure undo the done steps in reverse and raise StepError."""
        for index, step in enumerate(steps):
            for position, command in enumerate(step.do):
                try:
                    command.run(runner).check(step.description)
                except CommandError as exc:
                    done = [*steps[:index]]
                    if position:
                        # part of this step ran: undo it too (its undo tolerates what is missing)
                        done.append(step)
                    _, failed = undo_all(done, runner)
                    raise StepError(step.description, index, str(exc), failed) from exc

    def remove(self, steps: Sequence[Step], runner: Runner) -> list[str]:
        """Undo every step in reverse; what is already gone is reported, not raised."""
        gone, failed = undo_all(steps, runner)
        if failed:
            raise StepError("teardown", len(steps) - 1, "; ".join(failed))
        return gone


def render_script(steps: Sequence[Step], *, title: str = "netnskit plan") -> str:
    """The plan as a bash script a person can review and run (stops at the first error)."""
    lines = ["#!/usr/bin/env bash", _comment(f"# {title}"), "set -euo pipefail", ""]
    for index, step in enumerate(steps, 1):
        lines.append(_comment(f"# step {index}: {step.description}"))
        lines.extend(c.shell() for c in step.do)
        if step.undo:
            lines.extend(_comment(f"#   undo: {c.shell()}") for c in step.undo if c.input is None)
        lines.append("")
    return "\n".join(lines)


def _comment(text: str) -> str:
    # a newline in a comment (a description, a quoted word of an undo) must not start a command
    return text.replace("\n", "\n# ")

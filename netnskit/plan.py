"""The plan language: typed commands, steps with their undo, and the script a person reviews.

A :class:`Command` says, as data, what an executor needs to know: the argv, where it runs (the
host or a named namespace), the tool, the line a batch of that tool carries it as, the ordered
channel it belongs to, and the resources it creates or removes. The object that builds a command
fills these in; executors route and batch on them and never read the argv.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence

import attrs

from netnskit.errors import error_for
from netnskit.runner import Result, Runner

__all__ = ["Batchable", "Command", "Resource", "Step", "render_script"]


def _strs(items: Iterable[str]) -> tuple[str, ...]:
    if isinstance(items, str):
        raise TypeError(f"argv must be a sequence of strings, not the string {items!r}")
    return tuple(str(i) for i in items)


@attrs.frozen
class Resource:
    """A thing in the kernel a command creates or removes: a namespace, a link, an address, a rule..."""

    kind: str
    name: str
    netns: str | None = None  # where it lives (None: the host); a namespace lives in itself
    group: int | None = None  # a link's group, set by the request that creates it

    @property
    def space(self) -> str | None:
        """The namespace this resource is part of (a namespace is its own), None for the host."""
        return self.name if self.kind == "netns" else self.netns


def _resources(items: Iterable[Resource]) -> tuple[Resource, ...]:
    return tuple(items)


@attrs.frozen
class Batchable:
    """How a batch process carries a command: the batch program, its section and the line it reads."""

    program: tuple[str, ...] = attrs.field(converter=_strs)  # e.g. ("ip", "-6"), ("iptables-restore", "-w", "10")
    line: str
    section: str = ""  # iptables-restore's table
    style: str = "lines"  # "lines": PROGRAM -batch -, a line each; "tables": PROGRAM --noflush, *SECTION blocks


@attrs.frozen
class Command:
    """One process to run: its argv, where it runs, what it feeds on stdin, and what it does.

    ``channel`` names the ordered lane the command belongs to in its place ("net": ip, sysctl, tc;
    "iptables-restore" and the like: a firewall): commands of one channel in one place keep their
    order; different channels are independent except through the resources they create and
    remove. A command with no channel is a barrier: everything before it finishes first.
    """

    argv: tuple[str, ...] = attrs.field(converter=_strs)
    input: str | None = None
    netns: str | None = None  # None: the host (the runner's own namespace)
    tool: str = ""  # "ip", "sysctl", "iptables-restore"...: what the argv runs
    channel: str = ""
    batch: Batchable | None = None
    creates: tuple[Resource, ...] = attrs.field(default=(), converter=_resources)
    removes: tuple[Resource, ...] = attrs.field(default=(), converter=_resources)

    def run(self, runner: Runner) -> Result:
        """Run the command through ``runner``, in its namespace (not checked)."""
        return runner.run(self.argv, input=self.input, netns=self.netns)

    def check(self, runner: Runner, action: str) -> Result:
        """Run the command; a failure raises the mapped CommandError naming it as the plan writes it."""
        result = self.run(runner)
        if not result.ok:
            raise error_for(self.host_argv(), result.returncode, result.stdout, result.stderr, action)
        return result

    def host_argv(self) -> list[str]:
        """The argv that runs this command from the host: ``ip -n NS ...`` or ``ip netns exec NS ...``."""
        if self.netns is None:
            return list(self.argv)
        if self.tool == "ip":
            return [self.argv[0], "-n", self.netns, *self.argv[1:]]
        return ["ip", "netns", "exec", self.netns, *self.argv]

    def shell(self) -> str:
        """The command as a line of shell (with a here-document for stdin)."""
        line = shlex.join(self.host_argv())
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

    @property
    def reaches(self) -> frozenset[str]:
        """The namespaces, other than its own, whose contents this command adds to or takes from."""
        return frozenset(s for r in (*self.creates, *self.removes) if (s := r.space) is not None and s != self.netns)

    @property
    def takes_from(self) -> frozenset[str]:
        """The namespaces, other than its own, from which this command removes something."""
        return frozenset(s for r in self.removes if (s := r.space) is not None and s != self.netns)


def _command(item: Command | Sequence[str]) -> Command:
    return item if isinstance(item, Command) else Command(item)


def _commands(items: Iterable[Command | Sequence[str]]) -> tuple[Command, ...]:
    return tuple(_command(c) for c in items)


@attrs.frozen
class Step:
    """One reviewable step: what it does, the commands that do it, the commands that undo it."""

    description: str
    do: tuple[Command, ...] = attrs.field(converter=_commands)
    undo: tuple[Command, ...] = attrs.field(converter=_commands, default=())


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

"""The echoing runner: every command the story runs is printed (``$ ip netns add red``) before it runs."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence

import attrs

from netnskit.runner import Result, Runner

__all__ = ["EchoRunner", "Out"]

Out = Callable[[str], object]


@attrs.define
class EchoRunner:
    """A runner that prints each command (``$ ip netns add red``) before running it through ``inner``."""

    inner: Runner
    out: Out = print

    def run(self, argv: Sequence[str], *, input: str | None = None, timeout: float | None = None) -> Result:
        """Print ``argv`` (and its stdin, as a here-document), run it, and print the error when it fails."""
        if input is None:
            self.out(f"  $ {shlex.join(argv)}")
        else:
            self.out(f"  $ {shlex.join(argv)} <<'EOF'")
            for line in input.splitlines():
                self.out(f"    {line}")
            self.out("    EOF")
        result = self.inner.run(argv, input=input, timeout=timeout)
        if not result.ok:
            self.out(f"    exit {result.returncode}: {result.stderr.strip()}")
        return result


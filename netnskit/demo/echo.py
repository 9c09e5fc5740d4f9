"""The echoing runner: every command the story runs is printed (``$ ip netns add red``) before it runs."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence

import attrs

from netnskit.runner import Process, Result, Runner, in_netns

__all__ = ["EchoRunner", "Out"]

Out = Callable[[str], object]


@attrs.define
class EchoRunner:
    """A runner that prints each command (``$ ip netns add red``) before running it through ``inner``."""

    inner: Runner
    out: Out = print

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float | None = None,
        netns: str | None = None,
    ) -> Result:
        """Print ``argv`` (and its stdin, as a here-document), run it, and print the error when it fails."""
        shown = list(argv) if netns is None else in_netns(netns, argv)
        if input is None:
            self.out(f"  $ {shlex.join(shown)}")
        else:
            self.out(f"  $ {shlex.join(shown)} <<'EOF'")
            for line in input.splitlines():
                self.out(f"    {line}")
            self.out("    EOF")
        result = self.inner.run(argv, input=input, timeout=timeout, netns=netns)
        if not result.ok:
            self.out(f"    exit {result.returncode}: {result.stderr.strip()}")
        return result

    def start(self, argv: Sequence[str], *, netns: str | None = None, stdin: bool = False) -> Process:
        """Print ``argv`` and start it in the background through ``inner``."""
        shown = list(argv) if netns is None else in_netns(netns, argv)
        self.out(f"  $ {shlex.join(shown)} &")
        return self.inner.start(argv, netns=netns, stdin=stdin)

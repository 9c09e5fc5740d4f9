"""``run_demo()``: the whole story in a fresh Sandbox, then the real host compared, then the tally."""

from __future__ import annotations

from netnskit.demo.checks import Check
from netnskit.demo.echo import Out
from netnskit.demo.story import Story
from netnskit.runner import LiveRunner
from netnskit.sandbox import Sandbox
from netnskit.snapshot import HostState

__all__ = ["run_demo"]


def run_demo(out: Out = print) -> bool:
    """Walk the whole story in a fresh Sandbox; True only if every check held (the real host unchanged too)."""
    real = LiveRunner()
    before = HostState.capture(real)
    out("netnskit demo: the namespace story, live, inside a throwaway sandbox")
    with Sandbox() as box:
        story = Story(box, out)
        story.run()
    out("\n== after the sandbox is gone")
    diff = before.diff(HostState.capture(real))
    story.record(
        Check(
            "the real host is unchanged (ip netns, ip -j link/addr/route, sysctl, iptables-save)",
            not diff,
            "; ".join(diff) or "identical before and after",
        )
    )
    failed = [c for c in story.checks if not c.ok]
    out(
        f"\n{len(story.checks) - len(failed)} of {len(story.checks)} checks passed"
        + ("" if not failed else f"; failed: {', '.join(c.name for c in failed)}")
    )
    return story.passed

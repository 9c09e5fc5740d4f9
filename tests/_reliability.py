"""Figures for RELIABILITY.md: tests add counts here; ``scripts/reliability_report`` sums them.

A test calls :func:`record` with a figure's name and a count. When ``NETNSKIT_FIGURES`` names a
file, one JSON line is appended to it (tests in several processes may write; each line is one
``write`` of less than a pipe buffer, so lines do not interleave). Otherwise nothing is written.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import attrs

from netnskit.runner import Result, Runner
from netnskit.sandbox import Sandbox
from netnskit.snapshot import HostState, _clean_save

FIGURES_ENV = "NETNSKIT_FIGURES"


def record(figure: str, count: int, **detail: object) -> None:
    """Add ``count`` to ``figure`` in the figures file, if one is set."""
    path = os.environ.get(FIGURES_ENV)
    if not path:
        return
    line = json.dumps({"figure": figure, "count": count, **detail}, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


# --- live helpers ---------------------------------------------------------------------------

T = TypeVar("T")
R = TypeVar("R")

SEED = Path(__file__).resolve().parents[1] / "examples" / "seed.toml"

# Every sysctl the seed network can touch on the host, globally and on each link present (a
# leftover link shows in ``links`` as well).
_GLOBAL_SYSCTLS = ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv6.conf.default.forwarding"]
_PER_LINK_SYSCTLS = ["forwarding", "route_localnet"]


@attrs.frozen
class Snapshot:
    """HostState plus what it leaves out: link details (flags, group, alias), every sysctl the
    network can touch, and the legacy iptables tables."""

    state: HostState
    links: tuple[str, ...]
    sysctls: tuple[str, ...]
    legacy: tuple[str, ...]

    @classmethod
    def capture(cls, runner: Runner) -> Snapshot:
        """Read the host through ``runner``."""
        state = HostState.capture(runner)
        out = runner.run(["ip", "-d", "-j", "link", "show"]).check().stdout
        links = tuple(
            sorted(
                json.dumps(
                    {k: d.get(k) for k in ("ifname", "flags", "group", "ifalias", "master", "link_netnsid")}
                    | {"kind": d.get("linkinfo", {}).get("info_kind")},
                    sort_keys=True,
                )
                for d in json.loads(out)
            )
        )
        names = [*_GLOBAL_SYSCTLS]
        for link in ["all", "default", *(json.loads(d)["ifname"] for d in links)]:
            names += [f"net/ipv4/conf/{link}/{key}" for key in _PER_LINK_SYSCTLS]
        sysctls = tuple(sorted(runner.run(["sysctl", *names]).check().stdout.splitlines()))
        legacy = tuple(
            _clean_save(runner.run([tool]).stdout) for tool in ("iptables-legacy-save", "ip6tables-legacy-save")
        )
        return cls(state, links, sysctls, legacy)

    def diff(self, other: Snapshot) -> list[str]:
        """Differences (empty when identical)."""
        out = self.state.diff(other.state)
        for name in ("links", "sysctls", "legacy"):
            if getattr(self, name) != getattr(other, name):
                out.append(f"{name}: before={getattr(self, name)!r} after={getattr(other, name)!r}")
        return out


class Counting:
    """Passes every command on and counts them (thread-safe: the batch executor runs threads)."""

    def __init__(self, inner: Runner) -> None:
        self.inner = inner
        self.argvs: list[list[str]] = []
        self._lock = threading.Lock()

    def _next(self, argv: Sequence[str]) -> int:
        with self._lock:
            self.argvs.append(list(argv))
            return len(self.argvs)

    def run(self, argv: Sequence[str], *, input: str | None = None, timeout: float | None = None) -> Result:
        """Count, then run."""
        self._next(argv)
        return self.inner.run(argv, input=input, timeout=timeout)


class Faulty(Counting):
    """Makes the k-th command (1-based, reads included) fail, live.

    ``mode`` "instead": ``false`` runs in its place (the command never runs);
    "after": the command runs, then its result is replaced by a failure (a tool that acted and
    still reported an error, or a timeout after the kernel did the work). With ``also`` the
    ``also``-th command after the k-th fails too (a rollback that fails).
    """

    def __init__(
        self,
        inner: Runner,
        k: int,
        mode: str = "instead",
        also: int | None = None,
        counts: Callable[[list[str]], bool] | None = None,
    ) -> None:
        super().__init__(inner)
        self.k = k
        self.mode = mode
        self.also = also
        self.counts = counts
        self.failed: list[list[str]] = []

    def run(self, argv: Sequence[str], *, input: str | None = None, timeout: float | None = None) -> Result:
        """Run, or fail when this is the chosen command (only commands ``counts`` accepts count)."""
        if self.counts is not None and not self.counts(list(argv)):
            return self.inner.run(argv, input=input, timeout=timeout)
        n = self._next(argv)
        if n != self.k and (self.also is None or n != self.k + self.also):
            return self.inner.run(argv, input=input, timeout=timeout)
        self.failed.append(list(argv))
        if self.mode == "after" and n == self.k:
            done = self.inner.run(argv, input=input, timeout=timeout)
            return Result(argv, 1, done.stdout, f"netnskit-test: injected failure after it ran\n{done.stderr}")
        false = self.inner.run(["false"])
        assert false.returncode == 1, false
        return Result(argv, false.returncode, "", "netnskit-test: injected failure (false ran instead)\n")


def spread(
    first: Sandbox, items: Sequence[T], work: Callable[[Sandbox, T], R], prepare: Callable[[Sandbox], object]
) -> list[R]:
    """``work(box, item)`` for every item, on two sandboxes at once (``first`` and a new one).

    The commands are mostly process start-ups waiting on the kernel, so two sandboxes side by
    side take about half the time on two cores. ``prepare`` readies the new sandbox as ``first``
    was. Results come back in the order of ``items``; an exception in either stops the test.
    """
    with Sandbox() as second:
        prepare(second)
        parts = [list(items[0::2]), list(items[1::2])]
        with ThreadPoolExecutor(2) as pool:
            futures = [
                pool.submit(lambda box, part: [work(box, item) for item in part], box, part)
                for box, part in zip((first, second), parts, strict=True)
            ]
            done = [f.result() for f in futures]
    out: list[R] = []
    for i in range(len(items)):
        out.append(done[i % 2][i // 2])
    return out

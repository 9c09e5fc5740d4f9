"""Figures for RELIABILITY.md: tests add counts here; ``scripts/reliability_report`` sums them.

A test calls :func:`record` with a figure's name and a count. When ``NETNSKIT_FIGURES`` names a
file, one JSON line is appended to it (tests in several processes may write; each line is one
``write`` of less than a pipe buffer, so lines do not interleave). Otherwise nothing is written.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import attrs
from hypothesis import strategies as st

from netnskit._validate import _IP_LINK_KEYWORDS
from netnskit.plan import Step
from netnskit.runner import Process, Result, Runner, in_netns
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


def _network_only(seed: Path) -> Path:
    """The seed's text up to its first ``[[process]]`` (and the comment above it), in a file of its own.

    The crash and fault suites number every command of ``up``, reads included; a process adds
    readiness polls whose number depends on how fast it starts, so the k-th command would not be
    the same from run to run. They run the network alone; the process phase has its own crash and
    fault tests (tests/live/test_hosts_processes_live.py).
    """
    text = seed.read_text()
    head = text[: text.index("[[process]]")].rstrip("\n").split("\n")
    while head and head[-1].startswith("#"):
        head.pop()
    folder = tempfile.mkdtemp(prefix="netnskit-seed-")
    atexit.register(shutil.rmtree, folder, True)
    path = Path(folder) / "seed-network.toml"
    path.write_text("\n".join(head) + "\n")
    return path


SEED_NETWORK = _network_only(SEED)  # the seed without its web server (see _network_only)

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
        # -e: a link may go while we read (the kernel frees a deleted namespace's veths a bit later)
        sysctls = tuple(sorted(runner.run(["sysctl", "-e", *names]).check().stdout.splitlines()))
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


def settled_diff(runner: Runner, before: Snapshot, timeout: float = 3.0) -> list[str]:
    """The host's differences from ``before``, given the kernel up to ``timeout`` s to settle.

    ``ip netns del`` returns before the kernel has destroyed the namespace's devices: the host end
    of a veth can show for a moment after its namespace is gone. A leftover stays; that does not.
    """
    deadline = time.monotonic() + timeout
    while True:
        diff = Snapshot.capture(runner).diff(before)
        if not diff or time.monotonic() > deadline:
            return diff
        time.sleep(0.05)


def shown(argv: Sequence[str], netns: str | None) -> list[str]:
    """The argv as it runs from the runner's place (``nsenter --net=...`` for a namespace)."""
    return list(argv) if netns is None else in_netns(netns, argv)


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

    def run(
        self, argv: Sequence[str], *, input: str | None = None, timeout: float | None = None, netns: str | None = None
    ) -> Result:
        """Count, then run."""
        self._next(shown(argv, netns))
        return self.inner.run(argv, input=input, timeout=timeout, netns=netns)

    def start(self, argv: Sequence[str], *, netns: str | None = None, stdin: bool = False) -> Process:
        """Start through the inner runner (not counted)."""
        return self.inner.start(argv, netns=netns, stdin=stdin)


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

    def run(
        self, argv: Sequence[str], *, input: str | None = None, timeout: float | None = None, netns: str | None = None
    ) -> Result:
        """Run, or fail when this is the chosen command (only commands ``counts`` accepts count)."""
        seen = shown(argv, netns)
        if self.counts is not None and not self.counts(seen):
            return self.inner.run(argv, input=input, timeout=timeout, netns=netns)
        n = self._next(seen)
        if n != self.k and (self.also is None or n != self.k + self.also):
            return self.inner.run(argv, input=input, timeout=timeout, netns=netns)
        self.failed.append(seen)
        if self.mode == "after" and n == self.k:
            done = self.inner.run(argv, input=input, timeout=timeout, netns=netns)
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


# --- rendered scripts ---------------------------------------------------------------------

# Run a rendered script with every command replaced by a recorder: PATH points nowhere, so bash
# calls command_not_found_handle, which writes each word and the stdin it got, length-prefixed.
_RECORDER = r"""
export LC_ALL=C
PATH=/nonexistent
command_not_found_handle() {
    local data='' word
    if [ ! -t 0 ]; then IFS= read -r -d '' data || true; fi
    for word in "$@"; do printf 'A%d:%s' "${#word}" "$word" >>"$NETNSKIT_LOG"; done
    printf 'I%d:%s' "${#data}" "$data" >>"$NETNSKIT_LOG"
    printf 'E' >>"$NETNSKIT_LOG"
    return 0
}
source "$1"
"""


def run_script(script: str, tmp_path: Path) -> list[tuple[list[str], str]]:
    """Run ``script`` with bash, commands recorded not run; returns [(argv, stdin)]."""
    path = tmp_path / "plan.sh"
    log = tmp_path / "calls.log"
    path.write_text(script)
    log.write_bytes(b"")
    subprocess.run(
        ["bash", "-c", _RECORDER, "recorder", str(path)],
        env={"NETNSKIT_LOG": str(log), "HOME": str(tmp_path)},
        stdin=subprocess.DEVNULL,
        check=True,
        capture_output=True,
    )
    return parse_log(log.read_bytes())


def parse_log(data: bytes) -> list[tuple[list[str], str]]:
    calls: list[tuple[list[str], str]] = []
    argv: list[str] = []
    i = 0
    while i < len(data):
        kind = data[i : i + 1]
        i += 1
        if kind == b"E":
            continue
        colon = data.index(b":", i)
        size = int(data[i:colon])
        value = data[colon + 1 : colon + 1 + size].decode()
        i = colon + 1 + size
        if kind == b"A":
            argv.append(value)
        else:
            calls.append((argv, value))
            argv = []
    return calls


def expected_calls(steps: Sequence[Step]) -> list[tuple[list[str], str]]:
    out = []
    for step in steps:
        for c in step.do:
            body = "" if c.input is None else (c.input if c.input.endswith("\n") else c.input + "\n")
            out.append((c.host_argv(), body))
    return out


# --- random valid topologies (hypothesis) ---------------------------------------------------

_TOKEN = r"[a-z][a-z0-9]{0,4}"


def _word(draw: st.DrawFn, regex: str = _TOKEN) -> str:
    return draw(st.from_regex(regex, fullmatch=True).filter(lambda w: w not in _IP_LINK_KEYWORDS))


@st.composite
def topologies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid Network description (the TOML structure): 1-3 namespaces on a bridge, given or
    allocated addresses, maybe masquerade, port forwards, an extra namespace linked to the host
    with a route through it."""
    name = _word(draw)
    count = draw(st.integers(1, 3))
    spaces = draw(st.lists(st.from_regex(_TOKEN, fullmatch=True), min_size=count, max_size=count, unique=True))
    prefix = draw(st.sampled_from([24, 26, 28]))
    subnet = ipaddress.IPv4Network(f"10.{draw(st.integers(0, 255))}.{draw(st.integers(0, 255))}.0/{prefix}")
    hosts = list(subnet.hosts())
    picks = draw(st.permutations(hosts))[: count + 1]
    gateway = picks[0]
    namespaces = []
    for space, addr in zip(spaces, picks[1:], strict=True):
        table: dict[str, Any] = {"name": space}
        if draw(st.booleans()):
            table["address"] = str(addr)
        if draw(st.booleans()):
            table["ifname"] = _word(draw, r"[a-z]{1,3}[0-9]")
        namespaces.append(table)
    data: dict[str, Any] = {
        "network": {
            "name": name,
            "bridge": f"br-{name}",
            "subnet": str(subnet),
            "gateway": str(gateway),
            "masquerade": draw(st.booleans()),
        },
        "namespace": namespaces,
    }
    ports = draw(st.lists(st.integers(8000, 8010), max_size=2, unique=True))
    if ports:
        data["port_forward"] = [
            {"host_port": p, "netns": draw(st.sampled_from(spaces)), "port": draw(st.sampled_from([80, p]))}
            for p in ports
        ]
    if draw(st.booleans()):
        extra = draw(st.from_regex(_TOKEN, fullmatch=True).filter(lambda w: w not in spaces))
        c = draw(st.integers(0, 63))
        data["extra_namespace"] = [{"name": extra, "forwarding": draw(st.booleans())}]
        data["link"] = [
            {
                "name": f"l-{name}",
                "address": f"172.16.{c}.1/30",
                "peer": "eth0",
                "peer_netns": extra,
                "peer_address": f"172.16.{c}.2/30",
            }
        ]
        if draw(st.booleans()):
            data["route"] = [{"to": f"198.18.{c}.0/24", "via": f"172.16.{c}.2"}]
    return data

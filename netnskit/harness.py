"""Live network tests: networks brought up in a fresh sandbox, reachability assertions, and what a
failing test's report needs (the processes' logs, a capture of each link).

The pytest plugin (:mod:`netnskit.pytest_plugin`, fixture ``netnskit_network``) drives a
:class:`Harness` per test; it works without pytest too::

    with Harness() as harness:
        net = harness.network("topo.toml")      # up inside a fresh sandbox
        net.assert_reachable("red", "blue")      # ping, retried a few times
        net.assert_reachable("lan", "host", 80)  # a TCP handshake
    # processes stopped, network down, sandbox gone

Everything runs inside the sandbox; addresses come from the network's own description.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs

from netnskit.capture import Capture
from netnskit.errors import ValidationError
from netnskit.executors import Executor
from netnskit.netns import exec_argv
from netnskit.network import Network
from netnskit.runner import Result, Runner
from netnskit.sandbox import Sandbox

__all__ = ["Harness", "LiveNetwork", "Reach", "reachability_table"]

LOG_LINES = 200  # how much of each process's log a failing test's report carries
# A probe is tried again until this many seconds have passed: a loaded host may take a while to
# resolve a neighbour, and a test must not decide on one packet.
PROBE_TIMEOUT = 5.0


@attrs.frozen
class Reach:
    """One reachability probe: from ``src`` to ``dst`` (``port`` for TCP/UDP, None: ping), and what came of it."""

    src: str
    dst: str
    port: int | None
    proto: str
    ok: bool
    detail: str

    @property
    def target(self) -> str:
        """``DST``, ``DST:PORT`` or ``DST:PORT/udp``, as a matrix names it."""
        if self.port is None:
            return self.dst
        return f"{self.dst}:{self.port}" + ("/udp" if self.proto == "udp" else "")


def _target(text: str) -> tuple[str, int | None, str]:
    """``NAME``, ``NAME:PORT`` or ``NAME:PORT/udp`` -> (name, port, proto)."""
    name, sep, rest = text.rpartition(":")
    if not sep or ":" in name:  # no port (or an IPv6 address, which a network does not have)
        return text, None, "tcp"
    port, _, proto = rest.partition("/")
    if not port.isdigit() or proto not in ("", "tcp", "udp"):
        raise ValidationError("target", text, "must be NAME, NAME:PORT or NAME:PORT/udp")
    return name, int(port), proto or "tcp"


def reachability_table(rows: Sequence[tuple[Reach, bool]]) -> str:
    """A table of probes against what was expected: a row per source, a column per target.

    A cell is ``yes``/``no`` where the probe went as expected, ``YES (expected no)`` or ``NO (expected
    yes)`` where it did not; the details of the unexpected ones follow the table.
    """
    sources = list(dict.fromkeys(r.src for r, _ in rows))
    targets = list(dict.fromkeys(r.target for r, _ in rows))
    cells: dict[tuple[str, str], str] = {}
    word = {True: "yes", False: "no"}
    for reach, expected in rows:
        cell = word[reach.ok]
        cells[reach.src, reach.target] = cell if reach.ok == expected else f"{cell.upper()} (expected {word[expected]})"
    header = ["from \\ to", *targets]
    body = [[src, *(cells.get((src, t), "-") for t in targets)] for src in sources]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *body]]
    wrong = [(r, e) for r, e in rows if r.ok != e]
    if wrong:
        lines.append("")
        for reach, expected in wrong:
            wanted = "reachable" if expected else "unreachable"
            lines.append(f"{reach.src} -> {reach.target}: expected {wanted}; {reach.detail}")
    return "\n".join(lines)


class LiveNetwork:
    """A network up inside a sandbox, with assertions for tests; any other attribute is the Network's."""

    def __init__(self, network: Network, sandbox: Sandbox) -> None:
        """Wrap ``network`` (already up, its runner the sandbox's)."""
        self.network = network
        self.sandbox = sandbox

    def __getattr__(self, name: str) -> Any:
        """The Network's attribute (``status()``, ``check()``, ``capture(...)``, ``name``...)."""
        return getattr(self.network, name)

    def __repr__(self) -> str:
        return f"LiveNetwork({self.network.name!r})"

    @property
    def runner(self) -> Runner:
        """The sandbox's runner."""
        return self.network.runner

    def exec(
        self, netns: str | None, argv: Sequence[str], *, check: bool = True, timeout: float | None = None
    ) -> Result:
        """Run ``argv`` in ``netns`` (None or ``host``: the sandbox's host) as ``ip netns exec`` does
        (the namespace's ``/etc/netns`` files apply: names resolve); ``check`` raises on failure."""
        place = self._place(netns)
        result = self.runner.run(exec_argv(place, argv), timeout=timeout)
        return result.check(f"running a command in {place or 'the host'}") if check else result

    def address(self, name: str, *, seen_from: str | None = None) -> ipaddress.IPv4Address:
        """The address of node ``name`` (a namespace, ``host``, ``gateway`` or an IP address) as ``seen_from``
        would reach it first."""
        try:
            found = ipaddress.ip_address(name)
        except ValueError:
            return self.network.address_of(name, seen_from=self._place(seen_from))
        if not isinstance(found, ipaddress.IPv4Address):
            raise ValidationError("address", name, "must be IPv4 (a network is IPv4 only)")
        return found

    def _place(self, name: str | None) -> str | None:
        if name is None or (name == "host" and name not in self.network.namespace_names()):
            return None
        if name not in self.network.namespace_names():
            raise ValidationError("namespace", name, f"is not a namespace of network {self.network.name!r} (or host)")
        return name

    def probe(
        self, src: str, dst: str, port: int | None = None, *, proto: str = "tcp", timeout: float = PROBE_TIMEOUT
    ) -> Reach:
        """Try ``dst`` from ``src``: a ping (no port), a TCP handshake, or a UDP exchange (the server must
        answer); again and again (one second each) until one works or ``timeout`` seconds have passed."""
        place = self._place(src)
        address = str(self.address(dst, seen_from=src))
        if port is None:
            argv = ["ping", "-n", "-c", "1", "-W", "1", address]
        else:
            argv = [sys.executable, "-m", "netnskit.probe", "connect", "--proto", proto, "--timeout", "1"]
            argv += ["--connect-only", address, str(port)] if proto == "tcp" else [address, str(port)]
        what = f"{'ping' if port is None else proto} {address}" + ("" if port is None else f" port {port}")
        deadline = time.monotonic() + timeout
        tries = 0
        while True:
            tries += 1
            result = self.runner.run(exec_argv(place, argv), timeout=15)
            said = result.stdout.strip().splitlines() or result.stderr.strip().splitlines()
            detail = f"{what}: {said[-1] if said else f'exit {result.returncode}'}"
            if result.ok:
                return Reach(src, dst, port, proto, True, detail)
            if time.monotonic() >= deadline:
                return Reach(src, dst, port, proto, False, f"{detail} ({tries} tries in {timeout:g} s)")
            time.sleep(0.1)

    def assert_reachable(
        self, src: str, dst: str, port: int | None = None, *, proto: str = "tcp", timeout: float = PROBE_TIMEOUT
    ) -> Reach:
        """Assert that ``dst`` answers ``src`` within ``timeout`` s (ping; with ``port``: TCP handshake, UDP reply)."""
        reach = self.probe(src, dst, port, proto=proto, timeout=timeout)
        if not reach.ok:  # raised, not asserted: the message stays as written (and python -O keeps it)
            raise AssertionError(f"{src} cannot reach {reach.target}: {reach.detail}")
        return reach

    def assert_unreachable(
        self, src: str, dst: str, port: int | None = None, *, proto: str = "tcp", timeout: float = PROBE_TIMEOUT
    ) -> Reach:
        """Assert that ``dst`` does not answer ``src``, tried again and again for ``timeout`` s."""
        reach = self.probe(src, dst, port, proto=proto, timeout=timeout)
        if reach.ok:
            raise AssertionError(f"{src} reaches {reach.target}, expected not to: {reach.detail}")
        return reach

    def assert_reachability(self, matrix: Mapping[Any, Any], *, timeout: float = PROBE_TIMEOUT) -> list[Reach]:
        """Probe every pair of ``matrix`` and assert each went as expected; on failure the message is a table.

        ``matrix``: ``{"red": {"blue": True, "host:80": True, "internet:53/udp": False}, ...}`` or
        ``{("red", "blue"): True, ...}``. Probes run a few at a time.
        """
        pairs: list[tuple[str, str, bool]] = []
        for key, value in matrix.items():
            if isinstance(key, tuple):
                pairs.append((str(key[0]), str(key[1]), bool(value)))
            else:
                pairs += [(str(key), str(dst), bool(expected)) for dst, expected in value.items()]

        def one(pair: tuple[str, str, bool]) -> tuple[Reach, bool]:
            name, port, proto = _target(pair[1])
            return self.probe(pair[0], name, port, proto=proto, timeout=timeout), pair[2]

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            rows = list(pool.map(one, pairs))
        wrong = [r for r, expected in rows if r.ok != expected]
        if wrong:
            raise AssertionError(
                f"reachability of network {self.network.name!r} differs from what was expected "
                f"({len(wrong)} of {len(rows)}):\n{reachability_table(rows)}"
            )
        return [r for r, _ in rows]

    def logs(self, lines: int = LOG_LINES) -> dict[str, str]:
        """Each process's log (its last ``lines`` lines), read inside the sandbox: name -> text."""
        out: dict[str, str] = {}
        for name, path in self.network.process_logs().items():
            result = self.runner.run(["tail", "-n", str(lines), "--", path])
            out[name] = result.stdout if result.ok else f"(cannot read {path}: {result.stderr.strip()})"
        return out


class Harness:
    """The live networks of one test: a sandbox made on first use, networks brought up in it, their
    logs and captures for a failing test's report, and the teardown (processes stopped, network
    down, sandbox closed)."""

    def __init__(self, *, base_dir: str | os.PathLike[str] | None = None, capture_dir: Path | None = None) -> None:
        """``base_dir``: where relative TOML paths are looked for first; ``capture_dir``: capture each
        link of every network, and keep the pcaps there if the test fails."""
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.capture_dir = capture_dir
        self.networks: list[LiveNetwork] = []
        self._sandbox: Sandbox | None = None
        self._captures: list[Capture] = []
        self._scratch: str | None = None

    @property
    def sandbox(self) -> Sandbox:
        """The test's sandbox (made on first use)."""
        if self._sandbox is None:
            self._sandbox = Sandbox().open()
        return self._sandbox

    def _load(self, source: str | os.PathLike[str] | Network) -> Network:
        runner = self.sandbox.runner
        if isinstance(source, Network):
            return attrs.evolve(source, runner=runner)
        path = Path(source)
        if not path.is_absolute() and self.base_dir is not None and (self.base_dir / path).exists():
            path = self.base_dir / path
        return Network.from_toml(path, runner=runner)

    def network(self, source: str | os.PathLike[str] | Network, *, executor: Executor | None = None) -> LiveNetwork:
        """Bring ``source`` (a TOML file, relative to ``base_dir`` first, or a Network) up in the sandbox."""
        net = self._load(source)
        live = LiveNetwork(net, self.sandbox)
        try:
            net.up(executor)
        except BaseException:
            net.down()  # up rolled back; down also ends what a crash of it may have left
            raise
        self.networks.append(live)
        if self.capture_dir is not None:
            self._capture(net)
        return live

    def _capture(self, net: Network) -> None:
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="netnskit-capture-")
        for netns, ifname in net.capture_links():
            name = f"{net.name}-{netns + '-' if netns else ''}{ifname}.pcap"
            link = ifname if netns is None else f"{netns}:{ifname}"
            self._captures.append(net.capture(link, os.path.join(self._scratch, name)))

    def failure_sections(self, test_id: str = "test") -> list[tuple[str, str]]:
        """For a failing test's report: each process's log, and where the captures of each link were kept."""
        sections: list[tuple[str, str]] = []
        for live in self.networks:
            logs = live.network.process_logs()
            for name, text in live.logs().items():
                sections.append((f"netnskit log {live.network.name}/{name} ({logs[name]})", text))
        if self._captures and self.capture_dir is not None:
            sections.append(("netnskit captures", self._keep_captures(test_id)))
        return sections

    def _keep_captures(self, test_id: str) -> str:
        assert self.capture_dir is not None
        folder = self.capture_dir / _safe(test_id)
        folder.mkdir(parents=True, exist_ok=True)
        lines = [f"a pcap of each link during the test, in {folder}:"]
        for capture in self._captures:
            packets = capture.stop()
            kept = folder / os.path.basename(capture.path)
            shutil.move(capture.path, kept)
            lines.append(f"  {kept.name}: {'?' if packets is None else packets} packets ({capture.interface})")
        self._captures.clear()
        return "\n".join(lines)

    def close(self) -> None:
        """Stop the captures (their files go unless kept), bring the networks down, close the sandbox."""
        for capture in self._captures:
            capture.stop()
        self._captures.clear()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        try:
            for live in reversed(self.networks):
                live.network.down()
        finally:
            self.networks.clear()
            if self._sandbox is not None:
                self._sandbox.close()
                self._sandbox = None

    def __enter__(self) -> Harness:
        """The harness."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close it."""
        self.close()


def _safe(test_id: str) -> str:
    """A test id as a folder name."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in test_id).strip("_") or "test"

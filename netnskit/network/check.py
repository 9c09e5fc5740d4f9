"""Reachability checks: pings between namespaces and to the gateway, TCP exchanges through NAT and port forwards.

Each exchange runs :mod:`netnskit.probe` as a server in one namespace and a client in another.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import subprocess
import sys
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any

import attrs

from netnskit.netns import exec_argv
from netnskit.runner import end_process, read_line

if TYPE_CHECKING:
    from netnskit.network.network import Network


@attrs.frozen
class Probe:
    """One reachability probe of :meth:`Network.check`: what was tried and what happened."""

    kind: str  # "ping", "nat", "forward"
    source: str
    target: str
    ok: bool
    detail: str = ""


@attrs.frozen
class CheckReport:
    """All probes of a check; ``ok`` when every probe succeeded."""

    probes: tuple[Probe, ...]

    @property
    def ok(self) -> bool:
        """True when every probe succeeded."""
        return all(p.ok for p in self.probes)

    @property
    def failures(self) -> tuple[Probe, ...]:
        """The probes that failed."""
        return tuple(p for p in self.probes if not p.ok)

    def to_json(self) -> dict[str, Any]:
        """A plain dict for scripts."""
        return {"ok": self.ok, "probes": [attrs.asdict(p) for p in self.probes]}

    def lines(self) -> list[str]:
        """One line per probe, for people."""
        return [
            f"{'ok  ' if p.ok else 'FAIL'} {p.kind:7} {p.source} -> {p.target} {p.detail}".rstrip() for p in self.probes
        ]


def _ping(net: Network, source: str | None, target: IPv4Address, timeout: float) -> Probe:
    argv = exec_argv(source, ["ping", "-n", "-c", "1", "-W", str(max(1, int(timeout))), str(target)])
    result = net.runner.run(argv, timeout=timeout + 5)
    detail = "" if result.ok else (result.stdout.strip().splitlines() or [result.stderr.strip()])[-1]
    return Probe("ping", source or "host", str(target), result.ok, detail)


def _exchange(
    net: Network,
    kind: str,
    source: str | None,
    server_ns: str,
    target: IPv4Address,
    port: int,
    timeout: float,
    server_port: int | None = None,
) -> Probe:
    """A TCP exchange through netnskit.probe: a server in ``server_ns`` on ``server_port`` (``port``
    unless forwarded), a client from ``source`` to ``target``:``port``."""
    start = getattr(net.runner, "start", None)
    label = f"{target}:{port}"
    if start is None:
        return Probe(kind, source or "host", label, False, "the runner cannot start a probe server")
    serve = [sys.executable, "-m", "netnskit.probe", "serve", "--proto", "tcp", "--port", str(server_port or port)]
    serve += ["--count", "1", "--timeout", str(max(10.0, timeout + 3) + timeout)]
    server: subprocess.Popen[str] = start(exec_argv(server_ns, serve))
    try:
        if _readline(server, max(10.0, timeout + 3)) != "ready":
            stderr = getattr(server, "stderr", None)
            err = stderr.read() if server.poll() is not None and stderr is not None else ""
            why = f"probe server in {server_ns} did not start {err}".strip()
            return Probe(kind, source or "host", label, False, why)
        connect = [sys.executable, "-m", "netnskit.probe", "connect", "--proto", "tcp", str(target), str(port)]
        connect += ["--timeout", str(timeout)]
        result = net.runner.run(exec_argv(source, connect), timeout=timeout + 10)
        if not result.ok:
            return Probe(kind, source or "host", label, False, result.stdout.strip() or result.stderr.strip())
        seen = _readline(server, timeout)
        peer = json.loads(seen)["peer"][0] if seen.startswith("{") else "?"
        return Probe(kind, source or "host", label, True, f"{server_ns} saw peer {peer}")
    finally:
        end_process(server)


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    # a runner's stand-in processes may have no output pipe (a fake one)
    return read_line(getattr(proc, "stdout", None), timeout)


_PROBE_PORT = 47001


def _check(net: Network, timeout: float) -> CheckReport:
    addrs = net.addresses()
    # independent probes run a few at a time: each NAT probe has its own server port
    jobs: list[Callable[[], Probe]] = []
    for ns in net.namespaces:
        jobs.append(functools.partial(_ping, net, ns.name, net.gateway, timeout))
        for other in net.namespaces:
            if other.name != ns.name:
                jobs.append(functools.partial(_ping, net, ns.name, addrs[other.name].ip, timeout))
    # NAT: from each namespace on the bridge to the first address of each extra namespace
    if net.masquerade:
        for extra in net.extra_namespaces:
            target = next(
                (a.ip for link in net.links for p, _, a in link.ends() if p == extra.name and a is not None), None
            )
            if target is None:
                continue
            for ns in net.namespaces:
                port = _PROBE_PORT + len(jobs)
                jobs.append(functools.partial(_nat_probe, net, ns.name, extra.name, target, port, timeout))
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        probes = list(pool.map(_twice, jobs))
    # port forwards, one at a time (they share the destination port): from the host to the
    # gateway, and from each namespace linked to the host to the host's address on that link
    for fwd in net.port_forwards:
        if fwd.protocol != "tcp":
            continue
        sources: list[tuple[str | None, IPv4Address]] = [(None, net.gateway)]
        for link in net.links:
            if link.netns is None and link.address is not None and link.peer_netns is not None:
                sources.append((link.peer_netns, link.address.ip))
        dest_port = (fwd.port or fwd.host_port)[0]
        served = _served_by(net, fwd.netns, dest_port)
        for source, address in sources:
            if served is not None:
                # the network's own process listens there: connect to it instead of a probe server
                job = functools.partial(_connect, net, source, address, fwd.host_port[0], timeout, served)
            else:
                job = functools.partial(
                    _exchange, net, "forward", source, fwd.netns, address, fwd.host_port[0], timeout, dest_port
                )
            probes.append(_twice(job))
    return CheckReport(tuple(probes))


def _served_by(net: Network, netns: str, port: int) -> str | None:
    """The name of the network's process in ``netns`` that is ready once it listens on TCP ``port``."""
    for proc in net.processes:
        if proc.netns == netns and proc.ready is not None and (proc.ready.kind, proc.ready.port) == ("tcp", port):
            return proc.name
    return None


def _connect(net: Network, source: str | None, target: IPv4Address, port: int, timeout: float, served: str) -> Probe:
    """A TCP handshake from ``source`` to ``target``:``port``, answered by the network's process ``served``."""
    connect = [sys.executable, "-m", "netnskit.probe", "connect", "--connect-only", str(target), str(port)]
    result = net.runner.run(exec_argv(source, [*connect, "--timeout", str(timeout)]), timeout=timeout + 10)
    label = f"{target}:{port}"
    if not result.ok:
        return Probe("forward", source or "host", label, False, result.stdout.strip() or result.stderr.strip())
    return Probe("forward", source or "host", label, True, f"connected to process {served}")


def _twice(job: Callable[[], Probe]) -> Probe:
    """Run a probe; a failed one is tried once more (a loaded host can drop a first ARP or be slow)."""
    probe = job()
    return probe if probe.ok else job()


def _nat_probe(net: Network, source: str, server_ns: str, target: IPv4Address, port: int, timeout: float) -> Probe:
    probe = _exchange(net, "nat", source, server_ns, target, port, timeout)
    if probe.ok and probe.detail.endswith(f" {net.addresses()[source].ip}"):
        return attrs.evolve(probe, ok=False, detail=probe.detail + " (not masqueraded)")
    return probe

"""Reachability across a cluster's hosts: pings between namespaces wherever they live and to the
gateway, TCP through the masquerade and the port forwards of the gateway host.

A probe between two hosts runs its server through one host's runner and its client through the
other's. Probes are named ``NAMESPACE@HOST``; a failed probe is tried again (a loaded host, a
first ARP request flooded over the overlay) before it counts.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

from netnskit.netns import Namespace
from netnskit.network import CheckReport, Probe
from netnskit.runner import Runner, end_process, read_line

if TYPE_CHECKING:
    from netnskit.cluster.cluster import Cluster

__all__ = ["check"]

_PROBE_PORT = 47101


def _inside(runner: Runner, netns: str | None, argv: list[str]) -> list[str]:
    # ip netns exec (the namespace's /etc/netns files apply), built with the host's runner: never the default one
    return argv if netns is None else Namespace(netns, runner=runner).exec_argv(argv)


def _ping(runner: Runner, label: str, source: str | None, target: IPv4Address, what: str, timeout: float) -> Probe:
    argv = _inside(runner, source, ["ping", "-n", "-c", "1", "-W", str(max(1, int(timeout))), str(target)])
    result = runner.run(argv, timeout=timeout + 5)
    detail = what if result.ok else (result.stdout.strip().splitlines() or [result.stderr.strip()])[-1]
    return Probe("ping", label, str(target), result.ok, detail)


def _exchange(
    kind: str,
    client: tuple[Runner, str | None, str],
    server: tuple[Runner, str, str],
    target: IPv4Address,
    port: int,
    server_port: int,
    timeout: float,
    python: str,
) -> Probe:
    """A TCP exchange: a ``netnskit.probe`` server in namespace ``server[1]`` on its host, a client from
    ``client[1]`` (None: the host's own namespace) on its host, to ``target:port``."""
    client_runner, source, label = client
    server_runner, server_ns, server_label = server
    where = f"{target}:{port}"
    serve = [python, "-m", "netnskit.probe", "serve", "--proto", "tcp", "--port", str(server_port)]
    serve += ["--count", "1", "--timeout", str(max(10.0, timeout + 3) + timeout)]
    proc = server_runner.start(_inside(server_runner, server_ns, serve))
    try:
        if read_line(getattr(proc, "stdout", None), max(10.0, timeout + 3)) != "ready":
            return Probe(kind, label, where, False, f"probe server in {server_label} did not start")
        connect = [python, "-m", "netnskit.probe", "connect", "--proto", "tcp", str(target), str(port)]
        argv = _inside(client_runner, source, [*connect, "--timeout", str(timeout)])
        result = client_runner.run(argv, timeout=timeout + 10)
        if not result.ok:
            return Probe(kind, label, where, False, result.stdout.strip() or result.stderr.strip())
        seen = read_line(getattr(proc, "stdout", None), timeout)
        peer = json.loads(seen)["peer"][0] if seen.startswith("{") else "?"
        return Probe(kind, label, where, True, f"{server_label} saw peer {peer}")
    finally:
        end_process(proc)


def _retried(job: Callable[[], Probe], attempts: int) -> Probe:
    probe = job()
    for _ in range(attempts - 1):
        if probe.ok:
            break
        probe = job()
    return probe


def check(cluster: Cluster, timeout: float, attempts: int, python: str) -> CheckReport:
    """Every probe of the cluster (see the module doc)."""
    net = cluster.network
    parts = cluster.parts
    runner = {name: part.runner for name, part in parts.items()}
    addrs = net.addresses()
    gw_host = cluster.gateway_host
    at = {name: f"{name}@{cluster.host_of(name)}" for name in net.namespace_names()}
    jobs: list[Callable[[], Probe]] = []
    for ns in net.namespaces:
        run = runner[cluster.host_of(ns.name)]
        jobs.append(functools.partial(_ping, run, at[ns.name], ns.name, net.gateway, f"gateway@{gw_host}", timeout))
        for other in net.namespaces:
            if other.name != ns.name:
                target = addrs[other.name].ip
                jobs.append(functools.partial(_ping, run, at[ns.name], ns.name, target, at[other.name], timeout))
    # NAT: from each bridged namespace, wherever it is, to each extra namespace of the gateway host
    if net.masquerade:
        for extra in net.extra_namespaces:
            if cluster.host_of(extra.name) != gw_host:
                continue
            found = next((a.ip for link in net.links for p, _, a in link.ends() if p == extra.name and a), None)
            if found is None:
                continue
            for ns in net.namespaces:
                port = _PROBE_PORT + len(jobs)
                client = (runner[cluster.host_of(ns.name)], ns.name, at[ns.name])
                server = (runner[gw_host], extra.name, at[extra.name])
                jobs.append(functools.partial(_nat, addrs[ns.name].ip, client, server, found, port, timeout, python))
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        probes = list(pool.map(lambda job: _retried(job, attempts), jobs))
    # port forwards, one at a time (they share the destination port): from the gateway host to the
    # gateway, and from each namespace linked to the gateway host to the host's address on that link
    for fwd in net.port_forwards:
        if fwd.protocol != "tcp":
            continue
        sources: list[tuple[Runner, str | None, str, IPv4Address]] = [(runner[gw_host], None, gw_host, net.gateway)]
        for link in net.links:
            linked = link.netns is None and link.address is not None and link.peer_netns is not None
            if linked and cluster.host_of(str(link.peer_netns)) == gw_host and link.address is not None:
                sources.append((runner[gw_host], link.peer_netns, at[str(link.peer_netns)], link.address.ip))
        dest_port = (fwd.port or fwd.host_port)[0]
        server = (runner[cluster.host_of(fwd.netns)], fwd.netns, at[fwd.netns])
        for run, source, label, address in sources:
            job = functools.partial(
                _exchange,
                "forward",
                (run, source, label),
                server,
                address,
                fwd.host_port[0],
                dest_port,
                timeout,
                python,
            )
            probes.append(_retried(job, attempts))
    return CheckReport(tuple(probes))


def _nat(
    inside: IPv4Address,
    client: tuple[Runner, str | None, str],
    server: tuple[Runner, str, str],
    target: IPv4Address,
    port: int,
    timeout: float,
    python: str,
) -> Probe:
    probe = _exchange("nat", client, server, target, port, port, timeout, python)
    if probe.ok and probe.detail.endswith(f" {inside}"):
        return Probe("nat", probe.source, probe.target, False, probe.detail + " (not masqueraded)")
    return probe

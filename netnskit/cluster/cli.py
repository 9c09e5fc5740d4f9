"""The command line's verbs for a cluster file (a network file with ``[[host]]`` tables).

``netnskit plan|up|down|status|check FILE`` read such a file with :class:`Cluster`: ``plan``
prints every host's section, ``up``/``down`` run the hosts at once over ssh, ``status`` and
``check`` report per host. ``--sandbox`` makes the file's hosts as sandbox hosts running sshd
(:class:`~netnskit.cluster.lab.SandboxHosts`, at the file's underlay addresses) and drives them
from a further sandbox; as for a one-host file, ``status`` and ``check`` bring the network up
there first.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import tomllib
from collections.abc import Callable, Iterator

from netnskit.cluster.cluster import Cluster, ClusterStatus
from netnskit.errors import NetnskitError
from netnskit.executors import Executor

__all__ = ["VERBS", "is_cluster_file"]


def is_cluster_file(path: str) -> bool:
    """Does the file have ``[[host]]`` tables? (False if it cannot be read: the usual path says why.)"""
    try:
        with open(path, "rb") as handle:
            return "host" in tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError):
        return False


def _executor(args: argparse.Namespace) -> Executor:
    from netnskit.executors import BatchExecutor, SerialExecutor

    return SerialExecutor() if args.serial else BatchExecutor()


@contextlib.contextmanager
def _cluster(args: argparse.Namespace) -> Iterator[Cluster]:
    """The file's cluster, its connections open: reached from this machine, or made as sandbox hosts."""
    if args.sandbox and args.runner is not None:
        raise NetnskitError("--sandbox makes its own runner: it cannot be combined with a runner given to main()")
    if not args.sandbox:
        with Cluster.from_toml(args.file, local_runner=args.runner) as cluster:
            yield cluster
        return
    from netnskit.cluster.lab import SandboxHosts

    described = Cluster.from_toml(args.file, runners={})  # the hosts' names and addresses, to make them
    hosts = list(described.parts.values())
    if any(p.host.ssh is None or p.host.address is None for p in hosts):
        raise NetnskitError("--sandbox makes ssh hosts: every [[host]] needs ssh and an IPv4 underlay address")
    addresses = [str(p.host.address) for p in hosts]
    underlay = str(ipaddress.ip_interface(f"{addresses[0]}/24").network)  # the lab's underlay: the first's /24
    names = [p.host.name for p in hosts]
    with (
        SandboxHosts(len(hosts), names=names, addresses=addresses, underlay=underlay) as lab,
        Cluster.from_toml(args.file, local_runner=lab.driver.runner, ssh_options=lab.ssh_options) as cluster,
    ):
        yield cluster


def cmd_plan(args: argparse.Namespace) -> int:
    """``netnskit plan FILE``: every host's commands, a ``# host NAME`` section each (runs nothing)."""
    print(Cluster.from_toml(args.file, runners={}).render_script(), end="\n")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """``netnskit up FILE``: every host at once; a failure on one host rolls back every host.

    With ``--sandbox``: the file's hosts made as sandbox hosts, the network brought up, checked and
    taken down there, each printed; exit 1 if a probe failed.
    """
    ok = True
    with _cluster(args) as cluster:
        todo = sum(len(steps) for steps in cluster.missing_steps().values())
        cluster.up(_executor(args))
        hosts = len(cluster.parts)
        done = f"is up on {hosts} hosts ({todo} steps applied)" if todo else "was already up"
        print(f"network {cluster.name} {done}", flush=True)
        if args.sandbox:
            report = cluster.check()
            print("\n".join(report.lines()))
            print(f"{len(report.probes) - len(report.failures)}/{len(report.probes)} probes passed", flush=True)
            cluster.down(_executor(args))
            print(f"network {cluster.name} is down on {hosts} hosts")
            ok = report.ok
    return 0 if ok else 1


def cmd_down(args: argparse.Namespace) -> int:
    """``netnskit down FILE``: every host from the marks alone (after a crash too); safe twice."""
    with _cluster(args) as cluster:
        teardown = cluster.down(_executor(args))
    for item in teardown.removed:
        print(f"removed: {item}")
    for item in teardown.already_gone:
        print(f"already gone: {item}")
    for item in teardown.left:
        print(f"left alone: {item}")
    print(f"network {cluster.name} is down on {len(cluster.parts)} hosts")
    return 0


def _lines(status: ClusterStatus) -> list[str]:
    out = [f"network {status.name}: {'up' if status.up else 'not up'} on {len(status.hosts)} hosts"]
    for host in status.hosts:
        out.append(f"  host {host.host}: {'up' if host.up else 'not up'}")
        peers = ", ".join(host.peers) or "-"
        vxlan = "-" if host.vxlan is None else f"{host.vxlan.name} (MTU {host.vxlan.mtu}), peers {peers}"
        out.append(f"    vxlan: {vxlan}")
        out.append(f"    links: {', '.join(link.name for link in host.network.host_links) or '-'}")
        for ns in host.network.namespaces:
            state = "ours" if ns.ours else ("present, NOT ours" if ns.present else "absent")
            addrs = ", ".join(f"{a.dev} {a.address}" for a in ns.addresses if a.scope == "global")
            out.append(f"    namespace {ns.name}: {state}" + (f"; {addrs}" if addrs else ""))
        out += [f"    rule: {rule}" for rule in host.network.rules]
        out += [f"    missing: {step}" for step in host.missing]
    return out


def cmd_status(args: argparse.Namespace) -> int:
    """``netnskit status FILE [--json]``: per host; exit 3 when a host is not up."""
    with _cluster(args) as cluster:
        if args.sandbox:
            cluster.up(_executor(args))
        status = cluster.status()
    print(json.dumps(status.to_json(), indent=2, default=str) if args.json else "\n".join(_lines(status)))
    return 0 if status.up else 3


def cmd_check(args: argparse.Namespace) -> int:
    """``netnskit check FILE [--json]``: probes across hosts; exit 1 if one fails."""
    with _cluster(args) as cluster:
        if args.sandbox:
            cluster.up(_executor(args))
        report = cluster.check()
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print("\n".join(report.lines()))
        print(f"{len(report.probes) - len(report.failures)}/{len(report.probes)} probes passed")
    return 0 if report.ok else 1


VERBS: dict[str, Callable[[argparse.Namespace], int]] = {
    "plan": cmd_plan,
    "up": cmd_up,
    "down": cmd_down,
    "status": cmd_status,
    "check": cmd_check,
}

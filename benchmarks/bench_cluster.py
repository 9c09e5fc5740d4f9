"""Bring up and tear down 3 x N namespaces across three sandbox hosts over ssh, against 3N on one host.

Run as root::

    .venv/bin/python benchmarks/bench_cluster.py [--per-host 200] [--repeat 3] [--ways one,ssh1,cluster]

The topology is bench_netns.py's (``bench``): bridge ``nbr0`` (10.88.0.1/16), 3N namespaces, each
with its veth, address, loopback and default route, masquerade of the subnet and a port forward
per namespace (host port 20000+I to its port 80). The ways:

* ``one``: the 3N namespaces on one host: ``Network.up/down(BatchExecutor())`` in a process
  inside a fresh sandbox, with a plain LiveRunner (bench_netns.py's ``netnskit`` way);
* ``cluster``: the same network as a :class:`netnskit.cluster.Cluster` over three
  :class:`~netnskit.cluster.lab.SandboxHosts` (each its own sandbox, running sshd), N namespaces
  on each (namespaces 0..N-1 on host a, the gateway host with the masquerade and every forward),
  joined by VXLAN; ``Cluster.up/down(BatchExecutor())`` in a process inside the driver sandbox,
  every command over ssh (one shared connection per host, opened before the clock starts:
  "connect" is that time);
* ``ssh1``: the 3N namespaces on one sandbox host, over ssh from the driver (a one-host cluster):
  what ssh costs without the split.

All the "hosts" are sandboxes on this one machine: they share its CPUs and its kernel (the rtnl
lock), so this measures what the split and ssh cost, not what more machines would bring. No ping
runs (the kernel's neighbour table is shared by every namespace on the machine). Each run has its
own fresh sandboxes and its own process; after each the driver waits for idle CPUs. Figures are
medians over ``--repeat`` runs. "procs" are the processes the controller started (ssh clients for
the ways over ssh: each runs one command on its host).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import bench_netns as netns_bench

from netnskit.executors import BatchExecutor
from netnskit.runner import LiveRunner, Result, Runner
from netnskit.sandbox import Sandbox

WAYS = ("one", "ssh1", "cluster")


class Counting:
    """Passes every command on and counts them (a thread-safe list append)."""

    def __init__(self, inner: Runner) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def run(
        self, argv: Any, *, input: str | None = None, timeout: float | None = None, netns: str | None = None
    ) -> Result:
        self.calls.append(argv[0])
        return self.inner.run(argv, input=input, timeout=timeout, netns=netns)

    def start(self, argv: Any, *, netns: str | None = None, stdin: bool = False) -> Any:
        self.calls.append(argv[0])
        return self.inner.start(argv, netns=netns, stdin=stdin)


def census(runner: Runner) -> tuple[int, int, int]:
    """(namespaces, ports of nbr0, rules) on one host."""
    found = netns_bench.census(runner)
    return found["namespaces"], found["ports"], found["rules"]


def timed_one(total: int) -> dict[str, Any]:
    """``one``: the network on this host (this process runs inside a fresh sandbox)."""
    live = LiveRunner()
    counting = Counting(live)
    net = netns_bench.network(total, counting)
    t0 = time.perf_counter()
    net.up(BatchExecutor())
    t1 = time.perf_counter()
    procs_up = len(counting.calls)
    up_census = census(live)
    t2 = time.perf_counter()
    net.down(BatchExecutor())
    t3 = time.perf_counter()
    problem = _expect([up_census], [census(live)], total, [total], netns_bench.plan_rules(net.plan()))
    return {
        "up": t1 - t0,
        "down": t3 - t2,
        "connect": 0.0,
        "procs_up": procs_up,
        "procs_down": len(counting.calls) - procs_up,
        "problem": problem,
    }


def _expect(
    up: list[tuple[int, int, int]], down: list[tuple[int, int, int]], total: int, per_host: list[int], rules: int
) -> str:
    """'' if every host held its namespaces and ports when up (and the gateway host every rule) and nothing after."""
    wrong = []
    extra = 1 if len(per_host) > 1 else 0  # the VXLAN link is a port of the bridge too
    for i, ((spaces, ports, found_rules), n) in enumerate(zip(up, per_host, strict=True)):
        if spaces != n or ports != n + extra or (i == 0 and found_rules != rules):
            wrong.append(f"host {i} up: {spaces} namespaces, {ports} ports, {found_rules} rules")
    for i, (spaces, ports, found_rules) in enumerate(down):
        if spaces or ports or found_rules:
            wrong.append(f"host {i} down: {spaces} namespaces, {ports} ports, {found_rules} rules")
    return "; ".join(wrong) if sum(per_host) == total else "bad split"


def timed_cluster(total: int, hosts: list[dict[str, str]], ssh_options: list[str], control_dir: str) -> dict[str, Any]:
    """``cluster``/``ssh1``: the network across ``hosts``, in blocks (this process runs inside the lab's driver)."""
    import attrs

    from netnskit.cluster import Cluster, HostSpec
    from netnskit.cluster.cluster import NOWHERE

    network = attrs.evolve(netns_bench.network(total, LiveRunner()), runner=NOWHERE)
    specs = [HostSpec(h["name"], ssh=h["ssh"]) for h in hosts]
    per = total // len(hosts)
    placement = {netns_bench.names(i)[0]: hosts[min(i // per, len(hosts) - 1)]["name"] for i in range(total)}
    counting = Counting(LiveRunner())
    cluster = Cluster(
        network,
        specs,
        gateway_host=hosts[0]["name"],
        placement=placement,
        local_runner=counting,
        ssh_options=ssh_options,
        control_dir=control_dir,
    )
    t0 = time.perf_counter()
    cluster.open()
    t1 = time.perf_counter()
    before = len(counting.calls)
    cluster.up(BatchExecutor())
    t2 = time.perf_counter()
    procs_up = len(counting.calls) - before
    up_census = [census(p.runner) for p in cluster.parts.values()]  # (not counted, not timed)
    t3 = time.perf_counter()
    before = len(counting.calls)
    cluster.down(BatchExecutor())
    t4 = time.perf_counter()
    procs_down = len(counting.calls) - before
    down_census = [census(p.runner) for p in cluster.parts.values()]
    cluster.close()
    split = [sum(1 for h in placement.values() if h == spec.name) for spec in specs]
    problem = _expect(up_census, down_census, total, split, netns_bench.plan_rules(network.plan()))
    return {
        "up": t2 - t1,
        "down": t4 - t3,
        "connect": t1 - t0,
        "procs_up": procs_up,
        "procs_down": procs_down,
        "problem": problem,
    }


def worker(way: str, per_host: int, lab: str) -> dict[str, Any]:
    """One run, in this process (started inside a fresh sandbox, or inside the lab's driver)."""
    if way == "one":
        result = timed_one(3 * per_host)
    else:
        spec = json.loads(lab)
        result = timed_cluster(3 * per_host, spec["hosts"], spec["ssh_options"], spec["control_dir"])
    result["rss_self_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return result


def one_run(way: str, per_host: int, idle: float, limit: float) -> dict[str, Any]:
    """One run in its own fresh sandbox(es); then wait for the CPUs to settle."""
    from netnskit.cluster.lab import SandboxHosts

    load = os.getloadavg()
    argv = [sys.executable, os.path.abspath(__file__), "--worker", way, str(per_host)]
    started = time.perf_counter()
    if way == "one":
        with Sandbox() as box:
            done = subprocess.run(box.enter_argv([*argv, "{}"]), capture_output=True, text=True, check=False)
    else:
        with SandboxHosts(3 if way == "cluster" else 1) as lab:
            control = os.path.join(lab.folder, "ctl")
            spec = {
                "hosts": [{"name": h.name, "ssh": h.ssh} for h in lab.hosts],
                "ssh_options": lab.ssh_options,
                "control_dir": control,
            }
            done = subprocess.run(
                lab.driver.enter_argv([*argv, json.dumps(spec)]), capture_output=True, text=True, check=False
            )
    wall = time.perf_counter() - started
    waited, share = netns_bench.settle(idle, limit)
    result: dict[str, Any] = (
        {"failed": (done.stderr or done.stdout).strip()[-800:]}
        if done.returncode != 0
        else json.loads(done.stdout.strip().splitlines()[-1])
    )
    result.update(load_start=list(load), settle_s=waited, wall_s=wall)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run every way ``--repeat`` times and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--per-host", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ways", default=",".join(WAYS))
    parser.add_argument("--idle", type=float, default=0.85, help="idle CPU share to wait for between runs")
    parser.add_argument("--settle-limit", type=float, default=60.0)
    parser.add_argument("--worker", nargs=3, metavar=("WAY", "N", "LAB"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        way, n, lab = args.worker
        print(json.dumps(worker(way, int(n), lab)))
        return 0
    ways = [w for w in args.ways.split(",") if w]
    n = args.per_host
    print(
        f"3 x {n} namespaces across three sandbox hosts against {3 * n} on one; {args.repeat} runs each; "
        f"{os.cpu_count()} CPUs; kernel {os.uname().release}"
    )
    runs: dict[str, list[dict[str, Any]]] = {w: [] for w in ways}
    for i in range(1, args.repeat + 1):
        for way in ways:
            run = one_run(way, n, args.idle, args.settle_limit)
            runs[way].append(run)
            figures = (
                f"up {run['up']:.3f} s, down {run['down']:.3f} s, connect {run['connect']:.3f} s"
                f"{', PROBLEM ' + run['problem'] if run.get('problem') else ''}"
                if "up" in run
                else f"FAILED {run['failed']}"
            )
            print(
                f"  {way:<8} run {i}/{args.repeat}: {figures}; load {run['load_start'][0]:.2f} at start; "
                f"waited {run['settle_s']:.1f} s after",
                flush=True,
            )
    print()
    header = (
        f"{'way':<8} {'hosts':>5} {'ns':>5} {'up s':>7} {'down s':>7} {'up ms/ns':>9} {'down ms/ns':>10} "
        f"{'connect s':>9} {'procs up':>8} {'procs down':>10} {'up x':>6} {'down x':>6}"
    )
    print(header)
    print("-" * len(header))
    base: dict[str, float] = {}
    for way in ways:
        good = [r for r in runs[way] if "up" in r and not r.get("problem")]
        if not good:
            print(f"{way:<8} no good run")
            continue
        med = {k: statistics.median(r[k] for r in good) for k in ("up", "down", "connect", "procs_up", "procs_down")}
        if way == "one":
            base = med
        hosts, total = (3, 3 * n) if way == "cluster" else (1, 3 * n)
        ratio_up = f"{med['up'] / base['up']:.2f}" if base else "-"
        ratio_down = f"{med['down'] / base['down']:.2f}" if base else "-"
        print(
            f"{way:<8} {hosts:>5} {total:>5} {med['up']:>7.3f} {med['down']:>7.3f} {1000 * med['up'] / total:>9.2f} "
            f"{1000 * med['down'] / total:>10.2f} {med['connect']:>9.3f} {med['procs_up']:>8.0f} "
            f"{med['procs_down']:>10.0f} {ratio_up:>6} {ratio_down:>6}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

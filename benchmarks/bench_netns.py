"""Bring up and tear down N namespaces, five ways, each in its own throwaway sandbox; print them side by side.

Run as root::

    .venv/bin/python benchmarks/bench_netns.py [--sizes 10,100,200,1000] [--repeat 3]

The topology, per namespace ``nbI``: a veth ``vIb``/``vI`` with ``vI`` in the namespace and ``vIb``
on bridge ``nbr0`` (10.88.0.1/16), an address, loopback up, a default route via the bridge, one
masquerade rule and one port forward (host port 20000+I to the namespace's port 80).

The ways:

* ``netnskit``: the plan run by :class:`netnskit.batch.BatchExecutor` (``apply`` / ``remove``);
* ``serial``: the same plan, one process per command (:class:`netnskit.plan.SerialExecutor`);
* ``bash``: the script :func:`netnskit.plan.render_script` prints, run by bash (teardown: the
  plan's undo commands in reverse, one per line);
* ``pyroute2``: pyroute2's usual API (IPRoute, ``netns=``), rules with one ``iptables`` each
  (pyroute2 has no iptables API); skipped with a note if pyroute2 is not installed
  (``pip install 'netnskit[bench]'``);
* ``reference``: the cheaper operations batched by hand, one namespace batch after another.

Each run is its own process (so peak memory is its own) making its own sandbox; the figures are
medians over ``--repeat`` runs. Process counts: the processes each way starts (runner calls; for
bash, bash and one per command; for pyroute2, its forks plus one per iptables command).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netnskit.batch import BatchExecutor
from netnskit.firewall import Backend, NatRule, PortForward, Rule
from netnskit.link import Bridge, Route, VethPair
from netnskit.netns import Namespace
from netnskit.plan import Command, SerialExecutor, Step, render_script
from netnskit.runner import Result, Runner
from netnskit.sandbox import Sandbox

WAYS = ("netnskit", "serial", "bash", "pyroute2", "reference")
BRIDGE = "nbr0"
GROUP = 4242
SUBNET = ipaddress.ip_network("10.88.0.0/16")
GATEWAY = ipaddress.ip_address("10.88.0.1")
OWNER = "bench"


def address(i: int) -> ipaddress.IPv4Address:
    """The address of namespace ``i`` (10.88.0.2 upwards)."""
    return GATEWAY + 1 + i


def names(i: int) -> tuple[str, str, str]:
    """(namespace, host end, namespace end) of namespace ``i``."""
    return f"nb{i}", f"v{i}b", f"v{i}"


def network_plan(n: int) -> list[Step]:
    """The plan for ``n`` namespaces: Network.plan() when netnskit.network has it, else built here."""
    try:
        from netnskit import network  # type: ignore[attr-defined]  # not landed yet
    except ImportError:
        network = None
    if network is not None and os.environ.get("BENCH_OWN_PLAN") != "1":
        plan = _network_module_plan(network, n)
        if plan is not None:
            return plan
    return own_plan(n)


def _network_module_plan(network: Any, n: int) -> list[Step] | None:
    return None  # switched on once netnskit.network.Network.plan() exists (see README)


def own_plan(n: int) -> list[Step]:
    """The plan built from the library's objects, with the cheap operations Network uses."""
    bridge = Bridge(BRIDGE, group=GROUP)
    steps = [
        Step(
            f"bridge {BRIDGE}",
            [bridge.create_argv(up=True), bridge.link.add_address_argv(f"{GATEWAY}/{SUBNET.prefixlen}")],
            [bridge.link.delete_argv()],
        )
    ]
    for i in range(n):
        space, host_end, inner_end = names(i)
        ns = Namespace(space)
        veth = VethPair(host_end, inner_end, peer_netns=space, master=BRIDGE, group=GROUP)
        inner = ns.link(inner_end)
        addr = f"{address(i)}/{SUBNET.prefixlen}"
        route = Route("default", via=GATEWAY, netns=space)
        nat, forward = firewall_argvs(i)
        steps += [
            Step(f"namespace {space}", [ns.add_argv(), ns.link("lo").up_argv()], [ns.delete_argv()]),
            Step(f"veth {host_end}/{inner_end}", [veth.create_argv(up=True), inner.up_argv()], [veth.delete_argv()]),
            Step(f"address {addr} on {inner_end}", [inner.add_address_argv(addr)], [inner.del_address_argv(addr)]),
            Step(f"default route in {space}", [route.add_argv()], [route.delete_argv()]),
            Step(f"masquerade {address(i)}", nat[:1], nat[1:]),
            Step(f"port {20000 + i} -> {address(i)}:80", forward[:2], forward[2:]),
        ]
    return steps


_BUILT_IN = {"NETNSKIT-POSTROUTING": "POSTROUTING", "NETNSKIT-PREROUTING": "PREROUTING", "NETNSKIT-OUTPUT": "OUTPUT"}
_LOCAL = ("-m", "addrtype", "--dst-type", "LOCAL")


def firewall_argvs(i: int) -> tuple[list[list[str]], list[list[str]]]:
    """Namespace ``i``'s rules as plain iptables argv in the built-in chains: ([add, delete], [adds.., deletes..]).

    The rule specs come from netnskit.firewall (NatRule, PortForward); the chains are the built-in
    ones, so each rule is one ``iptables -A``/``-D`` (one masquerade, DNAT in PREROUTING and OUTPUT).
    """
    backend = Backend()
    nat_rules = NatRule(f"{address(i)}/32", bridge=BRIDGE, owner=OWNER).rules()
    fwd_rules = [r for r in PortForward(20000 + i, address(i), 80, owner=OWNER).rules() if r.table == "nat"]

    def plain(rule: Rule) -> Rule:
        chain = _BUILT_IN[rule.chain]
        spec = (*_LOCAL, *rule.spec) if chain != "POSTROUTING" else rule.spec
        return Rule(rule.family, rule.table, chain, spec)

    nat = [plain(r) for r in nat_rules]
    fwd = [plain(r) for r in fwd_rules]
    return ([r.argv(backend, "-A") for r in nat] + [r.argv(backend, "-D") for r in nat],
            [r.argv(backend, "-A") for r in fwd] + [r.argv(backend, "-D") for r in fwd])


def teardown_script(steps: Sequence[Step]) -> str:
    """The plan's undo commands in reverse, one per line, as bash (errors do not stop it)."""
    lines = ["#!/usr/bin/env bash", "# teardown", ""]
    for step in reversed(steps):
        lines.extend(c.shell() for c in step.undo)
    return "\n".join(lines) + "\n"


class CountingRunner:
    """Counts the processes started through it (thread-safe enough: list.append is atomic)."""

    def __init__(self, inner: Runner) -> None:
        self.inner = inner
        self.calls: list[int] = []

    def run(self, argv: Sequence[str], *, input: str | None = None, timeout: float | None = None) -> Result:
        self.calls.append(1)
        return self.inner.run(argv, input=input, timeout=timeout)


# --- what is there: checked after bring-up and teardown, outside the timings -----------------


def census(runner: Runner) -> dict[str, int]:
    """Namespaces, host links on the bridge, our firewall rules."""
    spaces = runner.run(["ip", "-j", "netns", "list"]).check().stdout.strip()
    ports = runner.run(["ip", "-j", "link", "show", "master", BRIDGE])
    rules = runner.run(["iptables-save", "-t", "nat"]).check().stdout
    return {
        "namespaces": len(json.loads(spaces)) if spaces else 0,
        "ports": len([d for d in json.loads(ports.stdout or "[]") if d.get("ifname")]) if ports.ok else 0,
        "links": len(json.loads(runner.run(["ip", "-j", "link", "show"]).check().stdout)),
        "rules": rules.count(f"netnskit:{OWNER}"),
    }


def expect(n: int, found: dict[str, int], up: bool) -> str:
    """An empty string if ``found`` is what bring-up (or teardown) should leave, else why not."""
    want = {"namespaces": n, "ports": n, "links": n + 2, "rules": 3 * n} if up else {
        "namespaces": 0, "ports": 0, "links": 1, "rules": 0}
    wrong = {k: (found[k], want[k]) for k in want if found[k] != want[k]}
    return "" if not wrong else f"{'up' if up else 'down'}: found/expected {wrong}"


# --- the ways -------------------------------------------------------------------------------


def run_executor(executor: Any, n: int, box: Sandbox) -> dict[str, Any]:
    plan = network_plan(n)
    runner = CountingRunner(box.runner)
    t0 = time.perf_counter()
    executor.apply(plan, runner)
    t1 = time.perf_counter()
    procs_up = len(runner.calls)
    problem = expect(n, census(box.runner), up=True)
    t2 = time.perf_counter()
    executor.remove(plan, runner)
    t3 = time.perf_counter()
    problem += expect(n, census(box.runner), up=False)
    return {"up": t1 - t0, "down": t3 - t2, "procs_up": procs_up, "procs_down": len(runner.calls) - procs_up,
            "problem": problem}


def run_bash(n: int, box: Sandbox) -> dict[str, Any]:
    plan = network_plan(n)
    up_script, down_script = render_script(plan), teardown_script(plan)
    t0 = time.perf_counter()
    box.runner.run(["bash", "-s"], input=up_script).check("running the plan script")
    t1 = time.perf_counter()
    problem = expect(n, census(box.runner), up=True)
    t2 = time.perf_counter()
    box.runner.run(["bash", "-s"], input=down_script)
    t3 = time.perf_counter()
    problem += expect(n, census(box.runner), up=False)
    up_cmds = sum(len(s.do) for s in plan)
    down_cmds = sum(len(s.undo) for s in plan)
    return {"up": t1 - t0, "down": t3 - t2, "procs_up": 1 + up_cmds, "procs_down": 1 + down_cmds, "problem": problem}


def reference_commands(n: int) -> tuple[list[Command], list[Command]]:
    """The cheaper operations batched by hand: (bring-up, teardown) processes, run in order."""
    host = [f"link add name {BRIDGE} group {GROUP} up type bridge", f"addr add {GATEWAY}/16 dev {BRIDGE}"]
    inner: list[Command] = []
    rules, undo_rules = ["*nat"], ["*nat"]
    for i in range(n):
        space, host_end, inner_end = names(i)
        host += [f"netns add {space}",
                 f"link add {host_end} group {GROUP} up master {BRIDGE} type veth peer name {inner_end} netns {space}"]
        body = f"link set lo up\nlink set {inner_end} up\naddr add {address(i)}/16 dev {inner_end}\n"
        body += f"route add default via {GATEWAY}\n"
        inner.append(Command(["ip", "-n", space, "-batch", "-"], input=body))
        nat, fwd = firewall_argvs(i)
        # iptables -w -t nat ACTION CHAIN SPEC... -> "ACTION CHAIN SPEC..."
        rules += [" ".join(argv[4:]) for argv in (nat[0], *fwd[:2])]
        undo_rules += [" ".join(argv[4:]) for argv in (nat[1], *fwd[2:])]
    up = [Command(["ip", "-batch", "-"], input="\n".join(host) + "\n"), *inner,
          Command(["iptables-restore", "-w", "--noflush"], input="\n".join([*rules, "COMMIT"]) + "\n")]
    down = [Command(["iptables-restore", "-w", "--noflush"], input="\n".join([*undo_rules, "COMMIT"]) + "\n"),
            Command(["ip", "link", "del", "group", str(GROUP)]),
            Command(["ip", "-batch", "-"], input="".join(f"netns del {names(i)[0]}\n" for i in range(n)))]
    return up, down


def run_reference(n: int, box: Sandbox) -> dict[str, Any]:
    up, down = reference_commands(n)
    t0 = time.perf_counter()
    for command in up:
        command.run(box.runner).check("reference bring-up")
    t1 = time.perf_counter()
    problem = expect(n, census(box.runner), up=True)
    t2 = time.perf_counter()
    for command in down:
        command.run(box.runner).check("reference teardown")
    t3 = time.perf_counter()
    problem += expect(n, census(box.runner), up=False)
    return {"up": t1 - t0, "down": t3 - t2, "procs_up": len(up), "procs_down": len(down), "problem": problem}


def run_pyroute2(n: int, box: Sandbox) -> dict[str, Any]:
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        return {"skipped": "pyroute2 is not installed (pip install 'netnskit[bench]')"}
    # pyroute2 works in the process's own namespaces: run it inside the sandbox
    argv = ["nsenter", f"--target={box.pid}", "--net", "--mount", "--",
            sys.executable, __file__, "--pyroute2-inner", str(n)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"skipped": f"pyroute2 run failed: {done.stderr.strip()[-400:]}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def pyroute2_inner(n: int) -> dict[str, Any]:
    """Inside the sandbox: pyroute2's usual API for the same topology, timed."""
    import multiprocessing

    from pyroute2 import IPRoute, netns

    forks = [0]
    real_fork, real_start = os.fork, multiprocessing.Process.start

    def fork() -> int:
        forks[0] += 1
        return real_fork()

    def start(self: multiprocessing.Process) -> None:
        forks[0] += 1
        real_start(self)

    os.fork = fork
    multiprocessing.Process.start = start  # type: ignore[method-assign]

    def iptables(argvs: list[list[str]], check: bool) -> None:
        for argv in argvs:
            forks[0] += 1
            subprocess.run(argv, check=check, capture_output=True)

    rules = [firewall_argvs(i) for i in range(n)]
    t0 = time.perf_counter()
    with IPRoute() as ipr:
        ipr.link("add", ifname=BRIDGE, kind="bridge", group=GROUP)
        br = ipr.link_lookup(ifname=BRIDGE)[0]
        ipr.link("set", index=br, state="up")
        ipr.addr("add", index=br, address=str(GATEWAY), prefixlen=16)
        for i in range(n):
            space, host_end, inner_end = names(i)
            netns.create(space)
            ipr.link("add", ifname=host_end, kind="veth", peer=inner_end, group=GROUP)
            host_idx = ipr.link_lookup(ifname=host_end)[0]
            peer_idx = ipr.link_lookup(ifname=inner_end)[0]
            ipr.link("set", index=peer_idx, net_ns_fd=space)
            ipr.link("set", index=host_idx, master=br, state="up")
            with IPRoute(netns=space) as ns:
                ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
                idx = ns.link_lookup(ifname=inner_end)[0]
                ns.link("set", index=idx, state="up")
                ns.addr("add", index=idx, address=str(address(i)), prefixlen=16)
                ns.route("add", dst="default", gateway=str(GATEWAY))
    for nat, forward in rules:
        iptables([nat[0], *forward[:2]], True)
    t1 = time.perf_counter()
    procs_up = forks[0]
    t2 = time.perf_counter()
    for nat, forward in reversed(rules):
        iptables([*forward[2:], nat[1]], False)
    with IPRoute() as ipr:
        for i in reversed(range(n)):
            space, host_end, _ = names(i)
            ipr.link("del", index=ipr.link_lookup(ifname=host_end)[0])
            netns.remove(space)
        ipr.link("del", index=ipr.link_lookup(ifname=BRIDGE)[0])
    t3 = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"up": t1 - t0, "down": t3 - t2, "procs_up": procs_up, "procs_down": forks[0] - procs_up,
            "rss_self_kb": usage, "rss_child_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}


def worker(way: str, n: int, workers: int | None) -> dict[str, Any]:
    """One run of one way, in a fresh sandbox."""
    with Sandbox() as box:
        if way == "netnskit":
            executor = BatchExecutor() if workers is None else BatchExecutor(workers=workers)
            result = run_executor(executor, n, box)
        elif way == "serial":
            result = run_executor(SerialExecutor(), n, box)
        elif way == "bash":
            result = run_bash(n, box)
        elif way == "reference":
            result = run_reference(n, box)
        elif way == "pyroute2":
            result = run_pyroute2(n, box)
            if "skipped" not in result:
                problem = expect(n, census(box.runner), up=False)
                result["problem"] = problem
        else:
            raise SystemExit(f"unknown way {way!r}")
    result.setdefault("rss_self_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    # the largest process this run waited for (ip, iptables-restore, bash, nsenter, ...)
    result.setdefault("rss_child_kb", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return result


# --- the driver -----------------------------------------------------------------------------


def one_run(way: str, n: int, workers: int | None) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--worker", way, str(n)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"failed": done.stderr.strip()[-600:]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in runs if "up" in r]
    if not good:
        bad = runs[0] if runs else {}
        return {"note": bad.get("skipped") or bad.get("failed") or "no run"}
    out: dict[str, Any] = {key: statistics.median([r[key] for r in good]) for key in
                           ("up", "down", "procs_up", "procs_down", "rss_self_kb", "rss_child_kb")}
    problems = sorted({r.get("problem", "") for r in good} - {""})
    out["note"] = "; ".join(problems) + (f" ({len(runs) - len(good)} runs failed)" if len(good) < len(runs) else "")
    return out


def table(n: int, rows: dict[str, dict[str, Any]], repeat: int) -> str:
    base = rows.get("netnskit", {})
    head = (f"{'way':<10} {'up s':>8} {'down s':>8} {'up ms/ns':>9} {'down ms/ns':>10} {'up x':>7} {'down x':>7}"
            f" {'procs up':>9} {'procs down':>10} {'py MB':>6} {'child MB':>8}  note")
    lines = [f"N={n} (median of {repeat}; 'x' = this way's time / netnskit's)", head, "-" * len(head)]
    for way, row in rows.items():
        if "up" not in row:
            lines.append(f"{way:<10} {'-':>8} {'-':>8}  {row.get('note', '')}")
            continue
        ratio_up = row["up"] / base["up"] if base.get("up") else float("nan")
        ratio_down = row["down"] / base["down"] if base.get("down") else float("nan")
        lines.append(
            f"{way:<10} {row['up']:8.3f} {row['down']:8.3f} {1000 * row['up'] / n:9.2f} {1000 * row['down'] / n:10.2f}"
            f" {ratio_up:7.2f} {ratio_down:7.2f} {row['procs_up']:9.0f} {row['procs_down']:10.0f}"
            f" {row['rss_self_kb'] / 1024:6.1f} {row['rss_child_kb'] / 1024:8.1f}  {row.get('note', '')}"
        )
    return "\n".join(lines)


def verdicts(results: dict[int, dict[str, dict[str, Any]]]) -> list[str]:
    """The issue's targets, each met or not, from this run's medians."""
    out = []

    def get(n: int, way: str, key: str) -> float | None:
        value = results.get(n, {}).get(way, {}).get(key)
        return float(value) if value is not None else None

    def line(ok: bool, text: str) -> None:
        out.append(f"[{'met' if ok else 'NOT met'}] {text}")

    nk_up, nk_down = get(200, "netnskit", "up"), get(200, "netnskit", "down")
    se_up, se_down = get(200, "serial", "up"), get(200, "serial", "down")
    rf_up, rf_down = get(200, "reference", "up"), get(200, "reference", "down")
    if nk_up and nk_down and se_up and se_down:
        line(se_up / nk_up >= 8, f"N=200 up {se_up / nk_up:.1f}x faster than one process per step (target >= 8x)")
        line(se_down / nk_down >= 40,
             f"N=200 down {se_down / nk_down:.1f}x faster than one process per step (target >= 40x)")
    if nk_up and nk_down and rf_up and rf_down:
        line(nk_up / rf_up <= 1.25, f"N=200 up {nk_up / rf_up:.2f}x the cheaper-operations batch (target <= 1.25)")
        line(nk_down / rf_down <= 1.25,
             f"N=200 down {nk_down / rf_down:.2f}x the cheaper-operations batch (target <= 1.25)")
    up1k, down1k = get(1000, "netnskit", "up"), get(1000, "netnskit", "down")
    if up1k is not None and down1k is not None:
        line(up1k < 5, f"N=1000 up {up1k:.2f} s (target < 5 s)")
        line(down1k < 1, f"N=1000 down {down1k:.2f} s (target < 1 s)")
        up100, down100 = get(100, "netnskit", "up"), get(100, "netnskit", "down")
        if up100 and down100:
            grow_up = (up1k / 1000) / (up100 / 100)
            grow_down = (down1k / 1000) / (down100 / 100)
            line(grow_up <= 1.3, f"up cost per namespace N=1000 / N=100 = {grow_up:.2f} (target <= 1.3)")
            line(grow_down <= 1.3, f"down cost per namespace N=1000 / N=100 = {grow_down:.2f} (target <= 1.3)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10,100,200,1000", help="comma-separated N (default 10,100,200,1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per way and N; medians are printed")
    parser.add_argument("--ways", default=",".join(WAYS), help=f"comma-separated subset of {','.join(WAYS)}")
    parser.add_argument("--workers", type=int, default=None, help="BatchExecutor workers (default: its own)")
    parser.add_argument("--json", type=Path, default=None, help="also write every run's figures to this file")
    parser.add_argument("--worker", nargs=2, metavar=("WAY", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--pyroute2-inner", type=int, metavar="N", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pyroute2_inner is not None:
        print(json.dumps(pyroute2_inner(args.pyroute2_inner)))
        return 0
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.workers)))
        return 0
    if os.geteuid() != 0:
        print("run as root: every run makes its own sandbox (fresh network and mount namespaces)", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",") if s]
    ways = [w for w in args.ways.split(",") if w]
    results: dict[int, dict[str, dict[str, Any]]] = {}
    raw: dict[str, Any] = {}
    print(f"netnskit benchmark: sizes {sizes}, {args.repeat} runs each, "
          f"{os.cpu_count()} CPUs, kernel {os.uname().release}", flush=True)
    for n in sizes:
        results[n] = {}
        for way in ways:
            runs = [one_run(way, n, args.workers) for _ in range(args.repeat)]
            raw[f"{way}/{n}"] = runs
            results[n][way] = median_of(runs)
        print("\n" + table(n, results[n], args.repeat), flush=True)
    print("\ntargets (issue 6):")
    for text in verdicts(results):
        print("  " + text)
    if args.json is not None:
        args.json.write_text(json.dumps({"sizes": sizes, "runs": raw}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

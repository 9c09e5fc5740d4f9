"""``Network.status()`` and ``Network.check()`` on N namespaces, each run in its own throwaway sandbox.

Run as root::

    .venv/bin/python benchmarks/bench_check.py [--sizes 10,100,1000] [--repeat 3]

The network (``bcheck``): bridge ``cbr0`` (10.88.0.1/16), N namespaces, masquerade, a LAN
stand-in ``lan`` linked to the host (192.168.77.2 and .3) and a port forward (host port 8080 to
the first namespace's port 80). It is brought up with ``BatchExecutor`` (not timed here: see
bench_netns.py), then ``status()`` and ``check()`` are timed, and it is torn down.

``check()``'s default plan: each namespace pings the gateway and its next 2 namespaces (ring),
two namespaces reach ``lan`` through the masquerade, the host and ``lan`` reach the forward. The
neighbour-table figures: the check's own (the most entries its namespaces and bridge held in
one round, and what it left), and the machine's, read every 20 ms during the check
(``/proc/1/net/stat/arp_cache``: every namespace of the machine, other users' included; this
machine is shared) with the count of "table full" events (overflows) before and after.

The run's process lives inside the sandbox (the driver starts it there with
:meth:`Sandbox.enter_argv`) and runs every command with a plain :class:`LiveRunner`, as on a host.
Before each run the driver reads how many entries the machine's table holds and refuses to start
one whose rounds could bring it near gc_thresh2.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from netnskit.executors import BatchExecutor
from netnskit.network import Network
from netnskit.network.neighbours import ROUND_CAP, NeighbourLimits
from netnskit.runner import LiveRunner
from netnskit.sandbox import Sandbox

INSIDE = "BENCH_CHECK_SANDBOX_NET"  # the driver tells the run which network namespace is the sandbox's


def network(n: int) -> Network:
    """The benchmark's network of ``n`` namespaces (10.88.0.2 upwards)."""
    return Network.from_dict(
        {
            "network": {
                "name": "bcheck",
                "bridge": "cbr0",
                "subnet": "10.88.0.0/16",
                "gateway": "10.88.0.1",
                "masquerade": True,
            },
            "namespace": [{"name": f"c{i}", "host_ifname": f"vc{i}"} for i in range(n)],
            "extra_namespace": [{"name": "lan"}],
            "link": [
                {
                    "name": "v-lan",
                    "address": "192.168.77.2/24",
                    "peer": "eth0",
                    "peer_netns": "lan",
                    "peer_address": "192.168.77.3/24",
                }
            ],
            "port_forward": [{"host_port": 8080, "netns": "c0", "port": 80}],
        },
        runner=LiveRunner(),
    )


def machine_entries() -> tuple[int, int] | None:
    """(entries, table fulls) of the machine's IPv4 neighbour table (init's view: every namespace)."""
    try:
        rows = [line.split() for line in Path("/proc/1/net/stat/arp_cache").read_text().splitlines()[1:]]
        # one row per CPU: the entries are the table's (the same in each), the events per CPU
        return int(rows[0][0], 16), sum(int(row[12], 16) for row in rows)
    except (OSError, IndexError, ValueError):
        return None


class Sampler(threading.Thread):
    """Reads the machine's neighbour entries every 20 ms until stopped; keeps the most."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            found = machine_entries()
            if found:
                self.peak = max(self.peak, found[0])
            self.halt.wait(0.02)


def worker(n: int) -> dict[str, Any]:
    """One run, in this process, inside the sandbox the driver made."""
    if os.environ.get(INSIDE) != os.readlink("/proc/self/ns/net"):
        raise SystemExit("refusing to run: a run starts only inside its sandbox, from the driver")
    net = network(n)
    t0 = time.monotonic()
    net.up(BatchExecutor())
    up_s = time.monotonic() - t0
    t0 = time.monotonic()
    status = net.status()
    status_s = time.monotonic() - t0
    t0 = time.monotonic()
    missing = net.missing_steps()
    missing_s = time.monotonic() - t0
    before = machine_entries()
    sampler = Sampler()
    sampler.start()
    marks: list[tuple[float, int, str]] = []
    t0 = time.monotonic()
    report = net.check(progress=lambda done, total, what: marks.append((time.monotonic() - t0, done, what)))
    check_s = time.monotonic() - t0
    pings = [m for m in marks if m[2].startswith("pinged")]
    start = marks[0][0] if marks else 0.0
    sampler.halt.set()
    sampler.join()
    after = machine_entries()
    net.down(BatchExecutor())
    use = report.neighbours
    return {
        "n": n,
        "up_s": up_s,
        "status_s": status_s,
        "status_up": status.up,
        "missing_s": missing_s,
        "missing": len(missing),
        "check_s": check_s,
        "check_before_pings_s": start,
        "pings_s": (pings[-1][0] - start) if pings else 0.0,
        "rounds_s": [round(b[0] - a[0], 3) for a, b in zip([marks[0], *pings], pings, strict=False)],
        "ok": report.ok,
        "failures": [line for line in report.lines() if line.startswith("FAIL")][:5],
        "probes": len(report.probes),
        "rounds": use.rounds if use else 0,
        "budget": use.budget if use else 0,
        "own_peak": use.peak if use else 0,
        "own_left": use.left if use else 0,
        "without_rounds": use.without_rounds if use else 0,
        "machine_before": before[0] if before else None,
        "machine_peak": sampler.peak,
        "machine_after": after[0] if after else None,
        "table_fulls": (after[1] - before[1]) if before and after else None,
        "warned": bool(report.warnings),
    }


def one_run(n: int) -> dict[str, Any]:
    """One run in a fresh sandbox."""
    load = os.getloadavg()
    with Sandbox() as box:
        env = {**os.environ, INSIDE: os.readlink(f"/proc/{box.pid}/ns/net")}
        argv = box.enter_argv([sys.executable, __file__, "--worker", str(n)])
        done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        return {"n": n, "failed": done.stderr.strip()[-800:], "load_start": load[0]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_start"] = load[0]
    return result


COLUMNS = (
    ("status s", "status_s", "{:.2f}"),
    ("missing s", "missing_s", "{:.2f}"),
    ("check s", "check_s", "{:.2f}"),
    ("probes", "probes", "{}"),
    ("rounds", "rounds", "{}"),
    ("own peak", "own_peak", "{}"),
    ("own left", "own_left", "{}"),
    ("kept", "without_rounds", "{}"),
    ("machine before/peak/after", None, ""),
    ("fulls", "table_fulls", "{}"),
    ("ok", "ok", "{}"),
)


def row(run: dict[str, Any]) -> str:
    """One line of the table."""
    if "failed" in run:
        return f"N={run['n']:<5} FAILED: {run['failed']}"
    cells = [f"N={run['n']:<5}"]
    for title, key, fmt in COLUMNS:
        if key is None:
            text = f"{run['machine_before']}/{run['machine_peak']}/{run['machine_after']}"
        else:
            text = fmt.format(run[key])
        cells.append(text.rjust(len(title)))
    return "  ".join(cells) + f"  (load {run['load_start']:.1f})"


def main(argv: list[str] | None = None) -> int:
    """The driver: one sandbox per run, a table of the runs and of the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10,100,1000", help="comma-separated N (default 10,100,1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per N; medians are printed")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(args.worker)))
        return 0
    if os.geteuid() != 0:
        print("bench_check: run as root (each run makes its own sandbox)", file=sys.stderr)
        return 2
    limits = NeighbourLimits(128, 512, 1024)  # this machine's (the driver does not run ip on the host)
    print("N      " + "  ".join(title for title, _, _ in COLUMNS))
    medians = []
    for n in (int(s) for s in args.sizes.split(",")):
        runs = []
        for _ in range(args.repeat):
            found = machine_entries()
            if found is None or found[0] + ROUND_CAP > limits.gc_thresh2:
                print(f"N={n}: not run: the machine's neighbour table holds {found and found[0]} entries")
                continue
            run = one_run(n)
            runs.append(run)
            print(row(run), flush=True)
        good = [r for r in runs if "failed" not in r]
        if good:
            median = {k: statistics.median(r[k] for r in good) for k in ("status_s", "missing_s", "check_s")}
            medians.append((n, len(good), median, good[-1]))
    print()
    for n, count, median, last in medians:
        print(
            f"N={n}: median of {count}: status {median['status_s']:.2f} s, missing_steps {median['missing_s']:.2f} s, "
            f"check {median['check_s']:.2f} s ({last['probes']} probes, {last['rounds']} rounds, own peak "
            f"{last['own_peak']} entries, {last['without_rounds']} if kept)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Dual stack's cost at N namespaces: IPv4 only, dual-stack without link-local addresses (netnskit's
choice) and dual-stack with them (``ipv6_link_local = true``), each in its own throwaway sandbox.

Run as root::

    .venv/bin/python benchmarks/bench_dual.py [--sizes 200] [--repeat 3]

Per namespace ``dI``: a veth on bridge ``dbr0`` (10.89.0.0/16, fd89::/64 when dual), its addresses
and default routes. Times ``Network.up(BatchExecutor())``, then until the kernel is settled (no
tentative IPv6 address left in the last namespace, read every 20 ms: with link-local addresses
each one waits for duplicate address detection), then ``Network.down(BatchExecutor())``. Medians
over ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from netnskit.executors import BatchExecutor
from netnskit.network import Network
from netnskit.sandbox import Sandbox

WAYS = ("ipv4", "dual", "dual+link-local")


def network(way: str, n: int, box: Sandbox) -> Network:
    """The benchmark's network for ``way`` at ``n`` namespaces."""
    dual = way != "ipv4"
    return Network(
        name="dual",
        bridge="dbr0",
        subnet="10.89.0.0/16",
        gateway="10.89.0.1",
        namespaces=[{"name": f"d{i}", "host_ifname": f"v{i}b"} for i in range(n)],
        hosts=False,
        subnet6="fd89::/64" if dual else None,
        gateway6="fd89::1" if dual else None,
        ipv6_link_local=way == "dual+link-local",
        runner=box.runner,
    )


def tentative(box: Sandbox, netns: str) -> bool:
    """Does ``netns`` still have a tentative IPv6 address (duplicate address detection not done)?"""
    out = box.run(["ip", "-n", netns, "-6", "-j", "addr", "show", "tentative"]).stdout
    return any(d.get("addr_info") for d in json.loads(out or "[]"))


def one(way: str, n: int) -> dict[str, float]:
    """One run: up, settled, down (seconds)."""
    with Sandbox(timeout=120) as box:
        net = network(way, n, box)
        start = time.monotonic()
        net.up(executor=BatchExecutor())
        up = time.monotonic() - start
        while tentative(box, f"d{n - 1}") or tentative(box, "d0"):
            time.sleep(0.02)
        settled = time.monotonic() - start
        start = time.monotonic()
        net.down(executor=BatchExecutor())
        return {"up": up, "settled": settled, "down": time.monotonic() - start}


def main() -> None:
    """Print the medians per way and N."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="200")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'N':>5} {'way':<16} {'up s':>7} {'settled s':>10} {'down s':>7}")
    for n in (int(x) for x in args.sizes.split(",")):
        for way in WAYS:
            runs = [one(way, n) for _ in range(args.repeat)]
            med = {k: statistics.median(r[k] for r in runs) for k in ("up", "settled", "down")}
            print(f"{n:>5} {way:<16} {med['up']:7.2f} {med['settled']:10.2f} {med['down']:7.2f}", flush=True)


if __name__ == "__main__":
    main()

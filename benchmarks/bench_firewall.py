"""The firewall alone, iptables against nftables: apply and remove a network's rules at N forwards.

Run as root::

    .venv/bin/python benchmarks/bench_firewall.py [--sizes 200,1000] [--repeat 3]

Each run has its own sandbox with a bridge ``nbr0`` (10.88.0.1/16): the rules of a masquerade of
10.88.0.0/16 and N port forwards (host port 20000+I to 10.88.x.y:80, hairpin, 127.0.0.1, guards,
accepts), 6N + 6 rules, as ``bench_netns.py``'s network has. **iptables**: planned against
``iptables-save`` and added in one ``iptables-restore``, removed by ``Firewall.purge`` (one
restore deleting every rule, then the sweep); **nftables**: ``Nftables.apply`` (one ``nft -f -``
writing the table) and ``Nftables.remove`` (one ``delete table``, then the same sweep). Sysctls
included. Prints the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

from netnskit.executors import SerialExecutor
from netnskit.firewall import Backend, Firewall, NatRule, PortForward, Rule, Sysctl
from netnskit.firewall.nftables import Nftables
from netnskit.firewall.rules import _unique
from netnskit.sandbox import Sandbox

KINDS = ("iptables", "nftables")


def rules_of(box: Sandbox, n: int) -> tuple[list[Rule], list[Sysctl]]:
    """The masquerade's and N forwards' rules and sysctls (pure)."""
    kw = {"owner": "bench", "runner": box.runner}
    objects: list[NatRule | PortForward] = [NatRule("10.88.0.0/16", "nbr0", uplinks=["eth9"], **kw)]  # type: ignore[arg-type]
    for i in range(n):
        dest = f"10.88.{(i + 2) // 256}.{(i + 2) % 256}"
        objects.append(PortForward(20000 + i, dest, 80, bridge="nbr0", subnet="10.88.0.0/16", **kw))  # type: ignore[arg-type]
    return _unique(r for o in objects for r in o.rules()), _unique(s for o in objects for s in o.sysctls())


def one(kind: str, n: int) -> tuple[float, float, int]:
    """(apply s, remove s, rules) of one run in a fresh sandbox."""
    with Sandbox() as box:
        for argv in (
            ["ip", "link", "add", "nbr0", "type", "bridge"],
            ["ip", "addr", "add", "10.88.0.1/16", "dev", "nbr0"],
            ["ip", "link", "set", "nbr0", "up"],
        ):
            box.run(argv).check()
        rules, sysctls = rules_of(box, n)
        fw = Firewall(Backend(), box.runner)
        nft = Nftables(box.runner)
        t0 = time.perf_counter()
        if kind == "nftables":
            nft.apply(fw, "bench", rules, sysctls)
        else:
            steps, changes = fw.plan_changes(4, rules, sysctls, "bench")
            fw.remember(changes)
            SerialExecutor().apply(steps, box.runner)
        t1 = time.perf_counter()
        if kind == "nftables":
            nft.remove(fw, "bench")
        else:
            fw.purge("bench")
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, len(rules)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="200,1000", help="comma-separated N forwards (default 200,1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per backend and N; medians are printed")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("run as root: every run makes its own sandbox", file=sys.stderr)
        return 2
    os.environ.setdefault("NETNSKIT_LOCK_DIR", tempfile.mkdtemp(prefix="bench-firewall-locks-"))
    print(f"firewall benchmark: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    for n in (int(s) for s in args.sizes.split(",") if s):
        for kind in KINDS:
            runs = [one(kind, n) for _ in range(args.repeat)]
            up = statistics.median(r[0] for r in runs)
            down = statistics.median(r[1] for r in runs)
            print(f"N={n:<5} {kind:<9} rules {runs[0][2]:>5}  apply {up:.3f} s  remove {down:.3f} s", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

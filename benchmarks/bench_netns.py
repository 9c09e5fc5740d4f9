"""Bring up and tear down N namespaces, eight ways, each in its own throwaway sandbox; print them side by side.

Run as root::

    .venv/bin/python benchmarks/bench_netns.py [--sizes 10,100,200,1000] [--repeat 3]

Per namespace ``nbI``: a veth ``vIb``/``eth0`` with ``eth0`` in the namespace and ``vIb`` on bridge
``nbr0`` (10.88.0.1/16), an address, loopback up, a default route via the bridge, and a port
forward (host port 20000+I to the namespace's port 80).

The topology is a :class:`netnskit.network.Network` (``bench``): the bridge, N namespaces with
their veth, address and default route, masquerade of the subnet and N port forwards (the firewall
rules are netnskit.firewall's: its own chains, hairpin and loopback paths). The ways:

* ``netnskit``: ``Network.up(BatchExecutor())`` / ``Network.down(BatchExecutor())``, reading the
  host included;
* ``nftables``: the same as ``netnskit`` with ``firewall="nftables"``: the masquerade and the N
  forwards in the network's own nft table (one ``nft -f -``) instead of iptables (issue 15);
* ``executor``: ``BatchExecutor().apply(plan)`` / ``.remove(plan)`` on ``Network.plan()``;
* ``serial``: the same plan, one process per command (:class:`netnskit.executors.SerialExecutor`);
* ``bash``: the script :func:`netnskit.plan.render_script` prints, run by bash (teardown: the
  plan's undo commands in reverse, one per line);
* ``pyroute2``: pyroute2's usual API (IPRoute, ``netns=``), the plan's rules with one ``iptables``
  each (pyroute2 has no iptables API), sysctls written to /proc/sys; skipped with a note if
  pyroute2 is not installed (``pip install 'netnskit[bench]'``);
* ``reference``: the cheaper operations batched by hand, one process after another: one
  ``ip -batch`` for namespaces, bridge and veths, one ``ip -n NS -batch`` per namespace, the plan's
  firewall restore and sysctls; teardown ``ip link del group G``, one ``ip -batch`` of
  ``netns del``, the plan's undo restore and sysctls (issue 6's "cheaper kernel operations,
  batched");
* ``handmade``: the same, with this release's choices written by hand (bridge ``mcast_snooping
  0``, veth ends ``addrgenmode none``, ``nsenter --net`` instead of ``ip -n``): the best the
  hand-written batch does one process after another, to compare netnskit's overhead with.

Each run has its own fresh sandbox and its own process (so peak memory is its own): the driver
makes the sandbox and starts the run's process inside it (:meth:`Sandbox.enter_argv`, one
``nsenter`` for the whole run); that process runs every command directly with a plain
:class:`LiveRunner`, as a user on a host would, with no ``nsenter`` per command. It refuses to
start unless its network and mount namespaces are the sandbox's, not the real host's. After each
run's sandbox is closed the driver waits until the CPUs are mostly idle (the kernel frees deleted
namespaces after ``ip netns del`` has returned, and that work would slow the next run), and prints
how long it waited; each run records the load average at its start. The figures are medians over
``--repeat`` runs. Process counts: the processes each way starts (runner calls; for bash, bash and
one per command; for pyroute2, its forks plus one per iptables command).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netnskit.executors import BatchExecutor, SerialExecutor
from netnskit.firewall import Backend, NatRule, PortForward, Rule
from netnskit.link import Bridge, Route, VethPair
from netnskit.netns import Namespace
from netnskit.plan import Command, Step, render_script
from netnskit.runner import LiveRunner, Result, Runner
from netnskit.sandbox import TMPFS_SOURCE, Sandbox

WAYS = ("netnskit", "nftables", "executor", "serial", "bash", "pyroute2", "reference", "handmade")
BRIDGE = "nbr0"
GROUP = 4242
SUBNET = ipaddress.ip_network("10.88.0.0/16")
GATEWAY = ipaddress.ip_address("10.88.0.1")
OWNER = "bench"
# The driver tells each run which namespaces are the real host's and which the sandbox's.
HOST_NET, HOST_MNT, SANDBOX_NET = "BENCH_HOST_NET", "BENCH_HOST_MNT", "BENCH_SANDBOX_NET"


def address(i: int) -> ipaddress.IPv4Address:
    """The address of namespace ``i`` (10.88.0.2 upwards)."""
    return GATEWAY + 1 + i


def names(i: int) -> tuple[str, str, str]:
    """(namespace, host end, namespace end) of namespace ``i``."""
    return f"nb{i}", f"v{i}b", f"v{i}"


def network(n: int, runner: Runner, firewall: str = "iptables") -> Any:
    """The topology as a :class:`netnskit.network.Network` (None where that module is missing)."""
    try:
        from netnskit.network import ForwardSpec, NamespaceSpec, Network
    except ImportError:  # pragma: no cover - before network.py landed
        return None
    spaces = [NamespaceSpec(name=names(i)[0], host_ifname=names(i)[1], address=str(address(i))) for i in range(n)]
    forwards = [ForwardSpec(20000 + i, names(i)[0], 80) for i in range(n)]
    return Network(
        name=OWNER,
        bridge=BRIDGE,
        subnet=str(SUBNET),
        gateway=str(GATEWAY),
        namespaces=spaces,
        masquerade=True,
        port_forwards=forwards,
        runner=runner,
        **({"firewall": firewall} if firewall != "iptables" else {}),
    )


def network_plan(n: int) -> list[Step]:
    """``Network.plan()`` for the topology (pure); the plan built here if netnskit.network is missing."""
    from netnskit.testing import FakeRunner

    net = None if os.environ.get("BENCH_OWN_PLAN") == "1" else network(n, FakeRunner())
    plan: list[Step] = net.plan() if net is not None else own_plan(n)
    return plan


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
    return (
        [r.argv(backend, "-A") for r in nat] + [r.argv(backend, "-D") for r in nat],
        [r.argv(backend, "-A") for r in fwd] + [r.argv(backend, "-D") for r in fwd],
    )


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

    def run(
        self, argv: Sequence[str], *, input: str | None = None, timeout: float | None = None, netns: str | None = None
    ) -> Result:
        self.calls.append(1)
        return self.inner.run(argv, input=input, timeout=timeout, netns=netns)


# --- what is there: checked after bring-up and teardown, outside the timings -----------------


def census(runner: Runner) -> dict[str, int]:
    """Namespaces, host links (and those on the bridge), firewall rules."""
    spaces = runner.run(["ip", "-j", "netns", "list"]).check().stdout.strip()
    ports = runner.run(["ip", "-j", "link", "show", "master", BRIDGE])
    rules = 0
    for tool in ("iptables-save", "ip6tables-save"):
        save = runner.run([tool])
        rules += sum(1 for line in save.stdout.splitlines() if line.startswith("-A ")) if save.ok else 0
    # and the rules of netnskit's nft tables (the nftables backend)
    ruleset = runner.run(["nft", "-j", "list", "ruleset"])
    if ruleset.ok and ruleset.stdout.strip():
        items = json.loads(ruleset.stdout).get("nftables", [])
        rules += sum(1 for i in items if str(i.get("rule", {}).get("table", "")).startswith("netnskit-"))
    return {
        "namespaces": len(json.loads(spaces)) if spaces else 0,
        "ports": len([d for d in json.loads(ports.stdout or "[]") if d.get("ifname")]) if ports.ok else 0,
        "links": len(json.loads(runner.run(["ip", "-j", "link", "show"]).check().stdout)),
        "rules": rules,
    }


def plan_rules(plan: Sequence[Step]) -> int:
    """How many rules the plan adds (``-A`` lines of its restores, ``iptables -A`` commands)."""
    count = 0
    for step in plan:
        for command in step.do:
            if command.input is not None and command.argv[0].endswith("restore"):
                count += sum(1 for line in command.input.splitlines() if line.startswith("-A "))
            elif command.input is not None and command.argv[0] == "nft":
                body = command.input.split("{", 1)[1] if "{" in command.input else ""
                count += sum(1 for line in body.splitlines() if line.startswith("\t\t") and "hook" not in line)
            elif "tables" in command.argv[0] and "-A" in command.argv:
                count += 1
    return count


def expect(n: int, found: dict[str, int], up: bool, rules: int) -> str:
    """An empty string if ``found`` is what bring-up (or teardown) should leave, else why not."""
    want = (
        {"namespaces": n, "ports": n, "rules": rules} if up else {"namespaces": 0, "ports": 0, "links": 1, "rules": 0}
    )
    wrong = {k: (found[k], want[k]) for k in want if found[k] != want[k]}
    return "" if not wrong else f"{'up' if up else 'down'}: found/expected {wrong}"


# --- the ways -------------------------------------------------------------------------------


def timed(n: int, runner: Runner, up: Any, down: Any, rules: int) -> dict[str, Any]:
    """Time ``up()`` then ``down()``, checking what each left (outside the timings)."""
    t0 = time.perf_counter()
    up()
    t1 = time.perf_counter()
    problem = expect(n, census(runner), True, rules)
    t2 = time.perf_counter()
    down()
    t3 = time.perf_counter()
    problem += expect(n, census(runner), False, rules)
    return {"up": t1 - t0, "down": t3 - t2, "problem": problem}


def run_network(n: int, live: Runner, executor: Any, firewall: str = "iptables") -> dict[str, Any]:
    """netnskit's own ``Network.up()``/``down()`` (reading the host included) with ``executor``."""
    runner = CountingRunner(live)
    net = network(n, runner, firewall)
    if net is None:
        return run_executor(executor, n, live)
    counts: list[int] = []
    result = timed(
        n,
        live,
        lambda: (net.up(executor), counts.append(len(runner.calls))),
        lambda: net.down(executor),
        plan_rules(net.plan()),
    )
    return {**result, "procs_up": counts[0], "procs_down": len(runner.calls) - counts[0]}


def run_executor(executor: Any, n: int, live: Runner) -> dict[str, Any]:
    """The plan applied and removed by ``executor`` alone (``apply``/``remove``)."""
    plan = network_plan(n)
    runner = CountingRunner(live)
    counts: list[int] = []
    result = timed(
        n,
        live,
        lambda: (executor.apply(plan, runner), counts.append(len(runner.calls))),
        lambda: executor.remove(plan, runner),
        plan_rules(plan),
    )
    return {**result, "procs_up": counts[0], "procs_down": len(runner.calls) - counts[0]}


def run_bash(n: int, runner: Runner) -> dict[str, Any]:
    """The script ``render_script`` prints, and the undo commands in reverse, each run by bash."""
    plan = network_plan(n)
    up_script, down_script = render_script(plan), teardown_script(plan)
    # a whole script is one command for the runner: give it more than the default 60 s
    result = timed(
        n,
        runner,
        lambda: runner.run(["bash", "-s"], input=up_script, timeout=3600).check("running the script"),
        lambda: runner.run(["bash", "-s"], input=down_script, timeout=3600),
        plan_rules(plan),
    )
    up_cmds = sum(len(s.do) for s in plan)
    down_cmds = sum(len(s.undo) for s in plan)
    return {**result, "procs_up": 1 + up_cmds, "procs_down": 1 + down_cmds}


def _group_of(plan: Sequence[Step]) -> str:
    for step in plan:
        for command in step.do:
            argv = list(command.argv)
            if argv[:3] == ["ip", "link", "add"] and "group" in argv:
                return argv[argv.index("group") + 1]
    return str(GROUP)


def reference_commands(n: int, *, quiet: bool = False) -> tuple[list[Command], list[Command]]:
    """The cheaper operations batched by hand: (bring-up, teardown) processes, run in order.

    The links, addresses and routes are written here; the firewall and sysctl commands are the
    plan's own (one ``iptables-restore`` each way), run as they are. ``quiet`` (the ``handmade``
    way): also this release's choices, written by hand: a bridge without multicast snooping, both
    veth ends without IPv6 link-local addresses, namespaces entered with ``nsenter --net``.
    """
    plan = network_plan(n)
    group = _group_of(plan)
    mark = f"netnskit:{OWNER}"
    snooping = " mcast_snooping 0" if quiet else ""
    host = [
        f"link add name {BRIDGE} alias {mark} group {group} up type bridge{snooping}",
        f"addr add {GATEWAY}/16 dev {BRIDGE}",
    ]
    inner: list[Command] = []
    for i in range(n):
        space, host_end, _ = names(i)
        host.append(f"netns add {space}")
        if quiet:
            host += [
                f"link add {host_end} group {group} master {BRIDGE} type veth peer name eth0 netns {space}",
                f"link set {host_end} alias {mark} addrgenmode none up",
            ]
        else:
            host.append(
                f"link add {host_end} alias {mark} group {group} up master {BRIDGE} type veth peer name eth0"
                f" netns {space}"
            )
        up_line = "link set eth0 addrgenmode none up" if quiet else "link set eth0 up"
        body = f"link set lo up alias {mark}\n{up_line}\naddr add {address(i)}/16 dev eth0\n"
        body += f"route add default via {GATEWAY}\n"
        if quiet:  # entered as nsenter --net does (the runner told the namespace), not ip -n
            inner.append(Command(["ip", "-batch", "-"], input=body, netns=space))
        else:
            inner.append(Command(["ip", "-n", space, "-batch", "-"], input=body))
    others = [c for s in plan for c in s.do if c.tool != "ip"]
    undo_others = [c for s in reversed(plan) for c in s.undo if c.tool != "ip"]
    up = [Command(["ip", "-batch", "-"], input="\n".join(host) + "\n"), *inner, *others]
    down = [
        *undo_others,
        Command(["ip", "link", "del", "group", group]),
        Command(["ip", "-batch", "-"], input="".join(f"netns del {names(i)[0]}\n" for i in range(n))),
    ]
    return up, down


def run_reference(n: int, runner: Runner, *, quiet: bool = False) -> dict[str, Any]:
    """The hand-written cheaper-operations batch, one process after another."""
    up, down = reference_commands(n, quiet=quiet)

    def run_all(commands: list[Command], what: str) -> None:
        for command in commands:
            command.run(runner).check(what)

    result = timed(
        n,
        runner,
        lambda: run_all(up, "reference bring-up"),
        lambda: run_all(down, "reference teardown"),
        plan_rules(network_plan(n)),
    )
    return {**result, "procs_up": len(up), "procs_down": len(down)}


def run_pyroute2(n: int, runner: Runner) -> dict[str, Any]:
    """pyroute2 works in its own process's namespaces: this run's process, already inside the sandbox."""
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        return {"skipped": "pyroute2 is not installed (pip install 'netnskit[bench]')"}
    result = pyroute2_inner(n)
    result["problem"] = expect(n, census(runner), False, 0)
    return result


def _restore_argvs(command: Command) -> list[list[str]]:
    """An ``iptables-restore`` input as one ``iptables`` argv per line (how a script without it would go)."""
    tool = command.argv[0].replace("-restore", "")
    table = "filter"
    out = []
    for line in (command.input or "").splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-"):
            out.append([tool, "-w", "-t", table, *shlex.split(line)])
    return out


def _sysctl_write(argv: Sequence[str]) -> None:
    key, _, value = argv[-1].partition("=")
    path = key if "/" in key else key.replace(".", "/")
    Path("/proc/sys", path).write_text(value + "\n")


def pyroute2_inner(n: int) -> dict[str, Any]:
    """Inside the sandbox: pyroute2's usual API for the same topology, timed.

    Rules: the plan's own, one ``iptables`` process per rule (pyroute2 has no iptables API);
    sysctls written to /proc/sys directly. Forks are counted while it runs.
    """
    import multiprocessing

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
    try:
        return _pyroute2_timed(n, forks)
    finally:
        os.fork = real_fork
        multiprocessing.Process.start = real_start  # type: ignore[method-assign]


def _pyroute2_timed(n: int, forks: list[int]) -> dict[str, Any]:
    from pyroute2 import IPRoute, netns

    plan = network_plan(n)
    group = int(_group_of(plan))

    def others(commands: list[Command], check: bool) -> None:
        for command in commands:
            if command.argv[0] == "sysctl":
                _sysctl_write(command.argv)
                continue
            argvs = _restore_argvs(command) if command.argv[0].endswith("restore") else [list(command.argv)]
            for argv in argvs:
                forks[0] += 1
                subprocess.run(argv, check=check, capture_output=True)

    t0 = time.perf_counter()
    with IPRoute() as ipr:
        ipr.link("add", ifname=BRIDGE, kind="bridge", group=group)
        br = ipr.link_lookup(ifname=BRIDGE)[0]
        ipr.link("set", index=br, state="up")
        ipr.addr("add", index=br, address=str(GATEWAY), prefixlen=16)
        for i in range(n):
            space, host_end, _ = names(i)
            netns.create(space)
            ipr.link("add", ifname=host_end, kind="veth", peer="eth0-tmp", group=group)
            host_idx = ipr.link_lookup(ifname=host_end)[0]
            peer_idx = ipr.link_lookup(ifname="eth0-tmp")[0]
            ipr.link("set", index=peer_idx, net_ns_fd=space, ifname="eth0")
            ipr.link("set", index=host_idx, master=br, state="up")
            with IPRoute(netns=space) as ns:
                ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
                idx = ns.link_lookup(ifname="eth0")[0]
                ns.link("set", index=idx, state="up")
                ns.addr("add", index=idx, address=str(address(i)), prefixlen=16)
                ns.route("add", dst="default", gateway=str(GATEWAY))
    others([c for s in plan for c in s.do if c.argv[0] != "ip"], True)
    t1 = time.perf_counter()
    procs_up = forks[0]
    t2 = time.perf_counter()
    others([c for s in reversed(plan) for c in s.undo if c.argv[0] != "ip"], False)
    with IPRoute() as ipr:
        for i in reversed(range(n)):
            space, host_end, _ = names(i)
            ipr.link("del", index=ipr.link_lookup(ifname=host_end)[0])
            netns.remove(space)
        ipr.link("del", index=ipr.link_lookup(ifname=BRIDGE)[0])
    t3 = time.perf_counter()
    return {
        "up": t1 - t0,
        "down": t3 - t2,
        "procs_up": procs_up,
        "procs_down": forks[0] - procs_up,
        "rss_self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "rss_child_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    }


def _ns(kind: str, pid: int | str = "self") -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def inside_problem() -> str | None:
    """Why this process is not inside the run's sandbox (None if it is): it must never touch the real host."""
    host_net, host_mnt, box_net = (os.environ.get(k) for k in (HOST_NET, HOST_MNT, SANDBOX_NET))
    if not (host_net and host_mnt and box_net):
        return f"a run starts only inside a sandbox, from the driver ({HOST_NET} etc. are not set)"
    net, mnt = _ns("net"), _ns("mnt")
    if net == host_net or mnt == host_mnt:
        return f"this process shares the real host's namespaces ({net}, {mnt})"
    if net != box_net:
        return f"this process is in network namespace {net}, not the sandbox's {box_net}"
    if not _sandbox_netns_dir():
        return f"/run/netns here is not a sandbox's tmpfs ({TMPFS_SOURCE}): this is not a sandbox's mount namespace"
    return None


def _sandbox_netns_dir() -> bool:
    """Does this mount namespace have the sandbox's own tmpfs on /run/netns (whatever the environment says)?"""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as handle:
            for line in handle:
                fields = line.split()
                # ... mount point (5th) ... " - " fstype source options
                if len(fields) > 4 and fields[4] == "/run/netns" and f" - tmpfs {TMPFS_SOURCE} " in line:
                    return True
    except OSError:
        return False
    return False


def worker(way: str, n: int, workers: int | None) -> dict[str, Any]:
    """One run of one way, in this process, which the driver started inside a fresh sandbox."""
    problem = inside_problem()
    if problem:
        raise SystemExit(f"refusing to run: {problem}")
    live = LiveRunner()
    batch = BatchExecutor() if workers is None else BatchExecutor(workers=workers)
    if way == "netnskit":
        result = run_network(n, live, batch)
    elif way == "nftables":
        result = run_network(n, live, batch, "nftables")
    elif way == "executor":
        result = run_executor(batch, n, live)
    elif way == "serial":
        result = run_executor(SerialExecutor(), n, live)
    elif way == "bash":
        result = run_bash(n, live)
    elif way == "reference":
        result = run_reference(n, live)
    elif way == "handmade":
        result = run_reference(n, live, quiet=True)
    elif way == "pyroute2":
        result = run_pyroute2(n, live)
    else:
        raise SystemExit(f"unknown way {way!r}")
    result.setdefault("rss_self_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    # the largest process this run waited for (its ru_maxrss counts a forked child's pages before exec)
    result.setdefault("rss_child_kb", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return result


# --- the driver -----------------------------------------------------------------------------


def cpu_times() -> tuple[int, int]:
    """(idle, total) jiffies of all CPUs since boot, from /proc/stat (iowait counts as idle)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return fields[3] + fields[4], sum(fields)


def settle(idle: float, limit: float, window: float = 0.3) -> tuple[float, float]:
    """Wait until the CPUs were at least ``idle`` (0-1) idle over one ``window``, at most ``limit`` s.

    Returns (seconds waited, idle share of the last window).
    """
    start = time.monotonic()
    share = 0.0
    while True:
        idle0, total0 = cpu_times()
        time.sleep(window)
        idle1, total1 = cpu_times()
        share = (idle1 - idle0) / max(1, total1 - total0)
        waited = time.monotonic() - start
        if share >= idle or waited >= limit:
            return waited, share


def one_run(way: str, n: int, workers: int | None, idle: float, limit: float) -> dict[str, Any]:
    """One run in its own fresh sandbox: its process starts inside; then wait for the CPUs to settle."""
    load = os.getloadavg()
    argv = [sys.executable, __file__, "--worker", way, str(n)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    with Sandbox() as box:
        env = {**os.environ, HOST_NET: _ns("net"), HOST_MNT: _ns("mnt"), SANDBOX_NET: _ns("net", box.pid)}
        done = subprocess.run(box.enter_argv(argv), capture_output=True, text=True, check=False, env=env)
    # the kernel frees the sandbox's namespaces after it is closed: let it finish before the next run
    waited, share = settle(idle, limit)
    result: dict[str, Any] = (
        {"failed": done.stderr.strip()[-600:]}
        if done.returncode != 0
        else json.loads(done.stdout.strip().splitlines()[-1])
    )
    result.update(load_start=list(load), settle_s=waited, settle_idle=share)
    return result


def run_line(way: str, n: int, i: int, repeat: int, run: dict[str, Any]) -> str:
    """One line of progress: the run's figures, the load average at its start and the wait after it."""
    if "up" in run:
        figures = f"up {run['up']:.3f} s, down {run['down']:.3f} s"
    else:
        figures = (run.get("skipped") or run.get("failed") or "no result").splitlines()[-1][:80]
    return (
        f"  N={n} {way:<10} run {i}/{repeat}: {figures}; load {run['load_start'][0]:.2f} at start;"
        f" then waited {run['settle_s']:.1f} s for the CPUs to settle ({100 * run['settle_idle']:.0f}% idle)"
    )


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in runs if "up" in r]
    if not good:
        bad = runs[0] if runs else {}
        return {"note": bad.get("skipped") or bad.get("failed") or "no run"}
    out: dict[str, Any] = {
        key: statistics.median([r[key] for r in good])
        for key in ("up", "down", "procs_up", "procs_down", "rss_self_kb", "rss_child_kb")
    }
    problems = sorted({r.get("problem", "") for r in good} - {""})
    out["note"] = "; ".join(problems) + (f" ({len(runs) - len(good)} runs failed)" if len(good) < len(runs) else "")
    return out


def table(n: int, rows: dict[str, dict[str, Any]], repeat: int) -> str:
    base = rows.get("netnskit", {})
    head = (
        f"{'way':<10} {'up s':>8} {'down s':>8} {'up ms/ns':>9} {'down ms/ns':>10} {'up x':>7} {'down x':>7}"
        f" {'procs up':>9} {'procs down':>10} {'py MB':>6} {'child MB':>8}  note"
    )
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
        line(
            se_down / nk_down >= 40,
            f"N=200 down {se_down / nk_down:.1f}x faster than one process per step (target >= 40x)",
        )
    if nk_up and nk_down and rf_up and rf_down:
        line(nk_up / rf_up <= 1.25, f"N=200 up {nk_up / rf_up:.2f}x the cheaper-operations batch (target <= 1.25)")
        line(
            nk_down / rf_down <= 1.25,
            f"N=200 down {nk_down / rf_down:.2f}x the cheaper-operations batch (target <= 1.25)",
        )
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
    for n in (200, 1000):  # not a target: netnskit against the same operations written by hand
        hm_up, hm_down = get(n, "handmade", "up"), get(n, "handmade", "down")
        nk_up, nk_down = get(n, "netnskit", "up"), get(n, "netnskit", "down")
        if hm_up and hm_down and nk_up and nk_down:
            out.append(f"[info] N={n} netnskit / handmade: up {nk_up / hm_up:.2f}x, down {nk_down / hm_down:.2f}x")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10,100,200,1000", help="comma-separated N (default 10,100,200,1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per way and N; medians are printed")
    parser.add_argument("--ways", default=",".join(WAYS), help=f"comma-separated subset of {','.join(WAYS)}")
    parser.add_argument("--workers", type=int, default=None, help="BatchExecutor workers (default: its own)")
    parser.add_argument(
        "--idle",
        type=float,
        default=85.0,
        help="after each run, wait until the CPUs are this %% idle over 0.3 s (default 85)",
    )
    parser.add_argument("--settle", type=float, default=30.0, help="but wait at most this many seconds (default 30)")
    parser.add_argument("--json", type=Path, default=None, help="also write every run's figures to this file")
    parser.add_argument("--worker", nargs=2, metavar=("WAY", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
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
    print(
        f"netnskit benchmark: sizes {sizes}, {args.repeat} runs each, "
        f"{os.cpu_count()} CPUs, kernel {os.uname().release}, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    for n in sizes:
        results[n] = {}
        for way in ways:
            runs = []
            for i in range(1, args.repeat + 1):
                runs.append(one_run(way, n, args.workers, args.idle / 100, args.settle))
                print(run_line(way, n, i, args.repeat, runs[-1]), flush=True)
            raw[f"{way}/{n}"] = runs
            results[n][way] = median_of(runs)
        print("\n" + table(n, results[n], args.repeat), flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (other work on the machine skews the timings)")
    print("\ntargets (issue 6):")
    for text in verdicts(results):
        print("  " + text)
    if args.json is not None:
        args.json.write_text(json.dumps({"sizes": sizes, "runs": raw}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reachability checks: pings from each namespace to its gateway and a few peers, TCP through NAT and forwards.

The pings are O(N): each namespace on the bridge to the gateway and to its next ``peers``
namespaces in a ring (the whole matrix with ``all_pairs``); on a dual-stack network, over IPv6 too
(the IPv6 gateway and the same peers' IPv6 addresses), and the forwards and NAT over both families.
They run in rounds, each one process (``probe.py ping``) that probes every source of the round
at once, tries again what did not answer (up to ``tries``), keeps the kernel's words for what
failed, and deletes the neighbour entries it added (ARP's and IPv6's): a round holds at most
:meth:`NeighbourLimits.round_budget` entries of the machine-wide table (see :mod:`.neighbours`).
The NAT and forward exchanges run :mod:`netnskit.probe` as a server in one namespace and a client
in another.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from netnskit import _ipjson
from netnskit import probe as _probe_module
from netnskit.errors import ConflictError, ValidationError
from netnskit.network.neighbours import NeighbourLimits, warn_if_short
from netnskit.network.state import _host_link_ours
from netnskit.runner import end_process, read_line

if TYPE_CHECKING:
    from netnskit.network.network import Network

__all__ = ["CheckPlan", "CheckReport", "NeighbourUse", "Probe", "Progress", "plan_check"]

Progress = Callable[[int, int, str], None]
"""Called as a check goes: (probes done, probes in all, what was done or is next)."""

# run by path with -I -S: the probe needs only the standard library, and starts in a tenth of the time
PROBE_FILE = str(Path(_probe_module.__file__).resolve())
_PROBE_PORT = 47001


def probe_argv(*args: str) -> list[str]:
    """``python -I -S .../netnskit/probe.py ARGS``: the probe, run without importing netnskit."""
    return [sys.executable, "-I", "-S", PROBE_FILE, *args]


@attrs.frozen
class Probe:
    """One reachability probe of :meth:`Network.check`: what was tried and what happened."""

    kind: str  # "ping", "nat", "forward"
    source: str
    target: str
    ok: bool
    detail: str = ""  # the tool's or the kernel's words when it failed
    outcome: str = ""  # "reply", "no reply" (lost, or nothing there), "unreachable" (the kernel said so), "error"
    tries: int = 0


@attrs.frozen
class NeighbourUse:
    """The neighbour-table figures of a check: the limits, the budget of a round, what the rounds held."""

    gc_thresh2: int
    gc_thresh3: int
    assumed: bool  # the limits are the kernel's defaults (not visible from this namespace)
    in_use: int | None  # entries on the whole machine before the check, when readable
    budget: int  # entries the rounds running at one time may hold together
    rounds: int
    lanes: int  # rounds run at one time (each holds at most budget / lanes)
    peak: int  # the most entries the namespaces and bridge of one round held
    left: int  # entries the rounds added and left (0: every one deleted)
    without_rounds: int  # entries the pings would hold if nothing were deleted between rounds


@attrs.frozen
class CheckReport:
    """All probes of a check; ``ok`` when the network is up and every probe succeeded."""

    probes: tuple[Probe, ...]
    up: bool = True  # every namespace and host link of the network exists (status reads the rest)
    down: bool = False  # none of them exists: nothing was probed
    missing: tuple[str, ...] = ()  # those that do not exist ("namespace red", "host link veth-red")
    warnings: tuple[str, ...] = ()
    neighbours: NeighbourUse | None = None
    name: str = ""

    @property
    def ok(self) -> bool:
        """True when the network is up and every probe succeeded."""
        return self.up and all(p.ok for p in self.probes)

    @property
    def failures(self) -> tuple[Probe, ...]:
        """The probes that failed."""
        return tuple(p for p in self.probes if not p.ok)

    def to_json(self) -> dict[str, Any]:
        """A plain dict for scripts."""
        return {
            "ok": self.ok,
            "up": self.up,
            "down": self.down,
            "missing": list(self.missing),
            "warnings": list(self.warnings),
            "neighbours": None if self.neighbours is None else attrs.asdict(self.neighbours),
            "probes": [attrs.asdict(p) for p in self.probes],
        }

    def lines(self) -> list[str]:
        """One line per probe, for people (first what is not up)."""
        head: list[str] = []
        if self.down:
            head.append(f"network {self.name} is down: none of its namespaces or links exist; nothing was probed")
        elif not self.up:
            head.append(f"network {self.name} is not fully up: missing {', '.join(self.missing)}")
        return head + [
            f"{'ok  ' if p.ok else 'FAIL'} {p.kind:7} {p.source} -> {p.target} {p.detail}".rstrip() for p in self.probes
        ]


# --- the plan ---------------------------------------------------------------------------------


@attrs.frozen
class _Ping:
    source: str
    # (the target's namespace, None for the gateway; address): IPv4 ones, then IPv6 ones (dual stack)
    targets: tuple[tuple[str | None, IPv4Address | IPv6Address], ...]

    @property
    def entries(self) -> int:
        # each exchange on the link: the source learns the target, the target the source
        return 2 * len(self.targets)


@attrs.frozen
class CheckPlan:
    """What a check probes (pure): pings from each namespace, NAT and forward paths, and what they cost."""

    pings: tuple[_Ping, ...]
    nat: tuple[tuple[str, str, IPv4Address | IPv6Address], ...]  # (source, the server's namespace, its address)
    # (source, server ns, address, port, to)
    forwards: tuple[tuple[str | None, str, IPv4Address | IPv6Address, int, int], ...]
    all_pairs: bool = False

    @property
    def probes(self) -> int:
        """How many probes."""
        return sum(len(p.targets) for p in self.pings) + len(self.nat) + len(self.forwards)

    @property
    def neighbour_entries(self) -> int:
        """Entries the pings would hold if none were deleted between rounds."""
        return sum(p.entries for p in self.pings)

    def rounds(self, budget: int) -> list[tuple[_Ping, ...]]:
        """The pings cut into rounds of at most ``budget`` neighbour entries each, in order."""
        rounds: list[tuple[_Ping, ...]] = []
        current: list[_Ping] = []
        used = 0
        for ping in self.pings:
            if current and used + ping.entries > budget:
                rounds.append(tuple(current))
                current, used = [], 0
            current.append(ping)
            used += ping.entries
        if current:
            rounds.append(tuple(current))
        return rounds

    def lanes(self, budget: int) -> int:
        """Rounds run at one time: two where one namespace's pings fit in half the budget."""
        return LANES if max((p.entries for p in self.pings), default=0) <= budget // LANES else 1

    def cost(self, limits: NeighbourLimits) -> str:
        """What the check will cost: probes, rounds and neighbour entries."""
        budget = limits.round_budget()
        lanes = self.lanes(budget)
        pings = sum(len(p.targets) for p in self.pings)
        what = "all pairs" if self.all_pairs else "gateway and ring peers"
        return (
            f"check: {self.probes} probes ({pings} pings, {what}; {len(self.nat)} NAT; {len(self.forwards)} forward) "
            f"in {len(self.rounds(budget // lanes))} rounds, {lanes} at a time, holding at most {budget} neighbour "
            f"entries together, deleted after each round ({self.neighbour_entries} if kept); {limits.describe()}"
        )


def plan_check(net: Network, *, peers: int = 2, all_pairs: bool = False) -> CheckPlan:
    """The probes of a check (pure): each namespace to the gateway and its next ``peers`` in a ring, or to all."""
    names = [ns.name for ns in net.namespaces]
    addrs = net.addresses()
    addrs6 = net.addresses6()
    count = len(names)
    pings = []
    for i, name in enumerate(names):
        if all_pairs:
            others = [other for other in names if other != name]
        else:
            others = list(dict.fromkeys(names[(i + step) % count] for step in range(1, min(peers, count - 1) + 1)))
        targets: list[tuple[str | None, IPv4Address | IPv6Address]] = [(None, net.gateway)]
        targets += [(other, addrs[other].ip) for other in others]
        if net.gateway6 is not None:
            targets += [(None, net.gateway6), *((other, addrs6[other].ip) for other in others)]
        pings.append(_Ping(name, tuple(targets)))
    nat: list[tuple[str, str, IPv4Address | IPv6Address]] = []
    # the masquerade is one rule for the whole subnet: a spread sample of sources shows each path
    sources = names if all_pairs else list(dict.fromkeys(names[i * count // 2] for i in range(min(2, count))))
    for six, on in ((False, net.masquerade), (True, net.masquerade6)):
        if not on or not names:
            continue
        for extra in net.extra_namespaces:
            target = next(
                (
                    a.ip
                    for link in net.links
                    for p, _, a in (link.ends6() if six else link.ends())
                    if p == extra.name and a is not None
                ),
                None,
            )
            if target is not None:
                nat += [(source, extra.name, target) for source in sources]
    forwards: list[tuple[str | None, str, IPv4Address | IPv6Address, int, int]] = []
    # from the host to the gateway, and from each namespace linked to the host to the host's end
    places: list[tuple[str | None, IPv4Address | IPv6Address]] = [(None, net.gateway)]
    places += [
        (link.peer_netns, link.address.ip)
        for link in net.links
        if link.netns is None and link.address is not None and link.peer_netns is not None
    ]
    if net.gateway6 is not None:  # and over IPv6 (not ::1: the kernel cannot forward it)
        places += [(None, net.gateway6)]
        places += [
            (link.peer_netns, link.address6.ip)
            for link in net.links
            if link.netns is None and link.address6 is not None and link.peer_netns is not None
        ]
    for fwd in net.port_forwards:
        if fwd.protocol == "tcp":
            port = fwd.host_port[0]
            bound = fwd.host_address
            forwards += [
                (source, fwd.netns, address, port, (fwd.port or fwd.host_port)[0])
                for source, address in places
                if bound is None or bound.version == address.version
            ]
    return CheckPlan(tuple(pings), tuple(nat), tuple(forwards), all_pairs)


# --- running it -------------------------------------------------------------------------------


def _check(
    net: Network,
    timeout: float,
    *,
    tries: int = 3,
    peers: int = 2,
    all_pairs: bool = False,
    progress: Progress | None = None,
) -> CheckReport:
    _validate(timeout, tries, peers)
    missing, down = _absent(net)
    if down:
        return CheckReport((), up=False, down=True, missing=missing, name=net.name)
    plan = plan_check(net, peers=peers, all_pairs=all_pairs)
    limits, warning = warn_if_short(net, peers)
    budget = limits.round_budget()
    _refuse_overflow(net, plan, limits, budget)
    # two rounds at a time, each with half the budget, where one namespace's pings fit in half:
    # the kernel's work (an ARP request flooded to every port of the bridge) then uses two CPUs
    lanes = plan.lanes(budget)
    rounds = plan.rounds(budget // lanes)
    total = plan.probes
    if progress is not None:
        progress(0, total, plan.cost(limits))
    probes: list[Probe] = []
    peak = left = 0
    for done, figures in _run_rounds(net, rounds, lanes, timeout, tries):
        probes += done
        peak, left = max(peak, figures.get("peak", 0)), left + figures.get("left", 0)
        if progress is not None:
            progress(len(probes), total, f"pinged from {done[-1].source}")
    probes += _exchanges(net, plan, timeout, tries, total, len(probes), progress)
    use = NeighbourUse(
        limits.gc_thresh2,
        limits.gc_thresh3,
        limits.assumed,
        limits.in_use,
        budget,
        len(rounds),
        lanes,
        peak,
        left,
        plan.neighbour_entries,
    )
    return CheckReport(
        tuple(probes),
        up=not missing,
        missing=missing,
        warnings=(warning,) if warning else (),
        neighbours=use,
        name=net.name,
    )


def _absent(net: Network) -> tuple[tuple[str, ...], bool]:
    """The network's namespaces and host links that do not exist, and whether none does (two reads, not status's N)."""
    listed = _ipjson.names(_ipjson.netns_list(net.runner), "name")
    links = {str(d.get("ifname")): d for d in _ipjson.read(net.runner, None, "link", "show", action="listing links")}
    names = net.namespace_names()
    ifnames = net.host_ifnames()
    absent = [f"namespace {name}" for name in names if name not in listed]
    mine = [name for name in ifnames if name in links and _host_link_ours(links[name], net.mark, net.group, ifnames)]
    absent += [f"host link {name}" for name in ifnames if name not in mine]
    return tuple(absent), len(absent) == len(names) + len(ifnames)


def _validate(timeout: float, tries: int, peers: int) -> None:
    """Refuse a bad timeout, number of tries or of peers before any command runs."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 60:
        raise ValidationError("check timeout", timeout, "seconds per try: more than 0, at most 60")
    if isinstance(tries, bool) or not isinstance(tries, int) or not 1 <= tries <= 10:
        raise ValidationError("check tries", tries, "a whole number from 1 to 10")
    if isinstance(peers, bool) or not isinstance(peers, int) or not 0 <= peers <= 64:
        raise ValidationError("check peers", peers, "a whole number from 0 to 64 (all_pairs=True for every pair)")


def _refuse_overflow(net: Network, plan: CheckPlan, limits: NeighbourLimits, budget: int) -> None:
    """Refuse a plan one namespace of which needs more entries at once than a round may hold."""
    widest = max(plan.pings, key=lambda p: p.entries, default=None)
    if widest is None or widest.entries <= budget:
        return
    what = "the all-pairs matrix" if plan.all_pairs else "the check"
    raise ConflictError(
        f"{what} of network {net.name!r} ({plan.probes} probes) would overflow the neighbour table: "
        f"namespace {widest.source!r} alone needs {widest.entries} entries at once, and a round may hold "
        f"{budget} (half of what is left below gc_thresh2, at most 256); kept, the matrix would need "
        f"{plan.neighbour_entries}. The table is shared by every namespace on this machine "
        f"({limits.describe()}). Raise it on the host ({limits.raise_command(widest.entries * 2)})"
        + (", or check without all pairs" if plan.all_pairs else "")
    )


LANES = 2


def _run_rounds(
    net: Network, rounds: Sequence[tuple[_Ping, ...]], lanes: int, timeout: float, tries: int
) -> Iterator[tuple[list[Probe], dict[str, int]]]:
    """Run the rounds ``lanes`` at a time, never two that touch one namespace at once (each deletes
    what it added there); yields each round's results in the plan's order."""
    places = [{p.source for p in pings} | {ns for p in pings for ns, _ in p.targets if ns} for pings in rounds]
    # lane i starts at the i-th part of the ring: rounds running together are far apart
    order = [r for lane in range(lanes) for r in range(lane * len(rounds) // lanes, (lane + 1) * len(rounds) // lanes)]
    busy: set[str] = set()
    ready = threading.Condition()

    def one(index: int) -> tuple[list[Probe], dict[str, int]]:
        with ready:
            ready.wait_for(lambda: not places[index] & busy)
            busy.update(places[index])
        try:
            return _ping_round(net, rounds[index], timeout, tries)
        finally:
            with ready:
                busy.difference_update(places[index])
                ready.notify_all()

    with concurrent.futures.ThreadPoolExecutor(max_workers=lanes) as pool:
        futures = {index: pool.submit(one, index) for index in order}
        for index in range(len(rounds)):
            yield futures[index].result()


def _ping_round(net: Network, pings: Sequence[_Ping], timeout: float, tries: int) -> tuple[list[Probe], dict[str, int]]:
    """One ``probe.py ping`` for every source of the round; the Probes in plan order, and the neighbour figures."""
    sources = {p.source for p in pings}
    touched = dict.fromkeys(ns for p in pings for ns, _ in p.targets if ns is not None and ns not in sources)
    argv = probe_argv("ping", "--tries", str(tries), "--wait", _number(timeout), "--host-dev", net.bridge)
    for ns in touched:
        argv += ["--touch", ns]
    argv += [f"{p.source}={','.join(str(address) for _, address in p.targets)}" for p in pings]
    result = net.runner.run(argv, timeout=tries * timeout + 30 + 0.05 * len(pings))
    found: dict[tuple[str, str], dict[str, Any]] = {}
    figures: dict[str, int] = {}
    for line in result.stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "neighbours" in record:
            figures = {k: int(v) for k, v in record["neighbours"].items()}
        elif isinstance(record, dict):
            found[(str(record.get("source")), str(record.get("target")))] = record
    why = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
    probes = []
    for ping in pings:
        for _, address in ping.targets:
            record = found.get((ping.source, str(address)))
            if record is None:
                probes.append(Probe("ping", ping.source, str(address), False, f"the probe did not run: {why}", "error"))
                continue
            ok = bool(record.get("ok"))
            detail, outcome, count = str(record.get("detail", "")), str(record.get("outcome", "")), record.get("tries")
            probes.append(Probe("ping", ping.source, str(address), ok, detail, outcome, int(count or 0)))
    return probes, figures


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _exchanges(
    net: Network, plan: CheckPlan, timeout: float, tries: int, total: int, done: int, progress: Progress | None
) -> list[Probe]:
    """The NAT probes a few at a time (each has its own server port), then the forwards one at a time."""
    jobs: list[Callable[[], Probe]] = [
        functools.partial(_nat_probe, net, source, server_ns, target, _PROBE_PORT + i, timeout)
        for i, (source, server_ns, target) in enumerate(plan.nat)
    ]
    probes: list[Probe] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for probe in pool.map(functools.partial(_retrying, tries=tries), jobs):
            probes.append(probe)
            if progress is not None:
                progress(done + len(probes), total, f"{probe.kind} {probe.source} -> {probe.target}")
    # the forwards share their destination port: one at a time
    for source, server_ns, address, port, to in plan.forwards:
        served = _served_by(net, server_ns, to)
        if served is not None:
            # the network's own process listens there: connect to it instead of a probe server
            job = functools.partial(_connect, net, source, address, port, timeout, served)
        else:
            job = functools.partial(_exchange, net, "forward", source, server_ns, address, port, timeout, to)
        probes.append(_retrying(job, tries=tries))
        if progress is not None:
            progress(done + len(probes), total, f"forward {source or 'host'} -> {_label(address, port)}")
    return probes


def _retrying(job: Callable[[], Probe], *, tries: int) -> Probe:
    """Run a probe until it succeeds, ``tries`` times at most (a loaded host can drop a first SYN or be slow)."""
    probe = job()
    attempt = 1
    while not probe.ok and attempt < tries:
        attempt += 1
        probe = job()
    return attrs.evolve(probe, tries=attempt, outcome=probe.outcome or ("reply" if probe.ok else "no reply"))


def _exchange(
    net: Network,
    kind: str,
    source: str | None,
    server_ns: str,
    target: IPv4Address | IPv6Address,
    port: int,
    timeout: float,
    server_port: int | None = None,
) -> Probe:
    """A TCP exchange through netnskit.probe: a server in ``server_ns`` on ``server_port`` (``port``
    unless forwarded), a client from ``source`` to ``target``:``port``."""
    start = getattr(net.runner, "start", None)
    label = _label(target, port)
    if start is None:
        return Probe(kind, source or "host", label, False, "the runner cannot start a probe server", "error")
    serve = probe_argv("serve", "--proto", "tcp", "--port", str(server_port or port))
    serve += ["--bind", "::"] if target.version == 6 else []
    serve += ["--count", "1", "--timeout", str(max(10.0, timeout + 3) + timeout)]
    server: subprocess.Popen[str] = start(serve, netns=server_ns)
    try:
        if _readline(server, max(10.0, timeout + 3)) != "ready":
            stderr = getattr(server, "stderr", None)
            err = stderr.read() if server.poll() is not None and stderr is not None else ""
            why = f"probe server in {server_ns} did not start {err}".strip()
            return Probe(kind, source or "host", label, False, why, "error")
        connect = probe_argv("connect", "--proto", "tcp", str(target), str(port), "--timeout", str(timeout))
        result = net.runner.run(connect, timeout=timeout + 10, netns=source)
        if not result.ok:
            return Probe(kind, source or "host", label, False, _said(result.stdout, result.stderr), "no reply")
        seen = _readline(server, timeout)
        peer = json.loads(seen)["peer"][0] if seen.startswith("{") else "?"
        return Probe(kind, source or "host", label, True, f"{server_ns} saw peer {peer}", "reply")
    finally:
        end_process(server)


def _said(stdout: str, stderr: str) -> str:
    """The probe client's error ("timed out", "Connection refused"), else what it printed."""
    try:
        said = json.loads(stdout)
    except ValueError:
        said = None
    if isinstance(said, dict) and said.get("error"):
        return str(said["error"])
    return stdout.strip() or stderr.strip()


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    # a runner's stand-in processes may have no output pipe (a fake one)
    return read_line(getattr(proc, "stdout", None), timeout)


def _served_by(net: Network, netns: str, port: int) -> str | None:
    """The name of the network's process in ``netns`` that is ready once it listens on TCP ``port``."""
    for proc in net.processes:
        if proc.netns == netns and proc.ready is not None and (proc.ready.kind, proc.ready.port) == ("tcp", port):
            return proc.name
    return None


def _label(target: IPv4Address | IPv6Address, port: int) -> str:
    """``ADDRESS:PORT``, an IPv6 address in brackets."""
    return f"[{target}]:{port}" if target.version == 6 else f"{target}:{port}"


def _connect(
    net: Network, source: str | None, target: IPv4Address | IPv6Address, port: int, timeout: float, served: str
) -> Probe:
    """A TCP handshake from ``source`` to ``target``:``port``, answered by the network's process ``served``."""
    connect = probe_argv(
        "connect", "--connect-only", "--proto", "tcp", str(target), str(port), "--timeout", str(timeout)
    )
    result = net.runner.run(connect, timeout=timeout + 10, netns=source)
    label = _label(target, port)
    if not result.ok:
        return Probe("forward", source or "host", label, False, _said(result.stdout, result.stderr), "no reply")
    return Probe("forward", source or "host", label, True, f"connected to process {served}", "reply")


def _nat_probe(
    net: Network, source: str, server_ns: str, target: IPv4Address | IPv6Address, port: int, timeout: float
) -> Probe:
    probe = _exchange(net, "nat", source, server_ns, target, port, timeout)
    own = net.addresses6()[source].ip if target.version == 6 else net.addresses()[source].ip
    if probe.ok and probe.detail.endswith(f" {own}"):
        return attrs.evolve(probe, ok=False, detail=probe.detail + " (not masqueraded)")
    return probe

"""Network.check: the probe plan (ring peers, NAT sample), the exact probe commands, rounds within the
neighbour table, retries, the messages kept, the refusal, a network that is down, the warning."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import struct
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from netnskit import probe
from netnskit.errors import ConflictError, ValidationError
from netnskit.network import Network
from netnskit.network.check import PROBE_FILE, plan_check
from netnskit.network.neighbours import NeighbourLimits, NeighbourNeed, neighbour_warning
from netnskit.runner import Result
from netnskit.testing import FakeProcess, FakeRunner

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed.toml"
PING = [sys.executable, "-I", "-S", PROBE_FILE, "ping"]


class ProbeFake(FakeRunner):
    """A FakeRunner that answers ``probe.py ping`` as the probe would: a line per target, then the figures."""

    def __init__(self, answers: dict[tuple[str, str], dict[str, object]] | None = None) -> None:
        super().__init__()
        self.answers = answers or {}

    def run(
        self, argv: Sequence[str], *, input: str | None = None, timeout: float | None = None, netns: str | None = None
    ) -> Result:
        result = super().run(argv, input=input, timeout=timeout, netns=netns)
        if list(argv[:5]) != PING or result.stdout or result.returncode:
            return result
        lines = []
        for spec in (a for a in argv[5:] if "=" in a):
            source, _, targets = spec.partition("=")
            for target in targets.split(","):
                line = {"source": source, "target": target, "ok": True, "outcome": "reply", "tries": 1, "detail": ""}
                line.update(self.answers.get((source, target), {}))
                lines.append(json.dumps(line))
        lines.append(json.dumps({"neighbours": {"before": 0, "peak": 6, "left": 0}}))
        return Result(result.argv, 0 if all('"ok": true' in x for x in lines[:-1]) else 1, "\n".join(lines) + "\n")

    def start(self, argv: Sequence[str], *, netns: str | None = None, stdin: bool = False) -> FakeProcess:
        """A probe server that is ready and reports one peer (the host's LAN address), as a pipe."""
        proc = super().start(argv, netns=netns, stdin=stdin)
        read, write = os.pipe()
        os.write(write, b'ready\n{"peer": ["192.168.1.2", 40000]}\n')
        os.close(write)
        proc.stdout = open(read, encoding="utf-8")  # noqa: SIM115 - closed by end_process
        return proc


def ntable(fake: FakeRunner, thresh2: int = 512, thresh3: int = 1024, entries: int = 0) -> None:
    """Script ``ip -s -j ntable show name arp_cache`` (the limits and the machine's entries)."""
    found = [{"family": "inet", "name": "arp_cache", "thresh1": 128, "thresh2": thresh2, "thresh3": thresh3}]
    found[0].update(entries=entries, table_fulls=0)
    found.append({"family": "inet", "name": "arp_cache", "dev": "lo", "refcnt": 1})
    fake.on(["ip", "-s", "-j", "ntable", "show", "name", "arp_cache"], stdout=json.dumps(found))


def up_host(fake: FakeRunner, net: Network, *, without: Sequence[str] = ()) -> None:
    """Script a host where the network's namespaces and host links exist (but those in ``without``)."""
    names = [{"name": n} for n in net.namespace_names() if n not in without]
    fake.on(["ip", "-j", "netns", "list"], stdout=json.dumps(names))
    links = [{"ifname": "lo", "flags": ["UP"]}]
    links += [{"ifname": n, "ifalias": net.mark, "flags": ["UP"]} for n in net.host_ifnames() if n not in without]
    fake.on(["ip", "-j", "link", "show"], stdout=json.dumps(links))
    ntable(fake)


def wide(count: int, runner: FakeRunner) -> Network:
    """``count`` namespaces n0, n1, ... on one bridge, no firewall."""
    return Network(
        name="wide",
        bridge="br-w",
        subnet="10.70.0.0/16",
        gateway="10.70.0.1",
        namespaces=[{"name": f"n{i}", "host_ifname": f"vw{i}"} for i in range(count)],
        runner=runner,
    )


def pings(fake: FakeRunner) -> list[list[str]]:
    return [a for a in fake.argvs if a[:5] == PING]


def rounds(fake: FakeRunner) -> list[list[str]]:
    """The probe processes of a wide() network in the order of the namespaces they probe (two lanes
    run side by side: which of two rounds started first is the threads' order, not the plan's)."""

    def first(argv: list[str]) -> int:
        return int(next(a for a in argv if "=" in a).partition("=")[0].removeprefix("n"))

    return sorted(pings(fake), key=first)


# --- the plan -----------------------------------------------------------------------------------


def test_each_namespace_pings_the_gateway_and_its_next_two_in_a_ring() -> None:
    plan = plan_check(Network.from_toml(SEED, runner=FakeRunner(strict=True)))
    assert [(p.source, [str(a) for _, a in p.targets]) for p in plan.pings] == [
        ("red", ["192.168.15.5", "192.168.15.2", "192.168.15.3"]),
        ("blue", ["192.168.15.5", "192.168.15.3", "192.168.15.4"]),
        ("orange", ["192.168.15.5", "192.168.15.4", "192.168.15.1"]),
        ("gray", ["192.168.15.5", "192.168.15.1", "192.168.15.2"]),
    ]
    # the masquerade from a spread sample (the first and the middle namespace) to each extra namespace
    assert [(s, ns, str(a)) for s, ns, a in plan.nat] == [
        ("red", "lan", "192.168.1.3"),
        ("orange", "lan", "192.168.1.3"),
        ("red", "internet", "203.0.113.10"),
        ("orange", "internet", "203.0.113.10"),
    ]
    assert [(s, ns, str(a), p, to) for s, ns, a, p, to in plan.forwards] == [
        (None, "blue", "192.168.15.5", 80, 80),
        ("lan", "blue", "192.168.1.2", 80, 80),
    ]
    assert plan.probes == 12 + 4 + 2 and plan.neighbour_entries == 24


def test_the_plan_is_o_n_and_all_pairs_is_the_whole_matrix() -> None:
    net = wide(100, FakeRunner(strict=True))
    ring = plan_check(net)
    assert sum(len(p.targets) for p in ring.pings) == 300
    assert [str(a) for _, a in ring.pings[99].targets] == ["10.70.0.1", "10.70.0.2", "10.70.0.3"]  # wraps to n0, n1
    matrix = plan_check(net, all_pairs=True)
    assert sum(len(p.targets) for p in matrix.pings) == 100 + 100 * 99
    assert plan_check(net, peers=0).probes == 100
    # fewer namespaces than peers: each other one once, never itself
    two = plan_check(wide(2, FakeRunner(strict=True)), peers=5)
    assert [[ns for ns, _ in p.targets] for p in two.pings] == [[None, "n1"], [None, "n0"]]


# --- running it ---------------------------------------------------------------------------------


def test_seed_check_runs_one_probe_process_with_the_exact_argv() -> None:
    fake = ProbeFake()
    net = Network.from_toml(SEED, runner=fake)
    up_host(fake, net)
    report = net.check()
    assert pings(fake) == [
        [
            *PING,
            *["--tries", "3", "--wait", "1", "--host-dev", "v-net-0"],
            "red=192.168.15.5,192.168.15.2,192.168.15.3",
            "blue=192.168.15.5,192.168.15.3,192.168.15.4",
            "orange=192.168.15.5,192.168.15.4,192.168.15.1",
            "gray=192.168.15.5,192.168.15.1,192.168.15.2",
        ]
    ]
    assert [(p.kind, p.source, p.target, p.ok) for p in report.probes[:3]] == [
        ("ping", "red", "192.168.15.5", True),
        ("ping", "red", "192.168.15.2", True),
        ("ping", "red", "192.168.15.3", True),
    ]
    assert report.up and not report.down and report.missing == ()
    assert report.neighbours is not None and report.neighbours.rounds == 1 and report.neighbours.without_rounds == 24


def test_rounds_hold_a_bounded_share_of_the_neighbour_table_and_touch_the_peers_beyond() -> None:
    fake = ProbeFake()
    net = wide(50, fake)
    up_host(fake, net)
    report = net.check(timeout=0.5, tries=2)
    # 512 - 0 in use: a budget of 256, two rounds at a time of 128 entries: 21 namespaces (6 each)
    calls = rounds(fake)
    assert [len([a for a in c if "=" in a]) for c in calls] == [21, 21, 8]
    first = calls[0]
    assert first[5:11] == ["--tries", "2", "--wait", "0.5", "--host-dev", "br-w"]
    assert first[11:15] == ["--touch", "n21", "--touch", "n22"]  # n19's and n20's peers, in the next round
    assert first[15] == "n0=10.70.0.1,10.70.0.3,10.70.0.4"
    assert calls[2][-1] == "n49=10.70.0.1,10.70.0.2,10.70.0.3"  # the ring closes
    assert len(report.probes) == 150 and report.ok
    assert report.neighbours is not None
    assert (report.neighbours.budget, report.neighbours.lanes, report.neighbours.rounds) == (256, 2, 3)


def test_a_fuller_table_makes_smaller_rounds() -> None:
    fake = ProbeFake()
    net = wide(50, fake)
    up_host(fake, net)
    ntable(fake, entries=412)  # room 100: a budget of 50, two rounds of 25 at a time: 4 namespaces each
    net.check()
    assert [len([a for a in c if "=" in a]) for c in rounds(fake)] == [4] * 12 + [2]


def test_failed_probes_keep_the_kernels_words() -> None:
    fake = ProbeFake(
        {
            ("gray", "192.168.15.5"): {"ok": False, "outcome": "unreachable", "detail": "send: Network is unreachable"},
            ("red", "192.168.15.2"): {
                "ok": False,
                "outcome": "no reply",
                "tries": 3,
                "detail": "no reply to 3 tries; nothing answered ARP for it (the neighbour entry is incomplete)",
            },
            ("blue", "192.168.15.4"): {"outcome": "reply", "tries": 2, "detail": "reply to try 2"},
        }
    )
    net = Network.from_toml(SEED, runner=fake)
    up_host(fake, net)
    report = net.check()
    failed = {(p.source, p.target): (p.outcome, p.tries, p.detail) for p in report.failures}
    assert failed == {
        ("gray", "192.168.15.5"): ("unreachable", 1, "send: Network is unreachable"),
        ("red", "192.168.15.2"): (
            "no reply",
            3,
            "no reply to 3 tries; nothing answered ARP for it (the neighbour entry is incomplete)",
        ),
    }
    assert "FAIL ping    gray -> 192.168.15.5 send: Network is unreachable" in report.lines()
    assert "ok   ping    blue -> 192.168.15.4 reply to try 2" in report.lines()


def test_a_probe_process_that_does_not_run_fails_its_probes_with_its_message() -> None:
    fake = ProbeFake()
    net = Network.from_toml(SEED, runner=fake)
    up_host(fake, net)
    fake.fail(lambda a: a[:5] == PING, "python3: can't open file 'probe.py': [Errno 2] No such file\n", returncode=2)
    report = net.check()
    pinged = [p for p in report.probes if p.kind == "ping"]
    assert len(pinged) == 12 and not any(p.ok for p in pinged)
    assert {p.detail for p in pinged} == {
        "the probe did not run: python3: can't open file 'probe.py': [Errno 2] No such file"
    }


def test_progress_says_the_cost_first_then_counts() -> None:
    fake = ProbeFake()
    net = wide(50, fake)
    up_host(fake, net)
    calls: list[tuple[int, int, str]] = []
    net.check(progress=lambda done, total, what: calls.append((done, total, what)))
    assert calls[0][:2] == (0, 150)
    assert calls[0][2].startswith("check: 150 probes (150 pings, gateway and ring peers; 0 NAT; 0 forward) in 3 rounds")
    assert "holding at most 256 neighbour entries together" in calls[0][2] and "(300 if kept)" in calls[0][2]
    assert [c[0] for c in calls[1:]] == [63, 126, 150]


def test_the_all_pairs_matrix_is_refused_where_a_round_would_not_fit_before_any_probe() -> None:
    fake = ProbeFake()
    net = wide(200, fake)
    up_host(fake, net)
    with pytest.raises(ConflictError) as info:
        net.check(all_pairs=True)
    message = str(info.value)
    assert "the all-pairs matrix of network 'wide' (40000 probes) would overflow the neighbour table" in message
    assert "namespace 'n0' alone needs 400 entries at once, and a round may hold 256" in message
    assert "kept, the matrix would need 80000" in message
    assert "shared by every namespace on this machine" in message
    assert "sysctl -w net.ipv4.neigh.default.gc_thresh2=" in message and "or check without all pairs" in message
    assert pings(fake) == []


def test_the_all_pairs_matrix_runs_one_namespace_a_round_where_it_fits() -> None:
    fake = ProbeFake()
    net = wide(30, fake)
    up_host(fake, net)
    report = net.check(all_pairs=True)
    calls = pings(fake)
    # 60 entries each: two rounds of 2 namespaces at a time (128 entries each), every other touched
    assert len(calls) == 15 and len(report.probes) == 30 * 30
    assert calls[0].count("--touch") == 28


def test_a_table_too_full_refuses_even_the_default_plan() -> None:
    fake = ProbeFake()
    net = wide(10, fake)
    up_host(fake, net)
    ntable(fake, entries=505)
    with pytest.raises(ConflictError, match=r"the check of network 'wide' \(30 probes\) would overflow"):
        net.check()
    assert pings(fake) == []


def test_check_on_a_network_that_is_down_says_so_and_probes_nothing() -> None:
    fake = ProbeFake()
    net = Network.from_toml(SEED, runner=fake)
    up_host(fake, net, without=[*net.namespace_names(), *net.host_ifnames()])
    report = net.check()
    assert report.down and not report.up and not report.ok and report.probes == ()
    assert report.lines() == ["network seed is down: none of its namespaces or links exist; nothing was probed"]
    assert pings(fake) == [] and fake.started == []


def test_a_network_partly_up_is_probed_and_says_what_is_missing() -> None:
    fake = ProbeFake()
    net = Network.from_toml(SEED, runner=fake)
    up_host(fake, net, without=["gray", "veth-gray"])
    report = net.check()
    assert report.missing == ("namespace gray", "host link veth-gray") and not report.up and not report.down
    assert report.lines()[0] == "network seed is not fully up: missing namespace gray, host link veth-gray"
    assert len(pings(fake)) == 1


@pytest.mark.parametrize(
    ("kw", "what"), [({"tries": 0}, "check tries"), ({"timeout": 0}, "check timeout"), ({"peers": -1}, "check peers")]
)
def test_bad_check_arguments_are_refused_before_any_command(kw: dict[str, int], what: str) -> None:
    fake = FakeRunner(strict=True)
    with pytest.raises(ValidationError, match=what):
        Network.from_toml(SEED, runner=fake).check(**kw)  # type: ignore[arg-type]
    assert fake.argvs == []


# --- the CLI ------------------------------------------------------------------------------------


def test_cli_check_exit_codes_and_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from netnskit.cli import main

    fake = ProbeFake({("red", "192.168.15.5"): {"ok": False, "outcome": "no reply", "tries": 3, "detail": "x"}})
    up_host(fake, Network.from_toml(SEED, runner=fake))
    assert main(["check", str(SEED)], runner=fake) == 1
    out = capsys.readouterr().out
    assert "FAIL ping    red -> 192.168.15.5 x" in out and "ok   ping    blue -> 192.168.15.5" in out
    assert "ok   nat     red -> 192.168.1.3:47001 lan saw peer 192.168.1.2" in out
    assert out.endswith("17/18 probes passed\n")

    down = ProbeFake()
    net = Network.from_toml(SEED, runner=down)
    up_host(down, net, without=[*net.namespace_names(), *net.host_ifnames()])
    assert main(["check", str(SEED)], runner=down) == 3
    assert capsys.readouterr().out.endswith("nothing probed: bring network seed up first (netnskit up FILE)\n")
    assert main(["check", "--json", str(SEED)], runner=down) == 3
    data = json.loads(capsys.readouterr().out)
    assert data["down"] is True and data["ok"] is False and data["probes"] == []


def test_cli_all_pairs_says_its_cost_first_and_takes_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    from netnskit.cli import main

    fake = ProbeFake()
    up_host(fake, Network.from_toml(SEED, runner=fake))
    assert main(["check", "--all-pairs", "--tries", "2", "--timeout", "0.5", str(SEED)], runner=fake) == 0
    err = capsys.readouterr().err
    assert err.startswith("check: 26 probes (16 pings, all pairs; 8 NAT; 2 forward) in 1 rounds, 2 at a time")
    assert pings(fake)[0][5:9] == ["--tries", "2", "--wait", "0.5"]


# --- the neighbour table -----------------------------------------------------------------------


def test_the_limits_are_read_with_ip_ntable_then_sysctl_then_assumed() -> None:
    fake = FakeRunner()
    ntable(fake, thresh2=2048, thresh3=4096, entries=17)
    assert NeighbourLimits.read(fake) == NeighbourLimits(128, 2048, 4096, 17, table_fulls=0)
    fake = FakeRunner().fail(["ip", "-s", "-j", "ntable", "show", "name", "arp_cache"], "Object unknown\n")
    sysctl = ["sysctl", "-n", *(f"net.ipv4.neigh.default.gc_thresh{i}" for i in (1, 2, 3))]
    fake.on(sysctl, stdout="256\n1024\n2048\n")
    assert NeighbourLimits.read(fake) == NeighbourLimits(256, 1024, 2048)
    fake.fail(sysctl, "sysctl: cannot stat /proc/sys/net/ipv4/neigh/default/gc_thresh1: No such file or directory\n")
    assert NeighbourLimits.read(fake) == NeighbourLimits(128, 512, 1024, assumed=True)


def test_the_warning_names_the_need_the_limit_and_the_sysctl_to_raise() -> None:
    net = wide(1000, FakeRunner(strict=True))
    need = NeighbourNeed.of(net)
    assert (need.gateway, need.peer_entries, need.total) == (2000, 4000, 6000)
    warning = neighbour_warning("wide", need, NeighbourLimits(128, 512, 1024, 24))
    assert warning == (
        "neighbour table: network 'wide' may need 6000 IPv4 neighbour entries (1000 namespaces and their "
        "gateway: 2000; 2 peers each: 4000), more than net.ipv4.neigh.default.gc_thresh3 = 1024 allows "
        "(net.ipv4.neigh.default.gc_thresh2 = 512, gc_thresh3 = 1024; in use now on the whole machine: 24). "
        "The table is shared by every namespace on this machine: above gc_thresh2 the kernel evicts their "
        "entries, at gc_thresh3 new ones fail everywhere. Raise the limit on the host: "
        "sysctl -w net.ipv4.neigh.default.gc_thresh2=8192 net.ipv4.neigh.default.gc_thresh3=16384"
    )
    assert neighbour_warning("wide", NeighbourNeed.of(wide(80, FakeRunner())), NeighbourLimits(128, 512, 1024)) is None
    between = neighbour_warning("wide", NeighbourNeed.of(wide(100, FakeRunner())), NeighbourLimits(128, 512, 1024))
    assert between is not None and "more than net.ipv4.neigh.default.gc_thresh2 = 512 allows" in between


def test_up_and_check_warn_when_the_network_may_not_fit(caplog: pytest.LogCaptureFixture) -> None:
    fake = ProbeFake()
    net = wide(100, fake)
    up_host(fake, net)
    with caplog.at_level(logging.WARNING, logger="netnskit"):
        report = net.check()
    assert report.warnings and report.warnings[0].startswith("neighbour table: network 'wide' may need 600")
    assert [r.getMessage() for r in caplog.records] == list(report.warnings)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="netnskit"):
        wide(100, fake).up()
    assert any("may need 600 IPv4 neighbour entries" in r.getMessage() for r in caplog.records)
    caplog.clear()
    seed = ProbeFake()
    up_host(seed, Network.from_toml(SEED, runner=seed))
    with caplog.at_level(logging.WARNING, logger="netnskit"):
        Network.from_toml(SEED, runner=seed).check()
    assert caplog.records == []


# --- the probe's own logic (no sockets) ---------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_retries_tell_loss_from_absence() -> None:
    clock = Clock()
    lossy, silent, gone, full = (probe.Target("a", f"10.0.0.{i}") for i in range(1, 5))
    sent: list[tuple[str, int]] = []

    def send(target: probe.Target, attempt: int) -> None:
        sent.append((target.address, attempt))
        if target is gone:
            target.send_failed(OSError(errno.ENETUNREACH, "Network is unreachable"))
        if target is full:
            target.send_failed(OSError(errno.ENOBUFS, "No buffer space available"))

    def receive(left: float) -> None:
        if lossy.tries == 2 and lossy.waiting:
            lossy.replied()
        clock.now += left

    probe.run_tries([lossy, silent, gone, full], send, receive, tries=3, wait=1.0, clock=clock)
    assert sent == [
        *[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1), ("10.0.0.4", 1)],
        *[("10.0.0.1", 2), ("10.0.0.2", 2), ("10.0.0.4", 2)],
        *[("10.0.0.2", 3), ("10.0.0.4", 3)],
    ]
    assert (lossy.ok, lossy.tries, lossy.detail) == (True, 2, "reply to try 2")
    assert (silent.ok, silent.outcome, silent.tries) == (False, "no reply", 3)
    assert (gone.outcome, gone.tries, gone.detail) == ("unreachable", 1, "send: Network is unreachable")
    assert (full.outcome, full.tries, full.detail) == ("error", 3, "send: No buffer space available (3 tries)")
    assert clock.now == 3.0  # each try waited its full second for the silent one


def _ip(src: str, dst: str, payload: bytes) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, 1, 0, socket.inet_aton(src), socket.inet_aton(dst)
    )
    return header + payload


def test_echo_replies_and_unreachables_are_matched_to_their_request() -> None:
    request = probe.echo_request(0x1234, 2)
    assert request[:2] == b"\x08\x00" and probe._checksum(request) == 0
    reply = b"\x00\x00" + request[2:]  # the same id and sequence
    assert probe.parse_icmp(_ip("10.0.0.7", "10.0.0.2", reply)) == ("reply", 0x1234, "10.0.0.7", "")
    inner = _ip("10.0.0.2", "10.0.0.9", request)[:28]
    unreachable = struct.pack("!BBHI", 3, 1, 0, 0) + inner
    assert probe.parse_icmp(_ip("10.0.0.2", "10.0.0.2", unreachable)) == (
        "unreachable",
        0x1234,
        "10.0.0.9",
        "From 10.0.0.2: Destination Host Unreachable",
    )
    assert probe.parse_icmp(_ip("10.0.0.2", "10.0.0.2", struct.pack("!BBHI", 11, 0, 0, 0) + inner)) is None

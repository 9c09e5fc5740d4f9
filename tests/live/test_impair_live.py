"""Impairments live, in a sandbox: the effect measured with real packets, not the commands.

Two namespaces on a bridge (a small neighbour table). Loss: ping's lost share within the bounds of
an exact binomial test. Rate: a 2 MB TCP transfer at 8 mbit/s is never faster than the rate, and
the best of up to five is within 15% of it, with tbf's own counters showing it set the pace. A cable
cut stops traffic and its restore brings it back (waiting on operstate). A fault schedule's changes
happen in order, none before its time and each before the next one's, with the kernel state read
at each, and everything is as the file says at its end and after Ctrl-C. A 50 ms delay gives a
100 ms round trip where the kernel has netem; where it has not (this project's machines), the file is refused, naming
sch_netem, and nothing changes.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from netnskit.errors import UnsupportedError
from netnskit.executors import BatchExecutor, SerialExecutor
from netnskit.network import Network
from netnskit.network.faults import FaultEvent
from netnskit.qdisc import Impairment
from netnskit.runner import Process, Result, Runner
from netnskit.sandbox import Sandbox
from netnskit.snapshot import HostState, _clean_save

A, B = "10.77.0.2", "10.77.0.3"


def lab(box: Sandbox, tmp_path: Path, *, a: str = "", b: str = "", faults: str = "") -> Network:
    """Two namespaces, a and b, on one bridge; ``a``/``b``: their impair tables; ``faults``: [[fault]]s."""
    text = textwrap.dedent(
        f"""
        [network]
        name = "lab"
        bridge = "br-lab"
        subnet = "10.77.0.0/24"
        gateway = "10.77.0.1"

        [[namespace]]
        name = "a"
        address = "{A}"
        {f"impair = {a}" if a else ""}

        [[namespace]]
        name = "b"
        address = "{B}"
        {f"impair = {b}" if b else ""}
        """
    )
    path = tmp_path / "lab.toml"
    path.write_text(text + textwrap.dedent(faults))
    return Network.from_toml(path, runner=box.runner)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def link(box: Sandbox, netns: str | None, dev: str) -> dict[str, Any]:
    out = box.run(["ip", "-j", "link", "show", "dev", dev], netns=netns).check().stdout
    return dict(json.loads(out)[0])


def qdiscs(box: Sandbox, netns: str | None, dev: str) -> list[dict[str, Any]]:
    out = box.run(["tc", "-j", "qdisc", "show", "dev", dev], netns=netns).check().stdout
    return list(json.loads(out or "[]"))


def ping(box: Sandbox, netns: str, to: str, *, count: int = 1, interval: str = "0.2", wait: str = "1") -> int:
    """How many of ``count`` echo requests got a reply."""
    result = box.run(["ping", "-n", "-q", "-c", str(count), "-i", interval, "-W", wait, to], netns=netns)
    if "Network is unreachable" in result.stderr:
        return 0  # no route: nothing was sent
    found = re.search(r"(\d+) received", result.stdout)
    assert found, result.stdout + result.stderr
    return int(found.group(1))


def state_of(box: Sandbox) -> dict[str, Any]:
    """Every place's links (up, qdisc), IPv4 addresses and routes, qdiscs and netfilter: to compare before and after.

    (IPv4 only: the bridge gets its IPv6 link-local address a while after it comes up, cut or not.)
    """
    out: dict[str, Any] = {}
    names = [d["name"] for d in json.loads(box.run(["ip", "-j", "netns", "list"]).check().stdout or "[]")]
    for where in [None, *sorted(names)]:
        links = json.loads(box.run(["ip", "-j", "link", "show"], netns=where).check().stdout)
        out[f"{where} links"] = sorted((d["ifname"], tuple(d["flags"]), d.get("qdisc")) for d in links)
        out[f"{where} addresses"] = box.run(["ip", "-4", "-j", "addr", "show"], netns=where).check().stdout
        out[f"{where} routes"] = box.run(["ip", "-4", "-j", "route", "show"], netns=where).check().stdout
        tc = json.loads(box.run(["tc", "-j", "qdisc", "show"], netns=where).check().stdout or "[]")
        out[f"{where} qdiscs"] = sorted(json.dumps({k: q[k] for k in ("dev", "kind", "handle", "options")}) for q in tc)
        out[f"{where} iptables"] = _clean_save(box.run(["iptables-save"], netns=where).check().stdout)
    return out


def settles_to(box: Sandbox, before: dict[str, Any], timeout: float = 5.0) -> None:
    """Wait (bounded) for every place to be as ``before`` (a link's carrier comes a moment after it is up)."""
    deadline = time.monotonic() + timeout
    while (now := state_of(box)) != before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert {k: v for k, v in now.items() if v != before.get(k)} == {}, {k: before.get(k) for k in now}


# --- loss ------------------------------------------------------------------------------------


def binomial_bounds(n: int, p: float, alpha: float) -> tuple[int, int]:
    """The smallest range [lo, hi] of successes out of ``n`` holding all but ``alpha`` of the Binomial(n, p) mass."""
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    lo, tail = 0, 0.0
    while tail + pmf[lo] <= alpha / 2:
        tail += pmf[lo]
        lo += 1
    hi, tail = n, 0.0
    while tail + pmf[hi] <= alpha / 2:
        tail += pmf[hi]
        hi -= 1
    return lo, hi


@pytest.mark.parametrize("executor", [SerialExecutor, BatchExecutor], ids=["serial", "batch"])
def test_loss_of_20_percent_each_way_loses_what_a_binomial_test_allows(
    sandbox: Sandbox, tmp_path: Path, executor: type[SerialExecutor] | type[BatchExecutor]
) -> None:
    net = lab(sandbox, tmp_path, a='{ loss = "20%" }')
    net.up(executor())
    # the neighbour entries first (netfilter does not drop ARP; netem would, and ARP retries)
    wait_for("b to reach a", lambda: ping(sandbox, "b", A) == 1)
    probes = 400
    received = ping(sandbox, "b", A, count=probes, interval="0.01", wait="1")
    # a request and its reply each cross a's cable once, each lost with probability 0.2
    low, high = binomial_bounds(probes, 0.8 * 0.8, 1e-6)
    assert low <= received <= high, f"{received}/{probes} replies, allowed {low}..{high} (p=0.64, alpha=1e-6)"
    net.down()


# --- rate ------------------------------------------------------------------------------------

RECEIVER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], 5001))
server.listen(1)
print("ready", flush=True)
conn, _ = server.accept()
total = 0
while data := conn.recv(65536):
    total += len(data)
print(total, flush=True)
"""

SENDER = """
import socket, sys, time
size = int(sys.argv[2])
start = time.monotonic()
conn = socket.create_connection((sys.argv[1], 5001), timeout=30)
chunk = b"x" * 65536
while size > 0:
    size -= conn.send(chunk[: min(size, len(chunk))])
conn.shutdown(socket.SHUT_WR)
conn.recv(1)  # end of file: the receiver has read every byte and closed
print(time.monotonic() - start, flush=True)
"""


def tbf_counters(box: Sandbox, netns: str | None, dev: str) -> tuple[int, int]:
    """The root tbf's bytes sent and overlimits (packets it held back for want of tokens), read with tc -s."""
    out = box.run(["tc", "-s", "-j", "qdisc", "show", "dev", dev], netns=netns).check().stdout
    (root,) = (q for q in json.loads(out) if q.get("root"))
    assert root["kind"] == "tbf", root
    return int(root["bytes"]), int(root["overlimits"])


def transfer(box: Sandbox, sender: str, receiver: str, address: str, size: int) -> float:
    """Seconds from the sender's connect to the receiver's close, once every one of ``size`` bytes was read.

    Timed by the sender around the whole exchange, so a busy machine can only make it longer: a shaper
    that let bytes through too fast cannot hide behind a receiver that started reading late.
    """
    server = box.start([sys.executable, "-c", RECEIVER, address], netns=receiver)
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "ready"
    sent = box.run([sys.executable, "-c", SENDER, address, str(size)], netns=sender, timeout=60).check()
    total = server.stdout.readline().strip()
    server.wait(timeout=10)
    assert int(total) == size
    return float(sent.stdout.strip())


def shaped(box: Sandbox, sender: str, receiver: str, address: str, at: tuple[str | None, str]) -> list[float]:
    """Transfers of 2 MB through the 8 mbit tbf at ``at`` (its place, its device), each within the rate.

    Every transfer holds to the rate: it takes at least the bytes tbf counted (frames, headers too) less
    one burst, at 1,000,000 bytes/s, and tbf held packets back (overlimits). A loaded machine only
    slows a transfer down, so up to five are made, until one is within 15% of the bytes at the rate.
    """
    burst = int(qdiscs(box, *at)[0]["options"]["burst"])  # the kernel's (about 10 frames: 15 ms)
    seconds: list[float] = []
    while len(seconds) < 5:
        bytes_before, held_before = tbf_counters(box, *at)
        took = transfer(box, sender, receiver, address, 2_000_000)
        bytes_after, held_after = tbf_counters(box, *at)
        counted = bytes_after - bytes_before
        assert counted >= 2_000_000, f"tbf counted {counted} bytes for a 2 MB transfer"
        assert held_after > held_before, "tbf held nothing back: it was not what set the pace"
        assert took >= (counted - burst) / RATE, f"{counted} bytes in {took:.3f} s: faster than 8mbit"
        seconds.append(took)
        if took <= 1.15 * counted / RATE:
            return seconds
    raise AssertionError(f"2 MB at 8mbit: no transfer within 15% of the rate in {seconds} s")


RATE = 1_000_000  # 8mbit, in bytes per second


def test_rate_of_8_mbit_moves_2_megabytes_in_2_seconds(sandbox: Sandbox, tmp_path: Path) -> None:
    net = lab(sandbox, tmp_path, a='{ rate = "8mbit" }')
    net.up()
    wait_for("b to reach a", lambda: ping(sandbox, "a", B) == 1)
    # the kernel reports what the file asks, on both ends
    assert qdiscs(sandbox, "a", "eth0")[0]["options"]["rate"] == RATE
    assert qdiscs(sandbox, None, "veth-a")[0]["options"]["rate"] == RATE
    shaped(sandbox, "a", "b", B, ("a", "eth0"))
    # both directions: b to a is limited too, by the host end of a's cable
    shaped(sandbox, "b", "a", A, (None, "veth-a"))
    net.down()


# --- the cable cut and restored --------------------------------------------------------------


def test_a_cable_cut_stops_traffic_and_its_restore_brings_it_back(sandbox: Sandbox, tmp_path: Path) -> None:
    net = lab(sandbox, tmp_path, b='{ rate = "8mbit" }')  # its qdiscs outlive the cut
    net.up()
    before = state_of(sandbox)
    wait_for("a to reach b", lambda: ping(sandbox, "a", B) == 1)
    net.link_down("b")
    for netns, dev in (("b", "eth0"), (None, "veth-b")):
        wait_for(f"{dev} down", lambda netns=netns, dev=dev: link(sandbox, netns, dev)["operstate"] == "DOWN")
    assert ping(sandbox, "a", B, count=3) == 0
    assert ping(sandbox, "b", A, count=1) == 0  # b lost its routes with its link: nothing leaves
    net.link_up("b")
    for netns, dev in (("b", "eth0"), (None, "veth-b")):
        wait_for(f"{dev} up", lambda netns=netns, dev=dev: link(sandbox, netns, dev)["operstate"] == "UP")
    wait_for("a to reach b again", lambda: ping(sandbox, "a", B) == 1)
    wait_for("b to reach the gateway", lambda: ping(sandbox, "b", "10.77.0.1") == 1)  # b's default route is back
    assert net.missing_steps() == []
    settles_to(sandbox, before)
    net.down()


# --- changed in the file, at run time, and gone with down -------------------------------------


def test_up_applies_a_changed_impairment_and_down_leaves_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    clean = HostState.capture(sandbox.runner)
    net = lab(sandbox, tmp_path, a='{ rate = "8mbit", loss = "10%" }')
    net.up()
    changed = lab(sandbox, tmp_path, a='{ rate = "4mbit" }')
    assert [s.description for s in changed.missing_steps()][:1] == [
        "impair namespace a: eth0 in a sends with rate 4mbit (tc tbf)"
    ]
    changed.up()
    for netns, dev in (("a", "eth0"), (None, "veth-a")):
        (root,) = qdiscs(sandbox, netns, dev)
        assert (root["kind"], root["options"]["rate"]) == ("tbf", 500_000)
    assert "statistic" not in sandbox.run(["iptables-save"], netns="a").check().stdout
    assert changed.missing_steps() == [] and changed.status().up
    # at run time: the file's impairment gives way, up puts it back
    changed.impair("a", clear=True)
    assert [q["kind"] for q in qdiscs(sandbox, "a", "eth0")] == ["noqueue"]
    assert not changed.status().up
    changed.impair("a", Impairment(loss="30%", direction="in"))
    saved = sandbox.run(["iptables-save"], netns="a").check().stdout
    drops = re.findall(r"^-A (\w+) -([io]) eth0 -m statistic --mode random --probability ([\d.]+) ", saved, re.M)
    # what a receives only: one rule, before anything else sees the packet (a kernel with netem: tc instead)
    if net.netem_support().available is False:
        assert [(chain, flag, round(float(p), 6)) for chain, flag, p in drops] == [("PREROUTING", "i", 0.3)]
    else:
        assert drops == [] and qdiscs(sandbox, None, "veth-a")[0]["kind"] == "netem"
    changed.up()
    assert changed.status().up and "statistic" not in sandbox.run(["iptables-save"], netns="a").check().stdout
    unimpaired = lab(sandbox, tmp_path)
    unimpaired.up()
    assert [q["kind"] for q in qdiscs(sandbox, "a", "eth0")] == ["noqueue"]
    assert [q["kind"] for q in qdiscs(sandbox, None, "veth-a")] == ["noqueue"]
    unimpaired.down()
    assert HostState.capture(sandbox.runner).diff(clean) == []


# --- delay: measured where the kernel has netem, refused where it has not ---------------------


def test_a_50_ms_delay_gives_a_100_ms_round_trip_or_is_refused_without_netem(sandbox: Sandbox, tmp_path: Path) -> None:
    net = lab(sandbox, tmp_path, a='{ delay = "50ms" }')
    support = net.netem_support()
    if support.available is False:
        # this project's machines: CONFIG_NET_SCH_NETEM is not set. The file is refused before anything changes.
        before = state_of(sandbox)
        with pytest.raises(UnsupportedError) as caught:
            net.up()
        text = str(caught.value)
        for needed in ("delay = '50ms'", "sch_netem", "modprobe sch_netem", "linux-image", "linux-modules-extra"):
            assert needed in text
        assert "rate (tbf) and loss" in text
        assert state_of(sandbox) == before
        return
    assert support.available, support.detail
    net.up()
    wait_for("a to reach b", lambda: ping(sandbox, "a", B) == 1)
    result = sandbox.run(["ping", "-n", "-c", "20", "-i", "0.2", B], netns="a").check()
    rtt_min, rtt_avg = (float(x) for x in re.search(r"= ([\d.]+)/([\d.]+)/", result.stdout).groups())  # type: ignore[union-attr]
    # 50 ms on each end's egress; netem never sends early, and its timer is late by at most a tick (the
    # fastest of 20: a loaded machine can only add to a round trip, and ping takes the kernel's stamps)
    assert 100.0 <= rtt_min <= 110.0 and rtt_avg >= 100.0, result.stdout
    net.down()


# --- faults over time --------------------------------------------------------------------------

FAULTS = """
[[fault]]
at = "1s"
for = "1s"
link = "b"
down = true

[[fault]]
at = "2500ms"
for = "1s"
link = "a"
impair = { rate = "2mbit", loss = "50%" }
"""


class Stamped:
    """Passes every command on; stamps each write (not a read): when it was run, and when it returned."""

    def __init__(self, inner: Runner) -> None:
        self.inner = inner
        self.writes: list[tuple[float, float, list[str]]] = []

    def run(self, argv: Sequence[str], **kw: Any) -> Result:
        called = time.monotonic()
        result = self.inner.run(argv, **kw)
        if "-j" not in argv and "iptables-save" not in argv[0] and argv[0] not in ("readlink", "unshare", "modinfo"):
            self.writes.append((called, time.monotonic(), list(argv)))
        return result

    def start(self, argv: Sequence[str], **kw: Any) -> Process:
        return self.inner.start(argv, **kw)


def test_a_fault_schedule_makes_each_change_at_its_time_and_restores_everything(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    lab(sandbox, tmp_path, a='{ rate = "8mbit" }', faults=FAULTS).up()
    before = state_of(sandbox)
    stamped = Stamped(sandbox.runner)
    net = Network.from_toml(tmp_path / "lab.toml", runner=stamped)
    seen: list[tuple[FaultEvent, dict[str, Any]]] = []

    def look(event: FaultEvent) -> None:
        # the kernel right after each change, read with tools of its own
        seen.append(
            (
                event,
                {
                    "b": link(sandbox, "b", "eth0")["flags"],
                    "veth-b": link(sandbox, None, "veth-b")["flags"],
                    "b routes": sandbox.run(["ip", "-4", "-j", "route"], netns="b").check().stdout,
                    "a": qdiscs(sandbox, "a", "eth0"),
                    "a rules": sandbox.run(["iptables-save"], netns="a").check().stdout,
                },
            )
        )

    starts: list[float] = []

    def clock() -> float:
        now = time.monotonic()
        if not starts:
            starts.append(now)  # run_faults' first reading of the clock is the schedule's start
        return now

    events = net.run_faults(report=look, clock=clock)
    assert [e.change.describe() for e in events] == [
        "b: cut (both ends down)",
        "b: restored (both ends up, routes back)",
        "a: impair loss 50% rate 2mbit",
        "a: impairment back to the file's (rate 8mbit)",
    ]
    # each change's first command was run at or after the change's time and before the next change's
    # (the runner's own stamps; the kernel's state after each is checked below). How late is the
    # machine's load, not a property: measured figures (1 to 30 ms) in the README. The reads in look()
    # take a while: the faults are spaced for none of them to delay the next change.
    dues = [event.due for event in events][1:] + [math.inf]
    for event, next_due in zip(events, dues, strict=True):
        made = [
            (called - starts[0], returned - starts[0])
            for called, returned, _ in stamped.writes
            if event.started <= called - starts[0] <= event.done
        ]
        assert made, f"no command ran for {event.line()}"
        called, returned = made[0]
        assert event.due <= called < next_due, f"{event.line()}: its first command ran at {called:.3f}s"
        assert returned <= event.done
    cut, restored, impaired, back = (kernel for _, kernel in seen)
    assert "UP" not in cut["b"] and "UP" not in cut["veth-b"] and cut["b routes"].strip() == "[]"
    assert "UP" in restored["b"] and "UP" in restored["veth-b"] and "default" in restored["b routes"]
    # (a kernel with netem: netem drops, with tbf in its class)
    assert [q["options"]["rate"] for q in impaired["a"] if q["kind"] == "tbf"] == [250_000]
    uses_netfilter = net.netem_support().available is False
    assert ("--probability 0.5" in impaired["a rules"]) == uses_netfilter
    assert back["a"][0]["options"]["rate"] == 1_000_000 and "statistic" not in back["a rules"]
    settles_to(sandbox, before)
    net.down()


def test_ctrl_c_during_a_fault_schedule_restores_every_cable_and_exits_130(sandbox: Sandbox, tmp_path: Path) -> None:
    long_faults = """
    [[fault]]
    at = "0s"
    for = "60s"
    link = "b"
    down = true

    [[fault]]
    at = "200ms"
    for = "60s"
    link = "a"
    impair = { rate = "1mbit" }
    """
    net = lab(sandbox, tmp_path, faults=long_faults)
    net.up()
    before = state_of(sandbox)
    path = tmp_path / "lab.toml"
    argv = sandbox.enter_argv([sys.executable, "-m", "netnskit", "faults", str(path)])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        # the change as made ("[  0.2s] a: ..."), not the schedule printed first
        while not any("] a: impair rate 1mbit" in line for line in lines):
            line = proc.stdout.readline()
            assert line, f"the schedule ended early: {lines} {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line)
        assert link(sandbox, "b", "eth0")["operstate"] == "DOWN"
        assert qdiscs(sandbox, "a", "eth0")[0]["kind"] == "tbf"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "b: restored (both ends up, routes back)  (restoring after an interruption)" in out
    assert "a: impairment back to the file's (none)  (restoring after an interruption)" in out
    settles_to(sandbox, before)
    net.down()

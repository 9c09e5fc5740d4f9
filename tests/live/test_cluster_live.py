"""A network across three sandbox hosts, each running a real sshd, driven over ssh from a fourth.

The hosts are :class:`netnskit.cluster.lab.SandboxHosts`: three sandboxes (own network and mount
namespaces, a private ``/run``), each with OpenSSH's ``sshd`` listening only on its underlay
address (10.200.0.1-3, which exist only inside the sandboxes) with keys made for the test; the
driver sandbox holds the underlay bridge and runs the controller's ssh. The seed story
(examples/cluster.toml) comes up across them: red (host a) and blue (host b) ping each other,
blue reaches the internet stand-in masqueraded by the gateway host, the LAN host reaches blue
through the gateway host's port forward, all with real packets over VXLAN; ``down`` leaves every
host exactly as before. The same after a failure on one host (every host rolled back) and after
a SIGKILL of ``up`` mid-way (then ``down`` from the marks alone).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from netnskit.cluster import Cluster, vni_for
from netnskit.cluster.lab import SandboxHosts, lab_problem
from netnskit.errors import StepError
from netnskit.executors import BatchExecutor, Executor, SerialExecutor
from netnskit.network import group_for
from netnskit.pytest_plugin import live_required
from netnskit.runner import LiveRunner, Result, Runner
from netnskit.snapshot import HostState

CLUSTER = Path(__file__).resolve().parents[2] / "examples" / "cluster.toml"
EXECUTORS = [pytest.param(SerialExecutor, id="serial"), pytest.param(BatchExecutor, id="batch")]
_READ = re.compile(
    r"(^| )(-j|iptables-save|ip6tables-save|-C|-V)( |$)|^sysctl -n |^readlink |(^| )nft (-j )?list "
    # the files under /etc/netns (first lines, digests), the processes' pid files and marks
    r"|(^|-- )(grep|find|ss|tail|sha256sum) "
)
PY = sys.executable


@pytest.fixture(scope="module")
def lab() -> Iterator[SandboxHosts]:
    problem = lab_problem()
    if problem:
        if live_required():
            pytest.fail(f"live test cannot run: {problem}", pytrace=False)
        pytest.skip(f"live test skipped: {problem}")
    real = HostState.capture(LiveRunner())  # read only: the real host, which nothing here may change
    hosts = SandboxHosts(3).open()
    sshd = [h.sshd.pid for h in hosts.hosts]
    try:
        yield hosts
    finally:
        hosts.close()
    for pid in sshd:  # ended by pid and reaped
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert HostState.capture(LiveRunner()).diff(real) == []


def until(test: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Wait for kernel state (a reply, a listening socket): True as soon as ``test`` holds."""
    deadline = time.monotonic() + timeout
    while not test():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def j(runner: Runner, *argv: str) -> list[dict[str, object]]:
    out = runner.run(list(argv)).check().stdout.strip()
    return json.loads(out) if out else []


def states(lab: SandboxHosts) -> dict[str, HostState]:
    return {h.name: HostState.capture(h.box.runner) for h in lab.hosts}


def settled(lab: SandboxHosts, before: dict[str, HostState], timeout: float = 5.0) -> dict[str, list[str]]:
    """Each host's differences from ``before``, once the kernel has finished deleting namespaces."""
    deadline = time.monotonic() + timeout
    while True:
        diff = {name: d for name, state in states(lab).items() if (d := state.diff(before[name]))}
        if not diff or time.monotonic() > deadline:
            return diff
        time.sleep(0.1)


def ssh_clients(lab: SandboxHosts) -> list[str]:
    """ssh processes in the driver (clients and shared connections' masters, ``ssh: PATH [mux]``)."""
    found = []
    for pid in lab.driver.pids_inside():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                words = handle.read().split(b"\0")
        except OSError:
            continue
        if words and (words[0] == b"ssh" or words[0].startswith(b"ssh:")):
            found.append(b" ".join(words).decode(errors="replace"))
    return found


def cluster(lab: SandboxHosts, **runners: Runner) -> Cluster:
    return Cluster.from_toml(CLUSTER, **lab.cluster_options(), runners=runners)


def inside(lab: SandboxHosts, host: str, netns: str, argv: Sequence[str]) -> Result:
    """Run ``argv`` in a namespace of a host directly (not through netnskit or ssh)."""
    return lab.host(host).box.runner.run(["ip", "netns", "exec", netns, *argv])


@pytest.mark.parametrize("executor", EXECUTORS)
def test_seed_across_three_hosts_up_check_down_leaves_every_host_identical(
    lab: SandboxHosts, executor: type[Executor]
) -> None:
    before = states(lab)
    for host in lab.hosts:  # sshd listens on the host's underlay address only
        listening = [line.split()[3] for line in host.box.run(["ss", "-Htln"]).stdout.splitlines()]
        assert [a for a in listening if a.endswith(":22")] == [f"{host.address}:22"]
    seed = cluster(lab)
    with seed:
        seed.up(executor())
        a, b, c = (lab.host(n).box.runner for n in "abc")
        group = group_for("seed")
        # what the kernel of each host did, read there without netnskit
        for name, runner, peers in (("a", a, {"10.200.0.2", "10.200.0.3"}), ("b", b, {"10.200.0.1", "10.200.0.3"})):
            (vx,) = j(runner, "ip", "-d", "-j", "link", "show", "dev", "vx-seed")
            data = vx["linkinfo"]["info_data"]  # type: ignore[index]
            assert (data["id"], data["port"], data["learning"]) == (vni_for("seed"), 4789, False), name
            assert data["local"] == str(lab.host(name).address)
            assert (vx["master"], vx["mtu"], vx["ifalias"], vx["group"]) == (
                "v-net-0",
                1450,
                "netnskit:seed",
                str(group),
            )
            assert vx["operstate"] in ("UP", "UNKNOWN")
            fdb = j(runner, "bridge", "-j", "fdb", "show", "dev", "vx-seed")
            assert {e["dst"] for e in fdb if e.get("mac") == "00:00:00:00:00:00"} == peers
        assert sorted(d["name"] for d in j(a, "ip", "-j", "netns", "list")) == ["internet", "lan", "red"]
        assert sorted(d["name"] for d in j(b, "ip", "-j", "netns", "list")) == ["blue", "gray"]
        assert [d["name"] for d in j(c, "ip", "-j", "netns", "list")] == ["orange"]
        (eth0,) = j(b, "ip", "-n", "blue", "-j", "link", "show", "eth0")
        assert eth0["mtu"] == 1450
        gateway = [x["local"] for d in j(a, "ip", "-j", "addr", "show", "dev", "v-net-0") for x in d["addr_info"]]  # type: ignore[union-attr]
        assert "192.168.15.5" in gateway
        for runner in (b, c):  # the gateway, NAT and forwards live on host a only
            assert not [
                x for d in j(runner, "ip", "-4", "-j", "addr", "show", "dev", "v-net-0") for x in d["addr_info"]
            ]  # type: ignore[union-attr]
            # only the bridge's own accept (bridged traffic passes FORWARD where br_netfilter is loaded)
            ours = [line for line in runner.run(["iptables-save"]).check().stdout.splitlines() if "netnskit" in line]
            assert ours == [
                "-A FORWARD -m comment --comment netnskit -j NETNSKIT-FORWARD",
                "-A NETNSKIT-FORWARD -m comment --comment netnskit -j NETNSKIT-USER",
                '-A NETNSKIT-FORWARD -i v-net-0 -o v-net-0 -m comment --comment "netnskit:seed" -j ACCEPT',
            ]
        assert "-j MASQUERADE" in a.run(["iptables-save"]).check().stdout

        # red (host a) and blue (host b) reach each other over the overlay: wait for a reply
        ping = ["ping", "-n", "-c", "1", "-W", "1"]
        assert until(lambda: inside(lab, "a", "red", [*ping, "192.168.15.2"]).ok)
        assert until(lambda: inside(lab, "b", "blue", [*ping, "192.168.15.1"]).ok)
        # a full-size packet crosses unfragmented (DF), one byte more is refused at the source, not lost
        assert until(lambda: inside(lab, "b", "blue", [*ping, "-M", "do", "-s", "1422", "192.168.15.1"]).ok)
        too_big = inside(lab, "b", "blue", [*ping, "-M", "do", "-s", "1423", "192.168.15.1"])
        assert not too_big.ok and "message too long" in (too_big.stdout + too_big.stderr).lower()

        # masquerade: blue (host b) to the internet stand-in (host a), real TCP, seen as the gateway host
        server = lab.host("a").box.start(
            [PY, "-m", "netnskit.probe", "serve", "--port", "4100", "--timeout", "30"], netns="internet"
        )
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        reply = inside(
            lab, "b", "blue", [PY, "-m", "netnskit.probe", "connect", "203.0.113.10", "4100", "--timeout", "10"]
        )
        assert reply.ok, reply.stdout + reply.stderr
        assert json.loads(reply.stdout)["reply"] == "netnskit-probe 203.0.113.10 192.168.1.2"
        # the port forward: the LAN host (host a) to the gateway host's port 80, answered by blue (host b)
        web = lab.host("b").box.start(
            [PY, "-m", "netnskit.probe", "serve", "--port", "80", "--timeout", "30"], netns="blue"
        )
        assert web.stdout is not None and web.stdout.readline().strip() == "ready"
        fetched = inside(
            lab, "a", "lan", [PY, "-m", "netnskit.probe", "connect", "192.168.1.2", "80", "--timeout", "10"]
        )
        assert fetched.ok, fetched.stdout + fetched.stderr
        assert json.loads(fetched.stdout)["reply"] == "netnskit-probe 192.168.15.2 192.168.1.3"

        status = seed.status()
        assert status.up and [h.host for h in status.hosts] == ["a", "b", "c"]
        assert [h.peers for h in status.hosts] == [
            ("10.200.0.2", "10.200.0.3"),
            ("10.200.0.1", "10.200.0.3"),
            ("10.200.0.1", "10.200.0.2"),
        ]
        report = seed.check()
        assert report.ok, "\n".join(report.lines())
        kinds = [p.kind for p in report.probes]
        assert (kinds.count("ping"), kinds.count("nat"), kinds.count("forward")) == (16, 8, 2)
        assert "ok   ping    red@a -> 192.168.15.2 blue@b" in report.lines()
        assert "ok   ping    orange@c -> 192.168.15.5 gateway@a" in report.lines()

        teardown = seed.down(executor())
        assert teardown.left == () and teardown.already_gone == ()
        assert {r.split(":")[0] for r in teardown.removed} == {"host a", "host b", "host c"}
        assert seed.down(executor()).removed == ()  # twice: nothing left to do
    assert settled(lab, before) == {}
    assert ssh_clients(lab) == []  # the shared connections ended with the block


class FailingOn:
    """Passes commands on; fails the first write whose argv or input ``match`` accepts, without running it."""

    def __init__(self, inner: Runner, match: Callable[[str], bool]) -> None:
        self.inner = inner
        self.match = match
        self.failed: str | None = None

    def run(
        self, argv: Sequence[str], *, input: str | None = None, timeout: float | None = None, netns: str | None = None
    ) -> Result:
        line = " ".join(argv)
        if self.failed is None and not _READ.search(line) and self.match(f"{line}\n{input or ''}"):
            self.failed = line
            return Result(argv, 2, "", "injected failure\n")
        return self.inner.run(argv, input=input, timeout=timeout, netns=netns)

    def start(self, argv: Sequence[str], *, netns: str | None = None, stdin: bool = False):  # type: ignore[no-untyped-def]
        return self.inner.start(argv, netns=netns, stdin=stdin)


@pytest.mark.parametrize(
    ("host", "where"),
    [("c", "fdb append"), ("a", "iptables-restore"), ("b", "link add veth-gray")],
    ids=["overlay-of-c", "firewall-of-a", "namespace-of-b"],
)
def test_a_failure_on_one_host_leaves_every_host_as_before(lab: SandboxHosts, host: str, where: str) -> None:
    before = states(lab)
    plain = cluster(lab)
    failing = FailingOn(plain.parts[host].runner, lambda line: where in line)
    seed = cluster(lab, **{host: failing})
    with plain, seed, pytest.raises(StepError) as info:
        seed.up(BatchExecutor())
    assert failing.failed is not None and info.value.step.startswith(f"on host {host}: ")
    assert "injected failure" in str(info.value) and info.value.rollback_errors == ()
    assert settled(lab, before) == {}


KILLER = textwrap.dedent(
    """
    import json, os, re, signal, sys, threading
    from netnskit.cluster import Cluster
    from netnskit.executors import BatchExecutor, SerialExecutor
    from netnskit.runner import LiveRunner, SshRunner

    args = json.loads(sys.argv[1])
    read = re.compile(args["read"])
    lock = threading.Lock()
    count = [0]

    class Killer:
        armed = False

        def __init__(self, inner):
            self.inner = inner

        def run(self, argv, *, input=None, timeout=None, netns=None):
            line = " ".join(argv)
            write = not read.search(line)
            if write:
                # hosts run in threads: killed once k writes of them all have finished (not merely
                # started: a write in flight on another host may not have acted yet), or after the one named
                with lock:
                    if 0 <= args["k"] <= count[0] or Killer.armed:
                        os.kill(os.getpid(), signal.SIGKILL)
            result = self.inner.run(argv, input=input, timeout=timeout, netns=netns)
            if write:
                with lock:
                    count[0] += 1
            if write and args["after"] and args["after"] in line + (input or ""):
                Killer.armed = True
            return result

        def start(self, argv, *, netns=None, stdin=False):
            return self.inner.start(argv, netns=netns, stdin=stdin)

    options = {"local_runner": LiveRunner(), "ssh_options": args["ssh_options"], "control_dir": args["control_dir"]}
    plain = Cluster.from_toml(args["path"], **options)
    plain.open()  # the shared connections, which outlive this process (ControlPersist) and are reused
    seed = Cluster.from_toml(args["path"], **options, runners={n: Killer(p.runner) for n, p in plain.parts.items()})
    seed.up(BatchExecutor() if args["executor"] == "batch" else SerialExecutor())
    print("finished after", count[0], "writes")
    """
)


def kill_up(lab: SandboxHosts, executor: str, k: int, after: str = "") -> tuple[int, str]:
    """Run ``up`` in a process inside the driver that SIGKILLs itself before its k-th write (or before the
    write after the one containing ``after``); its returncode and output."""
    args = {
        "path": str(CLUSTER),
        "read": _READ.pattern,
        "k": k,
        "after": after,
        "executor": executor,
        "ssh_options": lab.ssh_options,
        "control_dir": cluster(lab).control_dir,
    }
    argv = lab.driver.enter_argv([PY, "-c", KILLER, json.dumps(args)])
    child = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    # its ssh clients still running (a command in flight) finish on their own: wait for them
    assert until(lambda: not [p for p in ssh_clients(lab) if "[mux]" not in p], 60), ssh_clients(lab)
    return child.returncode, child.stdout + child.stderr


@pytest.mark.parametrize("executor", ["serial", "batch"])
def test_sigkill_of_up_mid_way_then_down_from_the_marks_restores_every_host(lab: SandboxHosts, executor: str) -> None:
    before = states(lab)
    code, out = kill_up(lab, executor, k=-1)  # never killed: counts the writes of a whole up
    assert code == 0, out
    total = int(re.search(r"finished after (\d+) writes", out).group(1))  # type: ignore[union-attr]
    with cluster(lab) as seed:
        seed.down()
    assert settled(lab, before) == {}
    # the k-th write of all hosts together (early, a quarter, half, late), and right after a VXLAN link is made
    cases = [(k, "") for k in (1, total // 4, total // 2, total - 2)] + [(-1, "type vxlan")]
    for k, after in cases:
        code, out = kill_up(lab, executor, k, after)
        assert code == -9, (k, after, code, out)
        with cluster(lab) as seed:
            teardown = seed.down()
        assert teardown.left == (), (k, after, teardown.left)
        assert teardown.removed, (k, after)  # the crash left something behind, which down found by its marks
        if after:
            assert [r for r in teardown.removed if r.endswith(": link vx-seed")], teardown.removed
        assert settled(lab, before) == {}, (k, after)
    assert ssh_clients(lab) == []


def test_cli_up_sandbox_of_the_cluster_file_makes_the_hosts_checks_and_passes(lab: SandboxHosts) -> None:
    # (its own sandbox hosts, at the file's addresses: the lab fixture only makes sure they can be made here)
    real = HostState.capture(LiveRunner())
    done = subprocess.run(
        [PY, "-m", "netnskit", "up", "--sandbox", str(CLUSTER)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.endswith("probes passed") and line.split("/")[0] == line.split("/")[1].split()[0] for line in lines)
    assert "ok   forward lan@a -> 192.168.1.2:80 blue@b saw peer 192.168.1.3" in done.stdout
    assert HostState.capture(LiveRunner()).diff(real) == []

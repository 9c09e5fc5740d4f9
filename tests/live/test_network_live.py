"""Network, live in a sandbox: the seed story up, checked with real packets, down, host unchanged.

Also: up twice, down twice, a failure injected at every command of ``up`` (rolled back, host
unchanged each time), and a process SIGKILLed after every command of ``up``, then ``down`` from the
same file (host unchanged each time).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from _reliability import shown

from netnskit.errors import NetnskitError, StepError
from netnskit.executors import BatchExecutor, Executor, SerialExecutor
from netnskit.network import Network, cleanup
from netnskit.runner import Process, Result, Runner
from netnskit.sandbox import Sandbox
from netnskit.snapshot import HostState

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed.toml"
# (the netem probe, unshare --net tc ..., changes only a namespace that goes with it; modinfo reads)
_READ = re.compile(
    r"(^| )(-j|iptables-save|ip6tables-save|iptables-legacy-save|-C|-V)( |$)|^sysctl -n |^readlink |^unshare --net "
    r"|^modinfo |^nft (-j )?list "
    # files under /etc/netns and /run/netnskit, marks in /proc, listening sockets
    r"|(^|-- )(grep|find|ss|tail|sha256sum) "
)


def is_write(argv: Sequence[str]) -> bool:
    """True for a command that changes something (not a read such as ``ip -j``, ``-C``, ``sysctl -n``)."""
    return not _READ.search(" ".join(argv))


class Recording:
    """Passes every command on, and records the writes."""

    def __init__(self, inner: Runner) -> None:
        self.inner = inner
        self.writes: list[list[str]] = []

    def run(
        self, argv: Sequence[str], *, input: str | None = None, timeout: float | None = None, netns: str | None = None
    ) -> Result:
        if is_write(shown(argv, netns)):
            self.writes.append(shown(argv, netns))
        return self.inner.run(argv, input=input, timeout=timeout, netns=netns)

    def start(self, argv: Sequence[str], *, netns: str | None = None, stdin: bool = False) -> Process:
        # a process started in the background (the seed's web server) is not a command of the plan
        return self.inner.start(argv, netns=netns, stdin=stdin)


class FailAt(Recording):
    """Fails the k-th write (0-based) without running it, as a tool would: exit 2 and a message."""

    def __init__(self, inner: Runner, k: int) -> None:
        super().__init__(inner)
        self.k = k
        self.failed: list[str] | None = None

    def run(
        self, argv: Sequence[str], *, input: str | None = None, timeout: float | None = None, netns: str | None = None
    ) -> Result:
        if is_write(shown(argv, netns)) and self.failed is None and len(self.writes) == self.k:
            self.failed = shown(argv, netns)
            self.writes.append(self.failed)
            return Result(argv, 2, "", "injected failure\n")
        return super().run(argv, input=input, timeout=timeout, netns=netns)


EXECUTORS = [pytest.param(SerialExecutor, id="serial"), pytest.param(BatchExecutor, id="batch")]


def j(box: Sandbox, *argv: str) -> list[dict[str, object]]:
    out = box.run(list(argv)).check().stdout.strip()
    return json.loads(out) if out else []


@pytest.mark.parametrize("executor", EXECUTORS)
def test_seed_up_check_down_leaves_the_host_identical(sandbox: Sandbox, executor: type[Executor]) -> None:
    before = HostState.capture(sandbox.runner)
    net = Network.from_toml(SEED, runner=sandbox.runner)
    net.up(executor=executor())

    # what the kernel did, read independently
    assert sorted(d["name"] for d in j(sandbox, "ip", "-j", "netns", "list")) == [
        "blue",
        "gray",
        "internet",
        "lan",
        "orange",
        "red",
    ]
    links = {d["ifname"]: d for d in j(sandbox, "ip", "-d", "-j", "link", "show")}
    for name in ("veth-red", "veth-blue", "veth-orange", "veth-gray"):
        assert links[name]["master"] == "v-net-0"
        assert links[name]["ifalias"] == "netnskit:seed"
        assert links[name]["group"] == str(net.group)
    red = j(sandbox, "ip", "-n", "red", "-j", "addr", "show", "dev", "eth0")
    inet = [(a["local"], a["prefixlen"]) for a in red[0]["addr_info"] if a["family"] == "inet"]
    assert inet == [("192.168.15.1", 24)]
    assert j(sandbox, "ip", "-n", "red", "-j", "route", "show", "default")[0]["gateway"] == "192.168.15.5"
    saved = sandbox.run(["iptables-save"]).check().stdout
    assert '--comment "netnskit:seed" -j MASQUERADE' in saved or "--comment netnskit:seed -j MASQUERADE" in saved
    assert net.status().up

    report = net.check()
    assert report.ok, "\n".join(report.lines())
    kinds = [p.kind for p in report.probes]
    assert kinds.count("ping") == 12 and kinds.count("nat") == 4 and kinds.count("forward") == 2
    # masqueraded: the internet stand-in sees the host's LAN address, not red's
    nat = [p for p in report.probes if p.kind == "nat" and p.target.startswith("203.0.113.10")]
    assert {p.detail for p in nat} == {"internet saw peer 192.168.1.2"}
    # forwarded: to the seed's web server in blue
    fwd = [p for p in report.probes if p.kind == "forward" and p.source == "lan"]
    assert [p.detail for p in fwd] == ["connected to process web"]

    # an independent HTTP fetch through the port forward, not via check(): the web server's page,
    # and its log shows the LAN host itself (forwarded, not masqueraded)
    fetch = "import urllib.request; print(urllib.request.urlopen('http://192.168.1.2/', timeout=5).read().decode())"
    page = sandbox.namespace("lan").exec([sys.executable, "-c", fetch])
    assert page.stdout == (SEED.parent / "www" / "index.html").read_text() + "\n"
    log = sandbox.run(["cat", net.process_logs()["web"]]).check().stdout
    assert "192.168.1.3 - - " in log and '"GET / HTTP/1.1" 200' in log

    teardown = net.down(executor=executor())
    assert teardown.already_gone == () and teardown.left == ()
    assert HostState.capture(sandbox.runner).diff(before) == []


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("keep", [False, True], ids=["defaults", "ipv6-and-snooping-kept"])
def test_ipv6_link_local_and_multicast_snooping_as_chosen(
    sandbox: Sandbox, executor: type[Executor], keep: bool
) -> None:
    before = HostState.capture(sandbox.runner)
    net = Network(
        name="v6",
        bridge="br-v6",
        subnet="10.77.0.0/24",
        gateway="10.77.0.1",
        namespaces=[{"name": "a", "host_ifname": "v6-a"}, {"name": "b", "host_ifname": "v6-b"}],
        ipv6_link_local=keep,
        multicast_snooping=keep,
        runner=sandbox.runner,
    )
    net.up(executor=executor())
    bridge = j(sandbox, "ip", "-d", "-j", "link", "show", "br-v6")[0]
    assert bridge["linkinfo"]["info_data"]["mcast_snooping"] == (1 if keep else 0)
    for name in ("a", "b"):
        link = j(sandbox, "ip", "-n", name, "-d", "-j", "link", "show", "eth0")[0]
        assert link["inet6_addr_gen_mode"] == ("eui64" if keep else "none")
        assert link["operstate"] == "UP"
        families = sorted(
            a["family"] for a in j(sandbox, "ip", "-n", name, "-j", "addr", "show", "dev", "eth0")[0]["addr_info"]
        )
        assert families == (["inet", "inet6"] if keep else ["inet"])
        # lo keeps ::1 either way
        lo = j(sandbox, "ip", "-n", name, "-j", "addr", "show", "dev", "lo")[0]["addr_info"]
        assert "::1" in [a["local"] for a in lo]
        # the host end, a bridge port: the same choice
        port = j(sandbox, "ip", "-d", "-j", "link", "show", f"v6-{name}")[0]
        assert port["inet6_addr_gen_mode"] == ("eui64" if keep else "none")
        assert port["operstate"] == "UP" and port["ifalias"] == "netnskit:v6" and port["master"] == "br-v6"
        port_addrs = j(sandbox, "ip", "-6", "-j", "addr", "show", "dev", f"v6-{name}")
        assert bool(port_addrs and port_addrs[0].get("addr_info")) == keep
    # until one reply (every 0.2 s, for up to 5 s): a first request lost on a loaded host decides nothing
    ping = sandbox.namespace("a").exec(["ping", "-c", "1", "-i", "0.2", "-w", "5", "10.77.0.3"], check=False)
    assert ping.ok and ", 1 received" in ping.stdout, ping.stdout + ping.stderr
    net.down(executor=executor())
    assert HostState.capture(sandbox.runner).diff(before) == []


def no_tentative_address(box: Sandbox, timeout: float = 10.0) -> None:
    """Wait until the host's IPv6 addresses have passed duplicate address detection (the links of
    [[link]] keep the kernel's link-local addresses, whose local routes appear only then)."""
    deadline = time.monotonic() + timeout
    while j(box, "ip", "-6", "-j", "addr", "show", "tentative") and time.monotonic() < deadline:
        time.sleep(0.1)


def without_multicast(state: HostState) -> HostState:
    """``state`` less the kernel's own IPv6 link-local and multicast routes (fe80::/64, ff00::/8, and the
    link-local addresses' own routes), which come when duplicate address detection is done."""
    import attrs

    def kernels_v6(route: str) -> bool:
        return '"protocol": "kernel"' in route and ('"dst": "fe80:' in route or '"dst": "ff00::/8"' in route)

    return attrs.evolve(state, routes=tuple(r for r in state.routes if not kernels_v6(r)))


def settled(box: Sandbox, limit: float = 20.0) -> HostState:
    """The host's state once two reads 0.5 s apart agree (the kernel adds some things after a command)."""
    import time

    deadline = time.monotonic() + limit
    last = HostState.capture(box.runner)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = HostState.capture(box.runner)
        if now.diff(last) == []:
            return now
        last = now
    return last


def test_up_twice_changes_nothing_the_second_time(sandbox: Sandbox) -> None:
    before = HostState.capture(sandbox.runner)
    net = Network.from_toml(SEED, runner=sandbox.runner)
    net.up()
    no_tentative_address(sandbox)  # the links' IPv6 addresses past duplicate address detection
    once = settled(sandbox)  # the bridge's IPv6 link-local address and its routes come after DAD
    recording = Recording(sandbox.runner)
    Network.from_toml(SEED, runner=recording).up()
    assert recording.writes == []
    # (the kernel adds each up link's IPv6 link-local and multicast routes when DAD is done: not
    # netnskit's doing, and on a loaded machine sometimes after the settled read)
    assert without_multicast(HostState.capture(sandbox.runner)).diff(without_multicast(once)) == []
    net.down()
    assert HostState.capture(sandbox.runner).diff(before) == []


def test_down_twice_and_down_of_a_network_never_up(sandbox: Sandbox) -> None:
    before = HostState.capture(sandbox.runner)
    net = Network.from_toml(SEED, runner=sandbox.runner)
    assert net.down().removed == ()
    net.up()
    first = net.down()
    assert first.removed and first.already_gone == ()
    second = net.down()
    assert second.removed == ()
    assert "namespace red" in second.already_gone and "link v-net-0" in second.already_gone
    assert HostState.capture(sandbox.runner).diff(before) == []


def test_down_of_a_partly_removed_network(sandbox: Sandbox) -> None:
    before = HostState.capture(sandbox.runner)
    net = Network.from_toml(SEED, runner=sandbox.runner)
    net.up()
    # someone else removed some of it
    sandbox.run(["ip", "netns", "del", "red"]).check()
    sandbox.run(["ip", "link", "del", "v-lan"]).check()
    teardown = net.down()
    # (veth-red goes with red, but the kernel cleans a deleted namespace up asynchronously)
    assert set(teardown.already_gone) >= {"namespace red", "link v-lan"}
    assert HostState.capture(sandbox.runner).diff(before) == []


def test_context_manager_tears_down(sandbox: Sandbox) -> None:
    before = HostState.capture(sandbox.runner)
    with Network.from_toml(SEED, runner=sandbox.runner).up():
        assert "red" in [d["name"] for d in j(sandbox, "ip", "-j", "netns", "list")]
    assert HostState.capture(sandbox.runner).diff(before) == []


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_failure_at_every_command_of_up_leaves_the_host_identical(sandbox: Sandbox, executor: type[Executor]) -> None:
    before = HostState.capture(sandbox.runner)
    counting = Recording(sandbox.runner)
    net = Network.from_toml(SEED, runner=counting)
    net.up(executor=executor())
    total = len(counting.writes)
    net.down()
    # serial: one command per step (52); batched: one per batch
    assert total >= (len(net.plan()) if executor is SerialExecutor else 10)
    assert HostState.capture(sandbox.runner).diff(before) == []
    for k in range(total):
        failing = FailAt(sandbox.runner, k)
        with pytest.raises(StepError) as info:
            Network.from_toml(SEED, runner=failing).up(executor=executor())
        assert failing.failed is not None
        assert "injected failure" in str(info.value), (k, str(info.value))
        assert info.value.rollback_errors == (), (k, info.value.rollback_errors)
        diff = HostState.capture(sandbox.runner).diff(before)
        assert diff == [], (k, failing.failed, diff)


_KILLER = textwrap.dedent(
    """
    import os, re, signal, sys
    from netnskit.network import Network
    from netnskit.runner import LiveRunner, nsenter_runner

    inner = nsenter_runner(LiveRunner(), int(sys.argv[1]))
    k = int(sys.argv[2])
    read = re.compile(sys.argv[4])

    class Killer:
        writes = 0

        def run(self, argv, *, input=None, timeout=None, netns=None):
            if not read.search(" ".join(argv if netns is None else ["nsenter", "--net=" + netns, "--", *argv])):
                if Killer.writes == k:
                    os.kill(os.getpid(), signal.SIGKILL)
                Killer.writes += 1
            return inner.run(argv, input=input, timeout=timeout, netns=netns)

        def start(self, argv, *, netns=None, stdin=False):
            return inner.start(argv, netns=netns, stdin=stdin)

    if sys.argv[6] == "batch":
        from netnskit.executors import BatchExecutor as Executor
    else:
        from netnskit.executors import SerialExecutor as Executor
    net = Network.from_toml(sys.argv[3], runner=Killer())
    net.up(executor=Executor()) if sys.argv[5] == "up" else net.down(executor=Executor())
    print("finished")
    """
)


@pytest.mark.parametrize("executor", ["serial", "batch"])
def test_sigkill_after_every_command_of_up_then_down_restores_the_host(sandbox: Sandbox, executor: str) -> None:
    before = HostState.capture(sandbox.runner)
    counting = Recording(sandbox.runner)
    net = Network.from_toml(SEED, runner=counting)
    net.up(executor=BatchExecutor() if executor == "batch" else SerialExecutor())
    total = len(counting.writes)
    net.down()
    for k in range(total + 1):
        child = subprocess.run(
            [sys.executable, "-c", _KILLER, str(sandbox.pid), str(k), str(SEED), _READ.pattern, "up", executor],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if k < total:
            assert child.returncode == -9, (k, child.stdout, child.stderr)
        else:
            assert child.returncode == 0 and "finished" in child.stdout, child.stderr
        teardown = net.down()
        assert teardown.left == (), (k, teardown.left)
        diff = HostState.capture(sandbox.runner).diff(before)
        assert diff == [], (k, diff)


def test_sigkill_after_every_command_of_down_then_down_again_restores_the_host(sandbox: Sandbox) -> None:
    before = HostState.capture(sandbox.runner)
    net = Network.from_toml(SEED, runner=sandbox.runner)
    counting = Recording(sandbox.runner)
    net.up()
    Network.from_toml(SEED, runner=counting).down()
    total = len(counting.writes)
    assert total >= 3
    for k in range(total):
        net.up()
        child = subprocess.run(
            [sys.executable, "-c", _KILLER, str(sandbox.pid), str(k), str(SEED), _READ.pattern, "down", "serial"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert child.returncode == -9, (k, child.stdout, child.stderr)
        teardown = net.down()
        assert teardown.left == (), (k, teardown.left)
        diff = HostState.capture(sandbox.runner).diff(before)
        assert diff == [], (k, diff)


def test_up_refuses_a_link_with_our_name_that_is_not_ours(sandbox: Sandbox) -> None:
    sandbox.run(["ip", "link", "add", "v-net-0", "type", "bridge"]).check()
    before = HostState.capture(sandbox.runner)
    net = Network.from_toml(SEED, runner=sandbox.runner)
    with pytest.raises(NetnskitError, match="link 'v-net-0' exists on the host but is not marked netnskit:seed"):
        net.up()
    net.down()  # and down leaves it alone
    assert HostState.capture(sandbox.runner).diff(before) == []
    assert [d["ifname"] for d in j(sandbox, "ip", "-j", "link", "show", "v-net-0")] == ["v-net-0"]


def test_the_rendered_script_run_by_bash_builds_the_same_network(sandbox: Sandbox) -> None:
    before = HostState.capture(sandbox.runner)
    net = Network.from_toml(SEED, runner=sandbox.runner)
    done = sandbox.run(["bash", "-s"], input=net.render_script())
    assert done.returncode == 0, done.stderr
    assert net.missing_steps() == []  # up() would change nothing on the host ...
    assert [str(m) for m in net.status().missing] == [
        "process web in blue (not started)"
    ]  # ... the script lists it only
    recording = Recording(sandbox.runner)
    Network.from_toml(SEED, runner=recording).up()
    assert recording.writes == []  # up only started the web server
    assert net.status().up
    report = net.check()
    assert report.ok, "\n".join(report.lines())
    net.down()
    assert HostState.capture(sandbox.runner).diff(before) == []


def test_cleanup_removes_every_netnskit_leftover_and_nothing_else(sandbox: Sandbox) -> None:
    # someone else's namespace, link and rule, which cleanup must leave alone
    sandbox.run(["ip", "netns", "add", "theirs"]).check()
    sandbox.run(["ip", "link", "add", "br-theirs", "type", "bridge"]).check()
    sandbox.run(["iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-s", "10.99.0.0/24", "-j", "MASQUERADE"]).check()
    before = HostState.capture(sandbox.runner)
    Network.from_toml(SEED, runner=sandbox.runner).up()
    other = Network(
        name="other",
        bridge="br-other",
        subnet="10.77.0.0/24",
        gateway="10.77.0.1",
        namespaces=["o1", "o2"],
        masquerade=True,
        runner=sandbox.runner,
    )
    other.up()
    teardown = cleanup(None, sandbox.runner)  # every network's (what `netnskit cleanup --all --yes` does)
    assert "namespace o1" in teardown.removed and "namespace red" in teardown.removed
    assert HostState.capture(sandbox.runner).diff(before) == []
    assert cleanup(None, sandbox.runner).removed == ()


def netnskit_cli(*args: str, box: Sandbox | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m netnskit ARGS``, inside ``box`` when given."""
    argv = [sys.executable, "-m", "netnskit", *args]
    return subprocess.run(
        box.enter_argv(argv) if box else argv, capture_output=True, text=True, timeout=300, check=False
    )


def test_cli_verbs_in_a_sandbox_leave_the_real_host_alone(sandbox: Sandbox) -> None:
    from netnskit.runner import LiveRunner

    real = HostState.capture(LiveRunner())  # read-only
    # up --sandbox: up, check and down in a sandbox of its own
    check = netnskit_cli("up", "--sandbox", str(SEED))
    assert check.returncode == 0, check.stdout + check.stderr
    lines = check.stdout.splitlines()
    assert lines[0] == "network seed is up in a throwaway sandbox (53 steps applied, 1 process started)"
    assert "18/18 probes passed" in lines
    # the forward's server is the network's own web process
    assert "ok   forward lan -> 192.168.1.2:80 connected to process web" in lines
    assert lines[-2:] == ["network seed is down", "the sandbox is gone, and everything in it"]
    # elsewhere --sandbox is refused: a sandbox gone with the command would show nothing
    refused = netnskit_cli("--sandbox", "status", "--json", str(SEED))
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.startswith("netnskit status: --sandbox goes with demo and up only")
    # the other verbs, run inside the fixture's sandbox
    up = netnskit_cli("-v", "up", str(SEED), box=sandbox)
    assert up.returncode == 0, up.stderr
    assert up.stdout == "network seed is up (53 steps applied, 1 process started)\n"
    assert "ip -batch -" in up.stderr  # BatchExecutor by default; -v shows every command
    status = netnskit_cli("status", "--json", str(SEED), box=sandbox)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["schema"] == 1 and data["up"] is True and data["missing"] == []
    assert sorted(link["name"] for link in data["host_links"]) == [
        "v-lan",
        "v-net-0",
        "veth-blue",
        "veth-gray",
        "veth-orange",
        "veth-red",
    ]
    down = netnskit_cli("down", "--serial", str(SEED), box=sandbox)
    assert down.returncode == 0 and "removed: namespace red" in down.stdout
    assert "[1/" in down.stdout  # --serial prints each step
    again = netnskit_cli("down", str(SEED), box=sandbox)
    assert again.returncode == 0 and "already gone: namespace red" in again.stdout
    bad = netnskit_cli("up", "--sandbox", str(SEED.parent / "missing.toml"))
    assert bad.returncode == 2  # rejected before any command
    missing = SEED.parent / "missing.toml"
    assert bad.stderr == f"netnskit up: {missing}: file: cannot read it (No such file or directory)\n"
    assert HostState.capture(LiveRunner()).diff(real) == []


def test_per_link_forwarding_of_others_is_kept_and_of_no_one_put_back(sandbox: Sandbox) -> None:
    # no IPv6 in this throwaway sandbox: link-local routes of the freshly made bridge settle late
    for conf in ("all", "default"):
        sandbox.run(["sysctl", "-w", f"net.ipv6.conf.{conf}.disable_ipv6=1"]).check()
    # an uplink of no network, forwarding off; another netnskit network whose bridge forwards
    sandbox.run(["ip", "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1"]).check()

    def forwarding(ifname: str) -> str:
        return sandbox.run(["sysctl", "-n", f"net/ipv4/conf/{ifname}/forwarding"]).check().stdout.strip()

    other = Network(
        name="other",
        bridge="br-other",
        subnet="10.77.0.0/24",
        gateway="10.77.0.1",
        namespaces=["o1"],
        runner=sandbox.runner,
    )
    other.up()
    before = HostState.capture(sandbox.runner)
    assert (forwarding("uplink0"), forwarding("br-other")) == ("0", "1")
    net = Network.from_toml(SEED, runner=sandbox.runner)
    net.up()
    assert forwarding("uplink0") == "1"  # the firewall's ip_forward=1 reaches every link
    net.down()
    assert (forwarding("uplink0"), forwarding("br-other")) == ("0", "1")
    assert HostState.capture(sandbox.runner).diff(before) == []
    other.down()


def test_down_of_a_network_with_many_forwards_leaves_another_networks_rules_exactly(sandbox: Sandbox) -> None:
    # many forwards of one network fill a chain of ours: down flushes it and puts the other's back
    def net(name: str, octet: int, forwards: int) -> Network:
        return Network(
            name=name,
            bridge=f"br-{name}",
            subnet=f"10.{octet}.0.0/24",
            gateway=f"10.{octet}.0.1",
            namespaces=[{"name": f"{name}0"}],
            masquerade=True,
            port_forwards=[
                {"host_port": 9000 + octet * 100 + i, "netns": f"{name}0", "port": 80} for i in range(forwards)
            ],
            hosts=False,
            runner=sandbox.runner,
        )

    small, big = net("fsmall", 61, 1), net("fbig", 62, 12)
    before = HostState.capture(sandbox.runner)
    small.up(BatchExecutor())
    alone = sandbox.run(["iptables-save"]).check().stdout
    big.up(BatchExecutor())
    assert sum("netnskit:fbig" in line for line in sandbox.run(["iptables-save"]).check().stdout.splitlines()) > 12
    big.down(BatchExecutor())
    strip = re.compile(r"^#.*$|\[\d+:\d+\]", re.M)
    assert strip.sub("", sandbox.run(["iptables-save"]).check().stdout) == strip.sub("", alone)
    assert small.status().up
    small.down(BatchExecutor())
    assert HostState.capture(sandbox.runner).diff(before) == []

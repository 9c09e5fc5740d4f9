"""Namespaces that behave like hosts, live in a sandbox: names, DNS, sysctls and MTU; processes
started by ``up``, ended by ``down`` (after a SIGKILL of ``up`` too); captures of a link.

Everything is read back independently: ``ip netns exec NS getent hosts`` and ``ping NAME``,
``ip -j link``, ``/proc/sys``, ``ss``, ``/proc/PID/environ``, real TCP from the LAN stand-in,
``tcpdump -r`` on the pcap. After each test the sandbox's state (``HostState``: namespaces, links,
addresses, routes, rules, the entries under ``/etc/netns`` and the processes carrying a mark) is
what it was before, and the real host's ``/etc/netns`` is as it was.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path

import attrs
import pytest
from _readme import readme_block

from netnskit.cli import main
from netnskit.errors import NetnskitError, ProcessError, StepError
from netnskit.network import Network, ProcessSpec
from netnskit.process import OWNER_ENV, marked_pids
from netnskit.runner import Process, Result, Runner
from netnskit.sandbox import Sandbox
from netnskit.snapshot import HostState

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed.toml"
PAGE = (SEED.parent / "www" / "index.html").read_text()


def real_etc_netns() -> tuple[bool, list[str]]:
    """The real host's /etc/netns as this test process sees it (its own mount namespace: the host's)."""
    if not os.path.isdir("/etc/netns"):
        return (False, [])
    return (True, sorted(str(p) for p in Path("/etc/netns").rglob("*")))


def inside(box: Sandbox, netns: str, *argv: str) -> Result:
    """``ip netns exec NETNS ARGV`` in the sandbox: as a host's program runs there (/etc/netns applies)."""
    return box.run(["ip", "netns", "exec", netns, *argv])


def settled(box: Sandbox, before: HostState, timeout: float = 5.0) -> list[str]:
    """The sandbox's differences from ``before``, given the kernel a moment to free deleted namespaces."""
    deadline = time.monotonic() + timeout
    while True:
        diff = HostState.capture(box.runner).diff(before)
        if not diff or time.monotonic() > deadline:
            return diff
        time.sleep(0.1)


def fetch(box: Sandbox, netns: str, url: str) -> str:
    """GET ``url`` from ``netns`` with urllib (real TCP); the body."""
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode(), end='')"
    return inside(box, netns, sys.executable, "-c", code).check(f"fetching {url} from {netns}").stdout


def gone(pid: int, timeout: float = 5.0) -> bool:
    """True once ``pid`` is no longer a live process (absent, or a zombie waiting for its parent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def listening(box: Sandbox, netns: str, port: int) -> bool:
    return bool(box.run(["ip", "netns", "exec", netns, "ss", "-H", "-ltn", "sport", "=", f":{port}"]).stdout.strip())


# --- hosts: names, DNS, sysctls, MTU ------------------------------------------------------------


def hosts_network(runner: Runner) -> Network:
    """Two namespaces on a bridge (one with its own MTU, sysctls and DNS server) and a third behind a link."""
    return Network(
        name="hosts",
        bridge="br-hosts",
        subnet="10.61.0.0/24",
        gateway="10.61.0.1",
        namespaces=[
            {
                "name": "red",
                "mtu": 1400,
                "sysctls": {"net.ipv4.ip_forward": 1, "net.ipv4.ping_group_range": "0 2147483647"},
                "dns": ["203.0.113.53"],
            },
            "blue",
        ],
        extra_namespaces=[{"name": "far", "sysctls": {"net.ipv4.conf.all.forwarding": 1}}],
        links=[
            {
                "name": "l-far",
                "netns": "blue",
                "address": "10.62.0.1/30",
                "peer": "eth0",
                "peer_netns": "far",
                "peer_address": "10.62.0.2/30",
                "mtu": 1300,
            }
        ],
        runner=runner,
    )


def test_names_dns_sysctls_and_mtu_of_each_namespace_and_the_real_etc_untouched(sandbox: Sandbox) -> None:
    real = real_etc_netns()
    before = HostState.capture(sandbox.runner)
    net = hosts_network(sandbox.runner)
    net.up()

    # names: every node, by name, from each namespace, through its own /etc/netns/NAME/hosts
    assert inside(sandbox, "red", "getent", "hosts", "blue").stdout.split()[:2] == ["10.61.0.3", "blue"]
    assert inside(sandbox, "red", "getent", "hosts", "gateway").stdout.split()[0] == "10.61.0.1"
    # far is known by the address on blue's link to it; from far, blue is the one on that link
    assert inside(sandbox, "red", "getent", "hosts", "far").stdout.split()[0] == "10.62.0.2"
    assert inside(sandbox, "far", "getent", "hosts", "blue").stdout.split()[0] == "10.62.0.1"
    ping = inside(sandbox, "red", "ping", "-c", "1", "-W", "2", "blue")
    assert ping.returncode == 0 and "from blue (10.61.0.3)" in ping.stdout, ping.stdout + ping.stderr
    assert inside(sandbox, "red", "ping", "-c", "1", "-W", "2", "host").returncode == 0
    # DNS: red's resolv.conf names its server; blue has none of ours (the host's stays)
    resolv = inside(sandbox, "red", "cat", "/etc/resolv.conf").check().stdout
    assert resolv.splitlines() == ["# netnskit:hosts", "# written by netnskit up, removed by netnskit down"] + [
        "nameserver 203.0.113.53"
    ]
    assert "203.0.113.53" not in inside(sandbox, "blue", "cat", "/etc/resolv.conf").stdout
    # sysctls, read from /proc/sys inside each namespace
    assert sandbox.run(["ip", "netns", "exec", "red", "cat", "/proc/sys/net/ipv4/ip_forward"]).stdout == "1\n"
    assert inside(sandbox, "red", "cat", "/proc/sys/net/ipv4/ping_group_range").stdout.split() == ["0", "2147483647"]
    assert inside(sandbox, "blue", "cat", "/proc/sys/net/ipv4/ip_forward").stdout == "0\n"
    assert inside(sandbox, "far", "cat", "/proc/sys/net/ipv4/conf/all/forwarding").stdout == "1\n"
    # MTU: both ends of red's veth, both ends of the link (and the bridge follows its smallest port)
    mtu = {d["ifname"]: d["mtu"] for d in json.loads(sandbox.run(["ip", "-j", "link", "show"]).stdout)}
    assert (mtu["veth-red"], mtu["veth-blue"], mtu["br-hosts"]) == (1400, 1500, 1400)
    red_eth0 = json.loads(sandbox.run(["ip", "-n", "red", "-j", "link", "show", "eth0"]).stdout)[0]
    assert red_eth0["mtu"] == 1400
    far_eth0 = json.loads(sandbox.run(["ip", "-n", "far", "-j", "link", "show", "eth0"]).stdout)[0]
    blue_link = json.loads(sandbox.run(["ip", "-n", "blue", "-j", "link", "show", "l-far"]).stdout)[0]
    assert (far_eth0["mtu"], blue_link["mtu"]) == (1300, 1300)
    assert net.status().up and net.missing_steps() == []

    # the files are in the sandbox's /etc/netns, marked; the real host's is as it was
    files = sandbox.run(["find", "/etc/netns", "-type", "f"]).stdout.split()
    assert sorted(files) == [
        "/etc/netns/blue/hosts",
        "/etc/netns/far/hosts",
        "/etc/netns/red/hosts",
        "/etc/netns/red/resolv.conf",
    ]
    assert sandbox.run(["head", "-n", "1", "/etc/netns/far/hosts"]).stdout == "# netnskit:hosts\n"
    assert real_etc_netns() == real

    teardown = net.down()
    assert "files /etc/netns/blue/hosts, /etc/netns/far/hosts, /etc/netns/red/hosts, /etc/netns/red/resolv.conf" in (
        teardown.removed
    )
    assert sandbox.run(["find", "/etc/netns", "-mindepth", "1"]).stdout == ""
    assert settled(sandbox, before) == []
    assert real_etc_netns() == real


def test_up_leaves_a_foreign_hosts_file_alone_and_says_so(sandbox: Sandbox) -> None:
    sandbox.run(["mkdir", "-p", "/etc/netns/blue"]).check()
    sandbox.run(["sh", "-c", "echo '10.0.0.9 someone' > /etc/netns/blue/hosts"]).check()
    before = HostState.capture(sandbox.runner)
    net = hosts_network(sandbox.runner)
    with pytest.raises(Exception, match=r"/etc/netns/blue/hosts exists and does not start with '# netnskit:hosts'"):
        net.up()
    net.down()
    assert sandbox.run(["cat", "/etc/netns/blue/hosts"]).stdout == "10.0.0.9 someone\n"
    assert settled(sandbox, before) == []


# --- processes --------------------------------------------------------------------------------------


def web_pid(net: Network) -> int:
    (web,) = net.process_status()
    assert web.state == "running" and web.pid is not None, web
    return web.pid


def test_up_starts_the_web_server_ready_and_serving_the_forward_and_down_ends_it(sandbox: Sandbox) -> None:
    before = HostState.capture(sandbox.runner)
    net = Network.from_toml(SEED, runner=sandbox.runner)
    net.up()
    # ready before up returned: it listens now, and the LAN host fetches its page through the forward
    assert listening(sandbox, "blue", 80)
    assert fetch(sandbox, "lan", "http://192.168.1.2/") == PAGE
    pid = web_pid(net)
    # the process is blue's, marked as the network's, its output in the log that status names
    assert os.readlink(f"/proc/{pid}/ns/net") == "net:[{}]".format(
        sandbox.run(["stat", "-L", "-c", "%i", "/run/netns/blue"]).check().stdout.strip()
    )
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert any(e.startswith(f"{OWNER_ENV}=netnskit:seed@".encode()) for e in environ)
    log = net.process_logs()["web"]
    place = sandbox.run(["stat", "-L", "-c", "%i", "/proc/self/ns/net"]).check().stdout.strip()
    assert log == f"/run/netnskit/logs/{place}/seed/web.log"
    assert re.search(r'192\.168\.1\.3 - - \[.*\] "GET / HTTP/1\.1" 200', sandbox.run(["cat", log]).check().stdout)
    # up again: nothing to start
    net.up()
    assert web_pid(net) == pid

    teardown = net.down()
    assert f"process web (pid {pid})" in teardown.removed
    assert gone(pid)
    assert not listening(sandbox, "red", 80) and settled(sandbox, before) == []


_UP_THEN_DIE = textwrap.dedent(
    """
    import os, signal, sys
    from netnskit.network import Network
    from netnskit.runner import LiveRunner, nsenter_runner

    net = Network.from_toml(sys.argv[2], runner=nsenter_runner(LiveRunner(), int(sys.argv[1])))
    net.up()
    print("up", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_down_after_a_sigkill_of_up_finds_and_ends_the_process(sandbox: Sandbox) -> None:
    before = HostState.capture(sandbox.runner)
    child = subprocess.run(
        [sys.executable, "-c", _UP_THEN_DIE, str(sandbox.pid), str(SEED)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -9 and child.stdout == "up\n", child.stderr
    net = Network.from_toml(SEED, runner=sandbox.runner)
    pid = web_pid(net)  # it outlived the process that started it
    assert fetch(sandbox, "lan", "http://192.168.1.2/") == PAGE
    teardown = net.down()  # a new process, a new Network object: only the marks lead to it
    assert f"process web (pid {pid})" in teardown.removed
    assert gone(pid)
    assert settled(sandbox, before) == []


def with_process(runner: Runner, spec: ProcessSpec) -> Network:
    return Network(
        name="procs",
        bridge="br-procs",
        subnet="10.63.0.0/24",
        gateway="10.63.0.1",
        namespaces=["srv"],
        processes=[spec],
        runner=runner,
    )


@pytest.mark.parametrize(
    ("command", "why"),
    [
        (["sh", "-c", "echo starting; echo cannot bind >&2; sleep 30"], "did not become ready (tcp:9) within 1 s"),
        (["sh", "-c", "echo starting; echo cannot bind >&2; exit 3"], "exited with status 3 before it was ready"),
        (["no-such-program-netnskit"], "exited with status 127 before it was ready"),
    ],
    ids=["never-ready", "exits", "missing-program"],
)
def test_a_process_that_is_not_ready_rolls_the_network_back_and_shows_its_log(
    sandbox: Sandbox, command: list[str], why: str
) -> None:
    before = HostState.capture(sandbox.runner)
    net = with_process(sandbox.runner, ProcessSpec("srv", "srv", command, ready="tcp:9", ready_timeout=1))
    with pytest.raises(StepError) as info:
        net.up()
    text = str(info.value)
    assert "start process srv in srv" in text and why in text, text
    assert "/run/netnskit/logs/" in text
    if command[0] == "sh":
        assert "starting\ncannot bind" in text  # the end of its log
    else:
        assert "no-such-program-netnskit" in text and "not found" in text
    assert info.value.rollback_errors == ()
    assert settled(sandbox, before) == []


class CountFrom:
    """Passes every command on; from the ``after``-th command on, counts them and fails the k-th (``false`` runs)."""

    def __init__(self, inner: Runner, after: int, k: int | None = None) -> None:
        self.inner, self.after, self.k = inner, after, k
        self.seen: list[list[str]] = []
        self.lock = threading.Lock()

    def run(
        self, argv: Sequence[str], *, input: str | None = None, timeout: float | None = None, netns: str | None = None
    ) -> Result:
        with self.lock:
            self.seen.append(list(argv))
            n = len(self.seen) - 1 - self.after
        if n == self.k:
            return Result(argv, 1, "", "netnskit-test: injected failure\n")
        return self.inner.run(argv, input=input, timeout=timeout, netns=netns)

    def start(self, argv: Sequence[str], *, netns: str | None = None, stdin: bool = False) -> Process:
        return self.inner.start(argv, netns=netns, stdin=stdin)


def probe_server(runner: Runner) -> Network:
    """A namespace with a probe server in it (this Python, so netnskit.probe is importable)."""
    serve = [sys.executable, "-m", "netnskit.probe", "serve", "--port", "7", "--count", "1000", "--timeout", "600"]
    return with_process(runner, ProcessSpec("srv", "srv", serve, ready="tcp:7"))


def process_phase(box: Sandbox) -> tuple[int, int]:
    """(commands of up before its processes, commands of the process phase), counted on a clean sandbox."""
    counting = CountFrom(box.runner, 0)
    attrs.evolve(probe_server(counting), processes=()).up()
    first = len(counting.seen)
    probe_server(box.runner).down()
    counting = CountFrom(box.runner, first)
    probe_server(counting).up()
    total = len(counting.seen) - first
    probe_server(box.runner).down()
    return first, total


def test_a_failure_at_every_command_of_the_process_phase_is_rolled_back(sandbox: Sandbox) -> None:
    before = HostState.capture(sandbox.runner)
    first, total = process_phase(sandbox)
    assert settled(sandbox, before) == []
    assert total >= 4  # where the runner acts, the pid files, the marks, a readiness poll at least
    outcomes = []
    for k in range(total):
        failing = CountFrom(sandbox.runner, first, k)
        try:
            probe_server(failing).up()
        except NetnskitError as exc:
            assert "injected failure" in str(exc), (k, failing.seen[first + k], exc)
            outcomes.append("rolled back")
        else:
            # a read whose failure reads as "nothing there yet" (no pid file, no marked process)
            outcomes.append("tolerated")
            assert probe_server(sandbox.runner).status().up
            probe_server(sandbox.runner).down()
        assert settled(sandbox, before) == [], (k, failing.seen[first + k])
    # the place read and a readiness poll that fails are errors: up rolls back
    assert outcomes.count("rolled back") >= 2, outcomes


_KILL_IN_PROCESS_PHASE = textwrap.dedent(
    """
    import os, signal, sys
    import attrs
    from netnskit.network import Network, ProcessSpec
    from netnskit.runner import LiveRunner, nsenter_runner

    inner = nsenter_runner(LiveRunner(), int(sys.argv[1]))
    first, k = int(sys.argv[2]), int(sys.argv[3])

    class KillAt:
        seen = 0

        def run(self, argv, *, input=None, timeout=None, netns=None):
            if KillAt.seen == first + k:
                os.kill(os.getpid(), signal.SIGKILL)
            KillAt.seen += 1
            return inner.run(argv, input=input, timeout=timeout, netns=netns)

        def start(self, argv, *, netns=None, stdin=False):
            return inner.start(argv, netns=netns, stdin=stdin)

    serve = [sys.executable, "-m", "netnskit.probe", "serve", "--port", "7", "--count", "1000", "--timeout", "600"]
    Network(
        name="procs", bridge="br-procs", subnet="10.63.0.0/24", gateway="10.63.0.1", namespaces=["srv"],
        processes=[ProcessSpec("srv", "srv", serve, ready="tcp:7")], runner=KillAt(),
    ).up()
    print("finished")
    """
)


def test_a_sigkill_at_every_command_of_the_process_phase_then_down_restores(sandbox: Sandbox) -> None:
    before = HostState.capture(sandbox.runner)
    first, total = process_phase(sandbox)
    killed = 0
    for k in range(total + 1):
        child = subprocess.run(
            [sys.executable, "-c", _KILL_IN_PROCESS_PHASE, str(sandbox.pid), str(first), str(k)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert child.returncode in (0, -9), (k, child.stderr)
        killed += child.returncode == -9
        teardown = probe_server(sandbox.runner).down()
        assert teardown.left == (), (k, teardown.left)
        assert settled(sandbox, before) == [], k
    assert killed >= total - 2  # (a poll more or less than when counted)


# --- Namespace.spawn ------------------------------------------------------------------------------


def test_spawn_returns_a_handle_that_waits_for_its_port_or_probe_and_stops_it(sandbox: Sandbox) -> None:
    space = sandbox.namespace("solo").create()
    space.loopback_up()
    serve = [sys.executable, "-u", "-m", "netnskit.probe", "serve", "--proto", "udp", "--port", "5353"]
    handle = space.spawn([*serve, "--count", "100", "--timeout", "60"], name="dns")
    assert handle.wait_for_port(5353, "udp", timeout=10) is handle
    assert handle.running and os.readlink(f"/proc/{handle.pid}/ns/net") != os.readlink("/proc/self/ns/net")
    asked = inside(
        sandbox, "solo", sys.executable, "-m", "netnskit.probe", "connect", "--proto", "udp", "127.0.0.1", "5353"
    )
    assert json.loads(asked.stdout)["reply"] == "netnskit-probe 127.0.0.1 127.0.0.1"
    assert "ready" in handle.log_tail()  # its output is in its log
    assert handle.log.startswith("/run/netnskit/logs/") and "/solo/dns-" in handle.log
    assert handle.stop(timeout=5) == -15  # SIGTERM was enough
    assert gone(handle.pid)

    tcp = space.spawn([sys.executable, "-m", "netnskit.probe", "serve", "--port", "8080", "--count", "9"])
    probe = [sys.executable, "-m", "netnskit.probe", "connect", "--connect-only", "127.0.0.1", "8080"]
    tcp.wait_ready(probe, timeout=10)
    assert tcp.running
    tcp.stop()
    # a process that never listens: the error names it and shows its log
    quiet = space.spawn(["sh", "-c", "echo waiting for nothing; exec sleep 30"], name="quiet")
    with pytest.raises(ProcessError, match="did not become ready") as info:
        quiet.wait_for_port(9, timeout=1)
    assert "waiting for nothing" in str(info.value) and info.value.log == quiet.log
    # what it started goes with it: they carry its mark
    parent = space.spawn(["sh", "-c", "sleep 300 & echo started; wait"], name="parent")
    parent.wait_ready(["true"])
    deadline = time.monotonic() + 10
    while len(marked_pids(sandbox.runner, parent.owner)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    family = marked_pids(sandbox.runner, parent.owner)
    assert parent.pid in family and len(family) == 2, family
    parent.stop(timeout=5)
    assert all(gone(pid) for pid in family)
    # a process that ignores SIGTERM is killed after the timeout
    stubborn = space.spawn(["sh", "-c", "trap '' TERM; echo up; while :; do sleep 1; done"], name="stubborn")
    time.sleep(0.3)
    assert stubborn.stop(timeout=1) == -9
    quiet.stop()


# --- captures ---------------------------------------------------------------------------------------


def icmp_lines(pcap: Path, box: Sandbox) -> list[str]:
    """``tcpdump -r PCAP -n icmp``, one line per packet."""
    return box.run(["tcpdump", "-r", str(pcap), "-n", "icmp"]).check(f"reading {pcap}").stdout.splitlines()


def test_a_capture_of_a_link_holds_the_packets_of_a_probe(sandbox: Sandbox, tmp_path: Path) -> None:
    before = HostState.capture(sandbox.runner)
    net = hosts_network(sandbox.runner)
    net.up()
    pcap = tmp_path / "veth-red.pcap"
    with net.capture("veth-red", pcap) as capture:
        assert capture.running and capture.netns is None and capture.interface == "veth-red"
        for _ in range(3):  # a loaded host may lose the first packet: ping until two replies came
            if inside(sandbox, "red", "ping", "-c", "2", "-i", "0.2", "-W", "2", "blue").returncode == 0:
                break
    assert capture.packets is not None and capture.packets >= 4
    lines = icmp_lines(pcap, sandbox)
    assert any("10.61.0.2 > 10.61.0.3: ICMP echo request" in line for line in lines), lines
    assert any("10.61.0.3 > 10.61.0.2: ICMP echo reply" in line for line in lines), lines

    # a link inside a namespace, by NETNS:IFNAME, ending by itself after a count
    far = tmp_path / "far.pcap"
    capture = net.capture("far:eth0", far, count=2)
    assert capture.netns == "far"
    inside(sandbox, "blue", "ping", "-c", "3", "-i", "0.2", "-W", "2", "far")
    assert capture.wait(timeout=10) and capture.packets == 2
    assert len(sandbox.run(["tcpdump", "-r", str(far), "-n"]).check().stdout.splitlines()) == 2

    # the command line: netnskit capture FILE LINK -w PATH, for a duration
    cli = tmp_path / "cli.pcap"
    pinging = threading.Thread(
        target=lambda: inside(sandbox, "blue", "ping", "-c", "6", "-i", "0.25", "-W", "2", "red"), daemon=True
    )
    toml = tmp_path / "hosts.toml"
    toml.write_text(HOSTS_TOML)
    pinging.start()
    assert main(["capture", str(toml), "red:eth0", "-w", str(cli), "--duration", "2"], runner=sandbox.runner) == 0
    pinging.join(20)
    assert any("10.61.0.3 > 10.61.0.2: ICMP echo request" in line for line in icmp_lines(cli, sandbox))
    net.down()
    assert settled(sandbox, before) == []


HOSTS_TOML = """
[network]
name = "hosts"
bridge = "br-hosts"
subnet = "10.61.0.0/24"
gateway = "10.61.0.1"

[[namespace]]
name = "red"
mtu = 1400
sysctls = { "net.ipv4.ip_forward" = 1, "net.ipv4.ping_group_range" = "0 2147483647" }
dns = ["203.0.113.53"]

[[namespace]]
name = "blue"

[[extra_namespace]]
name = "far"
sysctls = { "net.ipv4.conf.all.forwarding" = 1 }

[[link]]
name = "l-far"
netns = "blue"
address = "10.62.0.1/30"
peer = "eth0"
peer_netns = "far"
peer_address = "10.62.0.2/30"
mtu = 1300
"""


def test_the_toml_form_is_the_same_network() -> None:
    from netnskit.testing import FakeRunner

    fake = FakeRunner()
    assert Network.from_dict(tomllib.loads(HOSTS_TOML), runner=fake) == hosts_network(fake)


def test_the_readmes_lab_comes_up_as_it_says(sandbox: Sandbox) -> None:
    before = HostState.capture(sandbox.runner)
    net = Network.from_dict(tomllib.loads(readme_block("toml", 'name = "lab"')), runner=sandbox.runner)
    net.up()
    assert inside(sandbox, "far", "getent", "hosts", "router").stdout.split()[0] == "10.51.0.1"
    assert inside(sandbox, "router", "cat", "/proc/sys/net/ipv4/ip_forward").stdout == "1\n"
    assert inside(sandbox, "router", "cat", "/proc/sys/net/ipv4/conf/all/rp_filter").stdout == "0\n"
    assert "nameserver 203.0.113.53" in inside(sandbox, "router", "cat", "/etc/resolv.conf").stdout
    assert sandbox.run(["test", "-e", "/etc/netns/far/resolv.conf"]).returncode == 1
    mtu = {d["ifname"]: d["mtu"] for d in json.loads(sandbox.run(["ip", "-j", "link", "show"]).stdout)}
    assert mtu["veth-router"] == 1400
    link = json.loads(sandbox.run(["ip", "-n", "router", "-j", "link", "show", "l-far"]).stdout)[0]
    assert link["mtu"] == 1300
    net.down()
    assert settled(sandbox, before) == []


def test_the_readmes_capture_example(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    import netnskit

    before = HostState.capture(sandbox.runner)
    monkeypatch.setattr(netnskit, "LiveRunner", lambda: sandbox.runner)
    monkeypatch.chdir(tmp_path)  # blue.pcap is written here
    code = readme_block("python", 'net.capture("veth-blue", "blue.pcap")').replace(
        '"examples/seed.toml"', repr(str(SEED))
    )
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "True"  # check() passed
    packets = int(out[1].split()[0])
    assert packets > 0 and out[1] == f"{packets} packets in blue.pcap"
    read = sandbox.run(["tcpdump", "-r", str(tmp_path / "blue.pcap"), "-n"]).check().stdout.splitlines()
    assert len(read) == packets
    assert any("192.168.15.2.80 > " in line for line in read)  # the forward's probes reached the web server
    assert settled(sandbox, before) == []

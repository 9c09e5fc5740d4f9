"""The demo's pure parts: the echoing runner, ping/snmp parsing, the story's exact commands, and its import path."""

from __future__ import annotations

import subprocess
import sys
import types

from netnskit.demo.echo import EchoRunner
from netnskit.demo.evidence import icmp_echo_requests, ping
from netnskit.demo.story import Story
from netnskit.testing import FakeRunner

PING_OK = """PING 192.168.15.2 (192.168.15.2) 56(84) bytes of data.
64 bytes from 192.168.15.2: icmp_seq=1 ttl=64 time=0.051 ms

--- 192.168.15.2 ping statistics ---
2 packets transmitted, 1 received, 50% packet loss, time 1001ms
"""

SNMP = """Ip: Forwarding DefaultTTL InReceives
Ip: 2 64 7
Icmp: InMsgs InErrors InCsumErrors InDestUnreachs InTimeExcds InParmProbs InSrcQuenchs InRedirects InEchos InEchoReps
Icmp: 5 0 0 0 0 0 0 0 3 2
IcmpMsg: InType0 InType8
IcmpMsg: 2 3
"""


def test_echo_runner_prints_then_runs_the_same_argv():
    fake = FakeRunner().fail(["ip", "link", "del", "x0"], 'Cannot find device "x0"\n')
    out: list[str] = []
    echo = EchoRunner(fake, out.append)
    assert echo.run(["ip", "netns", "add", "red"]).ok
    assert not echo.run(["ip", "link", "del", "x0"]).ok
    assert fake.argvs == [["ip", "netns", "add", "red"], ["ip", "link", "del", "x0"]]
    assert out == ["  $ ip netns add red", "  $ ip link del x0", '    exit 1: Cannot find device "x0"']


def test_echo_runner_shows_stdin_as_a_here_document():
    fake = FakeRunner()
    out: list[str] = []
    EchoRunner(fake, out.append).run(["iptables-restore", "--noflush"], input="*nat\nCOMMIT\n")
    assert fake.inputs == ["*nat\nCOMMIT\n"]
    assert out == ["  $ iptables-restore --noflush <<'EOF'", "    *nat", "    COMMIT", "    EOF"]


def test_echo_runner_quotes_like_a_shell():
    out: list[str] = []
    EchoRunner(FakeRunner(), out.append).run(["iptables", "!", "-o", "v-net-0"])
    assert out == ["  $ iptables '!' -o v-net-0"]


def test_ping_parses_the_statistics_and_runs_inside_the_namespace():
    fake = FakeRunner().on("ip netns exec red ping *", stdout=PING_OK, returncode=0)
    got = ping(fake, "red", "192.168.15.2", count=2)
    assert (got.sent, got.received, got.error, got.ok) == (2, 1, "", True)
    assert fake.argvs == [
        ["ip", "netns", "exec", "red", "ping", "-n", "-c", "2", "-i", "0.2", "-W", "1.0", "192.168.15.2"]
    ]


def test_ping_reports_network_unreachable():
    fake = FakeRunner().fail("*ping*", "ping: connect: Network is unreachable\n", returncode=2)
    got = ping(fake, "blue", "192.168.1.3")
    assert (got.sent, got.received, got.ok) == (0, 0, False)
    assert got.error == "ping: connect: Network is unreachable"


def test_ping_with_no_reply_is_not_ok():
    text = "2 packets transmitted, 0 received, 100% packet loss, time 1020ms\n"
    got = ping(FakeRunner().on("*ping*", stdout=text, returncode=1), None, "192.168.1.3", count=2)
    assert (got.sent, got.received, got.ok, got.summary()) == (2, 0, False, "2 sent, 0 received")


def test_icmp_echo_requests_reads_in_echos():
    fake = FakeRunner().on("*cat /proc/net/snmp", stdout=SNMP)
    assert icmp_echo_requests(fake, "lan") == 3
    assert fake.argvs == [["ip", "netns", "exec", "lan", "cat", "/proc/net/snmp"]]


def story_on(fake: FakeRunner) -> Story:
    box = types.SimpleNamespace(runner=fake)
    story = Story(box, out=lambda line: None)  # type: ignore[arg-type]
    fake.clear()
    return story


def test_the_cable_step_commands():
    fake = FakeRunner()
    story_on(fake).connect_red_blue()
    assert fake.argvs == [
        [
            "ip",
            "link",
            "add",
            "veth-red",
            "netns",
            "red",
            "up",
            "type",
            "veth",
            "peer",
            "name",
            "veth-blue",
            "netns",
            "blue",
        ],
        ["ip", "-n", "blue", "link", "set", "veth-blue", "up"],
        ["ip", "-n", "red", "addr", "add", "192.168.15.1/24", "dev", "veth-red"],
        ["ip", "-n", "blue", "addr", "add", "192.168.15.2/24", "dev", "veth-blue"],
    ]


def test_the_lan_route_commands():
    fake = FakeRunner()
    story_on(fake).route_blue_to_lan()
    assert fake.argvs == [
        ["sysctl", "-w", "net.ipv4.ip_forward=1"],
        ["ip", "-n", "blue", "route", "add", "192.168.1.0/24", "via", "192.168.15.5"],
    ]


def test_the_bridge_step_attaches_each_colour():
    fake = FakeRunner()
    story_on(fake).build_bridge()
    assert fake.argvs[0] == ["ip", "link", "add", "name", "v-net-0", "up", "type", "bridge"]
    assert [
        "ip",
        "link",
        "add",
        "veth-gray-br",
        "up",
        "master",
        "v-net-0",
        "type",
        "veth",
        "peer",
        "name",
        "veth-gray",
        "netns",
        "gray",
    ] in fake.argvs
    assert ["ip", "-n", "orange", "addr", "add", "192.168.15.3/24", "dev", "veth-orange"] in fake.argvs


def test_the_core_and_the_cli_do_not_import_the_demo():
    code = "import sys, netnskit, netnskit.cli; print(sorted(m for m in sys.modules if m.startswith('netnskit.demo')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.strip() == "[]"


def test_ping_until_a_reply_asks_every_0_2_s_for_whole_seconds_at_most():
    fake = FakeRunner().on("ip netns exec red ping *", stdout=PING_OK, returncode=0)
    assert ping(fake, "red", "192.168.15.2", deadline=4.5).ok
    assert fake.argvs == [
        ["ip", "netns", "exec", "red", "ping", "-n", "-c", "1", "-i", "0.2", "-w", "5", "192.168.15.2"]
    ]

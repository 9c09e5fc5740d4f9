"""Namespaces as hosts, processes and captures, without a kernel: exact argv, file contents, validation,
and up/down/status of a network's processes against a FakeRunner's scripted answers."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import attrs
import pytest

from netnskit.capture import start_capture, tcpdump_argv
from netnskit.cli import build_parser, main
from netnskit.errors import ConfigError, NotOursError, ProcessError, StepError, ValidationError
from netnskit.harness import Reach, _target, reachability_table
from netnskit.netns import Namespace
from netnskit.network import Network, ProcessSpec
from netnskit.network.files import EMPTY, hosts_text, remove_commands, resolv_text, write_commands
from netnskit.process import Ready, marked_pids, ready, scan_argv, spawn, spawn_argv, stop_pids
from netnskit.runner import LiveRunner
from netnskit.testing import FakeRunner

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed.toml"
PLACE = "net:[4026531840]\n"  # what readlink /proc/self/ns/net prints
SS_80 = "nsenter --net=/run/netns/blue -- ss -H -ltn sport = :80"
LISTEN = "LISTEN 0 5 192.168.15.2:80 0.0.0.0:*\n"


@pytest.fixture(autouse=True)
def no_real_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """A network made without a runner would get a LiveRunner: here any real command is a test bug."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a unit test ran a real command: {args[1:]!r}")

    monkeypatch.setattr(LiveRunner, "run", refuse)
    monkeypatch.setattr(LiveRunner, "start", refuse)


def seed(fake: FakeRunner) -> Network:
    return Network.from_toml(SEED, runner=fake)


def writes(fake: FakeRunner) -> list[list[str]]:
    reads = re.compile(
        r"(^| )(-j|iptables-save|ip6tables-save)( |$)|^sysctl -n |^readlink |(^|-- )(grep|find|ss|tail|sha256sum) "
    )
    return [a for a in fake.argvs if not reads.search(" ".join(a))]


# --- hosts and resolv.conf ----------------------------------------------------------------------


def test_each_namespace_names_every_node_nearest_address_first() -> None:
    net = seed(FakeRunner())
    body = hosts_text(net, "lan").splitlines()
    assert body[:4] == [
        "# netnskit:seed",
        "# the nodes of network seed, nearest address first: written by netnskit up, removed by netnskit down",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
    ]
    # lan is on the host's 192.168.1.0/24 link: it finds the host there first
    assert body[4:] == [
        "192.168.1.2\thost",
        "192.168.15.5\thost gateway",
        "192.168.15.1\tred",
        "192.168.15.2\tblue",
        "192.168.15.3\torange",
        "192.168.15.4\tgray",
        "192.168.1.3\tlan",
        "203.0.113.1\tlan",
        "203.0.113.10\tinternet",
    ]
    # internet reaches lan on their shared link first
    assert hosts_text(net, "internet").splitlines()[-3:] == [
        "203.0.113.1\tlan",
        "192.168.1.3\tlan",
        "203.0.113.10\tinternet",
    ]
    assert str(net.address_of("lan", seen_from="internet")) == "203.0.113.1"
    assert str(net.address_of("host", seen_from="lan")) == "192.168.1.2"
    assert str(net.address_of("gateway", seen_from="lan")) == "192.168.15.5"
    with pytest.raises(ValidationError, match="is not a node of network 'seed'"):
        net.address_of("nobody")


def test_a_namespace_called_host_keeps_its_name() -> None:
    net = Network(name="n", bridge="br-n", subnet="10.1.0.0/24", gateway="10.1.0.1", namespaces=["host", "b"])
    lines = hosts_text(net, "b").splitlines()[4:]
    assert lines == ["10.1.0.1\tgateway", "10.1.0.2\thost", "10.1.0.3\tb"]
    assert str(net.address_of("host")) == "10.1.0.2"


def test_resolv_conf_only_where_dns_is_asked_for() -> None:
    net = Network(
        name="n",
        bridge="br-n",
        subnet="10.1.0.0/24",
        gateway="10.1.0.1",
        namespaces=[{"name": "a", "dns": ["203.0.113.53", "2001:db8::53"]}, "b", {"name": "c", "dns": []}],
        dns=["203.0.113.1"],
    )
    assert resolv_text(net, "a") == (
        "# netnskit:n\n# written by netnskit up, removed by netnskit down\n"
        "nameserver 203.0.113.53\nnameserver 2001:db8::53\n"
    )
    assert resolv_text(net, "b") is not None and "nameserver 203.0.113.1\n" in resolv_text(net, "b")  # type: ignore[operator]
    assert resolv_text(net, "c") is None  # its own empty list: none, not the network's
    assert resolv_text(attrs.evolve(net, dns=()), "b") is None


def test_file_commands_write_each_content_once_and_remove_what_is_ours() -> None:
    files = {"/etc/netns/a/hosts": "X\n", "/etc/netns/b/hosts": "X\n", "/etc/netns/a/resolv.conf": "Y\n"}
    commands = write_commands(files)
    assert [c.argv for c in commands] == [
        ("mkdir", "-p", "--", "/etc/netns/a", "/etc/netns/b"),
        ("tee", "--", "/etc/netns/a/hosts", "/etc/netns/b/hosts"),
        ("tee", "--", "/etc/netns/a/resolv.conf"),
        ("chmod", "0644", "--", "/etc/netns/a/hosts", "/etc/netns/b/hosts", "/etc/netns/a/resolv.conf"),
    ]
    assert [c.input for c in commands] == [None, "X\n", "Y\n", None]
    assert {(c.tool, c.channel, c.netns, c.batch) for c in commands} == {("file", "file", None, None)}
    assert [c.argv for c in remove_commands(["/etc/netns/a/hosts", "/etc/netns/a/resolv.conf"])] == [
        ("rm", "-f", "--", "/etc/netns/a/hosts", "/etc/netns/a/resolv.conf"),
        ("rmdir", "--ignore-fail-on-non-empty", "--", "/etc/netns/a"),
    ]


def test_hosts_false_writes_no_file() -> None:
    net = attrs.evolve(seed(FakeRunner()), hosts=False)
    assert not any(c.tool == "file" for s in net.plan() for c in s.do)


# --- sysctls and MTU --------------------------------------------------------------------------------


def test_sysctls_and_mtu_become_steps_inside_their_places() -> None:
    net = Network(
        name="n",
        bridge="br-n",
        subnet="10.1.0.0/24",
        gateway="10.1.0.1",
        namespaces=[{"name": "a", "mtu": 1400, "sysctls": {"net.ipv4.ip_forward": 1}}],
        extra_namespaces=[{"name": "x", "sysctls": {"net/ipv4/conf/all/forwarding": "1"}}],
        links=[{"name": "l-x", "peer": "eth0", "peer_netns": "x", "mtu": 1300}],
        hosts=False,
    )
    steps = {s.description: [c.host_argv() for c in s.do] for s in net.plan()}
    assert steps["set the MTU of veth-a in the host and eth0 in a to 1400"] == [
        ["ip", "link", "set", "veth-a", "mtu", "1400"],
        ["ip", "-n", "a", "link", "set", "eth0", "mtu", "1400"],
    ]
    assert steps["set the MTU of l-x in the host and eth0 in x to 1300"] == [
        ["ip", "link", "set", "l-x", "mtu", "1300"],
        ["ip", "-n", "x", "link", "set", "eth0", "mtu", "1300"],
    ]
    assert steps["set net.ipv4.ip_forward = 1 inside namespace a"] == [
        ["ip", "netns", "exec", "a", "sysctl", "-w", "net.ipv4.ip_forward=1"]
    ]
    assert steps["set net/ipv4/conf/all/forwarding = 1 inside namespace x"] == [
        ["ip", "netns", "exec", "x", "sysctl", "-w", "net/ipv4/conf/all/forwarding=1"]
    ]


def test_a_sysctl_already_set_is_not_set_again() -> None:
    fake = FakeRunner()
    net = Network(
        name="n",
        bridge="br-n",
        subnet="10.1.0.0/24",
        gateway="10.1.0.1",
        namespaces=[{"name": "a", "sysctls": {"net.ipv4.ip_forward": 1}}],
        hosts=False,
        runner=fake,
    )
    fake.on(["ip", "-j", "netns", "list"], stdout='[{"name": "a", "id": 0}]')
    fake.on(
        "nsenter --net=/run/netns/a -- grep -s -H '' -- /proc/sys/net/ipv4/ip_forward",
        stdout="/proc/sys/net/ipv4/ip_forward:1\n",
    )
    assert "set net.ipv4.ip_forward = 1 inside namespace a" not in [s.description for s in net.missing_steps()]
    fake.on(
        "nsenter --net=/run/netns/a -- grep -s -H '' -- /proc/sys/net/ipv4/ip_forward",
        stdout="/proc/sys/net/ipv4/ip_forward:0\n",
    )
    assert "set net.ipv4.ip_forward = 1 inside namespace a" in [s.description for s in net.missing_steps()]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"sysctls": {"net.ipv4.ip_forward": True}}, "must be an integer or a string"),
        ({"sysctls": {"net ipv4": 1}}, "must be a setting's name"),
        ({"sysctls": {"../../etc/x": 1}}, "must be a setting's name"),
        ({"sysctls": {"net.ipv4.ip_forward": "1\nnet.x=2"}}, "must be printable ASCII"),
        ({"sysctls": "net.ipv4.ip_forward=1"}, "must be a table of settings"),
        ({"mtu": 40}, "MTU"),
        ({"dns": "203.0.113.53"}, "must be a list"),
        ({"dns": ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"]}, "at most 3"),
        ({"dns": ["not-an-address"]}, "not-an-address"),
    ],
)
def test_bad_host_settings_are_refused_before_any_command(fields: dict[str, object], message: str) -> None:
    fake = FakeRunner(strict=True)
    with pytest.raises(ValidationError, match=re.escape(message)):
        Network(
            name="n",
            bridge="br-n",
            subnet="10.1.0.0/24",
            gateway="10.1.0.1",
            namespaces=[{"name": "a", **fields}],
            runner=fake,
        )
    assert fake.argvs == []


# --- processes: description ---------------------------------------------------------------------------


def test_ready_is_a_port_or_a_command() -> None:
    assert ready("tcp:80") == Ready("tcp", 80)
    assert ready("udp:53") == Ready("udp", 53)
    assert ready(["curl", "-fs", "http://x/"]) == Ready("command", command=("curl", "-fs", "http://x/"))
    assert str(ready("tcp:80")) == "tcp:80" and ready(None) is None
    for bad in ("tcp", "http:80", "tcp:0", "tcp:70000", "curl -fs http://x/", []):
        with pytest.raises(ValidationError):
            ready(bad)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"command": "python3 -m http.server"}, "must be a list of strings"),
        ({"command": []}, "must not be empty"),
        ({"command": ["sh", "a\0b"]}, "without NUL"),
        ({"order": True}, "must be an integer"),
        ({"ready_timeout": 0}, "from 0 to 3600"),
        ({"name": "-web"}, "must not start with '-'"),
        ({"netns": "nowhere"}, "is not a namespace of network 'n'"),
    ],
)
def test_bad_processes_are_refused(fields: dict[str, object], message: str) -> None:
    spec = {"name": "web", "netns": "a", "command": ["true"], **fields}
    with pytest.raises(ValidationError, match=re.escape(message)):
        Network(name="n", bridge="br-n", subnet="10.1.0.0/24", gateway="10.1.0.1", namespaces=["a"], processes=[spec])


def test_two_processes_of_one_name_are_refused() -> None:
    with pytest.raises(ValidationError, match="is used twice"):
        Network(
            name="n",
            bridge="br-n",
            subnet="10.1.0.0/24",
            gateway="10.1.0.1",
            namespaces=["a"],
            processes=[ProcessSpec("w", "a", ["true"]), ProcessSpec("w", "a", ["false"])],
        )


def test_toml_processes_take_the_programs_name_and_a_path_from_the_files_folder(tmp_path: Path) -> None:
    path = tmp_path / "net.toml"
    path.write_text(
        '[network]\nname = "n"\nbridge = "br-n"\nsubnet = "10.1.0.0/24"\ngateway = "10.1.0.1"\nlogs = "logs"\n'
        '[[namespace]]\nname = "a"\n'
        '[[process]]\nnetns = "a"\ncommand = ["/usr/bin/python3", "-m", "http.server"]\ncwd = "site"\n'
        'ready = ["true"]\norder = 2\nready_timeout = 2.5\n'
    )
    net = Network.from_toml(path, runner=FakeRunner())
    (proc,) = net.processes
    assert (proc.name, proc.order, proc.ready_timeout, proc.ready) == (
        "python3",
        2,
        2.5,
        Ready("command", None, ("true",)),
    )
    assert net.directory == str(tmp_path)
    path.write_text(path.read_text().replace("order = 2", 'order = "2"'))
    with pytest.raises(ConfigError, match=r"process\[0\]\.order = '2': must be an integer"):
        Network.from_toml(path)
    path.write_text(path.read_text().replace('order = "2"', 'wait = "2"'))
    with pytest.raises(ConfigError, match=r"process\[0\]\.wait: unknown key"):
        Network.from_toml(path)


def test_the_rendered_script_lists_the_processes_after_the_plan() -> None:
    script = seed(FakeRunner(strict=True)).render_script()
    assert script.endswith(
        "\n# then process web in blue: python3 -u -m http.server 80 --bind blue (in www); ready when tcp:80\n"
    )
    odd = Network(
        name="n",
        bridge="br-n",
        subnet="10.1.0.0/24",
        gateway="10.1.0.1",
        namespaces=["a"],
        processes=[ProcessSpec("p", "a", ["echo", "x\nrm -rf /tmp/nothing"])],
    )
    # a newline in a word stays inside the comment
    assert "\n# rm -rf /tmp/nothing'\n" in odd.render_script()


# --- processes: commands ------------------------------------------------------------------------------


def test_spawn_argv_marks_the_process_and_passes_every_value_as_an_argument() -> None:
    argv = spawn_argv(
        ["python3", "-m", "http.server", "$(reboot)"],
        netns="blue",
        log="/run/netnskit/logs/1/seed/web.log",
        pidfile="/run/netnskit/processes/1/seed/web.pid",
        cwd="/srv/www",
        owner="netnskit:seed@1",
        name="web",
    )
    assert argv[:6] == ["ip", "netns", "exec", "blue", "setsid", "env"]
    assert argv[6:8] == ["NETNSKIT_OWNER=netnskit:seed@1", "NETNSKIT_PROCESS=web"]
    assert argv[8:10] == ["sh", "-c"]
    script = argv[10]
    assert "$(reboot)" not in script and "seed" not in script and "/srv/www" not in script  # data never in it
    assert argv[11:] == [
        "netnskit-process",
        "/run/netnskit/processes/1/seed/web.pid",
        "/run/netnskit/logs/1/seed/web.log",
        "/srv/www",
        "python3",
        "-m",
        "http.server",
        "$(reboot)",
    ]
    plain = spawn_argv(["sleep", "9"], netns=None, log="/tmp/x.log")
    assert plain[:3] == ["setsid", "sh", "-c"] and plain[4:] == ["netnskit-process", "", "/tmp/x.log", "", "sleep", "9"]


def test_the_scan_reads_every_environ_for_the_exact_mark() -> None:
    assert scan_argv("netnskit:seed@7") == [
        *("find", "/proc", "-mindepth", "2", "-maxdepth", "2", "-name", "environ", "-exec"),
        *("grep", "-l", "-s", "-z", "-x", "-F", "-e", "NETNSKIT_OWNER=netnskit:seed@7", "{}", "+"),
    ]
    fake = FakeRunner().on(
        re.compile("^find /proc"), stdout="/proc/12/environ\n/proc/self/environ\nnoise\n/proc/9/environ\n"
    )
    assert marked_pids(fake, "netnskit:seed@7") == [9, 12]
    fake.on(re.compile("^grep -l -s -z -x -F -e NETNSKIT_PROCESS=web"), stdout="/proc/12/environ\n", returncode=1)
    assert marked_pids(fake, "netnskit:seed@7", names=["web"]) == [12]
    assert fake.argvs[-1] == [
        *("grep", "-l", "-s", "-z", "-x", "-F", "-e", "NETNSKIT_PROCESS=web", "--"),
        *("/proc/9/environ", "/proc/12/environ"),
    ]


def test_stop_pids_sends_term_then_kill_to_the_marked_ones_left() -> None:
    fake = FakeRunner()
    # still marked after SIGTERM (the first scans), gone after SIGKILL
    fake.on(re.compile("^find /proc"), stdout="/proc/9/environ\n/proc/12/environ\n")
    fake.on(["kill", "-KILL", "9", "12"], stdout="")
    left = stop_pids(fake, [12, 9], "netnskit:seed@7", timeout=0.05)
    assert left == [9, 12]  # a kill that does not take is reported, never retried past SIGKILL
    signals = [a for a in fake.argvs if a[0] == "kill"]
    assert signals == [["kill", "-TERM", "9", "12"], ["kill", "-KILL", "9", "12"]]
    fake = FakeRunner()  # nothing marked: nothing signalled twice
    assert stop_pids(fake, [3], "netnskit:seed@7") == []
    assert [a for a in fake.argvs if a[0] == "kill"] == [["kill", "-TERM", "3"]]


def test_a_handle_waits_for_its_port_and_says_why_when_it_is_not_ready() -> None:
    fake = FakeRunner().on(SS_80, stdout=LISTEN).on(SS_80, stdout="", times=2)  # the latest reply wins
    handle = spawn(fake, "blue", ["server"], log="/tmp/web.log", name="web")
    assert handle.wait_for_port(80, timeout=5) is handle
    assert [a for a in fake.argvs if "ss" in a] == [SS_80.split()] * 3
    never = spawn(FakeRunner().on(re.compile("^tail"), stdout="bind: address in use\n"), "blue", ["x"], log="/l")
    with pytest.raises(ProcessError) as info:
        never.wait_for_port(80, timeout=0.1)
    assert str(info.value) == (
        "process 'x' in namespace 'blue' did not become ready (tcp:80) within 0.1 s; "
        "its log /l ends with:\nbind: address in use"
    )
    dead = spawn(FakeRunner(), "blue", ["x"], log="/l")
    dead.process.returncode = 3  # type: ignore[attr-defined]
    with pytest.raises(ProcessError, match="exited with status 3 before it was ready"):
        dead.wait_ready(["true"])


def test_namespace_spawn_logs_under_run_netnskit_by_default() -> None:
    fake = FakeRunner().on(["readlink", "/proc/self/ns/net"], stdout=PLACE)
    handle = Namespace("red", runner=fake).spawn(["/usr/bin/iperf3", "-s"])
    assert handle.name == "iperf3" and handle.netns == "red"
    assert re.fullmatch(r"/run/netnskit/logs/4026531840/red/iperf3-\d+\.log", handle.log)
    assert fake.started[0].argv[:4] == ["ip", "netns", "exec", "red"]


# --- a network's processes --------------------------------------------------------------------------


def two_processes(fake: FakeRunner) -> Network:
    return Network(
        name="n",
        bridge="br-n",
        subnet="10.1.0.0/24",
        gateway="10.1.0.1",
        namespaces=["a"],
        hosts=False,
        processes=[
            ProcessSpec("second", "a", ["srv2"], order=2, ready="tcp:2"),
            ProcessSpec("first", "a", ["srv1"], order=1, ready="tcp:1", ready_timeout=0.2),
        ],
        runner=fake,
    )


def test_up_starts_the_processes_in_order_after_the_network() -> None:
    fake = FakeRunner().on(["readlink", "/proc/self/ns/net"], stdout=PLACE)
    fake.on(re.compile(r"-- ss -H -ltn sport = :[12]$"), stdout="LISTEN\n")
    two_processes(fake).up()
    started = [p.argv for p in fake.started]
    assert [argv[-1] for argv in started] == ["srv1", "srv2"]
    assert started[0][6:8] == ["NETNSKIT_OWNER=netnskit:n@4026531840", "NETNSKIT_PROCESS=first"]
    assert started[0][12] == "/run/netnskit/processes/4026531840/n/first.pid"
    assert started[0][13] == "/run/netnskit/logs/4026531840/n/first.log"
    # the network's commands come first, then the processes
    first_start = fake.argvs.index(started[0])
    assert all(a not in writes(fake)[:-2] for a in started) and first_start > fake.argvs.index(
        ["ip", "netns", "add", "a"]
    )


def test_a_process_not_ready_stops_what_started_and_rolls_the_network_back() -> None:
    fake = FakeRunner().on(["readlink", "/proc/self/ns/net"], stdout=PLACE)
    with pytest.raises(StepError) as info:
        two_processes(fake).up()
    assert info.value.step == "start process first in a"
    assert "did not become ready (tcp:1) within 0.2 s" in str(info.value)
    assert fake.started[0].returncode == -15  # stopped
    assert len(fake.started) == 1  # the second never started
    assert writes(fake)[-2:] == [["ip", "link", "del", "br-n"], ["ip", "netns", "del", "a"]]


def test_up_does_not_start_a_process_that_runs() -> None:
    fake = FakeRunner().on(["readlink", "/proc/self/ns/net"], stdout=PLACE)
    folder = "/run/netnskit/processes/4026531840/n"
    fake.on(["grep", "-r", "-s", "-H", "", "--", folder], stdout=f"{folder}/first.pid:41\n{folder}/second.pid:42\n")
    fake.on(re.compile("^find /proc"), stdout="/proc/41/environ\n")
    fake.on(re.compile(r"-- ss -H -ltn sport = :2$"), stdout="LISTEN\n")
    net = two_processes(fake)
    assert [(p.name, p.state, p.pid) for p in net.process_status()] == [
        ("first", "running", 41),
        ("second", "exited", 42),
    ]
    net.up()
    assert [p.argv[-1] for p in fake.started] == ["srv2"]  # only the one that exited


def test_down_ends_the_marked_processes_first_and_removes_their_pid_files() -> None:
    fake = FakeRunner().on(["readlink", "/proc/self/ns/net"], stdout=PLACE)
    folder = "/run/netnskit/processes/4026531840/n"
    fake.on(["grep", "-r", "-s", "-H", "", "--", folder], stdout=f"{folder}/first.pid:41\n")
    fake.on(re.compile("^find /proc"), stdout="/proc/41/environ\n/proc/43/environ\n", times=1)
    teardown = two_processes(fake).down()
    assert teardown.removed[:2] == ("process first (pid 41)", "process pid 43 (started by one of n's)")
    assert writes(fake)[:3] == [
        ["kill", "-TERM", "41", "43"],
        ["rm", "-f", "--", f"{folder}/first.pid"],
        ["rmdir", "--ignore-fail-on-non-empty", "--", folder],
    ]


def test_a_failed_read_of_the_place_stops_up_before_any_process_starts() -> None:
    fake = FakeRunner().fail(["readlink", "/proc/self/ns/net"], "readlink: permission denied\n")
    with pytest.raises(Exception, match="reading which network namespace the runner acts in"):
        two_processes(fake).up()
    assert fake.started == []


def test_check_connects_to_a_forward_served_by_a_process() -> None:
    fake = FakeRunner().on(re.compile("probe.py connect --connect-only"), stdout='{"ok": true}\n')
    net = seed(fake)
    # the network is up: its namespaces and host links exist (check probes nothing on a network that is down)
    fake.on(["ip", "-j", "netns", "list"], stdout=json.dumps([{"name": n} for n in net.namespace_names()]))
    links = [{"ifname": n, "ifalias": net.mark, "flags": ["UP"]} for n in net.host_ifnames()]
    fake.on(["ip", "-j", "link", "show"], stdout=json.dumps([{"ifname": "lo", "flags": ["UP"]}, *links]))
    report = net.check()
    forwards = [p for p in report.probes if p.kind == "forward"]
    assert [(p.source, p.target, p.ok, p.detail) for p in forwards] == [
        ("host", "192.168.15.5:80", True, "connected to process web"),
        ("lan", "192.168.1.2:80", True, "connected to process web"),
    ]
    assert not [a for a in fake.argvs if "serve" in a and "blue" in a]  # no probe server in blue: web is there


def test_status_prints_each_process(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeRunner().on(["readlink", "/proc/self/ns/net"], stdout=PLACE)
    folder = "/run/netnskit/processes/4026531840/seed"
    fake.on(["grep", "-r", "-s", "-H", "", "--", folder], stdout=f"{folder}/web.pid:77\n")
    fake.on(re.compile("^find /proc"), stdout="/proc/77/environ\n")
    assert main(["status", str(SEED)], runner=fake) == 3
    out = capsys.readouterr().out
    assert "  process web in blue: running (pid 77); log /run/netnskit/logs/4026531840/seed/web.log\n" in out


# --- captures ----------------------------------------------------------------------------------------


def test_tcpdump_argv_and_where_a_link_is() -> None:
    assert tcpdump_argv("veth-red", "/tmp/x.pcap") == [
        *("tcpdump", "-i", "veth-red", "-w", "/tmp/x.pcap", "-U", "--immediate-mode"),
    ]
    assert tcpdump_argv("eth0", "/tmp/x.pcap", count=5)[-2:] == ["-c", "5"]
    net = seed(FakeRunner())
    assert net.link_place("veth-blue") == (None, "veth-blue")
    assert net.link_place("v-net-0") == (None, "v-net-0")
    assert net.link_place("wan") == ("lan", "wan")
    assert net.link_place("internet:eth0") == ("internet", "eth0")
    with pytest.raises(ValidationError, match="is not a link of network 'seed'"):
        net.link_place("eth9")
    with pytest.raises(ValidationError):
        net.link_place("nowhere:eth0")
    assert net.capture_links() == [
        (None, "veth-red"),
        (None, "veth-blue"),
        (None, "veth-orange"),
        (None, "veth-gray"),
        (None, "v-lan"),
        ("lan", "wan"),
    ]
    for bad in ({"count": 0}, {"count": True}, {"duration": -1}):
        with pytest.raises(ValidationError):
            start_capture(FakeRunner(strict=True), None, "eth0", "/tmp/x.pcap", **bad)  # type: ignore[arg-type]


def test_the_capture_verb_takes_a_link_and_a_file() -> None:
    args = build_parser().parse_args(["capture", "net.toml", "lan:eth0", "-w", "x.pcap", "-c", "3", "--duration", "2"])
    assert (args.file, args.link, args.write, args.count, args.duration) == ("net.toml", "lan:eth0", "x.pcap", 3, 2.0)


# --- the harness's pure parts -----------------------------------------------------------------------


def test_targets_and_the_reachability_table() -> None:
    assert _target("blue") == ("blue", None, "tcp")
    assert _target("blue:80") == ("blue", 80, "tcp")
    assert _target("blue:53/udp") == ("blue", 53, "udp")
    with pytest.raises(ValidationError):
        _target("blue:http")
    rows = [
        (Reach("red", "blue", None, "tcp", True, "ping ok"), True),
        (Reach("red", "blue", 80, "tcp", False, "refused"), True),
        (Reach("lan", "blue", None, "tcp", True, "ping ok"), False),
    ]
    assert reachability_table(rows) == "\n".join(
        [
            "from \\ to  blue               blue:80",
            "red        yes                NO (expected yes)",
            "lan        YES (expected no)  -",
            "",
            "red -> blue:80: expected reachable; refused",
            "lan -> blue: expected unreachable; ping ok",
        ]
    )


def test_the_seed_toml_is_what_the_readme_shows() -> None:
    data = tomllib.loads(SEED.read_text())
    assert data["process"] == [
        {
            "name": "web",
            "netns": "blue",
            "command": ["python3", "-u", "-m", "http.server", "80", "--bind", "blue"],
            "cwd": "www",
            "ready": "tcp:80",
        }
    ]
    assert (SEED.parent / "www" / "index.html").read_text().startswith("hello from blue")


def test_down_removes_the_empty_files_and_folders_of_its_namespaces_only() -> None:
    fake = FakeRunner()
    fake.on(["ip", "-j", "netns", "list"], stdout="")
    fake.on(
        ["find", "/etc/netns", "-mindepth", "1", "-maxdepth", "2", "-empty"],
        stdout="/etc/netns/red\n/etc/netns/blue/hosts\n/etc/netns/theirs\n/etc/netns/theirs/hosts\n/etc/netns/lan/x\n",
    )
    teardown = seed(fake).down()
    assert "files /etc/netns/blue/hosts (empty), /etc/netns/red (empty)" in teardown.removed
    assert writes(fake) == [
        ["rm", "-f", "--", "/etc/netns/blue/hosts"],
        ["rmdir", "--ignore-fail-on-non-empty", "--", "/etc/netns/blue", "/etc/netns/red"],
    ]


def test_up_writes_over_an_empty_file_a_killed_tee_left() -> None:
    fake = FakeRunner()
    fake.on(re.compile(r"^sha256sum -- /etc/netns/"), stdout=f"{EMPTY}  /etc/netns/red/hosts\n")
    steps = seed(fake).missing_steps()  # no NotOursError: an empty file is no one's content
    assert "write hosts under /etc/netns for blue, gray, internet, lan, orange, red" in [s.description for s in steps]
    # a file with content, not ours, is refused
    fake.on(re.compile(r"^sha256sum -- /etc/netns/"), stdout=f"{'0' * 64}  /etc/netns/red/hosts\n")
    fake.on(re.compile(r"^grep -s -H -a -m 1 '' -- /etc/netns/"), stdout="/etc/netns/red/hosts:127.0.0.1 localhost\n")
    with pytest.raises(NotOursError):
        seed(fake).up()
    assert fake.started == []


# --- processes with drift, interrupts and cleanup NAME --------------------------------------------


def test_up_stops_a_process_the_file_no_longer_has_and_removes_its_pid_file() -> None:
    fake = FakeRunner().on(["readlink", "/proc/self/ns/net"], stdout=PLACE)
    folder = "/run/netnskit/processes/4026531840/n"
    # "old" was started by an up of an earlier version of the file; it still runs (pid 50)
    fake.on(["grep", "-r", "-s", "-H", "", "--", folder], stdout=f"{folder}/old.pid:50\n", times=1)
    fake.on(re.compile("^find /proc"), stdout="/proc/50/environ\n", times=1)
    fake.on(re.compile("^grep -l -s -z -x -F -e NETNSKIT_PROCESS=old "), stdout="/proc/50/environ\n", times=1)
    fake.on(re.compile(r"-- ss -H -ltn sport = :[12]$"), stdout="LISTEN\n")
    net = two_processes(fake)
    net.up()
    kills = [a for a in fake.argvs if a[0] == "kill"]
    assert kills == [["kill", "-TERM", "50"]]
    assert ["rm", "-f", "--", f"{folder}/old.pid"] in fake.argvs
    # the kill comes before the described processes start
    assert fake.argvs.index(["kill", "-TERM", "50"]) < fake.argvs.index(fake.started[0].argv)
    assert [p.argv[-1] for p in fake.started] == ["srv1", "srv2"]


def test_status_lists_a_process_the_file_lost_as_extra_and_missing() -> None:
    fake = FakeRunner().on(["readlink", "/proc/self/ns/net"], stdout=PLACE)
    folder = "/run/netnskit/processes/4026531840/n"
    fake.on(["grep", "-r", "-s", "-H", "", "--", folder], stdout=f"{folder}/old.pid:50\n")
    fake.on(re.compile("^find /proc"), stdout="/proc/50/environ\n")
    fake.on(re.compile("^grep -l -s -z -x -F -e NETNSKIT_PROCESS=old "), stdout="/proc/50/environ\n")
    status = two_processes(fake).status()
    assert [(o.kind, o.name) for o in status.extra] == [("process", "old")]
    assert [m.step for m in status.missing if m.name == "old"] == ["stop process old (no longer described)"]


def test_an_interrupt_while_processes_start_stops_those_started_and_rolls_the_network_back() -> None:
    from netnskit.errors import Interrupted
    from netnskit.interrupt import Interrupt

    stop = Interrupt()

    class StopAfterFirst(FakeRunner):
        """Asks for the stop once the first process is ready (its port listens)."""

        def run(self, argv, *, input=None, timeout=None, netns=None):  # type: ignore[no-untyped-def]
            result = super().run(argv, input=input, timeout=timeout, netns=netns)
            if list(argv[-2:]) == ["=", ":1"]:
                stop.request(2)
            return result

    fake = StopAfterFirst().on(["readlink", "/proc/self/ns/net"], stdout=PLACE)
    fake.on(re.compile(r"-- ss -H -ltn sport = :1$"), stdout="LISTEN\n")
    net = two_processes(fake)
    with pytest.raises(Interrupted) as caught:
        net.up(interrupt=stop)
    assert [p.argv[-1] for p in fake.started] == ["srv1"]  # the second never started
    assert fake.started[0].returncode == -15  # the first was stopped (SIGTERM)
    assert ["rm", "-f", "--", "/run/netnskit/processes/4026531840/n/first.pid"] in fake.argvs
    assert caught.value.undone == 1 + sum(1 for s in net.plan() if s.undo)  # the process and every step
    assert ["ip", "netns", "del", "a"] in fake.argvs  # the network rolled back too


def test_cleanup_name_ends_only_that_networks_processes() -> None:
    from netnskit.network import cleanup

    fake = FakeRunner().on(["readlink", "/proc/self/ns/net"], stdout=PLACE)
    teardown = cleanup("n", fake, dry_run=True)
    assert teardown.removed == ()
    scans = [a for a in fake.argvs if a[0] == "find"]
    assert scans and scans[0][-3:] == ["^NETNSKIT_OWNER=netnskit:n@4026531840$", "{}", "+"]

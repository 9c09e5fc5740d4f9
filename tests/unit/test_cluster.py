"""netnskit.cluster with a FakeRunner per host: the split into per-host plans (exact argv), the grouped
script, up in parallel with one host failing (every host rolled back), down from the marks alone,
the cluster file's checks, the Vxlan object, the multiplexed SshRunner and the locks it keys.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import pytest
from _readme import readme_block

from netnskit.cluster import Cluster, HostSpec, Vxlan, vni_for, vxlan_name_for
from netnskit.cluster.cluster import NOWHERE
from netnskit.errors import BusyError, ConfigError, NetnskitError, NotOursError, StepError, ValidationError
from netnskit.executors import batches
from netnskit.network import ForwardSpec, Network, group_for
from netnskit.network.locks import _exclusive, place_of
from netnskit.plan import Step
from netnskit.runner import Result, SshRunner
from netnskit.testing import FakeRunner, recorded

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "examples" / "cluster.toml"
G = group_for("seed")
VNI = vni_for("seed")
FLOOD = "00:00:00:00:00:00"
READS = re.compile(
    r"(^| )(-j|iptables-save|ip6tables-save)( |$)|^nft (-j )?list |^sysctl -n |^readlink "
    # the files under /etc/netns, the processes' pid files and marks
    r"|(^|-- )(grep|find|ss|tail|sha256sum) "
)


def hosts(*names: str) -> dict[str, FakeRunner]:
    """A FakeRunner per host, each in a namespace of its own (the locks key on it), forwarding off."""
    fakes = {}
    for i, name in enumerate(names):
        fake = FakeRunner().on(["readlink", "/proc/self/ns/net"], stdout=f"net:[{4026531840 + i}]\n")
        fake.on(re.compile(r"^sysctl -n "), stdout="0\n")
        fakes[name] = fake
    return fakes


def writes(fake: FakeRunner) -> list[list[str]]:
    return [a for a in fake.argvs if not READS.search(" ".join(a))]


def seed(fakes: dict[str, FakeRunner] | None = None) -> Cluster:
    return Cluster.from_toml(CLUSTER, runners=fakes or hosts("a", "b", "c"))


def argvs(steps: Sequence[Step]) -> list[list[str]]:
    return [recorded(c) for s in steps for c in s.do]


# --- the split --------------------------------------------------------------------------------


def test_vni_is_derived_from_the_name_in_24_bits() -> None:
    assert 1 + zlib.crc32(b"netnskit:seed") % (2**24 - 2) == VNI
    assert all(1 <= vni_for(f"n{i}") <= 2**24 - 2 for i in range(2000))
    assert seed().vni == VNI
    assert vxlan_name_for("seed", VNI) == "vx-seed"
    assert vxlan_name_for("a-rather-long-name", 0xABC) == "vx-000abc"


def test_each_host_gets_its_namespaces_the_bridge_and_a_vxlan_link_with_a_peer_each() -> None:
    plan = seed().plan()
    assert list(plan) == ["a", "b", "c"]
    b = argvs(plan["b"])
    assert b[:2] == [
        ["ip", "netns", "add", "blue"],
        ["nsenter", "--net=/run/netns/blue", "--", *["ip", "link", "set", "lo", "up", "alias", "netnskit:seed"]],
    ]
    assert ["ip", "link", "add", "name", "v-net-0", "group", str(G), "up", "type", "bridge", "mcast_snooping", "0"] in b
    # the namespaces' ends: the overlay's MTU (1500 - 50) on both ends of the veth
    veth = "ip link add veth-blue group G mtu 1450 master v-net-0 type veth peer name eth0 mtu 1450 netns blue"
    assert veth.replace(" G ", f" {G} ").split() in b
    assert b[-4:] == [
        [
            *("ip", "link", "add", "vx-seed", "group", str(G), "mtu", "1450", "master", "v-net-0"),
            *("type", "vxlan", "id", str(VNI), "dstport", "4789", "local", "10.200.0.2", "nolearning"),
        ],
        ["ip", "link", "set", "vx-seed", "alias", "netnskit:seed", "addrgenmode", "none", "up"],
        ["bridge", "fdb", "append", FLOOD, "dev", "vx-seed", "dst", "10.200.0.1"],
        ["bridge", "fdb", "append", FLOOD, "dev", "vx-seed", "dst", "10.200.0.3"],
    ]
    c = argvs(plan["c"])
    assert c[-2:] == [
        ["bridge", "fdb", "append", FLOOD, "dev", "vx-seed", "dst", "10.200.0.1"],
        ["bridge", "fdb", "append", FLOOD, "dev", "vx-seed", "dst", "10.200.0.2"],
    ]
    assert {a[3] for a in c if a[:3] == ["ip", "netns", "add"]} == {"orange"}


def test_only_the_gateway_host_has_the_gateway_address_forwarding_masquerade_and_the_forward() -> None:
    plan = seed().plan()
    for host, steps in plan.items():
        commands = [c for s in steps for c in s.do]
        gateway = ["ip", "addr", "add", "192.168.15.5/24", "dev", "v-net-0"] in [list(c.argv) for c in commands]
        firewall = [c for c in commands if c.tool == "iptables-restore"]
        forwarding = [c for c in commands if c.tool == "sysctl" and c.netns is None]
        assert gateway == (host == "a")
        nat = [c for c in firewall if "*nat" in (c.input or "")]
        assert bool(nat) == (host == "a") and bool(forwarding) == (host == "a")
        # every host accepts its bridge's own traffic (br_netfilter); that is all the others hold
        bridge = "-A NETNSKIT-FORWARD -i v-net-0 -o v-net-0 -m comment --comment netnskit:seed -j ACCEPT"
        assert len(firewall) == 1 and bridge in (firewall[0].input or "")
        # every namespace's default route goes to the gateway, wherever it is
        defaults = [c for c in commands if list(c.argv) == ["ip", "route", "add", "default", "via", "192.168.15.5"]]
        assert {c.netns for c in defaults} == {"a": {"red"}, "b": {"blue", "gray"}, "c": {"orange"}}[host]
    (restore,) = [c for s in plan["a"] for c in s.do if c.tool == "iptables-restore"]
    assert restore.input is not None
    assert "-s 192.168.15.0/24 ! -o v-net-0 -m comment --comment netnskit:seed -j MASQUERADE" in restore.input
    # the forward on host a reaches blue, which lives on host b
    assert "-j DNAT --to-destination 192.168.15.2:80" in restore.input
    parts = seed().parts
    assert parts["a"].network.remote_addresses == (
        ("blue", parts["b"].network.addresses()["blue"].ip),
        ("orange", parts["c"].network.addresses()["orange"].ip),
        ("gray", parts["b"].network.addresses()["gray"].ip),
    )
    assert [ns.name for ns in parts["a"].network.extra_namespaces] == ["lan", "internet"]
    assert [r.spec() for r in parts["a"].network.routes] == [
        ["203.0.113.0/24", "via", "192.168.1.3"],
        ["default", "via", "203.0.113.1"],
    ]
    assert parts["b"].network.routes == () and parts["b"].network.links == ()


def test_the_fdb_commands_are_typed_bridge_lines_and_batch_without_an_executor_change() -> None:
    part = seed().parts["b"]
    assert part.vxlan is not None
    command = part.vxlan.flood_command("10.200.0.1")
    assert command.tool == "bridge" and command.channel == "net" and command.netns is None
    assert command.batch is not None
    assert command.batch.program == ("bridge",) and command.batch.style == "lines"
    assert command.batch.line == f"fdb append {FLOOD} dev vx-seed dst 10.200.0.1"
    steps = seed().plan()["b"]
    processes = [b for stage in batches(steps) for b in stage]
    bridge = [b for b in processes if b.command.argv[0] == "bridge"]
    assert len(bridge) == 1 and list(bridge[0].command.argv) == ["bridge", "-batch", "-"]
    assert bridge[0].command.input == (
        f"fdb append {FLOOD} dev vx-seed dst 10.200.0.1\nfdb append {FLOOD} dev vx-seed dst 10.200.0.3\n"
    )


def test_a_cluster_of_one_host_has_no_overlay_and_keeps_the_kernel_mtu() -> None:
    data = {
        "network": {"name": "solo", "bridge": "br-solo", "subnet": "10.9.0.0/24", "gateway": "10.9.0.1"},
        "host": [{"name": "only", "ssh": "root@somewhere.example"}],
        "namespace": [{"name": "x"}],
    }
    cluster = Cluster.from_dict(data, runners=hosts("only"))
    (part,) = cluster.parts.values()
    assert part.vxlan is None and part.network.mtu is None
    assert not any(a[0] == "bridge" or "vxlan" in a for a in argvs(cluster.plan()["only"]))


def test_the_plan_script_has_a_section_per_host_run_there_and_is_valid_bash() -> None:
    script = seed().render_script()
    sections = re.findall(r"^# host (\w+) \((.*)\)$", script, re.MULTILINE)
    assert sections == [
        ("a", "ssh root@10.200.0.1, underlay 10.200.0.1; the gateway host"),
        ("b", "ssh root@10.200.0.2, underlay 10.200.0.2"),
        ("c", "ssh root@10.200.0.3, underlay 10.200.0.3"),
    ]
    assert "ssh -o BatchMode=yes root@10.200.0.2 -- 'bash -s' <<'NETNSKIT_HOST'" in script
    b = script.split("# host b ")[1].split("# host c ")[0]
    assert "ip link add vx-seed group" in b and "local 10.200.0.2 nolearning" in b
    assert f"bridge fdb append {FLOOD} dev vx-seed dst 10.200.0.1" in b
    assert "192.168.15.5/24" not in b and "*nat" not in b and "MASQUERADE" not in b
    assert script.split("# host b ")[0].count("iptables-restore -w 10 --noflush <<'NETNSKIT_EOF'") == 1
    checked = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr


def test_the_plan_script_run_by_bash_sends_each_host_exactly_its_commands(tmp_path: Path) -> None:
    # ssh is a recorder here: each host's section must reach it whole, as that host's bash reads it
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(f'#!/bin/sh\ncat > {tmp_path}/"$3"\n')
    (bin_dir / "ssh").chmod(0o755)
    cluster = seed()
    done = subprocess.run(
        ["bash", "-s"], input=cluster.render_script(), env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, text=True, check=False
    )
    assert done.returncode == 0
    for name, steps in cluster.plan().items():
        body = (tmp_path / f"root@10.200.0.{'abc'.index(name) + 1}").read_text()
        assert [line for line in body.splitlines() if line.startswith(("ip ", "bridge ", "sysctl "))] == [
            c.shell() for s in steps for c in s.do if c.input is None
        ]


# --- up ---------------------------------------------------------------------------------------


def test_up_runs_every_host_at_once_each_its_own_plan() -> None:
    fakes = hosts("a", "b", "c")
    started: list[float] = []
    gate = threading.Barrier(3, timeout=5)

    class Meeting(FakeRunner):
        """Waits, at its first write, until every host has started: they run at once or this times out."""

        def run(self, argv, *, input=None, timeout=None, netns=None):  # type: ignore[no-untyped-def]
            if list(argv[:3]) == ["ip", "netns", "add"] and not started.count(id(self)):
                started.append(id(self))
                gate.wait()
            return super().run(argv, input=input, timeout=timeout, netns=netns)

    meeting = {}
    for name, fake in fakes.items():
        m = Meeting(replies=fake.replies)
        meeting[name] = m
    cluster = seed(meeting)  # type: ignore[arg-type]
    cluster.up()
    assert len(started) == 3
    for name, fake in meeting.items():
        assert writes(fake) == argvs(cluster.plan()[name]), name


@pytest.mark.parametrize(
    "failing",
    [
        pytest.param(("b", "ip link add veth-gray"), id="a-namespace-of-host-b"),
        pytest.param(("c", f"bridge fdb append {FLOOD} dev vx-seed dst 10.200.0.2"), id="the-overlay-of-host-c"),
        pytest.param(("a", "iptables-restore -w 10 --noflush"), id="the-firewall-of-the-gateway-host"),
    ],
)
def test_a_failure_on_one_host_rolls_back_every_host(failing: tuple[str, str]) -> None:
    host, command = failing
    fakes = hosts("a", "b", "c")
    fakes[host].fail(lambda argv: shlex.join(argv).startswith(command), "RTNETLINK answers: Operation not permitted\n")
    cluster = seed(fakes)
    with pytest.raises(StepError) as info:
        cluster.up()
    assert info.value.step.startswith(f"on host {host}: ")
    assert "Operation not permitted" in str(info.value) and info.value.rollback_errors == ()
    plan = cluster.plan()
    for name, fake in fakes.items():
        done = writes(fake)
        if name == host:
            continue
        # the other hosts ran their whole plan, then undid every step of it, newest first
        ran = argvs(plan[name])
        assert done[: len(ran)] == ran, name
        assert done[len(ran) :] == [recorded(c) for s in reversed(plan[name]) for c in s.undo], name
    # the failing host undid what it had done, and ended with nothing of the network made
    failed = writes(fakes[host])
    made = [a for a in failed if a[:3] == ["ip", "netns", "add"]]
    deleted = [a for a in failed if a[:3] == ["ip", "netns", "del"]]
    assert sorted(a[3] for a in made) == sorted(a[3] for a in deleted)


def test_up_refuses_a_foreign_vxlan_link_with_our_name_on_any_host_and_changes_nothing() -> None:
    fakes = hosts("a", "b", "c")
    theirs = [{"ifindex": 7, "ifname": "vx-seed", "ifalias": "someone else's", "group": "default", "flags": []}]
    fakes["c"].on(["ip", "-d", "-j", "link", "show", "dev", "vx-seed"], stdout=json.dumps(theirs))
    with pytest.raises(NotOursError, match="link 'vx-seed' exists on host 'c'"):
        seed(fakes).up()
    assert writes(fakes["c"]) == []
    for name in ("a", "b"):
        made, undone = writes(fakes[name]), [a for a in writes(fakes[name]) if a[:3] == ["ip", "netns", "del"]]
        assert len(undone) == len([a for a in made if a[:3] == ["ip", "netns", "add"]]), name


def test_up_when_the_overlay_is_there_adds_only_a_missing_peer() -> None:
    fakes = hosts("a", "b", "c")
    fake = fakes["b"]
    ours = {"ifindex": 9, "ifname": "vx-seed", "ifalias": "netnskit:seed", "group": str(G), "flags": ["UP"]}
    fake.on(["ip", "-d", "-j", "link", "show", "dev", "vx-seed"], stdout=json.dumps([ours]))
    fake.on(
        ["bridge", "-j", "fdb", "show", "dev", "vx-seed"],
        stdout=json.dumps([{"mac": FLOOD, "dst": "10.200.0.1", "flags": ["self"]}, {"mac": "aa:bb:cc:dd:ee:ff"}]),
    )
    seed(fakes).up()
    overlay = [a for a in writes(fake) if "vx-seed" in a]
    assert overlay == [["bridge", "fdb", "append", FLOOD, "dev", "vx-seed", "dst", "10.200.0.3"]]


def test_the_whole_network_of_a_cluster_runs_nothing_itself() -> None:
    cluster = seed()
    assert cluster.network.runner is NOWHERE
    with pytest.raises(NetnskitError, match="runs nothing itself"):
        cluster.network.up()


# --- down ----------------------------------------------------------------------------------------


def two_hosts(fakes: dict[str, FakeRunner]) -> Cluster:
    network = Network(
        name="duo",
        bridge="br-duo",
        subnet="10.9.0.0/24",
        gateway="10.9.0.1",
        namespaces=["x", "y"],
        runner=NOWHERE,
    )
    specs = [HostSpec("a", ssh="root@10.0.0.1"), HostSpec("b", ssh="root@10.0.0.2")]
    return Cluster(network, specs, gateway_host="a", placement={"y": "b"}, runners=fakes)


def script_up(fake: FakeRunner, ns: str, group: int, *, vxlan_alias: str | None) -> None:
    """What a host shows with its part of 'duo' up; ``vxlan_alias`` None: a crash left the VXLAN unmarked."""
    links = [
        {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP"]},
        {"ifindex": 2, "ifname": "br-duo", "group": str(group), "ifalias": "netnskit:duo", "flags": ["UP"]},
        {"ifindex": 3, "ifname": f"veth-{ns}", "group": str(group), "ifalias": "netnskit:duo", "link_netnsid": 0},
    ]
    vx = {"ifindex": 4, "ifname": "vx-duo", "group": str(group), "flags": ["UP"], "master": "br-duo"}
    if vxlan_alias is not None:
        vx["ifalias"] = vxlan_alias
    fake.on(["ip", "-j", "netns", "list"], stdout=json.dumps([{"name": ns, "id": 0}]))
    # the VXLAN link as read first; the Network's teardown reads the host after it is gone
    fake.on(
        ["ip", "-d", "-j", "link", "show", "dev", "vx-duo"], returncode=1, stderr='Device "vx-duo" does not exist.\n'
    )
    fake.on(["ip", "-d", "-j", "link", "show", "dev", "vx-duo"], stdout=json.dumps([vx]), times=1)
    fake.on(["ip", "-j", "link", "show"], stdout=json.dumps(links))


@pytest.mark.parametrize("alias", ["netnskit:duo", None], ids=["marked", "unmarked-after-a-crash"])
def test_down_removes_every_host_from_the_marks_alone(alias: str | None) -> None:
    fakes = hosts("a", "b")
    group = group_for("duo")
    for name, ns in (("a", "x"), ("b", "y")):
        script_up(fakes[name], ns, group, vxlan_alias=alias)
        # the namespaces' link reads for ownership: lo marked
        fakes[name].on(
            ["ip", "-n", ns, "-j", "link", "show"],
            stdout=json.dumps([{"ifname": "lo", "ifalias": "netnskit:duo", "flags": ["UP"]}]),
        )
    teardown = two_hosts(fakes).down()
    for name, ns in (("a", "x"), ("b", "y")):
        assert writes(fakes[name]) == [
            ["ip", "link", "del", "vx-duo"],
            ["ip", "link", "del", "group", str(group)],
            ["ip", "netns", "del", ns],
        ], name
    assert teardown.removed[0] == "host a: link vx-duo" and "host b: link vx-duo" in teardown.removed
    assert teardown.left == ()


def test_down_leaves_a_foreign_vxlan_link_alone_and_says_so() -> None:
    fakes = hosts("a", "b")
    theirs = [{"ifindex": 7, "ifname": "vx-duo", "ifalias": "not ours", "group": "default"}]
    for fake in fakes.values():
        fake.on(["ip", "-d", "-j", "link", "show", "dev", "vx-duo"], stdout=json.dumps(theirs))
    teardown = two_hosts(fakes).down()
    assert all(writes(f) == [] for f in fakes.values())
    assert teardown.left == (
        "host a: link vx-duo (not marked netnskit:duo: not ours, left alone)",
        "host b: link vx-duo (not marked netnskit:duo: not ours, left alone)",
    )


def test_down_of_a_cluster_never_up_runs_nothing_and_reports_what_was_gone() -> None:
    fakes = hosts("a", "b")
    for fake in fakes.values():
        fake.on(
            ["ip", "-d", "-j", "link", "show", "dev", "vx-duo"],
            returncode=1,
            stderr='Device "vx-duo" does not exist.\n',
        )
    teardown = two_hosts(fakes).down()
    assert all(writes(f) == [] for f in fakes.values())
    assert "host b: link vx-duo" in teardown.already_gone and "host b: namespace y" in teardown.already_gone


def test_status_is_per_host_and_names_the_missing_overlay_steps() -> None:
    status = two_hosts(hosts("a", "b")).status()
    assert [h.host for h in status.hosts] == ["a", "b"] and not status.up
    b = status.hosts[1]
    assert b.vxlan is None and b.peers == ()
    assert b.missing[-3:] == (
        f"create VXLAN vx-duo (VNI {vni_for('duo')}, local 10.0.0.2, UDP 4789, MTU 1450) on br-duo",
        "mark vx-duo as netnskit:duo and bring it up",
        "flood vx-duo's frames to peer 10.0.0.1 too",
    )
    assert "host a: create namespace x" in status.missing
    assert json.loads(json.dumps(status.to_json()))["hosts"][1]["host"] == "b"


# --- the cluster file ------------------------------------------------------------------------------


def test_network_from_toml_refuses_a_cluster_file() -> None:
    with pytest.raises(ConfigError, match="load it with netnskit.cluster.Cluster.from_toml"):
        Network.from_toml(CLUSTER)


def with_changes(**changes: object) -> dict[str, object]:
    import tomllib

    data = tomllib.loads(CLUSTER.read_text())
    for path, value in changes.items():
        target: object = data
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]  # type: ignore[index]
        assert isinstance(target, dict)
        if value is None:
            target.pop(keys[-1])
        else:
            target[keys[-1]] = value
    return data


@pytest.mark.parametrize(
    ("changes", "key", "message"),
    [
        ({"namespace__1__host": "z"}, "namespace[1].host", "must be one of the hosts (a, b, c)"),
        ({"network__gateway_host": "z"}, "network.gateway_host", "must be one of the hosts"),
        ({"network__vni": 0}, "network", "VNI: must be an integer from 1 to 16777215"),
        ({"network__vni": "7"}, "network.vni", "must be an integer"),
        ({"host__1__port": 22}, "host[1].port", "unknown key"),
        ({"host__1__ssh": None}, "host[1]", 'needs exactly one of ssh = "user@address" or local = true'),
        ({"host__1__ssh": "root@b.example"}, "host[1].ssh", "needs an underlay address"),
        ({"host__1__underlay": "10.200.0.1"}, "host[1].underlay", "underlay address: is used twice"),
        ({"extra_namespace__0__host": "b"}, "link[1]", "joins namespaces on different hosts (a, b)"),
        ({"link__0__host": "b"}, "link[0].host", "must be the host of the namespaces it joins (a)"),
        ({"host__2__name": "a"}, "host[2].name", "host name: is used twice"),
        (
            {"network__subnet6": "fd15::/64", "network__gateway6": "fd15::1"},
            "network.subnet6",
            "is not supported across hosts yet",
        ),
    ],
)
def test_bad_cluster_files_are_refused_before_any_command(changes: dict[str, object], key: str, message: str) -> None:
    fakes = hosts("a", "b", "c")
    with pytest.raises(ConfigError) as info:
        Cluster.from_dict(with_changes(**changes), source="cluster.toml", runners=fakes)
    assert info.value.key.startswith(key) and message in str(info.value), str(info.value)
    assert all(f.argvs == [] for f in fakes.values())


def test_a_host_without_an_ip_destination_takes_its_underlay_and_a_route_goes_where_its_gateway_is() -> None:
    data = with_changes(host__1__ssh="root@b.example", host__1__underlay="10.200.0.22", route__0__host=None)
    cluster = Cluster.from_dict(data, runners=hosts("a", "b", "c"))
    assert cluster.parts["b"].host.address is not None and str(cluster.parts["b"].host.address) == "10.200.0.22"
    assert cluster.parts["b"].vxlan is not None and str(cluster.parts["b"].vxlan.local) == "10.200.0.22"
    assert [r.spec() for r in cluster.parts["a"].network.routes][0] == ["203.0.113.0/24", "via", "192.168.1.3"]


def test_ssh_hosts_get_a_multiplexed_ssh_runner_through_the_local_runner(tmp_path: Path) -> None:
    local = FakeRunner()
    cluster = Cluster.from_toml(CLUSTER, local_runner=local, ssh_options=["-i", "/k"], control_dir=str(tmp_path))
    runner = cluster.parts["b"].runner
    assert isinstance(runner, SshRunner) and runner.inner is local and runner.machine == "root@10.200.0.2"
    assert runner.argv_for(["ip", "-j", "link", "show"], "blue") == [
        *("ssh", "-o", "BatchMode=yes", "-i", "/k", "-o", "ControlMaster=auto"),
        *("-o", f"ControlPath={tmp_path}/%C", "-o", "ControlPersist=60", "root@10.200.0.2", "--"),
        "nsenter --net=/run/netns/blue -- ip -j link show",
    ]


# --- Vxlan --------------------------------------------------------------------------------------


def test_vxlan_commands_and_checks() -> None:
    fake = FakeRunner()
    vx = Vxlan("vx0", 42, "192.0.2.1", runner=fake)
    assert vx.create_argv() == [
        "ip",
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        "42",
        "dstport",
        "4789",
        "local",
        "192.0.2.1",
        "nolearning",
    ]
    assert vx.flood_argv("192.0.2.2") == ["bridge", "fdb", "append", FLOOD, "dev", "vx0", "dst", "192.0.2.2"]
    assert Vxlan("vx0", 42, "192.0.2.1", netns="lab", runner=fake).flood_argv("192.0.2.2") == [
        *("ip", "netns", "exec", "lab", "bridge", "fdb", "append", FLOOD, "dev", "vx0", "dst", "192.0.2.2")
    ]
    vx.create().add_peer("192.0.2.9")
    vx.delete()
    assert fake.argvs == [vx.create_argv(), vx.flood_argv("192.0.2.9"), ["ip", "link", "del", "vx0"]]
    for bad in ({"vni": 0}, {"vni": 2**24}, {"local": "2001:db8::1"}, {"name": "-x"}, {"port": 0}):
        with pytest.raises(ValidationError):
            Vxlan(**{"name": "vx0", "vni": 1, "local": "192.0.2.1", **bad}, runner=fake)  # type: ignore[arg-type]


def test_vxlan_peers_are_read_from_the_flood_entries() -> None:
    fake = FakeRunner().on(
        ["bridge", "-j", "fdb", "show", "dev", "vx0"],
        stdout=json.dumps(
            [
                {"mac": "aa:bb:cc:dd:ee:ff", "master": "br0"},
                {"mac": FLOOD, "dst": "192.0.2.2", "flags": ["self"]},
                {"mac": FLOOD, "dst": "192.0.2.3", "flags": ["self"]},
            ]
        ),
    )
    assert [str(p) for p in Vxlan("vx0", 1, "192.0.2.1", runner=fake).peers()] == ["192.0.2.2", "192.0.2.3"]


# --- the core pieces a host's part uses ----------------------------------------------------------


def test_a_network_without_the_gateway_on_the_host_plans_no_address_and_no_forwarding() -> None:
    net = Network(
        name="p",
        bridge="br-p",
        subnet="10.9.0.0/24",
        gateway="10.9.0.1",
        namespaces=["x"],
        gateway_on_host=False,
        mtu=1400,
        runner=FakeRunner(),
    )
    commands = [c for s in net.plan() for c in s.do]
    assert not any(c.tool == "sysctl" for c in commands)
    assert not any(list(c.argv[:3]) == ["ip", "addr", "add"] and c.netns is None for c in commands)
    veth = next(c for c in commands if "veth" in c.argv)
    assert list(veth.argv) == [
        *("ip", "link", "add", "veth-x", "group", str(group_for("p")), "mtu", "1400", "master", "br-p"),
        *("type", "veth", "peer", "name", "eth0", "mtu", "1400", "netns", "x"),
    ]
    assert ["ip", "route", "add", "default", "via", "10.9.0.1"] in [list(c.argv) for c in commands]


def test_remote_addresses_are_reserved_and_forward_targets() -> None:
    net = Network(
        name="p",
        bridge="br-p",
        subnet="10.9.0.0/24",
        gateway="10.9.0.1",
        namespaces=["x"],
        remote_addresses={"far": "10.9.0.2"},
        port_forwards=[ForwardSpec(8080, "far", 80)],
        runner=FakeRunner(),
    )
    assert str(net.addresses()["x"]) == "10.9.0.3/24"  # .2 is far's, on another host
    assert [str(f.destination) for f in net.forward_rules()] == ["10.9.0.2"]
    for bad, message in [
        ({"far": "10.8.0.2"}, "must be an unused host address in 10.9.0.0/24"),
        ({"far": "10.9.0.1"}, "must be an unused host address"),
        ({"x": "10.9.0.7"}, "namespace name 'x': is used twice"),
    ]:
        with pytest.raises(ValidationError, match=message):
            Network(
                name="p",
                bridge="br-p",
                subnet="10.9.0.0/24",
                gateway="10.9.0.1",
                namespaces=["x"],
                remote_addresses=bad,
                runner=FakeRunner(),
            )


# --- the ssh runner's shared connection, and the locks ---------------------------------------------


def test_ssh_runner_multiplexing_options_come_before_the_host_and_words_stay_quoted(tmp_path: Path) -> None:
    fake = FakeRunner()
    ssh = SshRunner("root@gw", inner=fake, control_path="/run/netnskit/ssh/%C", persist=30)
    ssh.run(["ip", "link", "set", "a b", "alias", "$(reboot)"])
    ssh.open()
    ssh.close()
    mux = ["-o", "ControlMaster=auto", "-o", "ControlPath=/run/netnskit/ssh/%C", "-o", "ControlPersist=30"]
    assert fake.argvs == [
        ["ssh", "-o", "BatchMode=yes", *mux, "root@gw", "--", "ip link set 'a b' alias '$(reboot)'"],
        ["ssh", "-o", "BatchMode=yes", *mux, "root@gw", "--", "true"],
        ["ssh", "-o", "BatchMode=yes", "-o", "ControlPath=/run/netnskit/ssh/%C", "-O", "exit", "root@gw"],
    ]
    hostile = ["; touch x", "$(id)", "'", '"', "\n", "a b", "-oProxyCommand=x"]
    fake.clear()
    ssh.run([sys.executable, "-c", "import sys; sys.stdout.write(chr(0).join(sys.argv[1:]))", *hostile])
    remote = subprocess.run(["sh", "-c", fake.argvs[0][-1]], capture_output=True, text=True, check=True)
    assert remote.stdout.split("\0") == hostile


@pytest.mark.parametrize("bad", ["/tmp/a b/%C", "/tmp/'x", "", 'x"y'])
def test_ssh_runner_refuses_a_control_path_ssh_would_split(bad: str) -> None:
    with pytest.raises(ValidationError):
        SshRunner("gw", inner=FakeRunner(), control_path=bad)


def test_ssh_runner_lets_at_most_max_sessions_commands_through_at_once() -> None:
    active, most = [0], [0]
    lock = threading.Lock()

    class Slow:
        def run(self, argv, *, input=None, timeout=None, netns=None):  # type: ignore[no-untyped-def]
            with lock:
                active[0] += 1
                most[0] = max(most[0], active[0])
            time.sleep(0.02)
            with lock:
                active[0] -= 1
            return Result(argv, 0, "", "")

        def start(self, argv, *, netns=None, stdin=False):  # type: ignore[no-untyped-def]
            raise AssertionError

    ssh = SshRunner("gw", inner=Slow(), control_path="/x/%C", max_sessions=3)
    threads = [threading.Thread(target=ssh.run, args=(["true"],)) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 3


def test_master_pid_is_read_from_ssh_O_check() -> None:
    fake = FakeRunner().on(lambda argv: "check" in argv, stderr="Master running (pid=4242)\r\n")
    assert SshRunner("gw", inner=fake, control_path="/x/%C").master_pid() == 4242
    assert (
        SshRunner("gw", inner=FakeRunner().fail(lambda a: True, "no socket"), control_path="/x/%C").master_pid() is None
    )
    assert SshRunner("gw", inner=FakeRunner()).master_pid() is None


def test_locks_of_two_machines_whose_namespaces_share_an_inode_are_distinct() -> None:
    # every machine's first namespace has the same inode number: the machine must key the lock
    same = "net:[4026531840]\n"
    a = SshRunner("root@10.0.0.1", inner=FakeRunner().on(lambda a: True, stdout=same))
    b = SshRunner("root@10.0.0.2", inner=FakeRunner().on(lambda a: True, stdout=same))
    assert place_of(a) != place_of(b) and place_of(a).endswith("-4026531840")
    with _exclusive(a, "seed"), _exclusive(b, "seed"):
        pass
    again = SshRunner("root@10.0.0.1", inner=FakeRunner().on(lambda a: True, stdout=same))
    with _exclusive(a, "seed"), pytest.raises(BusyError), _exclusive(again, "seed"):
        pass


# --- the command line ------------------------------------------------------------------------------


def test_cli_plan_of_a_cluster_file_prints_every_hosts_section(capsys: pytest.CaptureFixture[str]) -> None:
    from netnskit.cli import main

    assert main(["plan", str(CLUSTER)]) == 0
    assert capsys.readouterr().out == seed().render_script() + "\n"


def test_cli_up_of_a_cluster_file_drives_every_host_over_ssh(capsys: pytest.CaptureFixture[str]) -> None:
    from netnskit.cli import main

    local = FakeRunner()
    assert main(["up", str(CLUSTER)], runner=local) == 0
    assert capsys.readouterr().out.startswith("network seed is up on 3 hosts (")
    sent: dict[str, list[str]] = {}
    for argv in local.argvs:
        assert argv[0] == "ssh", argv  # every command goes over ssh
        if "-O" in argv:  # a request to the shared connection: ending it
            sent.setdefault(argv[-1], []).append(f"-O {argv[argv.index('-O') + 1]}")
            continue
        assert "ControlMaster=auto" in argv, argv
        sent.setdefault(argv[argv.index("--") - 1], []).append(argv[-1])
    assert sorted(sent) == ["root@10.200.0.1", "root@10.200.0.2", "root@10.200.0.3"]
    for remote in sent.values():
        assert remote[0] == "true" and remote[-1] == "-O exit"  # one connection per host, opened, then ended
        assert remote.count("true") == 1 and remote.count("-O exit") == 1
    batches = [r for r in sent["root@10.200.0.2"] if r == "bridge -batch -"]
    assert len(batches) == 1  # the flood entries in one bridge process, on host b
    assert [i for i, v in enumerate(local.inputs) if v and "link add vx-seed" in v]


def test_cli_refuses_a_cluster_file_with_a_runner_and_sandbox(capsys: pytest.CaptureFixture[str]) -> None:
    from netnskit.cli import main

    assert main(["--sandbox", "up", str(CLUSTER)], runner=FakeRunner()) == 1
    assert "--sandbox makes its own runner" in capsys.readouterr().err


def test_missing_steps_on_clean_hosts_are_each_hosts_whole_plan() -> None:
    cluster = seed()
    missing = cluster.missing_steps()
    plan = cluster.plan()
    for name in ("b", "c"):  # (a's firewall steps, read from its host, say what each sysctl was)
        assert [s.description for s in missing[name]] == [s.description for s in plan[name]]
    assert [argvs(missing[n]) for n in "bc"] == [argvs(plan[n]) for n in "bc"]


def test_the_readme_excerpt_is_from_the_cluster_file() -> None:
    import tomllib

    excerpt = tomllib.loads(readme_block("toml", "gateway_host"))
    whole = tomllib.loads(CLUSTER.read_text())
    assert excerpt["network"].items() <= whole["network"].items()
    assert excerpt["host"] == whole["host"][: len(excerpt["host"])]
    assert all(ns in whole["namespace"] for ns in excerpt["namespace"])


def test_a_local_host_runs_through_the_local_runner_and_its_section_runs_here() -> None:
    local = FakeRunner()
    data = with_changes(host__0__ssh=None, host__0__local=True, host__0__underlay="10.200.0.1")
    cluster = Cluster.from_dict(data, local_runner=local)
    assert cluster.parts["a"].runner is local
    assert isinstance(cluster.parts["b"].runner, SshRunner) and cluster.parts["b"].runner.inner is local
    script = cluster.render_script()
    assert "# host a (local, underlay 10.200.0.1; the gateway host)\nbash -s <<'NETNSKIT_HOST'\n" in script
    with pytest.raises(ConfigError, match="needs exactly one of ssh"):
        Cluster.from_dict(with_changes(host__0__local=True), local_runner=local)


def test_a_network_file_may_give_the_mtu_of_its_namespaces_ends() -> None:
    data = {
        "network": {"name": "m", "bridge": "br-m", "subnet": "10.9.0.0/24", "gateway": "10.9.0.1", "mtu": 1400},
        "namespace": [{"name": "x"}],
    }
    net = Network.from_dict(data, runner=FakeRunner())
    assert net.mtu == 1400
    assert next(list(c.argv[6:8]) for s in net.plan() for c in s.do if "veth-x" in c.argv) == ["mtu", "1400"]
    with pytest.raises(ConfigError, match="network.mtu"):
        Network.from_dict({**data, "network": {**data["network"], "mtu": 10}}, runner=FakeRunner())

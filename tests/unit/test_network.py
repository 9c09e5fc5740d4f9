"""Network: the plan as exact commands, up/down against scripted kernel state, validation."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import tomllib
from ipaddress import IPv4Interface
from pathlib import Path

import attrs
import pytest
from _readme import readme_block

import netnskit
from netnskit.errors import NetnskitError, StepError, ValidationError
from netnskit.network import (
    ConfigError,
    ExtraNamespace,
    ForwardSpec,
    LinkSpec,
    NamespaceSpec,
    Network,
    ProcessSpec,
    RouteSpec,
    group_for,
)
from netnskit.plan import Command
from netnskit.process import spawn_argv
from netnskit.testing import STDERR, FakeRunner, recorded

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed.toml"
EXPECTED = Path(__file__).parent / "expected" / "seed_plan.sh"

IN_A = ["nsenter", "--net=/run/netns/a", "--"]  # how a FakeRunner records a command told namespace a


def seed_in_python(runner: FakeRunner | None = None) -> Network:
    """The seed story built in Python, as the README shows it."""
    return Network(
        name="seed",
        bridge="v-net-0",
        subnet="192.168.15.0/24",
        gateway="192.168.15.5",
        namespaces=[
            NamespaceSpec("red", "192.168.15.1"),
            NamespaceSpec("blue", "192.168.15.2"),
            NamespaceSpec("orange", "192.168.15.3"),
            NamespaceSpec("gray", "192.168.15.4"),
        ],
        masquerade=True,
        extra_namespaces=[ExtraNamespace("lan", forwarding=True), ExtraNamespace("internet")],
        links=[
            LinkSpec("v-lan", "eth0", peer_netns="lan", address="192.168.1.2/24", peer_address="192.168.1.3/24"),
            LinkSpec(
                "wan",
                "eth0",
                netns="lan",
                peer_netns="internet",
                address="203.0.113.1/24",
                peer_address="203.0.113.10/24",
            ),
        ],
        routes=[
            RouteSpec("203.0.113.0/24", via="192.168.1.3"),
            RouteSpec("default", via="203.0.113.1", netns="internet"),
        ],
        port_forwards=[ForwardSpec(80, "blue", 80)],
        processes=[
            ProcessSpec(
                "web",
                "blue",
                ["python3", "-u", "-m", "http.server", "80", "--bind", "blue"],
                cwd="www",
                ready="tcp:80",
            )
        ],
        **({"runner": runner} if runner is not None else {}),
    )


def small(runner: FakeRunner, **kw: object) -> Network:
    """One namespace on a bridge, its firewall only the bridge's accept: small enough to script the kernel's answers."""
    fields: dict[str, object] = {
        "name": "t1",
        "bridge": "br-t1",
        "subnet": "10.9.0.0/24",
        "gateway": "10.9.0.1",
        "namespaces": ["a"],
    }
    fields.update(kw)
    return Network(**fields, runner=runner)  # type: ignore[arg-type]


G = group_for("t1")


def place(
    fake: FakeRunner,
    where: str | None = None,
    *,
    links: list[dict[str, object]] | None = None,
    addrs: list[dict[str, object]] | None = None,
    routes: list[dict[str, object]] | None = None,
    netconf: list[dict[str, object]] | None = None,
) -> None:
    """Script what the kernel shows in one place: the batched read (link, addr, route, netconf) and link show."""
    prefix = ["ip"] if where is None else ["ip", "-n", where]
    lists = [links or [], addrs or [], routes or [], netconf or []]
    fake.on([*prefix, "-4", "-j", "-batch", "-"], stdout="\n".join(json.dumps(x) for x in lists) + "\n")
    fake.on([*prefix, "-j", "link", "show"], stdout=json.dumps(links or []))


LO = {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP"]}
HOST_UP = [
    LO,
    {"ifindex": 2, "ifname": "br-t1", "group": str(G), "ifalias": "netnskit:t1", "flags": ["UP"]},
    {"ifindex": 3, "ifname": "veth-a", "group": str(G), "ifalias": "netnskit:t1", "flags": ["UP"], "link_netnsid": 0},
]
HOST_ADDRS = [{"ifname": "br-t1", "addr_info": [{"family": "inet", "local": "10.9.0.1", "prefixlen": 24}]}]
HOST_NETCONF = [{"interface": "br-t1", "forwarding": True}]
A_LINKS = [
    {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP"], "ifalias": "netnskit:t1"},
    {"ifindex": 2, "ifname": "eth0", "flags": ["UP"]},
]
A_ADDRS = [{"ifname": "eth0", "addr_info": [{"family": "inet", "local": "10.9.0.2", "prefixlen": 24}]}]
A_ROUTES = [{"dst": "default", "gateway": "10.9.0.1", "dev": "eth0"}]


def script_empty_host(fake: FakeRunner) -> None:
    """A host with nothing but lo, no namespaces and an empty firewall."""
    fake.on(["ip", "-j", "netns", "list"], stdout="")
    place(fake, links=[LO])


# small()'s firewall as iptables-save prints it: the accept of traffic between its namespaces
SMALL_RULES = """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:NETNSKIT-FORWARD - [0:0]
:NETNSKIT-USER - [0:0]
-A FORWARD -m comment --comment netnskit -j NETNSKIT-FORWARD
-A NETNSKIT-FORWARD -m comment --comment netnskit -j NETNSKIT-USER
-A NETNSKIT-FORWARD -i br-t1 -o br-t1 -m comment --comment "netnskit:t1" -j ACCEPT
COMMIT
"""


def script_small_up(fake: FakeRunner, *, routes: bool = True) -> None:
    """What the kernel shows when small() is fully up (``routes=False``: a's route is missing), and its hosts file."""
    fake.on(["ip", "-j", "netns", "list"], stdout=json.dumps([{"name": "a", "id": 0}]))
    fake.on(["iptables-save"], stdout=SMALL_RULES)
    place(fake, links=HOST_UP, addrs=HOST_ADDRS, netconf=HOST_NETCONF)
    place(fake, "a", links=A_LINKS, addrs=A_ADDRS, routes=A_ROUTES if routes else [])
    script_files(fake, {"/etc/netns/a/hosts": small(FakeRunner()).hosts_file("a")})


def script_files(fake: FakeRunner, files: dict[str, str]) -> None:
    """What ``grep -s -H -a -m 1 '' FILES`` (first lines) and ``sha256sum -- FILES`` print of ``files``."""
    first = "".join(f"{path}:{text.splitlines()[0]}\n" for path, text in files.items())
    sums = "".join(f"{hashlib.sha256(text.encode()).hexdigest()}  {path}\n" for path, text in files.items())
    fake.on(re.compile(r"^grep -s -H -a -m 1 '' -- /etc/netns/"), stdout=first)
    fake.on(re.compile(r"^sha256sum -- /etc/netns/"), stdout=sums)


def writes(fake: FakeRunner) -> list[list[str]]:
    """The commands that change something (not the reads; the netem probe runs in a throwaway namespace)."""
    reads = re.compile(
        r"(^| )(-j|iptables-save|ip6tables-save)( |$)|^nft (-j )?list |^sysctl -n |^readlink |^unshare --net |^modinfo "
        r"|(^|-- )(grep|find|ss|tail|sha256sum) "
    )
    return [a for a in fake.argvs if not reads.search(" ".join(a))]


# --- plan -----------------------------------------------------------------------------------


def test_seed_plan_renders_the_checked_in_script() -> None:
    net = Network.from_toml(SEED, runner=FakeRunner(strict=True))
    assert net.render_script() == EXPECTED.read_text()


def test_seed_from_toml_equals_seed_in_python() -> None:
    assert Network.from_toml(SEED) == seed_in_python()


def test_plan_is_pure() -> None:
    fake = FakeRunner(strict=True)  # any command would raise
    steps = seed_in_python(fake).plan()
    assert len(steps) == 53
    assert fake.argvs == []


def test_small_plan_exact_commands() -> None:
    steps = small(FakeRunner()).plan()
    assert [[tuple(c.host_argv()) for c in s.do] for s in steps] == [
        [("ip", "netns", "add", "a")],
        [("ip", "-n", "a", "link", "set", "lo", "up", "alias", "netnskit:t1")],
        [("ip", "link", "add", "name", "br-t1", "group", str(G), "up", "type", "bridge", "mcast_snooping", "0")],
        [("ip", "link", "set", "br-t1", "alias", "netnskit:t1")],
        [("ip", "addr", "add", "10.9.0.1/24", "dev", "br-t1")],
        [("sysctl", "-w", "net/ipv4/conf/br-t1/forwarding=1")],
        [
            (
                "ip",
                "link",
                "add",
                "veth-a",
                "group",
                str(G),
                "master",
                "br-t1",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                "a",
            )
        ],
        [("ip", "link", "set", "veth-a", "alias", "netnskit:t1", "addrgenmode", "none", "up")],
        [("ip", "-n", "a", "link", "set", "eth0", "addrgenmode", "none", "up")],
        [("ip", "-n", "a", "addr", "add", "10.9.0.2/24", "dev", "eth0")],
        [("ip", "-n", "a", "route", "add", "default", "via", "10.9.0.1")],
        [
            ("mkdir", "-p", "--", "/etc/netns/a"),
            ("tee", "--", "/etc/netns/a/hosts"),
            ("chmod", "0644", "--", "/etc/netns/a/hosts"),
        ],
        [("iptables-restore", "-w", "10", "--noflush")],
    ]
    assert steps[-2].do[1].input == (
        "# netnskit:t1\n"
        "# the nodes of network t1, nearest address first: written by netnskit up, removed by netnskit down\n"
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "10.9.0.1\thost gateway\n"
        "10.9.0.2\ta\n"
    )
    # bridged, traffic between the namespaces passes FORWARD where br_netfilter is loaded: accepted,
    # after the admin's chain (first in ours), from the top of FORWARD (before a final REJECT)
    assert steps[-1].do[0].input == (
        "*filter\n-N NETNSKIT-FORWARD\n-N NETNSKIT-USER\n"
        "-A NETNSKIT-FORWARD -i br-t1 -o br-t1 -m comment --comment netnskit:t1 -j ACCEPT\n"
        "-I NETNSKIT-FORWARD -m comment --comment netnskit -j NETNSKIT-USER\n"
        "-I FORWARD -m comment --comment netnskit -j NETNSKIT-FORWARD\nCOMMIT\n"
    )
    assert steps[-1].undo[0].input == (
        "*filter\n-D FORWARD -m comment --comment netnskit -j NETNSKIT-FORWARD\n"
        "-D NETNSKIT-FORWARD -i br-t1 -o br-t1 -m comment --comment netnskit:t1 -j ACCEPT\n"
        "-D NETNSKIT-FORWARD -m comment --comment netnskit -j NETNSKIT-USER\n"
        "-X NETNSKIT-FORWARD\n-X NETNSKIT-USER\nCOMMIT\n"
    )
    assert [[tuple(c.host_argv()) for c in s.undo] for s in steps] == [
        [("ip", "netns", "del", "a")],
        [],
        [("ip", "link", "del", "br-t1")],
        [],
        [("ip", "addr", "del", "10.9.0.1/24", "dev", "br-t1")],
        [],
        [("ip", "link", "del", "veth-a")],
        [],
        [("ip", "-n", "a", "link", "set", "eth0", "down")],
        [("ip", "-n", "a", "addr", "del", "10.9.0.2/24", "dev", "eth0")],
        [("ip", "-n", "a", "route", "del", "default", "via", "10.9.0.1")],
        [("rm", "-f", "--", "/etc/netns/a/hosts"), ("rmdir", "--ignore-fail-on-non-empty", "--", "/etc/netns/a")],
        [("iptables-restore", "-w", "10", "--noflush")],
    ]


def test_ipv6_link_local_and_multicast_snooping_can_be_kept() -> None:
    net = attrs.evolve(small(FakeRunner()), ipv6_link_local=True, multicast_snooping=True)
    steps = net.plan()
    assert [tuple(c.host_argv()) for c in steps[2].do] == [
        ("ip", "link", "add", "name", "br-t1", "group", str(G), "up", "type", "bridge", "mcast_snooping", "1")
    ]
    assert [tuple(c.host_argv()) for c in steps[6].do] == [
        (
            "ip",
            "link",
            "add",
            "veth-a",
            "group",
            str(G),
            "up",
            "master",
            "br-t1",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            "a",
        )
    ]
    assert [tuple(c.host_argv()) for c in steps[7].do] == [("ip", "link", "set", "veth-a", "alias", "netnskit:t1")]
    assert [tuple(c.host_argv()) for c in steps[8].do] == [("ip", "-n", "a", "link", "set", "eth0", "up")]
    assert steps[8].description == "bring up eth0 in a"


@pytest.mark.parametrize("key", ["ipv6_link_local", "multicast_snooping"])
def test_bridge_choices_from_toml_must_be_booleans(tmp_path: Path, key: str) -> None:
    path = tmp_path / "net.toml"
    head = '[network]\nname = "t"\nbridge = "br-t"\nsubnet = "10.9.0.0/24"\ngateway = "10.9.0.1"\n'
    path.write_text(f'{head}{key} = "yes"\n')
    with pytest.raises(ConfigError) as info:
        Network.from_toml(path)
    assert f"network.{key}" in str(info.value) and "true or false" in str(info.value)
    path.write_text(path.read_text().replace('"yes"', "true"))
    assert getattr(Network.from_toml(path, runner=FakeRunner()), key) is True


def test_seed_plan_has_no_duplicate_interface_per_place() -> None:
    net = seed_in_python()
    host = net.host_ifnames()
    assert len(host) == len(set(host)) == 6


def test_addresses_are_allocated_in_order_skipping_gateway_and_given() -> None:
    net = Network(
        name="alloc",
        bridge="br-alloc",
        subnet="10.0.0.0/29",
        gateway="10.0.0.1",
        namespaces=["x", NamespaceSpec("y", "10.0.0.2"), "z"],
    )
    got = {k: str(v) for k, v in net.addresses().items()}
    assert got == {"x": "10.0.0.3/29", "y": "10.0.0.2/29", "z": "10.0.0.4/29"}


def test_group_is_stable_and_in_range() -> None:
    assert group_for("seed") == group_for("seed") == 237438951
    assert group_for("seed") != group_for("seed2")
    assert all(65536 <= group_for(f"n{i}") < 2**31 for i in range(200))


# --- up -------------------------------------------------------------------------------------


def test_up_on_an_empty_host_runs_the_plan_in_order() -> None:
    fake = FakeRunner()
    script_empty_host(fake)
    net = small(fake)
    net.up()
    assert writes(fake) == [recorded(c) for s in net.plan() for c in s.do]


def test_up_when_already_up_changes_nothing() -> None:
    fake = FakeRunner()
    script_small_up(fake)
    net = small(fake)
    assert net.missing_steps() == []
    fake.clear()
    net.up()
    assert writes(fake) == []
    status = net.status()
    assert status.up and status.missing == ()
    assert [link.name for link in status.host_links] == ["br-t1", "veth-a"]
    assert [str(a.address) for a in status.host_addresses] == ["10.9.0.1/24"]
    (a,) = status.namespaces
    assert (a.present, a.ours) == (True, True)
    assert [(r.to, r.via) for r in a.routes] == [("default", "10.9.0.1")]
    assert json.loads(json.dumps(status.to_json()))["host_addresses"][0]["address"] == "10.9.0.1/24"


def test_up_completes_a_partly_made_network() -> None:
    fake = FakeRunner()
    script_small_up(fake, routes=False)  # the namespace has no route yet (as after a crash)
    net = small(fake)
    fake.clear()
    net.up()
    assert writes(fake) == [["nsenter", "--net=/run/netns/a", "--", "ip", "route", "add", "default", "via", "10.9.0.1"]]


def test_up_failure_rolls_back_in_reverse_and_names_the_step() -> None:
    fake = FakeRunner()
    script_empty_host(fake)
    fake.fail(IN_A + ["ip", "addr", "add", "10.9.0.2/24", "dev", "eth0"], STDERR["not_permitted"])
    net = small(fake)
    with pytest.raises(StepError) as info:
        net.up()
    assert info.value.step == "address a's eth0 as 10.9.0.2/24"
    assert "ip -n a addr add 10.9.0.2/24 dev eth0" in str(info.value)
    assert "Operation not permitted" in str(info.value)
    done = writes(fake)
    at = done.index(IN_A + ["ip", "addr", "add", "10.9.0.2/24", "dev", "eth0"])
    assert done[at + 1 :] == [
        IN_A + ["ip", "link", "set", "eth0", "down"],
        ["ip", "link", "del", "veth-a"],
        ["ip", "addr", "del", "10.9.0.1/24", "dev", "br-t1"],
        ["ip", "link", "del", "br-t1"],
        ["ip", "netns", "del", "a"],
    ]


def test_up_refuses_a_foreign_link_with_our_name_before_any_change() -> None:
    fake = FakeRunner()
    script_empty_host(fake)
    place(fake, links=[LO, {"ifindex": 5, "ifname": "br-t1", "group": "default", "ifalias": "theirs"}])
    with pytest.raises(NetnskitError, match="link 'br-t1' exists on the host but is not marked netnskit:t1"):
        small(fake).up()
    assert writes(fake) == []


def test_up_refuses_a_foreign_namespace_with_our_name() -> None:
    fake = FakeRunner()
    script_empty_host(fake)
    fake.on(["ip", "-j", "netns", "list"], stdout=json.dumps([{"name": "a"}]))
    place(fake, "a", links=[LO, {"ifindex": 2, "ifname": "eth9", "flags": []}])
    with pytest.raises(NetnskitError, match="namespace 'a' exists but is not marked"):
        small(fake).up()
    assert writes(fake) == []


def test_up_refuses_a_subnet_overlapping_a_foreign_address() -> None:
    fake = FakeRunner()
    script_empty_host(fake)
    lan = {"family": "inet", "local": "10.9.0.77", "prefixlen": 16}
    place(fake, links=[LO], addrs=[{"ifname": "eth0", "addr_info": [lan]}])
    with pytest.raises(NetnskitError, match=r"subnet 10.9.0.0/24 of network 't1' overlaps 10.9.0.0/16 on 'eth0'"):
        small(fake).up()
    assert writes(fake) == []


def test_up_adopts_a_link_left_unmarked_by_a_crash() -> None:
    # created with our group and name, killed before the alias: ours, and only the alias is missing
    fake = FakeRunner()
    script_small_up(fake)
    unmarked = {"ifindex": 2, "ifname": "br-t1", "group": str(G), "flags": ["UP"]}
    place(fake, links=[LO, unmarked, HOST_UP[2]], addrs=HOST_ADDRS, netconf=HOST_NETCONF)
    net = small(fake)
    fake.clear()
    net.up()
    assert writes(fake) == [["ip", "link", "set", "br-t1", "alias", "netnskit:t1"]]


# --- down -----------------------------------------------------------------------------------


def test_down_removes_ours_by_group_and_namespace() -> None:
    fake = FakeRunner()
    script_small_up(fake)
    teardown = small(fake).down()
    restore = ["iptables-restore", "-w", "10", "--noflush"]
    assert writes(fake) == [
        restore,
        restore,
        ["ip", "link", "del", "group", str(G)],
        ["rm", "-f", "--", "/etc/netns/a/hosts"],  # its first line is the mark
        ["rmdir", "--ignore-fail-on-non-empty", "--", "/etc/netns/a"],
        ["ip", "netns", "del", "a"],
    ]
    # its rule by comment, then the shared chains and the admin's chain, empty and jumped to by nobody else
    assert [i for a, i in zip(fake.argvs, fake.inputs, strict=True) if a == restore] == [
        "*filter\n-D NETNSKIT-FORWARD -i br-t1 -o br-t1 -m comment --comment netnskit:t1 -j ACCEPT\nCOMMIT\n",
        "*filter\n-D FORWARD -m comment --comment netnskit -j NETNSKIT-FORWARD\n"
        "-F NETNSKIT-FORWARD\n-X NETNSKIT-FORWARD\n-X NETNSKIT-USER\nCOMMIT\n",
    ]
    assert teardown.already_gone == () and teardown.left == ()


def test_down_leaves_a_file_without_our_mark() -> None:
    fake = FakeRunner()
    script_small_up(fake)
    script_files(fake, {"/etc/netns/a/hosts": "# not netnskit's\n10.9.0.2 a\n"})
    small(fake).down()
    assert not [argv for argv in writes(fake) if "/etc/netns/a/hosts" in argv]


def test_up_refuses_to_overwrite_a_file_without_our_mark() -> None:
    fake = FakeRunner()
    script_empty_host(fake)
    script_files(fake, {"/etc/netns/a/hosts": "127.0.0.1 localhost\n"})
    with pytest.raises(NetnskitError, match="/etc/netns/a/hosts exists and does not start with '# netnskit:t1'"):
        small(fake).up()
    assert writes(fake) == []


def test_down_deletes_one_by_one_when_a_foreign_link_shares_the_group() -> None:
    fake = FakeRunner()
    script_small_up(fake)
    place(fake, links=[*HOST_UP, {"ifindex": 9, "ifname": "other0", "group": str(G)}])
    small(fake).down()
    assert [a for a in writes(fake) if a[0] != "iptables-restore"] == [
        ["ip", "link", "del", "veth-a"],
        ["ip", "link", "del", "br-t1"],
        ["rm", "-f", "--", "/etc/netns/a/hosts"],
        ["rmdir", "--ignore-fail-on-non-empty", "--", "/etc/netns/a"],
        ["ip", "netns", "del", "a"],
    ]  # undone in reverse: sorted by name, the files, then the namespace


def test_down_on_a_clean_host_runs_nothing_and_reports_what_was_gone() -> None:
    fake = FakeRunner()
    script_empty_host(fake)
    teardown = small(fake).down()
    assert writes(fake) == []
    assert teardown.already_gone == ("namespace a", "link br-t1", "link veth-a")


def test_down_leaves_a_namespace_with_our_name_that_is_not_ours() -> None:
    fake = FakeRunner()
    script_empty_host(fake)
    fake.on(["ip", "-j", "netns", "list"], stdout=json.dumps([{"name": "a"}]))
    place(fake, "a", links=[LO, {"ifindex": 2, "ifname": "eth9"}])
    teardown = small(fake).down()
    assert writes(fake) == []
    assert teardown.left and "namespace a" in teardown.left[0]


def test_down_removes_an_empty_namespace_left_by_an_interrupted_up() -> None:
    fake = FakeRunner()
    script_empty_host(fake)
    fake.on(["ip", "-j", "netns", "list"], stdout=json.dumps([{"name": "a"}]))
    place(fake, "a", links=[{"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK"]}])
    small(fake).down()
    assert writes(fake) == [["ip", "netns", "del", "a"]]


def test_down_removes_a_namespace_a_batched_up_left_before_marking_it() -> None:
    # the host batch made the namespace and put the veth end in; killed before the mark
    fake = FakeRunner()
    script_empty_host(fake)
    fake.on(["ip", "-j", "netns", "list"], stdout=json.dumps([{"name": "a"}]))
    place(fake, "a", links=[{"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK"]}, {"ifindex": 2, "ifname": "eth0"}])
    small(fake).down()
    assert writes(fake) == [["ip", "netns", "del", "a"]]


def test_down_deletes_our_rules_by_comment_in_one_restore() -> None:
    fake = FakeRunner()
    script_empty_host(fake)
    saved = "\n".join(
        [
            "*nat",
            ":POSTROUTING ACCEPT [0:0]",
            ":NETNSKIT-POSTROUTING - [0:0]",
            '-A NETNSKIT-POSTROUTING -s 10.9.0.0/24 ! -o br-t1 -m comment --comment "netnskit:t1" -j MASQUERADE',
            '-A NETNSKIT-POSTROUTING -s 10.8.0.0/24 -m comment --comment "netnskit:other" -j MASQUERADE',
            "-A POSTROUTING -j NETNSKIT-POSTROUTING -m comment --comment netnskit",
            "COMMIT",
        ]
    )
    fake.on(["iptables-save"], stdout=saved)
    small(fake, masquerade=True).down()
    restores = [(a, i) for a, i in zip(fake.argvs, fake.inputs, strict=True) if a[0] == "iptables-restore"]
    assert restores == [
        (
            ["iptables-restore", "-w", "10", "--noflush"],
            "*nat\n-D NETNSKIT-POSTROUTING -s 10.9.0.0/24 ! -o br-t1 -m comment --comment netnskit:t1 -j MASQUERADE\n"
            "COMMIT\n",
        )
    ]


# --- validation: before any command ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"gateway": "10.9.1.1"}, "gateway '10.9.1.1': must be a host address inside the subnet 10.9.0.0/24"),
        ({"gateway": "10.9.0.0"}, "gateway '10.9.0.0'"),
        ({"subnet": "10.9.0.1/24"}, "subnet '10.9.0.1/24'"),
        ({"subnet": "fd00::/64", "gateway": "fd00::1"}, "IPv4"),
        ({"namespaces": ["a", "a"]}, "namespace name 'a': is used twice"),
        ({"namespaces": [NamespaceSpec("a", "10.9.0.1")]}, "address '10.9.0.1': of namespace 'a' is already used"),
        ({"namespaces": [NamespaceSpec("a", "10.9.1.7")]}, "must be a host address in 10.9.0.0/24"),
        (
            {"namespaces": [NamespaceSpec("a", "10.9.0.7/16")]},
            "address '10.9.0.7/16': of namespace 'a' must carry the subnet's prefix /24 or none",
        ),
        ({"namespaces": [NamespaceSpec("a", "10.9.1.7/24")]}, "address '10.9.1.7/24': of namespace 'a' must be a host"),
        ({"namespaces": [NamespaceSpec("a", "10.9.0.7"), NamespaceSpec("b", "10.9.0.7")]}, "is already used"),
        ({"subnet": "10.9.0.0/30", "gateway": "10.9.0.1", "namespaces": ["a", "b"]}, "no free address left"),
        ({"namespaces": ["a-very-long-name"]}, "too long for the default host interface"),
        ({"namespaces": [NamespaceSpec("a", host_ifname="br-t1")]}, "interface name 'br-t1': is used twice"),
        ({"port_forwards": [ForwardSpec(80, "zzz")]}, "port forward namespace 'zzz'"),
        ({"port_forwards": [ForwardSpec("80-90", "a"), ForwardSpec(85, "a")]}, "overlaps"),
        ({"port_forwards": [ForwardSpec(80, "a", "81-82")]}, "must be as wide"),
        ({"routes": [RouteSpec("10.1.0.0/16", via="172.16.0.1")]}, "route gateway '172.16.0.1'"),
        ({"routes": [RouteSpec("default", via="10.9.0.9", netns="nope")]}, "route namespace 'nope'"),
        ({"links": [LinkSpec("v-x", "e1", peer_netns="a", address="10.9.0.200/24")]}, "overlaps 10.9.0.0/24"),
        ({"links": [LinkSpec("v-x", "eth0", peer_netns="a")]}, "interface name 'eth0': is used twice"),
        ({"links": [LinkSpec("v-x", "e1", peer_netns="zz")]}, "link namespace 'zz'"),
        ({"masquerade": "yes"}, "must be true or false"),
        ({"name": "bad name"}, "network name 'bad name'"),
        ({"bridge": "-br"}, "interface name '-br'"),
    ],
)
def test_bad_descriptions_are_rejected_before_any_command(fields: dict[str, object], message: str) -> None:
    fake = FakeRunner(strict=True)
    with pytest.raises(ValidationError) as info:
        small(fake, **fields)
    assert message in str(info.value)
    assert fake.argvs == []


def test_a_namespace_address_is_given_with_or_without_the_subnets_prefix() -> None:
    bare = small(FakeRunner(), namespaces=[NamespaceSpec("a", "10.9.0.7")])
    prefixed = small(FakeRunner(), namespaces=[NamespaceSpec("a", "10.9.0.7/24")])
    assert bare.addresses() == prefixed.addresses() == {"a": IPv4Interface("10.9.0.7/24")}
    assert bare.plan() == prefixed.plan()


@pytest.mark.parametrize("end", ["address", "peer_address"])
def test_a_link_end_address_must_carry_its_prefix(end: str) -> None:
    with pytest.raises(ValidationError) as info:
        LinkSpec("v-x", "e1", peer_netns="a", **{end: "10.8.0.1"})
    assert str(info.value) == (
        "invalid link address '10.8.0.1': must be ADDRESS/PREFIX with its prefix length, like 192.168.1.2/24"
    )


def test_link_host_end_must_come_first() -> None:
    with pytest.raises(ValidationError, match="host end must be its first end"):
        LinkSpec("eth0", "v-x", netns="a")


def test_default_route_twice_is_rejected() -> None:
    with pytest.raises(ValidationError, match="already has default_route"):
        small(FakeRunner(), namespaces=[NamespaceSpec("a", routes=[{"to": "default", "via": "10.9.0.1"}])])


def test_config_error_pickles() -> None:
    err = ConfigError("f.toml", "network.subnet", "x", "bad")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) == "f.toml: network.subnet = 'x': bad"


def test_context_manager_tears_down_on_exit() -> None:
    fake = FakeRunner()
    script_small_up(fake)
    with small(fake).up() as net:
        assert net.name == "t1"
        fake.clear()
    assert ["ip", "link", "del", "group", str(G)] in writes(fake)


def test_render_script_heredoc_for_commands_with_input() -> None:
    assert Command(["iptables-restore"], "x\n").shell() == "iptables-restore <<'NETNSKIT_EOF'\nx\nNETNSKIT_EOF"


# --- the README's network section -----------------------------------------------------------


def test_readme_toml_is_the_seed_file() -> None:
    data = tomllib.loads(readme_block("toml", 'name = "seed"'))
    assert Network.from_dict(data) == Network.from_toml(SEED)


def test_readme_python_builds_the_seed_and_brings_it_up_and_down(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRunner()
    fake.on("nsenter --net=/run/netns/blue -- ss -H -ltn sport = :80", stdout="LISTEN 0 5 192.168.15.2:80 *:*\n")
    monkeypatch.setattr(netnskit, "LiveRunner", lambda: fake)
    scope: dict[str, object] = {}
    exec(compile(readme_block("python", "seed = Network("), "README.md", "exec"), scope)
    assert scope["seed"] == Network.from_toml(SEED)
    plan = [recorded(c) for s in Network.from_toml(SEED).plan() for c in s.do]
    assert writes(fake)[: len(plan)] == plan


# --- the command line's network verbs -------------------------------------------------------


@pytest.fixture
def cli_fake() -> FakeRunner:
    """A FakeRunner, given to the CLI's main() as its runner."""
    return FakeRunner()


def test_cli_plan_prints_the_script_and_runs_nothing(cli_fake: FakeRunner, capsys: pytest.CaptureFixture[str]) -> None:
    from netnskit.cli import main

    assert main(["plan", str(SEED)], runner=cli_fake) == 0
    assert capsys.readouterr().out == Network.from_toml(SEED).render_script()
    assert cli_fake.argvs == []


def test_cli_up_serial_applies_the_plan_step_by_step(cli_fake: FakeRunner, capsys: pytest.CaptureFixture[str]) -> None:
    from netnskit.cli import main

    script_empty_host(cli_fake)
    cli_fake.on("nsenter --net=/run/netns/blue -- ss -H -ltn sport = :80", stdout="LISTEN 0 5 192.168.15.2:80 *:*\n")
    assert main(["up", "--serial", str(SEED)], runner=cli_fake) == 0
    steps = Network.from_toml(SEED).plan()
    # then the web server, started in blue as a host's process would be, marked as the network's
    web = spawn_argv(
        ["python3", "-u", "-m", "http.server", "80", "--bind", "blue"],
        netns="blue",
        log="/run/netnskit/logs/unknown/seed/web.log",  # the place: what readlink printed (nothing here)
        pidfile="/run/netnskit/processes/unknown/seed/web.pid",
        cwd=str(ROOT / "examples" / "www"),
        owner="netnskit:seed@unknown",
        name="web",
    )
    assert writes(cli_fake) == [*(recorded(c) for s in steps for c in s.do), web]
    # (the fake runner answers `sysctl -n` with nothing: the live firewall steps say "was ")
    printed = [f"[{n}/53] {s.description.replace('(was 0)', '(was )')}" for n, s in enumerate(steps, 1)]
    out = "\n".join([*printed, "network seed is up (53 steps applied, 1 process started)"]) + "\n"
    assert capsys.readouterr().out == out


def test_cli_up_batches_by_default(cli_fake: FakeRunner, capsys: pytest.CaptureFixture[str]) -> None:
    from netnskit.cli import main
    from netnskit.executors import batches

    script_empty_host(cli_fake)
    cli_fake.on("nsenter --net=/run/netns/blue -- ss -H -ltn sport = :80", stdout="LISTEN 0 5 192.168.15.2:80 *:*\n")
    assert main(["up", str(SEED)], runner=cli_fake) == 0
    # the host's ip lines went in ip -batch processes, not one process per command
    assert ["ip", "-batch", "-"] in cli_fake.argvs
    processes = sum(len(stage) for stage in batches(Network.from_toml(SEED).plan()))
    assert len(writes(cli_fake)) == processes + 1  # and the web server
    assert capsys.readouterr().out == "network seed is up (53 steps applied, 1 process started)\n"


def test_cli_bad_file_is_one_line_and_exit_2(
    tmp_path: Path, cli_fake: FakeRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    from netnskit.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text(SEED.read_text().replace('gateway = "192.168.15.5"', 'gateway = "10.0.0.1"'))
    assert main(["up", str(bad)], runner=cli_fake) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"netnskit up: {bad}: network.gateway = '10.0.0.1': gateway: must be a host address")
    assert cli_fake.argvs == []
    assert main(["-v", "up", str(bad)], runner=cli_fake) == 2
    assert "Traceback" in capsys.readouterr().err


def test_cli_failed_step_is_one_line(cli_fake: FakeRunner, capsys: pytest.CaptureFixture[str]) -> None:
    from netnskit.cli import main

    script_empty_host(cli_fake)
    cli_fake.fail(
        [
            "ip",
            "link",
            "add",
            "name",
            "v-net-0",
            *["group", "237438951", "up", "type", "bridge"],
            "mcast_snooping",
            "0",
        ],
        STDERR["not_permitted"],
        returncode=2,
    )
    assert main(["up", "--serial", str(SEED)], runner=cli_fake) == 4  # permission denied
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "step 14 (create bridge v-net-0 (link group 237438951)) failed" in err
    assert "Operation not permitted" in err and "rolled back" in err


def test_cli_status_json_and_exit_3_when_not_up(cli_fake: FakeRunner, capsys: pytest.CaptureFixture[str]) -> None:
    from netnskit.cli import main

    script_empty_host(cli_fake)
    assert main(["status", "--json", str(SEED)], runner=cli_fake) == 3
    data = json.loads(capsys.readouterr().out)
    assert data["up"] is False and data["name"] == "seed" and len(data["missing"]) == 54
    assert data["missing"][-1] == {
        "step": "process web in blue (not started)",
        "kind": "process",
        "name": "web",
        "netns": "blue",
    }
    assert writes(cli_fake) == []


def test_cli_down_and_cleanup_on_a_clean_host(cli_fake: FakeRunner, capsys: pytest.CaptureFixture[str]) -> None:
    from netnskit.cli import main

    script_empty_host(cli_fake)
    assert main(["down", str(SEED)], runner=cli_fake) == 0
    assert "already gone: namespace red" in capsys.readouterr().out
    assert main(["cleanup", "seed"], runner=cli_fake) == 0
    assert capsys.readouterr().out == "0 network seed's leftovers removed\n"
    assert main(["cleanup", "--all"], runner=cli_fake) == 0
    assert capsys.readouterr().out == "no netnskit leftovers on this host\n"
    assert main(["cleanup", "--all", "--yes"], runner=cli_fake) == 0
    assert capsys.readouterr().out == "0 netnskit leftovers removed\n"
    assert main(["cleanup"], runner=cli_fake) == 2  # a name, or --all
    assert "give the network's NAME" in capsys.readouterr().err
    assert writes(cli_fake) == []

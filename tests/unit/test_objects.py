"""Exact argv for every operation of Namespace, Link, VethPair, Bridge and Route, through FakeRunner.

The JSON samples were captured from iproute2 6.1 (``ip -j ...``) inside a Sandbox running the seed
story (namespaces red and blue, a veth pair 192.168.15.1/.2, a ping, a default route), and from a
bridge with one veth attached. Failures use the real stderr in ``netnskit.testing.STDERR``.
"""

from __future__ import annotations

import ipaddress
import json

import pytest

from netnskit import (
    AlreadyExistsError,
    Bridge,
    CommandError,
    Link,
    Namespace,
    NotFoundError,
    PermissionDeniedError,
    Route,
    ValidationError,
    VethPair,
)
from netnskit import link as link_mod
from netnskit.link import AddressInfo, LinkInfo, Neighbour, RouteInfo
from netnskit.netns import exec_argv
from netnskit.testing import STDERR, FakeRunner

# --- real `ip -j` output ------------------------------------------------------------------------------

NETNS_LIST = '[{"name":"blue"},{"name":"red"}]\n'
NETNS_LIST_EMPTY = "[]\n"
NETNS_PIDS = "6603\n"

LINKS_RED = (
    '[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue",'
    '"operstate":"UNKNOWN","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"loopback",'
    '"address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","promiscuity":0,"allmulti":0,"min_mtu":0,'
    '"max_mtu":0,"inet6_addr_gen_mode":"eui64","num_tx_queues":1,"num_rx_queues":1,"gso_max_size":65536,'
    '"gso_max_segs":65535,"tso_max_size":524280,"tso_max_segs":65535,"gro_max_size":65536},'
    '{"ifindex":2,"link_index":2,"ifname":"veth-red","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],'
    '"mtu":1500,"qdisc":"noqueue","operstate":"UP","linkmode":"DEFAULT","group":"default","txqlen":1000,'
    '"link_type":"ether","address":"da:48:d6:85:d0:64","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0,'
    '"promiscuity":0,"allmulti":0,"min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"veth"},'
    '"inet6_addr_gen_mode":"eui64","num_tx_queues":2,"num_rx_queues":2,"gso_max_size":65536,'
    '"gso_max_segs":65535,"tso_max_size":524280,"tso_max_segs":65535,"gro_max_size":65536}]\n'
)

# A bridge (down) and a veth pair with one end attached to it, on the sandbox's host.
LINKS_BRIDGE = (
    '[{"ifindex":2,"ifname":"br0","flags":["BROADCAST","MULTICAST"],"mtu":1500,"qdisc":"noop",'
    '"operstate":"DOWN","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"ether",'
    '"address":"12:5c:91:fa:40:b1","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,"min_mtu":68,'
    '"max_mtu":65535,"linkinfo":{"info_kind":"bridge","info_data":{"forward_delay":1500,"hello_time":200,'
    '"max_age":2000,"ageing_time":30000,"stp_state":0,"priority":32768,"vlan_filtering":0,'
    '"bridge_id":"8000.12:5c:91:fa:40:b1","root_id":"8000.12:5c:91:fa:40:b1","root_port":0,'
    '"hello_timer":0.00,"gc_timer":0.00,"group_fwd_mask":"0","group_addr":"01:80:c2:00:00:00",'
    '"mcast_snooping":1,"nf_call_iptables":0}},"inet6_addr_gen_mode":"eui64","num_tx_queues":1,'
    '"num_rx_queues":1,"gso_max_size":65536,"gso_max_segs":65535},'
    '{"ifindex":4,"link":"v1p","ifname":"v1","flags":["BROADCAST","MULTICAST","M-DOWN"],"mtu":1500,'
    '"qdisc":"noop","master":"br0","operstate":"DOWN","linkmode":"DEFAULT","group":"default","txqlen":1000,'
    '"link_type":"ether","address":"12:5c:91:fa:40:b1","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":1,'
    '"allmulti":1,"min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"veth","info_slave_kind":"bridge",'
    '"info_slave_data":{"state":"disabled","priority":32,"cost":2,"hairpin":false,"learning":true,'
    '"flood":true,"id":"0x8001","no":"0x1","hold_timer":0.00}},"inet6_addr_gen_mode":"eui64",'
    '"num_tx_queues":2,"num_rx_queues":2,"gso_max_size":65536,"gso_max_segs":65535}]\n'
)

LINK_VETH_RED = (
    '[{"ifindex":2,"link_index":2,"ifname":"veth-red","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],'
    '"mtu":1500,"qdisc":"noqueue","operstate":"UP","linkmode":"DEFAULT","group":"default","txqlen":1000,'
    '"link_type":"ether","address":"da:48:d6:85:d0:64","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0,'
    '"promiscuity":0,"allmulti":0,"min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"veth"},'
    '"inet6_addr_gen_mode":"eui64","num_tx_queues":2,"num_rx_queues":2,"gso_max_size":65536,'
    '"gso_max_segs":65535,"tso_max_size":524280,"tso_max_segs":65535,"gro_max_size":65536}]\n'
)

ADDRS_RED = (
    '[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK"],"mtu":65536,"qdisc":"noop","operstate":"DOWN",'
    '"group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00",'
    '"broadcast":"00:00:00:00:00:00","addr_info":[]},'
    '{"ifindex":2,"link_index":2,"ifname":"veth-red","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],'
    '"mtu":1500,"qdisc":"noqueue","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether",'
    '"address":"ee:4e:28:a7:a7:c3","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0,"addr_info":['
    '{"family":"inet","local":"192.168.15.1","prefixlen":24,"scope":"global","label":"veth-red",'
    '"valid_life_time":4294967295,"preferred_life_time":4294967295},'
    '{"family":"inet6","local":"fd15::1","prefixlen":64,"scope":"global","tentative":true,'
    '"valid_life_time":4294967295,"preferred_life_time":4294967295},'
    '{"family":"inet6","local":"fe80::ec4e:28ff:fea7:a7c3","prefixlen":64,"scope":"link","tentative":true,'
    '"valid_life_time":4294967295,"preferred_life_time":4294967295}]}]\n'
)

ROUTES4_RED = (
    '[{"dst":"default","gateway":"192.168.15.2","dev":"veth-red","flags":[]},'
    '{"dst":"10.0.0.0/24","gateway":"192.168.15.2","dev":"veth-red","flags":[]},'
    '{"dst":"192.168.15.0/24","dev":"veth-red","protocol":"kernel","scope":"link","prefsrc":"192.168.15.1",'
    '"flags":[]}]\n'
)

ROUTES6_RED = (
    '[{"dst":"fd15::/64","dev":"veth-red","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},'
    '{"dst":"fe80::/64","dev":"veth-red","protocol":"kernel","metric":256,"flags":[],"pref":"medium"}]\n'
)

NEIGH_RED = '[{"dst":"192.168.15.2","dev":"veth-red","lladdr":"82:08:2b:a5:ca:64","state":["REACHABLE"]}]\n'


@pytest.fixture
def fake() -> FakeRunner:
    return FakeRunner()


def no_command(fake: FakeRunner) -> None:
    assert fake.argvs == [], "a command ran before validation"


# --- Namespace ---------------------------------------------------------------------------------------


def test_namespace_pure_argv():
    ns = Namespace("red")
    assert ns.add_argv() == ["ip", "netns", "add", "red"]
    assert ns.delete_argv() == ["ip", "netns", "del", "red"]
    assert ns.exec_argv(["ping", "-c", "1", "192.168.15.2"]) == [
        "ip",
        "netns",
        "exec",
        "red",
        "ping",
        "-c",
        "1",
        "192.168.15.2",
    ]
    assert ns.ip_argv("link", "show") == ["ip", "-n", "red", "link", "show"]
    assert ns.pids_argv() == ["ip", "netns", "pids", "red"]
    assert Namespace.list_argv() == ["ip", "-j", "netns", "list"]


def test_namespace_exec_argv_rejects_a_string():
    with pytest.raises(TypeError):
        Namespace("red").exec_argv("ping 1.2.3.4")  # type: ignore[arg-type]


def test_exec_argv_runs_inside_a_namespace_or_on_the_host():
    assert exec_argv(None, ["ping", "x"]) == ["ping", "x"]
    assert exec_argv("blue", ["ping", "x"]) == Namespace("blue").exec_argv(["ping", "x"])
    assert Namespace("blue").inside.prefix == ("ip", "netns", "exec", "blue")


def test_namespace_create(fake):
    ns = Namespace("red", runner=fake)
    assert ns.create() is ns
    assert fake.argvs == [["ip", "netns", "add", "red"]]


def test_namespace_create_twice_raises_already_exists(fake):
    fake.fail(["ip", "netns", "add", "red"], STDERR["netns_exists"].format(name="red"))
    with pytest.raises(AlreadyExistsError) as info:
        Namespace("red", runner=fake).create()
    assert "creating namespace 'red' failed: `ip netns add red` exited 1" in str(info.value)
    assert 'Cannot create namespace file "/run/netns/red": File exists' in str(info.value)


def test_namespace_create_exist_ok(fake):
    fake.fail(["ip", "netns", "add", "red"], STDERR["netns_exists"].format(name="red"))
    Namespace("red", runner=fake).create(exist_ok=True)
    assert fake.argvs == [["ip", "netns", "add", "red"]]


def test_namespace_create_exist_ok_still_raises_other_errors(fake):
    fake.fail(["ip", "netns", "add", "red"], "mount --make-shared /run/netns failed: Operation not permitted\n")
    with pytest.raises(PermissionDeniedError):
        Namespace("red", runner=fake).create(exist_ok=True)


def test_namespace_delete(fake):
    Namespace("red", runner=fake).delete()
    assert fake.argvs == [["ip", "netns", "del", "red"]]


def test_namespace_delete_missing(fake):
    fake.fail(["ip", "netns", "del", "zz"], STDERR["netns_missing"].format(name="zz"))
    with pytest.raises(NotFoundError):
        Namespace("zz", runner=fake).delete()
    Namespace("zz", runner=fake).delete(missing_ok=True)
    assert fake.argvs == [["ip", "netns", "del", "zz"]] * 2


def test_namespace_delete_missing_ok_still_raises_permission(fake):
    fake.fail(["ip", "netns", "del", "red"], STDERR["not_permitted"])
    with pytest.raises(PermissionDeniedError):
        Namespace("red", runner=fake).delete(missing_ok=True)


def test_namespace_names_all_and_exists(fake):
    fake.on(["ip", "-j", "netns", "list"], stdout=NETNS_LIST)
    assert Namespace.names(fake) == ["blue", "red"]
    assert Namespace.all(fake) == [Namespace("blue"), Namespace("red")]
    assert all(ns.runner is fake for ns in Namespace.all(fake))
    assert Namespace("red", runner=fake).exists()
    assert not Namespace("green", runner=fake).exists()
    assert fake.argvs == [["ip", "-j", "netns", "list"]] * 5


@pytest.mark.parametrize("stdout", [NETNS_LIST_EMPTY, ""])
def test_namespace_names_when_there_are_none(fake, stdout):
    fake.on(["ip", "-j", "netns", "list"], stdout=stdout)
    assert Namespace.names(fake) == []
    assert not Namespace("red", runner=fake).exists()


def test_namespace_exec(fake):
    fake.on(["ip", "netns", "exec", "red", "cat"], stdout="hi\n")
    result = Namespace("red", runner=fake).exec(["cat"], input="hi\n")
    assert result.stdout == "hi\n"
    assert fake.argvs == [["ip", "netns", "exec", "red", "cat"]]
    assert fake.inputs == ["hi\n"]


def test_namespace_exec_check(fake):
    fake.on(
        ["ip", "netns", "exec", "red", "ping", "-c", "1", "192.168.15.9"],
        returncode=1,
        stdout="1 packets transmitted, 0 received, 100% packet loss, time 0ms\n",
    )
    ns = Namespace("red", runner=fake)
    with pytest.raises(CommandError) as info:
        ns.exec(["ping", "-c", "1", "192.168.15.9"])
    assert "running a command in namespace 'red' failed" in str(info.value)
    assert ns.exec(["ping", "-c", "1", "192.168.15.9"], check=False).returncode == 1


def test_namespace_inside_runner(fake):
    Namespace("red", runner=fake).inside.run(["ip", "addr"])
    assert fake.argvs == [["ip", "netns", "exec", "red", "ip", "addr"]]


def test_namespace_pids(fake):
    fake.on(["ip", "netns", "pids", "red"], stdout=NETNS_PIDS)
    fake.on(["ip", "netns", "pids", "blue"], stdout="")
    fake.on(["ip", "netns", "pids", "two"], stdout="101\n202\n")
    assert Namespace("red", runner=fake).pids() == [6603]
    assert Namespace("blue", runner=fake).pids() == []
    assert Namespace("two", runner=fake).pids() == [101, 202]


def test_namespace_pids_missing(fake):
    fake.fail(["ip", "netns", "pids", "zz"], "Cannot open network namespace: No such file or directory\n")
    with pytest.raises(NotFoundError):
        Namespace("zz", runner=fake).pids()


def test_namespace_loopback_up(fake):
    ns = Namespace("red", runner=fake)
    assert ns.loopback_up() is ns
    assert fake.argvs == [["ip", "-n", "red", "link", "set", "lo", "up"]]


def test_namespace_link_and_route_objects(fake):
    ns = Namespace("red", runner=fake)
    assert ns.link("veth-red") == Link("veth-red", "red")
    assert ns.link("veth-red").runner is fake
    route = ns.route("default", "192.168.15.2")
    assert route == Route("default", "192.168.15.2", None, "red")
    route.add()
    assert fake.argvs == [["ip", "-n", "red", "route", "add", "default", "via", "192.168.15.2"]]


def test_namespace_readers(fake):
    fake.on(["ip", "-n", "red", "-d", "-j", "link", "show"], stdout=LINKS_RED)
    fake.on(["ip", "-n", "red", "-j", "addr", "show"], stdout=ADDRS_RED)
    fake.on(["ip", "-n", "red", "-4", "-j", "route", "show"], stdout=ROUTES4_RED)
    fake.on(["ip", "-n", "red", "-6", "-j", "route", "show"], stdout=ROUTES6_RED)
    fake.on(["ip", "-n", "red", "-j", "neigh", "show"], stdout=NEIGH_RED)
    ns = Namespace("red", runner=fake)
    assert [link.name for link in ns.links()] == ["lo", "veth-red"]
    assert [str(a.address) for a in ns.addresses()] == ["192.168.15.1/24", "fd15::1/64", "fe80::ec4e:28ff:fea7:a7c3/64"]
    assert [r.to for r in ns.routes()] == ["default", "10.0.0.0/24", "192.168.15.0/24"]
    assert [r.to for r in ns.routes(family=6)] == ["fd15::/64", "fe80::/64"]
    assert [n.address for n in ns.neighbours()] == ["192.168.15.2"]
    assert fake.argvs == [
        ["ip", "-n", "red", "-d", "-j", "link", "show"],
        ["ip", "-n", "red", "-j", "addr", "show"],
        ["ip", "-n", "red", "-4", "-j", "route", "show"],
        ["ip", "-n", "red", "-6", "-j", "route", "show"],
        ["ip", "-n", "red", "-j", "neigh", "show"],
    ]


@pytest.mark.parametrize("bad", ["", "a/b", ".", "..", "-n", "red blue", "r\u0435d", "a\x00"])
def test_namespace_bad_name(fake, bad):
    with pytest.raises(ValidationError) as info:
        Namespace(bad, runner=fake)
    assert info.value.value == bad
    no_command(fake)


def test_namespace_is_frozen():
    ns = Namespace("red")
    with pytest.raises(AttributeError):
        ns.name = "blue"  # type: ignore[misc]


# --- Link ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("netns", "head"), [(None, ["ip"]), ("red", ["ip", "-n", "red"])])
def test_link_pure_argv(netns, head):
    link = Link("veth-red", netns)
    assert link.up_argv() == [*head, "link", "set", "veth-red", "up"]
    assert link.down_argv() == [*head, "link", "set", "veth-red", "down"]
    assert link.add_address_argv("192.168.15.1/24") == [*head, "addr", "add", "192.168.15.1/24", "dev", "veth-red"]
    assert link.add_address_argv(ipaddress.ip_interface("fd15::1/64")) == [
        *head,
        "addr",
        "add",
        "fd15::1/64",
        "dev",
        "veth-red",
    ]
    assert link.del_address_argv("192.168.15.1/24") == [*head, "addr", "del", "192.168.15.1/24", "dev", "veth-red"]
    assert link.set_master_argv("br0") == [*head, "link", "set", "veth-red", "master", "br0"]
    assert link.set_master_argv(None) == [*head, "link", "set", "veth-red", "nomaster"]
    assert link.delete_argv() == [*head, "link", "del", "veth-red"]


def test_link_operations_run_their_argv(fake):
    link = Link("veth-red", "red", runner=fake)
    assert link.up() is link
    link.down()
    link.add_address("192.168.15.1/24")
    link.remove_address("192.168.15.1/24")
    link.set_master("br0")
    link.set_master(None)
    link.delete()
    assert fake.argvs == [
        ["ip", "-n", "red", "link", "set", "veth-red", "up"],
        ["ip", "-n", "red", "link", "set", "veth-red", "down"],
        ["ip", "-n", "red", "addr", "add", "192.168.15.1/24", "dev", "veth-red"],
        ["ip", "-n", "red", "addr", "del", "192.168.15.1/24", "dev", "veth-red"],
        ["ip", "-n", "red", "link", "set", "veth-red", "master", "br0"],
        ["ip", "-n", "red", "link", "set", "veth-red", "nomaster"],
        ["ip", "-n", "red", "link", "del", "veth-red"],
    ]


def test_link_add_address_twice(fake):
    fake.fail(lambda argv: "add" in argv, STDERR["address_exists"], returncode=2)
    link = Link("veth-red", "red", runner=fake)
    with pytest.raises(AlreadyExistsError) as info:
        link.add_address("192.168.15.1/24")
    assert "adding 192.168.15.1/24 to 'veth-red' in namespace 'red' failed" in str(info.value)
    link.add_address("192.168.15.1/24", exist_ok=True)
    assert len(fake.argvs) == 2


def test_link_remove_absent_address(fake):
    fake.fail(lambda argv: "del" in argv, "Error: ipv4: Address not found.\n", returncode=2)
    link = Link("veth-red", "red", runner=fake)
    with pytest.raises(NotFoundError):
        link.remove_address("192.168.15.9/24")
    assert link.remove_address("192.168.15.9/24", missing_ok=True) is link


def test_link_on_missing_device(fake):
    fake.fail(lambda argv: True, STDERR["device_missing"].format(name="nope"))
    link = Link("nope", runner=fake)
    with pytest.raises(NotFoundError) as info:
        link.up()
    assert "bringing up 'nope' on the host failed: `ip link set nope up` exited 1" in str(info.value)
    with pytest.raises(NotFoundError):
        link.delete()
    link.delete(missing_ok=True)


def test_link_info_parses_real_json(fake):
    fake.on(["ip", "-n", "red", "-d", "-j", "link", "show", "dev", "veth-red"], stdout=LINK_VETH_RED)
    info = Link("veth-red", "red", runner=fake).info()
    assert info == LinkInfo(
        name="veth-red",
        ifindex=2,
        operstate="UP",
        mac="da:48:d6:85:d0:64",
        master=None,
        kind="veth",
        group="default",
        flags=("BROADCAST", "MULTICAST", "UP", "LOWER_UP"),
        mtu=1500,
    )
    assert info.is_up
    assert Link("veth-red", "red", runner=fake).exists()


def test_link_info_of_a_missing_link_is_none(fake):
    fake.fail(lambda argv: True, STDERR["device_does_not_exist"].format(name="nope"))
    assert Link("nope", runner=fake).info() is None
    assert not Link("nope", runner=fake).exists()
    assert fake.argvs == [["ip", "-d", "-j", "link", "show", "dev", "nope"]] * 2


def test_link_info_when_the_namespace_is_missing_is_none(fake):
    fake.fail(lambda argv: True, 'Cannot open network namespace "red": No such file or directory\n')
    assert Link("veth-red", "red", runner=fake).info() is None


def test_link_info_other_failures_raise(fake):
    fake.fail(lambda argv: True, STDERR["not_permitted"], returncode=2)
    with pytest.raises(PermissionDeniedError):
        Link("veth-red", "red", runner=fake).info()


def test_link_addresses_filters_by_name(fake):
    fake.on(["ip", "-n", "red", "-j", "addr", "show"], stdout=ADDRS_RED)
    assert Link("veth-red", "red", runner=fake).addresses() == [
        ipaddress.ip_interface("192.168.15.1/24"),
        ipaddress.ip_interface("fd15::1/64"),
        ipaddress.ip_interface("fe80::ec4e:28ff:fea7:a7c3/64"),
    ]
    assert Link("lo", "red", runner=fake).addresses() == []


@pytest.mark.parametrize(
    "make",
    [
        lambda r: Link("x" * 16, runner=r),
        lambda r: Link("a/b", runner=r),
        lambda r: Link("eth0", "../x", runner=r),
        lambda r: Link("eth0", runner=r).add_address("192.168.15.1"),
        lambda r: Link("eth0", runner=r).add_address("192.168.15.1/24; reboot"),
        lambda r: Link("eth0", runner=r).remove_address("300.0.0.1/24"),
        lambda r: Link("eth0", runner=r).set_master("-br"),
        lambda r: Link("eth0", runner=r).set_master("br 0"),
    ],
)
def test_link_bad_input_runs_nothing(fake, make):
    with pytest.raises(ValidationError):
        make(fake)
    no_command(fake)


# --- VethPair ------------------------------------------------------------------------------------------


def test_veth_create_argv_variants():
    assert VethPair("v0", "v1").create_argv() == ["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"]
    assert VethPair("veth-red", "veth-blue", netns="red", peer_netns="blue").create_argv() == [
        "ip",
        "link",
        "add",
        "veth-red",
        "netns",
        "red",
        "type",
        "veth",
        "peer",
        "name",
        "veth-blue",
        "netns",
        "blue",
    ]
    assert VethPair("v0", "v1", peer_netns="blue", master="br0", group=7).create_argv(up=True) == [
        "ip",
        "link",
        "add",
        "v0",
        "group",
        "7",
        "up",
        "master",
        "br0",
        "type",
        "veth",
        "peer",
        "name",
        "v1",
        "netns",
        "blue",
    ]


def test_veth_delete_and_move_argv():
    pair = VethPair("veth-red", "veth-blue", netns="red", peer_netns="blue")
    assert pair.delete_argv() == ["ip", "-n", "red", "link", "del", "veth-red"]
    assert VethPair("v0", "v1").delete_argv() == ["ip", "link", "del", "v0"]
    assert pair.move_argv("veth-red", "green") == ["ip", "-n", "red", "link", "set", "veth-red", "netns", "green"]
    assert pair.move_argv("veth-blue", "green") == ["ip", "-n", "blue", "link", "set", "veth-blue", "netns", "green"]
    assert VethPair("v0", "v1").move_argv("v1", "red") == ["ip", "link", "set", "v1", "netns", "red"]


def test_veth_create(fake):
    pair = VethPair("veth-red", "veth-blue", netns="red", peer_netns="blue", runner=fake)
    assert pair.create() is pair
    assert fake.argvs == [pair.create_argv()]


def test_veth_create_up_brings_up_the_peer_too(fake):
    VethPair("veth-red", "veth-blue", netns="red", peer_netns="blue", runner=fake).create(up=True)
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
    ]


def test_veth_create_twice(fake):
    fake.fail(lambda argv: argv[:3] == ["ip", "link", "add"], STDERR["link_exists"], returncode=2)
    pair = VethPair("v0", "v1", runner=fake)
    with pytest.raises(AlreadyExistsError) as info:
        pair.create()
    assert "creating veth pair 'v0'/'v1' failed" in str(info.value)
    assert "RTNETLINK answers: File exists" in str(info.value)
    pair.create(exist_ok=True, up=True)
    assert fake.argvs[1:] == [
        ["ip", "link", "add", "v0", "up", "type", "veth", "peer", "name", "v1"],
        ["ip", "link", "set", "v0", "up"],  # the existing pair may be down: both ends are brought up
        ["ip", "link", "set", "v1", "up"],
    ]


def test_veth_up_both_ends(fake):
    VethPair("veth-red", "veth-blue", netns="red", peer_netns="blue", runner=fake).up()
    assert fake.argvs == [
        ["ip", "-n", "red", "link", "set", "veth-red", "up"],
        ["ip", "-n", "blue", "link", "set", "veth-blue", "up"],
    ]


def test_veth_ends():
    red, blue = VethPair("veth-red", "veth-blue", netns="red", peer_netns="blue").ends
    assert (red, blue) == (Link("veth-red", "red"), Link("veth-blue", "blue"))


def test_veth_delete(fake):
    VethPair("veth-red", "veth-blue", netns="red", peer_netns="blue", runner=fake).delete()
    assert fake.argvs == [["ip", "-n", "red", "link", "del", "veth-red"]]


def test_veth_delete_missing(fake):
    fake.fail(lambda argv: True, STDERR["device_missing"].format(name="v0"))
    with pytest.raises(NotFoundError):
        VethPair("v0", "v1", runner=fake).delete()
    VethPair("v0", "v1", runner=fake).delete(missing_ok=True)


def test_veth_move_returns_the_pair_as_it_now_is(fake):
    pair = VethPair("v0", "v1", runner=fake)
    moved = pair.move("v1", "blue")
    assert moved == VethPair("v0", "v1", peer_netns="blue")
    moved = moved.move("v0", "red")
    assert moved == VethPair("v0", "v1", netns="red", peer_netns="blue")
    assert moved.runner is fake
    assert fake.argvs == [
        ["ip", "link", "set", "v1", "netns", "blue"],
        ["ip", "link", "set", "v0", "netns", "red"],
    ]


@pytest.mark.parametrize(
    "make",
    [
        lambda r: VethPair("v0", "v0", runner=r),
        lambda r: VethPair("v0", "x" * 16, runner=r),
        lambda r: VethPair("v0", "v1", netns="a/b", runner=r),
        lambda r: VethPair("v0", "v1", master="-x", runner=r),
        lambda r: VethPair("v0", "v1", group=-1, runner=r),
        lambda r: VethPair("v0", "v1", group=True, runner=r),
        lambda r: VethPair("v0", "v1", group=2**32, runner=r),
        lambda r: VethPair("v0", "v1", runner=r).move("v2", "red"),
        lambda r: VethPair("v0", "v1", runner=r).move("v1", ".."),
        lambda r: VethPair("v0", "v1", runner=r).move("v1", None),  # type: ignore[arg-type]
    ],
)
def test_veth_bad_input_runs_nothing(fake, make):
    with pytest.raises(ValidationError):
        make(fake)
    no_command(fake)


def test_veth_same_name_in_different_namespaces_is_fine():
    assert VethPair("eth0", "eth0", netns="red", peer_netns="blue").create_argv()[3] == "eth0"


# --- Bridge --------------------------------------------------------------------------------------------


def test_bridge_pure_argv():
    assert Bridge("br0").create_argv() == ["ip", "link", "add", "name", "br0", "type", "bridge"]
    assert Bridge("br0", "red", group=3).create_argv(up=True) == [
        "ip",
        "-n",
        "red",
        "link",
        "add",
        "name",
        "br0",
        "group",
        "3",
        "up",
        "type",
        "bridge",
    ]
    assert Bridge("br0").attach_argv("v0") == ["ip", "link", "set", "v0", "master", "br0"]
    assert Bridge("br0", "red").detach_argv("v0") == ["ip", "-n", "red", "link", "set", "v0", "nomaster"]


def test_bridge_operations(fake):
    br = Bridge("br0", runner=fake)
    assert br.create() is br
    br.up()
    br.attach("v0")
    br.detach("v0")
    br.down()
    br.delete()
    assert fake.argvs == [
        ["ip", "link", "add", "name", "br0", "type", "bridge"],
        ["ip", "link", "set", "br0", "up"],
        ["ip", "link", "set", "v0", "master", "br0"],
        ["ip", "link", "set", "v0", "nomaster"],
        ["ip", "link", "set", "br0", "down"],
        ["ip", "link", "del", "br0"],
    ]


def test_bridge_create_twice(fake):
    fake.fail(["ip", "link", "add", "name", "br0", "up", "type", "bridge"], STDERR["link_exists"], returncode=2)
    br = Bridge("br0", runner=fake)
    with pytest.raises(AlreadyExistsError):
        br.create(up=True)
    fake.clear()
    br.create(up=True, exist_ok=True)
    assert fake.argvs == [
        ["ip", "link", "add", "name", "br0", "up", "type", "bridge"],
        ["ip", "link", "set", "br0", "up"],  # the existing bridge is still brought up
    ]


def test_bridge_attach_missing_interface(fake):
    fake.fail(lambda argv: True, STDERR["device_missing"].format(name="nope"))
    with pytest.raises(NotFoundError) as info:
        Bridge("br0", runner=fake).attach("nope")
    assert "attaching 'nope' to bridge 'br0' failed" in str(info.value)


def test_bridge_delete_missing_ok(fake):
    fake.fail(lambda argv: True, STDERR["device_missing"].format(name="br0"))
    Bridge("br0", runner=fake).delete(missing_ok=True)
    with pytest.raises(NotFoundError):
        Bridge("br0", runner=fake).delete()


def test_bridge_exists_reads_the_link(fake):
    fake.on(["ip", "-d", "-j", "link", "show", "dev", "br0"], stdout=json.dumps(json.loads(LINKS_BRIDGE)[:1]))
    assert Bridge("br0", runner=fake).exists()
    fake.fail(["ip", "-d", "-j", "link", "show", "dev", "br1"], STDERR["device_does_not_exist"].format(name="br1"))
    assert not Bridge("br1", runner=fake).exists()


@pytest.mark.parametrize(
    "make",
    [
        lambda r: Bridge("", runner=r),
        lambda r: Bridge("br:0", runner=r),
        lambda r: Bridge("br0", "a b", runner=r),
        lambda r: Bridge("br0", group="3", runner=r),
        lambda r: Bridge("br0", runner=r).attach("x" * 16),
        lambda r: Bridge("br0", runner=r).detach("-v"),
    ],
)
def test_bridge_bad_input_runs_nothing(fake, make):
    with pytest.raises(ValidationError):
        make(fake)
    no_command(fake)


# --- Route ---------------------------------------------------------------------------------------------


def test_route_argv():
    route = Route("10.0.0.0/24", "192.168.15.2", netns="red")
    assert route.add_argv() == ["ip", "-n", "red", "route", "add", "10.0.0.0/24", "via", "192.168.15.2"]
    assert route.replace_argv() == ["ip", "-n", "red", "route", "replace", "10.0.0.0/24", "via", "192.168.15.2"]
    assert route.delete_argv() == ["ip", "-n", "red", "route", "del", "10.0.0.0/24", "via", "192.168.15.2"]
    assert Route("default", "192.168.15.2").add_argv() == ["ip", "route", "add", "default", "via", "192.168.15.2"]
    assert Route("10.0.0.0/24", dev="veth-red").add_argv() == ["ip", "route", "add", "10.0.0.0/24", "dev", "veth-red"]
    assert Route("10.0.0.0/24", "192.168.15.2", "veth-red").add_argv() == [
        "ip",
        "route",
        "add",
        "10.0.0.0/24",
        "via",
        "192.168.15.2",
        "dev",
        "veth-red",
    ]
    assert Route("fd16::/64", "fd15::2").add_argv() == ["ip", "-6", "route", "add", "fd16::/64", "via", "fd15::2"]
    assert Route("default", "fd15::2", netns="red").add_argv() == [
        "ip",
        "-n",
        "red",
        "-6",
        "route",
        "add",
        "default",
        "via",
        "fd15::2",
    ]


def test_route_add_and_delete(fake):
    route = Route("default", "192.168.15.2", netns="red", runner=fake)
    assert route.add() is route
    route.add(exist_ok=True)
    route.delete()
    assert fake.argvs == [
        ["ip", "-n", "red", "route", "add", "default", "via", "192.168.15.2"],
        ["ip", "-n", "red", "route", "replace", "default", "via", "192.168.15.2"],
        ["ip", "-n", "red", "route", "del", "default", "via", "192.168.15.2"],
    ]


def test_route_add_twice(fake):
    fake.fail(lambda argv: "add" in argv, STDERR["link_exists"], returncode=2)
    with pytest.raises(AlreadyExistsError) as info:
        Route("10.0.0.0/24", "192.168.15.2", runner=fake).add()
    assert "adding route 10.0.0.0/24 via 192.168.15.2 on the host failed" in str(info.value)


def test_route_with_an_unreachable_gateway_is_a_plain_command_error(fake):
    fake.fail(lambda argv: True, "Error: Nexthop has invalid gateway.\n", returncode=2)
    with pytest.raises(CommandError) as info:
        Route("10.9.0.0/24", "10.77.0.1", runner=fake).add(exist_ok=True)
    assert type(info.value) is CommandError


def test_route_delete_missing(fake):
    fake.fail(lambda argv: True, "RTNETLINK answers: No such process\n", returncode=2)
    route = Route("10.1.0.0/24", "192.168.15.2", runner=fake)
    with pytest.raises(NotFoundError):
        route.delete()
    route.delete(missing_ok=True)


@pytest.mark.parametrize(
    "make",
    [
        lambda r: Route("10.0.0.1/24", "192.168.15.2", runner=r),
        lambda r: Route("10.0.0.0/24", runner=r),
        lambda r: Route("10.0.0.0/24", "fd15::2", runner=r),
        lambda r: Route("fd16::/64", "192.168.15.2", runner=r),
        lambda r: Route("10.0.0.0/24", "192.168.15.2/24", runner=r),
        lambda r: Route("10.0.0.0/24", dev="a b", runner=r),
        lambda r: Route("10.0.0.0/24", "192.168.15.2", netns="-x", runner=r),
        lambda r: Route("default; reboot", "192.168.15.2", runner=r),
    ],
)
def test_route_bad_input_runs_nothing(fake, make):
    with pytest.raises(ValidationError):
        make(fake)
    no_command(fake)


# --- readers ---------------------------------------------------------------------------------------------


def test_links_reader_on_the_host(fake):
    fake.on(["ip", "-d", "-j", "link", "show"], stdout=LINKS_BRIDGE)
    br, v1 = link_mod.links(fake)
    assert (br.name, br.kind, br.master, br.is_up, br.operstate) == ("br0", "bridge", None, False, "DOWN")
    assert (v1.name, v1.kind, v1.master, v1.ifindex, v1.mac) == ("v1", "veth", "br0", 4, "12:5c:91:fa:40:b1")
    assert v1.flags == ("BROADCAST", "MULTICAST", "M-DOWN")


def test_links_reader_loopback_has_no_kind(fake):
    fake.on(lambda argv: True, stdout=LINKS_RED)
    lo = link_mod.links(fake, "red")[0]
    assert (lo.name, lo.kind, lo.mtu, lo.operstate, lo.is_up) == ("lo", None, 65536, "UNKNOWN", True)


def test_addresses_reader(fake):
    fake.on(lambda argv: True, stdout=ADDRS_RED)
    assert link_mod.addresses(fake, "red") == [
        AddressInfo("veth-red", ipaddress.ip_interface("192.168.15.1/24"), "global"),
        AddressInfo("veth-red", ipaddress.ip_interface("fd15::1/64"), "global"),
        AddressInfo("veth-red", ipaddress.ip_interface("fe80::ec4e:28ff:fea7:a7c3/64"), "link"),
    ]


def test_routes_reader(fake):
    fake.on(lambda argv: True, stdout=ROUTES4_RED)
    assert link_mod.routes(fake, "red") == [
        RouteInfo("default", "192.168.15.2", "veth-red", None, None),
        RouteInfo("10.0.0.0/24", "192.168.15.2", "veth-red", None, None),
        RouteInfo("192.168.15.0/24", None, "veth-red", "kernel", "link"),
    ]
    assert fake.argvs == [["ip", "-n", "red", "-4", "-j", "route", "show"]]


def test_routes_reader_ipv6(fake):
    fake.on(lambda argv: True, stdout=ROUTES6_RED)
    assert link_mod.routes(fake, family=6) == [
        RouteInfo("fd15::/64", None, "veth-red", "kernel", None),
        RouteInfo("fe80::/64", None, "veth-red", "kernel", None),
    ]
    assert fake.argvs == [["ip", "-6", "-j", "route", "show"]]


def test_neighbours_reader(fake):
    fake.on(lambda argv: True, stdout=NEIGH_RED)
    assert link_mod.neighbours(fake, "red") == [
        Neighbour("192.168.15.2", "veth-red", "82:08:2b:a5:ca:64", ("REACHABLE",)),
    ]


@pytest.mark.parametrize("reader", [link_mod.links, link_mod.addresses, link_mod.routes, link_mod.neighbours])
def test_readers_on_empty_output(fake, reader):
    fake.on(lambda argv: True, stdout="[]\n")
    assert reader(fake) == []


@pytest.mark.parametrize("reader", [link_mod.links, link_mod.addresses, link_mod.routes, link_mod.neighbours])
def test_readers_raise_when_the_namespace_is_missing(fake, reader):
    fake.fail(lambda argv: True, 'Cannot open network namespace "zz": No such file or directory\n')
    with pytest.raises(NotFoundError):
        reader(fake, "zz")


@pytest.mark.parametrize("reader", [link_mod.links, link_mod.addresses, link_mod.routes, link_mod.neighbours])
def test_readers_validate_the_namespace_first(fake, reader):
    with pytest.raises(ValidationError):
        reader(fake, "../etc")
    no_command(fake)


def test_ip_argv():
    assert link_mod.ip_argv(None, "link") == ["ip", "link"]
    assert link_mod.ip_argv("red", "link") == ["ip", "-n", "red", "link"]


@pytest.mark.parametrize(
    ("snooping", "tail"), [(None, []), (False, ["mcast_snooping", "0"]), (True, ["mcast_snooping", "1"])]
)
def test_bridge_multicast_snooping_argv(snooping: bool | None, tail: list[str]) -> None:
    bridge = Bridge("br0", group=7, multicast_snooping=snooping)
    head = ["ip", "link", "add", "name", "br0", "group", "7", "up", "type", "bridge"]
    assert bridge.create_argv(up=True) == [*head, *tail]


def test_bridge_multicast_snooping_must_be_a_flag() -> None:
    with pytest.raises(ValidationError, match="multicast snooping"):
        Bridge("br0", multicast_snooping="off")  # type: ignore[arg-type]

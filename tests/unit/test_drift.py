"""Drift, cleanup's scope, dangling /run/netns entries: exact removal steps against scripted kernel state.

A network owns what carries its mark ``netnskit:NAME``. Here the kernel (a FakeRunner) shows a
network as an earlier version of its file left it; the tests assert the exact commands ``up``,
``down``, ``status`` and ``cleanup`` plan and run.
"""

from __future__ import annotations

import json
import re

import pytest

from netnskit.errors import NotOursError, ValidationError
from netnskit.executors import BatchExecutor, SerialExecutor
from netnskit.link import Link
from netnskit.netns import Namespace
from netnskit.network import Network, Owned, cleanup, group_for
from netnskit.plan import Command, Step
from netnskit.testing import FakeRunner

G = group_for("t1")
LO = {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP"]}
READS = re.compile(
    r"(^| )(-j|iptables-save|ip6tables-save)( |$)|^nft (-j )?list |^sysctl -n |^readlink |^stat "
    r"|^unshare --net |^modinfo "
    # the files under /etc/netns, the processes' pid files and marks
    r"|(^|-- )(grep|find|ss|tail|sha256sum) "
)


def small(runner: FakeRunner, **kw: object) -> Network:
    fields: dict[str, object] = {
        "name": "t1",
        "bridge": "br-t1",
        "subnet": "10.9.0.0/24",
        "gateway": "10.9.0.1",
        "namespaces": ["a"],
        "hosts": False,  # no /etc/netns files: the steps asserted here are the kernel's
    }
    fields.update(kw)
    return Network(**fields, runner=runner)  # type: ignore[arg-type]


def place(
    fake: FakeRunner,
    where: str | None = None,
    *,
    links: list[dict[str, object]],
    addrs: list[dict[str, object]] | None = None,
    routes: list[dict[str, object]] | None = None,
    netconf: list[dict[str, object]] | None = None,
) -> None:
    """What the kernel shows in one place: the batched read, ``link show`` and ``link show dev lo``."""
    prefix = ["ip"] if where is None else ["ip", "-n", where]
    lists = [links, addrs or [], routes or [], netconf or []]
    fake.on([*prefix, "-4", "-j", "-batch", "-"], stdout="\n".join(json.dumps(x) for x in lists) + "\n")
    fake.on([*prefix, "-j", "link", "show"], stdout=json.dumps(links))
    lo = [d for d in links if d["ifname"] == "lo"]
    fake.on([*prefix, "-j", "link", "show", "dev", "lo"], stdout=json.dumps(lo))


def marked_lo(mark: str) -> dict[str, object]:
    return {**LO, "ifalias": mark}


def host_link(name: str, *, mark: str = "netnskit:t1", group: int = G, nsid: int | None = None) -> dict[str, object]:
    entry: dict[str, object] = {"ifindex": 10, "ifname": name, "group": str(group), "ifalias": mark, "flags": ["UP"]}
    if nsid is not None:
        entry["link_netnsid"] = nsid
    return entry


def writes(fake: FakeRunner) -> list[list[str]]:
    return [a for a in fake.argvs if not READS.search(" ".join(a))]


def written(fake: FakeRunner) -> list[tuple[list[str], str | None]]:
    return [(a, i) for a, i in zip(fake.argvs, fake.inputs, strict=True) if not READS.search(" ".join(a))]


def t1_was_two_namespaces(fake: FakeRunner) -> None:
    """The kernel as ``t1`` with namespaces a and b left it; its file now has only a."""
    fake.on(["ip", "-j", "netns", "list"], stdout=json.dumps([{"name": "a", "id": 0}, {"name": "b", "id": 1}]))
    host = [LO, host_link("br-t1"), host_link("veth-a", nsid=0), host_link("veth-b", nsid=1)]
    place(
        fake,
        links=host,
        addrs=[{"ifname": "br-t1", "addr_info": [{"family": "inet", "local": "10.9.0.1", "prefixlen": 24}]}],
        netconf=[{"interface": "br-t1", "forwarding": True}],
    )
    eth0 = {"ifindex": 2, "ifname": "eth0", "flags": ["UP"]}
    for name, last in (("a", 2), ("b", 3)):
        place(
            fake,
            name,
            links=[marked_lo("netnskit:t1"), eth0],
            addrs=[{"ifname": "eth0", "addr_info": [{"family": "inet", "local": f"10.9.0.{last}", "prefixlen": 24}]}],
            routes=[{"dst": "default", "gateway": "10.9.0.1", "dev": "eth0"}],
        )
    fake.on(["iptables-save"], stdout=SAVED_BRIDGE_ONLY)


# --- up reconciles an edited file -------------------------------------------------------------


def test_missing_steps_of_an_edited_file_are_the_exact_removals() -> None:
    fake = FakeRunner()
    t1_was_two_namespaces(fake)
    steps = small(fake).missing_steps()
    assert steps == [
        Step(
            "remove link veth-b (marked netnskit:t1, no longer in the description)",
            [_link_del("veth-b")],
        ),
        Step("remove namespace b (marked netnskit:t1, no longer in the description)", [_netns_del("b")]),
    ]


def _link_del(name: str) -> Command:
    return Link(name, runner=FakeRunner()).delete_command()


def _netns_del(name: str) -> Command:
    return Namespace(name, runner=FakeRunner()).delete_command()


@pytest.mark.parametrize("executor", ["serial", "batch"])
def test_up_of_an_edited_file_removes_what_it_lost_and_nothing_else(executor: str) -> None:
    fake = FakeRunner()
    t1_was_two_namespaces(fake)
    small(fake).up(BatchExecutor() if executor == "batch" else SerialExecutor())
    if executor == "serial":
        assert writes(fake) == [["ip", "link", "del", "veth-b"], ["ip", "netns", "del", "b"]]
    else:
        assert written(fake) == [(["ip", "-batch", "-"], "link del veth-b\nnetns del b\n")]


def test_status_lists_what_is_ours_and_not_described() -> None:
    fake = FakeRunner()
    t1_was_two_namespaces(fake)
    status = small(fake).status()
    assert status.extra == (Owned("namespace", "b"), Owned("link", "veth-b"))
    assert not status.up
    assert tuple(m.step for m in status.missing) == (
        "remove link veth-b (marked netnskit:t1, no longer in the description)",
        "remove namespace b (marked netnskit:t1, no longer in the description)",
    )
    extra = json.loads(json.dumps(status.to_json()))["extra"]
    assert extra == [{"kind": "namespace", "name": "b"}, {"kind": "link", "name": "veth-b"}]
    assert writes(fake) == []


def test_a_namespace_of_another_network_is_neither_read_nor_touched() -> None:
    # c's veth peer on the host is marked by network "other": it is theirs, not a candidate
    fake = FakeRunner()
    t1_was_two_namespaces(fake)
    fake.on(
        ["ip", "-j", "netns", "list"],
        stdout=json.dumps([{"name": "a", "id": 0}, {"name": "c", "id": 7}]),
    )
    place(
        fake,
        links=[
            LO,
            host_link("br-t1"),
            host_link("veth-a", nsid=0),
            host_link("veth-c", mark="netnskit:other", group=5, nsid=7),
        ],
    )
    net = small(fake)
    status = net.status()
    assert status.extra == ()
    assert not [a for a in fake.argvs if a[:3] == ["ip", "-n", "c"]]


# what up made for t1 (bridge rule, masquerade, the forward of port 80 to a), as iptables-save prints it
SAVED_WITH_A_FORWARD = "\n".join(
    [
        "*raw",
        ":PREROUTING ACCEPT [0:0]",
        ":NETNSKIT-PREROUTING - [0:0]",
        "-A PREROUTING -m comment --comment netnskit -j NETNSKIT-PREROUTING",
        '-A NETNSKIT-PREROUTING -s 127.0.0.0/8 -i br-t1 -m comment --comment "netnskit:t1" -j DROP',
        '-A NETNSKIT-PREROUTING -d 127.0.0.0/8 -i br-t1 -m comment --comment "netnskit:t1" -j DROP',
        "COMMIT",
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        ":NETNSKIT-OUTPUT - [0:0]",
        ":NETNSKIT-POSTROUTING - [0:0]",
        ":NETNSKIT-PREROUTING - [0:0]",
        "-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment netnskit -j NETNSKIT-PREROUTING",
        "-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment netnskit -j NETNSKIT-OUTPUT",
        "-A POSTROUTING -m comment --comment netnskit -j NETNSKIT-POSTROUTING",
        '-A NETNSKIT-OUTPUT -p tcp -m tcp --dport 80 -m comment --comment "netnskit:t1" -j DNAT '
        "--to-destination 10.9.0.2:80",
        '-A NETNSKIT-POSTROUTING -s 10.9.0.0/24 ! -o br-t1 -m comment --comment "netnskit:t1" -j MASQUERADE',
        "-A NETNSKIT-POSTROUTING -s 10.9.0.0/24 -d 10.9.0.2/32 -o br-t1 -p tcp -m tcp --dport 80 -m conntrack "
        '--ctstate DNAT --ctorigdstport 80 -m comment --comment "netnskit:t1" -j MASQUERADE',
        "-A NETNSKIT-POSTROUTING -s 127.0.0.0/8 -d 10.9.0.2/32 -o br-t1 -p tcp -m tcp --dport 80 -m conntrack "
        '--ctstate DNAT --ctorigdstport 80 -m comment --comment "netnskit:t1" -j MASQUERADE',
        '-A NETNSKIT-PREROUTING -p tcp -m tcp --dport 80 -m comment --comment "netnskit:t1" -j DNAT '
        "--to-destination 10.9.0.2:80",
        "COMMIT",
        "*filter",
        ":FORWARD ACCEPT [0:0]",
        ":NETNSKIT-FORWARD - [0:0]",
        ":NETNSKIT-STATE - [0:0]",
        ":NETNSKIT-USER - [0:0]",
        "-A FORWARD -m comment --comment netnskit -j NETNSKIT-FORWARD",
        "-A NETNSKIT-FORWARD -m comment --comment netnskit -j NETNSKIT-USER",
        '-A NETNSKIT-FORWARD -i br-t1 -o br-t1 -m comment --comment "netnskit:t1" -j ACCEPT',
        "-A NETNSKIT-FORWARD -d 10.9.0.0/24 -o br-t1 -m conntrack --ctstate RELATED,ESTABLISHED "
        '-m comment --comment "netnskit:t1" -j ACCEPT',
        "-A NETNSKIT-FORWARD -d 10.9.0.2/32 -o br-t1 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT "
        '--ctorigdstport 80 -m comment --comment "netnskit:t1" -j ACCEPT',
        "-A NETNSKIT-FORWARD -s 10.9.0.2/32 -i br-t1 -p tcp -m tcp --sport 80 -m conntrack --ctstate DNAT "
        '--ctorigdstport 80 -m comment --comment "netnskit:t1" -j ACCEPT',
        '-A NETNSKIT-STATE -m comment --comment "netnskit sysctl net.ipv4.ip_forward=0"',
        '-A NETNSKIT-STATE -m comment --comment "netnskit sysctl net.ipv4.conf.br-t1.route_localnet=0"',
        "COMMIT",
        "",
    ]
)
# what up made for t1 without masquerade or forwards: the accept of its bridge's own traffic
SAVED_BRIDGE_ONLY = "\n".join(
    [
        "*filter",
        ":FORWARD ACCEPT [0:0]",
        ":NETNSKIT-FORWARD - [0:0]",
        ":NETNSKIT-USER - [0:0]",
        "-A FORWARD -m comment --comment netnskit -j NETNSKIT-FORWARD",
        "-A NETNSKIT-FORWARD -m comment --comment netnskit -j NETNSKIT-USER",
        '-A NETNSKIT-FORWARD -i br-t1 -o br-t1 -m comment --comment "netnskit:t1" -j ACCEPT',
        "COMMIT",
        "",
    ]
)


def t1_with_a_forward(fake: FakeRunner) -> None:
    """t1 up with masquerade and a forward of port 80 to a; its file now has the masquerade only."""
    fake.on(["ip", "-j", "netns", "list"], stdout=json.dumps([{"name": "a", "id": 0}]))
    place(
        fake,
        links=[LO, host_link("br-t1"), host_link("veth-a", nsid=0)],
        addrs=[{"ifname": "br-t1", "addr_info": [{"family": "inet", "local": "10.9.0.1", "prefixlen": 24}]}],
        netconf=[{"interface": "br-t1", "forwarding": True}],
    )
    place(
        fake,
        "a",
        links=[marked_lo("netnskit:t1"), {"ifindex": 2, "ifname": "eth0", "flags": ["UP"]}],
        addrs=[{"ifname": "eth0", "addr_info": [{"family": "inet", "local": "10.9.0.2", "prefixlen": 24}]}],
        routes=[{"dst": "default", "gateway": "10.9.0.1", "dev": "eth0"}],
    )
    fake.on(["iptables-save"], stdout=SAVED_WITH_A_FORWARD)
    fake.on(["sysctl", "-n", "net.ipv4.ip_forward"], stdout="1\n")
    fake.on(["sysctl", "-n", "net.ipv4.conf.br-t1.route_localnet"], stdout="1\n")
    fake.on(re.compile(r"^iptables -w 10 -t \S+ -C "), returncode=0)  # what the save shows exists


FORWARD_RULES = (
    "*raw\n"
    "-D NETNSKIT-PREROUTING -s 127.0.0.0/8 -i br-t1 -m comment --comment netnskit:t1 -j DROP\n"
    "-D NETNSKIT-PREROUTING -d 127.0.0.0/8 -i br-t1 -m comment --comment netnskit:t1 -j DROP\n"
    "COMMIT\n"
    "*nat\n"
    "-D NETNSKIT-OUTPUT -p tcp -m tcp --dport 80 -m comment --comment netnskit:t1 -j DNAT "
    "--to-destination 10.9.0.2:80\n"
    "-D NETNSKIT-POSTROUTING -s 10.9.0.0/24 -d 10.9.0.2/32 -o br-t1 -p tcp -m tcp --dport 80 -m conntrack "
    "--ctstate DNAT --ctorigdstport 80 -m comment --comment netnskit:t1 -j MASQUERADE\n"
    "-D NETNSKIT-POSTROUTING -s 127.0.0.0/8 -d 10.9.0.2/32 -o br-t1 -p tcp -m tcp --dport 80 -m conntrack "
    "--ctstate DNAT --ctorigdstport 80 -m comment --comment netnskit:t1 -j MASQUERADE\n"
    "-D NETNSKIT-PREROUTING -p tcp -m tcp --dport 80 -m comment --comment netnskit:t1 -j DNAT "
    "--to-destination 10.9.0.2:80\n"
    "COMMIT\n"
    "*filter\n"
    "-D NETNSKIT-FORWARD -d 10.9.0.2/32 -o br-t1 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT "
    "--ctorigdstport 80 -m comment --comment netnskit:t1 -j ACCEPT\n"
    "-D NETNSKIT-FORWARD -s 10.9.0.2/32 -i br-t1 -p tcp -m tcp --sport 80 -m conntrack --ctstate DNAT "
    "--ctorigdstport 80 -m comment --comment netnskit:t1 -j ACCEPT\n"
    "COMMIT\n"
)


def test_a_forward_taken_out_of_the_file_is_removed_with_its_guards_and_their_sysctl() -> None:
    fake = FakeRunner()
    t1_with_a_forward(fake)
    net = small(fake, masquerade=True)
    steps = net.missing_steps()
    assert [s.description for s in steps] == [
        "remove 8 firewall rules of netnskit:t1 no longer in the description",
        "sweep netnskit's shared firewall state (IPv4)",
    ]
    assert steps[0].do[0].input == FORWARD_RULES
    assert [c.argv for c in steps[1].do] == [
        ("sysctl", "-w", "net.ipv4.conf.br-t1.route_localnet=0"),
        ("iptables-restore", "-w", "10", "--noflush"),
    ]
    # no guard left: the raw table's chain and jump go too
    assert steps[1].do[1].input == (
        "*raw\n-D PREROUTING -m comment --comment netnskit -j NETNSKIT-PREROUTING\n"
        "-F NETNSKIT-PREROUTING\n-X NETNSKIT-PREROUTING\nCOMMIT\n"
        '*filter\n-D NETNSKIT-STATE -m comment --comment "netnskit sysctl net.ipv4.conf.br-t1.route_localnet=0"\n'
        "COMMIT\n"
    )
    assert net.status().extra[0] == Owned(
        "rule",
        "-t raw -A NETNSKIT-PREROUTING -s 127.0.0.0/8 -i br-t1 -m comment --comment netnskit:t1 -j DROP",
    )
    assert len(net.status().extra) == 8
    fake.clear()
    net.up()
    assert written(fake)[0] == (["iptables-restore", "-w", "10", "--noflush"], FORWARD_RULES)


def test_rules_iptables_prints_in_its_own_order_are_not_taken_for_lost() -> None:
    # the same network, forward kept: iptables-save's "-s ... -i" order is the rule we asked for
    fake = FakeRunner()
    t1_with_a_forward(fake)
    net = small(fake, masquerade=True, port_forwards=[{"host_port": 80, "netns": "a"}])
    assert net.missing_steps() == []
    assert net.status().extra == ()


# --- renamed networks, down of an edited file -------------------------------------------------


def test_up_of_a_renamed_network_names_the_old_one_and_how_to_remove_it() -> None:
    fake = FakeRunner()
    t1_was_two_namespaces(fake)
    renamed = small(fake, name="t2")
    with pytest.raises(NotOursError) as info:
        renamed.up()
    assert "alias netnskit:t1 says it belongs to network 't1'" in str(info.value)
    assert "if network 't2' was renamed from 't1', remove the old one first with `netnskit cleanup t1`" in str(
        info.value
    )
    assert writes(fake) == []


def test_down_of_a_renamed_network_leaves_the_old_one_and_says_whose_it_is() -> None:
    fake = FakeRunner()
    t1_was_two_namespaces(fake)
    fake.on(["iptables-save"], stdout="")
    teardown = small(fake, name="t2").down()
    assert writes(fake) == []
    assert teardown.others == ("t1",)
    assert teardown.left[0] == (
        "namespace a (marked netnskit:t1: it belongs to network 't1', not 't2'; if this one was renamed from it, "
        "`netnskit cleanup t1` removes it)"
    )


def test_down_of_an_edited_file_removes_every_namespace_marked_with_its_name() -> None:
    fake = FakeRunner()
    t1_was_two_namespaces(fake)
    teardown = small(fake).down()
    assert writes(fake) == [
        ["iptables-restore", "-w", "10", "--noflush"],  # the bridge's accept
        ["iptables-restore", "-w", "10", "--noflush"],  # the sweep: no owner left
        ["ip", "link", "del", "group", str(G)],
        ["ip", "netns", "del", "b"],
        ["ip", "netns", "del", "a"],
    ]
    assert "namespace b" in teardown.removed


# --- dangling /run/netns entries ----------------------------------------------------------------


def dangling_a(fake: FakeRunner) -> None:
    """Namespace a's entry is a plain file (its delete was interrupted): every read in it fails."""
    fake.on(["ip", "-j", "netns", "list"], stdout=json.dumps([{"name": "a"}]))
    place(fake, links=[LO])
    message = 'setting the network namespace "a" failed: Invalid argument\n'
    fake.fail(["ip", "-n", "a", "-4", "-j", "-batch", "-"], message)
    fake.fail(["ip", "-n", "a", "-j", "link", "show"], message)
    fake.on(
        ["stat", "-f", "-c", "%t %n", "--", "/run/netns", "/run/netns/a"],
        stdout="1021994 /run/netns\n1021994 /run/netns/a\n",
    )


def test_up_removes_a_dangling_entry_of_its_name_then_makes_the_namespace() -> None:
    fake = FakeRunner()
    dangling_a(fake)
    net = small(fake)
    steps = net.missing_steps()
    assert steps[0].description.startswith("remove the dangling /run/netns entry a")
    assert steps[0].do == (_netns_del("a"),)
    assert steps[1].description == "create namespace a"
    fake.clear()
    net.up()
    assert writes(fake)[:2] == [["ip", "netns", "del", "a"], ["ip", "netns", "add", "a"]]


def test_down_and_cleanup_all_remove_a_dangling_entry_cleanup_name_says_so() -> None:
    fake = FakeRunner()
    dangling_a(fake)
    fake.fail(["ip", "-n", "a", "-j", "link", "show", "dev", "lo"], "Invalid argument\n")
    teardown = small(fake).down()
    assert writes(fake) == [["ip", "netns", "del", "a"]]
    assert teardown.removed == ("dangling /run/netns entry a (no namespace mounted there)",)
    fake.clear()
    named = cleanup("t1", fake)
    assert writes(fake) == [] and named.removed == ()
    assert "dangling /run/netns entry a" in named.left[0] and "cleanup --all --yes" in named.left[0]
    fake.clear()
    cleanup(None, fake)
    assert writes(fake) == [["ip", "netns", "del", "a"]]


def test_a_namespace_that_cannot_be_read_but_is_mounted_is_not_taken_for_dangling() -> None:
    fake = FakeRunner()
    dangling_a(fake)
    fake.on(
        ["stat", "-f", "-c", "%t %n", "--", "/run/netns", "/run/netns/a"],
        stdout="1021994 /run/netns\n6e736673 /run/netns/a\n",
    )
    with pytest.raises(Exception, match="Invalid argument"):
        small(fake).up()
    assert writes(fake) == []


# --- cleanup NAME and --all ---------------------------------------------------------------------


def two_networks(fake: FakeRunner) -> None:
    """t1 (namespace a) and other (namespace o) up; a foreign namespace f; rules of both."""
    fake.on(
        ["ip", "-j", "netns", "list"],
        stdout=json.dumps([{"name": "a", "id": 0}, {"name": "o", "id": 1}, {"name": "f"}]),
    )
    og = group_for("other")
    place(
        fake,
        links=[
            LO,
            host_link("br-t1"),
            host_link("veth-a", nsid=0),
            host_link("br-o", mark="netnskit:other", group=og),
            host_link("veth-o", mark="netnskit:other", group=og, nsid=1),
        ],
    )
    place(fake, "a", links=[marked_lo("netnskit:t1")])
    place(fake, "o", links=[marked_lo("netnskit:other")])
    place(fake, "f", links=[LO])
    fake.on(
        ["iptables-save"],
        stdout="*nat\n:NETNSKIT-POSTROUTING - [0:0]\n"
        '-A NETNSKIT-POSTROUTING -s 10.9.0.0/24 ! -o br-t1 -m comment --comment "netnskit:t1" -j MASQUERADE\n'
        '-A NETNSKIT-POSTROUTING -s 10.8.0.0/24 ! -o br-o -m comment --comment "netnskit:other" -j MASQUERADE\n'
        "COMMIT\n",
    )
    fake.fail(["ip6tables-save"], "no IPv6 here\n")


def test_cleanup_name_removes_only_that_networks_marks() -> None:
    fake = FakeRunner()
    two_networks(fake)
    teardown = cleanup("t1", fake)
    assert written(fake) == [
        (
            ["iptables-restore", "-w", "10", "--noflush"],
            "*nat\n-D NETNSKIT-POSTROUTING -s 10.9.0.0/24 ! -o br-t1 -m comment --comment netnskit:t1 -j MASQUERADE\n"
            "COMMIT\n",
        ),
        (["ip", "link", "del", "group", str(G)], None),
        (["ip", "netns", "del", "a"], None),
    ]
    assert teardown.removed == ("namespace a", f"links of group {G} (br-t1, veth-a)", "1 firewall rules (IPv4)")
    # o is behind another network's link: not even read
    assert ["ip", "-n", "o", "-j", "link", "show", "dev", "lo"] not in fake.argvs


def test_cleanup_all_dry_lists_every_networks_marks_and_changes_nothing() -> None:
    fake = FakeRunner()
    two_networks(fake)
    listed = cleanup(None, fake, dry_run=True)
    assert writes(fake) == []
    assert listed.removed == (
        "namespace a",
        "namespace o",
        f"links of group {group_for('other')} (br-o, veth-o)",
        f"links of group {G} (br-t1, veth-a)",
        "sweep netnskit's shared firewall state (IPv4)",
        "2 firewall rules (IPv4)",
    )
    cleanup(None, fake)
    assert ["ip", "netns", "del", "o"] in writes(fake) and ["ip", "netns", "del", "f"] not in writes(fake)


def test_cleanup_wants_a_network_name_not_a_runner() -> None:
    with pytest.raises(ValidationError):
        cleanup(FakeRunner())  # type: ignore[arg-type]


def test_a_renamed_host_end_is_made_again_with_what_its_peer_had() -> None:
    # a's veth was veth-a <-> eth0; the file now names the host end va: deleting veth-a takes eth0
    # along, so eth0's steps (up, address, route) are to do again, not taken for done
    fake = FakeRunner()
    fake.on(["ip", "-j", "netns", "list"], stdout=json.dumps([{"name": "a", "id": 0}]))
    veth = {**host_link("veth-a", nsid=0), "link_index": 2}
    place(
        fake,
        links=[LO, host_link("br-t1"), veth],
        addrs=[{"ifname": "br-t1", "addr_info": [{"family": "inet", "local": "10.9.0.1", "prefixlen": 24}]}],
        netconf=[{"interface": "br-t1", "forwarding": True}],
    )
    place(
        fake,
        "a",
        links=[marked_lo("netnskit:t1"), {"ifindex": 2, "ifname": "eth0", "flags": ["UP"]}],
        addrs=[{"ifname": "eth0", "addr_info": [{"family": "inet", "local": "10.9.0.2", "prefixlen": 24}]}],
        routes=[{"dst": "default", "gateway": "10.9.0.1", "dev": "eth0"}],
    )
    fake.on(["iptables-save"], stdout=SAVED_BRIDGE_ONLY)
    net = small(fake, namespaces=[{"name": "a", "host_ifname": "va"}])
    assert [s.description for s in net.missing_steps()] == [
        "remove link veth-a (marked netnskit:t1, no longer in the description)",
        "connect namespace a to br-t1 (va <-> eth0)",
        "mark va as netnskit:t1 and bring it up (no IPv6 link-local address)",
        "bring up eth0 in a (no IPv6 link-local address)",
        "address a's eth0 as 10.9.0.2/24",
        "route default via 10.9.0.1 in a",
    ]


def test_a_rule_is_the_same_rule_in_iptables_saves_order_and_address_form() -> None:
    from netnskit.firewall import Rule
    from netnskit.firewall.rules import _rule_key

    ours = Rule(4, "raw", "NETNSKIT-PREROUTING", ["-i", "br0", "-s", "127.0.0.0/8", "-j", "DROP"])
    saved = Rule(4, "raw", "NETNSKIT-PREROUTING", ["-s", "127.0.0.0/8", "-i", "br0", "-j", "DROP"])
    assert _rule_key(ours) == _rule_key(saved)
    host = Rule(4, "nat", "X", ["-d", "10.0.0.1", "-p", "tcp", "-j", "ACCEPT"])
    assert _rule_key(host) == _rule_key(Rule(4, "nat", "X", ["-p", "tcp", "-d", "10.0.0.1/32", "-j", "ACCEPT"]))
    # what differs stays different: the value of an option, its negation, the chain, the family
    assert _rule_key(ours) != _rule_key(
        Rule(4, "raw", "NETNSKIT-PREROUTING", ["-i", "br0", "-d", "127.0.0.0/8", "-j", "DROP"])
    )
    assert _rule_key(ours) != _rule_key(
        Rule(4, "raw", "NETNSKIT-PREROUTING", ["!", "-i", "br0", "-s", "127.0.0.0/8", "-j", "DROP"])
    )
    assert _rule_key(ours) != _rule_key(
        Rule(6, "raw", "NETNSKIT-PREROUTING", ["-i", "br0", "-s", "127.0.0.0/8", "-j", "DROP"])
    )

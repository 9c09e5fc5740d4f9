"""A network beside other managers (FakeRunner): forwards bound to an address, refusals before any change,
uplinks, and forwarding kept on where something else needs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netnskit.errors import ConfigError, ConflictError, ValidationError
from netnskit.firewall import SysctlRecord, SysctlRecords
from netnskit.network import ForwardSpec, Network
from netnskit.network.firewall import _firewall_plan
from netnskit.testing import FakeRunner

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed.toml"
READLINK = ["readlink", "/proc/self/ns/net"]


def small(runner: FakeRunner, **kw: object) -> Network:
    fields: dict[str, object] = {
        "name": "t1",
        "bridge": "br-t1",
        "subnet": "10.9.0.0/24",
        "gateway": "10.9.0.1",
        "namespaces": ["a", "b"],
        "port_forwards": [ForwardSpec(8080, "a", 80)],
    }
    fields.update(kw)
    return Network(**fields, runner=runner)  # type: ignore[arg-type]


def empty_host(fake: FakeRunner, *, routes: list[dict[str, object]] | None = None, rules: str = "") -> FakeRunner:
    """A host with only lo (and ``routes`` in its main table, ``rules`` as its iptables-save)."""
    fake.on(["ip", "-j", "netns", "list"], stdout="")
    lists = [[{"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP"]}], [], routes or [], []]
    fake.on(["ip", "-4", "-j", "-batch", "-"], stdout="\n".join(json.dumps(x) for x in lists) + "\n")
    fake.on(["iptables-save"], stdout=rules)
    return fake


def writes(fake: FakeRunner) -> list[list[str]]:
    reads = ("iptables-save", "readlink", "grep", "sha256sum")  # reads of the rules, the place, the hosts files
    read_prefixes = (["nft", "list"], ["sysctl", "-n"])
    return [a for a in fake.argvs if "-j" not in a and a[0] not in reads and a[:2] not in read_prefixes]


# --- host_address ---------------------------------------------------------------------------


def test_a_forward_bound_to_a_host_address_from_toml(tmp_path: Path) -> None:
    text = SEED.read_text().replace("[[port_forward]]\n", '[[port_forward]]\nhost_address = "192.168.1.2"\n')
    path = tmp_path / "bound.toml"
    path.write_text(text)
    net = Network.from_toml(path, runner=FakeRunner())
    assert str(net.port_forwards[0].host_address) == "192.168.1.2"
    (fwd,) = net.forward_rules()
    assert str(fwd.host_address) == "192.168.1.2" and fwd.bridge == "v-net-0" and str(fwd.subnet) == "192.168.15.0/24"
    assert fwd.rules()[0].spec[:2] == ("-d", "192.168.1.2/32")


def test_a_bad_host_address_in_toml_names_its_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(SEED.read_text().replace("[[port_forward]]\n", '[[port_forward]]\nhost_address = "224.0.0.9"\n'))
    with pytest.raises(ConfigError, match=r"port_forward\[0\]\.host_address = '224.0.0.9': host address"):
        Network.from_toml(path)


def test_one_port_may_be_forwarded_on_two_host_addresses_but_not_twice_on_one() -> None:
    two = [ForwardSpec(80, "a", host_address="192.168.1.2"), ForwardSpec(80, "b", host_address="192.168.1.9")]
    assert len(small(FakeRunner(), port_forwards=two).forward_rules()) == 2
    for second in (ForwardSpec(80, "b", host_address="192.168.1.2"), ForwardSpec(80, "b")):
        with pytest.raises(ValidationError, match="overlaps"):
            small(FakeRunner(), port_forwards=[two[0], second])


@pytest.mark.parametrize("subnet", ["127.9.0.0/24", "0.0.0.0/24", "224.0.1.0/24", "0.0.0.0/0"])
def test_a_subnet_in_a_special_range_is_refused_before_any_command(subnet: str) -> None:
    fake = FakeRunner(strict=True)
    base = subnet.split("/")[0].rsplit(".", 1)[0]
    with pytest.raises(ValidationError, match=rf"subnet '{subnet}': must not overlap 127.0.0.0/8"):
        small(fake, subnet=subnet, gateway=f"{base}.1", port_forwards=[])
    assert fake.argvs == []


# --- refusals before any change -------------------------------------------------------------

DOCKER_NAT = """\
*nat
:PREROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
COMMIT
"""
OTHER_NETWORK = """\
*nat
:NETNSKIT-PREROUTING - [0:0]
-A NETNSKIT-PREROUTING -p tcp -m tcp --dport 8000:8100 -m comment --comment "netnskit:other" -j DNAT \
--to-destination 10.8.0.2:8000-8100/8000
COMMIT
"""


def test_up_refuses_a_port_docker_publishes_naming_the_rule_and_changes_nothing() -> None:
    fake = empty_host(FakeRunner(), rules=DOCKER_NAT)
    with pytest.raises(ConflictError) as info:
        small(fake).up()
    assert str(info.value) == (
        "host port 8080/tcp of network 't1' is already forwarded by a foreign rule: -t nat -A DOCKER ! -i docker0 "
        "-p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80; refusing to bring it up"
    )
    assert writes(fake) == []


def test_up_refuses_a_port_another_network_forwards_naming_it() -> None:
    fake = empty_host(FakeRunner(), rules=OTHER_NETWORK)
    with pytest.raises(ConflictError, match=r"already forwarded by network 'other': -t nat -A NETNSKIT-PREROUTING"):
        small(fake).up()
    assert writes(fake) == []


def test_a_forward_on_another_address_than_the_foreign_one_is_no_conflict() -> None:
    rules = DOCKER_NAT.replace("! -i docker0", "-d 10.0.0.5/32 ! -i docker0")
    fake = empty_host(FakeRunner(), rules=rules)
    small(fake, port_forwards=[ForwardSpec(8080, "a", 80, host_address="10.0.0.6")]).up()
    assert any(a[0] == "iptables-restore" for a in writes(fake))


def test_up_refuses_a_subnet_a_route_sends_elsewhere() -> None:
    route = {"dst": "10.9.0.0/16", "gateway": "192.168.1.1", "dev": "eth0", "protocol": "static"}
    fake = empty_host(FakeRunner(), routes=[route])
    with pytest.raises(ConflictError) as info:
        small(fake).up()
    assert str(info.value) == (
        "subnet 10.9.0.0/24 of network 't1' is routed elsewhere by the route 10.9.0.0/16 via 192.168.1.1 dev eth0 "
        "(not ours); refusing to bring it up"
    )
    assert writes(fake) == []


def test_a_blackhole_inside_the_subnet_is_a_conflict_and_a_default_route_is_not() -> None:
    fake = empty_host(FakeRunner(), routes=[{"dst": "default", "gateway": "192.168.1.1", "dev": "eth0"}])
    small(fake, port_forwards=[]).up()  # the default route sends everything elsewhere: not a conflict
    fake = empty_host(FakeRunner(), routes=[{"type": "blackhole", "dst": "10.9.0.64/26"}])
    with pytest.raises(ConflictError, match=r"routed elsewhere by the route blackhole 10.9.0.64/26 \(not ours\)"):
        small(fake, port_forwards=[]).up()


def test_status_reports_a_conflict_that_came_after_up_and_is_not_up() -> None:
    fake = empty_host(FakeRunner(), rules=DOCKER_NAT)
    status = small(fake).status()
    assert not status.up
    assert status.conflicts == (
        "host port 8080/tcp of network 't1' is already forwarded by a foreign rule: -t nat -A DOCKER ! -i docker0 "
        "-p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80",
    )


# --- where the masquerade goes --------------------------------------------------------------


def test_the_pure_plan_lets_the_subnet_out_by_the_networks_own_links_only() -> None:
    net = Network.from_toml(SEED, runner=FakeRunner(strict=True))
    assert net.nat_rule().uplinks == ("v-lan",)
    text = net.plan()[-3].do[0].input or ""
    egress = [line for line in text.splitlines() if "-i v-net-0 -o" in line and "-s 192.168.15.0/24" in line]
    assert egress == [
        "-A NETNSKIT-FORWARD -s 192.168.15.0/24 -i v-net-0 -o v-lan -m comment --comment netnskit:seed -j ACCEPT"
    ]


def test_up_lets_the_subnet_out_by_the_hosts_gateways_too_and_not_to_a_foreign_bridge() -> None:
    routes = [
        {"dst": "default", "gateway": "10.0.0.1", "dev": "eth0"},
        {"dst": "172.17.0.0/16", "dev": "docker0", "protocol": "kernel", "scope": "link"},
    ]
    fake = FakeRunner().on(["ip", "-4", "-j", "route", "show"], stdout=json.dumps(routes))
    net = Network.from_toml(SEED, runner=fake)
    steps, _ = _firewall_plan(net, live=True)
    text = steps[0].do[0].input or ""
    outs = [line.split(" -o ")[1].split()[0] for line in text.splitlines() if "-s 192.168.15.0/24 -i v-net-0" in line]
    assert outs == ["v-lan", "eth0"]


# --- forwarding, put back or left on ----------------------------------------------------------

DOCKER_LEFT = """\
*nat
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
COMMIT
*filter
:FORWARD DROP [0:0]
:NETNSKIT-FORWARD - [0:0]
:NETNSKIT-USER - [0:0]
-A FORWARD -m comment --comment netnskit -j NETNSKIT-FORWARD
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A NETNSKIT-FORWARD -m comment --comment netnskit -j NETNSKIT-USER
-A NETNSKIT-FORWARD -i br-t1 -o br-t1 -m comment --comment "netnskit:t1" -j ACCEPT
COMMIT
"""


def test_down_leaves_forwarding_on_under_docker_and_says_why() -> None:
    fake = empty_host(FakeRunner(), rules=DOCKER_LEFT)
    fake.on(READLINK, stdout="net:[4026532001]\n")
    SysctlRecords(fake).remember([SysctlRecord("net.ipv4.ip_forward", "0", "1")])
    fake.on(["sysctl", "-n", "net.ipv4.ip_forward"], stdout="1\n")
    bridge = {"ifname": "docker0", "addr_info": [{"family": "inet", "local": "172.17.0.1", "prefixlen": 16}]}
    fake.on(["ip", "-d", "-4", "-j", "-batch", "-"], stdout=f"[]\n{json.dumps([bridge])}\n[]\n")
    teardown = small(fake, port_forwards=[]).down()
    assert not any(a[:2] == ["sysctl", "-w"] for a in fake.argvs)
    assert teardown.left == (
        "net.ipv4.ip_forward left at 1 (it was 0 before netnskit): needed by bridge docker0 (172.17.0.1/16), "
        "foreign nat rule '-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE', "
        "foreign FORWARD rule '-A FORWARD -i docker0 ! -o docker0 -j ACCEPT'",
    )
    assert SysctlRecords(fake).load() == {}  # no longer netnskit's to put back


RHEL_LEFT = """\
*filter
:FORWARD ACCEPT [0:0]
:NETNSKIT-FORWARD - [0:0]
:NETNSKIT-USER - [0:0]
-A FORWARD -m comment --comment netnskit -j NETNSKIT-FORWARD
-A FORWARD -j REJECT --reject-with icmp-host-prohibited
-A NETNSKIT-FORWARD -m comment --comment netnskit -j NETNSKIT-USER
-A NETNSKIT-FORWARD -i br-t1 -o br-t1 -m comment --comment "netnskit:t1" -j ACCEPT
COMMIT
"""


def test_down_puts_forwarding_back_where_the_foreign_rules_need_none() -> None:
    # RHEL's final REJECT is a policy, not a manager routing: forwarding goes back to 0
    fake = empty_host(FakeRunner(), rules=RHEL_LEFT)
    fake.on(READLINK, stdout="net:[4026532001]\n")
    SysctlRecords(fake).remember([SysctlRecord("net.ipv4.ip_forward", "0", "1")])
    fake.on(["sysctl", "-n", "net.ipv4.ip_forward"], stdout="1\n")
    teardown = small(fake, port_forwards=[]).down()
    assert ["sysctl", "-w", "net.ipv4.ip_forward=0"] in fake.argvs
    assert teardown.left == ()
    assert "sweep netnskit's shared firewall state (IPv4): put back net.ipv4.ip_forward=0" in teardown.removed
    assert SysctlRecords(fake).load() == {}

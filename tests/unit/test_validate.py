"""The input rules: good values pass (canonical form), bad ones raise ValidationError naming value and rule."""

from __future__ import annotations

import ipaddress

import pytest

from netnskit import _validate as v
from netnskit.errors import ValidationError, shown


def rejected(checker, value) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        checker(value)
    err = info.value
    assert err.value is value or err.value == value, "the error carries the value itself"
    assert shown(value) in str(err), "the message names the value (cut when long, with its length)"
    assert err.rule and err.rule in str(err), "the message states the rule"
    return err


# --- interface names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("good", ["e", "eth0", "veth-red", "br_0", "eth0.100", "x" * 15, "0", "_x", "A-b.c_d"])
def test_ifname_good(good):
    assert v.ifname(good) == good


@pytest.mark.parametrize(
    ("bad", "rule_words"),
    [
        ("", "empty"),
        ("x" * 16, "at most 15"),
        ("a/b", "letters, digits"),
        ("a b", "letters, digits"),
        ("a\tb", "letters, digits"),
        ("eth0\n", "letters, digits"),
        (" eth0", "letters, digits"),
        ("a:b", "letters, digits"),
        ("eth0:1", "letters, digits"),
        ("-n", "start with '-'"),
        ("--help", "start with '-'"),
        (".", "'.' or '..'"),
        ("..", "'.' or '..'"),
        (".hidden", "starting with a letter"),
        ("a\x00b", "letters, digits"),
        ("\u0435th0", "letters, digits"),  # Cyrillic 'е' that looks like 'e'
        ("eth\uff10", "letters, digits"),  # fullwidth digit zero
        ("caf\u00e9", "letters, digits"),
        ("a;b", "letters, digits"),
        ("$(x)", "letters, digits"),
    ],
)
def test_ifname_bad(bad, rule_words):
    err = rejected(v.ifname, bad)
    assert err.what == "interface name"
    assert rule_words in err.rule


@pytest.mark.parametrize("bad", [None, 5, b"eth0", ["eth0"]])
def test_ifname_not_a_string(bad):
    err = rejected(v.ifname, bad)
    assert err.rule == "must be a string"


def test_ifname_length_rule_names_the_length():
    err = rejected(v.ifname, "abcdefghijklmnop")
    assert err.rule == "must be at most 15 characters, not 16"


# --- namespace names --------------------------------------------------------------------------------


@pytest.mark.parametrize("good", ["red", "blue", "ns-1", "a.b", "x" * 255, "_"])
def test_netns_name_good(good):
    assert v.netns_name(good) == good


@pytest.mark.parametrize("bad", ["", "a/b", "/", ".", "..", "-x", "red blue", "a\x00", "x" * 256, "r\u0435d", "a:b"])
def test_netns_name_bad(bad):
    err = rejected(v.netns_name, bad)
    assert err.what == "namespace name"


def test_optional_netns():
    assert v.optional_netns(None) is None
    assert v.optional_netns("red") == "red"
    rejected(v.optional_netns, "../etc")


# --- addresses -----------------------------------------------------------------------------------------


def test_ip_interface_good():
    assert v.ip_interface("192.168.15.1/24") == ipaddress.IPv4Interface("192.168.15.1/24")
    assert v.ip_interface("fd00::1/64") == ipaddress.IPv6Interface("fd00::1/64")
    iface = ipaddress.IPv4Interface("10.0.0.1/8")
    assert v.ip_interface(iface) is iface


@pytest.mark.parametrize(
    "bad",
    [
        "192.168.15.1",
        "192.168.15.1/33",
        "192.168.15.256/24",
        "fd00::1/129",
        "red/24",
        "",
        " 10.0.0.1/8",
        "10.0.0.1/8 ",
        "10.0.0.1/8\n",
        "\uff11\uff10.0.0.1/8",
        None,
        10,
        ipaddress.IPv4Address("10.0.0.1"),
    ],
)
def test_ip_interface_bad(bad):
    err = rejected(v.ip_interface, bad)
    assert err.what == "address"


def test_ip_interface_without_prefix_says_so():
    assert "prefix length" in rejected(v.ip_interface, "192.168.15.1").rule


def test_ip_network_good():
    assert v.ip_network("192.168.15.0/24") == ipaddress.IPv4Network("192.168.15.0/24")
    assert v.ip_network("0.0.0.0/0") == ipaddress.IPv4Network("0.0.0.0/0")
    assert v.ip_network("fd00::/64") == ipaddress.IPv6Network("fd00::/64")


@pytest.mark.parametrize("bad", ["192.168.15.1/24", "192.168.15.0", "10.0.0.0/33", "default", "", 5, "10.0.0.0/8;"])
def test_ip_network_bad(bad):
    err = rejected(v.ip_network, bad)
    assert err.what == "subnet"


def test_ip_network_with_host_bits_says_so():
    assert "no host bits" in rejected(v.ip_network, "192.168.15.1/24").rule


def test_ip_address_good():
    assert v.ip_address("192.168.15.2") == ipaddress.IPv4Address("192.168.15.2")
    assert v.ip_address("::1") == ipaddress.IPv6Address("::1")


@pytest.mark.parametrize(
    "bad", ["192.168.15.2/24", "300.1.1.1", "host.example", "", " 1.2.3.4", "1.2.3.4\x00", 3232235778]
)
def test_ip_address_bad(bad):
    err = rejected(v.ip_address, bad)
    assert err.what == "address"


def test_route_to():
    assert v.route_to("default") == "default"
    assert v.route_to("10.0.0.0/24") == ipaddress.IPv4Network("10.0.0.0/24")
    rejected(v.route_to, "Default")
    rejected(v.route_to, "10.0.0.1/24")


# --- ports --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("good", [1, 22, 8080, 65535])
def test_port_good(good):
    assert v.port(good) == good


@pytest.mark.parametrize("bad", [0, 65536, -1, True, False, "80", 80.0, None])
def test_port_bad(bad):
    err = rejected(v.port, bad)
    assert err.what == "port"


def test_port_rules():
    assert rejected(v.port, 0).rule == "must be from 1 to 65535"
    assert rejected(v.port, True).rule == "must be an integer from 1 to 65535"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (80, (80, 80)),
        ("80", (80, 80)),
        ((8000, 8010), (8000, 8010)),
        ([1, 2], (1, 2)),
        ("8000-8010", (8000, 8010)),
        ((9, 9), (9, 9)),
    ],
)
def test_port_range_good(value, expected):
    assert v.port_range(value) == expected


@pytest.mark.parametrize(
    "bad",
    ["8010-8000", (8010, 8000), (1, 2, 3), "a-b", "-5", "0-10", (0, 10), (1, 65536), "", True, (True, 5), "80 ", None],
)
def test_port_range_bad(bad):
    with pytest.raises(ValidationError) as info:
        v.port_range(bad)
    assert info.value.what in ("port", "port range")
    assert info.value.rule in str(info.value)


# --- link groups ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("good", [1, 2, 65536, 2**31 - 1, 2**32 - 2, 2**32 - 1])
def test_link_group_good(good):
    assert v.link_group(good) == v.optional_link_group(good) == good


@pytest.mark.parametrize("bad", [0, -1, 2**32, 2**64, True, False, "5", 5.0, None])
def test_link_group_bad(bad):
    err = rejected(v.link_group, bad)
    assert err.what == "link group"
    assert err.rule == "must be an integer from 1 to 4294967295 (0 is the default group every link is in)"


def test_optional_link_group():
    assert v.optional_link_group(None) is None
    rejected(v.optional_link_group, 0)


@pytest.mark.parametrize("group", [0, 1, 2**32 - 1, 2**32])
def test_objects_and_networks_take_the_same_link_groups(group):
    """One checker, one range: a bridge, a veth pair and a network accept and refuse the same groups."""
    from netnskit import Bridge, Network, VethPair

    makers = [
        lambda: Bridge("br0", group=group),
        lambda: VethPair("v0", "v1", group=group),
        lambda: Network(name="n", bridge="br0", subnet="10.0.0.0/24", gateway="10.0.0.1", group=group),
    ]
    for make in makers:
        if 1 <= group <= 2**32 - 1:
            assert make().group == group
        else:
            with pytest.raises(ValidationError, match="link group"):
                make()


# --- protocols -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("good", ["tcp", "udp"])
def test_protocol_good(good):
    assert v.protocol(good) == good


@pytest.mark.parametrize("bad", ["TCP", "icmp", "", "tcp ", None, 6, "sctp"])
def test_protocol_bad(bad):
    err = rejected(v.protocol, bad)
    assert err.rule == "must be 'tcp' or 'udp'"


def test_check_wraps_a_checker_as_an_attrs_validator():
    validator = v.check(v.port)
    validator(None, None, 80)
    with pytest.raises(ValidationError):
        validator(None, None, 0)

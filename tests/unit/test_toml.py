"""Network.from_toml: strict loading; every error names the file, the key and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from netnskit.errors import ValidationError
from netnskit.network import ConfigError, Network
from netnskit.testing import FakeRunner

GOOD = """\
[network]
name = "t"
bridge = "br-t"
subnet = "10.7.0.0/24"
gateway = "10.7.0.1"
masquerade = true

[[namespace]]
name = "a"

[[namespace]]
name = "b"
address = "10.7.0.9"
routes = [{ to = "10.50.0.0/16", via = "10.7.0.1" }]

[[port_forward]]
host_port = "8000-8001"
netns = "b"
port = "9000-9001"
protocol = "udp"
"""


def load(tmp_path: Path, text: str) -> Network:
    path = tmp_path / "net.toml"
    path.write_text(text)
    return Network.from_toml(path, runner=FakeRunner(strict=True))


def test_a_good_file_loads(tmp_path: Path) -> None:
    net = load(tmp_path, GOOD)
    assert net.name == "t" and net.masquerade
    assert {k: str(v) for k, v in net.addresses().items()} == {"a": "10.7.0.2/24", "b": "10.7.0.9/24"}
    assert net.namespaces[1].routes[0].spec() == ["10.50.0.0/16", "via", "10.7.0.1"]
    fwd = net.port_forwards[0]
    assert (fwd.host_port, fwd.port, fwd.protocol) == ((8000, 8001), (9000, 9001), "udp")


@pytest.mark.parametrize(
    ("old", "new", "key", "reason"),
    [
        # unknown keys
        ("masquerade = true", 'masquerade = true\ncolour = "red"', "network.colour", "unknown key"),
        ('name = "a"', 'name = "a"\nadress = "10.7.0.3"', "namespace[0].adress", "unknown key"),
        ("[network]", "[netwrk]\nx = 1\n[network]", "netwrk", "unknown key"),
        ('via = "10.7.0.1" }', 'via = "10.7.0.1", metric = 5 }', "namespace[1].routes[0].metric", "unknown key"),
        # missing fields
        ('subnet = "10.7.0.0/24"\n', "", "network.subnet", "missing required key"),
        ('netns = "b"\nport', "port", "port_forward[0].netns", "missing required key"),
        # wrong types
        ("masquerade = true", 'masquerade = "yes"', "network.masquerade", "must be true or false"),
        ('address = "10.7.0.9"', "address = 9", "namespace[1].address", "must be a string"),
        ('name = "t"', "name = 7", "network.name", "must be a string"),
        # bad values
        ('address = "10.7.0.9"', 'address = "10.7.0.300"', "namespace[1].address", "must be an IPv4 or IPv6 address"),
        ('address = "10.7.0.9"', 'address = "10.8.0.9"', "namespace[1].address", "must be a host address in"),
        ('gateway = "10.7.0.1"', 'gateway = "10.9.0.1"', "network.gateway", "inside the subnet"),
        ('subnet = "10.7.0.0/24"', 'subnet = "10.7.0.1/24"', "network.subnet", "host bits"),
        ('port = "9000-9001"', "port = 0", "port_forward[0].port", "from 1 to 65535"),
        ('port = "9000-9001"', "port = 9000", "port_forward[0].port", "must be as wide as the host port range"),
        ('host_port = "8000-8001"', "host_port = 65536", "port_forward[0].host_port", "from 1 to 65535"),
        ('protocol = "udp"', 'protocol = "icmp"', "port_forward[0].protocol", "must be 'tcp' or 'udp'"),
        ('name = "a"', 'name = "a/../b"', "namespace[0].name", "use letters, digits"),
        ('bridge = "br-t"', 'bridge = "br-much-too-long"', "network.bridge", "at most 15 characters"),
        ('name = "b"', 'name = "a"', "namespace[1].name", "namespace name: is used twice"),
    ],
)
def test_bad_files_name_file_key_and_reason(tmp_path: Path, old: str, new: str, key: str, reason: str) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError) as info:
        load(tmp_path, GOOD.replace(old, new, 1))
    text = str(info.value)
    assert text.startswith(f"{tmp_path / 'net.toml'}: {key}"), text
    assert reason in text
    assert isinstance(info.value, ValidationError)


def test_a_namespace_address_may_carry_the_subnets_prefix(tmp_path: Path) -> None:
    net = load(tmp_path, GOOD.replace('address = "10.7.0.9"', 'address = "10.7.0.9/24"'))
    assert {k: str(v) for k, v in net.addresses().items()} == {"a": "10.7.0.2/24", "b": "10.7.0.9/24"}
    assert net.plan() == load(tmp_path, GOOD).plan()


def test_syntax_error_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"net\.toml: syntax: not valid TOML \(.*line 2"):
        load(tmp_path, "[network]\nname = \n")


def test_missing_network_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"net\.toml: network: missing required table \[network\]"):
        load(tmp_path, '[[namespace]]\nname = "a"\n')


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: file: cannot read it \(No such file or directory\)"):
        Network.from_toml(tmp_path / "nope.toml")


def test_from_dict_is_the_same_strict_path() -> None:
    with pytest.raises(ConfigError, match=r"<dict>: network\.gateway: missing required key"):
        Network.from_dict({"network": {"name": "x", "bridge": "b", "subnet": "10.0.0.0/24"}})


def test_a_table_where_an_array_of_tables_belongs() -> None:
    data = {"network": {"name": "x", "bridge": "b", "subnet": "10.0.0.0/24", "gateway": "10.0.0.1"}, "namespace": 3}
    with pytest.raises(ConfigError, match=r"<dict>: namespace = 3: must be an array of tables \(\[\[namespace\]\]\)"):
        Network.from_dict(data)


SEED = Path(__file__).resolve().parents[2] / "examples" / "seed.toml"


@pytest.mark.parametrize(
    ("old", "new", "key", "reason"),
    [
        ("forwarding = true", "forwarding = 1", "extra_namespace[0].forwarding", "must be true or false"),
        ('peer_netns = "lan"', 'peer_netns = "lan"\nmtus = 9000', "link[0].mtus", "unknown key"),
        ('peer_netns = "lan"', 'peer_netns = "lan"\nmtu = "9000"', "link[0].mtu", "must be an integer"),
        ('peer_netns = "lan"', 'peer_netns = "lan"\nmtu = 40', "link[0].mtu", "MTU: must be an integer from 68"),
        ('peer = "eth0"\npeer_netns = "lan"', 'peer_netns = "lan"', "link[0].peer", "missing required key"),
        ('peer_address = "192.168.1.3/24"', 'peer_address = "192.168.1.3"', "link[0].peer_address", "prefix"),
        (
            'address = "192.168.1.2/24"',
            'address = "192.168.1.2"',
            "link[0].address = '192.168.1.2'",
            "link address: must be ADDRESS/PREFIX with its prefix length, like 192.168.1.2/24",
        ),
        (
            'address = "192.168.15.2"',
            'address = "192.168.15.2/16"',
            "namespace[1].address = '192.168.15.2/16'",
            "of namespace 'blue' must carry the subnet's prefix /24 or none",
        ),
        ('to = "203.0.113.0/24"', 'to = "203.0.113.0/33"', "route[0].to", "subnet"),
        ('via = "192.168.1.3"', 'via = "10.1.1.1"', "route[0].via", "not on a subnet connected to the host"),
        ('netns = "internet"\nto', 'netns = "nowhere"\nto', "route[1].netns", "is not a namespace"),
        ('name = "wan"\nnetns = "lan"', 'name = "wan"\nnetns = "lan "', "link[1].netns", "letters"),
    ],
)
def test_bad_seed_variants(tmp_path: Path, old: str, new: str, key: str, reason: str) -> None:
    text = SEED.read_text()
    assert old in text
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text.replace(old, new, 1))
    assert str(info.value).startswith(f"{tmp_path / 'net.toml'}: {key}"), str(info.value)
    assert reason in str(info.value)

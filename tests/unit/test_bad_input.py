"""The bad-input corpus: every entry is rejected with a ValidationError naming the value, before any command.

The corpus is data (:data:`NETWORK_CORPUS`, :data:`OBJECT_CORPUS`). Each Network entry changes one
place of a valid description (:data:`BASE`) and is tried twice: as a Python mapping
(``Network.from_dict``) and as a real TOML file written from it (``Network.from_toml``). The
runner is a strict FakeRunner: it raises on any command, and the test asserts it saw none.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _reliability import record

from netnskit import Bridge, Link, Namespace, NatRule, PortForward, Route, SshRunner, VethPair
from netnskit.errors import ValidationError, shown
from netnskit.network import Network
from netnskit.testing import FakeRunner

# A valid description using every kind of table; each corpus entry breaks one place of it.
BASE: dict[str, Any] = {
    "network": {
        "name": "seed",
        "bridge": "v-net-0",
        "subnet": "192.168.15.0/24",
        "gateway": "192.168.15.5",
        "masquerade": True,
    },
    "namespace": [
        {"name": "red", "address": "192.168.15.1"},
        {"name": "blue", "address": "192.168.15.2", "routes": [{"to": "10.50.0.0/16", "via": "192.168.15.5"}]},
    ],
    "extra_namespace": [{"name": "lan", "forwarding": True}],
    "link": [
        {
            "name": "v-lan",
            "address": "192.168.1.2/24",
            "peer": "eth0",
            "peer_netns": "lan",
            "peer_address": "192.168.1.3/24",
        }
    ],
    "route": [{"to": "203.0.113.0/24", "via": "192.168.1.3"}],
    "port_forward": [{"host_port": 80, "netns": "blue", "port": 80, "protocol": "tcp"}],
}

DELETE = object()  # the corpus value that removes the key

# Strings that must never be a name: too long, empty, path parts, blanks, control characters,
# look-alikes (Cyrillic, fullwidth, zero-width), option-like, shell code.
BAD_NETNS_NAMES = [
    "",
    "x" * 256,
    "/",
    "a/b",
    "../etc",
    ".",
    "..",
    "red blue",
    " red",
    "red\n",
    "red\nblue",
    "re\x00d",
    "red\t",
    "red\r",
    "r\u0435d",  # Cyrillic 'е'
    "bl\u0430e",  # Cyrillic 'а'
    "\uff52\uff45\uff44",  # fullwidth 'red'
    "\u200bred",  # zero-width space
    "r\u00e9d",
    "-red",
    "--help",
    "red;reboot",
    "$(reboot)",
    "`id`",
    "red|cat",
    "red&",
    "a:b",
    "*",
]
BAD_IFNAMES = [
    "",
    "x" * 16,
    "v/net",
    "..",
    ".",
    ".v",
    "v net",
    "v\nnet",
    "v\x00net",
    "v-n\u0435t-0",  # Cyrillic 'е'
    "\uff56-net-0",  # fullwidth 'v'
    "-v-net-0",
    "--help",
    "v:0",
    "v@0",
    "$(id)",
    "v;id",
    # words `ip link` reads as keywords, not names (found live, see test_injection.py)
    "up",
    "help",
    "h",
    "type",
    "dev",
    "master",
    "group",
    "name",
    "nomaster",
]
BAD_ADDRESSES = [
    "",
    "192.168.15.256",
    "192.168.15",
    "192.168.015.1",
    "192.168.15.1/24",
    "192.168.15.1 ",
    "\uff11\uff19\uff12.168.15.1",  # fullwidth digits
    "fd00::1",
    "localhost",
    "-1",
]
BAD_NS_PREFIXES = ["192.168.15.1/16", "192.168.15.1/25", "192.168.15.1/32", "192.168.15.1/33", "192.168.15.1/"]
BAD_SUBNETS = [
    "192.168.15.1/24",  # host bits set
    "192.168.15.0/33",
    "192.168.15.0/-1",
    "192.168.15.0",
    "fd00::/64",
    "192.168.15.0/24\n",
    "",
    "any",
]
BAD_PORTS: list[object] = [0, 65536, -1, 99999, "0", "65536", "80-70", "80-", "-80", "http", 80.5, True, "8o"]
BAD_PROTOCOLS = ["icmp", "TCP", "tcp ", "", "sctp", "all", "udp\n", "tcp;id"]


def _entries() -> list[tuple[str, tuple[Any, ...], object, object]]:
    """(label, path, value, named): set ``path`` in BASE to ``value``; the error must name ``named``."""
    out: list[tuple[str, tuple[Any, ...], object, object]] = []

    def add(label: str, path: tuple[Any, ...], value: object, named: object = None) -> None:
        out.append((label, path, value, value if named is None else named))

    for bad in BAD_NETNS_NAMES:
        add("network name", ("network", "name"), bad)
        add("namespace name", ("namespace", 0, "name"), bad)
        add("extra namespace name", ("extra_namespace", 0, "name"), bad)
        add("link peer namespace", ("link", 0, "peer_netns"), bad)
        add("forward namespace", ("port_forward", 0, "netns"), bad)
        add("route namespace", ("route", 0, "netns"), bad)
    for bad in BAD_IFNAMES:
        add("bridge", ("network", "bridge"), bad)
        add("namespace ifname", ("namespace", 0, "ifname"), bad)
        add("namespace host_ifname", ("namespace", 1, "host_ifname"), bad)
        add("link name", ("link", 0, "name"), bad)
        add("link peer", ("link", 0, "peer"), bad)
        add("route dev", ("route", 0, "dev"), bad)
    for bad in BAD_ADDRESSES:
        add("gateway", ("network", "gateway"), bad)
        add("route via", ("route", 0, "via"), bad)
    # a namespace's address may carry a prefix: the subnet's only
    for bad in [*(a for a in BAD_ADDRESSES if a != "192.168.15.1/24"), *BAD_NS_PREFIXES]:
        add("namespace address", ("namespace", 0, "address"), bad)
    for bad in BAD_SUBNETS:
        add("subnet", ("network", "subnet"), bad)
        add("route to", ("route", 0, "to"), bad)
    for bad in ["192.168.1.2", "192.168.1.2/33", "192.168.1.2/", "fd00::2/64", "192.168.1.0/24", "192.168.1.255/24"]:
        add("link address", ("link", 0, "address"), bad)
        add("link peer address", ("link", 0, "peer_address"), bad)
    for bad in BAD_PORTS:
        add("host port", ("port_forward", 0, "host_port"), bad)
        add("forwarded port", ("port_forward", 0, "port"), bad)
    for bad in BAD_PROTOCOLS:
        add("protocol", ("port_forward", 0, "protocol"), bad)
    # relations between values
    add("gateway outside the subnet", ("network", "gateway"), "10.0.0.1")
    add("gateway is the network address", ("network", "gateway"), "192.168.15.0")
    add("gateway is the broadcast address", ("network", "gateway"), "192.168.15.255")
    add("namespace address outside the subnet", ("namespace", 0, "address"), "192.168.16.1")
    add("namespace address is the broadcast", ("namespace", 0, "address"), "192.168.15.255")
    add("duplicate namespace address", ("namespace", 0, "address"), "192.168.15.2")
    add("namespace address is the gateway", ("namespace", 0, "address"), "192.168.15.5")
    add("link address is the gateway", ("link", 0, "address"), "192.168.15.5/24")
    add("duplicate link address", ("link", 0, "peer_address"), "192.168.1.2/24")
    add("host link subnet overlaps the bridge subnet", ("link", 0, "address"), "192.168.15.200/24")
    add("host link subnet inside the bridge subnet", ("link", 0, "address"), "192.168.15.129/25")
    add("route gateway on no connected subnet", ("route", 0, "via"), "10.9.9.9")
    add("namespace route gateway outside", ("namespace", 1, "routes", 0, "via"), "10.9.9.9")
    add("second default route", ("namespace", 1, "routes", 0, "to"), "default")
    add("duplicate namespace", ("namespace", 1, "name"), "red")
    add("extra namespace clashes", ("extra_namespace", 0, "name"), "blue")
    add("duplicate host interface", ("link", 0, "name"), "v-net-0")
    add("duplicate host interface (veth)", ("namespace", 1, "host_ifname"), "veth-red")
    add("namespace of unknown link end", ("link", 0, "peer_netns"), "nowhere")
    add("route in an unknown namespace", ("route", 0, "netns"), "nowhere")
    add("forward to an unknown namespace", ("port_forward", 0, "netns"), "lan")
    add("forward ranges of different width", ("port_forward", 0, "port"), "80-81", (80, 81))
    add("overlapping forwards", ("port_forward", 1), {"host_port": "79-81", "netns": "red"}, (79, 81))
    add("namespace name too long for its veth", ("namespace", 0, "name"), "redredredred")
    # ranges no subnet may touch (the gateway and addresses are checked after)
    for bad in ["127.0.0.0/8", "127.1.0.0/16", "0.0.0.0/8", "0.0.0.0/0", "96.0.0.0/3", "224.0.0.0/4", "239.1.2.0/24"]:
        add("subnet in a special range", ("network", "subnet"), bad)
    for bad in ["127.0.0.2/8", "127.5.5.5/30", "224.0.0.2/24", "0.1.2.3/16"]:
        add("link address in a special range", ("link", 0, "address"), bad)
        add("link peer address in a special range", ("link", 0, "peer_address"), bad)
    for bad in ["224.0.0.1", "0.0.0.0", "255.255.255.255", "fd00::1", "192.168.1.2/24", "host", ""]:
        add("forward host address", ("port_forward", 0, "host_address"), bad)
    add(
        "two forwards of one port on one address",
        ("port_forward", 1),
        {"host_port": 80, "netns": "red", "host_address": "192.168.1.2"},
        (80, 80),
    )
    add("a second network overlapping the first", ("link", 1), _overlapping_link(), "192.168.15.65/26")
    # TOML with wrong types
    add("masquerade as a string", ("network", "masquerade"), "yes")
    add("masquerade as an integer", ("network", "masquerade"), 1)
    add("group as a string", ("network", "group"), "5")
    add("group as a boolean", ("network", "group"), True)
    add("group zero", ("network", "group"), 0)
    add("group too big", ("network", "group"), 2**32)
    add("name as an integer", ("network", "name"), 5)
    add("name as a list", ("network", "name"), ["seed"])
    add("address as an integer", ("namespace", 0, "address"), 3232239361)
    add("address as a float", ("namespace", 0, "address"), 192.168)
    add("default_route as a string", ("namespace", 0, "default_route"), "true")
    add("forwarding as a string", ("extra_namespace", 0, "forwarding"), "no")
    add("routes as a string", ("namespace", 1, "routes"), "10.50.0.0/16")
    add("a route as a string", ("namespace", 1, "routes", 0), "10.50.0.0/16")
    add("namespaces as a string", ("namespace",), "red")
    add("a namespace as a string", ("namespace", 0), "red")
    add("network as a list", ("network",), ["seed"])
    add("network as a string", ("network",), "seed")
    add("port forwards as a table", ("port_forward",), {"host_port": 80})
    add("unknown top-level key", ("networks",), {"name": "x"}, "networks")
    add("unknown network key", ("network", "colour"), "red", "colour")
    add("misspelt namespace key", ("namespace", 0, "adress"), "192.168.15.9", "adress")
    add("missing network name", ("network", "name"), DELETE, "name")
    add("missing subnet", ("network", "subnet"), DELETE, "subnet")
    add("missing link peer", ("link", 0, "peer"), DELETE, "peer")
    add("missing forward namespace", ("port_forward", 0, "netns"), DELETE, "netns")
    add("missing [network]", ("network",), DELETE, "network")
    return out


def _overlapping_link() -> dict[str, Any]:
    return {
        "name": "v-other",
        "address": "192.168.15.65/26",
        "peer": "eth1",
        "peer_netns": "lan",
        "peer_address": "192.168.15.66/26",
    }


NETWORK_CORPUS = _entries()


def _mutated(path: tuple[Any, ...], value: object) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    where: Any = data
    for key in path[:-1]:
        where = where[key]
    last = path[-1]
    if value is DELETE:
        del where[last]
    elif isinstance(where, list) and last == len(where):
        where.append(copy.deepcopy(value))
    else:
        where[last] = copy.deepcopy(value)
    return data


# --- a TOML writer for the corpus (tomllib only reads) -------------------------------------


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # JSON's escapes are TOML's (\n, \t, \", \\, \uXXXX); the corpus has no character beyond U+FFFF
        assert all(ord(c) <= 0xFFFF for c in value)
        return json.dumps(value, ensure_ascii=True)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def to_toml(data: dict[str, Any]) -> str:
    """The mapping as a TOML document: scalars first, then tables, then arrays of tables."""
    lines: list[str] = []
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    arrays = {k: v for k, v in data.items() if isinstance(v, list) and v and all(isinstance(i, dict) for i in v)}
    for key, value in data.items():
        if key not in tables and key not in arrays:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, table in tables.items():
        lines += ["", f"[{_toml_key(key)}]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    for key, items in arrays.items():
        for item in items:
            lines += ["", f"[[{_toml_key(key)}]]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


# --- the tests ------------------------------------------------------------------------------


def test_the_base_description_is_valid_and_would_run_commands(tmp_path: Path) -> None:
    """The control: without the corpus's change, loading works and up() runs commands."""
    fake = FakeRunner()
    net = Network.from_dict(copy.deepcopy(BASE), runner=fake)
    assert fake.argvs == []
    net.up()
    assert len(fake.argvs) > 20
    path = tmp_path / "base.toml"
    path.write_text(to_toml(BASE))
    assert Network.from_toml(path, runner=FakeRunner(strict=True)) == net


def test_the_toml_writer_round_trips_the_corpus() -> None:
    import tomllib

    for _, path, value, _ in NETWORK_CORPUS:
        data = _mutated(path, value)
        assert tomllib.loads(to_toml(data)) == data


def _assert_rejected(make: Callable[[FakeRunner], object], named: object) -> ValidationError:
    fake = FakeRunner(strict=True)
    with pytest.raises(ValidationError) as info:
        make(fake)
    assert fake.argvs == [], "a command ran before the value was rejected"
    text = str(info.value)
    wanted = named if isinstance(named, str) and named in ("name", "subnet", "peer", "netns") else None
    if wanted is not None:
        assert re.search(rf"\b{wanted}\b", text), f"{text!r} does not name the missing key {wanted!r}"
    else:
        # a long value is shown cut, with its length (errors.shown)
        assert shown(named) in text or (isinstance(named, str) and named in text), (
            f"{text!r} does not name the value {named!r}"
        )
    return info.value


@pytest.mark.parametrize(
    ("label", "path", "value", "named"),
    NETWORK_CORPUS,
    ids=[f"{i}-{label}" for i, (label, *_rest) in enumerate(NETWORK_CORPUS)],
)
def test_network_corpus_entry_is_rejected_before_any_command(
    label: str, path: tuple[Any, ...], value: object, named: object, tmp_path: Path
) -> None:
    data = _mutated(path, value)
    _assert_rejected(lambda fake: Network.from_dict(data, runner=fake), named)
    toml = tmp_path / "bad.toml"
    toml.write_text(to_toml(data))
    err = _assert_rejected(lambda fake: Network.from_toml(toml, runner=fake), named)
    assert str(toml) in str(err), "a TOML error names the file"


# Python objects built directly: (label, factory taking the runner, the value the error names)
OBJECT_CORPUS: list[tuple[str, Callable[[FakeRunner], object], object]] = [
    *[(f"Namespace {n!r}", lambda f, n=n: Namespace(n, runner=f).create(), n) for n in BAD_NETNS_NAMES],
    *[(f"Link {n!r}", lambda f, n=n: Link(n, runner=f).up(), n) for n in BAD_IFNAMES],
    *[(f"Bridge {n!r}", lambda f, n=n: Bridge(n, runner=f).create(), n) for n in BAD_IFNAMES],
    *[(f"VethPair peer {n!r}", lambda f, n=n: VethPair("veth-a", n, runner=f).create(), n) for n in BAD_IFNAMES],
    *[
        (f"VethPair peer netns {n!r}", lambda f, n=n: VethPair("veth-a", "eth0", peer_netns=n, runner=f).create(), n)
        for n in BAD_NETNS_NAMES
    ],
    *[
        (f"Link address {a!r}", lambda f, a=a: Link("eth0", runner=f).add_address(a), a)
        for a in BAD_ADDRESSES
        if a != "192.168.15.1/24"  # an interface address carries a prefix
    ],
    *[
        (f"Route via {a!r}", lambda f, a=a: Route("default", via=a, runner=f).add(), a)
        for a in BAD_ADDRESSES
        if a != "fd00::1"  # a route may be IPv6
    ],
    *[
        (f"NatRule subnet {s!r}", lambda f, s=s: NatRule(s, runner=f).apply(), s)
        for s in BAD_SUBNETS
        if s != "fd00::/64"
    ],
    *[
        (f"PortForward port {p!r}", lambda f, p=p: PortForward(p, "192.168.15.2", runner=f).apply(), p)
        for p in BAD_PORTS
    ],
    *[
        (f"PortForward protocol {p!r}", lambda f, p=p: PortForward(80, "192.168.15.2", 80, p, runner=f).apply(), p)
        for p in BAD_PROTOCOLS
    ],
    *[
        (f"SshRunner host {h!r}", lambda f, h=h: SshRunner(h, inner=f).run(["true"]), h)
        for h in ["", "-oProxyCommand=id", "host name", "host\nid", "\thost"]
    ],
]


@pytest.mark.parametrize(
    ("label", "make", "named"), OBJECT_CORPUS, ids=[f"{i}-{c[0]}" for i, c in enumerate(OBJECT_CORPUS)]
)
def test_object_corpus_entry_is_rejected_before_any_command(
    label: str, make: Callable[[FakeRunner], object], named: object
) -> None:
    _assert_rejected(make, named)


def test_corpus_size_is_recorded() -> None:
    """Each network entry is tried twice (mapping and TOML file); objects once."""
    size = 2 * len(NETWORK_CORPUS) + len(OBJECT_CORPUS)
    assert size > 500
    record("bad_inputs", size, network_entries=len(NETWORK_CORPUS), object_entries=len(OBJECT_CORPUS))

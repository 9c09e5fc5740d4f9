"""Things outside us change, live: objects of ours removed by someone else, objects with our names not ours.

Between ``up`` and ``down`` someone deletes a namespace, links, a firewall rule of ours: ``down``
still finishes, says what was already gone, and leaves the host as before. A link or namespace
that carries one of our names but was not made by us: ``up`` refuses to adopt it with a clear
error before changing anything, and ``down`` leaves it alone.
"""

from __future__ import annotations

import json

import pytest
from _reliability import SEED, Snapshot, record, settled_diff

from netnskit.errors import NetnskitError
from netnskit.network import Network
from netnskit.sandbox import Sandbox


def seed(box: Sandbox) -> Network:
    return Network.from_toml(SEED, runner=box.runner)


def netns(box: Sandbox) -> list[str]:
    out = box.run(["ip", "-j", "netns", "list"]).check().stdout.strip()
    return sorted(d["name"] for d in json.loads(out)) if out else []


def links(box: Sandbox) -> dict[str, dict[str, object]]:
    return {d["ifname"]: d for d in json.loads(box.run(["ip", "-d", "-j", "link", "show"]).check().stdout)}


# (what someone else removes, the commands they run, what down must report as already gone)
REMOVALS = [
    ("a namespace on the bridge", [["ip", "netns", "del", "blue"]], ["namespace blue"]),
    ("an extra namespace", [["ip", "netns", "del", "internet"]], ["namespace internet"]),
    ("a veth host end", [["ip", "link", "del", "veth-red"]], ["link veth-red"]),
    ("the bridge", [["ip", "link", "del", "v-net-0"]], ["link v-net-0"]),
    (
        "a namespace and the link to another",
        [["ip", "netns", "del", "lan"], ["ip", "link", "del", "veth-gray"]],
        ["namespace lan", "link veth-gray"],
    ),
    ("every namespace", [["ip", "netns", "del", n] for n in ("red", "blue", "orange", "gray", "lan", "internet")], []),
    ("the firewall rules", [["iptables", "-t", "nat", "-F", "NETNSKIT-POSTROUTING"]], []),
]


@pytest.mark.parametrize(("what", "commands", "gone"), REMOVALS, ids=[r[0] for r in REMOVALS])
def test_down_finishes_when_someone_removed_part_of_the_network(
    sandbox: Sandbox, what: str, commands: list[list[str]], gone: list[str]
) -> None:
    before = Snapshot.capture(sandbox.runner)
    seed(sandbox).up()
    for argv in commands:
        sandbox.run(argv).check(f"someone else removing {what}")
    teardown = seed(sandbox).down()
    for item in gone:
        assert item in teardown.already_gone, (item, teardown)
    assert teardown.left == ()
    diff = settled_diff(sandbox.runner, before)
    assert diff == []
    again = seed(sandbox).down()
    assert again.removed == () and settled_diff(sandbox.runner, before) == []
    record("outside_changes", 1, kind="removed by someone else")
    record("leftovers", len(diff), check=f"outside removal: {what}")


def test_down_reports_everything_gone_after_a_full_outside_teardown(sandbox: Sandbox) -> None:
    seed(sandbox).up()
    for name in netns(sandbox):
        sandbox.run(["ip", "netns", "del", name]).check()
    sandbox.run(["ip", "link", "del", "v-net-0"]).check()
    teardown = seed(sandbox).down()
    for item in ("namespace red", "namespace internet", "link v-net-0"):
        assert item in teardown.already_gone, teardown
    # veth ends go with their namespace, which the kernel frees a moment later: down either saw
    # them gone, or found them gone when deleting them; either way it says so
    for name in ("veth-red", "v-lan"):
        assert any(name in entry for entry in teardown.already_gone), (name, teardown)
    assert teardown.left == ()


# (our name, the foreign object someone made, how to make it)
FOREIGN = [
    ("v-net-0", "a bridge", [["ip", "link", "add", "name", "v-net-0", "type", "bridge"]]),
    ("veth-red", "a veth pair", [["ip", "link", "add", "name", "veth-red", "type", "veth", "peer", "name", "x0"]]),
    (
        "v-lan",
        "a bridge with another alias",
        [["ip", "link", "add", "name", "v-lan", "type", "bridge"], ["ip", "link", "set", "v-lan", "alias", "mine"]],
    ),
    (
        "v-net-0",
        "a bridge marked by another network",
        [
            ["ip", "link", "add", "name", "v-net-0", "type", "bridge"],
            ["ip", "link", "set", "v-net-0", "alias", "netnskit:other"],
        ],
    ),
    ("red", "a namespace in use", [["ip", "netns", "add", "red"], ["ip", "-n", "red", "link", "set", "lo", "up"]]),
]


@pytest.mark.parametrize(("name", "what", "commands"), FOREIGN, ids=[f[1] for f in FOREIGN])
def test_up_refuses_to_adopt_an_object_with_our_name_and_down_leaves_it(
    sandbox: Sandbox, name: str, what: str, commands: list[list[str]]
) -> None:
    for argv in commands:
        sandbox.run(argv).check(f"someone else making {what}")
    before = Snapshot.capture(sandbox.runner)
    with pytest.raises(NetnskitError) as info:
        seed(sandbox).up()
    message = str(info.value)
    assert repr(name) in message and "refusing to adopt" in message, message
    assert settled_diff(sandbox.runner, before) == [], "up changed something before refusing"
    teardown = seed(sandbox).down()
    assert settled_diff(sandbox.runner, before) == [], (teardown, "down removed what is not ours")
    assert name in links(sandbox) or name in netns(sandbox)
    record("outside_changes", 1, kind="foreign object with our name")


def test_up_refuses_a_network_whose_subnet_overlaps_another_networks(sandbox: Sandbox) -> None:
    """Two networks with overlapping subnets on one host: the second is refused before any change."""
    first = Network.from_dict(
        {
            "network": {"name": "one", "bridge": "br-one", "subnet": "10.77.0.0/24", "gateway": "10.77.0.1"},
            "namespace": [{"name": "one-a"}],
        },
        runner=sandbox.runner,
    )
    second = Network.from_dict(
        {
            "network": {"name": "two", "bridge": "br-two", "subnet": "10.77.0.128/25", "gateway": "10.77.0.129"},
            "namespace": [{"name": "two-a"}],
        },
        runner=sandbox.runner,
    )
    empty = Snapshot.capture(sandbox.runner)
    first.up()
    before = Snapshot.capture(sandbox.runner)
    with pytest.raises(NetnskitError) as info:
        second.up()
    assert "10.77.0.128/25" in str(info.value) and "overlaps" in str(info.value), str(info.value)
    assert settled_diff(sandbox.runner, before) == []
    assert first.missing_steps() == []
    first.down()
    assert settled_diff(sandbox.runner, empty) == []
    record("outside_changes", 1, kind="overlapping network")

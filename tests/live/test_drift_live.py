"""Edited files and cleanup's scope, live in a sandbox (issue 13, findings 2 and 3).

The seed network is brought up from its file; then the file is edited (a namespace, a link and its
namespace, the port forward taken out; or the network renamed) and ``up``, ``status``, ``down``
and ``cleanup`` are run on the edited file. What the kernel then holds is read independently
(``ip -j``, ``iptables-save``, ``sysctl``) and the host compared with before.
"""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from _reliability import SEED, Snapshot, settled_diff

from netnskit.cli import main
from netnskit.errors import NotOursError
from netnskit.executors import BatchExecutor, Executor, SerialExecutor
from netnskit.network import Network, Owned, cleanup
from netnskit.runner import Result, Runner
from netnskit.sandbox import Sandbox

EXECUTORS = [pytest.param(SerialExecutor, id="serial"), pytest.param(BatchExecutor, id="batch")]
SEED_DATA = tomllib.loads(SEED.read_text())


def edited() -> dict[str, Any]:
    """The seed without gray, without the internet stand-in (its link and route) and without the forward."""
    data = copy.deepcopy(SEED_DATA)
    data["namespace"] = [n for n in data["namespace"] if n["name"] != "gray"]
    data["extra_namespace"] = [n for n in data["extra_namespace"] if n["name"] != "internet"]
    data["link"] = [link for link in data["link"] if link["name"] != "wan"]
    data["route"] = [r for r in data["route"] if r.get("netns") != "internet"]
    del data["port_forward"]
    return data


def ipj(box: Sandbox, *args: str) -> list[dict[str, Any]]:
    out = box.run(["ip", "-j", *args]).check().stdout.strip()
    return json.loads(out) if out else []


def namespaces(box: Sandbox) -> list[str]:
    return sorted(d["name"] for d in ipj(box, "netns", "list"))


def links(box: Sandbox) -> list[str]:
    return sorted(d["ifname"] for d in ipj(box, "link", "show"))


def seed_rules(box: Sandbox) -> list[str]:
    text = box.run(["iptables-save"]).check().stdout
    return [line for line in text.splitlines() if "netnskit:seed" in line]


def sysctl(box: Sandbox, name: str) -> str:
    return box.run(["sysctl", "-n", name]).check().stdout.strip()


class Writes:
    """Passes every command on and records those that are not reads."""

    def __init__(self, inner: Runner) -> None:
        self.inner = inner
        self.writes: list[list[str]] = []

    def run(
        self, argv: list[str], *, input: str | None = None, timeout: float | None = None, netns: str | None = None
    ) -> Result:
        words = " ".join(argv)
        reads = (" -j ", "iptables-save", "ip6tables-save", "sysctl -n", "readlink", "stat -f", " -C ", "modinfo")
        # the files under /etc/netns (first lines, digests), the processes' pid files, marks and sockets
        reads += ("grep ", "find ", "sha256sum ", "ss -H ")
        # the nftables tables netnskit's networks own (cleanup looks for them: nft list, never a change)
        reads += ("nft list ", "nft -j list ", "nft --version")
        # the netem probe runs in a throwaway namespace of its own (unshare --net): it changes nothing here
        if not any(w in words for w in reads) and list(argv[:2]) != ["unshare", "--net"]:
            self.writes.append(list(argv))
        return self.inner.run(argv, input=input, timeout=timeout, netns=netns)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_up_of_an_edited_file_removes_the_namespaces_link_and_forward_it_lost(
    sandbox: Sandbox, executor: type[Executor]
) -> None:
    before = Snapshot.capture(sandbox.runner)
    Network.from_dict(SEED_DATA, directory=str(SEED.parent), runner=sandbox.runner).up(executor())
    assert sysctl(sandbox, "net.ipv4.conf.v-net-0.route_localnet") == "1"
    net = Network.from_dict(edited(), directory=str(SEED.parent), runner=sandbox.runner)

    status = net.status()
    assert not status.up
    kinds = [(o.kind, o.name) for o in status.extra if o.kind != "rule"]
    assert sorted(kinds) == [("link", "veth-gray"), ("namespace", "gray"), ("namespace", "internet")]
    assert len([o for o in status.extra if o.kind == "rule"]) == 8  # the forward's: DNAT, hairpin, guards, accepts
    assert tuple(m.step for m in status.missing[:3]) == (
        "remove link veth-gray (marked netnskit:seed, no longer in the description)",
        "remove namespace gray (marked netnskit:seed, no longer in the description)",
        "remove namespace internet (marked netnskit:seed, no longer in the description)",
    )
    assert [s.description for s in net.missing_steps()] == [m.step for m in status.missing]

    net.up(executor())
    # read back: gone are gray, internet (and wan with it), veth-gray, every rule of the forward
    assert namespaces(sandbox) == ["blue", "lan", "orange", "red"]
    assert "veth-gray" not in links(sandbox)
    assert [d["ifname"] for d in ipj(sandbox, "-n", "lan", "link", "show")] == ["lo", "eth0"]
    rules = seed_rules(sandbox)
    # the masquerade and its accepts (the bridge's own traffic, out by the uplink, replies); no forward's
    assert len(rules) == 4 and sum("MASQUERADE" in r for r in rules) == 1
    assert not any("DNAT" in r or "127.0.0.0/8" in r for r in rules)
    assert sysctl(sandbox, "net.ipv4.conf.v-net-0.route_localnet") == "0"  # put back: no forward needs it
    assert sysctl(sandbox, "net.ipv4.ip_forward") == "1"  # the masquerade still does
    after = net.status()
    assert after.up and after.extra == () and after.missing == ()

    again = Writes(sandbox.runner)
    Network.from_dict(edited(), directory=str(SEED.parent), runner=again).up(executor())
    assert again.writes == []  # nothing left to reconcile

    net.down(executor())
    assert settled_diff(sandbox.runner, before) == []


def test_down_of_an_edited_file_removes_everything_marked_with_its_name(sandbox: Sandbox) -> None:
    before = Snapshot.capture(sandbox.runner)
    Network.from_dict(SEED_DATA, directory=str(SEED.parent), runner=sandbox.runner).up()
    teardown = Network.from_dict(edited(), directory=str(SEED.parent), runner=sandbox.runner).down()
    assert {"namespace gray", "namespace internet"} <= set(teardown.removed)
    assert teardown.left == ()
    assert namespaces(sandbox) == []
    assert settled_diff(sandbox.runner, before) == []


def test_a_renamed_network_is_another_network_and_the_old_one_is_named(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = Snapshot.capture(sandbox.runner)
    Network.from_dict(SEED_DATA, directory=str(SEED.parent), runner=sandbox.runner).up()
    renamed = copy.deepcopy(SEED_DATA)
    renamed["network"]["name"] = "walk2"
    path = tmp_path / "walk2.toml"
    path.write_text(
        SEED.read_text().replace('name = "seed"', 'name = "walk2"', 1),
    )
    assert Network.from_toml(path) == Network.from_dict(renamed)

    with pytest.raises(NotOursError) as info:
        Network.from_dict(renamed, directory=str(SEED.parent), runner=sandbox.runner).up()
    assert "belongs to network 'seed'" in str(info.value)
    assert "`netnskit cleanup seed`" in str(info.value)

    assert main(["down", str(path)], runner=sandbox.runner) == 0
    out, err = capsys.readouterr()
    assert "left alone: namespace red (marked netnskit:seed: it belongs to network 'seed', not 'walk2'" in out
    assert "`netnskit cleanup seed` removes them" in err
    assert (
        Network.from_dict(SEED_DATA, directory=str(SEED.parent), runner=sandbox.runner).status().up
    )  # down of walk2 took nothing of seed

    assert main(["cleanup", "seed"], runner=sandbox.runner) == 0
    assert capsys.readouterr().out.endswith("network seed's leftovers removed\n")
    assert settled_diff(sandbox.runner, before) == []


def other_network(runner: Runner) -> Network:
    return Network(
        name="other",
        bridge="br-other",
        subnet="10.77.0.0/24",
        gateway="10.77.0.1",
        namespaces=["o1", "o2"],
        masquerade=True,
        port_forwards=[{"host_port": 8080, "netns": "o1", "port": 80}],
        runner=runner,
    )


def test_cleanup_name_removes_that_network_only_and_cleanup_all_lists_first(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    # someone else's namespace, which no cleanup touches
    sandbox.run(["ip", "netns", "add", "theirs"]).check()
    before = Snapshot.capture(sandbox.runner)
    seed = Network.from_dict(SEED_DATA, directory=str(SEED.parent), runner=sandbox.runner).up()
    other = other_network(sandbox.runner).up()

    teardown = cleanup("other", sandbox.runner)
    assert "namespace o1" in teardown.removed and "namespace red" not in teardown.removed
    assert seed.status().up  # the other network is untouched ...
    assert not [line for line in sandbox.run(["iptables-save"]).stdout.splitlines() if "netnskit:other" in line]
    assert namespaces(sandbox) == ["blue", "gray", "internet", "lan", "orange", "red", "theirs"]
    assert other.status().missing  # ... and this one is gone

    other.up()
    watching = Writes(sandbox.runner)
    assert main(["cleanup", "--all"], runner=watching) == 0  # lists, removes nothing
    out = capsys.readouterr().out
    assert "would remove: namespace o1" in out and "would remove: namespace red" in out
    assert "nothing removed: add --yes to remove them" in out
    assert "theirs" not in out
    assert watching.writes == []
    assert namespaces(sandbox) == ["blue", "gray", "internet", "lan", "o1", "o2", "orange", "red", "theirs"]

    assert main(["cleanup", "--all", "--yes"], runner=sandbox.runner) == 0
    assert "removed: namespace o1" in capsys.readouterr().out
    assert settled_diff(sandbox.runner, before) == []
    assert namespaces(sandbox) == ["theirs"]


def test_status_of_an_edited_file_as_json_lists_what_is_extra(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Network.from_dict(SEED_DATA, directory=str(SEED.parent), runner=sandbox.runner).up()
    path = tmp_path / "edited.toml"
    path.write_text(SEED.read_text().replace('[[namespace]]\nname = "gray"\naddress = "192.168.15.4"\n', ""))
    assert Network.from_toml(path).namespace_names() == ["red", "blue", "orange", "lan", "internet"]
    assert main(["status", "--json", str(path)], runner=sandbox.runner) == 3
    data = json.loads(capsys.readouterr().out)
    assert {"kind": "namespace", "name": "gray"} in data["extra"]
    assert {"kind": "link", "name": "veth-gray"} in data["extra"]
    assert Owned("namespace", "gray") in Network.from_toml(path, runner=sandbox.runner).status().extra
    Network.from_dict(SEED_DATA, directory=str(SEED.parent), runner=sandbox.runner).down()


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_renamed_host_end_is_remade_with_its_peers_address_and_route(
    sandbox: Sandbox, executor: type[Executor]
) -> None:
    before = Snapshot.capture(sandbox.runner)
    Network.from_dict(SEED_DATA, directory=str(SEED.parent), runner=sandbox.runner).up(executor())
    data = copy.deepcopy(SEED_DATA)
    data["namespace"][0]["host_ifname"] = "v-red"  # red's veth was veth-red
    net = Network.from_dict(data, directory=str(SEED.parent), runner=sandbox.runner)
    net.up(executor())
    assert "veth-red" not in links(sandbox)
    (red,) = ipj(sandbox, "-n", "red", "-4", "addr", "show", "dev", "eth0")
    assert [a["local"] for a in red["addr_info"]] == ["192.168.15.1"]
    assert [r.get("gateway") for r in ipj(sandbox, "-n", "red", "route", "show", "default")] == ["192.168.15.5"]
    assert ipj(sandbox, "link", "show", "v-red")[0]["master"] == "v-net-0"
    # and it works: red reaches the gateway (until one reply, 5 s at most)
    ping = sandbox.runner.run(["ping", "-c", "1", "-i", "0.2", "-w", "5", "192.168.15.5"], netns="red")
    assert ping.ok, ping.stdout + ping.stderr
    assert net.status().up
    net.down(executor())
    assert settled_diff(sandbox.runner, before) == []

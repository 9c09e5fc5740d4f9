"""Properties of plans for random valid topologies (hypothesis; derandomized, so CI sees the same cases).

- a plan never creates the same interface name twice in one place (host or namespace);
- the rendered script, *run* by bash with every command recorded, runs exactly the plan's argv and
  stdin; each plain command line also splits back (shlex) to its argv;
- the description survives a round trip through a TOML file;
- ``up`` on an empty host runs the plan's commands in order, and its failure at any command
  rolls back exactly the commands done, in reverse.

The live properties (each step's undo reverses it, up then down restores the host) are in
``tests/live/test_reliability_properties_live.py``.
"""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path
from typing import Any

from _reliability import expected_calls, run_script, topologies
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bad_input import to_toml

from netnskit.errors import StepError
from netnskit.network import Network
from netnskit.testing import FakeRunner, recorded

SETTINGS = settings(
    max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def created_interfaces(net: Network) -> list[tuple[str | None, str]]:
    """(place, ifname) of every interface the plan's ``ip link add`` commands make."""
    out: list[tuple[str | None, str]] = []
    for step in net.plan():
        for command in step.do:
            argv = command.host_argv()
            where: str | None = None
            if argv[:2] == ["ip", "-n"]:
                where, argv = argv[2], ["ip", *argv[3:]]
            if argv[1:3] != ["link", "add"]:
                continue
            name = argv[4] if argv[3] == "name" else argv[3]
            here = argv[argv.index("netns") + 1] if "netns" in argv[: argv.index("type")] else where
            out.append((here, name))
            if "peer" in argv:
                rest = argv[argv.index("peer") + 1 :]
                peer = rest[1] if rest[0] == "name" else rest[0]
                there = rest[rest.index("netns") + 1] if "netns" in rest else where
                out.append((there, peer))
    return out


@SETTINGS
@given(topologies())
def test_a_plan_never_creates_an_interface_name_twice_in_one_place(data: dict[str, Any]) -> None:
    net = Network.from_dict(data, runner=FakeRunner(strict=True))
    made = created_interfaces(net)
    assert len(made) == len(set(made)), made
    # and every interface the description names is made exactly once
    expected = {(None, net.bridge)} | {(None, n.host_ifname) for n in net.namespaces}
    expected |= {(n.name, n.ifname) for n in net.namespaces}
    for link in net.links:
        expected |= {(link.netns, link.name), (link.peer_netns, link.peer)}
    assert set(made) == expected


@SETTINGS
@given(topologies())
def test_the_rendered_script_runs_exactly_the_plan(data: dict[str, Any]) -> None:
    net = Network.from_dict(data, runner=FakeRunner(strict=True))
    steps = net.plan()
    with tempfile.TemporaryDirectory() as tmp:
        assert run_script(net.render_script(), Path(tmp)) == expected_calls(steps)
    lines = net.render_script().splitlines()
    for step in steps:
        for command in step.do:
            if command.input is None:
                line = shlex.join(command.host_argv())
                assert line in lines and shlex.split(line) == command.host_argv()


@SETTINGS
@given(topologies())
def test_the_description_survives_a_toml_file(data: dict[str, Any]) -> None:
    net = Network.from_dict(data, runner=FakeRunner(strict=True))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.toml"
        path.write_text(to_toml(data))
        again = Network.from_toml(path, runner=FakeRunner(strict=True))
    assert again == net
    assert again.plan() == net.plan()


def clean_host() -> FakeRunner:
    """A FakeRunner answering like an empty host: no links, rules or routes; sysctls 0."""
    return FakeRunner().on("sysctl -n *", stdout="0\n")


def writes(fake: FakeRunner) -> list[list[str]]:
    """The commands that change something (the rest are the reads of up)."""
    reads = ("readlink", "-save")
    return [
        a
        for a in fake.argvs
        if "-j" not in a
        and not a[0].endswith(reads)
        and a[:2] not in (["sysctl", "-n"], ["nft", "list"])
        and a[0] not in ("grep", "find", "sha256sum")
    ]


@SETTINGS
@given(topology=topologies(), data=st.data())
def test_up_runs_the_plan_and_a_failure_anywhere_rolls_back_exactly_what_ran(
    topology: dict[str, Any], data: Any
) -> None:
    plan_argvs = [recorded(c) for step in Network.from_dict(topology).plan() for c in step.do]
    fake = clean_host()
    Network.from_dict(topology, runner=fake).up()
    assert writes(fake) == plan_argvs
    k = data.draw(st.integers(0, len(plan_argvs) - 1), label="failing command")
    failing = clean_host().fail(plan_argvs[k], "RTNETLINK answers: Operation not permitted\n", times=1)
    net = Network.from_dict(topology, runner=failing)
    try:
        net.up()
    except StepError as exc:
        assert exc.rollback_errors == ()
    else:
        raise AssertionError(f"command {k} failed and up did not raise")
    done = writes(failing)
    assert done[: k + 1] == plan_argvs[: k + 1]
    undo = done[k + 1 :]
    # the undo commands are those of the steps done, in reverse
    steps = net.plan()
    flat = [(i, c) for i, s in enumerate(steps) for c in s.do]
    failed_step = flat[k][0]
    expected = [recorded(c) for s in reversed(steps[:failed_step]) for c in s.undo]
    if [recorded(c) for c in steps[failed_step].do].index(plan_argvs[k]) > 0:
        expected = [recorded(c) for c in steps[failed_step].undo] + expected
    assert undo == expected

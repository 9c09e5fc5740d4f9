"""Live properties for random valid topologies (hypothesis, derandomized, a few examples each).

- every step's undo reverses it: after each step, its undo brings the host *and every namespace*
  (links, addresses, routes, forwarding) back to what they were before the step; then the step
  is done again, and at the end the undo of all steps in reverse gives back the empty host;
- ``up`` then ``down`` (serial or batched) restores the host, and between them the kernel shows
  every step done.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs
from _reliability import Snapshot, record, settled_diff, topologies
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from netnskit.executors import BatchExecutor, SerialExecutor, undo_all
from netnskit.network import Network
from netnskit.network.firewall import _firewall_steps
from netnskit.plan import Command, Step
from netnskit.runner import Runner
from netnskit.sandbox import Sandbox


def inside(runner: Runner) -> dict[str, Any]:
    """Each namespace's links, addresses, routes and forwarding switch, read from inside."""
    out: dict[str, Any] = {}
    text = runner.run(["ip", "-j", "netns", "list"]).check().stdout.strip()
    for entry in json.loads(text) if text else []:
        name = entry["name"]
        links = json.loads(runner.run(["ip", "-n", name, "-d", "-j", "link", "show"]).check().stdout)
        addrs = json.loads(runner.run(["ip", "-n", name, "-j", "addr", "show"]).check().stdout)
        routes = runner.run(["ip", "-n", name, "-j", "route", "show", "table", "all"]).check().stdout
        forwarding = runner.run(["ip", "netns", "exec", name, "sysctl", "-n", "net.ipv4.ip_forward"]).check()
        out[name] = {
            "links": sorted(
                (d["ifname"], sorted(d.get("flags", [])), d.get("ifalias"), d.get("master"), d.get("link_type"))
                for d in links
            ),
            "addresses": sorted(
                f"{d['ifname']} {a['local']}/{a['prefixlen']}" for d in addrs for a in d.get("addr_info", ())
            ),
            "routes": sorted(json.dumps(r, sort_keys=True) for r in json.loads(routes or "[]")),
            "ip_forward": forwarding.stdout.strip(),
        }
    return out


def deep(runner: Runner) -> tuple[Snapshot, dict[str, Any]]:
    return Snapshot.capture(runner), inside(runner)


# The kernel's own reactions to a link's carrier coming and going, which no undo should (or
# could) take back: carrier flags, the "linkdown" route flag, and IPv6 link-local addresses and
# routes that appear once a link has carried traffic.
_CARRIER = re.compile(r'(, )?(\\?")(NO-CARRIER|LOWER_UP|M-DOWN|linkdown)\2')  # also inside JSON strings
_LINK_LOCAL = re.compile(r"fe80:|ff00::")


def comparable(state: tuple[Snapshot, dict[str, Any]]) -> Any:
    """The deep state without what the kernel changes by itself when carrier changes."""
    snap, spaces = state
    host = attrs.asdict(snap, recurse=True)
    text = json.dumps([host, spaces], sort_keys=True, default=str)
    data = json.loads(_CARRIER.sub("", text).replace("[, ", "["))

    def keep(item: object) -> bool:
        return not (isinstance(item, str) and _LINK_LOCAL.search(item))

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: clean(v) for k, v in node.items()}
        if isinstance(node, list):
            items = [clean(v) for v in node if keep(v)]
            return sorted(items) if all(isinstance(v, str) for v in items) else items
        return node

    return clean(data)


def run_all(commands: tuple[Command, ...], runner: Runner, what: str) -> None:
    for command in commands:
        command.run(runner).check(what)


LIVE = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each live example takes seconds
)


def test_every_steps_undo_reverses_it(sandbox: Sandbox) -> None:
    runner = sandbox.runner
    empty = deep(runner)
    steps_checked = 0

    def check_step(step: Step) -> None:
        """Do the step; undo it and compare; do it again."""
        nonlocal steps_checked
        before = deep(runner)
        run_all(step.do, runner, step.description)
        if step.undo:
            run_all(step.undo, runner, f"undoing {step.description}")
            assert comparable(deep(runner)) == comparable(before), step.description
            run_all(step.do, runner, step.description)
        steps_checked += 1

    @settings(LIVE, max_examples=3)
    @given(topologies())
    def check(data: dict[str, Any]) -> None:
        net = Network.from_dict(data, runner=runner)
        core = [step for step, _ in net._entries()]
        steps: list[Step] = []
        try:
            # the steps up() runs: the core ones, then the firewall's, planned once the core is there
            for step in core:
                check_step(step)
                steps.append(step)
            for step in _firewall_steps(net, live=True):
                check_step(step)
                steps.append(step)
        except BaseException:
            net.down()  # leave the sandbox empty for the next example (hypothesis shrinks)
            raise
        assert [s.description for s in steps] == [s.description for s in net.plan()]
        gone, failed = undo_all(steps, runner)
        assert failed == []
        final = deep(runner)
        assert final[0].diff(empty[0]) == [] and final[1] == empty[1] == {}

    check()
    record("property_steps_undone", steps_checked)


def test_up_then_down_restores_the_host(sandbox: Sandbox) -> None:
    runner = sandbox.runner
    before = Snapshot.capture(runner)
    examples = 0

    @settings(LIVE, max_examples=5)
    @given(topologies(), st.booleans())
    def check(data: dict[str, Any], batched: bool) -> None:
        nonlocal examples
        executor = BatchExecutor() if batched else SerialExecutor()
        net = Network.from_dict(data, runner=runner)
        try:
            net.up(executor)
            assert net.missing_steps() == []
        finally:
            teardown = net.down(executor)
        assert teardown.left == ()
        diff = settled_diff(runner, before)
        assert diff == []
        assert inside(runner) == {}
        examples += 1

    check()
    record("property_up_down_examples", examples)
    record("leftovers", 0, check="property up/down")

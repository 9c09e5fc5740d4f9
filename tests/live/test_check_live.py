"""Network.check, live in a sandbox: probes pass, a namespace whose link is down fails exactly its
probes with the kernel's words, a lost request is tried again, the neighbour entries the probes
added are gone afterwards, and a network that is down is said to be, with nothing probed."""

from __future__ import annotations

import json
from pathlib import Path

from netnskit.cli import main
from netnskit.executors import BatchExecutor
from netnskit.network import Network
from netnskit.sandbox import Sandbox
from netnskit.snapshot import HostState

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed.toml"
NAMES = ["ca", "cb", "cc", "cd"]


def four(sandbox: Sandbox) -> Network:
    """Four namespaces on one bridge, 10.67.0.2 to .5, no firewall."""
    return Network(
        name="chk",
        bridge="br-chk",
        subnet="10.67.0.0/24",
        gateway="10.67.0.1",
        namespaces=NAMES,
        runner=sandbox.runner,
    )


def neighbours(sandbox: Sandbox, netns: str | None) -> list[dict[str, object]]:
    """``ip -j neigh`` of a namespace (or the sandbox's host), read independently."""
    argv = ["ip", "-4", "-j", "neigh", "show"] if netns is None else ["ip", "-n", netns, "-4", "-j", "neigh", "show"]
    out = sandbox.run(argv).check().stdout.strip()
    return [d for d in json.loads(out or "[]") if d.get("dst")]


def test_probes_pass_and_the_entries_they_added_are_deleted(sandbox: Sandbox) -> None:
    before = HostState.capture(sandbox.runner)
    net = four(sandbox)
    net.up(BatchExecutor())
    progress: list[tuple[int, int]] = []
    report = net.check(progress=lambda done, total, what: progress.append((done, total)))
    assert report.ok, "\n".join(report.lines())
    # each namespace to the gateway and its next two in the ring
    assert [(p.source, p.target) for p in report.probes] == [
        (src, dst)
        for i, src in enumerate(NAMES)
        for dst in ["10.67.0.1", f"10.67.0.{(i + 1) % 4 + 2}", f"10.67.0.{(i + 2) % 4 + 2}"]
    ]
    assert progress[0] == (0, 12) and progress[-1] == (12, 12)
    assert report.neighbours is not None and report.neighbours.peak >= 12 and report.neighbours.left == 0
    # what the probes resolved was deleted again: no namespace, and not the bridge, keeps an entry
    for netns in [*NAMES, None]:
        assert neighbours(sandbox, netns) == [], netns
    net.down(BatchExecutor())
    assert HostState.capture(sandbox.runner).diff(before) == []


def test_a_namespace_with_its_link_down_fails_exactly_its_probes(sandbox: Sandbox) -> None:
    net = four(sandbox)
    net.up(BatchExecutor())
    sandbox.run(["ip", "-n", "cc", "link", "set", "eth0", "down"]).check()
    report = net.check()
    failed = {(p.source, p.target): p for p in report.failures}
    # cc's own probes, and those of the two namespaces whose ring peer it is (cc is 10.67.0.4)
    assert set(failed) == {
        ("cc", "10.67.0.1"),
        ("cc", "10.67.0.5"),
        ("cc", "10.67.0.2"),
        ("ca", "10.67.0.4"),
        ("cb", "10.67.0.4"),
    }, "\n".join(report.lines())
    for target in ("10.67.0.1", "10.67.0.5", "10.67.0.2"):
        # the kernel's own words: with eth0 down cc has no route at all
        assert (failed[("cc", target)].outcome, failed[("cc", target)].detail) == (
            "unreachable",
            "send: Network is unreachable",
        )
        assert failed[("cc", target)].tries == 1  # an answer from the kernel is not tried again
    for source in ("ca", "cb"):
        probe = failed[(source, "10.67.0.4")]
        assert probe.tries == 3
        assert "nothing answered ARP" in probe.detail or "Destination Host Unreachable" in probe.detail, probe
    assert len(report.probes) - len(failed) == 7
    net.down(BatchExecutor())


def test_a_lost_request_is_tried_again(sandbox: Sandbox) -> None:
    net = Network(
        name="chk", bridge="br-chk", subnet="10.67.0.0/24", gateway="10.67.0.1", namespaces=NAMES[:3],
        runner=sandbox.runner,
    )  # fmt: skip
    net.up(BatchExecutor())
    # cb drops the first echo request it is sent (only ca pings cb with one peer each), then answers
    drop = ["iptables", "-w", "-A", "INPUT", "-p", "icmp", "--icmp-type", "echo-request"]
    drop += ["-m", "statistic", "--mode", "nth", "--every", "100", "--packet", "0", "-j", "DROP"]
    sandbox.run(drop, netns="cb").check()
    report = net.check(peers=1)
    assert report.ok, "\n".join(report.lines())
    lossy = next(p for p in report.probes if (p.source, p.target) == ("ca", "10.67.0.3"))
    assert lossy.tries >= 2 and lossy.detail.startswith("reply to try "), lossy
    counted = sandbox.run(["iptables", "-w", "-L", "INPUT", "-v", "-n", "-x"], netns="cb").check().stdout
    assert [line.split()[0] for line in counted.splitlines() if "DROP" in line] == ["1"]
    net.down(BatchExecutor())


def test_check_on_a_network_that_is_down_says_so_and_probes_nothing(sandbox: Sandbox, capsys: object) -> None:
    before = HostState.capture(sandbox.runner)
    net = Network.from_toml(SEED, runner=sandbox.runner)
    report = net.check()
    assert report.down and not report.ok and report.probes == ()
    assert main(["check", str(SEED)], runner=sandbox.runner) == 3
    assert HostState.capture(sandbox.runner).diff(before) == []

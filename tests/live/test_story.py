"""The namespace story, step by step, in a sandbox: the demo's actions, checked against the kernel.

Each test replays the earlier steps (quietly, and requires them to pass), runs one step's
actions, and reads the kernel itself: ``ip -j``, ``iptables-save``, ``sysctl``, real ICMP, real
TCP and HTTP with asserted peer addresses, including the negative steps.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from netnskit.demo import (
    BRIDGE,
    COLOURS,
    PAGE,
    Story,
    check_fetch,
    check_only_loopback,
    check_reachable,
    check_state,
    check_tables_empty,
    check_tcp_peer,
    check_unreachable,
    http_fetch,
    icmp_echo_requests,
    ping,
    tcp_exchange,
)
from netnskit.sandbox import Sandbox
from netnskit.snapshot import HostState


def ipj(box: Sandbox, *args: str) -> list[dict[str, Any]]:
    """``ip -j ARGS`` inside the sandbox, parsed."""
    out = box.run(["ip", "-j", *args]).check().stdout.strip()
    return json.loads(out) if out else []


def link_names(box: Sandbox, netns: str | None = None) -> list[str]:
    where = ["-n", netns] if netns else []
    return sorted(d["ifname"] for d in ipj(box, *where, "link", "show"))


def ipv4(box: Sandbox, netns: str | None, ifname: str) -> list[str]:
    where = ["-n", netns] if netns else []
    return [
        f"{a['local']}/{a['prefixlen']}"
        for d in ipj(box, *where, "-4", "addr", "show", "dev", ifname)
        for a in d.get("addr_info", ())
    ]


def mac(box: Sandbox, netns: str, ifname: str) -> str:
    return str(ipj(box, "-n", netns, "link", "show", "dev", ifname)[0]["address"])


def reaches(box: Sandbox, netns: str | None, address: str) -> bool:
    """A reply comes back from ``address`` (asked every 0.2 s for up to 5 s: one lost packet decides nothing)."""
    return ping(box.runner, netns, address, deadline=5).received == 1


def operstate(box: Sandbox, netns: str, ifname: str, want: str = "UP", settle: float = 5.0) -> dict[str, Any]:
    """The link's ``ip -j`` entry once its operstate is ``want`` (set by a kernel work queue), or after ``settle`` s."""
    deadline = time.monotonic() + settle
    while True:
        info = ipj(box, "-n", netns, "link", "show", "dev", ifname)[0]
        if info.get("operstate") == want or time.monotonic() > deadline:
            return info
        time.sleep(0.05)


def nat_rules(box: Sandbox) -> list[str]:
    text = box.run(["iptables-save", "-t", "nat"]).check().stdout
    return [line for line in text.splitlines() if line.startswith("-A ")]


@pytest.fixture
def story(sandbox: Sandbox) -> Story:
    lines: list[str] = []
    return Story(sandbox, out=lines.append)


def replay(story: Story, upto: int) -> None:
    """Run steps 1..upto; every check must hold."""
    assert story.run(upto=upto), [c for c in story.checks if not c.ok]


def test_step1_namespaces_hold_only_loopback(story: Story, sandbox: Sandbox) -> None:
    story.make_namespaces("red", "blue")
    assert sorted(d["name"] for d in ipj(sandbox, "netns", "list")) == ["blue", "red"]
    for ns in ("red", "blue"):
        assert link_names(sandbox, ns) == ["lo"]
        assert ipj(sandbox, "-n", ns, "neigh", "show") == []
        assert ipj(sandbox, "-n", ns, "-4", "route", "show") == []
        # the demo's own checks agree
        assert check_only_loopback(sandbox.runner, ns).ok
        assert check_tables_empty(sandbox.runner, ns).ok


def test_step2_cable_ping_and_neighbour_tables(story: Story, sandbox: Sandbox) -> None:
    replay(story, 1)
    story.connect_red_blue()
    assert ipv4(sandbox, "red", "veth-red") == ["192.168.15.1/24"]
    assert ipv4(sandbox, "blue", "veth-blue") == ["192.168.15.2/24"]
    for ns, end in (("red", "veth-red"), ("blue", "veth-blue")):
        info = operstate(sandbox, ns, end)
        assert "UP" in info["flags"] and info["operstate"] == "UP"
    assert reaches(sandbox, "red", "192.168.15.2")
    assert reaches(sandbox, "blue", "192.168.15.1")
    red_neigh = {d["dst"]: d.get("lladdr") for d in ipj(sandbox, "-n", "red", "neigh", "show")}
    blue_neigh = {d["dst"]: d.get("lladdr") for d in ipj(sandbox, "-n", "blue", "neigh", "show")}
    assert red_neigh["192.168.15.2"] == mac(sandbox, "blue", "veth-blue")
    assert blue_neigh["192.168.15.1"] == mac(sandbox, "red", "veth-red")
    host_neigh = ipj(sandbox, "neigh", "show")
    assert not [d for d in host_neigh if d["dst"] in ("192.168.15.1", "192.168.15.2")]
    # the cable lives only in red and blue: the sandbox host has only its loopback
    assert link_names(sandbox) == ["lo"]


def test_step3_cable_removed_bridge_joins_four(story: Story, sandbox: Sandbox) -> None:
    replay(story, 2)
    story.cut_cable()
    assert link_names(sandbox, "red") == ["lo"]
    assert link_names(sandbox, "blue") == ["lo"]  # the peer went with it
    story.build_bridge()
    bridge = ipj(sandbox, "-d", "link", "show", "dev", BRIDGE)[0]
    assert bridge["linkinfo"]["info_kind"] == "bridge"
    ports = sorted(d["ifname"] for d in ipj(sandbox, "link", "show", "master", BRIDGE))
    assert ports == sorted(f"veth-{c}-br" for c in COLOURS)
    for colour, n in COLOURS.items():
        assert ipv4(sandbox, colour, f"veth-{colour}") == [f"192.168.15.{n}/24"]
    for src in COLOURS:
        for dst, n in COLOURS.items():
            if src != dst:
                assert reaches(sandbox, src, f"192.168.15.{n}"), (src, dst)


def test_step4_host_on_the_bridge_reaches_the_namespaces(story: Story, sandbox: Sandbox) -> None:
    replay(story, 3)
    before = ping(sandbox.runner, None, "192.168.15.1")
    assert before.received == 0 and "unreachable" in before.error.lower()
    story.host_on_bridge()
    assert ipv4(sandbox, None, BRIDGE) == ["192.168.15.5/24"]
    for n in COLOURS.values():
        assert reaches(sandbox, None, f"192.168.15.{n}")


def test_step5_lan_unreachable_then_no_reply_then_masqueraded(story: Story, sandbox: Sandbox) -> None:
    replay(story, 4)
    story.connect_lan()
    assert ipv4(sandbox, None, "lan0") == ["192.168.1.2/24"]
    assert ipv4(sandbox, "lan", "eth0") == ["192.168.1.3/24"]

    unreachable = ping(sandbox.runner, "blue", "192.168.1.3")
    assert unreachable.received == 0
    assert "Network is unreachable" in unreachable.error

    story.route_blue_to_lan()
    routes = ipj(sandbox, "-n", "blue", "-4", "route", "show", "192.168.1.0/24")
    assert [(r["dst"], r.get("gateway")) for r in routes] == [("192.168.1.0/24", "192.168.15.5")]
    assert sandbox.run(["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"
    arrived_before = icmp_echo_requests(sandbox.runner, "lan")
    no_reply = ping(sandbox.runner, "blue", "192.168.1.3", count=2)
    assert (no_reply.sent, no_reply.received) == (2, 0)
    assert icmp_echo_requests(sandbox.runner, "lan") - arrived_before == 2  # they did arrive
    assert not tcp_exchange(sandbox, "lan", "blue", "192.168.1.3", 8080).ok

    story.masquerade()
    masq = [r for r in nat_rules(sandbox) if "MASQUERADE" in r and "-s 192.168.15.0/24" in r]
    assert len(masq) == 1 and f"! -o {BRIDGE}" in masq[0]
    assert reaches(sandbox, "blue", "192.168.1.3")
    seen = tcp_exchange(sandbox, "lan", "blue", "192.168.1.3", 8080)
    assert seen.ok
    assert seen.peer == "192.168.1.2"  # masqueraded: not 192.168.15.2
    assert seen.reply == "netnskit-probe 192.168.1.3 192.168.1.2"


def test_step6_internet_needs_the_default_route(story: Story, sandbox: Sandbox) -> None:
    replay(story, 5)
    story.connect_internet()
    assert ipv4(sandbox, "internet", "eth0") == ["203.0.113.10/24"]
    assert reaches(sandbox, None, "203.0.113.10")  # the path exists
    before = ping(sandbox.runner, "blue", "203.0.113.10")
    assert before.received == 0 and "Network is unreachable" in before.error
    story.default_route_blue()
    default = ipj(sandbox, "-n", "blue", "-4", "route", "show", "default")
    assert [r.get("gateway") for r in default] == ["192.168.15.5"]
    assert reaches(sandbox, "blue", "203.0.113.10")
    seen = tcp_exchange(sandbox, "internet", "blue", "203.0.113.10", 8080)
    assert seen.ok and seen.peer == "192.168.1.2"


def test_step7_port_forward_serves_blue_to_the_lan(story: Story, sandbox: Sandbox) -> None:
    replay(story, 6)
    web = story.start_web_server()
    listening = sandbox.run(["ip", "netns", "exec", "blue", "ss", "-Hltn", "sport", "= :80"]).check().stdout
    assert "0.0.0.0:80" in listening
    refused = http_fetch(sandbox.runner, "lan", "http://192.168.1.2:80/")
    assert not refused.ok and "refused" in refused.error.lower()

    story.forward_port()
    dnat = [r for r in nat_rules(sandbox) if "-j DNAT" in r]
    assert dnat and all("--dport 80" in r and "--to-destination 192.168.15.2:80" in r for r in dnat)
    fetched = check_fetch(sandbox.runner, "lan", "http://192.168.1.2:80/", PAGE, web, "192.168.1.3")
    assert fetched.ok, fetched.evidence
    again = http_fetch(sandbox.runner, "lan", "http://192.168.1.2:80/")
    assert (again.status, again.body) == (200, PAGE)


def test_step8_teardown_leaves_the_sandbox_as_fresh(story: Story, sandbox: Sandbox) -> None:
    replay(story, 7)
    story.teardown()
    assert ipj(sandbox, "netns", "list") == []
    assert link_names(sandbox) == ["lo"]
    assert nat_rules(sandbox) == []
    assert sandbox.run(["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "0"
    check = check_state(sandbox.runner, story.fresh)
    assert check.ok, check.evidence
    assert sandbox.pids_inside() == []


def test_the_whole_story_passes(story: Story) -> None:
    assert story.run()
    assert len(story.checks) > 8
    assert all(c.ok for c in story.checks)


def test_checks_fail_when_the_fact_is_false(story: Story, sandbox: Sandbox) -> None:
    replay(story, 4)
    story.connect_lan()
    # blue has no route to the LAN yet: each check must say so
    assert not check_reachable(sandbox.runner, "blue", "192.168.1.3").ok
    assert not check_unreachable(sandbox.runner, None, "192.168.1.3").ok  # the host does reach it
    story.route_blue_to_lan()
    story.masquerade()
    wrong_peer = check_tcp_peer(sandbox, "lan", "blue", "192.168.1.3", 8080, "192.168.15.2")
    assert not wrong_peer.ok and "192.168.1.2" in wrong_peer.evidence
    assert not check_state(sandbox.runner, story.fresh, settle=0).ok
    assert HostState.capture(sandbox.runner) != story.fresh

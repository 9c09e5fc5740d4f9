"""Checks: each reads the kernel with an independent tool and says what it saw.

A :class:`Check` is one checked fact with its evidence. The readers are ``ip -j`` (links,
addresses, routes, neighbours), ``iptables-save``, the host state snapshot, and the real packets
of :mod:`netnskit.demo.evidence`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import attrs

from netnskit.demo.evidence import http_fetch, icmp_echo_requests, ping, tcp_exchange
from netnskit.link import Link, addresses, links, neighbours, routes
from netnskit.runner import Process, Runner, read_line
from netnskit.sandbox import Sandbox
from netnskit.snapshot import HostState

__all__ = [
    "Check",
    "check_address",
    "check_attached",
    "check_fetch",
    "check_firewall",
    "check_link_gone",
    "check_link_up",
    "check_neighbour",
    "check_no_neighbours",
    "check_no_reply",
    "check_only_loopback",
    "check_reachable",
    "check_state",
    "check_tables_empty",
    "check_tcp_peer",
    "check_unreachable",
    "firewall_rules",
]


@attrs.frozen
class Check:
    """One checked fact: what was checked, whether it held, and the evidence read."""

    name: str
    ok: bool
    evidence: str


def _where(netns: str | None) -> str:
    return "the host" if netns is None else netns


def check_only_loopback(runner: Runner, netns: str) -> Check:
    """``ip -j link`` in ``netns`` shows only ``lo``."""
    names = [info.name for info in links(runner, netns)]
    return Check(f"{netns}: ip link shows only loopback", names == ["lo"], f"links: {names}")


def check_tables_empty(runner: Runner, netns: str) -> Check:
    """The ARP (neighbour) table and the routing table of ``netns`` are empty."""
    neigh = [n.address for n in neighbours(runner, netns)]
    table = [r.to for r in routes(runner, netns)]
    return Check(
        f"{netns}: ARP and routing tables are empty", not neigh and not table, f"neighbours: {neigh}, routes: {table}"
    )


REPLY_DEADLINE = 5.0  # seconds a reachability check keeps asking before it calls an address unreachable


def check_reachable(runner: Runner, netns: str | None, address: str, *, count: int = 1) -> Check:
    """``address`` answers a real ping from ``netns`` (``count`` replies, asked for until REPLY_DEADLINE)."""
    got = ping(runner, netns, address, count=count, deadline=REPLY_DEADLINE)
    return Check(f"{_where(netns)} reaches {address}", got.ok, f"ping: {got.summary()}")


def check_unreachable(runner: Runner, netns: str | None, address: str) -> Check:
    """A ping from ``netns`` to ``address`` fails with "Network is unreachable" (no route)."""
    got = ping(runner, netns, address)
    ok = not got.ok and "network is unreachable" in got.error.lower()
    return Check(f"{_where(netns)} cannot reach {address}: Network is unreachable", ok, f"ping: {got.summary()}")


def check_no_reply(runner: Runner, netns: str | None, address: str, target_netns: str, *, count: int = 2) -> Check:
    """Echo requests from ``netns`` arrive in ``target_netns`` (its InEchos counter) but no reply comes back."""
    before = icmp_echo_requests(runner, target_netns)
    got = ping(runner, netns, address, count=count)
    arrived = icmp_echo_requests(runner, target_netns) - before
    ok = got.sent == count and got.received == 0 and arrived == count
    return Check(
        f"packets from {_where(netns)} reach {address} but no reply comes back",
        ok,
        f"ping: {got.summary()}; echo requests counted in {target_netns}: {arrived}",
    )


def check_neighbour(runner: Runner, netns: str | None, address: str, mac: str | None) -> Check:
    """The neighbour table of ``netns`` maps ``address`` to ``mac``."""
    table = {n.address: n.mac for n in neighbours(runner, netns)}
    got = table.get(address)
    return Check(
        f"{_where(netns)}'s ARP table maps {address} to {mac}", mac is not None and got == mac, f"{address} -> {got}"
    )


def check_no_neighbours(
    runner: Runner,
    netns: str | None,
    addresses_: Sequence[str],
    macs: Sequence[str | None],
) -> Check:
    """The neighbour table of ``netns`` holds none of ``addresses_`` and none of ``macs``."""
    table = [(n.address, n.mac) for n in neighbours(runner, netns)]
    bad = [(a, m) for a, m in table if a in addresses_ or (m is not None and m in macs)]
    return Check(f"{_where(netns)}'s ARP table holds neither {', '.join(addresses_)}", not bad, f"neighbours: {table}")


def check_link_up(runner: Runner, netns: str | None, ifname: str, *, settle: float = 5.0) -> Check:
    """``ifname`` in ``netns`` exists and is up (the UP flag, and a carrier: operstate UP).

    The kernel sets a link's operstate from a work queue after the carrier comes on: the check
    reads it again until it is UP or ``settle`` s have passed.
    """
    deadline = time.monotonic() + settle
    while True:
        info = Link(ifname, netns, runner=runner).info()
        ok = info is not None and info.is_up and info.operstate == "UP"
        if ok or info is None or not info.is_up or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    evidence = f"flags={list(info.flags)}, operstate={info.operstate}" if info else "no such link"
    return Check(f"{_where(netns)}: {ifname} is up", ok, evidence)


def check_link_gone(runner: Runner, netns: str | None, ifname: str) -> Check:
    """``ifname`` no longer exists in ``netns``."""
    names = [info.name for info in links(runner, netns)]
    return Check(f"{ifname} is gone from {_where(netns)}", ifname not in names, f"links: {names}")


def check_attached(runner: Runner, ifname: str, bridge: str) -> Check:
    """``ifname`` on the host is up and attached to ``bridge``, which is a bridge."""
    found = {info.name: info for info in links(runner)}
    port, br = found.get(ifname), found.get(bridge)
    ok = port is not None and br is not None and br.kind == "bridge" and port.master == bridge and port.is_up
    evidence = f"{ifname}: master={port.master if port else None}, up={port.is_up if port else None}"
    return Check(f"{ifname} is up and attached to bridge {bridge}", ok, evidence)


def check_address(runner: Runner, netns: str | None, ifname: str, interface: str) -> Check:
    """``ifname`` in ``netns`` carries ``interface`` (address/prefix)."""
    held = [str(a.address) for a in addresses(runner, netns) if a.dev == ifname]
    return Check(f"{_where(netns)}: {ifname} has {interface}", interface in held, f"{ifname}: {held}")


def check_tcp_peer(
    box: Sandbox,
    server_netns: str | None,
    client_netns: str | None,
    address: str,
    port: int,
    peer: str,
) -> Check:
    """A real TCP connection from ``client_netns`` to ``address:port`` works and the server sees ``peer``."""
    got = tcp_exchange(box, server_netns, client_netns, address, port)
    ok = got.ok and got.peer == peer
    evidence = f"server saw peer {got.peer}; client got {got.reply!r}" if got.ok else f"no connection: {got.error}"
    return Check(
        f"TCP {_where(client_netns)} -> {address}:{port}: {_where(server_netns)} sees it from {peer}", ok, evidence
    )


def firewall_rules(runner: Runner, table: str = "nat") -> list[str]:
    """The ``-A`` lines of ``iptables-save -t TABLE``."""
    text = runner.run(["iptables-save", "-t", table]).check("reading the firewall").stdout
    return [line for line in text.splitlines() if line.startswith("-A ")]


def check_firewall(runner: Runner, needles: Sequence[str], what: str, table: str = "nat") -> Check:
    """``iptables-save`` holds a rule in ``table`` that contains every one of ``needles``."""
    rules = firewall_rules(runner, table)
    hits = [rule for rule in rules if all(n in rule for n in needles)]
    return Check(f"iptables-save shows {what}", bool(hits), "; ".join(hits) or f"rules: {rules}")


_ACCESS_LOG = re.compile(r'^(\S+) - - \[[^]]*\] "GET (\S+) HTTP/1\.[01]" (\d+)')


def check_fetch(
    runner: Runner,
    netns: str | None,
    url: str,
    body: str,
    server: Process,
    peer: str,
) -> Check:
    """``url`` fetched from ``netns`` returns ``body``, and the web server's access log shows ``peer``."""
    got = http_fetch(runner, netns, url)
    seen = None
    if got.ok:
        found = _ACCESS_LOG.match(read_line(server.stderr, 5))
        seen = found.group(1) if found else None
    ok = got.ok and got.status == 200 and got.body == body and seen == peer
    evidence = f"HTTP {got.status} {got.body.strip()!r}; the server logged client {seen}" if got.ok else got.error
    return Check(f"{_where(netns)} fetches {url}; the server sees {peer}", ok, evidence)


def check_state(runner: Runner, expected: HostState, *, settle: float = 5.0) -> Check:
    """The (sandbox) host's state equals ``expected`` (retrying briefly: the kernel frees namespaces lazily)."""
    deadline = time.monotonic() + settle
    while True:
        diff = expected.diff(HostState.capture(runner))
        if not diff or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return Check(
        "the sandbox holds nothing: its state equals the fresh sandbox's",
        not diff,
        "; ".join(diff) or "ip netns, links, addresses, routes, sysctls, iptables-save: identical",
    )

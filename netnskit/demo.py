"""The namespace story, live: eight steps inside a throwaway Sandbox, every command shown, every step checked.

``run_demo()`` is what ``netnskit demo`` runs. :class:`Story` holds the steps; each step is made
of *actions* (public methods that build the topology through the library objects, with every
command echoed) and *checks* (module-level ``check_*`` functions that read the kernel with
independent tools: ``ip -j``, ``iptables-save``, ``/proc/net/snmp``, real ICMP, real TCP and
HTTP whose peer addresses are asserted). The live tests call the same actions and checks.

Every address used lives inside the sandbox: 192.168.15.0/24 (the bridge), 192.168.1.0/24 (the
LAN stand-in) and 203.0.113.0/24 (the internet stand-in, a documentation range).
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from netnskit.firewall import NatRule, PortForward
from netnskit.link import Bridge, Link, Route, VethPair, addresses, links, neighbours, routes
from netnskit.netns import Namespace
from netnskit.runner import LiveRunner, Result, Runner, end_process, read_line
from netnskit.sandbox import Sandbox
from netnskit.snapshot import HostState

__all__ = [
    "BRIDGE",
    "COLOURS",
    "Check",
    "EchoRunner",
    "Exchange",
    "Fetch",
    "PAGE",
    "PingResult",
    "Story",
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
    "http_fetch",
    "icmp_echo_requests",
    "in_netns",
    "ping",
    "run_demo",
    "tcp_exchange",
]

Out = Callable[[str], object]

BRIDGE = "v-net-0"
SUBNET = "192.168.15.0/24"
HOST_BRIDGE_IP = "192.168.15.5"
COLOURS = {"red": 1, "blue": 2, "orange": 3, "gray": 4}
HOST_LAN_IP = "192.168.1.2"
LAN_HOST_IP = "192.168.1.3"
LAN_WAN_IP = "203.0.113.1"
INTERNET_IP = "203.0.113.10"
PROBE_PORT = 8080
WEB_PORT = 80
OWNER = "demo"
PAGE = "hello from blue, served by netnskit demo\n"


def _ip(colour: str) -> str:
    return f"192.168.15.{COLOURS[colour]}"


# --- the echoing runner --------------------------------------------------------------------


@attrs.define
class EchoRunner:
    """A runner that prints each command (``$ ip netns add red``) before running it through ``inner``."""

    inner: Runner
    out: Out = print

    def run(self, argv: Sequence[str], *, input: str | None = None, timeout: float | None = None) -> Result:
        """Print ``argv`` (and its stdin, as a here-document), run it, and print the error when it fails."""
        if input is None:
            self.out(f"  $ {shlex.join(argv)}")
        else:
            self.out(f"  $ {shlex.join(argv)} <<'EOF'")
            for line in input.splitlines():
                self.out(f"    {line}")
            self.out("    EOF")
        result = self.inner.run(argv, input=input, timeout=timeout)
        if not result.ok:
            self.out(f"    exit {result.returncode}: {result.stderr.strip()}")
        return result


# --- evidence: independent reads and real packets ------------------------------------------


@attrs.frozen
class Check:
    """One checked fact: what was checked, whether it held, and the evidence read."""

    name: str
    ok: bool
    evidence: str


def in_netns(netns: str | None, argv: Sequence[str]) -> list[str]:
    """``argv`` run inside ``netns`` (``ip netns exec``), or as is for the (sandbox) host."""
    return list(argv) if netns is None else Namespace(netns).exec_argv(argv)


def _where(netns: str | None) -> str:
    return "the host" if netns is None else netns


@attrs.frozen
class PingResult:
    """What ``ping`` reported: packets sent and received, and its error line if it could not send."""

    sent: int
    received: int
    error: str

    @property
    def ok(self) -> bool:
        """True when at least one reply came back."""
        return self.received > 0

    def summary(self) -> str:
        """``2 sent, 2 received`` or ping's error."""
        return self.error or f"{self.sent} sent, {self.received} received"


_PING_STATS = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")


def ping(runner: Runner, netns: str | None, address: str, *, count: int = 1, wait: float = 1.0) -> PingResult:
    """Ping ``address`` from ``netns`` (None: the host) with real ICMP echo requests."""
    argv = ["ping", "-n", "-c", str(count), "-i", "0.2", "-W", str(wait), address]
    result = runner.run(in_netns(netns, argv), timeout=10 + count * (wait + 0.2))
    found = _PING_STATS.search(result.stdout)
    sent, received = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
    error = "" if found else (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
    return PingResult(sent, received, error)


def icmp_echo_requests(runner: Runner, netns: str | None) -> int:
    """How many ICMP echo requests ``netns`` has received (``Icmp: InEchos`` in /proc/net/snmp)."""
    text = runner.run(in_netns(netns, ["cat", "/proc/net/snmp"])).check("reading /proc/net/snmp").stdout
    rows = [line.split()[1:] for line in text.splitlines() if line.startswith("Icmp:")]
    names, values = rows[0], rows[1]
    return int(values[names.index("InEchos")])


def _end(proc: subprocess.Popen[str]) -> str:
    """End a background process started in the sandbox (by its own handle); return its stderr."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    err = ""
    if proc.stderr is not None:
        with contextlib.suppress(OSError, ValueError):
            err = proc.stderr.read()
    end_process(proc)
    return err.strip()


def _probe(*args: str) -> list[str]:
    return [sys.executable, "-m", "netnskit.probe", *args]


@attrs.frozen
class Exchange:
    """One TCP exchange: did the client get a reply, what it said, and the peer the server saw."""

    ok: bool
    reply: str
    peer: str | None
    error: str


def tcp_exchange(
    box: Sandbox, server_netns: str | None, client_netns: str | None, address: str, port: int,
    *, timeout: float = 3.0,
) -> Exchange:
    """A real TCP connection from ``client_netns`` to ``address:port`` served in ``server_netns``."""
    serve = _probe("serve", "--proto", "tcp", "--port", str(port), "--count", "1", "--timeout", str(timeout + 10))
    server = box.start(serve, netns=server_netns)
    try:
        if read_line(server.stdout, 10) != "ready":
            return Exchange(False, "", None, f"the probe server did not start: {_end(server)}")
        connect = _probe("connect", "--proto", "tcp", "--timeout", str(timeout), address, str(port))
        result = box.runner.run(in_netns(client_netns, connect), timeout=timeout + 10)
        lines = result.stdout.strip().splitlines()
        answer: dict[str, Any] = json.loads(lines[-1]) if lines else {"ok": False, "error": result.stderr.strip()}
        peer = None
        if answer.get("ok"):
            line = read_line(server.stdout, 5)
            peer = str(json.loads(line)["peer"][0]) if line else None
        return Exchange(bool(answer.get("ok")), str(answer.get("reply", "")), peer, str(answer.get("error", "")))
    finally:
        _end(server)


@attrs.frozen
class Fetch:
    """One HTTP GET: did it succeed, the status and body, or the error."""

    ok: bool
    status: int
    body: str
    error: str


# urllib without proxies: the request must go to the address given, inside the sandbox.
_FETCH = """\
import json, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(sys.argv[1], timeout=float(sys.argv[2])) as r:
        print(json.dumps({"ok": True, "status": r.status, "body": r.read().decode()}))
except Exception as exc:
    print(json.dumps({"ok": False, "error": str(exc)}))
    sys.exit(1)
"""


def http_fetch(runner: Runner, netns: str | None, url: str, *, timeout: float = 3.0) -> Fetch:
    """GET ``url`` from ``netns`` with Python's urllib (no proxy)."""
    result = runner.run(in_netns(netns, [sys.executable, "-c", _FETCH, url, str(timeout)]), timeout=timeout + 10)
    lines = result.stdout.strip().splitlines()
    answer: dict[str, Any] = json.loads(lines[-1]) if lines else {"ok": False, "error": result.stderr.strip()}
    return Fetch(bool(answer["ok"]), int(answer.get("status", 0)), str(answer.get("body", "")),
                 str(answer.get("error", "")))


# --- checks: each reads the kernel and says what it saw -------------------------------------


def check_only_loopback(runner: Runner, netns: str) -> Check:
    """``ip -j link`` in ``netns`` shows only ``lo``."""
    names = [info.name for info in links(runner, netns)]
    return Check(f"{netns}: ip link shows only loopback", names == ["lo"], f"links: {names}")


def check_tables_empty(runner: Runner, netns: str) -> Check:
    """The ARP (neighbour) table and the routing table of ``netns`` are empty."""
    neigh = [n.address for n in neighbours(runner, netns)]
    table = [r.dst for r in routes(runner, netns)]
    return Check(f"{netns}: ARP and routing tables are empty", not neigh and not table,
                 f"neighbours: {neigh}, routes: {table}")


def check_reachable(runner: Runner, netns: str | None, address: str, *, count: int = 1) -> Check:
    """``address`` answers a real ping from ``netns``."""
    got = ping(runner, netns, address, count=count)
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
        f"packets from {_where(netns)} reach {address} but no reply comes back", ok,
        f"ping: {got.summary()}; echo requests counted in {target_netns}: {arrived}",
    )


def check_neighbour(runner: Runner, netns: str | None, address: str, mac: str | None) -> Check:
    """The neighbour table of ``netns`` maps ``address`` to ``mac``."""
    table = {n.address: n.mac for n in neighbours(runner, netns)}
    got = table.get(address)
    return Check(f"{_where(netns)}'s ARP table maps {address} to {mac}", mac is not None and got == mac,
                 f"{address} -> {got}")


def check_no_neighbours(
    runner: Runner, netns: str | None, addresses_: Sequence[str], macs: Sequence[str | None],
) -> Check:
    """The neighbour table of ``netns`` holds none of ``addresses_`` and none of ``macs``."""
    table = [(n.address, n.mac) for n in neighbours(runner, netns)]
    bad = [(a, m) for a, m in table if a in addresses_ or (m is not None and m in macs)]
    return Check(f"{_where(netns)}'s ARP table holds neither {', '.join(addresses_)}", not bad,
                 f"neighbours: {table}")


def check_link_up(runner: Runner, netns: str | None, ifname: str) -> Check:
    """``ifname`` in ``netns`` exists and is up (the UP flag, and a carrier: operstate UP)."""
    info = Link(ifname, netns, runner=runner).info()
    ok = info is not None and info.is_up and info.operstate == "UP"
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
    held = [str(a.address) for a in addresses(runner, netns) if a.ifname == ifname]
    return Check(f"{_where(netns)}: {ifname} has {interface}", interface in held, f"{ifname}: {held}")


def check_tcp_peer(
    box: Sandbox, server_netns: str | None, client_netns: str | None, address: str, port: int, peer: str,
) -> Check:
    """A real TCP connection from ``client_netns`` to ``address:port`` works and the server sees ``peer``."""
    got = tcp_exchange(box, server_netns, client_netns, address, port)
    ok = got.ok and got.peer == peer
    evidence = f"server saw peer {got.peer}; client got {got.reply!r}" if got.ok else f"no connection: {got.error}"
    return Check(f"TCP {_where(client_netns)} -> {address}:{port}: {_where(server_netns)} sees it from {peer}",
                 ok, evidence)


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
    runner: Runner, netns: str | None, url: str, body: str, server: subprocess.Popen[str], peer: str,
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
    return Check("the sandbox holds nothing: its state equals the fresh sandbox's", not diff,
                 "; ".join(diff) or "ip netns, links, addresses, routes, sysctls, iptables-save: identical")


# --- the story ------------------------------------------------------------------------------


class Story:
    """The eight steps, run inside ``box``: actions echo their commands, checks print their evidence."""

    def __init__(self, box: Sandbox, out: Out = print) -> None:
        """Prepare the story in ``box``; its fresh state is read now, for step 8."""
        self.box = box
        self.out = out
        self.do: Runner = EchoRunner(box.runner, out)
        self.read: Runner = box.runner
        self.checks: list[Check] = []
        self.fresh = HostState.capture(self.read)
        self.web: subprocess.Popen[str] | None = None
        self._webroot: str | None = None

    @property
    def passed(self) -> bool:
        """True when at least one check ran and every check held."""
        return bool(self.checks) and all(c.ok for c in self.checks)

    def record(self, check: Check) -> bool:
        """Keep ``check`` and print it with its evidence."""
        self.checks.append(check)
        self.out(f"    [{'ok' if check.ok else 'FAIL'}] {check.name}")
        self.out(f"         {check.evidence}")
        return check.ok

    def steps(self) -> list[tuple[str, Callable[[], None]]]:
        """The steps in order, each with its title."""
        return [
            ("1. namespaces red and blue", self.step1),
            ("2. a veth cable between red and blue", self.step2),
            (f"3. the cable removed; a bridge {BRIDGE} joins red, blue, orange and gray", self.step3),
            (f"4. the host joins the bridge at {HOST_BRIDGE_IP}", self.step4),
            (f"5. a LAN host at {LAN_HOST_IP}: route, then masquerade", self.step5),
            (f"6. an internet host at {INTERNET_IP} behind the LAN: a default route", self.step6),
            (f"7. a web server in blue, reached from the LAN through a port forward on {HOST_LAN_IP}:80", self.step7),
            ("8. teardown", self.step8),
        ]

    def run(self, upto: int = 8) -> bool:
        """Run steps 1..``upto``; stop at a step that raises; True if every check held."""
        for title, step in self.steps()[:upto]:
            self.out(f"\n== {title}")
            try:
                step()
            except Exception as exc:  # the demo reports any failure as a failed check and stops
                self.record(Check(f"step {title.split('.')[0]} ran to its end", False, f"{type(exc).__name__}: {exc}"))
                return False
        return self.passed

    def _ns(self, name: str) -> Namespace:
        return Namespace(name, runner=self.do)

    def _mac(self, netns: str | None, ifname: str) -> str | None:
        info = Link(ifname, netns, runner=self.read).info()
        return info.mac if info else None

    # --- step 1 ---------------------------------------------------------------------------

    def make_namespaces(self, *names: str) -> None:
        """Create the named namespaces."""
        for name in names:
            self._ns(name).create()

    def step1(self) -> None:
        """Namespaces red and blue: only loopback, empty ARP and routing tables."""
        self.make_namespaces("red", "blue")
        for name in ("red", "blue"):
            self.record(check_only_loopback(self.read, name))
            self.record(check_tables_empty(self.read, name))

    # --- step 2 ---------------------------------------------------------------------------

    def connect_red_blue(self) -> None:
        """A veth pair veth-red (in red, 192.168.15.1) and veth-blue (in blue, 192.168.15.2), both up."""
        VethPair("veth-red", "veth-blue", netns="red", peer_netns="blue", runner=self.do).create(up=True)
        Link("veth-red", "red", runner=self.do).add_address(f"{_ip('red')}/24")
        Link("veth-blue", "blue", runner=self.do).add_address(f"{_ip('blue')}/24")

    def step2(self) -> None:
        """Ping across the cable; each side learns the other's MAC; the host learns neither."""
        self.connect_red_blue()
        self.record(check_link_up(self.read, "red", "veth-red"))
        self.record(check_link_up(self.read, "blue", "veth-blue"))
        self.record(check_reachable(self.read, "red", _ip("blue")))
        self.record(check_reachable(self.read, "blue", _ip("red")))
        red_mac, blue_mac = self._mac("red", "veth-red"), self._mac("blue", "veth-blue")
        self.record(check_neighbour(self.read, "red", _ip("blue"), blue_mac))
        self.record(check_neighbour(self.read, "blue", _ip("red"), red_mac))
        self.record(check_no_neighbours(self.read, None, [_ip("red"), _ip("blue")], [red_mac, blue_mac]))

    # --- step 3 ---------------------------------------------------------------------------

    def cut_cable(self) -> None:
        """Delete veth-red; the kernel deletes its peer veth-blue with it."""
        Link("veth-red", "red", runner=self.do).delete()

    def build_bridge(self) -> None:
        """Bridge v-net-0 on the host; orange and gray created; each colour joined by veth-C/veth-C-br."""
        Bridge(BRIDGE, runner=self.do).create(up=True)
        self.make_namespaces("orange", "gray")
        for colour in COLOURS:
            VethPair(f"veth-{colour}-br", f"veth-{colour}", peer_netns=colour, master=BRIDGE,
                     runner=self.do).create(up=True)
            Link(f"veth-{colour}", colour, runner=self.do).add_address(f"{_ip(colour)}/24")

    def step3(self) -> None:
        """The cable gone (both ends); four namespaces on the bridge reach each other."""
        self.cut_cable()
        self.record(check_link_gone(self.read, "red", "veth-red"))
        self.record(check_link_gone(self.read, "blue", "veth-blue"))
        self.build_bridge()
        for colour in COLOURS:
            self.record(check_attached(self.read, f"veth-{colour}-br", BRIDGE))
        for src in COLOURS:
            for dst in COLOURS:
                if src != dst:
                    self.record(check_reachable(self.read, src, _ip(dst)))

    # --- step 4 ---------------------------------------------------------------------------

    def host_on_bridge(self) -> None:
        """The host gets 192.168.15.5/24 on the bridge."""
        Bridge(BRIDGE, runner=self.do).link.add_address(f"{HOST_BRIDGE_IP}/24")

    def step4(self) -> None:
        """The host reaches every namespace."""
        self.host_on_bridge()
        self.record(check_address(self.read, None, BRIDGE, f"{HOST_BRIDGE_IP}/24"))
        for colour in COLOURS:
            self.record(check_reachable(self.read, None, _ip(colour)))

    # --- step 5 ---------------------------------------------------------------------------

    def connect_lan(self) -> None:
        """The LAN stand-in: namespace lan (eth0, 192.168.1.3) cabled to the host's lan0 (192.168.1.2)."""
        self._ns("lan").create()
        VethPair("lan0", "eth0", peer_netns="lan", runner=self.do).create(up=True)
        Link("lan0", runner=self.do).add_address(f"{HOST_LAN_IP}/24")
        Link("eth0", "lan", runner=self.do).add_address(f"{LAN_HOST_IP}/24")
        self._ns("lan").loopback_up()

    def route_blue_to_lan(self) -> None:
        """The host forwards packets; blue routes 192.168.1.0/24 via the host (192.168.15.5)."""
        self.do.run(["sysctl", "-w", "net.ipv4.ip_forward=1"]).check("enabling forwarding on the host")
        Route("192.168.1.0/24", via=HOST_BRIDGE_IP, netns="blue", runner=self.do).add()

    def masquerade(self) -> None:
        """Masquerade 192.168.15.0/24 leaving the host by any interface but the bridge."""
        NatRule(SUBNET, bridge=BRIDGE, owner=OWNER, runner=self.do).apply()

    def step5(self) -> None:
        """Unreachable, then no reply, then the reply: the LAN host sees 192.168.1.2, not 192.168.15.2."""
        self.connect_lan()
        self.record(check_reachable(self.read, None, LAN_HOST_IP))
        self.record(check_unreachable(self.read, "blue", LAN_HOST_IP))
        self.route_blue_to_lan()
        self.record(check_no_reply(self.read, "blue", LAN_HOST_IP, "lan"))
        self.masquerade()
        self.record(check_firewall(self.read, ["MASQUERADE", SUBNET], f"the masquerade of {SUBNET}"))
        self.record(check_reachable(self.read, "blue", LAN_HOST_IP))
        self.record(check_tcp_peer(self.box, "lan", "blue", LAN_HOST_IP, PROBE_PORT, HOST_LAN_IP))

    # --- step 6 ---------------------------------------------------------------------------

    def connect_internet(self) -> None:
        """The internet stand-in: namespace internet (203.0.113.10) behind the LAN host, the host's gateway."""
        self._ns("internet").create()
        VethPair("wan0", "eth0", netns="lan", peer_netns="internet", runner=self.do).create(up=True)
        Link("wan0", "lan", runner=self.do).add_address(f"{LAN_WAN_IP}/24")
        Link("eth0", "internet", runner=self.do).add_address(f"{INTERNET_IP}/24")
        self._ns("lan").exec(["sysctl", "-w", "net.ipv4.ip_forward=1"])
        Route("default", via=LAN_WAN_IP, netns="internet", runner=self.do).add()
        Route("default", via=LAN_HOST_IP, runner=self.do).add()

    def default_route_blue(self) -> None:
        """Blue's default route via the host."""
        Route("default", via=HOST_BRIDGE_IP, netns="blue", runner=self.do).add()

    def step6(self) -> None:
        """The host reaches the internet host; blue cannot until its default route, then can (seen as 192.168.1.2)."""
        self.connect_internet()
        self.record(check_reachable(self.read, None, INTERNET_IP))
        self.record(check_unreachable(self.read, "blue", INTERNET_IP))
        self.default_route_blue()
        self.record(check_reachable(self.read, "blue", INTERNET_IP))
        self.record(check_tcp_peer(self.box, "internet", "blue", INTERNET_IP, PROBE_PORT, HOST_LAN_IP))

    # --- step 7 ---------------------------------------------------------------------------

    def start_web_server(self) -> subprocess.Popen[str]:
        """``python -m http.server 80`` in blue, serving one page; returns once it listens."""
        self._webroot = tempfile.mkdtemp(prefix="netnskit-demo-")
        with open(f"{self._webroot}/index.html", "w") as page:
            page.write(PAGE)
        argv = in_netns("blue", [sys.executable, "-u", "-m", "http.server", str(WEB_PORT),
                                 "--bind", "0.0.0.0", "--directory", self._webroot])
        self.out(f"  $ {shlex.join(argv)} &")
        self.web = self.box.start(argv)
        if not read_line(self.web.stdout, 10).startswith("Serving HTTP"):
            raise RuntimeError(f"the web server in blue did not start: {_end(self.web)}")
        return self.web

    def forward_port(self) -> None:
        """DNAT host 192.168.1.2:80 to blue's 192.168.15.2:80."""
        PortForward(WEB_PORT, _ip("blue"), WEB_PORT, "tcp", host_address=HOST_LAN_IP, owner=OWNER,
                    runner=self.do).apply()

    def step7(self) -> None:
        """Before the forward the LAN host is refused; after it, it fetches blue's page, and blue sees 192.168.1.3."""
        web = self.start_web_server()
        url = f"http://{HOST_LAN_IP}:{WEB_PORT}/"
        before = http_fetch(self.read, "lan", url)
        self.record(Check(f"before the forward, lan cannot fetch {url}", not before.ok,
                          before.error or f"HTTP {before.status}"))
        self.forward_port()
        self.record(check_firewall(self.read, ["DNAT", f"{_ip('blue')}:{WEB_PORT}"],
                                   f"the port forward to {_ip('blue')}:{WEB_PORT}"))
        self.record(check_fetch(self.read, "lan", url, PAGE, web, LAN_HOST_IP))

    # --- step 8 ---------------------------------------------------------------------------

    def teardown(self) -> None:
        """Undo everything, in reverse: web server, firewall rules, links, bridge, namespaces, forwarding."""
        if self.web is not None:
            self.out("  (ending the web server in blue)")
            _end(self.web)
            self.web = None
        if self._webroot is not None:
            shutil.rmtree(self._webroot, ignore_errors=True)
            self._webroot = None
        PortForward(WEB_PORT, _ip("blue"), WEB_PORT, "tcp", host_address=HOST_LAN_IP, owner=OWNER,
                    runner=self.do).remove()
        NatRule(SUBNET, bridge=BRIDGE, owner=OWNER, runner=self.do).remove()
        Link("wan0", "lan", runner=self.do).delete()
        Link("lan0", runner=self.do).delete()
        for colour in COLOURS:
            Link(f"veth-{colour}-br", runner=self.do).delete()
        Bridge(BRIDGE, runner=self.do).delete()
        for name in (*COLOURS, "lan", "internet"):
            self._ns(name).delete()
        self.do.run(["sysctl", "-w", "net.ipv4.ip_forward=0"]).check("disabling forwarding on the host")

    def step8(self) -> None:
        """After teardown the sandbox's state equals its fresh state, and no process of ours runs in it."""
        self.teardown()
        self.record(check_state(self.read, self.fresh))
        left = self.box.pids_inside()
        self.record(Check("no process left inside the sandbox", not left, f"pids: {left}"))


def run_demo(out: Out = print) -> bool:
    """Walk the whole story in a fresh Sandbox; True only if every check held (the real host unchanged too)."""
    real = LiveRunner()
    before = HostState.capture(real)
    out("netnskit demo: the namespace story, live, inside a throwaway sandbox")
    with Sandbox() as box:
        story = Story(box, out)
        story.run()
    out("\n== after the sandbox is gone")
    diff = before.diff(HostState.capture(real))
    story.record(Check("the real host is unchanged (ip netns, ip -j link/addr/route, sysctl, iptables-save)",
                       not diff, "; ".join(diff) or "identical before and after"))
    failed = [c for c in story.checks if not c.ok]
    out(f"\n{len(story.checks) - len(failed)} of {len(story.checks)} checks passed"
        + ("" if not failed else f"; failed: {', '.join(c.name for c in failed)}"))
    return story.passed

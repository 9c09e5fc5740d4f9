"""The story's eight steps, run inside a throwaway Sandbox: every command shown, every step checked.

:class:`Story` holds the steps; each step is made of *actions* (public methods that build the
topology through the library objects, with every command echoed) and *checks* (from
:mod:`netnskit.demo.checks`, which read the kernel with independent tools). The live tests call
the same actions and checks.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable

from netnskit.demo.checks import (
    Check,
    check_address,
    check_attached,
    check_fetch,
    check_firewall,
    check_link_gone,
    check_link_up,
    check_neighbour,
    check_no_neighbours,
    check_no_reply,
    check_only_loopback,
    check_reachable,
    check_state,
    check_tables_empty,
    check_tcp_peer,
    check_unreachable,
)
from netnskit.demo.echo import EchoRunner, Out
from netnskit.demo.evidence import end_server, http_fetch
from netnskit.demo.topology import (
    BRIDGE,
    COLOURS,
    HOST_BRIDGE_IP,
    HOST_LAN_IP,
    INTERNET_IP,
    LAN_HOST_IP,
    LAN_WAN_IP,
    OWNER,
    PAGE,
    PROBE_PORT,
    SUBNET,
    WEB_PORT,
)
from netnskit.firewall import NatRule, PortForward
from netnskit.link import Bridge, Link, Route, VethPair
from netnskit.netns import Namespace, exec_argv
from netnskit.runner import Process, Runner, read_line
from netnskit.sandbox import Sandbox
from netnskit.snapshot import HostState

__all__ = ["Story"]


def _ip(colour: str) -> str:
    return f"192.168.15.{COLOURS[colour]}"


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
        self.web: Process | None = None
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
            VethPair(f"veth-{colour}-br", f"veth-{colour}", peer_netns=colour, master=BRIDGE, runner=self.do).create(
                up=True
            )
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

    def start_web_server(self) -> Process:
        """``python -m http.server 80`` in blue, serving one page; returns once it listens."""
        self._webroot = tempfile.mkdtemp(prefix="netnskit-demo-")
        with open(f"{self._webroot}/index.html", "w") as page:
            page.write(PAGE)
        argv = exec_argv(
            "blue",
            [
                sys.executable,
                "-u",
                "-m",
                "http.server",
                str(WEB_PORT),
                "--bind",
                "0.0.0.0",
                "--directory",
                self._webroot,
            ],
        )
        self.out(f"  $ {shlex.join(argv)} &")
        self.web = self.box.start(argv)
        if not read_line(self.web.stdout, 10).startswith("Serving HTTP"):
            raise RuntimeError(f"the web server in blue did not start: {end_server(self.web)}")
        return self.web

    def forward_port(self) -> None:
        """DNAT host 192.168.1.2:80 to blue's 192.168.15.2:80."""
        PortForward(
            WEB_PORT, _ip("blue"), WEB_PORT, "tcp", host_address=HOST_LAN_IP, owner=OWNER, runner=self.do
        ).apply()

    def step7(self) -> None:
        """Before the forward the LAN host is refused; after it, it fetches blue's page, and blue sees 192.168.1.3."""
        web = self.start_web_server()
        url = f"http://{HOST_LAN_IP}:{WEB_PORT}/"
        before = http_fetch(self.read, "lan", url)
        self.record(
            Check(f"before the forward, lan cannot fetch {url}", not before.ok, before.error or f"HTTP {before.status}")
        )
        self.forward_port()
        self.record(
            check_firewall(
                self.read, ["DNAT", f"{_ip('blue')}:{WEB_PORT}"], f"the port forward to {_ip('blue')}:{WEB_PORT}"
            )
        )
        self.record(check_fetch(self.read, "lan", url, PAGE, web, LAN_HOST_IP))

    # --- step 8 ---------------------------------------------------------------------------

    def teardown(self) -> None:
        """Undo everything, in reverse: web server, firewall rules, links, bridge, namespaces, forwarding."""
        if self.web is not None:
            self.out("  (ending the web server in blue)")
            end_server(self.web)
            self.web = None
        if self._webroot is not None:
            shutil.rmtree(self._webroot, ignore_errors=True)
            self._webroot = None
        PortForward(
            WEB_PORT, _ip("blue"), WEB_PORT, "tcp", host_address=HOST_LAN_IP, owner=OWNER, runner=self.do
        ).remove()
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

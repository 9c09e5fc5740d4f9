"""Tiny TCP/UDP probes for live checks: a server that reports each peer, and a client.

Run inside a namespace (``ip netns exec NS python -m netnskit.probe ...``):

- ``serve --proto tcp|udp --port P [--bind ADDR] [--count N] [--timeout S]``: prints ``ready``,
  then one JSON line per exchange: ``{"peer": [ip, port], "local": [ip, port], "data": ...}``;
  answers each with ``netnskit-probe <local ip> <peer ip>``. Exits after ``count`` exchanges
  or ``timeout`` seconds (exit 2).
- ``connect --proto tcp|udp HOST PORT [--timeout S] [--message M] [--connect-only]``: prints one
  JSON line, ``{"ok": true, "local": [...], "reply": "..."}`` or ``{"ok": false, "error": "..."}``
  (exit 1). ``--connect-only`` (TCP): a completed handshake is the answer; nothing is sent (any
  server, not only a probe's).
- ``ping [--tries T] [--wait S] [--netns-dir D] [--touch NS]... [--host-dev DEV]... NS=ADDR[,ADDR...]...``
  (root): ICMP echo (ICMPv6 for an IPv6 address) from each named namespace to its addresses, every
  one at once, from this one process (it enters each namespace to open raw sockets there). A target that does not answer
  within ``wait`` seconds is tried again, up to ``tries`` times; one the kernel says it cannot
  reach (an ICMP "unreachable", "Network is unreachable") is not. Prints one JSON line per target,
  ``{"source", "target", "ok", "outcome", "tries", "detail"}`` (outcome ``reply``, ``no reply``,
  ``unreachable`` or ``error``; detail: the kernel's words), then one line
  ``{"neighbours": {"before", "peak", "left"}}``: the neighbour entries in the namespaces probed or
  touched (``--touch``: the targets' namespaces) and on the ``--host-dev`` links of this namespace
  before and after the probes, and those added that could not be deleted.
  The entries the probes added are deleted again at the end, so a check in rounds never holds
  more than one round's entries in the kernel's neighbour table (shared by every namespace on
  the machine). Exit 0 when every target answered, 1 otherwise.

A probe sends only to the address it is given; callers give addresses inside their sandbox.
This file imports only the standard library: ``python -I -S probe.py`` runs it without netnskit.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import json
import os
import select
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def serve(proto: str, port: int, bind: str, count: int, timeout: float) -> int:
    """Answer ``count`` exchanges, printing each peer; 0 when done, 2 on timeout."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(_family(bind), kind) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bind, port))
        if proto == "tcp":
            sock.listen(16)
        print("ready", flush=True)
        deadline = time.monotonic() + timeout
        served = 0
        while served < count:
            left = deadline - time.monotonic()
            if left <= 0:
                return 2
            sock.settimeout(left)
            try:
                if proto == "tcp":
                    conn, peer = sock.accept()
                    with conn:
                        conn.settimeout(5)
                        data = conn.recv(4096)
                        local = conn.getsockname()
                        conn.sendall(f"netnskit-probe {local[0]} {peer[0]}\n".encode())
                else:
                    data, peer = sock.recvfrom(4096)
                    local = _udp_local(sock, peer)
                    sock.sendto(f"netnskit-probe {local[0]} {peer[0]}\n".encode(), peer)
            except TimeoutError:
                return 2
            record = {"peer": list(peer[:2]), "local": list(local[:2]), "data": data.decode(errors="replace")}
            print(json.dumps(record), flush=True)
            served += 1
    return 0


def _udp_local(sock: socket.socket, peer: tuple[str, int]) -> tuple[str, int]:
    # A wildcard-bound UDP socket does not know which local address was hit; ask the kernel
    # which source it would use back to the peer.
    name: tuple[str, int] = sock.getsockname()[:2]
    if name[0] not in ("0.0.0.0", "::"):
        return name
    with socket.socket(sock.family, socket.SOCK_DGRAM) as probe:
        probe.connect(peer[:2])
        local: tuple[str, int] = probe.getsockname()[:2]
        return (local[0], name[1])


def connect(proto: str, host: str, port: int, timeout: float, message: str, only: bool = False) -> int:
    """One exchange with a server (or, ``only``, a TCP handshake); prints the result as JSON; 0 if it worked."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    try:
        with socket.socket(_family(host), kind) as sock:
            sock.settimeout(timeout)
            sock.connect((host, port))
            reply = ""
            if not (only and proto == "tcp"):
                sock.sendall(message.encode())
                reply = sock.recv(4096).decode(errors="replace").strip()
            local = sock.getsockname()
    except OSError as exc:
        print(json.dumps({"ok": False, "error": str(exc) or type(exc).__name__}), flush=True)
        return 1
    print(json.dumps({"ok": True, "local": list(local[:2]), "reply": reply}), flush=True)
    return 0


# --- ping: ICMP echo from many namespaces at once, from one process ----------------------------

_CLONE_NEWNET = 0x40000000
_ECHO_REPLY, _UNREACHABLE, _ECHO = 0, 3, 8
_SOL_RAW, _ICMP_FILTER = 255, 1
_RTM_DELNEIGH, _NLM_F_REQUEST, _NLM_F_ACK, _NDA_DST = 29, 0x1, 0x4, 1
_RTM_NEWNEIGH, _RTM_GETNEIGH, _NLM_F_DUMP, _NLMSG_DONE, _NLMSG_ERROR = 28, 30, 0x300, 3, 2
_NUD_INCOMPLETE, _NUD_FAILED = 0x01, 0x20
_ECHO6, _ECHO6_REPLY, _UNREACHABLE6, _ICMP6_FILTER = 128, 129, 1, 1
# ping6's words for the codes of an ICMPv6 "destination unreachable"
_UNREACHABLE6_TEXT = {
    0: "no route",
    1: "administratively prohibited",
    2: "beyond scope",
    3: "Address unreachable",
    4: "Port unreachable",
    5: "failed policy",
    6: "reject route",
}
# ping's words for the codes of an ICMP "destination unreachable"
_UNREACHABLE_TEXT = {
    0: "Destination Net Unreachable",
    1: "Destination Host Unreachable",
    2: "Destination Protocol Unreachable",
    3: "Destination Port Unreachable",
    4: "Frag needed",
    5: "Source Route Failed",
    6: "Destination Net Unknown",
    7: "Destination Host Unknown",
    9: "Destination Net Prohibited",
    10: "Destination Host Prohibited",
    13: "Packet filtered",
}
# send errors a later try may not meet (a full neighbour table or queue); any other is the kernel's answer
_TRANSIENT = frozenset({errno.ENOBUFS, errno.EAGAIN, errno.ENOMEM})


@dataclass
class Target:
    """One address probed from one namespace, and what became of it."""

    source: str
    address: str
    tries: int = 0
    ok: bool = False
    final: bool = False  # answered, or the kernel said it cannot be reached: no more tries
    outcome: str = "no reply"
    detail: str = ""
    waiting: bool = False

    def replied(self) -> None:
        """An echo reply came."""
        self.ok, self.final, self.waiting, self.outcome = True, True, False, "reply"
        self.detail = f"reply to try {self.tries}" if self.tries > 1 else ""

    def unreachable(self, detail: str) -> None:
        """The kernel (ours or a router's) says the address cannot be reached: trying again would not change it."""
        self.final, self.waiting, self.outcome, self.detail = True, False, "unreachable", detail

    def send_failed(self, exc: OSError) -> None:
        """The send itself failed: final unless the error is one a later try may not meet."""
        self.waiting = False
        self.detail = f"send: {exc.strerror or exc}"
        if exc.errno in _TRANSIENT:
            self.outcome = "error"
        else:
            self.final, self.outcome = True, "unreachable"

    def record(self) -> dict[str, object]:
        """The JSON line printed for it."""
        return {
            "source": self.source,
            "target": self.address,
            "ok": self.ok,
            "outcome": self.outcome,
            "tries": self.tries,
            "detail": self.detail,
        }


def run_tries(
    targets: Sequence[Target],
    send: Callable[[Target, int], None],
    receive: Callable[[float], None],
    tries: int,
    wait: float,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Send to every target not yet settled, all at once, and take answers for up to ``wait`` s; ``tries`` times.

    ``send(target, attempt)`` sends (and calls ``target.send_failed`` on an error); ``receive(left)``
    waits at most ``left`` s and settles the targets whose answers came.
    """
    for attempt in range(1, tries + 1):
        due = [t for t in targets if not t.final]
        if not due:
            return
        for target in due:
            target.tries, target.waiting = attempt, True
            send(target, attempt)
        deadline = clock() + wait
        while any(t.waiting for t in due):
            left = deadline - clock()
            if left <= 0:
                break
            receive(left)
        for target in due:
            target.waiting = False
    for target in targets:
        if target.outcome == "error":
            target.detail += f" ({target.tries} tries)"


def _setns(fd: int) -> None:
    setns = getattr(os, "setns", None)  # Python 3.12+
    if setns is not None:
        setns(fd, _CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


@contextlib.contextmanager
def _inside(path: str, home: int) -> Iterator[None]:
    """This (single) thread in the network namespace mounted at ``path``, and back home after."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd)
    finally:
        os.close(fd)
    try:
        yield
    finally:
        _setns(home)


def _arp() -> dict[tuple[str, str], bool]:
    """(address, device) -> resolved, for every IPv4 and IPv6 neighbour entry of the namespace this thread is in."""
    with open("/proc/thread-self/net/arp") as handle:
        rows = [line.split() for line in handle.read().splitlines()[1:]]
    # flags 0x2 (ATF_COM): the MAC address is known
    found = {(row[0], row[5]): bool(int(row[2], 16) & 0x2) for row in rows if len(row) >= 6}
    return found | _ndisc()


def _ndisc() -> dict[tuple[str, str], bool]:
    """(address, device) -> resolved, for every IPv6 neighbour entry (an RTM_GETNEIGH dump: /proc has none)."""
    found: dict[tuple[str, str], bool] = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as nl:  # NETLINK_ROUTE
        body = struct.pack("=BBHiHBB", socket.AF_INET6, 0, 0, 0, 0, 0, 0)
        nl.send(struct.pack("=IHHII", 16 + len(body), _RTM_GETNEIGH, _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0) + body)
        while True:
            data = nl.recv(65536)
            at = 0
            while at + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, at)
                if kind in (_NLMSG_DONE, _NLMSG_ERROR) or length < 16:
                    return found
                if kind == _RTM_NEWNEIGH:
                    entry = _neighbour(data[at + 16 : at + length])
                    if entry is not None:
                        found[entry[0]] = entry[1]
                at += (length + 3) & ~3


def _neighbour(message: bytes) -> tuple[tuple[str, str], bool] | None:
    """((address, device), resolved) of one RTM_NEWNEIGH message's body, None without an address."""
    if len(message) < 12:
        return None
    _family, _, _, index, state, _, _ = struct.unpack_from("=BBHiHBB", message)
    at = 12
    while at + 4 <= len(message):
        size, kind = struct.unpack_from("=HH", message, at)
        if size < 4:
            return None
        if kind == _NDA_DST and size == 4 + 16:
            address = socket.inet_ntop(socket.AF_INET6, message[at + 4 : at + 20])
            try:
                dev = socket.if_indextoname(index)
            except OSError:
                return None
            return (address, dev), not state & (_NUD_INCOMPLETE | _NUD_FAILED)
        at += (size + 3) & ~3
    return None


def _delete_neighbours(entries: Sequence[tuple[str, str]]) -> None:
    """Delete neighbour entries of this thread's namespace (RTM_DELNEIGH; one already gone is no error)."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as nl:  # NETLINK_ROUTE
        for seq, (address, dev) in enumerate(entries, 1):
            try:
                index = socket.if_nametoindex(dev)
            except OSError:
                continue
            six = ":" in address
            family = socket.AF_INET6 if six else socket.AF_INET
            raw = socket.inet_pton(family, address)
            body = struct.pack("=BBHiHBB", family, 0, 0, index, 0, 0, 0)
            body += struct.pack("=HH", 4 + len(raw), _NDA_DST) + raw
            flags = _NLM_F_REQUEST | _NLM_F_ACK
            nl.send(struct.pack("=IHHII", 16 + len(body), _RTM_DELNEIGH, flags, seq, 0) + body)
            nl.recv(65536)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int) -> bytes:
    """An ICMP echo request with its checksum."""
    payload = b"netnskit-probe"
    header = struct.pack("!BBHHH", _ECHO, 0, 0, ident, seq)
    return struct.pack("!BBHHH", _ECHO, 0, _checksum(header + payload), ident, seq) + payload


def parse_icmp(packet: bytes) -> tuple[str, int, str, str] | None:
    """(kind, ident, target, detail) of an echo reply or an unreachable about one of our requests (IP header first)."""
    ihl = (packet[0] & 0x0F) * 4
    icmp = packet[ihl:]
    if len(icmp) < 8:
        return None
    sender = socket.inet_ntoa(packet[12:16])
    if icmp[0] == _ECHO_REPLY:
        return "reply", struct.unpack("!H", icmp[4:6])[0], sender, ""
    inner = icmp[8:]
    if icmp[0] != _UNREACHABLE or len(inner) < 20:
        return None
    inner_ihl = (inner[0] & 0x0F) * 4
    if len(inner) < inner_ihl + 8 or inner[inner_ihl] != _ECHO:
        return None
    ident = struct.unpack("!H", inner[inner_ihl + 4 : inner_ihl + 6])[0]
    text = _UNREACHABLE_TEXT.get(icmp[1], f"Dest Unreachable, Bad Code: {icmp[1]}")
    return "unreachable", ident, socket.inet_ntoa(inner[16:20]), f"From {sender}: {text}"


def echo_request6(ident: int, seq: int) -> bytes:
    """An ICMPv6 echo request (the kernel fills in the checksum of a raw ICMPv6 socket)."""
    return struct.pack("!BBHHH", _ECHO6, 0, 0, ident, seq) + b"netnskit-probe"


def parse_icmp6(packet: bytes, sender: str) -> tuple[str, int, str, str] | None:
    """(kind, ident, target, detail) of an ICMPv6 echo reply or unreachable about one of our requests.

    A raw ICMPv6 socket gets the ICMPv6 message without the IPv6 header; ``sender`` is where it came from.
    """
    if len(packet) < 8:
        return None
    if packet[0] == _ECHO6_REPLY:
        return "reply", struct.unpack("!H", packet[4:6])[0], sender, ""
    inner = packet[8:]  # the offending packet: its IPv6 header (40 bytes), then our echo request
    if packet[0] != _UNREACHABLE6 or len(inner) < 48 or inner[40] != _ECHO6:
        return None
    ident = struct.unpack("!H", inner[44:46])[0]
    target = socket.inet_ntop(socket.AF_INET6, inner[24:40])
    text = _UNREACHABLE6_TEXT.get(packet[1], f"Destination unreachable: Unknown code {packet[1]}")
    return "unreachable", ident, target, f"From {sender}: {text}"


@dataclass
class _Source:
    name: str
    targets: dict[str, Target]
    ident: int = 0
    sock: socket.socket | None = None
    sock6: socket.socket | None = None  # opened where the source has an IPv6 target


@dataclass
class _Places:
    """The namespaces a round touches, entered from ``home``, and their neighbour tables before it."""

    netns_dir: str
    home: int
    host_devs: frozenset[str]
    before: dict[str | None, dict[tuple[str, str], bool]] = field(default_factory=dict)

    @contextlib.contextmanager
    def inside(self, name: str | None) -> Iterator[None]:
        """In namespace ``name`` (None: home)."""
        if name is None:
            yield
        else:
            with _inside(os.path.join(self.netns_dir, name), self.home):
                yield

    def table(self, name: str | None) -> dict[tuple[str, str], bool]:
        """The neighbour entries of ``name`` that a round counts (at home: only on the host devices)."""
        with self.inside(name):
            found = _arp()
        return found if name is not None else {k: v for k, v in found.items() if k[1] in self.host_devs}

    def clean(self, name: str | None) -> tuple[int, int]:
        """Delete the entries added since ``before``; (entries there were, added entries still there)."""
        now = self.table(name)
        added = [key for key in now if key not in self.before[name]]
        if not added:
            return len(now), 0
        with self.inside(name):
            _delete_neighbours(added)
        return len(now), sum(1 for key in self.table(name) if key not in self.before[name])


def ping(
    specs: Sequence[str], tries: int, wait: float, netns_dir: str, touch: Sequence[str], host_devs: Sequence[str]
) -> int:
    """Probe every ``NS=ADDR,...`` at once; print a line per target and the neighbour figures; 0 if all answered."""
    sources: list[_Source] = []
    for spec in specs:
        name, _, addresses = spec.partition("=")
        sources.append(_Source(name, {a: Target(name, a) for a in addresses.split(",") if a}))
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    places = _Places(netns_dir, home, frozenset(host_devs))
    try:
        names: list[str | None] = [None, *dict.fromkeys([s.name for s in sources] + list(touch))]
        for place in names:
            with contextlib.suppress(OSError):  # a namespace that is gone: its probes say so below
                places.before[place] = places.table(place)
        for index, source in enumerate(sources):
            source.ident = (os.getpid() * 31 + index) & 0xFFFF
            try:
                with places.inside(source.name):
                    source.sock = _icmp_socket()
                    if any(":" in address for address in source.targets):
                        source.sock6 = _icmp6_socket()
            except OSError as exc:
                for target in source.targets.values():
                    target.final, target.outcome = True, "error"
                    target.detail = f"cannot enter namespace {source.name}: {exc.strerror or exc}"
        _exchange(sources, tries, wait)
        _explain_silence(places, sources)
        figures = {"before": sum(len(t) for t in places.before.values()), "peak": 0, "left": 0}
        for place in places.before:
            there, left = places.clean(place)
            figures["peak"] += there
            figures["left"] += left
    finally:
        for source in sources:
            for sock in (source.sock, source.sock6):
                if sock is not None:
                    sock.close()
        _setns(home)
        os.close(home)
    targets = [t for s in sources for t in s.targets.values()]
    for target in targets:
        print(json.dumps(target.record()))
    print(json.dumps({"neighbours": figures}), flush=True)
    return 0 if all(t.ok for t in targets) else 1


def _icmp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    # only echo replies and unreachables reach us, not the namespace's other ICMP traffic
    wanted = (1 << _ECHO_REPLY) | (1 << _UNREACHABLE)
    sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("I", ~wanted & 0xFFFFFFFF))
    sock.setblocking(False)
    return sock


def _icmp6_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    # only echo replies and unreachables reach us (a set bit blocks its type)
    words = [0xFFFFFFFF] * 8
    for kind in (_ECHO6_REPLY, _UNREACHABLE6):
        words[kind >> 5] &= ~(1 << (kind & 31))
    sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("8I", *words))
    sock.setblocking(False)
    return sock


def _exchange(sources: Sequence[_Source], tries: int, wait: float) -> None:
    live = [s for s in sources if s.sock is not None]
    by_fd = {s.sock.fileno(): s for s in live if s.sock is not None}
    six = {s.sock6.fileno(): s for s in live if s.sock6 is not None}

    def send(target: Target, attempt: int) -> None:
        source = next(s for s in live if s.name == target.source)
        v6 = ":" in target.address
        sock = source.sock6 if v6 else source.sock
        assert sock is not None
        request = echo_request6(source.ident, attempt) if v6 else echo_request(source.ident, attempt)
        try:
            sock.sendto(request, (target.address, 0))
        except OSError as exc:
            target.send_failed(exc)

    def receive(left: float) -> None:
        poller = select.poll()
        for fd, source in [*by_fd.items(), *six.items()]:
            if any(t.waiting for t in source.targets.values()):
                poller.register(fd, select.POLLIN)
        for fd, _ in poller.poll(max(1, int(left * 1000))):
            source = six.get(fd) or by_fd[fd]
            sock = source.sock6 if fd in six else source.sock
            assert sock is not None
            while True:
                try:
                    packet, sender = sock.recvfrom(65536)
                except BlockingIOError:
                    break
                except OSError:  # an error the kernel queued on the socket; its ICMP packet comes too
                    continue
                _settle(source, parse_icmp6(packet, sender[0]) if fd in six else parse_icmp(packet))

    run_tries([t for s in live for t in s.targets.values()], send, receive, tries, wait)


def _settle(source: _Source, parsed: tuple[str, int, str, str] | None) -> None:
    if parsed is None:
        return
    kind, ident, address, detail = parsed
    target = source.targets.get(address)
    if ident != source.ident or target is None or target.final:
        return
    if kind == "reply":
        target.replied()
    else:
        target.unreachable(detail)


def _explain_silence(places: _Places, sources: Sequence[_Source]) -> None:
    """Say, for a target that never answered, what its source's neighbour table knows of it."""
    for source in sources:
        silent = [t for t in source.targets.values() if t.outcome == "no reply"]
        if not silent or source.sock is None:
            continue
        table = places.table(source.name)
        for target in silent:
            known = [done for (address, _), done in table.items() if address == target.address]
            target.detail = f"no reply to {target.tries} tries"
            if known and known[0]:
                target.detail += "; its MAC address is known: the requests or the replies were lost or dropped"
            elif known:
                asked = "neighbour discovery" if ":" in target.address else "ARP"
                target.detail += f"; nothing answered {asked} for it (the neighbour entry is incomplete)"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``serve``, ``connect`` or ``ping``."""
    parser = argparse.ArgumentParser(prog="python -m netnskit.probe")
    sub = parser.add_subparsers(dest="verb", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--proto", choices=("tcp", "udp"), default="tcp")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--bind", default="0.0.0.0")
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--timeout", type=float, default=20.0)
    c = sub.add_parser("connect")
    c.add_argument("--proto", choices=("tcp", "udp"), default="tcp")
    c.add_argument("host")
    c.add_argument("port", type=int)
    c.add_argument("--timeout", type=float, default=3.0)
    c.add_argument("--message", default="hello")
    c.add_argument("--connect-only", action="store_true", help="TCP: the handshake alone, nothing sent")
    p = sub.add_parser("ping")
    p.add_argument("--tries", type=int, default=3)
    p.add_argument("--wait", type=float, default=1.0)
    p.add_argument("--netns-dir", default="/run/netns")
    p.add_argument("--touch", action="append", default=[])
    p.add_argument("--host-dev", action="append", default=[])
    p.add_argument("specs", nargs="+", metavar="NS=ADDR[,ADDR...]")
    args = parser.parse_args(argv)
    if args.verb == "serve":
        return serve(args.proto, args.port, args.bind, args.count, args.timeout)
    if args.verb == "ping":
        return ping(args.specs, args.tries, args.wait, args.netns_dir, args.touch, args.host_dev)
    return connect(args.proto, args.host, args.port, args.timeout, args.message, args.connect_only)


if __name__ == "__main__":
    sys.exit(main())

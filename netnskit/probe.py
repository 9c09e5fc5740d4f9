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

A probe sends only to the address it is given; callers give addresses inside their sandbox.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time


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


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``serve`` or ``connect``."""
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
    args = parser.parse_args(argv)
    if args.verb == "serve":
        return serve(args.proto, args.port, args.bind, args.count, args.timeout)
    return connect(args.proto, args.host, args.port, args.timeout, args.message, args.connect_only)


if __name__ == "__main__":
    sys.exit(main())

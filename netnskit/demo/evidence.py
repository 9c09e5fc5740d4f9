"""Evidence: independent reads and real packets, each run inside a namespace of the sandbox.

Real ICMP (``ping``) and the kernel's own counter of echo requests (``/proc/net/snmp``), a real
TCP exchange through :mod:`netnskit.probe` whose server reports the peer it saw, and a real HTTP
GET with urllib. The checks in :mod:`netnskit.demo.checks` turn these into checked facts.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import sys
from typing import Any

import attrs

from netnskit.netns import exec_argv
from netnskit.runner import Process, Runner, end_process, read_line
from netnskit.sandbox import Sandbox

__all__ = [
    "Exchange",
    "Fetch",
    "PingResult",
    "end_server",
    "http_fetch",
    "icmp_echo_requests",
    "ping",
    "tcp_exchange",
]


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


def ping(
    runner: Runner,
    netns: str | None,
    address: str,
    *,
    count: int = 1,
    wait: float = 1.0,
    deadline: float | None = None,
) -> PingResult:
    """Ping ``address`` from ``netns`` (None: the host) with real ICMP echo requests.

    ``count`` requests, each waited for ``wait`` s; or, with ``deadline``, requests every 0.2 s
    until ``count`` replies came back or ``deadline`` s passed (``ping -c COUNT -w DEADLINE``):
    a loaded host that drops or delays a first request (its ARP, say) is not taken for an
    unreachable one.
    """
    if deadline is None:
        argv = ["ping", "-n", "-c", str(count), "-i", "0.2", "-W", str(wait), address]
        limit = 10 + count * (wait + 0.2)
    else:
        # ping's -w takes whole seconds
        argv = ["ping", "-n", "-c", str(count), "-i", "0.2", "-w", str(max(1, math.ceil(deadline))), address]
        limit = 10 + deadline
    result = runner.run(exec_argv(netns, argv), timeout=limit)
    found = _PING_STATS.search(result.stdout)
    sent, received = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
    error = "" if found else (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
    return PingResult(sent, received, error)


def icmp_echo_requests(runner: Runner, netns: str | None) -> int:
    """How many ICMP echo requests ``netns`` has received (``Icmp: InEchos`` in /proc/net/snmp)."""
    text = runner.run(exec_argv(netns, ["cat", "/proc/net/snmp"])).check("reading /proc/net/snmp").stdout
    rows = [line.split()[1:] for line in text.splitlines() if line.startswith("Icmp:")]
    names, values = rows[0], rows[1]
    return int(values[names.index("InEchos")])


def end_server(proc: Process) -> str:
    """End a background process started in the sandbox (by its own handle); return its stderr."""
    # not just end_process: it closes stderr, which can be read only once the process is dead (else it blocks)
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
    box: Sandbox,
    server_netns: str | None,
    client_netns: str | None,
    address: str,
    port: int,
    *,
    timeout: float = 3.0,
) -> Exchange:
    """A real TCP connection from ``client_netns`` to ``address:port`` served in ``server_netns``."""
    serve = _probe("serve", "--proto", "tcp", "--port", str(port), "--count", "1", "--timeout", str(timeout + 10))
    server = box.start(serve, netns=server_netns)
    try:
        if read_line(server.stdout, 10) != "ready":
            return Exchange(False, "", None, f"the probe server did not start: {end_server(server)}")
        connect = _probe("connect", "--proto", "tcp", "--timeout", str(timeout), address, str(port))
        result = box.runner.run(exec_argv(client_netns, connect), timeout=timeout + 10)
        lines = result.stdout.strip().splitlines()
        answer: dict[str, Any] = json.loads(lines[-1]) if lines else {"ok": False, "error": result.stderr.strip()}
        peer = None
        if answer.get("ok"):
            line = read_line(server.stdout, 5)
            peer = str(json.loads(line)["peer"][0]) if line else None
        return Exchange(bool(answer.get("ok")), str(answer.get("reply", "")), peer, str(answer.get("error", "")))
    finally:
        end_server(server)


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
    result = runner.run(exec_argv(netns, [sys.executable, "-c", _FETCH, url, str(timeout)]), timeout=timeout + 10)
    lines = result.stdout.strip().splitlines()
    answer: dict[str, Any] = json.loads(lines[-1]) if lines else {"ok": False, "error": result.stderr.strip()}
    return Fetch(
        bool(answer["ok"]), int(answer.get("status", 0)), str(answer.get("body", "")), str(answer.get("error", ""))
    )

"""Packet captures: ``tcpdump -i IFNAME -w PATH`` run where the interface is, through the runner.

:func:`start_capture` starts tcpdump (``Runner.start``, in the interface's namespace) and returns
once tcpdump says it listens, so no packet sent after it returns is missed. The pcap file is
written packet by packet (``-U``), so it can be read while the capture runs; ``stop()`` ends
tcpdump with SIGTERM (it flushes and prints how many packets it captured). ``Network.capture``
and ``netnskit capture FILE LINK`` use it; read the file with ``tcpdump -r PATH`` or Wireshark.
"""

from __future__ import annotations

import os
import re
import select
import time
from types import TracebackType

import attrs

from netnskit import _validate as v
from netnskit.errors import CommandNotFoundError, ValidationError, error_for
from netnskit.runner import Process, Runner, terminate

__all__ = ["Capture", "start_capture", "tcpdump_argv"]

_COUNT = re.compile(r"(\d+) packets? captured")


def tcpdump_argv(ifname: str, path: str, *, count: int | None = None) -> list[str]:
    """``tcpdump -i IFNAME -w PATH -U --immediate-mode [-c COUNT]``: every packet, written as it comes."""
    argv = ["tcpdump", "-i", v.ifname(ifname), "-w", path, "-U", "--immediate-mode"]
    if count is not None:
        argv += ["-c", str(count)]
    return argv


@attrs.define(eq=False)
class Capture:
    """A running tcpdump: where it listens, the pcap file, and how to stop it."""

    netns: str | None
    interface: str
    path: str
    process: Process = attrs.field(repr=False)
    duration: float | None = None
    started: float = attrs.field(factory=time.monotonic, repr=False)
    packets: int | None = None  # what tcpdump said it captured, once it has ended
    output: str = ""  # what tcpdump printed on stderr

    @property
    def running(self) -> bool:
        """True while tcpdump runs."""
        return self.process.poll() is None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the end: tcpdump's own (``count`` packets), the ``duration``, or ``timeout`` seconds.

        When the duration is over the capture is stopped. True once tcpdump has ended.
        """
        ends = [] if timeout is None else [time.monotonic() + timeout]
        if self.duration is not None:
            ends.append(self.started + self.duration)
        deadline = min(ends) if ends else None
        while self.running and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.05)
        if self.running and self.duration is not None and time.monotonic() >= self.started + self.duration:
            self.stop()
        elif not self.running:
            self._finish()
        return not self.running

    def stop(self, timeout: float = 5.0) -> int | None:
        """End tcpdump (SIGTERM: it flushes the file; SIGKILL after ``timeout``); the packets it captured."""
        terminate(self.process, timeout)
        self._finish()
        return self.packets

    def _finish(self) -> None:
        stream = self.process.stderr
        if stream is not None and not stream.closed:
            ready, _, _ = select.select([stream], [], [], 1.0)
            self.output += stream.read() if ready else ""
            stream.close()
        for other in (self.process.stdin, self.process.stdout):
            if other is not None:
                other.close()
        found = _COUNT.search(self.output)
        if found is not None:
            self.packets = int(found.group(1))

    def __enter__(self) -> Capture:
        """The running capture."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the capture."""
        self.stop()


def start_capture(
    runner: Runner,
    netns: str | None,
    ifname: str,
    path: str | os.PathLike[str],
    *,
    count: int | None = None,
    duration: float | None = None,
    timeout: float = 10.0,
) -> Capture:
    """Start tcpdump on ``ifname`` in ``netns`` (None: the host) writing ``path``; returns once it listens."""
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValidationError("capture count", count, "must be a positive integer")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int | float) or duration <= 0):
        raise ValidationError("capture duration", duration, "must be a positive number of seconds")
    target = os.path.abspath(os.fspath(path))  # tcpdump's working folder is not ours (nsenter --mount)
    argv = tcpdump_argv(ifname, target, count=count)
    proc = runner.start(argv, netns=netns)
    capture = Capture(netns, ifname, target, proc, duration)
    said = ""
    deadline = time.monotonic() + timeout
    stream = proc.stderr
    while stream is not None and time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = stream.readline()
        said += line
        if "listening on" in line or not line:
            break
    capture.output = said
    if "listening on" not in said:
        capture.stop()
        where = f"in namespace {netns!r}" if netns else "on the host"
        code = proc.poll()
        if code == 127:
            raise CommandNotFoundError("tcpdump", "tcpdump")
        raise error_for(argv, code or -1, "", capture.output, f"capturing on {ifname} {where}")
    return capture

"""Locks of ``up``, ``down`` and ``cleanup`` with a plain LiveRunner: abstract unix sockets, freed if the process dies.

A per-network claim (a second process changing the same network fails at once) and a host-wide
claim, waited for. Other runners (ssh, nsenter, sudo prefixes) take no lock.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import socket
import time
from collections.abc import Iterator

from netnskit.errors import NetnskitError
from netnskit.network.spec import mark_for
from netnskit.runner import LiveRunner, Runner

_HOST_CLAIM = "netnskit host lock"
_LOCK_WAIT = 120.0


def _claim(name: str) -> socket.socket | None:
    """Bind the abstract unix socket ``name``: the socket while held by nobody else, else None."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # abstract: per network namespace, gone with the process, nothing on disk; at most 107 bytes
        key = name if len(name.encode()) <= 100 else "netnskit:#" + hashlib.sha256(name.encode()).hexdigest()
        sock.bind("\0" + key)
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        return None
    return sock


@contextlib.contextmanager
def _exclusive(runner: Runner, name: str | None) -> Iterator[None]:
    """Claim network ``name`` (fail at once if another process has it), then take the host lock.

    Only for a plain LiveRunner: other runners act elsewhere (see the module docstring).
    """
    if type(runner) is not LiveRunner:
        yield
        return
    with contextlib.ExitStack() as stack:
        if name is not None:
            mine = _claim(mark_for(name))
            if mine is None:
                raise NetnskitError(
                    f"network {name!r} is being changed by another process on this host (it holds the "
                    f"claim {mark_for(name)!r}); try again when that process is done"
                )
            stack.callback(mine.close)
        deadline = time.monotonic() + _LOCK_WAIT
        while (host := _claim(_HOST_CLAIM)) is None:
            if time.monotonic() > deadline:
                raise NetnskitError(f"another netnskit process has held the host lock for {_LOCK_WAIT:.0f} s")
            time.sleep(0.01)
        stack.callback(host.close)
        yield

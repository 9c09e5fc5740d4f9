"""Locks of ``up``, ``down`` and ``cleanup``: ``flock`` on root-owned files, freed by the kernel if the process dies.

The lock is taken for the place the runner acts in, whatever the runner: that place's network
namespace is read through the runner itself (``readlink /proc/self/ns/net``), so a sandbox, an
nsenter or sudo prefix and a plain LiveRunner each lock their own host. The files live in
``/run/netnskit`` (mode 0700, owned by root): a user who is not root can neither create nor hold
them. A per-network claim fails at once when another process holds it; the host-wide claim is
waited for (networks share the firewall's chains and sysctls). Two controllers of one remote
host (ssh) are serialized only when they run on the same machine. A runner that reaches another
machine names it (``machine``: :class:`~netnskit.runner.SshRunner`'s destination), and the place
is keyed by that name too: namespace inode numbers repeat from machine to machine (every host's
first namespace has the same one), so hosts of a cluster driven at once must not share a lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator

from netnskit._rundir import LOCK_DIR, _safe_dir, lock_dir, place_of
from netnskit.errors import BusyError
from netnskit.interrupt import Interrupt
from netnskit.network.spec import mark_for
from netnskit.runner import Runner

__all__ = ["LOCK_DIR", "lock_dir", "place_of"]

_LOCK_WAIT = 120.0


def _open(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


@contextlib.contextmanager
def _exclusive(
    runner: Runner,
    name: str | None,
    *,
    wait: float = _LOCK_WAIT,
    host: bool = True,
    interrupt: Interrupt | None = None,
) -> Iterator[None]:
    """Claim network ``name`` where ``runner`` acts (fail at once if another process has it), then the host lock.

    ``host=False`` takes the network's claim only: for changes that touch nothing networks share
    (an impairment, a cable cut), so a long fault schedule does not hold up other networks. The host
    lock is waited for: a requested ``interrupt`` ends the wait with Interrupted, nothing done.
    """
    folder = _safe_dir(lock_dir())
    place = place_of(runner)
    with contextlib.ExitStack() as stack:
        if name is not None:
            key = hashlib.sha256(name.encode()).hexdigest()[:24]
            mine = _open(os.path.join(folder, f"net-{place}.network-{key}.lock"))
            stack.callback(os.close, mine)
            if not _try_lock(mine):
                raise BusyError(
                    f"network {name!r} is being changed by another process on this host (it holds the "
                    f"claim {mark_for(name)!r}); try again when that process is done"
                )
        if not host:
            yield
            return
        shared = _open(os.path.join(folder, f"net-{place}.host.lock"))
        stack.callback(os.close, shared)
        deadline = time.monotonic() + wait
        while not _try_lock(shared):
            if interrupt is not None:
                interrupt.check("waiting for another netnskit process to finish with this host")
            if time.monotonic() > deadline:
                raise BusyError(f"another netnskit process has held the host lock for {wait:.0f} s")
            time.sleep(0.01)
        yield

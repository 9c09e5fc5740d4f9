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
import re
import stat
import time
from collections.abc import Iterator

from netnskit.errors import BusyError, NetnskitError
from netnskit.interrupt import Interrupt
from netnskit.network.spec import mark_for
from netnskit.runner import Runner

LOCK_DIR = "/run/netnskit"
_LOCK_WAIT = 120.0
_PLACE = re.compile(r"net:\[(\d+)\]")


def lock_dir() -> str:
    """Where the lock files are: ``$NETNSKIT_LOCK_DIR``, else ``/run/netnskit`` for root, else the user's own."""
    if os.environ.get("NETNSKIT_LOCK_DIR"):
        return os.environ["NETNSKIT_LOCK_DIR"]
    if os.geteuid() == 0:
        return LOCK_DIR
    return os.path.join(os.environ.get("XDG_RUNTIME_DIR") or "/tmp", f"netnskit-{os.geteuid()}")


def _safe_dir(path: str) -> str:
    """Make ``path`` (mode 0700) or check it: ours, not a link, writable by nobody else."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise NetnskitError(
            f"refusing the lock folder {path}: it must be a folder owned by uid {os.geteuid()} that no one else "
            f"may write to (it is uid {info.st_uid}, mode {stat.filemode(info.st_mode)}); remove it and try again"
        )
    return path


def place_of(runner: Runner, *, strict: bool = False) -> str:
    """The network namespace the runner acts in (its inode number), read through the runner;
    prefixed by a hash of the machine a remote runner names (its ``machine``), if it names one.

    A failed read gives ``unknown``, or with ``strict`` raises (a process marked with a wrong place
    would be hidden from ``down``).
    """
    result = runner.run(["readlink", "/proc/self/ns/net"])
    if strict:
        result.check("reading which network namespace the runner acts in")
    found = _PLACE.search(result.stdout) if result.ok else None
    place = found.group(1) if found else "unknown"
    machine = getattr(runner, "machine", None)
    if isinstance(machine, str) and machine:
        return f"{hashlib.sha256(machine.encode()).hexdigest()[:16]}-{place}"
    return place


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

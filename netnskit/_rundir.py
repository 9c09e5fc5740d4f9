"""The folder netnskit keeps its run-time files in (locks, remembered sysctl values), and the place a runner acts in.

A place is the network namespace the runner's commands reach, read through the runner itself
(``readlink /proc/self/ns/net``): a plain LiveRunner, a sandbox and an nsenter or sudo prefix each
have their own. Files are keyed by it, so one folder serves every host this machine controls.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat

from netnskit.errors import NetnskitError
from netnskit.runner import Runner

LOCK_DIR = "/run/netnskit"
_PLACE = re.compile(r"net:\[(\d+)\]")


def lock_dir() -> str:
    """Where the run-time files are: ``$NETNSKIT_LOCK_DIR``, else ``/run/netnskit`` for root, else the user's own."""
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
    # Namespace inode numbers repeat from machine to machine: a remote host's place is keyed by its name too.
    machine = getattr(runner, "machine", None)
    if isinstance(machine, str) and machine:
        return f"{hashlib.sha256(machine.encode()).hexdigest()[:16]}-{place}"
    return place

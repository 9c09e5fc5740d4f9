"""Whether this process may change the host's network: one message for "not root", wherever it is found.

Namespaces, links and firewall rules need CAP_NET_ADMIN; a named namespace is a mount, and
entering one needs CAP_SYS_ADMIN: root has both. Read from ``/proc/self/status`` (``CapEff``), so
a root without them (a container that dropped them) is told too.
"""

from __future__ import annotations

import os

NEEDS_ROOT = "needs root (CAP_NET_ADMIN): run as root"
_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21


def _effective(status: str) -> int | None:
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return None


def privilege_problem(status_path: str = "/proc/self/status") -> str | None:
    """:data:`NEEDS_ROOT` when this process lacks CAP_NET_ADMIN or CAP_SYS_ADMIN, else None."""
    try:
        with open(status_path, encoding="ascii", errors="replace") as handle:
            caps = _effective(handle.read())
    except OSError:
        caps = None
    if caps is None:  # no /proc: fall back on the user id
        return None if os.geteuid() == 0 else NEEDS_ROOT
    wanted = (1 << _CAP_NET_ADMIN) | (1 << _CAP_SYS_ADMIN)
    return None if caps & wanted == wanted else NEEDS_ROOT

"""The kernel's IPv4 neighbour table and a network's share of it: the limits, the need, the warning.

The table (the ARP cache) is one for the whole machine: the entries of every namespace count
together against ``net.ipv4.neigh.default.gc_thresh1/2/3`` (128, 512 and 1024 by default). Above
gc_thresh2 the kernel evicts any namespace's entries older than 5 s; at gc_thresh3 it cannot add
one ("neighbour table overflow"), and new ARP resolutions fail everywhere on the machine, other
networks and the host included. Each IPv4 exchange between two namespaces on a link costs an
entry on each side.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import attrs

from netnskit import _ipjson
from netnskit.errors import NetnskitError
from netnskit.runner import Runner

if TYPE_CHECKING:
    from netnskit.network.network import Network

__all__ = ["ROUND_CAP", "SYSCTLS", "NeighbourLimits", "NeighbourNeed", "neighbour_warning", "warn_if_short"]

log = logging.getLogger("netnskit")

SYSCTLS = (
    "net.ipv4.neigh.default.gc_thresh1",
    "net.ipv4.neigh.default.gc_thresh2",
    "net.ipv4.neigh.default.gc_thresh3",
)
NTABLE = ("ntable", "show", "name", "arp_cache")  # with -s: its thresholds and entries, machine-wide
KERNEL_DEFAULTS = (128, 512, 1024)
# one round of check holds at most this many entries: a quarter of the default hard limit
ROUND_CAP = 256


@attrs.frozen
class NeighbourLimits:
    """The machine-wide limits of the IPv4 neighbour table and the entries in use now (None: not readable here)."""

    gc_thresh1: int
    gc_thresh2: int
    gc_thresh3: int
    in_use: int | None = None
    assumed: bool = False  # neither ip nor sysctl could read them here: the kernel's defaults

    table_fulls: int | None = None  # times the table was full since boot (each an overflow), when readable

    @classmethod
    def read(cls, runner: Runner) -> NeighbourLimits:
        """Read the limits and the entries in use through ``runner``: ``ip -s -j ntable show name arp_cache``.

        ``ip ntable`` answers in any network namespace; where it cannot (an old ``ip``), ``sysctl -n``
        (visible only from the machine's first namespace), else the kernel's defaults, said to be assumed.
        """
        table = _ipjson.try_read(runner, None, *NTABLE, flags=["-s"]) or []
        found = next((d for d in table if "thresh3" in d and "dev" not in d), None)
        if found is not None:
            values = [found.get(key) for key in ("thresh1", "thresh2", "thresh3", "entries", "table_fulls")]
            if all(isinstance(v, int) for v in values[:3]):
                t1, t2, t3, entries, fulls = values
                return cls(int(t1 or 0), int(t2 or 0), int(t3 or 0), _int(entries), table_fulls=_int(fulls))
        try:
            result = runner.run(["sysctl", "-n", *SYSCTLS])
        except NetnskitError as exc:  # no sysctl either
            log.debug("reading the neighbour table's limits: %s", exc)
        else:
            words = result.stdout.split() if result.ok else []
            if len(words) == 3 and all(w.isascii() and w.isdigit() for w in words):
                return cls(int(words[0]), int(words[1]), int(words[2]))
        return cls(*KERNEL_DEFAULTS, assumed=True)

    @property
    def room(self) -> int:
        """Entries the machine may add before the kernel starts evicting (gc_thresh2 less those in use)."""
        return max(0, min(self.gc_thresh2, self.gc_thresh3) - (self.in_use or 0))

    def round_budget(self) -> int:
        """Entries one round of a check may hold: half the room (the rest stays the machine's), at most ROUND_CAP."""
        return min(ROUND_CAP, self.room // 2)

    def describe(self) -> str:
        """The limits and the use, in words."""
        use = "unknown from here" if self.in_use is None else str(self.in_use)
        where = " (assumed: the kernel's defaults; they could not be read from here)" if self.assumed else ""
        return (
            f"net.ipv4.neigh.default.gc_thresh2 = {self.gc_thresh2}, gc_thresh3 = {self.gc_thresh3}{where}; "
            f"in use now on the whole machine: {use}"
        )

    def raise_command(self, need: int) -> str:
        """The sysctl command that makes room for ``need`` more entries (with twice the margin)."""
        total = 2 * (need + (self.in_use or 0))
        thresh3 = max(self.gc_thresh3, 1 << max(0, total - 1).bit_length())
        return (
            f"sysctl -w net.ipv4.neigh.default.gc_thresh2={max(self.gc_thresh2, thresh3 // 2)} "
            f"net.ipv4.neigh.default.gc_thresh3={thresh3}"
        )


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@attrs.frozen
class NeighbourNeed:
    """The entries a network may hold: its namespaces with their gateway, their probe peers, its other links."""

    namespaces: int
    peers: int  # each namespace's peers in check's probe plan
    links: int  # veth links beside the bridge

    @classmethod
    def of(cls, net: Network, peers: int = 2) -> NeighbourNeed:
        """The need of ``net`` when each namespace talks to its gateway and ``peers`` others."""
        count = len(net.namespaces)
        return cls(count, min(max(0, peers), max(0, count - 1)), len(net.links))

    @property
    def gateway(self) -> int:
        """Each namespace's entry for the gateway, and the bridge's for it."""
        return 2 * self.namespaces

    @property
    def peer_entries(self) -> int:
        """Two per namespace and peer: each side learns the other."""
        return 2 * self.namespaces * self.peers

    @property
    def total(self) -> int:
        """Every entry together."""
        return self.gateway + self.peer_entries + 2 * self.links

    def describe(self) -> str:
        """The need and where it comes from, in words."""
        parts = [f"{self.namespaces} namespaces and their gateway: {self.gateway}"]
        if self.peer_entries:
            parts.append(f"{self.peers} peers each: {self.peer_entries}")
        if self.links:
            parts.append(f"{self.links} links: {2 * self.links}")
        return f"{self.total} IPv4 neighbour entries ({'; '.join(parts)})"


def neighbour_warning(name: str, need: NeighbourNeed, limits: NeighbourLimits) -> str | None:
    """The warning for a network whose need, with what is in use, passes gc_thresh2; None when it fits."""
    used = need.total + (limits.in_use or 0)
    if used <= limits.gc_thresh2:
        return None
    over = "gc_thresh3" if used > limits.gc_thresh3 else "gc_thresh2"
    limit = limits.gc_thresh3 if over == "gc_thresh3" else limits.gc_thresh2
    return (
        f"neighbour table: network {name!r} may need {need.describe()}, more than "
        f"net.ipv4.neigh.default.{over} = {limit} allows ({limits.describe()}). The table is shared by every "
        "namespace on this machine: above gc_thresh2 the kernel evicts their entries, at gc_thresh3 new "
        f"ones fail everywhere. Raise the limit on the host: {limits.raise_command(need.total)}"
    )


def warn_if_short(net: Network, peers: int = 2) -> tuple[NeighbourLimits, str | None]:
    """Read the limits through the network's runner; log (warning) and return the warning if the need does not fit."""
    limits = NeighbourLimits.read(net.runner)
    warning = neighbour_warning(net.name, NeighbourNeed.of(net, peers), limits)
    if warning:
        log.warning("%s", warning)
    return limits, warning

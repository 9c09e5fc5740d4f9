"""HostState: what a host's network looks like, read with independent tools, for before/after checks.

Besides the kernel's state it lists what netnskit leaves outside it: the entries under
``/etc/netns`` (a namespace's hosts and resolv.conf) and the processes carrying a netnskit
network's mark where the runner acts (``NETNSKIT_OWNER=netnskit:NAME@PLACE``).
"""

from __future__ import annotations

import json
import re

import attrs

from netnskit import _ipjson
from netnskit.network.locks import place_of
from netnskit.network.spec import MARK_PREFIX
from netnskit.process import OWNER_ENV, marked_pids
from netnskit.runner import Runner

__all__ = ["HostState", "WATCHED_SYSCTLS"]

# Sysctls netnskit may change; a clean teardown puts each back.
WATCHED_SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.ipv6.conf.all.forwarding",
)

# Counts down on routes learnt from router advertisements or DHCP: not a change of the host.
_VOLATILE_ROUTE_KEYS = {"expires"}
_SAVE_NOISE = re.compile(r"^#.*$|\[\d+:\d+\]", re.MULTILINE)


_BUILTIN_ACCEPT = re.compile(r"^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT( \[\d+:\d+\])?$")


def _clean_save(text: str) -> str:
    """iptables-save without timestamps, packet counters and empty tables.

    A table left with only its built-in chains, policy ACCEPT and no rule filters nothing: the
    nft backend keeps it after its last rule is deleted, so it counts as no table.
    """
    lines = [line.rstrip() for line in _SAVE_NOISE.sub("", text).splitlines() if line.strip()]
    kept: list[str] = []
    table: list[str] = []
    for line in lines:
        if line.startswith("*"):
            table = [line]
        elif table and line == "COMMIT":
            if not all(_BUILTIN_ACCEPT.match(entry) for entry in table[1:]):
                kept += [*table, line]
            table = []
        elif table:
            table.append(line)
        else:
            kept.append(line)
    return "\n".join(kept + table)


@attrs.frozen
class HostState:
    """A comparable snapshot: namespaces, links, addresses, routes, sysctls and firewall rules."""

    namespaces: tuple[str, ...]
    links: tuple[str, ...]
    addresses: tuple[str, ...]
    routes: tuple[str, ...]
    sysctls: tuple[tuple[str, str], ...]
    iptables: str
    ip6tables: str
    etc_netns: tuple[str, ...] = ()  # every file and folder under /etc/netns
    processes: tuple[int, ...] = ()  # pids marked by a netnskit network of this place

    @classmethod
    def capture(cls, runner: Runner) -> HostState:
        """Read the host's state through ``runner`` with ip -j, sysctl and iptables-save."""
        namespaces = tuple(sorted(d["name"] for d in _ipjson.netns_list(runner)))
        links = tuple(
            sorted(
                f"{d['ifname']} {d.get('link_type', '')} {d.get('master', '')}"
                for d in _ipjson.read(runner, None, "link", "show")
            )
        )
        addresses = tuple(
            sorted(
                f"{d['ifname']} {a['local']}/{a['prefixlen']}"
                for d in _ipjson.read(runner, None, "addr", "show")
                for a in d.get("addr_info", ())
            )
        )
        routes = tuple(
            sorted(
                json.dumps({k: val for k, val in r.items() if k not in _VOLATILE_ROUTE_KEYS}, sort_keys=True)
                for fam in ("-4", "-6")
                for r in _ipjson.read(runner, None, "route", "show", "table", "all", flags=[fam])
            )
        )
        sysctls = tuple((name, runner.run(["sysctl", "-n", name]).stdout.strip()) for name in WATCHED_SYSCTLS)
        v4 = runner.run(["iptables-save"])
        v6 = runner.run(["ip6tables-save"])
        etc = runner.run(["find", "/etc/netns", "-mindepth", "1"]).stdout.split("\n")
        ours = marked_pids(runner, pattern=f"^{OWNER_ENV}={MARK_PREFIX}.*@{place_of(runner)}$")
        return cls(
            namespaces,
            links,
            addresses,
            routes,
            sysctls,
            _clean_save(v4.stdout),
            _clean_save(v6.stdout),
            tuple(sorted(p for p in etc if p.startswith("/etc/netns/"))),
            tuple(ours),
        )

    def diff(self, other: HostState) -> list[str]:
        """Human-readable differences between two snapshots (empty when identical)."""
        out = []
        for field in attrs.fields(HostState):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            if mine != theirs:
                out.append(f"{field.name}: before={mine!r} after={theirs!r}")
        return out

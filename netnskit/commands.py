"""Typed commands of the tools that configure a place's network: ``ip`` and ``sysctl``.

Objects build their plan commands here, so the knowledge of what an ``ip -batch`` line can carry
lives next to the argv it is made from, not in an executor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from netnskit.plan import Batchable, Command, Resource

__all__ = ["NET", "ip", "link_group_delete", "sysctl"]

NET = "net"  # the channel of a place's network configuration: ip, sysctl, tc keep their order in it

# A word an ``ip -batch`` line carries as it is (ip's makeargs splits on blanks, reads quotes and '#').
_IP_WORD = re.compile(r"[^\s\"'\\#]+\Z")
_IP_MAX_WORDS = 98  # ip's batch reader splits a line into at most 100 words


def ip(
    netns: str | None,
    *words: str,
    flags: Iterable[str] = (),
    creates: Iterable[Resource] = (),
    removes: Iterable[Resource] = (),
) -> Command:
    """``ip [FLAGS] WORDS...`` run in ``netns`` (None: the host), with the batch line it is, if any."""
    options = tuple(flags)
    batchable = 0 < len(words) <= _IP_MAX_WORDS and all(_IP_WORD.match(w) for w in words)
    return Command(
        ("ip", *options, *words),
        netns=netns,
        tool="ip",
        channel=NET,
        batch=Batchable(("ip", *options), " ".join(words)) if batchable else None,
        creates=tuple(creates),
        removes=tuple(removes),
    )


def sysctl(netns: str | None, name: str, value: str, *, barrier: bool = False) -> Command:
    """``sysctl -w NAME=VALUE`` run in ``netns`` (None: the host); runs alone, in its place's order.

    ``barrier``: no channel, so everything planned before it is done first and nothing after it
    starts before it is done (a value whose record lives in another channel, see Sysctl).
    """
    setting = Resource("sysctl", name.replace("/", "."), netns)
    channel = "" if barrier else NET
    return Command(("sysctl", "-w", f"{name}={value}"), netns=netns, tool="sysctl", channel=channel, creates=[setting])


def link_group_delete(group: int) -> Command:
    """``ip link del group G``: every host link of the group in one request."""
    return ip(None, "link", "del", "group", str(group))

"""The one reader of ``ip -j`` output: run it (on the host or in a namespace) and parse the JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from netnskit.errors import NetnskitError
from netnskit.runner import Runner

__all__ = ["NETNS_LIST", "argv", "arrays", "entries", "names", "netns_list", "read", "try_read"]

NETNS_LIST = ("netns", "list")  # `ip -j netns list`: every named namespace, with its nsid once it has one


def argv(netns: str | None, *words: str, flags: Sequence[str] = ()) -> list[str]:
    """``ip [-n NETNS] [FLAGS] -j WORDS...`` (FLAGS: ``-d``, ``-4``, ``-6``)."""
    return ["ip", *(() if netns is None else ("-n", netns)), *flags, "-j", *words]


def entries(text: str) -> list[dict[str, Any]]:
    """The objects of one JSON array (iproute2 prints an empty object first for some filters: dropped)."""
    text = text.strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise NetnskitError(f"ip printed something that is not JSON: {text[:200]!r}") from exc
    return [d for d in data if isinstance(d, dict) and d] if isinstance(data, list) else []


def arrays(text: str) -> list[list[dict[str, Any]]]:
    """The JSON arrays printed one after another by ``ip -j -batch``."""
    decoder = json.JSONDecoder()
    found: list[list[dict[str, Any]]] = []
    at = 0
    text = text.strip()
    while at < len(text):
        data, end = decoder.raw_decode(text, at)
        found.append([d for d in data if isinstance(d, dict) and d] if isinstance(data, list) else [])
        at = end
        while at < len(text) and text[at].isspace():
            at += 1
    return found


def read(
    runner: Runner, netns: str | None, *words: str, flags: Sequence[str] = (), action: str = ""
) -> list[dict[str, Any]]:
    """``ip -j WORDS`` in ``netns`` as a list of objects; raises the mapped CommandError if it fails."""
    result = runner.run(argv(netns, *words, flags=flags))
    return entries(result.check(action or f"reading ip {' '.join(words)}").stdout)


def try_read(runner: Runner, netns: str | None, *words: str, flags: Sequence[str] = ()) -> list[dict[str, Any]] | None:
    """Like :func:`read`, but None where the command fails or prints no JSON."""
    result = runner.run(argv(netns, *words, flags=flags))
    if not result.ok:
        return None
    try:
        return entries(result.stdout)
    except NetnskitError:
        return None


def names(items: Sequence[dict[str, Any]], key: str = "ifname") -> set[str]:
    """The ``key`` values of parsed entries (interface names by default)."""
    return {str(d[key]) for d in items if key in d}


def netns_list(runner: Runner) -> list[dict[str, Any]]:
    """``ip -j netns list``: one object per named namespace (``name``, and ``id`` once it has an nsid)."""
    return read(runner, None, *NETNS_LIST, action="listing namespaces")

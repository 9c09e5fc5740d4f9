"""One host's overlay: its VXLAN link on the network's bridge, marked, up, flooding to every peer.

The steps come after the host's :class:`~netnskit.network.Network` steps (the bridge must exist).
The link carries the network's link group and mark, so the Network's own ``down`` would take it
with the group; after a crash between ``ip link add`` and the mark, a link with our VXLAN name,
our group and no alias is ours too (as :func:`netnskit.network.state._host_link_ours` decides
for the Network's links), and :func:`removal` deletes it from those marks alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any

import attrs

from netnskit import _ipjson
from netnskit.cluster.spec import HostPart
from netnskit.cluster.vxlan import Vxlan, _peers
from netnskit.errors import NotOursError
from netnskit.link import Link
from netnskit.plan import Step

__all__ = ["OverlayFacts", "entries", "ours", "read", "refuse_foreign", "removal"]


@attrs.frozen
class OverlayFacts:
    """The host's VXLAN link as ``ip -d -j link show`` reports it (None: absent) and the peers it floods to."""

    link: dict[str, Any] | None
    peers: frozenset[IPv4Address]


def read(part: HostPart) -> OverlayFacts:
    """Read the VXLAN link and its flood entries through the host's runner (two reads; none without overlay)."""
    vx = part.vxlan
    if vx is None:
        return OverlayFacts(None, frozenset())
    found = _ipjson.try_read(part.runner, vx.netns, "link", "show", "dev", vx.name, flags=["-d"])
    link = found[0] if found else None
    peers = frozenset(_peers(part.runner, vx.netns, vx.name)) if link is not None else frozenset()
    return OverlayFacts(link, peers)


def ours(part: HostPart, link: dict[str, Any]) -> bool:
    """Is this link (our VXLAN name) ours: our mark, or our group and no alias yet (a crash before the mark)?"""
    net = part.network
    alias = link.get("ifalias")
    return alias == net.mark or (not alias and str(link.get("group")) == str(net.group))


def refuse_foreign(part: HostPart, facts: OverlayFacts) -> None:
    """Refuse to adopt a link with our VXLAN name that is not ours."""
    if facts.link is not None and not ours(part, facts.link):
        name = part.vxlan.name if part.vxlan else "?"
        raise NotOursError(
            f"link {name!r} exists on host {part.host.name!r} but is not marked {part.network.mark} (alias "
            f"{facts.link.get('ifalias')!r}); refusing to adopt it"
        )


_Done = Callable[[OverlayFacts], bool]


def _exists(f: OverlayFacts) -> bool:
    return f.link is not None


def _marked_and_up(mark: str, f: OverlayFacts) -> bool:
    return f.link is not None and f.link.get("ifalias") == mark and "UP" in f.link.get("flags", ())


def _floods(peer: IPv4Address, f: OverlayFacts) -> bool:
    return peer in f.peers


def entries(part: HostPart) -> list[tuple[Step, _Done]]:
    """The overlay's steps on this host, each with its ``done`` predicate (none for a cluster of one host)."""
    vx = part.vxlan
    if vx is None:
        return []
    net = part.network
    made = f"create VXLAN {vx.name} (VNI {vx.vni}, local {vx.local}, UDP {vx.port}, MTU {vx.mtu}) on {net.bridge}"
    # a bridge port, as the namespaces' host ends: no IPv6 link-local address unless the network keeps them
    quiet = () if net.link_local else ("addrgenmode", "none")
    link = Link(vx.name, vx.netns, runner=vx.runner)
    out: list[tuple[Step, _Done]] = [
        (Step(made, [vx.create_command()], [vx.delete_command()]), _exists),
        (
            Step(f"mark {vx.name} as {net.mark} and bring it up", [link.set_command("alias", net.mark, *quiet, "up")]),
            functools.partial(_marked_and_up, net.mark),
        ),
    ]
    for peer in part.peers:
        step = Step(
            f"flood {vx.name}'s frames to peer {peer} too", [vx.flood_command(peer)], [vx.unflood_command(peer)]
        )
        out.append((step, functools.partial(_floods, peer)))
    return out


def steps(part: HostPart) -> list[Step]:
    """The overlay's steps on a clean host (pure)."""
    return [step for step, _ in entries(part)]


def removal(part: HostPart, facts: OverlayFacts) -> tuple[list[Step], list[str], list[str]]:
    """From the marks alone: (steps whose undo deletes our VXLAN link, what was already gone, what is left alone)."""
    vx: Vxlan | None = part.vxlan
    if vx is None:
        return [], [], []
    if facts.link is None:
        return [], [f"link {vx.name}"], []
    if not ours(part, facts.link):
        return [], [], [f"link {vx.name} (not marked {part.network.mark}: not ours, left alone)"]
    return [Step(f"link {vx.name}", [], [vx.delete_command()])], [], []

"""Vxlan: a VXLAN link (``ip link add NAME type vxlan id VNI ...``) and its flood list (``bridge fdb``).

A cluster joins its hosts' bridges with one VXLAN device per host, unicast only: no multicast
group, learning off, and one all-zeros FDB entry per peer (``bridge fdb append 00:00:00:00:00:00
dev NAME dst PEER``), so the kernel sends each broadcast, unknown or remote frame to every peer
(head-end replication).
"""

from __future__ import annotations

import zlib
from ipaddress import IPv4Address
from typing import Any

import attrs

from netnskit import _ipjson
from netnskit import _validate as v
from netnskit.commands import NET, ip
from netnskit.errors import AlreadyExistsError, NotFoundError, ValidationError
from netnskit.plan import Batchable, Command, Resource
from netnskit.runner import Runner, default_runner

__all__ = ["FLOOD_MAC", "VXLAN_OVERHEAD", "VXLAN_PORT", "Vxlan", "bridge_command", "vni_for"]

VXLAN_PORT = 4789  # IANA's VXLAN port (the kernel's default is Linux's old 8472: always say it)
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8: the overlay MTU is the underlay's less this
FLOOD_MAC = "00:00:00:00:00:00"  # the FDB entry a VXLAN device sends unknown and broadcast frames by
_VNI_MAX = 2**24 - 1


def vni_for(name: str) -> int:
    """The VXLAN network identifier of network ``name``: ``1 + crc32("netnskit:NAME") mod (2**24 - 2)``.

    Deterministic (every host and every run derive the same one from the file), 24 bits, never 0
    and never 2**24-1; two networks may collide (1 chance in 16.7 million): give ``vni`` then.
    """
    return 1 + zlib.crc32(f"netnskit:{name}".encode()) % (_VNI_MAX - 1)


def _vni(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _VNI_MAX:
        raise ValidationError("VNI", value, f"must be an integer from 1 to {_VNI_MAX}")
    return value


def _v4(value: object) -> IPv4Address:
    addr = v.ip_address(value)
    if not isinstance(addr, IPv4Address):
        raise ValidationError("underlay address", str(value), "must be IPv4")
    return addr


def bridge_command(netns: str | None, *words: str, creates: Any = (), removes: Any = ()) -> Command:
    """``bridge WORDS...`` (iproute2's bridge tool) in ``netns``: the place's net channel, ``bridge -batch -`` lines."""
    return Command(
        ("bridge", *words),
        netns=netns,
        tool="bridge",
        channel=NET,
        batch=Batchable(("bridge",), " ".join(words)),
        creates=tuple(creates),
        removes=tuple(removes),
    )


@attrs.frozen
class Vxlan:
    """A VXLAN link: VNI ``vni`` over UDP ``port`` from the underlay address ``local``, learning off.

    ``master`` attaches it to a bridge and ``group`` puts it in a link group in the request that
    makes it; ``mtu`` should be the underlay's less :data:`VXLAN_OVERHEAD`.
    """

    name: str = attrs.field(converter=v.ifname)
    vni: int = attrs.field(converter=_vni)
    local: IPv4Address = attrs.field(converter=_v4)
    port: int = attrs.field(default=VXLAN_PORT, converter=v.port)
    master: str | None = attrs.field(default=None, converter=attrs.converters.optional(v.ifname))
    group: int | None = attrs.field(default=None, converter=v.optional_link_group)
    mtu: int | None = attrs.field(default=None, converter=attrs.converters.optional(v.mtu))
    netns: str | None = attrs.field(default=None, converter=v.optional_netns)
    runner: Runner = attrs.field(factory=default_runner, eq=False, repr=False, kw_only=True)

    def _resource(self) -> Resource:
        return Resource("link", self.name, self.netns, self.group)

    def _flood(self, peer: IPv4Address) -> Resource:
        return Resource("fdb", f"{FLOOD_MAC} dst {peer} dev {self.name}", self.netns)

    # --- plan commands, pure -------------------------------------------------------------------

    def create_command(self) -> Command:
        """``ip link add NAME [group G] [mtu M] [master BR] type vxlan id VNI dstport PORT local ADDR nolearning``."""
        words = ["link", "add", self.name]
        if self.group is not None:
            words += ["group", str(self.group)]
        if self.mtu is not None:
            words += ["mtu", str(self.mtu)]
        if self.master is not None:
            words += ["master", self.master]
        words += ["type", "vxlan", "id", str(self.vni), "dstport", str(self.port), "local", str(self.local)]
        words.append("nolearning")
        return ip(self.netns, *words, creates=[self._resource()])

    def delete_command(self) -> Command:
        """``ip link del NAME`` (its FDB entries go with it)."""
        return ip(self.netns, "link", "del", self.name, removes=[self._resource()])

    def flood_command(self, peer: object) -> Command:
        """``bridge fdb append 00:00:00:00:00:00 dev NAME dst PEER``: send flooded frames to ``peer`` too."""
        dst = _v4(peer)
        return bridge_command(
            self.netns, "fdb", "append", FLOOD_MAC, "dev", self.name, "dst", str(dst), creates=[self._flood(dst)]
        )

    def unflood_command(self, peer: object) -> Command:
        """``bridge fdb del 00:00:00:00:00:00 dev NAME dst PEER``."""
        dst = _v4(peer)
        return bridge_command(
            self.netns, "fdb", "del", FLOOD_MAC, "dev", self.name, "dst", str(dst), removes=[self._flood(dst)]
        )

    # --- argv, pure ------------------------------------------------------------------------------

    def create_argv(self) -> list[str]:
        """``ip link add NAME ... type vxlan id VNI dstport PORT local ADDR nolearning``."""
        return self.create_command().host_argv()

    def flood_argv(self, peer: object) -> list[str]:
        """``bridge fdb append 00:00:00:00:00:00 dev NAME dst PEER``."""
        return self.flood_command(peer).host_argv()

    # --- running ---------------------------------------------------------------------------------

    def create(self, *, exist_ok: bool = False) -> Vxlan:
        """Create the link; ``exist_ok`` accepts one that exists already."""
        try:
            self.create_command().check(self.runner, f"creating VXLAN {self.name!r} (VNI {self.vni})")
        except AlreadyExistsError:
            if not exist_ok:
                raise
        return self

    def add_peer(self, peer: object) -> Vxlan:
        """Flood to ``peer`` too (appending an entry already there changes nothing)."""
        self.flood_command(peer).check(self.runner, f"adding peer {peer} to {self.name!r}")
        return self

    def delete(self, *, missing_ok: bool = False) -> None:
        """Delete the link."""
        try:
            self.delete_command().check(self.runner, f"deleting VXLAN {self.name!r}")
        except NotFoundError:
            if not missing_ok:
                raise

    def peers(self) -> list[IPv4Address]:
        """The addresses flooded to, read with ``bridge -j fdb show dev NAME`` (none if the link is missing)."""
        return _peers(self.runner, self.netns, self.name)


def _peers(runner: Runner, netns: str | None, name: str) -> list[IPv4Address]:
    result = runner.run(["bridge", "-j", "fdb", "show", "dev", name], netns=netns)
    if not result.ok:
        return []
    found = []
    for entry in _ipjson.entries(result.stdout):
        dst = entry.get("dst")
        if entry.get("mac") == FLOOD_MAC and isinstance(dst, str):
            addr = v.ip_address(dst)
            if isinstance(addr, IPv4Address):
                found.append(addr)
    return found

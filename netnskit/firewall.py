"""NatRule and PortForward: masquerade and DNAT with iptables.

Every rule carries a comment naming its owner (``netnskit:<owner>``) so that teardown removes
only what netnskit added.
"""

from __future__ import annotations

import ipaddress

import attrs

from netnskit import _validate as v
from netnskit.errors import ValidationError
from netnskit.runner import LiveRunner, Runner

__all__ = ["NatRule", "PortForward"]


def _owner(value: object) -> str:
    return v.netns_name(value)


@attrs.frozen
class NatRule:
    """Masquerade traffic from ``subnet`` that leaves by any interface but ``bridge``."""

    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network = attrs.field(converter=v.ip_network)
    bridge: str | None = attrs.field(default=None, converter=attrs.converters.optional(v.ifname))
    owner: str = attrs.field(default="default", converter=_owner)
    runner: Runner = attrs.field(factory=LiveRunner, eq=False, repr=False, kw_only=True)

    @property
    def comment(self) -> str:
        """The comment that marks this rule as ours."""
        return f"netnskit:{self.owner}"

    def _tool(self) -> str:
        return "ip6tables" if self.subnet.version == 6 else "iptables"

    def rule(self) -> list[str]:
        """The rule spec, without the table and action."""
        spec = ["-s", str(self.subnet)]
        if self.bridge is not None:
            spec += ["!", "-o", self.bridge]
        return [*spec, "-m", "comment", "--comment", self.comment, "-j", "MASQUERADE"]

    def add_argv(self) -> list[str]:
        """``iptables -t nat -A POSTROUTING <rule>``."""
        return [self._tool(), "-w", "-t", "nat", "-A", "POSTROUTING", *self.rule()]

    def delete_argv(self) -> list[str]:
        """``iptables -t nat -D POSTROUTING <rule>``."""
        return [self._tool(), "-w", "-t", "nat", "-D", "POSTROUTING", *self.rule()]

    def apply(self) -> NatRule:
        """Add the masquerade rule."""
        self.runner.run(self.add_argv()).check(f"adding masquerade for {self.subnet}")
        return self

    def remove(self) -> None:
        """Remove the masquerade rule."""
        self.runner.run(self.delete_argv()).check(f"removing masquerade for {self.subnet}")


@attrs.frozen
class PortForward:
    """Forward a host port (or range) to ``destination``:``dest_port`` inside a namespace."""

    host_port: tuple[int, int] = attrs.field(converter=v.port_range)
    destination: ipaddress.IPv4Address | ipaddress.IPv6Address = attrs.field(converter=v.ip_address)
    dest_port: tuple[int, int] | None = attrs.field(
        default=None, converter=attrs.converters.optional(v.port_range)
    )
    protocol: str = attrs.field(default="tcp", converter=v.protocol)
    host_address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = attrs.field(
        default=None, converter=attrs.converters.optional(v.ip_address)
    )
    owner: str = attrs.field(default="default", converter=_owner)
    runner: Runner = attrs.field(factory=LiveRunner, eq=False, repr=False, kw_only=True)

    def __attrs_post_init__(self) -> None:
        target = self.dest_port or self.host_port
        if target[1] - target[0] != self.host_port[1] - self.host_port[0]:
            raise ValidationError("destination port range", self.dest_port, "must be as wide as the host port range")
        if self.host_address is not None and self.host_address.version != self.destination.version:
            raise ValidationError("host address", str(self.host_address), "must be the destination's IP version")

    @property
    def comment(self) -> str:
        """The comment that marks this rule as ours."""
        return f"netnskit:{self.owner}"

    def _tool(self) -> str:
        return "ip6tables" if self.destination.version == 6 else "iptables"

    def _to(self) -> str:
        low, high = self.dest_port or self.host_port
        ports = str(low) if low == high else f"{low}-{high}"
        addr = f"[{self.destination}]" if self.destination.version == 6 else str(self.destination)
        return f"{addr}:{ports}"

    def _dport(self) -> str:
        low, high = self.host_port
        return str(low) if low == high else f"{low}:{high}"

    def rule(self) -> list[str]:
        """The DNAT rule spec, without table, chain and action."""
        spec = ["-p", self.protocol]
        if self.host_address is not None:
            spec += ["-d", str(self.host_address)]
        else:
            spec += ["-m", "addrtype", "--dst-type", "LOCAL"]
        spec += ["--dport", self._dport()]
        return [*spec, "-m", "comment", "--comment", self.comment, "-j", "DNAT", "--to-destination", self._to()]

    def add_argvs(self) -> list[list[str]]:
        """DNAT in PREROUTING (from outside) and OUTPUT (from the host itself)."""
        return [
            [self._tool(), "-w", "-t", "nat", "-A", chain, *self.rule()]
            for chain in ("PREROUTING", "OUTPUT")
        ]

    def delete_argvs(self) -> list[list[str]]:
        """The matching ``-D`` commands."""
        return [
            [self._tool(), "-w", "-t", "nat", "-D", chain, *self.rule()]
            for chain in ("PREROUTING", "OUTPUT")
        ]

    def apply(self) -> PortForward:
        """Add the DNAT rules."""
        for argv in self.add_argvs():
            self.runner.run(argv).check(f"adding port forward {self._dport()} -> {self._to()}")
        return self

    def remove(self) -> None:
        """Remove the DNAT rules."""
        for argv in self.delete_argvs():
            self.runner.run(argv).check(f"removing port forward {self._dport()} -> {self._to()}")

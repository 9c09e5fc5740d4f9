"""NatRule and PortForward: masquerade and port forwards, each a set of rules applied through a Firewall.

``rules()`` is pure; ``plan()`` reads the host and holds only what is missing; ``apply()`` runs it,
``remove()`` deletes exactly this object's rules, then sweeps what no rule needs any more.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

import attrs

from netnskit import _ipjson
from netnskit import _validate as v
from netnskit.errors import ValidationError
from netnskit.executors import SerialExecutor
from netnskit.firewall.backend import FirewallBackend
from netnskit.firewall.iptables import Backend, Firewall, _backend, split_brain_warning
from netnskit.firewall.rules import SHARED, Rule, _after, _owner, _unique
from netnskit.firewall.sysctl import Sysctl, _forwarding, _route_localnet
from netnskit.plan import Command, Step
from netnskit.runner import Runner, default_runner

log = logging.getLogger("netnskit")
LOOPBACK_NET = "127.0.0.0/8"


class _Ruleset:
    """What NatRule and PortForward share: plan, apply, remove through a Firewall."""

    owner: str
    runner: Runner
    backend: Backend

    @property
    def comment(self) -> str:
        """The comment that marks this object's rules as ours."""
        return f"{SHARED}:{self.owner}"

    @property
    def family(self) -> int:
        """4 or 6."""
        raise NotImplementedError

    @property
    def firewall(self) -> FirewallBackend:
        """The firewall this object applies through (a Firewall over iptables)."""
        return Firewall(self.backend, self.runner)

    def _tag(self, *spec: str) -> tuple[str, ...]:
        return ("-m", "comment", "--comment", self.comment, *spec)

    def rules(self, *, forward_accept: bool = False) -> list[Rule]:
        """This object's rules (ACCEPT rules in NETNSKIT-FORWARD only if ``forward_accept``)."""
        raise NotImplementedError

    def sysctls(self) -> list[Sysctl]:
        """The sysctls this object needs."""
        return [_forwarding(self.family)]

    def _exclusive(self, rules: list[Rule]) -> list[Rule]:
        return rules

    def _describe(self) -> str:
        raise NotImplementedError

    def plan(self, *, assume_clean: bool = False, forward_accept: bool | None = None) -> list[Step]:
        """The steps that make this object's rules exist (read through the runner; docs/firewall-notes.md)."""
        fw = self.firewall
        if assume_clean:
            rules = self.rules(forward_accept=bool(forward_accept))
            return fw.plan(self.family, rules, self.sysctls(), self._describe(), values={})
        saved = fw.save(self.family)
        accept = fw.forward_policy_drop(saved) if forward_accept is None else forward_accept
        rules = self.rules(forward_accept=accept)
        return fw.plan(self.family, rules, self.sysctls(), self._describe(), saved=saved)

    def setup_commands(self, *, forward_accept: bool = False) -> list[Command]:
        """The commands that apply this object on a clean host (pure)."""
        return [c for s in self.plan(assume_clean=True, forward_accept=forward_accept) for c in s.do]

    def teardown_commands(self, *, forward_accept: bool = False) -> list[Command]:
        """The commands that undo :meth:`setup_commands` on that clean host (pure)."""
        steps = self.plan(assume_clean=True, forward_accept=forward_accept)
        return [c for s in reversed(steps) for c in s.undo]

    def apply(self) -> Any:
        """Add what is missing (nothing when applied already); rolls back if a step fails."""
        warning = split_brain_warning(self.runner, self.backend)
        if warning:
            log.warning("%s", warning)
        SerialExecutor().apply(self.plan(), self.runner)
        return self

    def remove(self) -> None:
        """Delete this object's rules, then sweep what nothing needs any more."""
        fw = self.firewall
        fw.delete(self.family, self._exclusive(self.rules(forward_accept=True)))
        fw.sweep(self.family)

    def is_applied(self) -> bool:
        """True if every one of this object's rules (for the current FORWARD policy) exists."""
        fw = self.firewall
        saved = fw.save(self.family)
        return all(fw.has(r, saved) for r in self.rules(forward_accept=fw.forward_policy_drop(saved)))


@attrs.frozen
class NatRule(_Ruleset):
    """Masquerade traffic from ``subnet`` that leaves by any interface but ``bridge``."""

    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network = attrs.field(converter=v.ip_network)
    bridge: str | None = attrs.field(default=None, converter=attrs.converters.optional(v.ifname))
    owner: str = attrs.field(default="default", converter=_owner)
    runner: Runner = attrs.field(factory=default_runner, eq=False, repr=False, kw_only=True)
    backend: Backend = attrs.field(factory=Backend, converter=_backend, kw_only=True)

    @property
    def family(self) -> int:
        """4 or 6, from the subnet."""
        return self.subnet.version

    def rules(self, *, forward_accept: bool = False) -> list[Rule]:
        """MASQUERADE for the subnet; with ``forward_accept``, ACCEPT out and replies back in."""
        net = str(self.subnet)
        # Without a bridge name, "not to the subnet itself" keeps intra-subnet sources intact.
        out = ["!", "-o", self.bridge] if self.bridge else ["!", "-d", net]
        rules = [Rule(self.family, "nat", "NETNSKIT-POSTROUTING", ["-s", net, *out, *self._tag("-j", "MASQUERADE")])]
        if forward_accept:
            rules += [
                Rule(self.family, "filter", "NETNSKIT-FORWARD", ["-s", net, *self._tag("-j", "ACCEPT")]),
                Rule(
                    self.family,
                    "filter",
                    "NETNSKIT-FORWARD",
                    ["-d", net, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", *self._tag("-j", "ACCEPT")],
                ),
            ]
        return rules

    def _describe(self) -> str:
        return f"masquerade {self.subnet} ({self.comment})"


def _ports(low_high: tuple[int, int], sep: str) -> str:
    low, high = low_high
    return str(low) if low == high else f"{low}{sep}{high}"


@attrs.frozen
class PortForward(_Ruleset):
    """Forward a host port (or range) to ``destination``:``port`` inside a namespace (``host_port`` if None).

    ``bridge`` is the interface the destination lives behind; it enables hairpin (siblings on
    the bridge) and, for IPv4, 127.0.0.1. When None, ``apply()`` asks ``ip route get``.
    """

    host_port: tuple[int, int] = attrs.field(converter=v.port_range)
    destination: ipaddress.IPv4Address | ipaddress.IPv6Address = attrs.field(converter=v.ip_address)
    port: tuple[int, int] | None = attrs.field(default=None, converter=attrs.converters.optional(v.port_range))
    protocol: str = attrs.field(default="tcp", converter=v.protocol)
    host_address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = attrs.field(
        default=None, converter=attrs.converters.optional(v.ip_address)
    )
    owner: str = attrs.field(default="default", converter=_owner)
    runner: Runner = attrs.field(factory=default_runner, eq=False, repr=False, kw_only=True)
    bridge: str | None = attrs.field(default=None, converter=attrs.converters.optional(v.ifname), kw_only=True)
    backend: Backend = attrs.field(factory=Backend, converter=_backend, kw_only=True)

    def __attrs_post_init__(self) -> None:
        target = self.port or self.host_port
        if target[1] - target[0] != self.host_port[1] - self.host_port[0]:
            raise ValidationError("destination port range", self.port, "must be as wide as the host port range")
        if self.host_address is not None and self.host_address.version != self.destination.version:
            raise ValidationError("host address", str(self.host_address), "must be the destination's IP version")

    @property
    def family(self) -> int:
        """4 or 6, from the destination."""
        return self.destination.version

    def _to(self) -> str:
        # host range 8000-8010 -> 9000-9010 maps one to one: "9000-9010/8000" (base port)
        low, high = self.port or self.host_port
        ports = str(low) if low == high else f"{low}-{high}/{self.host_port[0]}"
        addr = f"[{self.destination}]" if self.family == 6 else str(self.destination)
        return f"{addr}:{ports}"

    def _match(self) -> list[str]:
        where = ["-d", str(self.host_address)] if self.host_address is not None else []
        return [*where, "-p", self.protocol, "-m", self.protocol, "--dport", _ports(self.host_port, ":")]

    def rules(self, *, forward_accept: bool = False) -> list[Rule]:
        """Hairpin mark, DNAT (PREROUTING and OUTPUT), loopback mark and guard, FORWARD accept."""
        f, m = self.family, self._match()
        dnat = [*m, *self._tag("-j", "DNAT", "--to-destination", self._to())]
        rules = []
        if self.bridge:
            hairpin = ["-i", self.bridge, *m, *self._tag("-j", "NETNSKIT-MARK")]
            rules.append(Rule(f, "nat", "NETNSKIT-PREROUTING", hairpin))
        rules.append(Rule(f, "nat", "NETNSKIT-PREROUTING", dnat))
        if self.bridge and f == 4:
            rules.append(Rule(f, "nat", "NETNSKIT-OUTPUT", ["-s", LOOPBACK_NET, *m, *self._tag("-j", "NETNSKIT-MARK")]))
        rules.append(Rule(f, "nat", "NETNSKIT-OUTPUT", dnat))
        if self.bridge and f == 4:
            for way in ("-s", "-d"):
                guard = ["-i", self.bridge, way, LOOPBACK_NET, *self._tag("-j", "DROP")]
                rules.append(Rule(f, "raw", "NETNSKIT-PREROUTING", guard))
        if forward_accept:
            rules.append(
                Rule(
                    f,
                    "filter",
                    "NETNSKIT-FORWARD",
                    [
                        "-p",
                        self.protocol,
                        "-m",
                        "conntrack",
                        "--ctstate",
                        "DNAT",
                        "--ctreplsrc",
                        str(self.destination),
                        "--ctreplsrcport",
                        _ports(self.port or self.host_port, ":"),
                        "--ctorigdstport",
                        _ports(self.host_port, ":"),
                        *self._tag("-j", "ACCEPT"),
                    ],
                )
            )
        return rules

    def sysctls(self) -> list[Sysctl]:
        """Forwarding, and route_localnet on the bridge (IPv4) so 127.0.0.1 can be forwarded."""
        extra = [_route_localnet(self.bridge)] if self.bridge and self.family == 4 else []
        return [_forwarding(self.family), *extra]

    def _exclusive(self, rules: list[Rule]) -> list[Rule]:
        # Loopback guards are shared by every forward of this owner on the bridge: swept later.
        return [r for r in rules if r.table != "raw"]

    def _describe(self) -> str:
        return f"forward {self.protocol} {_ports(self.host_port, '-')} to {self._to()} ({self.comment})"

    def resolve(self) -> PortForward:
        """This forward with ``bridge`` set from ``ip route get DESTINATION`` when it is None."""
        if self.bridge is not None:
            return self
        found = _ipjson.try_read(self.runner, None, "route", "get", str(self.destination))
        dev = found[0].get("dev") if found else None
        if not dev or dev == "lo":
            return self
        return attrs.evolve(self, bridge=dev)

    def apply(self) -> PortForward:
        """Add what is missing (the bridge found by :meth:`resolve` when not given)."""
        resolved = self.resolve()
        _Ruleset.apply(resolved)
        return self

    def remove(self) -> None:
        """Delete this forward's rules, then sweep what nothing needs any more.

        Without ``bridge`` (and once the bridge is gone, so ``ip route get`` cannot find it),
        the hairpin rules of this forward are found by their ``-i`` in ``iptables-save``.
        """
        resolved = self.resolve()
        fw = self.firewall
        rules = resolved._exclusive(resolved.rules(forward_accept=True))
        if self.bridge is None:
            saved = fw.save(self.family)
            bridges = {
                _after(r.spec, "-i")
                for r in saved.owner_rules("nat")
                if r.comment == self.comment and r.chain == "NETNSKIT-PREROUTING"
            }
            for bridge in sorted(b for b in bridges if b and b != resolved.bridge):
                other = attrs.evolve(self, bridge=bridge)
                rules += other._exclusive(other.rules(forward_accept=True))
        fw.delete(self.family, _unique(rules))
        fw.sweep(self.family)

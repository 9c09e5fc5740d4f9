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
from netnskit.firewall.host import interfaces, uplinks
from netnskit.firewall.iptables import Backend, Firewall, _backend, split_brain_warning
from netnskit.firewall.records import SysctlRecord
from netnskit.firewall.rules import LOOPBACK_NET, SHARED, Rule, SavedRules, _after, _owner
from netnskit.firewall.sysctl import Sysctl, _forwarding, _route_localnet
from netnskit.plan import Command, Step
from netnskit.runner import Runner, default_runner

log = logging.getLogger("netnskit")


class _Ruleset:
    """What NatRule and PortForward share: plan, apply, remove through a Firewall."""

    owner: str
    runner: Runner
    backend: Backend
    bridge: str | None

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

    def rules(self, *, forward_accept: bool = True) -> list[Rule]:
        """This object's rules (its ACCEPT rules in NETNSKIT-FORWARD unless ``forward_accept`` is false)."""
        raise NotImplementedError

    def sysctls(self) -> list[Sysctl]:
        """The sysctls this object needs."""
        return [_forwarding(self.family)]

    def _exclusive(self, rules: list[Rule]) -> list[Rule]:
        return rules

    def _describe(self) -> str:
        raise NotImplementedError

    def resolve(self) -> Any:
        """This object with what it left out read from the host (see the subclasses)."""
        return self

    def _mine(self, saved: SavedRules) -> list[Rule]:
        """This object's rules as ``saved`` shows them, whatever the host looked like when they were added."""
        return []

    def plan(self, *, assume_clean: bool = False, forward_accept: bool | None = None) -> list[Step]:
        """The steps that make this object's rules exist (read through the runner; docs/ARCHITECTURE.md, section 6).

        ``forward_accept=False`` leaves out the ACCEPT rules in NETNSKIT-FORWARD (None: they are in).
        """
        return self._plan(assume_clean=assume_clean, forward_accept=forward_accept is not False)[0]

    def _plan(self, *, assume_clean: bool, forward_accept: bool) -> tuple[list[Step], list[SysctlRecord]]:
        fw = self.firewall
        if assume_clean:
            rules = self.rules(forward_accept=forward_accept)
            return fw.plan_changes(self.family, rules, self.sysctls(), self._describe(), values={})
        me = self.resolve()
        rules = me.rules(forward_accept=forward_accept)
        return fw.plan_changes(self.family, rules, me.sysctls(), me._describe())

    def setup_commands(self, *, forward_accept: bool = True) -> list[Command]:
        """The commands that apply this object on a clean host (pure)."""
        return [c for s in self.plan(assume_clean=True, forward_accept=forward_accept) for c in s.do]

    def teardown_commands(self, *, forward_accept: bool = True) -> list[Command]:
        """The commands that undo :meth:`setup_commands` on that clean host (pure)."""
        steps = self.plan(assume_clean=True, forward_accept=forward_accept)
        return [c for s in reversed(steps) for c in s.undo]

    def apply(self) -> Any:
        """Add what is missing (nothing when applied already); rolls back if a step fails.

        The sysctl values it changes are written down first (beside the locks), so that the last
        :meth:`remove` puts them back even after a foreign flush of the rules.
        """
        warning = split_brain_warning(self.runner, self.backend)
        if warning:
            log.warning("%s", warning)
        steps, changes = self._plan(assume_clean=False, forward_accept=True)
        self.firewall.remember(changes)
        SerialExecutor().apply(steps, self.runner)
        return self

    def remove(self) -> None:
        """Delete this object's rules (as the host shows them), then sweep what nothing needs any more."""
        fw = self.firewall
        mine = self._exclusive(self._mine(fw.save(self.family)))
        fw.delete(self.family, mine)
        fw.sweep(self.family, [*interfaces(mine), *([self.bridge] if self.bridge else [])])

    def is_applied(self) -> bool:
        """True if every one of this object's rules exists."""
        fw = self.firewall
        saved = fw.save(self.family)
        return all(fw.has(r, saved) for r in self.resolve().rules())


def _uplinks(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise ValidationError("uplinks", value, "must be a list of interface names")
    if not isinstance(value, list | tuple):
        raise ValidationError("uplinks", value, "must be a list of interface names")
    return tuple(v.ifname(i) for i in value)


def _host(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """An address as iptables-save prints it in ``-s``/``-d``: with its /32 or /128."""
    return f"{address}/{address.max_prefixlen}"


@attrs.frozen
class NatRule(_Ruleset):
    """Masquerade traffic from ``subnet`` that leaves by any interface but ``bridge``.

    With ``bridge``, the FORWARD chain accepts traffic between the bridge's ports, the subnet's
    traffic from the bridge out to the ``uplinks`` (the interfaces of the host's gateways, read by
    :meth:`resolve` when None) and the replies back, and nothing else: not to another manager's
    bridge (docker0) that the host's rules keep closed.
    """

    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network = attrs.field(converter=v.ip_network)
    bridge: str | None = attrs.field(default=None, converter=attrs.converters.optional(v.ifname))
    owner: str = attrs.field(default="default", converter=_owner)
    runner: Runner = attrs.field(factory=default_runner, eq=False, repr=False, kw_only=True)
    backend: Backend = attrs.field(factory=Backend, converter=_backend, kw_only=True)
    uplinks: tuple[str, ...] | None = attrs.field(default=None, converter=_uplinks, kw_only=True)

    @property
    def family(self) -> int:
        """4 or 6, from the subnet."""
        return self.subnet.version

    def rules(self, *, forward_accept: bool = True) -> list[Rule]:
        """MASQUERADE for the subnet; with a bridge, ACCEPT on it, from it to each uplink, and the replies back."""
        f, net = self.family, str(self.subnet)
        # Without a bridge name, "not to the subnet itself" keeps intra-subnet sources intact.
        out = ["!", "-o", self.bridge] if self.bridge else ["!", "-d", net]
        rules = [Rule(f, "nat", "NETNSKIT-POSTROUTING", ["-s", net, *out, *self._tag("-j", "MASQUERADE")])]
        if forward_accept and self.bridge:
            # bridged, the subnet's own traffic passes FORWARD where br_netfilter is loaded
            inside = ["-i", self.bridge, "-o", self.bridge, *self._tag("-j", "ACCEPT")]
            rules.append(Rule(f, "filter", "NETNSKIT-FORWARD", inside))
            for uplink in self.uplinks or ():
                egress = ["-s", net, "-i", self.bridge, "-o", uplink, *self._tag("-j", "ACCEPT")]
                rules.append(Rule(f, "filter", "NETNSKIT-FORWARD", egress))
            replies = ["-d", net, "-o", self.bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"]
            rules.append(Rule(f, "filter", "NETNSKIT-FORWARD", [*replies, *self._tag("-j", "ACCEPT")]))
        return rules

    def resolve(self) -> NatRule:
        """This rule with ``bridge`` (``ip route get`` of the subnet's first address) and ``uplinks``
        (the devices of the host's routes through a gateway) read from the host where left out."""
        me = self
        if me.bridge is None:
            found = _ipjson.try_read(self.runner, None, "route", "get", str(next(iter(self.subnet.hosts()))))
            dev = found[0].get("dev") if found else None
            if dev and dev != "lo":
                me = attrs.evolve(me, bridge=dev)
        if me.uplinks is None and me.bridge is not None:
            routes = _ipjson.read(self.runner, None, "route", "show", flags=[f"-{self.family}"])
            me = attrs.evolve(me, uplinks=tuple(uplinks(routes, exclude=[me.bridge])))
        return me

    def _mine(self, saved: SavedRules) -> list[Rule]:
        net = str(self.subnet)
        found = []
        for rule in saved.rules:
            if rule.comment != self.comment:
                continue
            target = _after(rule.spec, "-j")
            ends = (_after(rule.spec, "-s"), _after(rule.spec, "-d"))
            masquerade = rule.table == "nat" and target == "MASQUERADE" and ends[0] == net
            inside = self.bridge is not None and _after(rule.spec, "-i") == _after(rule.spec, "-o") == self.bridge
            if masquerade or (rule.table == "filter" and target == "ACCEPT" and (net in ends or inside)):
                found.append(rule)
        return found

    def _describe(self) -> str:
        return f"masquerade {self.subnet} ({self.comment})"


def _ports(low_high: tuple[int, int], sep: str) -> str:
    low, high = low_high
    return str(low) if low == high else f"{low}{sep}{high}"


@attrs.frozen
class PortForward(_Ruleset):
    """Forward a host port (or range) to ``destination``:``port`` inside a namespace (``host_port`` if None).

    Without ``host_address`` it answers on every local address (as Docker's ``-p``); with it, only
    on that one. ``bridge`` is the interface the destination lives behind, ``subnet`` the bridge's
    subnet: with them, siblings on the bridge reach the forward through the host's address
    (hairpin), the host through 127.0.0.1 (IPv4), and the FORWARD chain accepts the forwarded
    connections and their replies. :meth:`resolve` reads both when None.
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
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network | None = attrs.field(
        default=None, converter=attrs.converters.optional(v.ip_network), kw_only=True
    )

    def __attrs_post_init__(self) -> None:
        target = self.port or self.host_port
        if target[1] - target[0] != self.host_port[1] - self.host_port[0]:
            raise ValidationError("destination port range", self.port, "must be as wide as the host port range")
        if self.host_address is not None and self.host_address.version != self.destination.version:
            raise ValidationError("host address", str(self.host_address), "must be the destination's IP version")
        if self.subnet is not None and self.subnet.version != self.destination.version:
            raise ValidationError("subnet", str(self.subnet), "must be the destination's IP version")

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
        where = ["-d", _host(self.host_address)] if self.host_address is not None else []
        return [*where, "-p", self.protocol, "-m", self.protocol, "--dport", _ports(self.host_port, ":")]

    def _origin(self) -> list[str]:
        """The conntrack words naming this forward's connections: DNATed, from its host port (and address)."""
        bound = ["--ctorigdst", str(self.host_address)] if self.host_address is not None else []
        return ["-m", "conntrack", "--ctstate", "DNAT", *bound, "--ctorigdstport", _ports(self.host_port, ":")]

    def _loopback(self) -> bool:
        """Does the forward answer on 127.0.0.1 (IPv4, unbound or bound to a loopback address)?"""
        return self.family == 4 and (self.host_address is None or self.host_address.is_loopback)

    def rules(self, *, forward_accept: bool = True) -> list[Rule]:
        """DNAT (PREROUTING, OUTPUT); with a bridge: hairpin and loopback masquerade, guards, FORWARD accepts."""
        f, m = self.family, self._match()
        dnat = [*m, *self._tag("-j", "DNAT", "--to-destination", self._to())]
        rules = [Rule(f, "nat", "NETNSKIT-PREROUTING", dnat), Rule(f, "nat", "NETNSKIT-OUTPUT", dnat)]
        if not self.bridge:
            return rules
        dest, dport = _host(self.destination), _ports(self.port or self.host_port, ":")
        toward = ["-p", self.protocol, "-m", self.protocol, "--dport", dport, *self._origin()]
        bound_to_loopback = self.host_address is not None and self.host_address.is_loopback
        if self.subnet is not None and not bound_to_loopback:
            hairpin = ["-s", str(self.subnet), "-d", dest, "-o", self.bridge, *toward]
            rules.append(Rule(f, "nat", "NETNSKIT-POSTROUTING", [*hairpin, *self._tag("-j", "MASQUERADE")]))
        if self._loopback():
            loopback = ["-s", LOOPBACK_NET, "-d", dest, "-o", self.bridge, *toward]
            rules.append(Rule(f, "nat", "NETNSKIT-POSTROUTING", [*loopback, *self._tag("-j", "MASQUERADE")]))
            for way in ("-s", "-d"):
                guard = ["-i", self.bridge, way, LOOPBACK_NET, *self._tag("-j", "DROP")]
                rules.append(Rule(f, "raw", "NETNSKIT-PREROUTING", guard))
        if forward_accept:
            inward = ["-d", dest, "-o", self.bridge, *toward]
            back = ["-s", dest, "-i", self.bridge, "-p", self.protocol, "-m", self.protocol, "--sport", dport]
            rules.append(Rule(f, "filter", "NETNSKIT-FORWARD", [*inward, *self._tag("-j", "ACCEPT")]))
            rules.append(Rule(f, "filter", "NETNSKIT-FORWARD", [*back, *self._origin(), *self._tag("-j", "ACCEPT")]))
        return rules

    def sysctls(self) -> list[Sysctl]:
        """Forwarding, and route_localnet on the bridge (IPv4) so 127.0.0.1 can be forwarded."""
        extra = [_route_localnet(self.bridge)] if self.bridge and self._loopback() else []
        return [_forwarding(self.family), *extra]

    def _exclusive(self, rules: list[Rule]) -> list[Rule]:
        # Loopback guards are shared by every forward of this owner on the bridge: swept later.
        return [r for r in rules if r.table != "raw"]

    def _describe(self) -> str:
        at = f"{self.host_address}:" if self.host_address is not None else ""
        return f"forward {self.protocol} {at}{_ports(self.host_port, '-')} to {self._to()} ({self.comment})"

    def resolve(self) -> PortForward:
        """This forward with ``bridge`` (``ip route get DESTINATION``) and ``subnet`` (the bridge's
        address that holds the destination) read from the host where they are None."""
        me = self
        if me.bridge is None:
            found = _ipjson.try_read(self.runner, None, "route", "get", str(self.destination))
            dev = found[0].get("dev") if found else None
            if not dev or dev == "lo":
                return me
            me = attrs.evolve(me, bridge=dev)
        if me.subnet is None and me.bridge is not None:
            entries = _ipjson.try_read(self.runner, None, "addr", "show", "dev", me.bridge, flags=[f"-{self.family}"])
            for entry in entries or ():
                for a in entry.get("addr_info", ()):
                    if "local" not in a or a.get("scope") == "link":
                        continue
                    net = ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)
                    if self.destination in net:
                        return attrs.evolve(me, subnet=net)
        return me

    def apply(self) -> PortForward:
        """Add what is missing (``bridge`` and ``subnet`` found by :meth:`resolve` when not given)."""
        _Ruleset.apply(self)
        return self

    def _mine(self, saved: SavedRules) -> list[Rule]:
        """This forward's rules in ``saved``: its DNATs, and the rules naming its destination and host port."""
        proto, hport = self.protocol, _ports(self.host_port, ":")
        dest = _host(self.destination)
        bound = None if self.host_address is None else str(self.host_address)
        at = None if self.host_address is None else _host(self.host_address)
        found = []
        for rule in saved.rules:
            if rule.comment != self.comment or _after(rule.spec, "-p") != proto:
                continue
            spec = rule.spec
            if _after(spec, "-j") == "DNAT":
                same = _after(spec, "--to-destination") == self._to() and _after(spec, "--dport") == hport
                if same and _after(spec, "-d") == at:
                    found.append(rule)
            elif _after(spec, "--ctorigdstport") == hport and _after(spec, "--ctorigdst") == bound:
                found += [rule] if dest in (_after(spec, "-d"), _after(spec, "-s")) else []
        return found

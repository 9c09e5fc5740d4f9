"""The :class:`Network` class: a whole topology as one object (or one TOML file).

Its methods are thin: the plan is built in :mod:`.steps`, read and checked in :mod:`.state` and
:mod:`.status`, torn down in :mod:`.teardown`, probed in :mod:`.check`.
"""

from __future__ import annotations

import logging
import os
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs

from netnskit import _validate as v
from netnskit.errors import (
    MISSING,
    CommandNotFoundError,
    ConfigError,
    Interrupted,
    NetnskitError,
    StepError,
    ValidationError,
)
from netnskit.executors import Executor, SerialExecutor
from netnskit.firewall import Backend, Firewall, NatRule, PortForward, SavedRules
from netnskit.firewall.choice import Choice, choose, firewall_kind
from netnskit.firewall.host import interfaces
from netnskit.firewall.iptables import XTABLES_WAIT, xtables_wait
from netnskit.firewall.nftables import Nftables, native_forward_drops
from netnskit.interrupt import Interrupt
from netnskit.link import Link, Route
from netnskit.network import files as _files
from netnskit.network import processes as _procs
from netnskit.network.check import CheckReport, Progress, _check
from netnskit.network.drift import _after_removal, _stale_core, _stale_rule_step
from netnskit.network.faults import FaultEvent, run_faults
from netnskit.network.firewall import (
    _firewall_of,
    _firewall_plan,
    _firewall_steps,
    _host_routes,
    _sweep_step,
    _uplinks,
    _uses_nft,
)
from netnskit.network.impair import (
    CableState,
    cable_steps,
    impair_entries,
    needs_probe,
    read_cable,
    refuse_unsupported,
    states_from,
)
from netnskit.network.locks import _exclusive
from netnskit.network.neighbours import warn_if_short
from netnskit.network.processes import ProcessStatus
from netnskit.network.spec import (
    Cable,
    ExtraNamespace,
    FaultSpec,
    ForwardSpec,
    LinkSpec,
    NamespaceSpec,
    ProcessSpec,
    RouteSpec,
    _allocate,
    _allocate6,
    _dns,
    _extras,
    _faults,
    _flag,
    _forwards,
    _links,
    _namespaces,
    _opt_flag,
    _opt_path,
    _opt_v6_address,
    _opt_v6_network,
    _processes,
    _remote,
    _routes,
    _v4_address,
    _v4_network,
    _validate_network,
    cable,
    cables,
    group_for,
    mark_for,
)
from netnskit.network.state import _Facts, _gather, _native_ruleset, _read_links, _refuse_conflicts, _refuse_foreign
from netnskit.network.status import NetworkStatus, _missing, _six, _stale, _stale6, _status
from netnskit.network.steps import _entries
from netnskit.network.teardown import Teardown, _down
from netnskit.network.toml import _from_dict
from netnskit.plan import Step, render_script
from netnskit.process import ProcessHandle
from netnskit.qdisc import Impairment, NetemSupport, probe_netem
from netnskit.runner import Runner, default_runner

if TYPE_CHECKING:
    from netnskit.capture import Capture

log = logging.getLogger("netnskit")


def _ifnames(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(v.ifname(n) for n in names)


@attrs.frozen
class Network:
    """A bridge, its subnet and gateway, namespaces on it, routes, NAT, forwards and extra links;
    each namespace's hosts (and resolv.conf) under /etc/netns, and processes run in them.

    ``mtu``: both ends of each bridged namespace's veth (None: the kernel's 1500).
    ``gateway_on_host`` False: the host puts no gateway address on the bridge and does not route
    for the subnet (another host of a cluster does; the namespaces reach it over the bridge).
    ``remote_addresses``: namespaces of the subnet that live on other hosts, by name: their
    addresses are reserved and port forwards may target them; nothing is made for them here.
    """

    name: str = attrs.field(converter=v.marked_name)
    bridge: str = attrs.field(converter=v.ifname)
    subnet: IPv4Network = attrs.field(converter=_v4_network)
    gateway: IPv4Address = attrs.field(converter=_v4_address)
    namespaces: tuple[NamespaceSpec, ...] = attrs.field(default=(), converter=_namespaces)
    masquerade: bool = attrs.field(default=False, converter=_flag)
    port_forwards: tuple[ForwardSpec, ...] = attrs.field(default=(), converter=_forwards)
    extra_namespaces: tuple[ExtraNamespace, ...] = attrs.field(default=(), converter=_extras)
    links: tuple[LinkSpec, ...] = attrs.field(default=(), converter=_links)
    routes: tuple[RouteSpec, ...] = attrs.field(default=(), converter=_routes)
    group: int = attrs.field(converter=v.optional_link_group)
    # IPv6 link-local addresses on the veth ends (None: on exactly where IPv6 is configured, see link_local)
    ipv6_link_local: bool | None = attrs.field(default=None, converter=_opt_flag)
    multicast_snooping: bool = attrs.field(default=False, converter=_flag)
    dns: tuple[IPv4Address | IPv6Address, ...] = attrs.field(default=(), converter=_dns)  # every namespace's
    hosts: bool = attrs.field(default=True, converter=_flag)  # write /etc/netns/NAME/hosts
    processes: tuple[ProcessSpec, ...] = attrs.field(default=(), converter=_processes)
    logs: str | None = attrs.field(default=None, converter=_opt_path)  # the processes' log folder
    xtables_wait: int = attrs.field(default=XTABLES_WAIT, converter=xtables_wait)
    # "iptables" (the default), "nftables" (a table of its own, inet netnskit-NAME) or "auto"
    firewall: str = attrs.field(default="iptables", converter=firewall_kind)
    faults: tuple[FaultSpec, ...] = attrs.field(default=(), converter=_faults)
    # the three below let one host carry its part of a network spread over hosts (netnskit.cluster)
    mtu: int | None = attrs.field(default=None, converter=attrs.converters.optional(v.mtu))
    gateway_on_host: bool = attrs.field(default=True, converter=_flag)
    remote_addresses: tuple[tuple[str, IPv4Address], ...] = attrs.field(default=(), converter=_remote)
    # host links made beside this network by its owner (a cluster's VXLAN link), marked with its mark:
    # not drift, and left to that owner
    overlay_links: tuple[str, ...] = attrs.field(default=(), converter=_ifnames)
    # dual stack: IPv6 beside IPv4 (None: IPv4 only); masquerade6 is off by default (routed IPv6 is the norm)
    subnet6: IPv6Network | None = attrs.field(default=None, converter=_opt_v6_network)
    gateway6: IPv6Address | None = attrs.field(default=None, converter=_opt_v6_address)
    masquerade6: bool = attrs.field(default=False, converter=_flag)
    runner: Runner = attrs.field(factory=default_runner, eq=False, repr=False, kw_only=True)
    # where relative paths (a process's cwd, logs) are read from: a TOML file's folder; None: the current one
    directory: str | None = attrs.field(default=None, converter=_opt_path, eq=False, kw_only=True)
    # the processes this object started (their handles reap them when down ends them)
    _started: dict[str, ProcessHandle] = attrs.field(factory=dict, init=False, eq=False, repr=False)
    # what derives from the (frozen) fields and costs O(N) or more: the addresses, the files
    _memo: dict[str, Any] = attrs.field(factory=dict, init=False, eq=False, repr=False)
    # what the kernel said about netem, asked once (a frozen class may still fill a list)
    _netem: list[NetemSupport] = attrs.field(factory=list, init=False, eq=False, repr=False)

    @group.default
    def _group(self) -> int:
        return group_for(self.name)

    def __attrs_post_init__(self) -> None:
        _validate_network(self)

    # --- loading ---------------------------------------------------------------------------

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], *, runner: Runner | None = None) -> Network:
        """Load a description from a TOML file; errors name the file, the key and the reason."""
        where = str(path)
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(where, "file", MISSING, f"cannot read it ({exc.strerror or exc})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(where, "syntax", MISSING, f"not valid TOML ({exc})") from None
        return cls.from_dict(data, source=where, runner=runner, directory=os.path.dirname(os.path.abspath(where)))

    @classmethod
    def from_dict(
        cls,
        data: dict[str, Any],
        *,
        source: str = "<dict>",
        runner: Runner | None = None,
        directory: str | None = None,
    ) -> Network:
        """Build from the TOML structure (``[network]``, ``[[namespace]]``, ``[[process]]``...), strictly.

        ``directory``: where relative paths in it are read from (``from_toml``: the file's folder).
        """
        return _from_dict(cls, data, source, runner or default_runner(), directory)

    # --- derived ---------------------------------------------------------------------------

    @property
    def mark(self) -> str:
        """The alias and rule comment that mark this network's objects: ``netnskit:NAME``."""
        return mark_for(self.name)

    @property
    def gateway_interface(self) -> IPv4Interface:
        """The gateway with the subnet's prefix, as set on the bridge."""
        return IPv4Interface(f"{self.gateway}/{self.subnet.prefixlen}")

    @property
    def dual(self) -> bool:
        """Is the network dual-stack (a subnet6 beside the IPv4 subnet)?"""
        return self.subnet6 is not None

    @property
    def gateway6_interface(self) -> IPv6Interface | None:
        """The IPv6 gateway with subnet6's prefix, as set on the bridge (None: IPv4 only)."""
        if self.subnet6 is None or self.gateway6 is None:
            return None
        return IPv6Interface(f"{self.gateway6}/{self.subnet6.prefixlen}")

    def addresses6(self) -> dict[str, IPv6Interface]:
        """Each bridged namespace's IPv6 address (empty when IPv4 only): given, or the next free one in subnet6."""
        if "addresses6" not in self._memo:
            self._memo["addresses6"] = _allocate6(self)
        return dict(self._memo["addresses6"])

    def addresses(self) -> dict[str, IPv4Interface]:
        """Each bridged namespace's address: given, or the next free one in the subnet, in order."""
        if "addresses" not in self._memo:
            self._memo["addresses"] = _allocate(self)
        return dict(self._memo["addresses"])

    def namespace_names(self) -> list[str]:
        """Every namespace of the network: those on the bridge, then the extra ones."""
        return [n.name for n in self.namespaces] + [n.name for n in self.extra_namespaces]

    def spaces(self) -> list[NamespaceSpec | ExtraNamespace]:
        """Every namespace's description: those on the bridge, then the extra ones."""
        return [*self.namespaces, *self.extra_namespaces]

    def host_ifnames(self) -> list[str]:
        """Every host-side interface the network creates (bridge, veth ends, host ends of links)."""
        names = [self.bridge, *(n.host_ifname for n in self.namespaces)]
        return names + [link.name for link in self.links if link.netns is None]

    def nat_rule(self, uplinks: Sequence[str] | None = None) -> NatRule:
        """The masquerade rule for the subnet (traffic leaving by any interface but the bridge).

        ``uplinks``: where the subnet's traffic may go out (None: the network's own host links and
        host routes' devices; ``up`` adds the devices of the host's routes through a gateway).
        """
        chosen = tuple(uplinks) if uplinks is not None else _uplinks(self)
        return NatRule(
            self.subnet, self.bridge, owner=self.name, runner=self.runner, uplinks=chosen, backend=self._backend
        )

    @property
    def link_local(self) -> bool:
        """Do the veth ends get IPv6 link-local addresses? As ``ipv6_link_local`` says, else exactly
        where IPv6 is configured (``subnet6``): off costs nothing per namespace (README, Performance)."""
        return self.ipv6_link_local if self.ipv6_link_local is not None else self.subnet6 is not None

    def firewall_choice(self) -> Choice:
        """The firewall the rules go through (``iptables`` or ``nftables``) and why; ``auto`` reads the
        host once (is ``nft`` installed, do iptables-legacy rules exist)."""
        if "firewall" not in self._memo:
            self._memo["firewall"] = choose(self.runner, self.firewall)
        found: Choice = self._memo["firewall"]
        return found

    @property
    def _backend(self) -> Backend:
        return Backend(wait=self.xtables_wait)

    def nat_rule6(self, uplinks: Sequence[str] | None = None) -> NatRule | None:
        """The IPv6 masquerade rule for subnet6 (None when IPv4 only); see :meth:`nat_rule`."""
        if self.subnet6 is None:
            return None
        chosen = tuple(uplinks) if uplinks is not None else _uplinks(self)
        return NatRule(
            self.subnet6, self.bridge, owner=self.name, runner=self.runner, uplinks=chosen, backend=self._backend
        )

    def forward_rules6(self) -> list[PortForward]:
        """The IPv6 DNAT rules of the port forwards (dual stack): each forward not bound to an IPv4 address,
        to its namespace's IPv6 address (not ``::1``: the kernel cannot forward what arrives there)."""
        if self.subnet6 is None:
            return []
        addrs = {name: iface.ip for name, iface in self.addresses6().items()}
        return self._forwards(addrs, self.subnet6, IPv4Address)

    def forward_rules(self) -> list[PortForward]:
        """The DNAT rules of the port forwards (each on its ``host_address``, or every local address)."""
        addrs = {name: iface.ip for name, iface in self.addresses().items()} | dict(self.remote_addresses)
        return self._forwards(addrs, self.subnet, IPv6Address)

    def _forwards(
        self,
        addrs: Mapping[str, IPv4Address | IPv6Address],
        subnet: IPv4Network | IPv6Network,
        other: type[IPv4Address] | type[IPv6Address],
    ) -> list[PortForward]:
        """The forwards to ``addrs`` (one family's), but those bound to a host address of the ``other``."""
        return [
            PortForward(
                f.host_port,
                addrs[f.netns],
                f.port,
                f.protocol,
                host_address=f.host_address,
                owner=self.name,
                runner=self.runner,
                bridge=self.bridge,
                subnet=subnet,
                backend=self._backend,
            )
            for f in self.port_forwards
            if f.netns in addrs and not isinstance(f.host_address, other)
        ]

    def cables(self) -> list[Cable]:
        """Every cable (a namespace's veth, a link) by name: what ``impair``, ``link_down`` and faults take."""
        return cables(self)

    def cable(self, name: str) -> Cable:
        """The cable called ``name`` (a namespace on the bridge or a link); ValidationError names the cables."""
        return cable(self, name)

    def netem_support(self) -> NetemSupport:
        """Whether the kernel has netem: asked once, in a throwaway namespace (``unshare --net tc ...``)."""
        if not self._netem:
            self._netem.append(probe_netem(self.runner))
        return self._netem[0]

    # --- plan ------------------------------------------------------------------------------

    def plan(self, *, netem: bool | None = None) -> list[Step]:
        """The ordered steps that bring the network up on a clean host, each with its undo.

        Pure, unless the file's impairments depend on the kernel (loss, or what only netem does):
        then the kernel is asked whether it has netem (see :meth:`netem_support`); ``netem``
        answers for it. Without netem, loss is planned in netfilter, and delay & co are refused
        (UnsupportedError).
        """
        support = self._support_for_file() if netem is None else NetemSupport(netem, "as told")
        refuse_unsupported(self._file_impairments(), support)
        impair = [step for step, _ in impair_entries(self, netem=support.usable)]
        return [step for step, _ in self._entries()] + impair + _firewall_steps(self, live=False)

    def _file_impairments(self) -> list[tuple[str, Impairment | None]]:
        return [(c.describe(), c.impair) for c in cables(self)]

    def _support_for_file(self) -> NetemSupport:
        """netem's support, asked only if the file's impairments depend on it."""
        if needs_probe(imp for _, imp in self._file_impairments()):
            return self.netem_support()
        return NetemSupport(None, "not asked: nothing in the file depends on it")

    def _impair_entries(self, facts: _Facts) -> list[tuple[Step, bool]]:
        """(step, done) of every cable's impairment, from what the kernel applies now."""
        support = facts.netem or self._support_for_file()
        states = states_from(self, facts.links, facts.qdiscs, facts.rules_in)
        return impair_entries(self, netem=support.usable, states=states)

    def render_script(self) -> str:
        """The plan as a bash script a person can review and run; the processes ``up`` then starts, as comments."""
        script = render_script(self.plan(), title=f"netnskit plan for network {self.name!r} (link group {self.group})")
        return script + "".join(_procs.describe(self))

    def _entries(self) -> list[tuple[Step, Callable[[_Facts], bool]]]:
        return _entries(self)

    # --- running ---------------------------------------------------------------------------

    def up(self, executor: Executor | None = None, *, interrupt: Interrupt | None = None) -> Network:
        """Apply the steps not already done; on failure roll back what this call did and raise StepError.

        Returns the network, so ``with network.up(): ...`` tears it down on leaving the block.
        What the network owns (marked ``netnskit:NAME``) and the description no longer has is
        removed first (see :mod:`.drift`). The firewall's steps are read from the host once the
        bridge exists (they depend on it), and a failure there rolls back this call's earlier
        steps too. ``interrupt`` (see :func:`netnskit.interrupt.on_signals`) is read between
        steps: once requested, what this call did is rolled back and Interrupted is raised.
        """
        stop = interrupt or Interrupt()
        with _exclusive(self.runner, self.name, interrupt=stop):
            return self._up(executor or SerialExecutor(), stop)

    def _up(self, run: Executor, stop: Interrupt) -> Network:
        action = f"bringing network {self.name} up"
        warn_if_short(self)  # the neighbour table is the machine's: say so before it overflows, not after
        refuse_unsupported(self._file_impairments(), self._support_for_file())
        facts = self._facts()
        _refuse_foreign(self, facts)
        fw = _firewall_of(self)
        log.info("network %s: firewall %s", self.name, self.firewall_choice())
        saved = _saved(fw)
        # a port another network or a foreign DNAT already forwards, a subnet a route sends elsewhere
        ruleset = _native_ruleset(self)
        _refuse_conflicts(self, facts, saved, ruleset)
        for chain in native_forward_drops(ruleset):
            # an accept of ours, in iptables or in our table, does not stop it: say so, change nothing there
            log.warning(
                "network %s: nft chain %s drops forwarded traffic that netnskit cannot accept there: the "
                "network's masquerade and forwards will not pass it; accept %s there (firewalld: "
                "firewall-cmd --zone=trusted --add-interface=%s)",
                self.name,
                chain,
                self.bridge,
                self.bridge,
            )
        if _uses_nft(self):
            # before any change: a missing nft is a CommandNotFoundError naming the package nftables
            Nftables(self.runner).read(self.name)
        done: list[Step] = []  # applied by this call, in order: what a later failure rolls back
        started: list[ProcessHandle] = []  # the processes this call started: stopped first on rollback

        def apply(steps: Sequence[Step]) -> None:
            if steps:
                run.apply(steps, self.runner, interrupt=stop)
                done.extend(steps)
            stop.check(action)

        def rollback() -> list[str]:
            failed = _procs.stop_started(self, started)
            return failed + _remove(run, done, self.runner)

        try:
            stop.check(action)
            after = _after_removal(self, facts)  # what the removals take along is to do again
            apply(_stale_core(self, facts) + [step for step, ok in self._entries() if not ok(after)])
            apply([step for step, ok in self._impair_entries(facts) if not ok])
            routes = _host_routes(self)  # the masquerade's uplinks: read once the network's links are there
            # rules of ours the description lost go before the firewall plan is read: were one of
            # them wrongly taken for lost, the plan adds it back
            stale = _stale(self, saved, routes)
            apply(_stale_rule_step(self, stale))
            # a dual-stack network's IPv6 rules the description lost likewise (a forward taken out)
            saved6, routes6 = _six(self)
            stale6 = _stale6(self, saved6, routes6)
            apply(_stale_rule_step(self, stale6, 6))
            current = fw.save(4) if stale else saved
            current6 = None if stale6 else saved6  # (read again once stale ones are gone)
            firewall, changes = _firewall_plan(
                self, live=True, saved=current, routes=routes, saved6=current6, routes6=routes6
            )
            if firewall:
                # the values sysctls had are written down (beside the locks) before they change
                fw.remember(changes, current)
            apply(firewall)
            if stale:
                # what no rule needs any more once those are gone (ip_forward, guards' sysctls)
                sweep = _sweep_step(fw, fw.save(4), _read_links(self.runner, None), interfaces(stale))
                apply(sweep.steps)
                fw.records.forget(sweep.forget)
            if stale6:
                sweep = _sweep_step(fw, fw.save(6), _read_links(self.runner, None), interfaces(stale6), 6)
                apply(sweep.steps)
                fw.records.forget(sweep.forget)
            # processes last, once the network they talk over is there: those the description
            # lost go first (drift), then those that do not run start, the interrupt read between
            _procs.stop_stale(self)
            started += _procs.start(self, interrupt=stop, action=action)
            stop.check(action)
        except StepError as exc:
            failed = rollback()
            cause = exc.error or exc.cause  # keep the CommandError (its class says why)
            raise StepError(exc.step, len(done) + exc.index, cause, [*exc.rollback_errors, *failed]) from exc
        except Interrupted as exc:
            undone = exc.undone + sum(1 for step in done if step.undo) + len(started)
            failed = rollback()
            raise Interrupted(exc.signum, action, undone, [*exc.rollback_errors, *failed]) from None
        except BaseException:
            rollback()
            raise
        return self

    def missing_steps(self) -> list[Step]:
        """What ``up`` would do: remove what the network owns and the description no longer has,
        then the plan's steps the kernel does not show as done (all of them when down)."""
        return _missing(self, self._facts())

    def down(self, executor: Executor | None = None, *, interrupt: Interrupt | None = None) -> Teardown:
        """Remove everything this network owns on the host; safe after a crash, when partly gone, twice.

        Owned means marked with its name: what the description no longer has goes too. ``interrupt``
        is read only while waiting for the lock: once removing, ``down`` finishes.
        """
        with _exclusive(self.runner, self.name, interrupt=interrupt):
            return _down(self, executor or SerialExecutor())

    def __enter__(self) -> Network:
        """``with network.up(): ...``: the network as it is."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Tear the network down on leaving the block."""
        self.down()

    def status(self) -> NetworkStatus:
        """The network's state as typed objects, read from ``ip -j``, ``iptables-save``, its files and processes."""
        return _status(self, self._facts(full=True))

    def process_status(self) -> list[ProcessStatus]:
        """Each process: ``running``, ``exited`` or ``not started``, its pid and its log file."""
        return _procs.statuses(self)

    def process_logs(self) -> dict[str, str]:
        """Each process's log file, where the runner acts: name -> path (read with ``tail`` through the runner)."""
        return {p.name: p.log for p in _procs.statuses(self)}

    def hosts_file(self, netns: str) -> str:
        """What ``/etc/netns/NETNS/hosts`` holds once the network is up (pure)."""
        if netns not in self.namespace_names():
            raise ValidationError("namespace", netns, f"is not a namespace of network {self.name!r}")
        return _files.hosts_text(self, netns)

    def address_of(self, name: str, *, seen_from: str | None = None) -> IPv4Address:
        """The address of node ``name`` (a namespace, ``host`` or ``gateway``) that ``seen_from`` reaches
        first (a namespace, None: the host), as its hosts file lists it."""
        try:
            found = _files.addresses_seen_from(self, seen_from, name)
        except KeyError:
            known = ", ".join([*self.namespace_names(), _files.HOST, _files.GATEWAY])
            raise ValidationError("node", name, f"is not a node of network {self.name!r} (known: {known})") from None
        if not found:
            raise ValidationError("node", name, "has no address")
        return found[0]

    def capture(
        self,
        link: str,
        path: str | os.PathLike[str],
        *,
        count: int | None = None,
        duration: float | None = None,
    ) -> Capture:
        """Capture ``link``'s packets into the pcap file ``path`` with tcpdump, run where the link is.

        ``link``: an interface the network makes on the host (the bridge, a namespace's host end, a
        link's host end), a link's name, or ``NETNS:IFNAME``. Returns once tcpdump listens; stop it
        with ``stop()`` or use it as a context manager. ``count``: stop after so many packets;
        ``duration``: ``wait()`` stops it after so many seconds.
        """
        from netnskit.capture import start_capture

        netns, ifname = self.link_place(link)
        return start_capture(self.runner, netns, ifname, path, count=count, duration=duration)

    def link_place(self, link: str) -> tuple[str | None, str]:
        """Where ``link`` is: (namespace or None for the host, interface name); see :meth:`capture`."""
        if link in self.host_ifnames():
            return None, link
        for spec in self.links:
            if spec.name == link:
                return spec.netns, spec.name
        netns, sep, ifname = link.partition(":")
        if sep and netns in self.namespace_names():
            return netns, v.ifname(ifname)
        known = [*self.host_ifnames(), *(s.name for s in self.links if s.netns is not None), "NETNS:IFNAME"]
        raise ValidationError("link", link, f"is not a link of network {self.name!r} (known: {', '.join(known)})")

    def capture_links(self) -> list[tuple[str | None, str]]:
        """One interface per link of the network, for a capture of each: every namespace's veth (its
        host end) and every extra link's first end."""
        found: list[tuple[str | None, str]] = [(None, ns.host_ifname) for ns in self.namespaces]
        return found + [(link.netns, link.name) for link in self.links]

    def check(
        self,
        *,
        timeout: float = 1.0,
        tries: int = 3,
        peers: int = 2,
        all_pairs: bool = False,
        progress: Progress | None = None,
    ) -> CheckReport:
        """Reachability: each namespace to the gateway and its next ``peers`` (or, ``all_pairs``, to every
        other), then the NAT and port-forward paths.

        ``timeout``: seconds to wait for each try's answer; a probe with no answer is tried again,
        ``tries`` times in all. The pings run in rounds that each hold a bounded number of the
        machine's neighbour entries (deleted after each round); a plan one namespace of which needs
        more than a round may hold is refused (ConflictError, with the numbers). On a network that
        is down (none of its namespaces or links exist) nothing is probed: the report says so
        (``down``). ``progress(done, total, what)`` is called as it goes, first with what it will cost.
        """
        return _check(self, timeout, tries=tries, peers=peers, all_pairs=all_pairs, progress=progress)

    def _facts(self, *, full: bool = False) -> _Facts:
        return _gather(self, full)

    # --- impairments and faults at run time ----------------------------------------------------

    def impair(
        self,
        name: str,
        impairment: Impairment | dict[str, str] | None = None,
        *,
        clear: bool = False,
        executor: Executor | None = None,
        **values: str,
    ) -> Impairment | None:
        """Impair cable ``name`` (a namespace on the bridge or a link) now, in place of what it has.

        Give an :class:`~netnskit.qdisc.Impairment`, a mapping, or its keys (``delay="50ms"``);
        ``clear=True`` removes every impairment. Both ends, as in the file; ``up`` puts the
        file's back. Returns what is applied now (None when cleared).
        """
        wanted = _runtime_impairment(impairment, clear, values)
        item = cable(self, name)
        with _exclusive(self.runner, self.name, host=False):
            self._impair_now(item, wanted, executor)
        return wanted

    def _impair_now(
        self, item: Cable, wanted: Impairment | None, executor: Executor | None, state: CableState | None = None
    ) -> CableState:
        """Take ``item`` to ``wanted`` from ``state`` (None: read it now); returns the state it is left in."""
        support = self.netem_support()
        refuse_unsupported([(item.describe(), wanted)], support)
        if state is None:
            state = read_cable(self, item, support.usable)
        entries = cable_steps(item, wanted, netem=support.usable, comment=self.mark, state=state)
        steps = [step for step, done in entries if not done]
        if steps:
            (executor or SerialExecutor()).apply(steps, self.runner)
        return CableState.after(item, wanted, netem=support.usable, comment=self.mark)

    def link_down(self, name: str, *, executor: Executor | None = None) -> None:
        """Cut cable ``name``: both ends down (the kernel drops the routes through them)."""
        with _exclusive(self.runner, self.name, host=False):
            self._link_down(name, executor)

    def link_up(self, name: str, *, executor: Executor | None = None) -> None:
        """Restore cable ``name``: both ends up, then the network's routes the cut took away."""
        with _exclusive(self.runner, self.name, host=False):
            self._link_up(name, executor)

    def _link_down(self, name: str, executor: Executor | None) -> None:
        item = cable(self, name)
        ends = [Link(dev, where, runner=self.runner) for where, dev in item.ends]
        step = Step(
            f"cut {item.describe()}: both ends down",
            [end.down_command() for end in ends],
            [end.up_command() for end in ends],
        )
        (executor or SerialExecutor()).apply([step], self.runner)

    def _link_up(self, name: str, executor: Executor | None) -> None:
        item = cable(self, name)
        ends = [Link(dev, where, runner=self.runner) for where, dev in item.ends]
        # the kernel dropped the routes through the ends with them: put back the network's own
        # (replace: those that survived stay as they are); nothing to read, so it is quick
        routes = [Route(r.to, r.via, r.dev, where, runner=self.runner) for where, r in _routes_through(self, item)]
        step = Step(
            f"restore {item.describe()}: both ends up, their routes back",
            [*(end.up_command() for end in ends), *(route.replace_command() for route in routes)],
        )
        (executor or SerialExecutor()).apply([step], self.runner)

    def _check_up(self, names: set[str]) -> None:
        """Refuse (NetnskitError) when an end of one of these cables is missing: the network is not up."""
        facts = _gather(self, False, impairments=False)
        for item in cables(self):
            if item.name not in names:
                continue
            for where, dev in item.ends:
                if dev not in facts.links.get(where, {}):
                    raise NetnskitError(
                        f"network {self.name!r} is not up: {Cable.end_text((where, dev))} of {item.describe()} "
                        "is missing; bring the network up first"
                    )

    def run_faults(
        self,
        *,
        report: Callable[[FaultEvent], None] | None = None,
        executor: Executor | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> list[FaultEvent]:
        """Run the file's ``[[fault]]`` schedule: each change at its time, reported as it happens.

        Every cable a fault changed is restored at the end, early too (an error, Ctrl-C). Holds
        the network's claim for the whole run (``up`` and ``down`` of it wait their turn: BusyError).
        """
        with _exclusive(self.runner, self.name, host=False):
            return run_faults(self, report=report, executor=executor, clock=clock, sleep=sleep)


def _routes_through(net: Network, item: Cable) -> list[tuple[str | None, RouteSpec]]:
    """The network's routes that go out of an end of ``item``: by its name, or by a gateway on its subnet."""
    subnets: dict[tuple[str | None, str], list[IPv4Network]] = {}
    for ns in net.namespaces:
        subnets[(ns.name, ns.ifname)] = [net.subnet]
    for spec in net.links:
        for where, ifname, address in spec.ends():
            subnets[(where, ifname)] = [] if address is None else [address.network]
    routes: list[tuple[str | None, RouteSpec]] = []
    for ns in net.namespaces:
        if ns.default_route:
            routes.append((ns.name, RouteSpec("default", via=net.gateway)))
        routes += [(ns.name, r) for r in ns.routes]
    routes += [(r.netns, r) for r in net.routes]
    out = []
    for where, route in routes:
        for end in item.ends:
            if end[0] != where:
                continue
            gateway_there = route.via is not None and any(route.via in s for s in subnets.get(end, []))
            if route.dev == end[1] or (route.dev is None and gateway_there):
                out.append((where, route))
                break
    return out


def _runtime_impairment(
    impairment: Impairment | dict[str, str] | None, clear: bool, values: dict[str, str]
) -> Impairment | None:
    if clear:
        if impairment is not None or values:
            raise ValidationError("impair", "clear", "takes no impairment: clear=True removes them all")
        return None
    if impairment is not None and values:
        raise ValidationError("impair", values, "give an Impairment or its keys, not both")
    if isinstance(impairment, Impairment):
        return impairment
    found = dict(impairment or {}) | values
    if not found:
        raise ValidationError("impair", found, "give an impairment (delay=, loss=, rate=...) or clear=True")
    return Impairment.from_mapping(found)


def _saved(fw: Firewall) -> SavedRules | None:
    """The host's IPv4 rules; None where there is no iptables-save (then there are none of ours)."""
    try:
        return fw.save(4)
    except CommandNotFoundError:
        return None


def _remove(executor: Executor, steps: Sequence[Step], runner: Runner) -> list[str]:
    """Undo ``steps`` through the executor; returns the real failures instead of raising them."""
    try:
        executor.remove(steps, runner)
    except StepError as exc:
        return [exc.cause]
    return []

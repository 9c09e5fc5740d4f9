"""The :class:`Network` class: a whole topology as one object (or one TOML file).

Its methods are thin: the plan is built in :mod:`.steps`, read and checked in :mod:`.state` and
:mod:`.status`, torn down in :mod:`.teardown`, probed in :mod:`.check`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs

from netnskit import _validate as v
from netnskit.errors import MISSING, ConfigError, StepError, ValidationError
from netnskit.executors import Executor, SerialExecutor
from netnskit.firewall import NatRule, PortForward
from netnskit.network import files as _files
from netnskit.network import processes as _procs
from netnskit.network.check import CheckReport, _check
from netnskit.network.firewall import _firewall_steps
from netnskit.network.locks import _exclusive
from netnskit.network.processes import ProcessStatus
from netnskit.network.spec import (
    ExtraNamespace,
    ForwardSpec,
    LinkSpec,
    NamespaceSpec,
    ProcessSpec,
    RouteSpec,
    _allocate,
    _dns,
    _extras,
    _flag,
    _forwards,
    _links,
    _namespaces,
    _opt_path,
    _processes,
    _routes,
    _v4_address,
    _v4_network,
    _validate_network,
    group_for,
    mark_for,
)
from netnskit.network.state import _Facts, _gather, _refuse_foreign
from netnskit.network.status import NetworkStatus, _missing, _status
from netnskit.network.steps import _entries
from netnskit.network.teardown import Teardown, _down
from netnskit.network.toml import _from_dict
from netnskit.plan import Step, render_script
from netnskit.process import ProcessHandle
from netnskit.runner import Runner, default_runner

if TYPE_CHECKING:
    from netnskit.capture import Capture


@attrs.frozen
class Network:
    """A bridge, its subnet and gateway, namespaces on it, routes, NAT, forwards and extra links;
    each namespace's hosts (and resolv.conf) under /etc/netns, and processes run in them."""

    name: str = attrs.field(converter=v.netns_name)
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
    ipv6_link_local: bool = attrs.field(default=False, converter=_flag)
    multicast_snooping: bool = attrs.field(default=False, converter=_flag)
    dns: tuple[IPv4Address | IPv6Address, ...] = attrs.field(default=(), converter=_dns)  # every namespace's
    hosts: bool = attrs.field(default=True, converter=_flag)  # write /etc/netns/NAME/hosts
    processes: tuple[ProcessSpec, ...] = attrs.field(default=(), converter=_processes)
    logs: str | None = attrs.field(default=None, converter=_opt_path)  # the processes' log folder
    runner: Runner = attrs.field(factory=default_runner, eq=False, repr=False, kw_only=True)
    # where relative paths (a process's cwd, logs) are read from: a TOML file's folder; None: the current one
    directory: str | None = attrs.field(default=None, converter=_opt_path, eq=False, kw_only=True)
    # the processes this object started (their handles reap them when down ends them)
    _started: dict[str, ProcessHandle] = attrs.field(factory=dict, init=False, eq=False, repr=False)
    # what derives from the (frozen) fields and costs O(N) or more: the addresses, the files
    _memo: dict[str, Any] = attrs.field(factory=dict, init=False, eq=False, repr=False)

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

    def nat_rule(self) -> NatRule:
        """The masquerade rule for the subnet (traffic leaving by any interface but the bridge)."""
        return NatRule(self.subnet, self.bridge, owner=self.name, runner=self.runner)

    def forward_rules(self) -> list[PortForward]:
        """The DNAT rules of the port forwards."""
        addrs = self.addresses()
        return [
            PortForward(
                f.host_port,
                addrs[f.netns].ip,
                f.port,
                f.protocol,
                owner=self.name,
                runner=self.runner,
                bridge=self.bridge,
            )
            for f in self.port_forwards
        ]

    # --- plan ------------------------------------------------------------------------------

    def plan(self) -> list[Step]:
        """The ordered steps that bring the network up on a clean host, each with its undo (pure)."""
        return [step for step, _ in self._entries()] + _firewall_steps(self, live=False)

    def render_script(self) -> str:
        """The plan as a bash script a person can review and run; the processes ``up`` then starts, as comments."""
        script = render_script(self.plan(), title=f"netnskit plan for network {self.name!r} (link group {self.group})")
        return script + "".join(_procs.describe(self))

    def _entries(self) -> list[tuple[Step, Callable[[_Facts], bool]]]:
        return _entries(self)

    # --- running ---------------------------------------------------------------------------

    def up(self, executor: Executor | None = None) -> Network:
        """Apply the steps not already done; on failure roll back what this call did and raise StepError.

        Returns the network, so ``with network.up(): ...`` tears it down on leaving the block.
        The firewall's steps are read from the host once the bridge exists (they depend on it),
        and a failure there rolls back this call's earlier steps too.
        """
        with _exclusive(self.runner, self.name):
            return self._up(executor)

    def _up(self, executor: Executor | None) -> Network:
        run = executor or SerialExecutor()
        facts = self._facts()
        _refuse_foreign(self, facts)
        todo = [step for step, done in self._entries() if not done(facts)]
        if todo:
            run.apply(todo, self.runner)
        applied = list(todo)  # what a later failure rolls back (a failing apply has undone its own)
        try:
            firewall = _firewall_steps(self, live=True)
            if firewall:
                run.apply(firewall, self.runner)
                applied += firewall
            _procs.start(self)
        except StepError as exc:
            failed = _remove(run, applied, self.runner)
            index = len(applied) + exc.index  # the firewall's or the processes' own index, after what stays
            raise StepError(exc.step, index, exc.cause, [*exc.rollback_errors, *failed]) from exc
        except BaseException:
            _remove(run, applied, self.runner)
            raise
        return self

    def missing_steps(self) -> list[Step]:
        """The steps of the plan that the kernel does not show as done (all of them when down)."""
        return _missing(self, self._facts())

    def down(self, executor: Executor | None = None) -> Teardown:
        """Remove everything this network owns on the host; safe after a crash, when partly gone, twice."""
        with _exclusive(self.runner, self.name):
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

    def check(self, *, timeout: float = 2.0) -> CheckReport:
        """Reachability: every namespace to every other and to the gateway, NAT and port-forward paths."""
        return _check(self, timeout)

    def _facts(self, *, full: bool = False) -> _Facts:
        return _gather(self, full)


def _remove(executor: Executor, steps: Sequence[Step], runner: Runner) -> list[str]:
    """Undo ``steps`` through the executor; returns the real failures instead of raising them."""
    try:
        executor.remove(steps, runner)
    except StepError as exc:
        return [exc.cause]
    return []

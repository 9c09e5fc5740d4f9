"""The :class:`Network` class: a whole topology as one object (or one TOML file).

Its methods are thin: the plan is built in :mod:`.steps`, read and checked in :mod:`.state` and
:mod:`.status`, torn down in :mod:`.teardown`, probed in :mod:`.check`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from types import TracebackType
from typing import Any

import attrs

from netnskit import _validate as v
from netnskit.errors import MISSING, ConfigError, StepError
from netnskit.executors import Executor, SerialExecutor
from netnskit.firewall import Firewall, NatRule, PortForward
from netnskit.network.check import CheckReport, _check
from netnskit.network.firewall import _firewall_plan, _firewall_steps, _uplinks
from netnskit.network.locks import _exclusive
from netnskit.network.spec import (
    ExtraNamespace,
    ForwardSpec,
    LinkSpec,
    NamespaceSpec,
    RouteSpec,
    _allocate,
    _extras,
    _flag,
    _forwards,
    _links,
    _namespaces,
    _routes,
    _v4_address,
    _v4_network,
    _validate_network,
    group_for,
    mark_for,
)
from netnskit.network.state import _Facts, _gather, _refuse_conflicts, _refuse_foreign
from netnskit.network.status import NetworkStatus, _missing, _status
from netnskit.network.steps import _entries
from netnskit.network.teardown import Teardown, _down
from netnskit.network.toml import _from_dict
from netnskit.plan import Step, render_script
from netnskit.runner import Runner, default_runner


@attrs.frozen
class Network:
    """A bridge, its subnet and gateway, namespaces on it, routes, NAT, forwards and extra links."""

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
    runner: Runner = attrs.field(factory=default_runner, eq=False, repr=False, kw_only=True)

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
        return cls.from_dict(data, source=where, runner=runner)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<dict>", runner: Runner | None = None) -> Network:
        """Build from the TOML structure (``[network]``, ``[[namespace]]``, ...), strictly."""
        return _from_dict(cls, data, source, runner or default_runner())

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
        return _allocate(self)

    def namespace_names(self) -> list[str]:
        """Every namespace of the network: those on the bridge, then the extra ones."""
        return [n.name for n in self.namespaces] + [n.name for n in self.extra_namespaces]

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
        return NatRule(self.subnet, self.bridge, owner=self.name, runner=self.runner, uplinks=chosen)

    def forward_rules(self) -> list[PortForward]:
        """The DNAT rules of the port forwards (each on its ``host_address``, or every local address)."""
        addrs = self.addresses()
        return [
            PortForward(
                f.host_port,
                addrs[f.netns].ip,
                f.port,
                f.protocol,
                host_address=f.host_address,
                owner=self.name,
                runner=self.runner,
                bridge=self.bridge,
                subnet=self.subnet,
            )
            for f in self.port_forwards
        ]

    # --- plan ------------------------------------------------------------------------------

    def plan(self) -> list[Step]:
        """The ordered steps that bring the network up on a clean host, each with its undo (pure)."""
        return [step for step, _ in self._entries()] + _firewall_steps(self, live=False)

    def render_script(self) -> str:
        """The plan as a bash script a person can review and run."""
        return render_script(self.plan(), title=f"netnskit plan for network {self.name!r} (link group {self.group})")

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
        # a port another network or a foreign DNAT already forwards, a subnet a route sends elsewhere
        saved = Firewall(runner=self.runner).save(4) if self.port_forwards else None
        _refuse_conflicts(self, facts, saved)
        todo = [step for step, done in self._entries() if not done(facts)]
        if todo:
            run.apply(todo, self.runner)
        try:
            firewall, changes = _firewall_plan(self, live=True, saved=saved)
            if firewall:
                # the values sysctls had are written down (beside the locks) before they change
                Firewall(runner=self.runner).remember(changes, saved)
                run.apply(firewall, self.runner)
        except StepError as exc:
            failed = _remove(run, todo, self.runner)
            raise StepError(exc.step, len(todo) + exc.index, exc.cause, [*exc.rollback_errors, *failed]) from exc
        except BaseException:
            _remove(run, todo, self.runner)
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
        """The network's state as typed objects, read from ``ip -j`` and ``iptables-save``."""
        return _status(self, self._facts(full=True))

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

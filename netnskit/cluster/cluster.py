"""The :class:`Cluster` class: one network's description spread over several hosts, each driven by its runner.

Each host's part is a plain :class:`~netnskit.network.Network` (its namespaces, the network's
bridge, the gateway address, masquerade and port forwards only on the gateway host) plus its
VXLAN link (:mod:`.overlay`). ``up`` and ``down`` run the hosts at once, one thread each; a
failure on one host rolls back every host.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import os
import shlex
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import attrs

from netnskit._rundir import _safe_dir, lock_dir
from netnskit.cluster import overlay
from netnskit.cluster.spec import HostPart, HostSpec, split
from netnskit.cluster.vxlan import vni_for
from netnskit.errors import BusyError, NetnskitError, StepError, ValidationError
from netnskit.executors import Executor, SerialExecutor
from netnskit.interrupt import Interrupt
from netnskit.link import LinkInfo
from netnskit.network import CheckReport, Network, NetworkStatus, Teardown
from netnskit.network.locks import _open, _try_lock
from netnskit.plan import Step, render_script
from netnskit.runner import Process, Result, Runner, SshRunner, default_runner

__all__ = ["Cluster", "ClusterStatus", "ClusterTeardown", "HostStatus", "ssh_control_dir"]

T = TypeVar("T")


def ssh_control_dir() -> str:
    """Where the shared ssh connections' sockets live: ``$NETNSKIT_SSH_DIR``, else ``ssh`` in the lock folder."""
    return os.environ.get("NETNSKIT_SSH_DIR") or os.path.join(lock_dir(), "ssh")


class _Nowhere:
    """The runner of a cluster's whole description: it runs nothing (each host's part runs its own commands)."""

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float | None = None,
        netns: str | None = None,
    ) -> Result:
        """Refuse: the whole network is a description, not a place."""
        raise NetnskitError(f"a cluster's whole network runs nothing itself (asked: {shlex.join(argv)})")

    def start(self, argv: Sequence[str], *, netns: str | None = None, stdin: bool = False) -> Process:
        """Refuse, as ``run``."""
        raise NetnskitError(f"a cluster's whole network starts nothing itself (asked: {shlex.join(argv)})")


NOWHERE = _Nowhere()


@attrs.frozen
class HostStatus:
    """One host's part as the kernel there shows it: the Network's status and the overlay's."""

    host: str
    network: NetworkStatus
    vxlan: LinkInfo | None
    peers: tuple[str, ...]  # the underlay addresses the VXLAN link floods to
    missing: tuple[str, ...]  # the Network's missing steps, then the overlay's

    @property
    def up(self) -> bool:
        """True when nothing of this host's part is missing."""
        return not self.missing


@attrs.frozen
class ClusterStatus:
    """Every host's status; ``up`` when no host misses anything."""

    name: str
    hosts: tuple[HostStatus, ...]

    @property
    def up(self) -> bool:
        """True when every host's part is up."""
        return all(h.up for h in self.hosts)

    @property
    def missing(self) -> tuple[str, ...]:
        """Every missing step, as ``host NAME: STEP``."""
        return tuple(f"host {h.host}: {step}" for h in self.hosts for step in h.missing)

    def to_json(self) -> dict[str, Any]:
        """A plain dict for scripts."""
        return {
            "name": self.name,
            "up": self.up,
            "hosts": [
                {
                    "host": h.host,
                    "up": h.up,
                    "network": h.network.to_json(),
                    "vxlan": None if h.vxlan is None else attrs.asdict(h.vxlan),
                    "peers": list(h.peers),
                    "missing": list(h.missing),
                }
                for h in self.hosts
            ],
        }


@attrs.frozen
class ClusterTeardown:
    """What ``Cluster.down`` did on each host, in the hosts' order."""

    hosts: tuple[tuple[str, Teardown], ...]

    def _each(self, field: str) -> tuple[str, ...]:
        return tuple(f"host {host}: {item}" for host, t in self.hosts for item in getattr(t, field))

    @property
    def removed(self) -> tuple[str, ...]:
        """What was removed, as ``host NAME: WHAT``."""
        return self._each("removed")

    @property
    def already_gone(self) -> tuple[str, ...]:
        """What was already gone, as ``host NAME: WHAT``."""
        return self._each("already_gone")

    @property
    def left(self) -> tuple[str, ...]:
        """What was left alone (not ours), as ``host NAME: WHAT``."""
        return self._each("left")


@attrs.define
class _Recording:
    """An executor that passes every call on and keeps the steps applied (less those removed again)."""

    inner: Executor
    applied: list[Step] = attrs.field(factory=list)

    def apply(self, steps: Sequence[Step], runner: Runner, *, interrupt: Interrupt | None = None) -> None:
        """Apply through the inner executor; remember the steps if it succeeded."""
        self.inner.apply(steps, runner, interrupt=interrupt)
        self.applied.extend(steps)

    def remove(self, steps: Sequence[Step], runner: Runner) -> list[str]:
        """Remove through the inner executor (the Network's own rollback); forget those steps."""
        try:
            return self.inner.remove(steps, runner)
        finally:
            gone = {id(s) for s in steps}
            self.applied = [s for s in self.applied if id(s) not in gone]


def _hosts(items: Sequence[HostSpec | Mapping[str, Any]]) -> tuple[HostSpec, ...]:
    if isinstance(items, str | bytes):
        raise ValidationError("hosts", items, "must be a list")
    return tuple(h if isinstance(h, HostSpec) else HostSpec(**h) for h in items)


def _pairs(value: Mapping[str, str] | Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    return tuple((str(k), str(h)) for k, h in items)


def _optional_names(value: Sequence[str | None]) -> tuple[str | None, ...]:
    return tuple(None if h is None else str(h) for h in value)


@attrs.frozen
class Cluster:
    """One network (its subnet, bridge, namespaces, NAT and forwards) spread over several hosts.

    ``placement`` maps a namespace (bridged or extra) to its host (the gateway host by default);
    extra links go with the namespaces they join; ``route_hosts[i]`` places ``network.routes[i]``
    when it is on a host's own table. Each host gets the bridge; a VXLAN link per host (VNI
    ``vni``, unicast to every other host's underlay address) joins them. The gateway address,
    masquerade and port forwards are on ``gateway_host`` (the first host by default).

    ``runners`` gives a host's runner; otherwise a ``local`` host uses ``local_runner`` (the
    default runner if None) and an ``ssh`` host an :class:`SshRunner` through ``local_runner``,
    with ``ssh_options`` and one shared connection per host (sockets in ``control_dir``).
    """

    network: Network
    hosts: tuple[HostSpec, ...] = attrs.field(converter=_hosts)
    gateway_host: str = attrs.field(kw_only=True)
    placement: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs, kw_only=True)
    route_hosts: tuple[str | None, ...] = attrs.field(default=(), converter=_optional_names, kw_only=True)
    vni: int = attrs.field(kw_only=True)
    runners: Mapping[str, Runner] = attrs.field(factory=dict, eq=False, repr=False, kw_only=True)
    local_runner: Runner | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)
    ssh_options: tuple[str, ...] = attrs.field(default=(), converter=tuple, kw_only=True)
    control_dir: str = attrs.field(factory=ssh_control_dir, kw_only=True)
    _parts: dict[str, HostPart] = attrs.field(init=False, eq=False, repr=False)
    _connections: _Connections = attrs.field(init=False, eq=False, repr=False)

    @gateway_host.default
    def _first_host(self) -> str:
        return self.hosts[0].name if self.hosts else ""

    @vni.default
    def _vni(self) -> int:
        return vni_for(self.network.name)

    @_parts.default
    def _split(self) -> dict[str, HostPart]:
        runners = {h.name: self._runner_for(h) for h in self.hosts}
        return split(
            self.network, self.hosts, self.gateway_host, dict(self.placement), self.route_hosts, self.vni, runners
        )

    @_connections.default
    def _no_connections(self) -> _Connections:
        return _Connections()

    def _runner_for(self, host: HostSpec) -> Runner:
        if host.name in self.runners:
            return self.runners[host.name]
        base = self.local_runner if self.local_runner is not None else default_runner()
        if host.ssh is None:
            return base
        control = os.path.join(self.control_dir, "%C")
        return SshRunner(host.ssh, inner=base, options=("-o", "BatchMode=yes", *self.ssh_options), control_path=control)

    # --- loading -------------------------------------------------------------------------------

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], **options: Any) -> Cluster:
        """Load a network file with ``[[host]]`` tables; ``options`` as for the class (runners, ssh_options...)."""
        from netnskit.cluster.toml import load

        return load(cls, path, options)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<dict>", **options: Any) -> Cluster:
        """Build from the TOML structure (``[network]``, ``[[host]]``, ``[[namespace]]``, ...), strictly."""
        from netnskit.cluster.toml import from_dict

        return from_dict(cls, data, source, options)

    # --- derived -------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The network's name."""
        return self.network.name

    @property
    def parts(self) -> dict[str, HostPart]:
        """Each host's part, by host name, in the file's order."""
        return dict(self._parts)

    def host_of(self, namespace: str) -> str:
        """The host a namespace lives on."""
        return dict(self.placement).get(namespace, self.gateway_host)

    # --- plan ----------------------------------------------------------------------------------

    def plan(self) -> dict[str, list[Step]]:
        """Each host's steps on a clean host (its Network's, then its overlay's), by host (pure)."""
        return {name: part.network.plan() + overlay.steps(part) for name, part in self._parts.items()}

    def render_script(self) -> str:
        """The plan as one bash script: a ``# host NAME`` section per host, each run there (over ssh)."""
        first = next(iter(self._parts.values()))
        title = f"# netnskit plan for network {self.name!r} across {len(self._parts)} hosts"
        if first.vxlan is not None:
            title += f" (VXLAN {first.vxlan.name}, VNI {self.vni}, UDP {first.vxlan.port}, MTU {first.vxlan.mtu})"
        lines = ["#!/usr/bin/env bash", title, f"# link group {self.network.group}", "set -euo pipefail", ""]
        for name, steps in self.plan().items():
            part = self._parts[name]
            role = "; the gateway host" if name == self.gateway_host else ""
            underlay = f", underlay {part.host.address}" if part.host.address is not None else ""
            body = render_script(steps, title=f"host {name}: network {self.name!r}").split("\n", 1)[1]
            tag = _delimiter(body)
            lines.append(f"# host {name} ({part.host.reached}{underlay}{role})")
            if part.host.ssh is None:
                lines.append(f"bash -s <<'{tag}'")
            else:
                lines.append(f"{shlex.join(['ssh', '-o', 'BatchMode=yes', part.host.ssh, '--', 'bash -s'])} <<'{tag}'")
            lines += [body.rstrip("\n"), tag, ""]
        return "\n".join(lines)

    def missing_steps(self) -> dict[str, list[Step]]:
        """Each host's steps that the kernel there does not show as done: its Network's, then its overlay's."""
        with self._connected():
            outcomes = _each(self._parts, _host_missing)
        for name, (_, exc) in outcomes.items():
            if exc is not None:
                raise _on_host(name, exc, [], "reading what is missing")
        return {name: steps or [] for name, (steps, _) in outcomes.items()}

    # --- connections ---------------------------------------------------------------------------

    def open(self) -> Cluster:
        """Open one ssh connection per ssh host (in parallel); the cluster's verbs then share them."""
        self._connections.enter(self._ssh_runners(), self.control_dir)
        return self

    def close(self) -> None:
        """Close the connections :meth:`open` made (``ssh -O exit``)."""
        self._connections.leave()

    def __enter__(self) -> Cluster:
        """``with cluster: ...``: one connection per host for the whole block."""
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the connections."""
        self.close()

    @contextlib.contextmanager
    def _connected(self) -> Iterator[None]:
        self.open()
        try:
            yield
        finally:
            self.close()

    def _ssh_runners(self) -> list[SshRunner]:
        return [p.runner for p in self._parts.values() if isinstance(p.runner, SshRunner)]

    # --- running -------------------------------------------------------------------------------

    def up(self, executor: Executor | None = None) -> Cluster:
        """Bring every host's part up at once; if one host fails, roll back what this call did on every host.

        Raises the failing host's error (a StepError names the host in its step) after the rollback.
        """
        run = executor or SerialExecutor()
        with self._claim(), self._connected():
            outcomes = _each(self._parts, lambda part: _up_host(part, run))
            failed = [(name, exc) for name, (_, exc) in outcomes.items() if exc is not None]
            if not failed:
                return self
            done = {name: applied for name, (applied, exc) in outcomes.items() if exc is None and applied}
            undone = _each(
                {name: (self._parts[name], applied) for name, applied in done.items()},
                lambda item: _rollback(run, item[1], item[0].runner),
            )
            errors = [f"host {name}: {e}" for name, (msgs, exc) in undone.items() for e in [*(msgs or []), exc] if e]
            raise _on_host(*failed[0], errors, "every host was rolled back")

    def down(self, executor: Executor | None = None) -> ClusterTeardown:
        """Remove what the network owns on every host, from the marks alone (after a crash too; safe twice)."""
        run = executor or SerialExecutor()
        with self._claim(), self._connected():
            outcomes = _each(self._parts, lambda part: _down_host(part, run))
        failed = [(name, exc) for name, (_, exc) in outcomes.items() if exc is not None]
        if failed:
            raise _on_host(*failed[0], [f"host {n}: {e}" for n, e in failed[1:]], "the other hosts were torn down")
        return ClusterTeardown(tuple((name, t) for name, (t, _) in outcomes.items() if t is not None))

    def status(self) -> ClusterStatus:
        """Every host's part as the kernel there shows it (read at once on every host)."""
        with self._connected():
            outcomes = _each(self._parts, _host_status)
        for name, (_, exc) in outcomes.items():
            if exc is not None:
                raise _on_host(name, exc, [], "reading its status")
        return ClusterStatus(self.name, tuple(s for s, _ in outcomes.values() if s is not None))

    def check(self, *, timeout: float = 2.0, attempts: int = 3, python: str = sys.executable) -> CheckReport:
        """Reachability across hosts: every namespace to every other one and to the gateway, NAT and forwards.

        TCP probes run ``PYTHON -m netnskit.probe`` on the hosts: netnskit must be importable there.
        A failed probe is tried again, ``attempts`` times in all.
        """
        from netnskit.cluster.check import check

        with self._connected():
            return check(self, timeout, attempts, python)

    # --- the cluster's claim -------------------------------------------------------------------

    @contextlib.contextmanager
    def _claim(self) -> Iterator[None]:
        """One process at a time changes this cluster from this machine (the overlay steps run outside
        each host's own Network lock)."""
        folder = _safe_dir(lock_dir())
        key = hashlib.sha256(self.name.encode()).hexdigest()[:24]
        fd = _open(os.path.join(folder, f"cluster-{key}.lock"))
        try:
            if not _try_lock(fd):
                raise BusyError(f"cluster {self.name!r} is being changed by another process on this machine")
            yield
        finally:
            os.close(fd)


class _Connections:
    """The ssh connections a cluster opened, counted so that nested verbs share them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._opened: list[SshRunner] = []

    def enter(self, runners: Sequence[SshRunner], control_dir: str) -> None:
        with self._lock:
            self._depth += 1
            if self._depth > 1:
                return
            try:
                if any(r.control_path is not None for r in runners):
                    os.makedirs(os.path.dirname(control_dir), mode=0o700, exist_ok=True)
                    _safe_dir(control_dir)
                outcomes = _each({str(i): r for i, r in enumerate(runners)}, lambda r: r.open())
                self._opened = [r for r, _ in outcomes.values() if r is not None]
                failed = [exc for _, exc in outcomes.values() if exc is not None]
                if failed:
                    raise failed[0]
            except BaseException:
                self._close()
                self._depth -= 1
                raise

    def leave(self) -> None:
        with self._lock:
            if self._depth == 0:
                return
            self._depth -= 1
            if self._depth == 0:
                self._close()

    def _close(self) -> None:
        opened, self._opened = self._opened, []
        _each({str(i): r for i, r in enumerate(opened)}, lambda r: r.close())


def _each(items: Mapping[str, Any], job: Callable[[Any], T]) -> dict[str, tuple[T | None, BaseException | None]]:
    """``job`` on every item at once (a thread each); each item's result or exception, in the items' order."""
    if not items:
        return {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(items)) as pool:
        futures = {name: pool.submit(job, item) for name, item in items.items()}
    out: dict[str, tuple[T | None, BaseException | None]] = {}
    for name, future in futures.items():
        exc = future.exception()
        out[name] = (None, exc) if exc is not None else (future.result(), None)
    return out


def _up_host(part: HostPart, executor: Executor) -> list[Step]:
    """Bring one host's part up (its Network, then its overlay); returns the steps this call applied.

    On a failure, what this call did on this host is undone before the exception goes on.
    """
    recording = _Recording(executor)
    facts = overlay.read(part)
    overlay.refuse_foreign(part, facts)
    try:
        part.network.up(recording)
        todo = [step for step, done in overlay.entries(part) if not done(facts)]
        if todo:
            recording.apply(todo, part.runner)
    except BaseException:
        _rollback(executor, recording.applied, part.runner)
        raise
    return recording.applied


def _rollback(executor: Executor, steps: Sequence[Step], runner: Runner) -> list[str]:
    """Undo ``steps``; the real failures, as text."""
    if not steps:
        return []
    try:
        executor.remove(steps, runner)
    except StepError as exc:
        return [exc.cause]
    return []


def _down_host(part: HostPart, executor: Executor) -> Teardown:
    """Remove one host's part from the marks: its VXLAN link, then its Network."""
    facts = overlay.read(part)
    steps, gone, left = overlay.removal(part, facts)
    if steps:
        gone += executor.remove(steps, part.runner)
    teardown = part.network.down(executor)
    return Teardown(
        removed=(*(s.description for s in steps), *teardown.removed),
        already_gone=(*gone, *teardown.already_gone),
        left=(*left, *teardown.left),
    )


def _host_missing(part: HostPart) -> list[Step]:
    facts = overlay.read(part)
    return part.network.missing_steps() + [step for step, done in overlay.entries(part) if not done(facts)]


def _host_status(part: HostPart) -> HostStatus:
    facts = overlay.read(part)
    network = part.network.status()
    missing = [step.description for step, done in overlay.entries(part) if not done(facts)]
    vxlan = None if facts.link is None else LinkInfo.from_json(facts.link)
    return HostStatus(
        part.host.name,
        network,
        vxlan,
        tuple(sorted(str(p) for p in facts.peers)),
        (*(m.step for m in network.missing), *missing),
    )


def _on_host(host: str, exc: BaseException, more: Sequence[str], then: str) -> BaseException:
    """The error of a failed host, naming it; ``more``: what else failed (other hosts, undoing); ``then``: what
    happened to the other hosts."""
    if isinstance(exc, StepError):
        cause = exc.error if exc.error is not None else exc.cause
        new = StepError(f"on host {host}: {exc.step}", exc.index, cause, [*exc.rollback_errors, *more])
        new.__cause__ = exc
        return new
    exc.add_note(f"(on host {host}; {then})")
    if more:
        exc.add_note("also: " + "; ".join(more))
    return exc


def _delimiter(body: str) -> str:
    """A here-document delimiter that no line of ``body`` is."""
    lines = set(body.split("\n"))
    tag, n = "NETNSKIT_HOST", 0
    while tag in lines:
        n += 1
        tag = f"NETNSKIT_HOST_{n}"
    return tag

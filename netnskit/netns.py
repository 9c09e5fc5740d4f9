"""Namespace: a named network namespace (``ip netns``) and the work done inside it."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from netnskit import _ipjson
from netnskit import _validate as v
from netnskit import link as _link
from netnskit.commands import ip, sysctl
from netnskit.errors import AlreadyExistsError, NotFoundError
from netnskit.plan import Command, Resource
from netnskit.runner import PrefixRunner, Result, Runner, default_runner, netns_runner

if TYPE_CHECKING:
    from netnskit.process import ProcessHandle

__all__ = ["Namespace", "exec_argv"]


@attrs.frozen
class Namespace:
    """A named network namespace, created with ``ip netns add NAME``."""

    name: str = attrs.field(converter=v.netns_name)
    runner: Runner = attrs.field(factory=default_runner, eq=False, repr=False, kw_only=True)

    # --- plan commands, pure ----------------------------------------------------------------

    def add_command(self) -> Command:
        """``ip netns add NAME``."""
        return ip(None, "netns", "add", self.name, creates=[Resource("netns", self.name)])

    def delete_command(self) -> Command:
        """``ip netns del NAME``: everything inside goes with it."""
        return ip(None, "netns", "del", self.name, removes=[Resource("netns", self.name)])

    def sysctl_command(self, name: str, value: str) -> Command:
        """``sysctl -w NAME=VALUE`` inside the namespace."""
        return sysctl(self.name, name, value)

    # --- argv, pure ------------------------------------------------------------------------

    def add_argv(self) -> list[str]:
        """``ip netns add NAME``."""
        return self.add_command().host_argv()

    def delete_argv(self) -> list[str]:
        """``ip netns del NAME``."""
        return self.delete_command().host_argv()

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """``ip netns exec NAME ARGV...``: a command run inside the namespace."""
        return exec_argv(self.name, argv)

    def ip_argv(self, *args: str) -> list[str]:
        """``ip -n NAME ARGS...``: an ip command aimed inside the namespace."""
        return _link.ip_argv(self.name, *args)

    def pids_argv(self) -> list[str]:
        """``ip netns pids NAME``."""
        return ["ip", "netns", "pids", self.name]

    @staticmethod
    def list_argv() -> list[str]:
        """``ip -j netns list``."""
        return _ipjson.argv(None, *_ipjson.NETNS_LIST)

    # --- running ---------------------------------------------------------------------------

    def create(self, *, exist_ok: bool = False) -> Namespace:
        """Create the namespace; ``exist_ok`` accepts one that exists already."""
        try:
            self.runner.run(self.add_argv()).check(f"creating namespace {self.name!r}")
        except AlreadyExistsError:
            if not exist_ok:
                raise
        return self

    def delete(self, *, missing_ok: bool = False) -> None:
        """Delete the namespace; ``missing_ok`` accepts one already gone."""
        try:
            self.runner.run(self.delete_argv()).check(f"deleting namespace {self.name!r}")
        except NotFoundError:
            if not missing_ok:
                raise

    def exists(self) -> bool:
        """True if ``ip netns list`` shows this namespace."""
        return self.name in Namespace.names(self.runner)

    @classmethod
    def names(cls, runner: Runner) -> list[str]:
        """The names of every namespace ``ip netns list`` shows."""
        return [str(d["name"]) for d in _ipjson.netns_list(runner) if "name" in d]

    @classmethod
    def all(cls, runner: Runner) -> list[Namespace]:
        """Every namespace ``ip netns list`` shows, as Namespace objects."""
        return [cls(name, runner=runner) for name in cls.names(runner)]

    def exec(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        input: str | None = None,
        timeout: float | None = None,
    ) -> Result:
        """Run ``argv`` inside the namespace; with ``check`` a non-zero exit raises."""
        result = self.runner.run(self.exec_argv(argv), input=input, timeout=timeout)
        return result.check(f"running a command in namespace {self.name!r}") if check else result

    def spawn(
        self,
        argv: Sequence[str],
        *,
        log: str | None = None,
        name: str | None = None,
        cwd: str | None = None,
    ) -> ProcessHandle:
        """Start ``argv`` in the background inside the namespace (as ``ip netns exec`` runs it); its handle.

        Its output goes to ``log`` (default: ``/run/netnskit/logs/PLACE/NAME/PROGRAM-TIME.log`` where
        the runner acts). The handle has the pid and the log, ``wait_for_port``, ``wait_ready`` and
        ``stop``; it returns at once: wait for readiness with those.
        """
        from netnskit.network.locks import place_of
        from netnskit.process import STATE_DIR, command, spawn

        words = command(argv)
        label = v.netns_name(name) if name is not None else v.netns_name(words[0].rsplit("/", 1)[-1])
        if log is None:
            log = f"{STATE_DIR}/logs/{place_of(self.runner)}/{self.name}/{label}-{time.time_ns()}.log"
        # a mark of its own (no network's: cleanup and down leave it to this handle), so that stop()
        # also ends what it started
        owner = f"spawn-{uuid.uuid4().hex}"
        return spawn(self.runner, self.name, words, log=os.path.abspath(log), name=label, cwd=cwd or "", owner=owner)

    @property
    def inside(self) -> PrefixRunner:
        """A runner whose every command runs inside this namespace (``ip netns exec``)."""
        return netns_runner(self.runner, self.name)

    def pids(self) -> list[int]:
        """The ids of the processes running inside the namespace."""
        out = self.runner.run(self.pids_argv()).check(f"listing processes in {self.name!r}").stdout
        return [int(word) for word in out.split()]

    def link(self, name: str) -> _link.Link:
        """The interface ``name`` inside this namespace."""
        return _link.Link(name, self.name, runner=self.runner)

    def loopback_up(self) -> Namespace:
        """Bring ``lo`` up inside the namespace."""
        self.link("lo").up()
        return self

    def route(self, to: object, via: object = None, dev: str | None = None) -> _link.Route:
        """A Route inside this namespace (call ``.add()`` on it)."""
        return _link.Route(to, via, dev, self.name, runner=self.runner)

    def links(self) -> list[_link.LinkInfo]:
        """Every link inside the namespace."""
        return _link.links(self.runner, self.name)

    def addresses(self) -> list[_link.AddressInfo]:
        """Every address inside the namespace."""
        return _link.addresses(self.runner, self.name)

    def routes(self, *, family: int = 4) -> list[_link.RouteInfo]:
        """The namespace's main routing table."""
        return _link.routes(self.runner, self.name, family=family)

    def neighbours(self) -> list[_link.Neighbour]:
        """The namespace's neighbour (ARP) table."""
        return _link.neighbours(self.runner, self.name)


def exec_argv(netns: str | None, argv: Sequence[str]) -> list[str]:
    """``argv`` run inside ``netns`` (``ip netns exec NETNS ARGV...``), or as it is on the host for None."""
    # pure: no Namespace (whose default runner is looked up, and refused where sandboxes are ambiguous)
    if isinstance(argv, str):
        raise TypeError("argv must be a list of strings, not a string")
    return list(argv) if netns is None else ["ip", "netns", "exec", v.netns_name(netns), *argv]

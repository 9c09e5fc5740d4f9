"""Sysctl: a kernel setting the firewall switches on while a rule needs it, and puts back after."""

from __future__ import annotations

import attrs

from netnskit.commands import sysctl
from netnskit.firewall.rules import MEMO, STATE_CHAIN, Rule
from netnskit.plan import Command


@attrs.frozen
class Sysctl:
    """A sysctl netnskit sets while some rule needs it, and puts back afterwards."""

    name: str
    value: str

    def set_command(self, value: str | None = None) -> Command:
        """``sysctl -w NAME=VALUE`` on the host (``value`` defaults to the one this sysctl wants).

        A barrier: its previous value is remembered by a rule (:meth:`memo`) that a restore, in
        another channel, adds before it and deletes after it. Run side by side, a crash between
        the two could leave the value changed with its record gone (issue 13).
        """
        return sysctl(None, self.name, self.value if value is None else value, barrier=True)

    def set_argv(self, value: str | None = None) -> list[str]:
        """``sysctl -w NAME=VALUE``."""
        return self.set_command(value).host_argv()

    def memo(self, family: int, previous: str) -> Rule:
        """The never-matching rule in ``NETNSKIT-STATE`` that carries the previous value in the plan itself."""
        return Rule(family, "filter", STATE_CHAIN, ["-m", "comment", "--comment", f"{MEMO}{self.name}={previous}"])


def _forwarding(family: int) -> Sysctl:
    return Sysctl("net.ipv6.conf.all.forwarding" if family == 6 else "net.ipv4.ip_forward", "1")


def _route_localnet(bridge: str) -> Sysctl:
    # sysctl writes a dot in an interface name as '/'
    return Sysctl(f"net.ipv4.conf.{bridge.replace('.', '/')}.route_localnet", "1")

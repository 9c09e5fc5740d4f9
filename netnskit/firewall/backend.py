"""FirewallBackend: what netnskit.network and NatRule/PortForward need from a firewall backend.

Firewall (iptables.py) implements it; an nftables backend is to implement it beside that one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from netnskit.firewall.records import SysctlRecord, SysctlRecords
from netnskit.firewall.rules import Rule, SavedRules
from netnskit.firewall.sysctl import Sysctl
from netnskit.plan import Command, Step


@runtime_checkable
class FirewallBackend(Protocol):
    """Reads the host's firewall, plans netnskit's rules on it, deletes them and sweeps what is left."""

    def save(self, family: int) -> SavedRules:
        """The host's rules of ``family`` (4 or 6), parsed; raises if they cannot be read."""

    def has(self, rule: Rule, saved: SavedRules | None = None) -> bool:
        """Does ``rule`` exist on the host? (False when ``saved`` lacks its chain.)"""

    def forward_policy_drop(self, saved: SavedRules) -> bool:
        """True where ``saved`` shows the FORWARD chain's policy is DROP."""

    def plan(
        self,
        family: int,
        rules: Sequence[Rule],
        sysctls: Sequence[Sysctl],
        description: str,
        *,
        saved: SavedRules | None = None,
        values: dict[str, str] | None = None,
    ) -> list[Step]:
        """Steps adding what is missing of ``rules`` and setting ``sysctls`` (for a clean host with ``values``)."""

    def plan_changes(
        self,
        family: int,
        rules: Sequence[Rule],
        sysctls: Sequence[Sysctl],
        description: str,
        *,
        saved: SavedRules | None = None,
        values: dict[str, str] | None = None,
    ) -> tuple[list[Step], list[SysctlRecord]]:
        """:meth:`plan`, and the records of the sysctls it changes (to :meth:`remember` before running it)."""

    def remember(self, changes: Sequence[SysctlRecord], saved: SavedRules | None = None) -> None:
        """Write down, outside the firewall, the values sysctls had before netnskit changes them."""

    def delete(self, family: int, rules: Sequence[Rule]) -> list[str]:
        """Delete those of ``rules`` that exist; returns one line per rule deleted."""

    def sweep_commands(self, family: int, saved: SavedRules) -> list[Command]:
        """The commands removing what of netnskit's no rule in ``saved`` needs any more (pure)."""

    def plan_sweep(
        self,
        family: int,
        saved: SavedRules,
        *,
        records: Mapping[str, SysctlRecord] | None = None,
        value: Callable[[str], str | None] | None = None,
        reliance: Callable[[], Sequence[str]] | None = None,
        elsewhere: tuple[bool, Sequence[str]] = (False, ()),
    ) -> Any:
        """The sweep of ``saved`` (a Sweep): commands, sysctls left on and why, records to drop after."""

    def reliance(self, family: int, saved: SavedRules, served: Iterable[str] = ()) -> list[str]:
        """What on the host needs forwarding of ``family`` besides netnskit (``served``: netnskit's interfaces)."""

    def sysctl_value(self, name: str) -> str | None:
        """A sysctl's current value, None where it cannot be read."""

    @property
    def records(self) -> SysctlRecords:
        """The sysctl values netnskit found before changing them (kept beside the locks)."""

    def sweep(self, family: int, served: Iterable[str] = ()) -> Any:
        """Run the sweep against the host's rules as they are now (sysctls put back from their records)."""

    def restore_command(self, family: int, sections: dict[str, list[str]]) -> Command:
        """One command running ``Rule.line()`` lines, grouped by table, in one transaction."""

"""Which firewall a network's rules go through: ``iptables`` (the default), ``nftables`` or ``auto``.

``auto`` picks nftables where ``nft`` is installed and no iptables-legacy rules exist (legacy rules
are in hooks of their own that nft tables cannot see or order against), else iptables, and says why.
"""

from __future__ import annotations

import attrs

from netnskit.errors import CommandNotFoundError, ValidationError
from netnskit.runner import Runner

FIREWALLS = ("iptables", "nftables", "auto")


def firewall_kind(value: object) -> str:
    """A firewall setting: one of ``iptables``, ``nftables``, ``auto`` (else ValidationError)."""
    if isinstance(value, str) and value in FIREWALLS:
        return value
    raise ValidationError("firewall", value, "must be one of " + ", ".join(repr(f) for f in FIREWALLS))


@attrs.frozen
class Choice:
    """The firewall in use (``iptables`` or ``nftables``) and why (the setting, or what ``auto`` found)."""

    kind: str
    reason: str

    def __str__(self) -> str:
        return f"{self.kind} ({self.reason})"


def _legacy_rules(runner: Runner) -> int:
    """How many iptables-legacy rules the kernel holds (0 without legacy tables: the tools are not asked)."""
    count = 0
    for family, save in ((4, "iptables-legacy-save"), (6, "ip6tables-legacy-save")):
        names = runner.run(["cat", f"/proc/net/ip{'6' if family == 6 else ''}_tables_names"])
        if not names.ok or not names.stdout.strip():
            continue
        try:
            result = runner.run([save])
        except CommandNotFoundError:
            continue
        count += sum(1 for line in result.stdout.splitlines() if line.startswith("-A ")) if result.ok else 0
    return count


def choose(runner: Runner, setting: str) -> Choice:
    """The firewall ``setting`` means on the host ``runner`` acts on (``auto`` reads the host)."""
    setting = firewall_kind(setting)
    if setting != "auto":
        return Choice(setting, "as set")
    try:
        has_nft = runner.run(["nft", "--version"]).ok
    except CommandNotFoundError:
        has_nft = False
    if not has_nft:
        return Choice("iptables", "auto: nft is not installed")
    legacy = _legacy_rules(runner)
    if legacy:
        return Choice("iptables", f"auto: {legacy} iptables-legacy rule(s) exist")
    return Choice("nftables", "auto: nft is installed and no iptables-legacy rules exist")

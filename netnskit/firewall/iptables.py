"""Firewall over iptables: check with ``-C``, add and delete in one ``iptables-restore``, sweep.

Backend names the binaries (the system's, ``iptables-nft...`` or ``iptables-legacy...``);
split_brain_warning says when the other backend holds rules this one cannot see.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import attrs

from netnskit.errors import ValidationError
from netnskit.firewall.rules import (
    _CHAINS,
    _OURS,
    _TABLE_ORDER,
    SHARED,
    Rule,
    SavedRules,
    _after,
    _is_ours,
    _owner,
    _shared_rules,
)
from netnskit.firewall.sysctl import Sysctl
from netnskit.plan import Command, Step
from netnskit.runner import Runner, default_runner

log = logging.getLogger("netnskit")
BACKENDS = ("nft", "legacy")


def _kind(value: object) -> str | None:
    if value is None or (isinstance(value, str) and value in BACKENDS):
        return value
    raise ValidationError("iptables backend", value, "must be None (the system's), 'nft' or 'legacy'")


XTABLES_WAIT = 10  # seconds an iptables tool waits for the xtables lock by default (then XtablesLockError)
_WAIT_MAX = 3600


def xtables_wait(value: object) -> int:
    """Seconds to wait for the xtables lock: an integer from 1 to 3600."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _WAIT_MAX:
        raise ValidationError("xtables wait", value, f"must be a whole number of seconds from 1 to {_WAIT_MAX}")
    return value


@attrs.frozen
class Backend:
    """Which iptables binaries to run: the system's (``None``), ``"nft"`` or ``"legacy"``, and how long they wait.

    ``wait``: seconds each tool waits for the xtables lock (``-w SECONDS``; the legacy backend's
    lock, which another program such as a firewall manager may hold). Past it the tool gives up and
    netnskit raises :class:`~netnskit.errors.XtablesLockError`. Keep it under the runner's timeout.
    """

    kind: str | None = attrs.field(default=None, converter=_kind)
    wait: int = attrs.field(default=XTABLES_WAIT, converter=xtables_wait, kw_only=True)

    def wait_args(self) -> list[str]:
        """``-w SECONDS``: how every iptables tool is told to wait for the xtables lock."""
        return ["-w", str(self.wait)]

    def binary(self, family: int, tool: str = "") -> str:
        """The program for ``family`` (4 or 6) and ``tool`` ('', 'save' or 'restore')."""
        base = "ip6tables" if family == 6 else "iptables"
        name = f"{base}-{self.kind}" if self.kind else base
        return f"{name}-{tool}" if tool else name


def _backend(value: object) -> Backend:
    return value if isinstance(value, Backend) else Backend(_kind(value))


def detect_backend(runner: Runner, family: int = 4) -> str:
    """'nft' or 'legacy': what the system's ``iptables`` is, from ``iptables -V``."""
    out = runner.run([Backend().binary(family), "-V"]).check("asking iptables for its version").stdout
    if "(nf_tables)" in out:
        return "nft"
    if "(legacy)" in out:
        return "legacy"
    # iptables before 1.8 printed no backend: it is legacy.
    return "legacy"


def _count_rules(save_text: str) -> int:
    return sum(1 for line in save_text.splitlines() if line.startswith("-A "))


def split_brain_warning(runner: Runner, backend: Backend | str | None = None) -> str | None:
    """A warning when the backend not in use holds rules (invisible to this one), else None."""
    chosen = _backend(backend)
    kind = chosen.kind or detect_backend(runner)
    other = Backend("legacy" if kind == "nft" else "nft")
    found = []
    for family in (4, 6):
        if other.kind == "legacy":
            # Only ask the legacy tools when the kernel has legacy tables: they load modules.
            names = runner.run(["cat", f"/proc/net/ip{'6' if family == 6 else ''}_tables_names"])
            if not names.ok or not names.stdout.strip():
                continue
        save = runner.run([other.binary(family, "save")])
        count = _count_rules(save.stdout) if save.ok else 0
        if count:
            found.append(f"{count} rule(s) in {other.binary(family)}")
    if not found:
        return None
    return (
        f"netnskit uses iptables-{kind}, but " + " and ".join(found) + " exist: rules in one "
        "backend are invisible to the other's tools; check both (iptables-nft-save, iptables-legacy-save)"
    )


def _restore_input(sections: dict[str, list[str]]) -> str:
    text = []
    for table in _TABLE_ORDER:
        if sections.get(table):
            text += [f"*{table}", *sections[table], "COMMIT"]
    return "\n".join(text) + "\n"


@attrs.frozen
class Firewall:
    """Runs netnskit's rules through one backend: check, add in one restore, delete, sweep."""

    backend: Backend = attrs.field(factory=Backend, converter=_backend)
    runner: Runner = attrs.field(factory=default_runner, eq=False, repr=False)

    def restore_command(self, family: int, sections: dict[str, list[str]]) -> Command:
        """``iptables-restore -w SECONDS --noflush`` fed the given lines per table."""
        tool = self.backend.binary(family, "restore")
        argv = [tool, *self.backend.wait_args(), "--noflush"]
        return Command(argv, _restore_input(sections), tool=tool, channel=tool)

    def save(self, family: int) -> SavedRules:
        """Read ``iptables-save`` of ``family`` (raises if it fails)."""
        out = self.runner.run([self.backend.binary(family, "save")]).check("reading the firewall").stdout
        return SavedRules.parse(family, out)

    def has(self, rule: Rule, saved: SavedRules | None = None) -> bool:
        """``iptables -C``: is the rule there? (False when its chain is missing.)"""
        if saved is not None and (rule.table, rule.chain) not in saved.chains:
            return False
        return self.runner.run(rule.argv(self.backend, "-C")).ok

    def forward_policy_drop(self, saved: SavedRules) -> bool:
        """True where the FORWARD chain's policy is DROP (as on hosts with Docker)."""
        return saved.policies.get(("filter", "FORWARD"), "ACCEPT") == "DROP"

    def sysctl(self, name: str) -> str:
        """The current value of a sysctl."""
        return self.runner.run(["sysctl", "-n", name]).check(f"reading {name}").stdout.strip()

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
        """Steps adding what is missing of ``rules`` (and our chains/jumps) and setting ``sysctls``.

        With ``values`` (sysctl name -> value, missing ones read as "0") the plan is made for a
        clean host without running anything; else it is checked against the host (``saved`` is
        its ``iptables-save``, read here when not given).
        """
        clean = values is not None
        if saved is None:
            saved = SavedRules(frozenset(), (), {}) if clean else self.save(family)
        tables = {r.table for r in rules} | ({"filter"} if sysctls else set())
        memos = saved.memos()
        to_set: list[tuple[Sysctl, str]] = []
        memo_rules: list[Rule] = []
        for s in sysctls:
            current = (values or {}).get(s.name, "0") if clean else self.sysctl(s.name)
            if current != s.value:
                to_set.append((s, current))
                if s.name not in memos:
                    memo_rules.append(s.memo(family, current))
        wanted = [*rules, *memo_rules, *_shared_rules(family, tables)]
        added = [r for r in wanted if clean or not self.has(r, saved)]
        new_chains = [(t, c) for t in _TABLE_ORDER if t in tables for c in _CHAINS[t] if (t, c) not in saved.chains]
        steps: list[Step] = []
        if added or new_chains:
            do: dict[str, list[str]] = {}
            undo: dict[str, list[str]] = {}
            for table, chain in new_chains:
                do.setdefault(table, []).append(f"-N {chain}")
            # Rules in our chains first, jumps from the built-in chains last.
            for rule in sorted(added, key=lambda r: not _OURS.match(r.chain)):
                do.setdefault(rule.table, []).append(rule.line("-A"))
            for rule in sorted(added, key=lambda r: bool(_OURS.match(r.chain))):
                undo.setdefault(rule.table, []).append(rule.line("-D"))
            for table, chain in new_chains:
                undo.setdefault(table, []).append(f"-X {chain}")
            steps.append(Step(description, [self.restore_command(family, do)], [self.restore_command(family, undo)]))
        for s, previous in to_set:
            steps.append(Step(f"set {s.name}={s.value} (was {previous})", [s.set_command()], [s.set_command(previous)]))
        return steps

    def delete(self, family: int, rules: Sequence[Rule]) -> list[str]:
        """Delete those of ``rules`` that exist, in one restore; returns their lines."""
        saved = self.save(family)
        lines: dict[str, list[str]] = {}
        gone = []
        for rule in rules:
            if self.has(rule, saved):
                lines.setdefault(rule.table, []).append(rule.line("-D"))
                gone.append(rule.line("-D"))
        if lines:
            self.restore_command(family, lines).run(self.runner).check("deleting netnskit rules")
        return gone

    def sweep_commands(self, family: int, saved: SavedRules) -> list[Command]:
        """What to run so nothing of ours outlives its need (read from ``saved``; pure)."""
        deletes: list[Rule] = []
        owned = saved.owner_rules()
        # A loopback guard of owner O on bridge B stays while O still forwards hairpin traffic on B.
        guards = [r for r in owned if r.table == "raw"]
        for guard in guards:
            bridge = _after(guard.spec, "-i")
            if not any(
                r.table == "nat" and r.comment == guard.comment and _after(r.spec, "-i") == bridge for r in owned
            ):
                deletes.append(guard)
        owned = [r for r in owned if r not in deletes]
        remaining_guards = {_after(r.spec, "-i") for r in owned if r.table == "raw"}
        commands: list[Command] = []
        for name, (memo, previous) in sorted(saved.memos().items()):
            localnet = re.fullmatch(r"net\.ipv4\.conf\.(.+)\.route_localnet", name)
            needed = localnet.group(1).replace("/", ".") in remaining_guards if localnet else bool(owned)
            if not needed:
                commands.append(Sysctl(name, previous).set_command())
                deletes.append(memo)
        lines: dict[str, list[str]] = {}
        for rule in deletes:
            lines.setdefault(rule.table, []).append(rule.line("-D"))
        memos_left = [m for m, _ in saved.memos().values() if m not in deletes]
        for table in _TABLE_ORDER:
            ours = [c for c in _CHAINS[table] if (table, c) in saved.chains]
            if not ours or any(r.table == table for r in owned) or (table == "filter" and memos_left):
                continue
            foreign = [r for r in saved.rules if r.table == table and r.chain in ours and not _is_ours(r)]
            if foreign:
                # someone added rules to our chains: leave the chains (and the jumps) to them
                log.warning(
                    "not removing netnskit's %s chains: they hold %d rule(s) not made by netnskit", table, len(foreign)
                )
                continue
            jumps = [r for r in saved.rules if r.table == table and r.comment == SHARED and not _OURS.match(r.chain)]
            lines.setdefault(table, []).extend(r.line("-D") for r in jumps)
            lines[table].extend(f"-F {c}" for c in ours)
            lines[table].extend(f"-X {c}" for c in ours)
        if lines:
            commands.append(self.restore_command(family, lines))
        return commands

    def sweep(self, family: int) -> None:
        """Remove guards, sysctl values and shared chains/jumps that no owner needs any more."""
        for command in self.sweep_commands(family, self.save(family)):
            result = command.run(self.runner)
            if command.tool == "sysctl" and not result.ok and "no such file" in result.stderr.lower():
                continue  # the interface is gone, and its sysctl with it
            result.check("sweeping netnskit rules")

    def purge(self, owner: str, family: int = 4) -> int:
        """Delete every rule of ``owner`` (found by its comment), then sweep; returns how many."""
        comment = f"{SHARED}:{_owner(owner)}"
        saved = self.save(family)
        mine = [r for r in saved.rules if r.comment == comment]
        lines: dict[str, list[str]] = {}
        for rule in mine:
            lines.setdefault(rule.table, []).append(rule.line("-D"))
        if lines:
            self.restore_command(family, lines).run(self.runner).check(f"purging the rules of {owner!r}")
        self.sweep(family)
        return len(mine)

"""Firewall over iptables: check with ``-C``, add and delete in one ``iptables-restore``, sweep.

Backend names the binaries (the system's, ``iptables-nft...`` or ``iptables-legacy...``);
split_brain_warning says when the other backend holds rules this one cannot see.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs

from netnskit import _ipjson
from netnskit.errors import ValidationError
from netnskit.firewall.host import foreign_bridges, forwarding_reliance, interfaces, summary
from netnskit.firewall.records import SysctlRecord, SysctlRecords
from netnskit.firewall.rules import (
    _CHAINS,
    _OURS,
    _TABLE_ORDER,
    LOOPBACK_NET,
    SHARED,
    STATE_CHAIN,
    USER_CHAIN,
    Rule,
    SavedRules,
    _after,
    _inserted,
    _is_ours,
    _owner,
    _shared_rules,
)
from netnskit.firewall.sysctl import Sysctl
from netnskit.plan import Command, Step
from netnskit.runner import Runner, default_runner

log = logging.getLogger("netnskit")
BACKENDS = ("nft", "legacy")
_FORWARDING = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")
_RELIANCE_READS = "link show type bridge\naddr show type bridge\nroute show\n"


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
class Sweep:
    """What a sweep runs, what it leaves as it is and why, and the sysctl records to drop once it ran."""

    commands: tuple[Command, ...] = ()
    left: tuple[str, ...] = ()
    forget: tuple[str, ...] = ()
    restored: tuple[str, ...] = ()  # NAME=VALUE of each sysctl the commands put back


@attrs.frozen
class Firewall:
    """Runs netnskit's rules through one backend: check, add in one restore, delete, sweep."""

    backend: Backend = attrs.field(factory=Backend, converter=_backend)
    runner: Runner = attrs.field(factory=default_runner, eq=False, repr=False)

    @property
    def records(self) -> SysctlRecords:
        """The sysctl values netnskit found before changing them, on the host the runner acts in."""
        return SysctlRecords(self.runner)

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

    def sysctl_value(self, name: str) -> str | None:
        """The current value of a sysctl, None where it cannot be read (its interface is gone)."""
        result = self.runner.run(["sysctl", "-n", name])
        return result.stdout.strip() if result.ok else None

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
        return self.plan_changes(family, rules, sysctls, description, saved=saved, values=values)[0]

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
        """:meth:`plan`, and the records to :meth:`remember` before its steps run (one per sysctl it changes)."""
        clean = values is not None
        if saved is None:
            saved = SavedRules(frozenset(), (), {}) if clean else self.save(family)
        tables = {r.table for r in rules} | ({"filter"} if sysctls else set())
        changes: list[SysctlRecord] = []
        memos = saved.memos()
        memo_rules: list[Rule] = []
        for s in sysctls:
            current = (values or {}).get(s.name, "0") if clean else self.sysctl(s.name)
            if current != s.value:
                changes.append(SysctlRecord(s.name, current, s.value))
                if s.name not in memos:
                    # the plan carries the value too (for a script run by hand); up's record is the file
                    memo_rules.append(s.memo(family, current))
        wanted = [*rules, *memo_rules, *_shared_rules(family, tables)]
        added = [r for r in wanted if clean or not self.has(r, saved)]
        new_chains = [(t, c) for t in _TABLE_ORDER if t in tables for c in _CHAINS[t] if (t, c) not in saved.chains]
        if not memo_rules:
            new_chains = [(t, c) for t, c in new_chains if c != STATE_CHAIN]  # made only to hold a memo
        if "filter" in tables and ("filter", USER_CHAIN) not in saved.chains:
            new_chains.append(("filter", USER_CHAIN))  # the admin's: made if absent, left to the sweep
        steps: list[Step] = []
        if added or new_chains:
            do: dict[str, list[str]] = {}
            undo: dict[str, list[str]] = {}
            for table, chain in new_chains:
                do.setdefault(table, []).append(f"-N {chain}")
            # Rules in our chains first, jumps from the built-in chains last.
            for rule in sorted(added, key=lambda r: not _OURS.match(r.chain)):
                do.setdefault(rule.table, []).append(rule.line("-I" if _inserted(rule) else "-A"))
            for rule in sorted(added, key=lambda r: bool(_OURS.match(r.chain))):
                undo.setdefault(rule.table, []).append(rule.line("-D"))
            for table, chain in new_chains:
                undo.setdefault(table, []).append(f"-X {chain}")
            steps.append(Step(description, [self.restore_command(family, do)], [self.restore_command(family, undo)]))
        for change in changes:
            s = Sysctl(change.name, change.set)
            steps.append(
                Step(f"set {s.name}={s.value} (was {change.was})", [s.set_command()], [s.set_command(change.was)])
            )
        return steps, changes

    def remember(self, changes: Sequence[SysctlRecord], saved: SavedRules | None = None) -> None:
        """Write down the values sysctls had before netnskit changes them (run before the steps that do).

        With forwarding's, what else already needed it (:meth:`reliance`; ``saved``: the host's IPv4
        rules, if just read): it did without forwarding until now, so it will not keep forwarding on
        when netnskit puts the old value back.
        """
        if not changes:
            return
        records = self.records
        place = records.place()  # first: where it cannot be read, nothing changes
        if not place:
            return
        out = []
        for change in changes:
            if change.name in _FORWARDING:
                rules = saved if saved is not None and change.family == 4 else self.save(change.family)
                change = attrs.evolve(change, beside=self.reliance(change.family, rules))
            out.append(change)
        records.remember(out, place=place)

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

    def reliance(self, family: int, saved: SavedRules, served: Iterable[str] = ()) -> list[str]:
        """What on the host needs forwarding of ``family`` besides netnskit (reads the host's bridges).

        ``served``: interfaces netnskit's rules served (a bridge given to NatRule or PortForward is
        not another manager's, even without netnskit's alias).
        """
        # one ip process: the bridges (with their aliases), their addresses, the routes (-d: details)
        argv = _ipjson.argv(None, "-batch", "-", flags=["-d", "-6" if family == 6 else "-4"])
        result = self.runner.run(argv, input=_RELIANCE_READS)
        found = _ipjson.arrays(result.check("reading the host's bridges and routes").stdout)
        links, addresses, routes = (found + [[], [], []])[:3]
        mine = set(served)
        addresses = [a for a in addresses if a.get("ifname") not in mine]
        bridges = foreign_bridges(links, addresses, routes, ours=SHARED + ":", family=family)
        return forwarding_reliance(saved, bridges)

    def sweep_commands(self, family: int, saved: SavedRules) -> list[Command]:
        """What to run so nothing of ours outlives its need (read from ``saved``; pure, no sysctl records)."""
        return list(self.plan_sweep(family, saved).commands)

    def plan_sweep(
        self,
        family: int,
        saved: SavedRules,
        *,
        records: Mapping[str, SysctlRecord] | None = None,
        value: Callable[[str], str | None] | None = None,
        reliance: Callable[[], Sequence[str]] | None = None,
        elsewhere: tuple[bool, Sequence[str]] = (False, ()),
    ) -> Sweep:
        """The sweep of ``saved``: guards, sysctls and shared chains no rule of ours needs any more.

        ``elsewhere``: what netnskit's rules in another backend (nft tables) still need: forwarding
        (True while one translates addresses) and route_localnet on which bridges (their guards).

        A recorded sysctl (``records``) no rule needs is put back to the value it had, if it still
        holds the value netnskit set (``value`` reads it now); IP forwarding stays on, with the
        reason in ``left``, where ``reliance`` (called only then) names something else that needs
        it. The records acted on, or found stale, are in ``forget``.
        """
        deletes: list[Rule] = []
        owned = saved.owner_rules()
        # A loopback guard of owner O on bridge B stays while O still forwards 127.0.0.1 to B.
        guards = [r for r in owned if r.table == "raw"]
        for guard in guards:
            bridge = _after(guard.spec, "-i")
            if not any(
                r.table == "nat"
                and r.comment == guard.comment
                and _after(r.spec, "-o") == bridge
                and _after(r.spec, "-s") == LOOPBACK_NET
                for r in owned
            ):
                deletes.append(guard)
        owned = [r for r in owned if r not in deletes]
        remaining_guards = {_after(r.spec, "-i") for r in owned if r.table == "raw"} | set(elsewhere[1])
        # IPv6 forwards by net.ipv6.conf.all.forwarding alone: a dual-stack network's bridge rule needs it too
        translating = any(r.table == "nat" or (family == 6 and r.table == "filter") for r in owned) or elsewhere[0]
        # the file's records, and the plan's memos where the file has none (a script run by hand)
        memos = saved.memos()
        known = {name: SysctlRecord(name, was, "1") for name, (_, was) in memos.items()}
        known.update({n: r for n, r in (records or {}).items() if r.family == family})
        commands: list[Command] = []
        left: list[str] = []
        forget: list[str] = []
        restored: list[str] = []
        relied: Sequence[str] | None = None
        for name, record in sorted(known.items()):
            localnet = re.fullmatch(r"net\.ipv4\.conf\.(.+)\.route_localnet", name)
            if localnet.group(1).replace("/", ".") in remaining_guards if localnet else translating:
                continue
            now = value(name) if value is not None else None
            forget.append(name)
            deletes += [memos[name][0]] if name in memos else []
            if now != record.set or now == record.was:
                continue  # gone, put back, or set by someone else since: not ours to change
            if not localnet:
                if relied is None:
                    relied = list(reliance()) if reliance is not None else []
                # what needed forwarding when netnskit switched it on did without it before
                new = [r for r in relied if r not in record.beside]
                if new:
                    why = f"needed by {summary(new)}"
                    left.append(f"{name} left at {now} (it was {record.was} before netnskit): {why}")
                    continue
            commands.append(Sysctl(name, record.was).set_command())
            restored.append(f"{name}={record.was}")
        lines: dict[str, list[str]] = {}
        for rule in deletes:
            lines.setdefault(rule.table, []).append(rule.line("-D"))
        memos_left = [m for m, _ in memos.values() if m not in deletes]
        for table in _TABLE_ORDER:
            ours = [c for c in _CHAINS[table] if (table, c) in saved.chains]
            if not ours or any(r.table == table for r in owned) or (table == "filter" and memos_left):
                # the memo chain goes with its last memo, even while another owner keeps the rest
                state = [r for r in saved.rules if r.table == table and r.chain == STATE_CHAIN and r not in deletes]
                if (
                    table == "filter"
                    and STATE_CHAIN in ours
                    and not state
                    and any(r.chain == STATE_CHAIN for r in deletes)
                ):
                    lines.setdefault(table, []).append(f"-X {STATE_CHAIN}")
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
            if table == "filter" and _unused(saved, USER_CHAIN):
                lines[table].append(f"-X {USER_CHAIN}")
        if lines:
            commands.append(self.restore_command(family, lines))
        return Sweep(tuple(commands), tuple(left), tuple(forget), tuple(restored))

    def sweep(
        self, family: int, served: Iterable[str] = (), *, elsewhere: tuple[bool, Sequence[str]] = (False, ())
    ) -> Sweep:
        """Remove guards, sysctl values and shared chains/jumps that no owner needs any more.

        ``served``: the interfaces of the rules just removed (see :meth:`reliance`); ``elsewhere``:
        what netnskit's nft tables still need (see :meth:`plan_sweep`).
        """
        saved = self.save(family)
        records = self.records
        done = self.plan_sweep(
            family,
            saved,
            records=records.load(),
            value=self.sysctl_value,
            reliance=lambda: self.reliance(family, saved, served),
            elsewhere=elsewhere,
        )
        for command in done.commands:
            result = command.run(self.runner)
            if command.tool == "sysctl" and not result.ok and "no such file" in result.stderr.lower():
                continue  # the interface is gone, and its sysctl with it
            result.check("sweeping netnskit rules")
        records.forget(done.forget)
        for line in done.left:
            log.warning("%s", line)
        return done

    def purge(self, owner: str, family: int = 4, *, elsewhere: tuple[bool, Sequence[str]] = (False, ())) -> int:
        """Delete every rule of ``owner`` (found by its comment), then sweep (``elsewhere``: what
        netnskit's nft tables still need); returns how many."""
        comment = f"{SHARED}:{_owner(owner)}"
        saved = self.save(family)
        mine = [r for r in saved.rules if r.comment == comment]
        lines: dict[str, list[str]] = {}
        for rule in mine:
            lines.setdefault(rule.table, []).append(rule.line("-D"))
        if lines:
            self.restore_command(family, lines).run(self.runner).check(f"purging the rules of {owner!r}")
        self.sweep(family, interfaces(mine), elsewhere=elsewhere)
        return len(mine)


def _unused(saved: SavedRules, chain: str) -> bool:
    """Is the admin's chain there, empty, and jumped to by no rule but ours? (Then it was ours to make.)"""
    if ("filter", chain) not in saved.chains:
        return False
    for rule in saved.rules:
        if rule.table != "filter":
            continue
        if rule.chain == chain or (_after(rule.spec, "-j") == chain and not _OURS.match(rule.chain)):
            return False
    return True

"""NatRule and PortForward: masquerade and port forwarding with iptables, only ours, exactly ours.

Where the rules live
--------------------
netnskit never adds rules to a built-in chain except one jump per chain to a chain of its own:

===========================  ===========================================================================
chain (table)                jumped to from
===========================  ===========================================================================
``NETNSKIT-PREROUTING`` nat  ``PREROUTING -m addrtype --dst-type LOCAL`` (forwards: only to local addresses)
``NETNSKIT-OUTPUT`` nat      ``OUTPUT -m addrtype --dst-type LOCAL`` (forwards used by the host itself)
``NETNSKIT-POSTROUTING`` nat ``POSTROUTING`` (masquerade; masquerade of marked hairpin/loopback traffic)
``NETNSKIT-MARK`` nat        the forward rules (sets :data:`MARK` on traffic that must be masqueraded)
``NETNSKIT-FORWARD`` filter  ``FORWARD`` (ACCEPT rules, only where the FORWARD policy is DROP)
``NETNSKIT-PREROUTING`` raw  ``PREROUTING`` (guard: drop 127.0.0.0/8 traffic arriving on a bridge)
``NETNSKIT-STATE`` filter    nothing: its rules never match; they remember sysctl values to put back
===========================  ===========================================================================

Every rule of an owner carries ``-m comment --comment netnskit:<owner>``; the shared jumps, the
mark rule and the sysctl memos carry ``netnskit`` (no owner). Applying checks each rule with
``-C`` and adds only the missing ones, together, in one ``iptables-restore -w --noflush``.
Removing deletes exactly this object's rules, then sweeps: guards no forward needs any more,
sysctls no rule needs any more (put back to the remembered value), and the shared chains and jumps
once no owner has a rule left. Foreign rules and chain policies are never touched.

Commands as data
----------------
``rules(forward_accept=...)`` returns the exact :class:`Rule` list of an object (pure).
``plan()`` returns :class:`~netnskit.plan.Step` objects: read from the host through the runner
(what exists, the FORWARD policy, the sysctl values), it holds only what is missing, and each
step's undo removes exactly what its do added. ``setup_commands()``/``teardown_commands()`` (and
``plan(assume_clean=True)``) are the same commands for a host with no netnskit rules, FORWARD
policy ACCEPT and forwarding off, without reading anything: for review and ``render_script``.
``apply()`` runs ``plan()`` (rolling back on failure); ``remove()`` deletes and sweeps.
A step's undo also deletes the shared chains that step created, so it is exact only while no other
owner has added rules to them since; ``remove()`` (or :meth:`Firewall.sweep`) decides from what
``iptables-save`` shows instead. Several objects as one ruleset: :meth:`Firewall.plan` takes any
rules and sysctls; :meth:`Firewall.sweep_commands` computes the sweep from a :class:`SavedRules`
without running anything; :meth:`Firewall.purge` removes every rule of an owner (after a crash).

``PortForward(bridge=...)`` names the interface the destination sits behind: it enables the
hairpin and (IPv4) 127.0.0.1 rules. Left out, ``apply()`` finds it with ``ip route get``.

Backends
--------
:class:`Backend` names the binaries: ``Backend()`` the system's ``iptables``/``ip6tables``,
``Backend("nft")`` ``iptables-nft``..., ``Backend("legacy")`` ``iptables-legacy``...
:func:`detect_backend` reads ``iptables -V``; :func:`split_brain_warning` says when the other
backend holds rules (they would be invisible to this one); ``apply()`` logs it as a warning.
IPv6 subnets and destinations go through ``ip6tables``. There is no ``route_localnet`` for IPv6,
so a forward cannot be reached at ``::1`` (the same limit as the CNI portmap plugin).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import shlex
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from netnskit import _validate as v
from netnskit.errors import ValidationError
from netnskit.plan import Command, SerialExecutor, Step
from netnskit.runner import LiveRunner, Runner

__all__ = [
    "BACKENDS",
    "MARK",
    "Backend",
    "Firewall",
    "NatRule",
    "PortForward",
    "Rule",
    "SavedRules",
    "Sysctl",
    "detect_backend",
    "split_brain_warning",
]

log = logging.getLogger("netnskit")

BACKENDS = ("nft", "legacy")
MARK = "0x1000000/0x1000000"
SHARED = "netnskit"
LOOPBACK_NET = "127.0.0.0/8"

_TABLE_ORDER = ("raw", "nat", "filter")
# The shared part of each table: our chains, and the jumps to them from the built-in chains.
_CHAINS: dict[str, tuple[str, ...]] = {
    "raw": ("NETNSKIT-PREROUTING",),
    "nat": ("NETNSKIT-PREROUTING", "NETNSKIT-OUTPUT", "NETNSKIT-POSTROUTING", "NETNSKIT-MARK"),
    "filter": ("NETNSKIT-FORWARD", "NETNSKIT-STATE"),
}
_OURS = re.compile(r"^NETNSKIT-")


def _shared(*spec: str) -> tuple[str, ...]:
    """Match words, then the shared comment, then the target (``-j ...``)."""
    at = spec.index("-j")
    return (*spec[:at], "-m", "comment", "--comment", SHARED, *spec[at:])


_SHARED_RULES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "raw": (("PREROUTING", _shared("-j", "NETNSKIT-PREROUTING")),),
    "nat": (
        ("NETNSKIT-MARK", _shared("-j", "MARK", "--set-xmark", MARK)),
        ("NETNSKIT-POSTROUTING", _shared("-m", "mark", "--mark", MARK, "-j", "MASQUERADE")),
        ("PREROUTING", _shared("-m", "addrtype", "--dst-type", "LOCAL", "-j", "NETNSKIT-PREROUTING")),
        ("OUTPUT", _shared("-m", "addrtype", "--dst-type", "LOCAL", "-j", "NETNSKIT-OUTPUT")),
        ("POSTROUTING", _shared("-j", "NETNSKIT-POSTROUTING")),
    ),
    "filter": (("FORWARD", _shared("-j", "NETNSKIT-FORWARD")),),
}


def _owner(value: object) -> str:
    return v.netns_name(value)


# ``\s`` in a str pattern is exactly str.isspace() (a unit test checks every code point).
_NEEDS_QUOTES = re.compile(r"[\s\"'#]")


def _word(word: str) -> str:
    """One word of an iptables-restore line (its parser knows double quotes, not shell quoting)."""
    if word and not _NEEDS_QUOTES.search(word):
        return word
    if '"' in word:
        raise ValidationError("iptables word", word, "must not contain a double quote")
    return f'"{word}"'


# --- backends --------------------------------------------------------------------------------


def _kind(value: object) -> str | None:
    if value is None or (isinstance(value, str) and value in BACKENDS):
        return value
    raise ValidationError("iptables backend", value, "must be None (the system's), 'nft' or 'legacy'")


@attrs.frozen
class Backend:
    """Which iptables binaries to run: the system's (``None``), ``"nft"`` or ``"legacy"``."""

    kind: str | None = attrs.field(default=None, converter=_kind)

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


# --- rules and sysctls -----------------------------------------------------------------------


def _spec(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(str(i) for i in items)


@attrs.frozen
class Rule:
    """One iptables rule: IP family, table, chain and its match/target words."""

    family: int
    table: str
    chain: str
    spec: tuple[str, ...] = attrs.field(converter=_spec)

    @property
    def comment(self) -> str | None:
        """The value of the rule's ``--comment``, if any."""
        words = list(self.spec)
        for index, word in enumerate(words[:-1]):
            if word == "--comment":
                return words[index + 1]
        return None

    def argv(self, backend: Backend, action: str = "-A") -> list[str]:
        """``iptables -w -t TABLE ACTION CHAIN SPEC...`` (action -A, -C or -D)."""
        return [backend.binary(self.family), "-w", "-t", self.table, action, self.chain, *self.spec]

    def line(self, action: str = "-A") -> str:
        """The rule as an ``iptables-restore`` line."""
        return " ".join([action, self.chain, *map(_word, self.spec)])


@attrs.frozen
class Sysctl:
    """A sysctl netnskit sets while some rule needs it, and puts back afterwards."""

    name: str
    value: str

    def set_argv(self, value: str | None = None) -> list[str]:
        """``sysctl -w NAME=VALUE``."""
        return ["sysctl", "-w", f"{self.name}={self.value if value is None else value}"]

    def memo(self, family: int, previous: str) -> Rule:
        """The never-matching rule in ``NETNSKIT-STATE`` that remembers the previous value."""
        comment = f"netnskit sysctl {self.name}={previous}"
        return Rule(family, "filter", "NETNSKIT-STATE", ["-m", "comment", "--comment", comment])


def _forwarding(family: int) -> Sysctl:
    return Sysctl("net.ipv6.conf.all.forwarding" if family == 6 else "net.ipv4.ip_forward", "1")


def _route_localnet(bridge: str) -> Sysctl:
    # sysctl writes a dot in an interface name as '/'
    return Sysctl(f"net.ipv4.conf.{bridge.replace('.', '/')}.route_localnet", "1")


def _shared_rules(family: int, tables: Iterable[str]) -> list[Rule]:
    return [Rule(family, t, chain, spec) for t in _TABLE_ORDER if t in set(tables) for chain, spec in _SHARED_RULES[t]]


# --- reading iptables-save -------------------------------------------------------------------


# shlex.split (posix, no comments) separates words by exactly these four characters; str.split()
# would also split on others (\x1f, \xa0, \u2000...), which an interface name may hold.
_PLAIN_WORD = re.compile(r"[^ \t\r\n]+")
# A word of plain runs and "..." parts; its value is the word without the quotes. Exact only for a
# line with no backslash and no single quote, whose double quotes pair up.
_QUOTED_WORD = re.compile(r'(?:[^ \t\r\n"]+|"[^"]*")+')


def _save_words(line: str) -> list[str]:
    """The words of an ``iptables-save`` line, as ``shlex.split`` reads them (else split on spaces).

    iptables-save double-quotes every value with a character outside ``[A-Za-z0-9_-]`` (so every
    ``netnskit:<owner>`` comment) and escapes ``"``, ``\\`` and ``'`` in it with a backslash. Lines
    without a backslash or a single quote are split here, without shlex's per-character loop.
    """
    if "\\" not in line and "'" not in line:
        if '"' not in line:
            return _PLAIN_WORD.findall(line)
        if line.count('"') % 2 == 0:
            return [w.replace('"', "") for w in _QUOTED_WORD.findall(line)]
    try:
        return shlex.split(line)
    except ValueError:  # a foreign rule quoted in a way shlex does not read
        return line.split()


@attrs.frozen
class SavedRules:
    """One family's ``iptables-save`` output, parsed: chains, rules (as Rule) and policies."""

    chains: frozenset[tuple[str, str]]
    rules: tuple[Rule, ...]
    policies: dict[tuple[str, str], str] = attrs.field(eq=False)

    @classmethod
    def parse(cls, family: int, text: str) -> SavedRules:
        """Parse the text of ``iptables-save`` (rules keep the words iptables printed)."""
        chains: set[tuple[str, str]] = set()
        rules: list[Rule] = []
        policies: dict[tuple[str, str], str] = {}
        table = ""
        for raw in text.splitlines():
            line = raw.strip()
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                name, policy = line[1:].split()[:2]
                chains.add((table, name))
                if policy != "-":
                    policies[(table, name)] = policy
            elif line.startswith("-A "):
                words = _save_words(line)
                rules.append(Rule(family, table, words[1], words[2:]))
        return cls(frozenset(chains), tuple(rules), policies)

    def owner_rules(self, table: str | None = None) -> list[Rule]:
        """Rules of any owner (comment ``netnskit:...``) in our chains."""
        return [
            r for r in self.rules
            if (table is None or r.table == table) and _OURS.match(r.chain)
            and (r.comment or "").startswith(SHARED + ":")
        ]

    def memos(self) -> dict[str, tuple[Rule, str]]:
        """Remembered sysctl values: name -> (memo rule, previous value)."""
        found = {}
        for r in self.rules:
            comment = r.comment or ""
            if r.chain == "NETNSKIT-STATE" and comment.startswith("netnskit sysctl "):
                name, _, previous = comment[len("netnskit sysctl "):].rpartition("=")
                found[name] = (r, previous)
        return found


def _is_ours(rule: Rule) -> bool:
    comment = rule.comment or ""
    return comment == SHARED or comment.startswith((SHARED + ":", SHARED + " sysctl "))


def _unique(rules: Iterable[Rule]) -> list[Rule]:
    return list(dict.fromkeys(rules))


def _after(words: Sequence[str], flag: str) -> str | None:
    for index, word in enumerate(words[:-1]):
        if word == flag and (index == 0 or words[index - 1] != "!"):
            return words[index + 1]
    return None


# --- the firewall: applying and sweeping ------------------------------------------------------


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
    runner: Runner = attrs.field(factory=LiveRunner, eq=False, repr=False)

    def restore_command(self, family: int, sections: dict[str, list[str]]) -> Command:
        """``iptables-restore -w --noflush`` fed the given lines per table."""
        return Command([self.backend.binary(family, "restore"), "-w", "--noflush"], _restore_input(sections))

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
            steps.append(
                Step(description, [self.restore_command(family, do)], [self.restore_command(family, undo)])
            )
        for s, previous in to_set:
            steps.append(Step(f"set {s.name}={s.value} (was {previous})", [s.set_argv()], [s.set_argv(previous)]))
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
                r.table == "nat" and r.comment == guard.comment and _after(r.spec, "-i") == bridge
                for r in owned
            ):
                deletes.append(guard)
        owned = [r for r in owned if r not in deletes]
        remaining_guards = {_after(r.spec, "-i") for r in owned if r.table == "raw"}
        commands: list[Command] = []
        for name, (memo, previous) in sorted(saved.memos().items()):
            localnet = re.fullmatch(r"net\.ipv4\.conf\.(.+)\.route_localnet", name)
            needed = (
                localnet.group(1).replace("/", ".") in remaining_guards if localnet else bool(owned)
            )
            if not needed:
                commands.append(Command(Sysctl(name, previous).set_argv()))
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
                log.warning("not removing netnskit's %s chains: they hold %d rule(s) not made by netnskit",
                            table, len(foreign))
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
            if command.argv[0] == "sysctl" and not result.ok and "no such file" in result.stderr.lower():
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


# --- the two objects -------------------------------------------------------------------------


class _Ruleset:
    """What NatRule and PortForward share: plan, apply, remove through a Firewall."""

    owner: str
    runner: Runner
    backend: Backend

    @property
    def comment(self) -> str:
        """The comment that marks this object's rules as ours."""
        return f"{SHARED}:{self.owner}"

    @property
    def family(self) -> int:
        """4 or 6."""
        raise NotImplementedError

    @property
    def firewall(self) -> Firewall:
        """The Firewall this object applies through."""
        return Firewall(self.backend, self.runner)

    def _tag(self, *spec: str) -> tuple[str, ...]:
        return ("-m", "comment", "--comment", self.comment, *spec)

    def rules(self, *, forward_accept: bool = False) -> list[Rule]:
        """This object's rules (ACCEPT rules in NETNSKIT-FORWARD only if ``forward_accept``)."""
        raise NotImplementedError

    def sysctls(self) -> list[Sysctl]:
        """The sysctls this object needs."""
        return [_forwarding(self.family)]

    def _exclusive(self, rules: list[Rule]) -> list[Rule]:
        return rules

    def _describe(self) -> str:
        raise NotImplementedError

    def plan(self, *, assume_clean: bool = False, forward_accept: bool | None = None) -> list[Step]:
        """The steps that make this object's rules exist (read through the runner, see module doc)."""
        fw = self.firewall
        if assume_clean:
            rules = self.rules(forward_accept=bool(forward_accept))
            return fw.plan(self.family, rules, self.sysctls(), self._describe(), values={})
        saved = fw.save(self.family)
        accept = fw.forward_policy_drop(saved) if forward_accept is None else forward_accept
        rules = self.rules(forward_accept=accept)
        return fw.plan(self.family, rules, self.sysctls(), self._describe(), saved=saved)

    def setup_commands(self, *, forward_accept: bool = False) -> list[Command]:
        """The commands that apply this object on a clean host (pure)."""
        return [c for s in self.plan(assume_clean=True, forward_accept=forward_accept) for c in s.do]

    def teardown_commands(self, *, forward_accept: bool = False) -> list[Command]:
        """The commands that undo :meth:`setup_commands` on that clean host (pure)."""
        steps = self.plan(assume_clean=True, forward_accept=forward_accept)
        return [c for s in reversed(steps) for c in s.undo]

    def apply(self) -> Any:
        """Add what is missing (nothing when applied already); rolls back if a step fails."""
        warning = split_brain_warning(self.runner, self.backend)
        if warning:
            log.warning("%s", warning)
        SerialExecutor().apply(self.plan(), self.runner)
        return self

    def remove(self) -> None:
        """Delete this object's rules, then sweep what nothing needs any more."""
        fw = self.firewall
        fw.delete(self.family, self._exclusive(self.rules(forward_accept=True)))
        fw.sweep(self.family)

    def is_applied(self) -> bool:
        """True if every one of this object's rules (for the current FORWARD policy) exists."""
        fw = self.firewall
        saved = fw.save(self.family)
        return all(fw.has(r, saved) for r in self.rules(forward_accept=fw.forward_policy_drop(saved)))


@attrs.frozen
class NatRule(_Ruleset):
    """Masquerade traffic from ``subnet`` that leaves by any interface but ``bridge``."""

    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network = attrs.field(converter=v.ip_network)
    bridge: str | None = attrs.field(default=None, converter=attrs.converters.optional(v.ifname))
    owner: str = attrs.field(default="default", converter=_owner)
    runner: Runner = attrs.field(factory=LiveRunner, eq=False, repr=False, kw_only=True)
    backend: Backend = attrs.field(factory=Backend, converter=_backend, kw_only=True)

    @property
    def family(self) -> int:
        """4 or 6, from the subnet."""
        return self.subnet.version

    def rules(self, *, forward_accept: bool = False) -> list[Rule]:
        """MASQUERADE for the subnet; with ``forward_accept``, ACCEPT out and replies back in."""
        net = str(self.subnet)
        # Without a bridge name, "not to the subnet itself" keeps intra-subnet sources intact.
        out = ["!", "-o", self.bridge] if self.bridge else ["!", "-d", net]
        rules = [Rule(self.family, "nat", "NETNSKIT-POSTROUTING", ["-s", net, *out, *self._tag("-j", "MASQUERADE")])]
        if forward_accept:
            rules += [
                Rule(self.family, "filter", "NETNSKIT-FORWARD", ["-s", net, *self._tag("-j", "ACCEPT")]),
                Rule(
                    self.family, "filter", "NETNSKIT-FORWARD",
                    ["-d", net, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", *self._tag("-j", "ACCEPT")],
                ),
            ]
        return rules

    def _describe(self) -> str:
        return f"masquerade {self.subnet} ({self.comment})"


def _ports(low_high: tuple[int, int], sep: str) -> str:
    low, high = low_high
    return str(low) if low == high else f"{low}{sep}{high}"


@attrs.frozen
class PortForward(_Ruleset):
    """Forward a host port (or range) to ``destination``:``dest_port`` inside a namespace.

    ``bridge`` is the interface the destination lives behind; it enables hairpin (siblings on
    the bridge) and, for IPv4, 127.0.0.1. When None, ``apply()`` asks ``ip route get``.
    """

    host_port: tuple[int, int] = attrs.field(converter=v.port_range)
    destination: ipaddress.IPv4Address | ipaddress.IPv6Address = attrs.field(converter=v.ip_address)
    dest_port: tuple[int, int] | None = attrs.field(
        default=None, converter=attrs.converters.optional(v.port_range)
    )
    protocol: str = attrs.field(default="tcp", converter=v.protocol)
    host_address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = attrs.field(
        default=None, converter=attrs.converters.optional(v.ip_address)
    )
    owner: str = attrs.field(default="default", converter=_owner)
    runner: Runner = attrs.field(factory=LiveRunner, eq=False, repr=False, kw_only=True)
    bridge: str | None = attrs.field(default=None, converter=attrs.converters.optional(v.ifname), kw_only=True)
    backend: Backend = attrs.field(factory=Backend, converter=_backend, kw_only=True)

    def __attrs_post_init__(self) -> None:
        target = self.dest_port or self.host_port
        if target[1] - target[0] != self.host_port[1] - self.host_port[0]:
            raise ValidationError("destination port range", self.dest_port, "must be as wide as the host port range")
        if self.host_address is not None and self.host_address.version != self.destination.version:
            raise ValidationError("host address", str(self.host_address), "must be the destination's IP version")

    @property
    def family(self) -> int:
        """4 or 6, from the destination."""
        return self.destination.version

    def _to(self) -> str:
        # host range 8000-8010 -> 9000-9010 maps one to one: "9000-9010/8000" (base port)
        low, high = self.dest_port or self.host_port
        ports = str(low) if low == high else f"{low}-{high}/{self.host_port[0]}"
        addr = f"[{self.destination}]" if self.family == 6 else str(self.destination)
        return f"{addr}:{ports}"

    def _match(self) -> list[str]:
        where = ["-d", str(self.host_address)] if self.host_address is not None else []
        return [*where, "-p", self.protocol, "-m", self.protocol, "--dport", _ports(self.host_port, ":")]

    def rules(self, *, forward_accept: bool = False) -> list[Rule]:
        """Hairpin mark, DNAT (PREROUTING and OUTPUT), loopback mark and guard, FORWARD accept."""
        f, m = self.family, self._match()
        dnat = [*m, *self._tag("-j", "DNAT", "--to-destination", self._to())]
        rules = []
        if self.bridge:
            hairpin = ["-i", self.bridge, *m, *self._tag("-j", "NETNSKIT-MARK")]
            rules.append(Rule(f, "nat", "NETNSKIT-PREROUTING", hairpin))
        rules.append(Rule(f, "nat", "NETNSKIT-PREROUTING", dnat))
        if self.bridge and f == 4:
            rules.append(Rule(f, "nat", "NETNSKIT-OUTPUT", ["-s", LOOPBACK_NET, *m, *self._tag("-j", "NETNSKIT-MARK")]))
        rules.append(Rule(f, "nat", "NETNSKIT-OUTPUT", dnat))
        if self.bridge and f == 4:
            for way in ("-s", "-d"):
                guard = ["-i", self.bridge, way, LOOPBACK_NET, *self._tag("-j", "DROP")]
                rules.append(Rule(f, "raw", "NETNSKIT-PREROUTING", guard))
        if forward_accept:
            rules.append(
                Rule(
                    f, "filter", "NETNSKIT-FORWARD",
                    [
                        "-p", self.protocol, "-m", "conntrack", "--ctstate", "DNAT",
                        "--ctreplsrc", str(self.destination),
                        "--ctreplsrcport", _ports(self.dest_port or self.host_port, ":"),
                        "--ctorigdstport", _ports(self.host_port, ":"),
                        *self._tag("-j", "ACCEPT"),
                    ],
                )
            )
        return rules

    def sysctls(self) -> list[Sysctl]:
        """Forwarding, and route_localnet on the bridge (IPv4) so 127.0.0.1 can be forwarded."""
        extra = [_route_localnet(self.bridge)] if self.bridge and self.family == 4 else []
        return [_forwarding(self.family), *extra]

    def _exclusive(self, rules: list[Rule]) -> list[Rule]:
        # Loopback guards are shared by every forward of this owner on the bridge: swept later.
        return [r for r in rules if r.table != "raw"]

    def _describe(self) -> str:
        return f"forward {self.protocol} {_ports(self.host_port, '-')} to {self._to()} ({self.comment})"

    def resolve(self) -> PortForward:
        """This forward with ``bridge`` set from ``ip route get DESTINATION`` when it is None."""
        if self.bridge is not None:
            return self
        out = self.runner.run(["ip", "-j", "route", "get", str(self.destination)])
        try:
            dev = json.loads(out.stdout)[0].get("dev") if out.ok else None
        except (ValueError, IndexError, AttributeError):
            dev = None
        if not dev or dev == "lo":
            return self
        return attrs.evolve(self, bridge=dev)

    def apply(self) -> PortForward:
        """Add what is missing (the bridge found by :meth:`resolve` when not given)."""
        resolved = self.resolve()
        _Ruleset.apply(resolved)
        return self

    def remove(self) -> None:
        """Delete this forward's rules, then sweep what nothing needs any more.

        Without ``bridge`` (and once the bridge is gone, so ``ip route get`` cannot find it),
        the hairpin rules of this forward are found by their ``-i`` in ``iptables-save``.
        """
        resolved = self.resolve()
        fw = self.firewall
        rules = resolved._exclusive(resolved.rules(forward_accept=True))
        if self.bridge is None:
            saved = fw.save(self.family)
            bridges = {
                _after(r.spec, "-i")
                for r in saved.owner_rules("nat")
                if r.comment == self.comment and r.chain == "NETNSKIT-PREROUTING"
            }
            for bridge in sorted(b for b in bridges if b and b != resolved.bridge):
                other = attrs.evolve(self, bridge=bridge)
                rules += other._exclusive(other.rules(forward_accept=True))
        fw.delete(self.family, _unique(rules))
        fw.sweep(self.family)

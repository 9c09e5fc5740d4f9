"""Rule and SavedRules: netnskit's iptables rules as data, and the reading of ``iptables-save``.

Also the shared chains and jumps every owner's rules hang from, and the ``netnskit:<owner>`` comment
that marks a rule as ours (the chain table: docs/firewall-notes.md).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

import attrs

from netnskit import _validate as v
from netnskit.errors import ValidationError
from netnskit.plan import Batchable, Command, Resource

if TYPE_CHECKING:
    from netnskit.firewall.iptables import Backend

SHARED = "netnskit"
LOOPBACK_NET = "127.0.0.0/8"
MEMO = "netnskit sysctl "  # the comment of a never-matching rule in NETNSKIT-STATE: "netnskit sysctl NAME=WAS"
# The admin's chain: jumped to first from NETNSKIT-FORWARD, created if absent, never flushed or edited.
USER_CHAIN = "NETNSKIT-USER"
STATE_CHAIN = "NETNSKIT-STATE"  # never jumped to: its rules carry the plan's copy of sysctl values

_TABLE_ORDER = ("raw", "nat", "filter")
# The shared part of each table: our chains, and the jumps to them from the built-in chains.
_CHAINS: dict[str, tuple[str, ...]] = {
    "raw": ("NETNSKIT-PREROUTING",),
    "nat": ("NETNSKIT-PREROUTING", "NETNSKIT-OUTPUT", "NETNSKIT-POSTROUTING"),
    "filter": ("NETNSKIT-FORWARD", STATE_CHAIN),
}
_OURS = re.compile(r"^NETNSKIT-")

_T = TypeVar("_T")


def _unique(items: Iterable[_T]) -> list[_T]:
    """``items`` without repeats, in first-seen order (rules or sysctls that several objects need)."""
    return list(dict.fromkeys(items))


def _shared(*spec: str) -> tuple[str, ...]:
    """Match words, then the shared comment, then the target (``-j ...``)."""
    at = spec.index("-j")
    return (*spec[:at], "-m", "comment", "--comment", SHARED, *spec[at:])


# (chain, spec, inserted): an inserted rule goes first in its chain (``-I``), the others last (``-A``).
# FORWARD's jump is first so that a foreign final REJECT or DROP (RHEL's ``-A FORWARD -j REJECT``)
# cannot swallow the network's own traffic; our chain starts with the jump to the admin's chain, so
# nothing of ours is accepted before the admin's rules saw it. raw's guards only drop: first too.
# The nat jumps go last: a foreign DNAT of the same port would win, which ``up`` refuses beforehand.
_SHARED_RULES: dict[str, tuple[tuple[str, tuple[str, ...], bool], ...]] = {
    "raw": (("PREROUTING", _shared("-j", "NETNSKIT-PREROUTING"), True),),
    "nat": (
        ("PREROUTING", _shared("-m", "addrtype", "--dst-type", "LOCAL", "-j", "NETNSKIT-PREROUTING"), False),
        ("OUTPUT", _shared("-m", "addrtype", "--dst-type", "LOCAL", "-j", "NETNSKIT-OUTPUT"), False),
        ("POSTROUTING", _shared("-j", "NETNSKIT-POSTROUTING"), False),
    ),
    "filter": (
        ("NETNSKIT-FORWARD", _shared("-j", USER_CHAIN), True),
        ("FORWARD", _shared("-j", "NETNSKIT-FORWARD"), True),
    ),
}
_INSERTED = {(t, chain, spec) for t, rules in _SHARED_RULES.items() for chain, spec, first in rules if first}


def _owner(value: object) -> str:
    return v.marked_name(value, "owner")


# ``\s`` in a str pattern is exactly str.isspace() (a unit test checks every code point).
_NEEDS_QUOTES = re.compile(r"[\s\"'#]")


def _word(word: str) -> str:
    """One word of an iptables-restore line (its parser knows double quotes, not shell quoting)."""
    if word and not _NEEDS_QUOTES.search(word):
        return word
    if '"' in word:
        raise ValidationError("iptables word", word, "must not contain a double quote")
    return f'"{word}"'


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
        """``iptables -w SECONDS -t TABLE ACTION CHAIN SPEC...`` (action -A, -C or -D)."""
        return [backend.binary(self.family), *backend.wait_args(), "-t", self.table, action, self.chain, *self.spec]

    def line(self, action: str = "-A") -> str:
        """The rule as an ``iptables-restore`` line."""
        return " ".join([action, self.chain, *map(_word, self.spec)])

    def command(self, backend: Backend, action: str = "-A") -> Command:
        """``iptables -w SECONDS -t TABLE -A|-D CHAIN SPEC...`` typed: a line of its table in one restore per tool."""
        restore = backend.binary(self.family, "restore")
        batchable = all("\n" not in w and "\r" not in w and '"' not in w for w in self.spec)
        me = [Resource("rule", f"{self.table} {self.chain} {' '.join(self.spec)}")]
        return Command(
            self.argv(backend, action),
            tool=backend.binary(self.family),
            channel=restore,
            batch=Batchable([restore, *backend.wait_args()], self.line(action), section=self.table, style="tables")
            if batchable
            else None,
            creates=me if action == "-A" else (),
            removes=me if action == "-D" else (),
        )


# Options whose value iptables-save prints as a network (``10.0.0.1`` comes back ``10.0.0.1/32``).
_ADDRESS_OPTIONS = frozenset(
    {"-s", "--source", "-d", "--destination", "--ctorigsrc", "--ctorigdst", "--ctreplsrc", "--ctrepldst"}
)


def _rule_key(rule: Rule) -> tuple[object, ...]:
    """What a rule is, whichever way it is written: ours as built, or as ``iptables-save`` prints it.

    iptables-save moves ``-s``/``-d``/``-i``/``-o``/``-p`` in front of the matches and writes an
    address as ADDRESS/PREFIX. The key is the rule's options (each ``[!] -OPTION VALUE...``, an
    address as a network) as a sorted tuple, with its family, table and chain: two rules with the
    same options in another order are one rule here (no two rules netnskit makes differ so).
    """
    units: list[tuple[str, ...]] = []
    current: list[str] = []
    negate = False
    for word in rule.spec:
        if word == "!":
            negate = True
            continue
        if word.startswith("-") and not _is_number(word):
            if current:
                units.append(tuple(current))
            current = ["!" + word if negate else word]
            negate = False
            continue
        if current and current[0].lstrip("!") in _ADDRESS_OPTIONS:
            word = _network(word)
        current.append(word)
    if current:
        units.append(tuple(current))
    return (rule.family, rule.table, rule.chain, tuple(sorted(units)))


def _is_number(word: str) -> bool:
    return word[1:].isdigit() if word.startswith("-") else word.isdigit()


def _network(word: str) -> str:
    try:
        return str(ipaddress.ip_network(word, strict=False))
    except ValueError:
        return word


def _shared_rules(family: int, tables: Iterable[str]) -> list[Rule]:
    wanted = set(tables)
    return [Rule(family, t, chain, spec) for t in _TABLE_ORDER if t in wanted for chain, spec, _ in _SHARED_RULES[t]]


def _inserted(rule: Rule) -> bool:
    """Does this shared rule go first in its chain (``-I``) rather than last?"""
    return (rule.table, rule.chain, rule.spec) in _INSERTED


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
            r
            for r in self.rules
            if (table is None or r.table == table)
            and _OURS.match(r.chain)
            and (r.comment or "").startswith(SHARED + ":")
        ]

    def memos(self) -> dict[str, tuple[Rule, str]]:
        """Sysctl values the plan wrote down in NETNSKIT-STATE: name -> (memo rule, previous value)."""
        found = {}
        for r in self.rules:
            comment = r.comment or ""
            if r.chain == STATE_CHAIN and comment.startswith(MEMO):
                name, _, previous = comment[len(MEMO) :].rpartition("=")
                found[name] = (r, previous)
        return found


def _is_ours(rule: Rule) -> bool:
    comment = rule.comment or ""
    return comment == SHARED or comment.startswith((SHARED + ":", MEMO))


def _after(words: Sequence[str], flag: str) -> str | None:
    for index, word in enumerate(words[:-1]):
        if word == flag and (index == 0 or words[index - 1] != "!"):
            return words[index + 1]
    return None

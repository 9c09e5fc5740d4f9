"""Nftables: netnskit's rules in a table of the network's own, ``inet netnskit-NAME``, through ``nft -f -``.

The rules are the same :class:`~netnskit.firewall.rules.Rule` objects the iptables backend runs
(NatRule, PortForward and the bridge's accept build them); :func:`render` writes them as one nft
table whose base chains take the place of the shared iptables chains and their jumps:

- ``raw-prerouting`` (hook prerouting, priority raw): the loopback guards;
- ``prerouting`` (dstnat) and ``output`` (-100): the forwards, each behind ``fib daddr type local``
  (what the iptables jump's ``-m addrtype --dst-type LOCAL`` was: through-traffic is never taken);
- ``postrouting`` (srcnat): masquerade, hairpin and 127.0.0.1 by ``ct status dnat`` and ``ct original``;
- ``forward`` (filter): the accepts that name the bridge.

A dual-stack network's IPv6 rules go in the same table (``ip6`` matches, ``dnat ip6``; an IPv6 rule
with no address is prefixed ``meta nfproto ipv6``); IPv4 ones are written as before.

The table is written whole and replaced whole, in one transaction (``table X`` / ``delete table X`` /
``table X { ... }`` on one ``nft -f -``), so drift needs no rule-by-rule comparison and ``down`` is one
``delete table``. Its comment carries ``netnskit:NAME`` and a digest of its body: ``up`` reads it
back and rewrites nothing when it matches.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from netnskit.errors import CommandError, CommandNotFoundError, NetnskitError
from netnskit.firewall.host import _addresses_meet
from netnskit.firewall.records import SysctlRecord
from netnskit.firewall.rules import SHARED, Rule, SavedRules, _after, _is_ours, _owner
from netnskit.firewall.sysctl import Sysctl
from netnskit.plan import Command, Resource, Step
from netnskit.runner import Runner

if TYPE_CHECKING:
    from netnskit.firewall.iptables import Firewall

FAMILY = "inet"  # one table for both IP families (nat in inet needs Linux 5.2)
TABLE_PREFIX = "netnskit-"
NFT = "nft"

# (iptables table, chain) of a Rule -> (nft chain, type, hook, priority), in the order the table lists them
_CHAINS: dict[tuple[str, str], tuple[str, str, str, str]] = {
    ("raw", "NETNSKIT-PREROUTING"): ("raw-prerouting", "filter", "prerouting", "raw"),
    ("nat", "NETNSKIT-PREROUTING"): ("prerouting", "nat", "prerouting", "dstnat"),
    # "dstnat" is a name only prerouting knows: output's is its number
    ("nat", "NETNSKIT-OUTPUT"): ("output", "nat", "output", "-100"),
    ("nat", "NETNSKIT-POSTROUTING"): ("postrouting", "nat", "postrouting", "srcnat"),
    ("filter", "NETNSKIT-FORWARD"): ("forward", "filter", "forward", "filter"),
}
_LOCAL_ONLY = {"prerouting", "output"}  # chains whose rules answer only for local addresses
_SKIPPED = {"-m"}  # iptables match-module words (the next word is the module's name)
_TARGETS = {"ACCEPT": "accept", "DROP": "drop", "MASQUERADE": "masquerade"}
_ABSENT = ("no such file or directory",)


def table_name(owner: str) -> str:
    """The nft table of ``owner``'s rules: ``netnskit-OWNER`` (in family ``inet``)."""
    return TABLE_PREFIX + _owner(owner)


def owner_of_table(name: str) -> str | None:
    """The owner a table name belongs to (None for a table that is not netnskit's)."""
    return name[len(TABLE_PREFIX) :] if name.startswith(TABLE_PREFIX) and len(name) > len(TABLE_PREFIX) else None


def _host(word: str) -> str:
    """An address as nft prints it: a single host without its /32 or /128."""
    try:
        net = ipaddress.ip_network(word, strict=False)
    except ValueError:
        return word
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def _ports(word: str) -> str:
    return word.replace(":", "-")


def _dnat(family: int, proto: str, target: str) -> str:
    """``--to-destination`` as an nft dnat: ``ADDR:PORT``, ``ADDR`` (a range kept as it is), or a
    per-port map for a range moved elsewhere (``9100-9102/8100``: 8100 -> 9100, one to one)."""
    ip = "ip6" if family == 6 else "ip"
    if target.startswith("["):
        address, _, ports = target[1:].partition("]:")
    else:
        address, _, ports = target.partition(":")
    spot = f"[{address}]" if family == 6 else address
    if "/" not in ports:
        return f"dnat {ip} to {spot}:{ports}" if ports else f"dnat {ip} to {address}"
    span, _, base_text = ports.partition("/")
    low, _, high = span.partition("-")
    base = int(base_text)
    if int(low) == base:
        return f"dnat {ip} to {address}"  # the same ports: the port is kept
    pairs = ", ".join(f"{base + i} : {int(low) + i}" for i in range(int(high) - int(low) + 1))
    return f"dnat {ip} to {address} : {proto} dport map {{ {pairs} }}"


def translate(rule: Rule) -> str:
    """One netnskit Rule as the nft statement it is in its chain (raises for words it does not know)."""
    ip = "ip6" if rule.family == 6 else "ip"
    words = list(rule.spec)
    out: list[str] = []
    proto = ""
    negate = False
    i = 0

    def value() -> str:
        if i + 1 >= len(words):
            raise NetnskitError(f"cannot write {rule.line()!r} for nftables: {words[i]} has no value")
        return words[i + 1]

    while i < len(words):
        word = words[i]
        op = "!= " if negate else ""
        if word == "!":
            negate = True
            i += 1
            continue
        if word in _SKIPPED:
            i += 2
            continue
        if word == "--comment":
            pass  # the table is the owner's mark
        elif word in ("-s", "-d"):
            out.append(f"{ip} {'saddr' if word == '-s' else 'daddr'} {op}{_host(value())}")
        elif word in ("-i", "-o"):
            out.append(f'{"iifname" if word == "-i" else "oifname"} {op}"{value()}"')
        elif word == "-p":
            proto = value()
        elif word in ("--dport", "--sport"):
            out.append(f"{proto} {word[2:]} {op}{_ports(value())}")
        elif word == "--ctstate":
            states = value().split(",")
            if states == ["DNAT"]:
                out.append("ct status dnat")
            else:
                out.append("ct state " + ",".join(sorted(s.lower() for s in states)))
        elif word == "--ctorigdst":
            out.append(f"ct original {ip} daddr {_host(value())}")
        elif word == "--ctorigdstport":
            out.append(f"ct original proto-dst {_ports(value())}")
        elif word == "-j" and value() in _TARGETS:
            out.append(_TARGETS[value()])
        elif word == "-j" and value() == "DNAT":
            at = words.index("--to-destination", i) if "--to-destination" in words[i:] else -1
            if at < 0 or at + 1 >= len(words):
                raise NetnskitError(f"cannot write {rule.line()!r} for nftables: DNAT without --to-destination")
            out.append(_dnat(rule.family, proto, words[at + 1]))
            i = at + 2
            continue
        else:
            raise NetnskitError(f"cannot write {rule.line()!r} for nftables: {word!r} is not a word it knows")
        negate = False
        i += 2
    if rule.family == 6 and not any(w in ("-s", "-d", "--ctorigdst") for w in words):
        # an IPv6 rule with no address to say so (the bridge's accept, a forward's dnat): the table is
        # inet, so its family is named, and a dual-stack table reads as one (see nft_needs)
        out.insert(0, "meta nfproto ipv6")
    if _CHAINS[(rule.table, rule.chain)][0] in _LOCAL_ONLY:
        out.insert(0, "fib daddr type local")
    return " ".join(out)


def _chain_of(rule: Rule) -> tuple[str, str, str, str]:
    try:
        return _CHAINS[(rule.table, rule.chain)]
    except KeyError:
        where = f"{rule.table} {rule.chain}"
        raise NetnskitError(f"cannot write {rule.line()!r} for nftables: no chain for {where}") from None


def body(rules: Sequence[Rule]) -> str:
    """The chains of the table (base chains of the hooks the rules need, in a fixed order), as nft text."""
    by_chain: dict[str, list[str]] = {}
    for rule in rules:
        chain = _chain_of(rule)[0]
        line = translate(rule)
        if line not in by_chain.setdefault(chain, []):
            by_chain[chain].append(line)
    blocks = []
    for name, kind, hook, priority in _CHAINS.values():
        if name not in by_chain:
            continue
        lines = [f"\tchain {name} {{", f"\t\ttype {kind} hook {hook} priority {priority}; policy accept;"]
        lines += [f"\t\t{line}" for line in by_chain[name]]
        blocks.append("\n".join([*lines, "\t}"]))
    return "\n\n".join(blocks)


def digest(text: str) -> str:
    """The short digest of a table's body that its comment carries."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def comment(owner: str, text: str) -> str:
    """The table's comment: the owner's mark and the digest of what it holds."""
    return f"{SHARED}:{_owner(owner)} sha256:{digest(text)}"


def render(owner: str, rules: Sequence[Rule]) -> str:
    """The whole table ``inet netnskit-OWNER`` for ``rules``, as ``nft list table`` prints one."""
    inside = body(rules)
    head = f'table {FAMILY} {table_name(owner)} {{\n\tcomment "{comment(owner, inside)}"\n'
    return head + (inside + "\n" if inside else "") + "}\n"


def replace_text(owner: str, table: str) -> str:
    """One transaction that puts ``table`` (a whole table's text) in place of whatever the owner's table holds."""
    name = f"{FAMILY} {table_name(owner)}"
    return f"table {name}\ndelete table {name}\n{table}"


def delete_text(owner: str) -> str:
    """One transaction that removes the owner's table, there or not (made empty first, then deleted)."""
    name = f"{FAMILY} {table_name(owner)}"
    return f"table {name}\ndelete table {name}\n"


_COMMENT = re.compile(r'^\s*comment "([^"]*)"', re.MULTILINE)


def table_comment(text: str) -> str | None:
    """The comment of a table as ``nft list table`` printed it (None without one)."""
    first = text.split("chain ", 1)[0]
    found = _COMMENT.search(first)
    return found.group(1) if found else None


def forward_drops(saved: SavedRules) -> bool:
    """Does iptables' FORWARD drop what no rule of its own accepts (policy DROP, as Docker and ufw set
    it, or a DROP/REJECT rule in the chain, as RHEL's final REJECT)? An accept in an nft table of
    ours ends only that table's chain: such a drop still drops the packet."""
    if saved.policies.get(("filter", "FORWARD")) == "DROP":
        return True
    return any(
        r.table == "filter" and r.chain == "FORWARD" and _after(r.spec, "-j") in ("DROP", "REJECT")
        for r in saved.rules
        if not _is_ours(r)
    )


@attrs.frozen
class Nftables:
    """netnskit's rules in nft tables of their own: read, replace whole, delete (``nft -f -``, one transaction each)."""

    runner: Runner = attrs.field(eq=False, repr=False)

    def command(self, text: str, what: str, owner: str) -> Command:
        """``nft -f -`` fed ``text``: alone in its lane (channel ``nft``), one atomic transaction."""
        table = Resource("nft-table", f"{FAMILY} {table_name(owner)}")
        return Command(
            (NFT, "-f", "-"),
            text,
            tool=NFT,
            channel=NFT,
            creates=[table] if what == "write" else (),
            removes=[table] if what == "delete" else (),
        )

    def read(self, owner: str) -> str | None:
        """The owner's table as ``nft list table`` prints it, None where there is none.

        Raises CommandNotFoundError (naming the package ``nftables``) where ``nft`` is missing.
        """
        result = self.runner.run([NFT, "list", "table", FAMILY, table_name(owner)])
        if not result.ok and any(s in result.stderr.lower() for s in _ABSENT):
            return None
        return result.check(f"reading nft table {FAMILY} {table_name(owner)}").stdout

    def tables(self, listed: Sequence[tuple[str, str]] | None = None) -> list[str]:
        """The owners of the netnskit tables on the host (none where ``nft`` is not installed; ``listed``:
        :meth:`listed`, if just read)."""
        tables = self.listed() if listed is None else listed
        return [owner for family, name in tables if family == FAMILY and (owner := owner_of_table(name))]

    def listed(self) -> list[tuple[str, str]]:
        """(family, name) of every nft table on the host (none where ``nft`` is not installed)."""
        try:
            result = self.runner.run([NFT, "list", "tables"])
        except CommandNotFoundError:
            return []
        words = (line.split() for line in result.check("listing nft tables").stdout.splitlines())
        return [(w[1], w[2]) for w in words if len(w) == 3 and w[0] == "table"]

    def ruleset(
        self, keep: Callable[[str, str], bool] | None = None, listed: Sequence[tuple[str, str]] | None = None
    ) -> dict[str, Any]:
        """``nft -j list ruleset``, parsed (empty where ``nft`` is not installed). With ``keep`` (family,
        name -> bool): only the tables it keeps, each read alone, so that iptables-nft's tables, which
        can hold thousands of rules netnskit reads through iptables-save anyway, are not parsed
        (``listed``: :meth:`listed`, if just read)."""
        if keep is not None:
            items: list[Any] = []
            for family, name in self.listed() if listed is None else listed:
                if keep(family, name):
                    result = self.runner.run([NFT, "-j", "list", "table", family, name])
                    text = result.check(f"reading nft table {family} {name}").stdout.strip()
                    items += json.loads(text).get("nftables", []) if text else []
            return {"nftables": items}
        try:
            result = self.runner.run([NFT, "-j", "list", "ruleset"])
        except CommandNotFoundError:
            return {}
        text = result.check("reading the nft ruleset").stdout.strip()
        data: dict[str, Any] = json.loads(text) if text else {}
        return data

    def plan_changes(
        self,
        owner: str,
        rules: Sequence[Rule],
        sysctls: Sequence[Sysctl],
        description: str,
        *,
        current: str | None = None,
        values: Mapping[str, str] | None = None,
        value: Any = None,
    ) -> tuple[list[Step], list[SysctlRecord]]:
        """The step writing the owner's table (none when ``current``, its text now, already carries the
        same digest) and the sysctl steps, with the records of the sysctls it changes.

        ``values`` (name -> value, missing ones read as "0"): plan for a clean host, running
        nothing; else ``value(name)`` reads a sysctl now.
        """
        table = render(owner, rules)
        steps: list[Step] = []
        if rules and (current is None or table_comment(current) != table_comment(table)):
            before = delete_text(owner) if current is None else replace_text(owner, current)
            do = self.command(replace_text(owner, table), "write", owner)
            undo = self.command(before, "delete" if current is None else "write", owner)
            steps.append(Step(description, [do], [undo]))
        elif not rules and current is not None:
            do = self.command(delete_text(owner), "delete", owner)
            steps.append(Step(description, [do], [self.command(replace_text(owner, current), "write", owner)]))
        changes: list[SysctlRecord] = []
        for s in sysctls:
            now = (values or {}).get(s.name, "0") if values is not None else (value(s.name) if value else None)
            if now is None:
                raise NetnskitError(f"cannot read {s.name}: netnskit must know its value before changing it")
            if now != s.value:
                changes.append(SysctlRecord(s.name, now, s.value))
                steps.append(Step(f"set {s.name}={s.value} (was {now})", [s.set_command()], [s.set_command(now)]))
        return steps, changes

    def plan_beside(
        self,
        iptables: Firewall,
        owner: str,
        rules: Sequence[Rule],
        sysctls: Sequence[Sysctl],
        description: str,
        *,
        saved: SavedRules | None = None,
    ) -> tuple[list[Step], list[SysctlRecord]]:
        """:meth:`plan_changes` read from the host, beside what ``iptables`` shows (``saved``: its IPv4
        rules, if just read): where its FORWARD drops, the rules' accepts of that family (the filter
        ones, which name the bridge) go there first, through the iptables backend (NETNSKIT-FORWARD,
        after the admin's NETNSKIT-USER), since an accept in our table does not stop that drop. IPv6
        rules' accepts go to ip6tables (read only where there are some)."""
        steps: list[Step] = []
        for family, given in ((4, saved), (6, None)):
            accepts = [r for r in rules if r.table == "filter" and r.family == family]
            if not accepts:
                continue
            if given is None:
                try:
                    given = iptables.save(family)
                except (CommandNotFoundError, CommandError):
                    continue  # no iptables (of this family): nothing of it drops
            if forward_drops(given):
                tool = "iptables" if family == 4 else "ip6tables"
                why = f"accepts of {SHARED}:{_owner(owner)} in {tool}, whose FORWARD drops"
                steps += iptables.plan_changes(family, accepts, [], why, saved=given)[0]
        table, changes = self.plan_changes(
            owner, rules, sysctls, description, current=self.read(owner), value=iptables.sysctl_value
        )
        return steps + table, changes

    def apply(self, iptables: Firewall, owner: str, rules: Sequence[Rule], sysctls: Sequence[Sysctl]) -> None:
        """Make ``rules`` the owner's table (and the accepts in iptables where its FORWARD drops), set
        ``sysctls`` (their old values written down first); rolls back if a step fails."""
        from netnskit.executors import SerialExecutor

        description = f"nft table {FAMILY} {table_name(owner)} ({SHARED}:{_owner(owner)})"
        steps, changes = self.plan_beside(iptables, owner, rules, sysctls, description)
        iptables.remember(changes)
        SerialExecutor().apply(steps, self.runner)

    def remove(self, iptables: Firewall, owner: str) -> None:
        """Delete the owner's table and its rules in iptables and ip6tables (where :meth:`apply` put
        accepts of either family; ip6tables may be missing), then put back the sysctls nothing needs."""
        self.command(delete_text(owner), "delete", owner).check(self.runner, f"deleting nft table of {owner!r}")
        ruleset = self.ruleset(ours_except())
        for family in (4, 6):
            try:
                iptables.purge(owner, family, elsewhere=nft_needs(ruleset, family=family))
            except CommandNotFoundError:
                if family == 4:
                    raise

    def removal(self, owners: Iterable[str]) -> list[Step]:
        """Steps (undo only, as ``down`` runs them) deleting each owner's table."""
        return [
            Step(f"nft table {FAMILY} {table_name(o)}", [], [self.command(delete_text(o), "delete", o)]) for o in owners
        ]


def _ports_of(right: Any) -> list[tuple[int, int]]:
    if isinstance(right, int):
        return [(right, right)]
    if isinstance(right, dict):
        if "range" in right:
            low, high = right["range"]
            return [(int(low), int(high))] if isinstance(low, int) and isinstance(high, int) else []
        if "set" in right:
            return [p for item in right["set"] for p in _ports_of(item)]
    if isinstance(right, list):
        return [p for item in right for p in _ports_of(item)]
    return []


def _address_of(right: Any) -> str | None:
    if isinstance(right, str):
        return right
    if isinstance(right, dict) and "prefix" in right:
        return f"{right['prefix']['addr']}/{right['prefix']['len']}"
    return None


def nft_port_users(
    ruleset: Mapping[str, Any],
    protocol: str,
    ports: tuple[int, int],
    address: str | None,
    mine: str,
    local: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """Rules in the nft ruleset other than ``mine`` (a ``netnskit:NAME`` mark) that DNAT or redirect
    host port(s) ``ports``/``protocol``: (who, where) pairs, who ``netnskit:NAME`` for another
    network's table (or rule comment), else "foreign". Read from ``nft -j list ruleset``."""
    found = []
    low, high = ports
    for item in ruleset.get("nftables", ()):
        rule = item.get("rule") if isinstance(item, dict) else None
        if not rule:
            continue
        owner = owner_of_table(str(rule.get("table", ""))) if rule.get("family") == FAMILY else None
        who = f"{SHARED}:{owner}" if owner else str(rule.get("comment") or "")
        if who == mine:
            continue
        exprs = rule.get("expr") or []
        if not any(isinstance(e, dict) and ("dnat" in e or "redirect" in e) for e in exprs):
            continue
        proto_ok = False
        matched: list[tuple[int, int]] = []
        dest: str | None = None
        for e in exprs:
            m = e.get("match") if isinstance(e, dict) else None
            if not m or m.get("op") not in ("==", "in"):
                continue
            left = m.get("left") or {}
            payload = left.get("payload") if isinstance(left, dict) else None
            meta = left.get("meta") if isinstance(left, dict) else None
            if payload and payload.get("field") == "dport" and payload.get("protocol") in (protocol, "th"):
                proto_ok = proto_ok or payload.get("protocol") == protocol
                matched += _ports_of(m.get("right"))
            elif payload and payload.get("field") == "daddr" and payload.get("protocol") in ("ip", "ip6"):
                dest = _address_of(m.get("right"))
            elif meta and meta.get("key") == "l4proto" and m.get("right") == protocol:
                proto_ok = True
        if not proto_ok or not any(a <= high and low <= b for a, b in matched):
            continue
        if not _addresses_meet(dest, address, local):
            continue
        party = who if who.startswith(SHARED + ":") else "foreign"
        chain = f"{rule.get('family')} {rule.get('table')} {rule.get('chain')}"
        where = f"nft rule in {chain} (handle {rule.get('handle')})"
        found.append((party, where))
    return found


_VERDICTS = ("drop", "reject")


def native_forward_drops(ruleset: Mapping[str, Any]) -> list[str]:
    """Base chains at the forward hook, in native tables (not iptables-nft's, not netnskit's), that
    drop what they do not accept: policy drop, or a last rule that drops or rejects everything (as
    firewalld's ``filter_FORWARD`` ends). An accept anywhere else does not stop such a drop, and
    netnskit writes nothing in another's table: each is named, ``FAMILY TABLE CHAIN (why)``."""
    chains: dict[tuple[str, str, str], str] = {}
    last: dict[tuple[str, str, str], list[Any]] = {}
    for item in ruleset.get("nftables", ()):
        if not isinstance(item, dict):
            continue
        chain, rule = item.get("chain"), item.get("rule")
        if isinstance(chain, dict) and chain.get("hook") == "forward" and chain.get("family") in ("ip", "ip6", "inet"):
            family, table = str(chain.get("family")), str(chain.get("table"))
            if native(family, table) and owner_of_table(table) is None:
                chains[(family, table, str(chain.get("name")))] = str(chain.get("policy", "accept"))
        elif isinstance(rule, dict):
            last[(str(rule.get("family")), str(rule.get("table")), str(rule.get("chain")))] = rule.get("expr") or []
    found = []
    for key, policy in chains.items():
        expr = last.get(key, [])
        final = len(expr) == 1 and isinstance(expr[0], dict) and any(v in expr[0] for v in _VERDICTS)
        if policy == "drop" or final:
            why = "policy drop" if policy == "drop" else f"its last rule: {next(iter(expr[0]))} everything"
            found.append(f"{' '.join(key)} ({why})")
    return found


# the tables iptables-nft keeps its rules in (iptables-save reads those)
_XTABLES = frozenset({"filter", "nat", "raw", "mangle", "security"})
_XFAMILIES = frozenset({"ip", "ip6", "arp", "bridge"})


def native(family: str, name: str) -> bool:
    """Is table ``family name`` one iptables-save does not show (not one of iptables-nft's)?"""
    return not (family in _XFAMILIES and name in _XTABLES)


def ours_except(skip: Iterable[str] = ()) -> Callable[[str, str], bool]:
    """A ``keep`` for :meth:`Nftables.ruleset`: netnskit's tables but those of the owners in ``skip``."""
    gone = set(skip)

    def keep(family: str, name: str) -> bool:
        owner = owner_of_table(name)
        return family == FAMILY and owner is not None and owner not in gone

    return keep


def _is_ipv6(exprs: Sequence[Any]) -> bool:
    """Does a rule's ``nft -j`` expression list say IPv6 (``meta nfproto ipv6``, an ip6 match, dnat ip6)?"""
    for e in exprs:
        if not isinstance(e, dict):
            continue
        m = e.get("match") or {}
        left = m.get("left") if isinstance(m, dict) else None
        if isinstance(left, dict):
            if (left.get("meta") or {}).get("key") == "nfproto" and m.get("right") == "ipv6":
                return True
            if (left.get("payload") or {}).get("protocol") == "ip6":
                return True
        if (e.get("dnat") or {}).get("family") == "ip6":
            return True
    return False


def nft_needs(ruleset: Mapping[str, Any], skip: Iterable[str] = (), *, family: int = 4) -> tuple[bool, list[str]]:
    """What netnskit's nft tables (but those of the owners in ``skip``) still need of ``family``:
    forwarding and route_localnet on which bridges (a loopback guard's ``iifname``, IPv4 only).

    IPv4 forwarding: a nat chain with a rule. IPv6 forwarding: any IPv6 rule (a dual-stack network's
    table names the family of its bridge's accept: routed IPv6 needs forwarding with no nat at all,
    as with ip6tables)."""
    gone = set(skip)
    translating = False
    guarded: list[str] = []
    for item in ruleset.get("nftables", ()):
        rule = item.get("rule") if isinstance(item, dict) else None
        if not rule or rule.get("family") != FAMILY:
            continue
        owner = owner_of_table(str(rule.get("table", "")))
        if owner is None or owner in gone:
            continue
        chain = rule.get("chain")
        if family == 6:
            translating = translating or _is_ipv6(rule.get("expr") or [])
            continue
        if chain in ("prerouting", "output", "postrouting") and not _is_ipv6(rule.get("expr") or []):
            translating = True
        if chain == "raw-prerouting":
            for e in rule.get("expr") or []:
                m = e.get("match") if isinstance(e, dict) else None
                left = (m or {}).get("left") or {}
                if isinstance(left, dict) and (left.get("meta") or {}).get("key") == "iifname":
                    guarded.append(str(m["right"]))  # type: ignore[index]
    return translating, sorted(set(guarded))

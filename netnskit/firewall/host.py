"""What the rest of the host says, read from its rules and links: pure functions over what was read.

- :func:`port_users`: who else answers a host port (a foreign DNAT, another network's forward);
- :func:`forwarding_reliance`: what else needs IP forwarding (foreign NAT, foreign FORWARD accepts
  naming interfaces, other managers' bridges), so netnskit does not switch it off under them;
- :func:`uplinks`: the interfaces the host routes to other machines through (its gateways' links),
  where a masqueraded subnet may go.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from netnskit.firewall.rules import _OURS, SHARED, Rule, SavedRules, _after, _is_ours

# Targets that translate addresses: a rule using one routes traffic through the host (or may).
_NAT_TARGETS = {"DNAT", "SNAT", "MASQUERADE", "NETMAP"}
# Targets that are not chains (a jump to anything else is a jump to a chain that may DNAT).
_PLAIN_TARGETS = {"ACCEPT", "DROP", "RETURN", "REJECT", "LOG", "MARK", "CONNMARK", "NFLOG", "TRACE", "CT", "NOTRACK"}
_BUILTIN = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}
_MORE = 3  # reasons named in full before "and N more"


def _target(rule: Rule) -> str | None:
    return _after(rule.spec, "-j") or _after(rule.spec, "-g")


def _ports(rule: Rule) -> list[tuple[int, int]] | None:
    """The destination ports a rule matches (``--dport`` or ``--dports``), None when it names none."""
    text = _after(rule.spec, "--dport") or _after(rule.spec, "--dports") or _after(rule.spec, "--destination-ports")
    if text is None:
        return None
    found = []
    for part in text.split(","):
        low, _, high = part.partition(":")
        if low.isdigit() and (not high or high.isdigit()):
            found.append((int(low), int(high or low)))
    return found


def _addresses_meet(theirs: str | None, ours: str | None, local: Sequence[str] | None) -> bool:
    """Can a rule matching destination ``theirs`` (None: any) see traffic to ``ours``?

    ``ours`` None is every local address (``local``, when known): a foreign rule for a service
    address that is not the host's (a kube-proxy ClusterIP) never meets an unbound forward.
    """
    if theirs is None:
        return True
    try:
        net = ipaddress.ip_network(theirs, strict=False)
        if ours is not None:
            return net.overlaps(ipaddress.ip_network(ours, strict=False))
        if local is None:
            return True
        return any(ipaddress.ip_address(a).version == net.version and ipaddress.ip_address(a) in net for a in local)
    except ValueError:
        return True  # a form we do not read: assume the worst


def port_users(
    saved: SavedRules,
    protocol: str,
    ports: tuple[int, int],
    address: str | None,
    mine: str,
    local: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """Rules other than ``mine`` (a comment) that send host port(s) ``ports``/``protocol`` elsewhere.

    Read from the nat table: a DNAT or REDIRECT of an overlapping port (on the forward's ``address``,
    or on one of the host's ``local`` addresses when it has none), or a jump from such a port into a
    chain (kube-proxy's NodePorts). Returns (who, rule line) pairs: who is ``netnskit:NAME`` for
    another network's forward, else "foreign".
    """
    found = []
    low, high = ports
    for rule in saved.rules:
        if rule.table != "nat" or rule.comment == mine:
            continue
        target = _target(rule)
        chain = target not in _PLAIN_TARGETS | _NAT_TARGETS | _BUILTIN | {"REDIRECT"} and not _OURS.match(target or "")
        if target is None or not (target in ("DNAT", "REDIRECT") or chain):
            continue
        if _after(rule.spec, "-p") != protocol:
            continue
        matched = _ports(rule)
        if not matched or not any(a <= high and low <= b for a, b in matched):
            continue
        if not _addresses_meet(_after(rule.spec, "-d"), address, local):
            continue
        comment = rule.comment or ""
        who = comment if comment.startswith(SHARED + ":") else "foreign"
        found.append((who, f"-t nat {rule.line()}"))
    return found


def _reachable(saved: SavedRules, table: str, start: str) -> set[str]:
    """The chains of ``table`` that ``start`` jumps or goes to, directly or not (netnskit's left out)."""
    seen = {start}
    todo = [start]
    chains = {c for t, c in saved.chains if t == table and not _OURS.match(c)}
    while todo:
        chain = todo.pop()
        for rule in saved.rules:
            target = _target(rule)
            if rule.table == table and rule.chain == chain and target in chains and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _names_interface(rule: Rule) -> str | None:
    for flag in ("-i", "-o"):
        value = _after(rule.spec, flag)
        if value is not None and value != "lo":
            return value
    return None


def forwarding_reliance(saved: SavedRules, bridges: Sequence[str] = ()) -> list[str]:
    """What on the host needs IP forwarding besides netnskit: one line per reason, the first few in full.

    Foreign NAT (DNAT, SNAT, MASQUERADE, NETMAP) and foreign FORWARD accepts that name an interface
    (Docker's ``-i docker0 ! -o docker0 -j ACCEPT``, a CNI's ``-i cni0``) are a manager routing for
    its own links; ``bridges`` are other managers' bridges (see :func:`foreign_bridges`). A plain
    REJECT or a policy is not reliance: RHEL's and ufw's default rules keep forwarding as it was.
    """
    reasons: list[str] = []
    forward = _reachable(saved, "filter", "FORWARD")
    for rule in saved.rules:
        if _is_ours(rule):
            continue
        target = _target(rule)
        if rule.table == "nat" and target in _NAT_TARGETS:
            reasons.append(f"foreign nat rule '{rule.line()}'")
        elif rule.table == "filter" and rule.chain in forward and target == "ACCEPT" and _names_interface(rule):
            reasons.append(f"foreign FORWARD rule '{rule.line()}'")
    return [*(f"bridge {b}" for b in bridges), *reasons]


def interfaces(rules: Iterable[Rule]) -> list[str]:
    """The interfaces ``rules`` name with ``-i`` or ``-o`` (negated or not), in first-seen order."""
    found: dict[str, None] = {}
    for rule in rules:
        words = list(rule.spec)
        for index, word in enumerate(words[:-1]):
            if word in ("-i", "-o", "--in-interface", "--out-interface"):
                found[words[index + 1]] = None
    return list(found)


def summary(reasons: Sequence[str]) -> str:
    """The first few reasons, then how many more."""
    shown = ", ".join(reasons[:_MORE])
    return shown + (f" and {len(reasons) - _MORE} more" if len(reasons) > _MORE else "")


def _gateway_devs(routes: Iterable[Mapping[str, Any]]) -> set[str]:
    found = set()
    for route in routes:
        hops = route.get("nexthops") or [route]
        for hop in hops:
            if (hop.get("gateway") or route.get("dst") == "default") and hop.get("dev"):
                found.add(str(hop["dev"]))
    return found


def uplinks(routes: Iterable[Mapping[str, Any]], *, exclude: Iterable[str] = ()) -> list[str]:
    """The devices of the host's routes through a gateway, the default route's included (``ip -j route`` entries).

    These are where a masqueraded subnet reaches other machines; a foreign bridge (docker0, a CNI's)
    carries only its own connected subnet and is not among them.
    """
    skip = {"lo", *exclude}
    return sorted(d for d in _gateway_devs(routes) if d not in skip)


def foreign_bridges(
    links: Iterable[Mapping[str, Any]],
    addresses: Iterable[Mapping[str, Any]],
    routes: Iterable[Mapping[str, Any]],
    *,
    ours: str,
    family: int = 4,
) -> list[str]:
    """Bridges of other managers that route for their guests: an address of ``family``, no alias starting
    ``ours``, not the host's uplink (a server's ``br0`` carrying the default route is not a guest bridge).

    ``links``/``addresses``: ``ip -j link show type bridge`` and ``ip -j addr show type bridge`` entries.
    """
    kind = "inet6" if family == 6 else "inet"
    marked = {str(d.get("ifname")) for d in links if str(d.get("ifalias", "")).startswith(ours)}
    gateways = _gateway_devs(routes)
    found = []
    for entry in addresses:
        name = str(entry.get("ifname"))
        if name in marked or name in gateways:
            continue
        addrs = [
            f"{a['local']}/{a['prefixlen']}"
            for a in entry.get("addr_info", ())
            if a.get("family") == kind and a.get("scope") != "link" and "local" in a
        ]
        if addrs:
            found.append(f"{name} ({', '.join(addrs)})")
    return found

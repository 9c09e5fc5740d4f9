"""What the kernel has now, as far as one network cares (one ``ip -batch`` per place), and what of it is ours.

Ours: a host link with our alias (or, after a crash, our name and group and no alias yet); a namespace
whose ``lo`` has our alias or that is still as ``ip netns add`` left it. ``up`` refuses anything else
that has one of our names, and a subnet overlapping an address on someone else's link; and, before
changing anything, a host port someone else forwards or a subnet a route sends elsewhere.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from netnskit import _ipjson
from netnskit.errors import CommandError, ConflictError, NetnskitError, NotOursError
from netnskit.firewall import SavedRules
from netnskit.firewall.host import port_users
from netnskit.firewall.nftables import Nftables, native, nft_port_users
from netnskit.firewall.rules import Rule
from netnskit.network import files as _files
from netnskit.network.impair import loss_places, places_to_read, read_loss_rules, read_qdiscs
from netnskit.network.spec import MARK_PREFIX, _subnets6_at, _subnets_at, owner_of, sysctl_path
from netnskit.qdisc import NetemSupport, QdiscInfo
from netnskit.runner import NETNS_RUN_DIR, Runner

if TYPE_CHECKING:
    from netnskit.network.network import Network


@attrs.frozen
class _Facts:
    """What the kernel has now, as far as one network's steps care."""

    netns: dict[str, int | None]
    links: dict[str | None, dict[str, dict[str, Any]]]  # where -> ifname -> ip -j link entry
    addresses: dict[str | None, set[tuple[str, str]]]  # where -> {(ifname, "a/p")}
    routes: dict[str | None, set[tuple[str, str | None]]]  # where -> {(to, via)}: ip -j route's dst and gateway
    forwarding: dict[str | None, dict[str, bool]]  # where -> ifname/"all" -> on
    rules: tuple[str, ...]  # our firewall rules, as iptables-restore lines
    read: frozenset[str | None]  # places read in full (host = None)
    raw: dict[str | None, dict[str, list[dict[str, Any]]]] = attrs.field(factory=dict)  # where -> addr/route
    saved: SavedRules | None = None  # the host's IPv4 rules, when read (status; None without iptables)
    files: _files.Found = attrs.field(factory=lambda: _files.Found({}))  # first lines and digests under /etc/netns
    sysctls: dict[str, dict[str, str]] = attrs.field(factory=dict)  # netns -> /proc/sys path -> value
    qdiscs: dict[str | None, tuple[QdiscInfo, ...]] = attrs.field(factory=dict)  # where -> tc -j qdisc show
    rules_in: dict[str, tuple[Rule, ...]] = attrs.field(factory=dict)  # namespace -> its iptables-save (IPv4)
    netem: NetemSupport | None = None  # asked of the kernel when a namespace was read
    dangling: frozenset[str] = frozenset()  # the file's names whose /run/netns entry is no namespace (not in netns)
    stale: tuple[str, ...] = ()  # namespaces marked with our name that the file does not have
    routes6: dict[str | None, set[tuple[str, str | None]]] = attrs.field(factory=dict)  # as routes, IPv6 (dual)
    forwarding6: dict[str | None, dict[str, bool]] = attrs.field(factory=dict)  # as forwarding, IPv6 (dual)


def _read_links(runner: Runner, where: str | None) -> dict[str, dict[str, Any]]:
    # without -d: name, flags, group, ifalias and link_netnsid are all there, and it is cheaper
    return {str(d["ifname"]): d for d in _ipjson.read(runner, where, "link", "show")}


_PLACE_READS = ("link show", "addr show", "route show", "netconf show")
_PLACE_READS6 = ("addr show", "route show", "netconf show")


def _read_place(runner: Runner, where: str | None, facts: dict[str, Any], six: bool = False) -> None:
    """Links, IPv4 addresses, routes and forwarding of the host or a namespace, in one ``ip -batch``;
    ``six`` (a dual-stack network): its IPv6 ones too, in a second (a batch's family is the whole batch's)."""
    if six:
        _read_place6(runner, where, facts)
    result = runner.run(_ipjson.argv(where, "-batch", "-", flags=["-4"]), input="\n".join(_PLACE_READS) + "\n")
    arrays = _ipjson.arrays(result.check(f"reading the state of {where or 'the host'}").stdout)
    if not arrays:  # no output at all (a fake runner): nothing there
        arrays = [[] for _ in _PLACE_READS]
    if len(arrays) != len(_PLACE_READS):
        raise NetnskitError(f"reading the state of {where or 'the host'}: expected {len(_PLACE_READS)} JSON lists")
    links, entries, route_entries, netconf = arrays
    facts["links"][where] = {str(d["ifname"]): d for d in links}
    facts.setdefault("raw", {})[where] = {"addr": entries, "route": route_entries}
    facts["addresses"][where] = {
        (str(d["ifname"]), f"{a['local']}/{a['prefixlen']}")
        for d in entries
        for a in d.get("addr_info", ())
        if a.get("family") == "inet" and "local" in a
    } | facts.get("addresses6", {}).get(where, set())
    facts["routes"][where] = {(str(r.get("dst", "")), r.get("gateway")) for r in route_entries}
    facts["forwarding"][where] = {str(d.get("interface", "")): bool(d.get("forwarding")) for d in netconf}


def _read_place6(runner: Runner, where: str | None, facts: dict[str, Any]) -> None:
    """The IPv6 addresses (global ones: link-local addresses are none of ours), routes and forwarding of a place."""
    result = runner.run(_ipjson.argv(where, "-batch", "-", flags=["-6"]), input="\n".join(_PLACE_READS6) + "\n")
    arrays = _ipjson.arrays(result.check(f"reading the IPv6 state of {where or 'the host'}").stdout)
    if not arrays:  # no output at all (a fake runner): nothing there
        arrays = [[] for _ in _PLACE_READS6]
    if len(arrays) != len(_PLACE_READS6):
        raise NetnskitError(
            f"reading the IPv6 state of {where or 'the host'}: expected {len(_PLACE_READS6)} JSON lists"
        )
    entries, route_entries, netconf = arrays
    facts.setdefault("addresses6", {})[where] = {
        (str(d["ifname"]), f"{a['local']}/{a['prefixlen']}")
        for d in entries
        for a in d.get("addr_info", ())
        if a.get("family") == "inet6" and "local" in a and a.get("scope") != "link"
    }
    facts.setdefault("raw6", {})[where] = {"addr": entries, "route": route_entries}
    facts.setdefault("routes6", {})[where] = {(str(r.get("dst", "")), r.get("gateway")) for r in route_entries}
    facts.setdefault("forwarding6", {})[where] = {
        str(d.get("interface", "")): bool(d.get("forwarding")) for d in netconf
    }


def _merged_raw(facts: dict[str, Any]) -> dict[str | None, dict[str, list[dict[str, Any]]]]:
    """Each place's ``ip -j`` addr and route entries, IPv4 then IPv6 (a dual-stack network's)."""
    raw: dict[str | None, dict[str, list[dict[str, Any]]]] = {w: dict(v) for w, v in facts.get("raw", {}).items()}
    for where, six in facts.get("raw6", {}).items():
        place = raw.setdefault(where, {"addr": [], "route": []})
        place["addr"] = [*place.get("addr", []), *six["addr"]]
        place["route6"] = six["route"]
    return raw


def _read_sysctls(runner: Runner, netns: str, keys: list[str]) -> dict[str, str]:
    """The values of settings inside ``netns``, read from /proc/sys (one ``grep``; absent ones left out)."""
    paths = [sysctl_path(k) for k in keys]
    result = runner.run(["grep", "-s", "-H", "", "--", *paths], netns=netns)
    values: dict[str, str] = {}
    for line in result.stdout.splitlines():
        path, _, value = line.partition(":")
        if path in paths:
            values[path] = " ".join(value.split())
    return values


def _host_link_ours(entry: dict[str, Any], mark: str, group: int | None, names: Iterable[str]) -> bool:
    """A host link is ours if it carries our alias, or (between ``ip link add`` and the alias being
    set, as after a crash) if it has one of our names, our link group and no alias at all."""
    if entry.get("ifalias") == mark:
        return True
    unmarked = not entry.get("ifalias") and group is not None and str(entry.get("group")) == str(group)
    return unmarked and entry.get("ifname") in set(names)


def _gather(net: Network, full: bool, *, impairments: bool = True) -> _Facts:
    runner = net.runner
    listed = _ipjson.netns_list(runner)
    netns = {str(d["name"]): (int(d["id"]) if "id" in d else None) for d in listed}
    facts: dict[str, Any] = {"links": {}, "addresses": {}, "routes": {}, "forwarding": {}}
    six = net.dual
    _read_place(runner, None, facts, six)
    host_names = set(net.host_ifnames())
    ours_on_host = any(d.get("ifalias") == net.mark or name in host_names for name, d in facts["links"][None].items())
    present = [n for n in net.namespace_names() if n in netns]
    read: set[str | None] = {None}
    failed: dict[str, CommandError] = {}
    if present or ours_on_host or full:
        # something of ours (or with our names) exists: read each existing namespace in full
        for name in present:
            try:
                _read_place(runner, name, facts, six)
            except CommandError as error:
                failed[name] = error
                continue
            read.add(name)
    saved = _host_rules(net) if full else None
    qdiscs: dict[str | None, tuple[QdiscInfo, ...]] = {}
    rules_in: dict[str, tuple[Rule, ...]] = {}
    netem: NetemSupport | None = None
    if impairments:
        qdiscs, rules_in, netem = _read_impairments(net, facts["links"], read)
    dangling = _dangling(runner, failed)
    for name, problem in failed.items():
        if name not in dangling:
            raise problem
        del netns[name]  # not a namespace: "create namespace" is to do again, after removing the entry
    described = set(net.namespace_names())
    marks = _lo_marks(runner, _candidates(netns, facts["links"][None], net.mark, described))
    sysctls = {}
    for space in net.spaces():
        if space.sysctls and space.name in read:
            sysctls[space.name] = _read_sysctls(runner, space.name, [k for k, _ in space.sysctls])
    wanted = list(_files.wanted(net))
    return _Facts(
        netns=netns,
        links=facts["links"],
        addresses=facts["addresses"],
        routes=facts["routes"],
        forwarding=facts["forwarding"],
        routes6=facts.get("routes6", {}),
        forwarding6=facts.get("forwarding6", {}),
        rules=tuple(f"-t {r.table} {r.line()}" for r in saved.rules if r.comment == net.mark) if saved else (),
        read=frozenset(read),
        raw=_merged_raw(facts),
        saved=saved,
        qdiscs=qdiscs,
        rules_in=rules_in,
        netem=netem,
        dangling=frozenset(dangling),
        stale=tuple(sorted(name for name, alias in marks.items() if alias == net.mark)),
        files=_files.read(runner, wanted, digests=True),
        sysctls=sysctls,
    )


def _host_rules(net: Network) -> SavedRules | None:
    """The host's IPv4 rules (None where iptables is not installed and the description has no rule:
    then none can be ours)."""
    from netnskit.network.firewall import _NO_RULES, _firewall_objects, _firewall_of, _saved

    saved = _saved(_firewall_of(net), 4, needed=bool(_firewall_objects(net)))
    return None if saved is _NO_RULES else saved


def _read_impairments(
    net: Network, links: dict[str | None, dict[str, dict[str, Any]]], read: set[str | None]
) -> tuple[dict[str | None, tuple[QdiscInfo, ...]], dict[str, tuple[Rule, ...]], NetemSupport | None]:
    """The qdiscs where a cable end has one set (``ip -j link`` shows its kind: no read otherwise), and,
    on a kernel without netem, the netfilter of each namespace read (where loss rules would be)."""
    qdiscs = {where: read_qdiscs(net.runner, where) for where in sorted(places_to_read(net, links), key=str)}
    rules_in: dict[str, tuple[Rule, ...]] = {}
    netem: NetemSupport | None = None
    spaces = sorted(w for w in loss_places(net) if w in read)
    if spaces:
        netem = net.netem_support()
        if netem.available is False:
            rules_in = {where: read_loss_rules(net.runner, where) for where in spaces}
    return qdiscs, rules_in, netem


def _candidates(
    netns: dict[str, int | None], host: dict[str, dict[str, Any]], mark: str | None, skip: Iterable[str]
) -> list[str]:
    """The namespaces (but ``skip``) that may carry ``mark`` (any netnskit mark for None): all but
    those whose veth peer on the host is a link marked by another netnskit network (theirs)."""
    theirs = {
        d.get("link_netnsid")
        for d in host.values()
        if str(d.get("ifalias", "")).startswith(MARK_PREFIX) and mark is not None and d.get("ifalias") != mark
    }
    theirs.discard(None)
    left = set(skip)
    return sorted(name for name, nsid in netns.items() if name not in left and (nsid is None or nsid not in theirs))


def _lo_marks(runner: Runner, names: Iterable[str]) -> dict[str, str | None]:
    """Each namespace's ``lo`` alias ("" when it has none; None when the namespace cannot be read),
    read a few namespaces at a time."""
    todo = list(names)
    if not todo:
        return {}

    def alias(name: str) -> str | None:
        found = _ipjson.try_read(runner, name, "link", "show", "dev", "lo")
        return None if found is None else str((found[0] if found else {}).get("ifalias", ""))

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(4, len(todo))) as pool:
        return dict(zip(todo, pool.map(alias, todo), strict=True))


def _dangling(runner: Runner, names: Iterable[str]) -> set[str]:
    """Those of ``names`` whose ``/run/netns`` entry is a plain file, not a namespace mounted there.

    ``ip netns del`` unmounts, then unlinks: a process killed between the two leaves an entry that
    ``ip netns list`` shows and every command in it fails on ("setting the network namespace ...
    failed: Invalid argument"). Such an entry is on the file system of ``/run/netns`` itself;
    a namespace's is on nsfs. One ``stat -f`` reads them all.
    """
    todo = sorted(names)
    if not todo:
        return set()
    result = runner.run(["stat", "-f", "-c", "%t %n", "--", NETNS_RUN_DIR, *(f"{NETNS_RUN_DIR}/{n}" for n in todo)])
    types: dict[str, str] = {}
    for line in result.stdout.splitlines():
        kind, _, path = line.partition(" ")
        types[path] = kind
    here = types.get(NETNS_RUN_DIR)
    return {n for n in todo if here is not None and types.get(f"{NETNS_RUN_DIR}/{n}") == here}


def _pristine(links: dict[str, dict[str, Any]], expected: Iterable[str] = ()) -> bool:
    """A namespace as an interrupted ``up`` leaves it before its mark: ``lo`` down and unmarked,
    and no other interface than veth ends the plan puts there (``expected``), which a batching
    executor may create before it marks the namespace."""
    lo = links.get("lo", {})
    return set(links) - {"lo"} <= set(expected) and "UP" not in lo.get("flags", ()) and not lo.get("ifalias")


def _ifnames_in(net: Network, name: str) -> set[str]:
    """The interfaces the plan creates inside namespace ``name``."""
    found = {ns.ifname for ns in net.namespaces if ns.name == name}
    for link in net.links:
        found |= {ifname for place, ifname, _ in link.ends() if place == name}
    return found


def _namespace_ours(net: Network, f: _Facts, name: str) -> bool:
    lo = f.links.get(name, {}).get("lo", {})
    return lo.get("ifalias") == net.mark or _pristine(f.links.get(name, {}), _ifnames_in(net, name))


def _whose(alias: object, what: str) -> str:
    """What a mark says, for a message: whose it is, or that there is none."""
    owner = owner_of(alias)
    if owner is not None:
        return f"{what} alias {alias} says it belongs to network {owner!r}"
    return f"{what} alias is {alias!r}" if alias else f"{what} has no netnskit alias"


def _advice(net: Network, alias: object, otherwise: str) -> str:
    """A renamed network is another network: say which, and how to remove it."""
    owner = owner_of(alias)
    if owner is None:
        return otherwise
    return (
        f"if network {net.name!r} was renamed from {owner!r}, remove the old one first with "
        f"`netnskit cleanup {owner}` (or `netnskit down` of its old file)"
    )


def _refuse_foreign(net: Network, f: _Facts) -> None:
    """Refuse to adopt a namespace or host link that has one of our names but not our mark."""
    for name in net.namespace_names():
        if name in f.netns and not _namespace_ours(net, f, name):
            alias = f.links.get(name, {}).get("lo", {}).get("ifalias")
            raise NotOursError(
                f"namespace {name!r} exists but is not marked {net.mark} ({_whose(alias, 'its lo')}); "
                "refusing to adopt it: " + _advice(net, alias, "remove it or rename the network's namespace")
            )
    host = f.links.get(None, {})
    for ifname in net.host_ifnames():
        entry = host.get(ifname)
        if entry is not None and not _host_link_ours(entry, net.mark, net.group, [ifname]):
            alias = entry.get("ifalias")
            raise NotOursError(
                f"link {ifname!r} exists on the host but is not marked {net.mark} ({_whose(alias, 'its')}); "
                f"refusing to adopt it: {_advice(net, alias, 'remove it or rename the link')}"
            )
    _files.refuse_foreign(net, f.files)
    # a subnet of ours that overlaps an address on someone else's link would break both
    mine = set(net.host_ifnames())
    for ifname, address in sorted(f.addresses.get(None, set())):
        if ifname in mine:
            continue
        theirs = ipaddress.ip_interface(address).network
        for subnet in _subnets_of(net, theirs.version):
            if theirs.prefixlen > 0 and subnet.overlaps(theirs) and not theirs.is_loopback:
                raise ConflictError(
                    f"subnet {subnet} of network {net.name!r} overlaps {theirs} on {ifname!r} (not ours); "
                    "refusing to bring it up"
                )


def _subnets_of(net: Network, version: int) -> list[ipaddress.IPv4Network] | list[ipaddress.IPv6Network]:
    """The network's subnets on the host of one family (IPv6: a dual-stack network's subnet6 and host links')."""
    return _subnets6_at(net, None) if version == 6 else _subnets_at(net, None)


def _ports_text(ports: tuple[int, int], protocol: str) -> str:
    low, high = ports
    return f"{low}/{protocol}" if low == high else f"{low}-{high}/{protocol}"


def _routes_through_host(net: Network) -> bool:
    """Does the network's traffic cross the host's forward hook (a masquerade, a forward, routed IPv6)?"""
    return bool(net.port_forwards or net.masquerade or net.dual)


def _native_ruleset(net: Network) -> dict[str, Any]:
    """The native nft tables (other managers', other networks' nft tables: iptables-save shows none of
    them), read where the network's traffic crosses the host's forward hook; else none."""
    return Nftables(net.runner).ruleset(native) if _routes_through_host(net) else {}


def _conflicts(net: Network, f: _Facts, saved: SavedRules | None, ruleset: dict[str, Any] | None = None) -> list[str]:
    """What on the host is someone else's where the network needs it: each named, with the other party
    (``ruleset``: :func:`_native_ruleset`, if just read)."""
    found = []
    # the host's addresses once the network is up: what it has, loopback, and those the network adds
    local = [a.split("/")[0] for _, a in f.addresses.get(None, set())] + ["127.0.0.1", str(net.gateway)]
    local += [str(link.address.ip) for link in net.links if link.netns is None and link.address is not None]
    if ruleset is None:
        ruleset = Nftables(net.runner).ruleset(native) if net.port_forwards else {}
    for fwd in net.port_forwards:
        address = None if fwd.host_address is None else str(fwd.host_address)
        users = port_users(saved, fwd.protocol, fwd.host_port, address, net.mark, local) if saved is not None else []
        users += nft_port_users(ruleset, fwd.protocol, fwd.host_port, address, net.mark, local)
        at = f"{address}:" if address else ""
        for who, line in users[:1]:
            party = f"network {who.removeprefix('netnskit:')!r}" if who != "foreign" else "a foreign rule"
            found.append(
                f"host port {at}{_ports_text(fwd.host_port, fwd.protocol)} of network {net.name!r} is already "
                f"forwarded by {party}: {line}"
            )
    mine = set(net.host_ifnames())
    host = f.raw.get(None, {})
    for route in [*host.get("route", []), *host.get("route6", [])]:
        dst, dev = str(route.get("dst", "")), route.get("dev")
        if dst in ("", "default") or dev in mine:
            continue
        try:
            theirs = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        for subnet in _subnets_of(net, theirs.version):
            if subnet.overlaps(theirs) and not theirs.is_loopback and not theirs.is_link_local:
                how = " ".join(str(w) for w in (route.get("type", ""), dst) if w and w != "unicast")
                via = f" via {route['gateway']}" if route.get("gateway") else ""
                found.append(
                    f"subnet {subnet} of network {net.name!r} is routed elsewhere by the route {how}{via}"
                    f"{f' dev {dev}' if dev else ''} (not ours)"
                )
    return found


def _refuse_conflicts(net: Network, f: _Facts, saved: SavedRules | None, ruleset: dict[str, Any] | None = None) -> None:
    """Refuse, before any change, what :func:`_conflicts` finds (``saved``: the host's IPv4 rules,
    ``ruleset``: its native nft tables, if just read)."""
    found = _conflicts(net, f, saved, ruleset)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ConflictError(f"{found[0]}{more}; refusing to bring it up")

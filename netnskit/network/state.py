"""What the kernel has now, as far as one network cares (one ``ip -batch`` per place), and what of it is ours.

Ours: a host link with our alias (or, after a crash, our name and group and no alias yet); a namespace
whose ``lo`` has our alias or that is still as ``ip netns add`` left it. ``up`` refuses anything else
that has one of our names, and a subnet overlapping an address on someone else's link.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from netnskit import _ipjson
from netnskit.errors import ConflictError, NetnskitError, NotOursError
from netnskit.firewall import Firewall
from netnskit.network import files as _files
from netnskit.network.spec import _subnets_at, sysctl_path
from netnskit.runner import Runner

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
    files: _files.Found = attrs.field(factory=lambda: _files.Found({}))  # first lines and digests under /etc/netns
    sysctls: dict[str, dict[str, str]] = attrs.field(factory=dict)  # netns -> /proc/sys path -> value


def _read_links(runner: Runner, where: str | None) -> dict[str, dict[str, Any]]:
    # without -d: name, flags, group, ifalias and link_netnsid are all there, and it is cheaper
    return {str(d["ifname"]): d for d in _ipjson.read(runner, where, "link", "show")}


_PLACE_READS = ("link show", "addr show", "route show", "netconf show")


def _read_place(runner: Runner, where: str | None, facts: dict[str, Any]) -> None:
    """Links, IPv4 addresses, routes and forwarding of the host or a namespace, in one ``ip -batch``."""
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
    }
    facts["routes"][where] = {(str(r.get("dst", "")), r.get("gateway")) for r in route_entries}
    facts["forwarding"][where] = {str(d.get("interface", "")): bool(d.get("forwarding")) for d in netconf}


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


def _gather(net: Network, full: bool) -> _Facts:
    runner = net.runner
    listed = _ipjson.netns_list(runner)
    netns = {str(d["name"]): (int(d["id"]) if "id" in d else None) for d in listed}
    facts: dict[str, Any] = {"links": {}, "addresses": {}, "routes": {}, "forwarding": {}}
    _read_place(runner, None, facts)
    host_names = set(net.host_ifnames())
    ours_on_host = any(d.get("ifalias") == net.mark or name in host_names for name, d in facts["links"][None].items())
    present = [n for n in net.namespace_names() if n in netns]
    read: set[str | None] = {None}
    if present or ours_on_host or full:
        # something of ours (or with our names) exists: read each existing namespace in full
        for name in present:
            _read_place(runner, name, facts)
            read.add(name)
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
        rules=tuple(f"-t {r.table} {r.line()}" for r in Firewall(runner=runner).save(4).rules if r.comment == net.mark)
        if full
        else (),
        read=frozenset(read),
        raw=facts.get("raw", {}),
        files=_files.read(runner, wanted, digests=True),
        sysctls=sysctls,
    )


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


def _refuse_foreign(net: Network, f: _Facts) -> None:
    """Refuse to adopt a namespace or host link that has one of our names but not our mark."""
    for name in net.namespace_names():
        if name in f.netns and not _namespace_ours(net, f, name):
            raise NotOursError(
                f"namespace {name!r} exists but is not marked {net.mark} (its lo has no such alias); "
                "refusing to adopt it: remove it or rename the network's namespace"
            )
    host = f.links.get(None, {})
    for ifname in net.host_ifnames():
        entry = host.get(ifname)
        if entry is not None and not _host_link_ours(entry, net.mark, net.group, [ifname]):
            raise NotOursError(
                f"link {ifname!r} exists on the host but is not marked {net.mark} (alias "
                f"{entry.get('ifalias')!r}); refusing to adopt it"
            )
    _files.refuse_foreign(net, f.files)
    # a subnet of ours that overlaps an address on someone else's link would break both
    mine = set(net.host_ifnames())
    for ifname, address in sorted(f.addresses.get(None, set())):
        if ifname in mine:
            continue
        theirs = ipaddress.ip_interface(address).network
        for subnet in _subnets_at(net, None):
            if theirs.version == 4 and theirs.prefixlen > 0 and subnet.overlaps(theirs) and not theirs.is_loopback:
                raise ConflictError(
                    f"subnet {subnet} of network {net.name!r} overlaps {theirs} on {ifname!r} (not ours); "
                    "refusing to bring it up"
                )

"""A network's namespaces as hosts: ``/etc/netns/NAME/hosts`` and ``resolv.conf``, written and removed.

``ip netns exec NAME`` puts each file of ``/etc/netns/NAME/`` over its namesake in ``/etc``, so a
program run that way in namespace ``red`` resolves ``blue`` through ``red``'s own ``hosts``. Each
namespace's ``hosts`` names every node of the network: the namespaces (by name), the host (``host``;
its address on the bridge also ``gateway``), the extra namespaces, each with every address it has;
for each node the address on a subnet the namespace is connected to comes first, since resolvers
take the first. ``resolv.conf`` is written where ``dns`` is asked for (per namespace or for the
network).

Every file starts with the line ``# netnskit:NETWORK``: ``down`` (after a crash too) removes only
files carrying it, and ``up`` refuses to overwrite one that does not. The files are written through
the runner with typed commands of their own channel (``mkdir -p``, ``tee`` with the content on
stdin, ``chmod``), one ``tee`` per distinct content.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import TYPE_CHECKING

import attrs

from netnskit.errors import NotOursError
from netnskit.network.spec import MARK_PREFIX, _subnets6_at, _subnets_at
from netnskit.plan import Command, Resource, Step
from netnskit.runner import Runner

if TYPE_CHECKING:
    from netnskit.network.network import Network

ETC_NETNS = "/etc/netns"
FILE = "file"  # the tool and channel of these commands: files of the place, independent of its links
KINDS = ("hosts", "resolv.conf")
HOST = "host"  # the host's name in the namespaces' hosts files
GATEWAY = "gateway"  # the name of the host's address on the bridge


def path_of(netns: str, kind: str) -> str:
    """``/etc/netns/NETNS/KIND``."""
    return f"{ETC_NETNS}/{netns}/{kind}"


# --- what the files say ---------------------------------------------------------------------


_Entry = tuple[IPv4Address | IPv6Address, IPv4Network | IPv6Network]


def nodes(net: Network) -> dict[str | None, list[_Entry]]:
    """Every node of the network (None: the host), with each of its addresses (IPv4, then IPv6 where
    the network is dual-stack) and that address's subnet."""
    book: dict[str | None, list[_Entry]] = {None: [(net.gateway, net.subnet)]}
    addresses = net.addresses()
    for ns in net.namespaces:
        book[ns.name] = [(addresses[ns.name].ip, net.subnet)]
    for extra in net.extra_namespaces:
        book.setdefault(extra.name, [])
    for link in net.links:
        for place, _, address in link.ends():
            if address is not None:
                book.setdefault(place, []).append((address.ip, address.network))
    if net.subnet6 is not None and net.gateway6 is not None:
        book[None].append((net.gateway6, net.subnet6))
        for name, address6 in net.addresses6().items():
            book[name].append((address6.ip, net.subnet6))
        for link in net.links:
            for place, _, end6 in link.ends6():
                if end6 is not None:
                    book.setdefault(place, []).append((end6.ip, end6.network))
    return book


def _near(net: Network, viewer: str | None) -> tuple[IPv4Network | IPv6Network, ...]:
    """The subnets ``viewer`` (None: the host) is connected to, of both families."""
    return (*_subnets_at(net, viewer), *_subnets6_at(net, viewer))


def _names(net: Network, node: str | None) -> list[str]:
    # a namespace called "host" or "gateway" keeps its name: the host then goes without it
    if node is not None:
        return [node]
    return [] if HOST in net.namespace_names() else [HOST]


def _node(net: Network, name: str) -> str | None:
    spaces = net.namespace_names()
    if name in spaces:
        return name
    if name in (HOST, GATEWAY):
        return None
    raise KeyError(name)


def addresses_seen_from(net: Network, viewer: str | None, name: str) -> list[IPv4Address]:
    """The IPv4 addresses of node ``name`` (a namespace, ``host`` or ``gateway``) as ``viewer`` (None: the
    host) should try them: those on a subnet ``viewer`` is connected to first. KeyError for an unknown name."""
    node = _node(net, name)
    if node is None and name == GATEWAY:
        return [net.gateway]
    near = _near(net, viewer)
    entries = [(a, s) for a, s in nodes(net).get(node, []) if isinstance(a, IPv4Address)]
    return [a for a, s in entries if s in near] + [a for a, s in entries if s not in near]


def hosts_text(net: Network, viewer: str) -> str:
    """The ``hosts`` file of namespace ``viewer``: localhost, then every node's addresses, nearest first."""
    return _hosts_text(net, nodes(net), _near(net, viewer))


def _hosts_text(net: Network, book: dict[str | None, list[_Entry]], near: Sequence[IPv4Network | IPv6Network]) -> str:
    names: dict[IPv4Address | IPv6Address, list[str]] = {}
    gateway = [] if GATEWAY in net.namespace_names() else [GATEWAY]
    for node, entries in book.items():
        ordered = [a for a, s in entries if s in near] + [a for a, s in entries if s not in near]
        for address in ordered:
            found = names.setdefault(address, [])
            is_gateway = node is None and address in (net.gateway, net.gateway6)
            found += _names(net, node) + (gateway if is_gateway else [])
    lines = [
        f"# {net.mark}",
        f"# the nodes of network {net.name}, nearest address first: written by netnskit up, removed by netnskit down",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
    ]
    lines += [f"{address}\t{' '.join(found)}" for address, found in names.items() if found]
    return "\n".join(lines) + "\n"


def resolv_text(net: Network, viewer: str) -> str | None:
    """The ``resolv.conf`` of namespace ``viewer``: its own ``dns`` or the network's; None when neither."""
    servers = next((n.dns for n in net.spaces() if n.name == viewer), None)
    if servers is None:
        servers = net.dns
    if not servers:
        return None
    lines = [f"# {net.mark}", "# written by netnskit up, removed by netnskit down"]
    return "\n".join([*lines, *(f"nameserver {s}" for s in servers)]) + "\n"


def wanted(net: Network) -> dict[str, str]:
    """Every file the network writes: path -> content (computed once per network: it is immutable)."""
    memo = net._memo  # the network's own cache of what derives from its (frozen) fields
    if "files" not in memo:
        memo["files"] = _wanted(net)
    files: dict[str, str] = memo["files"]
    return files


def _wanted(net: Network) -> dict[str, str]:
    # a hosts file depends on its namespace only through the subnets it is on: namespaces on the
    # bridge alone share one text (N files of N lines: computed once, not N times)
    book = nodes(net)
    texts: dict[tuple[IPv4Network | IPv6Network, ...], str] = {}
    out: dict[str, str] = {}
    for name in net.namespace_names():
        if net.hosts:
            near = _near(net, name)
            if near not in texts:
                texts[near] = _hosts_text(net, book, near)
            out[path_of(name, "hosts")] = texts[near]
        resolv = resolv_text(net, name)
        if resolv is not None:
            out[path_of(name, "resolv.conf")] = resolv
    return out


# --- commands ---------------------------------------------------------------------------------


def _command(
    argv: Sequence[str],
    *,
    input: str | None = None,
    creates: Iterable[Resource] = (),
    removes: Iterable[Resource] = (),
) -> Command:
    return Command(argv, input=input, tool=FILE, channel=FILE, creates=creates, removes=removes)


def _dirs(paths: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(p.rsplit("/", 1)[0] for p in paths))


def write_commands(files: dict[str, str]) -> list[Command]:
    """``mkdir -p`` the folders, one ``tee FILES`` per distinct content (on stdin), ``chmod 0644``."""
    by_content: dict[str, list[str]] = {}
    for path, content in files.items():
        by_content.setdefault(content, []).append(path)
    commands = [_command(["mkdir", "-p", "--", *_dirs(files)])]
    for content, paths in by_content.items():
        made = [Resource(FILE, p) for p in paths]
        commands.append(_command(["tee", "--", *paths], input=content, creates=made))
    commands.append(_command(["chmod", "0644", "--", *files]))
    return commands


def remove_commands(paths: Sequence[str], folders: Sequence[str] = ()) -> list[Command]:
    """``rm -f FILES``, then each folder they were in (and ``folders``) once it is empty (another's file keeps it)."""
    gone = [Resource(FILE, p) for p in paths]
    removing = [_command(["rm", "-f", "--", *paths], removes=gone)] if paths else []
    dirs = list(dict.fromkeys([*_dirs(paths), *folders]))
    return removing + [_command(["rmdir", "--ignore-fail-on-non-empty", "--", *dirs])] if dirs else removing


def step(net: Network, files: dict[str, str]) -> Step:
    """The step that writes ``files`` (its undo removes them)."""
    spaces = sorted({p.split("/")[3] for p in files})
    return Step(
        f"write {', '.join(sorted({p.rsplit('/', 1)[1] for p in files}))} under {ETC_NETNS} for {', '.join(spaces)}",
        write_commands(files),
        remove_commands(list(files)),
    )


# --- reading what is there ------------------------------------------------------------------------


@attrs.frozen
class Found:
    """The network's files as they are: each one's first line and (when asked for) its SHA-256."""

    first_lines: dict[str, str]
    digests: dict[str, str] = attrs.field(factory=dict)

    def first_line(self, path: str) -> str:
        """The first line of ``path`` ("" if absent)."""
        return self.first_lines.get(path, "")

    def __contains__(self, path: object) -> bool:
        return path in self.first_lines or path in self.digests


def digest(content: str) -> str:
    """The SHA-256 of ``content`` as ``sha256sum`` prints it."""
    return hashlib.sha256(content.encode()).hexdigest()


EMPTY = digest("")  # an empty file's


def read_argv(paths: Sequence[str]) -> list[str]:
    """``grep -s -H -a -m 1 '' FILES``: the first line of each file that exists, as PATH:LINE."""
    return ["grep", "-s", "-H", "-a", "-m", "1", "", "--", *paths]


def digest_argv(paths: Sequence[str]) -> list[str]:
    """``sha256sum -- FILES``: what each file that exists holds, as a digest (its size stays out of the read)."""
    return ["sha256sum", "--", *paths]


def _lines(runner: Runner, argv: list[str], paths: Sequence[str], split: str) -> dict[str, str]:
    result = runner.run(argv)
    if result.returncode >= 126:  # 1: some absent (or, for grep, empty), 2: some unreadable
        result.check(f"reading {ETC_NETNS}")
    known = set(paths)
    found: dict[str, str] = {}
    for line in result.stdout.splitlines():
        if split == ":":  # PATH:LINE (no path of ours holds a ':')
            path, _, text = line.partition(":")
        else:  # DIGEST  PATH
            text, _, path = line.partition("  ")
        if path in known:
            found[path] = text
    return found


def read(runner: Runner, paths: Sequence[str], *, digests: bool = False) -> Found:
    """The first lines of those of ``paths`` that exist (an empty file counts as absent), and their
    digests if asked for."""
    if not paths:
        return Found({})
    first = _lines(runner, read_argv(paths), paths, ":")
    return Found(first, _lines(runner, digest_argv(paths), paths, "  ") if digests else {})


def candidates(names: Iterable[str]) -> list[str]:
    """Every file netnskit may have written for the namespaces ``names``."""
    return [path_of(name, kind) for name in names for kind in KINDS]


def refuse_foreign(net: Network, found: Found) -> None:
    """Refuse to overwrite a file the network writes that exists without the network's mark."""
    for path in wanted(net):
        empty = found.digests.get(path) == EMPTY  # opened by a tee that never got its content: ours
        if path in found and not empty and found.first_line(path) != f"# {net.mark}":
            raise NotOursError(
                f"{path} exists and does not start with '# {net.mark}': refusing to overwrite it "
                "(remove it, or set hosts = false / leave out dns for that namespace)"
            )


def done(net: Network, found: Found) -> bool:
    """True when every file holds exactly what the network writes."""
    return all(found.digests.get(path) == digest(content) for path, content in wanted(net).items())


def ours(found: Found, mark: str | None) -> list[str]:
    """The files carrying ``mark`` on their first line (any netnskit mark for None)."""
    prefix = f"# {MARK_PREFIX}"
    return sorted(
        p
        for p, line in found.first_lines.items()
        if (line == f"# {mark}" if mark is not None else line.startswith(prefix))
    )


def pristine(runner: Runner, names: Iterable[str]) -> tuple[list[str], list[str]]:
    """(files, folders): the empty ``hosts``/``resolv.conf`` and the empty folders ``/etc/netns/NAME``
    of ``names``. An ``up`` killed between making a folder and writing its file, or while ``tee``
    had opened a file but not had its content yet, leaves them; so does a ``down`` killed between
    ``rm`` and ``rmdir``. Like a namespace still as ``ip netns add`` left it, they count as ours."""
    result = runner.run(["find", ETC_NETNS, "-mindepth", "1", "-maxdepth", "2", "-empty"])
    spaces = list(names)
    folders = {f"{ETC_NETNS}/{name}" for name in spaces}
    files = set(candidates(spaces))
    found = result.stdout.splitlines()
    return sorted(p for p in found if p in files), sorted(p for p in found if p in folders)


def list_argv() -> list[str]:
    """``find /etc/netns -mindepth 2 -maxdepth 2 -type f``: the files of every namespace (for cleanup)."""
    return ["find", ETC_NETNS, "-mindepth", "2", "-maxdepth", "2", "-type", "f"]


def listed(runner: Runner) -> list[str]:
    """The files under ``/etc/netns/*/`` (none when the folder is absent)."""
    result = runner.run(list_argv())
    return sorted(line for line in result.stdout.splitlines() if line.startswith(ETC_NETNS + "/"))

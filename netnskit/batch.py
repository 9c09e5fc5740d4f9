"""BatchExecutor: a plan applied with few processes (``ip -batch``, per-namespace batches, iptables-restore).

Each command of a plan is routed by its argv:

* ``ip [-4|-6] OBJECT ...`` on the host, ``ip netns add|del NAME`` included, goes into one
  ``ip -batch -``;
* ``ip -n NS ...`` goes into ``ip -n NS -batch -``, one process per namespace (batch lines cannot
  take ``-n``); these run in parallel threads, as they touch different namespaces;
* ``iptables|ip6tables [-w] [-t TABLE] -A|-I|-D CHAIN ...`` goes into one
  ``iptables-restore -w --noflush`` per tool, a ``*TABLE ... COMMIT`` block per table;
* a command no batch can carry runs alone, in its place in the order of the lane it belongs to:
  ``sysctl`` in the host's, ``ip netns exec NS sysctl`` in NS's, an ``ip`` line with a word a batch
  cannot carry in its namespace's, the plan's own ``iptables-restore`` (with its stdin) in that
  tool's;
* anything else (``ip netns exec NS PROGRAM``, unknown programs) is a barrier: everything before it
  finishes, it runs, then the rest.

Order is kept by placing commands in *waves*. A command never moves before one it may depend on:
a namespace's commands wait for every host command that adds to that namespace (``netns add``,
``link add ... netns NS``) or deletes from it (``netns del``, ``link del`` of a veth with an end
there); a host command that deletes or moves something of a namespace waits for that namespace's
earlier commands (one that only adds to it need not: those earlier commands cannot need it).
Firewall commands depend on no ``ip`` command. A plan built namespace by namespace is one wave.
Within a wave the firewall batches start at once; the host batch runs cut in a few chunks, its
leading ``netns add`` lines split over one process per CPU (making a namespace runs on several
CPUs at once; adding links holds the rtnl lock and does not); each namespace's batch starts, on up
to ``workers`` threads, as soon as the host lines it waits for are done. With ``pipeline=False``
the namespaces' batches wait for the whole host batch instead: with a network's defaults (see
:mod:`netnskit.network`) that is 5 to 10% slower; with IPv6 link-local addresses and multicast
snooping on, the namespaces' requests contend with the host batch for the rtnl lock and it was
faster (0.59 against 0.82 s for 200 namespaces).

``ip -batch`` stops at its first failing line and says ``Command failed -:LINE``;
``iptables-restore`` says ``line N`` and applies nothing of the failing table (iptables-nft
finds some errors only at ``COMMIT`` and names that line: the table's rules are then applied in
halves to find the one that fails). The failing line is mapped back to its command and step, so
:class:`~netnskit.errors.StepError` names the step, the command as the plan wrote it and what the
tool said. Every step that had a command done is then undone (batched too, ``ip -force -batch``,
a restore retried without each rule already gone), so the host is as it was.

Teardown uses cheaper operations where the plan allows: the links a plan put in a link group
(``ip link add ... group G``) go in one ``ip link del group G`` after ``ip -j link show group G``
showed only links of this plan (otherwise one ``link del`` line each); commands inside a
namespace that the same teardown deletes are skipped, since ``ip netns del`` takes everything in
it along. A restore of deletions lists them oldest first: iptables-nft finds each rule by
scanning its chain from the start, so this is linear where newest first is quadratic.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import attrs

from netnskit.errors import CommandError, NotFoundError, StepError, error_for
from netnskit.plan import Command, Step
from netnskit.runner import Result, Runner

__all__ = ["BatchExecutor", "Batch", "batches"]

# ip's global options a batch can carry in its own prefix (one batch per distinct prefix).
_IP_FLAGS = frozenset({"-4", "-6", "-d", "-details"})
# A word an ``ip -batch`` line carries as it is (makeargs splits on blanks, reads quotes and '#').
_IP_WORD = re.compile(r"[^\s\"'\\#]+\Z")
_IPT_WORD = re.compile(r"[^\s\"'\\]+\Z")
_IPT_SPACED = re.compile(r"[^\"'\\\n\r]+\Z")
_IPT_RESTORE = {
    "iptables": "iptables-restore",
    "ip6tables": "ip6tables-restore",
    "iptables-legacy": "iptables-legacy-restore",
    "ip6tables-legacy": "ip6tables-legacy-restore",
    "iptables-nft": "iptables-nft-restore",
    "ip6tables-nft": "ip6tables-nft-restore",
}
_IPT_ACTIONS = frozenset({"-A", "--append", "-I", "--insert", "-D", "--delete"})
_IPT_GLOBAL = frozenset({"-t", "--table", "-w", "--wait", "-W", "--wait-interval"})
_IP_MAX_WORDS = 98  # ip's batch reader splits a line into at most 100 words
_FAILED_LINE = re.compile(r"^Command failed \S*:(\d+)\s*$", re.MULTILINE)
_RESTORE_LINE = re.compile(r"line:? (\d+)")


def _default_workers() -> int:
    # each batch is mostly process start-up and rtnl-locked kernel work: 2 per core kept both busy;
    # 16 threads on 2 cores were slower (5.6 s against 3.5 s for 1000 namespaces)
    return max(2, min(16, (os.cpu_count() or 1) * 2))


@attrs.frozen
class _Op:
    """One command of the plan, routed: where it goes and the line it becomes."""

    index: int  # position in the flat list: plan order
    step: int
    command: Command
    kind: str  # "ip", "ipt" or "serial"
    lane: str | None = None  # ip: the namespace (None: the host)
    prefix: tuple[str, ...] = ()  # ip: "ip [-n NS] [flags]"; ipt: (restore tool,)
    table: str = ""
    line: str = ""
    touches: frozenset[str] = frozenset()  # host ip: the namespaces it affects
    creates: bool = False  # host ip: only adds to those namespaces (netns add, link add/set ... netns)
    fallback: tuple[_Op, ...] = ()  # a group delete: the per-link deletes it replaces
    solo: bool = False  # runs as its own process, in its lane's order (a sysctl, a restore of the plan's own)


def _ip_parts(argv: Sequence[str]) -> tuple[str | None, tuple[str, ...], list[str]] | None:
    """``ip`` argv -> (netns, flags, words) if a batch line can carry it."""
    netns: str | None = None
    flags: list[str] = []
    i = 1
    while i < len(argv) and argv[i].startswith("-"):
        if argv[i] in ("-n", "-netns") and netns is None and i + 1 < len(argv):
            netns = argv[i + 1]
            i += 2
        elif argv[i] in _IP_FLAGS:
            flags.append(argv[i])
            i += 1
        else:
            return None
    words = list(argv[i:])
    if not words or len(words) > _IP_MAX_WORDS or not all(_IP_WORD.match(w) for w in words):
        return None
    if words[0] == "netns" and (netns or flags or len(words) != 3 or words[1] not in ("add", "del", "delete")):
        return None
    return netns, tuple(flags), words


def _ipt_quote(word: str) -> str | None:
    if _IPT_WORD.match(word):
        return word
    if _IPT_SPACED.match(word):
        return f'"{word}"'
    return None


def _ipt_parts(argv: Sequence[str]) -> tuple[str, str, str] | None:
    """``iptables`` argv -> (restore tool, table, restore line) for -A/-I/-D commands."""
    tool = _IPT_RESTORE.get(argv[0])
    if tool is None:
        return None
    table = "filter"
    i = 1
    while i < len(argv) and argv[i] in _IPT_GLOBAL:
        if argv[i] in ("-t", "--table"):
            if i + 1 >= len(argv):
                return None
            table = argv[i + 1]
            i += 2
        elif argv[i] in ("-W", "--wait-interval"):
            i += 2
        else:
            i += 2 if i + 1 < len(argv) and argv[i + 1].isdigit() else 1
    rest = list(argv[i:])
    if len(rest) < 2 or rest[0] not in _IPT_ACTIONS or any(w in _IPT_GLOBAL for w in rest[2:]):
        return None
    if not _IPT_WORD.match(table):
        return None
    quoted = [_ipt_quote(w) for w in rest]
    if any(q is None for q in quoted):
        return None
    return tool, table, " ".join(q for q in quoted if q is not None)


def _named_namespaces(words: Sequence[str]) -> set[str]:
    """Namespaces a host ``ip`` line names: ``netns add|del NAME`` or ``... netns NAME ...``."""
    if words and words[0] == "netns":
        return {words[2]}
    return {words[j + 1] for j in range(len(words) - 1) if words[j] == "netns"}


def _link_add_names(words: Sequence[str]) -> tuple[str, str | None] | None:
    """``link add [name] NAME ... [peer [name] PEER]`` -> (NAME, PEER)."""
    if len(words) < 3 or words[0] != "link" or words[1] != "add":
        return None
    name = words[3] if words[2] in ("name", "dev") and len(words) > 3 else words[2]
    peer = None
    if "peer" in words:
        j = words.index("peer") + 1
        if j < len(words) and words[j] == "name":
            j += 1
        peer = words[j] if j < len(words) else None
    return name, peer


def _host_lines(steps: Iterable[Step]) -> Iterable[list[str]]:
    for step in steps:
        for command in step.do:
            if command.input is None and command.argv and command.argv[0] == "ip":
                parts = _ip_parts(command.argv)
                if parts is not None and parts[0] is None:
                    yield parts[2]


def _link_namespaces(steps: Sequence[Step]) -> dict[str, frozenset[str]]:
    """Host link name -> the namespaces it reaches (a veth with an end in them)."""
    found: dict[str, set[str]] = {}
    for words in _host_lines(steps):
        names = _link_add_names(words)
        if names is None and words[:2] == ["link", "set"] and "netns" in words and len(words) > 2:
            names = (words[3] if words[2] == "dev" and len(words) > 3 else words[2], None)
        if names is None:
            continue
        reached = _named_namespaces(words)
        if not reached:
            continue
        # only names that live on the host: an end made inside a namespace ("peer name eth0
        # netns X") is not a host link, and its name may be every namespace's
        peer_at = words.index("peer") if "peer" in words else len(words)
        on_host = [names[0]] if words[:2] == ["link", "set"] or "netns" not in words[:peer_at] else []
        if names[1] is not None and "netns" not in words[peer_at:]:
            on_host.append(names[1])
        for name in on_host:
            found.setdefault(name, set()).update(reached)
    return {name: frozenset(spaces) for name, spaces in found.items()}


def _link_groups(steps: Sequence[Step]) -> dict[str, str]:
    """Host link name -> the link group ``ip link add ... group G`` put it in (not the default)."""
    found: dict[str, str] = {}
    for words in _host_lines(steps):
        names = _link_add_names(words)
        if names is None or "group" not in words:
            continue
        j = words.index("group") + 1
        # 'group' after 'peer' would be the peer's; only the first end's group is ours here
        if j < len(words) and ("peer" not in words or j < words.index("peer")) and words[j] not in ("0", "default"):
            found[names[0]] = words[j]
    return found


NETNS_RUN_DIR = "/run/netns"


def _route(index: int, step: int, command: Command, link_ns: dict[str, frozenset[str]]) -> _Op:
    argv = command.argv
    if command.input is None and argv and argv[0] == "ip":
        parts = _ip_parts(argv)
        if parts is not None:
            netns, flags, words = parts
            # Inside a namespace: nsenter --net, not ip -n. ``ip -n`` also unshares a mount namespace
            # (to remount /sys), which copies every mount, one per named namespace: O(N) per process.
            enter = () if netns is None else ("nsenter", f"--net={NETNS_RUN_DIR}/{netns}", "--")
            prefix = (*enter, "ip", *flags)
            touches: frozenset[str] = frozenset()
            creates = False
            if netns is None:
                moves = words[:2] == ["link", "set"] and "netns" in words
                creates = words[:2] in (["netns", "add"], ["link", "add"]) or moves
                destroys = words[:2] in (["netns", "del"], ["netns", "delete"], ["link", "del"], ["link", "delete"])
                if creates or destroys:
                    # only these reach into a namespace; setting the host end of a veth does not
                    spaces = _named_namespaces(words)
                    for word in words:
                        spaces.update(link_ns.get(word, ()))
                    touches = frozenset(spaces)
            line = " ".join(words)
            return _Op(index, step, command, "ip", netns, prefix, line=line, touches=touches, creates=creates)
    if command.input is None and argv:
        ipt = _ipt_parts(argv)
        if ipt is not None:
            tool, table, line = ipt
            return _Op(index, step, command, "ipt", prefix=(tool,), table=table, line=line)
    place = _solo_place(argv)
    if place is not None:
        kind, lane = place
        if kind == "ip":
            return _Op(index, step, command, "ip", lane, ("solo",), solo=True)
        return _Op(index, step, command, "ipt", prefix=(lane or "",), solo=True)
    return _Op(index, step, command, "serial")


def _solo_place(argv: Sequence[str]) -> tuple[str, str | None] | None:
    """Where a command no batch can carry still runs in order: ("ip", lane) or ("ipt", restore tool)."""
    if not argv:
        return None
    program = argv[0]
    if program == "sysctl":
        return "ip", None  # the host's own network settings: in the host's order
    if list(argv[:3]) == ["ip", "netns", "exec"] and len(argv) > 4 and argv[4] == "sysctl":
        return "ip", argv[3]
    if program == "ip":
        netns: str | None = None
        i = 1
        while i < len(argv) and argv[i].startswith("-"):
            if argv[i] in ("-n", "-netns") and netns is None and i + 1 < len(argv):
                netns, i = argv[i + 1], i + 2
            elif argv[i] in _IP_FLAGS:
                i += 1
            else:
                return None
        if i >= len(argv) or argv[i] == "netns":
            return None
        return "ip", netns
    for tool, restore in _IPT_RESTORE.items():
        if program in (tool, restore, f"{tool}-save"):
            return "ipt", restore
    return None


@attrs.define
class _Wave:
    """Batches that run together: the host's first, then namespaces' and firewalls' in parallel."""

    host: list[_Op] = attrs.field(factory=list)
    spaces: dict[str, list[_Op]] = attrs.field(factory=dict)
    firewalls: dict[str, list[_Op]] = attrs.field(factory=dict)


def _schedule(ops: Sequence[_Op]) -> list[_Op | list[_Wave]]:
    """Split ops into serial barriers and runs of waves, keeping every dependency's order."""
    segments: list[_Op | list[_Wave]] = []
    waves: list[_Wave] = []
    lane_wave: dict[str | None, int] = {}  # last wave used by each ip lane (None: host)
    touched_at: dict[str, int] = {}  # the last wave a host op touched each namespace
    tool_wave: dict[str, int] = {}
    for op in ops:
        if op.kind == "serial":
            if waves:
                segments.append(waves)
            waves, lane_wave, touched_at, tool_wave = [], {}, {}, {}
            segments.append(op)
            continue
        if op.kind == "ip" and op.lane is None:
            wave = lane_wave.get(None, 0)
            for space in op.touches:
                # what only adds to a namespace may run before that namespace's earlier commands,
                # which cannot need it; anything else waits for them
                if space in lane_wave and not op.creates:
                    wave = max(wave, lane_wave[space] + 1)
            for space in op.touches:
                touched_at[space] = max(touched_at.get(space, 0), wave)
            lane_wave[None] = wave
        elif op.kind == "ip":
            assert op.lane is not None
            wave = max(lane_wave.get(op.lane, 0), touched_at.get(op.lane, 0))
            lane_wave[op.lane] = wave
        else:
            wave = tool_wave.get(op.prefix[0], 0)
            tool_wave[op.prefix[0]] = wave
        while len(waves) <= wave:
            waves.append(_Wave())
        target = waves[wave]
        if op.kind == "ip" and op.lane is None:
            target.host.append(op)
        elif op.kind == "ip":
            assert op.lane is not None
            target.spaces.setdefault(op.lane, []).append(op)
        else:
            target.firewalls.setdefault(op.prefix[0], []).append(op)
    if waves:
        segments.append(waves)
    return segments


def _runs(ops: Sequence[_Op]) -> list[list[_Op]]:
    """Consecutive ops with the same ip prefix: one batch process each."""
    out: list[list[_Op]] = []
    for op in ops:
        if out and not op.solo and not out[-1][0].solo and out[-1][0].prefix == op.prefix:
            out[-1].append(op)
        else:
            out.append([op])
    return out


_SPLIT_MIN = 25  # netns add lines per process, at least, when they are split across processes


def _netns_adds(run: Sequence[_Op]) -> int:
    """How many of ``run``'s first lines are ``netns add NAME``: namespaces made independently of each other."""
    count = 0
    for op in run:
        words = op.line.split()
        if op.solo or words[:2] != ["netns", "add"] or len(words) != 3:
            break
        count += 1
    return count


@attrs.frozen
class Batch:
    """One process of a batched plan: its command and the plan commands it carries, in order."""

    command: Command
    carries: tuple[Command, ...]


def _ip_batch(run: Sequence[_Op], force: bool) -> Command:
    if run[0].solo or (len(run) == 1 and not force):
        return run[0].command
    flags = ("-force",) if force else ()
    body = "".join(op.line + "\n" for op in run)
    return Command((*run[0].prefix, *flags, "-batch", "-"), input=body)


def _restore_input(ops: Sequence[_Op]) -> tuple[str, dict[int, _Op], list[tuple[int, list[_Op]]]]:
    """The iptables-restore input; line number -> op; each table's COMMIT line and ops."""
    tables: dict[str, list[_Op]] = {}
    for op in ops:
        tables.setdefault(op.table, []).append(op)
    lines: list[str] = []
    by_line: dict[int, _Op] = {}
    commits: list[tuple[int, list[_Op]]] = []
    for table, members in tables.items():
        if all(op.line.startswith(("-D ", "--delete ")) for op in members):
            # undo lists deletions newest first; nft finds each rule by scanning its chain from
            # the start, so deleting oldest first is linear, not quadratic (the result is the same)
            members = members[::-1]
        lines.append(f"*{table}")
        for op in members:
            lines.append(op.line)
            by_line[len(lines)] = op
        lines.append("COMMIT")
        commits.append((len(lines), members))
    return "".join(line + "\n" for line in lines), by_line, commits


def _restore_command(ops: Sequence[_Op], text: str) -> Command:
    return Command((ops[0].prefix[0], "-w", "--noflush"), input=text)


def batches(steps: Sequence[Step], *, undo: bool = False) -> list[list[Batch]]:
    """The processes BatchExecutor runs for ``steps`` (their undo with ``undo``), stage by stage.

    Within a stage the batches may run in parallel; stages run in order. Pure: nothing runs,
    and the teardown shortcuts that need to read the host (link groups) are not applied.
    """
    link_ns = _link_namespaces(steps)
    ops = _undo_ops(steps, link_ns) if undo else _do_ops(steps, link_ns)
    stages: list[list[Batch]] = []
    for segment in _schedule(ops):
        if isinstance(segment, _Op):
            stages.append([Batch(segment.command, (segment.command,))])
            continue
        for wave in segment:
            for run in _runs(wave.host):
                stages.append([Batch(_ip_batch(run, undo), tuple(op.command for op in run))])
            parallel = [
                Batch(_ip_batch(run, undo), tuple(op.command for op in run))
                for lane in wave.spaces.values()
                for run in _runs(lane)
            ]
            for members in wave.firewalls.values():
                for run in _runs(members):
                    command = run[0].command if run[0].solo else _restore_command(run, _restore_input(run)[0])
                    parallel.append(Batch(command, tuple(op.command for op in run)))
            if parallel:
                stages.append(parallel)
    return stages


def _do_ops(steps: Sequence[Step], link_ns: dict[str, frozenset[str]]) -> list[_Op]:
    ops: list[_Op] = []
    for number, step in enumerate(steps):
        for command in step.do:
            ops.append(_route(len(ops), number, command, link_ns))
    return ops


def _undo_ops(steps: Sequence[Step], link_ns: dict[str, frozenset[str]]) -> list[_Op]:
    """Undo commands in reverse step order, minus those inside a namespace deleted later."""
    ops: list[_Op] = []
    for number in range(len(steps) - 1, -1, -1):
        for command in steps[number].undo:
            ops.append(_route(len(ops), number, command, link_ns))
    kept: list[_Op] = []
    deleted: set[str] = set()
    for op in reversed(ops):
        words = op.line.split()
        if op.kind == "ip" and op.lane is None and words[:2] in (["netns", "del"], ["netns", "delete"]):
            deleted.add(words[2])
        argv = op.command.argv
        inside = op.lane if op.kind == "ip" else None
        if op.kind == "serial" and len(argv) > 3 and list(argv[:3]) == ["ip", "netns", "exec"]:
            inside = argv[3]
        if inside is not None and inside in deleted:
            continue  # `ip netns del` takes it along
        kept.append(op)
    kept.reverse()
    return kept


@attrs.define
class _Outcome:
    """What running some batches did: ops done, and each failed op's error text."""

    done: set[int] = attrs.field(factory=set)
    failed: dict[int, tuple[_Op, str]] = attrs.field(factory=dict)

    def merge(self, other: _Outcome) -> None:
        self.done |= other.done
        self.failed.update(other.failed)


def _run(command: Command, runner: Runner) -> Result:
    """Run ``command``; a runner's own CommandError (a timeout) becomes a failed Result, so rollback still runs."""
    try:
        return command.run(runner)
    except CommandError as exc:
        return Result(command.argv, exc.returncode or -1, exc.stdout, str(exc))


def _split_errors(stderr: str) -> list[tuple[int, str]]:
    """``ip -batch`` stderr -> (line, message) for each ``Command failed -:LINE``."""
    found: list[tuple[int, str]] = []
    start = 0
    for match in _FAILED_LINE.finditer(stderr):
        found.append((int(match.group(1)), stderr[start : match.start()].strip()))
        start = match.end()
    return found


def _restore_message(stderr: str) -> str:
    return "\n".join(line for line in stderr.strip().splitlines() if not line.startswith("Try `"))


@attrs.define
class BatchExecutor:
    """Applies plans with few processes; same contract as SerialExecutor (see the module doc).

    ``workers`` bounds the namespace batches run at once (1: one after another, in plan order).
    ``group_teardown`` allows ``ip link del group G`` for the links a plan put in group G.
    ``pipeline`` (with ``workers`` > 1) starts each namespace's batch as soon as the host lines it
    waits for are done: the host batch is then cut in up to ``chunks`` processes of at least
    ``chunk`` lines (see the module doc for when ``False`` is faster).
    """

    workers: int = attrs.field(factory=_default_workers)
    group_teardown: bool = True
    pipeline: bool = True
    chunks: int = 4
    chunk: int = 50

    # --- the Executor protocol -------------------------------------------------------------

    def apply(self, steps: Sequence[Step], runner: Runner) -> None:
        """Run every step in batches; on failure undo what was done and raise StepError."""
        link_ns = _link_namespaces(steps)
        ops = _do_ops(steps, link_ns)
        outcome = self._execute(ops, runner, force=False)
        if not outcome.failed:
            return
        op, message = min(outcome.failed.values(), key=lambda item: item[0].index)
        step = steps[op.step]
        error = error_for(op.command.argv, 1, "", message, step.description)
        touched = sorted({ops[i].step for i in outcome.done})
        _, failed = self._undo([steps[i] for i in touched], runner)
        raise StepError(step.description, op.step, str(error), failed) from error

    def remove(self, steps: Sequence[Step], runner: Runner) -> list[str]:
        """Undo every step in reverse, batched; what is already gone is reported, not raised."""
        gone, failed = self._undo(steps, runner)
        if failed:
            raise StepError("teardown", len(steps) - 1, "; ".join(failed))
        return gone

    # --- undo --------------------------------------------------------------------------------

    def _undo(self, steps: Sequence[Step], runner: Runner) -> tuple[list[str], list[str]]:
        """Run the undo commands of ``steps`` (reverse order); returns (already gone, failures)."""
        link_ns = _link_namespaces(steps)
        ops = _undo_ops(steps, link_ns)
        gone: list[str] = []
        if self.group_teardown:
            ops = self._group_deletes(ops, _link_groups(steps), runner, gone)
        outcome = self._execute(ops, runner, force=True)
        retry = [fb for i, (op, _) in outcome.failed.items() if op.fallback for fb in op.fallback]
        failed_ops = {i: v for i, v in outcome.failed.items() if not v[0].fallback}
        if retry:
            # this iproute2 cannot delete a link group: one `link del` line per link instead
            again = self._execute([attrs.evolve(op, index=len(ops) + n) for n, op in enumerate(retry)], runner, True)
            failed_ops.update(again.failed)
        failures: list[str] = []
        for op, message in sorted(failed_ops.values(), key=lambda item: item[0].index):
            error = error_for(op.command.argv, 1, "", message, f"undoing {_description(steps, op)}")
            (gone if isinstance(error, NotFoundError) else failures).append(str(error))
        return gone, failures

    def _group_deletes(
        self, ops: list[_Op], groups: dict[str, str], runner: Runner, gone: list[str]
    ) -> list[_Op]:
        """Replace the ``link del NAME`` of a group's links by one ``link del group G``."""
        members: dict[str, list[_Op]] = {}
        for op in ops:
            words = op.line.split()
            if op.kind != "ip" or op.prefix != ("ip",) or words[:2] not in (["link", "del"], ["link", "delete"]):
                continue
            name = words[3] if len(words) == 4 and words[2] == "dev" else words[2] if len(words) == 3 else None
            if name is not None and name in groups:
                members.setdefault(groups[name], []).append(op)
        if not members:
            return ops
        replaced: dict[int, _Op | None] = {}
        for group, doomed in members.items():
            present = self._group_members(runner, group)
            mine = {op.line.split()[-1] for op in doomed}
            if present is None or not present <= mine:
                continue  # the group holds links that are not this plan's: delete ours one by one
            for op in doomed:
                replaced[op.index] = None
                name = op.line.split()[-1]
                if name not in present:
                    gone.append(f"undoing: link {name!r} (group {group}) is already gone")
            if present:
                # at the first of them: every link of the group in one request, then the rest
                first = doomed[0]
                command = Command(("ip", "link", "del", "group", group))
                replaced[first.index] = _Op(
                    first.index, first.step, command, "ip", None, ("ip",), line=" ".join(command.argv[1:]),
                    touches=frozenset().union(*(op.touches for op in doomed)), fallback=tuple(doomed),
                )
        out: list[_Op] = []
        for op in ops:
            if op.index not in replaced:
                out.append(op)
            elif (new := replaced[op.index]) is not None:
                out.append(new)
        return out

    @staticmethod
    def _group_members(runner: Runner, group: str) -> set[str] | None:
        """The names of the host links in ``group``, or None if they cannot be read."""
        result = runner.run(["ip", "-j", "link", "show", "group", group])
        if not result.ok:
            return None
        try:
            data = json.loads(result.stdout or "[]")
        except ValueError:
            return None
        # iproute2 6.1 prints an empty object first when filtering by group
        return {str(d["ifname"]) for d in data if isinstance(d, dict) and "ifname" in d}

    # --- running batches ---------------------------------------------------------------------

    def _host_head(
        self, run: Sequence[_Op], runner: Runner, force: bool, pool: ThreadPoolExecutor | None
    ) -> tuple[_Outcome, int]:
        """Run the leading ``netns add`` lines of a host run, split over a few processes at once.

        Making a namespace is the kernel's per-namespace setup, which runs on several CPUs at once
        (adding links does not: it holds the rtnl lock). Returns the outcome and how many ops of
        ``run`` it covered (0: none, the head is too short or there are no threads).
        """
        head = _netns_adds(run)
        parts = min(self.workers, os.cpu_count() or 1, head // _SPLIT_MIN)
        if pool is None or parts < 2:
            return _Outcome(), 0
        pieces = [list(run[k:head:parts]) for k in range(parts)]
        outcome = _Outcome()
        for result in pool.map(lambda piece: _run_ip(piece, runner, force), pieces):
            outcome.merge(result)
        return outcome, head

    def _execute(self, ops: Sequence[_Op], runner: Runner, force: bool) -> _Outcome:
        """Run ``ops`` segment by segment, wave by wave; strict mode stops at the first failure."""
        total = _Outcome()
        pool = ThreadPoolExecutor(max_workers=self.workers) if self.workers > 1 else None
        try:
            for segment in _schedule(ops):
                if isinstance(segment, _Op):
                    result = _run(segment.command, runner)
                    if result.ok:
                        total.done.add(segment.index)
                    else:
                        total.failed[segment.index] = (segment, result.stderr.strip() or result.stdout.strip())
                    if total.failed and not force:
                        return total
                    continue
                for wave in segment:
                    total.merge(self._run_wave(wave, runner, force, pool))
                    if total.failed and not force:
                        return total
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        return total

    def _run_wave(
        self, wave: _Wave, runner: Runner, force: bool, pool: ThreadPoolExecutor | None
    ) -> _Outcome:
        if pool is not None and self.pipeline:
            return self._run_wave_pipelined(wave, runner, force, pool)
        outcome = _Outcome()
        firewalls = [partial(_run_firewall, members, runner, force) for members in wave.firewalls.values()]
        # the firewall batches depend on no ip command: with threads they run alongside the host batch
        early = [pool.submit(job) for job in firewalls] if pool is not None and wave.host else []
        try:
            for run in _runs(wave.host):
                first, covered = self._host_head(run, runner, force, pool)
                outcome.merge(first)
                if covered < len(run) and not (outcome.failed and not force):
                    outcome.merge(_run_ip(run[covered:], runner, force))
                if outcome.failed and not force:
                    return outcome
            jobs: list[Callable[[], _Outcome]] = [
                partial(_run_lane, lane, runner, force) for lane in wave.spaces.values()
            ]
            jobs += [] if early else firewalls
            parallel = pool is not None and len(jobs) > 1
            for result in pool.map(lambda job: job(), jobs) if pool and parallel else (job() for job in jobs):
                outcome.merge(result)
        finally:
            for future in early:
                outcome.merge(future.result())
        return outcome

    def _run_wave_pipelined(self, wave: _Wave, runner: Runner, force: bool, pool: ThreadPoolExecutor) -> _Outcome:
        """The firewall batches from the start, each namespace's batch once the host lines it waits for are done.

        The host batch is cut in a few chunks so that namespaces whose veth is made early start
        while the kernel is still making the others.
        """
        outcome = _Outcome()
        futures = [pool.submit(_run_firewall, members, runner, force) for members in wave.firewalls.values()]
        gate: dict[str, int] = {}  # namespace -> the last host op of this wave it waits for
        for position, op in enumerate(wave.host):
            for space in op.touches:
                if space in wave.spaces:
                    gate[space] = position
        waiting = sorted(wave.spaces, key=lambda lane: gate.get(lane, -1))

        def release(done_through: int) -> None:
            while waiting and gate.get(waiting[0], -1) <= done_through:
                futures.append(pool.submit(_run_lane, wave.spaces[waiting.pop(0)], runner, force))

        release(-1)
        position = -1
        for run in _runs(wave.host):
            first, covered = self._host_head(run, runner, force, pool)
            outcome.merge(first)
            position += covered
            if outcome.failed and not force:
                break
            release(position)
            run = run[covered:]
            size = max(self.chunk, -(-len(run) // self.chunks)) if len(run) > 1 else 1
            for start in range(0, len(run), size):
                piece = run[start : start + size]
                outcome.merge(_run_ip(piece, runner, force))
                if outcome.failed and not force:
                    break
                position += len(piece)
                release(position)
            if outcome.failed and not force:
                break
        else:
            release(len(wave.host))
        for future in futures:
            outcome.merge(future.result())
        return outcome


def _description(steps: Sequence[Step], op: _Op) -> str:
    return steps[op.step].description if 0 <= op.step < len(steps) else "a step"


def _run_lane(lane: Sequence[_Op], runner: Runner, force: bool) -> _Outcome:
    outcome = _Outcome()
    for run in _runs(lane):
        outcome.merge(_run_ip(run, runner, force))
        if outcome.failed and not force:
            break
    return outcome


def _run_ip(run: Sequence[_Op], runner: Runner, force: bool) -> _Outcome:
    """One ip process for ``run``; map each failing line back to its op."""
    outcome = _Outcome()
    command = _ip_batch(run, force)
    result = _run(command, runner)
    if result.ok:
        outcome.done.update(op.index for op in run)
        return outcome
    errors = _split_errors(result.stderr) if command is not run[0].command else []
    if not errors:
        # the process failed as a whole (one command, or e.g. the namespace cannot be opened)
        message = result.stderr.strip() or result.stdout.strip() or f"exit status {result.returncode}"
        if len(run) == 1 or not force:
            outcome.failed[run[0].index] = (run[0], message)
        else:
            for op in run:
                outcome.failed[op.index] = (op, message)
        return outcome
    bad = {line: message for line, message in errors if 1 <= line <= len(run)}
    last = max(bad) if bad else 1
    for number, op in enumerate(run, 1):
        if number in bad:
            outcome.failed[op.index] = (op, bad[number] or result.stderr.strip())
        elif force or number < last:
            outcome.done.add(op.index)
    return outcome


def _run_firewall(ops: Sequence[_Op], runner: Runner, force: bool) -> _Outcome:
    """A firewall channel in order: merged restores, and the plan's own commands alone."""
    outcome = _Outcome()
    for run in _runs(ops):
        outcome.merge(_run_ip(run, runner, force) if run[0].solo else _run_restore(run, runner, force))
        if outcome.failed and not force:
            break
    return outcome


def _run_restore(ops: Sequence[_Op], runner: Runner, force: bool) -> _Outcome:
    """One iptables-restore for ``ops``; with ``force`` retry without each failing rule."""
    outcome = _Outcome()
    pending = list(ops)
    while pending:
        text, by_line, commits = _restore_input(pending)
        result = _run(_restore_command(pending, text), runner)
        if result.ok:
            outcome.done.update(op.index for op in pending)
            return outcome
        message = _restore_message(result.stderr) or f"exit status {result.returncode}"
        match = _RESTORE_LINE.search(result.stderr)
        line = int(match.group(1)) if match else 0
        # tables committed before the failing line were applied (iptables-restore commits per table)
        for end, members in commits:
            if end < line:
                outcome.done.update(op.index for op in members)
        culprit = by_line.get(line)
        table = next((members for end, members in commits if line <= end), pending)
        if culprit is None:
            # iptables-nft finds some errors only at COMMIT (it names that line): nothing of the
            # table was applied; find the rule by halves
            applied, culprit, message = _bisect(table, runner, message)
            outcome.done.update(op.index for op in applied)
        outcome.failed[culprit.index] = (culprit, message)
        if not force:
            return outcome
        pending = [op for op in pending if op.index not in outcome.done and op.index != culprit.index]
    return outcome


def _bisect(ops: Sequence[_Op], runner: Runner, message: str) -> tuple[list[_Op], _Op, str]:
    """Apply ``ops`` in halves to find the rule that fails; returns (applied, culprit, its message)."""
    applied: list[_Op] = []
    span = list(ops)
    while len(span) > 1:
        half = span[: len(span) // 2]
        result = _run(_restore_command(half, _restore_input(half)[0]), runner)
        if result.ok:
            applied += half
            span = span[len(half) :]
        else:
            span = half
            message = _restore_message(result.stderr) or message
    alone = _run(_restore_command(span, _restore_input(span)[0]), runner)
    if alone.ok:
        applied.append(span[0])  # it failed only together with others: blame it, and undo it too
    else:
        message = _restore_message(alone.stderr) or message
    return applied, span[0], message

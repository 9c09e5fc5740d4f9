"""BatchExecutor: a plan applied with few processes (``ip -batch``, per-namespace batches, iptables-restore).

Commands are routed by their fields, never by their argv (the rules, the waves and the teardown
shortcuts are drawn in docs/ARCHITECTURE.md):

* a command with a ``batch`` line joins the batch process of its place and channel: one
  ``PROGRAM [-force] -batch -`` per run of ``lines`` commands, one ``PROGRAM --noflush`` per
  run of ``tables`` commands (a ``*SECTION ... COMMIT`` block per section; the program carries its
  options, e.g. ``iptables-restore -w 10``);
* a command with a channel and no batch line runs alone, in its place in its channel's order;
* a command with no channel is a barrier: everything before it finishes, it runs, then the rest.

A command never moves before one it may depend on: a namespace's commands wait for the host
commands that create or remove something in it (``Command.reaches``); a host command that takes
something from a namespace waits for that namespace's earlier commands. Failing lines are mapped
back to their command and step; everything done is undone (batched too) before StepError.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from functools import partial

import attrs

from netnskit import _ipjson
from netnskit.commands import NET, link_group_delete
from netnskit.errors import CommandError, Interrupted, NotFoundError, StepError, error_for
from netnskit.executors.serial import Progress
from netnskit.interrupt import Interrupt
from netnskit.plan import Command, Step
from netnskit.runner import Result, Runner

__all__ = ["Batch", "BatchExecutor", "batches"]

LINES = "lines"  # Batchable.style: PROGRAM [-force] -batch -, one line per command (ip, tc, bridge)
TABLES = "tables"  # Batchable.style: PROGRAM --noflush, *SECTION blocks (iptables-restore; PROGRAM has its -w)
_FAILED_LINE = re.compile(r"^Command failed \S*:(\d+)\s*$", re.MULTILINE)
_RESTORE_LINE = re.compile(r"line:? (\d+)")

Lane = tuple[str | None, str]  # (namespace or None for the host, channel)


def _default_workers() -> int:
    # each batch is mostly process start-up and rtnl-locked kernel work: 2 per core kept both busy;
    # 16 threads on 2 cores were slower (5.6 s against 3.5 s for 1000 namespaces)
    return max(2, min(16, (os.cpu_count() or 1) * 2))


@attrs.frozen
class _Op:
    """One command of the plan, routed: its lane, and the batch it may join."""

    index: int  # position in the flat list: plan order
    step: int
    command: Command
    fallback: tuple[_Op, ...] = ()  # a group delete: the per-link deletes it replaces

    @property
    def barrier(self) -> bool:
        return not self.command.channel

    @property
    def lane(self) -> Lane:
        return (self.command.netns, self.command.channel)

    @property
    def solo(self) -> bool:
        """Runs as its own process, in its lane's order."""
        return self.command.batch is None

    @property
    def key(self) -> tuple[str, ...] | None:
        """What consecutive ops share to join one batch process (None: runs alone)."""
        batch = self.command.batch
        return None if batch is None else (batch.style, *batch.program)


@attrs.define
class _Wave:
    """Batches that run together: the host's first, then the namespaces' lanes; side channels alongside."""

    host: list[_Op] = attrs.field(factory=list)  # the host's network configuration
    lanes: dict[Lane, list[_Op]] = attrs.field(factory=dict)  # each namespace's channels
    side: dict[Lane, list[_Op]] = attrs.field(factory=dict)  # the host's other channels (firewalls)


def _schedule(ops: Sequence[_Op]) -> list[_Op | list[_Wave]]:
    """Split ops into barriers and runs of waves, keeping every dependency's order."""
    segments: list[_Op | list[_Wave]] = []
    waves: list[_Wave] = []
    lane_wave: dict[Lane, int] = {}  # the last wave used by each lane
    space_wave: dict[str, int] = {}  # the last wave any lane of each namespace used
    touched_at: dict[str, int] = {}  # the last wave a host op reached into each namespace
    for op in ops:
        if op.barrier:
            if waves:
                segments.append(waves)
            waves, lane_wave, space_wave, touched_at = [], {}, {}, {}
            segments.append(op)
            continue
        netns = op.command.netns
        wave = lane_wave.get(op.lane, 0)
        if netns is None:
            # what only adds to a namespace may run before that namespace's earlier commands,
            # which cannot need it; what takes from it waits for them
            for space in op.command.takes_from:
                if space in space_wave:
                    wave = max(wave, space_wave[space] + 1)
            for space in op.command.reaches:
                touched_at[space] = max(touched_at.get(space, 0), wave)
        else:
            wave = max(wave, touched_at.get(netns, 0))
            space_wave[netns] = max(space_wave.get(netns, 0), wave)
        lane_wave[op.lane] = wave
        while len(waves) <= wave:
            waves.append(_Wave())
        target = waves[wave]
        if op.lane == (None, NET):
            target.host.append(op)
        elif netns is None:
            target.side.setdefault(op.lane, []).append(op)
        else:
            target.lanes.setdefault(op.lane, []).append(op)
    if waves:
        segments.append(waves)
    return segments


def _runs(ops: Sequence[_Op]) -> list[list[_Op]]:
    """Consecutive ops of one batch program: one process each."""
    out: list[list[_Op]] = []
    for op in ops:
        if out and op.key is not None and out[-1][0].key == op.key:
            out[-1].append(op)
        else:
            out.append([op])
    return out


_SPLIT_MIN = 25  # netns add lines per process, at least, when they are split across processes


def _makes_namespace(op: _Op) -> bool:
    command = op.command
    return command.batch is not None and len(command.creates) == 1 and command.creates[0].kind == "netns"


def _netns_adds(run: Sequence[_Op]) -> int:
    """How many of ``run``'s first ops only make a namespace: independent of each other."""
    count = 0
    for op in run:
        if not _makes_namespace(op) or op.command.removes:
            break
        count += 1
    return count


@attrs.frozen
class Batch:
    """One process of a batched plan: its command and the plan commands it carries, in order."""

    command: Command
    carries: tuple[Command, ...]


def _lines_batch(run: Sequence[_Op], force: bool) -> Command:
    first = run[0].command
    if first.batch is None or (len(run) == 1 and not force):
        return first
    flags = ("-force",) if force else ()
    body = "".join(op.command.batch.line + "\n" for op in run if op.command.batch is not None)
    return Command((*first.batch.program, *flags, "-batch", "-"), input=body, netns=first.netns, tool=first.tool)


def _line(op: _Op) -> str:
    assert op.command.batch is not None
    return op.command.batch.line


def _restore_input(ops: Sequence[_Op]) -> tuple[str, dict[int, _Op], list[tuple[int, list[_Op]]]]:
    """The iptables-restore input; line number -> op; each table's COMMIT line and ops."""
    tables: dict[str, list[_Op]] = {}
    for op in ops:
        assert op.command.batch is not None
        tables.setdefault(op.command.batch.section, []).append(op)
    lines: list[str] = []
    by_line: dict[int, _Op] = {}
    commits: list[tuple[int, list[_Op]]] = []
    for table, members in tables.items():
        if all(bool(op.command.removes) and not op.command.creates for op in members):
            # undo lists deletions newest first; nft finds each rule by scanning its chain from
            # the start, so deleting oldest first is linear, not quadratic (the result is the same)
            members = members[::-1]
        lines.append(f"*{table}")
        for op in members:
            lines.append(_line(op))
            by_line[len(lines)] = op
        lines.append("COMMIT")
        commits.append((len(lines), members))
    return "".join(line + "\n" for line in lines), by_line, commits


def _restore_command(ops: Sequence[_Op], text: str) -> Command:
    first = ops[0].command
    assert first.batch is not None
    return Command((*first.batch.program, "--noflush"), input=text, netns=first.netns, tool=first.tool)


def _batch_command(run: Sequence[_Op], force: bool) -> Command:
    """The process that carries ``run``."""
    batch = run[0].command.batch
    if batch is not None and batch.style == TABLES:
        return _restore_command(run, _restore_input(run)[0])
    return _lines_batch(run, force)


def batches(steps: Sequence[Step], *, undo: bool = False) -> list[list[Batch]]:
    """The processes BatchExecutor runs for ``steps`` (their undo with ``undo``), stage by stage.

    Within a stage the batches may run in parallel; stages run in order. Pure: nothing runs,
    and the teardown shortcuts that need to read the host (link groups) are not applied.
    """
    ops = _undo_ops(steps) if undo else _do_ops(steps)
    stages: list[list[Batch]] = []
    for segment in _schedule(ops):
        if isinstance(segment, _Op):
            stages.append([Batch(segment.command, (segment.command,))])
            continue
        for wave in segment:
            for run in _runs(wave.host):
                stages.append([Batch(_batch_command(run, undo), tuple(op.command for op in run))])
            parallel = [
                Batch(_batch_command(run, undo), tuple(op.command for op in run))
                for lane in (*wave.lanes.values(), *wave.side.values())
                for run in _runs(lane)
            ]
            if parallel:
                stages.append(parallel)
    return stages


def _do_ops(steps: Sequence[Step]) -> list[_Op]:
    ops: list[_Op] = []
    for number, step in enumerate(steps):
        for command in step.do:
            ops.append(_Op(len(ops), number, command))
    return ops


def _undo_ops(steps: Sequence[Step]) -> list[_Op]:
    """Undo commands in reverse step order, minus those inside a namespace deleted later."""
    ops: list[_Op] = []
    for number in range(len(steps) - 1, -1, -1):
        for command in steps[number].undo:
            ops.append(_Op(len(ops), number, command))
    kept: list[_Op] = []
    deleted: set[str] = set()
    for op in reversed(ops):
        deleted.update(r.name for r in op.command.removes if r.kind == "netns")
        if op.command.netns is not None and op.command.netns in deleted:
            continue  # `ip netns del` takes it along
        kept.append(op)
    kept.reverse()
    return kept


def _grouped_link(op: _Op) -> tuple[str, int] | None:
    """(name, group) when ``op`` deletes exactly one host link of a group, as a host batch line."""
    command = op.command
    if op.lane != (None, NET) or command.batch is None or command.creates:
        return None
    links = [r for r in command.removes if r.kind == "link" and r.netns is None]
    if len(links) != 1 or links[0].group is None:
        return None
    return links[0].name, links[0].group


def _group_members(runner: Runner, group: int) -> set[str] | None:
    """The names of the host links in ``group``, or None if they cannot be read."""
    found = _ipjson.try_read(runner, None, "link", "show", "group", str(group))
    return None if found is None else _ipjson.names(found)


@attrs.define
class _Outcome:
    """What running some batches did: ops done, each failed op's error text, and whether an
    interrupt stopped it before the end."""

    done: set[int] = attrs.field(factory=set)
    failed: dict[int, tuple[_Op, str]] = attrs.field(factory=dict)
    stopped: bool = False

    def merge(self, other: _Outcome) -> None:
        self.done |= other.done
        self.failed.update(other.failed)
        self.stopped = self.stopped or other.stopped

    def halted(self, force: bool, interrupt: Interrupt | None) -> bool:
        """Start nothing more: a strict run failed, or (strict too) an interrupt was requested."""
        if force:
            return False
        if interrupt is not None and interrupt.signum is not None:
            self.stopped = True
        return bool(self.failed) or self.stopped


@attrs.define
class _Tally:
    """Counts the steps whose commands have all run, for the progress hook (called from one thread)."""

    progress: Progress | None
    steps: Sequence[Step]
    left: dict[int, int] = attrs.field(factory=dict)  # step number -> its ops not yet run
    seen: set[int] = attrs.field(factory=set)
    done: int = 0

    @classmethod
    def of(cls, ops: Sequence[_Op], steps: Sequence[Step], progress: Progress | None) -> _Tally:
        tally = cls(progress, steps)
        for op in ops:
            tally.left[op.step] = tally.left.get(op.step, 0) + 1
        return tally

    def count(self, outcome: _Outcome, ops: dict[int, _Op]) -> None:
        """Report the steps that ``outcome`` finished (with ``force``, a failed op counts as run)."""
        if self.progress is None:
            return
        for index in sorted((outcome.done | set(outcome.failed)) - self.seen):
            self.seen.add(index)
            step = ops[index].step if index in ops else None
            if step is None or step not in self.left:
                continue
            self.left[step] -= 1
            if not self.left[step]:
                self.done += 1
                self.progress(self.done, len(self.left), _description(self.steps, ops[index]))


def _run(command: Command, runner: Runner) -> Result:
    """Run ``command``; a runner's own CommandError (a timeout) becomes a failed Result, so rollback still runs."""
    try:
        return command.run(runner)
    except CommandError as exc:
        return Result(command.host_argv(), exc.returncode or -1, exc.stdout, str(exc))


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
    ``chunk`` lines (see the module doc for when ``False`` is faster). ``progress`` is called, from
    the calling thread, as the steps' commands finish (see Progress).
    """

    workers: int = attrs.field(factory=_default_workers)
    group_teardown: bool = True
    pipeline: bool = True
    chunks: int = 4
    chunk: int = 50
    progress: Progress | None = attrs.field(default=None, kw_only=True)

    # --- the Executor protocol -------------------------------------------------------------

    def apply(self, steps: Sequence[Step], runner: Runner, *, interrupt: Interrupt | None = None) -> None:
        """Run every step in batches; on failure undo what was done and raise StepError.

        ``interrupt`` is read between batches: once requested, nothing more starts, the batches
        running finish, what was done is undone and Interrupted is raised.
        """
        ops = _do_ops(steps)
        outcome = self._execute(
            ops, runner, force=False, tally=_Tally.of(ops, steps, self.progress), interrupt=interrupt
        )
        touched = [steps[i] for i in sorted({ops[i].step for i in outcome.done})]
        if outcome.failed:
            op, message = min(outcome.failed.values(), key=lambda item: item[0].index)
            step = steps[op.step]
            error = error_for(op.command.host_argv(), 1, "", message, step.description)
            _, failed = self._undo(touched, runner)
            raise StepError(step.description, op.step, error, failed) from error
        if outcome.stopped and interrupt is not None and interrupt.signum is not None:
            _, failed = self._undo(touched, runner)
            raise Interrupted(interrupt.signum, "", sum(1 for step in touched if step.undo), failed)

    def remove(self, steps: Sequence[Step], runner: Runner) -> list[str]:
        """Undo every step in reverse, batched; what is already gone is reported, not raised."""
        gone, failed = self._undo(steps, runner)
        if failed:
            raise StepError("teardown", len(steps) - 1, "; ".join(failed))
        return gone

    # --- undo --------------------------------------------------------------------------------

    def _undo(self, steps: Sequence[Step], runner: Runner) -> tuple[list[str], list[str]]:
        """Run the undo commands of ``steps`` (reverse order); returns (already gone, failures)."""
        ops = _undo_ops(steps)
        gone: list[str] = []
        if self.group_teardown:
            ops = self._group_deletes(ops, runner, gone)
        outcome = self._execute(ops, runner, force=True, tally=_Tally.of(ops, steps, self.progress))
        retry = [fb for i, (op, _) in outcome.failed.items() if op.fallback for fb in op.fallback]
        failed_ops = {i: v for i, v in outcome.failed.items() if not v[0].fallback}
        if retry:
            # this iproute2 cannot delete a link group: one `link del` line per link instead
            again = self._execute([attrs.evolve(op, index=len(ops) + n) for n, op in enumerate(retry)], runner, True)
            failed_ops.update(again.failed)
        failures: list[str] = []
        for op, message in sorted(failed_ops.values(), key=lambda item: item[0].index):
            error = error_for(op.command.host_argv(), 1, "", message, f"undoing {_description(steps, op)}")
            (gone if isinstance(error, NotFoundError) else failures).append(str(error))
        return gone, failures

    def _group_deletes(self, ops: list[_Op], runner: Runner, gone: list[str]) -> list[_Op]:
        """Replace the deletes of a group's links by one ``link del group G`` when the group holds only them."""
        members: dict[int, list[tuple[_Op, str]]] = {}
        for op in ops:
            found = _grouped_link(op)
            if found is not None:
                members.setdefault(found[1], []).append((op, found[0]))
        if not members:
            return ops
        replaced: dict[int, _Op | None] = {}
        for group, doomed in members.items():
            present = _group_members(runner, group)
            mine = {name for _, name in doomed}
            if present is None or not present <= mine:
                continue  # the group holds links that are not this plan's: delete ours one by one
            for op, name in doomed:
                replaced[op.index] = None
                if name not in present:
                    gone.append(f"undoing: link {name!r} (group {group}) is already gone")
            if present:
                # at the first of them: every link of the group in one request, then the rest
                first = doomed[0][0]
                removes = tuple(r for op, _ in doomed for r in op.command.removes)
                command = attrs.evolve(link_group_delete(group), removes=removes)
                replaced[first.index] = _Op(first.index, first.step, command, fallback=tuple(op for op, _ in doomed))
        out: list[_Op] = []
        for op in ops:
            if op.index not in replaced:
                out.append(op)
            elif (new := replaced[op.index]) is not None:
                out.append(new)
        return out

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
        for result in pool.map(lambda piece: _run_lines(piece, runner, force), pieces):
            outcome.merge(result)
        return outcome, head

    def _execute(
        self,
        ops: Sequence[_Op],
        runner: Runner,
        force: bool,
        tally: _Tally | None = None,
        interrupt: Interrupt | None = None,
    ) -> _Outcome:
        """Run ``ops`` segment by segment, wave by wave; strict mode stops at the first failure
        (or, asked by ``interrupt``, before the next batch)."""
        total = _Outcome()
        by_index = {op.index: op for op in ops}

        def count(outcome: _Outcome) -> None:
            if tally is not None:
                tally.count(outcome, by_index)

        pool = ThreadPoolExecutor(max_workers=self.workers) if self.workers > 1 else None
        try:
            for segment in _schedule(ops):
                if total.halted(force, interrupt):
                    return total
                if isinstance(segment, _Op):
                    result = _run(segment.command, runner)
                    if result.ok:
                        total.done.add(segment.index)
                    else:
                        total.failed[segment.index] = (segment, result.stderr.strip() or result.stdout.strip())
                    count(total)
                    continue
                for wave in segment:
                    if total.halted(force, interrupt):
                        return total
                    total.merge(self._run_wave(wave, runner, force, pool, interrupt, count))
                    count(total)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        return total

    def _run_wave(
        self,
        wave: _Wave,
        runner: Runner,
        force: bool,
        pool: ThreadPoolExecutor | None,
        interrupt: Interrupt | None,
        count: Callable[[_Outcome], None] = lambda _: None,
    ) -> _Outcome:
        if pool is not None and self.pipeline:
            return self._run_wave_pipelined(wave, runner, force, pool, interrupt, count)
        outcome = _Outcome()
        firewalls = [partial(_run_lane, members, runner, force) for members in wave.side.values()]
        # the other channels (firewalls) depend on no ip command: with threads they run alongside the host batch
        early = [pool.submit(job) for job in firewalls] if pool is not None and wave.host else []
        try:
            for run in _runs(wave.host):
                if outcome.halted(force, interrupt):
                    return outcome
                first, covered = self._host_head(run, runner, force, pool)
                outcome.merge(first)
                if covered < len(run) and not (outcome.failed and not force):
                    outcome.merge(_run_lines(run[covered:], runner, force))
            if outcome.halted(force, interrupt):
                return outcome
            jobs: list[Callable[[], _Outcome]] = [
                partial(_run_lane, lane, runner, force) for lane in wave.lanes.values()
            ]
            jobs += [] if early else firewalls
            parallel = pool is not None and len(jobs) > 1
            for result in pool.map(lambda job: job(), jobs) if pool and parallel else (job() for job in jobs):
                outcome.merge(result)
                count(outcome)
        finally:
            for future in early:
                outcome.merge(future.result())
        return outcome

    def _run_wave_pipelined(
        self,
        wave: _Wave,
        runner: Runner,
        force: bool,
        pool: ThreadPoolExecutor,
        interrupt: Interrupt | None,
        count: Callable[[_Outcome], None] = lambda _: None,
    ) -> _Outcome:
        """The firewall batches from the start, each namespace's batch once the host lines it waits for are done.

        The host batch is cut in a few chunks so that namespaces whose veth is made early start
        while the kernel is still making the others.
        """
        outcome = _Outcome()
        futures = [pool.submit(_run_lane, members, runner, force) for members in wave.side.values()]
        reached: dict[str, int] = {}  # namespace -> the last host op of this wave that reaches it
        for position, op in enumerate(wave.host):
            for space in op.command.reaches:
                reached[space] = position
        gate = {lane: reached.get(lane[0], -1) if lane[0] is not None else -1 for lane in wave.lanes}
        waiting = sorted(wave.lanes, key=lambda lane: gate[lane])

        def release(done_through: int) -> None:
            while waiting and gate[waiting[0]] <= done_through and not outcome.halted(force, interrupt):
                futures.append(pool.submit(_run_lane, wave.lanes[waiting.pop(0)], runner, force))

        release(-1)
        position = -1
        for run in _runs(wave.host):
            if outcome.halted(force, interrupt):
                break
            first, covered = self._host_head(run, runner, force, pool)
            outcome.merge(first)
            position += covered
            if outcome.halted(force, interrupt):
                break
            release(position)
            run = run[covered:]
            size = max(self.chunk, -(-len(run) // self.chunks)) if len(run) > 1 else 1
            for start in range(0, len(run), size):
                piece = run[start : start + size]
                outcome.merge(_run_lines(piece, runner, force))
                count(outcome)
                if outcome.halted(force, interrupt):
                    break
                position += len(piece)
                release(position)
            if outcome.halted(force, interrupt):
                break
        else:
            release(len(wave.host))
        # (every lane is submitted by now: futures no longer grows)
        for future in as_completed(futures):
            outcome.merge(future.result())
            count(outcome)
        return outcome


def _description(steps: Sequence[Step], op: _Op) -> str:
    return steps[op.step].description if 0 <= op.step < len(steps) else "a step"


def _run_lane(lane: Sequence[_Op], runner: Runner, force: bool) -> _Outcome:
    """A lane in order: its batches (line batches or restores) and its commands that run alone."""
    outcome = _Outcome()
    for run in _runs(lane):
        batch = run[0].command.batch
        tables = batch is not None and batch.style == TABLES
        outcome.merge(_run_restore(run, runner, force) if tables else _run_lines(run, runner, force))
        if outcome.failed and not force:
            break
    return outcome


def _run_lines(run: Sequence[_Op], runner: Runner, force: bool) -> _Outcome:
    """One process for ``run`` (a line batch, or one command alone); map each failing line back to its op."""
    outcome = _Outcome()
    command = _lines_batch(run, force)
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

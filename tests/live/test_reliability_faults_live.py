"""Every fault in ``up`` is rolled back, live, in a sandbox, for the serial and the batch executor.

The runner fails the k-th command of ``up`` for every k, reads included (``ip -j``,
``iptables-save``, ``sysctl -n``): ``false`` runs inside the sandbox in its place. After each, the
host (namespaces, links with flags/group/alias, addresses, routes, every sysctl the network can
touch, iptables-save and ip6tables-save, nft and legacy) must be identical to before.

Two harder kinds of fault follow: a write that *took effect* and still reported failure, and a
fault whose rollback fails too. ``up`` cannot always undo those by itself (the tool said the step
did not happen); what must hold is that the error says so and that ``down`` from the same
description then restores the host.
"""

from __future__ import annotations

import os
import re

import pytest
from _reliability import SEED_NETWORK, Counting, Faulty, Snapshot, record, settled_diff, spread

from netnskit.errors import CommandError, NetnskitError, StepError
from netnskit.executors import BatchExecutor, Executor, SerialExecutor
from netnskit.network import Network
from netnskit.runner import Runner
from netnskit.sandbox import Sandbox

EXECUTORS = [pytest.param(SerialExecutor, id="serial"), pytest.param(BatchExecutor, id="batch")]
# Every command of up is always a failure point; the two harder kinds of fault take every second
# (every fifth) write, or every one with NETNSKIT_RELIABILITY_FULL=1, to keep the suite short.
FULL = os.environ.get("NETNSKIT_RELIABILITY_FULL") == "1"
AFTER_STRIDE = 1 if FULL else 2
ROLLBACK_STRIDE = 3 if FULL else 5


def is_read(argv: list[str]) -> bool:
    """A command that only reads: ``ip ... -j``, ``*-save``, ``sysctl -n``, ``iptables -C``, ``readlink``,
    ``grep``, ``find`` and ``sha256sum`` (the files under /etc/netns, the marks of processes), ``modinfo``."""
    program = argv[0].rsplit("/", 1)[-1]
    if program.endswith("-save") or program in ("readlink", "grep", "find", "sha256sum", "modinfo"):
        return True
    if program == "unshare":
        return "--net" in argv  # the netem probe: tc in a namespace that goes with it
    if program == "nft":
        return "list" in argv  # the nft tables, read for conflicts and for what other networks need
    if program == "tc":
        return "-j" in argv
    if program == "sysctl":
        return "-w" not in argv
    if program == "ip":
        return "-j" in argv
    return program.endswith("tables") and any(w in argv for w in ("-C", "-S", "-L"))


def seed(runner: Runner) -> Network:
    return Network.from_toml(SEED_NETWORK, runner=runner)


def full_run(box: Sandbox, executor: type[Executor]) -> list[list[str]]:
    """Bring the seed up and down twice, counting the commands of the second ``up``.

    The first round leaves empty iptables tables behind (the nft backend keeps them; they filter
    nothing and HostState ignores them), after which the firewall probes with ``iptables -C``:
    from the second round on, every ``up`` runs the same commands.
    """
    before = Snapshot.capture(box.runner)
    commands: list[list[str]] = []
    for _ in range(2):
        counting = Counting(box.runner)
        seed(counting).up(executor())
        commands = list(counting.argvs)
        seed(box.runner).down(executor())
        assert settled_diff(box.runner, before) == []
    return commands


def fail_instead(box: Sandbox, executor: type[Executor], before: Snapshot, k: int) -> str:
    """Fail the k-th command of up; returns "rolled back", or "tolerated: ARGV" (a read up may do without)."""
    faulty = Faulty(box.runner, k)
    try:
        seed(faulty).up(executor())
    except NetnskitError as exc:
        (failed,) = faulty.failed
        assert "injected failure" in str(exc), (k, failed, str(exc))
        if isinstance(exc, StepError):
            assert exc.rollback_errors == (), (k, failed, exc.rollback_errors)
        else:
            # a read failed before any change was made, or while reading the firewall's state
            assert isinstance(exc, CommandError) and is_read(failed), (k, failed, exc)
        diff = settled_diff(box.runner, before)
        assert diff == [], (k, failed, diff)
        return "rolled back"
    # only a read may fail without failing up (``iptables -C`` exits 1 for "absent"): then the
    # network must be complete, and down must restore the host. (Or this run had fewer than k
    # commands: how many reads up makes depends a little on the kernel's pace.)
    failed = faulty.failed[0] if faulty.failed else None
    assert failed is None or is_read(failed), (k, failed, "a write failed and up still succeeded")
    assert seed(box.runner).missing_steps() == [], (k, failed)
    seed(box.runner).down(executor())
    diff = settled_diff(box.runner, before)
    assert diff == [], (k, failed, diff)
    return f"tolerated: {' '.join(failed)}" if failed else "short"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_failure_at_every_command_of_up_reads_included_is_rolled_back(
    sandbox: Sandbox, executor: type[Executor]
) -> None:
    before = Snapshot.capture(sandbox.runner)
    commands = full_run(sandbox, executor)
    assert len(commands) >= 20
    outcomes = spread(
        sandbox,
        range(1, len(commands) + 1),
        lambda box, k: fail_instead(box, executor, before, k),
        lambda box: full_run(box, executor),
    )
    assert outcomes.count("short") <= 3, outcomes
    # Reads up may do without, each named: the lock's read of its place (a failure keys the lock
    # "unknown"), the neighbour table's limits (up then warns against the kernel's defaults), the
    # two reads of /etc/netns (first lines, digests: a failure reads as "no file there yet", and up
    # writes the files again), the pid files of the network's processes (none: up starts them), and
    # the `iptables -C` probes of the jumps from the built-in chains (exit 1 means "absent").
    tolerated = sorted(o.removeprefix("tolerated: ") for o in outcomes if o.startswith("tolerated"))
    allowed = re.compile(
        r"readlink /proc/self/ns/net|ip -s -j ntable show name arp_cache|grep -s -H -a -m 1 .*|sha256sum -- .*"
        r"|grep -r -s -H  -- /run/netnskit/processes/\S+/seed"
        r"|iptables -w 10 -t (raw|nat|filter) -C (PREROUTING|OUTPUT|POSTROUTING|FORWARD) .* -j NETNSKIT-\S+"
    )
    assert [t for t in tolerated if not allowed.fullmatch(t)] == [], tolerated
    assert len(tolerated) <= 10, tolerated
    covered = len(outcomes) - outcomes.count("short")
    record("injection_points", covered, executor=executor.__name__, kind="fails instead")
    record("tolerated_read_failures", len(tolerated), executor=executor.__name__)


# Once the one write whose effect neither up nor down could take back when it acted and still
# failed: the firewall remembered ip_forward's previous value in a rule that up's rollback removed
# with its step. The value is now written down beside the locks before it changes, and down puts it
# back from there: these points are always tried, and must be restored like every other.
FORWARDING_ON = ["sysctl", "-w", "net.ipv4.ip_forward=1"]


def fail_after(box: Sandbox, executor: type[Executor], before: Snapshot, writes: list[list[str]], k: int) -> str:
    """Make the k-th write act, then fail; returns who restored the host: "up", "down" or "nobody"."""
    faulty = Faulty(box.runner, k, mode="after", counts=lambda argv: not is_read(argv))
    with pytest.raises(StepError) as info:
        seed(faulty).up(executor())
    assert "injected failure after it ran" in str(info.value)
    assert faulty.failed[0] in writes, "a write of the counted run"
    if Snapshot.capture(box.runner).diff(before) == []:
        return "up"
    # the failing step's own effect stays (the tool said it did not happen): down removes it
    teardown = seed(box.runner).down()
    assert teardown.left == (), (k, teardown.left)
    diff = settled_diff(box.runner, before)
    if not diff:
        return "down"
    box.runner.run(["sysctl", "-w", "net.ipv4.ip_forward=0"]).check()  # for the next points
    return "nobody"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_write_that_took_effect_yet_failed_is_undone_by_up_or_by_down(
    sandbox: Sandbox, executor: type[Executor]
) -> None:
    before = Snapshot.capture(sandbox.runner)
    writes = [argv for argv in full_run(sandbox, executor) if not is_read(argv)]
    # every AFTER_STRIDE-th write, and always the write of ip_forward (once a known gap)
    known = {k for k, argv in enumerate(writes, 1) if argv == FORWARDING_ON}
    assert known, "up writes net.ipv4.ip_forward=1 on a fresh host"
    points = sorted(set(range(1, len(writes) + 1, AFTER_STRIDE)) | known)
    outcomes = spread(
        sandbox,
        points,
        lambda box, k: fail_after(box, executor, before, writes, k),
        lambda box: full_run(box, executor),
    )
    assert outcomes.count("nobody") == 0, outcomes
    record("injection_points", len(points), executor=executor.__name__, kind="fails after acting")
    record("effect_then_failure_restored_by_down", outcomes.count("down"), executor=executor.__name__)
    record("effect_then_failure_unrestored", outcomes.count("nobody"), executor=executor.__name__)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_fault_whose_rollback_fails_too_is_reported_and_down_restores(
    sandbox: Sandbox, executor: type[Executor]
) -> None:
    before = Snapshot.capture(sandbox.runner)
    commands = full_run(sandbox, executor)
    writes = [argv for argv in commands if not is_read(argv)]
    tried = 0
    for k in range(2, len(writes) + 1, ROLLBACK_STRIDE):  # each with something before it to undo
        faulty = Faulty(sandbox.runner, k, also=1, counts=lambda argv: not is_read(argv))
        with pytest.raises(NetnskitError) as info:
            seed(faulty).up(executor())
        assert "injected failure" in str(info.value)
        if executor is SerialExecutor and len(faulty.failed) == 2:
            # serially, the write after the failing one is the rollback's first
            assert isinstance(info.value, StepError)
            assert info.value.rollback_errors, (k, faulty.failed, "the failed rollback must be reported")
        seed(sandbox.runner).down()
        diff = settled_diff(sandbox.runner, before)
        assert diff == [], (k, faulty.failed, diff)
        tried += 1
    record("injection_points", tried, executor=executor.__name__, kind="rollback fails too")

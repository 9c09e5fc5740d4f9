"""Crash, then recover: a process running ``up`` or ``down`` is SIGKILLed after k commands, for every k.

The process is a real Python started *inside* the sandbox (``box.runner`` runs it there, so it
sees the sandbox's ``/run/netns`` and network) with a plain LiveRunner wrapped to kill itself
with SIGKILL before its (k+1)-th command: it leaves whatever the kernel had by then, as a power
cut of the process would. The parent then recovers from the same description (``down``, or
``up`` then ``down`` for half of the ``up`` crashes, which also shows that ``up`` resumes), and
the host must be identical to before: namespaces, links with flags/group/alias, addresses,
routes, the sysctls the network touches, and iptables/ip6tables (nft and legacy).
"""

from __future__ import annotations

import sys
import textwrap
import time

import pytest
from _reliability import SEED_NETWORK, Counting, Snapshot, record, settled_diff, spread

from netnskit.executors import BatchExecutor, Executor, SerialExecutor
from netnskit.network import Network
from netnskit.runner import Runner
from netnskit.sandbox import Sandbox

EXECUTORS = [pytest.param(SerialExecutor, id="serial"), pytest.param(BatchExecutor, id="batch")]

CHILD = textwrap.dedent(
    """
    import os, signal, sys, threading
    from netnskit.executors import BatchExecutor
    from netnskit.network import Network
    from netnskit.executors import SerialExecutor
    from netnskit.runner import LiveRunner

    path, verb, k, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    live = LiveRunner()
    lock = threading.Lock()
    count = 0

    class KillAfter:
        def run(self, argv, *, input=None, timeout=None, netns=None):
            global count
            with lock:  # the batch executor runs namespace batches in threads
                if count == k:
                    os.kill(os.getpid(), signal.SIGKILL)
                count += 1
            return live.run(argv, input=input, timeout=timeout, netns=netns)

        def start(self, argv, *, netns=None, stdin=False):
            return live.start(argv, netns=netns, stdin=stdin)

    net = Network.from_toml(path, runner=KillAfter())
    getattr(net, verb)(BatchExecutor() if kind == "batch" else SerialExecutor())
    print("finished after", count, "commands")
    """
)


def seed(runner: Runner) -> Network:
    return Network.from_toml(SEED_NETWORK, runner=runner)


def child(box: Sandbox, verb: str, k: int, executor: type[Executor]) -> int:
    """Run ``verb`` in a process inside the sandbox that SIGKILLs itself after k commands."""
    kind = "batch" if executor is BatchExecutor else "serial"
    result = box.runner.run([sys.executable, "-c", CHILD, str(SEED_NETWORK), verb, str(k), kind], timeout=120)
    assert result.returncode in (0, -9), (verb, k, result.returncode, result.stderr)
    # A command the dead process had started (the batch executor runs batches side by side) runs
    # on to its end, as it would after a real crash: recovery starts once it has finished.
    deadline = time.monotonic() + 30
    while box.pids_inside() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not box.pids_inside(), "a command of the killed process is still running after 30 s"
    return result.returncode


def count_commands(box: Sandbox, executor: type[Executor]) -> tuple[int, int]:
    """(commands of up, commands of down) for the seed; twice, so the counts are the settled ones."""
    before = Snapshot.capture(box.runner)
    counts = (0, 0)
    for _ in range(2):
        up, down = Counting(box.runner), Counting(box.runner)
        seed(up).up(executor())
        seed(down).down(executor())
        counts = (len(up.argvs), len(down.argvs))
        assert settled_diff(box.runner, before) == []
    return counts


def crash_in_up(box: Sandbox, executor: type[Executor], before: Snapshot, k: int) -> str:
    killed = child(box, "up", k, executor) == -9
    if not killed:
        # this run needed fewer than k+1 commands (how many reads down and up make depends a little
        # on the kernel's pace, e.g. when it assigns namespace ids): it finished, nothing to recover
        assert seed(box.runner).missing_steps() == [], k
    elif k % 2:
        # resume: up completes what the dead process started, then down removes it all
        seed(box.runner).up(executor())
        assert seed(box.runner).missing_steps() == [], k
    teardown = seed(box.runner).down(executor())
    assert teardown.left == (), (k, teardown.left)
    diff = settled_diff(box.runner, before)
    assert diff == [], (k, diff)
    if not killed:
        return "finished"
    return "resumed" if k % 2 else "down"


def crash_in_down(box: Sandbox, executor: type[Executor], before: Snapshot, k: int) -> str:
    seed(box.runner).up(executor())
    killed = child(box, "down", k, executor) == -9  # else it finished in fewer commands this time
    teardown = seed(box.runner).down(executor())
    assert teardown.left == (), (k, teardown.left)
    diff = settled_diff(box.runner, before)
    assert diff == [], (k, diff)
    return "down" if killed else "finished"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_sigkill_after_every_command_of_up_then_recovery_restores_the_host(
    sandbox: Sandbox, executor: type[Executor]
) -> None:
    before = Snapshot.capture(sandbox.runner)
    total, _ = count_commands(sandbox, executor)
    # the child really finishes when not killed
    assert child(sandbox, "up", 10 * total, executor) == 0
    seed(sandbox.runner).down(executor())
    outcomes = spread(
        sandbox,
        range(1, total),
        lambda box, k: crash_in_up(box, executor, before, k),
        lambda box: count_commands(box, executor),
    )
    killed = len(outcomes) - outcomes.count("finished")
    assert killed >= len(outcomes) - 3, outcomes
    record("crash_points", killed, verb="up", executor=executor.__name__)
    record("crash_recovered_by_resuming_up", outcomes.count("resumed"), executor=executor.__name__)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_sigkill_after_every_command_of_down_then_down_again_restores_the_host(
    sandbox: Sandbox, executor: type[Executor]
) -> None:
    before = Snapshot.capture(sandbox.runner)
    _, total = count_commands(sandbox, executor)
    seed(sandbox.runner).up(executor())
    assert child(sandbox, "down", 10 * total, executor) == 0
    assert settled_diff(sandbox.runner, before) == []
    outcomes = spread(
        sandbox,
        range(1, total),
        lambda box, k: crash_in_down(box, executor, before, k),
        lambda box: count_commands(box, executor),
    )
    killed = len(outcomes) - outcomes.count("finished")
    assert killed >= len(outcomes) - 3, outcomes
    record("crash_points", killed, verb="down", executor=executor.__name__)

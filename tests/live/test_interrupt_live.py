"""Ctrl-C, SIGTERM, a dangling /run/netns entry, and ip_forward's record, live (issue 13, findings 4 and 5).

A real ``netnskit`` command line (``netnskit.cli.main``) runs in a process of its own session and
sends SIGINT (or SIGTERM) to its whole process group just before its k-th command, for every k, as
a Ctrl-C at a terminal would; the commands reach the sandbox through ``nsenter``. ``up`` must roll
back what it did and exit 130 (143) with one line; ``down`` must finish. The host is compared with
before after each. Then: an entry of ``/run/netns`` left unmounted (as an interrupted ``ip netns
del`` leaves it), and a crash between the write of ``ip_forward`` and its record, made to happen
on purpose by delaying one side.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest
from _reliability import SEED, Counting, Snapshot, record, settled_diff, spread

from netnskit import _ipjson
from netnskit.executors import BatchExecutor, Executor, SerialExecutor
from netnskit.network import Network, cleanup
from netnskit.sandbox import Sandbox

# The CLI, its runner wrapped to signal its own process group before its k-th command.
CHILD = textwrap.dedent(
    """
    import os, sys, threading
    from netnskit.cli import main
    from netnskit.runner import LiveRunner, nsenter_runner

    pid, k, signum, args = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    inner = nsenter_runner(LiveRunner(), pid)
    lock = threading.Lock()
    count = 0

    class SignalAt:
        def run(self, argv, *, input=None, timeout=None, netns=None):
            global count
            with lock:  # the batch executor runs commands from several threads
                count += 1
                now = count
            if now == k:
                os.killpg(0, signum)  # the whole group, as a terminal's Ctrl-C
            return inner.run(argv, input=input, timeout=timeout, netns=netns)

        def start(self, argv, *, netns=None, stdin=False):
            return inner.start(argv, netns=netns, stdin=stdin)

    sys.exit(main(args, runner=SignalAt()))
    """
)


def cli_with_signal(box: Sandbox, k: int, signum: int, *args: str) -> subprocess.CompletedProcess[str]:
    """``netnskit ARGS`` in a session of its own, signalled just before its k-th command."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(box.pid), str(k), str(signum), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        start_new_session=True,  # its own process group: the signal reaches it, not pytest
    )
    # a command it had started runs on to its end (recovery waits for it, as after a real crash)
    deadline = time.monotonic() + 30
    while box.pids_inside() and time.monotonic() < deadline:
        time.sleep(0.02)
    return done


def up_args(executor: type[Executor]) -> list[str]:
    return ["up", *(["--serial"] if executor is not BatchExecutor else []), str(SEED)]


def count_up(box: Sandbox, executor: type[Executor]) -> int:
    """How many commands the command line's ``up`` runs on a clean sandbox (then down)."""
    counting = Counting(box.runner)
    net = Network.from_toml(SEED, runner=counting)
    net.missing_steps()  # the CLI reads what is missing first
    net.up(executor())
    Network.from_toml(SEED, runner=box.runner).down(executor())
    return len(counting.argvs)


def signal_in_up(box: Sandbox, executor: type[Executor], before: Snapshot, signum: int, k: int) -> str:
    done = cli_with_signal(box, k, signum, *up_args(executor))
    name = signal.Signals(signum).name
    if done.returncode == 0:
        # k was past its last command (reads vary a little with the kernel's pace): it finished
        assert done.stdout.startswith("network seed is up"), (k, done.stdout, done.stderr)
        Network.from_toml(SEED, runner=box.runner).down(executor())
        assert settled_diff(box.runner, before) == [], k
        return "finished"
    assert done.returncode == 128 + signum, (k, done.returncode, done.stderr)
    # --serial prints each step as it is done ("[3/52] create namespace blue"), and nothing else
    assert all(line.startswith("[") for line in done.stdout.splitlines()), (k, done.stdout)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, (k, done.stderr)
    assert lines[0].startswith(f"netnskit up: interrupted by {name} while bringing network seed up; "), lines
    assert "rolling back failed" not in lines[0], lines
    diff = settled_diff(box.runner, before)
    assert diff == [], (k, lines[0], diff)
    return "rolled back"


@pytest.mark.parametrize(
    ("executor", "stride"), [pytest.param(BatchExecutor, 1, id="batch"), pytest.param(SerialExecutor, 3, id="serial")]
)
def test_sigint_to_the_process_group_during_up_rolls_back_and_exits_130(
    sandbox: Sandbox, executor: type[Executor], stride: int
) -> None:
    before = Snapshot.capture(sandbox.runner)
    total = count_up(sandbox, executor)
    points = list(range(1, total + 1, stride))
    outcomes = spread(
        sandbox,
        points,
        lambda box, k: signal_in_up(box, executor, before, signal.SIGINT, k),
        lambda box: count_up(box, executor),
    )
    assert outcomes.count("rolled back") >= len(points) - 3, outcomes
    record("interrupt_points", outcomes.count("rolled back"), verb="up", executor=executor.__name__)


def test_sigterm_during_up_rolls_back_and_exits_143(sandbox: Sandbox) -> None:
    before = Snapshot.capture(sandbox.runner)
    total = count_up(sandbox, BatchExecutor)
    outcomes = [signal_in_up(sandbox, BatchExecutor, before, signal.SIGTERM, k) for k in (2, total // 2, total - 2)]
    assert outcomes == ["rolled back"] * 3


def signal_in_down(box: Sandbox, executor: type[Executor], before: Snapshot, k: int) -> str:
    Network.from_toml(SEED, runner=box.runner).up(executor())
    args = ["down", *(["--serial"] if executor is not BatchExecutor else []), str(SEED)]
    done = cli_with_signal(box, k, signal.SIGINT, *args)
    assert done.returncode in (0, 130), (k, done.returncode, done.stderr)
    assert "network seed is down" in done.stdout, (k, done.stdout, done.stderr)
    diff = settled_diff(box.runner, before)
    assert diff == [], (k, diff)  # it finished: no second down needed
    if done.returncode == 0:
        return "finished"
    assert done.stderr.splitlines()[-1] == "netnskit down: interrupted by SIGINT; finished removing first", done.stderr
    return "finished after the signal"


@pytest.mark.parametrize(
    "executor", [pytest.param(BatchExecutor, id="batch"), pytest.param(SerialExecutor, id="serial")]
)
def test_sigint_during_down_lets_it_finish(sandbox: Sandbox, executor: type[Executor]) -> None:
    before = Snapshot.capture(sandbox.runner)
    Network.from_toml(SEED, runner=sandbox.runner).up(executor())
    counting = Counting(sandbox.runner)
    Network.from_toml(SEED, runner=counting).down(executor())
    points = list(range(1, len(counting.argvs) + 1, 1 if executor is BatchExecutor else 3))
    outcomes = spread(
        sandbox,
        points,
        lambda box, k: signal_in_down(box, executor, before, k),
        lambda box: None,
    )
    assert outcomes.count("finished after the signal") >= len(points) - 3, outcomes
    record("interrupt_points", len(points), verb="down", executor=executor.__name__)


# --- a dangling /run/netns entry ------------------------------------------------------------------


def netns_names(box: Sandbox) -> list[str]:
    return [str(d["name"]) for d in _ipjson.netns_list(box.runner)]


def test_a_dangling_netns_entry_is_recognised_and_removed(sandbox: Sandbox) -> None:
    before = Snapshot.capture(sandbox.runner)
    net = Network.from_toml(SEED, runner=sandbox.runner)
    net.up()
    # what ip netns del leaves when it is killed between its umount and its unlink
    sandbox.run(["umount", "/run/netns/red"]).check()
    assert "red" in netns_names(sandbox)
    broken = sandbox.runner.run(["ip", "-j", "link", "show"], netns="red")
    assert not broken.ok and "Invalid argument" in broken.stderr

    status = net.status()  # no longer fails on it
    assert not status.up
    assert status.missing[0].step.startswith("remove the dangling /run/netns entry red")
    net.up()  # removes the entry, makes red again
    assert net.status().up
    sandbox.run(["umount", "/run/netns/red"]).check()
    teardown = net.down()
    assert "dangling /run/netns entry red (no namespace mounted there)" in teardown.removed
    assert teardown.left == ()
    assert settled_diff(sandbox.runner, before) == []

    # one whose owner nobody can tell: cleanup NAME says so, cleanup --all removes it
    sandbox.run(["ip", "netns", "add", "n32"]).check()
    sandbox.run(["umount", "/run/netns/n32"]).check()
    named = cleanup("seed", sandbox.runner)
    assert "dangling /run/netns entry n32" in named.left[0]
    assert "n32" in netns_names(sandbox)
    everything = cleanup(None, sandbox.runner)
    assert "dangling /run/netns entry n32 (no namespace mounted there)" in everything.removed
    assert settled_diff(sandbox.runner, before) == []


# --- ip_forward and its record ----------------------------------------------------------------------

# Runs up or down batched; one command is held back 1 s, and the process SIGKILLs itself as soon
# as another has returned: if the two ran side by side, the kill comes between them.
RACE = textwrap.dedent(
    """
    import os, signal, sys, time
    from netnskit.executors import BatchExecutor
    from netnskit.network import Network
    from netnskit.runner import LiveRunner, nsenter_runner

    pid, path, verb, slow, fast = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
    inner = nsenter_runner(LiveRunner(), pid)

    def is_(needle, argv, input, netns):
        # on the host only: lan's own ip_forward=1 (it routes) is another setting
        return netns is None and needle in " ".join(argv) + " " + (input or "")

    class Race:
        def run(self, argv, *, input=None, timeout=None, netns=None):
            if is_(slow, argv, input, netns):
                time.sleep(1.0)
            result = inner.run(argv, input=input, timeout=timeout, netns=netns)
            if is_(fast, argv, input, netns):
                os.kill(os.getpid(), signal.SIGKILL)
            return result

    getattr(Network.from_toml(path, runner=Race()), verb)(BatchExecutor())
    """
)


@pytest.mark.parametrize(
    ("verb", "slow", "fast"),
    [
        # up: the memo is written by a restore, ip_forward=1 by sysctl
        pytest.param("up", "-A NETNSKIT-STATE", "sysctl -w net.ipv4.ip_forward=1", id="up"),
        # down: ip_forward=0 by sysctl, the memo deleted by a restore
        pytest.param("down", "sysctl -w net.ipv4.ip_forward=0", "-D NETNSKIT-STATE", id="down"),
    ],
)
def test_a_crash_between_ip_forward_and_its_record_still_lets_down_restore_it(
    sandbox: Sandbox, verb: str, slow: str, fast: str
) -> None:
    before = Snapshot.capture(sandbox.runner)
    assert sandbox.run(["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "0"
    if verb == "down":
        Network.from_toml(SEED, runner=sandbox.runner).up(BatchExecutor())
    done = subprocess.run(
        [sys.executable, "-c", RACE, str(sandbox.pid), str(SEED), verb, slow, fast],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -9, done.stderr  # it was killed where it was meant to be
    while sandbox.pids_inside():
        time.sleep(0.02)
    Network.from_toml(SEED, runner=sandbox.runner).down(BatchExecutor())
    assert settled_diff(sandbox.runner, before) == []  # ip_forward back to 0 among the rest

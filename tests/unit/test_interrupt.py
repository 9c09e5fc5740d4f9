"""Interrupts: SIGINT or SIGTERM during ``up`` roll back exactly what the call did (FakeRunner).

A runner asks for the stop when a chosen write runs (as a signal handler would, between two
commands); the tests assert the exact commands that follow: the undo of what was done, in
reverse, and nothing of what was not.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import re
import shlex
import signal
from collections.abc import Sequence
from pathlib import Path

import pytest

from netnskit.errors import Interrupted
from netnskit.executors import BatchExecutor, SerialExecutor, batches
from netnskit.firewall import PortForward
from netnskit.interrupt import Interrupt, on_signals
from netnskit.network import Network
from netnskit.network.locks import lock_dir
from netnskit.runner import Result
from netnskit.testing import FakeRunner, recorded

READS = re.compile(
    r"(^| )(-j|iptables-save|ip6tables-save)( |$)|^nft (-j )?list |^sysctl -n |^readlink |^stat |^unshare --net "
    r"|^modinfo |-C "
    # the files under /etc/netns, the processes' pid files and marks
    r"|(^|-- )(grep|find|ss|tail|sha256sum) "
)
SEED = Path(__file__).resolve().parents[2] / "examples" / "seed.toml"


class StopAt(FakeRunner):
    """A FakeRunner that, when its k-th write (1-based) runs, asks ``interrupt`` to stop (or signals)."""

    def __init__(self, k: int, interrupt: Interrupt | None = None, signum: int = signal.SIGINT) -> None:
        super().__init__()
        self.k = k
        self.interrupt = interrupt
        self.signum = signum
        self.count = 0

    def run(
        self, argv: Sequence[str], *, input: str | None = None, timeout: float | None = None, netns: str | None = None
    ) -> Result:
        result = super().run(argv, input=input, timeout=timeout, netns=netns)
        if not READS.search(" ".join(self.calls[-1])):
            self.count += 1
            if self.count == self.k:
                if self.interrupt is not None:
                    self.interrupt.request(self.signum)
                else:
                    os.kill(os.getpid(), self.signum)  # as a Ctrl-C would: the CLI's handler takes it
        return result


def small(runner: FakeRunner, **kw: object) -> Network:
    fields: dict[str, object] = {
        "name": "t1",
        "bridge": "br-t1",
        "subnet": "10.9.0.0/24",
        "gateway": "10.9.0.1",
        "namespaces": ["a"],
        "hosts": False,  # no /etc/netns files: the steps asserted here are the kernel's
    }
    fields.update(kw)
    return Network(**fields, runner=runner)  # type: ignore[arg-type]


def writes(fake: FakeRunner) -> list[list[str]]:
    return [a for a in fake.argvs if not READS.search(" ".join(a))]


def undo_of(net: Network, count: int) -> list[list[str]]:
    """The undo commands of the plan's first ``count`` steps, in reverse, as the runner records them."""
    return [recorded(c) for s in reversed(net.plan()[:count]) for c in s.undo]


@pytest.mark.parametrize("k", [1, 3, 6, 9])
def test_serial_up_stops_after_the_step_running_and_undoes_exactly_what_it_did(k: int) -> None:
    stop = Interrupt()
    fake = StopAt(k, stop)
    net = small(fake)
    with pytest.raises(Interrupted) as info:
        net.up(SerialExecutor(), interrupt=stop)
    plan = net.plan()  # on an empty host, one command per step: the k-th write is step k's
    done = writes(fake)
    assert done[:k] == [recorded(c) for s in plan[:k] for c in s.do]
    assert done[k:] == undo_of(net, k)
    assert info.value.signum == signal.SIGINT
    assert info.value.undone == sum(1 for s in plan[:k] if s.undo)
    assert str(info.value).startswith("interrupted by SIGINT while bringing network t1 up; rolled back the ")


def test_a_stop_asked_before_up_starts_changes_nothing() -> None:
    stop = Interrupt()
    stop.request(signal.SIGTERM)
    fake = FakeRunner()
    with pytest.raises(Interrupted) as info:
        small(fake).up(interrupt=stop)
    assert writes(fake) == []
    assert str(info.value) == "interrupted by SIGTERM while bringing network t1 up; nothing had been changed"
    assert info.value.exit_status == 143


def test_batched_up_starts_no_batch_after_the_stop_and_undoes_what_ran() -> None:
    stop = Interrupt()
    fake = StopAt(1, stop)  # the stop comes while the host's first batch runs
    net = small(fake, namespaces=["a", "b"])
    with pytest.raises(Interrupted):
        net.up(BatchExecutor(), interrupt=stop)
    first, *rest = list(zip(fake.argvs, fake.inputs, strict=True))
    host = [(a, i) for a, i in zip(fake.argvs, fake.inputs, strict=True) if a == ["ip", "-batch", "-"]]
    assert host[0][1] is not None and host[0][1].startswith("netns add a\nnetns add b\n")
    # nothing ran in a namespace: the namespaces' batches were never started
    assert not [a for a in writes(fake) if a[0] == "nsenter"]
    # the rollback: the host batch's undo, one -force batch (link group first, namespaces last)
    undo = [(a, i) for a, i in zip(fake.argvs, fake.inputs, strict=True) if a == ["ip", "-force", "-batch", "-"]]
    assert len(undo) == 1 and undo[0][1] is not None
    assert undo[0][1].splitlines()[-2:] == ["netns del b", "netns del a"]


def test_a_stop_during_the_firewall_rolls_back_the_core_steps_too() -> None:
    stop = Interrupt()
    fake = StopAt(0, stop)
    net = small(fake, masquerade=True)
    core = len([c for s, _ in net._entries() for c in s.do])
    fake.k = core + 1  # the firewall's restore
    with pytest.raises(Interrupted) as info:
        net.up(SerialExecutor(), interrupt=stop)
    done = writes(fake)
    restore = done[core]
    assert restore == ["iptables-restore", "-w", "10", "--noflush"]
    assert ["sysctl", "-w", "net.ipv4.ip_forward=1"] not in done  # the step after the stop never ran
    after = done[core + 1 :]
    assert after[0] == ["iptables-restore", "-w", "10", "--noflush"]  # its undo
    assert after[1:] == undo_of(net, len(net.plan()) - 2)  # then every core step, in reverse
    assert info.value.undone == 1 + sum(1 for s in net.plan()[:-2] if s.undo)


def test_waiting_for_the_host_lock_ends_at_once_on_a_stop() -> None:
    fake = FakeRunner()
    held = os.open(os.path.join(lock_dir(), "net-unknown.host.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        stop = Interrupt()
        stop.request(signal.SIGINT)
        with pytest.raises(Interrupted, match="while waiting for another netnskit process"):
            small(fake).down(interrupt=stop)
    finally:
        os.close(held)
    assert writes(fake) == []


def test_on_signals_turns_a_signal_into_a_request_and_puts_the_handler_back() -> None:
    before = signal.getsignal(signal.SIGINT)
    with on_signals() as stop:
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt
        assert stop.requested and stop.signum == signal.SIGINT
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signum == signal.SIGINT  # the first one counts
    assert signal.getsignal(signal.SIGINT) is before


def test_interrupted_pickles() -> None:
    err = Interrupted(signal.SIGINT, "bringing network t1 up", 3, ["undoing x failed"])
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err)
    assert str(err) == "interrupted by SIGINT while bringing network t1 up; rolling back failed: undoing x failed"


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_cli_up_rolls_back_on_a_signal_and_says_so_in_one_line(
    signum: int, status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    from netnskit.cli import main

    fake = StopAt(5, signum=signum)
    assert main(["up", "--serial", str(SEED)], runner=fake) == status
    out, err = capsys.readouterr()
    name = signal.Signals(signum).name
    seed = Network.from_toml(SEED, runner=FakeRunner())
    undone = sum(1 for s in seed.plan()[:5] if s.undo)  # marking a namespace has no undo of its own
    assert undone == 3
    total = len(seed.plan())
    assert out.splitlines() == [f"[{k}/{total}] {step.description}" for k, step in enumerate(seed.plan()[:5], 1)]
    said = f"netnskit up: interrupted by {name} while bringing network seed up; rolled back the 3 steps it had applied"
    assert err == said + "\n"
    assert writes(fake)[5:] == undo_of(seed, 5)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_cli_down_finishes_on_a_signal_then_exits_130() -> None:
    from netnskit.cli import main

    fake = StopAt(1)
    fake.on(["ip", "-j", "netns", "list"], stdout='[{"name": "red"}, {"name": "blue"}]')
    fake.on(["ip", "-n", "red", "-j", "link", "show"], stdout='[{"ifname": "lo", "ifalias": "netnskit:seed"}]')
    fake.on(["ip", "-n", "blue", "-j", "link", "show"], stdout='[{"ifname": "lo", "ifalias": "netnskit:seed"}]')
    assert main(["down", "--serial", str(SEED)], runner=fake) == 130
    assert writes(fake) == [["ip", "netns", "del", "blue"], ["ip", "netns", "del", "red"]]  # both: it finished


def test_a_remembered_sysctl_is_written_after_its_memo_and_put_back_before_the_memo_goes() -> None:
    # batched, the restore (its own channel) and the sysctl used to run side by side: a crash
    # between them could leave ip_forward=1 with no record of its old value
    forward = PortForward(8080, "192.168.15.2", 80, owner="lab", bridge="br0", runner=FakeRunner())
    steps = forward.plan(assume_clean=True)
    do = [[shlex.join(b.command.argv) for b in stage] for stage in batches(steps)]
    assert do == [
        ["iptables-restore -w 10 --noflush"],  # the rules and the memos
        ["sysctl -w net.ipv4.ip_forward=1"],
        ["sysctl -w net.ipv4.conf.br0.route_localnet=1"],
    ]
    undo = [[shlex.join(b.command.argv) for b in stage] for stage in batches(steps, undo=True)]
    assert undo == [
        ["sysctl -w net.ipv4.conf.br0.route_localnet=0"],
        ["sysctl -w net.ipv4.ip_forward=0"],
        ["iptables-restore -w 10 --noflush"],  # the memos go last
    ]


class RaiseAt(FakeRunner):
    """A FakeRunner whose k-th write raises KeyboardInterrupt, as a Ctrl-C without on_signals() does."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k
        self.count = 0

    def run(
        self, argv: Sequence[str], *, input: str | None = None, timeout: float | None = None, netns: str | None = None
    ) -> Result:
        result = super().run(argv, input=input, timeout=timeout, netns=netns)
        if not READS.search(" ".join(self.calls[-1])):
            self.count += 1
            if self.count == self.k:
                raise KeyboardInterrupt
        return result


def test_a_keyboard_interrupt_without_on_signals_still_undoes_what_serial_up_did() -> None:
    fake = RaiseAt(4)
    net = small(fake)
    with pytest.raises(KeyboardInterrupt):
        net.up(SerialExecutor())
    done = writes(fake)
    assert done[4:] == undo_of(net, 4)  # the step that was running included

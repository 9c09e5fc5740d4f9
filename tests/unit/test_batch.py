"""BatchExecutor: which processes a plan becomes, and how failures map back to steps (FakeRunner)."""

from __future__ import annotations

import json
import shlex
import threading

import pytest

from netnskit.commands import sysctl
from netnskit.errors import StepError
from netnskit.executors import Batch, BatchExecutor, batches
from netnskit.link import Bridge, Link, VethPair, Vlan
from netnskit.netns import Namespace
from netnskit.plan import Batchable, Command, Resource, Step
from netnskit.runner import Result, in_netns
from netnskit.testing import FakeRunner

GROUP = "77"


def ns_batch(name: str) -> tuple[str, ...]:
    """The argv of one namespace's batch, as the runner records it (told the namespace: nsenter --net)."""
    return ("nsenter", f"--net=/run/netns/{name}", "--", "ip", "-batch", "-")


def masquerade(action: str, addr: str) -> Command:
    """An iptables rule as the firewall types it: a restore line of the nat table."""
    words = [action, "POSTROUTING", "-s", addr, "-m", "comment", "--comment", "netnskit:t", "-j", "MASQUERADE"]
    rule = [Resource("rule", "nat " + " ".join(words[1:]))]
    return Command(
        ["iptables", "-w", "-t", "nat", *words],
        tool="iptables",
        channel="iptables-restore",
        batch=Batchable(["iptables-restore", "-w"], " ".join(words), section="nat", style="tables"),
        creates=rule if action == "-A" else (),
        removes=rule if action == "-D" else (),
    )


def namespace_steps(name: str, index: int) -> list[Step]:
    """One namespace on bridge br0, interleaved host and namespace commands, as a Network would plan it."""
    host, inner = f"v{index}b", f"v{index}"
    addr = f"10.9.0.{index + 2}/24"
    ns = Namespace(name, runner=FakeRunner())
    pair = VethPair(host, inner, peer_netns=name, master="br0", group=int(GROUP), runner=FakeRunner())
    end = Link(inner, name, runner=FakeRunner())
    return [
        Step(
            f"namespace {name}",
            [ns.add_command(), Link("lo", name, runner=FakeRunner()).up_command()],
            [ns.delete_command()],
        ),
        Step(f"veth {host}", [pair.create_command(up=True), end.up_command()], [pair.delete_command()]),
        Step(f"address {name}", [end.add_address_command(addr)], [end.del_address_command(addr)]),
        Step(f"masquerade {name}", [masquerade("-A", addr)], [masquerade("-D", addr)]),
    ]


def plan() -> list[Step]:
    bridge = Bridge("br0", group=int(GROUP), runner=FakeRunner())
    return [
        Step("bridge br0", [bridge.create_command(up=True)], [bridge.delete_command()]),
        *namespace_steps("red", 0),
        *namespace_steps("blue", 1),
    ]


RESTORE_ADD = (
    "*nat\n"
    "-A POSTROUTING -s 10.9.0.2/24 -m comment --comment netnskit:t -j MASQUERADE\n"
    "-A POSTROUTING -s 10.9.0.3/24 -m comment --comment netnskit:t -j MASQUERADE\n"
    "COMMIT\n"
)
HOST_UP = (
    f"link add name br0 group {GROUP} up type bridge\n"
    "netns add red\n"
    f"link add v0b group {GROUP} up master br0 type veth peer name v0 netns red\n"
    "netns add blue\n"
    f"link add v1b group {GROUP} up master br0 type veth peer name v1 netns blue\n"
)


def test_an_interleaved_plan_becomes_one_host_batch_then_one_batch_per_namespace_and_one_restore():
    stages = batches(plan())
    assert [[b.command for b in stage] for stage in stages] == [
        [Command(["ip", "-batch", "-"], input=HOST_UP, tool="ip")],
        [
            Command(
                ["ip", "-batch", "-"],
                netns="red",
                tool="ip",
                input="link set lo up\nlink set v0 up\naddr add 10.9.0.2/24 dev v0\n",
            ),
            Command(
                ["ip", "-batch", "-"],
                netns="blue",
                tool="ip",
                input="link set lo up\nlink set v1 up\naddr add 10.9.0.3/24 dev v1\n",
            ),
            Command(["iptables-restore", "-w", "--noflush"], input=RESTORE_ADD, tool="iptables"),
        ],
    ]


def test_apply_runs_exactly_those_processes_in_order():
    fake = FakeRunner(strict=False)
    BatchExecutor(workers=1).apply(plan(), fake)
    assert fake.argvs == [
        ["ip", "-batch", "-"],
        list(ns_batch("red")),
        list(ns_batch("blue")),
        ["iptables-restore", "-w", "--noflush"],
    ]
    assert fake.inputs[0] == HOST_UP
    assert fake.inputs[3] == RESTORE_ADD


def test_apply_in_parallel_runs_the_same_processes():
    for pipeline in (False, True):
        fake = FakeRunner()
        BatchExecutor(workers=4, pipeline=pipeline).apply(plan(), fake)
        assert sorted(map(tuple, fake.argvs)) == sorted(
            [("ip", "-batch", "-"), ns_batch("red"), ns_batch("blue"), ("iptables-restore", "-w", "--noflush")]
        )
        # a namespace's batch starts only after the host lines that make its veth
        host = fake.argvs.index(["ip", "-batch", "-"])
        assert host < fake.argvs.index(list(ns_batch("red")))
        assert host < fake.argvs.index(list(ns_batch("blue")))


def test_a_pipelined_host_batch_is_cut_in_chunks_and_namespaces_start_as_their_veth_is_made():
    steps = [s for i in range(8) for s in namespace_steps(f"n{i}", i)]
    fake = FakeRunner()
    BatchExecutor(workers=2, pipeline=True, chunks=4, chunk=4).apply(steps, fake)
    hosts = [i for i, argv in enumerate(fake.argvs) if argv == ["ip", "-batch", "-"]]
    assert [fake.inputs[i].count("\n") for i in hosts] == [4, 4, 4, 4]  # type: ignore[union-attr]
    # n0 and n1 are made by the first chunk: their batches may start before the last chunk runs
    assert len([a for a in fake.argvs if a[0] == "nsenter" and a[-3:] == ["ip", "-batch", "-"]]) == 8


def test_a_failing_namespace_line_names_its_step_command_and_message_then_rolls_back():
    fake = FakeRunner()
    fake.fail(list(ns_batch("blue")), "Error: ipv4: Address already assigned.\nCommand failed -:3\n")
    fake.on(
        ["ip", "-j", "link", "show", "group", GROUP],
        stdout=json.dumps([{}, {"ifname": "br0"}, {"ifname": "v0b"}, {"ifname": "v1b"}]),
    )
    with pytest.raises(StepError) as info:
        BatchExecutor(workers=1).apply(plan(), fake)
    err = info.value
    assert err.step == "address blue"
    assert err.index == 7
    assert "ip -n blue addr add 10.9.0.3/24 dev v1" in err.cause
    assert "Address already assigned" in err.cause
    assert err.rollback_errors == ()
    rollback = fake.argvs[4:]
    # lines 1-2 of blue's batch ran, red's batch and the restore (both rules) ran: every step that
    # had a command done is undone (blue's address step had none); namespace commands are skipped,
    # `netns del` takes them along
    assert rollback == [
        ["ip", "-j", "link", "show", "group", GROUP],
        ["ip", "-force", "-batch", "-"],
        ["iptables-restore", "-w", "--noflush"],
    ]
    assert fake.inputs[5] == f"link del group {GROUP}\nnetns del blue\nnetns del red\n"
    assert fake.inputs[6] == (
        "*nat\n"
        "-D POSTROUTING -s 10.9.0.2/24 -m comment --comment netnskit:t -j MASQUERADE\n"
        "-D POSTROUTING -s 10.9.0.3/24 -m comment --comment netnskit:t -j MASQUERADE\n"
        "COMMIT\n"
    )


def test_a_failing_host_line_stops_before_the_namespace_batches():
    fake = FakeRunner()
    fake.fail(["ip", "-batch", "-"], "RTNETLINK answers: File exists\nCommand failed -:3\n")
    fake.on(["ip", "-j", "link", "show", "group", GROUP], stdout=json.dumps([{}, {"ifname": "br0"}]))
    with pytest.raises(StepError) as info:
        BatchExecutor(workers=1).apply(plan(), fake)
    assert info.value.step == "veth v0b"
    assert "ip link add v0b group 77" in info.value.cause and "File exists" in info.value.cause
    assert fake.argvs == [
        ["ip", "-batch", "-"],
        ["ip", "-j", "link", "show", "group", GROUP],
        ["ip", "-force", "-batch", "-"],
    ]
    # done: the bridge (line 1) and namespace red (line 2); red's `lo up` never ran
    assert fake.inputs[2] == f"netns del red\nlink del group {GROUP}\n"


def test_a_failing_restore_line_names_its_rule():
    fake = FakeRunner()
    fake.fail(
        ["iptables-restore", "-w", "--noflush"],
        "iptables-restore: line 3 failed: No chain/target/match by that name.\n",
        times=1,
    )
    fake.on(["ip", "-j", "link", "show", "group", GROUP], stdout="[]")
    with pytest.raises(StepError) as info:
        BatchExecutor(workers=1).apply(plan(), fake)
    assert info.value.step == "masquerade blue"
    assert "iptables -w -t nat -A POSTROUTING -s 10.9.0.3/24" in info.value.cause
    assert "line 3 failed" in info.value.cause


def test_remove_uses_one_group_delete_when_the_group_holds_only_this_plans_links():
    fake = FakeRunner()
    fake.on(["ip", "-j", "link", "show", "group", GROUP], stdout=json.dumps([{}, {"ifname": "br0"}, {"ifname": "v1b"}]))
    gone = BatchExecutor(workers=1).remove(plan(), fake)
    assert fake.argvs == [
        ["ip", "-j", "link", "show", "group", GROUP],
        ["ip", "-force", "-batch", "-"],
        ["iptables-restore", "-w", "--noflush"],
    ]
    assert fake.inputs[1] == f"link del group {GROUP}\nnetns del blue\nnetns del red\n"
    assert gone == ["undoing: link 'v0b' (group 77) is already gone"]


def test_remove_deletes_link_by_link_when_the_group_holds_a_foreign_link():
    fake = FakeRunner()
    fake.on(
        ["ip", "-j", "link", "show", "group", GROUP],
        stdout=json.dumps([{}, {"ifname": "br0"}, {"ifname": "v0b"}, {"ifname": "v1b"}, {"ifname": "theirs"}]),
    )
    BatchExecutor(workers=1).remove(plan(), fake)
    assert fake.inputs[1] == "link del v1b\nnetns del blue\nlink del v0b\nnetns del red\nlink del br0\n"


def test_remove_reports_what_is_gone_and_raises_on_a_real_failure():
    fake = FakeRunner()
    fake.on(["ip", "-j", "link", "show", "group", GROUP], stdout="[]")
    fake.fail(
        ["ip", "-force", "-batch", "-"],
        'Cannot remove namespace file "/run/netns/blue": No such file or directory\nCommand failed -:1\n',
    )
    gone = BatchExecutor(workers=1).remove(plan(), fake)
    assert len(gone) == 4  # three links (group empty) and namespace blue
    assert any("netns del blue" in g and "No such file" in g for g in gone)
    fake.fail(["ip", "-force", "-batch", "-"], "RTNETLINK answers: Device or resource busy\nCommand failed -:2\n")
    with pytest.raises(StepError) as info:
        BatchExecutor(workers=1).remove(plan(), fake)
    assert "netns del red" in info.value.cause and "busy" in info.value.cause


def test_a_missing_rule_on_removal_is_gone_and_the_others_are_still_deleted():
    fake = FakeRunner()
    fake.on(["ip", "-j", "link", "show", "group", GROUP], stdout="[]")
    fake.fail(
        ["iptables-restore", "-w", "--noflush"],
        "iptables-restore: line 2 failed: Bad rule (does a matching rule exist in that chain?).\n",
        times=1,
    )
    gone = BatchExecutor(workers=1).remove(plan(), fake)
    restores = [i for i, a in enumerate(fake.argvs) if a[0] == "iptables-restore"]
    assert len(restores) == 2
    # deletions run oldest first: line 2 is red's rule, gone; blue's is deleted on the retry
    assert fake.inputs[restores[1]] == (
        "*nat\n-D POSTROUTING -s 10.9.0.3/24 -m comment --comment netnskit:t -j MASQUERADE\nCOMMIT\n"
    )
    assert any("10.9.0.2/24" in g and "Bad rule" in g for g in gone)


def test_a_host_command_that_deletes_into_a_namespace_waits_for_that_namespaces_earlier_commands():
    pair = VethPair("vb", "v", peer_netns="red", runner=FakeRunner())
    steps = [
        Step("ns", [Namespace("red", runner=FakeRunner()).add_command()]),
        Step("veth", [pair.create_command()]),
        Step("up", [Link("v", "red", runner=FakeRunner()).up_command()]),
        Step("move away", [pair.delete_command()]),
        Step("after", [Link("lo", "red", runner=FakeRunner()).up_command()]),
    ]
    stages = [[shlex.join(b.command.host_argv()) for b in stage] for stage in batches(steps)]
    assert stages == [
        ["ip -batch -"],
        ["ip -n red link set v up"],
        ["ip link del vb"],
        ["ip -n red link set lo up"],
    ]


def test_what_no_batch_can_carry_runs_alone_in_its_place():
    red = Namespace("red", runner=FakeRunner())
    steps = [
        Step("ns", [red.add_command(), Link("lo", "red", runner=FakeRunner()).up_command()]),
        Step("sysctl", [sysctl(None, "net.ipv4.ip_forward", "1")]),
        Step(
            "alias",
            [
                Bridge("b0", runner=FakeRunner()).create_command(),
                Link("b0", runner=FakeRunner()).set_command("alias", "has space"),
            ],
        ),
        Step("exec", [Command(red.exec_argv(["true"]))]),  # no channel: a barrier
        Step(
            "rules",
            [
                Command(
                    ["iptables-restore", "-w", "--noflush"],
                    input="*nat\nCOMMIT\n",
                    tool="iptables",
                    channel="iptables-restore",
                )
            ],
        ),
    ]
    stages = [[b.command.host_argv() for b in stage] for stage in batches(steps)]
    assert stages == [
        [["ip", "netns", "add", "red"]],
        [["sysctl", "-w", "net.ipv4.ip_forward=1"]],
        [["ip", "link", "add", "name", "b0", "type", "bridge"]],
        [["ip", "link", "set", "b0", "alias", "has space"]],
        [["ip", "-n", "red", "link", "set", "lo", "up"]],
        [["ip", "netns", "exec", "red", "true"]],
        [["iptables-restore", "-w", "--noflush"]],
    ]


def test_batch_records_which_plan_commands_each_process_carries():
    stages = batches(plan())
    red = stages[1][0]
    assert isinstance(red, Batch)
    assert [c.shell() for c in red.carries] == [
        "ip -n red link set lo up",
        "ip -n red link set v0 up",
        "ip -n red addr add 10.9.0.2/24 dev v0",
    ]


def test_undo_batches_skip_commands_inside_namespaces_the_teardown_deletes():
    stages = batches(plan(), undo=True)
    flat = [b.command for stage in stages for b in stage]
    assert not any(c.netns is not None for c in flat)
    assert (
        Command(
            ["ip", "-force", "-batch", "-"],
            tool="ip",
            input="link del v1b\nnetns del blue\nlink del v0b\nnetns del red\nlink del br0\n",
        )
        in flat
    )


class BlueRuleFails(FakeRunner):
    """iptables-nft's way: any restore holding blue's rule fails at COMMIT; others succeed."""

    def run(self, argv, *, input=None, timeout=None, netns=None):  # type: ignore[no-untyped-def]
        if argv[0] == "iptables-restore" and input and "-A POSTROUTING -s 10.9.0.3/24" in input:
            commit = input.splitlines().index("COMMIT") + 1
            self.fail(
                list(argv),
                f"iptables-restore v1.8.9 (nf_tables): Chain 'X' does not exist\nError occurred at line: {commit}\n",
                times=1,
            )
        return super().run(argv, input=input, timeout=timeout, netns=netns)


def test_an_error_found_at_commit_is_traced_to_its_rule_by_halves():
    runner = BlueRuleFails()
    runner.on(["ip", "-j", "link", "show", "group", GROUP], stdout="[]")
    with pytest.raises(StepError) as info:
        BatchExecutor(workers=1).apply(plan(), runner)
    assert info.value.step == "masquerade blue"
    assert "Chain 'X' does not exist" in info.value.cause
    restores = [i for i, argv in enumerate(runner.argvs) if argv[0] == "iptables-restore"]
    inputs = [runner.inputs[i] for i in restores]
    # the whole table fails; red's half is applied; blue's rule alone fails; rollback deletes red's
    assert inputs == [
        RESTORE_ADD,
        "*nat\n-A POSTROUTING -s 10.9.0.2/24 -m comment --comment netnskit:t -j MASQUERADE\nCOMMIT\n",
        "*nat\n-A POSTROUTING -s 10.9.0.3/24 -m comment --comment netnskit:t -j MASQUERADE\nCOMMIT\n",
        "*nat\n-D POSTROUTING -s 10.9.0.2/24 -m comment --comment netnskit:t -j MASQUERADE\nCOMMIT\n",
    ]


def test_deletions_go_oldest_first_so_nft_finds_each_rule_at_the_front():
    stages = batches(plan(), undo=True)
    restore = [b.command for stage in stages for b in stage if b.command.argv[0] == "iptables-restore"]
    assert restore[0].input == (
        "*nat\n"
        "-D POSTROUTING -s 10.9.0.2/24 -m comment --comment netnskit:t -j MASQUERADE\n"
        "-D POSTROUTING -s 10.9.0.3/24 -m comment --comment netnskit:t -j MASQUERADE\n"
        "COMMIT\n"
    )


class TimesOut(FakeRunner):
    """A runner that raises CommandTimeoutError for blue's batch, as LiveRunner does."""

    def run(self, argv, *, input=None, timeout=None, netns=None):  # type: ignore[no-untyped-def]
        if netns == "blue" and list(argv) == ["ip", "-batch", "-"]:
            from netnskit.errors import CommandTimeoutError

            self.calls.append(in_netns(netns, argv))
            self.inputs.append(input)
            raise CommandTimeoutError(in_netns(netns, argv), -1, "", "")
        return super().run(argv, input=input, timeout=timeout, netns=netns)


def test_a_timeout_is_a_failure_of_its_step_and_still_rolls_back():
    runner = TimesOut()
    runner.on(["ip", "-j", "link", "show", "group", GROUP], stdout="[]")
    with pytest.raises(StepError) as info:
        BatchExecutor(workers=1).apply(plan(), runner)
    assert info.value.step == "namespace blue"
    assert "timed out" in info.value.cause
    assert runner.argvs[-2:] == [["ip", "-force", "-batch", "-"], ["iptables-restore", "-w", "--noflush"]]


class WaitsForFirstNamespace(FakeRunner):
    """Holds every host chunk after the first until namespace n0's batch has started (or 5 s pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.n0_started = threading.Event()
        self.host_chunks = 0
        self.saw_n0_early: list[bool] = []

    def run(self, argv, *, input=None, timeout=None, netns=None):  # type: ignore[no-untyped-def]
        if netns == "n0":
            self.n0_started.set()
        elif netns is None and list(argv) == ["ip", "-batch", "-"]:
            self.host_chunks += 1
            if self.host_chunks > 1:
                self.saw_n0_early.append(self.n0_started.wait(5))
        return super().run(argv, input=input, timeout=timeout, netns=netns)


def test_a_namespace_starts_once_its_own_veth_is_made_even_when_every_peer_is_called_eth0():
    steps = []
    for i in range(8):
        name = f"n{i}"
        ns = Namespace(name, runner=FakeRunner())
        pair = VethPair(f"v{i}b", "eth0", peer_netns=name, runner=FakeRunner())
        steps += [
            Step(f"namespace {name}", [ns.add_command()], [ns.delete_command()]),
            Step(
                f"veth {name}",
                [pair.create_command(), Link("eth0", name, runner=FakeRunner()).up_command()],
                [pair.delete_command()],
            ),
        ]
    runner = WaitsForFirstNamespace()
    BatchExecutor(workers=2, pipeline=True, chunks=4, chunk=2).apply(steps, runner)
    assert runner.host_chunks == 4
    assert runner.saw_n0_early and all(runner.saw_n0_early)


def _many(n: int) -> list[Step]:
    """As a Network plans them: every namespace first, then every veth and what goes inside."""
    steps = [namespace_steps(f"n{i}", i) for i in range(n)]
    return [group[0] for group in steps] + [s for group in steps for s in group[1:]]


@pytest.mark.parametrize("pipeline", [False, True], ids=["waves", "pipelined"])
def test_many_namespaces_are_made_by_a_few_processes_at_once(monkeypatch, pipeline):
    monkeypatch.setattr("netnskit.executors.batch.os.cpu_count", lambda: 2)
    fake = FakeRunner()
    BatchExecutor(workers=4, pipeline=pipeline).apply(_many(60), fake)
    host = [fake.inputs[i] for i, a in enumerate(fake.argvs) if a == ["ip", "-batch", "-"]]
    adds = [text for text in host if text.startswith("netns add")]
    # two processes (2 CPUs), every other namespace each, and nothing else in them
    assert sorted(adds) == sorted("".join(f"netns add n{i}\n" for i in range(k, 60, 2)) for k in (0, 1))
    rest = "".join(text for text in host if not text.startswith("netns add"))
    assert "netns add" not in rest and rest.count("link add") == 60


def test_few_namespaces_or_one_worker_keep_one_host_process(monkeypatch):
    monkeypatch.setattr("netnskit.executors.batch.os.cpu_count", lambda: 8)
    for n, workers in ((49, 4), (60, 1)):
        fake = FakeRunner()
        BatchExecutor(workers=workers, pipeline=False).apply(_many(n), fake)
        host = [fake.inputs[i] for i, a in enumerate(fake.argvs) if a == ["ip", "-batch", "-"]]
        assert len(host) == 1 and host[0].count("netns add") == n


def test_a_failing_netns_add_in_one_process_names_its_step_and_undoes_the_others(monkeypatch):
    monkeypatch.setattr("netnskit.executors.batch.os.cpu_count", lambda: 2)

    class FailsN13(FakeRunner):
        def run(self, argv, *, input=None, timeout=None, netns=None):
            result = super().run(argv, input=input, timeout=timeout, netns=netns)
            if netns is None and list(argv) == ["ip", "-batch", "-"] and input and "netns add n13\n" in input:
                line = input.splitlines().index("netns add n13") + 1
                return Result(
                    argv,
                    1,
                    "",
                    f'Cannot create namespace file "/run/netns/n13": File exists\nCommand failed -:{line}\n',
                )
            return result

    fake = FailsN13()
    with pytest.raises(StepError) as info:
        BatchExecutor(workers=4, pipeline=False).apply(_many(60), fake)
    assert info.value.step == "namespace n13"
    assert "ip netns add n13" in info.value.cause and "File exists" in info.value.cause
    # nothing after the host's namespaces ran; rollback deletes every namespace made but n13 and
    # those after it in n13's own process (ip -batch stops at its first failing line)
    assert not any(a[0] == "nsenter" for a in fake.argvs)
    undo = "".join(fake.inputs[i] for i, a in enumerate(fake.argvs) if a == ["ip", "-force", "-batch", "-"])
    deleted = {line.split()[-1] for line in undo.splitlines() if line.startswith("netns del")}
    assert deleted == {f"n{i}" for i in range(0, 60, 2)} | {f"n{i}" for i in range(1, 13, 2)}


def test_a_new_kind_of_link_is_routed_by_its_fields_alone():
    """A VLAN in a namespace and its MTU join that namespace's batch: nothing in the executor knows VLANs."""
    red = Namespace("red", runner=FakeRunner())
    vlan = Vlan("eth0.10", "eth0", 10, netns="red", runner=FakeRunner())
    steps = [
        Step("ns", [red.add_command()], [red.delete_command()]),
        Step(
            "vlan",
            [vlan.create_command(), vlan.link.mtu_command(1400), vlan.link.up_command()],
            [vlan.delete_command()],
        ),
    ]
    stages = batches(steps)
    assert [[(b.command.netns, b.command.input) for b in stage] for stage in stages] == [
        [(None, None)],  # `ip netns add red` alone
        [("red", "link add link eth0 name eth0.10 type vlan id 10\nlink set eth0.10 mtu 1400\nlink set eth0.10 up\n")],
    ]
    # its undo goes with the namespace: `ip netns del` takes it along
    assert [(b.command.netns, b.command.input) for stage in batches(steps, undo=True) for b in stage] == [
        (None, "netns del red\n")
    ]


def test_a_tool_run_inside_a_namespace_keeps_its_lane_instead_of_splitting_the_waves():
    """`ip netns exec red tc ...` used to be a barrier; typed, it runs alone in red's lane, in order."""
    tc = Command(
        ["tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "8mbit", "burst", "32k", "latency", "50ms"],
        netns="red",
        tool="tc",
        channel="net",
    )
    blue_up = Link("lo", "blue", runner=FakeRunner()).up_command()
    steps = [
        Step(
            "ns",
            [Namespace("red", runner=FakeRunner()).add_command(), Namespace("blue", runner=FakeRunner()).add_command()],
        ),
        Step("red", [Link("lo", "red", runner=FakeRunner()).up_command(), tc]),
        Step("blue", [blue_up]),
    ]
    stages = batches(steps)
    assert len(stages) == 2  # the host batch, then red's two and blue's one side by side
    assert sorted((b.command.netns or "", len(b.carries)) for b in stages[1]) == [("blue", 1), ("red", 1), ("red", 1)]

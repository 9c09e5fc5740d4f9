"""FakeRunner, the runner users' own unit tests script: matching, failures, strict mode, the fixture."""

from __future__ import annotations

import doctest
import re

import pytest

import netnskit.testing
from netnskit import AlreadyExistsError, Namespace, Result
from netnskit.testing import STDERR, FakeProcess, FakeRunner


def test_records_argv_and_input_and_answers_success_by_default():
    fake = FakeRunner()
    assert fake.run(["ip", "link"]) == Result(["ip", "link"], 0, "", "")
    fake.run(("cat",), input="x")
    assert fake.argvs == [["ip", "link"], ["cat"]]
    assert fake.inputs == [None, "x"]


def test_argvs_is_a_copy():
    fake = FakeRunner()
    fake.run(["ip"])
    fake.argvs[0].append("tampered")
    assert fake.argvs == [["ip"]]


@pytest.mark.parametrize(
    "match",
    [
        ["ip", "-n", "red", "link", "show"],
        ("ip", "-n", "red", "link", "show"),
        "ip -n red *",
        re.compile(r"-n red link"),
        lambda argv: argv[2] == "red",
    ],
    ids=["list", "tuple", "glob", "regex", "function"],
)
def test_matchers(match):
    fake = FakeRunner().on(match, stdout="answer")
    assert fake.run(["ip", "-n", "red", "link", "show"]).stdout == "answer"
    assert fake.run(["ip", "-n", "blue", "link", "show"]).stdout == ""


def test_glob_matches_the_shell_quoted_command():
    fake = FakeRunner().on("ip link set 'a b' *", stdout="quoted")
    assert fake.run(["ip", "link", "set", "a b", "up"]).stdout == "quoted"


def test_the_latest_matching_reply_wins_and_times_runs_out():
    fake = FakeRunner().on("ip *", stdout="general").on(["ip", "link"], stdout="once", times=1)
    assert [fake.run(["ip", "link"]).stdout for _ in range(3)] == ["once", "general", "general"]


def test_fail_gives_a_realistic_failure():
    fake = FakeRunner().fail(["ip", "netns", "add", "red"], STDERR["netns_exists"].format(name="red"))
    result = fake.run(["ip", "netns", "add", "red"])
    assert (result.returncode, result.stderr) == (1, 'Cannot create namespace file "/run/netns/red": File exists\n')
    with pytest.raises(AlreadyExistsError):
        Namespace("red", runner=fake).create()


def test_fail_then_succeed():
    fake = FakeRunner().fail(["ip", "link", "add", "v0"], STDERR["link_exists"], returncode=2, times=1)
    assert fake.run(["ip", "link", "add", "v0"]).returncode == 2
    assert fake.run(["ip", "link", "add", "v0"]).returncode == 0


def test_strict_mode_refuses_unscripted_commands():
    fake = FakeRunner(strict=True).on(["ip", "link"])
    fake.run(["ip", "link"])
    with pytest.raises(AssertionError, match="no reply scripted for ip addr"):
        fake.run(["ip", "addr"])


def test_start_records_a_fake_process():
    fake = FakeRunner()
    proc = fake.start(["sleep", "60"])
    assert isinstance(proc, FakeProcess)
    assert fake.started == [proc] and fake.argvs == [["sleep", "60"]]
    assert proc.poll() is None
    proc.terminate()
    assert proc.wait() == -15
    assert proc.communicate() == ("", "")


def test_clear_forgets_calls_but_keeps_replies():
    fake = FakeRunner().on(["ip"], stdout="kept")
    fake.run(["ip"])
    fake.clear()
    assert fake.argvs == [] and fake.inputs == []
    assert fake.run(["ip"]).stdout == "kept"


def test_the_fake_runner_fixture(fake_runner):
    assert isinstance(fake_runner, FakeRunner)
    assert fake_runner.argvs == []


def test_module_doctest_runs():
    result = doctest.testmod(netnskit.testing)
    assert result.attempted > 0
    assert result.failed == 0


def test_fake_runner_from_many_threads_keeps_argv_and_input_together_and_counts_times():
    from concurrent.futures import ThreadPoolExecutor

    fake = FakeRunner()
    fake.on("ip *", stdout="scripted\n", times=1000)

    def call(i: int) -> str:
        return fake.run(["ip", str(i)], input=f"input {i}").stdout

    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(call, range(4000)))
    assert outs.count("scripted\n") == 1000 and outs.count("") == 3000
    assert len(fake.calls) == len(fake.inputs) == 4000
    assert all(inp == f"input {argv[1]}" for argv, inp in zip(fake.calls, fake.inputs, strict=True))

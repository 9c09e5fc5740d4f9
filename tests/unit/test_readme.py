"""The README's Python examples run as written (the seed story against a FakeRunner)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _readme import readme_block

import netnskit
from netnskit.testing import FakeRunner

README = Path(__file__).resolve().parents[2] / "README.md"


SEED = 'VethPair("veth-red", "veth-blue"'
FAKING = "def make_lab(runner):"

SEED_ARGVS = [
    ["ip", "netns", "add", "red"],
    ["ip", "netns", "add", "blue"],
    [
        "ip",
        "link",
        "add",
        "veth-red",
        "netns",
        "red",
        "up",
        "type",
        "veth",
        "peer",
        "name",
        "veth-blue",
        "netns",
        "blue",
    ],
    ["ip", "-n", "blue", "link", "set", "veth-blue", "up"],
    ["ip", "-n", "red", "addr", "add", "192.168.15.1/24", "dev", "veth-red"],
    ["ip", "-n", "blue", "addr", "add", "192.168.15.2/24", "dev", "veth-blue"],
    ["ip", "netns", "exec", "red", "ping", "-c", "1", "-w", "5", "192.168.15.2"],
    ["ip", "-n", "red", "-j", "neigh", "show"],
    ["ip", "netns", "del", "red"],
    ["ip", "netns", "del", "blue"],
]


def test_seed_example_runs_these_commands(monkeypatch, capsys):
    fake = FakeRunner()
    fake.on(
        ["ip", "-n", "red", "-j", "neigh", "show"],
        stdout='[{"dst":"192.168.15.2","dev":"veth-red","lladdr":"82:08:2b:a5:ca:64","state":["REACHABLE"]}]\n',
    )
    monkeypatch.setattr(netnskit, "LiveRunner", lambda: fake)  # what `from netnskit import LiveRunner` gets
    exec(compile(readme_block("python", SEED), "README.md", "exec"), {})
    assert fake.argvs == SEED_ARGVS
    assert "82:08:2b:a5:ca:64" in capsys.readouterr().out


def test_seed_example_is_idempotent_on_a_second_run(monkeypatch):
    fake = FakeRunner()
    fake.fail("ip netns add *", 'Cannot create namespace file "/run/netns/x": File exists\n')
    fake.fail("ip link add *", "RTNETLINK answers: File exists\n", returncode=2)
    fake.fail("ip -n * addr add *", "Error: ipv4: Address already assigned.\n", returncode=2)
    monkeypatch.setattr(netnskit, "LiveRunner", lambda: fake)
    exec(compile(readme_block("python", SEED), "README.md", "exec"), {})
    # the existing pair's first end is brought up by hand, since the failed create did not
    assert fake.argvs == [*SEED_ARGVS[:3], ["ip", "-n", "red", "link", "set", "veth-red", "up"], *SEED_ARGVS[3:]]


def test_faking_example_tests_pass():
    namespace: dict[str, object] = {}
    exec(compile(readme_block("python", FAKING), "README.md", "exec"), namespace)
    tests = {name: fn for name, fn in namespace.items() if name.startswith("test_")}
    assert sorted(tests) == ["test_make_lab_runs_the_right_commands", "test_make_lab_twice_is_fine"]
    tests["test_make_lab_runs_the_right_commands"](FakeRunner())  # type: ignore[operator]
    tests["test_make_lab_twice_is_fine"]()  # type: ignore[operator]


def test_faking_example_tests_can_fail():
    namespace: dict[str, object] = {}
    exec(compile(readme_block("python", FAKING), "README.md", "exec"), namespace)

    def forgets_loopback(runner):
        netnskit.Namespace("red", runner=runner).create(exist_ok=True)
        return netnskit.Namespace.names(runner)

    namespace["make_lab"] = forgets_loopback  # the README test must catch broken code
    with pytest.raises(AssertionError):
        namespace["test_make_lab_runs_the_right_commands"](FakeRunner())  # type: ignore[operator]


def test_readme_keeps_its_two_commands_on_top():
    text = README.read_text()
    first_block = text.index("```sh")
    assert "scripts/demo" in text[first_block : text.index("```", first_block + 5)]
    assert "scripts/test" in text[first_block : text.index("```", first_block + 5)]

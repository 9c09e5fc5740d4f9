"""Error mapping from the real words of iproute2 6.1 and iptables 1.8.9, and the error tree itself.

Every stderr string below was captured from the real tools (Debian 12) inside a sandbox,
as root or, for the permission cases, dropped to ``nobody`` with ``setpriv``.
"""

from __future__ import annotations

import pickle

import pytest

import netnskit
from netnskit.errors import (
    AlreadyExistsError,
    CommandError,
    CommandNotFoundError,
    CommandTimeoutError,
    NetnskitError,
    NotFoundError,
    PermissionDeniedError,
    SandboxError,
    StepError,
    ValidationError,
    error_for,
)
from netnskit.runner import Result
from netnskit.testing import STDERR

REAL = [
    # (argv, returncode, stderr, expected class)
    (["ip", "netns", "add", "a"], 1, 'Cannot create namespace file "/run/netns/a": File exists\n', AlreadyExistsError),
    (
        ["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
        2,
        "RTNETLINK answers: File exists\n",
        AlreadyExistsError,
    ),
    (
        ["ip", "route", "add", "10.0.0.0/24", "via", "192.168.15.2"],
        2,
        "RTNETLINK answers: File exists\n",
        AlreadyExistsError,
    ),
    (
        ["ip", "addr", "add", "192.168.15.1/24", "dev", "v0"],
        2,
        "Error: ipv4: Address already assigned.\n",
        AlreadyExistsError,
    ),
    (
        ["ip", "addr", "add", "fd00::1/64", "dev", "v0"],
        2,
        "Error: ipv6: address already assigned.\n",
        AlreadyExistsError,
    ),
    (["iptables", "-w", "-t", "nat", "-N", "X"], 1, "iptables: Chain already exists.\n", AlreadyExistsError),
    (["ip", "link", "set", "nope", "up"], 1, 'Cannot find device "nope"\n', NotFoundError),
    (["ip", "link", "show", "dev", "y"], 1, 'Device "y" does not exist.\n', NotFoundError),
    (
        ["ip", "netns", "del", "zz"],
        1,
        'Cannot remove namespace file "/run/netns/zz": No such file or directory\n',
        NotFoundError,
    ),
    (["ip", "netns", "pids", "zz"], 1, "Cannot open network namespace: No such file or directory\n", NotFoundError),
    (
        ["ip", "route", "del", "10.1.0.0/24", "via", "192.168.15.2"],
        2,
        "RTNETLINK answers: No such process\n",
        NotFoundError,
    ),
    (["ip", "addr", "del", "192.168.15.9/24", "dev", "v0"], 2, "Error: ipv4: Address not found.\n", NotFoundError),
    (["ip", "addr", "del", "fd00::9/64", "dev", "v0"], 2, "Error: ipv6: address not found.\n", NotFoundError),
    (
        ["iptables", "-w", "-t", "nat", "-D", "POSTROUTING", "-s", "192.168.15.0/24", "-j", "MASQUERADE"],
        1,
        "iptables: Bad rule (does a matching rule exist in that chain?).\n",
        NotFoundError,
    ),
    (
        ["iptables", "-w", "-t", "nat", "-A", "NOCHAIN", "-j", "MASQUERADE"],
        1,
        "iptables: No chain/target/match by that name.\n",
        NotFoundError,
    ),
    (
        ["ip", "link", "add", "x", "type", "dummy"],
        2,
        "RTNETLINK answers: Operation not permitted\n",
        PermissionDeniedError,
    ),
    (
        ["ip", "netns", "add", "q"],
        1,
        "mount --make-shared /run/netns failed: Operation not permitted\n",
        PermissionDeniedError,
    ),
    (
        ["iptables", "-w", "-t", "nat", "-S"],
        4,
        "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n",
        PermissionDeniedError,
    ),
    (
        ["iptables-legacy", "-t", "nat", "-S"],
        4,
        "Fatal: can't open lock file /run/xtables.lock: Permission denied\n",
        PermissionDeniedError,
    ),
    (
        ["ip", "route", "add", "10.9.0.0/24", "via", "10.77.0.1"],
        2,
        "Error: Nexthop has invalid gateway.\n",
        CommandError,
    ),
    (
        ["ip", "link", "set", "d0", "netns", "nosuch"],
        255,
        'Error: argument "nosuch" is wrong: Invalid "netns" value\n\n',
        CommandError,
    ),
    (["false"], 1, "", CommandError),
]


@pytest.mark.parametrize(("argv", "returncode", "stderr", "cls"), REAL, ids=[r[2].strip()[:50] for r in REAL])
def test_real_stderr_maps_to_the_right_class(argv, returncode, stderr, cls):
    err = error_for(argv, returncode, "", stderr, "doing the thing")
    assert type(err) is cls
    assert err.argv == tuple(argv)
    assert err.returncode == returncode
    assert err.stderr == stderr
    assert err.action == "doing the thing"


@pytest.mark.parametrize(("argv", "returncode", "stderr", "cls"), REAL, ids=[r[2].strip()[:50] for r in REAL])
def test_result_check_raises_the_mapped_class(argv, returncode, stderr, cls):
    with pytest.raises(cls) as info:
        Result(argv, returncode, "", stderr).check("doing the thing")
    assert type(info.value) is cls


def test_message_says_action_exact_command_and_the_tools_words():
    err = error_for(
        ["ip", "netns", "add", "a"],
        1,
        "",
        'Cannot create namespace file "/run/netns/a": File exists\n',
        "creating namespace 'a'",
    )
    assert str(err) == (
        "creating namespace 'a' failed: `ip netns add a` exited 1: "
        'Cannot create namespace file "/run/netns/a": File exists'
    )


def test_message_quotes_the_command_as_a_shell_would_read_it():
    err = error_for(["ip", "link", "set", "a b", "up"], 1, "", 'Cannot find device "a b"\n', "bringing up")
    assert "`ip link set 'a b' up`" in str(err)


def test_message_without_action_or_stderr():
    assert str(CommandError(["false"], 1)) == "running a command failed: `false` exited 1: (no output)"
    assert str(CommandError(["x"], 3, "only stdout\n")) == "running a command failed: `x` exited 3: only stdout"


def test_matching_ignores_case():
    assert type(error_for(["ip"], 1, "", "FILE EXISTS")) is AlreadyExistsError


def test_stdout_is_kept_but_not_used_for_mapping():
    err = error_for(["ip"], 1, "File exists", "something else")
    assert type(err) is CommandError
    assert err.stdout == "File exists"


@pytest.mark.parametrize("key", sorted(STDERR))
def test_testing_stderr_samples_map_to_a_specific_class(key):
    err = error_for(["x"], 1, "", STDERR[key].format(name="n"))
    assert type(err) is not CommandError, key


# --- the tree ---------------------------------------------------------------------------------------


def test_tree():
    assert issubclass(ValidationError, NetnskitError) and issubclass(ValidationError, ValueError)
    assert issubclass(CommandNotFoundError, NetnskitError) and issubclass(CommandNotFoundError, FileNotFoundError)
    for cls in (AlreadyExistsError, NotFoundError, PermissionDeniedError, CommandTimeoutError):
        assert issubclass(cls, CommandError)
    for cls in (CommandError, SandboxError, StepError):
        assert issubclass(cls, NetnskitError)
    assert not issubclass(CommandError, ValueError)


def test_errors_are_exported_at_top_level():
    for cls in (
        AlreadyExistsError,
        CommandError,
        CommandNotFoundError,
        CommandTimeoutError,
        NetnskitError,
        NotFoundError,
        PermissionDeniedError,
        SandboxError,
        StepError,
        ValidationError,
    ):
        assert getattr(netnskit, cls.__name__) is cls


# --- pickling: every field survives -------------------------------------------------------------------

COMMAND_ERRORS = [CommandError, AlreadyExistsError, NotFoundError, PermissionDeniedError, CommandTimeoutError]


@pytest.mark.parametrize("cls", COMMAND_ERRORS)
def test_command_errors_pickle_with_every_field(cls):
    err = cls(["ip", "link", "add", "a b"], 2, "out\n", "RTNETLINK answers: File exists\n", "creating 'a b'")
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is cls
    assert (again.argv, again.returncode, again.stdout, again.stderr, again.action) == (
        ("ip", "link", "add", "a b"),
        2,
        "out\n",
        "RTNETLINK answers: File exists\n",
        "creating 'a b'",
    )
    assert str(again) == str(err)


def test_validation_error_pickles():
    err = ValidationError("interface name", "a/b", "no '/'")
    again = pickle.loads(pickle.dumps(err))
    assert (again.what, again.value, again.rule) == ("interface name", "a/b", "no '/'")
    assert str(again) == "invalid interface name 'a/b': no '/'"


def test_command_not_found_error_pickles():
    err = CommandNotFoundError("iptables", "iptables")
    again = pickle.loads(pickle.dumps(err))
    assert (again.program, again.package) == ("iptables", "iptables")
    assert str(again) == str(err)
    assert "apt-get install iptables" in str(again)


def test_step_error_pickles():
    err = StepError("create namespace red", 2, "boom", ["undo 1 failed"])
    again = pickle.loads(pickle.dumps(err))
    assert (again.step, again.index, again.cause, again.rollback_errors) == (
        "create namespace red",
        2,
        "boom",
        ("undo 1 failed",),
    )
    assert str(again) == str(err)
    assert "rollback also failed: undo 1 failed" in str(again)
    assert "every earlier step was rolled back" in str(StepError("s", 0, "c"))


def test_sandbox_error_pickles():
    again = pickle.loads(pickle.dumps(SandboxError("no root")))
    assert type(again) is SandboxError
    assert str(again) == "no root"

"""Issue 13, findings 7 to 10, live in a sandbox: a host without iptables, the xtables lock, not root,
the longest network name, ``up --sandbox`` and a closed pipe.

Each test failed before the change it covers: ``down``/``status``/``cleanup`` of a firewall-less
network read iptables-save and failed without it; the lock was waited for until the runner's
timeout, with no word of it; as ``nobody`` ``up`` failed on its first command; a 247 to 255
character name failed at step 2; ``--sandbox up`` printed "is up" for a sandbox already gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netnskit.cli import main
from netnskit.errors import CommandNotFoundError, StepError, XtablesLockError
from netnskit.executors import BatchExecutor, SerialExecutor
from netnskit.firewall import Backend, NatRule
from netnskit.network import Network, cleanup
from netnskit.runner import LiveRunner, nsenter_runner
from netnskit.sandbox import Sandbox
from netnskit.snapshot import HostState

PLAIN = """\
[network]
name = "{name}"
bridge = "br-op"
subnet = "10.77.0.0/24"
gateway = "10.77.0.1"
masquerade = {masquerade}

[[namespace]]
name = "op-a"

[[namespace]]
name = "op-b"
"""


def network_file(tmp_path: Path, *, name: str = "op", masquerade: bool = False) -> Path:
    path = tmp_path / "op.toml"
    path.write_text(PLAIN.format(name=name, masquerade=str(masquerade).lower()))
    return path


def path_without_iptables(tmp_path: Path) -> str:
    """A PATH folder with every program of the system's but iptables* and ip6tables*."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for place in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if not os.path.isdir(place):
            continue
        for name in os.listdir(place):
            if name.startswith(("iptables", "ip6tables")) or (folder / name).exists():
                continue
            (folder / name).symlink_to(os.path.join(place, name))
    return str(folder)


@pytest.fixture
def no_iptables(sandbox: Sandbox, tmp_path: Path):
    """A runner into the sandbox for which iptables is not installed (nsenter answers 127)."""
    runner = nsenter_runner(LiveRunner(env={**os.environ, "PATH": path_without_iptables(tmp_path)}), sandbox.pid)
    hidden = runner.run(["iptables-save"])
    assert hidden.returncode == 127 and "failed to execute iptables-save" in hidden.stderr
    assert sandbox.runner.run(["iptables-save"]).ok  # the sandbox itself has it, to check what was left
    return runner


@pytest.mark.parametrize("executor", [SerialExecutor, BatchExecutor])
def test_a_network_without_firewall_rules_works_on_a_host_without_iptables(
    sandbox, no_iptables, tmp_path, capsys, executor
):
    before = HostState.capture(sandbox.runner)
    net = Network.from_toml(network_file(tmp_path), runner=no_iptables)
    net.up(executor())
    assert {"op-a", "op-b"} <= set(HostState.capture(sandbox.runner).namespaces)
    status = net.status()
    assert status.up and status.rules == () and status.missing == ()
    assert main(["status", str(network_file(tmp_path))], runner=no_iptables) == 0
    assert "network op: up" in capsys.readouterr().out
    teardown = net.down(executor())
    assert "namespace op-a" in teardown.removed and "namespace op-b" in teardown.removed
    assert HostState.capture(sandbox.runner).diff(before) == []
    # and cleanup of the network left up
    net.up(executor())
    assert main(["cleanup", "--all", "--yes"], runner=no_iptables) == 0
    assert "netnskit leftovers removed" in capsys.readouterr().out
    assert cleanup(None, no_iptables).removed == ()
    assert HostState.capture(sandbox.runner).diff(before) == []


def test_a_network_with_masquerade_names_the_missing_package_and_leaves_the_host_as_it_was(
    sandbox, no_iptables, tmp_path, capsys
):
    before = HostState.capture(sandbox.runner)
    path = network_file(tmp_path, masquerade=True)
    with pytest.raises(CommandNotFoundError) as info:
        Network.from_toml(path, runner=no_iptables).up(BatchExecutor())
    assert (info.value.program, info.value.package) == ("iptables-save", "iptables")
    assert HostState.capture(sandbox.runner).diff(before) == []  # what up did was rolled back
    assert main(["up", str(path)], runner=no_iptables) == 1
    assert capsys.readouterr().err == (
        "netnskit up: reading the firewall failed: 'iptables-save' was not found on PATH; "
        "install the 'iptables' package (e.g. apt-get install iptables)\n"
    )
    assert HostState.capture(sandbox.runner).diff(before) == []


def test_the_xtables_lock_held_past_the_wait_is_named(sandbox, tmp_path):
    # the legacy backend's lock file, moved for this test (XTABLES_LOCKFILE): the host's is not touched
    lock = tmp_path / "xtables.lock"
    holder = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        runner = nsenter_runner(LiveRunner(env={**os.environ, "XTABLES_LOCKFILE": str(lock)}), sandbox.pid)
        rule = NatRule("10.77.0.0/24", "br-op", owner="op", runner=runner, backend=Backend("legacy", wait=1))
        with pytest.raises(StepError) as info:
            rule.apply()
    finally:
        os.close(holder)
    assert isinstance(info.value.error, XtablesLockError)
    assert info.value.error.argv[:3] == ("iptables-legacy-restore", "-w", "1")
    assert "the xtables lock was held by another program for longer than the wait" in str(info.value)
    assert "Another app is currently holding the xtables lock" in str(info.value)
    saved = sandbox.runner.run(["iptables-legacy-save"]).check().stdout
    assert "NETNSKIT" not in saved


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]


@pytest.mark.parametrize(
    "argv",
    [
        ["up", "FILE"],
        ["status", "FILE"],
        ["down", "FILE"],
        ["check", "FILE"],
        ["cleanup"],
        ["demo"],
        ["up", "--sandbox", "FILE"],
    ],
)
def test_not_root_is_one_message_and_exit_4(sandbox, tmp_path, argv):
    # as nobody, inside the sandbox: even a CLI that forgot to check could change nothing
    path = network_file(tmp_path)
    tmp_path.chmod(0o755)
    words = [str(path) if a == "FILE" else a for a in argv]
    done = subprocess.run(
        sandbox.enter_argv([*NOBODY, sys.executable, "-m", "netnskit", *words]),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        4,
        "",
        f"netnskit {argv[0]}: needs root (CAP_NET_ADMIN): run as root\n",
    )


def test_the_longest_network_name_goes_up_and_down(sandbox, tmp_path):
    before = HostState.capture(sandbox.runner)
    name = "n" * 246
    net = Network.from_toml(network_file(tmp_path, name=name, masquerade=True), runner=sandbox.runner)
    net.up(BatchExecutor())
    status = net.status()
    assert status.up and status.rules and all(f"netnskit:{name}" in rule for rule in status.rules)
    lo = sandbox.runner.run(["ip", "-j", "link", "show", "lo"], netns="op-a").check().stdout
    assert f'"ifalias":"netnskit:{name}"' in lo
    net.down(BatchExecutor())
    assert HostState.capture(sandbox.runner).diff(before) == []


def test_up_sandbox_runs_up_check_and_down_in_one_sandbox(tmp_path, capsys):
    from netnskit.sandbox import sandbox_problem

    if sandbox_problem():
        pytest.skip(f"live test skipped: {sandbox_problem()}")
    assert main(["up", "--sandbox", str(network_file(tmp_path, masquerade=True))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("network op is up in a throwaway sandbox (") and lines[0].endswith(" steps applied)")
    assert not [line for line in lines if line.startswith("FAIL")]
    passed = next(line for line in lines if line.endswith("probes passed"))
    count = passed.split()[0].split("/")
    assert count[0] == count[1] and int(count[0]) > 0
    assert "removed: namespace op-a" in lines
    assert lines[-2:] == ["network op is down", "the sandbox is gone, and everything in it"]
    with contextlib.suppress(FileNotFoundError):
        assert not {"op-a", "op-b"} & set(os.listdir("/run/netns"))  # the host never had them


def test_status_into_a_closed_pipe_is_quiet(sandbox, tmp_path):
    path = network_file(tmp_path)
    Network.from_toml(path, runner=sandbox.runner).up(BatchExecutor())
    status = subprocess.Popen(
        sandbox.enter_argv([sys.executable, "-m", "netnskit", "status", str(path)]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    head = subprocess.run(["head", "-1"], stdin=status.stdout, capture_output=True, text=True, check=True, timeout=60)
    assert status.stdout is not None and status.stderr is not None
    status.stdout.close()
    err = status.stderr.read()
    status.stderr.close()
    assert status.wait(timeout=60) in (0, 141)
    assert err == ""
    assert head.stdout == "network op: up\n"

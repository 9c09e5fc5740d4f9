"""The sandbox itself: invisible from the real host, destroyed on exit (even after an exception),
processes inside ended; and ``netnskit demo`` passes and leaves the real host unchanged.

The real host is only read here (``ip -j``, ``iptables-save``, ``sysctl -n``, ``/proc``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netnskit import Bridge, Link, NatRule, SandboxError, VethPair
from netnskit.runner import LiveRunner
from netnskit.sandbox import Sandbox
from netnskit.snapshot import HostState


def real_state() -> HostState:
    return HostState.capture(LiveRunner())


def holders_of(net: str) -> list[int]:
    """Pids (on the real host) whose network namespace is ``net`` (``net:[inode]``)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/net") == net:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def gone(pid: int, *, settle: float = 5.0) -> bool:
    """True once ``pid`` no longer exists (or is a zombie), waiting briefly for the reaper."""
    deadline = time.monotonic() + settle
    while True:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def populate(box: Sandbox) -> None:
    """A namespace, a veth pair to it, a bridge and a masquerade rule, all inside ``box``."""
    box.namespace("sbx-a").create()
    Bridge("sbx-br0", runner=box.runner).create(up=True)
    VethPair("sbx-veth0", "eth0", peer_netns="sbx-a", master="sbx-br0", runner=box.runner).create(up=True)
    Link("sbx-br0", runner=box.runner).add_address("10.77.0.1/24")
    NatRule("10.77.0.0/24", bridge="sbx-br0", owner="sbxtest", runner=box.runner).apply()


def test_sandbox_work_is_invisible_on_the_real_host(sandbox: Sandbox) -> None:
    before = real_state()
    populate(sandbox)
    # the sandbox does see its own work ...
    inside = HostState.capture(sandbox.runner)
    assert "sbx-a" in inside.namespaces
    assert any(link.startswith("sbx-br0 ") for link in inside.links)
    assert "10.77.0.0/24" in inside.iptables
    # ... and the real host sees none of it
    during = real_state()
    assert during.diff(before) == []
    real_netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert "sbx-a" not in real_netns
    real_links = json.loads(
        subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, check=True).stdout
    )
    assert not [d for d in real_links if d["ifname"].startswith("sbx-")]
    real_save = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    assert "10.77.0.0/24" not in real_save and "sbxtest" not in real_save


def test_leaving_after_an_exception_destroys_the_sandbox(sandbox: Sandbox) -> None:
    before = real_state()
    box = Sandbox()
    with pytest.raises(RuntimeError, match="boom"), box:
        holder = box.pid
        net = os.readlink(f"/proc/{holder}/ns/net")
        assert holder in holders_of(net)
        populate(box)
        sleeper = box.start(["sleep", "300"], netns="sbx-a")
        raise RuntimeError("boom")
    assert sleeper.poll() is not None
    assert gone(holder)
    assert holders_of(net) == []  # nothing holds the sandbox's network namespace: the kernel freed it
    with pytest.raises(SandboxError, match="not open"):
        box.runner  # noqa: B018
    assert real_state().diff(before) == []


def test_processes_started_inside_are_ended(sandbox: Sandbox) -> None:
    box = Sandbox()
    with box:
        box.namespace("sbx-a").create()
        tracked_host = box.start(["sleep", "300"])
        tracked_ns = box.start(["sleep", "300"], netns="sbx-a")
        # a process the sandbox did not start itself: detached from a command run inside
        detached = box.run(["ip", "netns", "exec", "sbx-a", "sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"])
        orphan = int(detached.check().stdout.strip())
        assert not gone(orphan, settle=0)
        assert orphan in box.pids_inside()
    assert tracked_host.poll() is not None
    assert tracked_ns.poll() is not None
    assert gone(orphan)


def test_netnskit_demo_exits_0_and_leaves_the_real_host_unchanged(sandbox: Sandbox) -> None:
    before = real_state()
    done = subprocess.run(
        [sys.executable, "-m", "netnskit", "demo"], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[FAIL]" not in done.stdout
    assert "$ ip netns add red" in done.stdout  # the commands are shown as they run
    assert real_state().diff(before) == []


def test_an_object_made_without_a_runner_inside_a_sandbox_changes_the_sandbox_not_the_host() -> None:
    from netnskit import Namespace

    before = real_state()
    with Sandbox() as box:
        Namespace("sbx-forgot").create()  # no runner=box.runner: the open sandbox's is used
        assert "sbx-forgot" in Namespace.names(box.runner)
        assert real_state().diff(before) == []
    assert real_state().diff(before) == []


def test_the_sandbox_covers_etc_and_run_netnskit(sandbox: Sandbox, tmp_path) -> None:
    real_netns = os.path.isdir("/etc/netns")
    # /etc/netns inside starts empty and takes files; /etc takes a new file; /run/netnskit is its own
    assert sandbox.run(["find", "/etc/netns", "-mindepth", "1"]).check().stdout == ""
    sandbox.run(["mkdir", "-p", "/etc/netns/sbx"]).check()
    sandbox.run(["tee", "/etc/netns/sbx/hosts", "/etc/netnskit-sandbox-test", "/run/netnskit/x"], input="x\n").check()
    assert sandbox.run(["cat", "/etc/netns/sbx/hosts"]).stdout == "x\n"
    assert sandbox.run(["cat", "/etc/hostname"]).stdout == Path("/etc/hostname").read_text()  # the rest of /etc
    # none of it reached the real host
    # (the real /run/netnskit may change meanwhile: other netnskit processes keep their locks there)
    assert not os.path.exists("/etc/netnskit-sandbox-test")
    assert os.path.isdir("/etc/netns") == real_netns and not os.path.exists("/etc/netns/sbx")
    assert not os.path.exists("/run/netnskit/x")
    mounts = sandbox.run(["cat", "/proc/self/mountinfo"]).check().stdout
    assert " /etc rw," in mounts and " - overlay netnskit-sandbox-etc " in mounts
    assert " /etc/netns rw," in mounts and " /run/netnskit rw," in mounts

"""The locks of Network.up/down: flock on files of a root-owned folder, for the place the runner acts in.

No network command runs: the place is read through the runner (``readlink /proc/self/ns/net``).
"""

from __future__ import annotations

import contextlib
import os
import stat

import pytest

from netnskit.errors import BusyError, NetnskitError
from netnskit.network import locks
from netnskit.network.locks import _exclusive, place_of
from netnskit.runner import LiveRunner, Runner
from netnskit.testing import FakeRunner


def claim_twice(first: Runner, second: Runner, name: str) -> None:
    with contextlib.ExitStack() as stack:
        stack.enter_context(_exclusive(first, name))
        stack.enter_context(_exclusive(second, name, wait=0.2))


def at(place: str) -> FakeRunner:
    """A runner whose place reads as network namespace ``place``."""
    return FakeRunner().on(["readlink", "/proc/self/ns/net"], stdout=f"net:[{place}]\n")


def test_a_second_claim_on_the_same_network_fails_clearly_and_is_free_again_after() -> None:
    with pytest.raises(BusyError, match="network 'lock-test' is being changed by another process"):
        claim_twice(LiveRunner(), LiveRunner(), "lock-test")
    with _exclusive(LiveRunner(), "lock-test"):
        pass


def test_a_very_long_network_name_still_gets_a_claim() -> None:
    with pytest.raises(BusyError, match="being changed by another process"):
        claim_twice(LiveRunner(), LiveRunner(), "n" * 255)


def test_any_runner_locks_the_place_it_acts_in() -> None:
    """A wrapping or fake runner does not lose the lock: the place is read through it."""
    with pytest.raises(BusyError):
        claim_twice(at("4026531840"), at("4026531840"), "lock-test")
    claim_twice(at("4026531840"), at("4026532999"), "lock-test")  # another place: no contention


def test_the_place_is_the_namespace_the_runner_reads() -> None:
    assert place_of(LiveRunner()) == str(os.stat("/proc/self/ns/net").st_ino)
    assert place_of(at("42")) == "42"


def test_the_host_lock_is_waited_for_then_refused_as_busy() -> None:
    with (
        _exclusive(at("7"), None),
        pytest.raises(BusyError, match="held the host lock for 0 s"),
        _exclusive(at("7"), "other", wait=0.05),
    ):
        pass


def test_a_lock_folder_someone_else_may_write_is_refused(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "locks"
    folder.mkdir()
    folder.chmod(0o777)
    monkeypatch.setenv("NETNSKIT_LOCK_DIR", str(folder))
    with pytest.raises(NetnskitError, match="refusing the lock folder"), _exclusive(at("1"), "x"):
        pass
    folder.chmod(0o700)
    with _exclusive(at("1"), "x"):
        pass
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_root_locks_in_run_netnskit_by_default(monkeypatch) -> None:
    monkeypatch.delenv("NETNSKIT_LOCK_DIR")
    assert locks.lock_dir() == ("/run/netnskit" if os.geteuid() == 0 else locks.lock_dir())

"""The locks of Network.up/down with a LiveRunner: a second claim on the same network fails at once.

They are abstract unix sockets (per network namespace, dropped by the kernel with the process);
no command runs, so these need no root.
"""

from __future__ import annotations

import contextlib

import pytest

from netnskit.errors import NetnskitError
from netnskit.network.locks import _exclusive
from netnskit.runner import LiveRunner, Runner
from netnskit.testing import FakeRunner


def claim_twice(runner: Runner, name: str) -> None:
    with contextlib.ExitStack() as stack:
        stack.enter_context(_exclusive(runner, name))
        stack.enter_context(_exclusive(runner, name))


def test_a_second_claim_on_the_same_network_fails_clearly_and_is_free_again_after() -> None:
    with pytest.raises(NetnskitError, match="network 'lock-test' is being changed by another process"):
        claim_twice(LiveRunner(), "lock-test")
    with _exclusive(LiveRunner(), "lock-test"):
        pass


def test_a_very_long_network_name_still_gets_a_claim() -> None:
    with pytest.raises(NetnskitError, match="being changed by another process"):
        claim_twice(LiveRunner(), "n" * 255)


def test_other_runners_take_no_lock() -> None:
    claim_twice(FakeRunner(), "lock-test")

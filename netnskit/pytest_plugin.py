"""pytest fixtures shipped with netnskit (entry point ``pytest11``): fake_runner and sandbox.

``sandbox`` skips with the reason where a sandbox cannot be made (not root, a tool missing);
where ``CI=true`` or ``NETNSKIT_REQUIRE_LIVE=1`` is set it fails instead, so that CI cannot
pass by skipping every live test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from netnskit.sandbox import Sandbox, sandbox_problem
from netnskit.testing import FakeRunner

__all__ = ["fake_runner", "live_required", "sandbox"]


def live_required() -> bool:
    """True where live tests must run rather than skip (CI, or NETNSKIT_REQUIRE_LIVE=1)."""
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("NETNSKIT_REQUIRE_LIVE") == "1"


@pytest.fixture
def fake_runner() -> FakeRunner:
    """A fresh FakeRunner that records every argv."""
    return FakeRunner()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A throwaway host (fresh net and mount namespaces), destroyed after the test."""
    problem = sandbox_problem()
    if problem:
        if live_required():
            pytest.fail(f"live test cannot run: {problem}", pytrace=False)
        pytest.skip(f"live test skipped: {problem}")
    with Sandbox() as box:
        yield box

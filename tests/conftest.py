"""Shared test set-up: live tests are marked, under CI a skipped live test fails, locks go to a folder of the run."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from netnskit.pytest_plugin import live_required

_LOCKS: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    # the tests' networks take their locks in a folder of the test run's, not the host's /run/netnskit
    if "NETNSKIT_LOCK_DIR" not in os.environ:
        _LOCKS.append(tempfile.mkdtemp(prefix="netnskit-locks-"))
        os.environ["NETNSKIT_LOCK_DIR"] = _LOCKS[0]


def pytest_unconfigure(config: pytest.Config) -> None:
    for folder in _LOCKS:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("NETNSKIT_LOCK_DIR", None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/live/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.live)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.get_closest_marker("live") and live_required():
        report.outcome = "failed"
        report.longrepr = f"live test skipped under CI, which counts as a failure: {report.longrepr}"

"""Shared test set-up: live tests are marked, and under CI a skipped live test fails."""

from __future__ import annotations

import pytest

from netnskit.pytest_plugin import live_required


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

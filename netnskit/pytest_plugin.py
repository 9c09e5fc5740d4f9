"""pytest fixtures shipped with netnskit (entry point ``pytest11``): fake_runner, sandbox and netnskit_network.

``netnskit_network`` is a factory: ``net = netnskit_network("topo.toml")`` (a path next to the test
file, or from the current folder; or a ``Network``) brings the network up inside a fresh sandbox
and returns a :class:`netnskit.testing.LiveNetwork` (``assert_reachable``, ``assert_reachability``,
``exec``, ``logs`` and every method of the Network). After the test its processes are stopped, it
is brought down and the sandbox closed. When the test fails, the report carries each process's log
(a section ``netnskit log NETWORK/PROCESS``); with ``--netnskit-capture`` each link is captured
during the test and, on failure, the pcaps are kept in ``--netnskit-capture-dir`` (default
``netnskit-captures/`` under the rootdir), a folder per test that the report names.

``sandbox`` and ``netnskit_network`` skip with the reason where a sandbox cannot be made (not root,
a tool missing); where ``CI=true`` or ``NETNSKIT_REQUIRE_LIVE=1`` is set they fail instead, so that
CI cannot pass by skipping every live test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netnskit.harness import Harness, LiveNetwork
from netnskit.sandbox import Sandbox, sandbox_problem
from netnskit.testing import FakeRunner

__all__ = ["fake_runner", "live_required", "netnskit_network", "sandbox"]

_HARNESS = pytest.StashKey[Harness]()


def live_required() -> bool:
    """True where live tests must run rather than skip (CI, or NETNSKIT_REQUIRE_LIVE=1)."""
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("NETNSKIT_REQUIRE_LIVE") == "1"


def _need_a_sandbox() -> None:
    problem = sandbox_problem()
    if problem:
        if live_required():
            pytest.fail(f"live test cannot run: {problem}", pytrace=False)
        pytest.skip(f"live test skipped: {problem}")


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--netnskit-capture`` and ``--netnskit-capture-dir``."""
    group = parser.getgroup("netnskit")
    group.addoption(
        "--netnskit-capture",
        action="store_true",
        default=False,
        help="capture each link of a netnskit_network during the test; keep the pcaps when it fails",
    )
    group.addoption(
        "--netnskit-capture-dir",
        default="netnskit-captures",
        metavar="DIR",
        help="where a failing test's pcaps are kept, a folder per test (default: netnskit-captures in the rootdir)",
    )


@pytest.fixture
def fake_runner() -> FakeRunner:
    """A fresh FakeRunner that records every argv."""
    return FakeRunner()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A throwaway host (fresh net and mount namespaces), destroyed after the test."""
    _need_a_sandbox()
    with Sandbox() as box:
        yield box


@pytest.fixture
def netnskit_network(request: pytest.FixtureRequest) -> Iterator[Callable[..., LiveNetwork]]:
    """A factory: ``netnskit_network("topo.toml")`` brings the network up in a fresh sandbox, for this test."""
    _need_a_sandbox()
    capture_dir = None
    if request.config.getoption("--netnskit-capture"):
        capture_dir = Path(request.config.rootpath, request.config.getoption("--netnskit-capture-dir"))
    harness = Harness(base_dir=request.path.parent, capture_dir=capture_dir)
    request.node.stash[_HARNESS] = harness
    try:
        yield harness.network
    finally:
        del request.node.stash[_HARNESS]
        harness.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """A failing test's report gets its networks' process logs (and where its captures were kept)."""
    harness = item.stash.get(_HARNESS, None)
    failed = call.excinfo is not None and not call.excinfo.errisinstance(pytest.skip.Exception)
    if harness is not None and failed and call.when == "call":
        try:
            sections = harness.failure_sections(item.nodeid)
        except Exception as exc:  # the report must still be made: say why the logs are missing
            sections = [("netnskit", f"could not collect the processes' logs: {type(exc).__name__}: {exc}")]
        for title, text in sections:
            item.add_report_section(call.when, title, text)
            item.user_properties.append(("netnskit", title))
    yield

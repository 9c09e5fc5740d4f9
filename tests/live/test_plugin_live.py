"""The pytest plugin used as a user would: ``netnskit_network("web.toml")`` in a test, then asserts.

The first tests are plain tests of a network; the others run a test file of their own with pytester
(a failing test, then its report) to check what the plugin adds to a failing test's report: the
processes' logs, and with ``--netnskit-capture`` a pcap of each link kept in a folder it names.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from _readme import readme_block

from netnskit.testing import LiveNetwork

pytest_plugins = ["pytester"]

WEB = Path(__file__).with_name("web.toml")
FETCH = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode(), end='')"


def test_the_server_answers_the_client_by_name(netnskit_network) -> None:
    net: LiveNetwork = netnskit_network("web.toml")  # next to this file; up in a fresh sandbox
    net.assert_reachable("client", "server")  # ping
    net.assert_reachable("client", "server", 8080)  # a TCP handshake
    net.assert_unreachable("client", "server", 9)  # nothing listens there
    page = net.exec("client", [sys.executable, "-c", FETCH, "http://server:8080/"]).stdout
    assert page == "hello from server\n"
    assert net.status().up
    assert "10.60.0.3" in net.logs()["http"]  # the access log names the client


def test_a_reachability_matrix(netnskit_network) -> None:
    net = netnskit_network(WEB)
    rows = net.assert_reachability(
        {
            "client": {"server": True, "server:8080": True, "gateway": True, "server:9": False},
            "host": {"server:8080": True, "client": True},
            ("server", "client:8080"): False,
        }
    )
    assert [(r.src, r.target, r.ok) for r in rows] == [
        ("client", "server", True),
        ("client", "server:8080", True),
        ("client", "gateway", True),
        ("client", "server:9", False),
        ("host", "server:8080", True),
        ("host", "client", True),
        ("server", "client:8080", False),
    ]


def test_a_matrix_that_does_not_hold_prints_a_table(netnskit_network) -> None:
    net = netnskit_network(WEB)
    with pytest.raises(AssertionError) as info:
        net.assert_reachability({"client": {"server:8080": False, "server:9": True, "server": True}})
    text = str(info.value)
    assert "differs from what was expected (2 of 3)" in text
    table = text.splitlines()
    header = next(i for i, line in enumerate(table) if line.startswith("from \\ to"))
    assert table[header].split() == ["from", "\\", "to", "server:8080", "server:9", "server"]
    assert re.fullmatch(r"client\s+YES \(expected no\)\s+NO \(expected yes\)\s+yes", table[header + 1]), table
    assert "client -> server:9: expected reachable; tcp 10.60.0.2 port 9:" in text


INNER = """
import sys

WEB = {web!r}
FETCH = {fetch!r}


def test_fetches_then_fails(netnskit_network):
    net = netnskit_network(WEB)
    net.exec("client", [sys.executable, "-c", FETCH, "http://server:8080/"])
    net.assert_reachable("client", "server")
    assert False, "the failure whose report we look at"


def test_passes(netnskit_network):
    netnskit_network(WEB).assert_reachable("client", "server", 8080)
"""


def inner(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=INNER.format(web=str(WEB), fetch=FETCH))


def test_a_failing_tests_report_carries_the_process_logs(pytester: pytest.Pytester) -> None:
    inner(pytester)
    run = pytester.inline_run("-p", "no:cacheprovider")
    run.assertoutcome(passed=1, failed=1)
    (failed,) = [r for r in run.getreports("pytest_runtest_logreport") if r.when == "call" and r.failed]
    sections = dict(failed.sections)
    (title,) = [t for t in sections if t.startswith("Captured netnskit log web/http ")]
    assert re.fullmatch(r"Captured netnskit log web/http \(/run/netnskit/logs/\d+/web/http\.log\) call", title)
    log = sections[title]
    assert "Serving HTTP on 10.60.0.2 port 8080" in log
    assert re.search(r'10\.60\.0\.3 - - \[.*\] "GET / HTTP/1\.1" 200', log), log
    passed = [r for r in run.getreports("pytest_runtest_logreport") if r.when == "call" and r.passed]
    assert passed and not any(t.startswith("Captured netnskit") for t, _ in passed[0].sections)


def test_capture_keeps_a_pcap_of_each_link_of_a_failing_test(pytester: pytest.Pytester) -> None:
    inner(pytester)
    result = pytester.runpytest("-p", "no:cacheprovider", "--netnskit-capture")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*Captured netnskit captures call*", "a pcap of each link during the test, in *"])
    folder = Path(re.search(r"a pcap of each link during the test, in (\S+):", result.stdout.str()).group(1))
    assert folder == pytester.path / "netnskit-captures" / "test_inner.py__test_fetches_then_fails"
    assert sorted(p.name for p in folder.iterdir()) == ["web-veth-client.pcap", "web-veth-server.pcap"]
    # the client's link holds the ping and the HTTP exchange
    client = subprocess.run(
        ["tcpdump", "-r", str(folder / "web-veth-client.pcap"), "-n"], capture_output=True, text=True, check=True
    ).stdout
    assert "10.60.0.3 > 10.60.0.2: ICMP echo request" in client
    assert re.search(r"10\.60\.0\.3\.\d+ > 10\.60\.0\.2\.8080: Flags \[S\]", client), client
    # the passing test kept nothing
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]


def test_the_readmes_example_test_passes(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", shop=readme_block("toml", 'name = "shop"'))
    pytester.mkdir("site").joinpath("index.html").write_text("<p>hello from the shop</p>\n")
    pytester.makepyfile(test_shop=readme_block("python", "def test_the_client_gets_the_page_by_name"))
    run = pytester.inline_run("-p", "no:cacheprovider")
    run.assertoutcome(passed=2)

"""The command line: parsing, exit codes, and the demo verb's refusal where no sandbox can be made."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

import netnskit.demo
import netnskit.sandbox
from netnskit.cli import build_parser, main


@pytest.mark.parametrize("argv", [["-v", "demo"], ["demo", "-v"], ["--verbose", "demo"]])
def test_verbose_before_or_after_the_verb(argv):
    args = build_parser().parse_args(argv)
    assert (args.verb, args.verbose) == ("demo", True)


def test_not_verbose_by_default():
    assert build_parser().parse_args(["demo"]).verbose is False


def test_a_verb_is_required(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "VERB" in capsys.readouterr().err


@pytest.mark.parametrize(("passed", "code"), [(True, 0), (False, 1)])
def test_demo_exit_code_follows_the_checks(monkeypatch, passed, code):
    monkeypatch.setattr(netnskit.sandbox, "sandbox_problem", lambda: None)
    calls = []
    monkeypatch.setattr(netnskit.demo, "run_demo", lambda: calls.append(1) or passed)
    assert main(["demo"]) == code
    assert calls == [1]


def test_demo_refuses_with_the_reason_where_no_sandbox_can_be_made(monkeypatch, capsys):
    monkeypatch.setattr(netnskit.sandbox, "sandbox_problem", lambda: "a sandbox needs root")
    monkeypatch.setattr(netnskit.demo, "run_demo", lambda: pytest.fail("the demo must not start"))
    assert main(["demo"]) == 2
    assert "a sandbox needs root" in capsys.readouterr().err


def test_verbose_logs_the_netnskit_logger_at_debug(monkeypatch):
    monkeypatch.setattr(netnskit.sandbox, "sandbox_problem", lambda: None)
    monkeypatch.setattr(netnskit.demo, "run_demo", lambda: True)
    seen = {}
    monkeypatch.setattr(logging, "basicConfig", lambda **kw: seen.update(kw))
    assert main(["demo", "-v"]) == 0
    assert seen["level"] == logging.DEBUG


def test_python_dash_m_netnskit_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "netnskit", "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert "demo" in done.stdout

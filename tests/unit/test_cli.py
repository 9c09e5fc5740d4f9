"""The command line: parsing, exit codes, and the demo verb's refusal where no sandbox can be made."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import netnskit
import netnskit.demo
import netnskit.sandbox
from netnskit.cli import build_parser, main
from netnskit.testing import FakeRunner


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


@pytest.fixture(autouse=True)
def root(monkeypatch):
    """Root, wherever the unit tests run (the not_root fixture says otherwise)."""
    import netnskit._privilege

    monkeypatch.setattr(netnskit._privilege, "privilege_problem", lambda: None)


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


# --- issue 13, finding 9: the command line behaves ----------------------------------------------------

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed.toml"
NEEDS_ROOT = "needs root (CAP_NET_ADMIN): run as root"


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"netnskit {netnskit.__version__}\n"


def test_the_top_level_help_is_plain_text_with_the_verbs_examples_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "``" not in out and ":class:" not in out and ":mod:" not in out and "`" not in out
    for verb in ("demo", "plan", "up", "down", "status", "check", "cleanup"):
        assert f"\n    {verb} " in out
    assert "examples:\n  netnskit plan examples/seed.toml" in out
    assert "exit codes:\n  0   success" in out and "\n  4   not root" in out and "\n  141 " in out


@pytest.mark.parametrize("verb", ["demo", "plan", "up", "down", "status", "check", "cleanup"])
def test_every_verb_has_a_description_and_an_example(capsys, verb):
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    description = out.split("\n\n")[1]
    assert description and not description.startswith(("positional", "options"))
    assert "\nexample:\n  " in out and f"netnskit {verb}" in out.split("\nexample:\n")[1]


def test_batch_is_gone(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["up", "--batch", str(SEED)], runner=FakeRunner(strict=True))
    assert exc.value.code == 2
    assert "unrecognized arguments: --batch" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--sandbox", "status", str(SEED)],
        ["status", "--sandbox", str(SEED)],
        ["check", "--sandbox", str(SEED)],
        ["down", "--sandbox", str(SEED)],
        ["cleanup", "--sandbox"],
        ["plan", "--sandbox", str(SEED)],
    ],
)
def test_sandbox_is_refused_where_it_means_nothing(capsys, argv):
    fake = FakeRunner(strict=True)
    assert main(argv, runner=fake) == 2
    verb = next(a for a in argv if not a.startswith("-"))
    assert capsys.readouterr().err == (
        f"netnskit {verb}: --sandbox goes with demo and up only (up --sandbox brings the network up in a "
        f"throwaway sandbox, checks it and takes it down); {verb} in a sandbox that is then gone would show "
        "nothing\n"
    )
    assert fake.argvs == []


def test_up_sandbox_refuses_a_runner_given_to_main(capsys):
    fake = FakeRunner(strict=True)
    assert main(["up", "--sandbox", str(SEED)], runner=fake) == 2
    assert "--sandbox makes its own runner" in capsys.readouterr().err
    assert fake.argvs == []


# --- not root: one message, exit 4, before any command ----------------------------------------------


@pytest.fixture
def not_root(monkeypatch):
    """This process lacks CAP_NET_ADMIN; the host's runner and the sandbox would fail the test if used."""
    import netnskit._privilege
    import netnskit.cli

    monkeypatch.setattr(netnskit._privilege, "privilege_problem", lambda: NEEDS_ROOT)
    host = FakeRunner(strict=True)
    monkeypatch.setattr(netnskit.cli, "default_runner", lambda: host)
    monkeypatch.setattr(netnskit.sandbox.Sandbox, "open", lambda self: pytest.fail("no sandbox may be made"))
    monkeypatch.setattr(netnskit.demo, "run_demo", lambda: pytest.fail("the demo must not start"))
    return host


@pytest.mark.parametrize(
    "argv",
    [
        ["up", str(SEED)],
        ["up", "--sandbox", str(SEED)],
        ["--sandbox", "up", str(SEED)],
        ["down", str(SEED)],
        ["status", str(SEED)],
        ["status", "--json", str(SEED)],
        ["check", str(SEED)],
        ["cleanup"],
        ["demo"],
        ["--sandbox", "demo"],
    ],
)
def test_not_root_is_one_message_and_exit_4_before_any_command(not_root, capsys, argv):
    assert main(argv) == 4
    verb = next(a for a in argv if not a.startswith("-"))
    assert capsys.readouterr() == ("", f"netnskit {verb}: {NEEDS_ROOT}\n")
    assert not_root.argvs == []


def test_plan_needs_no_root(not_root, capsys):
    assert main(["plan", str(SEED)]) == 0
    assert capsys.readouterr().out.startswith("#!/usr/bin/env bash")


def test_a_permission_refused_by_the_kernel_is_exit_4_too(capsys):
    fake = FakeRunner()
    fake.fail("ip -j netns list", "Cannot open network namespace: Permission denied\n")
    assert main(["status", str(SEED)], runner=fake) == 4
    assert "Permission denied" in capsys.readouterr().err


# --- a closed pipe: quiet, exit 141 ------------------------------------------------------------------


def test_a_closed_pipe_is_quiet_and_exits_141():
    # the reader is gone before netnskit writes (as `netnskit status FILE | head -1` once head has its line)
    proc = subprocess.Popen(
        [sys.executable, "-m", "netnskit", "plan", str(SEED)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait() == 141
    assert err == ""


def test_a_closed_pipe_inside_main_returns_141_and_prints_nothing(monkeypatch, capsys):
    class Closed:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["status", str(SEED)], runner=FakeRunner()) == 141
    assert capsys.readouterr().err == ""


# --- JSON with a schema version ----------------------------------------------------------------------


def test_status_json_has_a_schema_and_missing_as_objects(capsys):
    assert main(["status", "--json", str(SEED)], runner=FakeRunner()) == 3
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == 1 and data["name"] == "seed" and data["up"] is False
    assert set(data) == {
        "schema",
        "name",
        "up",
        "namespaces",
        "host_links",
        "host_addresses",
        "host_routes",
        "rules",
        "missing",
        "conflicts",
        "processes",
        "files",
        "impairments",
        "extra",
        "firewall",
    }
    assert data["firewall"] == "iptables (as set)"
    assert data["missing"][0] == {"step": "create namespace red", "kind": "netns", "name": "red", "netns": None}
    assert data["missing"][1] == {
        "step": "mark namespace red as netnskit:seed and bring its loopback up",
        "kind": "setting",
        "name": None,
        "netns": "red",
    }
    kinds = {m["kind"] for m in data["missing"]}
    assert kinds == {"netns", "setting", "sysctl", "link", "address", "route", "file", "firewall", "process"}


def test_check_json_has_a_schema(capsys):
    fake = FakeRunner()  # nothing of the network exists: check says it is down, probes nothing, exits 3
    assert main(["check", "--json", str(SEED)], runner=fake) == 3
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == 1 and data["ok"] is False and data["probes"] == []


# --- progress: steps on stdout with --serial, a counter on stderr only when it is a terminal ---------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_counts_on_a_terminal_and_clears_its_line():
    from netnskit.cli import _Progress

    stream = Terminal()
    progress = _Progress("up", steps=False, stream=stream)
    progress(1, 3, "a")
    progress(2, 3, "b")  # within 0.1 s of the last: not shown
    progress(3, 3, "c")  # the last is always shown
    progress.close()
    assert stream.getvalue() == "\rnetnskit up: 1/3 steps\rnetnskit up: 3/3 steps\r\x1b[K"


def test_progress_is_silent_when_stderr_is_not_a_terminal():
    from netnskit.cli import _Progress

    stream = io.StringIO()
    progress = _Progress("up", steps=False, stream=stream)
    progress(1, 1, "a")
    progress.close()
    assert stream.getvalue() == ""


@pytest.mark.parametrize("executor", ["serial", "batch"])
def test_executors_report_every_step_once_in_order_of_completion(executor):
    from netnskit.executors import BatchExecutor, SerialExecutor
    from netnskit.network import Network

    seen: list[tuple[int, int, str]] = []
    steps = Network.from_toml(SEED).plan()
    report = lambda done, total, what: seen.append((done, total, what))  # noqa: E731
    run = SerialExecutor(progress=report) if executor == "serial" else BatchExecutor(progress=report)
    run.apply(steps, FakeRunner())
    assert [d for d, _, _ in seen] == list(range(1, len(steps) + 1))
    assert {t for _, t, _ in seen} == {len(steps)}
    assert sorted(w for _, _, w in seen) == sorted(s.description for s in steps)
    seen.clear()
    run.remove(steps, FakeRunner())
    assert seen and seen[-1][0] == seen[-1][1]


def test_xtables_wait_from_the_command_line_reaches_the_firewall(capsys):
    fake = FakeRunner()
    # the seed's web server is ready once blue listens on port 80
    fake.on("nsenter --net=/run/netns/blue -- ss -H -ltn sport = :80", stdout="LISTEN 0 5 192.168.15.2:80 *:*\n")
    assert main(["up", "--serial", "--xtables-wait", "3", str(SEED)], runner=fake) == 0
    restores = [a for a in fake.argvs if a[0] == "iptables-restore"]
    assert restores == [["iptables-restore", "-w", "3", "--noflush"]]


@pytest.mark.parametrize("bad", ["0", "x", "3601", "٣"])
def test_a_bad_xtables_wait_is_a_usage_error(capsys, bad):
    with pytest.raises(SystemExit) as exc:
        main(["up", "--xtables-wait", bad, str(SEED)], runner=FakeRunner(strict=True))
    assert exc.value.code == 2
    assert "argument --xtables-wait: must be a whole number of seconds from 1 to 3600" in capsys.readouterr().err

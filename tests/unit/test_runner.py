"""The runners: LiveRunner through pytest-subprocess's ``fp``, composition, ssh quoting, ShRunner.

``fp`` replaces ``subprocess.Popen``, so no real process starts in the LiveRunner tests (except
the one that proves a missing program is reported: it asks for a path that cannot exist).
ShRunner forks through the ``sh`` package, which ``fp`` cannot see, so it runs harmless real
commands (``true``, ``false``, ``sh -c``, ``cat``).
"""

from __future__ import annotations

import logging
import pickle
import shlex
import subprocess
import threading

import pytest

from netnskit import (
    CommandError,
    CommandNotFoundError,
    CommandTimeoutError,
    LiveRunner,
    NotFoundError,
    PermissionDeniedError,
    PrefixRunner,
    Result,
    Runner,
    ShRunner,
    SshRunner,
    ValidationError,
    netns_runner,
    nsenter_runner,
    sudo_runner,
)
from netnskit.runner import end_process, package_for, read_line
from netnskit.testing import FakeRunner

MISSING = "/nonexistent/netnskit-test/ip"

# --- Result ------------------------------------------------------------------------------------


def test_result_converts_argv_to_tuple_and_ok_follows_returncode():
    assert Result(["ip", "link"], 0).argv == ("ip", "link")
    assert Result(["ip"], 0).ok
    assert not Result(["ip"], 2).ok


def test_result_check_returns_self_on_success():
    result = Result(["ip", "link"], 0, "out", "")
    assert result.check("listing") is result


def test_result_check_raises_mapped_error_with_action():
    result = Result(["ip", "link", "del", "x"], 1, "", 'Cannot find device "x"\n')
    with pytest.raises(CommandError) as info:
        result.check("deleting link 'x'")
    assert type(info.value).__name__ == "NotFoundError"
    assert info.value.action == "deleting link 'x'"
    assert info.value.argv == ("ip", "link", "del", "x")


# --- LiveRunner with fp ---------------------------------------------------------------------------


def test_live_runner_runs_exact_argv_and_returns_output(fp):
    fp.register(["ip", "-j", "netns", "list"], stdout='[{"name":"red"}]\n', stderr="warn\n", returncode=0)
    result = LiveRunner().run(["ip", "-j", "netns", "list"])
    assert result == Result(["ip", "-j", "netns", "list"], 0, '[{"name":"red"}]\n', "warn\n")
    assert fp.call_count(["ip", "-j", "netns", "list"]) == 1


def test_live_runner_never_uses_a_shell_and_closes_stdin_without_input(fp):
    recorder = fp.register(["ip", "link"])
    LiveRunner().run(["ip", "link"])
    kwargs = recorder.calls[0].kwargs
    assert not kwargs.get("shell")
    assert kwargs["stdin"] == subprocess.DEVNULL
    assert kwargs["text"] is True


def test_live_runner_passes_args_that_look_like_shell_verbatim(fp):
    argv = ["echo", "a b", "$(reboot)", ";", "'q'"]
    fp.register(argv, stdout="a b $(reboot) ; 'q'\n")
    result = LiveRunner().run(argv)
    assert result.argv == tuple(argv)
    assert result.stdout == "a b $(reboot) ; 'q'\n"


def test_live_runner_nonzero_exit_is_a_result_not_an_exception(fp):
    fp.register(
        ["ip", "netns", "add", "red"],
        stderr='Cannot create namespace file "/run/netns/red": File exists\n',
        returncode=1,
    )
    result = LiveRunner().run(["ip", "netns", "add", "red"])
    assert result.returncode == 1
    assert not result.ok
    assert result.stderr == 'Cannot create namespace file "/run/netns/red": File exists\n'


def test_live_runner_turns_a_timeout_into_command_timeout_error(fp):
    # fp's communicate() ignores timeouts, so the fake process raises what subprocess would.
    def expire(process):
        raise subprocess.TimeoutExpired(["sleep", "10"], 0.05, output=b"partial", stderr=b"err\xff")

    fp.register(["sleep", "10"], callback=expire)
    with pytest.raises(CommandTimeoutError) as info:
        LiveRunner().run(["sleep", "10"], timeout=0.05)
    assert info.value.argv == ("sleep", "10")
    assert info.value.stdout == "partial"
    assert info.value.stderr == "err\ufffd"
    assert str(info.value) == "running a command timed out: `sleep 10` did not finish"
    assert isinstance(info.value.__cause__, subprocess.TimeoutExpired)


@pytest.mark.parametrize("runner_timeout, call_timeout", [(60.0, 0.2), (0.2, None)])
def test_live_runner_timeout_is_enforced_on_a_real_process(runner_timeout, call_timeout):
    # A real, harmless process: the call's timeout wins, else the runner's.
    with pytest.raises(CommandTimeoutError):
        LiveRunner(timeout=runner_timeout).run(["sleep", "30"], timeout=call_timeout)


def test_live_runner_missing_program_names_the_debian_package(fp):
    fp.pass_command([MISSING, "link"])  # a real exec of a path that cannot exist
    with pytest.raises(CommandNotFoundError) as info:
        LiveRunner().run([MISSING, "link"])
    assert info.value.program == MISSING
    assert info.value.package == "iproute2"
    assert "apt-get install iproute2" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize(
    ("program", "package"),
    [
        ("ip", "iproute2"),
        ("/usr/sbin/iptables", "iptables"),
        ("iptables-save", "iptables"),
        ("ping", "iputils-ping"),
        ("nsenter", "util-linux"),
        ("ssh", "openssh-client"),
        ("frob", "frob"),
    ],
)
def test_package_for(program, package):
    assert package_for(program) == package


def test_live_runner_feeds_input_on_stdin(fp):
    seen: list[str] = []

    def stdin(data: str) -> dict[str, str]:
        seen.append(data)
        return {"stdout": data.upper()}

    recorder = fp.register(["iptables-restore", "--noflush"], stdin_callable=stdin)
    result = LiveRunner().run(["iptables-restore", "--noflush"], input="*nat\nCOMMIT\n")
    assert seen == ["*nat\nCOMMIT\n"]
    assert result.stdout == "*NAT\nCOMMIT\n"
    assert recorder.calls[0].kwargs["stdin"] == subprocess.PIPE  # input= makes the pipe


def test_live_runner_rejects_a_string_argv(fp):
    with pytest.raises(TypeError):
        LiveRunner().run("ip link")  # type: ignore[arg-type]
    assert len(fp.calls) == 0


def test_live_runner_logs_each_command_on_the_netnskit_logger(fp, caplog):
    fp.register(["ip", "link", "set", "a b", "up"])
    fp.register(["ip", "link", "del", "x"], stderr='Cannot find device "x"\n', returncode=1)
    caplog.set_level(logging.DEBUG, logger="netnskit")
    LiveRunner().run(["ip", "link", "set", "a b", "up"])
    LiveRunner().run(["ip", "link", "del", "x"])
    messages = [(r.name, r.getMessage()) for r in caplog.records]
    assert ("netnskit", "run: ip link set 'a b' up") in messages
    assert ("netnskit", "run: ip link del x") in messages
    assert ("netnskit", 'exit 1: Cannot find device "x"') in messages


def test_live_runner_start_returns_the_process(fp):
    fp.register(["sleep", "1000"], stdout="ready\n")
    proc = LiveRunner().start(["sleep", "1000"])
    out, _ = proc.communicate()
    assert out == "ready\n"
    assert proc.returncode == 0


def test_live_runner_start_missing_program(fp):
    fp.pass_command([MISSING])
    with pytest.raises(CommandNotFoundError):
        LiveRunner().start([MISSING])


def test_live_runner_survives_bytes_that_are_not_utf8():
    # A real, harmless process: fp hands out text itself, so only a real pipe shows decoding.
    result = LiveRunner().run(["printf", r"a\377b\n"])
    assert result.ok
    assert result.stdout == "a\ufffdb\n"


def test_read_line_then_end_process_on_a_real_process():
    # A real, harmless process: one line, then silence until it is killed.
    proc = LiveRunner().start(["sh", "-c", "echo ready; exec sleep 30"])
    assert read_line(proc.stdout, 10) == "ready"
    assert read_line(proc.stdout, 0.1) == ""  # nothing more came
    end_process(proc)
    assert proc.returncode == -9  # killed and reaped
    assert proc.stdout is not None and proc.stdout.closed
    assert proc.stderr is not None and proc.stderr.closed
    end_process(proc)  # ending it again changes nothing


def test_read_line_and_end_process_take_a_stand_in_without_pipes():
    proc = FakeRunner().start(["sleep", "9"])
    assert read_line(getattr(proc, "stdout", None), 5) == ""
    end_process(proc)  # type: ignore[arg-type]
    assert proc.returncode == -15


def test_runners_satisfy_the_protocol():
    for runner in (
        LiveRunner(),
        ShRunner(),
        FakeRunner(),
        PrefixRunner(FakeRunner(), ("x",)),
        SshRunner("h", inner=FakeRunner()),
    ):
        assert isinstance(runner, Runner)


# --- composition ------------------------------------------------------------------------------------


def test_prefix_runner_prepends_and_passes_input_and_timeout():
    fake = FakeRunner()
    PrefixRunner(fake, ["a", "b"]).run(["ip", "link"], input="data", timeout=3)
    assert fake.argvs == [["a", "b", "ip", "link"]]
    assert fake.inputs == ["data"]


def test_prefix_runners_nest():
    fake = FakeRunner()
    runner = sudo_runner(netns_runner(fake, "red"))
    runner.run(["ping", "-c", "1", "192.168.15.2"])
    assert fake.argvs == [["ip", "netns", "exec", "red", "sudo", "-n", "--", "ping", "-c", "1", "192.168.15.2"]]


def test_netns_runner():
    fake = FakeRunner()
    netns_runner(fake, "red").run(["ip", "addr"])
    assert fake.argvs == [["ip", "netns", "exec", "red", "ip", "addr"]]


@pytest.mark.parametrize("bad", ["", "a/b", "..", "-n", "red blue"])
def test_netns_runner_validates_the_name(bad):
    with pytest.raises(ValidationError):
        netns_runner(FakeRunner(), bad)


def test_nsenter_runner():
    fake = FakeRunner()
    nsenter_runner(fake, 4242).run(["ip", "link"])
    nsenter_runner(fake, 7, mount=False).run(["ip", "link"])
    assert fake.argvs == [
        ["nsenter", "--target=4242", "--net", "--mount", "--", "ip", "link"],
        ["nsenter", "--target=7", "--net", "--", "ip", "link"],
    ]


@pytest.mark.parametrize("bad", [0, -1, True, "42", 4.2])
def test_nsenter_runner_validates_the_pid(bad):
    with pytest.raises(ValidationError) as info:
        nsenter_runner(FakeRunner(), bad)
    assert info.value.value == bad


def test_sudo_runner():
    fake = FakeRunner()
    sudo_runner(fake).run(["iptables", "-S"])
    assert fake.argvs == [["sudo", "-n", "--", "iptables", "-S"]]


def test_prefix_runner_start_goes_through_the_inner_runner():
    fake = FakeRunner()
    proc = PrefixRunner(fake, ["nsenter", "--target=1", "--net", "--"]).start(["sleep", "9"])
    assert proc.argv == ["nsenter", "--target=1", "--net", "--", "sleep", "9"]
    assert fake.started == [proc]


def test_prefix_runner_enters_a_namespace_after_its_prefix():
    fake = FakeRunner()
    runner = PrefixRunner(fake, ["nsenter", "--target=1", "--net", "--mount", "--"])
    runner.run(["ip", "link"], netns="red")
    proc = runner.start(["sleep", "9"], netns="red", stdin=True)
    assert fake.argvs == [
        ["nsenter", "--target=1", "--net", "--mount", "--", "nsenter", "--net=/run/netns/red", "--", "ip", "link"],
        ["nsenter", "--target=1", "--net", "--mount", "--", "nsenter", "--net=/run/netns/red", "--", "sleep", "9"],
    ]
    assert proc is fake.started[0]


# --- ssh quoting ------------------------------------------------------------------------------------

HOSTILE = [
    ["ip", "link", "set", "a b", "up"],
    ["echo", "x; rm -rf /"],
    ["echo", "$(reboot)", "`id`", "$HOME"],
    ["echo", "it's", 'say "hi"', "\\"],
    ["echo", "line1\nline2", "tab\there"],
    ["echo", "", "*", "?", "~", "&&", "|", ">", "<", "#"],
]


@pytest.mark.parametrize("argv", HOSTILE)
def test_ssh_runner_quotes_every_word_for_the_remote_shell(argv):
    fake = FakeRunner()
    SshRunner("router1", inner=fake).run(argv)
    (local,) = fake.argvs
    assert local[:5] == ["ssh", "-o", "BatchMode=yes", "router1", "--"]
    assert len(local) == 6
    assert local[5] == shlex.join(argv)
    assert shlex.split(local[5]) == argv


def test_ssh_runner_exact_argv_and_result_names_the_argv_as_asked():
    fake = FakeRunner().on(["ssh", "-o", "BatchMode=yes", "gw", "--", "echo 'a b'"], stdout="a b\n", returncode=0)
    result = SshRunner("gw", inner=fake).run(["echo", "a b"], input="in")
    assert fake.argvs == [["ssh", "-o", "BatchMode=yes", "gw", "--", "echo 'a b'"]]
    assert fake.inputs == ["in"]
    assert result == Result(["echo", "a b"], 0, "a b\n", "")


def test_ssh_runner_passes_failures_through_as_results():
    fake = FakeRunner().fail(lambda argv: argv[0] == "ssh", "RTNETLINK answers: File exists\n", returncode=2)
    result = SshRunner("gw", inner=fake, options=()).run(["ip", "link", "add", "x", "type", "dummy"])
    assert fake.argvs == [["ssh", "gw", "--", "ip link add x type dummy"]]
    assert result.returncode == 2
    with pytest.raises(CommandError) as info:
        result.check("adding x")
    assert info.value.argv == ("ip", "link", "add", "x", "type", "dummy")


@pytest.mark.parametrize("bad", ["", "-oProxyCommand=sh", "a b", "host\n"])
def test_ssh_runner_rejects_hosts_ssh_would_misread(bad):
    with pytest.raises(ValidationError) as info:
        SshRunner(bad, inner=FakeRunner())
    assert info.value.value == bad


# --- ShRunner: same contract, real harmless commands -----------------------------------------------


def test_sh_runner_true_and_false():
    assert ShRunner().run(["true"]) == Result(["true"], 0, "", "")
    assert ShRunner().run(["false"]) == Result(["false"], 1, "", "")


def test_sh_runner_separates_stdout_stderr_and_exit_status():
    argv = ["sh", "-c", "echo x; echo y >&2; exit 3"]
    assert ShRunner().run(argv) == Result(argv, 3, "x\n", "y\n")


def test_sh_runner_and_live_runner_agree():
    argv = ["sh", "-c", "echo x; echo y >&2; exit 3"]
    assert ShRunner().run(argv) == LiveRunner().run(argv)


def test_sh_runner_feeds_input():
    assert ShRunner().run(["cat"], input="a\nb\n") == Result(["cat"], 0, "a\nb\n", "")


def test_sh_runner_gives_empty_stdin_without_input():
    assert ShRunner().run(["cat"], timeout=10) == Result(["cat"], 0, "", "")


def test_sh_runner_stdout_is_a_pipe_like_live_runner():
    argv = ["sh", "-c", "if test -t 1; then echo tty; else echo pipe; fi"]
    assert ShRunner().run(argv).stdout == "pipe\n"
    assert LiveRunner().run(argv).stdout == "pipe\n"


def test_sh_runner_death_by_signal_is_a_result():
    argv = ["sh", "-c", "kill -9 $$"]
    assert ShRunner().run(argv).returncode == -9
    assert LiveRunner().run(argv).returncode == -9


def test_sh_runner_passes_words_verbatim():
    argv = ["printf", "%s|", "a b", "$(reboot)", ";"]
    assert ShRunner().run(argv).stdout == "a b|$(reboot)|;|"


def test_sh_runner_missing_program():
    with pytest.raises(CommandNotFoundError) as info:
        ShRunner().run([MISSING, "link"])
    assert info.value.package == "iproute2"


def test_sh_runner_timeout():
    with pytest.raises(CommandTimeoutError) as info:
        ShRunner().run(["sleep", "30"], timeout=0.2)
    assert info.value.argv == ("sleep", "30")


def test_sh_runner_logs_on_the_netnskit_logger(caplog):
    caplog.set_level(logging.DEBUG, logger="netnskit")
    ShRunner().run(["true", "a b"])
    assert ("netnskit", "run (sh): true 'a b'") in [(r.name, r.getMessage()) for r in caplog.records]


def test_timeout_error_pickles():
    err = CommandTimeoutError(["sleep", "10"], -1, "", "")
    again = pickle.loads(pickle.dumps(err))
    assert again.argv == ("sleep", "10")
    assert str(again) == str(err)


# --- LiveRunner: nsenter --net=FILE -- COMMAND without the nsenter process ------------------------


class _Setns:
    """Records the fds the runner enters (instead of calling setns)."""

    def __init__(self):
        self.paths: list[str] = []
        self.threads: list[int] = []

    def __call__(self, fd: int) -> None:
        import os

        self.paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        self.threads.append(threading.get_ident())


def test_live_runner_enters_the_namespace_itself_and_starts_only_the_command(fp, monkeypatch, tmp_path):
    from netnskit import runner as runner_mod

    spy = _Setns()
    monkeypatch.setattr(runner_mod, "_setns", spy)
    space = tmp_path / "red"
    space.write_text("")
    fp.register(["ip", "-batch", "-"], stdout="done\n")
    result = LiveRunner(netns_dir=str(tmp_path)).run(["ip", "-batch", "-"], input="link set lo up\n", netns="red")
    assert result == Result(("nsenter", f"--net={space}", "--", "ip", "-batch", "-"), 0, "done\n", "")
    assert fp.call_count(["ip", "-batch", "-"]) == 1  # no nsenter process
    assert spy.paths == [str(space)]  # entered once, by a thread of its own
    assert spy.threads != [threading.get_ident()]  # never by the caller's thread


def test_live_runner_missing_namespace_file_answers_as_nsenter_does(fp, monkeypatch, tmp_path):
    from netnskit import runner as runner_mod

    spy = _Setns()
    monkeypatch.setattr(runner_mod, "_setns", spy)
    gone = tmp_path / "gone"
    result = LiveRunner(netns_dir=str(tmp_path)).run(["ip", "link"], netns="gone")
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        f"nsenter: cannot open {gone}: No such file or directory\n",
    )
    assert spy.paths == []
    with pytest.raises(NotFoundError):
        result.check()


def test_live_runner_runs_nsenter_when_it_may_not_enter_namespaces(fp, monkeypatch, tmp_path):
    import errno

    from netnskit import runner as runner_mod

    def refuse(fd: int) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(runner_mod, "_setns", refuse)
    space = tmp_path / "red"
    space.write_text("")
    argv = ["nsenter", f"--net={space}", "--", "ip", "link"]
    fp.register(argv, stdout="via nsenter\n")
    assert LiveRunner(netns_dir=str(tmp_path)).run(["ip", "link"], netns="red").stdout == "via nsenter\n"
    assert fp.call_count(argv) == 1


def test_live_runner_setns_false_always_runs_nsenter(fp, monkeypatch, tmp_path):
    from netnskit import runner as runner_mod

    spy = _Setns()
    monkeypatch.setattr(runner_mod, "_setns", spy)
    argv = ["nsenter", f"--net={tmp_path}/red", "--", "ip", "link"]
    fp.register(argv)
    LiveRunner(setns=False, netns_dir=str(tmp_path)).run(["ip", "link"], netns="red")
    assert fp.call_count(argv) == 1 and spy.paths == []


def test_live_runner_command_that_cannot_run_in_a_namespace_answers_as_nsenter_does(fp, monkeypatch, tmp_path):
    from netnskit import runner as runner_mod

    spy = _Setns()
    monkeypatch.setattr(runner_mod, "_setns", spy)
    space = tmp_path / "red"
    space.write_text("")
    plain = tmp_path / "not-executable"
    plain.write_text("#!/bin/sh\n")
    fp.pass_command([MISSING, "link"])
    fp.pass_command([str(plain)])
    runner = LiveRunner(netns_dir=str(tmp_path))
    missing = runner.run([MISSING, "link"], netns="red")
    assert missing.returncode == 127
    assert missing.stderr == f"nsenter: failed to execute {MISSING}: No such file or directory\n"
    refused = runner.run([str(plain)], netns="red")
    assert (refused.returncode, refused.stderr) == (126, f"nsenter: failed to execute {plain}: Permission denied\n")
    with pytest.raises(PermissionDeniedError):
        refused.check()
    assert spy.paths == [str(space), str(space)]


# --- objects made without a runner ------------------------------------------------------------


class _Box:
    """Stands in for an open Sandbox: all default_runner needs is its runner."""

    def __init__(self) -> None:
        self.runner = FakeRunner()


def test_an_object_made_without_a_runner_inside_an_open_sandbox_uses_the_sandbox():
    from netnskit import Namespace, Network
    from netnskit.errors import SandboxError
    from netnskit.runner import activate, deactivate

    box, other = _Box(), _Box()
    activate(box)
    try:
        Namespace("blue").create()
        assert box.runner.argvs == [["ip", "netns", "add", "blue"]]
        described = {"network": {"name": "n", "bridge": "br-n", "subnet": "10.9.0.0/24", "gateway": "10.9.0.1"}}
        assert Network.from_dict(described).runner is box.runner
        activate(other)
        with pytest.raises(SandboxError, match="2 sandboxes are open: pass runner= explicitly"):
            Namespace("blue")
    finally:
        deactivate(other)
        deactivate(box)
    assert isinstance(Namespace("blue").runner, LiveRunner)  # none open: this host


def test_live_runner_starts_a_background_process_in_a_namespace_itself(fp, monkeypatch, tmp_path):
    from netnskit import runner as runner_mod

    spy = _Setns()
    monkeypatch.setattr(runner_mod, "_setns", spy)
    (tmp_path / "red").write_text("")
    fp.register(["sleep", "9"])
    proc = LiveRunner(netns_dir=str(tmp_path)).start(["sleep", "9"], netns="red", stdin=True)
    proc.wait()
    assert fp.call_count(["sleep", "9"]) == 1  # no nsenter process
    assert spy.paths == [str(tmp_path / "red")] and spy.threads != [threading.get_ident()]

"""Result, the Runner protocol (run and start), LiveRunner, and runners that compose.

``Runner.run(argv, netns=...) -> Result`` and ``Runner.start(argv, netns=...)`` are the only
places netnskit starts a process; the runner is told the namespace to run in. A runner never
raises on a non-zero exit: some failures are answers (``iptables -C`` exits 1 when a rule is
absent). ``Result.check()`` raises the mapped :class:`~netnskit.errors.CommandError`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import logging
import os
import re
import select
import shlex
import signal
import subprocess
import threading
from collections.abc import Iterable, Sequence
from typing import IO, Any, Protocol, runtime_checkable

import attrs

from netnskit.errors import (
    CommandNotFoundError,
    CommandTimeoutError,
    NetnskitError,
    SandboxError,
    ValidationError,
    error_for,
    package_for,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "NETNS_RUN_DIR",
    "LiveRunner",
    "PrefixRunner",
    "Process",
    "Result",
    "Runner",
    "ShRunner",
    "SshRunner",
    "default_runner",
    "end_process",
    "in_netns",
    "netns_runner",
    "nsenter_runner",
    "package_for",
    "read_line",
    "sudo_runner",
]

log = logging.getLogger("netnskit")

DEFAULT_TIMEOUT = 60.0


def _strs(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)


@attrs.frozen
class Result:
    """What a finished command left: its argv, exit status, stdout and stderr."""

    argv: tuple[str, ...] = attrs.field(converter=_strs)
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.returncode == 0

    def check(self, action: str = "") -> Result:
        """Return self if the command succeeded, else raise the mapped CommandError."""
        if self.returncode != 0:
            raise error_for(self.argv, self.returncode, self.stdout, self.stderr, action)
        return self


class Process(Protocol):
    """A started process, as :class:`subprocess.Popen` is one (text pipes on stdout and stderr)."""

    pid: int
    stdin: IO[str] | None
    stdout: IO[str] | None
    stderr: IO[str] | None

    def poll(self) -> int | None:
        """The exit status, or None while it runs."""
        ...

    def wait(self, timeout: float | None = None) -> int:
        """Wait for it to end; its exit status."""
        ...

    def terminate(self) -> None:
        """Ask it to end (SIGTERM)."""
        ...

    def kill(self) -> None:
        """End it (SIGKILL)."""
        ...

    def communicate(self, input: str | None = None, timeout: float | None = None) -> tuple[str, str]:
        """Feed ``input``, wait for the end; (stdout, stderr)."""
        ...


@runtime_checkable
class Runner(Protocol):
    """Runs one argv to completion (``run``) or in the background (``start``), where ``netns`` says.

    ``netns`` is a namespace name under ``/run/netns`` of the place the runner reaches (None: the
    runner's own namespace). ``run`` never raises on a non-zero exit. netnskit calls a runner from
    several threads at once (BatchExecutor's namespace batches, Network.down's reads): an
    implementation must allow that.
    """

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float | None = None,
        netns: str | None = None,
    ) -> Result:
        """Run ``argv`` (a list, never a shell string) in ``netns``, feeding ``input`` on stdin."""
        ...

    def start(self, argv: Sequence[str], *, netns: str | None = None, stdin: bool = False) -> Process:
        """Start ``argv`` in ``netns`` in the background; ``stdin``: a pipe (else /dev/null) on its stdin."""
        ...


NETNS_RUN_DIR = "/run/netns"


def in_netns(netns: str, argv: Sequence[str], run_dir: str = NETNS_RUN_DIR) -> list[str]:
    """``nsenter --net=/run/netns/NETNS -- ARGV``: what running ``argv`` in a named namespace means."""
    return ["nsenter", f"--net={run_dir}/{netns}", "--", *_argv(argv)]


_ACTIVE: list[Any] = []  # the Sandboxes open in this process (see default_runner)
_ACTIVE_LOCK = threading.Lock()


def activate(sandbox: Any) -> None:
    """Record an open Sandbox, whose runner objects made without one will use."""
    with _ACTIVE_LOCK:
        _ACTIVE.append(sandbox)


def deactivate(sandbox: Any) -> None:
    """Forget a Sandbox that is closing."""
    with _ACTIVE_LOCK:
        if sandbox in _ACTIVE:
            _ACTIVE.remove(sandbox)


def default_runner() -> Runner:
    """The runner of an object made without one: the open Sandbox's, else a LiveRunner on this host.

    Inside ``with Sandbox() as box:`` an object that forgot ``runner=box.runner`` must not change
    the real host: it uses the sandbox. With several sandboxes open there is no right guess, so
    this refuses.
    """
    with _ACTIVE_LOCK:
        active = list(_ACTIVE)
    if len(active) > 1:
        raise SandboxError(f"{len(active)} sandboxes are open: pass runner= explicitly (e.g. box.runner)")
    if active:
        runner: Runner = active[0].runner
        return runner
    return LiveRunner()


def _argv(argv: Sequence[str]) -> list[str]:
    if isinstance(argv, str):
        raise TypeError(f"argv must be a sequence of strings, not the string {argv!r}")
    words = [str(a) for a in argv]
    for word in words:
        if "\0" in word:
            # the kernel's argv is NUL-terminated: such a word cannot be passed (subprocess's bare ValueError)
            raise ValidationError("argument", word, "must not contain a NUL character")
    return words


def _result(args: list[str], returncode: int, stdout: str, stderr: str) -> Result:
    if returncode != 0:
        log.debug("exit %d: %s", returncode, stderr.strip())
    return Result(args, returncode, stdout, stderr)


_CLONE_NEWNET = 0x40000000


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    """Move the calling thread into the network namespace ``fd`` refers to."""
    setns = getattr(os, "setns", None)  # Python 3.12+
    if setns is not None:
        setns(fd, _CLONE_NEWNET)
        return
    if _libc().setns(fd, _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


# A command netnskit runs is for netnskit to stop, not the terminal: it gets a process group of its
# own (a Ctrl-C goes to the terminal's foreground group) and starts with these blocked (a signal
# sent to our group between its fork and its setpgid would otherwise kill it once Python's vfork
# child resets the handlers). Blocked across exec: ip or iptables-restore finishes its batch.
_SHIELDED = frozenset({signal.SIGINT, signal.SIGTERM})


def _popen_shielded(args: list[str], **popen: Any) -> subprocess.Popen[str]:
    """``subprocess.Popen`` for a command that a Ctrl-C or SIGTERM to this process must not cut short."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SHIELDED)
    try:
        return subprocess.Popen(args, process_group=0, **popen)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _spawn_in_netns(path: str, args: list[str], **popen: Any) -> subprocess.Popen[str] | tuple[int, str] | None:
    """Start ``args`` in the network namespace at ``path`` without an ``nsenter`` process.

    A short-lived thread of its own enters the namespace (setns), forks the child there and ends:
    the child is where ``nsenter --net=PATH -- ARGS`` would put it, and the caller's thread never
    changes namespace (a signal handler or an exception in the middle cannot strand it). Returns
    the process; nsenter's exit status and message if ``path`` cannot be opened (1) or ``args``
    cannot be run (127 missing, 126 otherwise); None if this process may not enter namespaces (the
    caller then runs nsenter itself).
    """
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        return 1, f"nsenter: cannot open {path}: {exc.strerror}\n"
    outcome: list[subprocess.Popen[str] | tuple[int, str] | None | BaseException] = []

    def enter_and_start() -> None:
        try:
            try:
                _setns(target)
            except OSError as exc:
                denied = exc.errno in (errno.EPERM, errno.EINVAL, errno.ENOSYS)
                # not allowed here (no CAP_SYS_ADMIN), or not a namespace: nsenter says why
                outcome.append(None if denied else exc)
                return
            try:
                outcome.append(_popen_shielded(args, **popen))
            except OSError as exc:
                code = 127 if exc.errno == errno.ENOENT else 126
                outcome.append((code, f"nsenter: failed to execute {args[0]}: {exc.strerror}\n"))
        except BaseException as exc:  # pragma: no cover - handed to the caller below
            outcome.append(exc)
        finally:
            os.close(target)  # by this thread, after setns: never while it may still use the fd

    worker = threading.Thread(target=enter_and_start, name="netnskit-setns", daemon=True)
    try:
        worker.start()
    except BaseException:
        os.close(target)
        raise
    worker.join()
    found = outcome[0] if outcome else NetnskitError(f"entering {path} to start {args[0]!r} failed")
    if isinstance(found, BaseException):
        raise found
    return found


@attrs.define
class LiveRunner:
    """Runs commands on this host with :mod:`subprocess`, never through a shell.

    A command for a namespace runs without an nsenter process when this process may enter
    namespaces (``setns=True``): a short-lived thread enters the namespace and starts the command
    there, which saves one program start per namespace batch. Otherwise it runs as
    ``nsenter --net=/run/netns/NS -- ARGV`` (:func:`in_netns`), and the Result is that command's
    either way: exit 1 and nsenter's message for a namespace that cannot be opened, 127 for a
    missing program, 126 for one that cannot be run.
    """

    timeout: float = DEFAULT_TIMEOUT
    env: dict[str, str] | None = None
    setns: bool = True
    netns_dir: str = NETNS_RUN_DIR  # where named namespaces are mounted (``ip netns`` uses /run/netns)

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float | None = None,
        netns: str | None = None,
    ) -> Result:
        """Run ``argv`` in ``netns`` and return its Result."""
        command = _argv(argv)
        args = command if netns is None else in_netns(netns, command, self.netns_dir)
        log.debug("run: %s", shlex.join(args))
        limit = self.timeout if timeout is None else timeout
        if netns is not None and self.setns:
            done = self._run_in_netns(args, netns, command, input, limit)
            if done is not None:
                return done
        try:
            # shielded: a Ctrl-C reaches this process, which decides (see netnskit.interrupt), not
            # a batch half-way through its lines
            proc = _popen_shielded(
                args,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",  # a stray non-UTF-8 byte must not lose the whole Result
                env=self.env,
            )
        except FileNotFoundError as exc:
            raise CommandNotFoundError(args[0], package_for(args[0]), args) from exc
        return _finish(proc, args, input, limit)

    def _run_in_netns(
        self, args: list[str], netns: str, command: list[str], input: str | None, limit: float
    ) -> Result | None:
        """Run ``command`` in ``netns`` without nsenter; None if this process may not enter namespaces."""
        proc = _spawn_in_netns(
            f"{self.netns_dir}/{netns}",
            command,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=self.env,
        )
        if proc is None or isinstance(proc, tuple):
            return None if proc is None else _result(args, proc[0], "", proc[1])
        return _finish(proc, args, input, limit)

    def start(self, argv: Sequence[str], *, netns: str | None = None, stdin: bool = False) -> subprocess.Popen[str]:
        """Start ``argv`` in ``netns`` in the background (a server, a holder); the caller ends it by pid.

        With ``stdin`` the process gets a pipe on stdin, so it can be made to exit by closing it,
        and exits by itself if this process dies.
        """
        command = _argv(argv)
        args = command if netns is None else in_netns(netns, command, self.netns_dir)
        log.debug("start: %s", shlex.join(args))
        popen: dict[str, Any] = {
            "stdin": subprocess.PIPE if stdin else subprocess.DEVNULL,
            "stdout": subprocess.PIPE,
            "stderr": subprocess.PIPE,
            "text": True,
            "errors": "replace",
            "env": self.env,
        }
        if netns is not None and self.setns:
            proc = _spawn_in_netns(f"{self.netns_dir}/{netns}", command, **popen)
            if isinstance(proc, tuple):
                raise error_for(args, proc[0], "", proc[1], f"starting {command[0]!r} in namespace {netns!r}")
            if proc is not None:
                return proc
        try:
            return subprocess.Popen(args, **popen)
        except FileNotFoundError as exc:
            raise CommandNotFoundError(args[0], package_for(args[0]), args) from exc


def _finish(proc: subprocess.Popen[str], args: list[str], input: str | None, limit: float) -> Result:
    """Feed ``input``, wait up to ``limit`` s, and return the Result (killed on a timeout or an exception)."""
    try:
        stdout, stderr = proc.communicate(input, timeout=limit)
    except subprocess.TimeoutExpired as exc:
        _kill(proc)
        raise CommandTimeoutError(args, -1, _text(exc.stdout), _text(exc.stderr)) from exc
    except BaseException:
        _kill(proc)
        raise
    return _result(args, proc.returncode, stdout, stderr)


def _kill(proc: subprocess.Popen[str]) -> None:
    """Kill, reap and close its pipes; a process stuck in the kernel may outlive SIGKILL a while: not
    waited for beyond a few seconds."""
    proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def read_line(stream: IO[str] | None, timeout: float) -> str:
    """The next line of a started process's output, stripped; "" after ``timeout`` s, at EOF or without a pipe."""
    if stream is None:
        return ""
    ready, _, _ = select.select([stream], [], [], max(0.0, timeout))
    return stream.readline().strip() if ready else ""


def terminate(proc: Process, timeout: float = 5.0) -> None:
    """SIGTERM a started process if it still runs, SIGKILL it if it has not exited after ``timeout`` s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def end_process(proc: Process) -> None:
    """Kill a started process if it still runs, reap it and close its pipes (a stand-in may have none)."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (getattr(proc, "stdin", None), getattr(proc, "stdout", None), getattr(proc, "stderr", None)):
        if stream is not None:
            stream.close()


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


@attrs.define
class PrefixRunner:
    """Runs every argv as ``prefix + argv`` through another runner (netns exec, nsenter, sudo)."""

    inner: Runner
    prefix: tuple[str, ...] = attrs.field(converter=_strs)

    def _wrap(self, argv: Sequence[str], netns: str | None) -> list[str]:
        # the namespace is entered after the prefix: its name is one of the place the prefix reaches
        return [*self.prefix, *(_argv(argv) if netns is None else in_netns(netns, argv))]

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float | None = None,
        netns: str | None = None,
    ) -> Result:
        """Run ``prefix + argv`` through the inner runner."""
        return self.inner.run(self._wrap(argv, netns), input=input, timeout=timeout)

    def start(self, argv: Sequence[str], *, netns: str | None = None, stdin: bool = False) -> Process:
        """Start ``prefix + argv`` in the background through the inner runner."""
        return self.inner.start(self._wrap(argv, netns), stdin=stdin)


def netns_runner(inner: Runner, netns: str) -> PrefixRunner:
    """A runner that runs each command inside network namespace ``netns``."""
    from netnskit._validate import netns_name

    return PrefixRunner(inner, ("ip", "netns", "exec", netns_name(netns)))


def nsenter_runner(inner: Runner, pid: int, *, mount: bool = True) -> PrefixRunner:
    """A runner that enters the network (and mount) namespace of process ``pid``."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        raise ValidationError("pid", pid, "must be a positive integer")
    prefix = ["nsenter", f"--target={pid}", "--net"]
    if mount:
        prefix.append("--mount")
    prefix.append("--")
    return PrefixRunner(inner, prefix)


def sudo_runner(inner: Runner) -> PrefixRunner:
    """A runner that runs each command through ``sudo -n`` (never prompting)."""
    return PrefixRunner(inner, ("sudo", "-n", "--"))


def _control_path(value: object) -> str | None:
    if value is None:
        return None
    bad = not isinstance(value, str) or not value or any(c.isspace() or c in "\"'\\" for c in value)
    if bad:
        from netnskit.errors import ValidationError

        raise ValidationError("ssh control path", value, "must be a path without blanks or quotes (ssh reads it)")
    return str(value)


def _positive(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        from netnskit.errors import ValidationError

        raise ValidationError("ssh setting", value, "must be a positive integer")
    return value


@attrs.define
class SshRunner:
    """Runs each command on ``host`` over ssh, quoted for the remote shell.

    With ``control_path`` (ssh's ``ControlPath``, e.g. ``/run/netnskit/ssh/%C``) every command
    shares one OpenSSH connection (``ControlMaster=auto``): :meth:`open` starts it, :meth:`close`
    ends it, and it ends by itself ``persist`` seconds after its last command if this process dies.
    One connection carries at most sshd's ``MaxSessions`` (10 by default) commands at once: ``run``
    lets at most ``max_sessions`` through together (``start``'s background processes count too).
    """

    host: str
    inner: Runner = attrs.field(factory=lambda: default_runner())
    options: tuple[str, ...] = attrs.field(default=("-o", "BatchMode=yes"), converter=_strs)
    control_path: str | None = attrs.field(default=None, converter=_control_path)
    persist: int = attrs.field(default=60, converter=_positive)
    max_sessions: int = attrs.field(default=8, converter=_positive)
    _sessions: threading.BoundedSemaphore = attrs.field(init=False, repr=False, eq=False)

    @_sessions.default
    def _make_sessions(self) -> threading.BoundedSemaphore:
        return threading.BoundedSemaphore(self.max_sessions)

    def __attrs_post_init__(self) -> None:
        bad = not isinstance(self.host, str) or not self.host or self.host.startswith("-")
        if bad or any(c.isspace() or not c.isprintable() for c in self.host):
            rule = "must be non-empty, without spaces or control characters (NUL included), not start with '-'"
            raise ValidationError("ssh host", self.host, rule)

    @property
    def machine(self) -> str:
        """The machine this runner reaches (its ssh destination): locks key on it (network/locks.py)."""
        return self.host

    def _multiplexing(self) -> list[str]:
        if self.control_path is None:
            return []
        return [
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={self.control_path}",
            "-o",
            f"ControlPersist={self.persist}",
        ]

    def argv_for(self, argv: Sequence[str], netns: str | None = None) -> list[str]:
        """The local argv: ssh re-parses its command with a shell, so quote every word."""
        remote = _argv(argv) if netns is None else in_netns(netns, argv)
        return ["ssh", *self.options, *self._multiplexing(), self.host, "--", shlex.join(remote)]

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float | None = None,
        netns: str | None = None,
    ) -> Result:
        """Run ``argv`` on the remote host; the Result names the argv as asked."""
        with self._sessions:
            got = self.inner.run(self.argv_for(argv, netns), input=input, timeout=timeout)
        asked = _argv(argv) if netns is None else in_netns(netns, argv)
        return Result(asked, got.returncode, got.stdout, got.stderr)

    def start(self, argv: Sequence[str], *, netns: str | None = None, stdin: bool = False) -> Process:
        """Start ``argv`` on the remote host in the background (the local ssh process stands for it)."""
        return self.inner.start(self.argv_for(argv, netns), stdin=stdin)

    def open(self, *, timeout: float = 30.0) -> SshRunner:
        """Start the shared connection now (one per host; without ``control_path``: nothing to do).

        The first command through ``ControlMaster=auto`` would start it too, but commands started
        together would each open a connection of their own.
        """
        if self.control_path is not None:
            command = ["ssh", *self.options, *self._multiplexing(), self.host, "--", "true"]
            self.inner.run(command, timeout=timeout).check(f"connecting to {self.host} over ssh")
        return self

    def master_pid(self) -> int | None:
        """The pid of the shared connection's ssh process (``ssh -O check``), or None if none runs."""
        if self.control_path is None:
            return None
        result = self.inner.run(self._control("check"))
        found = re.search(r"\(pid=(\d+)\)", result.stdout + result.stderr) if result.ok else None
        return int(found.group(1)) if found else None

    def close(self) -> None:
        """End the shared connection (``ssh -O exit``); nothing to do if none runs."""
        if self.control_path is not None:
            self.inner.run(self._control("exit"))

    def _control(self, command: str) -> list[str]:
        # ssh -O: a request to the shared connection's master through its socket
        return ["ssh", *self.options, "-o", f"ControlPath={self.control_path}", "-O", command, self.host]

    def __enter__(self) -> SshRunner:
        """Open the shared connection."""
        return self.open()

    def __exit__(self, *exc: object) -> None:
        """Close the shared connection."""
        self.close()


@attrs.define
class ShRunner:
    """The same contract as LiveRunner, through the optional ``sh`` package (``netnskit[sh]``)."""

    timeout: float = DEFAULT_TIMEOUT

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float | None = None,
        netns: str | None = None,
    ) -> Result:
        """Run ``argv`` in ``netns`` with sh; a non-zero exit is a Result, not an exception."""
        try:
            import sh
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise ImportError("ShRunner needs the 'sh' extra: pip install 'netnskit[sh]'") from exc
        args = _argv(argv) if netns is None else in_netns(netns, argv)
        log.debug("run (sh): %s", shlex.join(args))
        try:
            command = sh.Command(args[0])
        except sh.CommandNotFound as exc:
            raise CommandNotFoundError(args[0], package_for(args[0]), args) from exc
        kwargs: dict[str, Any] = {
            # every exit status, and death by any signal (-N, as subprocess reports it), is a Result
            "_ok_code": list(range(-64, 256)),
            "_tty_out": False,  # a pipe, as with LiveRunner: sh's default pty changes what tools print
            "_return_cmd": True,
            "_timeout": self.timeout if timeout is None else timeout,
            "_decode_errors": "replace",
        }
        if input is not None:
            kwargs["_in"] = input
        try:
            done = command(*args[1:], **kwargs)
        except sh.TimeoutException as exc:
            raise CommandTimeoutError(args, -1, "", "") from exc
        return Result(args, int(done.exit_code), str(done), _text(done.stderr))

    def start(self, argv: Sequence[str], *, netns: str | None = None, stdin: bool = False) -> Process:
        """Start ``argv`` in the background: sh's background commands are no process handle, so subprocess does it."""
        return LiveRunner(timeout=self.timeout, setns=False).start(argv, netns=netns, stdin=stdin)

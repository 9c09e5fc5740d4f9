"""The exception tree of netnskit.

::

    NetnskitError(Exception)
    ├─ ValidationError(NetnskitError, ValueError)      bad input, raised before any command runs
    │  └─ ConfigError                                  a network file or mapping: its path and key
    ├─ SandboxError(NetnskitError)                      the sandbox could not be made, or is gone
    ├─ BusyError(NetnskitError)                        another process is changing the same network or host
    ├─ NotOursError(NetnskitError)                     something with one of our names is not ours: refused
    ├─ ConflictError(NetnskitError)                    what the network asks for is someone else's: refused
    ├─ UnsupportedError(NetnskitError)                 this kernel lacks what is asked (netem): refused
    ├─ StepError(NetnskitError)                        a plan step failed (after rollback); keeps the CommandError
    ├─ ProcessError(NetnskitError)                     a started process exited or did not become ready in time
    ├─ Interrupted(NetnskitError)                      SIGINT or SIGTERM stopped ``up`` (after rollback)
    └─ CommandError(NetnskitError)                     a command exited non-zero
       ├─ AlreadyExistsError     "File exists", "already assigned", "Chain already exists"
       ├─ NotFoundError          "Cannot find device", "No such device", "No such file", "does not exist", ...
       ├─ PermissionDeniedError  "Operation not permitted", "Permission denied"
       ├─ XtablesLockError       "Another app is currently holding the xtables lock" (after the -w wait)
       ├─ CommandTimeoutError    the command did not finish in time
       └─ CommandNotFoundError(CommandError, FileNotFoundError)   a program is missing: names its package

Every exception passes all of its fields to ``super().__init__`` so that it pickles. A message
shows at most about 60 characters of a value it rejects (and its length), however long the value.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from typing import Any

__all__ = [
    "AlreadyExistsError",
    "BusyError",
    "CommandError",
    "CommandNotFoundError",
    "CommandTimeoutError",
    "ConfigError",
    "ConflictError",
    "Interrupted",
    "NetnskitError",
    "NotFoundError",
    "NotOursError",
    "PermissionDeniedError",
    "ProcessError",
    "SandboxError",
    "StepError",
    "UnsupportedError",
    "ValidationError",
    "XtablesLockError",
    "error_for",
    "package_for",
    "shown",
]

_SHOWN_MAX = 60  # characters of a rejected value a message shows
_PATH_MAX = 240  # of a file's path


def shown(value: object, limit: int = _SHOWN_MAX) -> str:
    """``repr(value)``, cut to ``limit`` (60) characters with its length when longer: a message stays one short line."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str | bytes) else ""
    return f"{text[:limit]}...{size}"


# Which Debian package brings each program netnskit calls, for CommandNotFoundError.
_PACKAGES = {
    "ip": "iproute2",
    "bridge": "iproute2",
    "ss": "iproute2",
    "tc": "iproute2",
    "iptables": "iptables",
    "iptables-save": "iptables",
    "iptables-restore": "iptables",
    "ip6tables": "iptables",
    "ip6tables-save": "iptables",
    "ip6tables-restore": "iptables",
    "iptables-legacy": "iptables",
    "iptables-legacy-save": "iptables",
    "iptables-legacy-restore": "iptables",
    "iptables-nft": "iptables",
    "iptables-nft-save": "iptables",
    "iptables-nft-restore": "iptables",
    "ip6tables-legacy": "iptables",
    "ip6tables-legacy-save": "iptables",
    "ip6tables-legacy-restore": "iptables",
    "ip6tables-nft": "iptables",
    "ip6tables-nft-save": "iptables",
    "ip6tables-nft-restore": "iptables",
    "nft": "nftables",
    "ping": "iputils-ping",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "mount": "mount",
    "sysctl": "procps",
    "ssh": "openssh-client",
    "sudo": "sudo",
    "dot": "graphviz",
    "tcpdump": "tcpdump",
    "flock": "util-linux",
    "readlink": "coreutils",
    "awk": "mawk",
    "sort": "coreutils",
    "tee": "coreutils",
    "tail": "coreutils",
    "find": "findutils",
    "grep": "grep",
    "setsid": "util-linux",
    "kill": "procps",
}


def package_for(program: str) -> str:
    """The Debian package that provides ``program`` (its own name when unknown)."""
    name = program.rsplit("/", 1)[-1]
    return _PACKAGES.get(name, name)


class NetnskitError(Exception):
    """Base class of every error netnskit raises."""


class ValidationError(NetnskitError, ValueError):
    """A value was rejected before any command ran."""

    def __init__(self, what: str, value: object, rule: str) -> None:
        super().__init__(what, value, rule)
        self.what = what
        self.value = value
        self.rule = rule

    def __str__(self) -> str:
        return f"invalid {self.what} {shown(self.value)}: {self.rule}"


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # ConfigError's value for a key that is absent


class ConfigError(ValidationError):
    """A network description (TOML file or mapping) was rejected: the file, the key and the reason."""

    def __init__(self, path: str, key: str, value: object, reason: str) -> None:
        ValidationError.__init__(self, f"{path}: {key}", value, reason)
        self.args = (path, key, value, reason)
        self.path = path
        self.key = key

    def __str__(self) -> str:
        # a key (an unknown one is the file's text) is cut like a value; a path, longer
        key = self.key if len(self.key) <= _SHOWN_MAX else shown(self.key)
        path = self.path if len(self.path) <= _PATH_MAX else shown(self.path, _PATH_MAX)
        if self.value is MISSING:
            return f"{path}: {key}: {self.rule}"
        return f"{path}: {key} = {shown(self.value)}: {self.rule}"


class SandboxError(NetnskitError):
    """The throwaway sandbox could not be created or entered."""


class BusyError(NetnskitError):
    """Another process holds the lock on this network (or the host's, for longer than the wait)."""


class NotOursError(NetnskitError):
    """Something with one of our names exists and carries no mark of ours: refused, nothing changed."""


class ConflictError(NetnskitError):
    """What the network asks for (a subnet, a host port) is already someone else's: refused, nothing changed."""


class UnsupportedError(NetnskitError):
    """This kernel lacks what is asked for (netem for a delay): refused before anything changed.

    ``what`` names the thing asking (a namespace, a link, a file's key), ``value`` what it asks,
    ``reason`` what is missing, how to get it, and what works instead.
    """

    def __init__(self, what: str, value: object, reason: str) -> None:
        super().__init__(what, value, reason)
        self.what = what
        self.value = value
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.what}: {self.value} {self.reason}"


class CommandError(NetnskitError):
    """A command exited with a non-zero status."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int,
        stdout: str = "",
        stderr: str = "",
        action: str = "",
    ) -> None:
        super().__init__(tuple(argv), returncode, stdout, stderr, action)
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.action = action

    def __str__(self) -> str:
        what = self.action or "running a command"
        said = self.stderr.strip() or self.stdout.strip() or "(no output)"
        return f"{what} failed: `{shlex.join(self.argv)}` exited {self.returncode}: {said}"


class AlreadyExistsError(CommandError):
    """The object to create exists already."""


class NotFoundError(CommandError):
    """The object to act on does not exist."""


class PermissionDeniedError(CommandError):
    """The kernel refused: not root, or no CAP_NET_ADMIN."""


class XtablesLockError(CommandError):
    """An iptables tool gave up waiting for the xtables lock (legacy backend): another program held it."""

    def __str__(self) -> str:
        what = self.action or "running a command"
        said = self.stderr.strip() or self.stdout.strip()
        return (
            f"{what} failed: the xtables lock was held by another program for longer than the wait "
            f"(`{shlex.join(self.argv)}` exited {self.returncode}: {said}); try again, or wait longer "
            "(Network(xtables_wait=SECONDS), netnskit --xtables-wait SECONDS)"
        )


class CommandNotFoundError(CommandError, FileNotFoundError):
    """A program netnskit needs is not installed (where the command ran): names the Debian package."""

    def __init__(
        self,
        program: str,
        package: str,
        argv: Sequence[str] = (),
        returncode: int = 127,
        stdout: str = "",
        stderr: str = "",
        action: str = "",
    ) -> None:
        CommandError.__init__(self, argv or (program,), returncode, stdout, stderr, action)
        self.args = (program, package, tuple(argv), returncode, stdout, stderr, action)
        self.program = program
        self.package = package

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self.args)

    def __str__(self) -> str:
        where = f"{self.action} failed: " if self.action else ""
        return (
            f"{where}{self.program!r} was not found on PATH; "
            f"install the {self.package!r} package (e.g. apt-get install {self.package})"
        )


class CommandTimeoutError(CommandError):
    """The command did not finish within its timeout."""

    def __str__(self) -> str:
        what = self.action or "running a command"
        return f"{what} timed out: `{shlex.join(self.argv)}` did not finish"


class StepError(NetnskitError):
    """A step of a plan failed; the steps before it were rolled back."""

    def __init__(self, step: str, index: int, cause: CommandError | str, rollback_errors: Sequence[str] = ()) -> None:
        super().__init__(step, index, cause, tuple(rollback_errors))
        self.step = step
        self.index = index
        self.error = cause if isinstance(cause, CommandError) else None  # the failing command, its argv and stderr
        self.cause = str(cause)
        self.rollback_errors = tuple(rollback_errors)

    def __str__(self) -> str:
        text = f"step {self.index + 1} ({self.step}) failed: {self.cause}"
        if self.rollback_errors:
            text += "; rollback also failed: " + "; ".join(self.rollback_errors)
        else:
            text += "; every earlier step was rolled back"
        return text


class ProcessError(NetnskitError):
    """A process started in a namespace exited, or did not become ready in time: its name, why, its log's end."""

    def __init__(self, name: str, netns: str | None, reason: str, log: str = "", log_tail: str = "") -> None:
        super().__init__(name, netns, reason, log, log_tail)
        self.name = name
        self.netns = netns
        self.reason = reason
        self.log = log
        self.log_tail = log_tail

    def __str__(self) -> str:
        where = f"namespace {self.netns!r}" if self.netns else "the host"
        text = f"process {self.name!r} in {where} {self.reason}"
        if self.log:
            tail = self.log_tail.strip()
            text += f"; its log {self.log} " + (f"ends with:\n{tail}" if tail else "is empty")
        return text


class Interrupted(NetnskitError):
    """A signal (SIGINT, SIGTERM) asked ``up`` to stop: what this call had done was rolled back first.

    ``signum`` is the signal; ``undone`` how many applied steps were rolled back; ``rollback_errors``
    what could not be undone (then ``down`` removes it). ``exit_status`` is the shell's 128 + signum.
    """

    def __init__(self, signum: int, action: str = "", undone: int = 0, rollback_errors: Sequence[str] = ()) -> None:
        super().__init__(signum, action, undone, tuple(rollback_errors))
        self.signum = signum
        self.action = action
        self.undone = undone
        self.rollback_errors = tuple(rollback_errors)

    @property
    def exit_status(self) -> int:
        """128 + the signal's number, as a shell reports a process a signal ended (130, 143)."""
        return 128 + self.signum

    def __str__(self) -> str:
        text = f"interrupted by {_signal_name(self.signum)}"
        if self.action:
            text += f" while {self.action}"
        if self.rollback_errors:
            return text + "; rolling back failed: " + "; ".join(self.rollback_errors)
        if not self.undone:
            return text + "; nothing had been changed"
        return text + f"; rolled back the {self.undone} step{'s' if self.undone != 1 else ''} it had applied"


def _signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


# Order matters: the first pattern found in stderr picks the class.
_STDERR_CLASSES: tuple[tuple[str, type[CommandError]], ...] = (
    ("currently holding the xtables lock", XtablesLockError),  # iptables -w N: "... Stopped waiting after Ns."
    ("operation not permitted", PermissionDeniedError),
    ("permission denied", PermissionDeniedError),
    ("file exists", AlreadyExistsError),
    ("already assigned", AlreadyExistsError),
    ("chain already exists", AlreadyExistsError),
    ("cannot find", NotFoundError),  # "Cannot find device", and iproute2's other "Cannot find ..."
    ("no such device", NotFoundError),  # ENODEV: e.g. `ip link del group G` after the kernel removed its links
    ("no such file or directory", NotFoundError),
    ("does not exist", NotFoundError),
    ("no such process", NotFoundError),
    ("cannot assign requested address", NotFoundError),
    ("cannot delete qdisc with handle of zero", NotFoundError),  # `tc qdisc del ... root` with none set
    ("address not found", NotFoundError),  # `ip addr del` of an absent address (iproute2 6.x)
    ("bad rule (does a matching rule exist", NotFoundError),
    ("no chain/target/match by that name", NotFoundError),
)


# How a program that is not installed shows, by who tried to start it: nsenter (LiveRunner in a
# namespace, a sandbox, an nsenter prefix), `ip netns exec`, sudo and a remote shell (ssh), and
# CommandNotFoundError's own message (a batch maps a runner's error back from its text).
_MISSING_PROGRAM = re.compile(
    r"failed to execute (?P<a>\S+): No such file or directory"
    r"|exec of \"(?P<b>[^\"]+)\" failed: No such file or directory"
    r"|^(?:sudo|bash|sh|zsh|dash)(?:: line \d+)?: (?P<c>\S+): command not found"
    r"|^sh: \d+: (?P<d>\S+): not found"
    r"|'(?P<e>[^']+)' was not found on PATH; install the",
    re.MULTILINE,
)


def _missing_program(stderr: str) -> str | None:
    found = _MISSING_PROGRAM.search(stderr)
    if found is None:
        return None
    return next(name for name in found.groups() if name)


def error_for(argv: Sequence[str], returncode: int, stdout: str, stderr: str, action: str = "") -> CommandError:
    """Map a failed command's stderr to the most specific CommandError subclass."""
    program = _missing_program(stderr)
    if program is not None:
        return CommandNotFoundError(program, package_for(program), argv, returncode, stdout, stderr, action)
    low = stderr.lower()
    for pattern, cls in _STDERR_CLASSES:
        if pattern in low:
            return cls(argv, returncode, stdout, stderr, action)
    return CommandError(argv, returncode, stdout, stderr, action)

"""The exception tree of netnskit.

::

    NetnskitError(Exception)
    ├─ ValidationError(NetnskitError, ValueError)      bad input, raised before any command runs
    │  └─ ConfigError                                  a network file or mapping: its path and key
    ├─ CommandNotFoundError(NetnskitError, FileNotFoundError)   a binary is missing
    ├─ SandboxError(NetnskitError)                      the sandbox could not be made, or is gone
    ├─ BusyError(NetnskitError)                        another process is changing the same network or host
    ├─ NotOursError(NetnskitError)                     something with one of our names is not ours: refused
    ├─ ConflictError(NetnskitError)                    what the network asks for is someone else's: refused
    ├─ StepError(NetnskitError)                        a plan step failed (after rollback); keeps the CommandError
    ├─ ProcessError(NetnskitError)                     a started process exited or did not become ready in time
    └─ CommandError(NetnskitError)                     a command exited non-zero
       ├─ AlreadyExistsError     "File exists", "already assigned", "Chain already exists"
       ├─ NotFoundError          "Cannot find device", "No such device", "No such file", "does not exist", ...
       ├─ PermissionDeniedError  "Operation not permitted", "Permission denied"
       └─ CommandTimeoutError    the command did not finish in time

Every exception passes all of its fields to ``super().__init__`` so that it pickles.
"""

from __future__ import annotations

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
    "NetnskitError",
    "NotFoundError",
    "NotOursError",
    "PermissionDeniedError",
    "ProcessError",
    "SandboxError",
    "StepError",
    "ValidationError",
    "error_for",
]


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
        return f"invalid {self.what} {self.value!r}: {self.rule}"


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
        if self.value is MISSING:
            return f"{self.path}: {self.key}: {self.rule}"
        return f"{self.path}: {self.key} = {self.value!r}: {self.rule}"


class CommandNotFoundError(NetnskitError, FileNotFoundError):
    """A program netnskit needs is not installed."""

    def __init__(self, program: str, package: str) -> None:
        super().__init__(program, package)
        self.program = program
        self.package = package

    def __str__(self) -> str:
        return (
            f"{self.program!r} was not found on PATH; "
            f"install the {self.package!r} package (e.g. apt-get install {self.package})"
        )


class SandboxError(NetnskitError):
    """The throwaway sandbox could not be created or entered."""


class BusyError(NetnskitError):
    """Another process holds the lock on this network (or the host's, for longer than the wait)."""


class NotOursError(NetnskitError):
    """Something with one of our names exists and carries no mark of ours: refused, nothing changed."""


class ConflictError(NetnskitError):
    """What the network asks for (a subnet, a host port) is already someone else's: refused, nothing changed."""


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


# Order matters: the first pattern found in stderr picks the class.
_STDERR_CLASSES: tuple[tuple[str, type[CommandError]], ...] = (
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
    ("address not found", NotFoundError),  # `ip addr del` of an absent address (iproute2 6.x)
    ("bad rule (does a matching rule exist", NotFoundError),
    ("no chain/target/match by that name", NotFoundError),
)


def error_for(argv: Sequence[str], returncode: int, stdout: str, stderr: str, action: str = "") -> CommandError:
    """Map a failed command's stderr to the most specific CommandError subclass."""
    low = stderr.lower()
    for pattern, cls in _STDERR_CLASSES:
        if pattern in low:
            return cls(argv, returncode, stdout, stderr, action)
    return CommandError(argv, returncode, stdout, stderr, action)

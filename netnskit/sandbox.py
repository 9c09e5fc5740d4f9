"""Sandbox: a throwaway host made of a fresh network namespace and a fresh mount namespace.

A small holder process (``unshare --net --mount --propagation private``) keeps both alive; a
tmpfs on ``/run/netns`` makes named namespaces private to the sandbox. ``/etc`` is an overlay whose
changes live in memory (``/etc/netns``, where ``ip netns exec`` finds a namespace's ``hosts`` and
``resolv.conf``, is an empty tmpfs on it), so nothing written to ``/etc`` inside reaches the real
host's, and ``/run/netnskit`` (processes' pid files and logs) is a tmpfs too. Every command runs in it
through ``nsenter`` (``box.runner``); ``box.enter_argv(argv)`` runs a whole process inside, whose own
commands then need no prefix. The holder reads its stdin, so it exits when the sandbox closes it, or when
the process that made the sandbox dies. Leaving the sandbox ends the processes started inside it
(by pid, and only those: they live in namespaces that exist nowhere else), then the holder; the
kernel frees every namespace, link, address, route and firewall rule made inside.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from types import TracebackType

from netnskit import _ipjson, _privilege
from netnskit.errors import SandboxError
from netnskit.netns import Namespace
from netnskit.runner import (
    LiveRunner,
    PrefixRunner,
    Process,
    Result,
    activate,
    deactivate,
    end_process,
    nsenter_runner,
    package_for,
)

__all__ = ["ETC_SOURCE", "TMPFS_SOURCE", "Sandbox", "sandbox_problem"]

TMPFS_SOURCE = "netnskit-sandbox"  # the source name of the sandbox's tmpfs on /run/netns (its mount table shows it)

ETC_SOURCE = "netnskit-sandbox-etc"  # the source name of the sandbox's overlay on /etc and tmpfs on /etc/netns

# Run by the holder, inside the new namespaces (its mount namespace is private: nothing it mounts
# shows outside). A scratch tmpfs on /run/netns holds the overlay's upper layer, which takes every
# write to /etc; mounts on files under /etc (a container's /etc/hosts) are moved onto the overlay,
# so they stay as they were. If overlayfs is refused, an existing /etc/netns is covered by a tmpfs
# alone (the rest of /etc is then the host's); with no /etc/netns either, the sandbox is refused:
# it could not keep a network's files off the real /etc (sized for 1000 namespaces' hosts files of
# 1000 lines each: tmpfs takes memory only for what is written). A second tmpfs on /run/netns then
# hides the scratch: the sandbox's named namespaces start from none.
_HOLDER_SCRIPT = f"""set -e
mkdir -p /run/netns
mount -t tmpfs -o mode=0755,size=16m {TMPFS_SOURCE}-scratch /run/netns
scratch=/run/netns
if mkdir $scratch/upper $scratch/work $scratch/etc && mount -t overlay \\
    -o lowerdir=/etc,upperdir=$scratch/upper,workdir=$scratch/work {ETC_SOURCE} $scratch/etc 2>$scratch/error; then
  moved=""
  for sub in $(awk '$5 ~ "^/etc/" && $5 !~ /\\\\/ {{ print $5 }}' /proc/self/mountinfo | sort); do
    inner=0
    for prev in $moved; do case "$sub" in "$prev"/*) inner=1;; esac; done
    [ "$inner" = 0 ] || continue
    copy="$scratch/etc${{sub#/etc}}"
    if [ -d "$sub" ]; then mkdir -p "$copy"; else mkdir -p "${{copy%/*}}"; touch "$copy"; fi
    mount --move "$sub" "$copy"
    moved="$moved $sub"
  done
  mount --move $scratch/etc /etc
  mkdir -p /etc/netns
elif [ ! -d /etc/netns ]; then
  echo "cannot cover /etc/netns: overlayfs refused ($(cat $scratch/error)) and the host has no /etc/netns" >&2
  exit 1
fi
mount -t tmpfs -o mode=0755,size=128m {ETC_SOURCE} /etc/netns
mkdir -p -m 0700 /run/netnskit
mount -t tmpfs -o mode=0700,size=64m {TMPFS_SOURCE}-run /run/netnskit
mount -t tmpfs -o mode=0755,size=1m {TMPFS_SOURCE} /run/netns
ip link set lo up
echo ready
exec cat >/dev/null
"""
_TOOLS = ("unshare", "nsenter", "ip", "mount", "awk", "sort")


def sandbox_problem() -> str | None:
    """Why a sandbox cannot be made here (not root, a tool missing), or None if it can."""
    problem = _privilege.privilege_problem()
    if problem:
        return problem
    for tool in _TOOLS:
        if shutil.which(tool) is None:
            return f"{tool!r} is missing; install the {package_for(tool)!r} package"
    return None


def _net_ns(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


class Sandbox:
    """A throwaway host: ``with Sandbox() as box: box.runner.run([...])``."""

    def __init__(self, *, timeout: float = 10.0) -> None:
        """Prepare a sandbox; it is made on ``__enter__`` (or ``open()``)."""
        self._timeout = timeout
        self._live = LiveRunner()
        self._holder: subprocess.Popen[str] | None = None
        self._runner: PrefixRunner | None = None
        self._net: str | None = None
        self._started: list[Process] = []

    @property
    def pid(self) -> int:
        """The holder's pid: the sandbox's namespaces are this process's."""
        if self._holder is None:
            raise SandboxError("the sandbox is not open")
        return self._holder.pid

    @property
    def runner(self) -> PrefixRunner:
        """A runner whose commands run inside the sandbox (``nsenter --net --mount``)."""
        if self._runner is None:
            raise SandboxError("the sandbox is not open")
        return self._runner

    def enter_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed to run as a whole process inside the sandbox (``nsenter --net --mount``)."""
        if isinstance(argv, str):
            raise TypeError("argv must be a list of strings, not a string")
        return [*nsenter_runner(self._live, self.pid).prefix, *argv]

    def open(self) -> Sandbox:
        """Make the sandbox; raises SandboxError with the reason if it cannot."""
        problem = sandbox_problem()
        if problem:
            raise SandboxError(f"cannot make a sandbox: {problem}")
        argv = ["unshare", "--net", "--mount", "--propagation", "private", "--", "sh", "-c", _HOLDER_SCRIPT]
        holder = self._live.start(argv, stdin=True)
        self._holder = holder
        assert holder.stdout is not None
        ready, _, _ = select.select([holder.stdout], [], [], self._timeout)
        line = holder.stdout.readline() if ready else ""
        if line.strip() != "ready":
            err = ""
            if holder.poll() is not None and holder.stderr is not None:
                err = holder.stderr.read().strip()
            self._stop_holder()
            raise SandboxError(f"cannot make a sandbox: the holder did not start ({err or 'no answer'})")
        self._net = _net_ns(holder.pid)
        if self._net is None or self._net == _net_ns(os.getpid()):
            self._stop_holder()
            raise SandboxError("cannot make a sandbox: the holder is not in a new network namespace")
        self._runner = nsenter_runner(self._live, holder.pid)
        activate(self)
        return self

    def __enter__(self) -> Sandbox:
        """Make the sandbox."""
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Destroy the sandbox and everything made inside it."""
        self.close()

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float | None = None,
        netns: str | None = None,
    ) -> Result:
        """Run ``argv`` inside the sandbox (in its namespace ``netns`` if given)."""
        return self.runner.run(argv, input=input, timeout=timeout, netns=netns)

    def start(self, argv: Sequence[str], *, netns: str | None = None, stdin: bool = False) -> Process:
        """Start a background process inside the sandbox, ended when it closes.

        In ``netns`` it runs as ``ip netns exec NETNS ARGV``, so the namespace's own files under
        ``/etc/netns/NETNS`` apply to it, as to a process of a host.
        """
        if netns is not None:
            argv = Namespace(netns, runner=self.runner).exec_argv(argv)
        proc = self.runner.start(argv, stdin=stdin)
        self._started.append(proc)
        return proc

    def namespace(self, name: str) -> Namespace:
        """A Namespace inside the sandbox."""
        return Namespace(name, runner=self.runner)

    def pids_inside(self) -> list[int]:
        """Processes whose network namespace is the sandbox's or one of its named namespaces."""
        if self._holder is None or self._net is None:
            return []
        nets = {self._net}
        for named in _ipjson.try_read(self.runner, None, *_ipjson.NETNS_LIST) or []:
            inode = self.runner.run(["stat", "-L", "-c", "%i", f"/run/netns/{named['name']}"])
            if inode.ok:
                nets.add(f"net:[{inode.stdout.strip()}]")
        found = []
        for entry in os.listdir("/proc"):
            ours = entry.isdigit() and int(entry) not in (self._holder.pid, os.getpid())
            if ours and _net_ns(entry) in nets:
                found.append(int(entry))
        return found

    def close(self) -> None:
        """End the processes started inside, then the holder; safe to call twice."""
        if self._holder is None:
            return
        deactivate(self)
        for proc in self._started:
            end_process(proc)
        self._started.clear()
        # Anything else still running in the sandbox's namespaces was started by us inside it.
        for pid in self.pids_inside():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._stop_holder()

    def _stop_holder(self) -> None:
        holder = self._holder
        if holder is None:
            return
        if holder.stdin is not None:
            holder.stdin.close()
        deadline = time.monotonic() + 5
        while holder.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        for stream in (holder.stdout, holder.stderr):
            if stream is not None:
                stream.close()
        self._holder = None
        self._runner = None
        self._net = None

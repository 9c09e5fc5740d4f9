"""SysctlRecords: the values netnskit found before it changed a sysctl, kept in a file beside the locks.

A foreign ruleset manager may flush every chain (a firewalld reload does): the record must not live
in the firewall. It is a small JSON file, ``net-PLACE.sysctls.json`` in the lock folder (root's
``/run/netnskit``, mode 0700), keyed by the place the runner acts in, so it is gone after a reboot
with everything it describes. Each entry says what the sysctl was and what netnskit set it to (for
forwarding, also what else already needed it then: that did without forwarding before, and does not
keep it on after): an entry is live only while the sysctl still holds the value netnskit set (a crash before the write,
a rollback, someone else's later write, or a namespace whose inode number was reused all leave the
value elsewhere, and such an entry is dropped, not acted on). It is written before the value
changes and removed once the value is put back.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping

import attrs

from netnskit._rundir import _PLACE, _safe_dir, lock_dir
from netnskit.errors import NetnskitError
from netnskit.runner import Runner

_FILE = re.compile(r"net-\d+\.sysctls\.json\Z")


def _strings(items: object) -> tuple[str, ...]:
    return tuple(str(i) for i in items) if isinstance(items, list | tuple) else ()


@attrs.frozen
class SysctlRecord:
    """A sysctl netnskit changed: its ``name``, the value it ``was`` before, the value netnskit ``set``,
    and (forwarding) what else on the host already needed it then, ``beside`` (see Firewall.reliance)."""

    name: str
    was: str
    set: str
    beside: tuple[str, ...] = attrs.field(default=(), converter=_strings)

    @property
    def family(self) -> int:
        """4 or 6: the IP version the sysctl is about."""
        return 6 if self.name.startswith("net.ipv6.") else 4


def _place(runner: Runner) -> str:
    """The place's inode number; raises when it cannot be read (a record must not go astray)."""
    result = runner.run(["readlink", "/proc/self/ns/net"])
    found = _PLACE.search(result.stdout) if result.ok else None
    if result.ok and not found:
        return ""  # a runner that answers but names no namespace (a fake one): records are off
    if not found:
        result.check("reading which network namespace the runner acts in, to remember a sysctl's value")
        raise NetnskitError(f"readlink /proc/self/ns/net printed {result.stdout.strip()!r}, not net:[INODE]")
    return found.group(1)


@attrs.frozen
class SysctlRecords:
    """The remembered sysctl values of the place ``runner`` acts in (files in ``folder``, the lock folder)."""

    runner: Runner = attrs.field(eq=False, repr=False)
    folder: str = attrs.field(factory=lock_dir)

    def _path(self, place: str) -> str:
        return os.path.join(self.folder, f"net-{place}.sysctls.json")

    def _any(self) -> bool:
        # no record of any place: nothing to read, and no need to ask the runner where it acts
        try:
            return any(_FILE.match(name) for name in os.listdir(self.folder))
        except OSError:
            return False

    def load(self) -> dict[str, SysctlRecord]:
        """The records of this place, by sysctl name (empty when there are none; runs nothing then)."""
        if not self._any():
            return {}
        place = _place(self.runner)
        if not place:
            return {}
        return self._read(place)

    def _read(self, place: str) -> dict[str, SysctlRecord]:
        try:
            fd = os.open(self._path(place), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return {}
        with os.fdopen(fd) as handle:
            try:
                data = json.load(handle)
            except ValueError:
                return {}  # a torn or foreign file: nothing in it can be trusted
        if not isinstance(data, dict):
            return {}
        found = {}
        for name, entry in data.items():
            if isinstance(entry, dict) and isinstance(entry.get("was"), str) and isinstance(entry.get("set"), str):
                found[name] = SysctlRecord(name, entry["was"], entry["set"], entry.get("beside", ()))
        return found

    def place(self) -> str:
        """The place records are kept for ("" where the runner names no namespace: records are off).

        Raises when the runner cannot say where it acts: a value must not be changed unrecorded.
        """
        return _place(self.runner)

    def remember(self, records: Iterable[SysctlRecord], *, place: str | None = None) -> None:
        """Write ``records`` (replacing older ones of the same names) before their values change."""
        new = list(records)
        if not new:
            return
        place = self.place() if place is None else place
        if not place:
            return
        _safe_dir(self.folder)
        current = self._read(place)
        current.update({r.name: r for r in new})
        self._write(place, current)

    def forget(self, names: Iterable[str]) -> None:
        """Drop the records of ``names`` (their values were put back, or are no longer netnskit's)."""
        gone = set(names)
        if not gone or not self._any():
            return
        place = _place(self.runner)
        if not place:
            return
        current = self._read(place)
        kept = {n: r for n, r in current.items() if n not in gone}
        if kept != current:
            self._write(place, kept)

    def _write(self, place: str, records: Mapping[str, SysctlRecord]) -> None:
        path = self._path(place)
        if not records:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        data = {
            r.name: {"was": r.was, "set": r.set, **({"beside": list(r.beside)} if r.beside else {})}
            for r in records.values()
        }
        # a new file renamed over the old one: a reader never sees half of it, a crash leaves one or the other
        fd, tmp = tempfile.mkstemp(prefix=".sysctls-", dir=self.folder)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

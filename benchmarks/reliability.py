"""Run the reliability suite and write its figures into RELIABILITY.md.

    .venv/bin/python benchmarks/reliability.py            # as root: the live tests need a sandbox
    .venv/bin/python benchmarks/reliability.py --check    # also fail if RELIABILITY.md was out of date
    .venv/bin/python benchmarks/reliability.py --stress 2 --whole   # every live test, every CPU kept busy

The tests count what they tried through ``tests/_reliability.py`` (``NETNSKIT_FIGURES`` names a
JSON-lines file); this script runs them, adds the counts up, reads pytest's JUnit report for
passes, failures and times, looks at the real host for anything of ours (``ip netns list``,
``iptables-save``: reads only), and rewrites RELIABILITY.md. Nothing in the file is typed by hand
except the explanations in :data:`TEMPLATE`.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = [
    "tests/unit/test_bad_input.py",
    "tests/unit/test_injection.py",
    "tests/unit/test_properties.py",
    "tests/live/test_reliability_faults_live.py",
    "tests/live/test_reliability_crash_live.py",
    "tests/live/test_reliability_concurrency_live.py",
    "tests/live/test_reliability_outside_live.py",
    "tests/live/test_reliability_properties_live.py",
    "tests/live/test_beside_managers_live.py",
    "tests/live/test_interrupt_live.py",
    "tests/live/test_drift_live.py",
]

TEMPLATE = """\
# Reliability

netnskit runs as root and changes a host's network. This file lists, as figures from the last run
of the reliability suite, what was tried to break it and what was left behind. It is written by
`scripts/reliability_report` (`benchmarks/reliability.py`) from the counts the tests record; do not
edit it by hand.

Last run: {when} on {host} (kernel {kernel}, Python {python}), {wall:.0f} s for the whole suite.
Tests: {passed} passed, {failed} failed, {errors} errors, {skipped} skipped, {xfailed} expected failures
(known gaps below). What ran: {what}. Machine: {cpus} CPUs; {load}.

## Figures

| What | Count |
|---|---:|
| Injection points covered (a command of `up` made to fail, host compared after) | {injection_points} |
| &nbsp;&nbsp;of which: every command of `up`, reads included, fails (`false` runs instead) | {inject_instead} |
| &nbsp;&nbsp;of which: a write acts, then reports failure | {inject_after} |
| &nbsp;&nbsp;of which: the fault's rollback fails too | {inject_rollback} |
| Crash points covered (SIGKILL after k commands of `up` or `down`, then recovery) | {crash_points} |
| &nbsp;&nbsp;of which recovered by resuming `up` (then `down`) | {crash_resumed} |
| Interrupt points covered (SIGINT to `netnskit up`/`down`'s process group, host compared) | {interrupt_points} |
| Bad inputs tried (each rejected with a ValidationError naming it, no command run) | {bad_inputs} |
| Concurrent rounds run (up+down by parallel processes in one sandbox) | {concurrent_rounds} |
| Outside changes survived (removed by someone else, or foreign objects with our names) | {outside_changes} |
| Property examples: steps whose undo was checked live / up-down topologies | {property_steps} / {property_up_down} |
| **Leftovers found** (host differed after a check, in failing tests, or on the real host) | **{leftovers}** |

By executor: {by_executor}.

A read of `up` that may fail without failing it: {tolerated} times an `iptables -C` probe (exit 1
means "absent") failed; `up` then added the rule anyway, and the network was complete.

## What each figure means

- **Injection points**: `tests/live/test_reliability_faults_live.py`. The seed network
  (`examples/seed.toml`) is brought up in a sandbox through a runner that makes its k-th command
  fail, for every k, with the serial and the batch executor. After each, the host is compared
  with before: namespaces, links (with flags, group and alias), addresses, routes, every
  forwarding/route_localnet sysctl, `iptables-save`/`ip6tables-save` and the legacy tables.
- **Crash points**: `tests/live/test_reliability_crash_live.py`. A Python process started inside
  the sandbox runs `up` or `down` and SIGKILLs itself before its (k+1)-th command, for every k;
  `down` from the same file (or `up` again, then `down`) must leave the host identical.
- **Interrupt points**: `tests/live/test_interrupt_live.py`. `netnskit up` (and `down`) runs in a
  session of its own and sends SIGINT to its whole process group before its k-th command, as a
  Ctrl-C at a terminal does: `up` must roll back and exit 130 with one line, `down` must finish;
  the host is compared with before each time (SIGTERM: exit 143, at three points).
- **Bad inputs**: `tests/unit/test_bad_input.py`, a corpus kept as data: names too long, empty,
  with `/`, `..`, blanks, newlines, NUL, Cyrillic and fullwidth look-alikes, leading `-`, shell
  code, words `ip link` reads as keywords; bad addresses, prefixes, subnets; gateways outside or on
  the edge of their subnet; duplicate addresses; overlapping subnets; ports 0 and 65536 and more;
  unknown protocols; TOML with wrong types, unknown and missing keys. Each network entry is tried
  as a mapping and as a TOML file written from it.
- **No injection** (`tests/unit/test_injection.py`, not counted above): hostile words go through
  every runner unchanged (the ssh runner's remote command re-parsed by a real `sh -c` and
  `bash -c`); rendered plans pass `bash -n` and, run by bash with each command recorded, run
  exactly the plan's argv and stdin.
- **Concurrency**: `tests/live/test_reliability_concurrency_live.py`: {processes} processes with
  distinct networks (sharing the firewall's chains) for {rounds} rounds each, and two processes
  bringing up the same network at once (one wins, the other is told another process is changing it).

## Known gaps (measured, not hidden)

- **A write that acted and still reported failure** is not undone by `up`'s rollback (the tool
  said it did not happen; undoing it could delete someone else's object). `down` removes it, for
  every command (points left for `down` to restore in the last run: {restored_by_down}; left
  unrestored: {unrestored}).
- **Recovery racing the dead process's last command**: a batched run has commands in flight side
  by side; after SIGKILL they run on. A `down` started before they end may find a namespace being
  deleted, fail to read it and report it "not ours, left alone". The crash test waits for them.
- Locks are taken only with a plain `LiveRunner` (commands in the caller's own namespaces, as from
  the command line); with ssh, sudo or nsenter runners, serialize callers yourself.

## Beside other managers

`tests/live/test_beside_managers_live.py`: the seed network brought up and down in a sandbox where
another manager's typical ruleset was loaded with `iptables-restore` and its bridge and namespaces
wired, with a foreign uplink (`rp_filter=2`) sending SYNs whose source is inside the network's
subnet. Every exchange is real TCP; "as before" compares `iptables-save` of both backends and both
families without counters, and `net.ipv4.ip_forward`.

| Scenario | What was probed | Result |
|---|---|---|
{beside_managers}

## Found and fixed while writing this suite

- Interface names that `ip link set/del/add NAME` reads as keywords or their abbreviations (`up`,
  `type`, `help`, `h`, `a`, `master`, ...; 123 words found live) were accepted:
  `ip link add up type veth ...` made a link under another name. They are now rejected.
- `render_script` could run code: a stdin line equal to the here-document delimiter, or a newline
  in a title, description or quoted undo word, started a command line.
- A network's `down` (or its rollback) switched off forwarding on other networks' links (a write
  of `net.ipv4.ip_forward` is copied to every `conf.IF.forwarding`).
- Two processes changing networks at once raced on the firewall's shared chains ("Chain already
  exists"): `up`/`down`/`cleanup` now take a per-network claim and a host-wide lock.
- `ip link del group G` answering "No such device" failed `down` after a failed rollback.
- A crash during a batched `up` (namespaces marked in their own batch, after the host batch put
  veth ends into them) left namespaces that neither `up` nor `down` would touch; fixed in
  `network.py` by the Network work (557b29c), now covered at every crash point.
- A namespace route's gateway was not checked against the namespace's subnets.
- `sysctl -w net.ipv4.ip_forward=1` acting and reporting failure (or its undo failing in a rollback)
  left forwarding on for good: its previous value lived in a firewall rule the rollback removed.
  It is now written beside the locks before the write, and `down` puts it back from there.
- Beside other managers (the table above): `down` switched forwarding off under Docker; the fixed
  mark 0x1000000 met Calico's mark bits; FORWARD accepts named no interface (spoofed sources and
  a foreign bridge's closed ports passed); a forward could not be bound to one address; netnskit's
  jump sat after RHEL's final REJECT; a port forwarded by someone else, or a subnet routed
  elsewhere, was not refused; a firewalld reload lost the record of forwarding's earlier value.
- Ctrl-C during `up` left everything it had made (no rollback, no message); SIGINT to the process
  group killed the `ip -batch` running, half-way through its lines. Now: rolled back, exit 130.
- A `down` interrupted between `ip netns del`'s umount and unlink left an entry that failed every
  later `up`, `status` and `down` ("Invalid argument"); batched `up` and `down` wrote `ip_forward`
  side by side with the restore of its memo, so a crash between them lost the old value.
- An edited file left what it no longer described (`up` "already up", `down` "is down"), and
  `cleanup` removed every network on the host, not the one meant.

## Real host after the run

`ip netns list`: {real_netns}; `iptables-save` lines mentioning netnskit: {real_rules}.
"""


def run_suite(figures: Path, junit: Path, extra: list[str], *, whole: bool = False) -> int:
    env = {**os.environ, "NETNSKIT_FIGURES": str(figures)}
    tests = [*TESTS, "tests/live"] if whole else TESTS
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *tests, *extra]
    return subprocess.run(argv, cwd=ROOT, env=env, check=False).returncode


@contextlib.contextmanager
def busy(workers: int) -> Iterator[list[str]]:
    """``stress --cpu WORKERS`` while the block runs (none for 0); yields a list that holds, once the
    block is left, how loaded the machine was.

    stress runs in a session of its own and is ended by its process group id, which is its pid.
    """
    start = os.getloadavg()[0]
    stress = None
    if workers:
        if shutil.which("stress") is None:
            raise SystemExit("--stress needs the stress program (Debian package stress)")
        stress = subprocess.Popen(
            ["stress", "--cpu", str(workers)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    load: list[str] = []
    try:
        yield load
    finally:
        end = os.getloadavg()[0]
        if stress is not None:
            os.killpg(stress.pid, signal.SIGTERM)
            stress.wait()
        added = f"`stress --cpu {workers}` busy on every CPU throughout" if workers else "no load added"
        load.append(f"{added} (load average {start:.1f} at the start, {end:.1f} at the end)")


def junit_counts(junit: Path) -> dict[str, float]:
    root = ET.parse(junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    xfailed = sum(
        1
        for case in suite.iter("testcase")
        for skipped in case.findall("skipped")
        if (skipped.get("type") or "") == "pytest.xfail"
    )
    return {
        "tests": int(suite.get("tests", 0)),
        "failed": int(suite.get("failures", 0)),
        "errors": int(suite.get("errors", 0)),
        "skipped": int(suite.get("skipped", 0)) - xfailed,
        "xfailed": xfailed,
        "time": float(suite.get("time", 0.0)),
    }


def real_host() -> tuple[str, int]:
    """What the real host shows of ours: namespace names and firewall lines (reads only)."""
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split()
    save = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
    return (", ".join(netns) or "empty"), sum("netnskit" in line for line in save.splitlines())


def render(
    records: list[dict[str, object]], counts: dict[str, float], *, whole: bool = False, load: str = "no load added"
) -> tuple[str, int]:
    total: collections.Counter[str] = collections.Counter()
    kinds: collections.Counter[tuple[str, str]] = collections.Counter()
    by_executor: collections.Counter[tuple[str, str]] = collections.Counter()
    processes = rounds = 0
    for rec in records:
        figure, count = str(rec["figure"]), int(rec["count"])  # type: ignore[call-overload]
        total[figure] += count
        if "kind" in rec:
            kinds[(figure, str(rec["kind"]))] += count
        if "executor" in rec and figure in ("injection_points", "crash_points"):
            by_executor[(figure, str(rec["executor"]))] += count
        if figure == "concurrent_rounds" and "kind" not in rec:
            processes = int(rec.get("processes", 0))  # type: ignore[call-overload]
            rounds = count // max(processes, 1)
    netns, rules = real_host()
    failed = int(counts["failed"] + counts["errors"])
    leftovers = total["leftovers"] + failed + rules + (0 if netns == "empty" else len(netns.split(", ")))
    passed = int(counts["tests"] - counts["failed"] - counts["errors"] - counts["skipped"] - counts["xfailed"])
    text = TEMPLATE.format(
        when=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        host=platform.node(),
        kernel=platform.release(),
        python=platform.python_version(),
        wall=counts["time"],
        what="the reliability tests and every other live test" if whole else "the reliability tests",
        cpus=os.cpu_count(),
        load=load,
        passed=passed,
        failed=int(counts["failed"]),
        errors=int(counts["errors"]),
        skipped=int(counts["skipped"]),
        xfailed=int(counts["xfailed"]),
        injection_points=total["injection_points"],
        inject_instead=kinds[("injection_points", "fails instead")],
        inject_after=kinds[("injection_points", "fails after acting")],
        inject_rollback=kinds[("injection_points", "rollback fails too")],
        crash_points=total["crash_points"],
        crash_resumed=total["crash_recovered_by_resuming_up"],
        interrupt_points=total["interrupt_points"],
        bad_inputs=total["bad_inputs"],
        concurrent_rounds=total["concurrent_rounds"],
        outside_changes=total["outside_changes"],
        property_steps=total["property_steps_undone"],
        property_up_down=total["property_up_down_examples"],
        leftovers=leftovers,
        by_executor=", ".join(f"{f.replace('_', ' ')} {e} {n}" for (f, e), n in sorted(by_executor.items()))
        or "none recorded",
        tolerated=total["tolerated_read_failures"],
        unrestored=total["effect_then_failure_unrestored"],
        restored_by_down=total["effect_then_failure_restored_by_down"],
        beside_managers="\n".join(
            f"| {rec['scenario']} | {rec['probed']} | {rec['result']} |"
            for rec in records
            if rec["figure"] == "beside_managers"
        )
        or "| (not run) | | |",
        processes=processes,
        rounds=rounds,
        real_netns=netns,
        real_rules=rules,
    )
    return text, leftovers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the suite failed or left anything")
    parser.add_argument("--stress", type=int, default=0, metavar="N", help="keep N busy loops running (stress --cpu N)")
    parser.add_argument("--whole", action="store_true", help="run every live test too, not only the reliability ones")
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures, junit = Path(tmp) / "figures.jsonl", Path(tmp) / "junit.xml"
        with busy(args.stress) as load:
            code = run_suite(figures, junit, args.pytest_args, whole=args.whole)
        records = [json.loads(line) for line in figures.read_text().splitlines()] if figures.exists() else []
        counts = junit_counts(junit)
    text, leftovers = render(records, counts, whole=args.whole, load=load[0])
    (ROOT / "RELIABILITY.md").write_text(text)
    print(f"RELIABILITY.md written: pytest exit {code}, leftovers {leftovers}")
    return 1 if args.check and (code != 0 or leftovers) else code


if __name__ == "__main__":
    sys.exit(main())

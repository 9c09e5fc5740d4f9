"""Concurrency, live: several processes inside one sandbox bring networks up and down at the same time.

Distinct networks (each with its bridge, namespaces, masquerade and a port forward, so they share
the firewall's chains and the ip_forward sysctl) go up and down for several rounds in parallel:
no error and, at the end, nothing left. Two processes bringing up the *same* network at once:
one succeeds, the other fails with a clear error, and the network is intact.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from _reliability import Snapshot, record, settled_diff

from netnskit.network import Network
from netnskit.runner import read_line
from netnskit.sandbox import Sandbox

PROCESSES = 3
ROUNDS = 4

# Starts, waits for the go file (so that the processes really overlap), then runs its rounds.
WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    from netnskit.network import Network

    path, rounds, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.005)
    net = Network.from_toml(path)
    done = []
    for r in range(rounds):
        try:
            net.up()
            missing = [s.description for s in net.missing_steps()]
            teardown = net.down()
            done.append({"round": r, "missing": missing, "left": list(teardown.left)})
        except Exception as exc:
            done.append({"round": r, "error": f"{type(exc).__name__}: {exc}"})
            break
    print(json.dumps(done))
    """
)

# Brings one network up once, after the go file appears; prints what happened.
UP_ONCE = textwrap.dedent(
    """
    import json, os, sys, time
    from netnskit.network import Network

    path, go = sys.argv[1], sys.argv[2]
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.002)
    try:
        Network.from_toml(path).up()
        print(json.dumps({"ok": True}))
    except Exception as exc:
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}))
    """
)


def network_toml(i: int) -> str:
    return textwrap.dedent(
        f"""
        [network]
        name = "conc{i}"
        bridge = "br-conc{i}"
        subnet = "10.{60 + i}.0.0/24"
        gateway = "10.{60 + i}.0.1"
        masquerade = true

        [[namespace]]
        name = "c{i}a"

        [[namespace]]
        name = "c{i}b"

        [[port_forward]]
        host_port = {8000 + i}
        netns = "c{i}b"
        port = 80
        """
    )


def start_all(box: Sandbox, argvs: list[list[str]], go: Path) -> list[subprocess.CompletedProcess[str]]:
    """Start every argv inside the sandbox, let them go at once, and wait for all."""
    procs = [box.start(argv) for argv in argvs]
    # each says when it has imported netnskit and waits for the go file (on a loaded host that
    # takes a while): then they start together
    for proc in procs:
        assert read_line(proc.stdout, 60) == "ready", "a worker did not start within 60 s"
    go.touch()
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def test_distinct_networks_up_and_down_in_parallel_for_many_rounds(sandbox: Sandbox, tmp_path: Path) -> None:
    before = Snapshot.capture(sandbox.runner)
    paths = []
    for i in range(PROCESSES):
        path = tmp_path / f"conc{i}.toml"
        path.write_text(network_toml(i))
        paths.append(path)
    go = tmp_path / "go"
    argvs = [[sys.executable, "-c", WORKER, str(p), str(ROUNDS), str(go)] for p in paths]
    results = start_all(sandbox, argvs, go)
    rounds = 0
    for path, result in zip(paths, results, strict=True):
        assert result.returncode == 0, (path.name, result.stderr)
        done = json.loads(result.stdout)
        assert [d.get("error") for d in done] == [None] * ROUNDS, (path.name, done)
        assert all(d["missing"] == [] and d["left"] == [] for d in done), (path.name, done)
        rounds += len(done)
    diff = settled_diff(sandbox.runner, before)
    assert diff == []
    record("concurrent_rounds", rounds, processes=PROCESSES)
    record("leftovers", len(diff), check="concurrent distinct networks")


def test_two_processes_bringing_up_the_same_network_one_wins_the_other_fails_clearly(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    before = Snapshot.capture(sandbox.runner)
    path = tmp_path / "same.toml"
    path.write_text(network_toml(7))
    tries = contested = 0
    for attempt in range(3):
        go = tmp_path / f"go{attempt}"
        results = start_all(sandbox, [[sys.executable, "-c", UP_ONCE, str(path), str(go)]] * 2, go)
        outcomes = [json.loads(r.stdout) for r in results]
        assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
        tries += 1
        wins = [o for o in outcomes if o["ok"]]
        losses = [o for o in outcomes if not o["ok"]]
        contested += len(losses)
        # up is idempotent: if the second came after the first had finished, both succeed
        assert len(wins) >= 1, outcomes
        for loss in losses:
            assert "network 'conc7' is being changed by another process" in loss["error"], loss
        net = Network.from_toml(path, runner=sandbox.runner)
        assert net.missing_steps() == [], (attempt, outcomes)
        report = net.check(timeout=1)
        assert report.ok, report.lines()
        teardown = net.down()
        assert teardown.left == ()
        assert settled_diff(sandbox.runner, before) == []
    assert contested, "in no attempt did the two processes overlap"
    record("concurrent_rounds", tries * 2, processes=2, kind="same network")

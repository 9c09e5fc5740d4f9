"""LiveRunner's own setns for ``nsenter --net=FILE -- COMMAND``, live: from a process inside the sandbox.

The sandbox's runner prefixes every command with its own ``nsenter --target``, so the fast path
is only taken by a process that lives inside the sandbox (as the benchmark's runs do, and as a
user's script on a host does). These tests start such a process and read what it saw.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from netnskit.sandbox import Sandbox
from netnskit.snapshot import HostState

_THREADS = textwrap.dedent(
    """
    import json, os
    from concurrent.futures import ThreadPoolExecutor
    from netnskit.runner import LiveRunner

    run = LiveRunner()
    n = 40
    run.run(["ip", "-batch", "-"], input="".join(f"netns add s{i}\\n" for i in range(n))).check()
    for i in range(n):  # each namespace holds a veth pair named after it
        run.run(["ip", "-n", f"s{i}", "link", "add", f"d{i}", "type", "veth", "peer", "name", f"e{i}"]).check()

    def probe(i):
        out = run.run(["nsenter", f"--net=/run/netns/s{i}", "--", "ip", "-j", "link", "show"]).check().stdout
        return sorted(d["ifname"] for d in json.loads(out)), os.readlink("/proc/thread-self/ns/net")

    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(probe, range(n)))
    # signal handlers run on the main thread, at any point of a run: never inside a namespace
    import signal
    in_handler = []
    signal.signal(signal.SIGALRM, lambda *_: in_handler.append(os.readlink("/proc/thread-self/ns/net")))
    signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
    for _ in range(150):
        run.run(["nsenter", "--net=/run/netns/s0", "--", "true"]).check()
    signal.setitimer(signal.ITIMER_REAL, 0)
    missing = run.run(["nsenter", "--net=/run/netns/nope", "--", "ip", "link", "show"])
    plain = LiveRunner(setns=False).run(["nsenter", "--net=/run/netns/s3", "--", "ip", "-j", "link", "show"])
    host = sorted(d["ifname"] for d in json.loads(run.run(["ip", "-j", "link", "show"]).check().stdout))
    run.run(["ip", "-batch", "-"], input="".join(f"netns del s{i}\\n" for i in range(n))).check()
    print(json.dumps({
        "seen": seen, "home": os.readlink("/proc/self/ns/net"),
        "missing": [missing.returncode, missing.stderr],
        "plain": sorted(d["ifname"] for d in json.loads(plain.check().stdout)), "host": host,
        "handler": sorted(set(in_handler)), "handled": len(in_handler),
        "main": os.readlink("/proc/thread-self/ns/net"),
    }))
    """
)

_NETWORK = textwrap.dedent(
    """
    import json
    from netnskit.executors import BatchExecutor
    from netnskit.network import Network
    from netnskit.runner import LiveRunner

    net = Network(name="fast", bridge="br-fast", subnet="10.66.0.0/24", gateway="10.66.0.1",
                  namespaces=[{"name": f"f{i}", "host_ifname": f"vf{i}"} for i in range(6)],
                  masquerade=True, runner=LiveRunner())
    net.up(BatchExecutor())
    report = net.check()
    addrs = {}
    for i in range(6):
        out = LiveRunner().run(["ip", "-n", f"f{i}", "-4", "-j", "addr", "show", "dev", "eth0"]).check().stdout
        addrs[f"f{i}"] = [a["local"] for d in json.loads(out) for a in d["addr_info"]]
    down = net.down(BatchExecutor())
    print(json.dumps({"ok": report.ok, "lines": report.lines(), "addrs": addrs,
                      "removed": len(down.removed), "gone": list(down.already_gone)}))
    """
)


def _inside(sandbox: Sandbox, script: str) -> dict[str, object]:
    done = subprocess.run(
        sandbox.enter_argv([sys.executable, "-c", script]), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_commands_land_in_their_namespace_and_every_thread_comes_back(sandbox: Sandbox) -> None:
    before = HostState.capture(sandbox.runner)
    seen = _inside(sandbox, _THREADS)
    assert [names for names, _ in seen["seen"]] == [sorted(["lo", f"d{i}", f"e{i}"]) for i in range(40)]  # type: ignore[union-attr]
    assert {thread for _, thread in seen["seen"]} == {seen["home"]}  # type: ignore[union-attr]
    assert seen["handled"] > 0 and seen["handler"] == [seen["home"]] and seen["main"] == seen["home"]
    assert seen["missing"] == [1, "nsenter: cannot open /run/netns/nope: No such file or directory\n"]
    assert seen["plain"] == ["d3", "e3", "lo"]  # the nsenter process itself, same answer
    assert not any(name.startswith("d") for name in seen["host"])  # type: ignore[union-attr]
    assert HostState.capture(sandbox.runner).diff(before) == []


def test_network_up_check_down_through_the_fast_path(sandbox: Sandbox) -> None:
    before = HostState.capture(sandbox.runner)
    result = _inside(sandbox, _NETWORK)
    assert result["ok"], "\n".join(result["lines"])  # type: ignore[arg-type]
    assert result["addrs"] == {f"f{i}": [f"10.66.0.{i + 2}"] for i in range(6)}
    assert result["gone"] == []
    assert HostState.capture(sandbox.runner).diff(before) == []

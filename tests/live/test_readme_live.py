"""The README's seed example, run for real inside a sandbox: the ping gets its reply."""

from __future__ import annotations

import json
import re

from _readme import readme_block

import netnskit
from netnskit.runner import LiveRunner
from netnskit.sandbox import Sandbox

SEED = 'VethPair("veth-red", "veth-blue"'


def host_namespaces() -> list[str]:
    out = LiveRunner().run(["ip", "-j", "netns", "list"]).check().stdout.strip()
    return sorted(d["name"] for d in json.loads(out or "[]"))


def test_seed_example_really_pings_and_cleans_up(sandbox: Sandbox, monkeypatch, capsys):
    before = host_namespaces()
    monkeypatch.setattr(netnskit, "LiveRunner", lambda: sandbox.runner)
    exec(compile(readme_block("python", SEED), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "64 bytes from 192.168.15.2" in out
    # ping -c 1 -w 5 asks until one reply: a first request lost on a loaded host is asked again
    assert re.search(r"^\d+ packets transmitted, 1 received", out, re.M)
    assert "Neighbour(address='192.168.15.2', dev='veth-red'" in out
    # the example deletes both namespaces: nothing is left in the sandbox, nothing touched the host
    assert json.loads(sandbox.run(["ip", "-j", "netns", "list"]).check().stdout or "[]") == []
    assert [d["ifname"] for d in json.loads(sandbox.run(["ip", "-j", "link", "show"]).check().stdout)] == ["lo"]
    assert host_namespaces() == before


def test_seed_example_runs_twice_in_a_row(sandbox: Sandbox, monkeypatch, capsys):
    monkeypatch.setattr(netnskit, "LiveRunner", lambda: sandbox.runner)
    block = readme_block("python", SEED).replace("red.delete()\nblue.delete()", "")  # keep the lab for a second run
    assert "delete" not in block.split("print(red.neighbours())")[1]
    exec(compile(block, "README.md", "exec"), {})
    # someone downs one end between runs: the second run must bring it back (or its ping raises)
    sandbox.run(["ip", "-n", "red", "link", "set", "veth-red", "down"]).check()
    exec(compile(block, "README.md", "exec"), {})
    assert len(re.findall(r"^\d+ packets transmitted, 1 received", capsys.readouterr().out, re.M)) == 2
    names = sorted(d["name"] for d in json.loads(sandbox.run(["ip", "-j", "netns", "list"]).check().stdout))
    assert names == ["blue", "red"]
    addrs = json.loads(sandbox.run(["ip", "-n", "red", "-j", "addr", "show", "dev", "veth-red"]).check().stdout)
    assert [a["local"] for a in addrs[0]["addr_info"] if a["family"] == "inet"] == ["192.168.15.1"]

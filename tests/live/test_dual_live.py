"""Dual stack, live in a sandbox: the dual-stack seed up, IPv6 between the namespaces, to the gateway,
to the LAN host and beyond, a port forward over IPv6 from the LAN with a real TCP connection, check
over both families, and ``down`` leaving both families exactly as before (addresses, routes,
ip6tables-save, sysctls), through ip6tables or through the network's own nft table (then ``nft list
ruleset`` as text too), also beside FORWARD drops of both families. Every probe waits on kernel
state or retries: no single packet decides.
"""

from __future__ import annotations

import json
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from netnskit.executors import BatchExecutor
from netnskit.network import Network
from netnskit.sandbox import Sandbox
from netnskit.snapshot import HostState

DUAL = Path(__file__).resolve().parents[2] / "examples" / "seed-dual.toml"
BRIDGED = {"red": "fd15::1", "blue": "fd15::2", "orange": "fd15::3", "gray": "fd15::4"}


def j(box: Sandbox, *argv: str) -> list[dict[str, Any]]:
    out = box.run(list(argv)).check().stdout.strip()
    return json.loads(out) if out else []


def settled(box: Sandbox, netns: str | None, timeout: float = 10.0) -> None:
    """Wait until no IPv6 address of ``netns`` (the host for None) is tentative: kernel state, not time."""
    argv = ["ip", *(["-n", netns] if netns else []), "-6", "-j", "addr", "show", "tentative"]
    deadline = time.monotonic() + timeout
    while any(d.get("addr_info") for d in j(box, *argv)):
        assert time.monotonic() < deadline, f"addresses still tentative in {netns or 'the host'}: {j(box, *argv)}"
        time.sleep(0.05)


def ping6(box: Sandbox, source: str, target: str) -> None:
    """One reply within 5 s (a request every 0.2 s): a first request lost on a loaded host decides nothing."""
    result = box.namespace(source).exec(["ping", "-6", "-n", "-c", "1", "-i", "0.2", "-w", "5", target], check=False)
    assert result.ok and ", 1 received" in result.stdout, f"{source} -> {target}: {result.stdout}{result.stderr}"


def fetch(box: Sandbox, source: str, url: str, tries: int = 3) -> str:
    """An HTTP GET from ``source`` (a real TCP connection), tried up to ``tries`` times."""
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    for _ in range(tries):
        result = box.namespace(source).exec([sys.executable, "-c", code], check=False)
        if result.ok:
            return result.stdout
    raise AssertionError(f"GET {url} from {source}: {result.stdout}{result.stderr}")


def dual(box: Sandbox, **network: object) -> Network:
    """The dual-stack seed, with ``network`` keys changed in its [network] table."""
    data = tomllib.loads(DUAL.read_text())
    data["network"].update(network)
    return Network.from_dict(data, source=str(DUAL), runner=box.runner, directory=str(DUAL.parent))


def nft_ruleset(box: Sandbox) -> str:
    """``nft list ruleset``, as text (iptables-nft's tables in it too)."""
    return box.run(["nft", "list", "ruleset"]).check().stdout


@pytest.mark.parametrize("firewall", ["iptables", "nftables"])
def test_dual_seed_up_ipv6_everywhere_and_down_exact(sandbox: Sandbox, firewall: str) -> None:
    before = HostState.capture(sandbox.runner)
    ruleset = nft_ruleset(sandbox)
    net = dual(sandbox, firewall=firewall)
    net.up()
    for name in [None, *BRIDGED, "lan", "internet"]:
        settled(sandbox, name)

    # what the kernel did, read independently: addresses (nodad: usable at once), routes, forwarding
    for name, address in BRIDGED.items():
        eth0 = j(sandbox, "ip", "-n", name, "-6", "-j", "addr", "show", "dev", "eth0")[0]
        # the static address (nodad: usable at once) and, IPv6 being configured, a link-local one
        ours = [a for a in eth0["addr_info"] if a.get("scope") == "global"]
        assert [(a["local"], a["prefixlen"], a.get("nodad")) for a in ours] == [(address, 64, True)]
        local = [a["local"] for a in eth0["addr_info"] if a.get("scope") == "link"]
        assert len(local) == 1 and local[0].startswith("fe80::"), eth0["addr_info"]
        default = j(sandbox, "ip", "-n", name, "-6", "-j", "route", "show", "default")
        assert [r["gateway"] for r in default] == ["fd15::5"]
    bridge = j(sandbox, "ip", "-6", "-j", "addr", "show", "dev", "v-net-0")[0]
    assert [a["local"] for a in bridge["addr_info"] if a.get("scope") == "global"] == ["fd15::5"]
    assert sandbox.run(["sysctl", "-n", "net.ipv6.conf.all.forwarding"]).stdout.strip() == "1"
    assert sandbox.run(["sysctl", "-n", "net.ipv6.conf.v-net-0.forwarding"]).stdout.strip() == "1"
    saved6 = sandbox.run(["ip6tables-save"]).check().stdout
    if firewall == "iptables":
        assert "--to-destination [fd15::2]:80" in saved6
        masquerades = [line for line in saved6.splitlines() if line.endswith("-j MASQUERADE")]
        assert len(masquerades) == 1 and "-d fd15::2/128" in masquerades[0]  # the hairpin alone: IPv6 is routed
    else:
        # both families in the network's own table, nothing of it in ip6tables (its FORWARD accepts)
        assert "netnskit" not in saved6
        table = sandbox.run(["nft", "list", "table", "inet", "netnskit-seed"]).check().stdout
        lines = [line.strip() for line in table.splitlines()]
        assert lines.count("fib daddr type local meta nfproto ipv6 tcp dport 80 dnat ip6 to [fd15::2]:80") == 2
        masquerades = [line for line in lines if line.startswith("ip6 ") and line.endswith("masquerade")]
        assert len(masquerades) == 1 and "ip6 daddr fd15::2 " in masquerades[0]  # the hairpin alone
    assert net.status().up

    # ping -6 between namespaces (every pair), to the gateway, to the LAN host and beyond it
    for source in BRIDGED:
        ping6(sandbox, source, "fd15::5")
        for target, address in BRIDGED.items():
            if target != source:
                ping6(sandbox, source, address)
    ping6(sandbox, "red", "fd16::3")
    ping6(sandbox, "red", "2001:db8:113::10")
    ping6(sandbox, "internet", "fd15::4")

    # a port forward over IPv6 from the LAN: a real HTTP fetch, and the server saw the LAN host's
    # own IPv6 address (forwarded, not masqueraded)
    page = fetch(sandbox, "lan", "http://[fd16::2]/")
    assert page == (DUAL.parent / "www" / "index.html").read_text() + "\n"
    log = sandbox.run(["cat", net.process_logs()["web"]]).check().stdout
    assert "fd16::3 - - " in log and '"GET / HTTP/1.1" 200' in log
    # and over IPv4 still, to the same server
    assert fetch(sandbox, "lan", "http://192.168.1.2/") == page

    # check probes both families
    report = net.check()
    assert report.ok, "\n".join(report.lines())
    pings = [p.target for p in report.probes if p.kind == "ping"]
    assert len(pings) == 24 and sum(":" in t for t in pings) == 12
    forwards = {(p.source, p.target) for p in report.probes if p.kind == "forward"}
    assert forwards == {
        ("host", "192.168.15.5:80"),
        ("lan", "192.168.1.2:80"),
        ("host", "[fd15::5]:80"),
        ("lan", "[fd16::2]:80"),
    }
    assert report.neighbours is not None and report.neighbours.left == 0  # IPv6 entries deleted too

    teardown = net.down()
    assert teardown.already_gone == () and teardown.left == ()
    # both families exactly as before: ip -j addr (both), ip -j -4/-6 route table all, iptables-save,
    # ip6tables-save and the forwarding sysctls of both; on nftables, the ruleset as text too
    assert HostState.capture(sandbox.runner).diff(before) == []
    if firewall == "nftables":
        assert nft_ruleset(sandbox) == ruleset


def test_masquerade6_hides_the_namespaces_and_check_says_so(sandbox: Sandbox) -> None:
    before = HostState.capture(sandbox.runner)
    net = dual(sandbox, masquerade6=True)
    net.up(executor=BatchExecutor())
    report = net.check()
    assert report.ok, "\n".join(report.lines())
    nat6 = [p for p in report.probes if p.kind == "nat" and p.target.startswith("[")]
    # masqueraded: the LAN host and the internet stand-in see the host's address on the LAN link
    assert {p.detail for p in nat6} == {"lan saw peer fd16::2", "internet saw peer fd16::2"}
    net.down(executor=BatchExecutor())
    assert HostState.capture(sandbox.runner).diff(before) == []


def test_check_fails_when_ipv6_is_broken(sandbox: Sandbox) -> None:
    net = Network.from_toml(DUAL, runner=sandbox.runner)
    net.up()
    sandbox.run(["ip", "-n", "orange", "addr", "del", "fd15::3/64", "dev", "eth0"]).check()
    # and its link-local address, which would otherwise still source its pings through the gateway
    sandbox.run(["ip", "-n", "orange", "-6", "addr", "flush", "dev", "eth0", "scope", "link"]).check()
    report = net.check(timeout=0.5, tries=2)
    failed = {(p.source, p.target) for p in report.failures}
    # orange's own IPv6 pings fail, and so do the pings to it; IPv4 is untouched
    assert failed == {
        ("orange", "fd15::5"),
        ("orange", "fd15::4"),
        ("orange", "fd15::1"),
        ("red", "fd15::3"),
        ("blue", "fd15::3"),
    }
    assert not net.status().up  # its address is missing
    net.up()  # puts it back
    assert net.check().ok
    net.down()


def test_a_forward_taken_out_loses_its_ipv6_rules_too(sandbox: Sandbox) -> None:
    before = HostState.capture(sandbox.runner)
    net = Network.from_toml(DUAL, runner=sandbox.runner)
    net.up()
    data = tomllib.loads(DUAL.read_text())
    del data["port_forward"]
    edited = Network.from_dict(data, source=str(DUAL), runner=sandbox.runner, directory=str(DUAL.parent))
    assert [o.name for o in edited.status().extra if o.name.startswith("-6 ")]
    edited.up()
    saved6 = sandbox.run(["ip6tables-save"]).check().stdout
    assert "DNAT" not in saved6 and "-i v-net-0 -o v-net-0" in saved6
    assert edited.status().up
    edited.down()
    assert HostState.capture(sandbox.runner).diff(before) == []


@pytest.mark.parametrize("firewall", ["iptables", "nftables"])
def test_dual_stack_beside_forward_drops_of_both_families(sandbox: Sandbox, firewall: str) -> None:
    """ufw's default, or Docker with ip6tables on: FORWARD's policy DROP in iptables and ip6tables.
    Routed IPv6 gets the accepts IPv4's masquerade has (to the uplinks, and the replies back); on
    nftables, an accept in the network's table does not stop that drop, so each family's accepts
    go to its iptables too. The forward over both families answers from the LAN, the namespaces
    reach the LAN host and past it over IPv6, and ``down`` is exact."""
    for tool in ("iptables", "ip6tables"):
        sandbox.run([tool, "-P", "FORWARD", "DROP"]).check()
    before = HostState.capture(sandbox.runner)
    ruleset = nft_ruleset(sandbox)
    net = dual(sandbox, firewall=firewall)
    net.up()
    for name in [None, *BRIDGED, "lan", "internet"]:
        settled(sandbox, name)
    page = fetch(sandbox, "lan", "http://[fd16::2]/")
    assert page == (DUAL.parent / "www" / "index.html").read_text() + "\n"
    assert fetch(sandbox, "lan", "http://192.168.1.2/") == page
    log = sandbox.run(["cat", net.process_logs()["web"]]).check().stdout
    assert "fd16::3 - - " in log and "192.168.1.3 - - " in log
    ping6(sandbox, "red", "fd16::3")  # routed through the host's FORWARD, not masqueraded
    ping6(sandbox, "gray", "2001:db8:113::10")
    ping6(sandbox, "red", "fd15::2")  # bridged: no FORWARD without br_netfilter, and accepted with it
    saved6 = sandbox.run(["ip6tables-save"]).check().stdout
    ours6 = sorted(line for line in saved6.splitlines() if "netnskit:seed" in line and "NETNSKIT-FORWARD" in line)
    tag = '-m comment --comment "netnskit:seed" -j ACCEPT'
    assert ours6 == sorted(
        [
            f"-A NETNSKIT-FORWARD -i v-net-0 -o v-net-0 {tag}",
            f"-A NETNSKIT-FORWARD -s fd15::/64 -i v-net-0 -o v-lan {tag}",
            f"-A NETNSKIT-FORWARD -d fd15::/64 -o v-net-0 -m conntrack --ctstate RELATED,ESTABLISHED {tag}",
            "-A NETNSKIT-FORWARD -d fd15::2/128 -o v-net-0 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT "
            f"--ctorigdstport 80 {tag}",
            "-A NETNSKIT-FORWARD -s fd15::2/128 -i v-net-0 -p tcp -m tcp --sport 80 -m conntrack --ctstate DNAT "
            f"--ctorigdstport 80 {tag}",
        ]
    ), saved6
    # on nftables the translation itself is the table's: ip6tables holds the accepts alone
    assert ("DNAT --to-destination" in saved6) == (firewall == "iptables")
    assert net.status().up
    net.down()
    assert HostState.capture(sandbox.runner).diff(before) == []
    if firewall == "nftables":
        assert nft_ruleset(sandbox) == ruleset

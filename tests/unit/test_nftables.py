"""The nftables backend: the table as exact nft text, the exact commands, the choice of firewall, refusals."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from test_network import (
    SMALL_RULES,
    script_empty_host,
    script_small_up,
    small,
    writes,
)

from netnskit.errors import CommandNotFoundError, ConfigError, ConflictError, NetnskitError, ValidationError
from netnskit.firewall import Firewall, NatRule, PortForward, Rule, SavedRules, SysctlRecord
from netnskit.firewall.choice import choose
from netnskit.firewall.nftables import (
    Nftables,
    forward_drops,
    native_forward_drops,
    nft_needs,
    nft_port_users,
    render,
    table_comment,
    translate,
)
from netnskit.network import Network
from netnskit.network.firewall import _firewall_of, _firewall_removal, _wanted_rules, _wanted_rules6
from netnskit.runner import Result
from netnskit.testing import FakeRunner

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed.toml"

T1_TABLE = """\
table inet netnskit-t1 {
	comment "netnskit:t1 sha256:de1ea780440019eb"
	chain raw-prerouting {
		type filter hook prerouting priority raw; policy accept;
		iifname "br-t1" ip saddr 127.0.0.0/8 drop
		iifname "br-t1" ip daddr 127.0.0.0/8 drop
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local tcp dport 8080 dnat ip to 10.9.0.2:80
		fib daddr type local ip daddr 192.168.1.2 udp dport 8100-8102 dnat ip to 10.9.0.2 : udp dport map { 8100 : 9100, 8101 : 9101, 8102 : 9102 }
	}

	chain output {
		type nat hook output priority -100; policy accept;
		fib daddr type local tcp dport 8080 dnat ip to 10.9.0.2:80
		fib daddr type local ip daddr 192.168.1.2 udp dport 8100-8102 dnat ip to 10.9.0.2 : udp dport map { 8100 : 9100, 8101 : 9101, 8102 : 9102 }
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 10.9.0.0/24 oifname != "br-t1" masquerade
		ip saddr 10.9.0.0/24 ip daddr 10.9.0.2 oifname "br-t1" tcp dport 80 ct status dnat ct original proto-dst 8080 masquerade
		ip saddr 127.0.0.0/8 ip daddr 10.9.0.2 oifname "br-t1" tcp dport 80 ct status dnat ct original proto-dst 8080 masquerade
		ip saddr 10.9.0.0/24 ip daddr 10.9.0.2 oifname "br-t1" udp dport 9100-9102 ct status dnat ct original ip daddr 192.168.1.2 ct original proto-dst 8100-8102 masquerade
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "br-t1" oifname "br-t1" accept
		ip saddr 10.9.0.0/24 iifname "br-t1" oifname "eth0" accept
		ip daddr 10.9.0.0/24 oifname "br-t1" ct state established,related accept
		ip daddr 10.9.0.2 oifname "br-t1" tcp dport 80 ct status dnat ct original proto-dst 8080 accept
		ip saddr 10.9.0.2 iifname "br-t1" tcp sport 80 ct status dnat ct original proto-dst 8080 accept
		ip daddr 10.9.0.2 oifname "br-t1" udp dport 9100-9102 ct status dnat ct original ip daddr 192.168.1.2 ct original proto-dst 8100-8102 accept
		ip saddr 10.9.0.2 iifname "br-t1" udp sport 9100-9102 ct status dnat ct original ip daddr 192.168.1.2 ct original proto-dst 8100-8102 accept
	}
}
"""  # noqa: E501


def t1_rules() -> list[Rule]:
    fake = FakeRunner()
    kw = {"owner": "t1", "runner": fake}
    rules = NatRule("10.9.0.0/24", "br-t1", uplinks=["eth0"], **kw).rules()  # type: ignore[arg-type]
    rules += PortForward(8080, "10.9.0.2", 80, "tcp", bridge="br-t1", subnet="10.9.0.0/24", **kw).rules()  # type: ignore[arg-type]
    bound = PortForward(
        (8100, 8102),
        "10.9.0.2",
        (9100, 9102),
        "udp",
        host_address="192.168.1.2",
        bridge="br-t1",
        subnet="10.9.0.0/24",
        **kw,
    )  # type: ignore[arg-type]
    return rules + bound.rules()


# --- the table, as text -------------------------------------------------------------------------


def test_the_table_of_masquerade_a_forward_and_a_bound_moved_range_exactly() -> None:
    assert render("t1", t1_rules()) == T1_TABLE


def test_each_iptables_word_of_ours_has_its_nft_form() -> None:
    dnat = Rule(4, "nat", "NETNSKIT-PREROUTING", ["-p", "tcp", "-m", "tcp", "--dport", "8000:8010", "-j", "DNAT",
                                                   "--to-destination", "10.0.0.2:8000-8010/8000"])  # fmt: skip
    assert translate(dnat) == "fib daddr type local tcp dport 8000-8010 dnat ip to 10.0.0.2"  # same ports: kept
    six = Rule(
        6, "nat", "NETNSKIT-OUTPUT", ["-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", "[fd15::2]:8080"]
    )
    assert translate(six) == "fib daddr type local meta nfproto ipv6 tcp dport 80 dnat ip6 to [fd15::2]:8080"
    # an IPv6 rule with no address says its family (the table is inet); one with an address needs not
    bridge6 = Rule(6, "filter", "NETNSKIT-FORWARD", ["-i", "br", "-o", "br", "-j", "ACCEPT"])
    assert translate(bridge6) == 'meta nfproto ipv6 iifname "br" oifname "br" accept'
    hairpin6 = Rule(6, "nat", "NETNSKIT-POSTROUTING", ["-s", "fd15::/64", "-d", "fd15::2/128", "-j", "MASQUERADE"])
    assert translate(hairpin6) == "ip6 saddr fd15::/64 ip6 daddr fd15::2 masquerade"
    out = Rule(4, "nat", "NETNSKIT-POSTROUTING", ["-s", "10.0.0.0/24", "!", "-d", "10.0.0.0/24", "-j", "MASQUERADE"])
    assert translate(out) == "ip saddr 10.0.0.0/24 ip daddr != 10.0.0.0/24 masquerade"


def test_a_word_it_does_not_know_is_refused_not_dropped() -> None:
    with pytest.raises(NetnskitError, match="'--mark' is not a word it knows"):
        translate(Rule(4, "nat", "NETNSKIT-POSTROUTING", ["-m", "mark", "--mark", "0x1", "-j", "MASQUERADE"]))
    with pytest.raises(NetnskitError, match="no chain for mangle"):
        render("t1", [Rule(4, "mangle", "PREROUTING", ["-j", "ACCEPT"])])


def test_the_comment_carries_the_owner_and_the_digest_of_the_body() -> None:
    assert table_comment(T1_TABLE) == "netnskit:t1 sha256:de1ea780440019eb"
    other = render("t1", t1_rules()[:1])
    assert table_comment(other) != table_comment(T1_TABLE)


# --- the network's plan and up ------------------------------------------------------------------


def nft_small(fake: FakeRunner, **kw: object) -> Network:
    return small(fake, firewall="nftables", **kw)


SMALL_TABLE_BODY = """\
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "br-t1" oifname "br-t1" accept
	}
"""


def small_table() -> str:
    return render("t1", [Rule(4, "filter", "NETNSKIT-FORWARD", ["-i", "br-t1", "-o", "br-t1", "-j", "ACCEPT"])])


def test_plan_is_one_nft_transaction_typed_as_its_own_lane() -> None:
    net = nft_small(FakeRunner())
    step = net.plan()[-1]
    assert step.description == "nft table inet netnskit-t1 of network t1 (netnskit:t1)"
    (do,) = step.do
    assert do.argv == ("nft", "-f", "-") and do.tool == "nft" and do.channel == "nft" and do.batch is None
    assert do.input == "table inet netnskit-t1\ndelete table inet netnskit-t1\n" + small_table()
    assert small_table().endswith(SMALL_TABLE_BODY + "}\n")
    (undo,) = step.undo
    assert undo.input == "table inet netnskit-t1\ndelete table inet netnskit-t1\n"
    assert "iptables" not in net.render_script()


def test_up_writes_the_table_in_one_nft_run_and_no_iptables_rule_where_forward_accepts() -> None:
    fake = FakeRunner()
    script_empty_host(fake)
    fake.fail(["nft", "list", "table", "inet", "netnskit-t1"], "Error: No such file or directory\n")
    net = nft_small(fake)
    net.up()
    nft = [(a, i) for a, i in zip(fake.argvs, fake.inputs, strict=True) if a[0] == "nft" and a[1] == "-f"]
    assert nft == [(["nft", "-f", "-"], "table inet netnskit-t1\ndelete table inet netnskit-t1\n" + small_table())]
    assert not any(a[0].startswith("iptables-restore") for a in fake.argvs)


def test_up_also_places_the_bridge_accepts_in_iptables_whereforward_drops() -> None:
    fake = FakeRunner()
    script_empty_host(fake)
    fake.on(
        ["iptables-save"], stdout="*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
    )
    fake.fail(re.compile(r"^iptables -w 10 -t filter -C "), "iptables: Bad rule (does a matching rule exist?)\n")
    fake.fail(["nft", "list", "table", "inet", "netnskit-t1"], "Error: No such file or directory\n")
    nft_small(fake).up()
    restores = [i for a, i in zip(fake.argvs, fake.inputs, strict=True) if a[0] == "iptables-restore"]
    assert restores == [
        "*filter\n-N NETNSKIT-FORWARD\n-N NETNSKIT-USER\n"
        "-A NETNSKIT-FORWARD -i br-t1 -o br-t1 -m comment --comment netnskit:t1 -j ACCEPT\n"
        "-I NETNSKIT-FORWARD -m comment --comment netnskit -j NETNSKIT-USER\n"
        "-I FORWARD -m comment --comment netnskit -j NETNSKIT-FORWARD\nCOMMIT\n"
    ]
    assert ["nft", "-f", "-"] in fake.argvs


def test_forward_drops_by_policy_or_by_a_final_reject_not_by_ours() -> None:
    def parsed(text: str) -> SavedRules:
        return SavedRules.parse(4, f"*filter\n:FORWARD {text}\nCOMMIT\n")

    assert forward_drops(parsed("DROP [0:0]"))
    assert forward_drops(parsed("ACCEPT [0:0]\n-A FORWARD -j REJECT --reject-with icmp-host-prohibited"))
    assert not forward_drops(parsed("ACCEPT [0:0]\n-A FORWARD -s 10.0.0.0/8 -j ACCEPT"))


def test_up_when_the_table_carries_the_same_digest_writes_nothing() -> None:
    fake = FakeRunner()
    script_small_up(fake)
    fake.on(["iptables-save"], stdout="")
    fake.on(["nft", "list", "table", "inet", "netnskit-t1"], stdout=small_table())
    net = nft_small(fake)
    assert net.missing_steps() == []
    fake.clear()
    net.up()
    assert writes(fake) == []
    assert net.status().firewall == "nftables (as set)"


def test_a_table_that_differs_is_replaced_whole_and_its_undo_puts_the_old_one_back() -> None:
    fake = FakeRunner()
    script_small_up(fake)
    fake.on(["iptables-save"], stdout="")
    old = render("t1", t1_rules())
    fake.on(["nft", "list", "table", "inet", "netnskit-t1"], stdout=old)
    (step,) = nft_small(fake).missing_steps()
    assert step.do[0].input == "table inet netnskit-t1\ndelete table inet netnskit-t1\n" + small_table()
    assert step.undo[0].input == "table inet netnskit-t1\ndelete table inet netnskit-t1\n" + old


def test_iptables_rules_of_ours_are_drift_for_a_network_now_on_nftables() -> None:
    fake = FakeRunner()
    script_small_up(fake)  # its iptables-save holds the bridge's accept, in iptables
    fake.on(["nft", "list", "table", "inet", "netnskit-t1"], stdout=small_table())
    steps = nft_small(fake).missing_steps()
    assert steps[0].description.startswith("remove 1 firewall rule of netnskit:t1")
    assert SMALL_RULES.count("netnskit:t1") == 1


# --- down and cleanup ---------------------------------------------------------------------------


def test_down_deletes_the_table_in_one_transaction() -> None:
    fake = FakeRunner()
    script_small_up(fake)
    fake.on(["iptables-save"], stdout="")
    fake.on(["nft", "list", "table", "inet", "netnskit-t1"], stdout=small_table())
    teardown = nft_small(fake).down()
    deletes = [i for a, i in zip(fake.argvs, fake.inputs, strict=True) if a == ["nft", "-f", "-"]]
    assert deletes == ["table inet netnskit-t1\ndelete table inet netnskit-t1\n"]
    assert "nft table inet netnskit-t1" in teardown.removed
    # the table goes before the links and namespaces (undo order)
    order = [" ".join(a) for a in writes(fake)]
    assert order.index("nft -f -") < order.index("ip netns del a")


def test_down_of_an_iptables_network_does_not_ask_nft() -> None:
    fake = FakeRunner()
    script_small_up(fake)
    small(fake).down()
    assert not any(a[0] == "nft" for a in fake.argvs)


def test_cleanup_removes_the_tables_of_that_name_only() -> None:
    from netnskit.network import cleanup

    fake = FakeRunner()
    script_empty_host(fake)
    fake.on(["nft", "list", "tables"], stdout="table inet netnskit-t1\ntable inet netnskit-other\ntable inet x\n")
    teardown = cleanup("t1", fake)
    assert [i for a, i in zip(fake.argvs, fake.inputs, strict=True) if a == ["nft", "-f", "-"]] == [
        "table inet netnskit-t1\ndelete table inet netnskit-t1\n"
    ]
    assert teardown.removed == ("nft table inet netnskit-t1",)


# --- choosing, validating, a missing nft ---------------------------------------------------------


def test_a_bad_firewall_is_refused_before_any_command_naming_the_allowed_ones(tmp_path: Path) -> None:
    fake = FakeRunner()
    with pytest.raises(ValidationError, match=r"invalid firewall 'nft': must be one of 'iptables', 'nftables', 'auto'"):
        small(fake, firewall="nft")
    path = tmp_path / "bad.toml"
    path.write_text(SEED.read_text().replace("[network]\n", '[network]\nfirewall = "pf"\n', 1))
    with pytest.raises(ConfigError, match="firewall"):
        Network.from_toml(path, runner=fake)
    assert fake.argvs == []


def test_the_file_sets_the_firewall(tmp_path: Path) -> None:
    path = tmp_path / "nft.toml"
    path.write_text(SEED.read_text().replace("[network]\n", '[network]\nfirewall = "nftables"\n', 1))
    assert Network.from_toml(path, runner=FakeRunner()).firewall == "nftables"
    assert Network.from_toml(SEED, runner=FakeRunner()).firewall == "iptables"


class _NoNft(FakeRunner):
    """A FakeRunner on a host without nft: running it raises, as LiveRunner does."""

    def run(self, argv: Sequence[str], **kw: object) -> Result:  # type: ignore[override]
        if argv and argv[0] == "nft":
            raise CommandNotFoundError("nft", "nftables", list(argv))
        return super().run(argv, **kw)  # type: ignore[arg-type]


def test_auto_picks_nftables_where_nft_is_there_and_no_legacy_rules() -> None:
    fake = FakeRunner()
    fake.on(["cat", "/proc/net/ip_tables_names"], stdout="")
    fake.on(["cat", "/proc/net/ip6_tables_names"], stdout="")
    assert str(choose(fake, "auto")) == "nftables (auto: nft is installed and no iptables-legacy rules exist)"
    legacy = FakeRunner()
    legacy.on(["cat", "/proc/net/ip_tables_names"], stdout="filter\n")
    legacy.on(["iptables-legacy-save"], stdout="*filter\n-A INPUT -j ACCEPT\nCOMMIT\n")
    legacy.on(["cat", "/proc/net/ip6_tables_names"], stdout="")
    assert str(choose(legacy, "auto")) == "iptables (auto: 1 iptables-legacy rule(s) exist)"
    assert str(choose(_NoNft(), "auto")) == "iptables (auto: nft is not installed)"
    assert str(choose(_NoNft(), "iptables")) == "iptables (as set)"


def test_a_missing_nft_names_the_debian_package() -> None:
    net = nft_small(_NoNft())
    with pytest.raises(CommandNotFoundError) as caught:
        Nftables(net.runner).read("t1")
    assert caught.value.package == "nftables"
    assert Nftables(_NoNft()).tables() == []  # nothing to clean up where nft is not installed


# --- conflicts from the nft ruleset, and what the other tables still need --------------------------


def ruleset(*rules: dict[str, object]) -> dict[str, object]:
    return {"nftables": [{"metainfo": {"version": "1.0.6"}}, *({"rule": r} for r in rules)]}


def dnat_rule(table: str, port: object, *, family: str = "inet", daddr: str | None = None) -> dict[str, object]:
    expr: list[dict[str, object]] = [
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": port}},
        {"dnat": {"addr": "10.0.0.2", "family": "ip"}},
    ]
    if daddr:
        match = {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": daddr}
        expr.insert(0, {"match": match})
    return {"family": family, "table": table, "chain": "prerouting", "handle": 7, "expr": expr}


def test_a_foreign_or_another_networks_nft_dnat_of_the_port_is_a_conflict() -> None:
    found = ruleset(dnat_rule("docker-bridges", 80, family="ip"), dnat_rule("netnskit-other", {"range": [70, 90]}))
    assert nft_port_users(found, "tcp", (80, 80), None, "netnskit:t1") == [
        ("foreign", "nft rule in ip docker-bridges prerouting (handle 7)"),
        ("netnskit:other", "nft rule in inet netnskit-other prerouting (handle 7)"),
    ]
    assert nft_port_users(found, "tcp", (80, 80), None, "netnskit:other") == [
        ("foreign", "nft rule in ip docker-bridges prerouting (handle 7)")
    ]
    assert nft_port_users(found, "udp", (80, 80), None, "netnskit:t1") == []
    assert nft_port_users(found, "tcp", (81, 81), None, "netnskit:t1") == [
        ("netnskit:other", "nft rule in inet netnskit-other prerouting (handle 7)")
    ]
    # a rule for an address the host does not have meets no unbound forward
    far = ruleset(dnat_rule("kube", 80, family="ip", daddr="10.96.0.10"))
    assert nft_port_users(far, "tcp", (80, 80), None, "netnskit:t1", ["192.168.1.2"]) == []


def test_up_refuses_a_port_an_nft_table_forwards_before_any_change() -> None:
    fake = FakeRunner()
    script_empty_host(fake)
    # the tables iptables-save does not show are read one by one: here another network's
    fake.on(["nft", "list", "tables"], stdout="table ip filter\ntable inet netnskit-other\n")
    table = ruleset(dnat_rule("netnskit-other", 8080))
    fake.on(["nft", "-j", "list", "table", "inet", "netnskit-other"], stdout=json.dumps(table))
    net = nft_small(fake, port_forwards=[{"host_port": 8080, "netns": "a", "port": 80}])
    with pytest.raises(ConflictError, match="already forwarded by network 'other': nft rule in inet netnskit-other"):
        net.up()
    assert writes(fake) == []
    # iptables-nft's own tables (iptables-save reads them) and the whole ruleset are not parsed
    assert ["nft", "-j", "list", "table", "ip", "filter"] not in fake.argvs
    assert ["nft", "-j", "list", "ruleset"] not in fake.argvs


def test_what_the_other_tables_need_keeps_forwarding_and_route_localnet() -> None:
    guard = {
        "family": "inet",
        "table": "netnskit-b",
        "chain": "raw-prerouting",
        "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "br-b"}}, {"drop": None}],
    }
    nat = {"family": "inet", "table": "netnskit-b", "chain": "postrouting", "expr": [{"masquerade": None}]}
    found = ruleset(guard, nat, dnat_rule("netnskit-t1", 80))
    assert nft_needs(found) == (True, ["br-b"])
    assert nft_needs(found, skip=["b"]) == (True, [])
    assert nft_needs(found, skip=["b", "t1"]) == (False, [])


def test_what_the_other_tables_need_of_ipv6_is_forwarding_while_one_has_an_ipv6_rule() -> None:
    def accept(table: str, family: str | None) -> dict[str, object]:
        expr: list[dict[str, object]] = [{"accept": None}]
        if family:
            expr.insert(0, {"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": family}})
        return {"family": "inet", "table": table, "chain": "forward", "expr": expr}

    dnat6 = dnat_rule("netnskit-c", 80)
    dnat6["expr"][-1] = {"dnat": {"addr": "fd15::2", "family": "ip6"}}  # type: ignore[index]
    # a dual-stack network's bridge accept names IPv6: it needs IPv6 forwarding with no nat at all
    found = ruleset(accept("netnskit-a", "ipv6"), accept("netnskit-b", None), dnat6)
    assert nft_needs(found, family=6) == (True, [])
    assert nft_needs(found, skip=["a"], family=6) == (True, [])  # c's dnat ip6
    assert nft_needs(found, skip=["a", "c"], family=6) == (False, [])
    # an IPv6 forward's nat does not need IPv4 forwarding; an IPv4-only table needs no IPv6
    assert nft_needs(found) == (False, [])
    assert nft_needs(ruleset(dnat_rule("netnskit-d", 80)), family=6) == (False, [])


def test_up_of_a_dual_stack_network_places_each_familys_accepts_where_its_forward_drops() -> None:
    fake = FakeRunner()
    script_empty_host(fake)
    chains = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD {} [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
    fake.on(["iptables-save"], stdout=chains.format("ACCEPT"))
    fake.on(["ip6tables-save"], stdout=chains.format("DROP"))
    fake.fail(re.compile(r"^ip6?tables -w 10 -t filter -C "), "iptables: Bad rule (does a matching rule exist?)\n")
    fake.fail(["nft", "list", "table", "inet", "netnskit-t1"], "Error: No such file or directory\n")
    nft = Nftables(fake)
    net = nft_small(fake, subnet6="fd01::/64", gateway6="fd01::1")
    rules = [*_wanted_rules(net), *_wanted_rules6(net)]
    steps, changes = nft.plan_beside(_firewall_of(net), "t1", rules, [], "table")
    restores = [(c.argv[0], c.input) for s in steps for c in s.do if c.argv[0].endswith("restore")]
    # IPv4's FORWARD accepts: nothing of IPv4 in iptables; ip6tables' drops: the IPv6 accept there
    assert restores == [
        (
            "ip6tables-restore",
            "*filter\n-N NETNSKIT-FORWARD\n-N NETNSKIT-USER\n"
            "-A NETNSKIT-FORWARD -i br-t1 -o br-t1 -m comment --comment netnskit:t1 -j ACCEPT\n"
            "-A NETNSKIT-FORWARD -d fd01::/64 -o br-t1 -m conntrack --ctstate RELATED,ESTABLISHED "
            "-m comment --comment netnskit:t1 -j ACCEPT\n"
            "-I NETNSKIT-FORWARD -m comment --comment netnskit -j NETNSKIT-USER\n"
            "-I FORWARD -m comment --comment netnskit -j NETNSKIT-FORWARD\nCOMMIT\n",
        )
    ]
    assert steps[-1].do[0].argv == ("nft", "-f", "-") and changes == []


def test_down_of_a_dual_stack_nft_network_keeps_ipv6_forwarding_while_another_ones_table_needs_it() -> None:
    def removal(other: bool) -> list[str]:
        fake = FakeRunner()
        fake.on(re.compile(r"^ip6?tables-save$"), stdout="")
        fake.on(["sysctl", "-n", "net.ipv6.conf.all.forwarding"], stdout="1\n")
        fake.on(re.compile(r"^ip -d -6 -batch -$"), stdout="[]\n[]\n[]\n")
        accept6 = {
            "family": "inet",
            "table": "netnskit-other",
            "chain": "forward",
            "expr": [
                {"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv6"}},
                {"accept": None},
            ],
        }
        fake.on(["nft", "-j", "list", "table", "inet", "netnskit-other"], stdout=json.dumps(ruleset(accept6)))
        tables = [("inet", "netnskit-t1"), *([("inet", "netnskit-other")] if other else [])]
        record = SysctlRecord("net.ipv6.conf.all.forwarding", "0", "1")
        done = _firewall_removal(
            Firewall(runner=fake),
            lambda mark: mark == "netnskit:t1",
            families=(4, 6),
            host={},
            nft_owners=["t1"],
            nft_tables=tables,
            records={record.name: record},
        )
        return [" ".join(c.argv) for s in done.steps for c in s.undo]

    assert removal(other=True) == ["nft -f -"]  # the table alone goes: the other table routes IPv6
    assert removal(other=False) == ["sysctl -w net.ipv6.conf.all.forwarding=0", "nft -f -"]


def forward_chain(family: str, table: str, name: str, policy: str) -> dict[str, object]:
    chain = {"family": family, "table": table, "name": name, "type": "filter", "hook": "forward", "prio": 10}
    return {"chain": {**chain, "policy": policy}}


def test_a_native_chain_that_drops_at_forward_is_named_and_ours_or_iptables_nfts_are_not() -> None:
    reject = {
        "family": "inet",
        "table": "firewalld",
        "chain": "filter_FORWARD",
        "expr": [{"reject": {"type": "icmpx"}}],
    }
    jump = {"family": "inet", "table": "firewalld", "chain": "filter_FORWARD", "expr": [{"jump": {"target": "z"}}]}
    found = {
        "nftables": [
            forward_chain("inet", "firewalld", "filter_FORWARD", "accept"),
            {"rule": jump},
            {"rule": reject},  # firewalld's end: everything no zone took
            forward_chain("ip", "filter", "FORWARD", "drop"),  # iptables-nft's: mirrored into, not named
            forward_chain("inet", "netnskit-other", "forward", "drop"),  # another network's (never drop)
            forward_chain("inet", "mine", "fwd", "drop"),
            forward_chain("bridge", "br", "fwd", "drop"),  # bridged frames, not routed traffic
            forward_chain("inet", "open", "fwd", "accept"),
            {"rule": {"family": "inet", "table": "open", "chain": "fwd", "expr": [{"match": {}}, {"drop": None}]}},
        ]
    }
    assert native_forward_drops(found) == [
        "inet firewalld filter_FORWARD (its last rule: reject everything)",
        "inet mine fwd (policy drop)",
    ]
    assert native_forward_drops({}) == []


def test_up_warns_of_a_native_forward_drop_it_cannot_accept_in(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeRunner()
    script_empty_host(fake)
    fake.on(["nft", "list", "tables"], stdout="table inet fw\n")
    table = {"nftables": [forward_chain("inet", "fw", "forward", "drop")]}
    fake.on(["nft", "-j", "list", "table", "inet", "fw"], stdout=json.dumps(table))
    small(fake, masquerade=True).up()
    warned = [r.getMessage() for r in caplog.records if "drops forwarded traffic" in r.getMessage()]
    assert warned == [
        "network t1: nft chain inet fw forward (policy drop) drops forwarded traffic that netnskit cannot accept "
        "there: the network's masquerade and forwards will not pass it; accept br-t1 there (firewalld: "
        "firewall-cmd --zone=trusted --add-interface=br-t1)"
    ]
    # nothing written in that table
    assert not any(a[:2] == ["nft", "-f"] for a in fake.argvs)


def test_the_sweep_keeps_what_an_nft_table_still_needs() -> None:
    fw = Firewall(runner=FakeRunner())
    empty = SavedRules(frozenset(), (), {})
    records = {
        "net.ipv4.ip_forward": SysctlRecord("net.ipv4.ip_forward", "0", "1"),
        "net.ipv4.conf.br-b.route_localnet": SysctlRecord("net.ipv4.conf.br-b.route_localnet", "0", "1"),
    }
    alone = fw.plan_sweep(4, empty, records=records, value=lambda _: "1")
    assert alone.restored == ("net.ipv4.conf.br-b.route_localnet=0", "net.ipv4.ip_forward=0")
    kept = fw.plan_sweep(4, empty, records=records, value=lambda _: "1", elsewhere=(True, ["br-b"]))
    assert kept.restored == () and kept.commands == ()


def test_a_failing_nft_transaction_rolls_back_what_up_did_before_it() -> None:
    from netnskit.errors import StepError

    fake = FakeRunner()
    script_empty_host(fake)
    fake.fail(["nft", "list", "table", "inet", "netnskit-t1"], "Error: No such file or directory\n")
    fake.fail(["nft", "-f", "-"], "Error: Could not process rule: Operation not supported\n")
    with pytest.raises(StepError, match="nft table inet netnskit-t1 of network t1"):
        nft_small(fake).up()
    done = [" ".join(a) for a in writes(fake)]
    assert done.index("nft -f -") < done.index("ip netns del a")  # undone after the failure
    assert done.count("nft -f -") == 1  # the failed transaction changed nothing: no undo of it


def test_cli_firewall_option_plans_nft_and_refuses_a_bad_value(capsys: pytest.CaptureFixture[str]) -> None:
    from netnskit.cli import main

    fake = FakeRunner()
    assert main(["plan", "--firewall", "nftables", str(SEED)], runner=fake) == 0
    out = capsys.readouterr().out
    assert "nft -f - <<'NETNSKIT_EOF'\ntable inet netnskit-seed\ndelete table inet netnskit-seed\n" in out
    assert "iptables-restore" not in out
    with pytest.raises(SystemExit) as exited:  # argparse's usage error, before any command
        main(["up", "--firewall", "pf", str(SEED)], runner=fake)
    assert exited.value.code == 2
    assert "invalid firewall 'pf': must be one of 'iptables', 'nftables', 'auto'" in capsys.readouterr().err
    assert fake.argvs == []


def test_up_without_nft_says_so_before_any_change() -> None:
    fake = _NoNft()
    script_empty_host(fake)
    with pytest.raises(CommandNotFoundError) as caught:
        nft_small(fake).up()
    assert caught.value.package == "nftables"
    assert writes(fake) == []

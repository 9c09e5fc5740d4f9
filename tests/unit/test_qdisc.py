"""netnskit.qdisc: units as tc writes them, Impairment's checks, the exact tc and netfilter argv, reading back."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from netnskit.errors import UnsupportedError, ValidationError
from netnskit.executors import BatchExecutor
from netnskit.plan import Step
from netnskit.qdisc import (
    NETEM_PROBE,
    Impairment,
    NetemSupport,
    NetfilterLoss,
    QdiscInfo,
    TcImpairment,
    format_rate,
    format_time,
    netem_refusal,
    observed,
    parse_percent,
    parse_qdiscs,
    parse_rate,
    parse_time,
    probe_netem,
    rule_loss,
    same,
)
from netnskit.testing import FakeRunner, recorded

# --- units ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "micros", "canonical"),
    [
        ("50ms", 50_000, "50ms"),
        ("500us", 500, "500us"),
        ("1.5ms", 1_500, "1500us"),
        ("2s", 2_000_000, "2s"),
        ("0.05s", 50_000, "50ms"),
        ("100msec", 100_000, "100ms"),
        ("3sec", 3_000_000, "3s"),
        ("7usecs", 7, "7us"),
    ],
)
def test_times_as_tc_writes_them(text: str, micros: int, canonical: str) -> None:
    assert parse_time("delay", text) == micros
    assert format_time(micros) == canonical


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("50", "a number and us, ms or s, like 50ms"),
        ("50 ms", "a number and us, ms or s"),
        ("-5ms", "a number and us, ms or s"),
        ("5m", "a number and us, ms or s"),
        (50, "a number and us, ms or s"),
        ("0ms", "must be more than 0"),
        ("1.5us", "whole number of microseconds"),
    ],
)
def test_a_bad_time_names_the_key_and_what_is_allowed(value: object, rule: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_time("impair delay", value)
    assert caught.value.what == "impair delay" and caught.value.value == value and rule in caught.value.rule


@pytest.mark.parametrize(("text", "number"), [("5%", "5"), ("0.5%", "0.5"), ("100%", "100"), ("0.0001%", "0.0001")])
def test_percentages_as_tc_writes_them(text: str, number: str) -> None:
    assert parse_percent("loss", text) == Decimal(number)


@pytest.mark.parametrize(
    ("value", "rule"),
    [("5", "like 5% or 0.5%"), ("0%", "more than 0%"), ("101%", "at most 100%"), ("0.00001%", "at most 4 decimals")],
)
def test_a_bad_percentage_is_refused(value: str, rule: str) -> None:
    with pytest.raises(ValidationError, match="impair loss") as caught:
        parse_percent("impair loss", value)
    assert rule in caught.value.rule


@pytest.mark.parametrize(
    ("text", "bits", "canonical"),
    [
        ("10mbit", 10_000_000, "10mbit"),
        ("10Mbit", 10_000_000, "10mbit"),
        ("512kbit", 512_000, "512kbit"),
        ("1.5mbit", 1_500_000, "1500kbit"),
        ("1gbit", 10**9, "1gbit"),
        ("1mbps", 8_000_000, "8mbit"),
        ("64bit", 64, "64bit"),
    ],
)
def test_rates_as_tc_writes_them(text: str, bits: int, canonical: str) -> None:
    assert parse_rate("rate", text) == bits
    assert format_rate(bits) == canonical


@pytest.mark.parametrize(
    ("value", "rule"),
    [("10mb", "like 10mbit"), ("10", "like 10mbit"), ("0mbit", "more than 0"), ("12bit", "whole number of bytes")],
)
def test_a_bad_rate_is_refused(value: str, rule: str) -> None:
    with pytest.raises(ValidationError, match="impair rate") as caught:
        parse_rate("impair rate", value)
    assert rule in caught.value.rule


# --- Impairment ---------------------------------------------------------------------------------


def test_an_impairment_keeps_tc_canonical_text_so_equal_values_compare_equal() -> None:
    assert Impairment(delay="0.05s", rate="1mbps") == Impairment(delay="50ms", rate="8mbit")
    imp = Impairment(delay="50ms", jitter="5ms", loss="1%", rate="10mbit", direction="out")
    assert imp.as_dict() == {"delay": "50ms", "jitter": "5ms", "loss": "1%", "rate": "10mbit", "direction": "out"}
    assert imp.describe() == "delay 50ms jitter 5ms loss 1% rate 10mbit (out only)"
    assert Impairment.from_mapping(imp.as_dict()) == imp


@pytest.mark.parametrize(
    ("values", "what", "rule"),
    [
        ({}, "impair", "must set at least one of delay, jitter"),
        ({"jitter": "5ms"}, "impair jitter", "needs delay as well"),
        ({"delay": "5ms", "distribution": "normal"}, "impair distribution", "needs jitter as well"),
        ({"loss_correlation": "25%"}, "impair loss_correlation", "needs loss as well"),
        ({"reorder": "25%"}, "impair reorder", "needs delay as well"),
        ({"delay": "5ms", "jitter": "1ms", "distribution": "uniform"}, "impair distribution", "normal, pareto"),
        ({"rate": "1mbit", "direction": "up"}, "impair direction", "both, out"),
        ({"rate": "1mbit", "speed": "1"}, "impair key", "unknown (known: delay, jitter"),
    ],
)
def test_an_impairment_refuses_what_tc_would_not_take(values: dict[str, str], what: str, rule: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Impairment.from_mapping(values)
    assert caught.value.what == what and rule in caught.value.rule


def test_the_keys_only_netem_does() -> None:
    imp = Impairment(delay="5ms", loss="1%", loss_correlation="5%", rate="1mbit")
    assert imp.netem_keys(loss_elsewhere=True) == ["delay", "loss_correlation"]
    assert imp.netem_keys(loss_elsewhere=False) == ["delay", "loss", "loss_correlation"]
    assert Impairment(loss="1%").egress(netem=False) is None
    assert Impairment(loss="1%", rate="1mbit", direction="in").egress(netem=False) == Impairment(rate="1mbit")


# --- the tc commands: exact argv for each option ----------------------------------------------


def argv(imp: Impairment, netns: str | None = None, netem: bool = True) -> list[list[str]]:
    return TcImpairment("eth0", netns, impairment=imp, netem=netem).add_argvs()


ROOT = ["tc", "qdisc", "add", "dev", "eth0", "root", "handle", "1:"]


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"delay": "50ms"}, ["delay", "50ms"]),
        ({"delay": "50ms", "jitter": "5ms"}, ["delay", "50ms", "5ms"]),
        (
            {"delay": "50ms", "jitter": "5ms", "distribution": "pareto"},
            ["delay", "50ms", "5ms", "distribution", "pareto"],
        ),
        ({"loss": "1%"}, ["loss", "random", "1%"]),
        ({"loss": "1%", "loss_correlation": "25%"}, ["loss", "random", "1%", "25%"]),
        ({"duplicate": "2%"}, ["duplicate", "2%"]),
        ({"delay": "10ms", "reorder": "25%"}, ["delay", "10ms", "reorder", "25%"]),
        ({"corrupt": "0.1%"}, ["corrupt", "0.1%"]),
    ],
)
def test_each_netem_option_as_tc_argv(values: dict[str, str], words: list[str]) -> None:
    assert argv(Impairment.from_mapping(values)) == [[*ROOT, "netem", *words]]


@pytest.mark.parametrize(
    ("rate", "burst"),
    [("8mbit", "15140"), ("64kbit", "15140"), ("100mbit", "50000"), ("1gbit", "500000")],
)
def test_a_rate_is_tbf_with_a_burst_of_ten_frames_or_4_ms(rate: str, burst: str) -> None:
    assert argv(Impairment(rate=rate)) == [[*ROOT, "tbf", "rate", rate, "burst", burst, "latency", "50ms"]]


def test_netem_and_a_rate_are_netem_with_tbf_in_its_class() -> None:
    assert argv(Impairment(delay="50ms", rate="10mbit")) == [
        [*ROOT, "netem", "delay", "50ms"],
        ["tc", "qdisc", "add", "dev", "eth0", "parent", "1:1", "handle", "10:", "tbf"]
        + ["rate", "10mbit", "burst", "15140", "latency", "50ms"],
    ]


def test_without_netem_loss_leaves_tc_and_the_rate_stays() -> None:
    assert argv(Impairment(loss="5%", rate="8mbit"), netem=False) == [
        [*ROOT, "tbf", "rate", "8mbit", "burst", "15140", "latency", "50ms"]
    ]
    assert argv(Impairment(loss="5%"), netem=False) == []


def test_tc_commands_are_typed_and_a_namespace_is_entered() -> None:
    shaper = TcImpairment("eth0", "red", impairment=Impairment(rate="8mbit"))
    (command,) = shaper.add_commands()
    assert (command.tool, command.channel, command.netns) == ("tc", "net", "red")
    assert command.batch is not None and command.batch.program == ("tc",) and command.batch.style == "lines"
    assert command.batch.line == "qdisc add dev eth0 root handle 1: tbf rate 8mbit burst 15140 latency 50ms"
    assert command.host_argv()[:5] == ["ip", "netns", "exec", "red", "tc"]
    assert recorded(command)[:4] == ["nsenter", "--net=/run/netns/red", "--", "tc"]
    assert shaper.delete_argv() == ["ip", "netns", "exec", "red", "tc", "qdisc", "del", "dev", "eth0", "root"]
    assert TcImpairment("veth-red", impairment=Impairment(rate="8mbit")).delete_argv() == [
        "tc",
        "qdisc",
        "del",
        "dev",
        "veth-red",
        "root",
    ]


def test_the_batched_executor_applies_the_tc_commands_of_a_place_in_one_process() -> None:
    fake = FakeRunner()
    host = [TcImpairment(dev, impairment=Impairment(rate="8mbit")) for dev in ("veth-a", "veth-b")]
    inside = TcImpairment("eth0", "a", impairment=Impairment(delay="50ms", rate="8mbit"))
    steps = [Step("impair", [c for s in (*host, inside) for c in s.add_commands()], [])]
    BatchExecutor().apply(steps, fake)
    assert sorted(fake.argvs) == [
        ["nsenter", "--net=/run/netns/a", "--", "tc", "-batch", "-"],
        ["tc", "-batch", "-"],
    ]
    inputs = dict(zip([tuple(a) for a in fake.argvs], fake.inputs, strict=True))
    assert inputs[("tc", "-batch", "-")] == (
        "qdisc add dev veth-a root handle 1: tbf rate 8mbit burst 15140 latency 50ms\n"
        "qdisc add dev veth-b root handle 1: tbf rate 8mbit burst 15140 latency 50ms\n"
    )
    assert inputs[("nsenter", "--net=/run/netns/a", "--", "tc", "-batch", "-")] == (
        "qdisc add dev eth0 root handle 1: netem delay 50ms\n"
        "qdisc add dev eth0 parent 1:1 handle 10: tbf rate 8mbit burst 15140 latency 50ms\n"
    )


# --- loss without netem: netfilter --------------------------------------------------------------

DROP = ["-m", "statistic", "--mode", "random", "--probability"]


def test_netfilter_loss_rules_both_ways() -> None:
    loss = NetfilterLoss("eth0", "red", inbound="20%", outbound="0.5%", comment="netnskit:lab")
    assert [c.host_argv() for c in loss.add_commands()] == [
        ["ip", "netns", "exec", "red", "iptables", "-w", "10", "-t", "raw", "-A", "PREROUTING", "-i", "eth0"]
        + [*DROP, "0.2", "-m", "comment", "--comment", "netnskit:lab", "-j", "DROP"],
        ["ip", "netns", "exec", "red", "iptables", "-w", "10", "-t", "mangle", "-A", "POSTROUTING", "-o", "eth0"]
        + [*DROP, "0.005", "-m", "comment", "--comment", "netnskit:lab", "-j", "DROP"],
    ]
    assert [c.host_argv()[9] for c in loss.delete_commands()] == ["-D", "-D"]
    raw, mangle = loss.add_commands()
    assert raw.batch is not None and raw.batch.style == "tables" and raw.batch.section == "raw"
    assert raw.channel == "iptables-restore" and raw.netns == "red"
    assert mangle.batch is not None and mangle.batch.line.startswith("-A POSTROUTING -o eth0 -m statistic")


def test_netfilter_loss_one_way_is_one_rule() -> None:
    only_in = NetfilterLoss("eth0", "red", inbound="30%")
    assert [(r.table, r.chain) for r in only_in.rules()] == [("raw", "PREROUTING")]
    only_out = NetfilterLoss("eth0", "red", outbound="30%")
    assert [(r.table, r.chain) for r in only_out.rules()] == [("mangle", "POSTROUTING")]


def test_a_saved_probability_reads_back_as_the_percentage() -> None:
    (rule,) = NetfilterLoss("eth0", "red", inbound="20%").rules()
    # iptables-save prints the 31-bit fraction the kernel keeps
    saved = rule.__class__(4, "raw", "PREROUTING", [*rule.spec[:7], "0.20000000019", *rule.spec[8:]])
    assert "0.20000000019" in saved.spec
    assert rule_loss(saved) == "20%" == rule_loss(rule)


# --- what the kernel applies, read back -----------------------------------------------------------

# tc -j qdisc show as iproute2 6.1 prints it (tbf measured here; netem as q_netem.c prints it: seconds, fractions)
TBF = {"kind": "tbf", "handle": "1:", "dev": "eth0", "root": True, "options": {"rate": 1000000, "burst": 15139}}
NETEM = {
    "kind": "netem",
    "handle": "1:",
    "dev": "eth0",
    "root": True,
    "options": {
        "limit": 1000,
        "delay": {"delay": 0.05, "jitter": 0.005, "correlation": 0},
        "loss-random": {"loss": 0.19999999990686774, "correlation": 0.25},
        "duplicate": {"duplicate": 0.01, "correlation": 0},
        "reorder": {"reorder": 0.25, "correlation": 0},
        "corrupt": {"corrupt": 0.001, "correlation": 0},
        "ecn": False,
        "gap": 1,
    },
}
CHILD = {"kind": "tbf", "handle": "10:", "parent": "1:1", "dev": "eth0", "options": {"rate": 1250000}}
NOQUEUE = {"kind": "noqueue", "handle": "0:", "dev": "eth1", "root": True, "refcnt": 2, "options": {}}


def test_observed_reads_tbf_netem_and_tbf_under_netem() -> None:
    assert observed(parse_qdiscs(json.dumps([TBF, NOQUEUE])), "eth0") == Impairment(rate="8mbit")
    assert observed(parse_qdiscs(json.dumps([NETEM, CHILD])), "eth0") == Impairment(
        delay="50ms",
        jitter="5ms",
        loss="20%",
        loss_correlation="25%",
        duplicate="1%",
        reorder="25%",
        corrupt="0.1%",
        rate="10mbit",
    )
    assert observed(parse_qdiscs(json.dumps([NOQUEUE])), "eth1") is None
    foreign = {**TBF, "handle": "8001:"}  # someone else's tbf: not ours
    assert observed(parse_qdiscs(json.dumps([foreign])), "eth0") is None


def test_same_ignores_the_distribution_tc_does_not_report_and_the_direction() -> None:
    wanted = Impairment(delay="50ms", jitter="5ms", distribution="normal", direction="out")
    assert same(Impairment(delay="50ms", jitter="5ms"), wanted)
    assert not same(Impairment(delay="50ms"), wanted)
    assert same(None, None) and not same(None, wanted)


def test_qdisc_info_describes_what_the_kernel_reports() -> None:
    (tbf,) = parse_qdiscs(json.dumps([{**TBF, "options": {"rate": 1000000, "burst": 15139, "lat": 50001}}]))
    assert tbf.describe() == "tbf rate 8mbit burst 15139b lat 50001us" and tbf.configured
    assert QdiscInfo.from_json(NETEM).describe().startswith("netem delay 50ms jitter 5ms loss 20%")
    assert not QdiscInfo.from_json(NOQUEUE).configured


# --- does the kernel have netem? -----------------------------------------------------------------


def test_the_probe_runs_tc_in_a_throwaway_namespace() -> None:
    fake = FakeRunner()
    assert probe_netem(fake) == NetemSupport(True, "tc added a netem qdisc in a throwaway namespace")
    assert fake.argvs == [list(NETEM_PROBE)]
    assert NETEM_PROBE[:3] == ("unshare", "--net", "--")


@pytest.mark.parametrize(
    ("modinfo", "said"),
    [
        (
            {"returncode": 1, "stderr": "modinfo: ERROR: Module sch_netem not found.\n"},
            "CONFIG_NET_SCH_NETEM is not set",
        ),
        ({"stdout": "/lib/modules/6.1.0/kernel/net/sched/sch_netem.ko\n"}, "is there (/lib/modules"),
        ({"returncode": 127, "stderr": "nsenter: failed to execute modinfo\n"}, "modinfo is not installed"),
    ],
)
def test_a_kernel_without_netem_says_so_and_why(modinfo: dict[str, object], said: str) -> None:
    fake = FakeRunner()
    fake.fail(list(NETEM_PROBE), "Error: Specified qdisc kind is unknown.\n", returncode=2)
    fake.on(["modinfo", "-F", "filename", "sch_netem"], **modinfo)  # type: ignore[arg-type]
    support = probe_netem(fake)
    assert support.available is False and not support.usable
    assert "Specified qdisc kind is unknown" in support.detail and said in support.detail


def test_a_probe_that_cannot_run_tells_nothing() -> None:
    fake = FakeRunner().fail(list(NETEM_PROBE), "unshare: unshare failed: Operation not permitted\n")
    support = probe_netem(fake)
    assert support.available is None and support.usable and "Operation not permitted" in support.detail


def test_the_refusal_names_the_key_the_module_how_to_get_it_and_what_works() -> None:
    support = NetemSupport(False, "tc: Error: Specified qdisc kind is unknown.")
    imp = Impairment(delay="50ms", jitter="5ms", loss="1%")
    error = netem_refusal("namespace red", imp.netem_keys(loss_elsewhere=True), imp, support)
    assert isinstance(error, UnsupportedError)
    assert str(error) == (
        "namespace red: delay = '50ms', jitter = '5ms' needs the kernel's netem qdisc (module sch_netem), which "
        "this kernel does not have (tc: Error: Specified qdisc kind is unknown.). Load it with `modprobe sch_netem`; "
        "it ships with the kernel: Debian's linux-image-* package, on Ubuntu linux-modules-extra-$(uname -r). What "
        "works on this kernel: rate (tbf) and loss (a random drop in netfilter)"
    )

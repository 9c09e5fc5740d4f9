"""A network's impairments and faults against a FakeRunner: the file, the plan, reconciling, run time, the schedule."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from _readme import readme_block

from netnskit.errors import ConfigError, NetnskitError, UnsupportedError, ValidationError
from netnskit.network import FaultSpec, LinkSpec, NamespaceSpec, Network, group_for
from netnskit.network.faults import FaultChange, schedule
from netnskit.qdisc import NETEM_PROBE, Impairment
from netnskit.testing import FakeRunner

IN_A = ["nsenter", "--net=/run/netns/a", "--"]
IN_C = ["nsenter", "--net=/run/netns/c", "--"]
UNKNOWN = "Error: Specified qdisc kind is unknown.\n"
G = group_for("lab")


def lab(runner: FakeRunner, *, a: Impairment | None = None, link: Impairment | None = None, **kw: object) -> Network:
    """Namespace a on a bridge, and a link from the host to namespace c."""
    return Network(
        name="lab",
        bridge="br-lab",
        subnet="10.9.0.0/24",
        gateway="10.9.0.1",
        namespaces=[NamespaceSpec("a", "10.9.0.2", impair=a)],
        extra_namespaces=["c"],
        links=[LinkSpec("v-c", "eth0", peer_netns="c", address="10.8.0.1/24", peer_address="10.8.0.2/24", impair=link)],
        routes=[{"to": "default", "via": "10.8.0.1", "netns": "c"}, {"to": "10.7.0.0/24", "via": "10.8.0.2"}],
        runner=runner,
        **kw,  # type: ignore[arg-type]
    )


def no_netem(fake: FakeRunner) -> FakeRunner:
    fake.fail(list(NETEM_PROBE), UNKNOWN, returncode=2)
    fake.fail(["modinfo", "-F", "filename", "sch_netem"], "modinfo: ERROR: Module sch_netem not found.\n")
    return fake


def writes(fake: FakeRunner) -> list[list[str]]:
    """What changes something: not the reads, the lock's readlink or the netem probe (a throwaway namespace)."""

    def read(argv: list[str]) -> bool:
        program = argv[3:] if argv[0] == "nsenter" else argv
        if program[0] in ("ip", "tc"):
            return "-j" in program
        if program[:2] == ["sysctl", "-n"]:  # the neighbour table's limits, read before up
            return True
        # (grep, find, sha256sum: the files under /etc/netns, the processes' pid files and marks)
        reads = ("iptables-save", "readlink", "modinfo", "grep", "find", "sha256sum", "ss", "tail")
        return program[0] in reads or program[:2] == ["unshare", "--net"]

    return [a for a in fake.argvs if not read(a)]


TBF8 = ["root", "handle", "1:", "tbf", "rate", "8mbit", "burst", "15140", "latency", "50ms"]


# --- the file ---------------------------------------------------------------------------------

TOML = """
[network]
name = "lab"
bridge = "br-lab"
subnet = "10.9.0.0/24"
gateway = "10.9.0.1"

[[namespace]]
name = "a"
address = "10.9.0.2"
impair = { delay = "50ms", jitter = "5ms", loss = "1%", rate = "10mbit" }

[[extra_namespace]]
name = "c"

[[link]]
name = "v-c"
address = "10.8.0.1/24"
peer = "eth0"
peer_netns = "c"
peer_address = "10.8.0.2/24"
impair = { rate = "1mbit", direction = "out" }
"""


def load(tmp_path: Path, text: str, runner: FakeRunner | None = None) -> Network:
    path = tmp_path / "lab.toml"
    path.write_text(text)
    return Network.from_toml(path, runner=runner or FakeRunner())


def test_impair_tables_on_a_namespace_and_a_link(tmp_path: Path) -> None:
    net = load(tmp_path, TOML)
    assert net.namespaces[0].impair == Impairment(delay="50ms", jitter="5ms", loss="1%", rate="10mbit")
    assert net.links[0].impair == Impairment(rate="1mbit", direction="out")
    assert [(c.name, c.kind, c.ends) for c in net.cables()] == [
        ("a", "namespace", (("a", "eth0"), (None, "veth-a"))),
        ("v-c", "link", ((None, "v-c"), ("c", "eth0"))),
    ]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('{ delay = "50 ms" }', "namespace[0].impair.delay = '50 ms': impair delay: must be a time as tc writes it"),
        ('{ loss = "5" }', "namespace[0].impair.loss = '5': impair loss: must be a percentage as tc writes it"),
        ('{ rate = "10mb" }', "namespace[0].impair.rate = '10mb': impair rate: must be a rate as tc writes it"),
        ('{ jitter = "5ms" }', "namespace[0].impair.jitter = '5ms': impair jitter: needs delay as well"),
        ('{ speed = "1" }', "namespace[0].impair.speed: unknown key (known: delay, jitter, distribution, loss"),
        ("{ delay = 50 }", "namespace[0].impair.delay = 50: must be a string"),
        ('"50ms"', "namespace[0].impair = '50ms': must be a table"),
        ("{}", "namespace[0].impair = {}: impair: must set at least one of delay"),
    ],
)
def test_a_bad_impair_value_names_the_file_the_key_and_what_is_allowed(
    tmp_path: Path, table: str, message: str
) -> None:
    text = TOML.replace(
        'impair = { delay = "50ms", jitter = "5ms", loss = "1%", rate = "10mbit" }', f"impair = {table}"
    )
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert message in str(caught.value)


FAULTS = """
[[fault]]
at = "1s"
for = "2s"
link = "a"
down = true

[[fault]]
at = "3s"
for = "500ms"
link = "a"
impair = { loss = "50%" }

[[fault]]
at = "0s"
for = "3s"
link = "v-c"
impair = { rate = "64kbit" }
"""


def test_faults_in_the_file(tmp_path: Path) -> None:
    net = load(tmp_path, TOML + FAULTS)
    assert net.faults == (
        FaultSpec("1s", "2s", "a", down=True),
        FaultSpec("3s", "500ms", "a", impair=Impairment(loss="50%")),
        FaultSpec("0s", "3s", "v-c", impair=Impairment(rate="64kbit")),
    )


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ('at = "1s"\nfor = "2 s"\nlink = "a"\ndown = true', "fault[0].for = '2 s': fault for: must be a time"),
        ('at = "1s"\nlink = "a"\ndown = true', "fault[0].for: missing required key"),
        (
            'at = "1s"\nfor = "2s"\nlink = "a"',
            "fault[0].link = 'a': fault: needs one action: down = true, or an impair table",
        ),
        (
            'at = "1s"\nfor = "2s"\nlink = "a"\ndown = true\nimpair = { loss = "1%" }',
            "fault[0].link = 'a': fault: needs one action",
        ),
        (
            'at = "1s"\nfor = "2s"\nlink = "c"\ndown = true',
            "fault[0].link = 'c': is an extra namespace, off the bridge",
        ),
        ('at = "1s"\nfor = "2s"\nlink = "x"\ndown = true', "fault[0].link = 'x': is neither a namespace on the bridge"),
        ('at = "1s"\nfor = "2s"\nlink = "a"\ndown = true\nimpair = { loss = "5" }', "fault[0].impair.loss = '5'"),
    ],
)
def test_a_bad_fault_names_its_key(tmp_path: Path, fault: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, TOML + "\n[[fault]]\n" + fault + "\n")
    assert message in str(caught.value)


def test_faults_on_one_cable_must_not_overlap(tmp_path: Path) -> None:
    overlapping = FAULTS.replace('at = "3s"', 'at = "2900ms"')
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, TOML + overlapping)
    assert str(caught.value).endswith(
        "fault[1].at = '2900ms': overlaps fault[0] on 'a' (at 1s for 2s): faults on one cable must not overlap; "
        "start it when the other ends, or put both changes in one impair table"
    )


def test_a_name_that_is_a_namespace_and_a_link_is_ambiguous() -> None:
    net = Network(
        "lab",
        "br-lab",
        "10.9.0.0/24",
        "10.9.0.1",
        namespaces=["red"],
        extra_namespaces=["c"],
        links=[LinkSpec("red", "eth0", peer_netns="c")],
        runner=FakeRunner(),
    )
    with pytest.raises(ValidationError, match="names both a namespace and a link"):
        net.impair("red", rate="1mbit")


# --- the plan ------------------------------------------------------------------------------------


def step_commands(net: Network, netem: bool) -> list[tuple[str, list[str]]]:
    return [(s.description, c.host_argv()) for s in net.plan(netem=netem) for c in s.do if "impair" in s.description]


def test_the_plan_impairs_each_end_of_each_cable_where_the_kernel_has_netem() -> None:
    fake = FakeRunner(strict=True)
    net = lab(fake, a=Impairment(delay="50ms", loss="1%", rate="8mbit"), link=Impairment(rate="1mbit", direction="in"))
    netem_a = ["root", "handle", "1:", "netem", "delay", "50ms", "loss", "random", "1%"]
    child = ["parent", "1:1", "handle", "10:", "tbf", "rate", "8mbit", "burst", "15140", "latency", "50ms"]
    text = "impair namespace a: {} sends with delay 50ms loss 1% rate 8mbit (tc netem+tbf)"
    assert step_commands(net, True) == [
        (text.format("eth0 in a"), ["ip", "netns", "exec", "a", "tc", "qdisc", "add", "dev", "eth0", *netem_a]),
        (text.format("eth0 in a"), ["ip", "netns", "exec", "a", "tc", "qdisc", "add", "dev", "eth0", *child]),
        (text.format("veth-a on the host"), ["tc", "qdisc", "add", "dev", "veth-a", *netem_a]),
        (text.format("veth-a on the host"), ["tc", "qdisc", "add", "dev", "veth-a", *child]),
        (
            "impair link v-c: eth0 in c sends with rate 1mbit (tc tbf)",
            ["ip", "netns", "exec", "c", "tc", "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "tbf"]
            + ["rate", "1mbit", "burst", "15140", "latency", "50ms"],
        ),
    ]
    undo = [c.host_argv() for s in net.plan(netem=True) if "impair" in s.description for c in s.undo]
    assert undo[0] == ["ip", "netns", "exec", "a", "tc", "qdisc", "del", "dev", "eth0", "root"]
    assert fake.argvs == []  # told: nothing asked of the kernel


def test_without_netem_the_plan_drops_loss_in_netfilter_and_says_so() -> None:
    net = lab(
        FakeRunner(strict=True), a=Impairment(loss="20%", rate="8mbit"), link=Impairment(loss="5%", direction="out")
    )
    drop = ["-m", "statistic", "--mode", "random", "--probability"]
    comment = ["-m", "comment", "--comment", "netnskit:lab", "-j", "DROP"]
    a_loss = "impair namespace a: drop 20% of what it receives, 20% of what it sends on eth0 in a"
    c_loss = "impair link v-c: drop 5% of what it receives on eth0 in c"
    netfilter = " (netfilter -m statistic: this kernel has no netem)"
    assert step_commands(net, False) == [
        (
            "impair namespace a: eth0 in a sends with rate 8mbit (tc tbf)",
            ["ip", "netns", "exec", "a", "tc", "qdisc"] + ["add", "dev", "eth0", *TBF8],
        ),
        (
            "impair namespace a: veth-a on the host sends with rate 8mbit (tc tbf)",
            ["tc", "qdisc", "add", "dev", "veth-a", *TBF8],
        ),
        (
            a_loss + netfilter,
            [
                "ip",
                "netns",
                "exec",
                "a",
                "iptables",
                "-w",
                "10",
                "-t",
                "raw",
                "-A",
                "PREROUTING",
                "-i",
                "eth0",
                *drop,
                "0.2",
                *comment,
            ],
        ),
        (
            a_loss + netfilter,
            [
                "ip",
                "netns",
                "exec",
                "a",
                "iptables",
                "-w",
                "10",
                "-t",
                "mangle",
                "-A",
                "POSTROUTING",
                "-o",
                "eth0",
                *drop,
                "0.2",
                *comment,
            ],
        ),
        # out: what the link's first end (v-c, the host's) sends, which arrives at c
        (
            c_loss + netfilter,
            [
                "ip",
                "netns",
                "exec",
                "c",
                "iptables",
                "-w",
                "10",
                "-t",
                "raw",
                "-A",
                "PREROUTING",
                "-i",
                "eth0",
                *drop,
                "0.05",
                *comment,
            ],
        ),
    ]


def test_the_plan_asks_the_kernel_once_and_only_when_it_matters() -> None:
    fake = no_netem(FakeRunner())
    rate_only = lab(fake, a=Impairment(rate="8mbit"))
    rate_only.plan()
    assert fake.argvs == []  # a rate is tbf on every kernel
    lossy = lab(fake, a=Impairment(loss="20%"))
    lossy.plan()
    lossy.plan()
    assert fake.argvs == [list(NETEM_PROBE), ["modinfo", "-F", "filename", "sch_netem"]]
    assert any("netfilter" in s.description for s in lossy.plan())


def test_a_delay_without_netem_is_refused_before_anything_changes() -> None:
    fake = no_netem(FakeRunner())
    net = lab(fake, a=Impairment(delay="50ms", jitter="5ms", loss="1%"))
    with pytest.raises(UnsupportedError) as caught:
        net.up()
    assert str(caught.value).startswith("namespace a: delay = '50ms', jitter = '5ms' needs the kernel's netem qdisc")
    assert "modprobe sch_netem" in str(caught.value) and "linux-modules-extra" in str(caught.value)
    assert writes(fake) == []
    with pytest.raises(UnsupportedError):
        net.plan()
    with pytest.raises(UnsupportedError):
        net.impair("a", delay="10ms")
    assert writes(fake) == []


# --- up: what the kernel has against what the file says -------------------------------------------


def script(fake: FakeRunner, where: str | None, links: list[dict[str, object]], **reads: object) -> None:
    """One place's batched read (links; no addresses, routes, forwarding needed here) and its other reads."""
    prefix = ["ip"] if where is None else ["ip", "-n", where]
    fake.on([*prefix, "-4", "-j", "-batch", "-"], stdout="\n".join(json.dumps(x) for x in [links, [], [], []]))
    inside = [] if where is None else ["nsenter", f"--net=/run/netns/{where}", "--"]
    if "tc" in reads:
        fake.on([*inside, "tc", "-j", "qdisc", "show"], stdout=json.dumps(reads["tc"]))
    if "save" in reads:
        fake.on([*inside, "iptables-save"], stdout=str(reads["save"]))


def tbf(dev: str, rate: int) -> dict[str, object]:
    return {"kind": "tbf", "handle": "1:", "dev": dev, "root": True, "options": {"rate": rate, "burst": 15139}}


def script_lab_up(fake: FakeRunner, *, a_qdisc: str = "noqueue", host_qdisc: str = "noqueue", **reads: object) -> None:
    """lab() fully up as far as links go; a's cable ends with the qdisc kinds given."""
    fake.on(["ip", "-j", "netns", "list"], stdout=json.dumps([{"name": "a", "id": 0}, {"name": "c", "id": 1}]))
    mark = {"ifalias": "netnskit:lab", "group": str(G), "flags": ["UP"]}
    host = [
        {"ifindex": 2, "ifname": "br-lab", **mark, "qdisc": "noqueue"},
        {"ifindex": 3, "ifname": "veth-a", **mark, "qdisc": host_qdisc},
        {"ifindex": 4, "ifname": "v-c", **mark, "qdisc": "noqueue"},
    ]
    lo = {"ifindex": 1, "ifname": "lo", "ifalias": "netnskit:lab", "flags": ["UP"]}
    script(fake, None, host, **{k[5:]: v for k, v in reads.items() if k.startswith("host_")})
    script(
        fake,
        "a",
        [lo, {"ifindex": 2, "ifname": "eth0", "flags": ["UP"], "qdisc": a_qdisc}],
        **{k[2:]: v for k, v in reads.items() if k.startswith("a_")},
    )
    script(fake, "c", [lo, {"ifindex": 2, "ifname": "eth0", "flags": ["UP"], "qdisc": "noqueue"}])


def impair_writes(fake: FakeRunner) -> list[list[str]]:
    return [a for a in writes(fake) if "tc" in a or "iptables" in a]


def test_up_replaces_a_rate_the_file_changed_on_both_ends() -> None:
    fake = FakeRunner()
    script_lab_up(fake, a_qdisc="tbf", host_qdisc="tbf", a_tc=[tbf("eth0", 250000)], host_tc=[tbf("veth-a", 250000)])
    net = lab(fake, a=Impairment(rate="8mbit"))
    assert [s.description for s in net.missing_steps() if s.description.startswith("impair")] == [
        "impair namespace a: eth0 in a sends with rate 8mbit (tc tbf)",
        "impair namespace a: veth-a on the host sends with rate 8mbit (tc tbf)",
    ]
    fake.clear()
    net.up()
    assert impair_writes(fake) == [
        [*IN_A, "tc", "qdisc", "del", "dev", "eth0", "root"],
        [*IN_A, "tc", "qdisc", "add", "dev", "eth0", *TBF8],
        ["tc", "qdisc", "del", "dev", "veth-a", "root"],
        ["tc", "qdisc", "add", "dev", "veth-a", *TBF8],
    ]


def test_up_leaves_a_matching_rate_alone_and_reads_tc_only_where_a_qdisc_is_set() -> None:
    fake = FakeRunner()
    script_lab_up(fake, a_qdisc="tbf", host_qdisc="tbf", a_tc=[tbf("eth0", 10**6)], host_tc=[tbf("veth-a", 10**6)])
    net = lab(fake, a=Impairment(rate="8mbit"))
    # (addresses and routes are not scripted: only the impairments are looked at here)
    assert [s for s in net.missing_steps() if s.description.startswith("impair")] == []
    tc_reads = [a for a in fake.argvs if "tc" in a and "-j" in a]
    assert tc_reads == [["tc", "-j", "qdisc", "show"], [*IN_A, "tc", "-j", "qdisc", "show"]]  # not in c: noqueue
    (cable,) = net.status().impairments
    assert cable.matches


def test_up_removes_an_impairment_the_file_dropped_and_its_netfilter_loss() -> None:
    fake = no_netem(FakeRunner())
    saved = (
        "*raw\n-A PREROUTING -i eth0 -m statistic --mode random --probability 0.20000000019 "
        '-m comment --comment "netnskit:lab" -j DROP\nCOMMIT\n'
        "*filter\n-A INPUT -i eth0 -m statistic --mode random --probability 0.5 -j DROP\nCOMMIT\n"  # not ours
    )
    script_lab_up(fake, a_qdisc="tbf", host_qdisc="noqueue", a_tc=[tbf("eth0", 10**6)], a_save=saved)
    net = lab(fake)
    fake.clear()
    net.up()
    assert impair_writes(fake) == [
        [*IN_A, "tc", "qdisc", "del", "dev", "eth0", "root"],
        [*IN_A, "iptables", "-w", "10", "-t", "raw", "-D", "PREROUTING", "-i", "eth0", "-m", "statistic", "--mode"]
        + ["random", "--probability", "0.20000000019", "-m", "comment", "--comment", "netnskit:lab", "-j", "DROP"],
    ]


def test_status_shows_what_the_kernel_applies_to_each_impaired_cable() -> None:
    fake = FakeRunner()
    script_lab_up(fake, a_qdisc="tbf", host_qdisc="tbf", a_tc=[tbf("eth0", 10**6)], host_tc=[tbf("veth-a", 250000)])
    status = lab(fake, a=Impairment(rate="8mbit")).status()
    (cable,) = status.impairments
    assert (cable.cable, cable.wanted, cable.how, cable.matches) == ("namespace a", "rate 8mbit", "tc tbf", False)
    assert [(e.end, e.qdiscs, e.applies) for e in cable.ends] == [
        ("eth0 in a", ("tbf rate 8mbit burst 15139b",), "rate 8mbit"),
        ("veth-a on the host", ("tbf rate 2mbit burst 15139b",), "rate 2mbit"),
    ]
    assert "impair namespace a: veth-a on the host sends with rate 8mbit (tc tbf)" in [m.step for m in status.missing]
    assert status.to_json()["impairments"][0]["ends"][1]["applies"] == "rate 2mbit"


# --- at run time ---------------------------------------------------------------------------------


def test_impair_at_run_time_reads_both_ends_then_replaces_what_is_there() -> None:
    fake = FakeRunner()
    fake.on([*IN_A, "tc", "-j", "qdisc", "show", "dev", "eth0"], stdout=json.dumps([tbf("", 10**6)]))
    net = lab(fake, a=Impairment(rate="8mbit"))
    assert net.impair("a", delay="100ms", loss="5%") == Impairment(delay="100ms", loss="5%")
    netem = ["root", "handle", "1:", "netem", "delay", "100ms", "loss", "random", "5%"]
    assert fake.argvs[1:] == [
        list(NETEM_PROBE),
        [*IN_A, "tc", "-j", "qdisc", "show", "dev", "eth0"],
        ["tc", "-j", "qdisc", "show", "dev", "veth-a"],
        [*IN_A, "tc", "qdisc", "del", "dev", "eth0", "root"],
        [*IN_A, "tc", "qdisc", "add", "dev", "eth0", *netem],
        ["tc", "qdisc", "add", "dev", "veth-a", *netem],
    ]
    assert fake.argvs[0] == ["readlink", "/proc/self/ns/net"]  # the network's claim (not the host's)


def test_impair_clear_and_its_argument_checks() -> None:
    fake = FakeRunner()
    fake.on(["tc", "-j", "qdisc", "show", "dev", "veth-a"], stdout=json.dumps([tbf("", 10**6)]))
    net = lab(fake)
    assert net.impair("a", clear=True) is None
    assert writes(fake) == [["tc", "qdisc", "del", "dev", "veth-a", "root"]]
    with pytest.raises(ValidationError, match="clear=True removes them all"):
        net.impair("a", clear=True, rate="1mbit")
    with pytest.raises(ValidationError, match="or clear=True"):
        net.impair("a")


def test_impair_on_a_network_that_is_not_up_says_so() -> None:
    fake = FakeRunner().fail(["tc", "-j", "qdisc", "show", "dev", "veth-a"], 'Cannot find device "veth-a"\n')
    with pytest.raises(NetnskitError, match=r"namespace a of network 'lab' is not there \(veth-a on the host"):
        lab(fake).impair("a", rate="1mbit")
    assert writes(fake) == []


def test_a_cut_takes_both_ends_down_and_the_restore_puts_back_the_routes_through_them() -> None:
    fake = FakeRunner()
    net = lab(fake)
    net.link_down("v-c")
    # (the CLI batches: the two ends are set in their own places, in either order)
    assert sorted(writes(fake)) == sorted(
        [["ip", "link", "set", "v-c", "down"], [*IN_C, "ip", "link", "set", "eth0", "down"]]
    )
    fake.clear()
    net.link_up("v-c")
    assert writes(fake) == [
        ["ip", "link", "set", "v-c", "up"],
        [*IN_C, "ip", "link", "set", "eth0", "up"],
        # c's default route via the host's end, and the host's route via c: the kernel dropped both
        [*IN_C, "ip", "route", "replace", "default", "via", "10.8.0.1"],
        ["ip", "route", "replace", "10.7.0.0/24", "via", "10.8.0.2"],
    ]
    fake.clear()
    net.link_up("a")
    assert writes(fake) == [
        [*IN_A, "ip", "link", "set", "eth0", "up"],
        ["ip", "link", "set", "veth-a", "up"],
        [*IN_A, "ip", "route", "replace", "default", "via", "10.9.0.1"],
    ]


# --- faults over time -------------------------------------------------------------------------------


def test_the_schedule_is_in_time_order_with_ends_before_starts_at_one_instant(tmp_path: Path) -> None:
    net = load(tmp_path, TOML + FAULTS)
    file_a = Impairment(delay="50ms", jitter="5ms", loss="1%", rate="10mbit")
    assert schedule(net) == [
        FaultChange(0, "v-c", "impair", 2, Impairment(rate="64kbit")),
        FaultChange(1_000_000, "a", "cut", 0),
        # at 3 s: a's cut ends and v-c's impairment ends before a's next fault starts
        FaultChange(3_000_000, "a", "restore", 0),
        FaultChange(3_000_000, "v-c", "unimpair", 2, Impairment(rate="1mbit", direction="out")),
        FaultChange(3_000_000, "a", "impair", 1, Impairment(loss="50%")),
        FaultChange(3_500_000, "a", "unimpair", 1, file_a),
    ]


class Clock:
    """A clock that moves only when slept on: the schedule runs at once, its times exact."""

    def __init__(self) -> None:
        self.now = 100.0
        self.naps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.naps.append(round(seconds, 6))
        self.now += seconds


SMALL_FAULTS = """
[[fault]]
at = "1s"
for = "1s"
link = "v-c"
down = true

[[fault]]
at = "1500ms"
for = "1s"
link = "a"
impair = { rate = "2mbit" }
"""


def up_small(fake: FakeRunner) -> None:
    script_lab_up(fake)
    fake.on([*IN_A, "tc", "-j", "qdisc", "show", "dev", "eth0"], stdout="[]")


def test_run_faults_makes_each_change_at_its_time_and_reports_it(tmp_path: Path) -> None:
    fake = FakeRunner()
    up_small(fake)
    net = load(
        tmp_path,
        TOML.replace('impair = { delay = "50ms", jitter = "5ms", loss = "1%", rate = "10mbit" }', "") + SMALL_FAULTS,
        fake,
    )
    clock = Clock()
    lines: list[str] = []
    fake.clear()
    events = net.run_faults(report=lambda e: lines.append(e.line()), clock=clock, sleep=clock.sleep)
    assert [(e.due, e.started, e.done) for e in events] == [
        (1.0, 1.0, 1.0),
        (1.5, 1.5, 1.5),
        (2.0, 2.0, 2.0),
        (2.5, 2.5, 2.5),
    ]
    assert lines == [
        "[   1.000s] v-c: cut (both ends down)",
        "[   1.500s] a: impair rate 2mbit",
        "[   2.000s] v-c: restored (both ends up, routes back)",
        "[   2.500s] a: impairment back to the file's (none)",
    ]
    assert clock.naps == [0.5, 0.5, 0.5, 0.5, 0.5]  # short naps: Ctrl-C is seen at once
    tbf2 = ["root", "handle", "1:", "tbf", "rate", "2mbit", "burst", "15140", "latency", "50ms"]
    # batched: the host's lines in one process, each namespace's in one (their order between places may vary)
    assert set(map(tuple, writes(fake)[:2])) == {
        ("ip", "link", "set", "v-c", "down"),
        (*IN_C, "ip", "link", "set", "eth0", "down"),
    }
    changes = writes(fake)[2:]
    assert set(map(tuple, changes[:2])) == {
        (*IN_A, "tc", "qdisc", "add", "dev", "eth0", *tbf2),
        ("tc", "qdisc", "add", "dev", "veth-a", *tbf2),
    }
    assert set(map(tuple, changes[2:4])) == {
        (*IN_C, "ip", "link", "set", "eth0", "up"),
        ("ip", "link", "set", "v-c", "up"),
    }
    # the impairment's end: known from the change, not read again; what it added is deleted
    assert set(map(tuple, changes[4:])) == {
        (*IN_A, "tc", "qdisc", "del", "dev", "eth0", "root"),
        ("tc", "qdisc", "del", "dev", "veth-a", "root"),
    }


def test_an_interrupted_schedule_restores_every_cable_it_changed(tmp_path: Path) -> None:
    fake = FakeRunner()
    up_small(fake)
    net = load(
        tmp_path,
        TOML.replace('impair = { delay = "50ms", jitter = "5ms", loss = "1%", rate = "10mbit" }', "") + SMALL_FAULTS,
        fake,
    )
    clock = Clock()

    def sleep(seconds: float) -> None:
        if clock.now >= 101.5:
            raise KeyboardInterrupt  # Ctrl-C while both faults hold
        clock.sleep(seconds)

    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        net.run_faults(report=lambda e: lines.append(e.line()), clock=clock, sleep=sleep)
    assert lines == [
        "[   1.000s] v-c: cut (both ends down)",
        "[   1.500s] a: impair rate 2mbit",
        "[   1.500s] v-c: restored (both ends up, routes back)  (restoring after an interruption)",
        "[   1.500s] a: impairment back to the file's (none)  (restoring after an interruption)",
    ]


def test_a_schedule_on_a_network_that_is_not_up_changes_nothing(tmp_path: Path) -> None:
    fake = FakeRunner()
    fake.on(["ip", "-j", "netns", "list"], stdout="[]")
    net = load(tmp_path, TOML + SMALL_FAULTS, fake)
    with pytest.raises(NetnskitError, match="network 'lab' is not up: eth0 in a of namespace a is missing"):
        net.run_faults()
    assert writes(fake) == []


# --- the command line ----------------------------------------------------------------------------


def test_cli_impair_link_and_their_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from netnskit.cli import main

    fake = FakeRunner()
    path = tmp_path / "lab.toml"
    path.write_text(TOML)
    assert main(["impair", str(path), "a", "--rate", "2mbit", "--direction", "out"], runner=fake) == 0
    assert capsys.readouterr().out == "namespace a: rate 2mbit (out only); tc tbf\n"
    assert writes(fake) == [
        [
            *IN_A,
            "tc",
            "qdisc",
            "add",
            "dev",
            "eth0",
            "root",
            "handle",
            "1:",
            "tbf",
            "rate",
            "2mbit",
            "burst",
            "15140",
            "latency",
            "50ms",
        ]
    ]
    assert main(["impair", str(path), "a", "--clear", "--loss", "5%"], runner=fake) == 2
    assert capsys.readouterr().err == "netnskit impair: --clear takes no impairment options\n"
    assert main(["impair", str(path), "a", "--delay", "5"], runner=fake) == 2
    assert "impair delay '5': must be a time as tc writes it" in capsys.readouterr().err
    fake.clear()
    assert main(["link", str(path), "v-c", "down"], runner=fake) == 0
    assert capsys.readouterr().out == "link v-c: cut (both ends down)\n"
    # (the CLI batches: the two ends are set in their own places, in either order)
    assert sorted(writes(fake)) == sorted(
        [["ip", "link", "set", "v-c", "down"], [*IN_C, "ip", "link", "set", "eth0", "down"]]
    )
    assert main(["link", str(path), "nope", "up"], runner=fake) == 2
    assert "invalid link 'nope': is neither a namespace on the bridge nor a link" in capsys.readouterr().err


def test_cli_faults_prints_the_schedule_then_each_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from netnskit.cli import main

    fake = FakeRunner()
    up_small(fake)
    path = tmp_path / "lab.toml"
    quick = '\n[[fault]]\nat = "0s"\nfor = "1ms"\nlink = "v-c"\ndown = true\n'
    path.write_text(
        TOML.replace('impair = { delay = "50ms", jitter = "5ms", loss = "1%", rate = "10mbit" }', "") + quick
    )
    assert main(["faults", str(path)], runner=fake) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [
        "network lab: 1 faults",
        "  at 0s: v-c: cut (both ends down)",
        "  at 1ms: v-c: restored (both ends up, routes back)",
    ]
    assert [line[12:] for line in out[3:5]] == [
        "v-c: cut (both ends down)",
        "v-c: restored (both ends up, routes back)",
    ]
    assert out[5] == "network lab: 2 changes made; every cable is as the file says"
    path.write_text(TOML)
    assert main(["faults", str(path)], runner=fake) == 1
    assert "has no [[fault]] to run" in capsys.readouterr().err


def test_cli_plan_asks_the_given_runner_about_netem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from netnskit.cli import main

    fake = no_netem(FakeRunner())
    path = tmp_path / "lab.toml"
    path.write_text(TOML.replace('delay = "50ms", jitter = "5ms", ', ""))
    assert main(["plan", str(path)], runner=fake) == 0
    script_text = capsys.readouterr().out
    assert "(netfilter -m statistic: this kernel has no netem)" in script_text
    assert (
        "ip netns exec a iptables -w 10 -t raw -A PREROUTING -i eth0 -m statistic --mode random --probability 0.01"
        in (script_text)
    )
    assert fake.argvs[0] == list(NETEM_PROBE)
    path.write_text(TOML)
    assert main(["plan", str(path)], runner=fake) == 1
    assert "sch_netem" in capsys.readouterr().err


def test_cli_status_prints_each_impaired_cable(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from netnskit.cli import main

    fake = FakeRunner()
    script_lab_up(fake, a_qdisc="tbf", host_qdisc="tbf", a_tc=[tbf("eth0", 10**6)], host_tc=[tbf("veth-a", 10**6)])
    path = tmp_path / "lab.toml"
    path.write_text(
        textwrap.dedent(
            TOML.replace(
                'impair = { delay = "50ms", jitter = "5ms", loss = "1%", rate = "10mbit" }',
                'impair = { rate = "8mbit" }',
            )
        ).replace('impair = { rate = "1mbit", direction = "out" }', "")
    )
    main(["status", str(path)], runner=fake)
    out = capsys.readouterr().out
    assert (
        "  impair namespace a: file: rate 8mbit; kernel: as in the file; tc tbf\n"
        "    eth0 in a: tbf rate 8mbit burst 15139b\n"
        "    veth-a on the host: tbf rate 8mbit burst 15139b\n"
    ) in out


# --- the README's example -------------------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "impair.toml"


def test_the_readme_shows_parts_of_examples_impair_toml_which_loads() -> None:

    block = readme_block("toml", "[[fault]]")
    example = EXAMPLE.read_text()
    for chunk in block.strip().split("\n\n"):
        assert chunk in example
    net = Network.from_toml(EXAMPLE, runner=FakeRunner(strict=True))
    assert [c.describe() for c in schedule(net)] == [
        "blue: cut (both ends down)",
        "red: impair loss 30% rate 2mbit",
        "red: impairment back to the file's (loss 1% rate 8mbit)",
        "blue: restored (both ends up, routes back)",
    ]
    assert any("netfilter" in s.description for s in net.plan(netem=False))

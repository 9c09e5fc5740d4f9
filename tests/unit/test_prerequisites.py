"""Issue 13, findings 7 and 8: a missing program, named with its package on every path; a network with no
firewall rules needs no iptables; the xtables lock: a bounded wait, and an error that names the lock.

The stderr strings are the real tools' (iptables 1.8.9, util-linux 2.38 nsenter, iproute2 6.1, sudo,
bash and dash), captured in a sandbox.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence

import attrs
import pytest

from netnskit.errors import (
    CommandError,
    CommandNotFoundError,
    NotFoundError,
    StepError,
    XtablesLockError,
    error_for,
)
from netnskit.executors import BatchExecutor, SerialExecutor
from netnskit.firewall import Backend, Firewall, NatRule, Rule
from netnskit.network import Network, cleanup
from netnskit.plan import Command, Step
from netnskit.runner import Result
from netnskit.testing import FakeRunner

# --- a missing program: which one, and its package, from whoever tried to start it ------------------

MISSING = [
    # (stderr, returncode, program)
    ("nsenter: failed to execute iptables-save: No such file or directory\n", 127, "iptables-save"),
    ('exec of "ping" failed: No such file or directory\n', 255, "ping"),
    ("sudo: iptables-restore: command not found\n", 1, "iptables-restore"),
    ("bash: line 1: ip6tables-save: command not found\n", 127, "ip6tables-save"),
    ("sh: 1: sysctl: not found\n", 127, "sysctl"),
    ("'tc' was not found on PATH; install the 'iproute2' package (e.g. apt-get install iproute2)", 127, "tc"),
]
PACKAGE = {
    "iptables-save": "iptables",
    "ping": "iputils-ping",
    "iptables-restore": "iptables",
    "ip6tables-save": "iptables",
    "sysctl": "procps",
    "tc": "iproute2",
}


@pytest.mark.parametrize(("stderr", "returncode", "program"), MISSING)
def test_a_missing_program_is_command_not_found_naming_its_package(stderr, returncode, program):
    err = error_for(["nsenter", "--net=/run/netns/a", "--", program], returncode, "", stderr, "reading the firewall")
    assert type(err) is CommandNotFoundError
    assert (err.program, err.package, err.returncode, err.stderr) == (program, PACKAGE[program], returncode, stderr)
    package = PACKAGE[program]
    assert str(err) == (
        f"reading the firewall failed: {program!r} was not found on PATH; "
        f"install the {package!r} package (e.g. apt-get install {package})"
    )


def test_a_missing_namespace_is_not_a_missing_program():
    # nsenter's and ip's words for a namespace that is not there name no program
    for stderr in (
        "nsenter: cannot open /run/netns/x: No such file or directory\n",
        'Cannot open network namespace "x": No such file or directory\n',
    ):
        assert type(error_for(["ip", "netns", "exec", "x", "true"], 1, "", stderr)) is NotFoundError


def test_command_not_found_is_a_command_error_so_executors_roll_back_on_it():
    assert issubclass(CommandNotFoundError, CommandError) and issubclass(CommandNotFoundError, FileNotFoundError)
    fake = FakeRunner()
    fake.fail("sysctl *", "nsenter: failed to execute sysctl: No such file or directory\n", returncode=127)
    steps = [Step("one", [["ip", "link", "add", "d0", "type", "dummy"]], [["ip", "link", "del", "d0"]])]
    steps.append(Step("two", [["sysctl", "-w", "a.b=1"]], [["sysctl", "-w", "a.b=0"]]))
    with pytest.raises(StepError) as info:
        SerialExecutor().apply(steps, fake)
    assert isinstance(info.value.error, CommandNotFoundError)
    assert "install the 'procps' package" in str(info.value)
    assert fake.argvs[-1] == ["ip", "link", "del", "d0"]  # step one rolled back


def test_a_missing_program_on_teardown_is_a_failure_not_already_gone():
    # "No such file or directory" alone means gone; the program missing means nothing was removed
    fake = FakeRunner()
    fake.fail("iptables-restore *", "nsenter: failed to execute iptables-restore: No such file or directory\n")
    restore = Command(["iptables-restore", "-w", "10", "--noflush"], "*nat\nCOMMIT\n", tool="iptables-restore")
    step = Step("rules", [], [attrs.evolve(restore, channel="iptables-restore")])
    for executor in (SerialExecutor(), BatchExecutor(workers=1)):
        with pytest.raises(StepError) as info:
            executor.remove([step], fake)
        assert "install the 'iptables' package" in str(info.value)


def test_command_not_found_pickles_with_every_field():
    err = CommandNotFoundError("ping", "iputils-ping", ["nsenter", "--", "ping"], 127, "o", "e", "probing")
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is CommandNotFoundError
    fields = (again.program, again.package, again.argv, again.returncode, again.stdout, again.stderr, again.action)
    assert fields == ("ping", "iputils-ping", ("nsenter", "--", "ping"), 127, "o", "e", "probing")
    assert str(again) == str(err)


# --- not root: one message (the CLI's exit 4 is tested in test_cli.py) ---------------------------------

NEEDS_ROOT_TEXT = "needs root (CAP_NET_ADMIN): run as root"


def test_privilege_problem_reads_the_effective_capabilities(tmp_path):
    from netnskit._privilege import privilege_problem

    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapEff:\t000001ffffffffff\n")
    assert privilege_problem(str(status)) is None
    status.write_text("Name:\tx\nCapEff:\t0000000000000000\n")
    assert privilege_problem(str(status)) == NEEDS_ROOT_TEXT
    status.write_text(f"CapEff:\t{1 << 12:016x}\n")  # CAP_NET_ADMIN alone: no entering a named namespace
    assert privilege_problem(str(status)) == NEEDS_ROOT_TEXT


def test_a_sandbox_gives_the_same_message(monkeypatch):
    import netnskit._privilege
    from netnskit.sandbox import sandbox_problem

    monkeypatch.setattr(netnskit._privilege, "privilege_problem", lambda: NEEDS_ROOT_TEXT)
    assert sandbox_problem() == NEEDS_ROOT_TEXT


# --- a network with no firewall rules, on a host without iptables ---------------------------------


@attrs.define
class NoIptables:
    """A runner of a host without iptables: every iptables* and ip6tables* program is missing."""

    inner: FakeRunner = attrs.field(factory=FakeRunner)
    asked: list[str] = attrs.field(factory=list)

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float | None = None,
        netns: str | None = None,
    ) -> Result:
        if argv[0].startswith(("iptables", "ip6tables")):
            self.asked.append(argv[0])
            raise CommandNotFoundError(argv[0], "iptables", list(argv))
        return self.inner.run(argv, input=input, timeout=timeout, netns=netns)

    def start(self, argv: Sequence[str], *, netns: str | None = None, stdin: bool = False):  # type: ignore[no-untyped-def]
        return self.inner.start(argv, netns=netns, stdin=stdin)


def plain(runner: object, **kw: object) -> Network:
    fields: dict[str, object] = {"name": "t", "bridge": "br-t", "subnet": "10.9.0.0/24", "gateway": "10.9.0.1"}
    fields.update({"namespaces": ["a"], **kw})
    return Network(**fields, runner=runner)  # type: ignore[arg-type]


@pytest.mark.parametrize("executor", [SerialExecutor, BatchExecutor])
def test_a_network_without_firewall_rules_goes_up_and_down_and_shows_status_without_iptables(executor):
    runner = NoIptables()
    net = plain(runner)
    net.up(executor())
    status = net.status()
    assert status.rules == ()
    assert "firewall" not in [m.kind for m in status.missing]
    teardown = net.down(executor())
    assert teardown.removed == ()  # the fake host shows nothing: nothing of ours to remove
    assert cleanup(None, runner, executor()).removed == ()
    assert set(runner.asked) <= {"iptables-save", "ip6tables-save"}  # asked, found missing, and not needed


def test_a_network_without_firewall_rules_needs_no_iptables_where_the_runner_answers_127():
    # a sandbox or an nsenter prefix: the missing program is nsenter's exit 127, not an exception
    fake = FakeRunner()
    for tool in ("iptables-save", "ip6tables-save"):
        fake.fail([tool], f"nsenter: failed to execute {tool}: No such file or directory\n", returncode=127)
    net = plain(fake)
    assert net.status().rules == ()
    net.down()
    cleanup(None, fake)


def test_a_network_with_masquerade_says_which_package_to_install():
    net = plain(NoIptables(), masquerade=True)
    with pytest.raises(CommandNotFoundError) as info:
        net.down()
    assert (info.value.program, info.value.package) == ("iptables-save", "iptables")
    with pytest.raises(CommandNotFoundError):
        net.status()


# --- the xtables lock ------------------------------------------------------------------------------

LOCK_HELD = (
    "Can't lock /run/xtables.lock: Resource temporarily unavailable\n"
    "Another app is currently holding the xtables lock. Stopped waiting after 10s.\n"
)


def test_every_iptables_command_waits_a_bounded_time_for_the_lock():
    rule = Rule(4, "nat", "NETNSKIT-POSTROUTING", ["-j", "MASQUERADE"])
    assert rule.argv(Backend(), "-C")[:3] == ["iptables", "-w", "10"]
    assert rule.argv(Backend("legacy", wait=3), "-C")[:3] == ["iptables-legacy", "-w", "3"]
    assert Firewall(Backend(wait=7)).restore_command(4, {}).argv == ("iptables-restore", "-w", "7", "--noflush")
    # a rule typed for a batch: its restore carries the same wait
    command = rule.command(Backend(wait=5))
    assert command.batch is not None and command.batch.program == ("iptables-restore", "-w", "5")


@pytest.mark.parametrize("bad", [0, -1, 3601, 1.5, "10", True, None])
def test_the_wait_is_a_whole_number_of_seconds(bad):
    from netnskit.errors import ValidationError

    with pytest.raises(ValidationError) as info:
        Backend(wait=bad)
    assert str(info.value).startswith("invalid xtables wait ")
    assert str(info.value).endswith(": must be a whole number of seconds from 1 to 3600")


def test_a_network_passes_its_wait_to_every_firewall_command():
    fake = FakeRunner()
    net = plain(fake, masquerade=True, xtables_wait=4)
    net.up(SerialExecutor())
    firewall = [a for a in fake.argvs if a[0].startswith("iptables") and a[0] != "iptables-save"]
    assert firewall and all(a[1:3] == ["-w", "4"] for a in firewall)
    assert net.nat_rule().backend == Backend(wait=4)


def test_the_toml_file_takes_xtables_wait(tmp_path):
    path = tmp_path / "n.toml"
    path.write_text(
        '[network]\nname = "n"\nbridge = "br-n"\nsubnet = "10.9.0.0/24"\ngateway = "10.9.0.1"\nxtables_wait = 30\n'
    )
    assert Network.from_toml(path).xtables_wait == 30
    path.write_text(path.read_text().replace("= 30", "= 0"))
    from netnskit.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        Network.from_toml(path)
    assert str(info.value) == (
        f"{path}: network.xtables_wait = 0: xtables wait: must be a whole number of seconds from 1 to 3600"
    )


def test_the_lock_held_past_the_wait_is_an_error_naming_the_xtables_lock():
    argv = ["iptables-legacy-restore", "-w", "10", "--noflush"]
    err = error_for(argv, 4, "", LOCK_HELD, "applying netnskit rules")
    assert type(err) is XtablesLockError and isinstance(err, CommandError)
    assert str(err) == (
        "applying netnskit rules failed: the xtables lock was held by another program for longer than the wait "
        "(`iptables-legacy-restore -w 10 --noflush` exited 4: Can't lock /run/xtables.lock: Resource temporarily "
        "unavailable\nAnother app is currently holding the xtables lock. Stopped waiting after 10s.); try again, "
        "or wait longer (Network(xtables_wait=SECONDS), netnskit --xtables-wait SECONDS)"
    )


@pytest.mark.parametrize("executor", [SerialExecutor, BatchExecutor])
def test_up_with_the_lock_held_fails_naming_the_lock_and_rolls_back(executor):
    fake = FakeRunner()
    fake.fail("iptables-restore *", LOCK_HELD, returncode=4)
    net = plain(fake, masquerade=True)
    with pytest.raises(StepError) as info:
        net.up(executor())
    assert isinstance(info.value.error, XtablesLockError)
    assert "the xtables lock was held by another program" in str(info.value)
    failed_at = max(i for i, a in enumerate(fake.argvs) if a[0] == "iptables-restore")
    after = [" ".join(a) + "\n" + (text or "") for a, text in zip(fake.argvs, fake.inputs, strict=True)][failed_at:]
    assert any("netns del a" in what for what in after), "the namespace made by this call was rolled back"


def test_nat_rule_objects_take_the_wait_too():
    fake = FakeRunner()
    NatRule("10.9.0.0/24", "br-t", runner=fake, backend=Backend(wait=2)).apply()
    changes = [a for a in fake.argvs if a[0] in ("iptables", "iptables-restore") and a[1:] != ["-V"]]
    assert changes and all(a[1:3] == ["-w", "2"] for a in changes)

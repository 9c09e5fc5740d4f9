"""No injection: a value passed to netnskit stays one argv word on every runner and in every script.

Hostile strings (shell code, option-like words, quotes, newlines, globs) go through each runner
with a program that prints its argv back; the words must arrive unchanged and no canary file may
appear. The ssh runner's remote command is re-parsed by a real ``sh -c`` and ``bash -c``, as the
remote shell would. Rendered plans are checked with ``bash -n`` and *run* by bash with every
command replaced by a recorder, which must see exactly the plan's argv and stdin.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from _reliability import expected_calls, run_script

from netnskit import LiveRunner, Network, ShRunner, SshRunner, netns_runner, nsenter_runner, sudo_runner
from netnskit._validate import _IP_LINK_KEYWORDS, ifname, netns_name
from netnskit.errors import ValidationError
from netnskit.plan import Command, Step, render_script
from netnskit.testing import FakeRunner

ECHO = [sys.executable, "-c", "import sys; sys.stdout.write('\\0'.join(sys.argv[1:]))"]


def hostile(canary: Path) -> list[str]:
    """Words that a shell, ssh or a tool would read as code or options if they were not quoted."""
    c = str(canary)
    return [
        f"; touch {c}",
        f"$(touch {c})",
        f"`touch {c}`",
        f"&& touch {c}",
        f"| touch {c}",
        f"\ntouch {c}\n",
        f"'; touch {c}; '",
        f'"; touch {c}; "',
        f"-oProxyCommand=touch {c}",
        f"--rcfile={c}",
        "--",
        "-",
        "-n",
        "*",
        "~",
        "$HOME",
        "${IFS}",
        "{a,b}",
        "!!",
        "#comment",
        "a b",
        "\t",
        "",
        "'",
        '"',
        "\\",
        "\\n",
        "%s%n",
        "r\u0435d",
        "\u202eevil",
        "NETNSKIT_EOF",
        "x" * 2000,
    ]


def echoed(result_stdout: str) -> list[str]:
    return result_stdout.split("\0")


def test_live_runner_passes_each_word_unchanged(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    words = hostile(canary)
    result = LiveRunner().run([*ECHO, *words]).check()
    assert echoed(result.stdout) == words
    assert not canary.exists()


def test_sh_runner_passes_each_word_unchanged(tmp_path: Path) -> None:
    pytest.importorskip("sh")
    canary = tmp_path / "canary"
    words = hostile(canary)
    result = ShRunner().run([*ECHO, *words]).check()
    assert echoed(result.stdout) == words
    assert not canary.exists()


@pytest.mark.parametrize(
    ("make", "prefix"),
    [
        (lambda inner: netns_runner(inner, "red"), ["ip", "netns", "exec", "red"]),
        (lambda inner: nsenter_runner(inner, 4242), ["nsenter", "--target=4242", "--net", "--mount", "--"]),
        (lambda inner: sudo_runner(inner), ["sudo", "-n", "--"]),
    ],
)
def test_prefix_runners_add_their_prefix_and_nothing_else(make, prefix, tmp_path: Path) -> None:
    fake = FakeRunner()
    words = hostile(tmp_path / "canary")
    make(fake).run(["ip", *words], input="x")
    assert fake.argvs == [[*prefix, "ip", *words]]
    assert fake.inputs == ["x"]


@pytest.mark.parametrize("bad", ["-x", "a b", "../x", "r\u0435d", "$(id)"])
def test_netns_runner_rejects_a_hostile_namespace_before_running(bad: str) -> None:
    fake = FakeRunner()
    with pytest.raises(ValidationError):
        netns_runner(fake, bad)
    assert fake.argvs == []


def test_ssh_runner_quotes_every_word_for_the_remote_shell_exactly() -> None:
    fake = FakeRunner()
    ssh = SshRunner("gw.example", inner=fake)
    ssh.run(["ip", "link", "set", "a b", "alias", "$(reboot)"])
    ssh.run(["echo", "it's", "; rm -rf /", "-oProxyCommand=x", "\n"])
    assert fake.argvs == [
        ["ssh", "-o", "BatchMode=yes", "gw.example", "--", "ip link set 'a b' alias '$(reboot)'"],
        ["ssh", "-o", "BatchMode=yes", "gw.example", "--", "echo 'it'\"'\"'s' '; rm -rf /' -oProxyCommand=x '\n'"],
    ]


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_ssh_remote_command_reparsed_by_a_real_shell_gives_the_same_words(shell: str, tmp_path: Path) -> None:
    """What ssh sends is run by the remote user's shell as ``$SHELL -c STRING``: emulate that here."""
    canary = tmp_path / "canary"
    words = hostile(canary)
    fake = FakeRunner()
    SshRunner("gw.example", inner=fake).run([*ECHO, *words])
    (argv,) = fake.argvs
    assert argv[:5] == ["ssh", "-o", "BatchMode=yes", "gw.example", "--"], "options never follow the host"
    assert len(argv) == 6, "the whole remote command is one word after '--'"
    remote = subprocess.run([shell, "-c", argv[5]], capture_output=True, text=True, check=True)
    assert echoed(remote.stdout) == words
    assert not canary.exists()


@pytest.mark.parametrize("host", ["-oProxyCommand=touch /tmp/x", "a b", "", "\thost", "host\n"])
def test_ssh_runner_rejects_a_host_that_would_be_an_option_or_two_words(host: str) -> None:
    fake = FakeRunner()
    with pytest.raises(ValidationError):
        SshRunner(host, inner=fake)
    assert fake.argvs == []


def test_ssh_runner_reports_the_argv_as_asked_not_the_ssh_line() -> None:
    fake = FakeRunner().on(lambda argv: argv[0] == "ssh", stderr='Cannot find device "x"\n', returncode=1)
    result = SshRunner("gw", inner=fake).run(["ip", "link", "del", "x"])
    assert result.argv == ("ip", "link", "del", "x") and result.returncode == 1


# --- names that are valid but unusual stay names ------------------------------------------

# Valid by the rules, yet close to trouble: double dashes, dots, digits only, address-like,
# option-like inside, netns words that are ip verbs.
ODD_IFNAMES = ["x--y", "v-n", "0", "1.2.3.4", "_", "e.-", "a--help", "up0", "type_", "helpx", "ip", "del"]
ODD_NETNS = ["all", "help", "add", "del", "exec", "list", "1.2.3.4", "_", "x--y", "a.b..c", "n-s"]


@pytest.mark.parametrize("name", ODD_IFNAMES)
def test_odd_but_valid_interface_names_are_accepted(name: str) -> None:
    assert ifname(name) == name


@pytest.mark.parametrize("name", ODD_NETNS)
def test_odd_but_valid_namespace_names_are_accepted(name: str) -> None:
    assert netns_name(name) == name


@pytest.mark.parametrize("word", sorted(_IP_LINK_KEYWORDS))
def test_ip_keywords_are_rejected_as_interface_names(word: str) -> None:
    with pytest.raises(ValidationError, match="keyword") as info:
        ifname(word)
    assert info.value.value == word


def odd_network() -> Network:
    """A network made of the odd names, IPv4 only."""
    return Network(
        name="x--y",
        bridge="1.2.3.4",
        subnet="10.1.0.0/24",
        gateway="10.1.0.1",
        namespaces=[
            {"name": "all", "host_ifname": "x--y", "ifname": "up0"},
            {"name": "help", "host_ifname": "e.-", "ifname": "a--help"},
            {"name": "1.2.3.4", "host_ifname": "0", "ifname": "type_"},
        ],
        extra_namespaces=["del"],
        links=[{"name": "ip", "peer": "_", "peer_netns": "del", "address": "10.2.0.1/24"}],
        masquerade=True,
        port_forwards=[{"host_port": 8080, "netns": "help", "port": 80}],
        runner=FakeRunner(strict=True),
    )


def option_words(net: Network) -> set[str]:
    """Every word of the plan's argv and stdin that a tool would read as an option."""
    words: set[str] = set()
    for step in net.plan():
        for command in [*step.do, *step.undo]:
            words.update(w for w in command.argv if w.startswith("-"))
            words.update(w for w in shlex.split(command.input or "") if w.startswith("-"))
    return words


def test_odd_names_bring_no_new_option_into_the_plan() -> None:
    """The odd network's plan uses only the options a plain network's plan uses: no name became one."""
    seed = Network.from_toml(Path(__file__).parents[2] / "examples" / "seed.toml", runner=FakeRunner(strict=True))
    odd = option_words(odd_network())
    assert odd and odd <= option_words(seed), odd - option_words(seed)


def test_plan_keeps_every_name_one_word() -> None:
    net = odd_network()
    names = [*net.namespace_names(), *net.host_ifnames(), "up0", "a--help", "type_"]
    argvs = [c.host_argv() for step in net.plan() for c in [*step.do, *step.undo]]
    for name in names:
        assert any(name in argv for argv in argvs), f"{name!r} never appears as a word of its own"


# --- rendered scripts -----------------------------------------------------------------------


def test_bash_accepts_the_rendered_seed_and_odd_plans(tmp_path: Path) -> None:
    seed = Network.from_toml(Path(__file__).parents[2] / "examples" / "seed.toml", runner=FakeRunner(strict=True))
    for net in (seed, odd_network()):
        path = tmp_path / "plan.sh"
        path.write_text(net.render_script())
        subprocess.run(["bash", "-n", str(path)], check=True)


def test_rendered_odd_plan_runs_exactly_the_plans_commands(tmp_path: Path) -> None:
    net = odd_network()
    steps = net.plan()
    assert run_script(net.render_script(), tmp_path) == expected_calls(steps)


def test_rendered_script_keeps_hostile_words_and_stdin_intact(tmp_path: Path) -> None:
    """render_script is public: whatever argv and stdin a step carries, bash must see them as data."""
    canary = tmp_path / "canary"
    words = hostile(canary)
    body = f"line one\nNETNSKIT_EOF\ntouch {canary}\nNETNSKIT_EOF_1\n'\"$(x)\"'\n"
    steps = [
        Step("hostile words", [Command(["tool", *words])], [Command(["untool", *words])]),
        Step("hostile stdin", [Command(["restore", "--noflush"], input=body)]),
        Step("stdin without a final newline", [Command(["restore"], input="COMMIT")]),
        Step(f"description with a newline\ntouch {canary}", [Command(["noop"])]),
    ]
    script = render_script(steps, title=f"title\ntouch {canary}")
    path = tmp_path / "plan.sh"
    path.write_text(script)
    subprocess.run(["bash", "-n", str(path)], check=True)
    assert run_script(script, tmp_path) == expected_calls(steps)
    assert not canary.exists()


def test_shlex_reads_back_each_plain_command_line() -> None:
    """Each command line of the script (those without stdin) splits back to the plan's argv."""
    net = odd_network()
    lines = net.render_script().splitlines()
    for step in net.plan():
        for c in step.do:
            if c.input is None:
                line = shlex.join(c.host_argv())
                assert line in lines
                assert shlex.split(line) == c.host_argv()

"""Issue 13, finding 10: inputs rejected before any command, with a short message naming the right key.

A network name as long as its derived names allow, ports in ASCII digits only, no NUL in an argv word
or an ssh host, long values cut in messages, and a [network] key blamed for its own value.
"""

from __future__ import annotations

import pytest

from netnskit import Namespace, SshRunner
from netnskit._validate import MARKED_NAME_MAX
from netnskit.errors import ConfigError, ValidationError, shown
from netnskit.firewall import NatRule
from netnskit.network import ForwardSpec, Network
from netnskit.testing import FakeRunner

TOP = '[network]\nname = "{name}"\nbridge = "{bridge}"\nsubnet = "10.9.0.0/24"\ngateway = "10.9.0.1"\n'


def write(tmp_path, text: str):
    path = tmp_path / "n.toml"
    path.write_text(text)
    return path


# --- the network name: netnskit:NAME is a link alias and a rule comment (255 bytes at most) -----------


def test_the_longest_network_name_is_what_its_mark_allows():
    assert MARKED_NAME_MAX == 255 - len("netnskit:") == 246
    fake = FakeRunner(strict=True)
    net = Network("n" * 246, "br0", "10.9.0.0/24", "10.9.0.1", runner=fake)
    assert len(net.mark) == 255
    with pytest.raises(ValidationError) as info:
        Network("n" * 247, "br0", "10.9.0.0/24", "10.9.0.1", runner=fake)
    assert str(info.value) == (
        f"invalid network name {'n' * 247!r:.60}... (247 characters): must be at most 246 characters, not 247: "
        "its mark 'netnskit:NAME' is a link alias and a firewall comment, which the kernel limits to 255"
    )
    assert fake.argvs == []


@pytest.mark.parametrize("size", [247, 255])
def test_a_long_network_name_in_a_file_names_the_key(tmp_path, size):
    path = write(tmp_path, TOP.format(name="n" * size, bridge="br0"))
    with pytest.raises(ConfigError) as info:
        Network.from_toml(path, runner=FakeRunner(strict=True))
    assert info.value.key == "network.name"
    assert f"must be at most 246 characters, not {size}" in str(info.value)


def test_a_rule_owner_has_the_same_limit():
    NatRule("10.9.0.0/24", "br0", owner="o" * 246, runner=FakeRunner(strict=True))
    with pytest.raises(ValidationError) as info:
        NatRule("10.9.0.0/24", "br0", owner="o" * 247, runner=FakeRunner(strict=True))
    assert info.value.what == "owner"


# --- long values are cut in messages ---------------------------------------------------------------


def test_a_ten_megabyte_name_gives_a_short_line(tmp_path):
    huge = "x" * 10_000_000
    with pytest.raises(ValidationError) as info:
        Network(huge, "br0", "10.9.0.0/24", "10.9.0.1", runner=FakeRunner(strict=True))
    assert info.value.value is huge  # the error keeps the value; only its message is cut
    assert str(info.value) == (
        f"invalid network name '{'x' * 59}... (10000000 characters): must be at most 255 characters, not 10000000"
    )
    path = write(tmp_path, TOP.format(name=huge, bridge="br0"))
    with pytest.raises(ConfigError) as config:
        Network.from_toml(path, runner=FakeRunner(strict=True))
    assert len(str(config.value)) < 200 + len(str(path))


def test_a_huge_unknown_key_is_cut_too(tmp_path):
    path = write(tmp_path, TOP.format(name="n", bridge="br0") + f"{'k' * 100_000} = 1\n")
    with pytest.raises(ConfigError) as info:
        Network.from_toml(path, runner=FakeRunner(strict=True))
    assert len(str(info.value)) < 300 + len(str(path))
    assert "(100008 characters)" in str(info.value)  # "network." and the key


def test_a_huge_path_is_cut_too():
    path = "/tmp/" + "p" * 1_000_000
    with pytest.raises(ConfigError) as info:
        Network.from_toml(path, runner=FakeRunner(strict=True))
    assert len(str(info.value)) < 400
    assert "(1000005 characters): file: cannot read it" in str(info.value)


def test_shown_cuts_long_values_and_keeps_short_ones():
    assert shown("abc") == "'abc'"
    assert shown("a" * 58) == repr("a" * 58)  # 60 with its quotes
    assert shown("a" * 59) == f"'{'a' * 59}... (59 characters)"
    assert shown(list(range(100))).endswith("...")


# --- ports: ASCII digits only -----------------------------------------------------------------------

BAD_PORTS = ["٨٠", "８０", "80_00-80_10", "8000_1", " 8000-8010", "8000-8010 ", "80 ", " 80", "+80", "80-", "-80", ""]


@pytest.mark.parametrize("bad", BAD_PORTS)
def test_ports_in_other_digits_or_with_spaces_or_underscores_are_refused(bad):
    with pytest.raises(ValidationError) as info:
        ForwardSpec(bad, "a")
    assert info.value.value == bad
    assert info.value.rule in (
        "must be PORT or LOW-HIGH in ASCII digits, without spaces, like 80 or 8000-8010",
        "must be from 1 to 65535",
    )


@pytest.mark.parametrize("bad", ["٨٠", "80_00-80_10", " 8000-8010"])
def test_a_bad_port_in_a_file_names_its_key(tmp_path, bad):
    text = TOP.format(name="n", bridge="br0") + f'[[namespace]]\nname = "a"\n[[port_forward]]\nhost_port = "{bad}"\n'
    path = write(tmp_path, text + 'netns = "a"\n')
    with pytest.raises(ConfigError) as info:
        Network.from_toml(path, runner=FakeRunner(strict=True))
    assert info.value.key == "port_forward[0].host_port"
    assert str(info.value).endswith(": must be PORT or LOW-HIGH in ASCII digits, without spaces, like 80 or 8000-8010")


@pytest.mark.parametrize(("good", "expected"), [("80", (80, 80)), ("8000-8010", (8000, 8010)), (80, (80, 80))])
def test_ascii_ports_still_work(good, expected):
    assert ForwardSpec(good, "a").host_port == expected


# --- NUL: a ValidationError, not subprocess's bare ValueError ---------------------------------------


def test_a_nul_in_an_argv_word_is_refused_before_any_process():
    fake = FakeRunner()
    with pytest.raises(ValidationError) as info:
        Namespace("a", runner=fake).exec(["echo", "a\0b"])
    assert str(info.value) == "invalid argument 'a\\x00b': must not contain a NUL character"
    assert fake.argvs == []


@pytest.mark.parametrize("host", ["ho\0st", "host\0", "ho\nst", "ho st", "-oProxyCommand=x", ""])
def test_an_ssh_host_with_a_nul_or_a_control_character_is_refused(host):
    with pytest.raises(ValidationError) as info:
        SshRunner(host, inner=FakeRunner(strict=True))
    assert info.value.what == "ssh host"


def test_a_nul_in_ssh_options_is_refused_when_run():
    fake = FakeRunner()
    runner = SshRunner("h", inner=fake, options=("-o", "Bad\0Option"))
    with pytest.raises(ValidationError):
        runner.run(["true"])
    assert fake.argvs == []


# --- a [network] key is blamed for its own value ----------------------------------------------------


def test_bridge_default_is_blamed_on_bridge_not_on_a_route_to_default(tmp_path):
    routes = '[[route]]\nto = "10.8.0.0/24"\nvia = "10.9.0.2"\n[[route]]\nto = "default"\nvia = "10.9.0.2"\n'
    path = write(tmp_path, TOP.format(name="n", bridge="default") + routes)
    with pytest.raises(ConfigError) as info:
        Network.from_toml(path, runner=FakeRunner(strict=True))
    assert str(info.value) == (
        f"{path}: network.bridge = 'default': interface name: is a word `ip link` reads as a keyword; "
        "choose another name"
    )


def test_a_bad_link_peer_is_blamed_on_peer(tmp_path):
    text = TOP.format(name="n", bridge="br0") + '[[extra_namespace]]\nname = "x"\n'
    path = write(tmp_path, text + '[[link]]\nname = "ok0"\npeer = "up"\npeer_netns = "x"\n')
    with pytest.raises(ConfigError) as info:
        Network.from_toml(path, runner=FakeRunner(strict=True))
    assert info.value.key == "link[0].peer"

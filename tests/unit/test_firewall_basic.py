"""A light check of NatRule and PortForward (the firewall's owner may replace this file).

firewall.py is being rewritten by its owner; these tests pin only what the foundation issue
promises: the masquerade and DNAT words are there, marked as ours, and bad input is refused
before any command runs.
"""

from __future__ import annotations

import pytest

from netnskit import NatRule, PortForward, ValidationError
from netnskit.testing import FakeRunner


def _words(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == flag]


def test_nat_rule_spec_masquerades_the_subnet_except_to_the_bridge():
    spec = NatRule("192.168.15.0/24", "br0", owner="lab").rule()
    assert spec[:5] == ["-s", "192.168.15.0/24", "!", "-o", "br0"]
    assert spec[-2:] == ["-j", "MASQUERADE"]
    (comment,) = _words(spec, "--comment")
    assert comment.endswith(":lab")


def test_port_forward_dnat_goes_to_the_destination_port():
    fwd = PortForward(8080, "192.168.15.2", 80, owner="lab")
    specs = [list(rule.spec) for rule in fwd.rules()]
    dnat = [spec for spec in specs if "DNAT" in spec]
    assert dnat, specs
    for spec in dnat:
        assert _words(spec, "--to-destination") == ["192.168.15.2:80"]
        assert _words(spec, "--dport") == ["8080"]
        assert _words(spec, "-p") == ["tcp"]


@pytest.mark.parametrize(
    "make",
    [
        lambda r: NatRule("192.168.15.1/24", runner=r),
        lambda r: NatRule("192.168.15.0/24", "a b", runner=r),
        lambda r: NatRule("192.168.15.0/24", owner="../x", runner=r),
        lambda r: PortForward(0, "192.168.15.2", runner=r),
        lambda r: PortForward(65536, "192.168.15.2", runner=r),
        lambda r: PortForward(True, "192.168.15.2", runner=r),
        lambda r: PortForward(8080, "192.168.15.2", protocol="icmp", runner=r),
        lambda r: PortForward(8080, "192.168.15.2/24", runner=r),
        lambda r: PortForward((8000, 8010), "192.168.15.2", (9000, 9005), runner=r),
    ],
)
def test_bad_input_runs_nothing(make):
    fake = FakeRunner()
    with pytest.raises(ValidationError):
        make(fake)
    assert fake.argvs == []

"""HostState: what counts as a change of the host, and what does not."""

from __future__ import annotations

from netnskit.snapshot import HostState, _clean_save
from netnskit.testing import FakeRunner

ROUTE = '[{"dst":"2001:db8::/64","dev":"eth0","protocol":"ra","metric":100,"expires":%d,"flags":[]}]'


def test_clean_save_drops_an_empty_builtin_table_only():
    empty = (
        "# Generated\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [3:180]\n"
        ":POSTROUTING ACCEPT [0:0]\nCOMMIT\n# Completed\n"
    )
    assert _clean_save(empty) == ""
    with_rule = empty.replace("COMMIT", "-A POSTROUTING -s 10.0.0.0/24 -j MASQUERADE\nCOMMIT")
    assert "-A POSTROUTING -s 10.0.0.0/24 -j MASQUERADE" in _clean_save(with_rule)
    drop_policy = empty.replace(":INPUT ACCEPT", ":INPUT DROP")
    assert ":INPUT DROP" in _clean_save(drop_policy)
    own_chain = empty.replace("COMMIT", ":NETNSKIT-POSTROUTING - [0:0]\nCOMMIT")
    assert ":NETNSKIT-POSTROUTING -" in _clean_save(own_chain)


def state(expires: int, dev: str = "eth0") -> HostState:
    fake = FakeRunner().on(
        ["ip", "-6", "-j", "route", "show", "table", "all"], stdout=(ROUTE % expires).replace("eth0", dev)
    )
    return HostState.capture(fake)


def test_a_route_expiry_counting_down_is_not_a_change():
    assert state(1790).diff(state(1750)) == []


def test_a_route_on_another_device_is_a_change():
    assert state(1790).diff(state(1790, dev="eth1")) != []

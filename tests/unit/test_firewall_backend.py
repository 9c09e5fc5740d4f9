"""Firewall (iptables) is a FirewallBackend: statically (mypy reads the typed assignment) and at run time."""

from __future__ import annotations

from netnskit.firewall import Firewall
from netnskit.firewall.backend import FirewallBackend
from netnskit.testing import FakeRunner


def test_firewall_satisfies_the_backend_protocol() -> None:
    backend: FirewallBackend = Firewall(runner=FakeRunner())
    assert isinstance(backend, FirewallBackend)


def test_an_object_without_the_members_is_not_a_backend() -> None:
    assert not isinstance(object(), FirewallBackend)


def test_the_protocol_holds_what_network_and_the_objects_call() -> None:
    members = {name for name in vars(FirewallBackend) if not name.startswith("_")}
    assert members == {
        "save",
        "has",
        "forward_policy_drop",
        "plan",
        "plan_changes",
        "remember",
        "delete",
        "sweep_commands",
        "plan_sweep",
        "reliance",
        "sysctl_value",
        "records",
        "sweep",
        "restore_command",
    }

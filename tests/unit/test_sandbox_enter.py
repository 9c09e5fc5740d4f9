"""Sandbox without making one: the argv that runs a whole process inside it, and its refusals when closed."""

from __future__ import annotations

import pytest

from netnskit.errors import SandboxError
from netnskit.sandbox import Sandbox


def test_enter_argv_prefixes_nsenter_into_the_holders_net_and_mount_namespaces(monkeypatch):
    monkeypatch.setattr(Sandbox, "pid", property(lambda self: 4242))
    assert Sandbox().enter_argv(["python3", "-c", "print(1)"]) == [
        "nsenter",
        "--target=4242",
        "--net",
        "--mount",
        "--",
        "python3",
        "-c",
        "print(1)",
    ]


def test_enter_argv_refuses_a_string(monkeypatch):
    monkeypatch.setattr(Sandbox, "pid", property(lambda self: 4242))
    with pytest.raises(TypeError):
        Sandbox().enter_argv("ip link")


def test_enter_argv_of_a_sandbox_not_open_raises():
    with pytest.raises(SandboxError, match="not open"):
        Sandbox().enter_argv(["true"])

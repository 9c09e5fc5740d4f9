"""The public surface: ``netnskit.__all__`` exactly, and a docstring on every public name."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import netnskit

EXPECTED_ALL = [
    "AlreadyExistsError",
    "Bridge",
    "BusyError",
    "Capture",
    "CommandError",
    "CommandNotFoundError",
    "CommandTimeoutError",
    "ConfigError",
    "ConflictError",
    "Link",
    "LiveRunner",
    "Namespace",
    "NatRule",
    "NetnskitError",
    "Network",
    "NotFoundError",
    "NotOursError",
    "PermissionDeniedError",
    "PortForward",
    "PrefixRunner",
    "ProcessError",
    "ProcessHandle",
    "Result",
    "Route",
    "Runner",
    "SandboxError",
    "Sandbox",
    "ShRunner",
    "SshRunner",
    "StepError",
    "ValidationError",
    "VethPair",
    "Vlan",
    "__version__",
    "netns_runner",
    "nsenter_runner",
    "sudo_runner",
]


def test_all_is_exactly_the_expected_list():
    assert netnskit.__all__ == EXPECTED_ALL


def test_every_name_in_all_exists():
    for name in netnskit.__all__:
        assert hasattr(netnskit, name), name


def test_issue_names_are_exported():
    for name in (
        "Namespace",
        "VethPair",
        "Bridge",
        "NatRule",
        "PortForward",
        "Runner",
        "LiveRunner",
        "Result",
        "NetnskitError",
        "ValidationError",
        "CommandNotFoundError",
        "CommandError",
        "AlreadyExistsError",
        "NotFoundError",
        "PermissionDeniedError",
        "CommandTimeoutError",
    ):
        assert name in netnskit.__all__


def test_fake_runner_lives_in_netnskit_testing():
    from netnskit.testing import FakeRunner

    assert FakeRunner.__module__ == "netnskit.testing"


def _modules() -> list[ModuleType]:
    names = [netnskit.__name__] + [
        info.name
        for info in pkgutil.walk_packages(netnskit.__path__, prefix="netnskit.")
        if not info.name.endswith("__main__")  # importing it would run the command line
    ]
    return [importlib.import_module(name) for name in sorted(names)]


def _public(module: ModuleType) -> list[tuple[str, object]]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    found = []
    for name in names:
        obj = getattr(module, name)
        # only what the module defines itself; re-exports are checked where they live
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == module.__name__:
            found.append((f"{module.__name__}.{name}", obj))
    return found


def _members(qualname: str, cls: type) -> list[tuple[str, object]]:
    found = []
    for name, attr in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(attr, staticmethod | classmethod):
            attr = attr.__func__
        if isinstance(attr, property):
            attr = attr.fget
        if inspect.isfunction(attr):
            found.append((f"{qualname}.{name}", attr))
    return found


def _missing_docstrings() -> list[str]:
    missing = []
    for module in _modules():
        if not (module.__doc__ or "").strip():
            missing.append(module.__name__)
        for qualname, obj in _public(module):
            if not (obj.__doc__ or "").strip():
                missing.append(qualname)
            if inspect.isclass(obj):
                missing += [q for q, m in _members(qualname, obj) if not (m.__doc__ or "").strip()]
    return missing


def test_every_public_name_has_a_docstring():
    assert _missing_docstrings() == []


def test_the_walk_really_sees_the_library():
    seen = {q for m in _modules() for q, _ in _public(m)}
    assert {
        "netnskit.netns.Namespace",
        "netnskit.runner.LiveRunner",
        "netnskit.testing.FakeRunner",
        "netnskit._validate.ifname",
    } <= seen
    members = {q for q, _ in _members("Namespace", netnskit.Namespace)}
    assert {"Namespace.create", "Namespace.names", "Namespace.inside"} <= members


@pytest.mark.parametrize(
    "obj",
    [
        netnskit.Namespace("red"),
        netnskit.Link("eth0"),
        netnskit.VethPair("v0", "v1"),
        netnskit.Bridge("br0"),
        netnskit.Route("default", "192.168.15.2"),
        netnskit.NatRule("192.168.15.0/24"),
        netnskit.PortForward(8080, "192.168.15.2"),
        netnskit.Result(["true"]),
    ],
    ids=lambda obj: type(obj).__name__,
)
def test_objects_are_frozen(obj):
    import attrs

    field = attrs.fields(type(obj))[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(obj, field, getattr(obj, field))


def test_the_docstring_walk_notices_a_missing_docstring(monkeypatch):
    from netnskit import errors, runner

    monkeypatch.setattr(errors.package_for, "__doc__", None)
    monkeypatch.setattr(runner.LiveRunner.start, "__doc__", "")
    assert _missing_docstrings() == ["netnskit.errors.package_for", "netnskit.runner.LiveRunner.start"]

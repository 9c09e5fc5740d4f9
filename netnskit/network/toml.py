"""Reading a network description from TOML (or the same structure as a dict), strictly.

Every table and key is checked against a schema; errors name the file, the key and the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from netnskit.errors import MISSING, ConfigError, ValidationError
from netnskit.network.spec import (
    ExtraNamespace,
    FaultSpec,
    ForwardSpec,
    LinkSpec,
    NamespaceSpec,
    ProcessSpec,
    RouteSpec,
)
from netnskit.qdisc import Impairment
from netnskit.runner import Runner

if TYPE_CHECKING:
    from netnskit.network.network import Network


_TOP = {"network", "namespace", "extra_namespace", "link", "route", "port_forward", "process", "fault"}
_KEYS: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    # key -> (TOML types accepted, required)
    "network": {
        "name": (str, True),
        "bridge": (str, True),
        "subnet": (str, True),
        "gateway": (str, True),
        "masquerade": (bool, False),
        "group": (int, False),
        "ipv6_link_local": (bool, False),
        "multicast_snooping": (bool, False),
        "dns": (list, False),
        "hosts": (bool, False),
        "logs": (str, False),
        "xtables_wait": (int, False),
        "firewall": (str, False),
        "mtu": (int, False),
        "subnet6": (str, False),
        "gateway6": (str, False),
        "masquerade6": (bool, False),
    },
    "namespace": {
        "name": (str, True),
        "address": (str, False),
        "ifname": (str, False),
        "host_ifname": (str, False),
        "default_route": (bool, False),
        "routes": (list, False),
        "mtu": (int, False),
        "dns": (list, False),
        "sysctls": (dict, False),
        "impair": (dict, False),
        "address6": (str, False),
    },
    "extra_namespace": {
        "name": (str, True),
        "forwarding": (bool, False),
        "dns": (list, False),
        "sysctls": (dict, False),
    },
    "link": {
        "name": (str, True),
        "peer": (str, True),
        "netns": (str, False),
        "peer_netns": (str, False),
        "address": (str, False),
        "peer_address": (str, False),
        "mtu": (int, False),
        "impair": (dict, False),
        "address6": (str, False),
        "peer_address6": (str, False),
    },
    "route": {"to": (str, True), "via": (str, False), "via6": (str, False), "dev": (str, False), "netns": (str, False)},
    "port_forward": {
        "host_port": ((int, str), True),
        "netns": (str, True),
        "port": ((int, str), False),
        "protocol": (str, False),
        "host_address": (str, False),
    },
    "process": {
        "name": (str, False),
        "netns": (str, True),
        "command": (list, True),
        "ready": ((str, list), False),
        "order": (int, False),
        "ready_timeout": ((int, float), False),
        "cwd": (str, False),
    },
    "impair": {
        "delay": (str, False),
        "jitter": (str, False),
        "distribution": (str, False),
        "loss": (str, False),
        "loss_correlation": (str, False),
        "duplicate": (str, False),
        "reorder": (str, False),
        "corrupt": (str, False),
        "rate": (str, False),
        "direction": (str, False),
    },
    "fault": {
        "at": (str, True),
        "for": (str, True),
        "link": (str, True),
        "down": (bool, False),
        "impair": (dict, False),
    },
}
_KEY_PATH = re.compile(r"[a-z_]+\[\d+\]\.[a-z_]+\Z")
_TYPE_NAMES = {
    str: "a string",
    bool: "true or false",
    int: "an integer",
    float: "a number",
    list: "a list",
    dict: "a table",
}


def _table(source: str, key: str, value: object, kind: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(source, key, value, "must be a table")
    schema = _KEYS[kind]
    for k in value:
        if k not in schema:
            raise ConfigError(source, f"{key}.{k}", MISSING, f"unknown key (known: {', '.join(schema)})")
    for k, (types, required) in schema.items():
        if k not in value:
            if required:
                raise ConfigError(source, f"{key}.{k}", MISSING, "missing required key")
            continue
        item = value[k]
        accepted = types if isinstance(types, tuple) else (types,)
        wrong = not isinstance(item, accepted) or (bool not in accepted and isinstance(item, bool))
        if wrong:
            names = " or ".join(_TYPE_NAMES[t] for t in accepted)
            raise ConfigError(source, f"{key}.{k}", item, f"must be {names}")
    return dict(value)


def _check_fields(
    source: str, key: str, make: Callable[..., Any], fields: dict[str, Any], names: dict[str, str] | None = None
) -> None:
    """Run each field's own check alone, so a rejection names its key (not another key of the same value)."""
    checks: tuple[attrs.Attribute[Any], ...] = attrs.fields(make) if attrs.has(make) else ()  # type: ignore[arg-type]
    for field in checks:
        convert: Any = field.converter
        if field.name not in fields or not callable(convert):
            continue
        try:
            convert(fields[field.name])
        except ValidationError as exc:
            spelled = (names or {}).get(field.name, field.name)
            raise ConfigError(source, f"{key}.{spelled}", fields[field.name], f"{exc.what}: {exc.rule}") from None


def _build(
    source: str, key: str, make: Callable[..., Any], fields: dict[str, Any], names: dict[str, str] | None = None
) -> Any:
    _check_fields(source, key, make, fields, names)
    try:
        return make(**fields)
    except ValidationError as exc:
        # name the key whose value was rejected, if it is one of this table's (as the file spells it)
        culprit = next((k for k, val in fields.items() if _same(val, exc.value)), None)
        culprit = (names or {}).get(culprit or "", culprit)
        where = f"{key}.{culprit}" if culprit else key
        raise ConfigError(source, where, exc.value, f"{exc.what}: {exc.rule}") from None


def _same(raw: object, value: object) -> bool:
    """Is ``raw`` (as written in the file) the ``value`` a check rejected (maybe after conversion)?"""
    if raw is value:
        return True
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        return False
    if isinstance(value, tuple) and len(value) == 2:  # a port range
        return str(raw) in (f"{value[0]}-{value[1]}", str(value[0]) if value[0] == value[1] else None)
    return str(raw) == str(value)


def _impair(source: str, key: str, table: dict[str, Any]) -> None:
    """Replace ``table["impair"]`` (a TOML table) by the Impairment it describes, errors naming ``KEY.impair.K``."""
    if "impair" in table:
        ikey = f"{key}.impair"
        table["impair"] = _build(source, ikey, Impairment, _table(source, ikey, table["impair"], "impair"))


def _array(source: str, data: dict[str, Any], kind: str) -> list[tuple[str, dict[str, Any]]]:
    items = data.get(kind, [])
    if not isinstance(items, list):
        raise ConfigError(source, kind, items, f"must be an array of tables ([[{kind}]])")
    return [(f"{kind}[{i}]", _table(source, f"{kind}[{i}]", item, kind)) for i, item in enumerate(items)]


def _process(source: str, key: str, table: dict[str, Any]) -> ProcessSpec:
    # a process without a name is called after its program (``python3 -m http.server`` -> python3)
    command = table.get("command")
    if "name" not in table and isinstance(command, list) and command and isinstance(command[0], str):
        table = {"name": command[0].rsplit("/", 1)[-1], **table}
    built: ProcessSpec = _build(source, key, ProcessSpec, table)
    return built


def _from_dict(cls: type[Network], data: dict[str, Any], source: str, runner: Runner, directory: str | None) -> Network:
    if "host" in data:
        # [[host]] tables spread the network over several hosts: netnskit.cluster reads such a file
        reason = "the file places the network on several hosts: load it with netnskit.cluster.Cluster.from_toml"
        raise ConfigError(source, "host", MISSING, reason)
    for k in data:
        if k not in _TOP:
            raise ConfigError(source, k, MISSING, f"unknown key (known: {', '.join(sorted(_TOP))})")
    if "network" not in data:
        raise ConfigError(source, "network", MISSING, "missing required table [network]")
    top = _table(source, "network", data["network"], "network")
    namespaces = []
    for key, table in _array(source, data, "namespace"):
        routes = []
        for i, r in enumerate(table.pop("routes", [])):
            rkey = f"{key}.routes[{i}]"
            rt = _table(source, rkey, r, "route")
            routes.append(_build(source, rkey, RouteSpec, rt))
        _impair(source, key, table)
        namespaces.append(_build(source, key, NamespaceSpec, {**table, "routes": routes}))
    extras = [_build(source, k, ExtraNamespace, t) for k, t in _array(source, data, "extra_namespace")]
    links = []
    for key, table in _array(source, data, "link"):
        _impair(source, key, table)
        links.append(_build(source, key, LinkSpec, table))
    faults = []
    for key, table in _array(source, data, "fault"):
        _impair(source, key, table)
        table["duration"] = table.pop("for")
        faults.append(_build(source, key, FaultSpec, table, {"duration": "for"}))
    routes_top = [_build(source, k, RouteSpec, t) for k, t in _array(source, data, "route")]
    forwards = [_build(source, k, ForwardSpec, t) for k, t in _array(source, data, "port_forward")]
    processes = [_process(source, k, t) for k, t in _array(source, data, "process")]
    fields = {
        **top,
        "processes": processes,
        "namespaces": namespaces,
        "extra_namespaces": extras,
        "links": links,
        "routes": routes_top,
        "port_forwards": forwards,
        "faults": faults,
    }
    _check_fields(source, "network", cls, top)
    try:
        return cls(**fields, runner=runner, directory=directory)
    except ValidationError as exc:
        # a check of the whole network that knows the key names it (fault[1].at); else look for the value
        if _KEY_PATH.match(exc.what):
            raise ConfigError(source, exc.what, exc.value, exc.rule) from None
        where = _find_key(data, exc.value) or "network"
        raise ConfigError(source, where, exc.value, f"{exc.what}: {exc.rule}") from None


def _find_key(data: object, value: object, prefix: str = "") -> str | None:
    """The last key path in ``data`` whose value is ``value`` (for naming the culprit of a rejection)."""
    found: str | None = None
    if isinstance(data, dict):
        for k, item in data.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            found = _find_key(item, value, path) or found
    elif isinstance(data, list):
        for i, item in enumerate(data):
            found = _find_key(item, value, f"{prefix}[{i}]") or found
    elif _same(data, value):
        found = prefix
    return found

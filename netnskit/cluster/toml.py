"""Reading a cluster file: a network file plus ``[[host]]`` tables and ``host =`` keys, strictly.

The cluster's own keys are taken out (``[[host]]``; ``gateway_host`` and ``vni`` under
``[network]``; ``host`` on ``[[namespace]]``, ``[[extra_namespace]]``, ``[[link]]`` and
``[[route]]``), checked here, and the rest is read by :meth:`Network.from_dict` with all of its
checks. Errors name the file, the key and the reason.
"""

from __future__ import annotations

import copy
import os
import tomllib
from typing import TYPE_CHECKING, Any

from netnskit.cluster.spec import HostSpec, _link_host
from netnskit.errors import MISSING, ConfigError, ValidationError
from netnskit.network import Network
from netnskit.network.toml import _find_key

if TYPE_CHECKING:
    from netnskit.cluster.cluster import Cluster

_HOST_KEYS: dict[str, tuple[type, bool]] = {
    "name": (str, True),
    "ssh": (str, False),
    "local": (bool, False),
    "underlay": (str, False),
}
_NETWORK_KEYS: dict[str, type] = {"gateway_host": str, "vni": int}
_PLACED = ("namespace", "extra_namespace", "link", "route")
_TYPE_NAMES = {str: "a string", bool: "true or false", int: "an integer"}


def load(cls: type[Cluster], path: str | os.PathLike[str], options: dict[str, Any]) -> Cluster:
    """Read ``path`` as a cluster file."""
    where = str(path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(where, "file", MISSING, f"cannot read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, "syntax", MISSING, f"not valid TOML ({exc})") from None
    return from_dict(cls, data, where, options)


def _typed(source: str, key: str, value: object, kind: type) -> Any:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(source, key, value, f"must be {_TYPE_NAMES[kind]}")
    return value


def _hosts(source: str, data: dict[str, Any]) -> list[HostSpec]:
    items = data.pop("host", MISSING)
    if items is MISSING:
        raise ConfigError(source, "host", MISSING, "a cluster file needs [[host]] tables")
    if not isinstance(items, list) or not items:
        raise ConfigError(source, "host", items, "must be a non-empty array of tables ([[host]])")
    hosts = []
    for i, table in enumerate(items):
        key = f"host[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(source, key, table, "must be a table")
        for k in table:
            if k not in _HOST_KEYS:
                raise ConfigError(source, f"{key}.{k}", MISSING, f"unknown key (known: {', '.join(_HOST_KEYS)})")
        for k, (kind, required) in _HOST_KEYS.items():
            if k in table:
                _typed(source, f"{key}.{k}", table[k], kind)
            elif required:
                raise ConfigError(source, f"{key}.{k}", MISSING, "missing required key")
        try:
            hosts.append(HostSpec(**table))
        except ValidationError as exc:
            culprit = next((k for k, val in table.items() if str(val) == str(exc.value)), None)
            where = f"{key}.{culprit}" if culprit else key
            raise ConfigError(source, where, exc.value, f"{exc.what}: {exc.rule}") from None
    # what only the hosts together can break, named by their keys (split() checks the same for Python)
    for i, host in enumerate(hosts):
        if host.name in [h.name for h in hosts[:i]]:
            raise ConfigError(source, f"host[{i}].name", host.name, "host name: is used twice")
        if len(hosts) > 1 and host.address is None:
            rule = 'needs an underlay address (it is not an IPv4 address): underlay = "A.B.C.D"'
            raise ConfigError(source, f"host[{i}].ssh", host.ssh, rule)
        if host.address is not None and host.address in [h.address for h in hosts[:i]]:
            key = f"host[{i}].underlay" if host.underlay is not None else f"host[{i}].ssh"
            raise ConfigError(source, key, str(host.address), "underlay address: is used twice")
    return hosts


def from_dict(cls: type[Cluster], data: dict[str, Any], source: str, options: dict[str, Any]) -> Cluster:
    """Build a Cluster from the TOML structure; the network's part is read by Network.from_dict."""
    from netnskit.cluster.cluster import NOWHERE

    rest = copy.deepcopy(data)
    hosts = _hosts(source, rest)
    names = [h.name for h in hosts]
    top = rest.get("network")
    cluster_keys: dict[str, Any] = {}
    if isinstance(top, dict):
        for k, wanted in _NETWORK_KEYS.items():
            if k in top:
                cluster_keys[k] = _typed(source, f"network.{k}", top.pop(k), wanted)
    gateway_host = cluster_keys.get("gateway_host", names[0])
    if gateway_host not in names:
        raise ConfigError(
            source, "network.gateway_host", gateway_host, f"must be one of the hosts ({', '.join(names)})"
        )
    placed: dict[str, list[str | None]] = {}
    for kind in _PLACED:
        tables = rest.get(kind, [])
        placed[kind] = []
        if not isinstance(tables, list):
            continue  # Network.from_dict says what is wrong with it
        for i, table in enumerate(tables):
            host = table.pop("host", None) if isinstance(table, dict) else None
            if host is not None:
                _typed(source, f"{kind}[{i}].host", host, str)
                if host not in names:
                    rule = f"must be one of the hosts ({', '.join(names)})"
                    raise ConfigError(source, f"{kind}[{i}].host", host, rule)
            placed[kind].append(host)
    network = Network.from_dict(rest, source=source, runner=NOWHERE)
    placement: dict[str, str] = {}
    bridged = [ns.name for ns in network.namespaces]
    extras = [x.name for x in network.extra_namespaces]
    for table, spaces in (("namespace", bridged), ("extra_namespace", extras)):
        for space, on in zip(spaces, placed[table], strict=True):
            if on is not None:
                placement[space] = on
    where = {name: placement.get(name, gateway_host) for name in network.namespace_names()}
    for i, (link, on) in enumerate(zip(network.links, placed["link"], strict=True)):
        try:
            found = _link_host(link, where)
        except ValidationError as exc:
            raise ConfigError(source, f"link[{i}]", exc.value, f"{exc.what}: {exc.rule}") from None
        if on is not None and on != found:
            rule = f"must be the host of the namespaces it joins ({found})"
            raise ConfigError(source, f"link[{i}].host", on, rule)
    try:
        return cls(
            network,
            hosts,
            gateway_host=gateway_host,
            placement=placement,
            route_hosts=placed["route"],
            **({"vni": cluster_keys["vni"]} if "vni" in cluster_keys else {}),
            **options,
        )
    except ValidationError as exc:
        if isinstance(exc, ConfigError):
            raise
        key = _find_key(data, exc.value) or "network"
        raise ConfigError(source, key, exc.value, f"{exc.what}: {exc.rule}") from None

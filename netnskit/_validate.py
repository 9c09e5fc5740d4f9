"""Checks for names, addresses and ports, run before any process starts.

Each checker returns the value in its canonical form or raises ValidationError naming the value
and the rule. They are attrs converters/validators as well as plain functions.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from netnskit.errors import ValidationError

IFNAME_MAX = 15  # IFNAMSIZ - 1
NETNS_NAME_MAX = 255  # NAME_MAX: it is a file name under /run/netns

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Printable ASCII only: no look-alikes, no whitespace, no '/', ':' or shell metacharacters.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_NAME_RULE = (
    "use letters, digits, '_', '.' and '-' only, starting with a letter, digit or '_'"
)
PROTOCOLS = ("tcp", "udp")


def _name(what: str, value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise ValidationError(what, value, "must be a string")
    if not value:
        raise ValidationError(what, value, "must not be empty")
    if len(value) > limit:
        raise ValidationError(what, value, f"must be at most {limit} characters, not {len(value)}")
    if value in (".", ".."):
        raise ValidationError(what, value, "must not be '.' or '..'")
    if value.startswith("-"):
        raise ValidationError(what, value, "must not start with '-' (it would be read as an option)")
    if not _NAME.match(value):
        raise ValidationError(what, value, _NAME_RULE)
    return value


def ifname(value: object) -> str:
    """An interface name: 1 to 15 characters of [A-Za-z0-9_.-], not starting with '-' or '.'."""
    return _name("interface name", value, IFNAME_MAX)


def netns_name(value: object) -> str:
    """A namespace name: 1 to 255 characters of [A-Za-z0-9_.-], not '.', '..' or '-...'."""
    return _name("namespace name", value, NETNS_NAME_MAX)


def optional_netns(value: object) -> str | None:
    """A namespace name, or None for the host itself."""
    return None if value is None else netns_name(value)


def ip_address(value: object) -> IPAddress:
    """An IPv4 or IPv6 address without a prefix."""
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    try:
        return ipaddress.ip_address(_text("address", value))
    except ValueError as exc:
        raise ValidationError("address", value, f"must be an IPv4 or IPv6 address ({exc})") from None


def ip_interface(value: object) -> IPInterface:
    """An address with its prefix, like 192.168.15.1/24."""
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return value
    text = _text("address", value)
    if "/" not in text:
        raise ValidationError("address", value, "must carry a prefix length, like 192.168.15.1/24")
    try:
        return ipaddress.ip_interface(text)
    except ValueError as exc:
        raise ValidationError("address", value, f"must be ADDRESS/PREFIX ({exc})") from None


def ip_network(value: object) -> IPNetwork:
    """A subnet, like 192.168.15.0/24, with no host bits set."""
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    text = _text("subnet", value)
    if "/" not in text:
        raise ValidationError("subnet", value, "must carry a prefix length, like 192.168.15.0/24")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ValidationError("subnet", value, f"must be NETWORK/PREFIX with no host bits ({exc})") from None


def route_destination(value: object) -> IPNetwork | str:
    """A route's destination: a subnet, or the word 'default'."""
    if value == "default":
        return "default"
    return ip_network(value)


def port(value: object) -> int:
    """A TCP/UDP port number, 1 to 65535."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("port", value, "must be an integer from 1 to 65535")
    if not 1 <= value <= 65535:
        raise ValidationError("port", value, "must be from 1 to 65535")
    return value


def port_range(value: object) -> tuple[int, int]:
    """A port or an inclusive range: 80, (8000, 8010) or '8000-8010'."""
    if isinstance(value, str) and "-" in value:
        low_text, _, high_text = value.partition("-")
        try:
            low, high = int(low_text), int(high_text)
        except ValueError:
            raise ValidationError("port range", value, "must be LOW-HIGH, like 8000-8010") from None
        value = (low, high)
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ValidationError("port range", value, "must be two ports (low, high)")
        low, high = port(value[0]), port(value[1])
        if low > high:
            raise ValidationError("port range", value, "low port must not exceed high port")
        return (low, high)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    p = port(value)
    return (p, p)


def protocol(value: object) -> str:
    """A transport protocol: 'tcp' or 'udp'."""
    if value not in PROTOCOLS:
        raise ValidationError("protocol", value, "must be 'tcp' or 'udp'")
    return str(value)


def _text(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(what, value, "must be a string")
    if not value.isascii() or not value.isprintable() or value != value.strip():
        raise ValidationError(what, value, "must be printable ASCII without spaces")
    return value


def check(checker: Any) -> Any:
    """Wrap a checker as an attrs validator (the checkers also work as converters)."""

    def validator(instance: object, attribute: Any, value: object) -> None:
        checker(value)

    return validator

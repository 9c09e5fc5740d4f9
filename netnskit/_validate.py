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
# netnskit marks what a network (or a firewall rule's owner) owns with "netnskit:NAME": as a link
# alias (IFALIASZ is 256 bytes with the NUL) and as an iptables comment (XT_MAX_COMMENT_LEN, the
# same): NAME may take what the prefix leaves. (The lock files hash the name: no limit there.)
MARK_MAX = 255
MARKED_NAME_MAX = MARK_MAX - len("netnskit:")  # 246

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Printable ASCII only: no look-alikes, no whitespace, no '/', ':' or shell metacharacters.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_NAME_RULE = "use letters, digits, '_', '.' and '-' only, starting with a letter, digit or '_'"
PROTOCOLS = ("tcp", "udp")
# Words `ip link set NAME ...`, `ip link del NAME` and `ip link add NAME ...` read as a keyword (or
# a keyword abbreviation) instead of the name: found by trying each with iproute2 6.1 in a sandbox
# (tests/unit/test_injection.py). Such a name would fail, or create a link under another name.
_IP_LINK_KEYWORD_TEXT = (
    "a ad add addr addre addres address addrg addrge addrgen addrgenm addrgenmo addrgenmod addrgenmode "
    "al ali alia alias all allmulticast arp b br bro broa broad broadc broadca broadcas broadcast "
    "carrier d default dev down dy dyn dyna dynam dynami dynamic gro_max_size group gso_max_segs "
    "gso_max_size h he hel help index l li lin link link- link-n link-ne link-net link-netn link-netns "
    "link-netnsi link-netnsid m ma mas mast maste master mode mtu multicast n name netns no nom noma "
    "nomas nomast nomaste nomaster nu num numr numrx numrxq numrxqu numrxque numrxqueu numrxqueue "
    "numrxqueues numt numtx numtxq numtxqu numtxque numtxqueu numtxqueue numtxqueues parentdev promisc "
    "protodown state t trailers tx txq txqu txque txqueu txqueue txqueuel txqueuele txqueuelen ty typ "
    "type up vf vrf xdp xdpdrv xdpgeneric xdpoffload"
)
_IP_LINK_KEYWORDS = frozenset(_IP_LINK_KEYWORD_TEXT.split())


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
    """An interface name: 1 to 15 characters of [A-Za-z0-9_.-], not starting with '-' or '.', not an ip keyword."""
    name = _name("interface name", value, IFNAME_MAX)
    if name in _IP_LINK_KEYWORDS:
        raise ValidationError("interface name", value, "is a word `ip link` reads as a keyword; choose another name")
    return name


def netns_name(value: object) -> str:
    """A namespace name: 1 to 255 characters of [A-Za-z0-9_.-], not '.', '..' or '-...'."""
    return _name("namespace name", value, NETNS_NAME_MAX)


def marked_name(value: object, what: str = "network name") -> str:
    """A network's (or a rule owner's) name: 1 to 246 characters of [A-Za-z0-9_.-], so ``netnskit:NAME`` fits."""
    name = _name(what, value, NETNS_NAME_MAX)
    if len(name) > MARKED_NAME_MAX:
        rule = (
            f"must be at most {MARKED_NAME_MAX} characters, not {len(name)}: its mark 'netnskit:NAME' is a "
            f"link alias and a firewall comment, which the kernel limits to {MARK_MAX}"
        )
        raise ValidationError(what, value, rule)
    return name


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


def route_to(value: object) -> IPNetwork | str:
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


# ASCII digits only: int() also takes other scripts' digits ("٨٠"), '_' ("80_00") and spaces
_DIGITS = re.compile(r"[0-9]{1,5}\Z", re.ASCII)
_RANGE = re.compile(r"([0-9]{1,5})-([0-9]{1,5})\Z", re.ASCII)


def port_range(value: object) -> tuple[int, int]:
    """A port or an inclusive range: 80, (8000, 8010), '80' or '8000-8010' (ASCII digits only)."""
    given = value  # errors name the value as written, not its parsed form
    if isinstance(value, str):
        whole = _RANGE.match(value)
        if whole is None and not _DIGITS.match(value):
            rule = "must be PORT or LOW-HIGH in ASCII digits, without spaces, like 80 or 8000-8010"
            raise ValidationError("port range" if "-" in value else "port", value, rule)
        value = (int(whole.group(1)), int(whole.group(2))) if whole else int(value)
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ValidationError("port range", value, "must be two ports (low, high)")
        low, high = port(value[0]), port(value[1])
        if low > high:
            raise ValidationError("port range", given, "low port must not exceed high port")
        return (low, high)
    p = port(value)
    return (p, p)


LINK_GROUP_MAX = 2**32 - 1  # a u32


def link_group(value: object) -> int:
    """A link group: an integer from 1 to 2**32-1 (0 is ``default``, the group every link starts in)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= LINK_GROUP_MAX:
        rule = f"must be an integer from 1 to {LINK_GROUP_MAX} (0 is the default group every link is in)"
        raise ValidationError("link group", value, rule)
    return value


def optional_link_group(value: object) -> int | None:
    """A link group, or None for none given."""
    return None if value is None else link_group(value)


MTU_MIN, MTU_MAX = 68, 65535  # IPv4's minimum; the largest a veth or bridge takes


def mtu(value: object) -> int:
    """A link MTU: an integer from 68 to 65535."""
    if isinstance(value, bool) or not isinstance(value, int) or not MTU_MIN <= value <= MTU_MAX:
        raise ValidationError("MTU", value, f"must be an integer from {MTU_MIN} to {MTU_MAX}")
    return value


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

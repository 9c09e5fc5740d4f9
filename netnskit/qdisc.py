"""Links that misbehave on purpose: an :class:`Impairment` (delay, loss, rate...) and the ``tc`` commands that apply it.

An impairment acts on what an interface *sends* (its egress): ``tc qdisc add dev DEV root ...``.
A network impairs both ends of a cable, so each direction gets it once (a 50 ms delay gives a
100 ms round trip). Rate is always ``tbf`` (built into every kernel, and the one rate path this
project could measure); delay, jitter, duplication, reordering, corruption and loss are ``netem``
(the kernel module ``sch_netem``). A kernel without netem still takes a rate, and loss by a random
drop in netfilter (:class:`NetfilterLoss`, ``-m statistic --mode random``); the rest is refused
before anything changes (:class:`~netnskit.errors.UnsupportedError`). :func:`probe_netem` asks
the kernel itself, in a throwaway network namespace.

Values are written as ``tc`` writes them: times ``50ms``, ``500us``, ``1.5s``; percentages
``5%``; rates ``10mbit``, ``512kbit``, ``1gbit`` (or bytes per second: ``1mbps``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from netnskit import _validate as v
from netnskit.commands import NET
from netnskit.errors import CommandNotFoundError, NetnskitError, UnsupportedError, ValidationError
from netnskit.firewall.iptables import Backend
from netnskit.firewall.rules import Rule
from netnskit.plan import Batchable, Command, Resource
from netnskit.runner import Runner

__all__ = [
    "DIRECTIONS",
    "DISTRIBUTIONS",
    "NETEM_KEYS",
    "NETEM_PROBE",
    "Impairment",
    "NetemSupport",
    "NetfilterLoss",
    "QdiscInfo",
    "TcImpairment",
    "delete_command",
    "format_percent",
    "format_rate",
    "format_time",
    "loss_rules",
    "netem_refusal",
    "observed",
    "parse_percent",
    "parse_qdiscs",
    "parse_rate",
    "parse_time",
    "probe_netem",
    "qdiscs",
    "rule_command",
    "rule_loss",
    "same",
    "tc",
]

DIRECTIONS = ("both", "out", "in")
DISTRIBUTIONS = ("normal", "pareto", "paretonormal")  # the tables iproute2 ships; uniform is netem's default
# What only netem can do: refused on a kernel without it (loss alone is not here: netfilter does it)
NETEM_KEYS = ("delay", "jitter", "distribution", "loss_correlation", "duplicate", "reorder", "corrupt")

ROOT_HANDLE = "1:"  # the root qdisc netnskit makes (tbf alone, or netem)
CHILD_HANDLE = "10:"  # tbf under netem, in netem's one class 1:1
TBF_LATENCY = "50ms"  # how long a packet may wait in tbf's queue (its limit, in time)
TBF_MIN_BURST = 15140  # bytes: ten full Ethernet frames
_BURST_PER_SECOND = 250  # burst: at least 4 ms at the rate (HZ=250's tick), for fast links

# --- units, as tc writes them -------------------------------------------------------------------

_NUMBER = r"(\d+(?:\.\d+)?)"
_TIME = re.compile(_NUMBER + r"(us|usec|usecs|ms|msec|msecs|s|sec|secs)\Z")
_TIME_SCALE = {"us": 1, "ms": 1000, "s": 1_000_000}
_TIME_UNITS = {"usec": "us", "usecs": "us", "msec": "ms", "msecs": "ms", "sec": "s", "secs": "s"}  # tc's long forms
_PERCENT = re.compile(_NUMBER + r"%\Z")
_RATE = re.compile(_NUMBER + r"(bit|kbit|mbit|gbit|tbit|bps|kbps|mbps|gbps|tbps)\Z", re.IGNORECASE)
_RATE_SCALE = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_TIME_RULE = "must be a time as tc writes it: a number and us, ms or s, like 50ms"
_PERCENT_RULE = "must be a percentage as tc writes it, more than 0% and at most 100%, like 5% or 0.5%"
_RATE_RULE = (
    "must be a rate as tc writes it: a number and bit, kbit, mbit, gbit (or bps, kbps, mbps for bytes), like 10mbit"
)


def parse_time(key: str, value: object) -> int:
    """A time as tc writes it (``50ms``, ``500us``, ``1.5s``) in whole microseconds, more than 0."""
    found = _TIME.match(value) if isinstance(value, str) else None
    if found is None:
        raise ValidationError(key, value, _TIME_RULE)
    micros = Decimal(found.group(1)) * _TIME_SCALE[_TIME_UNITS.get(found.group(2), found.group(2))]
    if micros != micros.to_integral_value():
        raise ValidationError(key, value, "must be a whole number of microseconds")
    if micros <= 0:
        raise ValidationError(key, value, "must be more than 0 (leave the key out for none)")
    return int(micros)


def format_time(micros: int) -> str:
    """Microseconds as tc reads them: ``2s``, ``50ms``, ``1500us``."""
    for unit in ("s", "ms"):
        scale = _TIME_SCALE[unit]
        if micros % scale == 0:
            return f"{micros // scale}{unit}"
    return f"{micros}us"


def parse_percent(key: str, value: object) -> Decimal:
    """A percentage as tc writes it (``5%``, ``0.5%``): more than 0, at most 100, 4 decimals at most."""
    found = _PERCENT.match(value) if isinstance(value, str) else None
    if found is None:
        raise ValidationError(key, value, _PERCENT_RULE)
    number = Decimal(found.group(1))
    if not 0 < number <= 100:
        raise ValidationError(key, value, _PERCENT_RULE)
    if -number.as_tuple().exponent > 4:  # type: ignore[operator]
        # the kernel keeps a percentage as a 32-bit fraction: 4 decimals read back exactly
        raise ValidationError(key, value, "must have at most 4 decimals, like 0.0001%")
    return number


def format_percent(number: Decimal) -> str:
    """A percentage as tc reads it: ``5%``, ``0.5%``."""
    return _plain(number) + "%"


def _plain(number: Decimal) -> str:
    return format(number.normalize(), "f")


def parse_rate(key: str, value: object) -> int:
    """A rate as tc writes it (``10mbit``, ``512kbit``, ``1mbps``) in bits per second, a whole number of bytes."""
    found = _RATE.match(value) if isinstance(value, str) else None
    if found is None:
        raise ValidationError(key, value, _RATE_RULE)
    unit = found.group(2).lower()
    bytes_unit = unit.endswith("bps")
    scale = _RATE_SCALE[unit[:-3]] * (8 if bytes_unit else 1)  # "mbit" -> "m", "mbps" -> "m" (bytes)
    bits = Decimal(found.group(1)) * scale
    if bits <= 0:
        raise ValidationError(key, value, "must be more than 0 (leave the key out for none)")
    if bits % 8 != 0:
        # tc and the kernel keep a rate in bytes per second
        raise ValidationError(key, value, "must be a whole number of bytes per second (a multiple of 8bit)")
    return int(bits)


def format_rate(bits: int) -> str:
    """Bits per second as tc reads them: ``8mbit``, ``1500kbit``, ``64bit``."""
    for prefix in ("t", "g", "m", "k"):
        scale = _RATE_SCALE[prefix]
        if bits % scale == 0:
            return f"{bits // scale}{prefix}bit"
    return f"{bits}bit"


def _canonical(parse: Any, fmt: Any, key: str, value: object) -> str | None:
    # stored as tc's own canonical text, so equal values compare equal ("0.05s" == "50ms")
    return None if value is None else str(fmt(parse(key, value)))


def _field(parse: Any, fmt: Any, key: str) -> Any:
    return attrs.field(default=None, converter=functools.partial(_canonical, parse, fmt, key), kw_only=True)


def _distribution(value: object) -> str | None:
    if value is None or value in DISTRIBUTIONS:
        return None if value is None else str(value)
    rule = f"must be one of {', '.join(DISTRIBUTIONS)} (uniform is netem's default: leave the key out)"
    raise ValidationError("impair distribution", value, rule)


def _direction(value: object) -> str:
    if value not in DIRECTIONS:
        rule = "must be both, out (what the namespace or the link's first end sends) or in (what it receives)"
        raise ValidationError("impair direction", value, rule)
    return str(value)


_VALUE_KEYS = ("delay", "jitter", "distribution", "loss", "loss_correlation", "duplicate", "reorder", "corrupt", "rate")


@attrs.frozen
class Impairment:
    """What to do to a link's traffic, each value as tc writes it (stored in tc's canonical form).

    ``delay`` and ``jitter`` (times), ``distribution`` of the jitter, ``loss`` and its
    ``loss_correlation``, ``duplicate``, ``reorder`` and ``corrupt`` (percentages), ``rate`` (a
    rate); ``direction``: ``both`` (default), ``out`` or ``in`` (see :data:`DIRECTIONS`).
    """

    delay: str | None = _field(parse_time, format_time, "impair delay")
    jitter: str | None = _field(parse_time, format_time, "impair jitter")
    distribution: str | None = attrs.field(default=None, converter=_distribution, kw_only=True)
    loss: str | None = _field(parse_percent, format_percent, "impair loss")
    loss_correlation: str | None = _field(parse_percent, format_percent, "impair loss_correlation")
    duplicate: str | None = _field(parse_percent, format_percent, "impair duplicate")
    reorder: str | None = _field(parse_percent, format_percent, "impair reorder")
    corrupt: str | None = _field(parse_percent, format_percent, "impair corrupt")
    rate: str | None = _field(parse_rate, format_rate, "impair rate")
    direction: str = attrs.field(default="both", converter=_direction, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if not self.values():
            raise ValidationError("impair", {}, f"must set at least one of {', '.join(_VALUE_KEYS)}")
        needs = (("jitter", "delay"), ("distribution", "jitter"), ("loss_correlation", "loss"), ("reorder", "delay"))
        for key, other in needs:
            if getattr(self, key) is not None and getattr(self, other) is None:
                # netem: jitter varies a delay, reordering sends some packets without the delay
                raise ValidationError(f"impair {key}", getattr(self, key), f"needs {other} as well")

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> Impairment:
        """From a mapping of the keys (an ``impair = {...}`` table); an unknown key is rejected."""
        known = (*_VALUE_KEYS, "direction")
        for key in values:
            if key not in known:
                raise ValidationError("impair key", key, f"unknown (known: {', '.join(known)})")
        return cls(**values)  # type: ignore[arg-type]

    def values(self) -> dict[str, str]:
        """The keys that are set, as tc writes them (``direction`` left out)."""
        return {k: value for k in _VALUE_KEYS if (value := getattr(self, k)) is not None}

    def as_dict(self) -> dict[str, str]:
        """The keys that are set, ``direction`` too when not ``both``: the ``impair`` table."""
        out = self.values()
        if self.direction != "both":
            out["direction"] = self.direction
        return out

    def describe(self) -> str:
        """``delay 50ms jitter 5ms loss 1%``, and the direction when it is not both."""
        words = " ".join(f"{k.replace('_', ' ')} {value}" for k, value in self.values().items())
        return words if self.direction == "both" else f"{words} ({self.direction} only)"

    def netem_keys(self, *, loss_elsewhere: bool) -> list[str]:
        """The keys set that only netem does (loss too, unless ``loss_elsewhere``: netfilter)."""
        keys = [k for k in NETEM_KEYS if getattr(self, k) is not None]
        if self.loss is not None and not loss_elsewhere:
            keys.insert(keys.index("loss_correlation") if "loss_correlation" in keys else len(keys), "loss")
        return keys

    def egress(self, *, netem: bool) -> Impairment | None:
        """What one end applies to what it sends: without direction, and without loss when ``netem`` is False."""
        values = self.values()
        if not netem:
            values.pop("loss", None)
        return Impairment(**values) if values else None

    # --- numbers ------------------------------------------------------------------------------

    @property
    def rate_bits(self) -> int | None:
        """The rate in bits per second."""
        return None if self.rate is None else parse_rate("rate", self.rate)


def _get(values: Mapping[str, Any], *path: str) -> Any:
    found: Any = values
    for key in path:
        found = found.get(key) if isinstance(found, Mapping) else None
    return found


# --- tc commands --------------------------------------------------------------------------------


def tc(netns: str | None, *words: str, creates: Iterable[Resource] = (), removes: Iterable[Resource] = ()) -> Command:
    """``tc WORDS...`` in ``netns`` (None: the host): the place's ``net`` channel, a ``tc -batch -`` line."""
    return Command(
        ("tc", *words),
        netns=netns,
        tool="tc",
        channel=NET,
        # every word netnskit writes is a plain token (names are checked, values canonical)
        batch=Batchable(("tc",), " ".join(words)),
        creates=tuple(creates),
        removes=tuple(removes),
    )


def _burst(bits: int) -> int:
    return max(TBF_MIN_BURST, bits // 8 // _BURST_PER_SECOND)


@attrs.frozen
class TcImpairment:
    """An :class:`Impairment` on what one interface sends: its ``tc qdisc`` commands and their undo.

    ``netem`` says whether this kernel has the netem qdisc: without it only the rate is applied
    here (loss goes to :class:`NetfilterLoss`; the rest is refused by :meth:`check`).
    """

    dev: str = attrs.field(converter=v.ifname)
    netns: str | None = attrs.field(default=None, converter=v.optional_netns)
    impairment: Impairment = attrs.field(validator=attrs.validators.instance_of(Impairment), kw_only=True)
    netem: bool = attrs.field(default=True, kw_only=True)

    def _resource(self) -> Resource:
        return Resource("qdisc", f"root dev {self.dev}", self.netns)

    def netem_words(self) -> list[str]:
        """The netem options (empty when the impairment has nothing for netem here)."""
        imp = self.impairment
        words: list[str] = []
        if imp.delay is not None:
            words += ["delay", imp.delay, *([imp.jitter] if imp.jitter is not None else [])]
            if imp.distribution is not None:
                words += ["distribution", imp.distribution]
        if imp.loss is not None and self.netem:
            words += ["loss", "random", imp.loss, *([imp.loss_correlation] if imp.loss_correlation else [])]
        for key in ("duplicate", "reorder", "corrupt"):
            value = getattr(imp, key)
            if value is not None:
                words += [key, value]
        return words

    def tbf_words(self) -> list[str]:
        """The tbf options: the rate, a burst of max(10 frames, 4 ms at the rate) and a 50 ms queue."""
        bits = self.impairment.rate_bits
        if bits is None:
            return []
        return ["rate", format_rate(bits), "burst", str(_burst(bits)), "latency", TBF_LATENCY]

    def add_commands(self) -> list[Command]:
        """``tc qdisc add dev DEV root handle 1: netem ...`` and/or ``... tbf rate ...`` (empty: nothing to apply)."""
        netem, tbf = self.netem_words(), self.tbf_words()
        made = [self._resource()]
        if netem and tbf:
            # delay first, then the bottleneck: tbf in netem's one class
            root = ["root", "handle", ROOT_HANDLE, "netem", *netem]
            child = ["parent", "1:1", "handle", CHILD_HANDLE, "tbf", *tbf]
            return [
                tc(self.netns, "qdisc", "add", "dev", self.dev, *root, creates=made),
                tc(self.netns, "qdisc", "add", "dev", self.dev, *child),
            ]
        if netem or tbf:
            kind = ["netem", *netem] if netem else ["tbf", *tbf]
            return [tc(self.netns, "qdisc", "add", "dev", self.dev, "root", "handle", ROOT_HANDLE, *kind, creates=made)]
        return []

    def delete_command(self) -> Command:
        """``tc qdisc del dev DEV root``: the interface goes back to its default qdisc."""
        return delete_command(self.dev, self.netns)

    def add_argvs(self) -> list[list[str]]:
        """The argv of each :meth:`add_commands` command, as run from the host."""
        return [c.host_argv() for c in self.add_commands()]

    def delete_argv(self) -> list[str]:
        """``tc qdisc del dev DEV root``, as run from the host."""
        return self.delete_command().host_argv()


def delete_command(dev: str, netns: str | None) -> Command:
    """``tc qdisc del dev DEV root``: whatever root qdisc DEV has goes (with its children)."""
    gone = Resource("qdisc", f"root dev {v.ifname(dev)}", v.optional_netns(netns))
    return tc(netns, "qdisc", "del", "dev", dev, "root", removes=[gone])


# --- loss without netem: a random drop in netfilter ---------------------------------------------

_STATISTIC = ("-m", "statistic", "--mode", "random", "--probability")


def _probability(fraction: Decimal) -> str:
    return _plain(fraction)


@attrs.frozen
class NetfilterLoss:
    """Loss on an interface without netem: ``-m statistic --mode random`` DROP rules in its namespace's netfilter.

    ``inbound`` drops what ``dev`` receives (raw PREROUTING, before anything else sees it),
    ``outbound`` what it sends (mangle POSTROUTING: the namespace's own packets and those it
    forwards). Both are percentages as tc writes them, or None. Each rule carries ``comment``.
    """

    dev: str = attrs.field(converter=v.ifname)
    netns: str = attrs.field(converter=v.netns_name)
    inbound: str | None = _field(parse_percent, format_percent, "impair loss")
    outbound: str | None = _field(parse_percent, format_percent, "impair loss")
    comment: str = attrs.field(default="netnskit", kw_only=True)
    backend: Backend = attrs.field(factory=Backend, kw_only=True)

    def rules(self) -> list[Rule]:
        """The DROP rules: raw PREROUTING ``-i DEV`` and mangle POSTROUTING ``-o DEV``, as set."""
        out = []
        for value, table, chain, flag in (
            (self.inbound, "raw", "PREROUTING", "-i"),
            (self.outbound, "mangle", "POSTROUTING", "-o"),
        ):
            if value is not None:
                chance = _probability(parse_percent("loss", value) / 100)
                spec = [flag, self.dev, *_STATISTIC, chance, "-m", "comment", "--comment", self.comment, "-j", "DROP"]
                out.append(Rule(4, table, chain, spec))
        return out

    def add_commands(self) -> list[Command]:
        """``iptables -w -t TABLE -A CHAIN ...`` in the namespace; batched into one ``iptables-restore``."""
        return [rule_command(rule, self.netns, "-A", self.backend) for rule in self.rules()]

    def delete_commands(self) -> list[Command]:
        """``iptables -w -t TABLE -D CHAIN ...`` in the namespace."""
        return [rule_command(rule, self.netns, "-D", self.backend) for rule in self.rules()]


def rule_command(rule: Rule, netns: str, action: str, backend: Backend | None = None) -> Command:
    """``rule`` added (``-A``) or deleted (``-D``) in namespace ``netns``: a line of its table's restore there."""
    command = rule.command(backend or Backend(), action)
    me = (Resource("rule", f"{rule.table} {rule.chain} {' '.join(rule.spec)}", netns),)
    return attrs.evolve(
        command,
        netns=netns,
        creates=me if action == "-A" else (),
        removes=me if action == "-D" else (),
    )


def loss_rules(rules: Iterable[Rule], dev: str, comment: str) -> list[Rule]:
    """The random-drop rules of ``rules`` (an ``iptables-save``, parsed) on ``dev`` carrying ``comment``."""
    found = []
    for rule in rules:
        words = list(rule.spec)
        on_dev = (rule.table, rule.chain, words[:2]) in (
            ("raw", "PREROUTING", ["-i", dev]),
            ("mangle", "POSTROUTING", ["-o", dev]),
        )
        if on_dev and rule.comment == comment and "statistic" in words and "DROP" in words:
            found.append(rule)
    return found


def rule_loss(rule: Rule) -> str | None:
    """The percentage a random-drop rule drops (from ``--probability``), as tc writes it."""
    words = list(rule.spec)
    if "--probability" not in words:
        return None
    try:
        fraction = Decimal(words[words.index("--probability") + 1])
    except (IndexError, InvalidOperation):
        return None
    # iptables keeps the chance as a 31-bit fraction: 0.2 reads back as 0.20000000019
    return format_percent(round(fraction * 100, 4))


# --- what the kernel applies --------------------------------------------------------------------


@attrs.frozen
class QdiscInfo:
    """One qdisc as ``tc -j qdisc show`` reports it."""

    dev: str
    kind: str
    handle: str
    parent: str | None
    root: bool
    options: dict[str, Any] = attrs.field(eq=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QdiscInfo:
        """Parse one entry of ``tc -j qdisc show``."""
        return cls(
            dev=str(data.get("dev", "")),
            kind=str(data.get("kind", "")),
            handle=str(data.get("handle", "")),
            parent=data.get("parent"),
            root=bool(data.get("root", False)),
            options=dict(data.get("options") or {}),
        )

    @property
    def configured(self) -> bool:
        """True for a qdisc someone set (a handle), not the interface's default (handle ``0:``)."""
        return self.root and self.handle not in ("0:", "")

    def describe(self) -> str:
        """The qdisc as tc would be told it: ``tbf rate 8mbit burst 15140b lat 50ms``, ``netem delay 50ms``."""
        words = [self.kind]
        opts = self.options
        if self.kind == "tbf":
            if isinstance(opts.get("rate"), int):
                words += ["rate", format_rate(int(opts["rate"]) * 8)]
            if isinstance(opts.get("burst"), int):
                words += ["burst", f"{opts['burst']}b"]
            if isinstance(opts.get("lat"), int):
                words += ["lat", format_time(int(opts["lat"]))]
        elif self.kind == "netem":
            found = _netem_values(opts)
            words += [f"{k.replace('_', ' ')} {value}" for k, value in found.items()]
        return " ".join(words)


def _seconds(value: object) -> str | None:
    if not isinstance(value, int | float) or value <= 0:
        return None
    return format_time(max(1, round(Decimal(str(value)) * 1_000_000)))


def _fraction(value: object) -> str | None:
    if not isinstance(value, int | float) or value <= 0:
        return None
    return format_percent(round(Decimal(str(value)) * 100, 4))


def _netem_values(opts: Mapping[str, Any]) -> dict[str, str]:
    """The netem options tc -j reports (seconds and fractions), as Impairment values."""
    found = {
        "delay": _seconds(_get(opts, "delay", "delay")),
        "jitter": _seconds(_get(opts, "delay", "jitter")),
        "loss": _fraction(_get(opts, "loss-random", "loss")),
        "loss_correlation": _fraction(_get(opts, "loss-random", "correlation")),
        "duplicate": _fraction(_get(opts, "duplicate", "duplicate")),
        "reorder": _fraction(_get(opts, "reorder", "reorder")),
        "corrupt": _fraction(_get(opts, "corrupt", "corrupt")),
    }
    rate = _get(opts, "rate", "rate")
    if isinstance(rate, int) and rate > 0:
        found["rate"] = format_rate(rate * 8)
    return {k: value for k, value in found.items() if value is not None}


def observed(entries: Sequence[QdiscInfo], dev: str) -> Impairment | None:
    """What the qdiscs of ``dev`` netnskit made amount to (tbf root, netem root, tbf under netem), else None.

    The distribution of a jitter is not reported by the kernel: it cannot be compared.
    """
    mine = [q for q in entries if q.dev == dev]
    root = next((q for q in mine if q.root), None)
    if root is None or root.handle != ROOT_HANDLE or root.kind not in ("tbf", "netem"):
        return None
    values: dict[str, str] = {}
    if root.kind == "tbf":
        rate = root.options.get("rate")
        if isinstance(rate, int) and rate > 0:
            values["rate"] = format_rate(rate * 8)
    else:
        values.update(_netem_values(root.options))
        child = next((q for q in mine if q.parent == "1:1" and q.kind == "tbf"), None)
        if child is not None and isinstance(child.options.get("rate"), int):
            values["rate"] = format_rate(int(child.options["rate"]) * 8)
    try:
        return Impairment(**values) if values else None
    except ValidationError:
        return None  # something netnskit would not have written (a jitter without a delay...)


def same(kernel: Impairment | None, wanted: Impairment | None) -> bool:
    """Does what the kernel applies match what is wanted (the distribution, which tc does not report, aside)?"""
    if kernel is None or wanted is None:
        return kernel is wanted
    return kernel == attrs.evolve(wanted, distribution=None, direction="both")


def qdiscs(runner: Runner, netns: str | None = None) -> list[QdiscInfo]:
    """Every qdisc on the host or in ``netns``: ``tc -j qdisc show``."""
    result = runner.run(["tc", "-j", "qdisc", "show"], netns=netns)
    text = result.check(f"reading the qdiscs of {netns or 'the host'}").stdout.strip()
    return parse_qdiscs(text)


def parse_qdiscs(text: str) -> list[QdiscInfo]:
    """The entries of ``tc -j qdisc show`` output."""
    if not text:
        return []
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise NetnskitError(f"tc printed something that is not JSON: {text[:200]!r}") from exc
    return [QdiscInfo.from_json(d) for d in data if isinstance(d, dict)] if isinstance(data, list) else []


# --- does this kernel have netem? ---------------------------------------------------------------

# Run through the runner: tc adds netem to lo in a network namespace of its own, which goes with
# the process: nothing is left anywhere, whatever happens.
NETEM_PROBE = ("unshare", "--net", "--", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms")
_MODINFO = ("modinfo", "-F", "filename", "sch_netem")


@attrs.frozen
class NetemSupport:
    """Whether the kernel has the netem qdisc (None: the probe could not tell), and what it said."""

    available: bool | None
    detail: str = ""

    @property
    def usable(self) -> bool:
        """Plan with netem unless the kernel said it has none."""
        return self.available is not False


def probe_netem(runner: Runner) -> NetemSupport:
    """Ask the kernel: add a netem qdisc in a throwaway network namespace (``unshare --net``)."""
    try:
        result = runner.run(NETEM_PROBE)
    except CommandNotFoundError as exc:
        return NetemSupport(None, str(exc))
    if result.ok:
        return NetemSupport(True, "tc added a netem qdisc in a throwaway namespace")
    said = " ".join((result.stderr.strip() or result.stdout.strip()).split())
    if "unknown" not in said.lower():
        return NetemSupport(None, f"the probe `{' '.join(NETEM_PROBE)}` failed: {said}")
    return NetemSupport(False, f"tc: {said}; {_modinfo(runner)}")


def _modinfo(runner: Runner) -> str:
    try:
        found = runner.run(_MODINFO)
    except CommandNotFoundError:
        return "modinfo is not installed (kmod), so whether a module file exists is unknown"
    if found.returncode == 127:
        return "modinfo is not installed (kmod), so whether a module file exists is unknown"
    if found.ok and found.stdout.strip():
        where = found.stdout.strip()
        return f"the module file is there ({where}) but did not load"
    return "modinfo: no sch_netem module for this kernel (CONFIG_NET_SCH_NETEM is not set)"


def netem_refusal(what: str, keys: Sequence[str], impairment: Impairment, support: NetemSupport) -> UnsupportedError:
    """The error for ``keys`` of ``impairment`` (on ``what``) that need netem, on a kernel without it."""
    values = ", ".join(f"{k} = {getattr(impairment, k)!r}" for k in keys)
    reason = (
        f"needs the kernel's netem qdisc (module sch_netem), which this kernel does not have ({support.detail}). "
        "Load it with `modprobe sch_netem`; it ships with the kernel: Debian's linux-image-* package, "
        "on Ubuntu linux-modules-extra-$(uname -r). What works on this kernel: rate (tbf) and loss "
        "(a random drop in netfilter)"
    )
    return UnsupportedError(what, values, reason)

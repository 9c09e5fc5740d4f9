"""A network's impairments: each cable's ``tc`` qdiscs and netfilter loss, what the kernel applies, the steps between.

A cable (a namespace on the bridge, or a ``[[link]]``: :class:`~netnskit.network.spec.Cable`) is
impaired on what each of its ends sends, so each direction gets the impairment once. Where the
kernel has no netem, loss is a random drop in the netfilter of the cable's namespace end, and
what only netem does is refused before anything changes.

The steps are built from what the kernel applies now (:class:`CableState`, read with
``tc -j qdisc show`` and ``iptables-save``): a qdisc or rule that differs from what is wanted is
deleted, then the wanted one added; on a clean host (``state=None``) only the additions remain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from netnskit.errors import CommandNotFoundError, NetnskitError, NotFoundError
from netnskit.firewall.iptables import Backend
from netnskit.firewall.rules import Rule, SavedRules
from netnskit.network.spec import Cable, cables
from netnskit.plan import Step
from netnskit.qdisc import (
    Impairment,
    NetemSupport,
    NetfilterLoss,
    QdiscInfo,
    TcImpairment,
    delete_command,
    loss_rules,
    netem_refusal,
    observed,
    parse_qdiscs,
    rule_command,
    rule_loss,
    same,
)
from netnskit.runner import Runner

if TYPE_CHECKING:
    from netnskit.network.network import Network

End = tuple[str | None, str]
DEFAULT_QDISCS = frozenset({"noqueue", "noop"})  # what a veth has before anyone sets one (ip link's "qdisc")


@attrs.frozen
class EndState:
    """What the kernel applies to what one end sends: its qdiscs, and what netnskit's among them amount to."""

    exists: bool
    qdiscs: tuple[QdiscInfo, ...] = ()  # as tc reported them (empty when not read)
    configured: bool = False  # a root qdisc is set (by netnskit or anyone), not the interface's default
    applies: Impairment | None = None  # what netnskit's qdiscs there apply (None: none of ours)

    @classmethod
    def read(cls, exists: bool, qdiscs: Sequence[QdiscInfo], dev: str) -> EndState:
        """From what ``tc -j qdisc show`` reports for ``dev``."""
        mine = tuple(q for q in qdiscs if q.dev == dev)
        root = next((q for q in mine if q.root), None)
        return cls(exists, mine, root is not None and root.configured, observed(mine, dev))

    @classmethod
    def after(cls, want: Impairment | None) -> EndState:
        """The end once :func:`cable_steps` gave it ``want`` (known without reading it again)."""
        return cls(True, (), want is not None, want)


@attrs.frozen
class CableState:
    """What the kernel applies to one cable: each end's qdiscs, and the loss rules in its namespace end."""

    ends: tuple[EndState, EndState]
    rules: tuple[Rule, ...] = ()

    @classmethod
    def after(cls, cable: Cable, imp: Impairment | None, *, netem: bool, comment: str) -> CableState:
        """The cable once :func:`cable_steps` took it to ``imp``: a fault schedule's next change needs no read."""
        first, second = wanted_egress(cable, imp, netem)
        loss = wanted_loss(cable, imp, netem, comment)
        return cls((EndState.after(first), EndState.after(second)), tuple(loss.rules()) if loss is not None else ())


def _loss_by_netfilter(imp: Impairment | None, netem: bool) -> bool:
    return imp is not None and imp.loss is not None and not netem


def wanted_egress(cable: Cable, imp: Impairment | None, netem: bool) -> tuple[Impairment | None, Impairment | None]:
    """What each end's qdiscs should apply to what it sends (``out``: end 0 only, ``in``: end 1 only)."""
    if imp is None:
        return (None, None)
    each = imp.egress(netem=netem)
    return (
        each if imp.direction in ("both", "out") else None,
        each if imp.direction in ("both", "in") else None,
    )


def wanted_loss(cable: Cable, imp: Impairment | None, netem: bool, comment: str) -> NetfilterLoss | None:
    """The netfilter loss rules the cable needs (only where the kernel has no netem), at its namespace end."""
    if imp is None or not _loss_by_netfilter(imp, netem):
        return None
    where, dev = cable.ends[cable.loss_end]
    assert where is not None  # a cable's loss end is always in a namespace
    # what end k sends leaves the loss end (outbound) when k is the loss end, else arrives there
    sends = {0: imp.direction in ("both", "out"), 1: imp.direction in ("both", "in")}
    out_loss = imp.loss if sends[cable.loss_end] else None
    in_loss = imp.loss if sends[1 - cable.loss_end] else None
    return NetfilterLoss(dev, where, inbound=in_loss, outbound=out_loss, comment=comment)


def how(imp: Impairment | None, netem: NetemSupport | bool) -> str:
    """How an impairment is applied here: ``tc netem/tbf`` and, without netem, ``loss by netfilter``."""
    usable = netem.usable if isinstance(netem, NetemSupport) else netem
    if imp is None:
        return ""
    parts = []
    tc_kinds = []
    egress = imp.egress(netem=usable)
    if egress is not None:
        if egress.netem_keys(loss_elsewhere=False):
            tc_kinds.append("netem")
        if egress.rate is not None:
            tc_kinds.append("tbf")
        parts.append("tc " + "+".join(tc_kinds))
    if _loss_by_netfilter(imp, usable):
        parts.append("loss by a random drop in netfilter (this kernel has no netem)")
    return "; ".join(parts)


def refuse_unsupported(items: Iterable[tuple[str, Impairment | None]], support: NetemSupport) -> None:
    """Raise UnsupportedError for the first impairment that needs netem, on a kernel without it."""
    if support.available is not False:
        return
    for what, imp in items:
        if imp is None:
            continue
        keys = imp.netem_keys(loss_elsewhere=True)
        if keys:
            raise netem_refusal(what, keys, imp, support)


def needs_probe(imps: Iterable[Impairment | None]) -> bool:
    """True when how to apply these impairments depends on the kernel having netem (loss, or netem's own keys)."""
    return any(imp is not None and (imp.loss is not None or imp.netem_keys(loss_elsewhere=True)) for imp in imps)


# --- steps ------------------------------------------------------------------------------------


def cable_steps(
    cable: Cable,
    imp: Impairment | None,
    *,
    netem: bool,
    comment: str,
    state: CableState | None,
) -> list[tuple[Step, bool]]:
    """(step, already done) pairs that take the cable from ``state`` (None: a clean cable) to ``imp``."""
    out: list[tuple[Step, bool]] = []
    egress = wanted_egress(cable, imp, netem)
    for k, (end, want) in enumerate(zip(cable.ends, egress, strict=True)):
        where, dev = end
        now = state.ends[k] if state is not None else EndState(False)
        current = now.applies  # None: no qdisc of netnskit's there
        text = Cable.end_text(end)
        if want is None:
            if current is None:
                continue  # nothing of ours (someone else's qdisc stays)
            description = f"impair {cable.describe()}: {text} sends unimpaired (its qdisc removed)"
            out.append((Step(description, [delete_command(dev, where)], []), False))
            continue
        shaper = TcImpairment(dev, where, impairment=want, netem=netem)
        done = same(current, want)
        # whatever root qdisc is there goes first: tc cannot turn a qdisc into another kind in place
        do = [] if done else [*([delete_command(dev, where)] if now.configured else []), *shaper.add_commands()]
        kinds = "+".join(kind for kind in ("netem", "tbf") if _uses(want, kind))
        description = f"impair {cable.describe()}: {text} sends with {want.describe()} (tc {kinds})"
        out.append((Step(description, do, [shaper.delete_command()]), done))
    loss = wanted_loss(cable, imp, netem, comment)
    present = state.rules if state is not None else ()
    wanted_rules = loss.rules() if loss is not None else []
    if loss is not None or present:
        where, dev = cable.ends[cable.loss_end]
        assert where is not None
        done = _rule_key(present) == _rule_key(wanted_rules)
        do = [] if done else [rule_command(r, where, "-D") for r in present]
        if loss is not None:
            do += [] if done else loss.add_commands()
            directions = ", ".join(
                f"{value} of what it {verb}"
                for value, verb in ((loss.inbound, "receives"), (loss.outbound, "sends"))
                if value is not None
            )
            description = (
                f"impair {cable.describe()}: drop {directions} on {dev} in {where} "
                "(netfilter -m statistic: this kernel has no netem)"
            )
        else:
            description = f"impair {cable.describe()}: remove the netfilter loss rules on {dev} in {where}"
        out.append((Step(description, do, loss.delete_commands() if loss is not None else []), done))
    return out


def _uses(imp: Impairment, kind: str) -> bool:
    if kind == "tbf":
        return imp.rate is not None
    return bool(imp.netem_keys(loss_elsewhere=False))


def _rule_key(rules: Iterable[Rule]) -> list[tuple[str, str, str | None]]:
    return sorted((r.table, r.chain, rule_loss(r)) for r in rules)


def impair_entries(
    net: Network,
    *,
    netem: bool,
    states: Mapping[str, CableState] | None = None,
    wanted: Mapping[str, Impairment | None] | None = None,
) -> list[tuple[Step, bool]]:
    """(step, done) for every cable with an impairment wanted or applied; ``wanted`` overrides the file's."""
    out: list[tuple[Step, bool]] = []
    for item in cables(net):
        if wanted is not None and item.name not in wanted:
            continue
        imp = wanted[item.name] if wanted is not None else item.impair
        state = None if states is None else states.get(item.name)
        out += cable_steps(item, imp, netem=netem, comment=net.mark, state=state)
    return out


# --- reading what the kernel applies ----------------------------------------------------------


def read_qdiscs(runner: Runner, where: str | None, dev: str | None = None) -> tuple[QdiscInfo, ...]:
    """``tc -j qdisc show [dev DEV]`` on the host or in namespace ``where``."""
    argv = ["tc", "-j", "qdisc", "show", *(["dev", dev] if dev is not None else [])]
    result = runner.run(argv, netns=where)
    action = f"reading the qdiscs of {dev or 'every link'} in {where or 'the host'}"
    found = parse_qdiscs(result.check(action).stdout)
    # asked for one device, tc leaves its name out of each entry
    return tuple(attrs.evolve(q, dev=dev) if dev is not None and not q.dev else q for q in found)


def read_loss_rules(runner: Runner, where: str, backend: Backend | None = None) -> tuple[Rule, ...]:
    """The rules of namespace ``where``'s netfilter (IPv4), parsed from ``iptables-save``."""
    save = (backend or Backend()).binary(4, "save")
    try:
        result = runner.run([save], netns=where)
        text = result.check(f"reading the firewall of namespace {where}").stdout
    except CommandNotFoundError:
        return ()  # no iptables: no loss rules can have been made there
    return SavedRules.parse(4, text).rules


def states_from(
    net: Network,
    links: Mapping[str | None, Mapping[str, Any]],
    qdiscs: Mapping[str | None, Sequence[QdiscInfo]],
    rules: Mapping[str, Sequence[Rule]],
) -> dict[str, CableState]:
    """Each cable's state, from the places' links (``ip -j link``), qdiscs and namespace rules."""
    out = {}
    for item in cables(net):
        ends = [EndState.read(dev in links.get(where, {}), qdiscs.get(where, ()), dev) for where, dev in item.ends]
        loss_where, loss_dev = item.ends[item.loss_end]
        found = tuple(loss_rules(rules.get(loss_where or "", ()), loss_dev, net.mark))
        out[item.name] = CableState((ends[0], ends[1]), found)
    return out


def places_to_read(net: Network, links: Mapping[str | None, Mapping[str, Any]]) -> set[str | None]:
    """The places (of those read) where an end of a cable has a qdisc set: ``ip -j link`` shows its kind."""
    out: set[str | None] = set()
    for item in cables(net):
        for where, dev in item.ends:
            kind = links.get(where, {}).get(dev, {}).get("qdisc")
            if kind is not None and kind not in DEFAULT_QDISCS:
                out.add(where)
    return out


def loss_places(net: Network) -> set[str]:
    """The namespaces where a cable's netfilter loss rules would be."""
    out = set()
    for item in cables(net):
        where = item.ends[item.loss_end][0]
        if where is not None:
            out.add(where)
    return out


def read_cable(net: Network, item: Cable, netem: bool) -> CableState:
    """One cable's state, read from the kernel; a missing end means the network is not up: NetnskitError."""
    ends = []
    for where, dev in item.ends:
        try:
            ends.append(EndState.read(True, read_qdiscs(net.runner, where, dev), dev))
        except NotFoundError as exc:
            raise NetnskitError(
                f"{item.describe()} of network {net.name!r} is not there ({Cable.end_text((where, dev))} is missing): "
                "bring the network up first"
            ) from exc
    rules: tuple[Rule, ...] = ()
    loss_where, loss_dev = item.ends[item.loss_end]
    if not netem and loss_where is not None:
        rules = tuple(loss_rules(read_loss_rules(net.runner, loss_where), loss_dev, net.mark))
    return CableState((ends[0], ends[1]), rules)


# --- status -----------------------------------------------------------------------------------


@attrs.frozen
class EndImpairment:
    """One end of a cable as the kernel reports it: its qdiscs (``tc -j qdisc show``) and what they apply."""

    end: str  # "eth0 in red", "veth-red on the host"
    qdiscs: tuple[str, ...]  # each as tc would be told it: "tbf rate 8mbit burst 15140b lat 50ms"
    applies: str | None  # what netnskit's qdiscs amount to, as an impair table would say it


@attrs.frozen
class CableImpairment:
    """A cable's impairment: what the file asks, what the kernel applies, and whether they match."""

    cable: str  # "namespace red", "link v-lan"
    wanted: str | None  # the file's impairment, described
    how: str  # "tc netem+tbf", "tc tbf; loss by a random drop in netfilter (this kernel has no netem)"
    ends: tuple[EndImpairment, ...]
    loss_rules: tuple[str, ...]  # the netfilter loss rules as iptables-save prints them, prefixed by the table
    matches: bool


def cable_status(
    net: Network, states: Mapping[str, CableState], netem: NetemSupport, entries: Sequence[tuple[Step, bool]]
) -> tuple[CableImpairment, ...]:
    """The cables with an impairment wanted or applied, as the kernel reports them."""
    out = []
    pending = {step.description for step, done in entries if not done}
    for item in cables(net):
        state = states.get(item.name)
        if state is None:
            continue
        applied = [end.applies for end in state.ends]
        shown = [q for end in state.ends for q in end.qdiscs if q.configured or q.parent is not None]
        if item.impair is None and not any(applied) and not state.rules and not shown:
            continue
        ends = tuple(
            EndImpairment(
                Cable.end_text(end),
                tuple(q.describe() for q in state.ends[k].qdiscs if q.configured or q.parent is not None),
                None if applied[k] is None else applied[k].describe(),  # type: ignore[union-attr]
            )
            for k, end in enumerate(item.ends)
        )
        prefix = f"impair {item.describe()}:"
        out.append(
            CableImpairment(
                item.describe(),
                None if item.impair is None else item.impair.describe(),
                how(item.impair, netem),
                ends,
                tuple(f"-t {r.table} {r.line()}" for r in state.rules),
                not any(p.startswith(prefix) for p in pending),
            )
        )
    return tuple(out)

"""The command line: ``netnskit VERB ...``, one function per verb, thin over the library.

``netnskit demo`` walks the whole namespace story inside a throwaway sandbox (see
:mod:`netnskit.demo`); it exits 0 only if every check held. ``-v`` logs every command run,
evidence reads included, on stderr.

``plan FILE``, ``up FILE``, ``down FILE``, ``status FILE [--json]``, ``check FILE [--json]`` and
``cleanup`` work on a :class:`~netnskit.network.Network` described in a TOML file; ``impair FILE
NAME ...``, ``link FILE NAME down|up`` and ``faults FILE`` change its cables while it is up.
``--sandbox`` runs any of them inside a throwaway sandbox (the verbs that read or change a network
bring it up there first); ``--batch`` applies and removes with
:class:`~netnskit.executors.BatchExecutor`. Errors are one line on stderr (with the traceback under
``-v``) and a non-zero exit status; Ctrl-C exits 130 (``faults`` restores every cable first).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from netnskit.errors import NetnskitError
from netnskit.runner import Runner, default_runner

if TYPE_CHECKING:
    from netnskit.executors import Executor
    from netnskit.network import Network

__all__ = ["build_parser", "main"]

Verb = Callable[[argparse.Namespace], int]


def cmd_demo(args: argparse.Namespace) -> int:
    """``netnskit demo``: the whole story, live, in a sandbox; 0 only if every check held."""
    # imported here, not at the top: the demo stays out of the core import path (tests/unit/test_demo.py)
    from netnskit.demo import run_demo
    from netnskit.sandbox import sandbox_problem

    problem = sandbox_problem()
    if problem:
        print(f"netnskit demo: cannot run: {problem}", file=sys.stderr)
        return 2
    return 0 if run_demo() else 1


# --- the network verbs (plan, up, down, status, check, cleanup): thin over netnskit.network ---


def _executor(args: argparse.Namespace) -> Executor:
    from netnskit.executors import BatchExecutor, SerialExecutor

    return BatchExecutor() if args.batch else SerialExecutor()


@contextlib.contextmanager
def _runner(args: argparse.Namespace) -> Iterator[Runner]:
    """The runner ``main`` was given, else the host's, or with ``--sandbox`` a throwaway sandbox's."""
    if args.runner is not None:
        if args.sandbox:
            raise NetnskitError("--sandbox makes its own runner: it cannot be combined with a runner given to main()")
        yield args.runner
        return
    if not args.sandbox:
        yield default_runner()
        return
    from netnskit.sandbox import Sandbox

    with Sandbox() as box:
        yield box.runner


def _load(args: argparse.Namespace, runner: Runner) -> Network:
    from netnskit.network import Network

    return Network.from_toml(args.file, runner=runner)


def cmd_plan(args: argparse.Namespace) -> int:
    """``netnskit plan FILE``: print the script ``up`` would run on a clean host (changes nothing).

    A file whose impairments depend on the kernel (loss; delay and the rest of netem) asks it
    whether it has netem first, in a throwaway namespace.
    """
    net = _load(args, args.runner or default_runner())
    print(net.render_script(), end="")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """``netnskit up FILE``: apply what is missing; a failure rolls back and exits 1."""
    with _runner(args) as runner:
        net = _load(args, runner)
        todo = len(net.missing_steps())
        net.up(executor=_executor(args))
        print(f"network {net.name} is up ({todo} steps applied)" if todo else f"network {net.name} was already up")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    """``netnskit down FILE``: remove what the network owns (after a crash too); safe twice."""
    with _runner(args) as runner:
        net = _load(args, runner)
        teardown = net.down(executor=_executor(args))
    for item in teardown.removed:
        print(f"removed: {item}")
    for item in teardown.already_gone:
        print(f"already gone: {item}")
    for item in teardown.left:
        print(f"left alone: {item}")
    print(f"network {net.name} is down")
    return 0


def _bring_up_in_sandbox(args: argparse.Namespace, net: Network) -> None:
    # a fresh sandbox holds nothing: status and check there are of the network brought up in it
    if args.sandbox:
        net.up(executor=_executor(args))


def cmd_status(args: argparse.Namespace) -> int:
    """``netnskit status FILE [--json]``: what exists and what is missing; exit 3 when not up."""
    with _runner(args) as runner:
        net = _load(args, runner)
        _bring_up_in_sandbox(args, net)
        status = net.status()
    if args.json:
        print(json.dumps(status.to_json(), indent=2, default=str))
    else:
        print(f"network {status.name}: {'up' if status.up else 'not up'}")
        print(f"  host links: {', '.join(link.name for link in status.host_links) or '-'}")
        for address in status.host_addresses:
            if address.scope == "global":
                print(f"  host address: {address.dev} {address.address}")
        for ns in status.namespaces:
            state = "ours" if ns.ours else ("present, NOT ours" if ns.present else "absent")
            addrs = ", ".join(f"{a.dev} {a.address}" for a in ns.addresses if a.scope == "global")
            print(f"  namespace {ns.name}: {state}" + (f"; {addrs}" if addrs else ""))
        for rule in status.rules:
            print(f"  rule: {rule}")
        for cable in status.impairments:
            state = "as in the file" if cable.matches else "DIFFERS from the file"
            how = f"; {cable.how}" if cable.how else ""
            print(f"  impair {cable.cable}: file: {cable.wanted or 'none'}; kernel: {state}{how}")
            for end in cable.ends:
                print(f"    {end.end}: {', '.join(end.qdiscs) or 'no qdisc set'}")
            for rule in cable.loss_rules:
                print(f"    netfilter: {rule}")
        for step in status.missing:
            print(f"  missing: {step}")
    return 0 if status.up else 3


def cmd_check(args: argparse.Namespace) -> int:
    """``netnskit check FILE [--json]``: ping-all, NAT and port-forward probes; exit 1 if one fails."""
    with _runner(args) as runner:
        net = _load(args, runner)
        _bring_up_in_sandbox(args, net)
        report = net.check()
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print("\n".join(report.lines()))
        print(f"{len(report.probes) - len(report.failures)}/{len(report.probes)} probes passed")
    return 0 if report.ok else 1


_IMPAIR_OPTIONS = (
    "delay",
    "jitter",
    "distribution",
    "loss",
    "loss_correlation",
    "duplicate",
    "reorder",
    "corrupt",
    "rate",
)


def cmd_impair(args: argparse.Namespace) -> int:
    """``netnskit impair FILE NAME --delay 100ms --loss 5%`` (or ``--clear``): impair a cable now, both ends."""
    values = {key: value for key in _IMPAIR_OPTIONS if (value := getattr(args, key)) is not None}
    if args.direction is not None:
        values["direction"] = args.direction
    if args.clear and values:
        raise NetnskitError("--clear takes no impairment options")
    if not args.clear and not values:
        raise NetnskitError("give an impairment (--delay, --loss, --rate, ...) or --clear")
    with _runner(args) as runner:
        net = _load(args, runner)
        _bring_up_in_sandbox(args, net)
        name = net.cable(args.name).describe()
        applied = net.impair(args.name, clear=True) if args.clear else net.impair(args.name, values)
        how = _how(net, applied)
    if applied is None:
        print(f"{name}: impairment cleared (both ends)")
    else:
        print(f"{name}: {applied.describe()}" + (f"; {how}" if how else ""))
    return 0


def _how(net: Network, applied: object) -> str:
    from netnskit.network.impair import how
    from netnskit.qdisc import Impairment

    return how(applied, net.netem_support()) if isinstance(applied, Impairment) else ""


def cmd_link(args: argparse.Namespace) -> int:
    """``netnskit link FILE NAME down|up``: cut a cable (both ends down) or restore it (up, with its routes)."""
    with _runner(args) as runner:
        net = _load(args, runner)
        _bring_up_in_sandbox(args, net)
        name = net.cable(args.name).describe()
        if args.state == "down":
            net.link_down(args.name, executor=_executor(args))
            print(f"{name}: cut (both ends down)")
        else:
            net.link_up(args.name, executor=_executor(args))
            print(f"{name}: restored (both ends up, routes back)")
    return 0


def cmd_faults(args: argparse.Namespace) -> int:
    """``netnskit faults FILE``: run the file's fault schedule, a line per change; every cable restored at the end."""
    from netnskit.network.faults import describe_schedule

    with _runner(args) as runner:
        net = _load(args, runner)
        if not net.faults:
            raise NetnskitError(f"{args.file} has no [[fault]] to run")
        _bring_up_in_sandbox(args, net)
        print(f"network {net.name}: {len(net.faults)} faults", flush=True)
        for line in describe_schedule(net):
            print(f"  {line}", flush=True)
        # (always batched: each change's commands at once, a process per place)
        events = net.run_faults(report=lambda event: print(event.line(), flush=True))
    print(f"network {net.name}: {len(events)} changes made; every cable is as the file says")
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    """``netnskit cleanup``: remove every leftover netnskit marked on this host, and nothing else."""
    from netnskit.network import cleanup

    with _runner(args) as runner:
        teardown = cleanup(runner, _executor(args))
    for item in teardown.removed:
        print(f"removed: {item}")
    print(f"{len(teardown.removed)} netnskit leftovers removed")
    return 0


def _verbosity(parser: argparse.ArgumentParser, *, default: object) -> None:
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="log every command run (on stderr)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: global options and one subcommand per verb."""
    parser = argparse.ArgumentParser(prog="netnskit", description=__doc__.splitlines()[0] if __doc__ else None)
    _verbosity(parser, default=False)
    _sandbox_flags(parser, default=False)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    demo = verbs.add_parser("demo", help="walk the whole namespace story live, inside a throwaway sandbox (root)")
    # SUPPRESS: "-v" given before the verb is not reset by the verb's own default
    _verbosity(demo, default=argparse.SUPPRESS)
    demo.set_defaults(func=cmd_demo)
    _network_verbs(verbs)
    return parser


def _network_verbs(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The verbs over a network file, each taking -v, --sandbox and --batch before or after it."""
    specs: list[tuple[str, Verb, str, bool, bool]] = [
        ("plan", cmd_plan, "print the script that up would run (runs nothing)", True, False),
        ("up", cmd_up, "bring the network up: apply what is missing, roll back on failure", True, False),
        ("down", cmd_down, "remove everything the network owns (after a crash too); safe twice", True, False),
        ("status", cmd_status, "what exists and what is missing; exit 3 when not up", True, True),
        ("check", cmd_check, "ping-all, NAT and port-forward probes; exit 1 if one fails", True, True),
        ("cleanup", cmd_cleanup, "remove every netnskit leftover on this host, and nothing else", False, False),
        ("impair", cmd_impair, "impair a cable now (both ends): --delay 100ms --loss 5%% ..., or --clear", True, False),
        ("link", cmd_link, "cut a cable (down: both ends) or restore it (up: with its routes)", True, False),
        ("faults", cmd_faults, "run the file's [[fault]] schedule, a line per change; Ctrl-C restores", True, False),
    ]
    for name, func, text, takes_file, takes_json in specs:
        verb = verbs.add_parser(name, help=text)
        _verbosity(verb, default=argparse.SUPPRESS)
        _sandbox_flags(verb, default=argparse.SUPPRESS)
        if takes_json:
            verb.add_argument("--json", action="store_true", help="print JSON for scripts")
        if takes_file:
            verb.add_argument("file", metavar="FILE", help="the network, as a TOML file (see examples/seed.toml)")
        if name in ("impair", "link"):
            verb.add_argument("name", metavar="NAME", help="a namespace on the bridge or a link of the file")
        if name == "impair":
            _impair_flags(verb)
        if name == "link":
            verb.add_argument("state", choices=("down", "up"), help="down: cut the cable; up: restore it")
        verb.set_defaults(func=func)


def _impair_flags(parser: argparse.ArgumentParser) -> None:
    """The impair table's keys as options (values as tc writes them), and --clear."""
    helps = {
        "delay": "a delay, like 100ms",
        "jitter": "the delay's variation, like 10ms (needs --delay)",
        "distribution": "the jitter's distribution: normal, pareto or paretonormal",
        "loss": "a share of packets lost, like 5%",
        "loss_correlation": "how much a loss depends on the one before, like 25%",
        "duplicate": "a share of packets sent twice, like 1%",
        "reorder": "a share of packets sent at once, out of order (needs --delay), like 25%",
        "corrupt": "a share of packets with a bit flipped, like 0.1%",
        "rate": "a rate limit, like 10mbit",
    }
    for key, text in helps.items():
        # (argparse formats help with %: a percentage is written %%)
        parser.add_argument("--" + key.replace("_", "-"), dest=key, metavar="VALUE", help=text.replace("%", "%%"))
    parser.add_argument("--direction", choices=("both", "out", "in"), help="both (default), out or in only")
    parser.add_argument("--clear", action="store_true", help="remove every impairment of the cable")


def _sandbox_flags(parser: argparse.ArgumentParser, *, default: object) -> None:
    parser.add_argument(
        "--sandbox",
        action="store_true",
        default=default,
        help="run inside a throwaway sandbox (fresh network and mount namespaces)",
    )
    parser.add_argument(
        "--batch",
        action="store_true",
        default=default,
        help="apply and remove with few processes (ip -batch, iptables-restore)",
    )


def main(argv: Sequence[str] | None = None, *, runner: Runner | None = None) -> int:
    """Run the command line; returns the exit status. ``runner``: where commands run (default: this host)."""
    args = build_parser().parse_args(argv)
    args.runner = runner
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="netnskit: %(message)s", stream=sys.stderr)
    func: Verb = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
    except (NetnskitError, OSError) as exc:
        # one line; the traceback only with -v
        if args.verbose:
            traceback.print_exc()
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"netnskit {args.verb}: {message}", file=sys.stderr)
        return 1

"""The command line: ``netnskit VERB ...``, one function per verb, thin over the library.

``netnskit demo`` walks the whole namespace story inside a throwaway sandbox (see
:mod:`netnskit.demo`); it exits 0 only if every check held. ``-v`` logs every command run,
evidence reads included, on stderr.

``plan FILE``, ``up FILE``, ``down FILE``, ``status FILE [--json]``, ``check FILE [--json]``,
``capture FILE LINK [-w PATH]`` and ``cleanup`` work on a :class:`~netnskit.network.Network`
described in a TOML file. ``--sandbox`` runs any of them inside a throwaway sandbox (``status``,
``check`` and ``capture`` bring the network up there first); ``--batch`` applies and removes with
:class:`~netnskit.executors.BatchExecutor`. Errors are one line on stderr (with the traceback
under ``-v``) and a non-zero exit status.
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
    """``netnskit plan FILE``: print the script ``up`` would run on a clean host (runs nothing)."""
    from netnskit.network import Network

    print(Network.from_toml(args.file).render_script(), end="")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """``netnskit up FILE``: apply what is missing; a failure rolls back and exits 1."""
    with _runner(args) as runner:
        net = _load(args, runner)
        todo = len(net.missing_steps())
        starting = sum(1 for p in net.process_status() if p.state != "running")
        net.up(executor=_executor(args))
        done = [f"{todo} steps applied"] if todo else []
        done += [f"{starting} process{'es' if starting > 1 else ''} started"] if starting else []
        print(f"network {net.name} is up ({', '.join(done)})" if done else f"network {net.name} was already up")
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
        for path in status.files:
            print(f"  file: {path}")
        for proc in status.processes:
            pid = f" (pid {proc.pid})" if proc.pid is not None else ""
            print(f"  process {proc.name} in {proc.netns}: {proc.state}{pid}; log {proc.log}")
        for rule in status.rules:
            print(f"  rule: {rule}")
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


def cmd_capture(args: argparse.Namespace) -> int:
    """``netnskit capture FILE LINK [-w PATH] [-c N] [--duration S]``: a pcap of one link, until Ctrl-C."""
    with _runner(args) as runner:
        net = _load(args, runner)
        _bring_up_in_sandbox(args, net)
        path = args.write or f"{args.link.replace(':', '-')}.pcap"
        capture = net.capture(args.link, path, count=args.count, duration=args.duration)
        where = f"namespace {capture.netns}" if capture.netns else "the host"
        print(f"capturing on {capture.interface} in {where} into {capture.path}", flush=True)
        try:
            capture.wait()
        except KeyboardInterrupt:
            pass
        finally:
            packets = capture.stop()
    print(f"{'?' if packets is None else packets} packets captured into {capture.path}")
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
        ("capture", cmd_capture, "write a pcap of one link with tcpdump (until Ctrl-C, -c or --duration)", True, False),
        ("cleanup", cmd_cleanup, "remove every netnskit leftover on this host, and nothing else", False, False),
    ]
    for name, func, text, takes_file, takes_json in specs:
        verb = verbs.add_parser(name, help=text)
        _verbosity(verb, default=argparse.SUPPRESS)
        _sandbox_flags(verb, default=argparse.SUPPRESS)
        if takes_json:
            verb.add_argument("--json", action="store_true", help="print JSON for scripts")
        if takes_file:
            verb.add_argument("file", metavar="FILE", help="the network, as a TOML file (see examples/seed.toml)")
        if name == "capture":
            _capture_options(verb)
        verb.set_defaults(func=func)


def _capture_options(verb: argparse.ArgumentParser) -> None:
    verb.add_argument("link", metavar="LINK", help="a host interface of the network, a link's name, or NETNS:IFNAME")
    verb.add_argument("-w", "--write", metavar="PATH", help="the pcap file to write (default: LINK.pcap)")
    verb.add_argument("-c", "--count", type=int, metavar="N", help="stop after N packets")
    verb.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")


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

"""The command line: ``netnskit VERB ...``, one function per verb, thin over the library.

The verbs, their options, the exit codes and the JSON of ``status`` and ``check`` are in the
README's "Command line" section, and in ``netnskit --help`` and ``netnskit VERB --help``.
``impair FILE NAME ...``, ``link FILE NAME down|up`` and ``faults FILE`` change a network's cables
while it is up; ``capture FILE LINK [-w PATH]`` writes a pcap of one of its links.
``cleanup NAME`` removes what network NAME marked; ``cleanup --all [--yes]`` lists (removes) every
network's. SIGINT and SIGTERM during ``up`` roll back what it did (exit 130, 143).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from netnskit import __version__, _privilege
from netnskit.errors import Interrupted, NetnskitError, PermissionDeniedError, StepError, ValidationError
from netnskit.interrupt import Interrupt, on_signals
from netnskit.runner import Runner, default_runner

if TYPE_CHECKING:
    from netnskit.executors import Executor
    from netnskit.network import Network

__all__ = ["EXIT_CODES", "JSON_SCHEMA", "build_parser", "main"]

Verb = Callable[[argparse.Namespace], int]

JSON_SCHEMA = 1  # the "schema" of status --json and check --json: raised when a field changes meaning or goes

OK, FAILED, USAGE, NOT_UP, NEEDS_ROOT, INTERRUPTED, CLOSED_PIPE = 0, 1, 2, 3, 4, 130, 141
EXIT_CODES = {
    OK: "success (check: every probe passed; status: the network is fully up)",
    FAILED: "a command failed (up rolled back what it did) or a check probe failed",
    USAGE: "bad arguments or a bad network file: rejected before any command ran",
    NOT_UP: "status: the network is not fully up",
    NEEDS_ROOT: "not root (no CAP_NET_ADMIN), or the kernel refused a command (permission denied)",
    INTERRUPTED: "interrupted (Ctrl-C)",
    CLOSED_PIPE: "the reader of the output went away (as in: netnskit status FILE | head -1)",
}

_DESCRIPTION = """\
Linux network namespaces, veth pairs, bridges, NAT and port forwards, described in a TOML file
(see examples/seed.toml) and brought up, checked and removed with ip and iptables."""

_EPILOG = """\
examples:
  netnskit plan examples/seed.toml          the script up would run, for review (runs nothing)
  sudo netnskit up examples/seed.toml       bring it up (only what is missing)
  sudo netnskit status examples/seed.toml   what exists and what is missing
  sudo netnskit up --sandbox examples/seed.toml
                                            up, check and down inside a throwaway sandbox
  sudo netnskit demo                        the whole namespace story, live, in a sandbox

exit codes:
""" + "\n".join(f"  {code:<4}{text}" for code, text in EXIT_CODES.items())


class _Refused(Exception):
    """A usage the CLI refuses before running anything (exit 2)."""


def _check_root(args: argparse.Namespace) -> None:
    """Refuse before any command runs when this process may not touch the host's network.

    Only for the host (a runner given to ``main`` decides for itself, e.g. over ssh or sudo).
    """
    if args.runner is None:
        problem = _privilege.privilege_problem()
        if problem:
            raise PermissionError(problem)


def cmd_demo(args: argparse.Namespace) -> int:
    """``netnskit demo``: the whole story, live, in a sandbox; 0 only if every check held."""
    # imported here, not at the top: the demo stays out of the core import path (tests/unit/test_demo.py)
    from netnskit.demo import run_demo
    from netnskit.sandbox import sandbox_problem

    _check_root(args)
    problem = sandbox_problem()
    if problem:
        print(f"netnskit demo: cannot run: {problem}", file=sys.stderr)
        return USAGE
    return OK if run_demo() else FAILED


# --- the network verbs (plan, up, down, status, check, cleanup): thin over netnskit.network ---


class _Progress:
    """Progress of an executor: each step on stdout with ``--serial``; else a counter on stderr if it is a terminal."""

    def __init__(self, verb: str, *, steps: bool, stream: TextIO | None = None) -> None:
        self.verb = verb
        self.steps = steps
        self.stream = stream if stream is not None else sys.stderr
        self.counter = not steps and _is_terminal(self.stream)
        self.shown = 0.0
        self.open = False
        self.total: int | None = None  # when known ahead (up): the steps of all the executor's runs
        self.calls = 0

    def __call__(self, done: int, total: int, what: str) -> None:
        """Report ``done`` of ``total`` steps, ``what`` the one just done."""
        self.calls += 1
        if self.total is not None:
            # up applies its plan in two runs (the firewall's steps are read once the bridge exists)
            done, total = self.calls, max(self.total, self.calls)
        if self.steps:
            print(f"[{done}/{total}] {what}", flush=True)
            return
        now = time.monotonic()
        if not self.counter or (done < total and now - self.shown < 0.1):
            return
        self.shown = now
        self.stream.write(f"\rnetnskit {self.verb}: {done}/{total} steps")
        self.stream.flush()
        self.open = True

    def close(self) -> None:
        """End the counter's line (the verb's own output follows)."""
        if self.open:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.open = False


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def _executor(args: argparse.Namespace, total: int | None = None) -> Iterator[Executor]:
    """BatchExecutor (few processes), or SerialExecutor with ``--serial``; with progress (of ``total`` steps)."""
    from netnskit.executors import BatchExecutor, SerialExecutor

    progress = _Progress(args.verb, steps=args.serial)
    progress.total = total
    try:
        yield SerialExecutor(progress=progress) if args.serial else BatchExecutor(progress=progress)
    finally:
        progress.close()


def _runner(args: argparse.Namespace) -> Runner:
    """The runner ``main`` was given, else the host's (the open sandbox's, if one is open)."""
    return args.runner if args.runner is not None else default_runner()


def _load(args: argparse.Namespace, runner: Runner) -> Network:
    import attrs

    from netnskit.network import Network

    net = Network.from_toml(args.file, runner=runner)
    wait = getattr(args, "xtables_wait", None)
    net = net if wait is None else attrs.evolve(net, xtables_wait=wait)
    chosen = getattr(args, "firewall", None)
    return net if chosen is None else attrs.evolve(net, firewall=chosen)


def cmd_plan(args: argparse.Namespace) -> int:
    """``netnskit plan FILE``: print the script ``up`` would run on a clean host (changes nothing).

    A file whose impairments depend on the kernel (loss; delay and the rest of netem) asks it
    whether it has netem first, in a throwaway namespace.
    """
    net = _load(args, _runner(args))
    print(net.render_script(), end="")
    return OK


def cmd_up(args: argparse.Namespace) -> int:
    """``netnskit up FILE``: apply what is missing; a failure, SIGINT or SIGTERM rolls back (exit 1, 130, 143)."""
    if args.sandbox:
        return _up_in_sandbox(args)
    _check_root(args)
    net = _load(args, _runner(args))
    _up(args, net, "")
    return OK


def _up(args: argparse.Namespace, net: Network, where: str) -> None:
    with on_signals() as stop:
        todo = len(net.missing_steps())
        starting = sum(1 for p in net.process_status() if p.state != "running")
        with _executor(args, todo) as executor:
            net.up(executor=executor, interrupt=stop)
    done = [f"{todo} steps applied"] if todo else []
    done += [f"{starting} process{'es' if starting > 1 else ''} started"] if starting else []
    print(f"network {net.name} is up{where} ({', '.join(done)})" if done else f"network {net.name} was already up")


def _up_in_sandbox(args: argparse.Namespace) -> int:
    """``up --sandbox``: up, check and down in one throwaway sandbox, printing each."""
    from netnskit.sandbox import Sandbox

    if args.runner is not None:
        raise _Refused("--sandbox makes its own runner: it cannot be combined with a runner given to main()")
    _check_root(args)
    with Sandbox() as box:
        net = _load(args, box.runner)
        _up(args, net, " in a throwaway sandbox")
        report = net.check()
        print("\n".join(report.lines()))
        print(f"{len(report.probes) - len(report.failures)}/{len(report.probes)} probes passed")
        _down(args, net)
    print("the sandbox is gone, and everything in it")
    return OK if report.ok else FAILED


def _down(args: argparse.Namespace, net: Network) -> int:
    """Take ``net`` down and print what was removed; a signal meanwhile lets it finish first."""
    with on_signals() as stop, _executor(args) as executor:
        teardown = net.down(executor=executor, interrupt=stop)
    for item in teardown.removed:
        print(f"removed: {item}")
    for item in teardown.already_gone:
        print(f"already gone: {item}")
    for item in teardown.left:
        print(f"left alone: {item}")
    print(f"network {net.name} is down")
    for other in teardown.others:
        print(
            f"netnskit down: things with this file's names belong to network {other!r} (marked netnskit:{other}); "
            f"if {net.name!r} was renamed from it, `netnskit cleanup {other}` removes them",
            file=sys.stderr,
        )
    return _finished(args, stop, "finished removing first")


def _finished(args: argparse.Namespace, stop: Interrupt, what: str) -> int:
    """0, or after a signal that came while the verb finished its work: say so, and 128 + the signal."""
    if stop.signum is None:
        return OK
    print(f"netnskit {args.verb}: interrupted by {signal.Signals(stop.signum).name}; {what}", file=sys.stderr)
    return 128 + stop.signum


def cmd_down(args: argparse.Namespace) -> int:
    """``netnskit down FILE``: remove what the network owns (after a crash too); safe twice; finishes on SIGINT."""
    _check_root(args)
    return _down(args, _load(args, _runner(args)))


def _json(data: dict[str, Any]) -> None:
    print(json.dumps({"schema": JSON_SCHEMA, **data}, indent=2, default=str))


def cmd_status(args: argparse.Namespace) -> int:
    """``netnskit status FILE [--json | --graph [FORMAT]]``: what exists and what is missing; exit 3 when not up."""
    _check_root(args)
    if args.json and args.graph:
        raise _Refused("--json and --graph each print the whole status: give one of them")
    runner = _runner(args)
    net = _load(args, runner)
    status = net.status()
    if args.graph:
        from netnskit import graph

        sys.stdout.write(graph.render(net, args.graph, runner=runner, status=status))
    elif args.json:
        _json(status.to_json())
    else:
        print(f"network {status.name}: {'up' if status.up else 'not up'}")
        print(f"  host links: {', '.join(link.name for link in status.host_links) or '-'}")
        for address in status.host_addresses:
            if address.scope == "global":
                print(f"  host address: {address.dev} {address.address}")
        for ns in status.namespaces:
            state = "ours" if ns.ours else ("present, NOT ours" if ns.present else "absent")
            if ns.present and not ns.ours and ns.owner:
                state += f" (marked netnskit:{ns.owner}: network {ns.owner!r}'s)"
            addrs = ", ".join(f"{a.dev} {a.address}" for a in ns.addresses if a.scope == "global")
            print(f"  namespace {ns.name}: {state}" + (f"; {addrs}" if addrs else ""))
        for path in status.files:
            print(f"  file: {path}")
        for proc in status.processes:
            pid = f" (pid {proc.pid})" if proc.pid is not None else ""
            print(f"  process {proc.name} in {proc.netns}: {proc.state}{pid}; log {proc.log}")
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
        for conflict in status.conflicts:
            print(f"  conflict: {conflict}")
        for owned in status.extra:
            print(f"  extra: {owned.kind} {owned.name} (marked netnskit:{status.name}, not in the file: up removes it)")
    return OK if status.up else NOT_UP


def cmd_check(args: argparse.Namespace) -> int:
    """``netnskit check FILE``: gateway, ring-peer, NAT and forward probes; exit 1 if one fails, 3 if not up."""
    _check_root(args)
    printer = _CheckProgress(sys.stderr, live=sys.stderr.isatty(), cost=args.all_pairs)
    net = _load(args, _runner(args))
    report = net.check(
        timeout=args.timeout, tries=args.tries, peers=args.peers, all_pairs=args.all_pairs, progress=printer
    )
    printer.end()
    if args.json:
        _json(report.to_json())
    else:
        print("\n".join(report.lines()))
        if report.down:
            print(f"nothing probed: bring network {report.name} up first (netnskit up FILE)")
        else:
            print(f"{len(report.probes) - len(report.failures)}/{len(report.probes)} probes passed")
    if report.failures:
        return FAILED
    return OK if report.ok else NOT_UP


class _CheckProgress:
    """Prints a check's progress on one line of a terminal (and, when asked, its cost first, always)."""

    def __init__(self, stream: TextIO, *, live: bool, cost: bool) -> None:
        self.stream, self.live, self.cost, self.drawn = stream, live, cost, False

    def __call__(self, done: int, total: int, what: str) -> None:
        if done == 0:  # the first call says what the check will cost
            if self.live or self.cost:
                print(what, file=self.stream, flush=True)
            return
        if self.live:
            self.drawn = True
            print(f"\rcheck: {done}/{total} probes ({what})"[:200].ljust(80), end="", file=self.stream, flush=True)

    def end(self) -> None:
        """Finish the progress line."""
        if self.drawn:
            print(file=self.stream, flush=True)


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
        raise _Refused("--clear takes no impairment options")
    if not args.clear and not values:
        raise _Refused("give an impairment (--delay, --loss, --rate, ...) or --clear")
    _check_root(args)
    net = _load(args, _runner(args))
    name = net.cable(args.name).describe()
    applied = net.impair(args.name, clear=True) if args.clear else net.impair(args.name, values)
    how = _how(net, applied)
    if applied is None:
        print(f"{name}: impairment cleared (both ends)")
    else:
        print(f"{name}: {applied.describe()}" + (f"; {how}" if how else ""))
    return OK


def _how(net: Network, applied: object) -> str:
    from netnskit.network.impair import how
    from netnskit.qdisc import Impairment

    return how(applied, net.netem_support()) if isinstance(applied, Impairment) else ""


def cmd_link(args: argparse.Namespace) -> int:
    """``netnskit link FILE NAME down|up``: cut a cable (both ends down) or restore it (up, with its routes)."""
    _check_root(args)
    net = _load(args, _runner(args))
    name = net.cable(args.name).describe()
    with _executor(args) as executor:
        if args.state == "down":
            net.link_down(args.name, executor=executor)
            print(f"{name}: cut (both ends down)")
        else:
            net.link_up(args.name, executor=executor)
            print(f"{name}: restored (both ends up, routes back)")
    return OK


def cmd_faults(args: argparse.Namespace) -> int:
    """``netnskit faults FILE``: run the file's fault schedule, a line per change; every cable restored at the end."""
    from netnskit.network.faults import describe_schedule

    _check_root(args)
    net = _load(args, _runner(args))
    if not net.faults:
        raise NetnskitError(f"{args.file} has no [[fault]] to run")
    print(f"network {net.name}: {len(net.faults)} faults", flush=True)
    for line in describe_schedule(net):
        print(f"  {line}", flush=True)
    # (always batched: each change's commands at once, a process per place)
    events = net.run_faults(report=lambda event: print(event.line(), flush=True))
    print(f"network {net.name}: {len(events)} changes made; every cable is as the file says")
    return OK


def cmd_capture(args: argparse.Namespace) -> int:
    """``netnskit capture FILE LINK [-w PATH] [-c N] [--duration S]``: a pcap of one link, until Ctrl-C."""
    _check_root(args)
    net = _load(args, _runner(args))
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
    return OK


def _capture_options(verb: argparse.ArgumentParser) -> None:
    verb.add_argument("link", metavar="LINK", help="a host interface of the network, a link's name, or NETNS:IFNAME")
    verb.add_argument("-w", "--write", metavar="PATH", help="the pcap file to write (default: LINK.pcap)")
    verb.add_argument("-c", "--count", type=int, metavar="N", help="stop after N packets")
    verb.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")


def cmd_cleanup(args: argparse.Namespace) -> int:
    """``netnskit cleanup NAME``: remove what network NAME marked; ``--all``: list all networks', ``--yes``: remove."""
    from netnskit.firewall.iptables import XTABLES_WAIT
    from netnskit.network import cleanup

    _check_root(args)
    if (args.name is None) == (not args.all):
        print(
            "netnskit cleanup: give the network's NAME (what is marked netnskit:NAME goes), "
            "or --all for every network's (listed; removed with --yes)",
            file=sys.stderr,
        )
        return USAGE
    wait = XTABLES_WAIT if args.xtables_wait is None else args.xtables_wait
    runner = _runner(args)
    if args.all and not args.yes:
        # dry by default: --all removes other people's networks too, so it shows them first
        listed = cleanup(None, runner, dry_run=True, xtables_wait=wait)
        for item in listed.removed:
            print(f"would remove: {item}")
        if listed.removed:
            print(f"{len(listed.removed)} netnskit leftovers found; nothing removed: add --yes to remove them")
        else:
            print("no netnskit leftovers on this host")
        return OK
    with on_signals() as stop, _executor(args) as executor:
        teardown = cleanup(args.name, runner, executor, interrupt=stop, xtables_wait=wait)
    for item in teardown.removed:
        print(f"removed: {item}")
    for item in teardown.left:
        print(f"left alone: {item}")
    whose = "netnskit" if args.name is None else f"network {args.name}'s"
    print(f"{len(teardown.removed)} {whose} leftovers removed")
    return _finished(args, stop, "finished removing first")


def _graph_format(args: argparse.Namespace) -> str:
    """``--format``, else what ``-o``'s suffix says (.svg, .dot/.gv, .mmd), else mermaid."""
    if args.format:
        return str(args.format)
    suffix = os.path.splitext(args.output or "")[1].lower()
    return {".svg": "svg", ".dot": "dot", ".gv": "dot"}.get(suffix, "mermaid")


def cmd_graph(args: argparse.Namespace) -> int:
    """``netnskit graph FILE [--format mermaid|dot|svg] [-o PATH] [--status] [--check]``: draw the network.

    Without ``--status``/``--check`` nothing is read from the host (``svg`` runs ``dot``). With them the
    picture is coloured from what the host has (``status``, exit 3 when not up) and from the probes
    (``check``, exit 1 if one fails).
    """
    from netnskit import graph

    fmt = _graph_format(args)
    runner = _runner(args)
    net = _load(args, runner)
    status = net.status() if args.status else None
    report = net.check() if args.check else None
    text = graph.render(net, fmt, runner=runner, status=status, report=report)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    if status is not None and not status.up:
        return 3
    return 1 if report is not None and not report.ok else 0


def _graph_verb(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``graph``: the network as Mermaid, DOT or SVG, coloured from the host with --status/--check."""
    verb = verbs.add_parser(
        "graph",
        help="draw the network: Mermaid, Graphviz DOT or SVG (--status colours it)",
        description="Draw the network from its file: Mermaid (GitHub renders it), Graphviz DOT, or SVG\n"
        "(dot -Tsvg, Debian package graphviz). --status colours it from this host (root): green up,\n"
        "grey dashed missing, red failing; exit 3 when not up. --check runs the probes too.",
        epilog="example:\n  netnskit graph examples/seed.toml -o seed.svg\n"
        "  sudo netnskit graph --status examples/seed.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(verb, top=False, options={"--xtables-wait"})
    verb.add_argument("--format", choices=["mermaid", "dot", "svg"], help="default: from -o's suffix, else mermaid")
    verb.add_argument("-o", "--output", metavar="PATH", help="write the picture to PATH (default: stdout)")
    verb.add_argument(
        "--status",
        action="store_true",
        help="colour what is up, missing or failing on this host (root; exit 3 when not up)",
    )
    verb.add_argument(
        "--check",
        action="store_true",
        help="run check's probes and colour what no probe got through (exit 1 if one failed)",
    )
    verb.add_argument("file", metavar="FILE", help="the network, as a TOML file (see examples/seed.toml)")
    verb.set_defaults(func=cmd_graph)


# --- the parser ---------------------------------------------------------------------------------

# (name, function, one line for the verb list, description, example, takes FILE, its options)
_VERBS: list[tuple[str, Verb, str, str, str, bool, set[str]]] = [
    (
        "plan",
        cmd_plan,
        "print the script that up would run (runs nothing)",
        "Print the steps that bring the network up on a clean host, each with its undo, as a bash\n"
        "script a person can review (and bash can run). Runs nothing; needs no root.",
        "netnskit plan examples/seed.toml > seed.sh",
        True,
        {"--firewall"},
    ),
    (
        "up",
        cmd_up,
        "bring the network up: apply what is missing, roll back on failure",
        "Apply the steps the host does not show as done, then start the [[process]] entries that do\n"
        "not run. A failure rolls back what this call did and exits 1. With --sandbox: bring the\n"
        "network up in a throwaway sandbox, check it, take it down, print each, and exit 1 if a\n"
        "probe failed (the host is not touched).",
        "sudo netnskit up examples/seed.toml\n  sudo netnskit up --sandbox examples/seed.toml",
        True,
        {"--sandbox", "--serial", "--xtables-wait", "--firewall"},
    ),
    (
        "down",
        cmd_down,
        "remove everything the network owns (after a crash too); safe twice",
        "Remove what carries the network's mark (netnskit:NAME): processes, /etc/netns files,\n"
        "namespaces, links, firewall rules, sysctls put back. Works after a crash and on a partly\n"
        "removed network; run twice, the second does nothing. Anything not marked is left alone,\n"
        "and said so.",
        "sudo netnskit down examples/seed.toml",
        True,
        {"--serial", "--xtables-wait", "--firewall"},
    ),
    (
        "status",
        cmd_status,
        "what exists and what is missing; exit 3 when not up",
        "Read the network's namespaces, links, addresses, routes and firewall rules from the kernel\n"
        "and list the plan's steps that are not done. Exits 3 when the network is not fully up.\n"
        'With --json: one object, {"schema": 1, "name", "up", "namespaces", "host_links",\n'
        '"host_addresses", "host_routes", "rules", "missing": [{"step", "kind", "name", "netns"}],\n'
        '"conflicts", "processes", "files", "impairments", "extra",\n"firewall"}. With --graph: the picture,\n'
        "coloured as netnskit graph --status colours it.",
        "sudo netnskit status --json examples/seed.toml | jq .missing",
        True,
        {"--json", "--xtables-wait", "--firewall"},
    ),
    (
        "check",
        cmd_check,
        "gateway, ring-peer, NAT and forward probes; exit 1 if one fails, 3 if not up",
        "Probe the network: each namespace pings the gateway and its next K namespaces (O(N); the\n"
        "full matrix with --all-pairs, which says its cost first), TCP through the masquerade and\n"
        "through each port forward, with retries. Exits 1 if a probe failed, 3 if the network is down.\n"
        'With --json: {"schema": 1, "ok", "probes": [{"kind", "source", "target", "ok", "detail"}]}.',
        "sudo netnskit check examples/seed.toml",
        True,
        {"--json"},
    ),
    (
        "capture",
        cmd_capture,
        "write a pcap of one link with tcpdump (until Ctrl-C, -c or --duration)",
        "Capture one link of the network (that is up) with tcpdump, run where the link is, into a\n"
        "pcap file (default LINK.pcap; read it with tcpdump -r or Wireshark). LINK: a host interface\n"
        "of the network (the bridge, a namespace's host end), a [[link]]'s name, or NETNS:IFNAME.\n"
        "Runs until Ctrl-C, -c N packets or --duration S seconds; prints how many it captured.",
        "sudo netnskit capture examples/seed.toml red:eth0 -w red.pcap --duration 10",
        True,
        set(),
    ),
    (
        "cleanup",
        cmd_cleanup,
        "remove what network NAME marked (--all: every network's, listed; --yes removes)",
        "Remove every namespace, link and firewall rule marked netnskit:NAME, and put back the\n"
        "sysctls netnskit changed for it. --all lists what every network marked (and dangling\n"
        "/run/netns entries) and removes it with --yes. Nothing unmarked is touched.",
        "sudo netnskit cleanup seed\n  sudo netnskit cleanup --all --yes",
        False,
        {"--serial", "--xtables-wait"},
    ),
]


def _check_options(check: argparse.ArgumentParser) -> None:
    check.add_argument(
        "--all-pairs",
        action="store_true",
        help="ping every namespace from every other (says its cost first; refused where the neighbour table is short)",
    )
    check.add_argument(
        "--peers", type=int, default=2, metavar="K", help="ping each namespace's next K namespaces (default 2)"
    )
    check.add_argument("--tries", type=int, default=3, metavar="N", help="try a silent probe N times (default 3)")
    check.add_argument(
        "--timeout", type=float, default=1.0, metavar="S", help="seconds to wait for each try (default 1)"
    )


def _common(parser: argparse.ArgumentParser, *, top: bool, options: set[str]) -> None:
    """-v, and those of --sandbox, --serial and --xtables-wait the verb takes, before or after the verb.

    On a verb the defaults are SUPPRESS: an option given before the verb is not reset by the verb's
    own. --sandbox is accepted (hidden) by every verb, so that where it means nothing it is refused
    with a reason, not with argparse's "unrecognized arguments".
    """
    default: Callable[[object], object] = (lambda value: value) if top else (lambda _: argparse.SUPPRESS)
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default(False), help="log every command run (on stderr)"
    )
    shown = top or "--sandbox" in options
    parser.add_argument(
        "--sandbox",
        action="store_true",
        default=default(False),
        help=_SANDBOX_HELP.get(parser.prog.split()[-1], _SANDBOX_HELP["netnskit"]) if shown else argparse.SUPPRESS,
    )
    if top or "--serial" in options:
        parser.add_argument(
            "--serial",
            action="store_true",
            default=default(False),
            help="one process per command, each step printed as it is done (default: few processes, ip -batch)",
        )
    if top or "--xtables-wait" in options:
        parser.add_argument(
            "--xtables-wait",
            metavar="SECONDS",
            type=_seconds,
            default=default(None),
            help="seconds iptables waits for the xtables lock before giving up (default: the file's, else 10)",
        )

    if "--firewall" in options:
        parser.add_argument(
            "--firewall",
            metavar="KIND",
            type=_firewall,
            default=argparse.SUPPRESS,
            help="iptables, nftables (a table of the network's own) or auto (default: the file's, else iptables)",
        )


_SANDBOX_HELP = {
    "netnskit": "demo and up only: run inside a throwaway sandbox",
    "demo": "the demo always runs in a throwaway sandbox (accepted, changes nothing)",
    "up": "up, check and down in one throwaway sandbox, printing each (the host is not touched)",
}


def _firewall(text: str) -> str:
    from netnskit.firewall.choice import firewall_kind

    try:
        return firewall_kind(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> int:
    from netnskit.firewall.iptables import xtables_wait

    try:
        return xtables_wait(int(text) if text.isascii() and text.isdigit() else text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(exc.rule) from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: global options and one subcommand per verb, each with its own help."""
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="netnskit", description=_DESCRIPTION, epilog=_EPILOG, formatter_class=raw)
    parser.add_argument("--version", action="version", version=f"netnskit {__version__}")
    _common(parser, top=True, options=set())
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    demo = verbs.add_parser(
        "demo",
        help="walk the whole namespace story live, inside a throwaway sandbox (root)",
        description="Walk the whole namespace story (README, Demo) as root inside a throwaway sandbox,\n"
        "printing each command and the evidence read back from the kernel. Exits 0 only if every\n"
        "check held. No packet leaves the sandbox.",
        epilog="example:\n  sudo netnskit demo -v",
        formatter_class=raw,
    )
    _common(demo, top=False, options={"--sandbox"})
    demo.set_defaults(func=cmd_demo)
    for name, func, line, description, example, takes_file, options in _VERBS:
        verb = verbs.add_parser(
            name, help=line, description=description, epilog=f"example:\n  {example}", formatter_class=raw
        )
        _common(verb, top=False, options=options)
        if "--json" in options:
            verb.add_argument(
                "--json", action="store_true", help=f'print JSON for scripts ({{"schema": {JSON_SCHEMA}, ...}})'
            )
        if takes_file:
            verb.add_argument("file", metavar="FILE", help="the network, as a TOML file (see examples/seed.toml)")
        if name == "status":
            verb.add_argument(
                "--graph",
                nargs="?",
                const="mermaid",
                choices=["mermaid", "dot", "svg"],
                help="print the picture coloured from this host instead (as graph --status; default mermaid)",
            )
        if name == "check":
            _check_options(verb)
        if name == "capture":
            _capture_options(verb)
        if name == "cleanup":
            verb.add_argument("name", metavar="NAME", nargs="?", help="the network whose marks (netnskit:NAME) go")
            verb.add_argument("--all", action="store_true", help="every network's marks: listed, removed with --yes")
            verb.add_argument("--yes", action="store_true", help="with --all: remove what it lists")
        verb.set_defaults(func=func)
    _graph_verb(verbs)
    _cable_verbs(verbs)
    return parser


_SANDBOX_VERBS = ("demo", "up")


def _refuse_sandbox(args: argparse.Namespace) -> None:
    if args.sandbox and args.verb not in _SANDBOX_VERBS:
        raise _Refused(
            "--sandbox goes with demo and up only (up --sandbox brings the network up in a throwaway sandbox, "
            f"checks it and takes it down); {args.verb} in a sandbox that is then gone would show nothing"
        )


def _for_cluster_file(args: argparse.Namespace, func: Verb) -> Verb:
    """A file with ``[[host]]`` tables describes a network across hosts: netnskit.cluster's verbs read it."""
    from netnskit.cluster.cli import VERBS, is_cluster_file

    return VERBS.get(args.verb, func) if is_cluster_file(args.file) else func


def main(argv: Sequence[str] | None = None, *, runner: Runner | None = None) -> int:
    """Run the command line; returns the exit status. ``runner``: where commands run (default: this host)."""
    args = build_parser().parse_args(argv)
    args.runner = runner
    for name, value in (("serial", False), ("xtables_wait", None)):
        if not hasattr(args, name):  # demo takes neither
            setattr(args, name, value)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="netnskit: %(message)s", stream=sys.stderr)
    func: Verb = args.func
    try:
        _refuse_sandbox(args)
        if getattr(args, "file", None) is not None:
            func = _for_cluster_file(args, func)
        code = func(args)
        sys.stdout.flush()  # here, so that a closed pipe is met inside the try
        return code
    except BrokenPipeError:
        return _closed_pipe()
    except KeyboardInterrupt:
        return INTERRUPTED
    except Interrupted as exc:
        # one line, as for any error, with the shell's status for the signal
        return _fail(args, exc, exc.exit_status)
    except _Refused as exc:
        return _fail(args, exc, USAGE)
    except ValidationError as exc:
        return _fail(args, exc, USAGE)
    except PermissionError as exc:  # not root: one message and one exit code, before any command
        return _fail(args, exc, NEEDS_ROOT)
    except (NetnskitError, OSError) as exc:
        denied = isinstance(exc, PermissionDeniedError) or (
            isinstance(exc, StepError) and isinstance(exc.error, PermissionDeniedError)
        )
        return _fail(args, exc, NEEDS_ROOT if denied else FAILED)


def _fail(args: argparse.Namespace, exc: BaseException, code: int) -> int:
    """One line on stderr (the traceback only with -v); returns ``code``."""
    if args.verbose:
        traceback.print_exc()
    message = " ".join(str(exc).split()) or type(exc).__name__
    try:
        print(f"netnskit {args.verb}: {message}", file=sys.stderr)
    except BrokenPipeError:
        return _closed_pipe()
    return code


def _closed_pipe() -> int:
    """The reader went away: print nothing more, and keep Python from complaining at exit."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return CLOSED_PIPE


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


def _cable_verbs(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``impair``, ``link`` and ``faults``: change a network's cables while it is up."""
    raw = argparse.RawDescriptionHelpFormatter
    specs: list[tuple[str, Verb, str, str]] = [
        (
            "impair",
            cmd_impair,
            "impair a cable now (both ends): --delay 100ms --loss 5%% ..., or --clear",
            "sudo netnskit impair examples/seed.toml blue --loss 5% --rate 10mbit",
        ),
        (
            "link",
            cmd_link,
            "cut a cable (down: both ends) or restore it (up: with its routes)",
            "sudo netnskit link examples/seed.toml blue down",
        ),
        (
            "faults",
            cmd_faults,
            "run the file's [[fault]] schedule, a line per change; Ctrl-C restores",
            "sudo netnskit faults examples/seed.toml",
        ),
    ]
    for name, func, line, example in specs:
        verb = verbs.add_parser(
            name, help=line, description=line.replace("%%", "%"), epilog=f"example:\n  {example}", formatter_class=raw
        )
        _common(verb, top=False, options=set())
        verb.add_argument("file", metavar="FILE", help="the network, as a TOML file (see examples/seed.toml)")
        if name in ("impair", "link"):
            verb.add_argument("name", metavar="NAME", help="a namespace on the bridge or a link of the file")
        if name == "impair":
            _impair_flags(verb)
        if name == "link":
            verb.add_argument("state", choices=("down", "up"), help="down: cut the cable; up: restore it")
        verb.set_defaults(func=func)

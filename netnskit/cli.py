"""The command line: ``netnskit VERB ...``, one function per verb, thin over the library.

``netnskit demo`` walks the whole namespace story inside a throwaway sandbox (see
:mod:`netnskit.demo`); it exits 0 only if every check held. ``-v`` logs every command run,
evidence reads included, on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from netnskit.errors import NetnskitError

__all__ = ["build_parser", "main"]

Verb = Callable[[argparse.Namespace], int]


def cmd_demo(args: argparse.Namespace) -> int:
    """``netnskit demo``: the whole story, live, in a sandbox; 0 only if every check held."""
    from netnskit.demo import run_demo
    from netnskit.sandbox import sandbox_problem

    problem = sandbox_problem()
    if problem:
        print(f"netnskit demo: cannot run: {problem}", file=sys.stderr)
        return 2
    return 0 if run_demo() else 1


def _verbosity(parser: argparse.ArgumentParser, *, default: object) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="log every command run (on stderr)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: global options and one subcommand per verb."""
    parser = argparse.ArgumentParser(prog="netnskit", description=__doc__.splitlines()[0] if __doc__ else None)
    _verbosity(parser, default=False)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    demo = verbs.add_parser("demo", help="walk the whole namespace story live, inside a throwaway sandbox (root)")
    # SUPPRESS: "-v" given before the verb is not reset by the verb's own default
    _verbosity(demo, default=argparse.SUPPRESS)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="netnskit: %(message)s", stream=sys.stderr)
    func: Verb = args.func
    try:
        return func(args)
    except NetnskitError as exc:
        print(f"netnskit {args.verb}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

"""The namespace story, live: eight steps inside a throwaway Sandbox, every command shown, every step checked.

``run_demo()`` is what ``netnskit demo`` runs. The story is out of the core import path:
``import netnskit`` and ``import netnskit.cli`` never load it (the ``demo`` verb imports it when run).

Its sections, one file each:

- :mod:`~netnskit.demo.topology`: the names and addresses (all inside the sandbox)
- :mod:`~netnskit.demo.echo`: :class:`EchoRunner`, which prints every command before running it
- :mod:`~netnskit.demo.evidence`: independent reads and real packets (ping, ``/proc/net/snmp``,
  TCP through :mod:`netnskit.probe`, HTTP)
- :mod:`~netnskit.demo.checks`: :class:`Check` and the ``check_*`` functions, each a checked fact
- :mod:`~netnskit.demo.story`: :class:`Story`, the eight steps (actions, then checks)
- :mod:`~netnskit.demo.run`: :func:`run_demo`, the story in a sandbox, the real host compared, the tally
"""

from netnskit.demo.checks import (
    Check,
    check_address,
    check_attached,
    check_fetch,
    check_firewall,
    check_link_gone,
    check_link_up,
    check_neighbour,
    check_no_neighbours,
    check_no_reply,
    check_only_loopback,
    check_reachable,
    check_state,
    check_tables_empty,
    check_tcp_peer,
    check_unreachable,
    firewall_rules,
)
from netnskit.demo.echo import EchoRunner
from netnskit.demo.evidence import (
    Exchange,
    Fetch,
    PingResult,
    http_fetch,
    icmp_echo_requests,
    ping,
    tcp_exchange,
)
from netnskit.demo.run import run_demo
from netnskit.demo.story import Story
from netnskit.demo.topology import BRIDGE, COLOURS, PAGE

__all__ = [
    "BRIDGE",
    "COLOURS",
    "Check",
    "EchoRunner",
    "Exchange",
    "Fetch",
    "PAGE",
    "PingResult",
    "Story",
    "check_address",
    "check_attached",
    "check_fetch",
    "check_firewall",
    "check_link_gone",
    "check_link_up",
    "check_neighbour",
    "check_no_neighbours",
    "check_no_reply",
    "check_only_loopback",
    "check_reachable",
    "check_state",
    "check_tables_empty",
    "check_tcp_peer",
    "check_unreachable",
    "firewall_rules",
    "http_fetch",
    "icmp_echo_requests",
    "ping",
    "run_demo",
    "tcp_exchange",
]

"""Network: a whole topology as one object (or one TOML file), with plan, up, down, status and check.

One file per concept: spec (the description), toml (reading it), steps (the plan), state and status
(what the kernel has), drift (what is ours and no longer described), firewall (NAT and forwards),
impair (each cable's qdiscs and loss), faults (the schedule), files (/etc/netns), processes,
teardown, check, locks; network holds the class.
Design notes (ownership marks, forwarding, the bridge-wide choices, locks): docs/network-notes.md.
"""

from __future__ import annotations

from netnskit.errors import ConfigError
from netnskit.network.check import CheckReport, Probe
from netnskit.network.drift import Owned
from netnskit.network.faults import FaultChange, FaultEvent
from netnskit.network.impair import CableImpairment, EndImpairment
from netnskit.network.network import Network
from netnskit.network.processes import ProcessStatus
from netnskit.network.spec import (
    Cable,
    ExtraNamespace,
    FaultSpec,
    ForwardSpec,
    LinkSpec,
    NamespaceSpec,
    ProcessSpec,
    RouteSpec,
    group_for,
    mark_for,
)
from netnskit.network.status import MissingStep, NamespaceStatus, NetworkStatus
from netnskit.network.teardown import Teardown, cleanup

__all__ = [
    "Cable",
    "CableImpairment",
    "CheckReport",
    "EndImpairment",
    "FaultChange",
    "FaultEvent",
    "FaultSpec",
    "NamespaceStatus",
    "ConfigError",
    "ExtraNamespace",
    "ForwardSpec",
    "LinkSpec",
    "MissingStep",
    "NamespaceSpec",
    "Network",
    "NetworkStatus",
    "Owned",
    "Probe",
    "ProcessSpec",
    "ProcessStatus",
    "RouteSpec",
    "Teardown",
    "cleanup",
    "group_for",
    "mark_for",
]

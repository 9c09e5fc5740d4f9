"""Masquerade and port forwards with iptables: only netnskit's rules, exactly netnskit's.

rules.py: Rule, SavedRules and the shared chains; sysctl.py: Sysctl; records.py: the sysctl values
found before netnskit changed them, kept beside the locks; host.py: what the rest of the host says
(foreign DNATs of a port, what needs forwarding, the uplinks); backend.py: the FirewallBackend
protocol; iptables.py: Backend and Firewall (that protocol over iptables); objects.py: NatRule and
PortForward. The chains and rules: docs/ARCHITECTURE.md, section 6, and the README.
"""

from netnskit.firewall.iptables import BACKENDS, Backend, Firewall, Sweep, detect_backend, split_brain_warning
from netnskit.firewall.objects import NatRule, PortForward
from netnskit.firewall.records import SysctlRecord, SysctlRecords
from netnskit.firewall.rules import USER_CHAIN, Rule, SavedRules
from netnskit.firewall.sysctl import Sysctl

__all__ = [
    "BACKENDS",
    "USER_CHAIN",
    "Backend",
    "Firewall",
    "NatRule",
    "PortForward",
    "Rule",
    "SavedRules",
    "Sweep",
    "Sysctl",
    "SysctlRecord",
    "SysctlRecords",
    "detect_backend",
    "split_brain_warning",
]

"""Masquerade and port forwards with iptables: only netnskit's rules, exactly netnskit's.

rules.py: Rule, SavedRules and the shared chains; sysctl.py: Sysctl; backend.py: the
FirewallBackend protocol; iptables.py: Backend and Firewall (that protocol over iptables);
objects.py: NatRule and PortForward. Design notes: docs/firewall-notes.md.
"""

from netnskit.firewall.iptables import BACKENDS, Backend, Firewall, detect_backend, split_brain_warning
from netnskit.firewall.objects import NatRule, PortForward
from netnskit.firewall.rules import MARK, Rule, SavedRules
from netnskit.firewall.sysctl import Sysctl

__all__ = [
    "BACKENDS",
    "MARK",
    "Backend",
    "Firewall",
    "NatRule",
    "PortForward",
    "Rule",
    "SavedRules",
    "Sysctl",
    "detect_backend",
    "split_brain_warning",
]

"""netnskit: Linux network namespaces, veth pairs, bridges, NAT and port forwards as objects."""

from netnskit.capture import Capture
from netnskit.errors import (
    AlreadyExistsError,
    BusyError,
    CommandError,
    CommandNotFoundError,
    CommandTimeoutError,
    ConfigError,
    ConflictError,
    NetnskitError,
    NotFoundError,
    NotOursError,
    PermissionDeniedError,
    ProcessError,
    SandboxError,
    StepError,
    ValidationError,
)
from netnskit.firewall import NatRule, PortForward
from netnskit.link import Bridge, Link, Route, VethPair, Vlan
from netnskit.netns import Namespace
from netnskit.network import Network
from netnskit.process import ProcessHandle
from netnskit.runner import (
    LiveRunner,
    PrefixRunner,
    Result,
    Runner,
    ShRunner,
    SshRunner,
    netns_runner,
    nsenter_runner,
    sudo_runner,
)
from netnskit.sandbox import Sandbox

__version__ = "0.1.0"

__all__ = [
    "AlreadyExistsError",
    "Bridge",
    "BusyError",
    "Capture",
    "CommandError",
    "CommandNotFoundError",
    "CommandTimeoutError",
    "ConfigError",
    "ConflictError",
    "Link",
    "LiveRunner",
    "Namespace",
    "NatRule",
    "NetnskitError",
    "Network",
    "NotFoundError",
    "NotOursError",
    "PermissionDeniedError",
    "PortForward",
    "PrefixRunner",
    "ProcessError",
    "ProcessHandle",
    "Result",
    "Route",
    "Runner",
    "SandboxError",
    "Sandbox",
    "ShRunner",
    "SshRunner",
    "StepError",
    "ValidationError",
    "VethPair",
    "Vlan",
    "__version__",
    "netns_runner",
    "nsenter_runner",
    "sudo_runner",
]

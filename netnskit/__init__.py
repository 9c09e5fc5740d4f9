"""netnskit: Linux network namespaces, veth pairs, bridges, NAT and port forwards as objects."""

from netnskit.capture import Capture
from netnskit.errors import (
    AlreadyExistsError,
    CommandError,
    CommandNotFoundError,
    CommandTimeoutError,
    NetnskitError,
    NotFoundError,
    PermissionDeniedError,
    ProcessError,
    SandboxError,
    StepError,
    ValidationError,
)
from netnskit.firewall import NatRule, PortForward
from netnskit.link import Bridge, Link, Route, VethPair
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
    "Capture",
    "CommandError",
    "CommandNotFoundError",
    "CommandTimeoutError",
    "Link",
    "LiveRunner",
    "Namespace",
    "NatRule",
    "NetnskitError",
    "Network",
    "NotFoundError",
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
    "__version__",
    "netns_runner",
    "nsenter_runner",
    "sudo_runner",
]

"""The story's names and addresses: the bridge, the four colours, the LAN and internet stand-ins.

Every address lives inside the sandbox: 192.168.15.0/24 (the bridge), 192.168.1.0/24 (the LAN
stand-in) and 203.0.113.0/24 (the internet stand-in, a documentation range).
"""

from __future__ import annotations

__all__ = [
    "BRIDGE",
    "COLOURS",
    "HOST_BRIDGE_IP",
    "HOST_LAN_IP",
    "INTERNET_IP",
    "LAN_HOST_IP",
    "LAN_WAN_IP",
    "OWNER",
    "PAGE",
    "PROBE_PORT",
    "SUBNET",
    "WEB_PORT",
]

BRIDGE = "v-net-0"
SUBNET = "192.168.15.0/24"
HOST_BRIDGE_IP = "192.168.15.5"
COLOURS = {"red": 1, "blue": 2, "orange": 3, "gray": 4}
HOST_LAN_IP = "192.168.1.2"
LAN_HOST_IP = "192.168.1.3"
LAN_WAN_IP = "203.0.113.1"
INTERNET_IP = "203.0.113.10"
PROBE_PORT = 8080
WEB_PORT = 80
OWNER = "demo"
PAGE = "hello from blue, served by netnskit demo\n"

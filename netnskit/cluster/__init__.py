"""One network across several hosts: each host's part is a Network driven through its own runner (ssh),
and the hosts' bridges are joined by VXLAN links (unicast, one flood entry per peer).

One file per concept: spec (hosts, placement, the split into per-host parts), vxlan (the Vxlan
link object and its ``bridge fdb`` commands), overlay (a host's VXLAN steps, read and removed
from the marks), toml (the cluster file), cluster (the class: plan, up, down, status), check
(probes across hosts), lab (throwaway sandbox hosts running sshd, for tests and benchmarks).
"""

from __future__ import annotations

from netnskit.cluster.cluster import Cluster, ClusterStatus, ClusterTeardown, HostStatus, ssh_control_dir
from netnskit.cluster.spec import HostPart, HostSpec, vxlan_name_for
from netnskit.cluster.vxlan import VXLAN_OVERHEAD, VXLAN_PORT, Vxlan, vni_for

__all__ = [
    "VXLAN_OVERHEAD",
    "VXLAN_PORT",
    "Cluster",
    "ClusterStatus",
    "ClusterTeardown",
    "HostPart",
    "HostSpec",
    "HostStatus",
    "Vxlan",
    "ssh_control_dir",
    "vni_for",
    "vxlan_name_for",
]

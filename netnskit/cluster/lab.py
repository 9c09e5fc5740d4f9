"""SandboxHosts: a cluster's hosts on one machine, for tests and benchmarks, none of it on the real network.

Each host is a :class:`~netnskit.sandbox.Sandbox` (its own network and mount namespaces) with a
private ``/run`` (a tmpfs: ``/run/netns`` and ``/run/sshd`` exist only there) and a real OpenSSH
``sshd`` listening only on its underlay address, with a host key and an authorized client key
made for the lab in a temporary folder. A further sandbox, the *driver*, holds the underlay: a
bridge with a veth to each host (10.200.0.0/24 by default, addresses that exist only inside the
sandboxes) and is where the controller's ssh runs (``driver.runner``, or a process started with
``driver.enter_argv``). Closing the lab ends sshd and every other process started in the hosts
and the driver, by pid, and removes the keys.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from types import TracebackType

import attrs

from netnskit.errors import SandboxError
from netnskit.runner import Process
from netnskit.sandbox import TMPFS_SOURCE, Sandbox, sandbox_problem

__all__ = ["LabHost", "SandboxHosts", "lab_problem"]

_SBIN = ":/usr/sbin:/sbin"


def _sshd() -> str | None:
    return shutil.which("sshd", path=os.environ.get("PATH", "") + _SBIN)


def lab_problem() -> str | None:
    """Why sandbox hosts cannot be made here (a sandbox cannot, sshd or ssh is missing), or None."""
    problem = sandbox_problem()
    if problem:
        return problem
    if _sshd() is None:
        return "'sshd' is missing; install the 'openssh-server' package"
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"{tool!r} is missing; install the 'openssh-client' package"
    return None


@attrs.frozen
class LabHost:
    """One sandbox host: its name, underlay address, sandbox and sshd process."""

    name: str
    address: ipaddress.IPv4Address
    box: Sandbox = attrs.field(eq=False, repr=False)
    sshd: Process = attrs.field(eq=False, repr=False)

    @property
    def ssh(self) -> str:
        """Its ssh destination: ``root@ADDRESS``."""
        return f"root@{self.address}"


def _wait(test: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        if time.monotonic() > deadline:
            raise SandboxError(f"sandbox hosts: {what} did not happen within {timeout:.0f} s")
        time.sleep(0.05)


class SandboxHosts:
    """``count`` sandbox hosts running sshd, joined by an underlay bridge in a driver sandbox.

    ``with SandboxHosts(3) as lab: Cluster.from_toml(path, **lab.cluster_options())`` drives them
    from the driver. Hosts are named ``names`` (a, b, c... by default) and addressed ``addresses``
    (``.1``, ``.2``... in ``underlay`` by default); the driver has the last free address (``.254``).
    """

    def __init__(
        self,
        count: int = 3,
        *,
        names: Sequence[str] | None = None,
        addresses: Sequence[str] | None = None,
        underlay: str = "10.200.0.0/24",
        timeout: float = 15.0,
    ) -> None:
        """Prepare the lab; it is made on ``__enter__`` (or ``open()``).

        ``addresses``: the hosts' underlay addresses (default: ``.1``, ``.2``... of ``underlay``),
        inside ``underlay``; the driver takes the last address of it that no host has.
        """
        self.names = list(names) if names is not None else [chr(ord("a") + i) for i in range(count)]
        if len(self.names) != count or len(set(self.names)) != count:
            raise SandboxError(f"sandbox hosts: {count} distinct names are needed, got {self.names}")
        self.underlay = ipaddress.IPv4Network(underlay)
        pool = list(self.underlay.hosts())
        chosen = [ipaddress.IPv4Address(a) for a in addresses] if addresses is not None else pool[:count]
        if len(chosen) != count or len(set(chosen)) != count or any(a not in self.underlay for a in chosen):
            raise SandboxError(f"sandbox hosts: {count} distinct addresses in {self.underlay} are needed")
        self.addresses = chosen
        free = [a for a in pool if a not in chosen]
        if not free:
            raise SandboxError(f"sandbox hosts: no address left in {self.underlay} for the driver")
        self.driver_address = free[-1]
        self.timeout = timeout
        self.hosts: list[LabHost] = []
        self._driver: Sandbox | None = None
        self._folder: str | None = None
        self._boxes: list[Sandbox] = []

    # --- what the controller needs ----------------------------------------------------------------

    @property
    def driver(self) -> Sandbox:
        """The sandbox that holds the underlay and runs the controller's ssh."""
        if self._driver is None:
            raise SandboxError("the sandbox hosts are not open")
        return self._driver

    @property
    def folder(self) -> str:
        """The lab's temporary folder (keys, known_hosts, sshd logs)."""
        if self._folder is None:
            raise SandboxError("the sandbox hosts are not open")
        return self._folder

    @property
    def ssh_options(self) -> list[str]:
        """ssh options that reach the hosts with the lab's key, knowing their host keys, and nothing else."""
        folder = self.folder
        return [
            "-F",
            "/dev/null",  # no user or system ssh_config on this machine applies
            "-i",
            os.path.join(folder, "client_key"),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={os.path.join(folder, 'known_hosts')}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
        ]

    def cluster_options(self) -> dict[str, object]:
        """Keyword arguments for :class:`~netnskit.cluster.Cluster` run from this process through the driver."""
        return {"local_runner": self.driver.runner, "ssh_options": self.ssh_options}

    def host(self, name: str) -> LabHost:
        """The host called ``name``."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    # --- making and ending -------------------------------------------------------------------------

    def open(self) -> SandboxHosts:
        """Make the driver, the hosts, their keys and sshd; raises SandboxError with the reason if it cannot."""
        problem = lab_problem()
        if problem:
            raise SandboxError(f"cannot make sandbox hosts: {problem}")
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def _open(self) -> None:
        self._folder = tempfile.mkdtemp(prefix="netnskit-lab-")
        driver = self._driver = Sandbox(timeout=self.timeout).open()
        run = driver.runner
        gateway = f"{self.driver_address}/{self.underlay.prefixlen}"
        # the underlay is IPv4 only (addrgenmode none): no link-local address appearing later to change a host
        for argv in (
            ["ip", "link", "add", "ul0", "type", "bridge"],
            ["ip", "addr", "add", gateway, "dev", "ul0"],
            ["ip", "link", "set", "ul0", "addrgenmode", "none", "up"],
        ):
            run.run(argv).check("making the sandbox hosts' underlay")
        self._keygen("client_key")
        authorized = os.path.join(self.folder, "authorized_keys")
        shutil.copyfile(os.path.join(self.folder, "client_key.pub"), authorized)
        os.chmod(authorized, 0o600)
        known = []
        for name, address in zip(self.names, self.addresses, strict=True):
            host_key = self._keygen(f"host_key_{name}")
            with open(host_key + ".pub") as handle:
                known.append(f"{address} {handle.read().strip()}")
            self.hosts.append(self._host(name, address, host_key, authorized))
        with open(os.path.join(self.folder, "known_hosts"), "w") as handle:
            handle.write("\n".join(known) + "\n")

    def _keygen(self, name: str) -> str:
        path = os.path.join(self.folder, name)
        argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"netnskit-lab {name}", "-f", path]
        self.driver.runner.run(argv).check(f"making the lab's ssh key {name}")
        return path

    def _host(self, name: str, address: ipaddress.IPv4Address, host_key: str, authorized: str) -> LabHost:
        box = Sandbox(timeout=self.timeout).open()
        self._boxes.append(box)
        run = box.runner
        # a private /run: /run/netns and sshd's /run/sshd live only in this host's mount namespace
        for argv in (
            ["mount", "-t", "tmpfs", "-o", "mode=0755,size=4m", "netnskit-lab-run", "/run"],
            ["mkdir", "-p", "/run/netns", "/run/sshd"],
            ["mount", "-t", "tmpfs", "-o", "mode=0755,size=1m", TMPFS_SOURCE, "/run/netns"],
        ):
            run.run(argv).check(f"making host {name}'s private /run")
        # a fresh machine's root has no shell start-up of this machine's: Debian's bash reads ~/.bashrc
        # for every ssh command, and a slow one (here: pyenv init, 0.6 s) would be paid per command
        for dotfile in (".bashrc", ".ssh/rc"):
            path = os.path.join(os.path.expanduser("~root"), dotfile)
            if os.path.isfile(path):
                run.run(["mount", "--bind", "/dev/null", path]).check(f"hiding {path} from host {name}")
        cable = f"ul-{name}"[:15]
        peer = ["ip", "link", "add", cable, "master", "ul0", "type", "veth", "peer", "name", "ul0"]
        self.driver.runner.run([*peer, "netns", str(box.pid)]).check(f"cabling host {name} to the underlay")
        self.driver.runner.run(["ip", "link", "set", cable, "addrgenmode", "none", "up"]).check(f"cabling host {name}")
        prefix = self.underlay.prefixlen
        run.run(["ip", "addr", "add", f"{address}/{prefix}", "dev", "ul0"]).check(f"addressing host {name}")
        run.run(["ip", "link", "set", "ul0", "addrgenmode", "none", "up"]).check(f"bringing up host {name}'s cable")
        sshd = box.start(self._sshd_argv(name, address, host_key, authorized))
        listening = f"{address}:22"

        def ready() -> bool:
            if sshd.poll() is not None:
                with open(os.path.join(self.folder, f"sshd-{name}.log")) as log:
                    raise SandboxError(f"sshd of host {name} exited: {log.read().strip()[-500:]}")
            out = run.run(["ss", "-Htln"]).stdout
            return any(listening in line.split() for line in out.splitlines())

        _wait(ready, self.timeout, f"sshd listening on {listening} in host {name}")
        return LabHost(name, address, box, sshd)

    def _sshd_argv(self, name: str, address: ipaddress.IPv4Address, host_key: str, authorized: str) -> list[str]:
        sshd = _sshd()
        assert sshd is not None  # lab_problem() said so
        settings = {
            "ListenAddress": str(address),  # only the host's underlay address
            "AddressFamily": "inet",
            "HostKey": host_key,
            "AuthorizedKeysFile": authorized,
            "AuthenticationMethods": "publickey",
            "PasswordAuthentication": "no",
            "KbdInteractiveAuthentication": "no",
            "UsePAM": "no",
            "PermitRootLogin": "prohibit-password",
            "PidFile": "/run/sshd/sshd.pid",  # the host's private /run
            # the keys are in a 0700 folder of ours under /tmp, whose mode (1777) StrictModes refuses
            "StrictModes": "no",
            "AllowTcpForwarding": "no",
            "X11Forwarding": "no",
            "LogLevel": "INFO",
        }
        argv = [sshd, "-D", "-f", "/dev/null", "-E", os.path.join(self.folder, f"sshd-{name}.log")]
        for key, value in settings.items():
            argv += ["-o", f"{key}={value}"]
        return argv

    def close(self) -> None:
        """End sshd and every process started in the hosts and the driver (by pid), then the sandboxes."""
        for host in self.hosts:
            with contextlib.suppress(ProcessLookupError):
                host.sshd.terminate()
        for box in self._boxes:
            box.close()  # ends what it started (sshd) and anything left in its namespaces
        self._boxes.clear()
        self.hosts.clear()
        if self._driver is not None:
            self._driver.close()  # the controller's ssh connections, if any were left
            self._driver = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> SandboxHosts:
        """Make the lab."""
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """End the lab."""
        self.close()

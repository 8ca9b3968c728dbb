"""Two throw-away Linux network namespaces joined by a veth pair (for the live benchmark).

Needs root and iproute2. IPv6 is switched off on both ends, so no stray router solicitations
or DAD frames mix with the replayed traffic; everything is deleted on exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000


def netlab_problem() -> str | None:
    """Why namespaces cannot be made here (None when they can)."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip"):
        return "the `ip` tool (iproute2) is not installed"
    return None


def _run(cmd: Sequence[str]) -> None:
    subprocess.run(list(cmd), capture_output=True, text=True, check=True, timeout=30)


@dataclass
class VethPair:
    """Namespace ``names[i]`` holds interface ``ifaces[i]``."""

    names: tuple[str, str]
    ifaces: tuple[str, str]

    def run(self, i: int, cmd: Sequence[str], timeout: float = 600) -> subprocess.CompletedProcess:
        """Run ``cmd`` in namespace ``i``; text output captured, no check."""
        return subprocess.run(["ip", "netns", "exec", self.names[i], *cmd], capture_output=True,
                              text=True, timeout=timeout)

    @contextlib.contextmanager
    def entered(self, i: int) -> Iterator[None]:
        """The calling thread lives in namespace ``i`` for the block; sockets opened inside
        stay there afterwards."""
        libc = ctypes.CDLL(None, use_errno=True)
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.names[i]}", os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into the namespace failed")
            try:
                yield
            finally:
                libc.setns(home, CLONE_NEWNET)
        finally:
            os.close(home)
            os.close(target)


@contextlib.contextmanager
def veth_pair(mtu: int = 9000) -> Iterator[VethPair]:
    """Make the two namespaces and the veth pair; always cleaned up."""
    problem = netlab_problem()
    if problem:
        raise RuntimeError(problem)
    token = secrets.token_hex(3)
    names = (f"jxb-{token}-0", f"jxb-{token}-1")
    ifaces = (f"jxb{token}a", f"jxb{token}b")
    made: list[str] = []
    try:
        for name in names:
            _run(["ip", "netns", "add", name])
            made.append(name)
            _run(["ip", "-n", name, "link", "set", "lo", "up"])
        _run(["ip", "link", "add", ifaces[0], "netns", names[0], "type", "veth", "peer", "name",
              ifaces[1], "netns", names[1]])
        for name, iface in zip(names, ifaces):
            _run(["ip", "netns", "exec", name, "sysctl", "-qw",
                  f"net.ipv6.conf.{iface}.disable_ipv6=1"])
            _run(["ip", "-n", name, "link", "set", iface, "mtu", str(mtu), "up"])
        yield VethPair(names, ifaces)
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)

"""Test helper: throw-away Linux network namespaces joined by veth pairs.

    with veth_namespaces(2) as net:            # skips the test when not root / no `ip netns`
        with net.entered(0):                   # this thread now lives in namespace 0
            capture.start()                    # sockets opened here stay in namespace 0
        net.send_frames(1, [frame, ...])       # sent from namespace 1 over its veth end
        net.run(1, ["tcpreplay", "-i", net.ifaces[1], "x.pcap"])

Two namespaces are joined directly by one veth pair; with ``n > 2`` every namespace gets a
veth into a bridge that lives in an extra hub namespace. Names are unique per run, IPv6 is
off (no stray router solicitations or DAD frames) unless asked for, and everything is deleted
on exit even when the body fails. Traffic never leaves these namespaces.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import secrets
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest

CLONE_NEWNET = 0x40000000
_SEND_SCRIPT = r"""
import socket, struct, sys, time
iface, pps = sys.argv[1], float(sys.argv[2])
data = sys.stdin.buffer.read()
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
pos, gap, t0, i = 0, (1.0 / pps if pps > 0 else 0.0), time.monotonic(), 0
while pos < len(data):
    (n,) = struct.unpack_from("I", data, pos)
    if gap:
        delay = t0 + i * gap - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    s.send(data[pos + 4 : pos + 4 + n])
    pos += 4 + n
    i += 1
"""


def netns_problem() -> str | None:
    """Why namespaces cannot be used here (None when they can)."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs the live tests as root)"
    if not shutil.which("ip"):
        return "the `ip` tool (iproute2) is not installed"
    return None


def require_netns() -> None:
    """Skip the calling test, with the reason, when namespaces cannot be used."""
    problem = netns_problem()
    if problem:
        pytest.skip(problem)


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["ip", "netns", "exec", ns, "ip", *args] if ns else ["ip", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=20)


@dataclass
class NetnsSetup:
    """The namespaces made by :func:`veth_namespaces` (index i: names[i], ifaces[i], ...)."""

    names: list[str]
    ifaces: list[str]
    addresses: list[str]  # "a.b.c.d/prefix" of ifaces[i]
    macs: list[str] = field(default_factory=list)
    hub: str | None = None  # namespace holding the bridge when n > 2

    @property
    def ips(self) -> list[str]:
        """The bare IPv4 addresses."""
        return [a.split("/")[0] for a in self.addresses]

    def run(self, i: int, cmd: Sequence[str], timeout: float = 60, check: bool = True,
            input: bytes | None = None) -> subprocess.CompletedProcess:  # noqa: A002
        """Run ``cmd`` inside namespace ``i``; output captured as bytes."""
        return subprocess.run(["ip", "netns", "exec", self.names[i], *cmd], input=input,
                              capture_output=True, timeout=timeout, check=check)

    def python(self, i: int, code: str, *args: str, timeout: float = 60,
               input: bytes | None = None) -> subprocess.CompletedProcess:  # noqa: A002
        """Run Python ``code`` (this interpreter) inside namespace ``i``; fails loudly."""
        res = self.run(i, [sys.executable, "-c", code, *args], timeout=timeout, check=False,
                       input=input)
        if res.returncode != 0:
            raise AssertionError(f"python in {self.names[i]} failed:\n{res.stderr.decode()}")
        return res

    def send_frames(self, i: int, frames: Sequence[bytes], pps: float = 0) -> None:
        """Send raw Ethernet frames out of ``ifaces[i]`` (``pps`` > 0 paces them)."""
        blob = b"".join(struct.pack("I", len(f)) + f for f in frames)
        self.python(i, _SEND_SCRIPT, self.ifaces[i], str(pps), input=blob)

    @contextlib.contextmanager
    def entered(self, i: int) -> Iterator[None]:
        """Move the calling thread into namespace ``i`` for the block (sockets opened inside
        keep it afterwards), then back."""
        libc = ctypes.CDLL(None, use_errno=True)
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.names[i]}", os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into the test namespace failed")
            try:
                yield
            finally:
                if libc.setns(home, CLONE_NEWNET) != 0:  # pragma: no cover - should not fail
                    raise OSError(ctypes.get_errno(), "setns back home failed")
        finally:
            os.close(home)
            os.close(target)


@contextlib.contextmanager
def veth_namespaces(n: int = 2, subnet: str = "10.203.0.0/24", addresses: Sequence[str] = (),
                    ipv6: bool = False) -> Iterator[NetnsSetup]:
    """Create ``n`` namespaces on one Ethernet segment; addresses default to the first hosts
    of ``subnet``. Skips the test when namespaces are unavailable. Always cleans up."""
    require_netns()
    if n < 2:
        raise ValueError("need at least two namespaces")
    token = secrets.token_hex(3)
    net = ipaddress.ip_network(subnet)
    hosts = net.hosts()
    addrs = list(addresses) or [f"{next(hosts)}/{net.prefixlen}" for _ in range(n)]
    names = [f"jx-{token}-{i}" for i in range(n)]
    hub = f"jx-{token}-hub" if n > 2 else None
    created: list[str] = []
    try:
        _ip("netns", "add", names[0])
    except subprocess.CalledProcessError as exc:  # e.g. a container without CAP_SYS_ADMIN
        pytest.skip(f"cannot create network namespaces here: {exc.stderr.strip()}")
    created.append(names[0])
    try:
        for name in [*names[1:], *([hub] if hub else [])]:
            _ip("netns", "add", name)
            created.append(name)
        for name in created:
            _ip("link", "set", "lo", "up", ns=name)
        ifaces = [f"jx{token}e{i}" for i in range(n)]
        if n == 2:
            _ip("link", "add", ifaces[0], "netns", names[0], "type", "veth", "peer", "name",
                ifaces[1], "netns", names[1])
        else:
            _ip("link", "add", "br0", "type", "bridge", ns=hub)
            _ip("link", "set", "br0", "up", ns=hub)
            for i in range(n):
                peer = f"jx{token}p{i}"
                _ip("link", "add", ifaces[i], "netns", names[i], "type", "veth", "peer",
                    "name", peer, "netns", hub)
                _ip("link", "set", peer, "master", "br0", "up", ns=hub)
        macs = []
        for i in range(n):
            if not ipv6:
                subprocess.run(["ip", "netns", "exec", names[i], "sysctl", "-qw",
                                f"net.ipv6.conf.{ifaces[i]}.disable_ipv6=1"],
                               capture_output=True, check=True, timeout=20)
            _ip("addr", "add", addrs[i], "dev", ifaces[i], ns=names[i])
            _ip("link", "set", ifaces[i], "up", ns=names[i])
            out = _ip("-o", "link", "show", ifaces[i], ns=names[i]).stdout
            macs.append(out.split("link/ether ")[1].split()[0])
        setup = NetnsSetup(names, ifaces, addrs, macs, hub)
    except subprocess.CalledProcessError as exc:
        _delete(created)
        raise RuntimeError(f"namespace setup failed: {exc.cmd}: {exc.stderr}") from exc
    except BaseException:
        _delete(created)
        raise
    try:
        yield setup
    finally:
        _delete(created)


def _delete(created: list[str]) -> None:
    for name in created:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)

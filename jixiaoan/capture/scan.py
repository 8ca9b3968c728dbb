"""Active discovery: ARP sweep of an adapter's subnet (scapy ``srp``), names by reverse DNS."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from jixiaoan.capture.interfaces import (
    CapturePermissionError,
    InterfaceInfo,
    LiveCaptureError,
    UnknownInterfaceError,
    list_interfaces,
    permission_message,
    vendor_for_mac,
)

MAX_SCAN_HOSTS = 1022  # a /22; larger sweeps must be asked for


@dataclass
class FoundDevice:
    """A host that answered the ARP sweep."""

    ip: str
    mac: str
    vendor: str = ""
    hostname: str = ""


def _adapter(iface: str) -> InterfaceInfo:
    for info in list_interfaces():
        if info.name == iface:
            return info
    names = ", ".join(i.name for i in list_interfaces())
    raise UnknownInterfaceError(iface, f"no such network adapter; adapters here: {names}")


def scan_network(info: InterfaceInfo, network: str | None = None,
                 max_hosts: int = MAX_SCAN_HOSTS) -> ipaddress.IPv4Network:
    """The IPv4 network to sweep: ``network`` or the adapter's own subnet, at most
    ``max_hosts`` addresses (a larger one is a ValueError that says how to ask for it)."""
    if network is None:
        if not info.ipv4:
            raise LiveCaptureError(info.name, "the adapter has no IPv4 address to scan around; "
                                   "give the network to scan (e.g. 192.168.137.0/24)")
        net = ipaddress.ip_interface(info.ipv4[0]).network
    else:
        net = ipaddress.ip_network(network, strict=False)
    if net.version != 4:
        raise ValueError("ARP scans need an IPv4 network")
    if net.num_addresses - 2 > max_hosts:
        raise ValueError(f"{net} has {net.num_addresses - 2} addresses; ARP scans are limited "
                         f"to {max_hosts} (a /22): pass a smaller network or raise max_hosts")
    return net


def reverse_names(ips: list[str], timeout: float = 1.0) -> dict[str, str]:
    """Reverse-DNS names of ``ips`` found within ``timeout`` seconds (others are left out)."""
    if not ips:
        return {}

    def lookup(ip: str) -> str:
        with contextlib.suppress(OSError):
            return socket.gethostbyaddr(ip)[0]
        return ""

    pool = ThreadPoolExecutor(max_workers=min(16, len(ips)), thread_name_prefix="rdns")
    futures = {pool.submit(lookup, ip): ip for ip in ips}
    done, _ = wait(futures, timeout=timeout)
    pool.shutdown(wait=False, cancel_futures=True)
    return {futures[f]: f.result() for f in done if f.result()}


def arp_scan(
    iface: str,
    network: str | None = None,
    timeout: float = 2.0,
    on_found: Callable[[FoundDevice], None] | None = None,
    resolve_names: bool = True,
    max_hosts: int = MAX_SCAN_HOSTS,
    retry: int = 1,
) -> list[FoundDevice]:
    """Ask every address of ``network`` (default: the adapter's subnet) who has it, over
    ``iface``. ``on_found`` gets each device as its answer arrives (without a hostname);
    the returned list, sorted by address, has hostnames where reverse DNS answers quickly."""
    info = _adapter(iface)
    net = scan_network(info, network, max_hosts)
    own_ip = ipaddress.ip_interface(info.ipv4[0]).ip if info.ipv4 else None
    targets = [str(h) for h in net.hosts() if h != own_ip]
    if not targets:
        return []
    try:
        from scapy.error import Scapy_Exception
        from scapy.layers.l2 import ARP, Ether
        from scapy.sendrecv import srp
    except ImportError as exc:  # pragma: no cover - scapy is a dependency
        raise LiveCaptureError(iface, f"ARP scans need scapy: {exc}") from exc
    wanted = set(targets)
    found: dict[str, FoundDevice] = {}

    def answer(pkt) -> bool:  # called by scapy for every frame received while waiting
        arp = pkt.getlayer(ARP) if pkt is not None else None
        if arp is not None and arp.op == 2 and arp.psrc in wanted and arp.psrc not in found:
            mac = str(arp.hwsrc).lower()
            dev = FoundDevice(ip=arp.psrc, mac=mac, vendor=vendor_for_mac(mac))
            found[arp.psrc] = dev
            if on_found is not None:
                on_found(dev)
        return False  # never stop early: srp ends on timeout or when all answered

    src = {"psrc": str(own_ip)} if own_ip is not None else {}
    mac = info.mac or None
    ether = Ether(dst="ff:ff:ff:ff:ff:ff", src=mac) if mac else Ether(dst="ff:ff:ff:ff:ff:ff")
    arp = ARP(op=1, pdst=targets, hwsrc=mac, **src) if mac else ARP(op=1, pdst=targets, **src)
    try:
        srp(ether / arp, iface=iface, timeout=timeout, retry=retry, verbose=0,
            stop_filter=answer, filter="arp")
    except PermissionError as exc:
        raise CapturePermissionError(iface, permission_message()) from exc
    except (OSError, Scapy_Exception) as exc:
        raise LiveCaptureError(iface, f"ARP scan failed: {exc}") from exc
    devices = sorted(found.values(), key=lambda d: ipaddress.ip_address(d.ip))
    if resolve_names:
        names = reverse_names([d.ip for d in devices])
        for dev in devices:
            dev.hostname = names.get(dev.ip, "")
    return devices

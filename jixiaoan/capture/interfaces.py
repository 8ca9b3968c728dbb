"""Network adapters of this machine, capture rights, vendor names, and live-capture errors.

``list_interfaces`` asks the OS (``ip -j addr`` on Linux, psutil where installed) and scapy's
``conf.ifaces`` (friendly adapter descriptions on Windows instead of \\Device\\NPF_{GUID}).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

from jixiaoan.capture.batch import CaptureError


class LiveCaptureError(CaptureError):
    """A live capture that cannot start or stopped on an error; names the adapter."""

    def __init__(self, iface: str, message: str) -> None:
        super().__init__(iface, None, message)
        self.iface = iface


class CapturePermissionError(LiveCaptureError, PermissionError):
    """Capturing needs more rights than the process has."""


class UnknownInterfaceError(LiveCaptureError):
    """The named adapter does not exist."""


class CaptureFilterError(LiveCaptureError, ValueError):
    """The BPF filter expression does not compile."""


def permission_message() -> str:
    """How to get the rights to capture, for this OS."""
    if sys.platform.startswith("win"):
        return ("capturing needs administrator rights and Npcap: run Ji XiaoAn as administrator "
                "(right-click > Run as administrator); get Npcap from https://npcap.com")
    if sys.platform == "darwin":
        return ("capturing needs read access to /dev/bpf*: run as root (sudo), or install "
                "Wireshark's ChmodBPF helper")
    return ("capturing needs root or the CAP_NET_RAW capability: run as root (sudo), or grant "
            "it once with: sudo setcap cap_net_raw,cap_net_admin=eip "
            f"{os.path.realpath(sys.executable)}")


def _linux_has_cap_net_raw() -> bool:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << 13))  # CAP_NET_RAW = 13
    except OSError:
        pass
    return False


def _npcap_installed() -> bool:
    root = os.environ.get("SYSTEMROOT", r"C:\Windows")
    return any(os.path.exists(os.path.join(root, "System32", sub, "wpcap.dll"))
               for sub in ("Npcap", ""))


def capture_permission_problem() -> str | None:
    """None when this process may capture; otherwise what is missing and how to fix it."""
    if sys.platform.startswith("win"):
        import ctypes

        admin = False
        with contextlib.suppress(Exception):
            admin = bool(ctypes.windll.shell32.IsUserAnAdmin())  # type: ignore[attr-defined]
        if not _npcap_installed():
            return "Npcap is not installed: get it from https://npcap.com and install it"
        return None if admin else permission_message()
    if sys.platform == "darwin":
        return None if os.geteuid() == 0 or os.access("/dev/bpf0", os.R_OK) else (
            permission_message())
    if os.geteuid() == 0 or _linux_has_cap_net_raw():
        return None
    return permission_message()


def vendor_for_mac(mac: str) -> str:
    """Vendor name from scapy's OUI table; '' when unknown, for locally administered or
    group addresses, or when the table is missing."""
    mac = mac.replace("-", ":").lower()
    if not mac:
        return ""
    try:
        first = int(mac.split(":")[0], 16)
    except ValueError:
        return ""
    if first & 0x03:  # locally administered (random MACs of phones) or multicast
        return ""
    try:
        from scapy.config import conf

        name = conf.manufdb._get_manuf(mac)
    except Exception:  # noqa: BLE001 - a missing OUI table must not stop anything
        return ""
    return "" if not name or name.lower() == mac.lower() else str(name)


# Addresses that the usual hotspot software gives the hotspot host itself.
HOTSPOT_ADDRESSES = {
    "192.168.137.1/24": "Windows mobile hotspot / Internet Connection Sharing",
    "10.42.0.1/24": "NetworkManager shared connection (Linux hotspot)",
    "192.168.43.1/24": "Android hotspot",
    "172.20.10.1/28": "iPhone personal hotspot",
    "192.168.12.1/24": "hostapd / create_ap default",
}
_DHCP_SERVERS = ("dnsmasq", "hostapd", "udhcpd", "dhcpd", "kea-dhcp4", "create_ap")


@dataclass
class InterfaceInfo:
    """One network adapter as shown to users."""

    name: str  # what LiveCapture takes (on Windows scapy's name for the adapter)
    description: str  # friendly text: Windows adapter description, or the name
    mac: str = ""
    ipv4: list[str] = field(default_factory=list)  # "a.b.c.d/prefix"
    ipv6: list[str] = field(default_factory=list)  # "addr/prefix"
    up: bool = False
    loopback: bool = False
    kind: str = ""  # "bridge", "wireless", "veth", "loopback", ... where the OS says
    looks_like_hotspot: bool = False
    hotspot_reason: str = ""


_HOTSPOT_HOSTS = {cidr.split("/")[0]: (cidr, why) for cidr, why in HOTSPOT_ADDRESSES.items()}
_HOTSPOT_ADAPTERS = ("Wi-Fi Direct Virtual Adapter", "Hosted Network Virtual Adapter")


def hotspot_reason(ipv4: list[str], kind: str = "", dhcp_server_running: bool = False,
                   description: str = "") -> str:
    """Why an adapter with these addresses looks like the host side of a hotspot ('' if not).
    The usual hotspot host addresses count whatever prefix was reported (Windows listings
    without psutil may not know it)."""
    for cidr in ipv4:
        known = _HOTSPOT_HOSTS.get(cidr.split("/")[0])
        if known is not None:
            return f"{known[0]}: {known[1]}"
    for name in _HOTSPOT_ADAPTERS:
        if name.lower() in description.lower():
            return f"{description}: the adapter Windows uses for its mobile hotspot"
    if kind in ("bridge", "ap") and dhcp_server_running:
        for cidr in ipv4:
            iface = ipaddress.ip_interface(cidr)
            if iface.network.is_private and iface.ip == next(iface.network.hosts(), None):
                return f"{cidr}: a {kind} with a DHCP server running, first host address"
    return ""


def _dhcp_server_running() -> bool:
    with contextlib.suppress(OSError):
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                with contextlib.suppress(OSError), open(f"/proc/{pid}/comm") as fh:
                    if fh.read().strip() in _DHCP_SERVERS:
                        return True
    return False


def _linux_interfaces() -> list[InterfaceInfo] | None:
    ip = shutil.which("ip") or ("/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else None)
    if not ip:
        return None
    try:
        out = subprocess.run([ip, "-j", "-d", "addr"], capture_output=True, text=True,
                             timeout=5, check=True).stdout
        links = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    dhcp = _dhcp_server_running()
    found = []
    for link in links:
        name = link.get("ifname", "")
        flags = link.get("flags", [])
        kind = (link.get("linkinfo") or {}).get("info_kind", "")
        if link.get("link_type") == "loopback":
            kind = "loopback"
        elif not kind and os.path.isdir(f"/sys/class/net/{name}/wireless"):
            kind = "wireless"
        v4, v6 = [], []
        for addr in link.get("addr_info", []):
            text = f"{addr.get('local')}/{addr.get('prefixlen')}"
            (v4 if addr.get("family") == "inet" else v6).append(text)
        info = InterfaceInfo(
            name=name, description=name, mac=link.get("address", "") if kind != "loopback"
            else "", ipv4=v4, ipv6=v6, up="UP" in flags, loopback=kind == "loopback", kind=kind)
        info.hotspot_reason = hotspot_reason(v4, kind, dhcp)
        info.looks_like_hotspot = bool(info.hotspot_reason)
        found.append(info)
    return found


def _psutil_interfaces() -> list[InterfaceInfo] | None:
    try:
        import psutil
    except ImportError:
        return None
    found = []
    stats = psutil.net_if_stats()
    for name, addrs in psutil.net_if_addrs().items():
        info = InterfaceInfo(name=name, description=name, up=bool(
            getattr(stats.get(name), "isup", False)))
        for a in addrs:
            fam = getattr(a.family, "name", str(a.family))
            if fam == "AF_INET":
                prefix = ipaddress.ip_network(f"0.0.0.0/{a.netmask or '255.255.255.255'}")
                info.ipv4.append(f"{a.address}/{prefix.prefixlen}")
            elif fam == "AF_INET6":
                bits = bin(int(ipaddress.ip_address(a.netmask or "::"))).count("1")
                info.ipv6.append(f"{a.address.split('%')[0]}/{bits}")
            elif fam in ("AF_LINK", "AF_PACKET"):
                info.mac = a.address.replace("-", ":").lower()
        info.loopback = any(c.startswith("127.") for c in info.ipv4)
        info.kind = "loopback" if info.loopback else ""
        info.hotspot_reason = hotspot_reason(info.ipv4)
        info.looks_like_hotspot = bool(info.hotspot_reason)
        found.append(info)
    return found


def _scapy_interfaces() -> list[InterfaceInfo]:
    try:
        import scapy.arch  # noqa: F401 - fills conf.ifaces for this OS
        import scapy.route  # noqa: F401 - fills conf.route
        from scapy.config import conf
    except ImportError:
        return []
    prefixes: dict[str, int] = {}  # IPv4 address -> prefix of its connected route
    with contextlib.suppress(Exception):
        for net, mask, gateway, _iface, addr, _metric in conf.route.routes:
            own = int(ipaddress.IPv4Address(addr))
            if gateway == "0.0.0.0" and 0 < mask < 0xFFFFFFFF and own & mask == net:
                prefixes.setdefault(addr, bin(mask).count("1"))
    found = []
    for iface in conf.ifaces.values():
        ips = getattr(iface, "ips", {}) or {}
        v4 = [f"{ip}/{prefixes.get(ip, 32)}" for ip in ips.get(4, [])]
        v6 = [f"{ip}/128" for ip in ips.get(6, [])]
        info = InterfaceInfo(name=iface.name, description=iface.description or iface.name,
                             mac=iface.mac or "", ipv4=v4, ipv6=v6, up=True,
                             loopback=any(a.startswith("127.") for a in v4))
        info.hotspot_reason = hotspot_reason(v4, description=info.description)
        info.looks_like_hotspot = bool(info.hotspot_reason)
        found.append(info)
    return found


def _merge_scapy_descriptions(found: list[InterfaceInfo]) -> None:
    """Windows: take scapy's adapter descriptions, match by MAC or name."""
    with contextlib.suppress(Exception):
        import scapy.arch  # noqa: F401 - fills conf.ifaces for this OS
        from scapy.config import conf

        by_mac = {(i.mac or "").lower(): i for i in conf.ifaces.values() if i.mac}
        by_name = {i.name: i for i in conf.ifaces.values()}
        for info in found:
            hit = by_name.get(info.name) or by_mac.get(info.mac.lower())
            if hit is not None and hit.description:
                info.description = hit.description
                info.name = hit.name
                if not info.hotspot_reason:
                    info.hotspot_reason = hotspot_reason(info.ipv4,
                                                         description=info.description)
                    info.looks_like_hotspot = bool(info.hotspot_reason)


def list_interfaces() -> list[InterfaceInfo]:
    """The adapters of this machine (of the current network namespace on Linux), loopback
    last, then by name."""
    found = _linux_interfaces() if sys.platform.startswith("linux") else None
    if found is None:
        found = _psutil_interfaces()
        if found is not None and sys.platform.startswith("win"):
            _merge_scapy_descriptions(found)
    if found is None:
        found = _scapy_interfaces()
    return sorted(found, key=lambda i: (i.loopback, i.name))

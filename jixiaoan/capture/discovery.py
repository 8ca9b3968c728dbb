"""Passive discovery: the devices on the network, learnt from the traffic already captured.

Per batch a few numpy comparisons pick the rare packets that name devices: ARP (sender MAC
and IPv4), DHCP (a client's host name, option 12; the address a server hands out) and mDNS
responses (A/AAAA records: a host's ``name.local`` and address). Only those few packets are
dissected, with scapy.
"""

from __future__ import annotations

import contextlib
import ipaddress
import threading
from dataclasses import dataclass, field

import numpy as np

from jixiaoan.capture.batch import (
    PROTO_ARP,
    PROTO_UDP,
    FrameBatch,
    HeaderBatch,
    ip_to_str,
    mac_to_str,
)
from jixiaoan.capture.interfaces import vendor_for_mac

_GROUP_BIT = np.uint64(1 << 40)  # I/G bit of the first MAC byte: multicast/broadcast
MAX_PARSED_PER_BATCH = 256  # bound on scapy work per batch (floods of DHCP/mDNS)


@dataclass
class DiscoveredDevice:
    """A device seen on the network."""

    mac: str
    ip: str = ""  # latest IPv4 address ('' when none seen yet)
    hostname: str = ""
    vendor: str = ""
    first_seen: float = 0.0  # capture time, seconds since the epoch
    last_seen: float = 0.0
    ipv6: list[str] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)  # "arp", "dhcp", "mdns"


def interesting_packets(frames: FrameBatch, headers: HeaderBatch) -> dict[str, np.ndarray]:
    """Row indices of ARP senders, DHCP packets and mDNS responses (vectorised)."""
    unicast_src = ((headers.src_mac & _GROUP_BIT) == 0) & (headers.src_mac != 0)
    arp = (headers.proto == PROTO_ARP) & unicast_src
    arp &= np.any(headers.src_ip[:, 12:] != 0, axis=1)  # not a probe from 0.0.0.0
    udp = (headers.proto == PROTO_UDP) & unicast_src & (headers.payload_off >= 0)
    dhcp = udp & (((headers.sport == 68) & (headers.dport == 67))
                  | ((headers.sport == 67) & (headers.dport == 68)))
    mdns = udp & (headers.sport == 5353) & (headers.dport == 5353)
    if mdns.any():  # responses only: the QR bit of the DNS flags (third payload byte)
        rows = np.flatnonzero(mdns)
        at = frames.offsets[rows] + headers.payload_off[rows].astype(np.int64) + 2
        inside = at < frames.offsets[rows + 1]
        qr = np.zeros(len(rows), bool)
        qr[inside] = (frames.data[at[inside]] & 0x80) != 0
        mdns[rows[~qr]] = False
    return {"arp": np.flatnonzero(arp), "dhcp": np.flatnonzero(dhcp),
            "mdns": np.flatnonzero(mdns)}


def _payload(frames: FrameBatch, headers: HeaderBatch, row: int) -> bytes:
    start = int(frames.offsets[row]) + int(headers.payload_off[row])
    return frames.data[start : int(frames.offsets[row + 1])].tobytes()


def _text(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip().rstrip(".").strip("\x00")


def dhcp_facts(payload: bytes) -> tuple[str, str, str] | None:
    """(client MAC, host name, IPv4) from a BOOTP/DHCP payload; None if it is not one."""
    from scapy.layers.dhcp import BOOTP, DHCP

    with contextlib.suppress(Exception):
        pkt = BOOTP(payload)
        chaddr = bytes(pkt.chaddr)[:6]
        if len(chaddr) < 6 or DHCP not in pkt:
            return None
        opts = {o[0]: o[1] for o in pkt[DHCP].options if isinstance(o, tuple) and len(o) >= 2}
        name = _text(opts.get("hostname", b""))
        kind = opts.get("message-type")
        ip = ""
        if pkt.op == 1:
            ip = str(opts.get("requested_addr", "") or "")
            if pkt.ciaddr and str(pkt.ciaddr) != "0.0.0.0":
                ip = str(pkt.ciaddr)
        elif kind == 5 and str(pkt.yiaddr) != "0.0.0.0":  # DHCPACK: the address is theirs
            ip = str(pkt.yiaddr)
        return ":".join(f"{b:02x}" for b in chaddr), name, ip
    return None


def mdns_names(payload: bytes) -> list[tuple[str, str]]:
    """(host name, address) pairs of the A/AAAA records of an mDNS response."""
    from scapy.layers.dns import DNS

    found: list[tuple[str, str]] = []
    with contextlib.suppress(Exception):
        msg = DNS(payload)
        for section in (msg.an, msg.ar):
            for rr in section or []:
                if getattr(rr, "type", None) in (1, 28):
                    found.append((_text(rr.rrname), str(rr.rdata)))
    return found


class PassiveDiscovery:
    """A table of the devices seen, keyed by MAC; feed it every batch with :meth:`observe`.

    ``networks``: when given (e.g. ["192.168.137.0/24"]), ARP senders outside them are not
    devices of ours (an upstream router's other side). Thread-safe.
    """

    def __init__(self, networks: list[str] | None = None) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks or []]
        self._devices: dict[str, DiscoveredDevice] = {}
        self._new: list[str] = []
        self._lock = threading.Lock()

    def _local(self, ip: str) -> bool:
        if not self.networks or not ip:
            return True
        addr = ipaddress.ip_address(ip)
        return any(addr in net for net in self.networks)

    def _note(self, mac: str, ts: float, source: str, ip: str = "", hostname: str = "") -> None:
        dev = self._devices.get(mac)
        if dev is None:
            dev = DiscoveredDevice(mac=mac, vendor=vendor_for_mac(mac), first_seen=ts,
                                   last_seen=ts)
            self._devices[mac] = dev
            self._new.append(mac)
        dev.first_seen = min(dev.first_seen, ts)
        dev.last_seen = max(dev.last_seen, ts)
        dev.sources.add(source)
        if ip:
            if ":" in ip:
                if ip not in dev.ipv6 and not ip.startswith("fe80"):
                    dev.ipv6.append(ip)
            elif self._local(ip):
                dev.ip = ip
        if hostname:
            dev.hostname = hostname

    def observe(self, frames: FrameBatch, headers: HeaderBatch) -> int:
        """Learn from one batch; returns how many packets were looked at closely."""
        picks = interesting_packets(frames, headers)
        arp = picks["arp"]
        with self._lock:
            if len(arp):
                # one update per (MAC, IP) pair: the latest packet of each
                keys = np.column_stack([headers.src_mac[arp],
                                        headers.src_ip[arp, 12:].view(">u4").ravel()])
                _, last = np.unique(keys[::-1], axis=0, return_index=True)
                for row in arp[::-1][last]:
                    ip = ip_to_str(headers.src_ip[row])
                    if self._local(ip):
                        self._note(mac_to_str(headers.src_mac[row]), float(headers.ts[row]),
                                   "arp", ip)
            for row in picks["dhcp"][:MAX_PARSED_PER_BATCH]:
                facts = dhcp_facts(_payload(frames, headers, int(row)))
                if facts is not None:
                    mac, name, ip = facts
                    self._note(mac, float(headers.ts[row]), "dhcp", ip, name)
            for row in picks["mdns"][:MAX_PARSED_PER_BATCH]:
                src_ip = ip_to_str(headers.src_ip[row])
                pairs = mdns_names(_payload(frames, headers, int(row)))
                own = [(n, a) for n, a in pairs if a == src_ip]
                if not own and len({n for n, _ in pairs}) == 1:
                    own = pairs  # one name announced: the sender's own
                mac = mac_to_str(headers.src_mac[row])
                for name, addr in own:
                    self._note(mac, float(headers.ts[row]), "mdns", addr, name)
        return int(len(arp) + len(picks["dhcp"]) + len(picks["mdns"]))

    def devices(self) -> list[DiscoveredDevice]:
        """Every device seen so far, in order of discovery."""
        with self._lock:
            return list(self._devices.values())

    def new_devices(self) -> list[DiscoveredDevice]:
        """Devices first seen since the previous call (for live additions to a list)."""
        with self._lock:
            new, self._new = self._new, []
            return [self._devices[m] for m in new]

    def __len__(self) -> int:
        return len(self._devices)

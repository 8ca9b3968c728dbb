"""Attributing packets to watched devices, and finding the local devices of a capture."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Iterable

import numpy as np

from jixiaoan.capture.batch import HeaderBatch, ip_from_str, ip_to_str, mac_from_str, mac_to_str
from jixiaoan.capture.interfaces import vendor_for_mac
from jixiaoan.engine.batch import Device

_BROADCAST_MAC = 0xFFFFFFFFFFFF
_MAC_TEXT = re.compile(r"^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$")


def parse_device(text: str) -> Device:
    """A device given on the command line: a MAC address, an IP address, or
    ``MAC,IP[,NAME]``. Raises ValueError with the reason."""
    parts = [p.strip() for p in text.split(",")]
    dev = Device()
    for part in parts[:2]:
        if _MAC_TEXT.match(part):
            dev.mac = part.lower().replace("-", ":")
        elif part:
            try:
                dev.ip = str(ipaddress.ip_address(part))
            except ValueError:
                raise ValueError(
                    f"--device {text!r}: {part!r} is neither a MAC nor an IP address"
                ) from None
    if len(parts) > 2:
        dev.name = ",".join(parts[2:])
    if not dev.mac and not dev.ip:
        raise ValueError(f"--device {text!r}: give a MAC or an IP address")
    return dev


def _ip_words(ips: np.ndarray) -> np.ndarray:
    """(n, 16) uint8 addresses as (n, 2) uint64 words, for fast comparisons."""
    return np.ascontiguousarray(ips).view(np.uint64).reshape(-1, 2)


def _ip_keys(words: np.ndarray) -> np.ndarray:
    """One sortable uint64 per (n, 2) address (a mix of both words; equal keys are checked)."""
    return words[:, 0] * np.uint64(0x9E3779B97F4A7C15) ^ words[:, 1]


class DeviceIndex:
    """Maps packets to indices of a fixed list of watched devices.

    A packet's end belongs to a device when its MAC address is the device's; when the MAC is
    not a watched one (the device sits beyond a router, or the link type has no MACs) its IP
    address decides. A packet between two watched devices belongs to both.
    """

    def __init__(self, devices: Iterable[Device]) -> None:
        self.devices = list(devices)
        macs, mac_ids, ips, ip_ids = [], [], [], []
        for i, dev in enumerate(self.devices):
            if dev.mac:
                macs.append(mac_from_str(dev.mac))
                mac_ids.append(i)
            if dev.ip:
                ips.append(np.frombuffer(ip_from_str(dev.ip), np.uint8))
                ip_ids.append(i)
        order = np.argsort(np.asarray(macs, np.uint64), kind="stable")
        self._macs = np.asarray(macs, np.uint64)[order]
        self._mac_ids = np.asarray(mac_ids, np.int32)[order]
        words = _ip_words(np.asarray(ips, np.uint8).reshape(-1, 16))
        keys = _ip_keys(words)
        order = np.argsort(keys, kind="stable")  # equal addresses: the first device wins
        self._ip_keys, self._ips = keys[order], words[order]
        self._ip_ids = np.asarray(ip_ids, np.int32)[order]

    def __len__(self) -> int:
        return len(self.devices)

    def _by_mac(self, mac: np.ndarray) -> np.ndarray:
        out = np.full(len(mac), -1, np.int32)
        if len(self._macs) == 0 or len(mac) == 0:
            return out
        pos = np.searchsorted(self._macs, mac)
        pos = np.minimum(pos, len(self._macs) - 1)
        hit = (self._macs[pos] == mac) & (mac != 0)
        out[hit] = self._mac_ids[pos[hit]]
        return out

    def _by_ip(self, ip: np.ndarray) -> np.ndarray:
        out = np.full(len(ip), -1, np.int32)
        if len(self._ips) == 0 or len(ip) == 0:
            return out
        words = _ip_words(ip)
        keys = _ip_keys(words)
        pos = np.minimum(np.searchsorted(self._ip_keys, keys), len(self._ips) - 1)
        hit = (self._ips[pos, 0] == words[:, 0]) & (self._ips[pos, 1] == words[:, 1])
        out[hit] = self._ip_ids[pos[hit]]
        for row in np.flatnonzero(~hit & (self._ip_keys[pos] == keys)):  # key collisions
            same = (self._ips[:, 0] == words[row, 0]) & (self._ips[:, 1] == words[row, 1])
            if same.any():
                out[row] = self._ip_ids[np.flatnonzero(same)].min()
        return out

    def attribute(self, headers: HeaderBatch) -> tuple[np.ndarray, np.ndarray]:
        """Device index of each packet's source and destination (-1: not watched)."""
        src = self._by_mac(headers.src_mac)
        dst = self._by_mac(headers.dst_mac)
        miss = src < 0
        if miss.any():
            src[miss] = self._by_ip(headers.src_ip[miss])
        miss = dst < 0
        if miss.any():
            dst[miss] = self._by_ip(headers.dst_ip[miss])
        return src, dst


def is_local_address(text: str) -> bool:
    """True for a private, link-local or unique-local unicast address (a LAN device)."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback:
        return False
    if ip.version == 4 and (ip.packed[-1] == 255 or text == "255.255.255.255"):
        return False
    return ip.is_private or ip.is_link_local


def _is_unicast(text: str) -> bool:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    return not (ip.is_multicast or ip.is_unspecified or text == "255.255.255.255")


class DeviceDiscovery:
    """Collects the local devices a stream shows: hosts sending from a LAN address.

    Feed header batches; ``devices()`` returns one Device per local IP (its most frequent
    source MAC, unless that MAC also speaks for many other IPs — a router — in which case the
    device is known by IP alone), or per MAC for layer-2-only hosts.
    """

    def __init__(self, router_ip_count: int = 4) -> None:
        self._pairs: Counter[tuple[int, bytes]] = Counter()
        self._router_ip_count = router_ip_count

    def observe(self, headers: HeaderBatch) -> None:
        """Count the (source MAC, source IP) pairs of a batch."""
        if len(headers) == 0:
            return
        words = _ip_words(headers.src_ip)
        keys = np.empty(len(headers), dtype=[("mac", "<u8"), ("hi", "<u8"), ("lo", "<u8")])
        keys["mac"], keys["hi"], keys["lo"] = headers.src_mac, words[:, 0], words[:, 1]
        uniq, counts = np.unique(keys, return_counts=True)
        for rec, count in zip(uniq, counts):
            ip16 = np.array([rec["hi"], rec["lo"]], np.uint64).view(np.uint8).tobytes()
            self._pairs[(int(rec["mac"]), ip16)] += int(count)

    def devices(self, local_only: bool = True) -> list[Device]:
        """The local devices seen so far, most active first.

        A unicast MAC with local source addresses is one device (its IPv4 address preferred);
        a MAC speaking for many local IPv4 addresses is a router, whose addresses become
        devices known by IP alone, as do addresses seen without a MAC (raw-IP captures).
        MACs that never carry IP (layer-2-only hosts) are devices too. With ``local_only``
        False every unicast source counts (for captures without any LAN address).
        """
        is_local = is_local_address if local_only else _is_unicast
        per_mac: dict[int, Counter[str]] = {}
        l2_only: Counter[int] = Counter()
        for (mac, ip16), count in self._pairs.items():
            ip = ip_to_str(ip16)
            unicast_mac = mac != 0 and not (mac >> 40) & 1
            if ip and is_local(ip):
                per_mac.setdefault(mac if unicast_mac else 0, Counter())[ip] += count
            elif not ip and unicast_mac:
                l2_only[mac] += count
        found: list[tuple[int, Device]] = []
        for mac, ips in per_mac.items():
            v4 = [ip for ip in ips if ":" not in ip]
            if mac == 0 or len(v4) >= self._router_ip_count:
                found += [(c, Device(ip=ip)) for ip, c in ips.items()]
                continue
            best = max(v4 or list(ips), key=lambda ip: ips[ip])
            text = mac_to_str(mac)
            found.append(
                (sum(ips.values()), Device(mac=text, ip=best, vendor=vendor_for_mac(text)))
            )
        for mac, count in l2_only.items():
            if mac not in per_mac:
                text = mac_to_str(mac)
                found.append((count, Device(mac=text, vendor=vendor_for_mac(text))))
        found.sort(key=lambda item: -item[0])
        return [dev for _, dev in found]

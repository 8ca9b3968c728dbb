"""Helpers for the feature tests: batches from scapy packets, and a check of those helpers.

``batches_from_packets`` uses the project's parser (jixiaoan.capture.parse.parse_headers)
when it exists and a slow scapy-based field extraction otherwise, so the feature tests can run
before and independently of the parser.
"""

from __future__ import annotations

import numpy as np
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet

from jixiaoan.capture import batch as cb
from jixiaoan.capture.batch import FrameBatch, HeaderBatch

try:  # the real parser, once committed
    from jixiaoan.capture.parse import parse_headers
except ImportError:  # pragma: no cover - depends on the state of the checkout
    parse_headers = None


def _ip16(text: str) -> np.ndarray:
    return np.frombuffer(cb.ip_from_str(text), np.uint8)


def scapy_headers(frames: FrameBatch) -> HeaderBatch:
    """Slow reference extraction of HeaderBatch fields for Ethernet frames (tests only)."""
    n = len(frames)
    cols = {
        "src_mac": np.zeros(n, np.uint64),
        "dst_mac": np.zeros(n, np.uint64),
        "ethertype": np.zeros(n, np.uint16),
        "vlan": np.zeros(n, np.uint16),
        "l3_off": np.full(n, -1, np.int16),
        "ip_version": np.zeros(n, np.uint8),
        "src_ip": np.zeros((n, 16), np.uint8),
        "dst_ip": np.zeros((n, 16), np.uint8),
        "ip_proto": np.zeros(n, np.uint8),
        "l4_off": np.full(n, -1, np.int16),
        "sport": np.zeros(n, np.uint16),
        "dport": np.zeros(n, np.uint16),
        "tcp_flags": np.zeros(n, np.uint8),
        "payload_off": np.full(n, -1, np.int16),
        "proto": np.zeros(n, np.uint8),
        "truncated": np.zeros(n, bool),
    }
    for i in range(n):
        raw = frames.frame(i)
        pkt = Ether(raw)
        cols["src_mac"][i] = cb.mac_from_str(pkt.src)
        cols["dst_mac"][i] = cb.mac_from_str(pkt.dst)
        layer, off = pkt.payload, 14
        ethertype = pkt.type
        if isinstance(layer, Dot1Q):
            cols["vlan"][i] = layer.vlan
            ethertype, layer, off = layer.type, layer.payload, off + 4
        cols["ethertype"][i] = ethertype
        cols["l3_off"][i] = off
        if isinstance(layer, ARP):
            cols["proto"][i] = cb.PROTO_ARP
            cols["src_ip"][i] = _ip16(layer.psrc)
            cols["dst_ip"][i] = _ip16(layer.pdst)
            continue
        if isinstance(layer, IP):
            cols["ip_version"][i], cols["proto"][i] = 4, cb.PROTO_IPV4
            cols["ip_proto"][i] = layer.proto
            hl = layer.ihl * 4
        elif isinstance(layer, IPv6):
            cols["ip_version"][i], cols["proto"][i] = 6, cb.PROTO_IPV6
            cols["ip_proto"][i] = layer.nh
            hl = 40
        else:
            cols["l3_off"][i] = off
            continue
        cols["src_ip"][i] = _ip16(layer.src)
        cols["dst_ip"][i] = _ip16(layer.dst)
        l4, off4 = layer.payload, off + hl
        cols["l4_off"][i] = off4
        if isinstance(l4, TCP):
            cols["proto"][i] = cb.PROTO_TCP
            cols["sport"][i], cols["dport"][i] = l4.sport, l4.dport
            cols["tcp_flags"][i] = int(l4.flags) & 0xFF
            start = off4 + l4.dataofs * 4
            cols["payload_off"][i] = start if len(raw) > start else -1
        elif isinstance(l4, UDP):
            cols["proto"][i] = cb.PROTO_UDP
            cols["sport"][i], cols["dport"][i] = l4.sport, l4.dport
            cols["payload_off"][i] = off4 + 8 if len(raw) > off4 + 8 else -1
        elif isinstance(l4, ICMP):
            cols["proto"][i] = cb.PROTO_ICMP
        elif cols["ip_proto"][i] == 58:
            cols["proto"][i] = cb.PROTO_ICMPV6
    return HeaderBatch(
        ts=frames.ts.copy(),
        length=frames.wire_len.copy(),
        caplen=frames.caplen.astype(np.uint32),
        linktype=frames.linktype.copy(),
        **cols,
    )


def batches_from_packets(
    packets: list[Packet | bytes], ts: list[float] | np.ndarray | None = None
) -> tuple[FrameBatch, HeaderBatch]:
    """FrameBatch and HeaderBatch of Ethernet frames (timestamps default to 0, 1, 2, ...)."""
    raw = [bytes(p) for p in packets]
    stamps = np.arange(len(raw), dtype=np.float64) if ts is None else np.asarray(ts, np.float64)
    frames = FrameBatch.from_frames(raw, stamps)
    headers = parse_headers(frames) if parse_headers is not None else scapy_headers(frames)
    return frames, headers


def split_points(n: int, cuts: list[int]) -> list[slice]:
    """Slices that cut range(n) at the given positions."""
    edges = [0, *sorted(c for c in cuts if 0 < c < n), n]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def synthetic_headers(rng: np.random.Generator, n: int, n_hosts: int = 6, t_scale: float = 1.0):
    """Random IPv4/IPv6/TCP/UDP/ARP/other packets between a few hosts (no frames needed)."""
    src_h = rng.integers(0, n_hosts, n)
    dst_h = rng.integers(0, n_hosts, n)
    kind = rng.integers(0, 5, n)  # 0 TCP4, 1 UDP4, 2 TCP6, 3 ARP, 4 other link
    ip = np.zeros((n_hosts, 16), np.uint8)
    ip[:, 10:12] = 0xFF
    ip[:, 15] = np.arange(n_hosts) + 1
    ip6 = np.zeros((n_hosts, 16), np.uint8)
    ip6[:, 0], ip6[:, 15] = 0x20, np.arange(n_hosts) + 1
    is6 = kind == 2
    is_ip = kind <= 2
    src_ip = np.where(is6[:, None], ip6[src_h], ip[src_h])
    dst_ip = np.where(is6[:, None], ip6[dst_h], ip[dst_h])
    ports = np.array([80, 443, 1000, 2000], np.uint16)
    codes = [cb.PROTO_TCP, cb.PROTO_UDP, cb.PROTO_TCP, cb.PROTO_ARP, cb.PROTO_OTHER]
    proto = np.choose(kind, codes)
    return HeaderBatch(
        ts=np.cumsum(rng.exponential(t_scale, n)),
        length=rng.integers(60, 1500, n).astype(np.uint32),
        caplen=np.full(n, 64, np.uint32),
        linktype=np.full(n, cb.LINKTYPE_ETHERNET, np.uint16),
        src_mac=(src_h + 1).astype(np.uint64),
        dst_mac=(dst_h + 1).astype(np.uint64),
        ethertype=np.choose(kind, [0x0800, 0x0800, 0x86DD, 0x0806, 0x88CC]).astype(np.uint16),
        vlan=np.zeros(n, np.uint16),
        l3_off=np.full(n, 14, np.int16),
        ip_version=np.choose(kind, [4, 4, 6, 0, 0]).astype(np.uint8),
        src_ip=np.where((kind == 3)[:, None] | is_ip[:, None], src_ip, 0).astype(np.uint8),
        dst_ip=np.where((kind == 3)[:, None] | is_ip[:, None], dst_ip, 0).astype(np.uint8),
        ip_proto=np.choose(kind, [6, 17, 6, 0, 0]).astype(np.uint8),
        l4_off=np.where(is_ip, np.where(is6, 54, 34), -1).astype(np.int16),
        sport=np.where(is_ip, ports[rng.integers(0, 4, n)], 0).astype(np.uint16),
        dport=np.where(is_ip, ports[rng.integers(0, 4, n)], 0).astype(np.uint16),
        tcp_flags=np.where(proto == cb.PROTO_TCP, rng.integers(0, 64, n), 0).astype(np.uint8),
        payload_off=np.full(n, -1, np.int16),
        proto=proto.astype(np.uint8),
        truncated=np.zeros(n, bool),
    )


def test_scapy_headers_fields():
    pkts = [
        Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02")
        / IP(src="10.0.0.1", dst="10.0.0.2")
        / TCP(sport=1234, dport=80, flags="S"),
        Ether()
        / Dot1Q(vlan=7)
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / UDP(sport=5, dport=53),
        Ether(src="00:00:00:00:00:03") / ARP(psrc="10.0.0.3", pdst="10.0.0.4"),
    ]
    frames, h = batches_from_packets(pkts)
    ref = scapy_headers(frames)
    for got in (h, ref):
        assert got.proto.tolist() == [cb.PROTO_TCP, cb.PROTO_UDP, cb.PROTO_ARP]
        assert got.l3_off.tolist() == [14, 18, 14]
        assert got.l4_off[:2].tolist() == [34, 58]
        assert got.sport[:2].tolist() == [1234, 5]
        assert got.tcp_flags[0] == 0x02
        assert got.src_mac[0] == 1 and got.dst_mac[0] == 2
        assert cb.ip_to_str(got.src_ip[1]) == "2001:db8::1"
        assert cb.ip_to_str(got.dst_ip[2]) == "10.0.0.4"
        assert got.vlan[1] == 7

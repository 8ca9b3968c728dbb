"""parse_headers on hand-built frames: every link type, tags, extension headers, truncation."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from jixiaoan.capture.batch import (
    PROTO_ARP,
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_IPV4,
    PROTO_IPV6,
    PROTO_OTHER,
    PROTO_TCP,
    PROTO_UDP,
    FrameBatch,
    HeaderBatch,
    ip_from_str,
    ip_to_str,
    mac_from_str,
)
from jixiaoan.capture.parse import parse_headers

DST = bytes.fromhex("ffeeddccbbaa")
SRC = bytes.fromhex("020304050607")


def ipv4(proto: int, payload: bytes, options: bytes = b"", frag: int = 0) -> bytes:
    ihl = 5 + len(options) // 4
    head = struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(options) + len(payload), 1, frag,
                       64, proto, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))  # fmt: skip
    return head + options + payload


def ipv6(nxt: int, payload: bytes) -> bytes:
    src = ip_from_str("2001:db8::1")
    dst = ip_from_str("ff02::16")
    return struct.pack(">IHBB", 0x60000000, len(payload), nxt, 64) + src + dst + payload


def tcp(sport: int = 1234, dport: int = 80, flags: int = 0x12, options: bytes = b"") -> bytes:
    off = (20 + len(options)) // 4
    return struct.pack(">HHIIBBHHH", sport, dport, 1, 2, off << 4, flags, 100, 0, 0) + options


def udp(sport: int = 5353, dport: int = 53, payload: bytes = b"abc") -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def eth(ethertype: int, payload: bytes) -> bytes:
    return DST + SRC + struct.pack(">H", ethertype) + payload


def parse(frames: list[bytes], linktype: int | list[int] = 1) -> HeaderBatch:
    lt = np.asarray(linktype if isinstance(linktype, list) else [linktype] * len(frames))
    return parse_headers(FrameBatch.from_frames(frames, np.arange(len(frames), dtype=float), lt))


def row(h: HeaderBatch, i: int = 0) -> dict:
    return {name: getattr(h, name)[i] for name in h.__dataclass_fields__}


def test_ethernet_ipv4_tcp_with_options() -> None:
    frame = eth(0x0800, ipv4(6, tcp(options=b"\x01\x01\x01\x01") + b"DATA", options=b"\x01" * 8))
    r = row(parse([frame]))
    assert r["dst_mac"] == mac_from_str("ff:ee:dd:cc:bb:aa")
    assert r["src_mac"] == mac_from_str("02:03:04:05:06:07")
    assert (r["ethertype"], r["vlan"], r["l3_off"], r["ip_version"]) == (0x0800, 0, 14, 4)
    assert ip_to_str(r["src_ip"]) == "10.0.0.1" and ip_to_str(r["dst_ip"]) == "10.0.0.2"
    assert (r["ip_proto"], r["l4_off"], r["sport"], r["dport"]) == (6, 42, 1234, 80)
    assert (r["tcp_flags"], r["payload_off"], r["proto"], r["truncated"]) == (
        0x12,
        66,
        PROTO_TCP,
        False,
    )
    assert frame[r["payload_off"] :] == b"DATA"


@pytest.mark.parametrize("tpids", [(0x8100,), (0x88A8, 0x8100), (0x8100, 0x8100), (0x9100, 0x8100)])
def test_vlan_tags(tpids: tuple[int, ...]) -> None:
    tags = tuple((tpid, 100 + k) for k, tpid in enumerate(tpids))
    frame = DST + SRC + b"".join(struct.pack(">HH", t, v) for t, v in tags)
    frame += struct.pack(">H", 0x0800) + ipv4(17, udp())
    r = row(parse([frame]))
    assert r["vlan"] == 100 and r["ethertype"] == 0x0800
    assert r["l3_off"] == 14 + 4 * len(tags) and r["proto"] == PROTO_UDP
    assert (r["sport"], r["dport"], r["payload_off"]) == (5353, 53, r["l4_off"] + 8)


def test_three_vlan_tags_stop_after_two() -> None:
    frame = DST + SRC + struct.pack(">HHHHHH", 0x88A8, 1, 0x8100, 2, 0x8100, 3) + ipv4(17, udp())
    r = row(parse([frame]))
    assert r["vlan"] == 1 and r["ethertype"] == 0x8100 and r["proto"] == PROTO_OTHER


def test_linux_sll_and_sll2() -> None:
    packet = ipv4(1, b"\x08\x00" + bytes(6))
    sll = struct.pack(">HHH", 0, 1, 6) + SRC + b"\0\0" + struct.pack(">H", 0x0800) + packet
    sll2 = struct.pack(">HHiHBB", 0x0800, 0, 3, 1, 4, 6) + SRC + b"\0\0" + packet
    sll_no_mac = struct.pack(">HHH", 0, 772, 0) + bytes(8) + struct.pack(">H", 0x0800) + packet
    h = parse([sll, sll2, sll_no_mac], [113, 276, 113])
    assert h.src_mac.tolist() == [mac_from_str("02:03:04:05:06:07")] * 2 + [0]
    assert h.dst_mac.tolist() == [0, 0, 0]
    assert h.l3_off.tolist() == [16, 20, 16]
    assert h.proto.tolist() == [PROTO_ICMP] * 3
    assert h.payload_off.tolist() == [44, 48, 44]


@pytest.mark.parametrize(
    ("family", "fmt", "linktype", "version"),
    [(2, "<I", 0, 4), (2, ">I", 0, 4), (24, "<I", 0, 6), (30, ">I", 0, 6), (10, "<I", 0, 6),
     (28, "<I", 0, 6), (2, ">I", 108, 4), (24, ">I", 108, 6), (7, "<I", 0, 0)],
)  # fmt: skip
def test_loopback_families(family: int, fmt: str, linktype: int, version: int) -> None:
    inner = ipv4(17, udp()) if version == 4 else ipv6(17, udp())
    r = row(parse([struct.pack(fmt, family) + inner], linktype))
    assert r["ip_version"] == version
    assert r["proto"] == (PROTO_UDP if version else PROTO_OTHER)
    assert r["l3_off"] == (4 if version else -1)


def test_raw_ip_link_types() -> None:
    v4, v6 = ipv4(6, tcp()), ipv6(6, tcp())
    h = parse([v4, v6, v4, v6, b"\x10" + bytes(30)], [101, 101, 228, 229, 101])
    assert h.ip_version.tolist() == [4, 6, 4, 6, 0]
    assert h.l3_off.tolist() == [0, 0, 0, 0, -1]
    assert h.ethertype.tolist() == [0x0800, 0x86DD, 0x0800, 0x86DD, 0]
    assert h.proto.tolist() == [PROTO_TCP] * 4 + [PROTO_OTHER]
    assert ip_to_str(h.dst_ip[1]) == "ff02::16"


def test_ipv6_extension_headers() -> None:
    icmp6 = b"\x80\x00" + bytes(6)
    hop = bytes([60, 0]) + bytes(6)  # hop-by-hop -> destination options
    dst = bytes([43, 1]) + bytes(14)  # 16 bytes -> routing
    rth = bytes([51, 0]) + bytes(6)  # routing -> AH
    ah = bytes([58, 2]) + bytes(14)  # AH of (2+2)*4 = 16 bytes -> ICMPv6
    frame = eth(0x86DD, ipv6(0, hop + dst + rth + ah + icmp6))
    r = row(parse([frame]))
    assert (r["ip_proto"], r["proto"], r["l4_off"]) == (58, PROTO_ICMPV6, 14 + 40 + 8 + 16 + 8 + 16)
    first_frag = eth(0x86DD, ipv6(44, bytes([17, 0, 0, 0]) + bytes(4) + udp()))
    later_frag = eth(0x86DD, ipv6(44, bytes([17, 0, 0x05, 0xA0]) + bytes(4) + b"xxxx"))
    h = parse([first_frag, later_frag])
    assert h.proto.tolist() == [PROTO_UDP, PROTO_IPV6]
    assert h.ip_proto.tolist() == [17, 17]
    assert h.l4_off.tolist() == [62, -1] and h.payload_off.tolist() == [70, -1]
    assert h.sport.tolist() == [5353, 0]


def test_endless_ipv6_extension_chain_is_bounded() -> None:
    chain = b"".join(bytes([0, 0]) + bytes(6) for _ in range(20))
    r = row(parse([eth(0x86DD, ipv6(0, chain + udp()))]))
    assert r["proto"] == PROTO_IPV6 and r["l4_off"] == -1 and r["ip_proto"] == 0


def test_ipv4_fragments_and_other_protocols() -> None:
    frames = [
        eth(0x0800, ipv4(17, udp(), frag=0x2000)),  # first fragment, more follow
        eth(0x0800, ipv4(17, b"continued", frag=0x0010)),  # later fragment
        eth(0x0800, ipv4(47, b"GRE-payload")),
        eth(0x0800, ipv4(58, bytes(8))),  # ICMPv6 number inside IPv4: not ICMP
        eth(0x88CC, b"lldp" * 10),
        eth(0x0026, b"\x42\x42\x03" + bytes(40)),  # 802.3 length field
        eth(0x0800, b"\x60" + bytes(30)),  # wrong IP version for the ethertype
    ]
    h = parse(frames)
    assert h.proto.tolist() == [PROTO_UDP, PROTO_IPV4, PROTO_IPV4, PROTO_IPV4, 0, 0, 0]
    assert h.l4_off.tolist() == [34, -1, -1, -1, -1, -1, -1]
    assert h.ip_proto.tolist() == [17, 17, 47, 58, 0, 0, 0]
    assert h.ethertype.tolist() == [0x0800] * 4 + [0x88CC, 0, 0x0800]
    assert h.l3_off.tolist() == [14] * 4 + [-1, -1, -1]
    assert not h.truncated.any()


def test_arp() -> None:
    arp = struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1) + SRC + bytes([192, 168, 1, 5]) + bytes(6)
    arp += bytes([192, 168, 1, 1])
    h = parse([eth(0x0806, arp + bytes(18)), eth(0x0806, arp[:20])])
    assert h.proto.tolist() == [PROTO_ARP, PROTO_ARP]
    assert ip_to_str(h.src_ip[0]) == "192.168.1.5" and ip_to_str(h.dst_ip[0]) == "192.168.1.1"
    assert h.ip_version.tolist() == [0, 0] and h.l4_off.tolist() == [-1, -1]
    assert h.truncated.tolist() == [False, True]
    assert h.src_ip[1].tolist() == [0] * 16


def test_truncation_at_every_layer() -> None:
    full = eth(0x0800, ipv4(6, tcp(options=bytes(8)) + b"payload"))
    cuts = [10, 14, 20, 33, 34, 40, 53, 54, 60, 62, len(full)]
    h = parse([full[:c] for c in cuts])
    assert h.truncated.tolist() == [True] * 9 + [False, False]  # 14: the IPv4 header is missing
    assert h.dst_mac.tolist()[0] == 0 and h.ethertype[0] == 0
    assert h.l3_off.tolist() == [-1, -1, -1, -1, 14, 14, 14, 14, 14, 14, 14]
    assert h.ip_version.tolist() == [0] * 4 + [4] * 7
    assert h.l4_off.tolist() == [-1] * 7 + [34] * 4  # 54: TCP options cut
    assert h.sport.tolist() == [0] * 7 + [1234] * 4
    assert h.payload_off.tolist() == [-1] * 9 + [62, 62]
    assert h.proto.tolist() == [0, 0, 0, 0] + [PROTO_IPV4] * 3 + [PROTO_TCP] * 4
    assert h.caplen.tolist() == cuts
    assert h.length.tolist() == cuts


def test_truncated_ipv6_and_udp_and_vlan() -> None:
    v6 = eth(0x86DD, ipv6(17, udp()))
    tagged = DST + SRC + struct.pack(">HH", 0x8100, 7)
    h = parse([v6[:40], v6[:58], tagged[:16], eth(0x0800, ipv4(1, b"\x08\x00"))])
    assert h.truncated.tolist() == [True, True, True, True]
    assert h.ip_version.tolist() == [0, 6, 0, 4]
    assert h.proto.tolist() == [0, PROTO_IPV6, 0, PROTO_IPV4]
    assert h.vlan.tolist() == [0, 0, 0, 0]


def test_unknown_link_type_is_kept_as_other() -> None:
    h = parse([b"\x01" * 40, eth(0x0800, ipv4(6, tcp()))], [147, 1])
    assert h.proto.tolist() == [PROTO_OTHER, PROTO_TCP]
    assert h.linktype.tolist() == [147, 1]


def test_empty_batch_and_dtypes() -> None:
    h = parse_headers(FrameBatch.empty())
    assert len(h) == 0 and h.src_ip.shape == (0, 16)
    full = parse([eth(0x0800, ipv4(6, tcp()))])
    dtypes = {name: getattr(full, name).dtype for name in full.__dataclass_fields__}
    assert dtypes["l3_off"] == np.int16 and dtypes["src_mac"] == np.uint64
    assert dtypes["src_ip"] == np.uint8 and dtypes["truncated"] == np.bool_
    assert dtypes["proto"] == np.uint8 and dtypes["sport"] == np.uint16
    assert dtypes["ts"] == np.float64 and dtypes["length"] == np.uint32


def test_wire_length_and_timestamps_are_copied() -> None:
    batch = FrameBatch.from_frames(
        [eth(0x0800, ipv4(6, tcp()))] * 2, [1.5, 2.5], wire_len=[1500, 60]
    )
    h = parse_headers(batch)
    assert h.ts.tolist() == [1.5, 2.5] and h.length.tolist() == [1500, 60]
    assert h.caplen.tolist() == [54, 54]
    assert h.proto.tolist() == [PROTO_TCP, PROTO_TCP]

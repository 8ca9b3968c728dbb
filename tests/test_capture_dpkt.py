"""Reader and parser against an independent decoder (dpkt), field by field."""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt
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
)
from jixiaoan.capture.parse import parse_headers
from jixiaoan.capture.pcapfile import read_capture

DATA = Path(__file__).resolve().parent / "data"
CAPTURES = sorted(p for p in DATA.rglob("*") if p.suffix in (".pcap", ".pcapng"))
MAPPED = b"\x00" * 10 + b"\xff\xff"
IPV6_EXT = {0, 43, 44, 60, 51}


def dpkt_frames(path: Path) -> tuple[list[bytes], list[float], list[int], list[int]]:
    """Frames, timestamps, wire lengths and link types of a capture.

    Frames (and classic pcap timestamps) come from dpkt; record metadata that dpkt hides or
    gets wrong (original length; pcapng per-interface time resolution, which dpkt takes from
    the first interface only) comes from a plain struct walk of the blocks.
    """
    raw = path.read_bytes()
    with open(path, "rb") as fh:
        is_ng = raw[:4] == b"\x0a\x0d\x0d\x0a"
        reader = dpkt.pcapng.Reader(fh) if is_ng else dpkt.pcap.Reader(fh)
        records = [(float(t), bytes(buf)) for t, buf in reader]
        frames = [buf for _t, buf in records]
        if raw[:4] != b"\x0a\x0d\x0d\x0a":
            ts = [t for t, _buf in records]
            wire = _pcap_wire_lengths(raw, len(frames))
            return frames, ts, wire, [reader.datalink()] * len(frames)
    ts, wire, links = _pcapng_metadata(raw)
    return frames, ts, wire, links


def _pcap_wire_lengths(raw: bytes, n: int) -> list[int]:
    e = "<" if struct.unpack("<I", raw[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    out, pos = [], 24
    while len(out) < n:
        caplen, wire = struct.unpack_from(e + "II", raw, pos + 8)
        out.append(wire)
        pos += 16 + caplen
    return out


def _pcapng_metadata(raw: bytes) -> tuple[list[float], list[int], list[int]]:
    """Timestamps, wire lengths and link types of the enhanced packet blocks."""
    ts, wire, links = [], [], []
    interfaces: list[tuple[int, float]] = []
    e, pos = "<", 0
    while pos + 12 <= len(raw):
        if raw[pos : pos + 4] == b"\x0a\x0d\x0d\x0a":
            e = "<" if raw[pos + 8 : pos + 12] == struct.pack("<I", 0x1A2B3C4D) else ">"
            interfaces = []
        btype, blen = struct.unpack_from(e + "II", raw, pos)
        if btype == 1:
            linktype = struct.unpack_from(e + "H", raw, pos + 8)[0]
            unit, opt = 1e-6, pos + 16
            while opt < pos + blen - 4:
                code, olen = struct.unpack_from(e + "HH", raw, opt)
                if code == 0:
                    break
                if code == 9:
                    res = raw[opt + 4]
                    unit = 2.0 ** -(res & 0x7F) if res & 0x80 else 10.0**-res
                opt += 4 + olen + (-olen % 4)
            interfaces.append((linktype, unit))
        elif btype == 6:
            iid, hi, lo, _cap, orig = struct.unpack_from(e + "IIIII", raw, pos + 8)
            linktype, unit = interfaces[iid]
            ts.append(((hi << 32) | lo) * unit)
            wire.append(orig)
            links.append(linktype)
        pos += blen
    return ts, wire, links


def reference(frame: bytes, linktype: int) -> dict:
    """Decode one frame with dpkt's per-layer classes into HeaderBatch-like fields."""
    r = dict(src_mac=0, dst_mac=0, ethertype=0, vlan=0, l3_off=-1, ip_version=0,
             src_ip=bytes(16), dst_ip=bytes(16), ip_proto=0, l4_off=-1, sport=0, dport=0,
             tcp_flags=0, payload_off=-1, proto=PROTO_OTHER, truncated=False)  # fmt: skip
    try:
        _reference(frame, linktype, r)
    except (dpkt.NeedData, struct.error, IndexError):
        r["truncated"] = True
    return r


def _reference(frame: bytes, linktype: int, r: dict) -> None:
    if linktype == 1:
        if len(frame) < 14:
            raise dpkt.NeedData
        eth = dpkt.ethernet.Ethernet(frame)
        r["dst_mac"] = int.from_bytes(eth.dst, "big")
        r["src_mac"] = int.from_bytes(eth.src, "big")
        tags = getattr(eth, "vlan_tags", [])
        r["vlan"] = tags[0].id if tags else 0
        etype = tags[-1].type if tags else eth.type
        l3 = 14 + 4 * len(tags)
    elif linktype == 113:
        sll = dpkt.sll.SLL(frame)
        if sll.hlen == 6:
            r["src_mac"] = int.from_bytes(sll.hdr[:6], "big")
        etype, l3 = sll.ethtype, 16
    elif linktype == 276:
        sll2 = dpkt.sll2.SLL2(frame)
        if sll2.hlen == 6:
            r["src_mac"] = int.from_bytes(sll2.hdr[:6], "big")
        etype, l3 = sll2.ethtype, 20
    elif linktype in (0, 108):
        fam = struct.unpack("<I", frame[:4])[0]
        if fam > 0xFFFF:
            fam = struct.unpack(">I", frame[:4])[0]
        etype = 0x0800 if fam == 2 else 0x86DD if fam in (10, 24, 28, 30) else 0
        l3 = 4
    elif linktype in (101, 228, 229):
        version = frame[0] >> 4 if linktype == 101 else {228: 4, 229: 6}[linktype]
        etype = {4: 0x0800, 6: 0x86DD}.get(version, 0)
        l3 = 0
    else:
        return
    r["ethertype"] = etype if etype >= 0x600 else 0
    body = frame[l3:]
    if etype == 0x0806:
        r["proto"] = PROTO_ARP
        arp = dpkt.arp.ARP(body)
        r["l3_off"] = l3
        if arp.pro == 0x0800 and arp.pln == 4:
            if len(body) < 8 + 2 * arp.hln + 8:
                raise dpkt.NeedData
            sip = 8 + arp.hln
            r["src_ip"] = MAPPED + body[sip : sip + 4]
            r["dst_ip"] = MAPPED + body[sip + 4 + arp.hln : sip + 8 + arp.hln]
        return
    if etype == 0x0800 and len(body) >= 20 and body[0] >> 4 == 4:
        ip = dpkt.ip.IP(body)
        r.update(ip_version=4, l3_off=l3, ip_proto=ip.p, proto=PROTO_IPV4)
        r.update(src_ip=MAPPED + ip.src, dst_ip=MAPPED + ip.dst)
        if ip.hl < 5:
            return
        if len(body) < ip.hl * 4:
            raise dpkt.NeedData
        if ip.offset:
            return
        l4, proto, v6 = l3 + ip.hl * 4, ip.p, False
    elif etype == 0x86DD and len(body) >= 40 and body[0] >> 4 == 6:
        r.update(ip_version=6, l3_off=l3, proto=PROTO_IPV6)
        r["src_ip"], r["dst_ip"] = body[8:24], body[24:40]
        proto, pos, first = body[6], 40, True
        for _ in range(8):
            if proto not in IPV6_EXT:
                break
            if len(body) < pos + 8:
                r["ip_proto"] = proto
                raise dpkt.NeedData
            ext = dpkt.ip6.EXT_HDRS_CLS[proto](body[pos:])
            if proto == 44 and ext.frag_off:
                first = False
            proto, pos = ext.nxt, pos + ext.length
        r["ip_proto"] = proto
        if proto in IPV6_EXT or not first:
            return
        if pos > len(body):
            raise dpkt.NeedData
        l4, v6 = l3 + pos, True
    else:
        if etype == 0x0800 or etype == 0x86DD:
            r["truncated"] = len(body) < (20 if etype == 0x0800 else 40)
        return
    seg = frame[l4:]
    if proto == 6:
        tcp = dpkt.tcp.TCP(seg[:20] + b"\x00" * 40)  # header fields only
        if len(seg) < 20:
            raise dpkt.NeedData
        r.update(proto=PROTO_TCP, l4_off=l4, sport=tcp.sport, dport=tcp.dport, tcp_flags=tcp.flags)
        if tcp.off < 5 or len(seg) < tcp.off * 4:
            raise dpkt.NeedData
        r["payload_off"] = l4 + tcp.off * 4
    elif proto == 17:
        udp = dpkt.udp.UDP(seg)
        r.update(proto=PROTO_UDP, l4_off=l4, sport=udp.sport, dport=udp.dport, payload_off=l4 + 8)
    elif (proto == 1 and not v6) or (proto == 58 and v6):
        if len(seg) < 8:
            raise dpkt.NeedData
        r.update(proto=PROTO_ICMPV6 if v6 else PROTO_ICMP, l4_off=l4, payload_off=l4 + 8)


def compare(batch: FrameBatch, headers: HeaderBatch) -> list[str]:
    """Differences between parse_headers and the dpkt reference, one line per field."""
    problems = []
    for i in range(len(batch)):
        ref = reference(batch.frame(i), int(batch.linktype[i]))
        for name, want in ref.items():
            got = getattr(headers, name)[i]
            got = bytes(got) if name.endswith("_ip") else got.item()
            if got != want:
                problems.append(f"frame {i}: {name} = {got!r}, dpkt says {want!r}")
    return problems


def test_corpus_covers_the_link_types_and_protocols() -> None:
    batches = [b for path in CAPTURES for b in read_capture(path)]
    joined = FrameBatch.concat(batches)
    headers = parse_headers(joined)
    assert {0, 1, 101, 113, 228, 229} <= set(joined.linktype.tolist())
    for code in (PROTO_ARP, PROTO_IPV4, PROTO_IPV6, PROTO_TCP, PROTO_UDP, PROTO_ICMP,
                 PROTO_ICMPV6, PROTO_OTHER):  # fmt: skip
        assert (headers.proto == code).any(), code
    assert (headers.vlan > 0).any()
    v6_with_ext = (headers.ip_version == 6) & (headers.l4_off - headers.l3_off > 40)
    assert v6_with_ext.any()


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_reader_matches_dpkt(path: Path) -> None:
    frames, ts, wire, links = dpkt_frames(path)
    batch = FrameBatch.concat(list(read_capture(path)))
    assert len(batch) == len(frames) > 0
    assert [batch.frame(i) for i in range(len(batch))] == frames
    np.testing.assert_allclose(batch.ts, ts, rtol=0, atol=2e-6)
    assert batch.wire_len.tolist() == wire
    assert batch.linktype.tolist() == links


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_parser_matches_dpkt(path: Path) -> None:
    batch = FrameBatch.concat(list(read_capture(path)))
    headers = parse_headers(batch)
    assert headers.ts.tolist() == batch.ts.tolist()
    assert headers.length.tolist() == batch.wire_len.tolist()
    assert headers.caplen.tolist() == batch.caplen.tolist()
    assert compare(batch, headers) == []


def test_parser_matches_dpkt_on_sll2() -> None:
    """No SLL2 capture is bundled: rewrite Ethernet frames as SLL2 frames."""
    batch = FrameBatch.concat(list(read_capture(DATA / "zeek" / "wikipedia.pcap")))
    frames = []
    for i in range(len(batch)):
        eth = batch.frame(i)
        header = eth[12:14] + b"\x00\x00" + struct.pack(">iHBB", 2, 1, 0, 6) + eth[6:12] + b"\0\0"
        frames.append(header + eth[14:])
    sll2 = FrameBatch.from_frames(frames, batch.ts, linktype=276)
    headers = parse_headers(sll2)
    assert compare(sll2, headers) == []
    assert headers.src_mac.tolist() == parse_headers(batch).src_mac.tolist()
    assert (headers.dst_mac == 0).all()

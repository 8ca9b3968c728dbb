"""Anonymised bytes: every address and address-dependent checksum zeroed, nothing else touched."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1Q, Ether
from test_features_support import batches_from_packets

from jixiaoan.capture import batch as cb
from jixiaoan.capture.batch import FrameBatch
from jixiaoan.capture.parse import parse_headers
from jixiaoan.features.anonymize import anonymized_bytes
from jixiaoan.features.batch import PAD_INDEX

nonzero = st.integers(1, 255)
macs = st.lists(nonzero, min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))
ipv4s = st.lists(nonzero, min_size=4, max_size=4).map(lambda b: ".".join(map(str, b)))
ipv6s = st.lists(nonzero, min_size=16, max_size=16).map(
    lambda b: ":".join(f"{b[i]:02x}{b[i + 1]:02x}" for i in range(0, 16, 2))
)


def spans(*pairs: tuple[int, int]) -> set[int]:
    return {i for start, length in pairs for i in range(start, start + length)}


def craft(kind: str, m1: str, m2: str, a4: str, b4: str, a6: str, b6: str):
    """A frame of the given kind and the byte positions that must be zeroed."""
    eth = Ether(src=m1, dst=m2)
    if kind == "tcp4":
        return eth / IP(src=a4, dst=b4) / TCP(sport=1234, dport=80), spans(
            (0, 12), (24, 10), (50, 2)
        )
    if kind == "udp4_vlan":
        pkt = eth / Dot1Q(vlan=5) / IP(src=a4, dst=b4) / UDP(sport=1234, dport=53) / b"q"
        return pkt, spans((0, 12), (28, 10), (44, 2))
    if kind == "tcp6":
        return eth / IPv6(src=a6, dst=b6) / TCP(sport=1234, dport=80), spans(
            (0, 12), (22, 32), (70, 2)
        )
    if kind == "udp6":
        return eth / IPv6(src=a6, dst=b6) / UDP(sport=1234, dport=53), spans(
            (0, 12), (22, 32), (60, 2)
        )
    if kind == "echo6":
        return eth / IPv6(src=a6, dst=b6) / ICMPv6EchoRequest(), spans((0, 12), (22, 32), (56, 2))
    if kind == "arp":
        pkt = eth / ARP(op=2, hwsrc=m1, psrc=a4, hwdst=m2, pdst=b4)
        return pkt, spans((0, 12), (22, 20))
    if kind == "icmp_error":
        quoted = IP(src=b4, dst=a4) / UDP(sport=1234, dport=53)
        pkt = eth / IP(src=a4, dst=b4) / ICMP(type=3, code=3) / quoted
        return pkt, spans((0, 12), (24, 10), (36, 2), (52, 10), (68, 2))
    if kind == "ns":
        pkt = eth / IPv6(src=a6, dst=b6) / ICMPv6ND_NS(tgt=b6) / ICMPv6NDOptSrcLLAddr(lladdr=m1)
        return pkt, spans((0, 12), (22, 32), (56, 2), (62, 16), (80, 6))
    if kind == "na":
        pkt = eth / IPv6(src=a6, dst=b6) / ICMPv6ND_NA(tgt=a6)
        return pkt, spans((0, 12), (22, 32), (56, 2), (62, 16))
    if kind == "ipip":
        pkt = eth / IP(src=a4, dst=b4) / IP(src=b4, dst=a4) / UDP(sport=1234, dport=53)
        return pkt, spans((0, 12), (24, 10), (44, 10), (60, 2))
    if kind == "6in4":
        pkt = eth / IP(src=a4, dst=b4) / IPv6(src=a6, dst=b6) / UDP(sport=1234, dport=53)
        return pkt, spans((0, 12), (24, 10), (42, 32), (80, 2))
    raise AssertionError(kind)


KINDS = [
    "tcp4",
    "udp4_vlan",
    "tcp6",
    "udp6",
    "echo6",
    "arp",
    "icmp_error",
    "ns",
    "na",
    "ipip",
    "6in4",
]


def address_bytes(m1, m2, a4, b4, a6, b6) -> list[bytes]:
    return (
        [bytes.fromhex(m.replace(":", "")) for m in (m1, m2)]
        + [cb.ip_from_str(a)[-4:] for a in (a4, b4)]
        + [cb.ip_from_str(a) for a in (a6, b6)]
    )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from(KINDS), min_size=1, max_size=8), macs, macs, ipv4s, ipv4s, ipv6s, ipv6s
)
def test_addresses_and_checksums_zeroed_and_nothing_else(kinds, m1, m2, a4, b4, a6, b6):
    crafted = [craft(k, m1, m2, a4, b4, a6, b6) for k in kinds]
    frames, headers = batches_from_packets([p for p, _ in crafted])
    width = 128
    out = anonymized_bytes(frames, headers, width)
    assert out.dtype == np.uint16 and out.shape == (len(kinds), width)
    secrets = address_bytes(m1, m2, a4, b4, a6, b6)
    for i, (pkt, zeroed) in enumerate(crafted):
        raw = bytes(pkt)
        assert len(raw) <= width, "test frames must fit the window"
        row = out[i]
        assert (row[len(raw) :] == PAD_INDEX).all()
        expected = np.frombuffer(raw, np.uint8).astype(np.uint16)
        expected[sorted(zeroed)] = 0
        np.testing.assert_array_equal(row[: len(raw)], expected, err_msg=kinds[i])
        text = bytes(row[: len(raw)].astype(np.uint8))
        for secret in secrets:
            assert secret not in text, (kinds[i], secret.hex())


def test_linux_cooked_captures():
    ip = IP(src="192.168.7.9", dst="10.1.2.3") / UDP(sport=9, dport=9)
    sll = bytes(
        CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=b"\x11\x22\x33\x44\x55\x66\x00\x00")
        / ip
    )
    sll2 = bytes(CookedLinuxV2(lladdrlen=6, src=b"\x11\x22\x33\x44\x55\x66\x00\x00") / ip)
    for raw, linktype, (mac_at, l3) in (
        (sll, cb.LINKTYPE_LINUX_SLL, (6, 16)),
        (sll2, cb.LINKTYPE_LINUX_SLL2, (12, 20)),
    ):
        frames = FrameBatch.from_frames([raw], [0.0], linktype)
        out = anonymized_bytes(frames, parse_headers(frames), 64)[0]
        assert (out[mac_at : mac_at + 8] == 0).all()
        assert (out[l3 + 10 : l3 + 20] == 0).all()  # IPv4 checksum and addresses
        assert (out[l3 + 26 : l3 + 28] == 0).all()  # UDP checksum
        assert out[l3 + 8] == 64  # TTL untouched
        assert b"\x11\x22\x33" not in bytes(out[: len(raw)].astype(np.uint8))


def test_padding_cut_and_real_zero_bytes():
    short = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x9000) / b"\x00\x07"
    long = Ether() / IP(src="1.2.3.4", dst="5.6.7.8") / TCP(sport=7, dport=8) / (b"x" * 100)
    frames, headers = batches_from_packets([short, long])
    out = anonymized_bytes(frames, headers, 20)
    assert out[0, 12:16].tolist() == [0x90, 0x00, 0x00, 0x07]  # real zeros are 0, not padding
    assert (out[0, 16:] == PAD_INDEX).all()
    assert (out[1] != PAD_INDEX).all()  # cut at 20 bytes, no padding
    assert (out[1, :12] == 0).all() and out[1, 12:14].tolist() == [0x08, 0x00]


def test_snap_length_cut_inside_the_ip_header():
    raw = bytes(Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP())[:30]
    frames = FrameBatch.from_frames([raw], [0.0], wire_len=[62])
    out = anonymized_bytes(frames, parse_headers(frames), 64)[0]
    assert (out[22:30] == 0).all() and (out[30:] == PAD_INDEX).all()
    assert out[14] == 0x60  # version nibble kept


def test_own_addresses_in_the_payload_are_zeroed():
    mac = "00:0c:29:aa:bb:cc"
    request = (
        Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=bytes.fromhex("000c29aabbcc"), ciaddr="192.168.3.4")
        / DHCP(options=[("message-type", "request"), "end"])
    )
    ack = Ether(src="00:0c:29:00:00:01", dst=mac) / IP(src="192.168.3.1", dst="192.168.3.4")
    ack = ack / UDP(sport=67, dport=68) / BOOTP(op=2, yiaddr="192.168.3.4", chaddr=b"\x01" * 6)
    frames, headers = batches_from_packets([request, ack])
    out = anonymized_bytes(frames, headers, 128)
    # BOOTP starts at 42: ciaddr at 54 (not the sender's address: kept), chaddr at 70
    assert out[0, 54:58].tolist() == [192, 168, 3, 4]
    assert (out[0, 70:76] == 0).all()
    assert (out[1, 58:62] == 0).all()  # yiaddr equals the destination address
    assert out[1, 70:76].tolist() == [1] * 6
    assert out[1, 42] == 2  # BOOTP op untouched


def test_empty_batch():
    frames, headers = batches_from_packets([])
    assert anonymized_bytes(frames, headers, 64).shape == (0, 64)

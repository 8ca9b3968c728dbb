"""Frames parsed by the capture stage's parse_headers, stored and read back."""

from __future__ import annotations

import struct

import numpy as np

from jixiaoan.capture.batch import FrameBatch
from jixiaoan.capture.parse import parse_headers
from jixiaoan.engine.batch import ClassifiedBatch, Device
from jixiaoan.storage.writer import PacketStore

CAM_MAC, HUB_MAC, GW_MAC = "02:11:22:33:44:01", "02:11:22:33:44:02", "02:11:22:33:44:fe"


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def ether(src: str, dst: str, ethertype: int, payload: bytes) -> bytes:
    return mac(dst) + mac(src) + struct.pack("!H", ethertype) + payload


def ipv4_udp(src: str, dst: str, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", 5353, 53, 8 + len(payload), 0) + payload
    total = 20 + len(udp)
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, 17, 0,
        bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))),
    )  # fmt: skip
    return ip + udp


def ipv6_tcp(src: bytes, dst: bytes) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", 40000, 443, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
    return struct.pack("!IHBB16s16s", 6 << 28, len(tcp), 6, 64, src, dst) + tcp


def arp(sender_mac: str, sender_ip: str, target_ip: str) -> bytes:
    return struct.pack(
        "!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac(sender_mac),
        bytes(map(int, sender_ip.split("."))), b"\x00" * 6, bytes(map(int, target_ip.split("."))),
    )  # fmt: skip


def test_parsed_frames_are_stored_with_ip_or_mac_text(tmp_path):
    v6_cam = bytes.fromhex("fe800000000000000000000000000001")
    v6_far = bytes.fromhex("20010db8000000000000000000000002")
    frames = [
        ether(CAM_MAC, GW_MAC, 0x0800, ipv4_udp("192.168.4.10", "8.8.8.8", b"hello")),
        ether(CAM_MAC, GW_MAC, 0x86DD, ipv6_tcp(v6_cam, v6_far)),
        ether(HUB_MAC, "ff:ff:ff:ff:ff:ff", 0x0806, arp(HUB_MAC, "192.168.4.11", "192.168.4.1")),
        ether(HUB_MAC, CAM_MAC, 0x88B5, b"local experimental ethertype"),
    ]
    fb = FrameBatch.from_frames(frames, [10.0, 10.5, 11.0, 11.5])
    headers = parse_headers(fb)
    devices = [Device(mac=CAM_MAC, ip="192.168.4.10"), Device(mac=HUB_MAC, ip="192.168.4.11")]
    batch = ClassifiedBatch(
        frames=fb,
        headers=headers,
        src_device=np.array([0, 0, 1, 1], np.int32),
        dst_device=np.array([-1, -1, -1, 0], np.int32),
        is_bad=np.array([0, 1, -1, 0], np.int8),
        score=np.array([0.1, 0.8, np.nan, 0.2], np.float32),
        attack=np.array([-1, 0, -1, -1], np.int16),
        attack_names=("recon",),
        devices=devices,
    )
    with PacketStore(tmp_path / "s.db") as store:
        store.submit(batch)
        assert store.flush(10)
        cam, hub = store.register_device(devices[0]), store.register_device(devices[1])
        cam_rows = store.reader.latest(cam, 10)
        hub_rows = store.reader.latest(hub, 10)
    got = [(r.source, r.dest, r.type, r.length, r.is_bad, r.attack) for r in cam_rows]
    assert got == [
        ("192.168.4.10", "8.8.8.8", "UDP", len(frames[0]), 0, None),
        ("fe80::1", "2001:db8::2", "TCP", len(frames[1]), 1, "recon"),
        (HUB_MAC, CAM_MAC, "other", len(frames[3]), 0, None),
    ]
    got = [(r.source, r.dest, r.type, r.is_bad, r.score) for r in hub_rows]
    assert got[0] == ("192.168.4.11", "192.168.4.1", "ARP", None, None)
    assert got[1][:3] == (HUB_MAC, CAM_MAC, "other")

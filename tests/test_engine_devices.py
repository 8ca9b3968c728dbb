"""Device attribution and discovery on real captures and crafted frames."""

from __future__ import annotations

import numpy as np
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from jixiaoan.capture.batch import FrameBatch
from jixiaoan.capture.parse import parse_headers
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.engine.batch import Device
from jixiaoan.engine.devices import DeviceDiscovery, DeviceIndex, is_local_address

CAM_MAC, CAM_IP = "02:00:00:00:00:0a", "192.168.137.10"
PLUG_MAC, PLUG_IP = "02:00:00:00:00:0b", "192.168.137.11"
GW_MAC = "02:00:00:00:00:01"


def _headers(frames: list[bytes]):
    return parse_headers(FrameBatch.from_frames(frames, np.arange(len(frames), dtype=float)))


def test_attribution_by_mac_then_ip():
    frames = [
        bytes(Ether(src=CAM_MAC, dst=GW_MAC) / IP(src=CAM_IP, dst="8.8.8.8") / UDP()),
        bytes(Ether(src=GW_MAC, dst=CAM_MAC) / IP(src="8.8.8.8", dst=CAM_IP) / UDP()),
        # the plug is known by IP only (beyond a router): its MAC is the gateway's
        bytes(Ether(src=GW_MAC, dst=GW_MAC) / IP(src=PLUG_IP, dst="1.1.1.1") / UDP()),
        bytes(Ether(src=CAM_MAC, dst=PLUG_MAC) / IP(src=CAM_IP, dst=PLUG_IP) / UDP()),
        bytes(Ether(src=GW_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="192.168.137.1")),
    ]
    index = DeviceIndex([Device(mac=CAM_MAC, ip=CAM_IP), Device(ip=PLUG_IP)])
    src, dst = index.attribute(_headers(frames))
    assert src.tolist() == [0, -1, 1, 0, -1]
    assert dst.tolist() == [-1, 0, -1, 1, -1]


def test_empty_device_list_attributes_nothing():
    frames = [bytes(Ether(src=CAM_MAC) / IP(src=CAM_IP) / UDP())]
    src, dst = DeviceIndex([]).attribute(_headers(frames))
    assert src.tolist() == [-1] and dst.tolist() == [-1]


def test_discovery_finds_lan_hosts_and_skips_router_mac():
    frames = []
    for i in range(6):  # six LAN hosts behind one router MAC
        frames.append(bytes(Ether(src=GW_MAC) / IP(src=f"10.1.0.{i + 2}", dst="10.9.9.9") / UDP()))
    frames.append(bytes(Ether(src=CAM_MAC) / IP(src=CAM_IP, dst="8.8.8.8") / UDP()))
    frames.append(bytes(Ether(src=CAM_MAC) / IP(src=CAM_IP, dst="8.8.4.4") / UDP()))
    frames.append(bytes(Ether(src="02:00:00:00:00:99") / IP(src="8.8.8.8", dst=CAM_IP) / UDP()))
    disc = DeviceDiscovery()
    disc.observe(_headers(frames))
    devices = disc.devices()
    assert devices[0] == Device(mac=CAM_MAC, ip=CAM_IP, vendor=devices[0].vendor)
    router_hosts = [d for d in devices if d.ip.startswith("10.1.0.")]
    assert len(router_hosts) == 6 and all(d.mac == "" for d in router_hosts)
    assert not any(d.ip == "8.8.8.8" for d in devices)


def test_local_address_rules():
    assert is_local_address("192.168.137.5") and is_local_address("fe80::1")
    assert not is_local_address("8.8.8.8") and not is_local_address("224.0.0.251")
    assert not is_local_address("192.168.1.255") and not is_local_address("not an ip")


def test_discovery_on_real_capture(data_dir):
    disc = DeviceDiscovery()
    for frames in read_capture(str(data_dir / "zeek" / "rfb" / "vnc-scanner.pcap")):
        disc.observe(parse_headers(frames))
    ips = {d.ip for d in disc.devices()}
    assert "192.168.0.11" in ips  # the scanner of tests/data/labels.csv


def test_ip_lookup_matches_a_plain_scan_and_the_first_device_wins():
    """Many devices known by IP only (v4 and v6, one address listed twice): every packet gets
    the first listed device with its address, as a scan of the list would give."""
    from jixiaoan.engine.devices import _ip_words

    rng = np.random.default_rng(3)
    v4 = [f"10.0.0.{rng.integers(1, 40)}" for _ in range(60)]
    v6 = [f"fd00::{rng.integers(1, 40):x}" for _ in range(20)]
    devices = [Device(ip=ip) for ip in dict.fromkeys(v4 + v6)]
    devices.append(Device(ip=devices[5].ip, name="duplicate"))
    index = DeviceIndex(devices)
    packets = [f"10.0.0.{rng.integers(1, 60)}" for _ in range(400)]
    packets += [f"fd00::{rng.integers(1, 60):x}" for _ in range(100)]
    from jixiaoan.capture.batch import ip_from_str

    raw = np.stack([np.frombuffer(ip_from_str(p), np.uint8) for p in packets])
    got = index._by_ip(raw)
    words = _ip_words(raw)
    for row, text in enumerate(packets):
        want = next((i for i, d in enumerate(devices) if d.ip == text), -1)
        assert got[row] == want, (text, words[row])
    assert (got >= 0).sum() > 100 and (got < 0).sum() > 50

"""Passive discovery from crafted ARP, DHCP and mDNS packets."""

from __future__ import annotations

import numpy as np
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from jixiaoan.capture.batch import FrameBatch
from jixiaoan.capture.discovery import PassiveDiscovery, interesting_packets
from jixiaoan.capture.parse import parse_headers

CAM, THERMO, PLUG, ROUTER = ("00:1b:63:11:22:33", "b8:27:eb:44:55:66", "00:11:22:33:44:55",
                             "02:00:00:00:00:01")


def _chaddr(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", "")) + bytes(10)


def dhcp_request(mac: str, name: bytes, ip: str) -> Ether:
    return (Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
            / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
            / BOOTP(op=1, chaddr=_chaddr(mac))
            / DHCP(options=[("message-type", "request"), ("requested_addr", ip),
                            ("hostname", name), "end"]))


def dhcp_ack(client: str, ip: str) -> Ether:
    return (Ether(src=ROUTER, dst=client) / IP(src="192.168.137.1", dst=ip)
            / UDP(sport=67, dport=68) / BOOTP(op=2, yiaddr=ip, chaddr=_chaddr(client))
            / DHCP(options=[("message-type", "ack"), "end"]))


def mdns_response(mac: str, ip: str, name: str) -> Ether:
    return (Ether(src=mac, dst="01:00:5e:00:00:fb") / IP(src=ip, dst="224.0.0.251")
            / UDP(sport=5353, dport=5353)
            / DNS(qr=1, aa=1, an=DNSRR(rrname=name, type="A", rdata=ip, ttl=120)))


def mdns_query(mac: str, ip: str, name: str) -> Ether:
    return (Ether(src=mac, dst="01:00:5e:00:00:fb") / IP(src=ip, dst="224.0.0.251")
            / UDP(sport=5353, dport=5353) / DNS(qr=0, qd=DNSQR(qname=name)))


def arp(mac: str, ip: str, op: int = 1) -> Ether:
    return Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=op, hwsrc=mac, psrc=ip,
                                                        pdst="192.168.137.1")


def batch(*packets: Ether, t0: float = 100.0) -> tuple[FrameBatch, object]:
    frames = FrameBatch.from_frames([bytes(p) for p in packets],
                                    t0 + np.arange(len(packets), dtype=float))
    return frames, parse_headers(frames)


def test_dhcp_hostname_mdns_name_and_arp() -> None:
    disc = PassiveDiscovery()
    frames, headers = batch(
        dhcp_request(CAM, b"kitchen-cam", "192.168.137.23"),
        mdns_response(THERMO, "192.168.137.40", "thermostat.local."),
        mdns_query(PLUG, "192.168.137.9", "printer.local."),
        arp(PLUG, "192.168.137.9"),
        Ether(src=PLUG, dst=CAM) / IP(src="192.168.137.9", dst="192.168.137.23") / UDP(),
    )
    assert disc.observe(frames, headers) == 3  # the query and the plain UDP are skipped
    found = {d.mac: d for d in disc.new_devices()}
    assert set(found) == {CAM, THERMO, PLUG}
    cam, thermo, plug = found[CAM], found[THERMO], found[PLUG]
    assert (cam.hostname, cam.ip, cam.sources) == ("kitchen-cam", "192.168.137.23", {"dhcp"})
    assert cam.vendor  # from the OUI table
    assert (thermo.hostname, thermo.ip, thermo.sources) == ("thermostat.local",
                                                            "192.168.137.40", {"mdns"})
    assert (plug.hostname, plug.ip, plug.first_seen) == ("", "192.168.137.9", 103.0)
    assert disc.new_devices() == []


def test_updates_known_devices_and_reports_only_new_ones() -> None:
    disc = PassiveDiscovery()
    disc.observe(*batch(arp(PLUG, "192.168.137.9"), t0=10.0))
    assert [d.mac for d in disc.new_devices()] == [PLUG]
    disc.observe(*batch(arp(PLUG, "192.168.137.10", op=2), dhcp_ack(CAM, "192.168.137.23"),
                        t0=20.0))
    assert [d.mac for d in disc.new_devices()] == [CAM]
    plug = {d.mac: d for d in disc.devices()}[PLUG]
    assert (plug.ip, plug.first_seen, plug.last_seen) == ("192.168.137.10", 10.0, 20.0)
    assert {d.mac: d for d in disc.devices()}[CAM].ip == "192.168.137.23"
    assert len(disc) == 2


def test_arp_probes_broadcast_sources_and_foreign_networks_are_ignored() -> None:
    disc = PassiveDiscovery(networks=["192.168.137.0/24"])
    probe = Ether(src=PLUG, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=PLUG, psrc="0.0.0.0",
                                                           pdst="192.168.137.9")
    frames, headers = batch(probe, arp(THERMO, "10.1.2.3"), arp(CAM, "192.168.137.5"))
    disc.observe(frames, headers)
    assert [(d.mac, d.ip) for d in disc.devices()] == [(CAM, "192.168.137.5")]


def test_selection_is_vectorised_over_the_batch() -> None:
    frames, headers = batch(
        arp(PLUG, "192.168.137.9"),
        mdns_query(PLUG, "192.168.137.9", "x.local."),
        mdns_response(THERMO, "192.168.137.40", "t.local."),
        dhcp_request(CAM, b"cam", "192.168.137.23"),
        dhcp_ack(CAM, "192.168.137.23"),
    )
    picks = interesting_packets(frames, headers)
    assert picks["arp"].tolist() == [0]
    assert picks["mdns"].tolist() == [2]
    assert picks["dhcp"].tolist() == [3, 4]


def test_damaged_payloads_are_skipped() -> None:
    good = bytes(dhcp_request(CAM, b"cam", "192.168.137.23"))
    cut = good[: 14 + 20 + 8 + 10]  # the BOOTP header is cut short
    frames = FrameBatch.from_frames([cut, good], [1.0, 2.0])
    disc = PassiveDiscovery()
    disc.observe(frames, parse_headers(frames))
    assert [(d.mac, d.hostname) for d in disc.devices()] == [(CAM, "cam")]

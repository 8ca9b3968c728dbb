"""Vectorised header parsing: FrameBatch in, HeaderBatch out.

Decoded link types: Ethernet (up to two 802.1Q/802.1ad tags), Linux SLL and SLL2, raw IP
(101, 228, 229), BSD NULL (0) and LOOP (108) loopback. Network: IPv4 (with options), IPv6
(hop-by-hop, routing, fragment, destination-options and AH extension headers, at most 8),
ARP. Transport: TCP, UDP, ICMP, ICMPv6. Anything else is kept with ``proto`` PROTO_OTHER
(or PROTO_IPV4/PROTO_IPV6 when only the IP layer is known).

Conventions beyond those of :class:`HeaderBatch`:

* ``ethertype`` is also set for link types without one: 0x0800/0x86DD for raw IP and
  loopback frames, the protocol field for Linux SLL/SLL2; 0 for 802.3 length fields.
* ``l3_off`` is set only for ARP, IPv4 and IPv6; ``l4_off`` only for TCP, UDP, ICMP and
  ICMPv6 whose minimal header (20/8/8/8 bytes) was captured, never for non-first fragments.
* ``payload_off`` is the end of the TCP header (with options), UDP header, or the 8-byte
  ICMP/ICMPv6 header; it may equal the captured length when no payload bytes follow.
* ``truncated`` is set when the snap length cut a header that the parser tried to read;
  the fields it could not read keep their 0 / -1 defaults.
"""

from __future__ import annotations

import numpy as np

from jixiaoan.capture._parse_kernel import parse_kernel
from jixiaoan.capture.batch import FrameBatch, HeaderBatch


def empty_headers(n: int) -> HeaderBatch:
    """A HeaderBatch of ``n`` rows holding the 'nothing decoded' defaults."""
    return HeaderBatch(
        ts=np.zeros(n, np.float64),
        length=np.zeros(n, np.uint32),
        caplen=np.zeros(n, np.uint32),
        linktype=np.zeros(n, np.uint16),
        src_mac=np.zeros(n, np.uint64),
        dst_mac=np.zeros(n, np.uint64),
        ethertype=np.zeros(n, np.uint16),
        vlan=np.zeros(n, np.uint16),
        l3_off=np.full(n, -1, np.int16),
        ip_version=np.zeros(n, np.uint8),
        src_ip=np.zeros((n, 16), np.uint8),
        dst_ip=np.zeros((n, 16), np.uint8),
        ip_proto=np.zeros(n, np.uint8),
        l4_off=np.full(n, -1, np.int16),
        sport=np.zeros(n, np.uint16),
        dport=np.zeros(n, np.uint16),
        tcp_flags=np.zeros(n, np.uint8),
        payload_off=np.full(n, -1, np.int16),
        proto=np.zeros(n, np.uint8),
        truncated=np.zeros(n, np.bool_),
    )


def parse_headers(batch: FrameBatch) -> HeaderBatch:
    """Decode the headers of every frame in ``batch`` (one numba pass, no per-packet Python)."""
    n = len(batch)
    h = empty_headers(n)
    h.ts[:] = batch.ts
    h.length[:] = batch.wire_len
    h.caplen[:] = batch.caplen
    h.linktype[:] = batch.linktype
    if n == 0:
        return h
    data = np.ascontiguousarray(batch.data, dtype=np.uint8)
    offsets = np.ascontiguousarray(batch.offsets, dtype=np.int64)
    linktype = np.ascontiguousarray(batch.linktype, dtype=np.uint16)
    parse_kernel(
        data, offsets, linktype, h.src_mac, h.dst_mac, h.ethertype, h.vlan, h.l3_off,
        h.ip_version, h.src_ip, h.dst_ip, h.ip_proto, h.l4_off, h.sport, h.dport,
        h.tcp_flags, h.payload_off, h.proto, h.truncated,
    )  # fmt: skip
    return h

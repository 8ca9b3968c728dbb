"""Synthetic classified batches for the storage tests, the kill -9 child and the benchmark.

The frames are random bytes behind made-up header fields: good for exercising storage, not a
substitute for real captures.
"""

from __future__ import annotations

import numpy as np

from jixiaoan.capture.batch import (
    LINKTYPE_ETHERNET,
    PROTO_ARP,
    PROTO_TCP,
    PROTO_UDP,
    FrameBatch,
    HeaderBatch,
    ip_from_str,
    mac_from_str,
)
from jixiaoan.engine.batch import ClassifiedBatch, Device

OUTSIDE = Device(mac="02:00:00:00:00:fe", ip="203.0.113.9", name="outside")


def _addr_arrays(devs: list[Device]) -> tuple[np.ndarray, np.ndarray]:
    macs = np.asarray([mac_from_str(d.mac) if d.mac else 0 for d in devs], dtype=np.uint64)
    ips = np.zeros((len(devs), 16), dtype=np.uint8)
    for i, d in enumerate(devs):
        if d.ip:
            ips[i] = np.frombuffer(ip_from_str(d.ip), dtype=np.uint8)
    return macs, ips


def synthetic_batch(
    n: int,
    devices: list[Device],
    t0: float,
    rng: np.random.Generator,
    *,
    src: np.ndarray | None = None,
    dst: np.ndarray | None = None,
    classified: bool = True,
    sizes: tuple[int, int] = (64, 1500),
    dt: float = 1e-4,
) -> ClassifiedBatch:
    """``n`` packets at ``t0, t0 + dt, ...`` between ``devices`` (index -1 = outside host).

    ``src``/``dst`` give the device index of each packet (default: each packet goes from a
    random watched device to the outside). Unclassified batches carry is_bad -1 and NaN scores.
    """
    k = len(devices)
    if src is None:
        src = rng.integers(0, max(k, 1), n) if k else np.full(n, -1)
    if dst is None:
        dst = np.full(n, -1)
    src = np.asarray(src, dtype=np.int32)
    dst = np.asarray(dst, dtype=np.int32)
    lengths = rng.integers(sizes[0], sizes[1] + 1, n)
    blob = rng.integers(0, 256, int(lengths.sum()), dtype=np.uint8)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ts = t0 + dt * np.arange(n, dtype=np.float64)
    frames = FrameBatch(
        blob, offsets, ts, lengths.astype(np.uint32), np.full(n, LINKTYPE_ETHERNET, np.uint16)
    )
    macs, ips = _addr_arrays([*devices, OUTSIDE])  # index -1 picks OUTSIDE
    proto = rng.choice(np.asarray([PROTO_TCP, PROTO_UDP, PROTO_ARP], np.uint8), n)
    zeros16 = np.zeros(n, np.uint16)
    headers = HeaderBatch(
        ts=ts,
        length=lengths.astype(np.uint32),
        caplen=lengths.astype(np.uint32),
        linktype=np.full(n, LINKTYPE_ETHERNET, np.uint16),
        src_mac=macs[src],
        dst_mac=macs[dst],
        ethertype=np.where(proto == PROTO_ARP, 0x0806, 0x0800).astype(np.uint16),
        vlan=zeros16,
        l3_off=np.full(n, 14, np.int16),
        ip_version=np.where(proto == PROTO_ARP, 0, 4).astype(np.uint8),
        src_ip=ips[src],
        dst_ip=ips[dst],
        ip_proto=np.where(proto == PROTO_TCP, 6, np.where(proto == PROTO_UDP, 17, 0)).astype(
            np.uint8
        ),
        l4_off=np.full(n, 34, np.int16),
        sport=rng.integers(1024, 65535, n).astype(np.uint16),
        dport=np.full(n, 443, np.uint16),
        tcp_flags=np.zeros(n, np.uint8),
        payload_off=np.full(n, 54, np.int16),
        proto=proto,
        truncated=np.zeros(n, bool),
    )
    if classified:
        score = rng.random(n).astype(np.float32)
        is_bad = (score > 0.5).astype(np.int8)
        attack = np.where(is_bad == 1, rng.integers(0, 2, n), -1).astype(np.int16)
    else:
        score = np.full(n, np.nan, np.float32)
        is_bad = np.full(n, -1, np.int8)
        attack = np.full(n, -1, np.int16)
    return ClassifiedBatch(
        frames=frames,
        headers=headers,
        src_device=src,
        dst_device=dst,
        is_bad=is_bad,
        score=score,
        attack=attack,
        attack_names=("ddos", "scan"),
        devices=list(devices),
    )

"""Small hand-made ClassifiedBatch objects for tests and demos (no capture, no model)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jixiaoan.capture.batch import (
    LINKTYPE_ETHERNET,
    PROTO_UDP,
    FrameBatch,
    HeaderBatch,
    ip_from_str,
    mac_from_str,
)
from jixiaoan.engine.batch import ClassifiedBatch, Device


def _addresses(values: Sequence[str] | str, n: int, convert, empty):
    if isinstance(values, str):
        values = [values] * n
    return [convert(v) if v else empty for v in values]


def scripted_batch(
    ts: Sequence[float] | np.ndarray,
    src_device: Sequence[int] | np.ndarray,
    dst_device: Sequence[int] | np.ndarray,
    is_bad: Sequence[int] | np.ndarray,
    attack: Sequence[int] | np.ndarray | None = None,
    attack_names: tuple[str, ...] = (),
    devices: list[Device] | None = None,
    src_ip: Sequence[str] | str = "",
    dst_ip: Sequence[str] | str = "",
    src_mac: Sequence[str] | str = "",
    dst_mac: Sequence[str] | str = "",
) -> ClassifiedBatch:
    """A ClassifiedBatch of ``len(ts)`` dummy 60-byte UDP frames with the given attribution,
    verdicts and (optionally) addresses; ``attack`` defaults to -1 everywhere."""
    n = len(ts)
    ts = np.asarray(ts, np.float64)
    frames = FrameBatch.from_frames([bytes(60)] * n, ts)
    ip0, mac0 = bytes(16), 0
    sip = _addresses(src_ip, n, ip_from_str, ip0)
    dip = _addresses(dst_ip, n, ip_from_str, ip0)
    smac = _addresses(src_mac, n, mac_from_str, mac0)
    dmac = _addresses(dst_mac, n, mac_from_str, mac0)
    ips = lambda a: np.frombuffer(b"".join(a), np.uint8).reshape(n, 16).copy()  # noqa: E731
    zeros = lambda dt: np.zeros(n, dt)  # noqa: E731
    headers = HeaderBatch(
        ts=ts.copy(),
        length=np.full(n, 60, np.uint32),
        caplen=np.full(n, 60, np.uint32),
        linktype=np.full(n, LINKTYPE_ETHERNET, np.uint16),
        src_mac=np.asarray(smac, np.uint64).reshape(n),
        dst_mac=np.asarray(dmac, np.uint64).reshape(n),
        ethertype=np.full(n, 0x86DD, np.uint16),
        vlan=zeros(np.uint16),
        l3_off=np.full(n, 14, np.int16),
        ip_version=np.full(n, 6, np.uint8),
        src_ip=ips(sip),
        dst_ip=ips(dip),
        ip_proto=np.full(n, 17, np.uint8),
        l4_off=np.full(n, 54, np.int16),
        sport=zeros(np.uint16),
        dport=zeros(np.uint16),
        tcp_flags=zeros(np.uint8),
        payload_off=np.full(n, -1, np.int16),
        proto=np.full(n, PROTO_UDP, np.uint8),
        truncated=zeros(bool),
    )
    bad = np.asarray(is_bad, np.int8).reshape(n)
    return ClassifiedBatch(
        frames=frames,
        headers=headers,
        src_device=np.asarray(src_device, np.int32).reshape(n),
        dst_device=np.asarray(dst_device, np.int32).reshape(n),
        is_bad=bad,
        score=np.where(bad < 0, np.nan, bad.astype(np.float32)).astype(np.float32),
        attack=np.full(n, -1, np.int16) if attack is None else np.asarray(attack, np.int16),
        attack_names=attack_names,
        devices=list(devices or []),
    )

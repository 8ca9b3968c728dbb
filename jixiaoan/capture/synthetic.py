"""Synthetic header batches for tests and benchmarks (no capture file needed)."""

from __future__ import annotations

import numpy as np

from jixiaoan.capture.batch import HeaderBatch
from jixiaoan.capture.parse import empty_headers


def syn_flood(n: int, sockets: int, seed: int = 0) -> HeaderBatch:
    """SYNs from ``sockets`` spoofed source addresses/ports to one server at 10k pkt/s."""
    rng = np.random.default_rng(seed)
    h = empty_headers(n)
    h.ts[:] = 1.7e9 + np.arange(n) * 1e-4
    h.length[:] = 60
    h.ip_version[:] = 4
    h.ip_proto[:] = 6
    h.proto[:] = 4
    h.tcp_flags[:] = 0x02
    src = rng.integers(0, sockets, n).astype(np.int64)
    h.src_ip[:, 10:12] = 255
    h.src_ip[:, 12] = 10
    h.src_ip[:, 13:16] = np.stack([(src >> 16) & 255, (src >> 8) & 255, src & 255], 1)
    h.dst_ip[:, 10:12] = 255
    h.dst_ip[:, 12:16] = [192, 168, 1, 10]
    h.sport[:] = 1024 + (src % 60000)
    h.dport[:] = 80
    h.src_mac[:] = 0x020000000001
    h.dst_mac[:] = 0x020000000002
    return h

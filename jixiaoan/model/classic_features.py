"""Classic packet features for the ClassicBaseline: AfterImage statistics beside a few header
fields decoded from the anonymised bytes (lengths, protocol, TTL, ports, TCP flags; never
addresses), and a quantile binner for them."""

from __future__ import annotations

import numpy as np

from jixiaoan.features.batch import PAD_INDEX, FeatureBatch

HEADER_FIELDS = (
    "captured_bytes", "ip_version", "ip_length", "ip_proto", "ttl",
    "src_port", "dst_port", "tcp_flags", "tcp_window", "icmp_type",
)  # fmt: skip
_IP_TYPES = (0x0800, 0x86DD)


def header_fields(byte_idx: np.ndarray) -> np.ndarray:
    """Decode :data:`HEADER_FIELDS` from ``FeatureBatch.byte_idx`` (n, Nb): float32 (n, 10),
    -1 where absent. The link layer is recognised from the bytes themselves (Ethernet with its
    zeroed MACs and optional VLAN tag, raw IP, Linux SLL / SLL2, BSD loopback)."""
    b = np.asarray(byte_idx).astype(np.int64)
    n, width = b.shape
    rows = np.arange(n)
    b = np.where(b >= PAD_INDEX, -1, b)

    def at(off: np.ndarray | int) -> np.ndarray:
        off = np.broadcast_to(np.asarray(off, dtype=np.int64), (n,))
        ok = (off >= 0) & (off < width)
        v = b[rows, np.clip(off, 0, width - 1)]
        return np.where(ok, v, -1)

    def u16(off: np.ndarray | int) -> np.ndarray:
        hi, lo = at(off), at(np.asarray(off) + 1)
        return np.where((hi >= 0) & (lo >= 0), hi * 256 + lo, -1)

    first = at(0)
    l3 = np.full(n, -1, np.int64)
    ethertype = u16(12)
    zero_macs = np.all(b[:, : min(12, width)] == 0, axis=1) if width >= 12 else np.zeros(n, bool)
    vlan = zero_macs & np.isin(ethertype, (0x8100, 0x88A8))
    ethertype = np.where(vlan, u16(16), ethertype)
    eth = zero_macs & np.isin(ethertype, _IP_TYPES)
    l3[eth] = np.where(vlan, 18, 14)[eth]
    raw = (l3 < 0) & ((first >> 4 == 4) | (first >> 4 == 6))
    l3[raw] = 0
    sll2 = (l3 < 0) & np.isin(u16(0), _IP_TYPES) & np.isin(at(20) >> 4, (4, 6))
    l3[sll2] = 20
    sll = (l3 < 0) & (first >= 0) & (first <= 4) & np.isin(u16(14), _IP_TYPES)
    l3[sll] = 16
    family = (first, at(3))
    loop = (
        (l3 < 0)
        & np.isin(at(4) >> 4, (4, 6))
        & (np.isin(family[0], (2, 24, 28, 30)) | np.isin(family[1], (2, 24, 28, 30)))
    )
    l3[loop] = 4

    version = np.where(l3 >= 0, at(l3) >> 4, -1)
    v4, v6 = version == 4, version == 6
    ihl = at(l3) & 0x0F
    length = np.where(v4, u16(l3 + 2), np.where(v6, u16(l3 + 4) + 40, -1))
    proto = np.where(v4, at(l3 + 9), np.where(v6, at(l3 + 6), -1))
    ttl = np.where(v4, at(l3 + 8), np.where(v6, at(l3 + 7), -1))
    first_fragment = ~v4 | ((u16(l3 + 6) & 0x1FFF) == 0)
    l4 = np.where(v4 & (ihl >= 5), l3 + ihl * 4, np.where(v6, l3 + 40, -1))
    l4 = np.where(first_fragment, l4, -1)
    has_ports = (l4 >= 0) & np.isin(proto, (6, 17))
    tcp = (l4 >= 0) & (proto == 6)
    icmp = (l4 >= 0) & np.isin(proto, (1, 58))
    out = np.stack(
        [
            (b >= 0).sum(axis=1),
            version,
            length,
            proto,
            ttl,
            np.where(has_ports, u16(l4), -1),
            np.where(has_ports, u16(l4 + 2), -1),
            np.where(tcp, at(l4 + 13), -1),
            np.where(tcp, u16(l4 + 14), -1),
            np.where(icmp, at(l4), -1),
        ],
        axis=1,
    )
    return np.where(out < 0, -1, out).astype(np.float32)


def classic_features(batch: FeatureBatch) -> np.ndarray:
    """AfterImage features (non-finite values zeroed) next to :func:`header_fields`."""
    ai = np.nan_to_num(np.asarray(batch.afterimage, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return np.hstack([ai, header_fields(batch.byte_idx)])


class Quantiser:
    """Maps each column to at most ``n_bins`` codes at its (unweighted) quantiles.

    Gradient boosting bins its inputs anyway; binning here first, without weights, keeps
    scikit-learn from computing weighted percentiles per bin and feature (tens of seconds
    whatever the data size) when sample weights are given.
    """

    def __init__(self, n_bins: int = 255, max_rows: int = 200_000, seed: int = 0) -> None:
        self.n_bins, self.max_rows, self.seed = n_bins, max_rows, seed
        self.edges: list[np.ndarray] = []

    def fit(self, X: np.ndarray) -> Quantiser:
        """Quantile edges per column (on a seeded sample of at most ``max_rows`` rows)."""
        if len(X) > self.max_rows:
            rng = np.random.default_rng(self.seed)
            X = X[np.sort(rng.choice(len(X), self.max_rows, replace=False))]
        qs = np.quantile(X, np.linspace(0, 1, self.n_bins + 1)[1:-1], axis=0)
        self.edges = [np.unique(qs[:, j]) for j in range(X.shape[1])]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Bin codes, float32, same shape as ``X``."""
        out = np.empty(X.shape, np.float32)
        for j, edges in enumerate(self.edges):
            out[:, j] = np.searchsorted(edges, X[:, j], side="right")
        return out

"""Kitsune's AfterImage features: damped incremental statistics per packet, bounded state.

Semantics (the slow reference in ``tests/test_features_afterimage_reference.py`` implements
exactly this, key by key, with plain Python objects):

* **Time.** ``t`` is the running maximum of the capture timestamps seen since the last reset
  (an out-of-order packet is taken to arrive at the latest time already seen, so no
  interval is ever negative; a NaN or infinite timestamp also counts as that time, 0.0 if
  nothing was seen yet).  Decay of any statistic since its last update is
  ``d = 2 ** (-lam * dt)`` for each ``lam`` in ``config.lambdas``.
* **1D stream** (per key and ``lam``): ``w, LS, SS <- d*w + 1, d*LS + x, d*SS + x*x``;
  ``mean = LS/w``, ``var = |SS/w - mean^2|`` set to 0 when ``<= 1e-10 * SS/w`` (round-off),
  ``std = sqrt(var)``; all 0 while ``w == 0``.
* **Expiry.** A tracker (stream or pair) whose weight for the slowest decay
  ``lam_min = min(lambdas)``, decayed to now, is ``<= expiry_weight`` (default 1e-9, i.e.
  about 50 minutes of silence for a single-packet stream) holds nothing: on its next update
  it starts empty, and read as a reverse stream it counts as absent (mean 0, var 0).  This is
  part of the definition, so freeing such slots (the periodic sweep) changes nothing.
  ``expiry_weight=0`` disables expiry (only float underflow then empties a tracker).
* **Addresses.** IP frames (ip_version 4 or 6) use their 16-byte IP addresses (IPv4 mapped),
  the IP version, ``ip_proto`` and the TCP/UDP ports (0 for other protocols).  Every other
  frame (ARP included) uses its MAC addresses in place of the IPs (8 zero bytes, then the MAC
  as an 8-byte big-endian integer), version 0, protocol 0 and ports 0.  ``x`` is the wire
  length (``HeaderBatch.length``).
* **Groups, in output order** (each one decay by decay, in ``config.lambdas`` order):

  1. ``MI``: 1D of ``x`` keyed by (source MAC, version, source address): weight, mean, std.
  2. ``HH``: 1D of ``x`` keyed by the channel (version, source address, destination address),
     then 2D with the reverse channel: ``magnitude = sqrt(mean_a^2 + mean_b^2)``,
     ``radius = sqrt(var_a + var_b)``, covariance, correlation (7 per decay).
  3. ``HH_jit``: 1D of the inter-arrival time ``dt`` of the channel, updated with the
     channel's own decay; the first packet of a channel (new or expired) adds no sample, so
     a new channel outputs weight 0, mean 0, std 0.
  4. ``HpHp``: like ``HH`` for the socket (version, protocol, source address and port,
     destination address and port).
* **Covariance.** Each unordered pair of streams has, per decay, ``SR``, ``w3`` and a residual
  memory ``R_a``, ``R_b`` per side (side a is the endpoint with the smaller (address bytes,
  port); a self-pair is side a).  An insert of ``x`` on side s: all four decay by the pair's
  ``d`` since its last update (or start at 0 if the pair expired), then
  ``r = x - mean_s`` (mean after the stream's update), ``SR += r * R_other``, ``w3 += 1``,
  ``R_s = r``.  ``cov = SR / w3``; ``pcc = cov / (std_a * std_b)``, 0 when either std is 0.
  Decaying the residual memory keeps a stale residual from weighing on a new one.

Output: float32 (n, 100), computed in float64, never NaN or infinite.  The result does not
depend on how the stream is cut into batches.  State is bounded: each of the five tables
(MI, channel, channel pair, socket, socket pair) holds at most ``max_slots`` trackers (default
``config.max_sessions``).  Expired trackers are swept out every 60 capture seconds and
whenever a table is full; only if that frees less than a quarter does the table grow (up to
the cap) or, at the cap, drop its least recently updated quarter -- the one approximation,
reached only under key floods.  ``config.session_idle_s`` is not used: at ``lam = 0.01`` a
tracker idle for 300 s still holds 1/8 of its weight.
"""

from __future__ import annotations

import numpy as np

from jixiaoan.capture.batch import HeaderBatch
from jixiaoan.features import afterimage_kernels as kern
from jixiaoan.features.batch import AFTERIMAGE_WIDTH, FeatureConfig

ONE_D = ("weight", "mean", "std")
TWO_D = ONE_D + ("magnitude", "radius", "covariance", "pcc")
GROUPS = (("MI", ONE_D), ("HH", TWO_D), ("HH_jit", ONE_D), ("HpHp", TWO_D))
TABLE_NAMES = ("MI", "channel", "channel_pair", "socket", "socket_pair")
DEFAULT_EXPIRY_WEIGHT = 1e-9
INITIAL_CAPACITY = 1024
SWEEP_EVERY_S = 60.0  # capture seconds between sweeps of expired trackers in every table


def _words(addr: np.ndarray) -> np.ndarray:
    """(n, 16) uint8 addresses to (n, 2) uint64 big-endian words (byte order = number order)."""
    a = np.ascontiguousarray(addr, dtype=np.uint8).reshape(-1, 16)
    return a.view(">u8").astype(np.uint64)


def _first_le(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> np.ndarray:
    """Row-wise lexicographic ``a <= b`` over tuples of equally long uint64 columns."""
    le = np.ones(len(a[0]), bool)
    for ca, cb in zip(reversed(a), reversed(b)):
        le = (ca < cb) | ((ca == cb) & le)
    return le


def _two_sided_keys(head, src, dst):
    """Stream key, reverse key, pair key and side of every packet for endpoint columns."""
    a_first = _first_le(src, dst)
    a = tuple(np.where(a_first, s, d) for s, d in zip(src, dst))
    b = tuple(np.where(a_first, d, s) for s, d in zip(src, dst))
    own = np.stack((head(src, dst),) + src[:2] + dst[:2], axis=1)
    rev = np.stack((head(dst, src),) + dst[:2] + src[:2], axis=1)
    pair = np.stack((head(a, b),) + a[:2] + b[:2], axis=1)
    return own, rev, pair, (~a_first).astype(np.int64)


def build_keys(h: HeaderBatch) -> tuple[np.ndarray, ...]:
    """The per-packet 5-word keys of the five tables, and the pair sides (see module doc)."""
    is_ip = (h.ip_version == 4) | (h.ip_version == 6)
    zero = np.zeros(len(h), np.uint64)
    fam = np.where(is_ip, h.ip_version, 0).astype(np.uint64)
    proto = np.where(is_ip, h.ip_proto, 0).astype(np.uint64)
    sw, dw = _words(h.src_ip), _words(h.dst_ip)
    shi = np.where(is_ip, sw[:, 0], zero)
    slo = np.where(is_ip, sw[:, 1], h.src_mac.astype(np.uint64))
    dhi = np.where(is_ip, dw[:, 0], zero)
    dlo = np.where(is_ip, dw[:, 1], h.dst_mac.astype(np.uint64))
    sport = np.where(is_ip, h.sport, 0).astype(np.uint64)
    dport = np.where(is_ip, h.dport, 0).astype(np.uint64)
    mi = np.stack((fam, h.src_mac.astype(np.uint64), shi, slo, zero), axis=1)
    ch = _two_sided_keys(lambda s, d: fam, (shi, slo), (dhi, dlo))
    sock_head = lambda s, d: (fam << 40) | (proto << 32) | (s[2] << 16) | d[2]  # noqa: E731
    sk = _two_sided_keys(sock_head, (shi, slo, sport), (dhi, dlo, dport))
    return (mi,) + ch + sk


GROUP_WIDTHS = tuple(len(fields) for _, fields in GROUPS)  # columns per decay, by group


def afterimage_columns(lambdas: tuple[float, ...], min_lambda: float) -> np.ndarray:
    """Indices of the AfterImage columns computed with a decay ``lam >= min_lambda`` (the
    short-memory statistics: ``lam = 1`` halves every second), in output order."""
    lambdas = tuple(float(x) for x in lambdas)
    keep = [i for i, lam in enumerate(lambdas) if lam >= min_lambda]
    if not keep:
        raise ValueError(f"no AfterImage decay is {min_lambda} or faster (have {lambdas})")
    cols, base = [], 0
    for width in GROUP_WIDTHS:
        for i in keep:
            cols.extend(range(base + i * width, base + (i + 1) * width))
        base += len(lambdas) * width
    return np.asarray(cols, dtype=np.int64)


class AfterImage:
    """Streaming extractor of Kitsune's 100 AfterImage features (semantics: module doc)."""

    def __init__(
        self,
        config: FeatureConfig | None = None,
        *,
        expiry_weight: float = DEFAULT_EXPIRY_WEIGHT,
        max_slots: int | None = None,
    ) -> None:
        self.config = config if config is not None else FeatureConfig()
        self.lambdas = np.asarray(self.config.lambdas, dtype=np.float64)
        if self.lambdas.ndim != 1 or len(self.lambdas) * 20 != AFTERIMAGE_WIDTH:
            raise ValueError(f"AfterImage needs 5 decay factors, got {self.config.lambdas}")
        if not np.all(self.lambdas > 0):
            raise ValueError("decay factors must be positive")
        self.imin = int(np.argmin(self.lambdas))
        self.expiry_weight = float(expiry_weight)
        cap = self.config.max_sessions if max_slots is None else max_slots
        self.max_slots = max(int(cap), 16)
        self.evictions = 0  # trackers dropped by the hard cap (not by expiry)
        self.expired_freed = 0  # expired trackers whose slots were swept out (exact)
        self.reset()

    def reset(self) -> None:
        """Forget every tracker and the clock."""
        L, cap = len(self.lambdas), min(INITIAL_CAPACITY, self.max_slots)
        self._tables = [kern.new_table(cap, L, width) for width in (3, 3, 4, 3, 4)]
        self._jitter = kern.new_table(cap, L, 3)
        self._no_jitter = kern.new_table(0, L, 3)
        self._clock = np.array([-np.inf])
        self._last_sweep = -np.inf

    def feature_names(self) -> list[str]:
        """The 100 column names, e.g. ``HH_L0.1_pcc``."""
        return [f"{g}_L{lam:g}_{s}" for g, stats in GROUPS for lam in self.config.lambdas
                for s in stats]  # fmt: skip

    def slot_counts(self) -> dict[str, int]:
        """Live trackers per table (bounded by ``max_slots``)."""
        return {name: int(t[5][kern.NLIVE]) for name, t in zip(TABLE_NAMES, self._tables)}

    def transform(self, headers: HeaderBatch) -> np.ndarray:
        """Features of every packet of ``headers`` (float32 (n, 100)); updates the state."""
        n = len(headers)
        out = np.zeros((n, AFTERIMAGE_WIDTH), np.float32)
        if n == 0:
            return out
        mi, ch, ch_r, chp, ch_side, sk, sk_r, skp, sk_side = build_keys(headers)
        ts = np.ascontiguousarray(headers.ts, dtype=np.float64)
        x = headers.length.astype(np.float64)
        start = 0
        while True:
            start, full = kern.process(
                start, ts, x, mi, ch, ch_r, chp, ch_side, sk, sk_r, skp, sk_side,
                self.lambdas, self.imin, self.expiry_weight, self._clock, out,
                *self._tables[:2], self._jitter, *self._tables[2:], self._no_jitter,
            )  # fmt: skip
            if start >= n:
                break
            self._make_room(full)
        if self._clock[0] >= self._last_sweep + SWEEP_EVERY_S:
            for k in range(len(self._tables)):
                self._sweep(k)
            self._last_sweep = float(self._clock[0])
        return out

    def _sweep(self, k: int) -> int:
        """Free the expired trackers of table ``k`` (exact: they already count as empty)."""
        table = self._tables[k]
        weight_col = kern.W3 if k in (2, 4) else kern.W
        lam_min = float(self.lambdas[self.imin])
        now = float(self._clock[0])
        freed = kern.sweep_expired(table, weight_col, lam_min, self.imin, self.expiry_weight, now)
        if freed:
            kern.rebuild_index(table)
        self.expired_freed += freed
        return freed

    def _make_room(self, k: int) -> None:
        """Free or add slots in table ``k``: sweep expired, else grow, else evict the oldest."""
        capacity = int(self._tables[k][5][kern.CAP])
        freed = self._sweep(k)
        if freed >= capacity // 4:
            return
        table = self._tables[k]
        if capacity < self.max_slots:
            new_cap = min(2 * capacity, self.max_slots)
            self._tables[k] = kern.grow_table(table, new_cap)
            if k == 1:
                self._jitter = kern.grow_table(self._jitter, new_cap)
            return
        self.evictions += kern.evict_oldest(table, max(capacity // 4 - freed, 1))
        kern.rebuild_index(self._tables[k])

"""Per-device malicious-rate tracking over a sliding window of capture time.

``RateTracker.observe`` takes whole ``ClassifiedBatch`` objects and counts them with numpy
(``bincount``), never packet by packet. A packet belongs to its source device and to its
destination device (once, when both ends are the same device); packets of unwatched devices
(index -1 on both ends) are not counted.

How packets count:

* every attributed packet counts as traffic (``packets``, packets/s);
* a packet with ``is_bad == 1`` is malicious, ``is_bad == 0`` benign; both are *classified*;
* an unclassified packet (``is_bad == -1``, no model) is traffic but neither malicious nor
  benign: shares are ``malicious / classified`` and leave it out, so a device seen only
  without a model has share 0 and ``classified == 0`` (the alert policy's ``min_packets``
  counts classified packets, so it never alerts).

Time is the packets' capture time (``headers.ts``), cut into buckets of ``bucket_s`` seconds;
the window is the last ``ceil(window_s / bucket_s)`` buckets up to "now", which is the latest
capture time seen unless the caller passes a later clock. Packets older than the window when
they arrive count in the totals only, and so does a packet stamped more than an hour (or a
window) after its batch's median time: one bogus clock value must not empty the window.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from jixiaoan.capture.batch import ip_to_str, mac_to_str
from jixiaoan.engine.batch import ClassifiedBatch, Device

FUTURE_TOLERANCE_S = 3600.0  # see the module docstring
UNKNOWN_FAMILY = "unknown"  # malicious packets without an attack class
_NO_BUCKET = np.iinfo(np.int64).min
_MIX = np.array(  # odd 64-bit multipliers for the peer-row hash
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93], np.uint64
)


@dataclass(frozen=True)
class Peer:
    """The other endpoint of a device's malicious packets."""

    ip: str
    mac: str
    packets: int

    @property
    def label(self) -> str:
        """The IP and the MAC when both are known, else whichever is."""
        if self.ip and self.mac:
            return f"{self.ip} ({self.mac})"
        return self.ip or self.mac or "?"


@dataclass(frozen=True)
class DeviceRate:
    """One device's figures at one moment (what the status line and the GUI show)."""

    device: int
    packets_per_s: float
    window_packets: int
    window_classified: int
    window_malicious: int
    window_share: float  # malicious / classified in the window; 0.0 when none classified
    total_packets: int
    total_classified: int
    total_malicious: int
    total_share: float


@dataclass
class RateSnapshot:
    """All devices at one moment, as arrays indexed by device (the engine's device index)."""

    now: float
    window_s: float
    span_s: float  # seconds the window covers so far (less than window_s at start-up)
    window_packets: np.ndarray
    window_classified: np.ndarray
    window_malicious: np.ndarray
    total_packets: np.ndarray
    total_classified: np.ndarray
    total_malicious: np.ndarray

    def __len__(self) -> int:
        return len(self.window_packets)

    @property
    def packets_per_s(self) -> np.ndarray:
        """Attributed packets per second over the window."""
        return self.window_packets / self.span_s if self.span_s > 0 else self.window_packets * 0.0

    @property
    def window_share(self) -> np.ndarray:
        """Malicious share of classified packets in the window (0 where none classified)."""
        return _share(self.window_malicious, self.window_classified)

    @property
    def total_share(self) -> np.ndarray:
        """Malicious share of classified packets since start (0 where none classified)."""
        return _share(self.total_malicious, self.total_classified)

    def device(self, i: int) -> DeviceRate:
        """The figures of device ``i``."""
        return DeviceRate(
            device=i,
            packets_per_s=float(self.packets_per_s[i]),
            window_packets=int(self.window_packets[i]),
            window_classified=int(self.window_classified[i]),
            window_malicious=int(self.window_malicious[i]),
            window_share=float(self.window_share[i]),
            total_packets=int(self.total_packets[i]),
            total_classified=int(self.total_classified[i]),
            total_malicious=int(self.total_malicious[i]),
            total_share=float(self.total_share[i]),
        )

    def devices(self) -> list[DeviceRate]:
        """Every device's figures."""
        return [self.device(i) for i in range(len(self))]


def _stack(chunks: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([r for r, _ in chunks]), np.concatenate([c for _, c in chunks])


def _merge(words: np.ndarray, counts: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum the counts of equal peer rows and keep the ``cap`` largest per device (column 0),
    most frequent first (ties in a fixed, arbitrary order).

    A row is four uint64 words: device, peer IP (2 words), peer MAC. Equal rows are found by
    sorting a 64-bit hash of the row; a hash collision (odds about n^2 / 2^64 per call) would
    merge two peers' counts, which only blurs a top-peers list."""
    if len(words) == 0:
        return words, counts
    mixed = (words * _MIX).sum(axis=1, dtype=np.uint64)
    mixed ^= mixed >> np.uint64(29)
    order = np.argsort(mixed, kind="stable")
    hashes = mixed[order]
    first = np.ones(len(hashes), bool)
    first[1:] = hashes[1:] != hashes[:-1]
    starts = np.flatnonzero(first)
    sums = np.add.reduceat(counts[order], starts).astype(np.int64)
    keys = words[order[starts]]
    dev = keys[:, 0]
    by_device = np.lexsort((-sums, dev))  # stable: equal counts keep their order
    keys, sums, dev = keys[by_device], sums[by_device], dev[by_device]
    first = np.ones(len(dev), bool)
    first[1:] = dev[1:] != dev[:-1]
    rank = np.arange(len(dev)) - np.flatnonzero(first)[np.cumsum(first) - 1]
    keep = rank < cap
    return keys[keep], sums[keep]


def _share(bad: np.ndarray, classified: np.ndarray) -> np.ndarray:
    out = np.zeros(len(bad), np.float64)
    np.divide(bad, classified, out=out, where=classified > 0)
    return out


class RateTracker:
    """Sliding-window and since-start counters per device, fed with classified batches.

    Thread-safe: the engine thread calls ``observe``, the UI or the alert monitor read.
    ``peers_per_batch`` bounds how many distinct peers per device one batch adds to the peer
    table (the most frequent ones), so a flood from spoofed addresses stays cheap.
    """

    def __init__(
        self,
        n_devices: int = 0,
        window_s: float = 10.0,
        bucket_s: float = 1.0,
        peers_per_batch: int = 32,
    ) -> None:
        if window_s <= 0 or bucket_s <= 0:
            raise ValueError("window_s and bucket_s must be positive")
        self.window_s = float(window_s)
        self.bucket_s = float(bucket_s)
        self.peers_per_batch = int(peers_per_batch)
        self.n_buckets = max(1, math.ceil(window_s / bucket_s - 1e-9))
        self._lock = threading.Lock()
        self.families: list[str] = []
        self._family_index: dict[str, int] = {}
        self.devices: list[Device] = []
        self._n = 0
        self._init_state()
        self._grow(int(n_devices))

    # -- state ------------------------------------------------------------------------------

    def _init_state(self) -> None:
        nb = self.n_buckets
        self._slot_bucket = np.full(nb, _NO_BUCKET, np.int64)
        self._counts = np.zeros((3, nb, self._n), np.int64)  # packets, classified, malicious
        self._fam = np.zeros((nb, self._n, len(self.families)), np.int64)
        # per bucket: chunks of (rows, counts); a row is 4 words: device, peer IP (2), peer MAC
        self._peers: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(nb)]
        self._totals = np.zeros((3, self._n), np.int64)
        self._now_bucket = _NO_BUCKET
        self._first_bucket = _NO_BUCKET
        self.now = -math.inf  # latest capture time seen

    def reset(self) -> None:
        """Forget all counts (a new capture starts); devices and families are kept."""
        with self._lock:
            self._init_state()

    def _grow(self, n: int) -> None:
        if n <= self._n:
            return
        extra = n - self._n
        self._counts = np.pad(self._counts, ((0, 0), (0, 0), (0, extra)))
        self._fam = np.pad(self._fam, ((0, 0), (0, extra), (0, 0)))
        self._totals = np.pad(self._totals, ((0, 0), (0, extra)))
        self._n = n

    def _family_lut(self, names: tuple[str, ...]) -> np.ndarray:
        """Global family index for each of a batch's attack names, plus UNKNOWN last."""
        lut = []
        for name in (*names, UNKNOWN_FAMILY):
            if name not in self._family_index:
                self._family_index[name] = len(self.families)
                self.families.append(name)
            lut.append(self._family_index[name])
        grow = len(self.families) - self._fam.shape[2]
        if grow > 0:
            self._fam = np.pad(self._fam, ((0, 0), (0, 0), (0, grow)))
        return np.asarray(lut, np.int64)

    def _advance(self, newest: int) -> None:
        """Move the window so that bucket ``newest`` is current, clearing recycled slots."""
        if newest <= self._now_bucket:
            return
        start = newest - self.n_buckets + 1
        if self._now_bucket != _NO_BUCKET:
            start = max(start, self._now_bucket + 1)
        for b in range(start, newest + 1):  # at most n_buckets slots
            s = b % self.n_buckets
            self._slot_bucket[s] = b
            self._counts[:, s, :] = 0
            self._fam[s] = 0
            self._peers[s] = []
        self._now_bucket = newest

    # -- feeding ----------------------------------------------------------------------------

    def observe(self, batch: ClassifiedBatch) -> None:
        """Count one classified batch (vectorised)."""
        with self._lock:
            if batch.devices:
                self.devices = list(batch.devices)
            n_dev = max(len(batch.devices), self._n)
            src = np.asarray(batch.src_device, np.int64)
            dst = np.asarray(batch.dst_device, np.int64)
            if len(src):
                n_dev = max(n_dev, int(src.max()) + 1, int(dst.max()) + 1)
            self._grow(n_dev)
            if len(batch) == 0:
                return
            from_src = np.flatnonzero(src >= 0)
            from_dst = np.flatnonzero((dst >= 0) & (dst != src))
            pkt = np.concatenate([from_src, from_dst])  # packet index of each attribution
            if len(pkt) == 0:
                return
            dev = np.concatenate([src[from_src], dst[from_dst]])
            is_src_side = np.arange(len(pkt)) < len(from_src)
            bad = np.asarray(batch.is_bad)[pkt]
            classified = bad >= 0
            malicious = bad == 1
            n = self._n
            self._totals[0] += np.bincount(dev, minlength=n)
            self._totals[1] += np.bincount(dev[classified], minlength=n)
            self._totals[2] += np.bincount(dev[malicious], minlength=n)

            ts = np.asarray(batch.headers.ts, np.float64)[pkt]
            # a stray timestamp far ahead of its batch must not flush the window: totals only
            sane = ts <= np.median(ts) + max(self.window_s, FUTURE_TOLERANCE_S)
            bucket = np.floor(ts / self.bucket_s).astype(np.int64)
            self.now = max(self.now, float(ts[sane].max()))
            self._advance(int(bucket[sane].max()))
            if self._first_bucket == _NO_BUCKET:
                self._first_bucket = int(bucket.min())
            slot = bucket % self.n_buckets
            live = sane & (self._slot_bucket[slot] == bucket)  # older than the window: totals
            cell = slot * n + dev
            size = self.n_buckets * n
            for k, mask in enumerate((live, live & classified, live & malicious)):
                self._counts[k] += np.bincount(cell[mask], minlength=size).reshape(-1, n)

            hit = np.flatnonzero(live & malicious)
            if len(hit):
                self._count_families(batch, pkt[hit], cell[hit], size)
                self._count_peers(batch, pkt[hit], slot[hit], dev[hit], is_src_side[hit])

    def _count_families(self, batch: ClassifiedBatch, pkt: np.ndarray, cell, size) -> None:
        lut = self._family_lut(tuple(batch.attack_names))
        attack = np.asarray(batch.attack, np.int64)[pkt]
        unknown = (attack < 0) | (attack >= len(batch.attack_names))
        fam = lut[np.where(unknown, len(lut) - 1, attack)]
        n_fam = len(self.families)
        counts = np.bincount(cell * n_fam + fam, minlength=size * n_fam)
        self._fam += counts.reshape(self.n_buckets, self._n, n_fam)

    def _count_peers(self, batch, pkt, slot, dev, is_src_side) -> None:
        """Add the other endpoint of each malicious attribution to the peer table."""
        h = batch.headers
        ip = np.where(is_src_side[:, None], h.dst_ip[pkt], h.src_ip[pkt])
        words = np.empty((len(pkt), 4), np.uint64)
        words[:, 0] = dev
        words[:, 1:3] = np.ascontiguousarray(ip, np.uint8).view(">u8")
        words[:, 3] = np.where(is_src_side, h.dst_mac[pkt], h.src_mac[pkt])
        ones = np.ones(len(pkt), np.int64)
        for s in np.unique(slot):  # the few buckets this batch spans
            mine = slot == s
            chunks = self._peers[s]
            chunks.append(_merge(words[mine], ones[mine], self.peers_per_batch))
            if len(chunks) > 8:  # compact: one chunk, a bounded number of peers per device
                self._peers[s] = [_merge(*_stack(chunks), 8 * self.peers_per_batch)]

    # -- reading ----------------------------------------------------------------------------

    def _live_slots(self, now: float | None) -> tuple[np.ndarray, int]:
        now_b = self._now_bucket if now is None else math.floor(now / self.bucket_s)
        sb = self._slot_bucket
        live = (sb != _NO_BUCKET) & (sb <= now_b) & (sb > now_b - self.n_buckets)
        return live, now_b

    def snapshot(self, now: float | None = None) -> RateSnapshot:
        """All devices' window and total figures; ``now`` defaults to the latest capture time."""
        with self._lock:
            live, now_b = self._live_slots(now)
            window = self._counts[:, live, :].sum(axis=1)
            covered = 0.0
            if self._first_bucket != _NO_BUCKET:
                covered = min(self.n_buckets, max(0, now_b - self._first_bucket + 1))
            return RateSnapshot(
                now=self.now if now is None else float(now),
                window_s=self.n_buckets * self.bucket_s,
                span_s=covered * self.bucket_s,
                window_packets=window[0],
                window_classified=window[1],
                window_malicious=window[2],
                total_packets=self._totals[0].copy(),
                total_classified=self._totals[1].copy(),
                total_malicious=self._totals[2].copy(),
            )

    def top_families(
        self, device: int, k: int = 3, now: float | None = None
    ) -> list[tuple[str, int]]:
        """The ``k`` attack families with most malicious packets of ``device`` in the window."""
        with self._lock:
            if not 0 <= device < self._n or not self.families:
                return []
            live, _ = self._live_slots(now)
            counts = self._fam[live, device, :].sum(axis=0)
            order = np.argsort(-counts, kind="stable")[:k]
            return [(self.families[i], int(counts[i])) for i in order if counts[i] > 0]

    def top_peers(self, device: int, k: int = 3, now: float | None = None) -> list[Peer]:
        """The ``k`` endpoints most often on the other side of ``device``'s malicious packets
        in the window."""
        with self._lock:
            live, _ = self._live_slots(now)
            chunks = [c for i in np.flatnonzero(live) for c in self._peers[i]]
            if not chunks:
                return []
            words, counts = _stack(chunks)
            mine = words[:, 0] == device
            if not mine.any():
                return []
            words, counts = _merge(words[mine], counts[mine], k)
            out = []
            for row, count in zip(words, counts):
                ip = row[1:3].astype(">u8").tobytes()
                mac = int(row[3])
                out.append(Peer(ip_to_str(ip), mac_to_str(mac) if mac else "", int(count)))
            return out

    def device_info(self, device: int) -> Device:
        """The engine's description of ``device`` (an empty Device when unknown)."""
        with self._lock:
            return self.devices[device] if 0 <= device < len(self.devices) else Device()

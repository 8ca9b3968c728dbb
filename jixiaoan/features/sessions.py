"""Session tracking: bidirectional 5-tuple sessions for IP, MAC pairs for other frames.

A packet's session key is built from fixed-width bytes:

- IP (IPv4 or IPv6): ``ip_proto`` and the two endpoints ``(ip, port)`` in canonical order
  (the lexicographically smaller endpoint first), so both directions share one key.
- anything else (ARP, LLDP, NetBEUI, ...): the ``ethertype`` and the two MAC addresses in
  canonical order.

Session ids are handed out in order of first appearance and never reused. Time is the
running maximum of the capture timestamps seen so far (the *clock*), so out-of-order
timestamps never move it backwards. A packet continues its key's session when the clock has
advanced at most ``config.session_idle_s`` since the session's previous packet; otherwise it
starts a new session. Sessions idle longer than that are forgotten at the end of each batch,
and if more than ``config.max_sessions`` remain, the least recently seen ones are evicted.

Everything except eviction depends only on the packet sequence, not on how it is cut into
batches. Eviction is a memory safety valve applied at batch boundaries (the table may hold up
to ``max_sessions`` plus one batch of new sessions in between); while the bound is not reached
it has no effect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jixiaoan.capture.batch import HeaderBatch
from jixiaoan.features.batch import FeatureConfig

KEY_WIDTH = 40  # bytes per session key (five uint64 words)
_KIND_IP = 1
_KIND_LINK = 2


@dataclass
class SessionAssignment:
    """Per-packet result of SessionTracker.assign_full."""

    session: np.ndarray  # int64 (n,)
    pos: np.ndarray  # int32 (n,) index of the packet inside its session
    forward: np.ndarray  # bool (n,) the packet comes from the canonical first endpoint


def lexicographic_le(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise ``a <= b`` for two (n, w) uint8 matrices compared as byte strings."""
    differ = a != b
    first = differ.argmax(axis=1)
    rows = np.arange(len(a))
    return ~differ.any(axis=1) | (a[rows, first] < b[rows, first])


def be_bytes(values: np.ndarray, width: int) -> np.ndarray:
    """Unsigned integers as an (n, width) big-endian uint8 matrix."""
    return values.astype(f">u{width}").view(np.uint8).reshape(len(values), width)


def session_keys(headers: HeaderBatch) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-width session keys (n, KEY_WIDTH) uint8 and the per-packet direction flag."""
    n = len(headers)
    is_ip = (headers.ip_version == 4) | (headers.ip_version == 6)
    src = np.zeros((n, 18), np.uint8)
    dst = np.zeros((n, 18), np.uint8)
    src[:, :16] = headers.src_ip
    dst[:, :16] = headers.dst_ip
    src[:, 16:] = be_bytes(headers.sport, 2)
    dst[:, 16:] = be_bytes(headers.dport, 2)
    link = ~is_ip
    if link.any():
        src[link] = 0
        dst[link] = 0
        src[link, :8] = be_bytes(headers.src_mac[link], 8)
        dst[link, :8] = be_bytes(headers.dst_mac[link], 8)
    forward = lexicographic_le(src, dst)
    keys = np.zeros((n, KEY_WIDTH), np.uint8)
    keys[:, 0] = np.where(is_ip, _KIND_IP, _KIND_LINK)
    keys[:, 1] = np.where(is_ip, headers.ip_proto, 0)
    keys[:, 2:4] = be_bytes(np.where(is_ip, 0, headers.ethertype).astype(np.uint16), 2)
    fw = forward[:, None]
    keys[:, 4:22] = np.where(fw, src, dst)
    keys[:, 22:40] = np.where(fw, dst, src)
    return keys, forward


class SessionTracker:
    """Assigns every packet a session id and its position inside the session (see module doc)."""

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        self.reset()

    def reset(self) -> None:
        """Forget every session; ids restart at 0."""
        self._index: dict[bytes, int] = {}  # key bytes -> slot
        cap = 1024
        self._keys = np.zeros(cap, f"V{KEY_WIDTH}")
        self._sid = np.zeros(cap, np.int64)
        self._count = np.zeros(cap, np.int64)
        self._last_seen = np.zeros(cap, np.float64)
        self._live = np.zeros(cap, bool)
        self._free = np.zeros(0, np.int64)
        self._used = 0  # slots [0, _used) have been handed out at least once
        self._next_id = 0
        self._clock = -np.inf
        self.forgotten = np.zeros(0, np.int64)  # ids dropped during the last assign

    @property
    def n_live(self) -> int:
        """Number of sessions currently remembered."""
        return len(self._index)

    def assign(self, headers: HeaderBatch) -> tuple[np.ndarray, np.ndarray]:
        """Session id (int64) and position in the session (int32) of every packet."""
        a = self.assign_full(headers)
        return a.session, a.pos

    def assign_full(self, headers: HeaderBatch) -> SessionAssignment:
        """Like assign, plus the direction of every packet."""
        n = len(headers)
        if n == 0:
            self.forgotten = np.zeros(0, np.int64)
            empty = np.zeros(0, np.int64)
            return SessionAssignment(empty, empty.astype(np.int32), empty.astype(bool))
        keys, forward = session_keys(headers)
        words = keys.view(np.uint64)
        order = np.lexsort(words.T[::-1])  # stable: packets of a key stay in capture order
        sorted_words = words[order]
        first = np.ones(n, bool)
        first[1:] = (sorted_words[1:] != sorted_words[:-1]).any(axis=1)
        starts = np.flatnonzero(first)
        ends = np.append(starts[1:], n) - 1
        group_keys = keys[order[starts]].view(f"V{KEY_WIDTH}").ravel()
        key_list = group_keys.tolist()
        get = self._index.get
        slots = np.fromiter((get(k, -1) for k in key_list), np.int64, len(key_list))
        known = slots >= 0

        clock = np.maximum.accumulate(np.concatenate(([self._clock], headers.ts)))[1:]
        c = clock[order]
        prev = np.empty(n)
        prev[1:] = c[:-1]
        prev[starts] = np.where(known, self._last_seen[np.maximum(slots, 0)], np.nan)
        new_seg = ~(c - prev <= self.config.session_idle_s)  # NaN (unknown key) -> new
        seg_start = new_seg | first
        seg_of = np.cumsum(seg_start) - 1
        seg_pos = np.flatnonzero(seg_start)
        seg_new = new_seg[seg_pos]
        n_seg = len(seg_pos)

        seg_sid = np.empty(n_seg, np.int64)
        seg_base = np.zeros(n_seg, np.int64)
        continues = known & ~new_seg[starts]  # per key: its first packet continues a session
        cont_seg = seg_of[starts[continues]]
        cont_slots = slots[continues]
        seg_sid[cont_seg] = self._sid[cont_slots]
        seg_base[cont_seg] = self._count[cont_slots]
        first_packet = order[seg_pos[seg_new]]
        rank = np.empty(len(first_packet), np.int64)
        rank[np.argsort(first_packet, kind="stable")] = np.arange(len(first_packet))
        seg_sid[seg_new] = self._next_id + rank
        self._next_id += len(first_packet)

        pos_sorted = np.arange(n) - seg_pos[seg_of] + seg_base[seg_of]
        session = np.empty(n, np.int64)
        pos = np.empty(n, np.int32)
        session[order] = seg_sid[seg_of]
        pos[order] = pos_sorted

        # Ids that ended inside this batch: superseded sessions of known keys and every
        # segment that is not the last of its key.
        superseded = self._sid[slots[known & new_seg[starts]]]
        last_seg = seg_of[ends]
        not_last = np.ones(n_seg, bool)
        not_last[last_seg] = False
        forgotten = [superseded, seg_sid[not_last]]

        final_sid, final_count = seg_sid[last_seg], pos_sorted[ends] + 1
        self._store(key_list, group_keys, slots, known, final_sid, final_count, c[ends])
        self._clock = float(clock[-1])
        forgotten.append(self._sweep())
        self.forgotten = np.sort(np.concatenate(forgotten))
        return SessionAssignment(session, pos, forward)

    def _store(self, key_list, group_keys, slots, known, sid, count, last_seen) -> None:
        """Write the batch's final per-key state into the slot table."""
        fresh = np.flatnonzero(~known)
        if len(fresh):
            new_slots = self._allocate(len(fresh))
            slots = slots.copy()
            slots[fresh] = new_slots
            self._keys[new_slots] = group_keys[fresh]
            self._live[new_slots] = True
            index = self._index
            for i, s in zip(fresh.tolist(), new_slots.tolist()):
                index[key_list[i]] = s
        self._sid[slots] = sid
        self._count[slots] = count
        self._last_seen[slots] = last_seen

    def _allocate(self, m: int) -> np.ndarray:
        reuse = self._free[:m]
        self._free = self._free[m:]
        extra = m - len(reuse)
        if self._used + extra > len(self._sid):
            cap = max(2 * len(self._sid), self._used + extra)
            for name in ("_keys", "_sid", "_count", "_last_seen", "_live"):
                old = getattr(self, name)
                grown = np.zeros(cap, old.dtype)
                grown[: len(old)] = old
                setattr(self, name, grown)
        fresh = np.arange(self._used, self._used + extra, dtype=np.int64)
        self._used += extra
        return np.concatenate((reuse, fresh))

    def _sweep(self) -> np.ndarray:
        """Forget idle sessions, then evict the least recently seen above the bound."""
        live = self._live[: self._used]
        seen = self._last_seen[: self._used]
        drop = live & (self._clock - seen > self.config.session_idle_s)
        excess = int(live.sum() - drop.sum()) - self.config.max_sessions
        if excess > 0:
            candidates = np.flatnonzero(live & ~drop)
            oldest = np.lexsort((self._sid[candidates], seen[candidates]))[:excess]
            drop[candidates[oldest]] = True
        dropped = np.flatnonzero(drop)
        if len(dropped) == 0:
            return np.zeros(0, np.int64)
        for k in self._keys[dropped].tolist():
            del self._index[k]
        self._live[dropped] = False
        self._free = np.concatenate((self._free, dropped))
        return self._sid[dropped].copy()

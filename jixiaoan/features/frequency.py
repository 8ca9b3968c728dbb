"""Whisper frequency-domain features per packet (ESET.md section 2).

For every packet: ``l`` = length on the wire, ``p`` = protocol code (TCP with SYN 1, else
with FIN 40, else with RST 1, other TCP 1000, UDP 3, ICMP and anything else 10), ``dt`` =
time since the previous packet of the same session, floored at ``config.min_dt``. The first
packet of a session has no predecessor and gets ``dt = min_dt`` (as if it followed at once).
Then ``v = w . [l, p, -log2(dt)]`` with ``w = config.whisper_weights``.

The frame of a packet is the last ``w_seg`` values of ``v`` in its session ending at this
packet, with zeros before the session's first packet. Its features are
``log2(|rfft(frame)|^2 + 1)``, ``K = w_seg // 2 + 1`` bins, NaN/inf replaced by 0.

Per-session state (previous timestamp and the last ``w_seg - 1`` values) is carried across
batches, so the result does not depend on how the stream is cut into batches. Session ids
come from :class:`jixiaoan.features.sessions.SessionTracker`. Pass the tracker's
``forgotten`` ids to ``transform(..., forgotten=...)`` (as FeatureExtractor does) to drop the
state of exactly the sessions the tracker dropped; without it the same rules as the tracker's
apply on their own (idle longer than ``session_idle_s`` by the running-maximum clock, at most
``max_sessions`` kept, least recently seen evicted first).

Whisper also keys the same encoding by host (``FeatureConfig.host_frequency``): the extractor
runs two more instances on :func:`host_keys` of the source and of the destination, so a packet
of a one-packet session (a spoofed flood) still carries the rhythm of the host it hits.
"""

from __future__ import annotations

import numpy as np

from jixiaoan.capture.batch import PROTO_TCP, PROTO_UDP, HeaderBatch
from jixiaoan.features.batch import FeatureConfig

TCP_SYN, TCP_FIN, TCP_RST = 0x02, 0x01, 0x04


def protocol_codes(headers: HeaderBatch) -> np.ndarray:
    """Whisper's protocol code of every packet (float64)."""
    flags = headers.tcp_flags
    tcp_code = np.select(
        [flags & TCP_SYN != 0, flags & TCP_FIN != 0, flags & TCP_RST != 0], [1.0, 40.0, 1.0], 1000.0
    )
    return np.where(
        headers.proto == PROTO_TCP, tcp_code, np.where(headers.proto == PROTO_UDP, 3.0, 10.0)
    )


def spectrum(frames: np.ndarray) -> np.ndarray:
    """``log2(|rfft|^2 + 1)`` of every row, NaN/inf as 0, float32."""
    with np.errstate(over="ignore", invalid="ignore"):
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        out = np.log2(power + 1.0)
    out[~np.isfinite(out)] = 0.0
    return out.astype(np.float32)


_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio) for key mixing


def host_keys(headers: HeaderBatch, source: bool) -> np.ndarray:
    """An int64 key per packet for its source (or destination) host: the IP address, or the
    MAC address for frames without IP. Keys are only compared, never stored as features."""
    ip = np.ascontiguousarray(headers.src_ip if source else headers.dst_ip)
    words = ip.view(np.uint64).reshape(len(ip), 2)
    mac = (headers.src_mac if source else headers.dst_mac).astype(np.uint64)
    with np.errstate(over="ignore"):
        by_ip = words[:, 0] * _MIX ^ words[:, 1]
        by_mac = (mac + np.uint64(1)) * _MIX
    return np.where(headers.ip_version > 0, by_ip, by_mac).view(np.int64)


class WhisperFrequency:
    """Streaming Whisper frequency features keyed by session id."""

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        self.reset()

    def reset(self) -> None:
        """Forget all session state."""
        hist = self.config.w_seg - 1
        self._sid = np.zeros(0, np.int64)  # sorted
        self._hist = np.zeros((0, hist), np.float64)  # last w_seg - 1 values of v
        self._last_ts = np.zeros(0, np.float64)
        self._last_clock = np.zeros(0, np.float64)
        self._clock = -np.inf

    @property
    def n_live(self) -> int:
        """Number of sessions with state."""
        return len(self._sid)

    def values(self, length: np.ndarray, code: np.ndarray, dt: np.ndarray) -> np.ndarray:
        """The linear encoding ``v = w . [l, p, -log2(dt)]``."""
        w_len, w_proto, w_dt = self.config.whisper_weights
        return w_len * length.astype(np.float64) + w_proto * code + w_dt * -np.log2(dt)

    def transform(
        self, headers: HeaderBatch, session: np.ndarray, forgotten: np.ndarray | None = None
    ) -> np.ndarray:
        """Frequency features float32 (n, K); ``forgotten``: session ids whose state to drop
        after this batch (instead of applying the expiry rules here)."""
        cfg = self.config
        n, w, hist = len(headers), cfg.w_seg, cfg.w_seg - 1
        if n == 0:
            self._drop(forgotten)
            return np.zeros((0, cfg.n_freq_bins), np.float32)
        session = np.asarray(session, np.int64)
        order = np.argsort(session, kind="stable")
        sid_sorted = session[order]
        first = np.ones(n, bool)
        first[1:] = sid_sorted[1:] != sid_sorted[:-1]
        starts = np.flatnonzero(first)
        ends = np.append(starts[1:], n) - 1
        group_sid = sid_sorted[starts]
        n_groups = len(starts)
        slot = np.searchsorted(self._sid, group_sid)
        found = slot < len(self._sid)
        found[found] = self._sid[slot[found]] == group_sid[found]

        ts = headers.ts[order]
        prev = np.empty(n)
        prev[1:] = ts[:-1]
        prev[starts] = np.nan
        prev[starts[found]] = self._last_ts[slot[found]]
        dt = np.where(np.isnan(prev), cfg.min_dt, np.maximum(ts - prev, cfg.min_dt))
        v = self.values(headers.length[order], protocol_codes(headers)[order], dt)

        # Every group's history followed by its values, groups back to back.
        group_of = np.cumsum(first) - 1
        ext_pos = np.arange(n) + (group_of + 1) * hist
        ext = np.zeros(n + n_groups * hist)
        ext[ext_pos] = v
        if found.any():
            hist_pos = (starts[found] + np.flatnonzero(found) * hist)[:, None] + np.arange(hist)
            ext[hist_pos] = self._hist[slot[found]]
        windows = ext[ext_pos[:, None] - hist + np.arange(w)]
        out = np.empty((n, cfg.n_freq_bins), np.float32)
        out[order] = spectrum(windows)

        clock = np.maximum.accumulate(np.concatenate(([self._clock], headers.ts)))[1:]
        self._clock = float(clock[-1])
        last_hist = ext[ext_pos[ends][:, None] - hist + 1 + np.arange(hist)]
        self._store(group_sid, slot, found, last_hist, ts[ends], clock[order][ends])
        if forgotten is None:
            self._expire()
        else:
            self._drop(forgotten)
        return out

    def forget(self, sessions: np.ndarray) -> None:
        """Drop the state of the given session ids."""
        self._drop(sessions)

    def _store(self, sid, slot, found, hist, last_ts, last_clock) -> None:
        s = slot[found]
        self._hist[s] = hist[found]
        self._last_ts[s] = last_ts[found]
        self._last_clock[s] = last_clock[found]
        new = ~found
        if not new.any():
            return
        sids = np.concatenate((self._sid, sid[new]))
        parts = [
            (self._hist, hist[new]),
            (self._last_ts, last_ts[new]),
            (self._last_clock, last_clock[new]),
        ]
        merged = [np.concatenate(p) for p in parts]
        if len(self._sid) and sid[new].min() < self._sid[-1]:  # keep ids sorted
            order = np.argsort(sids, kind="stable")
            sids, merged = sids[order], [m[order] for m in merged]
        self._sid = sids
        self._hist, self._last_ts, self._last_clock = merged

    def _keep(self, keep: np.ndarray) -> None:
        self._sid = self._sid[keep]
        self._hist = self._hist[keep]
        self._last_ts = self._last_ts[keep]
        self._last_clock = self._last_clock[keep]

    def _drop(self, sessions: np.ndarray | None) -> None:
        if sessions is None or len(sessions) == 0 or len(self._sid) == 0:
            return
        sessions = np.asarray(sessions, np.int64)
        at = np.searchsorted(self._sid, sessions)
        hit = at < len(self._sid)
        hit[hit] = self._sid[at[hit]] == sessions[hit]
        keep = np.ones(len(self._sid), bool)
        keep[at[hit]] = False
        self._keep(keep)

    def _expire(self) -> None:
        keep = self._clock - self._last_clock <= self.config.session_idle_s
        excess = int(keep.sum()) - self.config.max_sessions
        if excess > 0:
            live = np.flatnonzero(keep)
            oldest = np.lexsort((self._sid[live], self._last_clock[live]))[:excess]
            keep[live[oldest]] = False
        if not keep.all():
            self._keep(keep)

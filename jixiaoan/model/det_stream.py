"""Streaming DET inference: each packet is processed once, against cached session context.

For every live session the stream keeps, per layer, the keys and values of the session's last
``window - 1`` tokens in a ring buffer (one slot per session). A batch is processed layer by
layer for all its packets at once: a packet's keys/values at layer ``l`` depend only on its own
input to layer ``l``, so packets of one session inside the batch need no waves; each token
gathers its neighbours from the batch itself or from its session's ring. Sessions are forgotten
when idle (``idle_s``, by capture time) or, beyond ``max_sessions``, least recently used first;
a forgotten session that comes back restarts without context. Memory: per cached session
``n_layers * 2 * (window - 1) * d_model`` floats (7 KiB with the defaults), so 50k sessions
take about 350 MiB.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from jixiaoan.features.batch import FeatureBatch
from jixiaoan.model.det import DET, session_order
from jixiaoan.model.det_kernels import band_attention
from jixiaoan.model.threads import torch_threads

SMALL_BATCH = 512  # fewer packets than this run on one torch thread (BENCHMARKS.md, session 5)


class DETStream:
    """Stateful per-packet DET inference with bounded per-session caches.

    With ``threads`` >= 2 the sessions are split over that many shards (by a hash of the
    session id), each with its own caches, run side by side in a thread pool with one torch
    thread each: sessions never interact, so the result is the same as one shard, and the cores
    stay busy without torch's per-operation thread hand-offs.
    """

    def __init__(
        self,
        model: DET,
        max_sessions: int = 50_000,
        idle_s: float = 300.0,
        threads: int = 2,
        engine: str = "numba",
    ):
        if engine not in ("numba", "torch"):
            raise ValueError(f"unknown engine {engine!r}")
        self.model = model.eval()
        self.n_shards = max(1, threads)
        if threads:
            torch.set_num_threads(1)
        per_shard = -(-max_sessions // self.n_shards)
        self._shards = [
            _ShardStream(model, per_shard, idle_s, engine) for _ in range(self.n_shards)
        ]
        self._pool = ThreadPoolExecutor(self.n_shards) if self.n_shards > 1 else None

    def reset(self) -> None:
        """Forget every session (and refresh the byte lookup table from the model)."""
        for shard in self._shards:
            shard.reset()

    def predict_proba(self, batch: FeatureBatch) -> np.ndarray:
        """Class probabilities (n, C) float32; updates the per-session caches. A batch of
        fewer than ``SMALL_BATCH`` packets runs on one torch thread: waking idle threads for
        each of its ~40 small operations costs more than it saves (twice the time at 256)."""
        if self._pool is None:
            if len(batch) < SMALL_BATCH and torch.get_num_threads() > 1:
                with torch_threads(1):
                    return self._shards[0].predict_proba(batch)
            return self._shards[0].predict_proba(batch)
        session = np.asarray(batch.session, dtype=np.int64)
        mixed = (session.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
        shard_of = (mixed % np.uint64(self.n_shards)).astype(np.int64)
        parts = [np.flatnonzero(shard_of == k) for k in range(self.n_shards)]
        jobs = [
            self._pool.submit(shard.predict_proba, _rows(batch, idx))
            for shard, idx in zip(self._shards, parts, strict=True)
        ]
        out = np.empty((len(batch), self.model.cfg.n_classes), dtype=np.float32)
        for idx, job in zip(parts, jobs, strict=True):
            out[idx] = job.result()
        return out

    @property
    def n_sessions(self) -> int:
        """Sessions currently cached."""
        return sum(shard.n_sessions for shard in self._shards)


def _rows(batch: FeatureBatch, idx: np.ndarray) -> FeatureBatch:
    """The rows DET needs (no AfterImage copy)."""
    ts = batch.ts[idx] if len(batch.ts) == len(batch) else batch.ts[:0]
    return FeatureBatch(
        byte_idx=batch.byte_idx[idx],
        freq=batch.freq[idx],
        afterimage=batch.afterimage[:0],
        session=batch.session[idx],
        pos=batch.pos[idx],
        ts=ts,
    )


class _ShardStream:
    """One shard: caches for its sessions and the layer-by-layer batch inference."""

    def __init__(self, model: DET, max_sessions: int, idle_s: float, engine: str):
        self.engine = engine
        self.model = model
        self.max_sessions = max_sessions
        self.idle_s = idle_s
        self.reset()

    # ----- state ----------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every session (and refresh the byte lookup table from the model)."""
        cfg = self.model.cfg
        with torch.inference_mode():
            self._table = self.model.lookup_table().contiguous()
        self._ring = cfg.window - 1
        self._ids = np.zeros(0, dtype=np.int64)  # sorted known session ids
        self._slot_of = np.zeros(0, dtype=np.int64)  # slot of each known id
        self._alloc(self.max_sessions)
        self._tick = 0

    def _alloc(self, slots: int) -> None:
        """Caches for ``slots`` sessions, allocated once and never zeroed: a slot's rows are
        read only after its session wrote them, and untouched pages cost no memory, so growing
        (copying every cache in the middle of a flood of new sessions) is never needed. A reset
        keeps caches of the right size (their pages are already mapped)."""
        d, r, layers = self.model.cfg.d_model, self._ring, self.model.cfg.n_layers
        self._count = np.zeros(slots, dtype=np.int64)
        self._last_ts = np.full(slots, -np.inf)
        self._used = np.zeros(slots, dtype=np.int64)
        shape = (slots * r, d)
        old = getattr(self, "_k", None)
        if not (old and len(old) == layers and tuple(old[0].shape) == shape):
            self._k = [torch.empty(shape) for _ in range(layers)]
            self._v = [torch.empty(shape) for _ in range(layers)]
        self._free = np.arange(slots - 1, -1, -1, dtype=np.int64)  # pop from the end

    def _grow(self, need: int) -> None:
        """More slots than ``max_sessions``: only when one batch brings more new sessions."""
        old = len(self._count)
        new = min(max(old * 2, old + need), max(self.max_sessions, old + need))
        d, r = self.model.cfg.d_model, self._ring
        self._count = np.concatenate([self._count, np.zeros(new - old, np.int64)])
        self._last_ts = np.concatenate([self._last_ts, np.full(new - old, -np.inf)])
        self._used = np.concatenate([self._used, np.zeros(new - old, np.int64)])
        for store in (self._k, self._v):
            for i, t in enumerate(store):
                store[i] = torch.cat([t, torch.empty((new - old) * r, d)])
        self._free = np.concatenate([np.arange(new - 1, old - 1, -1), self._free])

    def _forget(self, drop: np.ndarray) -> None:
        """Remove the known sessions at positions ``drop`` of ``self._ids``."""
        if len(drop) == 0:
            return
        self._free = np.concatenate([self._free, self._slot_of[drop]])
        keep = np.ones(len(self._ids), dtype=bool)
        keep[drop] = False
        self._ids, self._slot_of = self._ids[keep], self._slot_of[keep]

    def _slots_for(self, ids: np.ndarray, now: float | None) -> tuple[np.ndarray, np.ndarray]:
        """Slots of the batch's (sorted, unique) session ids, creating new ones; and the tokens
        each session already has cached."""
        at = np.searchsorted(self._ids, ids)
        found = at < len(self._ids)
        found[found] = self._ids[at[found]] == ids[found]
        self._used[self._slot_of[at[found]]] = self._tick  # protect them from eviction
        n_new = int((~found).sum())
        if n_new:
            live = len(self._ids)
            if now is not None and self.idle_s > 0:
                idle = self._last_ts[self._slot_of] < now - self.idle_s
                idle &= self._used[self._slot_of] != self._tick
                self._forget(np.flatnonzero(idle))
            over = len(self._ids) + n_new - self.max_sessions
            if over > 0:
                age = np.where(
                    self._used[self._slot_of] == self._tick,
                    np.iinfo(np.int64).max,
                    self._used[self._slot_of],
                )
                over = min(over, int((age != np.iinfo(np.int64).max).sum()))
                self._forget(np.argpartition(age, over - 1)[:over] if over > 0 else age[:0])
            if len(self._ids) != live:
                at = np.searchsorted(self._ids, ids)
            if len(self._free) < n_new:
                self._grow(n_new - len(self._free))
            new_slots = self._free[len(self._free) - n_new :][::-1].copy()
            self._free = self._free[: len(self._free) - n_new]
            self._count[new_slots] = 0
            self._last_ts[new_slots] = -np.inf
            self._used[new_slots] = self._tick
            self._ids = np.insert(self._ids, at[~found], ids[~found])
            self._slot_of = np.insert(self._slot_of, at[~found], new_slots)
            at = np.searchsorted(self._ids, ids)
        slots = self._slot_of[at]
        return slots, self._count[slots].copy()

    # ----- inference ------------------------------------------------------------------------

    @torch.inference_mode()
    def predict_proba(self, batch: FeatureBatch) -> np.ndarray:
        """Class probabilities (n, C) float32; updates the per-session caches."""
        model, cfg = self.model, self.model.cfg
        n = len(batch)
        if n == 0:
            return np.zeros((0, cfg.n_classes), dtype=np.float32)
        self._tick += 1
        sess = np.asarray(batch.session, dtype=np.int64)
        order, rank, starts = session_order(sess)
        sizes = np.diff(np.append(starts, n))
        now = float(batch.ts.max()) if len(batch.ts) == n else None
        slots, seen = self._slots_for(sess[order[starts]], now)
        tok_slot = np.repeat(slots, sizes)
        tok_seen = np.repeat(seen, sizes)

        # neighbour codes: >= 0 a batch token (session-major), -1 none, <= -2 a cache row
        ring, w = self._ring, cfg.window
        offs = np.arange(-(w - 1), 1)
        prev_rank = rank[:, None] + offs[None, :]  # (n, W)
        codes = np.arange(n)[:, None] + offs[None, :]
        total = tok_seen[:, None] + prev_rank
        from_cache = (prev_rank < 0) & (total >= 0)
        codes[from_cache] = -2 - (tok_slot[:, None] * ring + total % ring)[from_cache]
        codes[(prev_rank < 0) & (total < 0)] = -1
        # tokens that are among their session's last ring entries after this batch
        last = rank >= np.repeat(sizes, sizes) - ring
        writes = (
            torch.from_numpy(tok_slot[last] * ring + (tok_seen[last] + rank[last]) % ring),
            torch.from_numpy(np.flatnonzero(last)),
        )
        x = self._embed(batch, order)
        layers = self._layers_numba if self.engine == "numba" else self._layers_torch
        x = layers(x, codes, writes)
        probs = torch.softmax(model.head(x), dim=-1).numpy()

        self._count[slots] += sizes
        if now is not None:
            self._last_ts[slots] = np.maximum.reduceat(batch.ts[order], starts)
        out = np.empty_like(probs)
        out[order] = probs
        return out

    def _embed(self, batch: FeatureBatch, order: np.ndarray) -> torch.Tensor:
        return self.model.encode(
            torch.from_numpy(batch.byte_idx[order].astype(np.int64)),
            torch.from_numpy(batch.freq[order]),
            torch.from_numpy(batch.pos[order]),
            self._table,
        )

    def _layers_torch(self, x: torch.Tensor, codes: np.ndarray, writes) -> torch.Tensor:
        """Reference path: gather neighbours into a pool [batch tokens ; cache rows]."""
        n = len(x)
        from_cache = codes <= -2
        rows = torch.from_numpy(-2 - codes[from_cache])
        nbr = codes.copy()
        nbr[from_cache] = n + np.arange(len(rows))
        valid = torch.from_numpy(nbr >= 0)
        nbr_t = torch.from_numpy(np.maximum(nbr, 0))
        for li, layer in enumerate(self.model.layers):
            q, k, v = layer.project(x)
            k_pool = torch.cat([k, self._k[li][rows]])
            v_pool = torch.cat([v, self._v[li][rows]])
            shape = (len(x), -1, layer.n_heads, x.shape[1] // layer.n_heads)
            k_win = k_pool[nbr_t].view(shape).permute(0, 2, 3, 1)
            v_win = v_pool[nbr_t].view(shape).permute(0, 2, 3, 1)
            a = layer.attend(q, k_win, v_win, valid)
            self._k[li].index_copy_(0, writes[0], k[writes[1]])
            self._v[li].index_copy_(0, writes[0], v[writes[1]])
            x = layer.finish(x, a)
        return x

    def _layers_numba(self, x: torch.Tensor, codes: np.ndarray, writes) -> torch.Tensor:
        """Fast path: attention reads neighbours from a pool in place (numba kernel)."""
        n = len(x)
        from_cache = codes <= -2
        rows = torch.from_numpy(-2 - codes[from_cache])
        nbr = codes.copy()
        nbr[from_cache] = n + np.arange(len(rows))
        first = (nbr < 0).sum(axis=1)
        nbr[nbr < 0] = 0
        for li, layer in enumerate(self.model.layers):
            q, k, v = layer.project(x)
            k_pool = torch.cat([k, self._k[li].index_select(0, rows)])
            v_pool = torch.cat([v, self._v[li].index_select(0, rows)])
            a = band_attention(
                q.contiguous().numpy(),
                k_pool.numpy(),
                v_pool.numpy(),
                nbr,
                first,
                layer.n_heads,
            )
            self._k[li].index_copy_(0, writes[0], k.index_select(0, writes[1]))
            self._v[li].index_copy_(0, writes[0], v.index_select(0, writes[1]))
            x = layer.finish(x, torch.from_numpy(a))
        return x

    @property
    def n_sessions(self) -> int:
        """Sessions currently cached."""
        return len(self._ids)

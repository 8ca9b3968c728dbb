"""Capture-to-commit latency: from each packet's capture timestamp to its row's commit.

The engine worker calls ``expect(batch)`` before handing a batch to the store (``cancel`` when
the store refused it); the store's
writer thread calls ``committed(max_ts, wall, rows)`` (PacketStore's ``on_commit``) after each
commit. Batches are committed in submission order, so a commit covers every pending batch whose
newest packet is not newer than the commit's newest. Latencies go into a fixed log-spaced
histogram (bounded memory), from which percentiles are read.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from jixiaoan.engine.batch import ClassifiedBatch

_EDGES = np.concatenate([[-np.inf], np.logspace(-5, 3, 401), [np.inf]])  # 10 us .. 1000 s


class LatencyRecorder:
    """Histogram of capture-to-commit latencies of stored packets (see the module docstring)."""

    def __init__(self, max_pending: int = 4096) -> None:
        self._lock = threading.Lock()
        self._pending: deque[tuple[float, np.ndarray]] = deque()
        self._max_pending = max_pending
        self._hist = np.zeros(len(_EDGES) - 1, np.int64)
        self.count = 0
        self.max_s = 0.0

    def expect(self, batch: ClassifiedBatch) -> object | None:
        """Remember the capture times of a batch's stored packets (those of watched devices),
        before handing it to the store; returns a token for ``cancel``."""
        stored = (batch.src_device >= 0) | (batch.dst_device >= 0)
        if not stored.any():
            return None
        ts = np.asarray(batch.headers.ts, np.float64)[stored]
        entry = (float(ts.max()), ts)
        with self._lock:
            if len(self._pending) >= self._max_pending:
                self._pending.popleft()  # never committed: forget it
            self._pending.append(entry)
        return entry

    def cancel(self, token: object | None) -> None:
        """The store refused the batch of ``token``: it will never be committed."""
        if token is None:
            return
        with self._lock:
            for i in range(len(self._pending) - 1, -1, -1):
                if self._pending[i] is token:
                    del self._pending[i]
                    break

    def committed(self, max_ts: float, wall: float, rows: int) -> None:
        """A commit holding packets up to capture time ``max_ts`` finished at ``wall``."""
        with self._lock:
            done = []
            while self._pending and self._pending[0][0] <= max_ts + 1e-9:
                done.append(self._pending.popleft()[1])
            if not done:
                return
            lat = wall - np.concatenate(done)
            self._hist += np.histogram(lat, bins=_EDGES)[0]
            self.count += len(lat)
            self.max_s = max(self.max_s, float(lat.max()))

    def reset(self) -> None:
        """Forget every latency recorded so far (pending batches are kept)."""
        with self._lock:
            self._hist[:] = 0
            self.count = 0
            self.max_s = 0.0

    def percentile(self, q: float) -> float:
        """Latency (seconds) below which ``q`` percent of the recorded packets fall (upper
        edge of the histogram bin; NaN when nothing was recorded)."""
        with self._lock:
            if self.count == 0:
                return float("nan")
            cum = np.cumsum(self._hist)
            i = int(np.searchsorted(cum, q / 100.0 * self.count, side="left"))
            upper = _EDGES[min(i + 1, len(_EDGES) - 1)]
            return float(min(upper, self.max_s)) if np.isfinite(upper) else self.max_s

"""Replay a capture file through a :class:`FrameQueue` as if it were a live adapter.

For demos and tests: frames arrive at the capture's own pace times ``speed`` (or as fast as
possible), in batches cut by size or by time like :class:`~jixiaoan.capture.live.LiveCapture`,
with the same counters.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np

from jixiaoan.capture.batch import CaptureError, FrameBatch
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.capture.queues import CaptureCounters, FrameQueue


def slice_batch(batch: FrameBatch, start: int, stop: int) -> FrameBatch:
    """Frames ``start:stop`` of ``batch`` as a new batch sharing no memory with it."""
    lo, hi = int(batch.offsets[start]), int(batch.offsets[stop])
    return FrameBatch(batch.data[lo:hi].copy(), batch.offsets[start : stop + 1] - lo,
                      batch.ts[start:stop].copy(), batch.wire_len[start:stop].copy(),
                      batch.linktype[start:stop].copy())


def time_cuts(ts: np.ndarray, window_s: float, max_packets: int) -> np.ndarray:
    """Cut points splitting ``ts`` (sorted or not) into runs no longer than ``window_s``
    seconds (measured from each run's first frame) and ``max_packets`` frames. Returns the
    run starts plus ``len(ts)``."""
    n = len(ts)
    cuts = [0]
    mono = np.maximum.accumulate(ts) if n else ts
    while cuts[-1] < n:
        start = cuts[-1]
        end = int(np.searchsorted(mono, mono[start] + window_s, side="right"))
        cuts.append(min(max(end, start + 1), start + max_packets, n))
    return np.asarray(cuts, np.int64)


class ReplaySource:
    """Feeds the frames of ``path`` (pcap/pcapng, gzip allowed) into ``queue`` on a thread.

    ``speed``: 1.0 keeps the original pace, 2.0 twice as fast, ``None`` as fast as possible.
    ``block``: wait for room in the queue instead of dropping (offline use).
    ``rebase_time``: shift timestamps so that the first frame is "now" (default: keep the
    capture's own times). ``loop``: start over at the end, ``loop`` more times (-1: forever).
    ``close_queue``: close the queue when the file is done (only when this is its sole source).
    A damaged file is replayed up to the damage; the error is kept in :attr:`error`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        queue: FrameQueue,
        speed: float | None = 1.0,
        batch_packets: int = 4096,
        batch_timeout_s: float = 0.02,
        block: bool = False,
        rebase_time: bool = False,
        loop: int = 0,
        close_queue: bool = False,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive, or None for as fast as possible")
        if batch_packets < 1 or batch_timeout_s <= 0:
            raise ValueError("batch_packets must be >= 1 and batch_timeout_s > 0")
        self.path, self.queue, self.speed = os.fspath(path), queue, speed
        self.batch_packets, self.batch_timeout_s = batch_packets, batch_timeout_s
        self.block, self.rebase_time, self.loop = block, rebase_time, loop
        self.close_queue = close_queue
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._received = self._batches = self._qdrop_batches = self._qdrop_packets = 0

    def start(self) -> ReplaySource:
        """Check the file can be opened, then start replaying on a thread."""
        if self._thread is not None:
            raise RuntimeError("replay already started")
        if not os.path.isfile(self.path):
            raise CaptureError(self.path, None, "no such capture file")
        self._thread = threading.Thread(target=self._run, name="replay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop early (frames already handed on stay in the queue)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the whole file was replayed (or stopped); True when done."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        """True once the replay ended (file finished, stopped, or failed)."""
        return self._done.is_set()

    @property
    def running(self) -> bool:
        """True while the replay thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> ReplaySource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def counters(self) -> CaptureCounters:
        """Same counters as a live capture (kernel drops are always 0)."""
        with self._lock:
            return CaptureCounters(
                received=self._received, kernel_drops=0, batches=self._batches,
                queue_dropped_batches=self._qdrop_batches,
                queue_dropped_packets=self._qdrop_packets)

    def _hand_on(self, batch: FrameBatch) -> None:
        accepted = self.queue.put(batch, block=self.block)
        with self._lock:
            self._received += len(batch)
            self._batches += 1
            if not accepted:
                self._qdrop_batches += 1
                self._qdrop_packets += len(batch)

    def _sleep_until(self, wall: float) -> bool:
        """Sleep until ``wall`` (time.monotonic); False when stopped meanwhile."""
        while True:
            left = wall - time.monotonic()
            if left <= 0:
                return not self._stop.is_set()
            if self._stop.wait(min(left, 0.1)):
                return False

    def _run(self) -> None:
        rounds, shift = 0, 0.0  # shift: added to every timestamp (rebase, later loop rounds)
        try:
            while not self._stop.is_set():
                span = self._replay_once(shift, rounds)
                rounds += 1
                if span is None or (self.loop >= 0 and rounds > self.loop):
                    break
                shift = span[2] + span[1] - span[0] + 1e-3  # the next round continues the clock
        except BaseException as exc:  # noqa: BLE001 - kept for the owner
            self.error = exc
        finally:
            self._done.set()
            if self.close_queue:
                self.queue.close()

    def _replay_once(self, shift: float, round_no: int) -> tuple[float, float, float] | None:
        """One pass over the file; returns its first and last original timestamps and the
        shift used, None when the file is empty or the replay was stopped."""
        t0_wall = time.monotonic()
        first = last = None
        for batch in read_capture(self.path, batch_size=max(self.batch_packets, 8192)):
            if self._stop.is_set():
                return None
            if len(batch) == 0:
                continue
            if first is None:
                first = float(batch.ts[0])
                if self.rebase_time and round_no == 0:
                    shift += time.time() - first
            original = batch.ts
            # in capture seconds; as fast as possible: batches are cut by size only
            window = np.inf if self.speed is None else self.batch_timeout_s * self.speed
            cuts = time_cuts(original, window, self.batch_packets)
            batch.ts = original + shift
            for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
                if self.speed is not None:
                    due = t0_wall + (float(original[b - 1]) - first) / self.speed
                    if not self._sleep_until(due):
                        return None
                self._hand_on(slice_batch(batch, a, b))
            last = float(original[-1])
        return None if first is None else (first, last, shift)

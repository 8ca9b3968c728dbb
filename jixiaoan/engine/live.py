"""The engine's worker thread for live capture and replay.

``InferenceWorker`` takes FrameBatches from a bounded ``FrameQueue`` (filled by a capture
thread), joins what has arrived into one larger batch (up to ``max_batch_packets`` packets, or
until ``max_wait_s`` after the first packet's capture time, whichever comes first; whatever is
already queued is taken at once), runs ``Engine.process`` on it and
hands the ClassifiedBatch to every sink. Sinks are plain callables run on the worker thread
(store submit, alert feed, ...); one that raises is logged and counted, never fatal. Nothing
here runs per packet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from jixiaoan.capture.batch import FrameBatch
from jixiaoan.engine.batch import ClassifiedBatch
from jixiaoan.engine.pipeline import Engine

log = logging.getLogger(__name__)

Sink = Callable[[ClassifiedBatch], None]
MAX_WAIT_LIMIT_S = 0.05  # a coalescing wait never exceeds this (latency budget)
MAX_CLOCK_SKEW_S = 10.0  # a capture time this close to the wall clock is taken as live


class BatchSource(Protocol):
    """What the worker needs from a queue (``jixiaoan.capture.queues.FrameQueue``)."""

    def get(self, timeout: float | None = None) -> FrameBatch | None: ...


@dataclass(frozen=True)
class WorkerCounters:
    """A consistent snapshot of the worker's counters."""

    received: int = 0  # packets taken from the queue
    received_batches: int = 0  # capture batches taken from the queue
    classified: int = 0  # packets the engine processed and handed to the sinks
    batches: int = 0  # engine calls (coalesced batches) that succeeded
    processing_s: float = 0.0  # wall time inside Engine.process
    sink_s: float = 0.0  # wall time inside the sinks
    sink_errors: int = 0  # sink calls that raised
    engine_errors: int = 0  # coalesced batches the engine failed on (their packets are lost)
    engine_dropped: int = 0  # packets of those batches
    last_error: str = ""


class InferenceWorker:
    """Runs ``engine`` on batches from ``queue`` on its own thread (see the module docstring).

    ``start()`` starts the thread; ``stop()`` lets it finish what is queued (a final drain)
    and joins it. The engine is used only by this thread once started.
    """

    def __init__(
        self,
        engine: Engine,
        queue: BatchSource,
        sinks: Iterable[Sink] = (),
        max_batch_packets: int = 16384,
        max_wait_s: float = MAX_WAIT_LIMIT_S,
        name: str = "jixiaoan-engine",
    ) -> None:
        if max_batch_packets < 1:
            raise ValueError("max_batch_packets must be at least 1")
        if not 0.0 <= max_wait_s <= MAX_WAIT_LIMIT_S:
            raise ValueError(f"max_wait_s must be between 0 and {MAX_WAIT_LIMIT_S} s")
        self.engine = engine
        self.queue = queue
        self.max_batch_packets = int(max_batch_packets)
        self.max_wait_s = float(max_wait_s)
        self._sinks: tuple[Sink, ...] = tuple(sinks)
        self._lock = threading.Lock()
        self._counts = dict(WorkerCounters().__dict__)
        self._stopping = threading.Event()
        self._abort = threading.Event()
        self._thread: threading.Thread | None = None
        self._name = name

    # ---- life cycle ---------------------------------------------------------------------

    def start(self) -> InferenceWorker:
        """Start the worker thread (once)."""
        if self._thread is not None:
            raise RuntimeError("worker already started")
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 30.0, drain: bool = True) -> bool:
        """Stop after processing every batch still queued (``drain``), or after the current
        one. Returns False when the thread did not finish within ``timeout``. Stop the
        capture first, or the drain may chase a stream that never ends (bounded by timeout)."""
        self._stopping.set()
        if not drain:
            self._abort.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort.set()
            return False
        return True

    @property
    def running(self) -> bool:
        """True while the worker thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def add_sink(self, sink: Sink) -> None:
        """Also hand every following ClassifiedBatch to ``sink``."""
        with self._lock:
            self._sinks = (*self._sinks, sink)

    def remove_sink(self, sink: Sink) -> None:
        """Stop calling ``sink`` (no error when absent)."""
        with self._lock:
            self._sinks = tuple(s for s in self._sinks if s is not sink)

    def counters(self) -> WorkerCounters:
        """A consistent snapshot of the counters."""
        with self._lock:
            return WorkerCounters(**self._counts)

    # ---- worker thread ------------------------------------------------------------------

    def _collect(self) -> list[FrameBatch] | None:
        """The next group of batches to process together; None when it is time to stop."""
        while True:
            if self._abort.is_set():
                return None
            first = self.queue.get(timeout=0.1)
            if first is not None:
                break
            if self._stopping.is_set() or getattr(self.queue, "finished", False):
                return None
        # a batch counts as received the moment it leaves the queue, so "queue empty and
        # received == classified" never holds while a batch waits here for company
        self._count_received(first)
        group, n = [first], len(first)
        deadline = time.monotonic() + self._wait_budget(first)
        while n < self.max_batch_packets:
            left = deadline - time.monotonic()
            nxt = self.queue.get(timeout=max(left, 0.0))
            if nxt is None:
                if left <= 0 or self._stopping.is_set() or getattr(self.queue, "finished", False):
                    break
                continue
            self._count_received(nxt)
            group.append(nxt)
            n += len(nxt)
        return group

    def _count_received(self, batch: FrameBatch) -> None:
        with self._lock:
            self._counts["received"] += len(batch)
            self._counts["received_batches"] += 1

    def _wait_budget(self, first: FrameBatch) -> float:
        """How long to wait for more batches: ``max_wait_s`` counted from the capture time of
        the batch's first packet when that is a recent wall-clock time (live capture: the
        time it already spent in capture batching counts), else from now (replayed files)."""
        age = time.time() - float(first.ts[0]) if len(first) else 0.0
        if 0.0 <= age <= MAX_CLOCK_SKEW_S:
            return max(0.0, self.max_wait_s - age)
        return self.max_wait_s

    def _run(self) -> None:
        while True:
            group = self._collect()
            if group is None:
                break
            frames = group[0] if len(group) == 1 else FrameBatch.concat(group)
            self._process(frames)

    def _process(self, frames: FrameBatch) -> None:
        t0 = time.perf_counter()
        try:
            batch = self.engine.process(frames)
        except Exception as exc:  # noqa: BLE001 - one bad batch must not stop the monitor
            log.exception("engine failed on a batch of %d packets", len(frames))
            with self._lock:
                self._counts["engine_errors"] += 1
                self._counts["engine_dropped"] += len(frames)
                self._counts["last_error"] = f"engine: {exc!r}"
            return
        t1 = time.perf_counter()
        errors, last = 0, ""
        for sink in self._sinks:
            try:
                sink(batch)
            except Exception as exc:  # noqa: BLE001 - counted, the other sinks still run
                errors += 1
                last = f"sink {getattr(sink, '__name__', sink)!r}: {exc!r}"
                log.exception("sink %r failed on a batch of %d packets", sink, len(batch))
        t2 = time.perf_counter()
        with self._lock:
            c = self._counts
            c["classified"] += len(batch)
            c["batches"] += 1
            c["processing_s"] += t1 - t0
            c["sink_s"] += t2 - t1
            if errors:
                c["sink_errors"] += errors
                c["last_error"] = last

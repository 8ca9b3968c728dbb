"""Bounded hand-over of frame batches from capture sources to the engine.

A live capture must never wait for the engine: :meth:`FrameQueue.put` drops a batch that does
not fit and counts it. Offline replays may ask to wait instead (``block=True``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from jixiaoan.capture.batch import FrameBatch


@dataclass(frozen=True)
class QueueCounters:
    """A consistent snapshot of a :class:`FrameQueue`'s counters."""

    enqueued_batches: int
    enqueued_packets: int
    dropped_batches: int
    dropped_packets: int
    depth_batches: int  # batches waiting now
    depth_packets: int  # packets waiting now
    depth_bytes: int  # captured bytes waiting now
    peak_packets: int  # largest number of packets ever waiting at once


@dataclass(frozen=True)
class CaptureCounters:
    """Counters of one capture source (live adapter or replayed file)."""

    received: int  # packets read from the adapter or file
    kernel_drops: int  # packets the kernel dropped before we read them (0 when unknown)
    batches: int  # batches handed to the queue (accepted or not)
    queue_dropped_batches: int  # of those, batches the full queue refused
    queue_dropped_packets: int  # packets in the refused batches


class FrameQueue:
    """A bounded FIFO of :class:`FrameBatch` shared by capture threads and one consumer.

    The bound is ``max_batches`` batches, ``max_packets`` packets and (optionally) ``max_bytes``
    captured bytes, whichever is hit first. A single batch larger than the packet or byte
    bound is still accepted when the queue is empty, so no batch can be refused forever.
    Thread-safe; ``put`` never blocks unless asked to.
    """

    def __init__(
        self, max_batches: int = 64, max_packets: int = 262_144, max_bytes: int | None = None
    ) -> None:
        if max_batches < 1 or max_packets < 1 or (max_bytes is not None and max_bytes < 1):
            raise ValueError("queue bounds must be positive")
        self.max_batches, self.max_packets, self.max_bytes = max_batches, max_packets, max_bytes
        self._items: deque[FrameBatch] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._packets = self._bytes = self._peak = 0
        self._enq_batches = self._enq_packets = self._drop_batches = self._drop_packets = 0
        self._closed = False

    def _fits(self, n: int, nbytes: int) -> bool:
        if not self._items:
            return True
        if len(self._items) >= self.max_batches or self._packets + n > self.max_packets:
            return False
        return self.max_bytes is None or self._bytes + nbytes <= self.max_bytes

    def put(self, batch: FrameBatch, block: bool = False, timeout: float | None = None) -> bool:
        """Append ``batch``; True when queued. When full: drop it and count the drop
        (``block=False``, the default), or wait for room up to ``timeout`` seconds
        (``block=True``; ``None`` waits as long as needed) and drop only if time runs out.
        Empty batches are ignored (True). A closed queue drops everything."""
        n = len(batch)
        if n == 0:
            return True
        nbytes = int(batch.offsets[-1] - batch.offsets[0])
        with self._lock:
            if block and not self._closed and not self._fits(n, nbytes):
                deadline = None if timeout is None else time.monotonic() + timeout
                while not self._closed and not self._fits(n, nbytes):
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        break
                    self._not_full.wait(left)
            if self._closed or not self._fits(n, nbytes):
                self._drop_batches += 1
                self._drop_packets += n
                return False
            self._items.append(batch)
            self._packets += n
            self._bytes += nbytes
            self._peak = max(self._peak, self._packets)
            self._enq_batches += 1
            self._enq_packets += n
            self._not_empty.notify()
            return True

    def get(self, timeout: float | None = None) -> FrameBatch | None:
        """The oldest batch, waiting up to ``timeout`` seconds (``None``: until one comes or
        the queue is closed). Returns None on timeout, or when the queue is closed and empty."""
        with self._lock:
            if not self._items and not self._closed:
                if timeout is None:
                    while not self._items and not self._closed:
                        self._not_empty.wait()
                else:
                    self._not_empty.wait_for(lambda: self._items or self._closed, timeout)
            if not self._items:
                return None
            batch = self._items.popleft()
            self._packets -= len(batch)
            self._bytes -= int(batch.offsets[-1] - batch.offsets[0])
            self._not_full.notify_all()
            return batch

    def close(self) -> None:
        """No more batches will come: waiting consumers wake up; later puts are dropped.
        Batches already queued can still be taken."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    @property
    def finished(self) -> bool:
        """True when the queue is closed and drained: the consumer can stop."""
        with self._lock:
            return self._closed and not self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def counters(self) -> QueueCounters:
        """A consistent snapshot of the counters."""
        with self._lock:
            return QueueCounters(
                enqueued_batches=self._enq_batches,
                enqueued_packets=self._enq_packets,
                dropped_batches=self._drop_batches,
                dropped_packets=self._drop_packets,
                depth_batches=len(self._items),
                depth_packets=self._packets,
                depth_bytes=self._bytes,
                peak_packets=self._peak,
            )

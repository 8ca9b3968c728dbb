"""FrameQueue bounds and drop counting, ReplaySource pacing, batching and counters."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from jixiaoan.capture.batch import CaptureError, FrameBatch
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.capture.queues import FrameQueue
from jixiaoan.capture.replay import ReplaySource, slice_batch, time_cuts


def _batch(n: int, size: int = 60, t0: float = 0.0) -> FrameBatch:
    frames = [bytes([i % 256]) * size for i in range(n)]
    return FrameBatch.from_frames(frames, t0 + np.arange(n) * 0.001)


def test_put_get_in_order_and_counted() -> None:
    q = FrameQueue(max_batches=4, max_packets=100)
    a, b = _batch(3), _batch(5)
    assert q.put(a) and q.put(b)
    c = q.counters()
    assert (c.enqueued_batches, c.enqueued_packets) == (2, 8)
    assert (c.depth_batches, c.depth_packets) == (2, 8)
    assert c.depth_bytes == 8 * 60
    assert q.get(0) is a and q.get(0) is b
    assert q.get(0) is None
    assert q.counters().depth_packets == 0


def test_full_queue_drops_and_counts_without_blocking() -> None:
    q = FrameQueue(max_batches=2, max_packets=10)
    assert q.put(_batch(4)) and q.put(_batch(4))
    assert not q.put(_batch(1))  # batch limit
    q.get(0)
    assert not q.put(_batch(7))  # 4 + 7 > 10 packets
    assert q.put(_batch(6))
    c = q.counters()
    assert (c.dropped_batches, c.dropped_packets) == (2, 8)
    assert (c.enqueued_batches, c.enqueued_packets) == (3, 14)
    assert c.peak_packets == 10


def test_byte_bound_and_oversized_batch_when_empty() -> None:
    q = FrameQueue(max_batches=10, max_packets=5, max_bytes=1000)
    assert q.put(_batch(8))  # larger than the bounds, but the queue is empty
    assert not q.put(_batch(1))
    q.get(0)
    assert q.put(_batch(2, size=400))
    assert not q.put(_batch(1, size=400))  # 800 + 400 bytes > 1000


def test_overload_keeps_memory_bounded() -> None:
    q = FrameQueue(max_batches=8, max_packets=1000)
    sent = 0
    for _ in range(500):  # producer much faster than the (absent) consumer
        q.put(_batch(100))
        sent += 100
    c = q.counters()
    assert c.depth_packets <= 1000 and c.peak_packets <= 1000
    assert c.enqueued_packets + c.dropped_packets == sent
    assert c.dropped_batches == 500 - c.enqueued_batches


def test_blocking_put_waits_for_room() -> None:
    q = FrameQueue(max_batches=1, max_packets=100)
    q.put(_batch(1))
    results = []
    t = threading.Thread(target=lambda: results.append(q.put(_batch(2), block=True)))
    t.start()
    first = q.get(timeout=5)
    t.join(5)
    assert len(first) == 1 and results == [True]
    assert len(q.get(timeout=5)) == 2
    assert q.put(_batch(1), block=True, timeout=0.01)  # room now: no wait, no drop
    assert q.counters().dropped_batches == 0


def test_blocking_put_times_out_and_drops() -> None:
    q = FrameQueue(max_batches=1, max_packets=100)
    q.put(_batch(1))
    assert not q.put(_batch(3), block=True, timeout=0.01)
    assert q.counters().dropped_packets == 3


def test_close_wakes_consumer_and_finishes() -> None:
    q = FrameQueue()
    q.put(_batch(2))
    q.close()
    assert not q.put(_batch(1))
    assert not q.finished
    assert len(q.get()) == 2
    assert q.get() is None and q.finished


def test_empty_batch_is_ignored() -> None:
    q = FrameQueue()
    assert q.put(FrameBatch.empty())
    assert q.counters().enqueued_batches == 0


def test_bad_bounds() -> None:
    with pytest.raises(ValueError):
        FrameQueue(max_batches=0)


def test_time_cuts_and_slices() -> None:
    ts = np.array([0.0, 0.005, 0.03, 0.031, 0.032, 0.2])
    cuts = time_cuts(ts, 0.02, 2)
    assert cuts.tolist() == [0, 2, 4, 5, 6]
    b = _batch(6)
    part = slice_batch(b, 2, 4)
    assert [part.frame(i) for i in range(2)] == [b.frame(2), b.frame(3)]
    assert part.offsets[0] == 0 and part.ts.tolist() == b.ts[2:4].tolist()


def _drain(q: FrameQueue) -> list[FrameBatch]:
    out = []
    while (b := q.get(0)) is not None:
        out.append(b)
    return out


def test_replay_as_fast_as_possible_delivers_every_frame(data_dir) -> None:
    path = data_dir / "zeek" / "wikipedia.pcap"
    want = FrameBatch.concat(list(read_capture(path)))
    q = FrameQueue(max_batches=1000, max_packets=10**6)
    src = ReplaySource(path, q, speed=None, batch_packets=50, close_queue=True).start()
    assert src.wait(30) and src.error is None
    got = FrameBatch.concat(_drain(q))
    assert np.array_equal(got.data, want.data) and np.array_equal(got.ts, want.ts)
    c = src.counters()
    assert c.received == len(want) and c.batches == -(-len(want) // 50)
    assert c.queue_dropped_batches == 0 and q.finished


def test_replay_paced_batches_span_at_most_the_window(data_dir) -> None:
    path = data_dir / "zeek" / "wikipedia.pcap"
    q = FrameQueue(max_batches=10**4, max_packets=10**6)
    src = ReplaySource(path, q, speed=1000.0, batch_timeout_s=0.001).start()
    assert src.wait(60) and src.error is None
    batches = _drain(q)
    assert sum(len(b) for b in batches) == src.counters().received > 0
    for b in batches:  # 1 ms of replay time at 1000x is 1 s of capture time
        assert b.ts[-1] - b.ts[0] <= 1.0 + 1e-9


def test_replay_rebase_loop_and_drops(data_dir) -> None:
    path = data_dir / "zeek" / "wikipedia.pcap"
    n = sum(len(b) for b in read_capture(path))
    q = FrameQueue(max_batches=2, max_packets=10**6)
    src = ReplaySource(path, q, speed=None, batch_packets=10, rebase_time=True, loop=2).start()
    assert src.wait(30) and src.error is None
    c = src.counters()
    assert c.received == 3 * n
    assert c.queue_dropped_batches == c.batches - 2 > 0
    assert c.queue_dropped_packets == 3 * n - sum(len(b) for b in _drain(q))


def test_replay_blocking_loses_nothing_and_times_increase(data_dir) -> None:
    path = data_dir / "zeek" / "wikipedia.pcap"
    n = sum(len(b) for b in read_capture(path))
    q = FrameQueue(max_batches=2, max_packets=10**6)
    src = ReplaySource(path, q, speed=None, batch_packets=10, block=True, loop=1,
                       rebase_time=True).start()
    got = []
    while not (src.done and len(q) == 0):
        b = q.get(timeout=0.1)
        if b is not None:
            got.append(b)
    ts = FrameBatch.concat(got).ts
    assert len(ts) == 2 * n and src.counters().queue_dropped_packets == 0
    assert np.all(np.diff(ts[n - 1 : n + 1]) > 0)  # the second round continues the clock
    assert abs(ts[0] - time.time()) < 60  # rebased to now


def test_replay_missing_and_damaged_files(tmp_path) -> None:
    q = FrameQueue()
    with pytest.raises(CaptureError):
        ReplaySource(tmp_path / "nope.pcap", q).start()
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture file at all")
    src = ReplaySource(bad, q, speed=None).start()
    assert src.wait(10)
    assert isinstance(src.error, CaptureError)

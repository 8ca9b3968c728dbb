"""InferenceWorker: coalescing, sinks, failures, final drain, and overload with a bounded queue."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from jixiaoan.capture.batch import FrameBatch
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.capture.queues import FrameQueue
from jixiaoan.engine.batch import Device
from jixiaoan.engine.live import InferenceWorker
from jixiaoan.engine.pipeline import Engine
from jixiaoan.features.batch import FeatureBatch
from jixiaoan.model.verdict import Detector, TrainingData, Verdicts


def wait_for(condition, limit_s: float = 30.0) -> bool:
    """Poll until ``condition`` holds (a bound on waiting, not a timing assertion)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def synthetic_batch(n: int, start: float = 0.0, size: int = 60) -> FrameBatch:
    frames = [bytes([i % 256]) * size for i in range(n)]
    return FrameBatch.from_frames(frames, start + np.arange(n) * 1e-3)


class CountingEngine:
    """Engine stand-in: records the size of every call, returns the frames as the result."""

    def __init__(self, fail_on: int | None = None, delay_s: float = 0.0) -> None:
        self.calls: list[int] = []
        self.fail_on = fail_on
        self.delay_s = delay_s

    def process(self, frames: FrameBatch) -> FrameBatch:
        self.calls.append(len(frames))
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            raise RuntimeError("engine broke on purpose")
        if self.delay_s:
            time.sleep(self.delay_s)
        return frames


class SlowDetector:
    """A Detector that takes ``delay_s`` per batch and calls every packet benign."""

    name = "slow-test"
    classes = ("benign", "attack")

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def learn_many(self, data: TrainingData) -> None:
        pass

    def predict_many(self, batch: FeatureBatch) -> Verdicts:
        time.sleep(self.delay_s)
        n = len(batch)
        return Verdicts(np.zeros(n, np.float32), np.zeros(n, np.int16), self.classes)

    def reset(self) -> None:
        pass


def test_slow_detector_is_a_detector():
    assert isinstance(SlowDetector(0.0), Detector)


def test_queued_batches_are_coalesced_up_to_the_size_limit():
    queue = FrameQueue(max_batches=64, max_packets=100_000)
    for k in range(10):
        assert queue.put(synthetic_batch(100, start=k))
    engine, seen = CountingEngine(), []
    worker = InferenceWorker(engine, queue, [seen.append], max_batch_packets=500, max_wait_s=0.05)
    worker.start()
    assert wait_for(lambda: worker.counters().classified == 1000)
    worker.stop()
    assert engine.calls == [500, 500]  # two engine calls, not ten, never one per packet
    c = worker.counters()
    assert (c.received, c.received_batches, c.batches, c.sink_errors) == (1000, 10, 2, 0)
    joined = np.concatenate([b.ts for b in seen])
    expected = np.concatenate([synthetic_batch(100, start=k).ts for k in range(10)])
    assert np.array_equal(joined, expected)  # order kept across coalescing


def test_a_lone_batch_is_processed_after_the_wait_limit():
    queue = FrameQueue()
    engine = CountingEngine()
    worker = InferenceWorker(engine, queue, max_batch_packets=10_000, max_wait_s=0.01).start()
    queue.put(synthetic_batch(3))
    assert wait_for(lambda: worker.counters().classified == 3)
    worker.stop()
    assert engine.calls == [3]


def test_wait_limit_is_capped():
    with pytest.raises(ValueError):
        InferenceWorker(CountingEngine(), FrameQueue(), max_wait_s=0.2)


def test_a_failing_sink_is_counted_and_the_others_still_run():
    queue = FrameQueue()
    good: list[int] = []

    def broken(batch):
        raise ValueError("sink broke on purpose")

    worker = InferenceWorker(
        CountingEngine(), queue, [broken, lambda b: good.append(len(b))], max_wait_s=0.0
    ).start()
    for k in range(5):
        queue.put(synthetic_batch(10, start=k))
        assert wait_for(lambda k=k: worker.counters().classified == 10 * (k + 1))
    worker.stop()
    c = worker.counters()
    assert c.sink_errors == c.batches >= 1
    assert sum(good) == 50
    assert "sink broke on purpose" in c.last_error
    assert not worker.running


def test_an_engine_failure_loses_that_batch_only():
    queue = FrameQueue()
    worker = InferenceWorker(CountingEngine(fail_on=1), queue, max_wait_s=0.0).start()
    queue.put(synthetic_batch(7))
    assert wait_for(lambda: worker.counters().engine_errors == 1)
    queue.put(synthetic_batch(5, start=1))
    assert wait_for(lambda: worker.counters().classified == 5)
    worker.stop()
    c = worker.counters()
    assert (c.engine_dropped, c.classified, c.received) == (7, 5, 12)


def test_stop_drains_everything_still_queued():
    queue = FrameQueue(max_batches=1000, max_packets=1_000_000)
    for k in range(50):
        queue.put(synthetic_batch(200, start=k))
    worker = InferenceWorker(CountingEngine(delay_s=0.001), queue, max_batch_packets=1000)
    worker.start()
    assert worker.stop(timeout=60)
    assert worker.counters().classified == 50 * 200
    assert len(queue) == 0


def test_real_engine_through_the_worker_matches_one_pass(data_dir):
    path = str(data_dir / "zeek" / "wikipedia.pcap")
    whole = FrameBatch.concat(list(read_capture(path)))
    devices = [Device(mac="00:13:7f:4f:8e:f2")]
    direct = Engine(devices).process(whole)
    queue, out = FrameQueue(), []
    for a in range(0, len(whole), 16):
        idx = np.arange(a, min(a + 16, len(whole)))
        queue.put(whole.take(idx))
    worker = InferenceWorker(Engine(devices), queue, [out.append], max_batch_packets=48).start()
    assert worker.stop(timeout=60)
    got_src = np.concatenate([b.src_device for b in out])
    got_dst = np.concatenate([b.dst_device for b in out])
    assert np.array_equal(got_src, direct.src_device)
    assert np.array_equal(got_dst, direct.dst_device)
    assert (got_src == 0).sum() > 0
    assert np.all(np.concatenate([b.is_bad for b in out]) == -1)  # no model: unclassified


def test_overload_keeps_the_queue_bounded_and_counts_the_drops():
    """A producer far faster than a slow detector: the queue stays within its bound, the
    memory held does not grow with the traffic, and every packet is either processed or
    reported dropped."""
    max_packets, per_batch, sent_batches = 4096, 256, 800
    queue = FrameQueue(max_batches=16, max_packets=max_packets)
    engine = Engine([Device(ip="10.0.0.1")], SlowDetector(delay_s=0.05))
    worker = InferenceWorker(engine, queue, max_batch_packets=1024, max_wait_s=0.0).start()
    template = synthetic_batch(per_batch, size=1000)
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    accepted = 0
    for k in range(sent_batches):
        b = FrameBatch(template.data.copy(), template.offsets, template.ts + k, template.wire_len,
                       template.linktype)
        accepted += queue.put(b)
        if k % 50 == 0:
            time.sleep(0.001)  # give the worker a chance to take some
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    queue.close()
    assert worker.stop(timeout=120)
    q, w = queue.counters(), worker.counters()
    sent = sent_batches * per_batch
    assert q.peak_packets <= max_packets
    assert q.dropped_packets > sent // 2  # the detector could not keep up: most were dropped
    assert q.enqueued_packets + q.dropped_packets == sent
    assert w.received == q.enqueued_packets == w.classified
    total_bytes = sent * 1000
    assert peak - base < total_bytes / 8  # far less than what went through (~205 MB)


class HeldQueue:
    """Hands out one batch, then holds the worker's next ``get`` (its coalescing wait) until
    released: the moment a batch has left the queue but is not processed yet."""

    def __init__(self, batch: FrameBatch) -> None:
        import threading

        self.batch, self.finished = batch, False
        self.waiting, self.release = threading.Event(), threading.Event()

    def get(self, timeout: float | None = None) -> FrameBatch | None:
        if self.batch is not None:
            batch, self.batch = self.batch, None
            return batch
        self.waiting.set()
        self.release.wait(30)
        self.finished = True
        return None


def test_a_batch_counts_as_received_as_soon_as_it_leaves_the_queue():
    """Otherwise 'queue empty and received == classified' (a replay's end) would hold while a
    batch waits in the worker for company, and its verdicts would be missed."""
    q = HeldQueue(synthetic_batch(7))
    worker = InferenceWorker(CountingEngine(), q, [], max_wait_s=0.05)
    worker.start()
    try:
        assert q.waiting.wait(30)
        c = worker.counters()
        assert (c.received, c.classified) == (7, 0)
    finally:
        q.release.set()
        worker.stop()
    c = worker.counters()
    assert (c.received, c.classified) == (7, 7)

"""Retention and the bounded submit queue."""

from __future__ import annotations

import sqlite3
import threading

import numpy as np

from jixiaoan.engine.batch import Device
from jixiaoan.storage.synthetic import synthetic_batch
from jixiaoan.storage.writer import PacketStore

DEVS = [
    Device(mac="aa:00:00:00:00:01", ip="10.0.0.1"),
    Device(mac="aa:00:00:00:00:02", ip="10.0.0.2"),
]


def count_by_scan(path, table: str) -> tuple[int, int, int]:
    """(total, malicious, unclassified) counted from the table itself."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            f'SELECT count(*), coalesce(sum("IsBad" = 1), 0), coalesce(sum("IsBad" IS NULL), 0)'
            f' FROM "{table}"'
        ).fetchone()
    finally:
        conn.close()


def test_retention_by_rows_keeps_the_newest(tmp_path):
    rng = np.random.default_rng(4)
    with PacketStore(tmp_path / "s.db", retention_rows=150, retention_interval_s=3600) as s:
        for k in range(4):
            s.submit(synthetic_batch(100, DEVS, 100.0 + k, rng, src=np.zeros(100), dt=0.001))
        s.submit(synthetic_batch(30, DEVS, 200.0, rng, src=np.ones(30), dt=0.001))
        s.flush(10)
        t0, t1 = s.register_device(DEVS[0]), s.register_device(DEVS[1])
        assert s.reader.counts(t0)[0] == 400  # retention does not run inside inserts
        deleted = s.run_retention()
        assert deleted == 250
        rows = s.reader.latest(t0, 1000)
        assert len(rows) == 150
        assert [x.index for x in rows] == list(range(251, 401))
        assert rows[0].time == np.float64(102.0) + 0.001 * 50
        assert s.reader.counts(t0) == count_by_scan(s.path, t0)
        assert s.reader.counts(t0)[0] == 150
        assert s.reader.counts(t1)[0] == 30  # below the limit: untouched
        assert s.counters().retention_deleted == 250
        # indices keep increasing after deletions
        s.submit(synthetic_batch(10, DEVS, 300.0, rng, src=np.zeros(10)))
        s.flush(10)
        assert s.reader.latest(t0, 1)[0].index == 410


def test_retention_by_age(tmp_path):
    rng = np.random.default_rng(5)
    with PacketStore(
        tmp_path / "s.db", retention_rows=None, retention_age_s=60.0, retention_interval_s=3600
    ) as s:
        for k in range(5):
            s.submit(synthetic_batch(10, DEVS, 1000.0 + 30 * k, rng, src=np.zeros(10)))
        s.flush(10)
        t0 = s.register_device(DEVS[0])
        assert s.run_retention(now=1115.0) == 20  # Time < 1055 goes: batches at 1000, 1030
        assert min(x.time for x in s.reader.latest(t0, 100)) == 1060.0
        assert (
            s.reader.counts(t0) == count_by_scan(s.path, t0) == (30, *count_by_scan(s.path, t0)[1:])
        )


def test_scheduled_retention_runs_by_itself(tmp_path):
    rng = np.random.default_rng(6)
    with PacketStore(tmp_path / "s.db", retention_rows=5, retention_interval_s=0.05) as s:
        s.submit(synthetic_batch(50, DEVS, 10.0, rng, src=np.zeros(50)))
        s.flush(10)
        t0 = s.register_device(DEVS[0])
        done = threading.Event()
        for _ in range(200):
            if s.reader.counts(t0)[0] == 5:
                done.set()
                break
            done.wait(0.05)
        assert done.is_set()


def test_full_queue_drops_and_counts_instead_of_blocking(tmp_path):
    rng = np.random.default_rng(7)
    entered, release = threading.Event(), threading.Event()

    def stall(max_ts: float, wall: float, rows: int) -> None:
        entered.set()
        release.wait(30)

    batches = [synthetic_batch(10, DEVS, 100.0 + k, rng) for k in range(12)]
    s = PacketStore(tmp_path / "s.db", queue_batches=4, on_commit=stall, retention_interval_s=3600)
    try:
        assert s.submit(batches[0])
        assert entered.wait(10)  # the writer is now stuck in the callback
        accepted = [s.submit(b) for b in batches[1:]]  # would hang here if submit blocked
        n_ok = sum(accepted)
        # 4 wait in the queue; up to 2 converted chunks may also have left it meanwhile
        assert accepted == [True] * n_ok + [False] * (11 - n_ok)
        assert 4 <= n_ok <= 4 + PacketStore.PREPARED_CHUNKS
        c = s.counters()
        assert (c.batches_dropped, c.packets_dropped) == (11 - n_ok, 10 * (11 - n_ok))
        assert c.queued_batches == 4
    finally:
        release.set()
    assert s.flush(10)
    c = s.counters()
    assert (c.batches_stored, c.rows_stored) == (1 + n_ok, 10 * (1 + n_ok))
    s.close()
    assert not s.submit(batches[0])  # closed: dropped and counted
    assert s.counters().batches_dropped == 12 - n_ok


def test_malformed_batch_is_counted_and_skipped_whole(tmp_path):
    rng = np.random.default_rng(10)
    good1 = synthetic_batch(20, DEVS, 1.0, rng)
    bad = synthetic_batch(20, DEVS, 2.0, rng)
    bad.src_device = bad.src_device[:5]  # arrays of different lengths
    good2 = synthetic_batch(20, DEVS, 3.0, rng)
    with PacketStore(tmp_path / "s.db", retention_interval_s=3600) as s:
        for b in (good1, bad, good2):
            assert s.submit(b)
        assert s.flush(10)
        c = s.counters()
        assert (c.write_errors, c.batches_stored, c.rows_stored) == (1, 2, 40)
        assert "lengths" in c.last_error
        times = [x.time for t in map(s.register_device, DEVS) for x in s.reader.latest(t, 100)]
        assert len(times) == 40 and not any(2.0 <= t < 3.0 for t in times)


def test_blocking_store_waits_for_room_and_loses_nothing(tmp_path):
    rng = np.random.default_rng(11)
    entered, release = threading.Event(), threading.Event()

    def stall(max_ts: float, wall: float, rows: int) -> None:
        entered.set()
        release.wait(30)

    batches = [synthetic_batch(10, DEVS, 100.0 + k, rng) for k in range(12)]
    s = PacketStore(tmp_path / "s.db", queue_batches=2, blocking=True, on_commit=stall)
    try:
        assert s.submit(batches[0])
        assert entered.wait(10)
        results: list[bool] = []
        feeder = threading.Thread(target=lambda: results.extend(map(s.submit, batches[1:])))
        feeder.start()
        feeder.join(0.5)
        assert feeder.is_alive()  # the writer is stalled, so the feeder must be waiting
        assert s.counters().batches_dropped == 0
    finally:
        release.set()
    feeder.join(30)
    assert results == [True] * 11
    assert s.flush(10)
    c = s.counters()
    assert (c.batches_stored, c.rows_stored, c.batches_dropped) == (12, 120, 0)
    s.close()

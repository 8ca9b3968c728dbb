"""Crash safety (SIGKILL of a writing process) and readers running beside the writer."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import jixiaoan
from jixiaoan.engine.batch import Device
from jixiaoan.storage.synthetic import synthetic_batch
from jixiaoan.storage.writer import PacketStore

DEVS = [
    Device(mac="aa:00:00:00:00:01", ip="10.0.0.1"),
    Device(mac="aa:00:00:00:00:02", ip="10.0.0.2"),
]

# Batch k: packets at k + i * 1e-5; packet i goes from device i % 2 to the other device when
# i % 5 == 0 (stored in both tables), else to the outside.
CHILD = r"""
import sys, time
import numpy as np
from jixiaoan.engine.batch import Device
from jixiaoan.storage.synthetic import synthetic_batch
from jixiaoan.storage.writer import PacketStore

DEVS = [
    Device(mac="aa:00:00:00:00:01", ip="10.0.0.1"),
    Device(mac="aa:00:00:00:00:02", ip="10.0.0.2"),
]

def shape(k):
    n = 20 + k % 30
    i = np.arange(n)
    src = i % 2
    return n, src, np.where(i % 5 == 0, 1 - src, -1)

def on_commit(max_ts, wall, rows):
    print(f"committed {max_ts!r} {rows}", flush=True)

store = PacketStore(sys.argv[1], retention_rows=None, queue_batches=16, on_commit=on_commit)
rng = np.random.default_rng(0)
k = 0
while True:
    n, src, dst = shape(k)
    batch = synthetic_batch(n, DEVS, float(k), rng, src=src, dst=dst, dt=1e-5)
    if not store.submit(batch):
        print(f"dropped {k}", flush=True)
    k += 1
    time.sleep(0.001)
"""


def expected_rows(k: int) -> int:
    n = 20 + k % 30
    return n + len(range(0, n, 5))


def test_sigkill_mid_stream_keeps_every_committed_batch_whole(tmp_path):
    path = tmp_path / "crash.db"
    env = dict(os.environ, PYTHONPATH=str(Path(jixiaoan.__file__).resolve().parents[1]))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    lines: list[str] = []
    try:
        assert child.stdout is not None
        while sum(line.startswith("committed") for line in lines) < 30:
            line = child.stdout.readline()
            assert line, f"child ended early (rc={child.poll()})"
            lines.append(line)
        os.kill(child.pid, signal.SIGKILL)
        lines += child.stdout.read().splitlines()
    finally:
        child.kill()
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    committed = [float(x.split()[1]) for x in lines if x.startswith("committed")]
    dropped = {int(x.split()[1]) for x in lines if x.startswith("dropped")}
    last = math.floor(max(committed))

    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = [r[0] for r in conn.execute("SELECT table_name FROM devices ORDER BY id")]
        assert len(tables) == 2
        per_batch: dict[int, int] = {}
        for table in tables:
            for k, count in conn.execute(
                f'SELECT CAST("Time" AS INTEGER), count(*) FROM "{table}" GROUP BY 1'
            ):
                per_batch[k] = per_batch.get(k, 0) + count
            # the device counters were committed in the same transactions as the rows
            counters = conn.execute(
                "SELECT rows_total, rows_malicious, rows_unclassified FROM devices"
                " WHERE table_name = ?",
                (table,),
            ).fetchone()
            scanned = conn.execute(
                'SELECT count(*), coalesce(sum("IsBad" = 1), 0), coalesce(sum("IsBad" IS NULL), 0)'
                f' FROM "{table}"'
            ).fetchone()
            assert counters == scanned
    finally:
        conn.close()
    for k in range(last + 1):  # everything reported committed is there
        if k not in dropped:
            assert per_batch.get(k) == expected_rows(k), f"batch {k} lost"
    for k, count in per_batch.items():  # and nothing is there in part
        assert count == expected_rows(k), f"batch {k} partial: {count} rows"
    # the store opens again and keeps appending
    with PacketStore(path, retention_rows=None) as s:
        s.submit(synthetic_batch(5, DEVS, 1e6, np.random.default_rng(1), src=np.zeros(5)))
        assert s.flush(10)
        assert s.counters().rows_stored == 5


def test_reader_threads_see_consistent_snapshots_while_writing(tmp_path):
    rng = np.random.default_rng(8)
    batches = [synthetic_batch(200, DEVS, 10.0 + k, rng) for k in range(60)]
    errors: list[BaseException] = []
    seen_max = [0]
    with PacketStore(tmp_path / "s.db", queue_batches=1000, retention_rows=None) as s:
        table = s.register_device(DEVS[0])
        stop = threading.Event()

        def read_loop() -> None:
            last_index, last_total = 0, 0
            try:
                while not stop.is_set():
                    rows = s.reader.latest(table, 50)
                    idx = [x.index for x in rows]
                    assert idx == list(range(idx[0], idx[0] + len(idx))) if idx else True
                    if idx:
                        assert idx[-1] >= last_index
                        last_index = idx[-1]
                    total = s.reader.counts(table)[0]
                    assert total >= last_total and total >= last_index
                    last_total = total
                seen_max[0] = last_index
            except BaseException as exc:  # noqa: BLE001 - reported by the test thread
                errors.append(exc)

        readers = [threading.Thread(target=read_loop) for _ in range(2)]
        for t in readers:
            t.start()
        for b in batches:
            assert s.submit(b)
        assert s.flush(60)
        stop.set()
        for t in readers:
            t.join(30)
        assert not errors, errors
        total = s.reader.counts(table)[0]
        expected = sum(int((b.src_device == 0).sum()) for b in batches)
        assert total == expected
        assert s.counters().rows_stored == sum(len(b) for b in batches)


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_batches(tmp_path, n):
    with PacketStore(tmp_path / "s.db") as s:
        s.submit(synthetic_batch(n, DEVS, 1.0, np.random.default_rng(9)))
        assert s.flush(10)
        c = s.counters()
        assert (c.rows_stored, c.batches_stored, c.write_errors) == (n, 1, 0)

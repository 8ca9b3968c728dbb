"""Row indices only ever grow, even when retention by age has removed everything old."""

from __future__ import annotations

import numpy as np

from jixiaoan.engine.batch import Device
from jixiaoan.storage.store import PacketStore
from jixiaoan.storage.synthetic import synthetic_batch

CAMERA = Device(mac="02:00:00:00:00:0a", ip="192.168.137.10", name="camera")


def test_age_retention_keeps_the_newest_row_so_cursors_stay_valid(tmp_path):
    store = PacketStore(tmp_path / "r.db", retention_rows=None, retention_age_s=60.0,
                        retention_interval_s=3600.0, blocking=True)
    try:
        table = store.register_device(CAMERA)
        store.submit(synthetic_batch(50, [CAMERA], 1000.0, np.random.default_rng(1)))
        store.flush()
        last = store.reader.latest(table, 1)[-1].index
        assert last == 50
        # an hour later every row is past the age limit: all but the newest go
        assert store.run_retention(now=1000.0 + 3600) == 49
        assert [r.index for r in store.reader.latest(table, 100)] == [50]
        store.submit(synthetic_batch(5, [CAMERA], 5000.0, np.random.default_rng(2)))
        store.flush()
        new = store.reader.since(table, last)
        assert [r.index for r in new] == [51, 52, 53, 54, 55]  # no restart at 1
        assert store.reader.counts(table)[0] == 6
    finally:
        store.close()


def test_row_retention_of_zero_still_keeps_one_row(tmp_path):
    store = PacketStore(tmp_path / "z.db", retention_rows=0, retention_interval_s=3600.0,
                        blocking=True)
    try:
        table = store.register_device(CAMERA)
        store.submit(synthetic_batch(10, [CAMERA], 1000.0, np.random.default_rng(3)))
        store.flush()
        store.run_retention(now=1001.0)
        assert [r.index for r in store.reader.latest(table, 100)] == [10]
    finally:
        store.close()

"""ProcessStore: the packet store in a child process behaves like the in-process one."""

from __future__ import annotations

import numpy as np
import pytest

from jixiaoan.capture.batch import FrameBatch
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.engine.batch import Device
from jixiaoan.engine.pipeline import Engine
from jixiaoan.runtime.store_process import ProcessStore
from jixiaoan.storage.store import PacketStore, StoreError, StoreReader
from tests.test_runtime_live import DATA

ROUTER = Device(mac="00:13:7f:4f:8e:f2", name="router")
DELL = Device(mac="f0:4d:a2:47:ba:25")


@pytest.fixture(scope="module")
def batches():
    frames = FrameBatch.concat(list(read_capture(str(DATA / "zeek" / "wikipedia.pcap"))))
    engine = Engine([ROUTER, DELL])
    return [engine.process(frames.take(np.arange(a, min(a + 20, len(frames)))))
            for a in range(0, len(frames), 20)]


def table_counts(path) -> dict[str, int]:
    reader = StoreReader(path)
    try:
        return {d.mac: reader.counts(d.table_name)[0] for d in reader.devices()}
    finally:
        reader.close()


def test_same_rows_as_the_in_process_store(tmp_path, batches):
    commits = []
    ps = ProcessStore(tmp_path / "p.db", on_commit=lambda *a: commits.append(a))
    plain = PacketStore(tmp_path / "t.db")
    try:
        for store in (ps, plain):
            assert store.register_device(ROUTER) == store.register_device(ROUTER)
            store.register_device(DELL)
            for b in batches:
                assert store.submit(b)
            assert store.flush(60)
        c = ps.counters()
        assert c.rows_stored == plain.counters().rows_stored > 0
        assert c.batches_stored == len(batches) and c.packets_dropped == 0
        assert sum(rows for _, _, rows in commits) == c.rows_stored
        newest = max(float(b.headers.ts.max()) for b in batches)
        assert max(ts for ts, _, _ in commits) <= newest
    finally:
        ps.close()
        plain.close()
    assert table_counts(tmp_path / "p.db") == table_counts(tmp_path / "t.db")


def test_too_much_in_flight_is_dropped_and_counted(tmp_path, batches):
    ps = ProcessStore(tmp_path / "d.db", max_inflight_batches=1)
    try:
        ps.register_device(ROUTER)
        results = [ps.submit(b) for b in batches]  # far faster than the child takes them
        assert results[0] and not all(results)
        assert ps.flush(60)
        c = ps.counters()
        refused = [b for b, ok in zip(batches, results) if not ok]
        assert c.batches_dropped == len(refused)
        assert c.packets_dropped == sum(len(b) for b in refused)
        assert c.batches_stored == sum(results)
    finally:
        ps.close()


def test_closed_store_drops_and_refuses_calls(tmp_path, batches):
    ps = ProcessStore(tmp_path / "c.db")
    ps.close()
    ps.close()  # idempotent
    assert not ps.submit(batches[0])
    assert ps.counters().batches_dropped == 1
    with pytest.raises((StoreError, TimeoutError)):
        ps.register_device(ROUTER, timeout=2)


def test_a_store_that_cannot_open_raises(tmp_path):
    with pytest.raises(StoreError):
        ProcessStore(tmp_path / "no-such-dir" / "x.db")

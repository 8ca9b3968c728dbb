"""The all-malicious view never loses malicious packets when a device table outruns a tick."""

from __future__ import annotations

import numpy as np

from jixiaoan.engine.batch import Device
from jixiaoan.storage.store import PacketStore
from jixiaoan.storage.synthetic import synthetic_batch
from jixiaoan.ui.poller import StorePoller

DEVICE = Device(mac="02:00:00:00:00:01", ip="192.168.137.10", name="camera")


def _write(store: PacketStore, n: int, t0: float, bad_at: list[int]) -> None:
    batch = synthetic_batch(n, [DEVICE], t0, np.random.default_rng(0))
    batch.is_bad[:] = 0
    batch.is_bad[bad_at] = 1
    store.submit(batch)
    store.flush()


def test_malicious_rows_in_a_skipped_stretch_still_reach_the_poll(tmp_path, qapp):
    db = tmp_path / "gap.db"
    store = PacketStore(db, retention_rows=None, blocking=True)
    store.register_device(DEVICE)
    try:
        _write(store, 5, 100.0, [])
        poller = StorePoller(db, window=10)
        first = poller.poll_once().tables[0]
        assert len(first.rows) == 5 and first.malicious == []
        # 100 new rows: far more than the window of 10; malicious ones early in the stretch
        _write(store, 100, 200.0, [3, 40, 95])
        tick = poller.poll_once().tables[0]
        assert tick.reset and tick.skipped == 90 and len(tick.rows) == 10
        assert [r.index for r in tick.malicious] == [5 + 4, 5 + 41, 5 + 96]
        assert all(r.is_bad == 1 for r in tick.malicious)
    finally:
        store.close()


def test_a_table_off_screen_gives_only_its_malicious_rows(tmp_path, qapp):
    """Off screen: no rows fetched, only the new malicious ones (newest window of them);
    back on screen: the newest window of rows, replacing what the view held."""
    db = tmp_path / "hidden.db"
    store = PacketStore(db, retention_rows=None, blocking=True)
    store.register_device(DEVICE)
    try:
        _write(store, 30, 100.0, [2, 29])
        poller = StorePoller(db, window=10, shown=set())
        first = poller.poll_once()
        tick = first.tables[0]
        assert tick.rows == [] and not tick.reset
        assert [r.index for r in tick.malicious] == [30]  # only the newest window is looked at
        assert [row.index for _label, _table, row in first.malicious] == [30]
        _write(store, 40, 200.0, list(range(0, 40, 3)))
        tick = poller.poll_once().tables[0]
        assert tick.rows == []
        assert [r.index for r in tick.malicious] == [31 + i for i in range(12, 40, 3)]
        assert poller.poll_once().tables[0].malicious == []  # nothing new: nothing again
        poller.show_tables([tick.device.table_name])
        shown = poller.poll_once().tables[0]
        assert shown.reset and [r.index for r in shown.rows] == list(range(61, 71))
        poller.show_tables([])
        _write(store, 3, 300.0, [1])
        assert [r.index for r in poller.poll_once().tables[0].malicious] == [72]
    finally:
        store.close()


def test_closing_the_poller_does_not_wait_for_a_slow_read(tmp_path, qtbot):
    import threading
    import time

    from jixiaoan.ui import poller as poller_module

    db = tmp_path / "slow.db"
    PacketStore(db).close()
    reading, release = threading.Event(), threading.Event()
    results = []
    worker = poller_module.PollerThread(db, window=10, interval_ms=10)
    original = worker.poller.poll_once

    def slow_poll():
        reading.set()
        release.wait(10)  # a read blocked by a busy store
        return original()

    worker.poller.poll_once = slow_poll
    worker.poller.polled.connect(results.append)
    assert reading.wait(10)
    t0 = time.perf_counter()
    worker.close(wait=False)
    assert time.perf_counter() - t0 < 0.5  # the GUI thread is not held
    assert worker in poller_module._RETIRED and worker.running
    del worker  # as the window does: the retired set keeps the thread object alive
    release.set()
    qtbot.waitUntil(lambda: poller_module.sweep_retired() == 0, timeout=10_000)
    assert len(results) <= 1  # the read in progress ends; no new tick starts


def test_a_poller_on_its_qthread_keeps_one_connection(tmp_path, qtbot):
    from jixiaoan.ui.poller import PollerThread

    db = tmp_path / "one.db"
    store = PacketStore(db, retention_rows=None, blocking=True)
    store.register_device(DEVICE)
    results = []
    worker = PollerThread(db, window=10, interval_ms=5)
    worker.poller.polled.connect(lambda r: (results.append(r), worker.poller.taken()))
    try:
        for k in range(10):  # the store grows while the poller ticks
            _write(store, 20, 100.0 + k, [])
            qtbot.wait(30)
        qtbot.waitUntil(lambda: len(results) >= 30, timeout=10_000)
        assert all(not r.error for r in results)
        # one connection for all those ticks: a thread Python did not start may enter with a
        # new thread state each time, so thread-local connections would pile up
        assert worker.poller._reader.connections == 1
    finally:
        worker.close()
        store.close()

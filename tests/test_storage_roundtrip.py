"""Round trip of classified batches through the packet store and the read API."""

from __future__ import annotations

import numpy as np
import pytest

from jixiaoan.capture.batch import FrameBatch
from jixiaoan.engine.batch import Device
from jixiaoan.storage.reader import StoreReader
from jixiaoan.storage.schema import SCHEMA_VERSION, StoreError
from jixiaoan.storage.synthetic import synthetic_batch
from jixiaoan.storage.writer import PacketStore

CAM = Device(mac="AA:BB:CC:00:00:01", ip="192.168.1.10", name="cam", vendor="Acme")
PLUG = Device(mac="aa:bb:cc:00:00:02", ip="", name="plug")  # no IP: addresses shown as MAC


def explicit_batch(classified: bool, t0: float = 1000.0):
    """Six packets: cam->out, plug->out, cam->plug, plug->cam, out->out, cam->cam, with frames
    built by FrameBatch.from_frames so their bytes are known."""
    src = np.array([0, 1, 0, 1, -1, 0])
    dst = np.array([-1, -1, 1, 0, -1, 0])
    rng = np.random.default_rng(1)
    batch = synthetic_batch(6, [CAM, PLUG], t0, rng, src=src, dst=dst, classified=classified)
    frames = [bytes([i]) * (60 + 100 * i) + b"\x00'\"end" for i in range(6)]
    batch.frames = FrameBatch.from_frames(frames, batch.headers.ts)
    batch.headers.length[:] = [len(f) for f in frames]
    return batch, frames


@pytest.fixture
def store(tmp_path):
    s = PacketStore(tmp_path / "store.db", retention_interval_s=3600)
    yield s
    s.close()


def test_batch_lands_in_both_device_tables(store):
    batch, frames = explicit_batch(classified=True)
    assert store.submit(batch)
    assert store.flush(10)
    cam, plug = store.register_device(CAM), store.register_device(PLUG)
    assert cam != plug
    r = store.reader
    cam_rows, plug_rows = r.latest(cam, 100), r.latest(plug, 100)
    # cam: packets 0, 2, 3, 5 (once, although it is both ends); plug: 1, 2, 3
    assert [round(x.time - 1000.0, 4) for x in cam_rows] == [0.0, 0.0002, 0.0003, 0.0005]
    assert [round(x.time - 1000.0, 4) for x in plug_rows] == [0.0001, 0.0002, 0.0003]
    assert [x.source for x in cam_rows] == [
        "192.168.1.10",
        "192.168.1.10",
        "aa:bb:cc:00:00:02",
        "192.168.1.10",
    ]
    assert cam_rows[0].dest == "203.0.113.9"
    assert plug_rows[0].source == "aa:bb:cc:00:00:02"
    for x, i in zip(cam_rows, [0, 2, 3, 5]):
        assert x.length == len(frames[i])
        assert x.data is None
        full = r.row(cam, x.index)
        assert full.data == frames[i]
        assert full.is_bad == int(batch.is_bad[i])
        assert full.score == pytest.approx(float(batch.score[i]))
        expected_attack = batch.attack_names[batch.attack[i]] if batch.attack[i] >= 0 else None
        assert full.attack == expected_attack
        assert full.type in ("TCP", "UDP", "ARP")
    c = store.counters()
    assert (c.rows_stored, c.batches_stored, c.batches_dropped) == (7, 1, 0)


def test_unclassified_rows_are_null_and_can_be_set_later(store):
    batch, _ = explicit_batch(classified=False)
    store.submit(batch)
    store.flush(10)
    cam = store.register_device(CAM)
    rows = store.reader.latest(cam, 10)
    assert all(x.is_bad is None and x.score is None and x.attack is None for x in rows)
    assert store.reader.counts(cam) == (4, 0, 4)
    idx = [rows[0].index, rows[1].index, rows[2].index]
    n = store.set_verdicts(
        cam, [*idx, 9999], [1, 0, -1, 1], ["scan", None, None, "x"], [0.9, 0.1, np.nan, 1.0]
    )
    assert n == 3  # 9999 is not a row
    got = {x.index: x for x in store.reader.latest(cam, 10)}
    assert (got[idx[0]].is_bad, got[idx[0]].attack, got[idx[0]].score) == (1, "scan", 0.9)
    assert (got[idx[1]].is_bad, got[idx[1]].attack, got[idx[1]].score) == (0, None, 0.1)
    assert got[idx[2]].is_bad is None and got[idx[2]].score is None
    assert store.reader.counts(cam) == (4, 1, 2)


def test_read_api_since_rates_between_devices(store):
    rng = np.random.default_rng(2)
    for k in range(5):  # 5 batches, one second apart, 100 packets each, all from cam
        store.submit(synthetic_batch(100, [CAM], 2000.0 + k, rng, src=np.zeros(100), dt=0.005))
    store.flush(10)
    r = store.reader
    cam = r.table_for(Device(mac="aa:bb:cc:00:00:01"))
    assert cam == store.register_device(CAM)
    assert r.table_for(Device(ip="192.168.1.10")) == cam
    assert r.counts(cam)[0] == 500
    latest = r.latest(CAM, 30)
    assert len(latest) == 30 and latest == sorted(latest, key=lambda x: x.index)
    after = r.since(cam, latest[0].index, limit=1000)
    assert [x.index for x in after] == [x.index for x in latest[1:]]
    between = list(r.rows_between(cam, 2001.0, 2003.0, with_data=True))
    assert len(between) == 200 and all(2001.0 <= x.time < 2003.0 for x in between)
    assert all(isinstance(x.data, bytes) and len(x.data) == x.length for x in between)
    rates = r.rates(cam, 1.0, now=2004.5)
    assert rates.packets == 100 and rates.packets_per_s == 100.0
    assert rates.total_packets == 500 and rates.total_classified == 500
    window = [x for x in r.rows_between(cam, 2003.5, 2004.5 + 1e-9)]
    assert rates.malicious == sum(x.is_bad == 1 for x in window)
    assert rates.malicious_share == pytest.approx(rates.malicious / 100)
    starts, packets, malicious = r.timeline(cam, 2000.0, 2005.0, 0.5)
    assert len(starts) == 10 and starts[1] == 2000.5
    assert packets.tolist() == [100, 0] * 5  # 100 packets at the start of every second
    scanned = [sum(x.is_bad == 1 for x in r.rows_between(cam, s, s + 0.5)) for s in starts]
    assert malicious.tolist() == scanned
    (info,) = r.devices()
    assert (info.mac, info.ip, info.name, info.vendor) == (
        "aa:bb:cc:00:00:01",
        "192.168.1.10",
        "cam",
        "Acme",
    )
    assert info.first_seen == pytest.approx(2000.0)
    assert info.last_seen == pytest.approx(2004.0 + 99 * 0.005)


def test_reopen_keeps_rows_and_readers_work_after_close(tmp_path):
    (tmp_path / "odd dir #1 ?x=%20").mkdir()
    path = tmp_path / "odd dir #1 ?x=%20" / "s.db"  # the read-only URI must quote all this
    with PacketStore(path, model_name="eset-v1") as s:
        s.submit(explicit_batch(True)[0])
        s.flush(10)
        cam = s.register_device(CAM)
    reader = StoreReader(path)
    assert reader.counts(cam) == (4, reader.counts(cam)[1], 0)
    assert reader.model_name() == "eset-v1"
    reader.close()
    with PacketStore(path) as s:
        s.submit(explicit_batch(True, t0=1001.0)[0])
        s.flush(10)
        assert s.register_device(CAM) == cam
        rows = s.reader.latest(cam, 100)
        assert len(rows) == 8 and [x.index for x in rows] == list(range(1, 9))
        s.set_model_name("eset-v2")
        assert s.reader.model_name() == "eset-v2"
        s.set_meta("model", "eset-v3")  # alias of model_name
        assert s.reader.model_name() == s.reader.meta("model") == "eset-v3"
        assert s.reader.meta("schema_version") == str(SCHEMA_VERSION)
        with pytest.raises(StoreError):
            s.set_meta("schema_version", "0")


def test_unknown_schema_version_and_bad_tables_are_refused(tmp_path):
    import sqlite3

    path = tmp_path / "s.db"
    with PacketStore(path) as s:
        s.register_device(CAM)
        with pytest.raises(StoreError):
            s.reader.latest("devices", 5)
        with pytest.raises(StoreError):
            s.reader.latest('dev_000000000000"; DROP TABLE devices; --', 5)
        with pytest.raises(StoreError):
            s.reader.counts("dev_000000000000")  # right shape, not a device of this store
        with pytest.raises(StoreError):
            s.set_verdicts("meta", [1], [1])
    conn = sqlite3.connect(path)
    conn.execute(
        "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
    )
    conn.commit()
    conn.close()
    with pytest.raises(StoreError):
        PacketStore(path)

"""MonitorSession: options, status accounting under overload, silent devices re-arming, live
device discovery, stop semantics."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from jixiaoan.config import Config
from jixiaoan.engine.batch import Device
from jixiaoan.runtime.latency import LatencyRecorder
from jixiaoan.runtime.options import MonitorOptions, alert_config
from jixiaoan.runtime.session import MonitorSession
from jixiaoan.runtime.status import MonitorStatus
from jixiaoan.storage.store import StoreReader
from tests.netns import veth_namespaces
from tests.test_live_engine import SlowDetector
from tests.test_runtime_live import ATTACK, ATTACKER, DATA, session_for, wait_for

WIKI = DATA / "zeek" / "wikipedia.pcap"


def replay_to_the_end(opts: MonitorOptions) -> MonitorStatus:
    """Run a replay session until its capture is done; its final status."""
    session = MonitorSession(Config(), opts).start()
    try:
        assert session.wait_finished(timeout=120)
        return session.status()
    finally:
        session.stop()


def test_exactly_one_source_is_required(tmp_path):
    db = str(tmp_path / "x.db")
    with pytest.raises(ValueError):
        MonitorSession(Config(), MonitorOptions(db_path=db))
    with pytest.raises(ValueError):
        MonitorSession(Config(), MonitorOptions(iface="lo", replay=str(WIKI), db_path=db))


def test_alert_overrides_apply_to_a_copy_and_cap_the_clear_level():
    cfg = Config()
    out = alert_config(cfg, MonitorOptions(threshold=0.2, min_packets=3, window_s=5.0))
    assert (out.alerts.threshold, out.alerts.min_packets, out.alerts.window_s) == (0.2, 3, 5.0)
    assert out.alerts.clear_threshold == 0.2  # 0.25 saved, capped at the new threshold
    assert cfg.alerts.threshold == 0.5  # the user's settings are untouched
    with pytest.raises(ValueError):
        alert_config(cfg, MonitorOptions(threshold=1.5))


def test_paced_replay_overload_is_bounded_and_every_packet_accounted_for(tmp_path):
    """A detector far slower than the replay: the frame queue stays within its bound and the
    status reports the drops; captured = processed + dropped."""
    opts = MonitorOptions(
        replay=str(WIKI), speed=1000.0, db_path=str(tmp_path / "o.db"), detector=SlowDetector(0.2),
        devices=[Device(mac="00:13:7f:4f:8e:f2")], queue_batches=2, queue_packets=8,
        capture_batch_packets=4, max_batch_packets=4, max_wait_s=0.0,
    )
    status = replay_to_the_end(opts)
    assert status.captured == 136
    assert status.dropped_queue > 0
    assert status.queue_peak <= 8
    assert status.classified + status.dropped_queue == status.captured
    assert status.model == "slow-test"


def test_the_frame_queue_is_bounded_by_packets_and_bytes_more_than_batches(tmp_path):
    """Live batches are small at high rates (a ring block every 5 ms), so the batch bound is
    loose and the packet and byte bounds hold memory; options override the saved setting."""
    opts = MonitorOptions(replay=str(WIKI), db_path=str(tmp_path / "q.db"))
    session = MonitorSession(Config(), opts)
    try:
        q = session.queue
        assert (q.max_batches, q.max_packets, q.max_bytes) == (1024, 262_144, 128 * 1024 * 1024)
    finally:
        session.stop()
    opts = MonitorOptions(replay=str(WIKI), db_path=str(tmp_path / "r.db"), queue_batches=3,
                          queue_bytes=5000)
    session = MonitorSession(Config(), opts)
    try:
        assert (session.queue.max_batches, session.queue.max_bytes) == (3, 5000)
    finally:
        session.stop()


def test_a_silent_device_re_arms_on_the_timer(tmp_path):
    """After the attack the attacker falls silent: the 1 s timer moves the window on, so the
    device re-arms (and a second attack would alert again) without any new packet."""
    session, _ = session_for(
        Config(), tmp_path, replay=str(DATA / ATTACK), speed=0, min_packets=5, window_s=2.0,
        cooldown_s=0.0, devices=[Device(ip=ATTACKER)], tick_s=0.1,
    )
    session.start()
    try:
        assert session.wait_finished(timeout=60)
        monitor = session.alerting.monitor
        assert monitor.alerts_fired == 1
        assert not monitor._armed[0]
        assert wait_for(lambda: bool(monitor._armed[0]), 30)  # no packet arrived meanwhile
        assert session.status().devices[0].window_packets == 0
    finally:
        session.stop()


@pytest.mark.live
@pytest.mark.skipif(shutil.which("tcpreplay") is None, reason="tcpreplay is not installed")
def test_live_capture_without_a_device_list_discovers_the_lan_hosts(tmp_path):
    with veth_namespaces(2) as net:
        session = MonitorSession(
            Config(), MonitorOptions(iface=net.ifaces[0], db_path=str(tmp_path / "d.db"))
        )
        with net.entered(0):
            session.start()
        try:
            for _ in range(3):  # discovery is checked once a second: keep traffic coming
                net.run(1, ["tcpreplay", "-i", net.ifaces[1], "--pps", "200", str(WIKI)])
            assert wait_for(lambda: session.status().classified >= 3 * 136, 30)
            assert len(session.engine.devices) >= 2
        finally:
            session.stop()
    status = session.status()
    assert status.captured == 3 * 136 == status.classified
    found = {d.mac for d in session.engine.devices}
    assert "00:13:7f:4f:8e:f2" in found
    reader = StoreReader(tmp_path / "d.db")
    try:
        tables = {d.mac: reader.counts(d.table_name)[0] for d in reader.devices()}
    finally:
        reader.close()
    assert set(tables) == found
    assert sum(tables.values()) > 0  # packets after discovery were stored
    assert sum(d.total_packets for d in status.devices) > 0


def test_stop_is_idempotent_and_works_before_start(tmp_path):
    opts = MonitorOptions(replay=str(WIKI), db_path=str(tmp_path / "s.db"))
    session = MonitorSession(Config(), opts)
    session.stop()
    session.stop()
    assert not session.status().running


def test_status_line_names_rates_drops_and_devices():
    dev = Device(ip="10.0.0.5", name="camera")
    from jixiaoan.runtime.status import DeviceStatus

    s = MonitorStatus(
        source="iface eth0", model="eset", running=True, finished=False, uptime_s=12,
        captured_pps=1500, classified_pps=1400, dropped_queue=7, alerts_fired=2, mails_sent=1,
        devices=[DeviceStatus(0, dev, 42.0, 420, 0.75, 900, 0.5)],
    )
    line = s.line()
    for part in ("cap 1,500/s", "eng 1,400/s", "q7", "alerts 2", "mail 1 ok", "camera 42/s",
                 "75% bad"):
        assert part in line
    assert s.dropped == 7


def test_latency_percentiles_from_commits():
    rec = LatencyRecorder()

    class Batch:
        def __init__(self, ts, watched):
            self.headers = type("H", (), {"ts": np.asarray(ts)})()
            self.src_device = np.asarray(watched)
            self.dst_device = np.full(len(ts), -1)

    t1 = rec.expect(Batch([100.0, 100.5, 101.0], [0, -1, 0]))  # the middle one is not stored
    rec.expect(Batch([102.0], [1]))
    rec.cancel(t1)  # the store refused the first batch
    rec.committed(102.0, 102.05, 1)
    assert rec.count == 1
    assert 0.049 <= rec.percentile(50) <= 0.0501
    rec.expect(Batch([103.0, 103.2], [0, 0]))
    rec.committed(103.2, 103.3, 2)
    assert rec.count == 3
    assert 0.29 < rec.percentile(99) <= 0.3001


@pytest.mark.parametrize("store_process", [True, False], ids=["store-process", "in-process"])
def test_a_file_replayed_as_fast_as_it_goes_loses_nothing_to_a_slow_store(tmp_path,
                                                                          store_process):
    """Speed 0 is an analysis of a file: when the store falls behind, the replay waits for it
    instead of dropping rows (a paced replay drops like live capture, see above)."""
    from jixiaoan.capture.pcapfile import read_capture
    from jixiaoan.engine.pipeline import Engine

    devices = [Device(mac="00:13:7f:4f:8e:f2"), Device(mac="f0:4d:a2:47:ba:25")]
    engine = Engine(devices)
    expected = {d.mac: 0 for d in devices}
    for frames in read_capture(str(WIKI)):
        batch = engine.process(frames)
        for i, dev in enumerate(devices):
            expected[dev.mac] += int(((batch.src_device == i) | (batch.dst_device == i)).sum())
    assert sum(expected.values()) == 20
    db = str(tmp_path / "f.db")
    opts = MonitorOptions(
        replay=str(WIKI), speed=0.0, db_path=db, store_process=store_process,
        devices=devices, store_queue_batches=1,
        capture_batch_packets=1, max_batch_packets=1, max_wait_s=0.0,
    )
    status = replay_to_the_end(opts)
    assert status.captured == status.classified == 136
    assert status.dropped == 0
    reader = StoreReader(db)
    try:
        assert {d.mac: reader.counts(d.table_name)[0] for d in reader.devices()} == expected
    finally:
        reader.close()

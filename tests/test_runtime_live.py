"""MonitorSession end to end: real captures replayed with tcpreplay over a veth pair between
network namespaces, an oracle detector, the store and the alert stage.

The oracle flags every packet from or to a host that tests/data/labels.csv names as an
attacker, so these tests check the pipeline (capture, attribution, storage, alerts), not a
model.
"""

from __future__ import annotations

import csv
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from jixiaoan.capture.batch import FrameBatch, ip_from_str
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.config import Config
from jixiaoan.engine.batch import Device
from jixiaoan.engine.offline import discover_devices
from jixiaoan.engine.pipeline import Engine
from jixiaoan.features.batch import FeatureBatch
from jixiaoan.model.verdict import Detector, TrainingData, Verdicts
from jixiaoan.runtime.engine_setup import warm_up_frames
from jixiaoan.runtime.options import MonitorOptions
from jixiaoan.runtime.session import MonitorSession
from jixiaoan.storage.store import StoreReader
from tests.netns import veth_namespaces

DATA = Path(__file__).resolve().parent / "data"
ATTACK = "zeek/rfb/vnc-scanner.pcap"
ATTACKER = "192.168.0.11"
VICTIM = "10.0.0.149"  # not watched: every packet of it is to or from the attacker
BENIGN = ["zeek/icmp/5-pings.pcap", "zeek/wikipedia.pcap", "arkime/kafka.pcap"]


def wait_for(condition, limit_s: float = 60.0) -> bool:
    """Poll until ``condition`` holds (a bound on waiting, not a timing assertion)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def attacker_hosts() -> set[str]:
    with open(DATA / "labels.csv", newline="") as fh:
        return {
            h.strip()
            for row in csv.DictReader(fh)
            if row["label"] == "malicious"
            for h in row["hosts"].split(";")
            if h.strip()
        }


class OracleDetector:
    """Flags packets from or to the labelled attacker hosts. It reads the addresses from the
    headers the engine parsed for the same batch (the features are anonymised)."""

    name = "oracle"
    classes = ("benign", "port-scan")

    def __init__(self, hosts: set[str]) -> None:
        self.hosts = np.array([np.frombuffer(ip_from_str(h), np.uint8) for h in hosts])
        self._headers = None
        self.packets = 0

    def bind(self, engine: Engine) -> OracleDetector:
        original = engine.extractor.transform

        def transform(frames, headers):
            self._headers = headers
            return original(frames, headers)

        engine.extractor.transform = transform
        return self

    def learn_many(self, data: TrainingData) -> None:
        pass

    def predict_many(self, batch: FeatureBatch) -> Verdicts:
        h = self._headers
        assert h is not None and len(h) == len(batch)
        hit = np.zeros(len(batch), bool)
        for host in self.hosts:
            hit |= np.all(h.src_ip == host, axis=1) | np.all(h.dst_ip == host, axis=1)
        self.packets += len(batch)
        return Verdicts(hit.astype(np.float32), hit.astype(np.int16), self.classes)

    def reset(self) -> None:
        pass


def test_oracle_is_a_detector():
    assert isinstance(OracleDetector({ATTACKER}), Detector)


def watched_devices() -> list[Device]:
    devices = [Device(ip=ATTACKER, name="attacker")]
    for name in BENIGN:
        found, error = discover_devices(str(DATA / name))
        assert error is None
        devices += [d for d in found if d.ip not in (ATTACKER, VICTIM)]
    return devices


def packet_count(path: Path) -> int:
    return sum(len(b) for b in read_capture(str(path)))


def expected_rows(devices: list[Device], files: list[Path]) -> list[int]:
    """Packets per device (a packet belongs to its source and its destination device)."""
    frames = FrameBatch.concat([b for f in files for b in read_capture(str(f))])
    out = Engine(devices).process(frames)
    return [
        int(((out.src_device == i) | (out.dst_device == i)).sum()) for i in range(len(devices))
    ]


def session_for(cfg: Config, tmp_path: Path, **options) -> tuple[MonitorSession, OracleDetector]:
    oracle = OracleDetector(attacker_hosts())
    opts = MonitorOptions(db_path=str(tmp_path / "live.sqlite3"), detector=oracle, **options)
    session = MonitorSession(cfg, opts)
    oracle.bind(session.engine)
    return session, oracle


@pytest.mark.live
@pytest.mark.skipif(shutil.which("tcpreplay") is None, reason="tcpreplay is not installed")
def test_live_capture_over_veth_fills_tables_and_alerts_only_for_the_attacker(tmp_path):
    files = [DATA / ATTACK, *(DATA / b for b in BENIGN)]
    total = sum(packet_count(f) for f in files)
    devices = watched_devices()
    expected = expected_rows(devices, files)
    assert expected[0] == packet_count(DATA / ATTACK)
    assert sum(1 for e in expected[1:] if e >= 5) >= 2  # benign devices that could alert
    with veth_namespaces(2) as net:
        for i in (0, 1):
            net.run(i, ["ip", "link", "set", net.ifaces[i], "mtu", "9000"])
        session, oracle = session_for(
            Config(), tmp_path, iface=net.ifaces[0], devices=devices, min_packets=5
        )
        alerts = []
        session.add_alert_callback(alerts.append)
        with net.entered(0):
            session.start()
        try:
            res = net.run(1, ["tcpreplay", "-i", net.ifaces[1], "--pps", "2000",
                              *map(str, files)])
            report = res.stdout.decode()
            assert re.search(r"Successful packets:\s+(\d+)", report).group(1) == str(total)
            assert re.search(r"Failed packets:\s+(\d+)", report).group(1) == "0", report
            assert wait_for(lambda: session.status().classified >= total)
        finally:
            session.stop()
    status = session.status()
    assert status.captured == total == status.classified  # every frame sent was captured
    assert status.dropped == 0
    assert oracle.packets == total + len(warm_up_frames())  # each packet classified once
    reader = StoreReader(tmp_path / "live.sqlite3")
    try:
        counts = [reader.counts(reader.table_for(d)) for d in devices]
    finally:
        reader.close()
    stored, bad = [c[0] for c in counts], [c[1] for c in counts]
    assert stored == expected
    assert bad[0] == expected[0] and not any(bad[1:])
    assert [a.device_index for a in alerts] == [0]
    assert alerts[0].device.ip == ATTACKER
    assert status.alerts_fired == 1
    assert status.devices[0].total_share == 1.0

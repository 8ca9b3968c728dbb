"""CSV export of a device's rows over a time range: the writer, the dialog's defaults, the
background job and its error report."""

from __future__ import annotations

import csv

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from jixiaoan.engine.batch import Device  # noqa: E402
from jixiaoan.storage.store import PacketStore, StoreReader  # noqa: E402
from jixiaoan.storage.synthetic import synthetic_batch  # noqa: E402
from jixiaoan.ui.export import CSV_HEADER, ExportDialog, ExportJob, export_csv  # noqa: E402

CAMERA = Device(mac="02:00:00:00:00:01", ip="192.168.137.10", name="camera")
PLUG = Device(mac="02:00:00:00:00:02", ip="192.168.137.11", name="plug")
T0 = 1_764_000_000.25  # 2025-11-24, with a fraction of a second


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "export.db"
    store = PacketStore(path, retention_rows=None, blocking=True)
    for dev in (CAMERA, PLUG):
        store.register_device(dev)
    batch = synthetic_batch(300, [CAMERA, PLUG], T0, np.random.default_rng(1), dt=0.01)
    batch.is_bad[:] = np.arange(300) % 3 == 0
    store.submit(batch)
    store.flush()
    store.close()
    return path


def _devices(db):
    reader = StoreReader(db)
    try:
        return {d.name: d for d in reader.devices()}
    finally:
        reader.close()


def _read(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_export_writes_the_rows_inside_the_range(db, tmp_path):
    cam = _devices(db)["camera"]
    out = tmp_path / "all.csv"
    n = export_csv(db, cam.table_name, 0.0, 2e9, out)
    rows = _read(out)
    assert tuple(rows[0]) == CSV_HEADER
    assert n == len(rows) - 1 == cam.rows_total > 0
    assert {r[7] for r in rows[1:]} == {"0", "1"}
    assert rows[1][2].startswith("2025-11-24T")  # UTC time next to the epoch seconds
    # half-open range: the first second only
    part = tmp_path / "part.csv"
    m = export_csv(db, cam.table_name, T0, T0 + 1.0, part)
    times = [float(r[1]) for r in _read(part)[1:]]
    assert m == len(times) and 0 < m < n
    assert min(times) >= T0 and max(times) < T0 + 1.0


def test_dialog_defaults_cover_the_device_and_export_everything(db, qtbot, tmp_path):
    devices = _devices(db)
    dlg = ExportDialog(list(devices.values()), current=devices["plug"].table_name)
    qtbot.addWidget(dlg)
    table, t0, t1, path = dlg.choice()
    plug = devices["plug"]
    assert table == plug.table_name and path.endswith(".csv")
    assert t0 <= plug.first_seen and t1 > plug.last_seen
    assert export_csv(db, table, t0, t1, tmp_path / "p.csv") == plug.rows_total
    dlg.device_box.setCurrentIndex(dlg.device_box.findData(devices["camera"].table_name))
    assert dlg.choice()[0] == devices["camera"].table_name


def test_job_reports_the_count_or_the_error(db, qtbot, tmp_path):
    cam = _devices(db)["camera"]
    job = ExportJob()
    out = str(tmp_path / "job.csv")
    with qtbot.waitSignal(job.done, timeout=10_000) as done:
        job.run(str(db), cam.table_name, 0.0, 2e9, out)
    assert done.args == [cam.rows_total, out]
    with qtbot.waitSignal(job.failed, timeout=10_000) as failed:
        job.run(str(db), cam.table_name, 0.0, 2e9, str(tmp_path / "missing" / "x.csv"))
    assert failed.args[0].startswith("Export failed:")

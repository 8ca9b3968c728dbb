"""CSV export of one device's rows over a time range (StoreReader.rows_between), off the GUI
thread, and the dialog that asks for device, range and file."""

from __future__ import annotations

import csv
import threading
from datetime import UTC, datetime
from pathlib import Path

from PyQt5.QtCore import QDateTime, QObject, pyqtSignal
from PyQt5.QtWidgets import (
    QComboBox,
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from jixiaoan.storage.store import DeviceInfo, StoreReader

CSV_HEADER = ("index", "time", "time_utc", "source", "destination", "length", "protocol",
              "malicious", "attack", "score")


def export_csv(db_path: str | Path, table: str, t0: float, t1: float, out: str | Path) -> int:
    """Write the rows of ``table`` with ``t0 <= time < t1`` to ``out``; returns the count."""
    reader = StoreReader(db_path)
    n = 0
    try:
        with open(out, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_HEADER)
            for r in reader.rows_between(table, t0, t1):
                when = datetime.fromtimestamp(r.time, UTC).isoformat(timespec="microseconds")
                bad = "" if r.is_bad is None else int(r.is_bad)
                score = "" if r.score is None else f"{r.score:.6f}"
                w.writerow((r.index, f"{r.time:.6f}", when, r.source, r.dest, r.length, r.type,
                            bad, r.attack or "", score))
                n += 1
    finally:
        reader.close()
    return n


class ExportJob(QObject):
    """Runs export_csv on a thread; ``done(count, path)`` or ``failed(message)``."""

    done = pyqtSignal(int, str)
    failed = pyqtSignal(str)

    def run(self, db_path: str, table: str, t0: float, t1: float, out: str) -> None:
        """Start the export in the background."""
        def work() -> None:
            try:
                n = export_csv(db_path, table, t0, t1, out)
            except Exception as exc:  # noqa: BLE001 - shown to the user
                self.failed.emit(f"Export failed: {exc}")
                return
            self.done.emit(n, out)

        threading.Thread(target=work, name="jixiaoan-export", daemon=True).start()


def _qdt(t: float | None) -> QDateTime:
    return QDateTime.fromMSecsSinceEpoch(int((t or 0.0) * 1000))


class ExportDialog(QDialog):
    """Asks for a device, a time range (defaults: its first to last packet) and a CSV file."""

    def __init__(self, devices: list[DeviceInfo], current: str | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export packets to CSV")
        self.devices = devices
        form = QFormLayout(self)
        self.device_box = QComboBox()
        for d in devices:
            self.device_box.addItem(d.name or d.ip or d.mac, d.table_name)
        if current:
            i = self.device_box.findData(current)
            if i >= 0:
                self.device_box.setCurrentIndex(i)
        form.addRow("Device", self.device_box)
        self.start_edit = QDateTimeEdit()
        self.end_edit = QDateTimeEdit()
        for e in (self.start_edit, self.end_edit):
            e.setDisplayFormat("yyyy-MM-dd HH:mm:ss")
            e.setCalendarPopup(True)
        form.addRow("From", self.start_edit)
        form.addRow("To", self.end_edit)
        row = QHBoxLayout()
        self.path_edit = QLineEdit(str(Path.home() / "jixiaoan-export.csv"))
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        form.addRow("File", row)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.device_box.currentIndexChanged.connect(self._range_of_device)
        self._range_of_device()

    def _range_of_device(self) -> None:
        i = self.device_box.currentIndex()
        if 0 <= i < len(self.devices):
            d = self.devices[i]
            self.start_edit.setDateTime(_qdt(d.first_seen))
            self.end_edit.setDateTime(_qdt((d.last_seen or 0.0) + 1.0))

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export to", self.path_edit.text(),
                                              "CSV files (*.csv)")
        if path:
            self.path_edit.setText(path)

    def choice(self) -> tuple[str, float, float, str]:
        """(table, t0, t1, output path) as chosen."""
        t0 = self.start_edit.dateTime().toMSecsSinceEpoch() / 1000.0
        t1 = self.end_edit.dateTime().toMSecsSinceEpoch() / 1000.0
        return str(self.device_box.currentData()), t0, t1, self.path_edit.text()

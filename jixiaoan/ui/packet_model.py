"""Table model of a bounded window of recent packet rows (one device, or all malicious rows)."""

from __future__ import annotations

from datetime import datetime

from PyQt5.QtCore import QAbstractTableModel, QModelIndex, Qt
from PyQt5.QtGui import QBrush, QColor

from jixiaoan.storage.store import PacketRow

COLUMNS = ("Index", "Capture time", "Source", "Destination", "Length", "Protocol", "Malicious",
           "Attack family")
MALICIOUS_BACKGROUND = QColor(255, 190, 190)
MALICIOUS_FOREGROUND = QColor(120, 0, 0)


def format_time(t: float) -> str:
    """Capture time as local ``HH:MM:SS.mmm`` with the date."""
    try:
        return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    except (OverflowError, OSError, ValueError):
        return f"{t:.6f}"


def verdict_text(row: PacketRow) -> str:
    """'yes', 'no', or '-' when the packet was not classified."""
    if row.is_bad is None:
        return "-"
    return "yes" if row.is_bad else "no"


class PacketTableModel(QAbstractTableModel):
    """Holds at most ``capacity`` rows, oldest first; ``append`` trims from the top.

    With ``with_device`` a first column names the device a row belongs to (rows are then
    ``(device label, table name, PacketRow)``; otherwise plain ``PacketRow``)."""

    def __init__(self, capacity: int = 5000, with_device: bool = False, parent=None) -> None:
        super().__init__(parent)
        self.capacity = int(capacity)
        self.with_device = with_device
        self._rows: list = []
        self._bad_brush = QBrush(MALICIOUS_BACKGROUND)
        self._bad_text = QBrush(MALICIOUS_FOREGROUND)
        self.columns = (("Device", *COLUMNS) if with_device else COLUMNS)

    # -- Qt model interface ---------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation, role: int = Qt.DisplayRole):  # noqa: N802
        if role == Qt.DisplayRole and orientation == Qt.Horizontal:
            return self.columns[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.DisplayRole):
        if not index.isValid():
            return None
        entry = self._rows[index.row()]
        row = entry[2] if self.with_device else entry
        col = index.column() - (1 if self.with_device else 0)
        if role == Qt.DisplayRole:
            if col < 0:
                return entry[0]
            return self._text(row, col)
        if role == Qt.BackgroundRole and row.is_bad == 1:
            return self._bad_brush
        if role == Qt.ForegroundRole and row.is_bad == 1:
            return self._bad_text
        if role == Qt.TextAlignmentRole and col in (0, 4):
            return int(Qt.AlignRight | Qt.AlignVCenter)
        if role == Qt.ToolTipRole and row.score is not None and col >= 6:
            return f"score {row.score:.3f}"
        return None

    @staticmethod
    def _text(row: PacketRow, col: int) -> str:
        if col == 0:
            return str(row.index)
        if col == 1:
            return format_time(row.time)
        if col == 2:
            return row.source
        if col == 3:
            return row.dest
        if col == 4:
            return str(row.length)
        if col == 5:
            return row.type
        if col == 6:
            return verdict_text(row)
        return row.attack or ""

    # -- updates ------------------------------------------------------------------------------
    def append(self, rows: list) -> int:
        """Add rows at the bottom, dropping the oldest beyond capacity; returns how many rows
        were removed from the top (the view uses it to keep a paused position)."""
        if not rows:
            return 0
        rows = rows[-self.capacity:]
        removed = max(0, len(self._rows) + len(rows) - self.capacity)
        if removed:
            self.beginRemoveRows(QModelIndex(), 0, removed - 1)
            del self._rows[:removed]
            self.endRemoveRows()
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(rows) - 1)
        self._rows.extend(rows)
        self.endInsertRows()
        return removed

    def replace(self, rows: list) -> None:
        """Show exactly these rows (newest ``capacity`` of them)."""
        self.beginResetModel()
        self._rows = list(rows[-self.capacity:])
        self.endResetModel()

    def clear(self) -> None:
        """Forget every row."""
        self.replace([])

    def row_at(self, i: int) -> PacketRow:
        """The PacketRow shown in row ``i``."""
        entry = self._rows[i]
        return entry[2] if self.with_device else entry

    def table_at(self, i: int) -> str | None:
        """The device table of row ``i`` (only for a model ``with_device``)."""
        return self._rows[i][1] if self.with_device else None

    def malicious_in_view(self) -> int:
        """How many held rows are malicious."""
        return sum(1 for i in range(len(self._rows)) if self.row_at(i).is_bad == 1)

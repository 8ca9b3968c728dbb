"""QTableView for packet rows: follows new rows unless the user scrolled up or selected."""

from __future__ import annotations

from collections.abc import Callable

from PyQt5.QtCore import QModelIndex, Qt
from PyQt5.QtWidgets import QAbstractItemView, QHeaderView, QTableView

from jixiaoan.storage.store import PacketRow
from jixiaoan.ui.packet_model import PacketTableModel

# (table name or None, row) -> the row with its bytes, or None
RowFetcher = Callable[[str | None, PacketRow], PacketRow | None]


class PacketTableView(QTableView):
    """A packet table. ``following`` is True while it sticks to the newest row: scrolling up
    or selecting a row pauses it, scrolling back to the bottom resumes it."""

    def __init__(self, model: PacketTableModel, parent=None) -> None:
        super().__init__(parent)
        self.setModel(model)
        self.packet_model = model
        self.following = True
        self.row_fetcher: RowFetcher | None = None
        self.device_table: str | None = None  # the table of every row (one-device views)
        self.open_dialog: Callable[[PacketRow, str], None] | None = None
        self.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollPerItem)
        self.setWordWrap(False)
        self.setAlternatingRowColors(False)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(20)
        self.verticalHeader().setSectionResizeMode(QHeaderView.Fixed)
        header = self.horizontalHeader()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.Interactive)
        widths = (70, 200, 170, 170, 64, 80, 84, 120)
        offset = 1 if model.with_device else 0
        if offset:
            self.setColumnWidth(0, 140)
        for i, w in enumerate(widths):
            self.setColumnWidth(i + offset, w)
        self._programmatic = False
        self.verticalScrollBar().valueChanged.connect(self._user_scrolled)
        self.doubleClicked.connect(self._show_packet)

    def _user_scrolled(self, value: int) -> None:
        if self._programmatic:
            return
        bar = self.verticalScrollBar()
        self.following = value >= bar.maximum() and not self.selectionModel().hasSelection()

    def selectionChanged(self, selected, deselected) -> None:  # noqa: N802 - Qt override
        super().selectionChanged(selected, deselected)
        if self.selectionModel().hasSelection():
            self.following = False
        else:
            bar = self.verticalScrollBar()
            self.following = bar.value() >= bar.maximum()

    def add_rows(self, rows: list, reset: bool = False) -> None:
        """Put new rows in the model and keep the view where the user wants it."""
        if not rows and not reset:
            return
        bar = self.verticalScrollBar()
        self._programmatic = True
        try:
            if reset:
                self.packet_model.replace(rows)
            else:
                kept_at = bar.value()
                removed = self.packet_model.append(rows)
                if not self.following and removed:
                    bar.setValue(max(0, kept_at - removed))
            if self.following:
                self.scrollToBottom()
        finally:
            self._programmatic = False

    def clear(self) -> None:
        """Empty the table and follow again."""
        self.packet_model.clear()
        self.clearSelection()
        self.following = True

    def _show_packet(self, index: QModelIndex) -> None:
        if not index.isValid():
            return
        row = self.packet_model.row_at(index.row())
        table = self.packet_model.table_at(index.row()) or self.device_table
        full = self.row_fetcher(table, row) if self.row_fetcher else row
        label = ""
        if self.packet_model.with_device:
            label = self.packet_model.data(self.packet_model.index(index.row(), 0), Qt.DisplayRole)
        if self.open_dialog is not None:
            self.open_dialog(full or row, label)

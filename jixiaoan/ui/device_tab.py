"""One watched device's tab: rate labels, packets/s and malicious-share charts, packet table."""

from __future__ import annotations

from collections import deque

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt, QTimer
from PyQt5.QtWidgets import QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget

from jixiaoan.storage.store import DeviceInfo
from jixiaoan.ui.heap import freeze_long_lived
from jixiaoan.ui.packet_model import PacketTableModel
from jixiaoan.ui.packet_view import PacketTableView

pg.setConfigOptions(antialias=False, background="w", foreground="k")

HISTORY_S = 300.0  # seconds of chart history


class RateHistory:
    """Per-tick counter samples of one device, turned into packets/s and malicious share."""

    def __init__(self, window_s: float = 10.0, history_s: float = HISTORY_S) -> None:
        self.window_s = window_s
        self.history_s = history_s
        # (wall, rows_total, rows_malicious, rows_classified)
        self.samples: deque[tuple[float, int, int, int]] = deque()
        self.t0: float | None = None

    def add(self, wall: float, info: DeviceInfo) -> None:
        """Record the counters seen at ``wall``."""
        classified = info.rows_total - info.rows_unclassified
        if self.t0 is None:
            self.t0 = wall
        self.samples.append((wall, info.rows_total, info.rows_malicious, classified))
        while self.samples and wall - self.samples[0][0] > self.history_s + self.window_s:
            self.samples.popleft()

    def clear(self) -> None:
        """Forget the history (the next sample starts the charts again)."""
        self.samples.clear()
        self.t0 = None

    def instant(self) -> tuple[float, float | None]:
        """Packets/s over the last second-ish and malicious share over ``window_s``."""
        if len(self.samples) < 2:
            return 0.0, None
        last = self.samples[-1]
        prev = next((s for s in reversed(self.samples) if last[0] - s[0] >= 0.9), self.samples[0])
        dt = last[0] - prev[0]
        pps = (last[1] - prev[1]) / dt if dt > 0 else 0.0
        old = next((s for s in self.samples if last[0] - s[0] <= self.window_s), self.samples[0])
        dc = last[3] - old[3]
        share = (last[2] - old[2]) / dc if dc > 0 else None
        return max(pps, 0.0), share

    def series(self, share_span_s: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(seconds since start, packets/s per sample interval, malicious share over the last
        ``share_span_s`` seconds or NaN where nothing was classified)."""
        if len(self.samples) < 2 or self.t0 is None:
            empty = np.zeros(0)
            return empty, empty, empty
        a = np.asarray(self.samples, dtype=np.float64)
        t = a[:, 0]
        dt = np.diff(t)
        dt[dt <= 0] = np.nan
        pps = np.clip(np.diff(a[:, 1]) / dt, 0, None)
        back = np.searchsorted(t, t[1:] - share_span_s, side="right") - 1
        back = np.clip(np.minimum(back, np.arange(len(t) - 1)), 0, None)
        dc = a[1:, 3] - a[back, 3]
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(dc > 0, (a[1:, 2] - a[back, 2]) / dc, np.nan)
        return t[1:] - self.t0, np.nan_to_num(pps), share


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 x 10^k at or above ``value`` (with 5 % headroom), at least 10:
    a y range that moves only when the rate changes scale."""
    value = max(float(value) * 1.05, 10.0)
    scale = 10.0 ** np.floor(np.log10(value))
    return float(next(m * scale for m in (1, 2, 5, 10) if m * scale >= value))


def _plot(title: str, y_label: str) -> pg.PlotWidget:
    # fixed ranges (x: the last HISTORY_S seconds, y: set by redraw_charts): pyqtgraph then
    # skips auto-ranging and reuses its drawn axes; recomputing both every second was the
    # longest piece of GUI work while a capture streams in (tens of ms under load)
    w = pg.PlotWidget()
    w.setTitle(title, size="9pt")
    w.setLabel("left", y_label)
    w.setLabel("bottom", "seconds ago")
    w.disableAutoRange()
    w.setXRange(-HISTORY_S, 0, padding=0)
    w.setYRange(0, 10, padding=0)
    w.showGrid(x=True, y=True, alpha=0.3)
    w.setMouseEnabled(x=False, y=False)
    w.setMenuEnabled(False)
    w.hideButtons()
    w.setMinimumHeight(120)
    return w


class DeviceTab(QWidget):
    """Labels, charts and the packet table of one device."""

    def __init__(self, info: DeviceInfo, capacity: int = 5000, window_s: float = 10.0,
                 parent=None) -> None:
        super().__init__(parent)
        self.info = info
        self.history = RateHistory(window_s)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        top = QHBoxLayout()
        self.title = QLabel()
        self.title.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.instant_label = QLabel("now: -")
        self.total_label = QLabel("total: -")
        for lab in (self.instant_label, self.total_label):
            self._style(lab, False)
        top.addWidget(self.title, 1)
        top.addWidget(self.instant_label)
        top.addWidget(self.total_label)
        layout.addLayout(top)
        self.splitter = QSplitter(Qt.Vertical)
        self.model = PacketTableModel(capacity)
        self.view = PacketTableView(self.model)
        self.splitter.addWidget(self.view)
        layout.addWidget(self.splitter)
        self.pps_plot = self.share_plot = None
        self.pps_curve = self.share_curve = None
        self._pending_plots: list[pg.PlotWidget] = []
        self._charts_scheduled = False
        self._pps_top = 10.0
        self.set_info(info)

    def ensure_charts(self) -> None:
        """Build the two charts now (normally done on first show, see ``showEvent``)."""
        while self.pps_plot is None:
            self._build_chart_step()

    def _build_chart_step(self) -> None:
        """One step of building the charts: a plot, or putting both in place. A pyqtgraph
        plot costs 7-15 ms to build, twice that while the monitor keeps both cores busy, so
        each gets an event of its own and the GUI thread never blocks for all of it."""
        if self.pps_plot is not None:
            return
        pending = self._pending_plots
        if len(pending) == 0:
            pending.append(_plot("Packets per second", "pkt/s"))
            return
        if len(pending) == 1:
            share = _plot("Malicious share", "share")
            share.setYRange(0, 1.05, padding=0)  # a share of 1 stays visible
            pending.append(share)
            return
        pps_plot, share_plot = pending
        charts = QWidget()
        row = QHBoxLayout(charts)
        row.setContentsMargins(0, 0, 0, 0)
        self.pps_curve = pps_plot.plot(pen=pg.mkPen((30, 90, 200), width=2))
        self.share_curve = share_plot.plot(pen=pg.mkPen((200, 30, 30), width=2),
                                           connect="finite")
        row.addWidget(pps_plot)
        row.addWidget(share_plot)
        self.splitter.addWidget(charts)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        total = max(self.splitter.height(), 400)
        self.splitter.setSizes([total * 3 // 5, total * 2 // 5])
        self.pps_plot, self.share_plot = pps_plot, share_plot
        self._pending_plots = []
        self.redraw_charts()
        freeze_long_lived()

    def _build_charts_later(self) -> None:
        self._build_chart_step()
        if self.pps_plot is None:
            QTimer.singleShot(0, self._build_charts_later)
        else:
            self._charts_scheduled = False

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self.pps_plot is None and not self._charts_scheduled:
            self._charts_scheduled = True  # in events of their own: the switch stays short
            QTimer.singleShot(0, self._build_charts_later)
        self.refresh_labels()
        super().showEvent(event)

    def _style(self, label: QLabel, alarming: bool) -> None:
        """Red bold text while alarming (the style sheet is only touched on a change:
        re-polishing a widget is slow)."""
        if label.property("alarming") is alarming:
            return
        label.setProperty("alarming", alarming)
        label.setStyleSheet("font-weight: bold; padding: 0 8px;"
                            + (" color: #b00000;" if alarming else ""))

    def set_info(self, info: DeviceInfo) -> None:
        """New counters for the device (labels follow when the tab is shown)."""
        self.info = info
        if self.isVisible():
            self.refresh_labels()

    def refresh_labels(self) -> None:
        """Title, 'now' and 'total' labels from the latest counters."""
        info = self.info
        head = info.name or info.ip or info.mac
        parts = [p for p in (info.ip, info.mac, info.vendor) if p and p != head]
        title = f"<b>{head}</b>  " + "  ".join(parts)
        if self.title.text() != title:
            self.title.setText(title)
        classified = info.rows_total - info.rows_unclassified
        if classified:
            share = info.rows_malicious / classified
            self.total_label.setText(
                f"total: {info.rows_malicious:,} malicious of {info.rows_total:,} ({share:.1%})")
        else:
            self.total_label.setText(f"total: {info.rows_total:,} packets, none classified")
        self._style(self.total_label, info.rows_malicious > 0)
        pps, share = self.history.instant()
        share_text = f"{share:.1%} malicious" if share is not None else "no verdicts"
        self.instant_label.setText(f"now: {pps:,.0f} pkt/s, {share_text}")
        self._style(self.instant_label, share is not None and share > 0)

    def add_sample(self, wall: float, info: DeviceInfo) -> None:
        """Counters of one poll tick: history, and the labels when shown."""
        self.history.add(wall, info)
        self.set_info(info)

    def redraw_charts(self) -> None:
        """Push the history into the charts (called about once a second)."""
        if self.pps_curve is None:
            return
        t, pps, share = self.history.series()
        ago = t - t[-1] if len(t) else t  # seconds before the newest sample
        self.pps_curve.setData(ago, pps)
        self.share_curve.setData(ago, share)
        top = nice_ceiling(pps.max(initial=0.0))
        if top != self._pps_top:
            self._pps_top = top
            self.pps_plot.setYRange(0, top, padding=0)

    def clear(self) -> None:
        """Empty the table and the charts."""
        self.view.clear()
        self.history.clear()
        self.redraw_charts()

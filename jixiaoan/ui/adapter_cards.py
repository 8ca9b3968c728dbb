"""Adapter cards for the wizard's first page: name, addresses, hotspot hint and a live
packets/s sparkline read from the OS's interface counters."""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QPointF, QSize, Qt
from PyQt5.QtGui import QColor, QPainter, QPen, QPolygonF
from PyQt5.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

SYS_NET = Path("/sys/class/net")


def interface_packet_counters() -> dict[str, int]:
    """Packets received + sent per adapter since boot: /sys/class/net on Linux, psutil
    elsewhere when installed; {} when neither is available."""
    out: dict[str, int] = {}
    if sys.platform.startswith("linux") and SYS_NET.is_dir():
        for d in SYS_NET.iterdir():
            try:
                rx = int((d / "statistics" / "rx_packets").read_text())
                tx = int((d / "statistics" / "tx_packets").read_text())
            except (OSError, ValueError):
                continue
            out[d.name] = rx + tx
        return out
    try:
        import psutil
    except ImportError:
        return out
    for name, c in psutil.net_io_counters(pernic=True).items():
        out[name] = int(c.packets_recv + c.packets_sent)
    return out


class CounterRates:
    """Turns successive counter readings into packets/s per adapter."""

    def __init__(self, read: Callable[[], dict[str, int]] = interface_packet_counters) -> None:
        self.read = read
        self._prev: tuple[float, dict[str, int]] | None = None

    def sample(self, now: float) -> dict[str, float]:
        """Packets/s per adapter since the previous call ({} on the first)."""
        cur = self.read()
        prev, self._prev = self._prev, (now, cur)
        if prev is None or now <= prev[0]:
            return {}
        dt = now - prev[0]
        return {k: max(0.0, (v - prev[1].get(k, v)) / dt) for k, v in cur.items()}


class Sparkline(QWidget):
    """A tiny line chart of the last ``points`` values."""

    def __init__(self, points: int = 60, parent=None) -> None:
        super().__init__(parent)
        self.values: deque[float] = deque([0.0] * points, maxlen=points)
        self.setMinimumSize(160, 36)
        self.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Fixed)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(160, 36)

    def add(self, value: float) -> None:
        """Append a value and repaint."""
        self.values.append(float(value))
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        w, h = self.width(), self.height()
        p.fillRect(0, 0, w, h, QColor(245, 248, 252))
        p.setPen(QPen(QColor(210, 215, 225)))
        p.drawRect(0, 0, w - 1, h - 1)
        top = max(max(self.values), 1.0)
        n = len(self.values)
        pts = [QPointF(2 + i * (w - 4) / max(n - 1, 1), h - 3 - v / top * (h - 6))
               for i, v in enumerate(self.values)]
        p.setPen(QPen(QColor(30, 90, 200), 1.5))
        p.drawPolyline(QPolygonF(pts))
        p.end()


class AdapterCard(QFrame):
    """One adapter: friendly name, kind, addresses, hotspot hint, packets/s sparkline."""

    def __init__(self, info: Any, parent=None) -> None:
        super().__init__(parent)
        self.info = info
        self.setFrameShape(QFrame.StyledPanel)
        self.setObjectName("card")
        row = QHBoxLayout(self)
        text = QVBoxLayout()
        title = info.description or info.name
        if info.description and info.description != info.name:
            title += f"  <span style='color:#666'>({info.name})</span>"
        self.title = QLabel(f"<b>{title}</b>")
        text.addWidget(self.title)
        state = "up" if getattr(info, "up", True) else "down"
        if getattr(info, "kind", ""):
            state += f", {info.kind}"
        addrs = list(getattr(info, "ipv4", [])) + list(getattr(info, "ipv6", []))[:1]
        details = f"{state}   " + (", ".join(addrs) or "no IP address")
        if info.mac:
            details += f"   MAC {info.mac}"
        self.details = QLabel(details)
        self.details.setStyleSheet("color: #333;")
        text.addWidget(self.details)
        reason = info.hotspot_reason.split(": ", 1)[-1] if info.looks_like_hotspot else ""
        hot = ("Hotspot" + (f": {reason}" if reason else "")) if info.looks_like_hotspot else ""
        self.hotspot = QLabel(hot)
        self.hotspot.setToolTip(info.hotspot_reason)
        self.hotspot.setStyleSheet("color: #1e7a40; font-weight: bold;")
        self.hotspot.setVisible(bool(info.looks_like_hotspot))
        text.addWidget(self.hotspot)
        for lab in (self.title, self.details, self.hotspot):
            lab.setMinimumWidth(1)
            lab.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        row.addLayout(text, 1)
        spark_col = QVBoxLayout()
        self.spark = Sparkline()
        self.rate = QLabel("- pkt/s")
        self.rate.setAlignment(Qt.AlignRight)
        spark_col.addWidget(self.spark)
        spark_col.addWidget(self.rate)
        row.addLayout(spark_col)

    def add_rate(self, pps: float) -> None:
        """One new packets/s reading."""
        self.spark.add(pps)
        self.rate.setText(f"{pps:,.0f} pkt/s")


def preferred_adapter(infos: list[Any]) -> int:
    """Index of the adapter to pre-select: a hotspot, else the first up adapter with an IPv4
    address that is not loopback, else 0 (-1 when the list is empty)."""
    if not infos:
        return -1
    for i, info in enumerate(infos):
        if info.looks_like_hotspot:
            return i
    for i, info in enumerate(infos):
        if getattr(info, "up", True) and info.ipv4 and not getattr(info, "loopback", False):
            return i
    return 0

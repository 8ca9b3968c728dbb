"""The app's icons, drawn with QPainter (no image files needed): a shield with an eye, in
green (watching) or red (alerting), and small toolbar glyphs."""

from __future__ import annotations

from functools import lru_cache

from PyQt5.QtCore import QPointF, QRectF, Qt
from PyQt5.QtGui import QBrush, QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap, QPolygonF

OK_COLOR = QColor(30, 140, 80)
ALERT_COLOR = QColor(210, 30, 30)
IDLE_COLOR = QColor(110, 120, 130)


def shield_pixmap(size: int, color: QColor) -> QPixmap:
    """A shield of ``color`` with a white eye, ``size`` pixels square."""
    pm = QPixmap(size, size)
    pm.fill(Qt.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.Antialiasing)
    s = float(size)
    path = QPainterPath()
    path.moveTo(s * 0.5, s * 0.04)
    path.lineTo(s * 0.9, s * 0.18)
    path.cubicTo(s * 0.9, s * 0.62, s * 0.72, s * 0.84, s * 0.5, s * 0.97)
    path.cubicTo(s * 0.28, s * 0.84, s * 0.1, s * 0.62, s * 0.1, s * 0.18)
    path.closeSubpath()
    p.setPen(QPen(color.darker(140), max(1.0, s / 32)))
    p.setBrush(QBrush(color))
    p.drawPath(path)
    eye = QPainterPath()
    eye.moveTo(s * 0.24, s * 0.47)
    eye.quadTo(s * 0.5, s * 0.22, s * 0.76, s * 0.47)
    eye.quadTo(s * 0.5, s * 0.72, s * 0.24, s * 0.47)
    p.setPen(Qt.NoPen)
    p.setBrush(QBrush(Qt.white))
    p.drawPath(eye)
    p.setBrush(QBrush(color.darker(150)))
    p.drawEllipse(QPointF(s * 0.5, s * 0.47), s * 0.09, s * 0.09)
    p.end()
    return pm


@lru_cache(maxsize=8)
def _shield_icon(rgb: tuple[int, int, int]) -> QIcon:
    icon = QIcon()
    for size in (16, 24, 32, 48, 64, 128, 256):
        icon.addPixmap(shield_pixmap(size, QColor(*rgb)))
    return icon


def app_icon() -> QIcon:
    """The application icon (green shield)."""
    return _shield_icon(OK_COLOR.getRgb()[:3])


def alert_icon() -> QIcon:
    """The tray icon while a device is alerting (red shield)."""
    return _shield_icon(ALERT_COLOR.getRgb()[:3])


def idle_icon() -> QIcon:
    """The tray icon while nothing is being monitored (grey shield)."""
    return _shield_icon(IDLE_COLOR.getRgb()[:3])


def _glyph(draw) -> QIcon:
    pm = QPixmap(32, 32)
    pm.fill(Qt.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.Antialiasing)
    draw(p)
    p.end()
    return QIcon(pm)


def start_icon() -> QIcon:
    """A green play triangle."""
    def draw(p: QPainter) -> None:
        p.setPen(Qt.NoPen)
        p.setBrush(OK_COLOR)
        p.drawPolygon(QPolygonF([QPointF(9, 6), QPointF(26, 16), QPointF(9, 26)]))
    return _glyph(draw)


def pause_icon() -> QIcon:
    """Two grey bars."""
    def draw(p: QPainter) -> None:
        p.setPen(Qt.NoPen)
        p.setBrush(IDLE_COLOR)
        p.drawRect(QRectF(8, 6, 6, 20))
        p.drawRect(QRectF(18, 6, 6, 20))
    return _glyph(draw)


def clear_icon() -> QIcon:
    """A crossed sheet."""
    def draw(p: QPainter) -> None:
        p.setPen(QPen(IDLE_COLOR, 2))
        p.setBrush(Qt.white)
        p.drawRect(QRectF(7, 4, 18, 24))
        p.setPen(QPen(ALERT_COLOR, 3))
        p.drawLine(QPointF(11, 10), QPointF(21, 22))
        p.drawLine(QPointF(21, 10), QPointF(11, 22))
    return _glyph(draw)


def open_icon() -> QIcon:
    """A folder."""
    def draw(p: QPainter) -> None:
        p.setPen(QPen(QColor(150, 110, 20), 1.5))
        p.setBrush(QColor(240, 200, 90))
        p.drawRect(QRectF(4, 9, 24, 17))
        p.drawRect(QRectF(4, 6, 10, 4))
    return _glyph(draw)


def export_icon() -> QIcon:
    """A sheet with a down arrow."""
    def draw(p: QPainter) -> None:
        p.setPen(QPen(IDLE_COLOR, 2))
        p.setBrush(Qt.white)
        p.drawRect(QRectF(6, 4, 20, 24))
        p.setPen(QPen(OK_COLOR, 3))
        p.drawLine(QPointF(16, 9), QPointF(16, 22))
        p.drawLine(QPointF(11, 17), QPointF(16, 22))
        p.drawLine(QPointF(21, 17), QPointF(16, 22))
    return _glyph(draw)


def settings_icon() -> QIcon:
    """A grey cog-like wheel."""
    def draw(p: QPainter) -> None:
        p.setPen(QPen(IDLE_COLOR, 5, Qt.DotLine))
        p.setBrush(Qt.NoBrush)
        p.drawEllipse(QPointF(16, 16), 10, 10)
        p.setPen(QPen(IDLE_COLOR, 3))
        p.drawEllipse(QPointF(16, 16), 5, 5)
    return _glyph(draw)


def save_icon_files(folder: str) -> list[str]:
    """Write the shield icons as PNG files (and the app's Windows .ico when Qt can) into
    ``folder``; returns the paths (used by the packaging step)."""
    import os

    os.makedirs(folder, exist_ok=True)
    out = []
    for name, color in (("jixiaoan", OK_COLOR), ("jixiaoan-alert", ALERT_COLOR)):
        path = os.path.join(folder, f"{name}.png")
        shield_pixmap(256, color).save(path, "PNG")
        out.append(path)
        ico = os.path.join(folder, f"{name}.ico")
        if name == "jixiaoan" and shield_pixmap(256, color).save(ico, "ICO"):
            out.append(ico)  # the .exe icon (PyInstaller)
    return out


if __name__ == "__main__":  # python -m jixiaoan.ui.icons [folder]: write the icon files
    import sys

    from PyQt5.QtWidgets import QApplication

    _app = QApplication.instance() or QApplication(["icons"])
    for written in save_icon_files(sys.argv[1] if len(sys.argv) > 1 else "assets/icons"):
        print(written)

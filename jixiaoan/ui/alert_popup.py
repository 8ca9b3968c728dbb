"""Alert popups (one per device, updated in place, on top without taking the focus) and the
tray icon that shows the alerting state."""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import QObject, Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QGuiApplication
from PyQt5.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSystemTrayIcon,
    QVBoxLayout,
    QWidget,
)

from jixiaoan.ui import icons


def device_key(event: Any) -> str:
    """What makes two alerts 'the same device': MAC, else IP, else the index."""
    d = event.device
    return d.mac or d.ip or f"#{event.device_index}"


def alert_lines(event: Any) -> tuple[str, str]:
    """(title, body) of an alert: device, rate, top attack families and peers."""
    d = event.device
    name = d.label or f"device {event.device_index}"
    title = f"Attack traffic on {name}"
    who = ", ".join(p for p in (d.ip, d.mac, d.vendor) if p and p != name)
    families = ", ".join(f"{n} ({c})" for n, c in event.top_families) or "unknown family"
    peers = ", ".join(f"{p.label} ({p.packets})" for p in event.top_peers[:3]) or "-"
    body = (
        (f"{who}\n" if who else "")
        + f"{event.window_share:.0%} of its packets malicious over the last {event.window_s:g} s "
        f"({event.window_malicious:,} of {event.window_packets:,}); "
        f"{event.total_share:.1%} since start\n"
        f"Attack families: {families}\nPeers: {peers}\nAt {event.when}"
    )
    return title, body


class AlertPopup(QWidget):
    """A small always-on-top window for one device's alert; ``update_event`` refreshes it."""

    show_device = pyqtSignal(str)  # device key

    def __init__(self, event: Any, parent=None) -> None:
        super().__init__(parent, Qt.Tool | Qt.WindowStaysOnTopHint | Qt.FramelessWindowHint)
        self.setAttribute(Qt.WA_ShowWithoutActivating)
        self.setAttribute(Qt.WA_DeleteOnClose, False)
        self.setWindowTitle("Ji XiaoAn alert")
        self.setStyleSheet(
            "AlertPopup { background: #fff4f4; border: 2px solid #c81e1e; }"
            "QLabel#title { color: #b00000; font-weight: bold; font-size: 11pt; }")
        self.setObjectName("popup")
        layout = QVBoxLayout(self)
        head = QHBoxLayout()
        icon = QLabel()
        icon.setPixmap(icons.shield_pixmap(32, icons.ALERT_COLOR))
        head.addWidget(icon)
        self.title = QLabel()
        self.title.setObjectName("title")
        head.addWidget(self.title, 1)
        layout.addLayout(head)
        self.body = QLabel()
        self.body.setWordWrap(True)
        self.body.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.body)
        self.count_label = QLabel()
        layout.addWidget(self.count_label)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.show_button = QPushButton("Show device")
        self.dismiss_button = QPushButton("Dismiss")
        buttons.addWidget(self.show_button)
        buttons.addWidget(self.dismiss_button)
        layout.addLayout(buttons)
        self.show_button.clicked.connect(lambda: self.show_device.emit(self.key))
        self.dismiss_button.clicked.connect(self.hide)
        self.setFixedWidth(420)
        self.updates = 0
        self.key = device_key(event)
        self.update_event(event)

    def update_event(self, event: Any) -> None:
        """Show a newer alert of the same device."""
        self.event = event
        self.updates += 1
        title, body = alert_lines(event)
        self.title.setText(title)
        self.body.setText(body)
        self.count_label.setText("" if self.updates == 1 else f"{self.updates} alerts so far")
        self.adjustSize()


class AlertCenter(QObject):
    """Keeps one popup per device and the tray icon's state."""

    show_device = pyqtSignal(str)

    def __init__(self, tray: QSystemTrayIcon | None = None, parent=None) -> None:
        super().__init__(parent)
        self.popups: dict[str, AlertPopup] = {}
        self.tray = tray
        self.enabled = True
        self.alerting = False
        self.window_hidden: callable = lambda: False  # type: ignore[valid-type]
        self._calm = QTimer(self)
        self._calm.setSingleShot(True)
        self._calm.timeout.connect(self.calm)

    def handle(self, event: Any) -> AlertPopup | None:
        """An alert arrived (GUI thread): update or open the device's popup, mark the tray."""
        self.set_alerting(True)
        self._calm.start(60_000)
        title, body = alert_lines(event)
        if self.tray is not None and self.tray.isVisible() and self.window_hidden():
            self.tray.showMessage(title, body, QSystemTrayIcon.Critical, 10_000)
        if not self.enabled:
            return None
        key = device_key(event)
        popup = self.popups.get(key)
        if popup is None:
            popup = AlertPopup(event)
            popup.show_device.connect(self.show_device)
            self.popups[key] = popup
            self._place(popup, len(self.popups) - 1)
        else:
            popup.update_event(event)
        if not popup.isVisible():
            popup.show()
        return popup

    def _place(self, popup: AlertPopup, slot: int) -> None:
        screen = QGuiApplication.primaryScreen()
        if screen is None:
            return
        area = screen.availableGeometry()
        popup.adjustSize()
        y = area.bottom() - (popup.sizeHint().height() + 12) * (slot % 4 + 1)
        popup.move(area.right() - popup.width() - 16, max(area.top(), y))

    def visible_popups(self) -> list[AlertPopup]:
        """The popups on screen now."""
        return [p for p in self.popups.values() if p.isVisible()]

    def set_alerting(self, alerting: bool) -> None:
        """Switch the tray icon between the green and the red shield."""
        self.alerting = alerting
        if self.tray is not None:
            self.tray.setIcon(icons.alert_icon() if alerting else icons.app_icon())
            self.tray.setToolTip("Ji XiaoAn: ALERT" if alerting else "Ji XiaoAn: watching")

    def calm(self) -> None:
        """No alert for a while: back to the green icon."""
        self.set_alerting(False)

    def close_all(self) -> None:
        """Close every popup (on exit)."""
        for popup in self.popups.values():
            popup.close()
            popup.deleteLater()
        self.popups.clear()


def make_tray(window: QWidget, on_quit) -> QSystemTrayIcon | None:
    """The tray icon with Show / Quit, or None where the system has no tray."""
    if not QSystemTrayIcon.isSystemTrayAvailable():
        return None
    tray = QSystemTrayIcon(icons.app_icon(), window)
    menu = QMenu(window)
    menu.addAction("Show Ji XiaoAn", lambda: (window.showNormal(), window.activateWindow()))
    menu.addSeparator()
    menu.addAction("Quit", on_quit)
    tray.setContextMenu(menu)
    tray.setToolTip("Ji XiaoAn: watching")
    tray.activated.connect(
        lambda reason: (window.showNormal(), window.activateWindow())
        if reason == QSystemTrayIcon.Trigger else None)
    tray.show()
    return tray

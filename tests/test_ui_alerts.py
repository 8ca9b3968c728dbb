"""Alert popups: one per device (updated, not stacked), on top without focus; tray state."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PyQt5.QtCore import Qt  # noqa: E402
from PyQt5.QtWidgets import QSystemTrayIcon  # noqa: E402
from ui_fakes import DEVICES, FakeSession, alert_event  # noqa: E402

from jixiaoan.alerts.setup import Alerting  # noqa: E402
from jixiaoan.config import Config  # noqa: E402
from jixiaoan.storage.synthetic import synthetic_batch  # noqa: E402
from jixiaoan.ui import icons  # noqa: E402
from jixiaoan.ui.alert_popup import AlertCenter, alert_lines  # noqa: E402
from jixiaoan.ui.session_control import SessionController  # noqa: E402


@pytest.fixture
def center(qtbot):
    tray = QSystemTrayIcon(icons.app_icon())
    c = AlertCenter(tray)
    yield c
    c.close_all()


def test_popup_text_names_device_rate_families_and_peers():
    title, body = alert_lines(alert_event(DEVICES[0], share=0.8))
    assert "camera" in title
    assert "80%" in body and "ddos (300)" in body and "scan (100)" in body
    assert "203.0.113.9" in body and "10.42.0.2" in body


def test_one_popup_per_device_updated_in_place(center, qtbot):
    first = center.handle(alert_event(DEVICES[0], share=0.6))
    again = center.handle(alert_event(DEVICES[0], share=0.9))
    assert again is first and first.updates == 2
    assert "90%" in first.body.text()
    other = center.handle(alert_event(DEVICES[1], 1))
    assert other is not first
    assert len(center.popups) == 2 and len(center.visible_popups()) == 2
    flags = first.windowFlags()
    assert flags & Qt.WindowStaysOnTopHint and flags & Qt.Tool
    assert first.testAttribute(Qt.WA_ShowWithoutActivating)
    first.dismiss_button.click()
    assert len(center.visible_popups()) == 1
    center.handle(alert_event(DEVICES[0]))  # a new alert brings it back, still one
    assert len(center.popups) == 2 and len(center.visible_popups()) == 2


def test_tray_icon_shows_the_alerting_state(center):
    assert not center.alerting
    center.handle(alert_event(DEVICES[0]))
    assert center.alerting
    assert center.tray.icon().cacheKey() == icons.alert_icon().cacheKey()
    center.calm()
    assert center.tray.icon().cacheKey() == icons.app_icon().cacheKey()


def test_popups_off_in_settings(center):
    center.enabled = False
    assert center.handle(alert_event(DEVICES[0])) is None
    assert center.popups == {} and center.alerting


def test_alerts_from_a_worker_thread_reach_the_gui(qtbot, tmp_path, center):
    from jixiaoan.runtime.options import MonitorOptions

    sessions = []
    controller = SessionController(lambda cfg, o: sessions.append(FakeSession(cfg, o)) or
                                   sessions[-1])
    controller.alert.connect(center.handle)
    with qtbot.waitSignal(controller.started, timeout=10_000):
        controller.start(Config(), MonitorOptions(iface="x", db_path=str(tmp_path / "d.db")))
    sessions[0].fire(alert_event(DEVICES[1], 1)).join()
    qtbot.waitUntil(lambda: len(center.popups) == 1, timeout=5000)
    controller.stop(wait=True)


def test_real_policy_gives_one_popup_per_cooldown(center):
    """A sustained attack through the real alert stage: the cooldown keeps it to one alert,
    so one popup that is not updated again."""
    cfg = Config()
    cfg.alerts.cooldown_s = 300.0
    cfg.alerts.window_s = 5.0
    alerting = Alerting(cfg, len(DEVICES))
    alerting.monitor.add_callback(center.handle)
    rng = np.random.default_rng(3)
    t = 1_700_000_000.0
    for _ in range(30):  # 30 s of packets, all malicious, from device 0
        batch = synthetic_batch(200, DEVICES, t, rng, src=np.zeros(200, int), dt=0.005)
        batch.is_bad[:] = 1
        batch.attack[:] = 0
        alerting.feed(batch)
        t += 1.0
    alerting.close()
    assert alerting.monitor.alerts_fired == 1
    assert len(center.popups) == 1
    (popup,) = center.popups.values()
    assert popup.updates == 1 and "camera" in popup.title.text()


def test_close_to_tray_hides_and_alerts_go_to_the_tray(qtbot, tmp_path):
    from PyQt5.QtCore import QSettings

    from jixiaoan.ui.monitor import MonitorWindow, ui_settings

    QSettings.setPath(QSettings.NativeFormat, QSettings.UserScope, str(tmp_path / "qs"))
    ui_settings().setValue("close_to_tray", True)
    window = MonitorWindow(Config())
    qtbot.addWidget(window)
    messages = []

    class Tray(QSystemTrayIcon):
        def isVisible(self):  # noqa: N802 - offscreen Qt has no tray to show it in
            return True

        def showMessage(self, title, body, *args):  # noqa: N802
            messages.append(title)

    window.tray = window.alerts.tray = Tray(icons.app_icon())
    window.show()
    window.close()
    assert not window.isVisible() and not window._quitting  # still watching, in the tray
    window.alerts.handle(alert_event(DEVICES[0]))
    assert messages[-1] == "Attack traffic on camera"
    window.quit()
    assert window._quitting

"""Entry point: options, capture-rights dialog, and a real replay through the monitor."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PyQt5.QtWidgets import QApplication  # noqa: E402
from ui_fakes import show_each_tab  # noqa: E402

import jixiaoan.capture.interfaces as interfaces  # noqa: E402
from jixiaoan.config import Config  # noqa: E402
from jixiaoan.runtime.options import MonitorOptions  # noqa: E402
from jixiaoan.storage.store import StoreReader  # noqa: E402
from jixiaoan.ui import app as gui  # noqa: E402
from jixiaoan.ui.monitor import MonitorWindow  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
PCAP = DATA / "zeek" / "wikipedia.pcap"


@pytest.fixture
def no_loop(monkeypatch, qapp):
    """main() builds everything, then returns instead of running the event loop; the
    windows it made are collected."""
    started: list = []
    monkeypatch.setattr(QApplication, "exec_", lambda self: 0)
    monkeypatch.setattr(MonitorWindow, "start_monitoring",
                        lambda self, options=None: started.append(options) or True)
    yield started
    for w in QApplication.topLevelWidgets():
        if isinstance(w, MonitorWindow):
            w.shutdown()
            w.close()


def test_npcap_missing_text_has_the_download_link():
    text = gui.permission_text("Npcap is not installed: get it from https://npcap.com")
    assert "https://npcap.com" in text and "administrator" in text
    assert "open a capture file" in gui.permission_text("capturing needs root")


def test_replay_option_starts_a_full_speed_replay(no_loop, tmp_path):
    assert gui.main(["--replay", str(PCAP), "--config", str(tmp_path / "c.json")]) == 0
    (options,) = no_loop
    assert options.replay == str(PCAP) and options.speed == 0.0


def test_demo_replays_the_bundled_capture(no_loop, monkeypatch, tmp_path):
    monkeypatch.setattr(gui, "demo_capture", lambda root=None: PCAP)
    assert gui.main(["--demo", "--config", str(tmp_path / "c.json")]) == 0
    (options,) = no_loop
    assert options.replay == str(PCAP) and options.db_path.endswith("demo.sqlite3")
    assert options.adapt_after_s == gui.DEMO_BASELINE_S  # the demo's attack-free start


def test_without_capture_rights_a_dialog_not_a_traceback(no_loop, monkeypatch, tmp_path):
    asked = []
    monkeypatch.setattr(interfaces, "capture_permission_problem", lambda: "capturing needs root")
    monkeypatch.setattr(gui, "ask_without_rights", lambda problem: asked.append(problem) or "quit")
    assert gui.main(["--config", str(tmp_path / "c.json")]) == 0
    assert asked == ["capturing needs root"] and no_loop == []


def test_real_replay_through_the_monitor(qtbot, tmp_path):
    """A real MonitorSession (no model) replays a capture; the window shows its devices."""
    window = MonitorWindow(Config(), poll_ms=100)
    qtbot.addWidget(window)
    window.show()
    db = tmp_path / "replay.sqlite3"
    with qtbot.waitSignal(window.controller.started, timeout=60_000):
        window.start_monitoring(MonitorOptions(replay=str(PCAP), speed=0.0, db_path=str(db)))
    qtbot.waitUntil(lambda: window.controller.session.finished, timeout=60_000)
    reader = StoreReader(db)
    expected = {d.table_name: min(d.rows_total, 5000) for d in reader.devices()}
    reader.close()
    assert expected and sum(expected.values()) > 0
    show_each_tab(window, qtbot, expected, timeout=20_000)
    window._refresh_status()
    assert "none" in window.model_label.text()  # no model: rows unclassified, said so
    with qtbot.waitSignal(window.controller.stopped, timeout=60_000):
        window.pause_monitoring()
    window.shutdown()

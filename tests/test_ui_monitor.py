"""Monitor window filling from a store being written by a (fake) session."""

from __future__ import annotations

import gc

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PyQt5.QtCore import Qt  # noqa: E402
from ui_fakes import FakeSession, first_tab_on_screen, show_each_tab  # noqa: E402

from jixiaoan.config import Config  # noqa: E402
from jixiaoan.runtime.options import MonitorOptions  # noqa: E402
from jixiaoan.storage.store import StoreReader  # noqa: E402
from jixiaoan.ui import poller as poller_module  # noqa: E402
from jixiaoan.ui.hexdump import HexDumpDialog, hex_dump  # noqa: E402
from jixiaoan.ui.monitor import MonitorWindow  # noqa: E402
from jixiaoan.ui.packet_model import MALICIOUS_BACKGROUND  # noqa: E402
from jixiaoan.ui.session_control import SessionController  # noqa: E402


@pytest.fixture
def running(qtbot, tmp_path):
    """A monitor window showing a fake session that writes 5 x 400 packets."""
    sessions: list[FakeSession] = []

    def factory(cfg, options):
        sessions.append(FakeSession(cfg, options))
        return sessions[-1]

    controller = SessionController(factory)
    controller.made = sessions  # every session the window started, in order
    window = MonitorWindow(Config(), controller=controller, poll_ms=50)
    qtbot.addWidget(window)
    window.show()
    options = MonitorOptions(iface="fake0", db_path=str(tmp_path / "db.sqlite3"))
    assert window.start_monitoring(options)
    qtbot.waitUntil(lambda: bool(sessions) and sessions[0].done.is_set(), timeout=10_000)
    yield window, sessions[0]
    window.shutdown()


def _rows(window):
    return {t: tab.model.rowCount() for t, tab in window.device_tabs.items()}


def test_monitor_fills_from_the_store(running, qtbot):
    window, session = running
    reader = StoreReader(session.options.db_path)
    expected = {d.table_name: d.rows_total for d in reader.devices()}
    qtbot.waitUntil(lambda: set(window.device_tabs) == set(expected), timeout=10_000)
    # off screen: no rows fetched (the malicious ones still reach the all-malicious view)
    bad = sum(d.rows_malicious for d in reader.devices())
    qtbot.waitUntil(lambda: window.malicious_model.rowCount() == bad, timeout=5000)
    assert sum(_rows(window).values()) == 0
    tab = next(iter(window.device_tabs.values()))
    assert tab.pps_plot is None  # charts are built when the tab is first shown
    show_each_tab(window, qtbot, expected)
    assert sum(expected.values()) == session.written
    labels = {window.tabs.tabText(i) for i in range(window.tabs.count())}
    assert labels == {"All malicious packets", "camera", "plug"}
    window.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: tab.pps_plot is not None, timeout=5000)
    assert "malicious of" in tab.total_label.text() and "now:" in tab.instant_label.text()
    window._refresh_status()
    assert "1,234 pkt/s" in window.pps_label.text()
    assert "drops 7" in window.drops_label.text()
    assert "fake-model" in window.model_label.text()
    assert "alerts held" not in window.model_label.text()
    session.adaptation = "site: learning normal traffic, 10 pkts of 20 s (alerts held)"
    window._refresh_status()
    assert "alerts held" in window.model_label.text()  # the user sees why nothing alerts yet
    reader.close()


def test_malicious_rows_are_red(running, qtbot):
    window, _ = running
    model = first_tab_on_screen(window, qtbot).model
    qtbot.waitUntil(lambda: model.rowCount() > 0, timeout=10_000)
    seen = {0: 0, 1: 0}
    for r in range(model.rowCount()):
        row = model.row_at(r)
        brush = model.data(model.index(r, 2), Qt.BackgroundRole)
        if row.is_bad == 1:
            assert brush is not None and brush.color() == MALICIOUS_BACKGROUND
            assert model.data(model.index(r, 6)) == "yes"
            assert model.data(model.index(r, 7)) in ("ddos", "scan")
        else:
            assert brush is None
        seen[row.is_bad] += 1
    assert seen[0] and seen[1]


def test_selection_pauses_auto_scroll(running, qtbot):
    window, _ = running
    tab = first_tab_on_screen(window, qtbot)
    qtbot.waitUntil(lambda: tab.model.rowCount() > 100, timeout=10_000)
    assert tab.view.following
    tab.view.selectRow(3)
    assert not tab.view.following
    before = tab.view.verticalScrollBar().value()
    tab.view.add_rows([tab.model.row_at(0)] * 10)
    assert tab.view.verticalScrollBar().value() == before
    tab.view.clearSelection()
    tab.view.scrollToBottom()
    assert tab.view.following


def test_double_click_shows_the_hex_dump(running, qtbot):
    window, session = running
    tab = first_tab_on_screen(window, qtbot)
    qtbot.waitUntil(lambda: tab.model.rowCount() > 0, timeout=10_000)
    shown = []
    tab.view.open_dialog = lambda row, device: shown.append(window._open_dump(row, device))
    tab.view.doubleClicked.emit(tab.model.index(0, 0))
    assert len(shown) == 1
    dialog = shown[0]
    assert isinstance(dialog, HexDumpDialog)
    reader = StoreReader(session.options.db_path)
    stored = reader.row(tab.info.table_name, tab.model.row_at(0).index)
    reader.close()
    assert stored.data and dialog.text.toPlainText() == hex_dump(stored.data)
    assert f"packet {stored.index}" in dialog.header.text()


def test_hex_dump_format():
    text = hex_dump(bytes(range(0x41, 0x41 + 20)))
    lines = text.splitlines()
    assert lines[0].startswith("00000000  41 42 43 44 45 46 47 48  49 4a")
    assert lines[0].endswith("|ABCDEFGHIJKLMNOP|")
    assert lines[1].startswith("00000010  51 52 53 54")
    assert lines[1].endswith("|QRST|")
    assert hex_dump(b"\x00\x7f") .endswith("|..|")


def test_clear_empties_the_views(running, qtbot):
    window, _ = running
    first_tab_on_screen(window, qtbot)
    qtbot.waitUntil(lambda: sum(_rows(window).values()) > 0, timeout=10_000)
    window.clear_views()
    assert sum(_rows(window).values()) == 0 and window.malicious_model.rowCount() == 0
    qtbot.wait(300)  # the poller runs on: nothing older comes back
    assert sum(_rows(window).values()) == 0


def test_open_capture_replaces_the_running_session(running, qtbot, tmp_path):
    window, first = running
    reader = StoreReader(first.options.db_path)
    show_each_tab(window, qtbot, {d.table_name: d.rows_total for d in reader.devices()})
    reader.close()
    sessions = window.controller.made
    assert window.open_capture(str(tmp_path / "other.pcap"))
    qtbot.waitUntil(lambda: len(sessions) == 2 and sessions[1].done.is_set(), timeout=20_000)
    second = sessions[1]
    assert first.stopped.is_set()
    assert second.options.replay.endswith("other.pcap") and second.options.speed == 0.0
    assert second.options.db_path != first.options.db_path
    reader = StoreReader(second.options.db_path)
    expected = {d.table_name: d.rows_total for d in reader.devices()}
    reader.close()
    assert sum(expected.values()) == second.written
    show_each_tab(window, qtbot, expected)
    window.shutdown()  # the first store's poller was let go without waiting: none is left
    assert poller_module.sweep_retired() == 0


def test_rate_history_rates_and_shares():
    from jixiaoan.storage.store import DeviceInfo
    from jixiaoan.ui.device_tab import RateHistory

    h = RateHistory(window_s=10.0)
    for i in range(21):  # 100 packets per 0.25 s, a quarter malicious, 10 unclassified
        info = DeviceInfo(0, "", "", "", "", "t", None, None, rows_total=100 * i,
                          rows_malicious=20 * i, rows_unclassified=20 * i)
        h.add(0.25 * i, info)
    t, pps, share = h.series()
    assert len(t) == 20 and t[0] == 0.25
    assert pps == pytest.approx([400.0] * 20)
    assert share == pytest.approx([0.25] * 20)
    now_pps, now_share = h.instant()
    assert now_pps == pytest.approx(400.0) and now_share == pytest.approx(0.25)


def test_the_window_exempts_its_long_lived_objects_from_collection(qtbot):
    assert gc.get_freeze_count() == 0
    window = MonitorWindow(Config())
    qtbot.addWidget(window)
    assert gc.get_freeze_count() > 1000  # Qt wrappers, modules, widgets built so far
    window.shutdown()


def test_a_tab_builds_its_charts_one_plot_per_event_once_shown(qtbot, monkeypatch):
    from jixiaoan.storage.store import DeviceInfo
    from jixiaoan.ui.device_tab import DeviceTab

    info = DeviceInfo(1, "02:00:00:00:00:01", "10.0.0.1", "cam", "", "t1", None, None)
    tab = DeviceTab(info)
    qtbot.addWidget(tab)
    assert tab.pps_plot is None and tab._pending_plots == []
    steps: list[tuple[int, bool]] = []
    step = tab._build_chart_step

    def logged() -> None:
        step()
        steps.append((len(tab._pending_plots), tab.pps_plot is not None))

    monkeypatch.setattr(tab, "_build_chart_step", logged)
    frozen = gc.get_freeze_count()
    tab.show()
    assert steps == []  # showing only schedules the work
    qtbot.waitUntil(lambda: tab.pps_plot is not None, timeout=5000)
    assert steps == [(1, False), (2, False), (0, True)]  # a plot per event, then in place
    assert tab.share_plot is not None
    assert tab.pps_curve is not None and tab.share_curve is not None
    assert gc.get_freeze_count() > frozen  # the charts' objects are exempt from collections


def test_charts_show_the_last_minutes_on_fixed_ranges(qtbot):
    import dataclasses

    from jixiaoan.storage.store import DeviceInfo
    from jixiaoan.ui.device_tab import HISTORY_S, DeviceTab, nice_ceiling

    assert [nice_ceiling(v) for v in (0, 9, 11, 180, 190.5, 4_700, 70_000)] == [
        10, 10, 20, 200, 500, 5_000, 100_000]
    info = DeviceInfo(1, "02:00:00:00:00:01", "10.0.0.1", "cam", "", "t1", None, None)
    tab = DeviceTab(info)
    qtbot.addWidget(tab)
    tab.ensure_charts()
    for k in range(21):  # 1,000 packets a second for 10 s, a third of them malicious
        info = dataclasses.replace(info, rows_total=500 * k, rows_malicious=166 * k)
        tab.add_sample(100.0 + 0.5 * k, info)
    tab.redraw_charts()
    x, y = tab.pps_curve.getData()
    assert x[-1] == 0 and x[0] == -9.5  # seconds before the newest sample
    assert np.allclose(y, 1000)
    (x0, x1), (y0, y1) = tab.pps_plot.viewRange()
    assert (x0, x1) == (-HISTORY_S, 0) and (y0, y1) == (0, 2000)  # not fitted to the data
    assert not any(tab.pps_plot.getViewBox().autoRangeEnabled())
    assert tab.share_plot.viewRange()[0] == [-HISTORY_S, 0]

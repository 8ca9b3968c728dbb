"""The monitor window: a tab per watched device plus all malicious packets, toolbar, status."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QSettings, Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import QFileDialog, QLabel, QMainWindow, QMessageBox, QTabWidget, QToolBar

from jixiaoan.config import Config
from jixiaoan.storage.store import PacketRow, StoreReader
from jixiaoan.ui import icons
from jixiaoan.ui.alert_popup import AlertCenter, make_tray
from jixiaoan.ui.device_tab import DeviceTab
from jixiaoan.ui.export import ExportDialog, ExportJob
from jixiaoan.ui.heap import freeze_long_lived
from jixiaoan.ui.hexdump import HexDumpDialog
from jixiaoan.ui.packet_model import PacketTableModel
from jixiaoan.ui.packet_view import PacketTableView
from jixiaoan.ui.poller import PollerThread, PollResult, wait_retired
from jixiaoan.ui.session_control import SessionController

WINDOW_ROWS = 5000
NEW_TABS_PER_TICK = 4  # building a device tab costs ~10 ms of GUI time; a capture may bring 64


def ui_settings() -> QSettings:
    """Window-only preferences (close to tray), kept by Qt beside the config."""
    return QSettings("jixiaoan", "jixiaoan-gui")


class MonitorWindow(QMainWindow):
    """Shows what a MonitorSession writes into its store; see the package docstring."""

    forget_tables = pyqtSignal(object)  # to the poller: tables still without a tab
    show_tables = pyqtSignal(object)  # to the poller: the device tables on screen

    def __init__(self, cfg: Config, options: Any = None,
                 controller: SessionController | None = None, config_path: str | None = None,
                 poll_ms: int = 250, parent=None) -> None:
        super().__init__(parent)
        self.cfg = cfg
        self.config_path = config_path
        self.options = options
        self.poll_ms = poll_ms
        self.controller = controller or SessionController()
        self.setWindowTitle("Ji XiaoAn - IoT hotspot monitor")
        self.setWindowIcon(icons.app_icon())
        self.resize(1200, 780)
        self.tabs = QTabWidget()
        self.setCentralWidget(self.tabs)
        self.malicious_model = PacketTableModel(WINDOW_ROWS, with_device=True)
        self.malicious_view = PacketTableView(self.malicious_model)
        self.malicious_view.row_fetcher = self._fetch_row
        self.malicious_view.open_dialog = self._open_dump
        self.tabs.addTab(self.malicious_view, "All malicious packets")
        self.tabs.currentChanged.connect(lambda _i: self.show_tables.emit(self._shown_tables()))
        self.device_tabs: dict[str, DeviceTab] = {}
        self.db_path: Path | None = None
        self.poller: PollerThread | None = None
        self.reader: StoreReader | None = None
        self.paused = False
        self.last_poll: PollResult | None = None
        self.model_name = ""
        self._pending_start: Any = None
        self._quitting = False
        self.dialogs: list = []
        self._build_toolbar()
        self._build_status()
        self.tray = make_tray(self, self.quit)
        self.alerts = AlertCenter(self.tray, self)
        self.alerts.enabled = cfg.alerts.popup
        self.alerts.window_hidden = lambda: not self.isVisible() or self.isMinimized()
        self.alerts.show_device.connect(self.show_device)
        self.controller.alert.connect(self.alerts.handle)
        self.controller.started.connect(self._session_started)
        self.controller.failed.connect(self._session_failed)
        self.controller.stopped.connect(self._session_stopped)
        self.status_timer = QTimer(self)
        self.status_timer.timeout.connect(self._refresh_status)
        self.status_timer.start(1000)
        freeze_long_lived()

    # ---- building -----------------------------------------------------------------------------
    def _build_toolbar(self) -> None:
        tb = QToolBar("Main")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.addToolBar(tb)
        self.start_action = tb.addAction(icons.start_icon(), "Start", self.start_monitoring)
        self.pause_action = tb.addAction(icons.pause_icon(), "Pause", self.pause_monitoring)
        self.clear_action = tb.addAction(icons.clear_icon(), "Clear", self.clear_views)
        tb.addSeparator()
        self.open_action = tb.addAction(icons.open_icon(), "Open capture...", self.open_capture)
        self.export_action = tb.addAction(icons.export_icon(), "Export...", self.export_rows)
        tb.addSeparator()
        self.settings_action = tb.addAction(icons.settings_icon(), "Settings...",
                                            self.open_settings)
        self.start_action.setToolTip("Start capturing and classifying")
        self.pause_action.setToolTip("Stop capturing (the stored packets stay)")
        self.clear_action.setToolTip("Empty the tables and charts (the database is kept)")
        self._update_actions()

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.state_label = QLabel("idle")
        self.pps_label = QLabel("0 pkt/s")
        self.drops_label = QLabel("drops 0")
        self.alerts_label = QLabel("alerts 0")
        self.model_label = QLabel("model: -")
        for lab in (self.state_label, self.pps_label, self.drops_label, self.alerts_label,
                    self.model_label):
            lab.setStyleSheet("padding: 0 10px;")
            sb.addPermanentWidget(lab)

    # ---- store ------------------------------------------------------------------------------
    def attach_store(self, db_path: str | Path) -> None:
        """Show the rows of this store (starts the poller thread)."""
        db_path = Path(db_path)
        if self.db_path == db_path and self.poller is not None:
            return
        self.detach_store()
        self.db_path = db_path
        self.reader = StoreReader(db_path)
        self.poller = PollerThread(db_path, WINDOW_ROWS, self.poll_ms, self._shown_tables())
        self.poller.poller.polled.connect(self.on_poll)
        self.forget_tables.connect(self.poller.poller.forget_tables)
        self.show_tables.connect(self.poller.poller.show_tables)

    def _shown_tables(self) -> list[str]:
        """Device tables on screen: only their rows are fetched (the others' counters, charts
        and malicious rows still are); a tab coming on screen gets its newest rows."""
        tab = self.tabs.currentWidget()
        return [tab.info.table_name] if isinstance(tab, DeviceTab) else []

    def detach_store(self, wait: bool = False) -> None:
        """Stop polling the current store (without waiting for a read in progress, unless
        ``wait``: its late result is dropped)."""
        if self.poller is not None:
            self.poller.poller.polled.disconnect(self.on_poll)
            self.poller.close(wait=wait)
            self.poller = None
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        self.db_path = None

    def on_poll(self, result: PollResult) -> None:
        """Rows and counters of one poll tick (GUI thread)."""
        if self.db_path is None or result.db != str(self.db_path):
            return  # queued before the store was replaced
        if self.poller is not None:
            self.poller.poller.taken()
        self.last_poll = result
        if result.model_name:
            self.model_name = result.model_name
        if self.paused:
            return
        new_tabs, later = 0, []
        for tp in result.tables:
            if tp.device.table_name not in self.device_tabs:
                if new_tabs >= NEW_TABS_PER_TICK:
                    later.append(tp.device.table_name)
                    continue
                new_tabs += 1
            tab = self._tab_for(tp.device)
            tab.add_sample(result.wall, tp.device)
            if tp.rows or tp.reset:
                tab.view.add_rows(tp.rows, reset=tp.reset)
        bad = result.malicious
        if later:  # their rows (malicious ones too) come again once they have a tab
            skip = set(later)
            bad = [b for b in bad if b[1] not in skip]
        if bad:
            self.malicious_view.add_rows(bad)
        if later:
            self.forget_tables.emit(later)
        if new_tabs:
            freeze_long_lived()  # the new tabs' widgets live as long as the window

    def _tab_for(self, info) -> DeviceTab:
        tab = self.device_tabs.get(info.table_name)
        if tab is None:
            tab = DeviceTab(info, WINDOW_ROWS, self.cfg.alerts.window_s)
            tab.view.row_fetcher = self._fetch_row
            tab.view.open_dialog = self._open_dump
            tab.view.device_table = info.table_name
            self.device_tabs[info.table_name] = tab
            self.tabs.addTab(tab, info.name or info.ip or info.mac)
        return tab

    def _fetch_row(self, table: str | None, row: PacketRow) -> PacketRow | None:
        if self.reader is None or table is None:
            return None
        try:
            return self.reader.row(table, row.index)
        except Exception:  # noqa: BLE001 - the row may be gone (retention)
            return None

    def _open_dump(self, row: PacketRow, device: str) -> HexDumpDialog:
        dlg = HexDumpDialog(row, device, self)
        dlg.setAttribute(Qt.WA_DeleteOnClose)
        dlg.show()
        return dlg

    def show_device(self, key: str) -> None:
        """Bring the window up on the tab of the device with this MAC/IP."""
        self.showNormal()
        self.raise_()
        for tab in self.device_tabs.values():
            if key in (tab.info.mac, tab.info.ip):
                self.tabs.setCurrentWidget(tab)

    # ---- toolbar ------------------------------------------------------------------------------
    def start_monitoring(self, options: Any = None) -> bool:
        """Start a session with ``options`` (default: the window's). A replay goes into a
        fresh temporary database each time."""
        options = options or self.options
        if options is None:
            QMessageBox.information(self, "Nothing to monitor",
                                    "Choose an adapter in the wizard, or open a capture file.")
            return False
        if self.controller.session is not None or self.controller.busy:
            self._pending_start = options
            self.controller.stop()
            return True
        options = copy.copy(options)
        if getattr(options, "replay", "") and not getattr(options, "db_path", ""):
            folder = tempfile.mkdtemp(prefix="jixiaoan-replay-")
            options.db_path = str(Path(folder) / "replay.sqlite3")
        self.options = options
        db = Path(options.db_path) if options.db_path else self.cfg.resolved_db_path()
        if self.db_path is not None and db != self.db_path:
            self.detach_store()
            self.reset_views()
        self.attach_store(db)
        self.state_label.setText("starting...")
        self.controller.start(self.cfg, options)
        self._update_actions()
        return True

    def pause_monitoring(self) -> None:
        """Stop the session (capture ends; the stored rows stay visible)."""
        if self.controller.stop():
            self.state_label.setText("stopping...")
        self._update_actions()

    def clear_views(self) -> None:
        """Empty tables and charts; the poller continues with rows newer than now."""
        self.malicious_view.clear()
        for tab in self.device_tabs.values():
            tab.clear()
        if self.poller is not None:
            from PyQt5.QtCore import QMetaObject

            QMetaObject.invokeMethod(self.poller.poller, "skip_to_newest", Qt.QueuedConnection)

    def reset_views(self) -> None:
        """Remove every device tab and empty the malicious view (another database)."""
        for tab in list(self.device_tabs.values()):
            self.tabs.removeTab(self.tabs.indexOf(tab))
            tab.deleteLater()
        self.device_tabs.clear()
        self.malicious_view.clear()

    def open_capture(self, path: str | None = None) -> bool:
        """Analyse a capture file through the same path: a replay at full speed."""
        if not path:
            path, _ = QFileDialog.getOpenFileName(
                self, "Open capture", "", "Captures (*.pcap *.pcapng *.cap);;All files (*)")
        if not path:
            return False
        from jixiaoan.runtime.options import MonitorOptions

        model_dir = getattr(self.options, "model_dir", None) if self.options else None
        options = MonitorOptions(replay=str(path), speed=0.0, model_dir=model_dir)
        self.detach_store()  # the old session's rows stop coming at once
        self.reset_views()
        return self.start_monitoring(options)

    def export_rows(self) -> None:
        """Ask for device, range and file; write the CSV in the background."""
        if self.reader is None:
            QMessageBox.information(self, "Export", "No packets to export yet.")
            return
        try:
            devices = self.reader.devices()
        except Exception as exc:  # noqa: BLE001
            QMessageBox.warning(self, "Export", f"Cannot read the database: {exc}")
            return
        current = self.tabs.currentWidget()
        dlg = ExportDialog(devices, getattr(getattr(current, "info", None), "table_name", None),
                           self)
        if dlg.exec_() != dlg.Accepted:
            return
        table, t0, t1, out = dlg.choice()
        job = ExportJob(self)
        job.done.connect(lambda n, p: self.statusBar().showMessage(
            f"Exported {n:,} packets to {p}", 10_000))
        job.failed.connect(lambda msg: QMessageBox.warning(self, "Export", msg))
        job.run(str(self.db_path), table, t0, t1, out)

    def open_settings(self) -> None:
        """The settings dialog; saved settings go to the running session at once."""
        from jixiaoan.ui.settings import SettingsDialog

        dlg = SettingsDialog(self.cfg, self.config_path, parent=self)
        if dlg.exec_() == dlg.Accepted:
            self.cfg = dlg.config
            self.alerts.enabled = self.cfg.alerts.popup
            session = self.controller.session
            if session is not None and hasattr(session, "apply_config"):
                session.apply_config(self.cfg)

    # ---- session events ---------------------------------------------------------------------
    def _session_started(self, session: Any) -> None:
        self.state_label.setText(f"running: {getattr(session, 'source_name', '')}")
        self._update_actions()

    def _session_failed(self, message: str) -> None:
        self.state_label.setText("not running")
        self._update_actions()
        if not self._quitting:
            QMessageBox.critical(self, "Cannot start monitoring", message)

    def _session_stopped(self) -> None:
        self.state_label.setText("stopped")
        self._update_actions()
        pending, self._pending_start = self._pending_start, None
        if pending is not None and not self._quitting:
            self.start_monitoring(pending)

    def _update_actions(self) -> None:
        running = self.controller.session is not None or self.controller.busy
        self.start_action.setEnabled(not running)
        self.pause_action.setEnabled(running)

    def _refresh_status(self) -> None:
        """Once a second: status bar from the session (or the store) and the charts."""
        status = self.controller.status()
        if status is not None:
            self.pps_label.setText(f"{status.captured_pps:,.0f} pkt/s")
            self.drops_label.setText(f"drops {status.dropped:,}")
            self.alerts_label.setText(f"alerts {status.alerts_fired}")
            model = status.model or self.model_name
            if status.adaptation:  # e.g. learning the site's normal traffic, alerts held
                model = f"{model} · {status.adaptation}"
            if status.finished:
                self.state_label.setText("replay finished")
            if status.errors:
                self.statusBar().showMessage(status.errors[0], 5000)
        else:
            pps = sum(t.history.instant()[0] for t in self.device_tabs.values())
            self.pps_label.setText(f"{pps:,.0f} pkt/s (stored)")
            model = self.model_name
        self.model_label.setText(f"model: {model or 'none (packets not classified)'}")
        self._update_actions()
        if not self.paused:
            current = self.tabs.currentWidget()
            for tab in self.device_tabs.values():
                if tab is current or not tab.isHidden():
                    tab.redraw_charts()

    # ---- closing ------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if (not self._quitting and self.tray is not None
                and ui_settings().value("close_to_tray", False, type=bool)):
            event.ignore()
            self.hide()
            self.tray.showMessage("Ji XiaoAn", "Still watching in the background.")
            return
        self.shutdown()
        event.accept()

    def quit(self) -> None:
        """Stop everything and close (tray menu's Quit)."""
        self._quitting = True
        self.close()

    def shutdown(self) -> None:
        """Stop the session, the poller and the popups (idempotent)."""
        self._quitting = True
        self.status_timer.stop()
        self.controller.stop(wait=True)
        self.detach_store(wait=True)
        wait_retired()  # pollers detached earlier without waiting
        self.alerts.close_all()
        if self.tray is not None:
            self.tray.hide()

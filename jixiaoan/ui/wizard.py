"""Setup wizard: page 1 picks the adapter (cards with live packets/s), page 2 finds the devices
on its subnet (ARP sweep + passive discovery) and lets the user pick and name them."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Any

from PyQt5.QtCore import QSize, Qt, QTimer
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWizard,
    QWizardPage,
)

from jixiaoan.config import Config, normalize_mac, save_config
from jixiaoan.engine.batch import Device
from jixiaoan.ui import icons
from jixiaoan.ui.adapter_cards import AdapterCard, CounterRates, preferred_adapter
from jixiaoan.ui.scan_worker import PassiveWatch, ScanJob, Scanner

SCAN_TIMEOUT_S = 2.0
DEFAULT_LEARN_S = 120  # suggested site baseline (site_gate): two quiet minutes
COL_NAME, COL_IP, COL_MAC, COL_VENDOR, COL_SEEN = range(5)


def _default_interfaces() -> list:
    from jixiaoan.capture.interfaces import list_interfaces

    return list_interfaces()


class AdapterPage(QWizardPage):
    """Adapters as cards; the hotspot adapter is pre-selected."""

    def __init__(self, list_interfaces: Callable[[], list], rates: CounterRates) -> None:
        super().__init__()
        self.setTitle("Which network adapter serves your IoT devices?")
        self.setSubTitle("Pick the adapter of the hotspot the devices connect to. The graph "
                         "shows its packets per second right now.")
        self._list_interfaces = list_interfaces
        self.rates = rates
        layout = QVBoxLayout(self)
        self.list = QListWidget()
        self.list.setSelectionMode(QAbstractItemView.SingleSelection)
        self.list.setSpacing(3)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.list.setResizeMode(QListWidget.Adjust)
        self.list.setStyleSheet("QListWidget::item:selected { background: #d8e8ff; }")
        layout.addWidget(self.list)
        self.refresh_button = QPushButton("Refresh adapters")
        self.refresh_button.clicked.connect(self.refresh)
        layout.addWidget(self.refresh_button, 0, Qt.AlignLeft)
        self.cards: list[AdapterCard] = []
        self.list.currentRowChanged.connect(lambda _: self.completeChanged.emit())
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.tick)
        self.refresh()
        self.timer.start(1000)

    def refresh(self) -> None:
        """Ask the OS for the adapters again."""
        try:
            infos = list(self._list_interfaces())
        except Exception as exc:  # noqa: BLE001 - shown, not raised
            infos = []
            QMessageBox.warning(self, "Adapters", f"Cannot list the network adapters: {exc}")
        self.list.clear()
        self.cards = []
        for info in infos:
            card = AdapterCard(info)
            item = QListWidgetItem()
            item.setSizeHint(QSize(0, card.sizeHint().height()))
            self.list.addItem(item)
            self.list.setItemWidget(item, card)
            self.cards.append(card)
        self.list.setCurrentRow(preferred_adapter(infos))
        self.tick()

    def tick(self) -> None:
        """Feed the sparklines one packets/s reading."""
        rates = self.rates.sample(time.monotonic())
        for card in self.cards:
            if rates:
                card.add_rate(rates.get(card.info.name, 0.0))

    def chosen(self) -> Any:
        """The selected adapter's InterfaceInfo, None when none."""
        row = self.list.currentRow()
        return self.cards[row].info if 0 <= row < len(self.cards) else None

    def isComplete(self) -> bool:  # noqa: N802 - Qt override
        return self.chosen() is not None


class DevicePage(QWizardPage):
    """Scans the adapter's subnet and lists the devices found, live."""

    def __init__(self, cfg: Config, scanner: Scanner | None,
                 passive_factory: Callable[[str, list[str]], Any] | None) -> None:
        super().__init__()
        self.setTitle("Which devices should Ji XiaoAn watch?")
        self.setSubTitle("Devices appear as they answer the scan or show up in the traffic. "
                         "Tick the ones to watch; names you type are remembered.")
        self.cfg = cfg
        self.passive_factory = passive_factory or (
            lambda iface, nets: PassiveWatch(iface, nets).start())
        self.passive: Any = None
        self.rows: dict[str, int] = {}  # MAC (or IP) -> table row
        layout = QVBoxLayout(self)
        status = QHBoxLayout()
        self.status = QLabel("")
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        status.addWidget(self.status, 1)
        status.addWidget(self.progress)
        layout.addLayout(status)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["Name", "IP address", "MAC address", "Vendor",
                                              "Found by"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        for col, width in ((COL_NAME, 180), (COL_IP, 120), (COL_MAC, 140), (COL_VENDOR, 160)):
            self.table.setColumnWidth(col, width)
        self.table.itemChanged.connect(lambda _: self.completeChanged.emit())
        layout.addWidget(self.table)
        buttons = QHBoxLayout()
        self.all_button = QPushButton("Select all")
        self.none_button = QPushButton("Select none")
        self.rescan_button = QPushButton("Scan again")
        for b in (self.all_button, self.none_button, self.rescan_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        learn = QHBoxLayout()
        self.learn_check = QCheckBox("First learn this network's normal traffic for")
        self.learn_check.setChecked(True)
        self.learn_check.setToolTip(
            "Recommended. The model learns what is usual on this network and afterwards flags "
            "only traffic unlike it (and anything far from it, as 'anomaly'). Alerts wait until "
            "then, so start when no attack is under way.")
        self.learn_seconds = QSpinBox()
        self.learn_seconds.setRange(10, 3600)
        self.learn_seconds.setSuffix(" s")
        self.learn_seconds.setValue(int(cfg.adapt_after_s) or DEFAULT_LEARN_S)
        self.learn_check.toggled.connect(self.learn_seconds.setEnabled)
        learn.addWidget(self.learn_check)
        learn.addWidget(self.learn_seconds)
        learn.addStretch(1)
        layout.addLayout(learn)
        self.all_button.clicked.connect(lambda: self.set_all(True))
        self.none_button.clicked.connect(lambda: self.set_all(False))
        self.rescan_button.clicked.connect(self.start_scan)
        self.job = ScanJob(scanner, self)
        self.job.found.connect(self.add_device)
        self.job.finished.connect(self._scan_finished)
        self.passive_timer = QTimer(self)
        self.passive_timer.timeout.connect(self._poll_passive)
        self.progress_timer = QTimer(self)
        self.progress_timer.timeout.connect(self._advance)
        self._scan_started = 0.0

    def iface(self) -> Any:
        return self.wizard().adapter_page.chosen()

    def initializePage(self) -> None:  # noqa: N802 - Qt override
        self.table.setRowCount(0)
        self.rows.clear()
        self.start_scan()
        self.start_passive()

    def start_scan(self) -> None:
        """Sweep the subnet (again)."""
        info = self.iface()
        if info is None or not self.job.run(info.name, SCAN_TIMEOUT_S):
            return
        net = ", ".join(str(ipaddress.ip_interface(a).network) for a in info.ipv4[:1])
        self.status.setText(f"Scanning {net or info.name}...")
        self.progress.setValue(0)
        self._scan_started = time.monotonic()
        self.progress_timer.start(100)
        self.rescan_button.setEnabled(False)

    def _advance(self) -> None:
        expected = SCAN_TIMEOUT_S * 2 + 1.0  # srp with one retry, then reverse DNS
        done = (time.monotonic() - self._scan_started) / expected
        self.progress.setValue(min(95, int(done * 100)))

    def _scan_finished(self, error: str) -> None:
        self.progress_timer.stop()
        self.progress.setValue(100)
        self.rescan_button.setEnabled(True)
        found = len(self.rows)
        if error:
            self.status.setText(f"Scan failed: {error}. Devices seen in the traffic still "
                                "appear below.")
            self.status.setStyleSheet("color: #b00000;")
        else:
            self.status.setStyleSheet("")
            self.status.setText(f"Scan done: {found} device(s). Listening for more...")

    def start_passive(self) -> None:
        """Listen for devices in the traffic while the page is open."""
        self.stop_passive()
        info = self.iface()
        if info is None:
            return
        nets = [str(ipaddress.ip_interface(a).network) for a in info.ipv4]
        try:
            self.passive = self.passive_factory(info.name, nets)
        except Exception as exc:  # noqa: BLE001 - no rights etc.: the scan may still work
            self.passive = None
            self.setSubTitle(self.subTitle() + f"\n(Passive discovery unavailable: {exc})")
            return
        self.passive_timer.start(500)

    def stop_passive(self) -> None:
        """Stop listening."""
        self.passive_timer.stop()
        if self.passive is not None:
            self.passive.stop()
            self.passive = None

    def _poll_passive(self) -> None:
        if self.passive is None:
            return
        for dev in self.passive.new_devices():
            self.add_device(dev, "traffic (" + ", ".join(sorted(dev.sources)) + ")")

    def add_device(self, dev: Any, how: str = "scan") -> None:
        """Add a found device, or fill in what a later answer knows (hostname, IP)."""
        mac = normalize_mac(getattr(dev, "mac", "") or "") or ""
        ip = getattr(dev, "ip", "") or ""
        key = mac or ip
        if not key:
            return
        self.table.blockSignals(True)
        try:
            row = self.rows.get(key)
            if row is None:
                row = self.table.rowCount()
                self.table.insertRow(row)
                self.rows[key] = row
                name = self.cfg.device_name(mac) if mac else ""
                name = name or getattr(dev, "hostname", "") or ""
                item = QTableWidgetItem(name)
                item.setFlags(item.flags() | Qt.ItemIsUserCheckable | Qt.ItemIsEditable)
                item.setCheckState(Qt.Checked)
                item.setToolTip("Tick to watch; double-click to rename")
                self.table.setItem(row, COL_NAME, item)
                for col, text in ((COL_IP, ip), (COL_MAC, mac),
                                  (COL_VENDOR, getattr(dev, "vendor", "")), (COL_SEEN, how)):
                    cell = QTableWidgetItem(text)
                    cell.setFlags(cell.flags() & ~Qt.ItemIsEditable)
                    self.table.setItem(row, col, cell)
            else:
                name_item = self.table.item(row, COL_NAME)
                host = getattr(dev, "hostname", "")
                if host and not name_item.text():
                    name_item.setText(host)
                if ip and not self.table.item(row, COL_IP).text():
                    self.table.item(row, COL_IP).setText(ip)
                seen = self.table.item(row, COL_SEEN)
                if how.split(" ")[0] not in seen.text():
                    seen.setText(f"{seen.text()}, {how}")
        finally:
            self.table.blockSignals(False)
        self.completeChanged.emit()

    def set_all(self, checked: bool) -> None:
        """Tick or untick every device."""
        state = Qt.Checked if checked else Qt.Unchecked
        for row in range(self.table.rowCount()):
            self.table.item(row, COL_NAME).setCheckState(state)

    def chosen(self) -> list[Device]:
        """The ticked devices with the names typed."""
        out = []
        for row in range(self.table.rowCount()):
            name = self.table.item(row, COL_NAME)
            if name.checkState() != Qt.Checked:
                continue
            out.append(Device(mac=self.table.item(row, COL_MAC).text(),
                              ip=self.table.item(row, COL_IP).text(),
                              name=name.text().strip(),
                              vendor=self.table.item(row, COL_VENDOR).text()))
        return out

    def isComplete(self) -> bool:  # noqa: N802 - Qt override
        return bool(self.chosen())

    def cleanupPage(self) -> None:  # noqa: N802 - Qt override (Back)
        self.stop_passive()


class SetupWizard(QWizard):
    """The two-page setup. After ``exec_()`` returns true: ``chosen_interface()`` and
    ``chosen_devices()``; the names typed are saved into the config file."""

    def __init__(self, cfg: Config, config_path: str | None = None,
                 list_interfaces: Callable[[], list] | None = None,
                 scanner: Scanner | None = None,
                 passive_factory: Callable[[str, list[str]], Any] | None = None,
                 counters: CounterRates | None = None, parent=None) -> None:
        super().__init__(parent)
        self.cfg = cfg
        self.config_path = config_path
        self.setWindowTitle("Ji XiaoAn setup")
        self.setWindowIcon(icons.app_icon())
        self.setWizardStyle(QWizard.ModernStyle)
        self.setPixmap(QWizard.LogoPixmap, icons.shield_pixmap(48, icons.OK_COLOR))
        self.resize(820, 600)
        self.adapter_page = AdapterPage(list_interfaces or _default_interfaces,
                                        counters or CounterRates())
        self.device_page = DevicePage(cfg, scanner, passive_factory)
        self.addPage(self.adapter_page)
        self.addPage(self.device_page)
        self.setButtonText(QWizard.FinishButton, "Start monitoring")

    def chosen_interface(self) -> str:
        """Name of the adapter to capture on."""
        info = self.adapter_page.chosen()
        return info.name if info is not None else ""

    def chosen_devices(self) -> list[Device]:
        """The devices to watch."""
        return self.device_page.chosen()

    def learn_seconds(self) -> float:
        """Seconds of site traffic to learn before alerting (0: don't learn)."""
        page = self.device_page
        return float(page.learn_seconds.value()) if page.learn_check.isChecked() else 0.0

    def remember_names(self) -> None:
        """Store the typed names (by MAC) and the learning choice in the config file."""
        changed = self.cfg.adapt_after_s != self.learn_seconds()
        self.cfg.adapt_after_s = self.learn_seconds()
        for dev in self.device_page.chosen():
            if dev.mac and self.cfg.device_name(dev.mac) != dev.name:
                self.cfg.set_device_name(dev.mac, dev.name)
                changed = True
        if changed:
            try:
                save_config(self.cfg, self.config_path)
            except OSError as exc:
                QMessageBox.warning(self, "Settings", f"Device names not saved: {exc}")

    def done(self, result: int) -> None:
        """Finish or cancel: stop listening; on finish remember the names."""
        self.device_page.stop_passive()
        self.adapter_page.timer.stop()
        if result == QWizard.Accepted:
            self.remember_names()
        super().done(result)

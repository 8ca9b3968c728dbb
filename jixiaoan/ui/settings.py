"""Settings dialog: alert rule, e-mail (SMTP, password in the keyring, test button), storage."""

from __future__ import annotations

import copy
import threading
from typing import Any

from PyQt5.QtCore import QObject, pyqtSignal
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from jixiaoan.config import (
    SMTP_SECURITY_CHOICES,
    Config,
    is_email_address,
    save_config,
)
from jixiaoan.passwords import PasswordStore
from jixiaoan.ui.monitor import ui_settings


class TestMailJob(QObject):
    """Sends the test e-mail on a worker thread; ``finished(ok, text)`` on the GUI thread."""

    finished = pyqtSignal(bool, str)

    def run(self, smtp: Any, password: str | None) -> None:
        """Start sending in the background."""
        def work() -> None:
            from jixiaoan.alerts.mailer import EmailAlerter

            try:
                alerter = EmailAlerter(smtp, lambda: password, max_attempts=1, start=False)
                ok, text = alerter.send_test()
            except Exception as exc:  # noqa: BLE001 - reported in the dialog
                ok, text = False, f"{type(exc).__name__}: {exc}"
            self.finished.emit(ok, text)

        threading.Thread(target=work, name="jixiaoan-test-mail", daemon=True).start()


def _spin(lo: float, hi: float, value: float, decimals: int = 0, suffix: str = ""):
    box = QDoubleSpinBox() if decimals else QSpinBox()
    box.setRange(lo, hi)
    if decimals:
        box.setDecimals(decimals)
    box.setValue(value)
    if suffix:
        box.setSuffix(suffix)
    return box


class SettingsDialog(QDialog):
    """Edits a copy of the Config; on OK it is validated, saved (``save_config``) and left in
    ``self.config``; the password goes to the keyring through PasswordStore."""

    def __init__(self, cfg: Config, config_path: str | None = None,
                 password_store: PasswordStore | None = None, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Ji XiaoAn settings")
        self.config = copy.deepcopy(cfg)
        self.config_path = config_path
        self.passwords = password_store or PasswordStore(cfg.smtp.account)
        a, s, st = self.config.alerts, self.config.smtp, self.config.storage
        layout = QVBoxLayout(self)

        alerts = QGroupBox("Alerts")
        f = QFormLayout(alerts)
        self.threshold = _spin(0, 100, a.threshold * 100, 1, " %")
        self.window = _spin(0.5, 3600, a.window_s, 1, " s")
        self.min_packets = _spin(0, 10_000_000, a.min_packets)
        self.cooldown = _spin(0, 86400, a.cooldown_s, 1, " s")
        self.popup = QCheckBox("Show a popup")
        self.popup.setChecked(a.popup)
        self.email = QCheckBox("Send an e-mail")
        self.email.setChecked(a.email)
        self.close_to_tray = QCheckBox("Closing the window keeps watching in the tray")
        self.close_to_tray.setChecked(ui_settings().value("close_to_tray", False, type=bool))
        f.addRow("Malicious share threshold", self.threshold)
        f.addRow("Window", self.window)
        f.addRow("Minimum packets in window", self.min_packets)
        f.addRow("Cooldown per device", self.cooldown)
        f.addRow(self.popup)
        f.addRow(self.email)
        f.addRow(self.close_to_tray)
        layout.addWidget(alerts)

        mail = QGroupBox("E-mail (SMTP)")
        f = QFormLayout(mail)
        self.server = QLineEdit(s.server)
        self.port = _spin(1, 65535, s.port)
        self.security = QComboBox()
        self.security.addItems(SMTP_SECURITY_CHOICES)
        self.security.setCurrentText(s.security)
        self.user = QLineEdit(s.user)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.Password)
        self.password.setPlaceholderText(
            "(stored in the keyring)" if self.passwords.source() != "none" else "")
        self.sender = QLineEdit(s.sender)
        self.recipients = QLineEdit(", ".join(s.recipients))
        self.recipients.setPlaceholderText("admin@example.org, ops@example.org")
        self.test_button = QPushButton("Send test e-mail")
        self.test_result = QLabel("")
        self.test_result.setWordWrap(True)
        f.addRow("Server", self.server)
        f.addRow("Port", self.port)
        f.addRow("Security", self.security)
        f.addRow("User", self.user)
        f.addRow("Password", self.password)
        f.addRow("Sender", self.sender)
        f.addRow("Recipients", self.recipients)
        f.addRow(self.test_button, self.test_result)
        layout.addWidget(mail)

        storage = QGroupBox("Storage")
        f = QFormLayout(storage)
        self.retention_days = _spin(0, 3650, st.retention_days, 1, " days")
        self.retention_rows = _spin(0, 2_000_000_000, st.retention_rows)
        f.addRow("Keep packets for (0 = forever)", self.retention_days)
        f.addRow("Keep at most rows per device (0 = no limit)", self.retention_rows)
        layout.addWidget(storage)

        model = QGroupBox("Model")
        f = QFormLayout(model)
        self.adapt_after = _spin(0, 86400, int(round(self.config.adapt_after_s)), 0, " s")
        self.adapt_after.setToolTip(
            "Learn this network's normal traffic from its first seconds of monitoring (keep "
            "them attack-free). Afterwards a packet is flagged only when it is also unlike that "
            "traffic, and traffic far from it is flagged as 'anomaly' (0 = never)")
        f.addRow("Learn normal traffic for the first (0 = never)", self.adapt_after)
        layout.addWidget(model)

        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.test_job = TestMailJob(self)
        self.test_job.finished.connect(self._test_done)
        self.test_button.clicked.connect(self.send_test)

    # ---- reading the form -------------------------------------------------------------------
    def form_config(self) -> tuple[Config, list[str]]:
        """A Config from the fields, and what is wrong with them."""
        cfg = copy.deepcopy(self.config)
        problems = []
        a, s, st = cfg.alerts, cfg.smtp, cfg.storage
        a.threshold = self.threshold.value() / 100.0
        a.clear_threshold = min(a.clear_threshold, a.threshold)
        a.window_s = float(self.window.value())
        a.min_packets = int(self.min_packets.value())
        a.cooldown_s = float(self.cooldown.value())
        a.popup = self.popup.isChecked()
        a.email = self.email.isChecked()
        s.server = self.server.text().strip()
        s.port = int(self.port.value())
        s.security = self.security.currentText()
        s.user = self.user.text().strip()
        s.sender = self.sender.text().strip()
        s.recipients = [r.strip() for r in self.recipients.text().replace(";", ",").split(",")
                        if r.strip()]
        bad = [r for r in s.recipients if not is_email_address(r)]
        if bad:
            problems.append(f"Not e-mail addresses: {', '.join(bad)}")
        if s.sender and not is_email_address(s.sender):
            problems.append(f"The sender {s.sender!r} is not an e-mail address")
        if a.email and not (s.server and s.recipients):
            problems.append("E-mail alerts need a server and at least one recipient")
        st.retention_days = float(self.retention_days.value())
        st.retention_rows = int(self.retention_rows.value())
        cfg.adapt_after_s = float(self.adapt_after.value())
        return cfg, problems

    def _password(self, cfg: Config) -> str | None:
        typed = self.password.text()
        return typed or self.passwords.for_account(cfg.smtp.account).get()

    def send_test(self) -> None:
        """Send a test e-mail with the settings as filled in (not yet saved)."""
        cfg, problems = self.form_config()
        if not cfg.smtp.server or not cfg.smtp.recipients:
            problems.append("Fill in a server and at least one recipient")
        if problems:
            self._test_done(False, "; ".join(problems))
            return
        self.test_button.setEnabled(False)
        self.test_result.setStyleSheet("")
        self.test_result.setText("Sending...")
        self.test_job.run(cfg.smtp, self._password(cfg))

    def _test_done(self, ok: bool, text: str) -> None:
        self.test_button.setEnabled(True)
        self.test_result.setStyleSheet("color: #106010;" if ok else "color: #b00000;")
        self.test_result.setText(text)
        self.last_test = (ok, text)

    def accept(self) -> None:
        """Validate, save the file and the password, then close."""
        cfg, problems = self.form_config()
        if problems:
            QMessageBox.warning(self, "Settings", "\n".join(problems))
            return
        if self.password.text():
            ok, why = self.passwords.for_account(cfg.smtp.account).set(self.password.text())
            if not ok:
                QMessageBox.warning(self, "Password not saved", why)
        try:
            save_config(cfg, self.config_path)
        except OSError as exc:
            QMessageBox.critical(self, "Settings", f"Cannot save the settings: {exc}")
            return
        ui_settings().setValue("close_to_tray", self.close_to_tray.isChecked())
        self.config = cfg
        super().accept()

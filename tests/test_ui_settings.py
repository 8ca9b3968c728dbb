"""Settings dialog: round-trip through the config file and the keyring; test e-mail against a
local aiosmtpd server (success and the server's refusal)."""

from __future__ import annotations

import socket

import pytest

pytest.importorskip("pytestqt")
aiosmtpd = pytest.importorskip("aiosmtpd")

from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402
from PyQt5.QtCore import QSettings  # noqa: E402

from jixiaoan.config import Config, load_config  # noqa: E402
from jixiaoan.passwords import PasswordStore  # noqa: E402
from jixiaoan.ui.settings import SettingsDialog  # noqa: E402


class MemoryKeyring:
    def __init__(self) -> None:
        self.data: dict = {}

    def get_password(self, service, account):
        return self.data.get((service, account))

    def set_password(self, service, account, password):
        self.data[(service, account)] = password

    def delete_password(self, service, account):
        self.data.pop((service, account), None)


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.envelopes.append(envelope)
        return "250 Message accepted"


def _auth(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"alice", b"s3cret")
    return AuthResult(success=ok, handled=False) if not ok else AuthResult(success=True)


@pytest.fixture
def smtp():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=_auth,
                            auth_require_tls=False)
    controller.start()
    yield port, inbox
    controller.stop()


@pytest.fixture(autouse=True)
def qsettings_in_tmp(tmp_path):
    QSettings.setPath(QSettings.NativeFormat, QSettings.UserScope, str(tmp_path / "qs"))


def dialog(qtbot, tmp_path, cfg=None):
    keyring = MemoryKeyring()
    store = PasswordStore("", backend=keyring, environ={})
    dlg = SettingsDialog(cfg or Config(), str(tmp_path / "config.json"), store)
    qtbot.addWidget(dlg)
    return dlg, keyring


def fill_mail(dlg, port: int, password: str) -> None:
    dlg.server.setText("127.0.0.1")
    dlg.port.setValue(port)
    dlg.security.setCurrentText("none")
    dlg.user.setText("alice")
    dlg.password.setText(password)
    dlg.sender.setText("ids@example.org")
    dlg.recipients.setText("admin@example.org; ops@example.org")


def test_settings_round_trip(qtbot, tmp_path):
    dlg, keyring = dialog(qtbot, tmp_path)
    dlg.threshold.setValue(65.0)
    dlg.window.setValue(30.0)
    dlg.min_packets.setValue(50)
    dlg.cooldown.setValue(120.0)
    dlg.email.setChecked(True)
    dlg.close_to_tray.setChecked(True)
    fill_mail(dlg, 2525, "pw-1")
    dlg.retention_days.setValue(3.0)
    dlg.retention_rows.setValue(1000)
    dlg.adapt_after.setValue(600)
    dlg.accept()
    assert dlg.result() == dlg.Accepted
    cfg, problems = load_config(tmp_path / "config.json")
    assert problems == []
    a, s = cfg.alerts, cfg.smtp
    assert (a.threshold, a.window_s, a.min_packets, a.cooldown_s, a.email) == (
        0.65, 30.0, 50, 120.0, True)
    assert (s.server, s.port, s.security, s.user, s.sender) == (
        "127.0.0.1", 2525, "none", "alice", "ids@example.org")
    assert s.recipients == ["admin@example.org", "ops@example.org"]
    assert (cfg.storage.retention_days, cfg.storage.retention_rows) == (3.0, 1000)
    assert cfg.adapt_after_s == 600.0
    assert "pw-1" not in (tmp_path / "config.json").read_text()
    assert keyring.data == {("jixiaoan-smtp", "alice@127.0.0.1"): "pw-1"}
    again, _ = dialog(qtbot, tmp_path, cfg)
    assert again.threshold.value() == 65.0 and again.recipients.text() == (
        "admin@example.org, ops@example.org")
    assert again.close_to_tray.isChecked()
    assert again.adapt_after.value() == 600


def test_bad_recipient_is_refused(qtbot, tmp_path):
    dlg, _ = dialog(qtbot, tmp_path)
    dlg.recipients.setText("not-an-address")
    _, problems = dlg.form_config()
    assert problems and "not-an-address" in problems[0]


def test_send_test_mail_success(qtbot, tmp_path, smtp):
    port, inbox = smtp
    dlg, _ = dialog(qtbot, tmp_path)
    fill_mail(dlg, port, "s3cret")
    dlg.test_button.click()
    qtbot.waitUntil(lambda: dlg.test_button.isEnabled(), timeout=20_000)
    assert dlg.last_test[0], dlg.last_test[1]
    assert "admin@example.org" in dlg.test_result.text()
    assert len(inbox.envelopes) == 1
    assert inbox.envelopes[0].rcpt_tos == ["admin@example.org", "ops@example.org"]


def test_send_test_mail_reports_the_server_error(qtbot, tmp_path, smtp):
    port, inbox = smtp
    dlg, _ = dialog(qtbot, tmp_path)
    fill_mail(dlg, port, "wrong")
    dlg.test_button.click()
    qtbot.waitUntil(lambda: dlg.test_button.isEnabled(), timeout=20_000)
    ok, text = dlg.last_test
    assert not ok and text == dlg.test_result.text()
    assert "535" in text or "auth" in text.lower()
    assert inbox.envelopes == []

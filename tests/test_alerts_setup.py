"""Alerting built from the settings: alert -> callback and e-mail, settings changes."""

from __future__ import annotations

import socket
import time

from aiosmtpd.controller import Controller

from jixiaoan.alerts.scripted import scripted_batch
from jixiaoan.alerts.setup import Alerting, mail_configured
from jixiaoan.config import Config
from jixiaoan.engine.batch import Device
from jixiaoan.passwords import PasswordStore


class Collector:
    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.envelopes.append(envelope)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def attack(t: float, n: int = 30):
    return scripted_batch(
        [t] * n, [0] * n, [-1] * n, [1] * n, devices=[Device(ip="10.0.0.7", name="doorbell")]
    )


def test_an_alert_reaches_the_popup_callback_and_the_mail_server():
    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port())
    controller.start()
    cfg = Config()
    cfg.alerts.email = True
    cfg.smtp.server, cfg.smtp.port, cfg.smtp.security = "127.0.0.1", controller.port, "none"
    cfg.smtp.sender, cfg.smtp.recipients = "ids@example.org", ["me@example.org"]
    assert mail_configured(cfg)
    alerting = Alerting(cfg, password_store=PasswordStore("x", backend=object(), environ={}))
    popups = []
    alerting.monitor.add_callback(popups.append)
    try:
        events = alerting.feed(attack(100.0))
        assert len(events) == 1 and popups == events
        end = time.monotonic() + 30
        while alerting.mailer.stats().sent < 1 and time.monotonic() < end:
            time.sleep(0.01)
        assert alerting.mailer.stats().sent == 1
        assert b"doorbell" in collector.envelopes[0].content
    finally:
        alerting.close()
        controller.stop()


def test_settings_changes_apply():
    cfg = Config()
    alerting = Alerting(cfg, n_devices=2)
    assert alerting.mailer is None  # e-mail is off by default
    cfg.alerts.threshold, cfg.alerts.clear_threshold, cfg.alerts.window_s = 1.0, 0.5, 3.0
    alerting.apply(cfg)
    assert alerting.monitor.policy.threshold == 1.0
    assert alerting.tracker.window_s == 3.0 and alerting.monitor.tracker is alerting.tracker
    cfg.alerts.threshold = 1.0
    half = scripted_batch([5.0] * 40, [0] * 40, [-1] * 40, [1, 0] * 20)
    assert alerting.feed(half) == []  # 50 % is below the new 100 % threshold
    alerting.close()

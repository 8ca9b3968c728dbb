"""EmailAlerter against a local aiosmtpd server, a closed port and a server that never answers."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from collections.abc import Callable

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from jixiaoan.alerts.mailer import EmailAlerter, build_alert_message, clean_text
from jixiaoan.alerts.policy import AlertEvent
from jixiaoan.alerts.rates import Peer
from jixiaoan.config import SmtpSettings
from jixiaoan.engine.batch import Device

RECIPIENTS = ["admin@example.org", "ops@example.org"]


def wait_for(condition: Callable[[], bool], limit_s: float = 30.0) -> bool:
    """Poll until ``condition`` holds (a bound on waiting, not a timing assertion)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collector:
    """aiosmtpd handler that keeps every message."""

    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.envelopes.append(envelope)
        return "250 Message accepted"

    def messages(self) -> list[email.message.EmailMessage]:
        parse = email.message_from_bytes
        return [parse(e.content, policy=email.policy.default) for e in self.envelopes]


class Passwords:
    """aiosmtpd authenticator accepting one user/password pair and remembering attempts."""

    def __init__(self, user: str, password: str) -> None:
        self.good = (user.encode(), password.encode())
        self.tried: list[tuple[bytes, bytes]] = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            self.tried.append((auth_data.login, auth_data.password))
            if (auth_data.login, auth_data.password) == self.good:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


@pytest.fixture
def smtp_server():
    """A local SMTP server (plain, AUTH allowed without TLS for the tests)."""
    collector, passwords = Collector(), Passwords("alice", "s3cret")
    controller = Controller(
        collector, hostname="127.0.0.1", port=free_port(),
        authenticator=passwords, auth_require_tls=False,
    )
    controller.start()
    try:
        yield controller, collector, passwords
    finally:
        controller.stop()


class SilentServer:
    """Accepts TCP connections and never says a word (a hung mail server)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
        for conn in self.connections:
            conn.close()


def settings(port: int, **kw) -> SmtpSettings:
    base = dict(server="127.0.0.1", port=port, security="none", sender="ids@example.org",
                recipients=list(RECIPIENTS), timeout_s=5.0)
    return SmtpSettings(**{**base, **kw})


def event(name="客厅 camera", vendor="Acme Cameras", family="mirai") -> AlertEvent:
    return AlertEvent(
        device_index=3,
        device=Device(mac="02:11:22:33:44:55", ip="192.168.43.17", name=name, vendor=vendor),
        time=1_700_000_000.0,
        window_s=10.0,
        window_share=0.734,
        total_share=0.125,
        window_packets=150,
        window_malicious=110,
        total_packets=880,
        top_families=[(family, 90), ("port scan", 20)],
        top_peers=[Peer("203.0.113.66", "02:aa:bb:cc:dd:ee", 70), Peer("198.51.100.9", "", 40)],
    )


def test_alert_email_arrives_with_device_rates_families_and_peers(smtp_server):
    controller, collector, _ = smtp_server
    with EmailAlerter(settings(controller.port), backoff_s=0.01) as alerter:
        assert alerter.submit(event()) is True
        assert wait_for(lambda: alerter.stats().sent == 1)
    (envelope,) = collector.envelopes
    assert envelope.mail_from == "ids@example.org" and envelope.rcpt_tos == RECIPIENTS
    (msg,) = collector.messages()
    subject, body = msg["Subject"], msg.get_content()
    assert "客厅 camera" in subject and "192.168.43.17" in subject and "73%" in subject
    for text in ("客厅 camera", "192.168.43.17", "02:11:22:33:44:55", "Acme Cameras",
                 "73.4%", "110 of 150", "12.5%", "880", "last 10 s", "mirai: 90 packets",
                 "port scan: 20 packets", "203.0.113.66 (02:aa:bb:cc:dd:ee): 70 packets",
                 "198.51.100.9: 40 packets", "2023-11-14T22:13:20+00:00"):
        assert text in body, text
    assert msg["To"] == ", ".join(RECIPIENTS)
    stats = alerter.stats()
    assert (stats.sent, stats.failed, stats.dropped, stats.attempts) == (1, 0, 0, 1)


def test_header_injection_through_device_text_is_neutralised(smtp_server):
    controller, collector, _ = smtp_server
    evil = event(
        name="cam\r\nBcc: victim@evil.example\r\nX-Evil: yes",
        vendor="Acme\nReply-To: x@evil.example",
        family="mirai\r\n\r\nfake body",
    )
    msg = build_alert_message(evil, "ids@example.org", RECIPIENTS)
    for key, value in msg.items():
        assert "\r" not in value and "\n" not in value, key
    with EmailAlerter(settings(controller.port), backoff_s=0.01) as alerter:
        alerter.submit(evil)
        assert wait_for(lambda: alerter.stats().sent == 1)
    (envelope,) = collector.envelopes
    assert envelope.rcpt_tos == RECIPIENTS
    (received,) = collector.messages()
    for header in ("Bcc", "X-Evil", "Reply-To"):
        assert received[header] is None
    assert "cam Bcc: victim@evil.example X-Evil: yes" in received["Subject"]
    body = received.get_content()
    assert "Acme Reply-To: x@evil.example" in body and "mirai fake body: 90" in body
    assert clean_text("a\x00b\u2028c\u202ed\x7f") == "a b c d"


def test_submit_returns_while_busy_and_a_full_queue_drops(smtp_server):
    controller, collector, passwords = smtp_server
    entered, release = threading.Event(), threading.Event()

    def slow_password() -> str:
        entered.set()
        release.wait(30)
        return "s3cret"

    alerter = EmailAlerter(settings(controller.port, user="alice"), slow_password, queue_size=1)
    try:
        assert alerter.submit(event(name="one"))
        assert entered.wait(30)  # the sender thread is now stuck in the first send
        assert alerter.submit(event(name="two")) is True  # queued
        assert alerter.submit(event(name="three")) is False  # queue full
        assert alerter.stats().dropped == 1 and alerter.stats().queued == 1
        release.set()
        assert wait_for(lambda: alerter.stats().sent == 2)
    finally:
        release.set()
        alerter.stop()
    assert [m["Subject"].split(" (")[0] for m in collector.messages()] == [
        "[Ji XiaoAn] Alert: one", "[Ji XiaoAn] Alert: two"]
    assert passwords.tried == [(b"alice", b"s3cret")] * 2


def test_server_down_is_retried_then_counted_as_failed():
    port = free_port()  # nothing listens here any more
    with EmailAlerter(settings(port), max_attempts=3, backoff_s=0.01) as alerter:
        assert alerter.submit(event()) is True
        assert wait_for(lambda: alerter.stats().failed == 1)
        stats = alerter.stats()
    assert (stats.sent, stats.attempts) == (0, 3)
    assert "refused" in stats.last_error


def test_hung_server_never_blocks_the_caller():
    server = SilentServer()
    alerter = EmailAlerter(settings(server.port, timeout_s=60), max_attempts=1)
    try:
        assert alerter.submit(event()) is True
        assert wait_for(lambda: len(server.connections) == 1)
        # the sender waits for a greeting that will not come; the caller goes on queueing
        assert alerter.submit(event()) is True
        stats = alerter.stats()
        assert (stats.sent, stats.failed) == (0, 0)
    finally:
        server.close()  # the hung send now fails, so the thread can end
        alerter.stop()


def test_hung_server_times_out_and_is_retried():
    server = SilentServer()
    alerter = EmailAlerter(settings(server.port, timeout_s=0.3), max_attempts=2, backoff_s=0.01)
    try:
        alerter.submit(event())
        assert wait_for(lambda: alerter.stats().failed == 1)
        stats = alerter.stats()
        assert (stats.sent, stats.attempts) == (0, 2)
        assert len(server.connections) == 2
        assert "timed out" in stats.last_error
    finally:
        server.close()
        alerter.stop()


def test_send_test_reports_success_and_the_servers_errors(smtp_server):
    controller, collector, _ = smtp_server
    ok, text = EmailAlerter(settings(controller.port), start=False).send_test()
    assert ok and "admin@example.org" in text
    assert collector.messages()[0]["Subject"] == "[Ji XiaoAn] Test e-mail"

    def check(smtp: SmtpSettings, password: str | None, expected: str) -> None:
        ok, text = EmailAlerter(smtp, lambda: password, start=False).send_test()
        assert not ok and expected in text, text

    check(settings(controller.port, user="alice"), "wrong", "535")
    check(settings(controller.port, security="starttls"), None, "STARTTLS")
    check(settings(free_port()), None, "refused")
    check(settings(controller.port, recipients=[]), None, "no recipients")
    check(settings(controller.port, sender="ids@example.org\r\nBcc: x@y.z"), None, "address")
    check(settings(controller.port, server=""), None, "no SMTP server")
    check(settings(controller.port, recipients=["a@example.org, evil@x.y"]), None, "address")
    ok, _ = EmailAlerter(settings(controller.port, user="alice"), lambda: "s3cret",
                         start=False).send_test()
    assert ok
    assert len(collector.envelopes) == 2  # only the two successful tests got through


def test_a_refused_login_is_not_retried(smtp_server):
    controller, collector, passwords = smtp_server
    smtp = settings(controller.port, user="alice")
    with EmailAlerter(smtp, lambda: "wrong", max_attempts=3, backoff_s=0.01) as alerter:
        alerter.submit(event())
        assert wait_for(lambda: alerter.stats().failed == 1)
        stats = alerter.stats()
    assert (stats.attempts, stats.sent) == (1, 0) and "535" in stats.last_error
    # smtplib itself tries each AUTH mechanism the server offers, within the one attempt
    assert set(passwords.tried) == {(b"alice", b"wrong")} and collector.envelopes == []

"""Alert e-mails: a sender thread with its own bounded queue, retries and timeouts.

``EmailAlerter.submit`` never blocks: it queues the event (or counts a drop when the queue is
full) and returns. The sender thread connects with STARTTLS, implicit TLS (``ssl``) or plain
SMTP (``none``), with the configured timeout on every socket operation, and retries a failed
send a limited number of times with exponential backoff. Every piece of text taken from the
network or the user (device names, vendors, attack names) is stripped of control characters
before it goes into the message, so it cannot add headers.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import smtplib
import socket
import ssl
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from jixiaoan.alerts.policy import AlertEvent
from jixiaoan.config import is_email_address

log = logging.getLogger(__name__)

PasswordProvider = Callable[[], str | None]


def clean_text(text: object, limit: int = 200) -> str:
    """One line of printable text: control, format and line/paragraph separator characters
    become spaces, runs of spaces collapse, and the result is cut to ``limit`` characters."""
    out = []
    for ch in str(text):
        cat = unicodedata.category(ch)
        out.append(" " if cat in ("Cc", "Cf", "Zl", "Zp", "Cs") else ch)
    return " ".join("".join(out).split())[:limit]


def _check_address(address: str) -> str:
    if not is_email_address(address):
        raise ValueError(f"not a usable e-mail address: {address!r}")
    return address


def build_alert_message(event: AlertEvent, sender: str, recipients: list[str]) -> EmailMessage:
    """The alert e-mail for ``event`` (subject and body name the device and the rates)."""
    dev = event.device
    name = clean_text(dev.name) or "(no name)"
    ip, mac, vendor = clean_text(dev.ip) or "?", clean_text(dev.mac) or "?", clean_text(dev.vendor)
    label = clean_text(dev.label) or f"device {event.device_index}"
    families = [(clean_text(f, 60), c) for f, c in event.top_families]
    msg = _envelope(sender, recipients)
    msg["Subject"] = clean_text(
        f"[Ji XiaoAn] Alert: {label} ({ip}) {event.window_share:.0%} malicious traffic", 250
    )
    lines = [
        "Ji XiaoAn detected malicious traffic on a watched device.",
        "",
        f"Device:  {name}",
        f"IP:      {ip}",
        f"MAC:     {mac}",
        f"Vendor:  {vendor or 'unknown'}",
        f"Time:    {event.when}",
        "",
        f"Malicious share, last {event.window_s:g} s: {event.window_share:.1%} "
        f"({event.window_malicious} of {event.window_packets} classified packets)",
        f"Malicious share since start: {event.total_share:.1%} "
        f"(of {event.total_packets} classified packets)",
        "",
        "Top attack families in the window:",
        *([f"  - {f}: {c} packets" for f, c in families] or ["  (none recorded)"]),
        "",
        "Top peers of the malicious packets in the window:",
        *(
            [f"  - {clean_text(p.label, 80)}: {p.packets} packets" for p in event.top_peers]
            or ["  (none recorded)"]
        ),
        "",
        "-- ",
        "Sent by Ji XiaoAn. Change the alert settings in the application.",
    ]
    msg.set_content("\n".join(lines) + "\n")
    return msg


def build_test_message(sender: str, recipients: list[str]) -> EmailMessage:
    """The e-mail sent by the settings dialog's test button."""
    msg = _envelope(sender, recipients)
    msg["Subject"] = "[Ji XiaoAn] Test e-mail"
    msg.set_content(
        "This is a test e-mail from Ji XiaoAn. Alert e-mails will arrive like this one.\n"
    )
    return msg


def _envelope(sender: str, recipients: list[str]) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = _check_address(sender)
    msg["To"] = ", ".join(_check_address(r) for r in recipients)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid("jixiaoan", domain=sender.rpartition("@")[2] or "localhost")
    return msg


@dataclass
class MailerStats:
    """Counters for the status line and the GUI."""

    sent: int = 0
    failed: int = 0
    dropped: int = 0
    attempts: int = 0
    queued: int = 0
    last_error: str = ""
    last_error_time: float = 0.0


class EmailAlerter:
    """Sends alert e-mails from its own daemon thread (see the module docstring).

    ``smtp_settings`` has the fields of ``jixiaoan.config.SmtpSettings`` (server, port,
    security, user, sender, recipients, timeout_s); ``password_provider`` is called before each
    attempt (e.g. ``PasswordStore(...).get``), so a changed password applies at once.
    """

    def __init__(
        self,
        smtp_settings: Any,
        password_provider: PasswordProvider | None = None,
        queue_size: int = 100,
        max_attempts: int = 3,
        backoff_s: float = 5.0,
        max_backoff_s: float = 300.0,
        ssl_context: ssl.SSLContext | None = None,
        start: bool = True,
    ) -> None:
        self.settings = smtp_settings
        self._password = password_provider or (lambda: None)
        self.max_attempts = max(1, int(max_attempts))
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.ssl_context = ssl_context
        self._queue: queue.Queue[AlertEvent | None] = queue.Queue(maxsize=max(1, queue_size))
        self._stats = MailerStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sender thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="jixiaoan-mailer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to finish (queued e-mails are abandoned) and wait up to ``timeout``.
        A send blocked on a dead server ends at its own socket timeout."""
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> EmailAlerter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def update_settings(self, smtp_settings: Any) -> None:
        """Use new server settings from the next attempt on."""
        with self._lock:
            self.settings = smtp_settings

    # -- submitting -------------------------------------------------------------------------

    def submit(self, event: AlertEvent) -> bool:
        """Queue an alert e-mail; returns at once. False (and a counted drop) when full."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            with self._lock:
                self._stats.dropped += 1
            log.warning("alert e-mail queue full; dropped the alert for %s", event.device.label)
            return False
        return True

    def __call__(self, event: AlertEvent) -> None:
        """So the alerter can be registered directly as an AlertMonitor callback."""
        self.submit(event)

    def stats(self) -> MailerStats:
        """A copy of the counters."""
        with self._lock:
            s = MailerStats(**vars(self._stats))
        s.queued = self._queue.qsize()
        return s

    # -- sending ----------------------------------------------------------------------------

    def send_test(self) -> tuple[bool, str]:
        """Send a test e-mail now, on the calling thread (one attempt, bounded by the
        timeout); returns (True, confirmation) or (False, the server's or system's error)."""
        settings = self.settings
        try:
            msg = build_test_message(self._sender(settings), list(settings.recipients))
            self._deliver(msg, settings)
        except Exception as exc:
            return False, describe_error(exc)
        return True, f"Test e-mail sent to {', '.join(settings.recipients)}."

    def _sender(self, settings: Any) -> str:
        return settings.sender or settings.user

    def _run(self) -> None:
        while not self._stop.is_set():
            event = self._queue.get()
            if event is None:
                continue
            try:
                self._send_with_retries(event)
            except Exception:  # never let the sender thread die
                log.exception("alert e-mail sender failed")

    def _send_with_retries(self, event: AlertEvent) -> None:
        delay = self.backoff_s
        for attempt in range(1, self.max_attempts + 1):
            with self._lock:
                settings = self.settings
                self._stats.attempts += 1
            try:
                msg = build_alert_message(event, self._sender(settings), list(settings.recipients))
                self._deliver(msg, settings)
            except Exception as exc:
                error = describe_error(exc)
                log.warning(
                    "alert e-mail attempt %d/%d failed: %s", attempt, self.max_attempts, error
                )
                with self._lock:
                    self._stats.last_error = error
                    self._stats.last_error_time = time.time()
                if is_permanent(exc) or attempt == self.max_attempts:
                    break  # a bad address or a refused login will not get better
                if self._stop.wait(delay):
                    break
                delay = min(delay * 2, self.max_backoff_s)
            else:
                with self._lock:
                    self._stats.sent += 1
                return
        with self._lock:
            self._stats.failed += 1

    def _deliver(self, msg: EmailMessage, settings: Any) -> None:
        """One connection, one message; raises on any failure."""
        if not settings.server:
            raise ValueError("no SMTP server configured")
        if not settings.recipients:
            raise ValueError("no recipients configured")
        if settings.security not in ("starttls", "ssl", "none"):
            raise ValueError(f"unknown SMTP security {settings.security!r}")
        timeout = float(settings.timeout_s)
        host, port = settings.server, int(settings.port)
        local = socket.gethostname() or "localhost"  # no DNS lookup, unlike smtplib's default
        context = self.ssl_context or ssl.create_default_context()
        if settings.security == "ssl":
            client = smtplib.SMTP_SSL(host, port, local, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(host, port, local, timeout=timeout)
        with client:
            client.ehlo()
            if settings.security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if settings.user:
                password = self._password_or_empty()
                client.login(settings.user, password)
            client.send_message(msg)

    def _password_or_empty(self) -> str:
        try:
            return self._password() or ""
        except Exception:
            log.exception("SMTP password provider failed")
            return ""


def is_permanent(exc: BaseException) -> bool:
    """Failures that a retry cannot fix: bad settings, a 5xx reply, a missing server feature,
    a certificate that does not verify."""
    if isinstance(exc, ValueError | smtplib.SMTPNotSupportedError | ssl.SSLCertVerificationError):
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return True
    return isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code >= 500


def describe_error(exc: BaseException) -> str:
    """Human-readable text for a failed send, with the server's reply when there is one."""
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        return f"server replied {exc.smtp_code}: {text}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        parts = [f"{r}: {c} {m.decode('utf-8', 'replace')}" for r, (c, m) in exc.recipients.items()]
        return "recipients refused: " + "; ".join(parts)
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"timed out waiting for the server ({exc})"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by the server ({exc})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

"""Alert e-mails from a running MonitorSession: delivered when the server works, retried when
it is down or hangs, and never slowing capture or processing down (counts, not timings)."""

from __future__ import annotations

import email
import email.policy
import threading
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.capture.pcapwriter import PcapWriter
from jixiaoan.config import Config
from jixiaoan.engine.batch import Device
from jixiaoan.engine.offline import discover_devices
from tests.test_alerts_mailer import SilentServer, free_port
from tests.test_runtime_live import ATTACK, ATTACKER, DATA, VICTIM, session_for, wait_for

BENIGN = "zeek/wikipedia.pcap"
RECIPIENT = "admin@example.org"


class Inbox:
    """aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.raw.append(envelope.content)
        return "250 OK"

    def messages(self):
        return [email.message_from_bytes(r, policy=email.policy.default) for r in self.raw]


def mail_config(port: int) -> Config:
    cfg = Config()
    cfg.smtp.server, cfg.smtp.port, cfg.smtp.security = "127.0.0.1", port, "none"
    cfg.smtp.sender, cfg.smtp.recipients, cfg.smtp.timeout_s = "ids@example.org", [RECIPIENT], 1.0
    cfg.alerts.email = True
    return cfg


@pytest.fixture(scope="module")
def attack_then_benign(tmp_path_factory) -> tuple[Path, int]:
    """The VNC scan followed by ordinary web traffic, as one capture (times follow on)."""
    path = tmp_path_factory.mktemp("mail") / "scan-then-web.pcap"
    written, end = 0, None
    with PcapWriter(str(path), linktype=1) as out:
        for name in (ATTACK, BENIGN):
            batches = list(read_capture(str(DATA / name)))
            shift = 0.0 if end is None else end + 0.05 - float(batches[0].ts[0])
            for frames in batches:
                frames.ts = frames.ts + shift
                out.write(frames)
                written += len(frames)
                end = float(frames.ts.max())
    return path, written


def run_replay(cfg: Config, capture: Path, tmp_path: Path, speed: float = 2.0):
    """Replay ``capture`` at twice its pace through a session with a tight queue (one packet per
    batch, 64 batches: a worker held up by the mailer for its 3 attempts would overflow it).
    Returns the session, still running, once the replay is through; the caller stops it."""
    devices = [Device(ip=ATTACKER, name="attacker")]
    found, _ = discover_devices(str(DATA / BENIGN))
    devices += [d for d in found if d.ip not in (ATTACKER, VICTIM)]
    session, _ = session_for(
        cfg, tmp_path, replay=str(capture), speed=speed, devices=devices, min_packets=5,
        queue_batches=64, capture_batch_packets=1,
    )
    mailer = session.alerting.mailer
    assert mailer is not None
    mailer.backoff_s = 0.2  # retry soon (the default waits 5 s)
    session.start()  # warms the engine up before the paced replay begins
    if not session.wait_finished(timeout=120):
        session.stop()
        raise AssertionError("the replay did not finish")
    return session


def test_an_alert_during_a_replay_sends_the_e_mail(attack_then_benign, tmp_path):
    capture, total = attack_then_benign
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        session = run_replay(mail_config(controller.port), capture, tmp_path)
        try:
            assert wait_for(lambda: len(inbox.raw) >= 1, 30)
            status = session.status()
        finally:
            session.stop()
    finally:
        controller.stop()
    assert (status.classified, status.dropped, status.alerts_fired) == (total, 0, 1)
    assert (status.mails_sent, status.mails_failed) == (1, 0)
    (msg,) = inbox.messages()
    assert msg["To"] == RECIPIENT
    assert ATTACKER in msg["Subject"] and "attacker" in msg["Subject"]
    assert "100.0%" in msg.get_content()


@pytest.mark.parametrize("server", ["down", "hanging"])
def test_a_dead_mail_server_does_not_slow_processing_and_the_alert_is_retried(
    attack_then_benign, tmp_path, server, monkeypatch
):
    """Counts, not timings: the replay runs as fast as the engine goes (a blocking queue, so a
    loaded machine cannot drop packets), and every SMTP connection must be opened by the
    mailer's own thread, never by the thread that processes packets."""
    import smtplib

    smtp_threads: list[str] = []
    real_connect = smtplib.SMTP.connect

    def recording_connect(self, *args, **kwargs):
        smtp_threads.append(threading.current_thread().name)
        return real_connect(self, *args, **kwargs)

    monkeypatch.setattr(smtplib.SMTP, "connect", recording_connect)
    capture, total = attack_then_benign
    hung = SilentServer() if server == "hanging" else None
    port = hung.port if hung else free_port()  # nothing listens on a fresh free port
    try:
        session = run_replay(mail_config(port), capture, tmp_path, speed=0)
        try:
            status = session.status()
            assert wait_for(lambda: session.mail_stats().attempts >= 2, 30)
            worker = session.worker._thread.name
        finally:
            session.stop()
    finally:
        if hung:
            hung.close()
    # every packet went through while the mailer was failing
    assert (status.captured, status.classified, status.dropped) == (total, total, 0)
    assert status.alerts_fired == 1
    final = session.mail_stats()
    assert final.sent == 0 and final.attempts >= 2 and final.last_error
    assert len(smtp_threads) >= 2 and worker not in smtp_threads
    assert all(name == smtp_threads[0] for name in smtp_threads)

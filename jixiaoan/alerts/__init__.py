"""Alerts: per-device malicious rates, the alert policy, and alert e-mails.

Typical wiring (``jixiaoan.alerts.setup.Alerting`` does this from a ``Config``)::

    tracker = RateTracker(n_devices, window_s=cfg.alerts.window_s)
    monitor = AlertMonitor(tracker, AlertPolicy.from_settings(cfg.alerts))
    mailer = EmailAlerter(cfg.smtp, PasswordStore(cfg.smtp.account).get)
    monitor.add_callback(mailer)          # submit() never blocks
    monitor.add_callback(show_popup)      # runs on the caller's thread: hop to the GUI thread
    for batch in classified_batches:      # engine worker thread
        monitor.feed(batch)               # observe + evaluate
    monitor.evaluate(now=time.time())     # live capture: also on a 1 s timer, so that a
                                          # device that fell silent re-arms
    tracker.snapshot().devices()          # status line / GUI: packets/s, shares
"""

from jixiaoan.alerts.mailer import EmailAlerter, MailerStats
from jixiaoan.alerts.policy import AlertEvent, AlertMonitor, AlertPolicy
from jixiaoan.alerts.rates import DeviceRate, Peer, RateSnapshot, RateTracker

__all__ = [
    "AlertEvent",
    "AlertMonitor",
    "AlertPolicy",
    "DeviceRate",
    "EmailAlerter",
    "MailerStats",
    "Peer",
    "RateSnapshot",
    "RateTracker",
]

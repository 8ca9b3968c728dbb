"""Alerts: per-device malicious rates, the alert policy, and alert e-mails."""

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

"""Wire the alert stage from the user's settings: tracker, monitor and (optionally) the mailer.

The CLI and the GUI build one ``Alerting`` from ``jixiaoan.config.Config``, feed it every
ClassifiedBatch, register their own callbacks (popup, log line) on ``monitor``, and call
``apply`` when the settings change.
"""

from __future__ import annotations

import logging

from jixiaoan.alerts.mailer import EmailAlerter
from jixiaoan.alerts.policy import AlertEvent, AlertMonitor, AlertPolicy
from jixiaoan.alerts.rates import RateTracker
from jixiaoan.config import Config
from jixiaoan.engine.batch import ClassifiedBatch
from jixiaoan.passwords import PasswordStore

log = logging.getLogger(__name__)


def mail_configured(cfg: Config) -> bool:
    """Whether alert e-mails are switched on and have somewhere to go."""
    return bool(cfg.alerts.email and cfg.smtp.server and cfg.smtp.recipients)


class Alerting:
    """The alert stage: per-device rates, the policy, and the e-mail sender when enabled."""

    def __init__(
        self,
        cfg: Config,
        n_devices: int = 0,
        password_store: PasswordStore | None = None,
    ) -> None:
        self.tracker = RateTracker(n_devices, cfg.alerts.window_s)
        self.monitor = AlertMonitor(self.tracker, AlertPolicy.from_settings(cfg.alerts))
        self._passwords = password_store or PasswordStore(cfg.smtp.account)
        self.mailer: EmailAlerter | None = None
        self.monitor.add_callback(self._mail)
        self.apply(cfg)

    def feed(self, batch: ClassifiedBatch) -> list[AlertEvent]:
        """Count a batch and evaluate the policy (callbacks run on this thread)."""
        return self.monitor.feed(batch)

    def apply(self, cfg: Config) -> None:
        """Use changed settings: policy at once; a new window restarts the rate counts."""
        self.monitor.set_policy(AlertPolicy.from_settings(cfg.alerts))
        if cfg.alerts.window_s != self.tracker.window_s:
            self.tracker = RateTracker(len(self.tracker.snapshot()), cfg.alerts.window_s)
            self.monitor.tracker = self.tracker
        if self._passwords.account != cfg.smtp.account:
            self._passwords = self._passwords.for_account(cfg.smtp.account)
        if not mail_configured(cfg):
            if self.mailer is not None:
                self.mailer.stop(timeout=0)
                self.mailer = None
        elif self.mailer is None:
            self.mailer = EmailAlerter(cfg.smtp, lambda: self._passwords.get())
        else:
            self.mailer.update_settings(cfg.smtp)

    def _mail(self, event: AlertEvent) -> None:
        if self.mailer is not None:
            self.mailer.submit(event)

    def close(self) -> None:
        """Stop the mail thread (queued e-mails are abandoned)."""
        if self.mailer is not None:
            self.mailer.stop()
            self.mailer = None

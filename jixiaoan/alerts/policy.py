"""When a device's malicious share raises an alert: threshold, minimum traffic, cooldown and
hysteresis, evaluated on a RateTracker's figures and delivered to callbacks.

A device fires when its window share reaches ``threshold`` with at least ``min_packets``
classified packets in the window, while it is *armed* and out of its cooldown. Firing disarms
it; it re-arms only once its window share has fallen below ``clear_threshold``, and fires again
no sooner than ``cooldown_s`` after the last alert. Time is the tracker's capture-time clock.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from jixiaoan.alerts.rates import Peer, RateTracker
from jixiaoan.engine.batch import ClassifiedBatch, Device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertPolicy:
    """The alert rule (see the module docstring)."""

    threshold: float = 0.5
    min_packets: int = 20
    cooldown_s: float = 300.0
    clear_threshold: float = 0.25

    def __post_init__(self) -> None:
        if not 0.0 <= self.clear_threshold <= self.threshold <= 1.0:
            raise ValueError("need 0 <= clear_threshold <= threshold <= 1")
        if self.min_packets < 0 or self.cooldown_s < 0:
            raise ValueError("min_packets and cooldown_s must not be negative")

    @classmethod
    def from_settings(cls, settings: Any) -> AlertPolicy:
        """From anything with the same attribute names (``jixiaoan.config.AlertSettings``)."""
        return cls(
            threshold=float(settings.threshold),
            min_packets=int(settings.min_packets),
            cooldown_s=float(settings.cooldown_s),
            clear_threshold=min(float(settings.clear_threshold), float(settings.threshold)),
        )


@dataclass(frozen=True)
class AlertEvent:
    """One alert for one device, with everything the popup and the e-mail show."""

    device_index: int
    device: Device
    time: float  # capture time of the evaluation, seconds since the epoch
    window_s: float
    window_share: float
    total_share: float
    window_packets: int  # classified packets in the window
    window_malicious: int
    total_packets: int  # classified packets since start
    top_families: list[tuple[str, int]] = field(default_factory=list)
    top_peers: list[Peer] = field(default_factory=list)

    @property
    def when(self) -> str:
        """The alert time as ISO 8601 UTC text."""
        return datetime.fromtimestamp(self.time, UTC).isoformat(timespec="seconds")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (logs, ``--json`` output, storage)."""
        d = self.device
        return {
            "time": self.time,
            "when": self.when,
            "device_index": self.device_index,
            "device": {"name": d.name, "ip": d.ip, "mac": d.mac, "vendor": d.vendor},
            "window_s": self.window_s,
            "window_share": self.window_share,
            "total_share": self.total_share,
            "window_packets": self.window_packets,
            "window_malicious": self.window_malicious,
            "total_packets": self.total_packets,
            "top_families": [[name, count] for name, count in self.top_families],
            "top_peers": [{"ip": p.ip, "mac": p.mac, "packets": p.packets} for p in self.top_peers],
        }

    def summary(self) -> str:
        """One line for a popup title, a log or the command line."""
        families = ", ".join(name for name, _ in self.top_families) or "unknown"
        return (
            f"{self.device.label or f'device {self.device_index}'}: "
            f"{self.window_share:.0%} malicious over the last {self.window_s:g} s "
            f"({self.window_malicious}/{self.window_packets} packets; {families})"
        )


AlertCallback = Callable[[AlertEvent], None]


class AlertMonitor:
    """Evaluates the policy on a tracker's figures and hands events to callbacks.

    Call ``feed(batch)`` per classified batch (observe + evaluate), or ``observe`` per batch
    and ``evaluate()`` on a timer. A callback that raises is logged and counted in
    ``callback_errors``; the others still run and the caller never sees the exception.
    """

    def __init__(self, tracker: RateTracker, policy: AlertPolicy | None = None) -> None:
        self.tracker = tracker
        self.policy = policy or AlertPolicy()
        self._callbacks: list[AlertCallback] = []
        self._lock = threading.Lock()
        self._armed = np.ones(0, bool)
        self._last_fired = np.full(0, -math.inf)
        self.alerts_fired = 0
        self.callback_errors = 0

    def add_callback(self, callback: AlertCallback) -> None:
        """Call ``callback(event)`` for every alert (on the evaluating thread)."""
        with self._lock:
            self._callbacks.append(callback)

    def remove_callback(self, callback: AlertCallback) -> None:
        """Stop calling ``callback`` (no error when it was not registered)."""
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def set_policy(self, policy: AlertPolicy) -> None:
        """Use a new policy from the next evaluation on (device states are kept)."""
        with self._lock:
            self.policy = policy

    def observe(self, batch: ClassifiedBatch) -> None:
        """Count a batch without evaluating."""
        self.tracker.observe(batch)

    def feed(self, batch: ClassifiedBatch) -> list[AlertEvent]:
        """Count a batch, then evaluate; returns the events fired."""
        self.tracker.observe(batch)
        return self.evaluate()

    def evaluate(self, now: float | None = None) -> list[AlertEvent]:
        """Apply the policy to every device at ``now`` (default: the latest capture time),
        deliver the events to the callbacks and return them."""
        snap = self.tracker.snapshot(now)
        if not math.isfinite(snap.now):  # no packet seen yet: nothing to judge
            return []
        with self._lock:
            policy = self.policy
            n = len(snap)
            if n > len(self._armed):
                grow = n - len(self._armed)
                self._armed = np.concatenate([self._armed, np.ones(grow, bool)])
                self._last_fired = np.concatenate([self._last_fired, np.full(grow, -math.inf)])
            share = snap.window_share
            self._armed[:n] |= share < policy.clear_threshold
            fire = (
                self._armed[:n]
                & (share >= policy.threshold)
                & (snap.window_classified >= max(policy.min_packets, 1))
                & (snap.now - self._last_fired[:n] >= policy.cooldown_s)
            )
            fired = np.flatnonzero(fire)
            self._armed[fired] = False
            self._last_fired[fired] = snap.now
            self.alerts_fired += len(fired)
            callbacks = list(self._callbacks)
        events = [self._event(int(i), snap) for i in fired]
        for event in events:
            for callback in callbacks:
                try:
                    callback(event)
                except Exception:
                    self.callback_errors += 1
                    log.exception("alert callback %r failed for %s", callback, event.summary())
        return events

    def _event(self, i: int, snap) -> AlertEvent:
        return AlertEvent(
            device_index=i,
            device=self.tracker.device_info(i),
            time=snap.now,
            window_s=snap.window_s,
            window_share=float(snap.window_share[i]),
            total_share=float(snap.total_share[i]),
            window_packets=int(snap.window_classified[i]),
            window_malicious=int(snap.window_malicious[i]),
            total_packets=int(snap.total_classified[i]),
            top_families=self.tracker.top_families(i, now=snap.now),
            top_peers=self.tracker.top_peers(i, now=snap.now),
        )

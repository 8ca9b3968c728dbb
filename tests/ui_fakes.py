"""Fakes for the desktop-app tests: a session that writes synthetic rows into a real store."""

from __future__ import annotations

import threading
import time

import numpy as np

from jixiaoan.alerts.policy import AlertEvent
from jixiaoan.alerts.rates import Peer
from jixiaoan.engine.batch import Device
from jixiaoan.runtime.status import MonitorStatus
from jixiaoan.storage.store import PacketStore
from jixiaoan.storage.synthetic import synthetic_batch

DEVICES = [Device(mac="02:00:00:00:00:01", ip="10.42.0.2", name="camera"),
           Device(mac="02:00:00:00:00:02", ip="10.42.0.3", name="plug")]


def alert_event(device: Device, index: int = 0, share: float = 0.8) -> AlertEvent:
    """An alert as the policy would raise it."""
    return AlertEvent(
        device_index=index, device=device, time=time.time(), window_s=10.0,
        window_share=share, total_share=share / 2, window_packets=500,
        window_malicious=int(500 * share), total_packets=2000,
        top_families=[("ddos", 300), ("scan", 100)],
        top_peers=[Peer("203.0.113.9", "02:00:00:00:00:fe", 390)])


class FakeSession:
    """Writes ``batches`` synthetic batches (half the packets malicious) into the store at
    ``options.db_path``, ``pause_s`` apart; ``fire(event)`` calls the alert callbacks from a
    worker thread like the real engine does."""

    def __init__(self, cfg, options, batches: int = 5, batch_size: int = 400,
                 pause_s: float = 0.05) -> None:
        self.options = options
        self.source_name = "fake"
        self.store = PacketStore(options.db_path, blocking=True, model_name="fake-model")
        for d in DEVICES:
            self.store.register_device(d)
        self.callbacks: list = []
        self.batches, self.batch_size, self.pause_s = batches, batch_size, pause_s
        self.written = 0
        self.adaptation = ""
        self.stopped = threading.Event()
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def add_alert_callback(self, cb) -> None:
        self.callbacks.append(cb)

    def remove_alert_callback(self, cb) -> None:
        self.callbacks.remove(cb)

    def start(self):
        self._thread.start()
        return self

    def _run(self) -> None:
        rng = np.random.default_rng(1)
        for _ in range(self.batches):
            if self.stopped.is_set():
                break
            self.store.submit(synthetic_batch(self.batch_size, DEVICES, time.time(), rng))
            self.store.flush()
            self.written += self.batch_size
            time.sleep(self.pause_s)
        self.done.set()

    def fire(self, event: AlertEvent) -> threading.Thread:
        t = threading.Thread(target=lambda: [cb(event) for cb in list(self.callbacks)])
        t.start()
        return t

    def status(self) -> MonitorStatus:
        return MonitorStatus(source="fake", model="fake-model", running=True,
                             finished=self.done.is_set(), uptime_s=1.0, captured_pps=1234.0,
                             dropped_queue=7, adaptation=self.adaptation)

    def stop(self, timeout: float = 30.0) -> None:
        self.stopped.set()
        self._thread.join(timeout) if self._thread.is_alive() else None
        self.store.close()


def show_each_tab(window, qtbot, expected: dict, timeout: int = 10_000) -> None:
    """Wait for a tab per table of ``expected``, then bring each on screen in turn (only the
    table on screen is fetched) and wait until it holds the expected number of rows."""
    qtbot.waitUntil(lambda: set(window.device_tabs) == set(expected), timeout=timeout)
    for table, tab in window.device_tabs.items():
        window.tabs.setCurrentWidget(tab)
        qtbot.waitUntil(lambda tab=tab, n=expected[table]: tab.model.rowCount() == n,
                        timeout=timeout)


def first_tab_on_screen(window, qtbot, timeout: int = 10_000):
    """The first device tab, brought on screen once it exists."""
    qtbot.waitUntil(lambda: bool(window.device_tabs), timeout=timeout)
    tab = next(iter(window.device_tabs.values()))
    window.tabs.setCurrentWidget(tab)
    return tab

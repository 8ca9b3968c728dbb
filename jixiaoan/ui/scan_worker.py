"""Device discovery for the wizard, off the GUI thread: the ARP sweep (capture.scan) with each
answer delivered as a queued signal, and passive discovery (capture.discovery) fed by a short
live capture on the chosen adapter."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from PyQt5.QtCore import QObject, pyqtSignal

Scanner = Callable[..., list]  # arp_scan(iface, network=None, timeout=..., on_found=...)


def default_scanner(iface: str, on_found: Callable[[Any], None], timeout: float) -> list:
    """The real ARP sweep of the adapter's subnet."""
    from jixiaoan.capture.scan import arp_scan

    return arp_scan(iface, timeout=timeout, on_found=on_found)


class ScanJob(QObject):
    """Runs one sweep on a thread: ``found`` per answer, then ``finished(error or '')``."""

    found = pyqtSignal(object)  # a FoundDevice (ip, mac, vendor, hostname)
    finished = pyqtSignal(str)

    def __init__(self, scanner: Scanner | None = None, parent=None) -> None:
        super().__init__(parent)
        self.scanner = scanner or default_scanner
        self.running = False

    def run(self, iface: str, timeout: float = 2.0) -> bool:
        """Start the sweep; False while one is running."""
        if self.running:
            return False
        self.running = True

        def work() -> None:
            error = ""
            try:
                result = self.scanner(iface, on_found=self.found.emit, timeout=timeout)
                for dev in result or []:  # the final list carries the reverse-DNS names
                    self.found.emit(dev)
            except Exception as exc:  # noqa: BLE001 - shown on the page
                error = str(exc) or type(exc).__name__
            self.running = False
            self.finished.emit(error)

        threading.Thread(target=work, name="jixiaoan-arp-scan", daemon=True).start()
        return True


class PassiveWatch:
    """Listens on an adapter and collects devices from ARP/DHCP/mDNS (PassiveDiscovery).

    ``start()`` raises the capture's error (no rights, unknown adapter); ``new_devices()``
    returns the devices first seen since the previous call; ``stop()`` ends the capture.
    """

    def __init__(self, iface: str, networks: list[str] | None = None) -> None:
        from jixiaoan.capture.discovery import PassiveDiscovery
        from jixiaoan.capture.queues import FrameQueue

        self.iface = iface
        self.discovery = PassiveDiscovery(networks)
        self.queue = FrameQueue(max_batches=64)
        self.capture = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> PassiveWatch:
        """Open the adapter and start the reader thread."""
        from jixiaoan.capture.live import LiveCapture

        self.capture = LiveCapture(self.iface, self.queue, batch_packets=512,
                                   batch_timeout_s=0.2).start()
        self._thread = threading.Thread(target=self._run, name="jixiaoan-passive", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        from jixiaoan.capture.parse import parse_headers

        while not self._stop.is_set():
            frames = self.queue.get(timeout=0.2)
            if frames is None:
                continue
            with contextlib.suppress(Exception):  # a bad batch must not end discovery
                self.discovery.observe(frames, parse_headers(frames))

    def new_devices(self) -> list:
        """Devices first seen since the previous call."""
        return self.discovery.new_devices()

    def stop(self) -> None:
        """Stop capturing and the reader thread."""
        self._stop.set()
        if self.capture is not None:
            with contextlib.suppress(Exception):
                self.capture.stop()
        with contextlib.suppress(Exception):
            self.queue.close()
        if self._thread is not None:
            self._thread.join(2.0)

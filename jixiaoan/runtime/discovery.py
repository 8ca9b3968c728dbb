"""Watching the devices a live capture shows, when the user named none."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from jixiaoan.engine.batch import ClassifiedBatch, Device
from jixiaoan.engine.devices import DeviceDiscovery, DeviceIndex
from jixiaoan.engine.pipeline import Engine

log = logging.getLogger(__name__)


def device_key(dev: Device) -> str:
    """What identifies a device: its MAC, else its IP."""
    return dev.mac or dev.ip


class LiveDiscovery:
    """An engine-worker sink that adds the LAN devices the traffic shows to the engine's list,
    checked every ``interval_s``, up to ``max_devices``; packets count from the next batch on.
    ``register(device)`` is called for each new device first (store table, given name)."""

    def __init__(
        self,
        engine: Engine,
        register: Callable[[Device], object],
        max_devices: int = 64,
        interval_s: float = 1.0,
    ) -> None:
        self.engine = engine
        self.register = register
        self.max_devices = max_devices
        self.interval_s = interval_s
        self.found = DeviceDiscovery()
        self._next = 0.0

    def __call__(self, batch: ClassifiedBatch) -> None:
        self.found.observe(batch.headers)
        now = time.monotonic()
        current = self.engine.devices
        if now < self._next or len(current) >= self.max_devices:
            return
        self._next = now + self.interval_s
        known = {device_key(d) for d in current}
        room = self.max_devices - len(current)
        new = [d for d in self.found.devices() if device_key(d) not in known][:room]
        if not new:
            return
        for dev in new:
            self.register(dev)
            log.info("watching new device %s", dev.label)
        devices = [*current, *new]
        self.engine.index = DeviceIndex(devices)  # runs on the worker thread, between batches
        self.engine.devices = devices

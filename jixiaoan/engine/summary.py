"""Per-device totals of a run: packets, bytes, sessions, protocols, verdicts, attack families."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from jixiaoan.capture.batch import PROTOCOL_NAMES
from jixiaoan.engine.batch import ClassifiedBatch


@dataclass
class DeviceTotals:
    """What one device did during a run."""

    packets: int = 0
    bytes: int = 0
    malicious: int = 0
    unclassified: int = 0
    sessions: set[int] = field(default_factory=set)
    protocols: Counter[str] = field(default_factory=Counter)
    attacks: Counter[str] = field(default_factory=Counter)

    @property
    def malicious_share(self) -> float:
        """Malicious packets over classified packets (0 when none were classified)."""
        classified = self.packets - self.unclassified
        return self.malicious / classified if classified else 0.0


class RunSummary:
    """Accumulates DeviceTotals over ClassifiedBatches (vectorised per batch)."""

    def __init__(self, n_devices: int) -> None:
        self.totals = [DeviceTotals() for _ in range(n_devices)]
        self.packets = 0
        self.unattributed = 0

    def observe(self, batch: ClassifiedBatch, session: np.ndarray | None = None) -> None:
        """Add one batch; ``session`` is the per-packet session id, when known."""
        n = len(batch)
        self.packets += n
        self.unattributed += int(np.count_nonzero((batch.src_device < 0) & (batch.dst_device < 0)))
        for side in (batch.src_device, batch.dst_device):
            other = batch.dst_device if side is batch.src_device else batch.src_device
            for dev in np.unique(side[side >= 0]):
                mask = side == dev
                if side is batch.dst_device:
                    mask &= other != dev  # a packet a device sends to itself counts once
                self._add(int(dev), batch, mask, session)

    def _add(self, dev: int, batch: ClassifiedBatch, mask: np.ndarray, session) -> None:
        tot = self.totals[dev]
        tot.packets += int(mask.sum())
        tot.bytes += int(batch.headers.length[mask].sum())
        tot.malicious += int(np.count_nonzero(batch.is_bad[mask] == 1))
        tot.unclassified += int(np.count_nonzero(batch.is_bad[mask] < 0))
        protos, counts = np.unique(batch.headers.proto[mask], return_counts=True)
        for p, c in zip(protos, counts):
            tot.protocols[PROTOCOL_NAMES[int(p)]] += int(c)
        attacks = batch.attack[mask & (batch.is_bad == 1)]
        for a, c in zip(*np.unique(attacks[attacks >= 0], return_counts=True)):
            name = batch.attack_names[int(a)] if int(a) < len(batch.attack_names) else str(a)
            tot.attacks[name] += int(c)
        if session is not None:
            tot.sessions.update(np.unique(session[mask]).tolist())

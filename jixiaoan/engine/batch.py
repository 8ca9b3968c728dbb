"""What the engine hands downstream: watched devices and classified packet batches."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from jixiaoan.capture.batch import FrameBatch, HeaderBatch


@dataclass
class Device:
    """A watched device. ``mac`` and ``ip`` are text ('' when unknown); either identifies it."""

    mac: str = ""
    ip: str = ""
    name: str = ""
    vendor: str = ""

    @property
    def label(self) -> str:
        """Short human name: the given name, else the IP, else the MAC."""
        return self.name or self.ip or self.mac


@dataclass
class ClassifiedBatch:
    """A batch of packets with verdicts and their attribution to watched devices.

    ``src_device`` / ``dst_device`` index the engine's device list (-1: not a watched device);
    a packet between two watched devices belongs to both. ``is_bad`` is 1 or 0, or -1 when the
    packet was not classified (no model loaded): storage writes NULL for it, never a guess.
    """

    frames: FrameBatch
    headers: HeaderBatch
    src_device: np.ndarray  # int32 (n,)
    dst_device: np.ndarray  # int32 (n,)
    is_bad: np.ndarray  # int8 (n,): 1, 0 or -1 (unclassified)
    score: np.ndarray  # float32 (n,): malicious probability, NaN when unclassified
    attack: np.ndarray  # int16 (n,): index into attack_names, -1 when none
    attack_names: tuple[str, ...] = ()
    anomaly: np.ndarray | None = None  # float32 (n,): KitNET score, when computed
    devices: list[Device] = field(default_factory=list)  # the engine's device list

    def __len__(self) -> int:
        return len(self.headers)

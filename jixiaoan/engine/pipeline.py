"""The engine: parsed batches in, classified and attributed batches out.

The same Engine serves a live adapter, a replayed capture and the offline ``analyze`` and
``import`` commands; only the source of FrameBatches differs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from jixiaoan.capture.batch import FrameBatch
from jixiaoan.capture.parse import parse_headers
from jixiaoan.engine.batch import ClassifiedBatch, Device
from jixiaoan.engine.devices import DeviceIndex
from jixiaoan.features.batch import FeatureBatch, FeatureConfig
from jixiaoan.features.extractor import FeatureExtractor
from jixiaoan.model.verdict import Detector

if TYPE_CHECKING:
    from jixiaoan.engine.site_adapter import LiveAdapter


class Engine:
    """Turns FrameBatches into ClassifiedBatches for a fixed list of watched devices.

    Without a detector every packet is stored as unclassified (``is_bad`` -1), never guessed,
    and only sessions are tracked (nothing reads the other features). With one, features are
    computed for every packet, watched or not: session context and the AfterImage statistics
    need the whole stream. With an ``adapter`` (``site_adapter.LiveAdapter``) the first
    minutes of features adapt the model in the background, and the site model replaces the
    detector at a batch boundary once it is ready.
    """

    def __init__(
        self,
        devices: Iterable[Device],
        detector: Detector | None = None,
        feature_config: FeatureConfig | None = None,
        adapter: LiveAdapter | None = None,
    ) -> None:
        self.devices = list(devices)
        self.index = DeviceIndex(self.devices)
        self.detector = detector
        if feature_config is None:
            feature_config = getattr(detector, "feature_config", None) or FeatureConfig()
        self.extractor = FeatureExtractor(feature_config)
        self.attack_names = self._class_names(detector)
        self.last_features: FeatureBatch | None = None
        self.adapter = adapter

    def reset(self) -> None:
        """Forget all stream state (a new capture starts)."""
        self.extractor.reset()
        if self.detector is not None:
            self.detector.reset()

    def process(self, frames: FrameBatch) -> ClassifiedBatch:
        """Parse, extract features, classify and attribute one batch."""
        if self.adapter is not None:
            self._swap_in(self.adapter.take_ready())
        headers = parse_headers(frames)
        if self.detector is None:
            features = self.extractor.transform_sessions(frames, headers)
        else:
            features = self.extractor.transform(frames, headers)
        self.last_features = features
        if self.adapter is not None and self.detector is not None:
            self.adapter.observe(features)
        n = len(headers)
        src_dev, dst_dev = self.index.attribute(headers)
        anomaly = None
        if self.detector is None or n == 0:
            is_bad = np.full(n, -1, np.int8)
            score = np.full(n, np.nan, np.float32)
            attack = np.full(n, -1, np.int16)
        else:
            verdicts = self.detector.predict_many(features)
            is_bad = verdicts.is_malicious.astype(np.int8)
            score = verdicts.malicious_prob.astype(np.float32)
            attack = np.where(verdicts.label > 0, verdicts.label, -1).astype(np.int16)
            anomaly = verdicts.anomaly
        return ClassifiedBatch(
            frames=frames,
            headers=headers,
            src_device=src_dev,
            dst_device=dst_dev,
            is_bad=is_bad,
            score=score,
            attack=attack,
            attack_names=self.attack_names,
            anomaly=anomaly,
            devices=self.devices,
        )

    def _swap_in(self, site_model: Detector | None) -> None:
        """Start classifying with ``site_model`` (same classes and features, fresh sessions)."""
        if site_model is None:
            return
        site_model.reset()
        self.detector = site_model
        self.attack_names = self._class_names(site_model)

    @staticmethod
    def _class_names(detector: Detector | None) -> tuple[str, ...]:
        """Names of the detector's verdict labels (a site model may add a zero-day class)."""
        names = getattr(detector, "verdict_classes", None) or getattr(detector, "classes", ())
        return tuple(names or ())

"""All ESeT features of a packet stream: sessions, anonymised bytes, frequency, AfterImage.

``FeatureExtractor.transform`` is called batch after batch on one stream (live adapter or
file) and keeps the per-session state in between; the result does not depend on how the
stream is cut into batches (up to the session bound, see jixiaoan.features.sessions).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from jixiaoan.capture.batch import FrameBatch, HeaderBatch
from jixiaoan.capture.parse import parse_headers
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.features.anonymize import anonymized_bytes
from jixiaoan.features.batch import FeatureBatch, FeatureConfig
from jixiaoan.features.frequency import WhisperFrequency, host_keys
from jixiaoan.features.sessions import SessionTracker

DEFAULT_BATCH_SIZE = 65536


def _afterimage_class():
    try:
        from jixiaoan.features.afterimage import AfterImage
    except ImportError as exc:  # pragma: no cover - only while the module is missing
        raise ImportError(
            "jixiaoan.features.afterimage.AfterImage is needed for the AfterImage features "
            f"and could not be imported: {exc}"
        ) from exc
    return AfterImage


class FeatureExtractor:
    """Streaming extractor of the per-packet ESeT features of one traffic stream."""

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        self.sessions = SessionTracker(self.config)
        self.frequency = WhisperFrequency(self.config)
        hosts = (True, False) if self.config.host_frequency else ()
        self.host_frequency = {side: WhisperFrequency(self.config) for side in hosts}
        self.afterimage = _afterimage_class()(self.config)
        self.last_forward = np.zeros(0, bool)  # direction of the last batch's packets

    def reset(self) -> None:
        """Forget all state (a new stream starts; session ids restart at 0)."""
        self.sessions.reset()
        self.frequency.reset()
        for freq in self.host_frequency.values():
            freq.reset()
        self.afterimage.reset()
        self.last_forward = np.zeros(0, bool)

    def transform(self, frames: FrameBatch, headers: HeaderBatch) -> FeatureBatch:
        """Features of every packet of the batch, in capture order."""
        if len(frames) != len(headers):
            raise ValueError(f"{len(frames)} frames but {len(headers)} header rows")
        assigned = self.sessions.assign_full(headers)
        self.last_forward = assigned.forward
        freq = self.frequency.transform(
            headers, assigned.session, forgotten=self.sessions.forgotten
        )
        if self.host_frequency:
            parts = [freq] + [
                f.transform(headers, host_keys(headers, side))
                for side, f in self.host_frequency.items()
            ]
            freq = np.hstack(parts)
        cfg = self.config
        return FeatureBatch(
            byte_idx=anonymized_bytes(frames, headers, cfg.n_bytes, cfg.mask_host_fields),
            freq=freq,
            afterimage=np.asarray(self.afterimage.transform(headers), np.float32),
            session=assigned.session,
            pos=assigned.pos,
            ts=headers.ts.astype(np.float64, copy=True),
        )

    def transform_sessions(self, frames: FrameBatch, headers: HeaderBatch) -> FeatureBatch:
        """Session ids and positions only (no byte, frequency or AfterImage columns: width 0).

        For a pipeline without a model, where nothing reads the other features; mixing it
        with ``transform`` on one extractor leaves the skipped features without that history.
        """
        if len(frames) != len(headers):
            raise ValueError(f"{len(frames)} frames but {len(headers)} header rows")
        assigned = self.sessions.assign_full(headers)
        self.last_forward = assigned.forward
        n = len(headers)
        return FeatureBatch(
            byte_idx=np.zeros((n, 0), np.uint16),
            freq=np.zeros((n, 0), np.float32),
            afterimage=np.zeros((n, 0), np.float32),
            session=assigned.session,
            pos=assigned.pos,
            ts=headers.ts.astype(np.float64, copy=True),
        )


def extract_capture(
    path: str | os.PathLike[str],
    config: FeatureConfig | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[tuple[FrameBatch, HeaderBatch, FeatureBatch]]:
    """Stream a capture file through reader, parser and a fresh FeatureExtractor."""
    extractor = FeatureExtractor(config)
    for frames in read_capture(path, batch_size=batch_size):
        headers = parse_headers(frames)
        yield frames, headers, extractor.transform(frames, headers)

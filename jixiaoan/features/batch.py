"""Feature settings and the per-packet feature batch handed to the model stage."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np

PAD_INDEX = 256  # byte-encoding index of padding, distinct from a real 0x00 byte
AFTERIMAGE_WIDTH = 100


@dataclass(frozen=True)
class FeatureConfig:
    """ESeT feature settings (ESET.md section 2); defaults are the documented ones."""

    n_bytes: int = 64  # Nb: first bytes of the anonymised frame
    w_seg: int = 16  # Whisper frame length; K = w_seg // 2 + 1 frequency bins
    whisper_weights: tuple[float, float, float] = (10.0, 0.1, -15.68)  # w . [l, p, -log2(dt)]
    min_dt: float = 1e-5  # inter-arrival floor, seconds
    lambdas: tuple[float, ...] = (5.0, 3.0, 1.0, 0.1, 0.01)  # AfterImage decay factors
    session_idle_s: float = 300.0  # a session / tracker idle this long is forgotten
    max_sessions: int = 200_000  # hard bound on tracked sessions (oldest evicted first)
    host_frequency: bool = False  # Whisper features also keyed by source and destination host
    mask_host_fields: bool = False  # byte view also zeroes IP ID, TTL/hop limit, TCP seq/ack/TS

    @property
    def n_freq_bins(self) -> int:
        """K, the number of frequency bins of one key (session or host)."""
        return self.w_seg // 2 + 1

    @property
    def n_freq(self) -> int:
        """Frequency features per packet: K for the session, plus K per host key if on."""
        return self.n_freq_bins * (3 if self.host_frequency else 1)

    def to_dict(self) -> dict:
        """JSON-ready form (for model cards)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureConfig:
        """Inverse of to_dict; unknown keys are ignored, missing ones take defaults."""
        known = {f.name for f in fields(cls)}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        return cls(**kw)


@dataclass
class FeatureBatch:
    """Per-packet ESeT features for a batch, in capture order.

    ``session`` ids are unique for the lifetime of one extractor; ``pos`` is the packet's index
    inside its session (0 for the first packet). The model keeps session context keyed by
    ``session`` so that a packet's verdict depends only on it and the earlier packets of its
    session, never on how the stream was cut into batches.
    """

    byte_idx: np.ndarray  # uint16 (n, Nb): anonymised bytes 0..255, PAD_INDEX for padding
    freq: np.ndarray  # float32 (n, n_freq): Whisper features of the frames ending here
    afterimage: np.ndarray  # float32 (n, 100): Kitsune AfterImage features
    session: np.ndarray  # int64 (n,)
    pos: np.ndarray  # int32 (n,)
    ts: np.ndarray = field(default_factory=lambda: np.zeros(0))  # float64 (n,) capture time

    def __len__(self) -> int:
        return len(self.session)

    def take(self, index: np.ndarray) -> FeatureBatch:
        """Rows at ``index``."""
        return FeatureBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(batches: list[FeatureBatch]) -> FeatureBatch:
        """Join batches in order (their session ids must come from one extractor)."""
        return FeatureBatch(
            **{
                f.name: np.concatenate([getattr(b, f.name) for b in batches])
                for f in fields(FeatureBatch)
            }
        )

    def save(self, path: str) -> None:
        """Write to an ``.npz`` file (no pickles)."""
        np.savez_compressed(path, **{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(cls, path: str) -> FeatureBatch:
        """Read a file written by save."""
        with np.load(path, allow_pickle=False) as z:
            return cls(**{f.name: z[f.name] for f in fields(cls)})

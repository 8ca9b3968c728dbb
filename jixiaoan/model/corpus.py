"""Training corpus: per-file ESeT features and per-packet classes from a ``labels.csv``.

Every capture is extracted with a fresh feature extractor, in capture order, and cached as one
``.npz`` per file in a cache folder. The cache key is the file's SHA-1, its label row and the
``FeatureConfig``, so a changed capture, label or setting is re-extracted and nothing else is.
A damaged capture (``CaptureError`` part-way) contributes the packets read before the damage and
a warning; it never stops the build.

Classes: ``benign`` is index 0, the attack families follow in sorted order (all families named in
the labels file, so the class list does not depend on which files were loaded).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jixiaoan.capture.batch import CaptureError
from jixiaoan.features.batch import FeatureBatch, FeatureConfig
from jixiaoan.features.extractor import extract_capture
from jixiaoan.features.labels import LabelRow, packet_labels, read_labels
from jixiaoan.model.verdict import BENIGN, TrainingData

log = logging.getLogger(__name__)

CACHE_VERSION = 1
DEFAULT_FILE_CAP = 2000  # a file weighs as much as at most this many packets
UNNAMED_ATTACK = "malicious"


def row_family(row: LabelRow) -> str:
    """Class name of a row's malicious packets ('benign' for a benign file)."""
    if not row.malicious:
        return BENIGN
    return row.attack or UNNAMED_ATTACK


@dataclass
class CorpusFile:
    """One capture's features and truth."""

    name: str  # pcap path relative to labels.csv
    family: str  # 'benign' or the row's attack family
    features: FeatureBatch
    malicious: np.ndarray  # bool (n,)
    warning: str = ""

    def __len__(self) -> int:
        return len(self.features)


@dataclass
class Corpus:
    """All loaded files of a labels.csv with the class list."""

    files: list[CorpusFile]
    classes: tuple[str, ...]
    config: FeatureConfig
    source: str = ""
    warnings: list[str] = field(default_factory=list)

    def labels(self, i: int) -> np.ndarray:
        """Class index per packet of file ``i`` (int16)."""
        f = self.files[i]
        cls = self.classes.index(f.family)
        return np.where(f.malicious, cls, 0).astype(np.int16)

    @property
    def names(self) -> list[str]:
        """File names in corpus order."""
        return [f.name for f in self.files]

    @property
    def families(self) -> list[str]:
        """Family per file."""
        return [f.family for f in self.files]

    def training_data(
        self, indices: np.ndarray | list[int], labelled: list[np.ndarray]
    ) -> TrainingData:
        """TrainingData over the files at ``indices`` with the given labelled masks."""
        idx = [int(i) for i in indices]
        return TrainingData(
            files=[self.files[i].features for i in idx],
            labels=[self.labels(i) for i in idx],
            labelled=list(labelled),
            classes=self.classes,
            names=[self.files[i].name for i in idx],
        )


def read_rows(labels_csv: str | Path) -> list[LabelRow]:
    """Rows of a labels.csv (format: /work/shared/datasets/README.md); missing captures are
    reported when loading, not here."""
    return read_labels(labels_csv, check_files=False)


def class_list(rows: list[LabelRow]) -> tuple[str, ...]:
    """('benign', *sorted attack families)."""
    fams = sorted({row_family(r) for r in rows} - {BENIGN})
    return (BENIGN, *fams)


def file_sha1(path: Path) -> str:
    """SHA-1 of a file's bytes."""
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# modules of those stages that never touch feature extraction (editing them keeps the cache)
NOT_EXTRACTION = frozenset(
    {"mutate.py", "mutate_search.py", "live.py", "live_linux.py", "replay.py", "queues.py",
     "scan.py", "discovery.py", "interfaces.py", "throughput.py", "pcapwriter.py",
     "synthetic.py"}
)


def code_fingerprint() -> str:
    """SHA-1 over the source of the capture and features stages: a change there re-extracts."""
    import jixiaoan.capture as cap_pkg
    import jixiaoan.features as feat_pkg

    h = hashlib.sha1()
    for pkg in (cap_pkg, feat_pkg):
        for src in sorted(Path(pkg.__file__).parent.glob("*.py")):
            if src.name in NOT_EXTRACTION:
                continue
            h.update(src.name.encode())
            h.update(src.read_bytes())
    return h.hexdigest()


def cache_key(path: Path, row: LabelRow, config: FeatureConfig, code: str = "") -> str:
    """Cache file stem: content hash plus a hash of the label row, settings, extractor code
    and cache version."""
    meta = json.dumps(
        {
            "v": CACHE_VERSION,
            "row": [row.label, row.attack, list(row.hosts)],
            "cfg": config.to_dict(),
            "code": code,
        },
        sort_keys=True,
    )
    return f"{file_sha1(path)[:20]}-{hashlib.sha1(meta.encode()).hexdigest()[:12]}"


def extract_file(path: Path, row: LabelRow, config: FeatureConfig, batch_size: int = 8192):
    """Features and malicious flags of one capture; the warning is '' unless it was damaged."""
    feats, truth, warning = [], [], ""
    try:
        for _frames, headers, fb in extract_capture(str(path), config, batch_size):
            feats.append(fb)
            truth.append(np.asarray(packet_labels(row, headers), dtype=bool))
    except CaptureError as exc:
        warning = f"{row.pcap}: damaged capture, kept {sum(len(f) for f in feats)} packets ({exc})"
        log.warning(warning)
    if not feats:
        return None, np.zeros(0, bool), warning or f"{row.pcap}: no packets"
    return FeatureBatch.concat(feats), np.concatenate(truth), warning


def _load_cached(path: Path) -> tuple[FeatureBatch, np.ndarray, str] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            fb = FeatureBatch(
                byte_idx=z["byte_idx"], freq=z["freq"], afterimage=z["afterimage"],
                session=z["session"], pos=z["pos"], ts=z["ts"],
            )
            return fb, z["malicious"].astype(bool), str(z["warning"])
    except (OSError, KeyError, ValueError):
        return None


def _save_cached(path: Path, fb: FeatureBatch, malicious: np.ndarray, warning: str) -> None:
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")  # concurrent builders
    np.savez_compressed(
        tmp, byte_idx=fb.byte_idx, freq=fb.freq, afterimage=fb.afterimage, session=fb.session,
        pos=fb.pos, ts=fb.ts, malicious=malicious, warning=np.asarray(warning),
    )
    tmp.replace(path)


def default_cache_dir() -> Path:
    """Per-user cache folder for extracted corpus features."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("jixiaoan")) / "corpus"


def load_corpus(
    labels_csv: str | Path,
    config: FeatureConfig | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    only: set[str] | None = None,
) -> Corpus:
    """Extract (or read from the cache) every file of ``labels_csv``; see the module docstring.

    ``only`` restricts loading to the named pcaps (the class list still covers all rows).
    """
    config = config or FeatureConfig()
    labels_csv = Path(labels_csv)
    root = labels_csv.parent
    rows = read_rows(labels_csv)
    classes = class_list(rows)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    todo = [r for r in rows if only is None or r.pcap in only]
    files, warns = [], []
    code = code_fingerprint()
    bar = _progress(todo, progress, "corpus")
    for row in bar:
        path = root / row.pcap
        if not path.exists():
            warns.append(f"{row.pcap}: missing")
            log.warning("%s: missing", row.pcap)
            continue
        cpath = cache / f"{cache_key(path, row, config, code)}.npz"
        got = _load_cached(cpath) if cpath.exists() else None
        if got is None:
            fb, mal, warning = extract_file(path, row, config)
            if fb is None:
                warns.append(warning)
                continue
            _save_cached(cpath, fb, mal, warning)
        else:
            fb, mal, warning = got
        if warning:
            warns.append(warning)
        if len(fb) == 0:
            continue
        files.append(CorpusFile(row.pcap, row_family(row), fb, mal, warning))
    return Corpus(files, classes, config, str(labels_csv), warns)


def file_weights(sizes: list[int] | np.ndarray, cap: int = DEFAULT_FILE_CAP) -> np.ndarray:
    """Per-packet weight of each file: ``min(1, cap / n)``.

    A file then counts as at most ``cap`` packets in total, so a few huge captures (StopDDoS
    floods, THC-IPv6 denial6 with ~75k packets) do not dominate training.
    """
    n = np.maximum(np.asarray(sizes, dtype=np.float64), 1.0)
    return np.minimum(1.0, cap / n)


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="file", leave=False)

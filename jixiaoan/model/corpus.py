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

import csv
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jixiaoan.capture.batch import CaptureError
from jixiaoan.features.batch import FeatureBatch, FeatureConfig
from jixiaoan.model.verdict import BENIGN, TrainingData

log = logging.getLogger(__name__)

CACHE_VERSION = 1
DEFAULT_FILE_CAP = 2000  # a file weighs as much as at most this many packets
UNNAMED_ATTACK = "malicious"


@dataclass(frozen=True)
class CorpusRow:
    """One row of labels.csv."""

    pcap: str
    label: str
    attack: str
    hosts: str

    @property
    def family(self) -> str:
        """Class name of the row's malicious packets ('benign' for a benign file)."""
        if self.label != "malicious":
            return BENIGN
        return self.attack or UNNAMED_ATTACK


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


def read_rows(labels_csv: str | Path) -> list[CorpusRow]:
    """Rows of a labels.csv (format: /work/shared/datasets/README.md)."""
    with open(labels_csv, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = []
        for r in reader:
            rows.append(
                CorpusRow(
                    pcap=(r.get("pcap") or "").strip(),
                    label=(r.get("label") or "").strip().lower(),
                    attack=(r.get("attack") or "").strip().lower(),
                    hosts=(r.get("hosts") or "").strip(),
                )
            )
    return [r for r in rows if r.pcap]


def class_list(rows: list[CorpusRow]) -> tuple[str, ...]:
    """('benign', *sorted attack families)."""
    fams = sorted({r.family for r in rows if r.family != BENIGN})
    return (BENIGN, *fams)


def file_sha1(path: Path) -> str:
    """SHA-1 of a file's bytes."""
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(path: Path, row: CorpusRow, config: FeatureConfig) -> str:
    """Cache file stem: content hash plus a hash of the label row, settings and cache version."""
    meta = json.dumps(
        {"v": CACHE_VERSION, "row": [row.label, row.attack, row.hosts], "cfg": config.to_dict()},
        sort_keys=True,
    )
    return f"{file_sha1(path)[:20]}-{hashlib.sha1(meta.encode()).hexdigest()[:12]}"


def _packet_truth(row: CorpusRow, headers, n: int) -> np.ndarray:
    """Malicious flag per packet of one extracted batch."""
    if row.label != "malicious":
        return np.zeros(n, dtype=bool)
    if not row.hosts:
        return np.ones(n, dtype=bool)
    from jixiaoan.features.labels import packet_labels  # noqa: PLC0415

    return np.asarray(packet_labels(_label_row(row), headers), dtype=bool)


def _label_row(row: CorpusRow):
    """The features stage's own row type for ``packet_labels``."""
    from jixiaoan.features import labels as flabels  # noqa: PLC0415

    cls = flabels.LabelRow
    names = getattr(cls, "__dataclass_fields__", {})
    kw = {"pcap": row.pcap, "label": row.label, "attack": row.attack, "hosts": row.hosts}
    if "hosts" in names and not isinstance(names["hosts"].default, str):
        kw["hosts"] = tuple(row.hosts.split())
    return cls(**{k: v for k, v in kw.items() if not names or k in names})


def extract_file(path: Path, row: CorpusRow, config: FeatureConfig, batch_size: int = 8192):
    """Features and malicious flags of one capture; the warning is '' unless it was damaged."""
    from jixiaoan.features.extractor import extract_capture  # noqa: PLC0415

    feats, truth, warning = [], [], ""
    try:
        for _frames, headers, fb in extract_capture(str(path), config, batch_size):
            feats.append(fb)
            truth.append(_packet_truth(row, headers, len(fb)))
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
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp, byte_idx=fb.byte_idx, freq=fb.freq, afterimage=fb.afterimage, session=fb.session,
        pos=fb.pos, ts=fb.ts, malicious=malicious, warning=np.asarray(warning),
    )
    tmp.replace(path)


def default_cache_dir() -> Path:
    """Per-user cache folder for extracted corpus features."""
    import platformdirs  # noqa: PLC0415

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
    bar = _progress(todo, progress, "corpus")
    for row in bar:
        path = root / row.pcap
        if not path.exists():
            warns.append(f"{row.pcap}: missing")
            log.warning("%s: missing", row.pcap)
            continue
        cpath = cache / f"{cache_key(path, row, config)}.npz"
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
        files.append(CorpusFile(row.pcap, row.family, fb, mal, warning))
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
    from tqdm import tqdm  # noqa: PLC0415

    return tqdm(items, desc=desc, unit="file", leave=False)

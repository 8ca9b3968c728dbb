"""A site capture before and after adaptation (issue: "evaluate reports a site capture before and
after adaptation, adapting on its first part only, scoring the rest and the whole").

The site is every file of a labels.csv, in capture-time order. Its first ``until_s`` seconds
(counted from its earliest packet) are the unlabelled traffic ``eset_adapt.adapt`` sees; the
site's labels are never shown to it. Both models are then scored on ``rest`` (the packets after
that window: what adaptation never saw) and on ``whole``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jixiaoan.features.batch import FeatureBatch
from jixiaoan.model.adapt_modes import DEFAULT_MODE
from jixiaoan.model.corpus import Corpus, load_corpus
from jixiaoan.model.corpus_split import file_split, labelled_split
from jixiaoan.model.eset import ESeT
from jixiaoan.model.eset_adapt import DEFAULT_ROUNDS, adapt
from jixiaoan.model.evaluate import binary_metrics, predict_files
from jixiaoan.model.site_gate import DEFAULT_ZERO_DAY_FACTOR
from jixiaoan.model.verdict import TrainingData

SESSION_STRIDE = np.int64(1) << np.int64(40)  # keeps the files' session ids apart
MULTI_FILE_NOTE = (
    "the site is several files: each one's AfterImage statistics start afresh, unlike a live "
    "monitor's; to judge a monitor, label the whole capture as one file"
)


def labelled_corpus_for(
    model: ESeT,
    labels_csv: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> TrainingData | None:
    """The labelled corpus adaptation mixes in: the train split of ``labels_csv`` (default: the
    corpus named in the model card, when it exists here) at the card's labelled fraction and
    seed. None when there is none (adaptation then falls back on the site alone)."""
    card = getattr(model, "card_data", {})
    labels_csv = labels_csv or card.get("data", {}).get("labels_csv")
    if not labels_csv or not Path(labels_csv).exists():
        return None
    corpus = load_corpus(labels_csv, model.feature_config, cache_dir, progress)
    train_idx = np.flatnonzero(~file_split(corpus.names, corpus.families))
    fraction = float(card.get("data", {}).get("fraction", 0.1))
    seed = int(card.get("data", {}).get("seed", 0))
    masks = labelled_split([corpus.labels(i) for i in train_idx], fraction, seed)
    return corpus.training_data(train_idx, masks)


def site_stream(site: Corpus) -> tuple[list[FeatureBatch], list[np.ndarray], list[str]]:
    """The site's files in capture-time order (features, truth, names), their session ids
    offset so that two files never share one."""
    order = sorted(range(len(site.files)), key=lambda i: _first_ts(site.files[i].features))
    feats, truth, names = [], [], []
    for k, i in enumerate(order):
        f = site.files[i]
        fb = f.features.take(np.arange(len(f.features)))
        fb.session = np.asarray(fb.session, dtype=np.int64) + k * SESSION_STRIDE
        feats.append(fb)
        truth.append(np.asarray(f.malicious, dtype=bool))
        names.append(f.name)
    return feats, truth, names


def _first_ts(batch: FeatureBatch) -> float:
    return float(batch.ts.min()) if len(batch.ts) else float("inf")


def _scores(model: ESeT, files: list[FeatureBatch], truth, rest) -> dict:
    """Metrics of ``model`` streamed over the site (one stream: context carries across files),
    on the rest and on the whole."""
    _, preds, secs = predict_files(model, [FeatureBatch.concat(files)])
    pred, y, r = preds[0], np.concatenate(truth), np.concatenate(rest)
    out = {}
    for part, keep in (("rest", r), ("whole", np.ones(len(y), bool))):
        m = binary_metrics(y[keep], pred[keep])
        out[part] = {k: round(float(v), 4) if isinstance(v, float) else v for k, v in m.items()}
    out["whole"]["predict_us_per_packet"] = round(1e6 * secs / max(len(y), 1), 2)
    return out


def evaluate_adaptation(
    model: ESeT,
    site: Corpus,
    until_s: float,
    labelled: TrainingData | None = None,
    rounds: int = DEFAULT_ROUNDS,
    progress: bool = False,
    mode: str = DEFAULT_MODE,
    zero_day_factor: float = DEFAULT_ZERO_DAY_FACTOR,
) -> tuple[dict, ESeT]:
    """Adapt ``model`` (``mode``, ``zero_day_factor``: see ``eset_adapt``) on the site's first
    ``until_s`` seconds, score before and after; returns the report and the site model."""
    if until_s <= 0:
        raise ValueError("the adaptation window must be longer than 0 s")
    files, truth, names = site_stream(site)
    if not files or sum(len(f) for f in files) == 0:
        raise ValueError("the site capture has no packets")
    start = min(_first_ts(f) for f in files)
    rest = [f.ts > start + until_s if len(f.ts) else np.ones(len(f), bool) for f in files]
    first = FeatureBatch.concat([f.take(np.flatnonzero(~r)) for f, r in zip(files, rest)])
    site_model = adapt(model, first, labelled, until_s, rounds, progress, mode=mode,
                       zero_day_factor=zero_day_factor)
    report = {"note": MULTI_FILE_NOTE} if len(files) > 1 else {}
    report |= {
        "site_files": names,
        "adapt_until_s": until_s,
        "mode": mode,
        "gate_threshold": site_model.info.get("gate_threshold"),
        "zero_day_factor": site_model.info.get("zero_day_factor"),
        "adapt_packets": int(site_model.info.get("site_packets", len(first))),
        "window_packets": len(first),
        "rest_packets": int(sum(int(r.sum()) for r in rest)),
        "labelled_corpus_files": int(site_model.info.get("labelled_files", 0)),
        "adapt_seconds": round(float(site_model.info.get("adapt_seconds", 0.0)), 1),
        "before": _scores(model, files, truth, rest),
        "after": _scores(site_model, files, truth, rest),
    }
    return report, site_model


def format_adaptation(report: dict) -> str:
    """A small text table of the report."""
    lines = [
        f"site adaptation ({report.get('mode', 'retrain')}): first {report['adapt_until_s']:g} s "
        f"({report['adapt_packets']} packets), scored on the rest "
        f"({report['rest_packets']} packets) and the whole",
        f"{'model':8s} {'part':6s} {'precision':>9s} {'recall':>7s} {'F1':>7s} {'FPR':>7s}",
    ]
    for when in ("before", "after"):
        for part in ("rest", "whole"):
            m = report[when][part]
            lines.append(
                f"{when:8s} {part:6s} {m['precision']:9.4f} {m['recall']:7.4f} "
                f"{m['f1']:7.4f} {m['fpr']:7.4f}"
            )
    if report.get("note"):
        lines.append(f"note: {report['note']}")
    return "\n".join(lines)

"""Site adaptation (ESET.md section 6): a site model from the watched network's own traffic.

Three modes. ``gate`` (the default) keeps the DET and adds a site baseline gate
(``site_gate``): KitNET fitted to the site's first ``until_s`` seconds vetoes malicious verdicts
on packets that look like that baseline; seconds to fit, no labelled corpus needed. ``retrain``
runs ESeT's rounds with the site as the unlabelled pool (below). ``both`` retrains, then gates.
On the lab captures the gate cut false positives by an order of magnitude at almost no recall,
while retraining cut recall (docs/eval/README.md, "Site baseline gate").

Retraining: the site's first ``until_s`` seconds are the unlabelled pool; KitNET is refitted
to that local baseline; the labelled corpus is mixed into every round so nothing learnt is
forgotten, and its RMSEs under the new KitNET give the selector's thresholds. Without a
labelled corpus the thresholds come from the site packets themselves (what the current DET
calls benign / malicious), a weaker fallback. The decision threshold of the source model is kept.
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace

import numpy as np

from jixiaoan.features.batch import FeatureBatch
from jixiaoan.model import eset_enhance as enh
from jixiaoan.model.adapt_modes import ADAPT_MODES, DEFAULT_MODE
from jixiaoan.model.corpus import file_weights
from jixiaoan.model.eset import ESeT
from jixiaoan.model.eset_train import RoundInputs, predicted_classes, run_rounds
from jixiaoan.model.site_gate import (
    DEFAULT_GATE_QUANTILE,
    DEFAULT_ZERO_DAY_FACTOR,
    fit_site_gate,
)
from jixiaoan.model.verdict import TrainingData

DEFAULT_ROUNDS = 3


def site_window(site: FeatureBatch, until_s: float, max_packets: int) -> FeatureBatch:
    """The packets of the first ``until_s`` seconds (at most ``max_packets``)."""
    if len(site) == 0:
        return site
    keep = np.flatnonzero(site.ts <= site.ts.min() + until_s)[:max_packets]
    return site.take(keep)


def _map_classes(labels: np.ndarray, src: tuple[str, ...], dst: tuple[str, ...]) -> np.ndarray:
    """Class indices of ``src`` re-expressed in ``dst`` (-1 where ``dst`` lacks the class)."""
    lut = np.array([dst.index(c) if c in dst else enh.IGNORE for c in src], dtype=np.int64)
    return lut[np.asarray(labels, dtype=np.int64)]


def adapt(
    model: ESeT,
    site_features: FeatureBatch,
    labelled_corpus: TrainingData | None,
    until_s: float,
    rounds: int = DEFAULT_ROUNDS,
    progress: bool = False,
    mode: str = DEFAULT_MODE,
    gate_quantile: float = DEFAULT_GATE_QUANTILE,
    zero_day_factor: float = DEFAULT_ZERO_DAY_FACTOR,
) -> ESeT:
    """A site model: ``model`` adapted to ``site_features`` by ``mode`` (see the module
    docstring)."""
    if model.det is None:
        raise RuntimeError("adapt needs a trained ESeT")
    if mode not in ADAPT_MODES:
        raise ValueError(f"unknown adaptation mode {mode!r} (one of {', '.join(ADAPT_MODES)})")
    t0 = time.perf_counter()
    cfg = replace(model.config, rounds=rounds)
    site = site_window(site_features, until_s, 2 * cfg.pool_max)
    if len(site) < 2:
        raise ValueError(f"the site capture has {len(site)} packets in its first {until_s} s")
    if mode == "gate":
        out = _site_copy(model, model.config, progress)
        out.kitnet, out.history = model.kitnet, list(model.history)
        labelled_files, labelled_packets = 0, 0
    else:
        out, labelled_files, labelled_packets = _retrained(
            model, site, labelled_corpus, cfg, progress
        )
    if mode != "retrain":
        out.gate = fit_site_gate(site, model.feature_config.lambdas, gate_quantile,
                                 zero_day_factor, seed=cfg.seed)
    out.info = {
        "adapted_from": model.name,
        "mode": mode,
        "site_packets": len(site),
        "until_s": until_s if np.isfinite(until_s) else None,
        "labelled_files": labelled_files,
        "labelled_packets": labelled_packets,
        "gate_quantile": gate_quantile if out.gate is not None else None,
        "gate_threshold": out.gate.threshold if out.gate is not None else None,
        "zero_day_factor": out.gate.zero_day_factor if out.gate is not None else None,
        "adapt_seconds": time.perf_counter() - t0,
        "source_info": model.info,
    }
    out.reset()
    return out


def _site_copy(model: ESeT, config, progress: bool) -> ESeT:
    """A new site model with a copy of ``model``'s DET, classes and decision threshold."""
    out = ESeT(config, model.feature_config, name=f"{model.name}-site", progress=progress)
    out.classes, out.threshold = model.classes, model.threshold
    out.det = copy.deepcopy(model.det)
    return out


def _retrained(
    model: ESeT, site: FeatureBatch, labelled_corpus: TrainingData | None, cfg, progress: bool
) -> tuple[ESeT, int, int]:
    """``model`` with KitNET refitted to ``site`` and its DET retrained by ESeT's rounds; also
    the labelled files and packets mixed in."""
    rng = np.random.default_rng(cfg.seed)
    out = _site_copy(model, cfg, progress)
    out.kitnet = out.fit_kitnet([site], np.ones(1))
    files, labelled = [site], [np.full(len(site), enh.IGNORE, dtype=np.int64)]
    if labelled_corpus is not None:
        cut = slice(0, cfg.max_file_packets)
        for f, y, m in zip(labelled_corpus.files, labelled_corpus.labels, labelled_corpus.labelled):
            if not m[cut].any():
                continue
            t = np.where(m[cut], _map_classes(y[cut], labelled_corpus.classes, out.classes), -1)
            files.append(f.take(cut) if len(f) > cfg.max_file_packets else f)
            labelled.append(t.astype(np.int64))
    weight = file_weights([len(f) for f in files], cfg.file_cap)
    weight[0] = 1.0  # every site packet counts fully; pool_max bounds the site's share
    rmse = [out.kitnet.score(f.afterimage) for f in files]
    check = labelled
    if len(files) == 1:  # no labelled corpus: thresholds from the site's own predictions
        check = [predicted_classes(out._predict_file(site), out.threshold)]
    inp = RoundInputs(
        files=files,
        labelled=labelled,
        pool=[np.ones(len(site), bool)] + [np.zeros(len(f), bool) for f in files[1:]],
        rmse=rmse,
        weight=weight,
        check=check,
    )
    out.history = run_rounds(inp, out._predict_file, out._train, cfg, rng, progress)
    return out, len(files) - 1, int(sum(int((t >= 0).sum()) for t in labelled))

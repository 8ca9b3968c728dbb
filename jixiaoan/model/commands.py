"""The train / evaluate / adapt logic behind the command line (argparse lives in cli.py).

Every function takes plain arguments, prints a short table and returns a JSON-ready dict.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from jixiaoan.model.adapt_modes import DEFAULT_MODE
from jixiaoan.model.corpus import Corpus, file_weights, load_corpus
from jixiaoan.model.corpus_split import DEFAULT_TEST_SHARE, SPLIT_SALT, file_split, labelled_split
from jixiaoan.model.eset import ESeT, ESeTConfig
from jixiaoan.model.evaluate import (
    METHODS,
    METRIC_KEYS,
    format_table,
    per_file_table,
    run_method,
    save_plots,
    score_detector,
)
from jixiaoan.model.seed_summary import format_summary, summarise

DEFAULT_FRACTIONS = (0.01, 0.10)


def split_corpus(corpus: Corpus) -> tuple[np.ndarray, np.ndarray, dict]:
    """Train and test file indices of the fixed file-disjoint split, with a description."""
    is_test = file_split(corpus.names, corpus.families)
    train_idx, test_idx = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    info = {
        "rule": "per family, files ordered by SHA-1(salt + path), first round(0.3 n) to test "
        "(clamped to [1, n-1]); single-file families train only",
        "salt": SPLIT_SALT,
        "test_share": DEFAULT_TEST_SHARE,
        "train_files": len(train_idx),
        "test_files": len(test_idx),
        "train_packets": int(sum(len(corpus.files[i]) for i in train_idx)),
        "test_packets": int(sum(len(corpus.files[i]) for i in test_idx)),
        "test_malicious_packets": int(sum(int(corpus.files[i].malicious.sum()) for i in test_idx)),
    }
    return train_idx, test_idx, info


def _require_both_sides(train_idx: np.ndarray, test_idx: np.ndarray, labels_csv) -> None:
    """A clear error when the file-disjoint split leaves a side empty (too few files)."""
    if len(train_idx) == 0 or len(test_idx) == 0:
        raise ValueError(
            f"{labels_csv}: the file-disjoint split needs files on both sides (got "
            f"{len(train_idx)} train, {len(test_idx)} test); list more captures, e.g. one per "
            "phase, or score a trained model on it with --model"
        )


def _pick(m: dict) -> dict:
    return {k: m[k] for k in METRIC_KEYS}


def train(
    labels_csv: str | Path,
    fraction: float = 0.10,
    out_dir: str | Path = "models/default",
    seed: int = 0,
    cache_dir: str | Path | None = None,
    config: ESeTConfig | None = None,
    png_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Train ESeT on the train split at ``fraction`` labels, score the test split, save the
    model (weights + card with the test figures) to ``out_dir``."""
    corpus = load_corpus(labels_csv, cache_dir=cache_dir, progress=progress)
    for w in corpus.warnings:
        print(f"warning: {w}")
    train_idx, test_idx, split = split_corpus(corpus)
    _require_both_sides(train_idx, test_idx, labels_csv)
    cfg = replace(config or ESeTConfig(), seed=seed)
    masks = labelled_split([corpus.labels(i) for i in train_idx], fraction, seed)
    data = corpus.training_data(train_idx, masks)
    model = ESeT(cfg, corpus.config, progress=progress)
    t0 = time.perf_counter()
    model.learn_many(data)
    secs = time.perf_counter() - t0
    metrics, raw = score_detector(model, corpus, test_idx, secs, data.n_packets)
    metrics["labelled_packets"] = int(sum(int(m.sum()) for m in masks))
    pngs = save_plots(raw, png_dir, f"eset_{fraction:g}") if png_dir else []
    n_lab = metrics["labelled_packets"]
    card_extra = card_extras(labels_csv, fraction, seed, n_lab, split, metrics)
    model.save(out_dir, card_extra)
    print(format_table([(f"eset @ {fraction:g}", metrics)]))
    return {"model_dir": str(out_dir), **card_extra, "plots": pngs}


def card_extras(
    labels_csv, fraction: float, seed: int, labelled: int, split: dict, metrics: dict
) -> dict:
    """Card sections describing the training data and the test-split figures."""
    return {
        "data": {
            "labels_csv": str(Path(labels_csv).resolve()),
            "fraction": fraction,
            "seed": seed,
            "labelled_packets": labelled,
            "split": split,
        },
        "metrics": {**_pick(metrics), **{k: metrics[k] for k in ("tp", "fp", "fn", "tn")}},
        "metrics_note": "file-disjoint test split of the corpus, malicious = positive, per packet",
    }


def _fit_shared_kitnet(corpus: Corpus, train_idx: np.ndarray, cfg: ESeTConfig):
    """KitNET on the train files exactly as ESeT fits it (no labels used), and its time."""
    files = [corpus.files[i].features for i in train_idx]
    t0 = time.perf_counter()
    k = ESeT(cfg).fit_kitnet(files, file_weights([len(f) for f in files], cfg.file_cap))
    return k, time.perf_counter() - t0


def evaluate(
    labels_csv: str | Path,
    model_dir: str | Path | None = None,
    methods: tuple[str, ...] | list[str] = METHODS,
    fractions: tuple[float, ...] | list[float] = DEFAULT_FRACTIONS,
    json_out: str | Path | None = None,
    png_dir: str | Path | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    config: ESeTConfig | None = None,
    progress: bool = True,
    save_dir: str | Path | None = None,
    adapt_until_s: float | None = None,
    adapt_labels: str | Path | None = None,
    adapt_mode: str = DEFAULT_MODE,
    seeds: list[int] | None = None,
) -> dict:
    """Score a pre-trained model (``model_dir``: on the test split when ``labels_csv`` is the
    corpus it was trained on, else on every file) or train and score ``methods`` x
    ``fractions`` (None: all methods, 1 % and 10 %) on the fixed file-disjoint split; writes
    ``json_out`` (after every run) and PNGs, and with
    ``save_dir`` every trained ESeT-family model as ``save_dir/<method>_<fraction>``.
    ``adapt_until_s`` (with ``model_dir``): also adapt the model on the CSV's first that many
    seconds by ``adapt_mode`` (``eset_adapt``) and report it before and after
    (``site_adaptation``, see ``site_eval``); a retraining mode mixes in ``adapt_labels``
    (default: the model's own corpus). ``seeds`` (training only; default ``[seed]``): run every
    method and fraction once per seed, each seed drawing its own labelled packets; ``results``
    is the first seed's, ``seed_runs`` every seed's and ``summary`` the spread (``seed_summary``).
    """
    if adapt_until_s is not None and (model_dir is None or adapt_until_s <= 0):
        raise ValueError("--adapt-until needs --model (the model to adapt) and SECONDS > 0")
    methods = tuple(methods) if methods else METHODS
    fractions = tuple(fractions) if fractions else DEFAULT_FRACTIONS
    corpus = load_corpus(labels_csv, cache_dir=cache_dir, progress=progress)
    train_idx, test_idx, split = split_corpus(corpus)
    if model_dir is not None:
        model = ESeT.load(model_dir)
        card = getattr(model, "card_data", {})
        info = card.get("info", {})
        trained_on = card.get("data", {}).get("labels_csv")
        if not trained_on or Path(trained_on).resolve() != Path(labels_csv).resolve():
            # another corpus than the model's own: every file is unseen, score them all
            test_idx = np.arange(len(corpus.files))
            split = {"rule": "all files (the model was trained on another labels.csv)",
                     "test_files": len(test_idx),
                     "test_packets": int(sum(len(f) for f in corpus.files))}
        m, raw = score_detector(
            model, corpus, test_idx, info.get("train_seconds", 0.0), info.get("train_packets", 1)
        )
        result = {**_pick(m), "split": split, "model_dir": str(model_dir)}
        result["per_file"] = per_file_table(raw["names"], raw["truth"], raw["preds"])
        if png_dir:
            result["plots"] = save_plots(raw, png_dir, Path(model_dir).name or "model")
        print(format_table([(Path(model_dir).name or "model", m)]))
        if adapt_until_s is not None:
            result["site_adaptation"] = _site_adaptation(
                model, corpus, adapt_until_s, adapt_labels, cache_dir, progress, adapt_mode
            )
        _write(json_out, result)
        return result
    _require_both_sides(train_idx, test_idx, labels_csv)
    seeds = list(seeds) if seeds else [seed]
    many = len(seeds) > 1
    base = config or ESeTConfig()
    result = {
        "labels_csv": str(Path(labels_csv).resolve()),
        "split": split,
        "seed": seeds[0],
        "eset_config": replace(base, seed=seeds[0]).to_dict(),
        "results": {},
    }
    if many:
        result.update(seeds=seeds, seed_runs={})
    rows = []
    for s in seeds:
        cfg = replace(base, seed=s)
        kitnet, k_secs = None, 0.0
        if any(m != "classic" for m in methods):
            kitnet, k_secs = _fit_shared_kitnet(corpus, train_idx, cfg)
            result.setdefault("kitnet_fit_seconds", k_secs)
        first = s == seeds[0]  # the first seed's runs are `results`, its models and PNGs saved
        for fraction in fractions:
            for method in methods:
                t0 = time.perf_counter()
                m, raw, det = run_method(
                    method, corpus, train_idx, test_idx, fraction, s, cfg, kitnet, k_secs, progress
                )
                if first and save_dir is not None and isinstance(det, ESeT):
                    extra = card_extras(labels_csv, fraction, s, m["labelled_packets"], split, m)
                    det.save(Path(save_dir) / f"{method}_{fraction:g}", extra)
                entry = {**_pick(m), "labelled_packets": m["labelled_packets"]}
                entry["wall_seconds"] = time.perf_counter() - t0
                if first:
                    result["results"].setdefault(method, {})[f"{fraction:g}"] = entry
                    if png_dir:
                        save_plots(raw, png_dir, f"{method}_{fraction:g}")
                if many:
                    runs = result["seed_runs"].setdefault(method, {})
                    runs.setdefault(f"{fraction:g}", {})[str(s)] = entry
                rows.append((f"{method} @ {fraction:g}" + (f" s{s}" if many else ""), m))
                print(format_table(rows[-1:]).splitlines()[-1], flush=True)
                _write(json_out, result)
    print(format_table(rows))
    if many:
        result["summary"] = summarise(result["seed_runs"])
        print(format_summary(result["summary"]))
        _write(json_out, result)
    return result


def _site_adaptation(model, site, until_s, adapt_labels, cache_dir, progress, mode) -> dict:
    from jixiaoan.model.adapt_modes import needs_labelled_corpus
    from jixiaoan.model.site_eval import evaluate_adaptation, format_adaptation, labelled_corpus_for

    labelled = None
    if needs_labelled_corpus(mode):
        labelled = labelled_corpus_for(model, adapt_labels, cache_dir, progress)
        if labelled is None:
            print("no labelled corpus to mix in: adapting on the site alone (weaker)")
    report, _ = evaluate_adaptation(
        model, site, float(until_s), labelled, progress=progress, mode=mode
    )
    print(format_adaptation(report))
    return report


def adapt(
    model_dir: str | Path,
    capture: str | Path,
    until_s: float | None,
    out_dir: str | Path,
    labels_csv: str | Path | None = None,
    cache_dir: str | Path | None = None,
    rounds: int | None = None,
    progress: bool = True,
    mode: str = DEFAULT_MODE,
) -> dict:
    """Adapt a trained model to a site capture (first ``until_s`` seconds, None: all of it; at
    most ``2 * pool_max`` packets are used) by ``mode`` (``eset_adapt``), save the site model
    to ``out_dir``. A retraining mode mixes in ``labels_csv`` or the corpus named in the model
    card (when present), its train split at the card's fraction."""
    from jixiaoan.features.batch import FeatureBatch
    from jixiaoan.features.extractor import extract_capture
    from jixiaoan.model.adapt_modes import needs_labelled_corpus
    from jixiaoan.model.eset_adapt import DEFAULT_ROUNDS
    from jixiaoan.model.eset_adapt import adapt as adapt_model
    from jixiaoan.model.site_eval import labelled_corpus_for

    until_s = float("inf") if until_s is None else float(until_s)
    model = ESeT.load(model_dir)
    card = getattr(model, "card_data", {})
    batches = [fb for _f, _h, fb in extract_capture(str(capture), model.feature_config)]
    site = FeatureBatch.concat(batches) if batches else None
    if site is None:
        raise ValueError(f"{capture}: no packets")
    data = None
    if needs_labelled_corpus(mode):
        data = labelled_corpus_for(model, labels_csv, cache_dir, progress)
    site_model = adapt_model(
        model, site, data, until_s, rounds or DEFAULT_ROUNDS, progress, mode=mode
    )
    before = _flag_share(model, site)
    after = _flag_share(site_model, site)
    extra = {
        "data": {**card.get("data", {}), "site_capture": str(capture),
                 "until_s": until_s if np.isfinite(until_s) else None},
        "adapted": {"mode": mode, "flagged_share_before": before, "flagged_share_after": after},
    }
    site_model.save(out_dir, extra)
    print(f"site model: {out_dir}; share of packets flagged {before:.4f} -> {after:.4f}")
    return {"model_dir": str(out_dir), **extra, "history": site_model.history}


def _flag_share(model: ESeT, batch) -> float:
    from jixiaoan.model.evaluate import predict_files

    _, preds, _ = predict_files(model, [batch])
    return float(preds[0].mean()) if len(preds[0]) else 0.0


def _write(path: str | Path | None, result: dict) -> None:
    if path is None:
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True, default=_default))
    tmp.replace(p)


def _default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj)}")

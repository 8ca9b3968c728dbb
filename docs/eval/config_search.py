"""ESeT configuration search (docs/eval/README.md, "Configuration search").

Usage, from the repository root, one core:
    .venv/bin/python docs/eval/config_search.py CONFIG:SEED:FRACTION ...
    MASK=1 .venv/bin/python docs/eval/config_search.py CONFIG:SEED:FRACTION ...
    FEATURES=host_frequency,mask_host_fields .venv/bin/python docs/eval/config_search.py ...

Each run trains ESeT on the train split of /work/shared/datasets/labels.csv, scores the test
split and every packet of the lab demo (assets/demo/labels.csv, a network never seen in
training), and appends one JSON line to $OUT (default /tmp/eset_config_search.jsonl);
$SCORES names a directory for each run's per-packet scores (ensembles are scored offline).
$FEATURES names FeatureConfig flags to switch on (comma-separated): ``mask_host_fields`` (the
byte view also zeroes IPv4 identification, TTL, IPv6 hop limit, TCP sequence/acknowledgement
numbers and TCP timestamp values; MASK=1 is the same) and ``host_frequency`` (Whisper features
also keyed by source and destination host).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace

import numpy as np
import torch

from jixiaoan.features.batch import FeatureConfig
from jixiaoan.model.commands import _fit_shared_kitnet, split_corpus
from jixiaoan.model.corpus import load_corpus
from jixiaoan.model.corpus_split import labelled_split
from jixiaoan.model.eset import SMALL_DET, ESeT, ESeTConfig
from jixiaoan.model.evaluate import binary_metrics, score_detector

FPB = {"first_packet_balance": True}
BUDGET = {"max_file_packets": 8000, "pool_max": 96000, "train_max": 64000,
          "pretrain_epochs": 8, "round_epochs": 2}  # fmt: skip
CONFIGS = {
    "default": {},
    "nocalib": {"calib_share": 0.0},
    "calib5": {"calib_min_files": 5},
    "calib5_bd30": {"calib_min_files": 5, "det": {"byte_dropout": 0.30}},
    "fpb": FPB,
    "fpb_cap500": {**FPB, "file_cap": 500},
    "fpb_mal03": {**FPB, "malicious_share": 0.3},
    "fpb_lw08": {**FPB, "labelled_weight": 0.8},
    "fpb_budget": {**FPB, **BUDGET},
    "bd15": {"det": {"byte_dropout": 0.15}},
    "bd30": {"det": {"byte_dropout": 0.30}},
    "fpb_bd15": {**FPB, "det": {"byte_dropout": 0.15}},
    "d32": {"det": {"d_model": 32, "d_ff": 64}},  # the smaller DETs of bench_det_backends
    "l1": {"det": {"n_layers": 1}},
    # session 7: wider frequency fusion, on the d_model 32 default DET
    "fw4": {"det": {**SMALL_DET, "freq_width": 4}},
    "fw8": {"det": {**SMALL_DET, "freq_width": 8}},
    "fw4_bd30": {"det": {**SMALL_DET, "freq_width": 4, "byte_dropout": 0.30}},
    "pre2": {"pretrain_epochs": 2},  # less supervised fitting before the rounds
    "bfpr05": {"calib_benign_fpr": 0.05},  # threshold from a benign false-positive target
    "bfpr10": {"calib_benign_fpr": 0.10},
}
METRICS = ("f1", "precision", "recall", "fpr")
FLAG_TAGS = {"mask_host_fields": "masked", "host_frequency": "hostfreq"}
def at_thresholds(raw: dict, thresholds=(0.5, 0.7, 0.9)) -> dict:
    """Metrics with fixed thresholds on 1 - P(benign) instead of the calibrated one."""
    y, s = np.concatenate(raw["truth"]), np.concatenate(raw["scores"])
    return {f"{t:g}": {k: round(v, 4) for k, v in binary_metrics(y, s >= t).items() if k in METRICS}
            for t in thresholds}  # fmt: skip


def big_files(raw: dict, top: int = 6) -> dict:
    """Detected share of the malicious packets of the test files with the most of them."""
    mal = [int(t.sum()) for t in raw["truth"]]
    order = np.argsort(mal)[::-1][:top]
    return {raw["names"][i]: round(float(raw["preds"][i][raw["truth"][i]].mean()), 3)
            for i in order}  # fmt: skip


def main(specs: list[str]) -> None:
    torch.set_num_threads(1)
    flags = [f for f in os.environ.get("FEATURES", "").split(",") if f]
    if os.environ.get("MASK"):
        flags.append("mask_host_fields")
    features = FeatureConfig(**{f: True for f in flags})
    tag = "".join(f"{FLAG_TAGS[f]}_" for f in flags)
    out_path = os.environ.get("OUT", "/tmp/eset_config_search.jsonl")
    corpus = load_corpus("/work/shared/datasets/labels.csv", features, progress=False)
    demo = load_corpus("assets/demo/labels.csv", features, progress=False)
    train_idx, test_idx, _ = split_corpus(corpus)
    kitnets = {}
    for spec in specs:
        name, seed, fraction = spec.split(":")
        seed, fraction = int(seed), float(fraction)
        cfg = replace(ESeTConfig(**CONFIGS[name]), seed=seed)
        if seed not in kitnets:
            kitnets[seed] = _fit_shared_kitnet(corpus, train_idx, cfg)[0]
        masks = labelled_split([corpus.labels(i) for i in train_idx], fraction, seed)
        data = corpus.training_data(train_idx, masks)
        model = ESeT(cfg, corpus.config, kitnet=kitnets[seed])
        t0 = time.time()
        model.learn_many(data)
        secs = time.time() - t0
        m_test, r_test = score_detector(model, corpus, test_idx, secs, data.n_packets)
        m_demo, r_demo = score_detector(model, demo, np.arange(len(demo.files)), secs, 1)
        row = {
            "config": tag + name, "seed": seed, "fraction": fraction, "train_s": round(secs, 1),
            "threshold": model.threshold,
            "calibration": model.info.get("calibration", {}),
            "test": {k: round(m_test[k], 4) for k in METRICS},
            "demo": {k: round(m_demo[k], 4) for k in METRICS},
            "test_th": at_thresholds(r_test), "demo_th": at_thresholds(r_demo),
            "big_test_files": big_files(r_test),
        }  # fmt: skip
        if os.environ.get("SCORES"):  # per-packet test/demo scores, for ensembles offline
            d = os.environ["SCORES"]
            os.makedirs(d, exist_ok=True)
            for part, r in (("test", r_test), ("demo", r_demo)):
                np.save(f"{d}/{tag}{name}_{seed}_{fraction:g}_{part}.npy",
                        np.concatenate(r["scores"]).astype(np.float32))
                np.save(f"{d}/truth_{part}.npy", np.concatenate(r["truth"]))
        print(json.dumps(row), flush=True)
        with open(out_path, "a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])

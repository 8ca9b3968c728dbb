"""ESeT configuration search (docs/eval/README.md, "Configuration search").

Usage, from the repository root, one core:
    .venv/bin/python docs/eval/config_search.py CONFIG:SEED:FRACTION ...
    MASK=1 .venv/bin/python docs/eval/config_search.py CONFIG:SEED:FRACTION ...

Each run trains ESeT on the train split of /work/shared/datasets/labels.csv, scores the test
split and every packet of the lab demo (assets/demo/labels.csv, a network never seen in
training), and appends one JSON line to $OUT (default /tmp/eset_config_search.jsonl). With
MASK=1 the anonymised byte view additionally zeroes IPv4 identification, TTL, IPv6 hop limit,
TCP sequence/acknowledgement numbers and the TCP timestamps option (an experiment only: the
extractor is patched in this process, features go to a separate cache folder).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace

import numpy as np
import torch

from jixiaoan.capture import batch as cb
from jixiaoan.features import anonymize as an
from jixiaoan.features.batch import PAD_INDEX
from jixiaoan.model.commands import _fit_shared_kitnet, split_corpus
from jixiaoan.model.corpus import load_corpus
from jixiaoan.model.corpus_split import labelled_split
from jixiaoan.model.eset import ESeT, ESeTConfig
from jixiaoan.model.evaluate import binary_metrics, score_detector

FPB = {"first_packet_balance": True}
BUDGET = {"max_file_packets": 8000, "pool_max": 96000, "train_max": 64000,
          "pretrain_epochs": 8, "round_epochs": 2}  # fmt: skip
CONFIGS = {
    "default": {},
    "fpb": FPB,
    "fpb_cap500": {**FPB, "file_cap": 500},
    "fpb_mal03": {**FPB, "malicious_share": 0.3},
    "fpb_lw08": {**FPB, "labelled_weight": 0.8},
    "fpb_budget": {**FPB, **BUDGET},
    "bd15": {"det": {"byte_dropout": 0.15}},
    "bd30": {"det": {"byte_dropout": 0.30}},
    "fpb_bd15": {**FPB, "det": {"byte_dropout": 0.15}},
}
METRICS = ("f1", "precision", "recall", "fpr")
TCP_MAX_OPTIONS = 10


def host_field_spans(spans, read, h) -> None:
    """Positions of IPv4 ID and TTL, IPv6 hop limit, TCP seq/ack and TCP timestamp values."""
    l3 = an._network_offsets(read, h)
    is_arp = (h.proto == cb.PROTO_ARP) | (h.ethertype == 0x0806)
    ip = an._where(~is_arp & (l3 >= 0))
    at = l3[ip]
    first = read.byte(ip, at)
    v4, v6 = first >> 4 == 4, first >> 4 == 6
    spans.add(ip[v4], at[v4] + 4, 2)
    spans.add(ip[v4], at[v4] + 8, 1)
    spans.add(ip[v6], at[v6] + 7, 1)
    l4 = h.l4_off.astype(np.int64)
    rows = an._where((l4 >= 0) & (h.proto == cb.PROTO_TCP))
    t = l4[rows]
    spans.add(rows, t + 4, 8)
    end = t + (read.byte(rows, t + 12) >> 4) * 4
    opt = t + 20
    for _ in range(TCP_MAX_OPTIONS):
        live = (opt >= 0) & (opt < end)
        rows, opt, end = rows[live], opt[live], end[live]
        if len(rows) == 0:
            break
        kind, size = read.byte(rows, opt), read.byte(rows, opt + 1)
        spans.add(rows[kind == 8], opt[kind == 8] + 2, 8)
        step = np.where(kind == 1, 1, np.where(size >= 2, size, -1))
        opt = np.where((kind <= 0) | (step < 0), -1, opt + np.maximum(step, 1))


def install_mask() -> None:
    """Patch the extractor so its byte view also zeroes the host-specific fields."""
    import jixiaoan.features.extractor as ex

    original = an.anonymized_bytes

    def masked(frames, headers, n_bytes):
        out = original(frames, headers, n_bytes)
        if len(frames) == 0:
            return out
        spans = an._Spans(len(frames), n_bytes)
        host_field_spans(spans, an._Reader(frames), headers)
        if spans.parts:
            flat, o = np.concatenate(spans.parts), out.reshape(-1)
            o[flat] = np.where(o[flat] == PAD_INDEX, PAD_INDEX, 0)
        return out

    ex.anonymized_bytes = masked


def at_thresholds(raw: dict, thresholds=(0.5, 0.7, 0.9)) -> dict:
    """Metrics with fixed thresholds on 1 - P(benign) instead of the calibrated one."""
    y, s = np.concatenate(raw["truth"]), np.concatenate(raw["scores"])
    return {f"{t:g}": {k: round(v, 4) for k, v in binary_metrics(y, s >= t).items() if k in METRICS}
            for t in thresholds}  # fmt: skip


def main(specs: list[str]) -> None:
    torch.set_num_threads(1)
    cache, tag = None, ""
    if os.environ.get("MASK"):
        install_mask()
        cache, tag = "/tmp/eset_masked_cache", "masked_"
    out_path = os.environ.get("OUT", "/tmp/eset_config_search.jsonl")
    corpus = load_corpus("/work/shared/datasets/labels.csv", cache_dir=cache, progress=False)
    demo = load_corpus("assets/demo/labels.csv", cache_dir=cache, progress=False)
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
        }  # fmt: skip
        print(json.dumps(row), flush=True)
        with open(out_path, "a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])

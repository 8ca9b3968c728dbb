"""Offline seed-ensemble check (docs/eval/README.md, session 7, "A seed ensemble").

Usage: python docs/eval/offline_ensemble.py SCORES_DIR RUNS.jsonl
where SCORES_DIR and RUNS.jsonl come from
    OUT=RUNS.jsonl SCORES=SCORES_DIR python docs/eval/config_search.py default:0:0.01 ...
Averages the per-packet test scores of every 3 and every 5 runs and thresholds them at the mean
of the runs' calibrated thresholds; prints F1 and FPR over all such combinations.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np

from jixiaoan.model.evaluate import binary_metrics


def main(scores_dir: str, runs_jsonl: str) -> None:
    rows = [json.loads(line) for line in Path(runs_jsonl).read_text().splitlines() if line]
    runs = {r["seed"]: r for r in rows if r["config"] == "default"}
    truth = np.load(f"{scores_dir}/truth_test.npy").astype(bool)
    scores = {s: np.load(f"{scores_dir}/default_{s}_{runs[s]['fraction']:g}_test.npy")
              for s in runs}  # fmt: skip
    for k in (1, 3, 5):
        f1, fpr = [], []
        for combo in itertools.combinations(sorted(runs), k):
            mean = np.mean([scores[s] for s in combo], axis=0)
            thr = np.mean([runs[s]["threshold"] for s in combo])
            m = binary_metrics(truth, mean >= thr)
            f1.append(m["f1"])
            fpr.append(m["fpr"])
        print(f"{k} members, {len(f1)} combinations: F1 {np.mean(f1):.3f} ± {np.std(f1):.3f} "
              f"(min {np.min(f1):.3f}), FPR {np.mean(fpr):.3f}")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""Merge per-seed `evaluate` JSONs into one file (docs/eval/seeds_*.json, session 7).

Usage: python docs/eval/merge_seed_runs.py FRACTION "GLOB_OF_JSONS" OUT.json
(each input is an ``evaluate --json`` result whose name holds ``_s<SEED>``).
"""

from __future__ import annotations

import glob
import json
import re
import sys
from pathlib import Path

import numpy as np


def merge(fraction: str, pattern: str) -> dict:
    """Per method, every seed's metrics at ``fraction`` and a mean/std/median summary."""
    runs: dict[str, dict] = {}
    for path in sorted(glob.glob(pattern)):
        seed = int(re.search(r"_s(\d+)", path).group(1))
        data = json.loads(Path(path).read_text())
        for method, per_fraction in data["results"].items():
            runs.setdefault(method, {})[str(seed)] = per_fraction[fraction]
    summary = {}
    for method, per_seed in runs.items():
        f1 = np.array([r["f1"] for r in per_seed.values()])
        fpr = np.array([r["fpr"] for r in per_seed.values()])
        summary[method] = {
            "seeds": len(f1),
            "f1_mean": round(float(f1.mean()), 4),
            "f1_std": round(float(f1.std()), 4),
            "f1_median": round(float(np.median(f1)), 4),
            "fpr_mean": round(float(fpr.mean()), 4),
        }
    return {
        "fraction": float(fraction),
        "command": "commands.evaluate(labels.csv, methods=[...], fractions=[F], seed=S), one "
        "torch thread, the fixed file-disjoint split",
        "summary": summary,
        "seed_runs": runs,
    }


if __name__ == "__main__":
    doc = merge(sys.argv[1], sys.argv[2])
    Path(sys.argv[3]).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    for name, row in doc["summary"].items():
        print(name, row)

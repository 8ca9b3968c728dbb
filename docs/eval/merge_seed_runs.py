"""Merge per-seed `evaluate` JSONs into one file (docs/eval/seeds_*.json, session 7).

Usage: python docs/eval/merge_seed_runs.py FRACTION "GLOB_OF_JSONS" OUT.json
(each input is an ``evaluate --json`` result whose name holds ``_s<SEED>``). The output has the
shape of ``evaluate --seeds``: ``seed_runs`` (method -> fraction -> seed -> metrics) and its
``summary`` (``jixiaoan.model.seed_summary``).
"""

from __future__ import annotations

import glob
import json
import re
import sys
from pathlib import Path

from jixiaoan.model.seed_summary import format_summary, summarise


def merge(fraction: str, pattern: str) -> dict:
    """Every seed's metrics at ``fraction``, per method, and their summary."""
    runs: dict[str, dict] = {}
    for path in sorted(glob.glob(pattern)):
        seed = int(re.search(r"_s(\d+)", path).group(1))
        data = json.loads(Path(path).read_text())
        for method, per_fraction in data["results"].items():
            runs.setdefault(method, {}).setdefault(fraction, {})[str(seed)] = per_fraction[fraction]
    return {
        "fraction": float(fraction),
        "command": "commands.evaluate(labels.csv, methods=[...], fractions=[F], seed=S), one "
        "torch thread, the fixed file-disjoint split",
        "summary": summarise(runs),
        "seed_runs": runs,
    }


if __name__ == "__main__":
    doc = merge(sys.argv[1], sys.argv[2])
    Path(sys.argv[3]).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(format_summary(doc["summary"]))

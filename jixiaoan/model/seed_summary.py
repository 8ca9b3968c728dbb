"""Several training seeds per method and fraction, summarised (``evaluate --seeds``).

On a corpus whose test figures hinge on a few large captures, one seed's F1 can move by
±0.2 (docs/eval/README.md): a comparison between methods needs several seeds, each method
trained on the same labelled draw per seed, and a paired reading of the differences.
"""

from __future__ import annotations

import numpy as np

SUMMARY_KEYS = ("f1", "precision", "recall", "fpr")
REFERENCE_METHOD = "det"  # the yardstick: supervised-only DET on the same labels


def parse_seeds(text: str | None) -> list[int]:
    """``"0-8"``, ``"0,3,5"`` or ``"4"`` → sorted distinct seeds; None → ``[0]``."""
    if not text:
        return [0]
    seeds: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            lo, dash, hi = part.partition("-")
            a = int(lo)  # int("") fails: "-3" and "" are refused
            b = int(hi) if dash else a
            if a < 0 or b < a:
                raise ValueError
            seeds.update(range(a, b + 1))
    except ValueError:
        raise ValueError(f"seeds {text!r}: give seeds >= 0 like 0-8 or 0,3,5") from None
    return sorted(seeds)


def summarise(seed_runs: dict[str, dict[str, dict[str, dict]]]) -> dict:
    """Per method and fraction: mean, std, median, min and max of F1, precision, recall and
    FPR over seeds; with the reference method present, the paired F1 difference to it
    (mean, median, and the seeds where the method is ahead)."""
    out: dict[str, dict[str, dict]] = {}
    for method, per_fraction in seed_runs.items():
        for fraction, per_seed in per_fraction.items():
            row: dict = {"seeds": len(per_seed)}
            for key in SUMMARY_KEYS:
                v = np.array([m[key] for m in per_seed.values()], dtype=float)
                row[key] = {
                    "mean": float(v.mean()),
                    "std": float(v.std()),
                    "median": float(np.median(v)),
                    "min": float(v.min()),
                    "max": float(v.max()),
                }
            ref = seed_runs.get(REFERENCE_METHOD, {}).get(fraction)
            common = sorted(set(per_seed) & set(ref or {}), key=int)
            if method != REFERENCE_METHOD and common:
                d = np.array([per_seed[s]["f1"] - ref[s]["f1"] for s in common])
                row[f"f1_minus_{REFERENCE_METHOD}"] = {
                    "mean": float(d.mean()),
                    "median": float(np.median(d)),
                    "ahead_in": int((d > 0).sum()),
                    "of": len(common),
                }
            out.setdefault(method, {})[fraction] = row
    return out


def format_summary(summary: dict) -> str:
    """Plain-text table: one row per method and fraction."""
    head = (
        f"{'method':<24}{'seeds':>6}{'f1 mean':>9}{'± std':>8}{'median':>8}{'min':>7}"
        f"{'max':>7}{'fpr':>7}{'vs ' + REFERENCE_METHOD:>14}"
    )
    lines = [head, "-" * len(head)]
    for method, per_fraction in summary.items():
        for fraction, row in per_fraction.items():
            f1, fpr = row["f1"], row["fpr"]
            vs = row.get(f"f1_minus_{REFERENCE_METHOD}")
            paired = f"{vs['mean']:+.3f} {vs['ahead_in']}/{vs['of']}" if vs else ""
            lines.append(
                f"{method + ' @ ' + fraction:<24}{row['seeds']:>6}{f1['mean']:>9.4f}"
                f"{f1['std']:>8.4f}{f1['median']:>8.4f}{f1['min']:>7.3f}{f1['max']:>7.3f}"
                f"{fpr['mean']:>7.3f}{paired:>14}"
            )
    return "\n".join(lines)

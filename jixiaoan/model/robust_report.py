"""Robustness metrics, tables and the summary plot.

- PDR (malicious probability drop rate): ``1 - mean(p_after) / mean(p_before)`` over the
  malicious packets (after: the perturbed/mutated malicious packets, crafted ones included);
  ``detected_drop``: the same relative drop of the share of malicious packets detected.
  Negative values mean the attack made the traffic look *more* malicious. ``PDR orig``: the
  same with the crafted packets left out (the mutated captures' original packets only).
- MMR (mimic match rate, defined in ``features.mutate_search``): share of mutated malicious
  packets whose nearest benign-mimic distance is within the mimic radius.
- accuracy / precision / recall / F1 over the test packets, malicious = positive
  (``evaluate.binary_metrics``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jixiaoan.model.evaluate import binary_metrics

METRICS = ("accuracy", "precision", "recall", "f1")


def relative_drop(before: float, after: float) -> float:
    """``1 - after / before`` (0 when ``before`` is 0)."""
    return float(1.0 - after / before) if before > 0 else 0.0


def attack_effect(
    truth_before: np.ndarray,
    prob_before: np.ndarray,
    pred_before: np.ndarray,
    truth_after: np.ndarray,
    prob_after: np.ndarray,
    pred_after: np.ndarray,
) -> dict:
    """Metrics before and after an attack, PDR and the drop of the detected share."""
    yb, ya = np.asarray(truth_before, bool), np.asarray(truth_after, bool)
    before = binary_metrics(yb, pred_before)
    after = binary_metrics(ya, pred_after)
    p_b = float(np.mean(prob_before[yb])) if yb.any() else 0.0
    p_a = float(np.mean(prob_after[ya])) if ya.any() else 0.0
    d_b = float(np.mean(np.asarray(pred_before, bool)[yb])) if yb.any() else 0.0
    d_a = float(np.mean(np.asarray(pred_after, bool)[ya])) if ya.any() else 0.0
    return {
        "before": {k: before[k] for k in (*METRICS, "packets", "tp", "fp", "fn", "tn")},
        "after": {k: after[k] for k in (*METRICS, "packets", "tp", "fp", "fn", "tn")},
        "mean_malicious_prob_before": p_b,
        "mean_malicious_prob_after": p_a,
        "detected_share_before": d_b,
        "detected_share_after": d_a,
        "pdr": relative_drop(p_b, p_a),
        "detected_drop": relative_drop(d_b, d_a),
    }


def format_fgsm(rows: list[dict]) -> str:
    """Table of the FGSM sweep."""
    head = f"{'eps':>6}{'acc':>8}{'prec':>8}{'rec':>8}{'f1':>8}{'mean p':>9}{'PDR':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['eps']:>6.2f}{r['accuracy']:>8.4f}{r['precision']:>8.4f}{r['recall']:>8.4f}"
            f"{r['f1']:>8.4f}{r['mean_malicious_prob']:>9.4f}{100 * r['pdr']:>7.2f}%"
        )
    return "\n".join(lines)


def format_traffic(rows: list[dict]) -> str:
    """Table of the traffic-space attacks: one line per (budget, search target, detector)."""
    head = (
        f"{'budget':<16}{'search':<8}{'detector':<9}{'f1 before':>10}{'f1 after':>9}"
        f"{'rec after':>10}{'MMR':>7}{'PDR':>8}{'det.drop':>9}{'PDR orig':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        for name, eff in r["detectors"].items():
            lines.append(
                f"{r['budget']:<16}{r['search']:<8}{name:<9}{eff['before']['f1']:>10.4f}"
                f"{eff['after']['f1']:>9.4f}{eff['after']['recall']:>10.4f}"
                f"{r['mmr_after']:>7.3f}{100 * eff['pdr']:>7.2f}%"
                f"{100 * eff['detected_drop']:>8.2f}%"
                f"{100 * eff.get('original_packets_only', {}).get('pdr', float('nan')):>8.2f}%"
            )
    return "\n".join(lines)


def plot_robustness(result: dict, path: str | Path) -> None:
    """PNG: F1 against eps (FGSM), F1 and PDR against budget (traffic attacks)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    rows = result.get("fgsm", {}).get("rows", [])
    if rows:
        eps = [100 * r["eps"] for r in rows]
        axes[0].plot(eps, [r["f1"] for r in rows], "o-", label="F1")
        axes[0].plot(eps, [r["recall"] for r in rows], "s--", label="recall")
        axes[0].set_xlabel("FGSM budget eps (%)")
        axes[0].set_ylabel("score")
        axes[0].set_title(f"FGSM on frequency features ({result['fgsm']['mode']})")
        axes[0].legend()
    traffic = result.get("traffic", {}).get("rows", [])
    budgets = sorted({r["budget"] for r in traffic})
    x = np.arange(len(budgets) + 1)
    for search in sorted({r["search"] for r in traffic}):
        for det in ("eset", "kitnet"):
            sel = [r for r in traffic if r["search"] == search and det in r["detectors"]]
            by = {r["budget"]: r["detectors"][det] for r in sel}
            if not by:
                continue
            by = {b: e.get("attacked_files", e) for b, e in by.items()}
            first = next(iter(by.values()))
            f1 = [first["before"]["f1"]] + [by[b]["after"]["f1"] for b in budgets if b in by]
            pdr = [0.0] + [100 * by[b]["pdr"] for b in budgets if b in by]
            axes[1].plot(x[: len(f1)], f1, "o-", label=f"{det} / {search}-box search")
            axes[2].plot(x[: len(pdr)], pdr, "o-", label=f"{det} / {search}-box search")
    panels = ((axes[1], "F1", "F1 on the attacked captures"), (axes[2], "PDR (%)", "PDR"))
    for ax, ylabel, title in panels:
        ax.set_xticks(x, ["none", *budgets], fontsize=7)
        ax.set_xlabel("budget")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if traffic:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

"""Site baseline gate: a model adapted on a lab site's first seconds, per mode and setting.

Usage, from the repository root:
    .venv/bin/python docs/eval/site_gate_sweep.py RUN_DIR:SECONDS ... [--json OUT]

RUN_DIR is a ``jixiaoan lab`` recording (``capture.pcap``, ``capture.labels.csv``,
``phases.csv``). The whole capture is one stream, as a live monitor sees it (AfterImage state
carries across phases). The shipped model is scored on the packets after the first SECONDS
("rest"): unadapted; gated at several quantiles without zero-day verdicts; gated at q=0.99
with zero-day factors K; gated on every AfterImage decay instead of the fast ones (what the
first version did); retrained (ESeT's rounds with the model's labelled corpus, when it is on
this machine). Columns: the usual metrics on the rest, "FPR quiet" (benign packets of the
benign-only phases: false alarms away from any attack) and the detected share per attack phase.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from jixiaoan.model.corpus import load_corpus  # noqa: E402
from jixiaoan.model.eset import ESeT  # noqa: E402
from jixiaoan.model.eset_adapt import adapt  # noqa: E402
from jixiaoan.model.evaluate import binary_metrics, predict_files  # noqa: E402
from jixiaoan.model.site_eval import labelled_corpus_for  # noqa: E402
from jixiaoan.model.site_gate import fit_site_gate  # noqa: E402

QUANTILES = (0.9, 0.99, 1.0)
ZERO_DAY_FACTORS = (2.0, 3.0, 5.0, 10.0, 20.0)


def _row(model: ESeT, site, y, rest, phase, kinds) -> dict:
    _, preds, _ = predict_files(model, [site])
    pred = preds[0]
    m = binary_metrics(y[rest], pred[rest])
    out = {k: round(float(m[k]), 4) for k in ("precision", "recall", "f1", "fpr")}
    quiet = rest & ~y & np.isin(phase, [i for i, k in enumerate(kinds) if k == "benign"])
    out["fpr_quiet"] = round(float(pred[quiet].mean()), 4) if quiet.any() else None
    out["detected"] = {f"{i:02d}-{kinds[i]}": round(float(pred[rest & y & (phase == i)].mean()), 3)
                       for i in np.unique(phase[rest & y])}  # fmt: skip
    return out


def sweep(run: Path, until_s: float, model: ESeT, labelled) -> dict:
    corpus = load_corpus(run / "capture.labels.csv", model.feature_config, progress=False)
    (f,) = corpus.files
    site, y = f.features, np.asarray(f.malicious, dtype=bool)
    with (run / "phases.csv").open() as fh:
        phases = list(csv.DictReader(fh))
    starts = np.array([float(p["start"]) for p in phases])
    kinds = [p["attack"] or p["kind"] for p in phases]
    phase = np.clip(np.searchsorted(starts, site.ts, side="right") - 1, 0, None)
    first = site.ts <= site.ts.min() + until_s
    window = site.take(np.flatnonzero(first))
    rest = ~first
    rows = {"before": _row(model, site, y, rest, phase, kinds)}
    for q in QUANTILES:
        gated = adapt(model, window, None, until_s, gate_quantile=q, zero_day_factor=0.0)
        rows[f"gate q={q:g}"] = _row(gated, site, y, rest, phase, kinds)
    for k in ZERO_DAY_FACTORS:
        gated = adapt(model, window, None, until_s, zero_day_factor=k)
        rows[f"gate+zd K={k:g}"] = _row(gated, site, y, rest, phase, kinds)
    slow = adapt(model, window, None, until_s)  # the same, on all five decays
    slow.gate = fit_site_gate(window, model.feature_config.lambdas, min_lambda=0.0)
    rows["all decays K=5"] = _row(slow, site, y, rest, phase, kinds)
    for mode in ("retrain", "both"):
        adapted = adapt(model, window, labelled, until_s, mode=mode)
        rows[mode] = _row(adapted, site, y, rest, phase, kinds)
    return {"run": str(run), "until_s": until_s, "window_packets": int(first.sum()),
            "window_malicious": int(y[first].sum()), "rest_packets": int(rest.sum()),
            "labelled_corpus": labelled is not None, "rows": rows}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sites", nargs="+", help="RUN_DIR:SECONDS")
    p.add_argument("--model", default=str(ROOT / "models" / "default"))
    p.add_argument("--json")
    a = p.parse_args()
    model = ESeT.load(a.model)
    labelled = labelled_corpus_for(model)
    results = []
    for spec in a.sites:
        run, secs = spec.rsplit(":", 1)
        r = sweep(Path(run), float(secs), model, labelled)
        results.append(r)
        print(f"\n{run}: first {r['until_s']:g} s = {r['window_packets']} packets "
              f"({r['window_malicious']} malicious); scored on the rest ({r['rest_packets']})")
        print(f"{'model':15s} {'precision':>9s} {'recall':>7s} {'F1':>7s} {'FPR':>7s} "
              f"{'FPR quiet':>9s}  detected")
        for name, m in r["rows"].items():
            det = " ".join(f"{k[3:]}={v:g}" for k, v in m["detected"].items())
            quiet = m["fpr_quiet"] if m["fpr_quiet"] is not None else float("nan")
            print(f"{name:15s} {m['precision']:9.3f} {m['recall']:7.3f} {m['f1']:7.3f} "
                  f"{m['fpr']:7.3f} {quiet:9.3f}  {det}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Does the site gate help on the corpus test split? (docs/eval/README.md, "Site baseline gate")

Usage, from the repository root: .venv/bin/python docs/eval/corpus_gate_check.py

There is no site there, so the gate's KitNET is fitted on the labelled benign packets of the
training split (10 %, seed 0: what the shipped model saw labelled), on the fast AfterImage
decays (lambda >= 1) or all of them, and combined with the shipped model's verdicts on the
test split: DET and gate, gate or zero-day, DET or zero-day.
"""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from jixiaoan.features.afterimage import afterimage_columns  # noqa: E402
from jixiaoan.model.commands import split_corpus  # noqa: E402
from jixiaoan.model.corpus import load_corpus  # noqa: E402
from jixiaoan.model.corpus_split import labelled_split  # noqa: E402
from jixiaoan.model.eset import ESeT  # noqa: E402
from jixiaoan.model.evaluate import binary_metrics, predict_files  # noqa: E402
from jixiaoan.model.kitnet import KitNET  # noqa: E402

LABELS = ROOT.parent / "shared" / "datasets" / "labels.csv"
model = ESeT.load(str(ROOT / "models" / "default"))
corpus = load_corpus(str(LABELS), model.feature_config, progress=False)
tr, te, _ = split_corpus(corpus)
masks = labelled_split([corpus.labels(i) for i in tr], 0.1, 0)
X = np.concatenate([corpus.files[i].features.afterimage[m & (corpus.labels(i) == 0)]
                    for i, m in zip(tr, masks)])
print("labelled benign packets", len(X))
files = [corpus.files[i] for i in te]
_, preds, _ = predict_files(model, [f.features for f in files])
det = np.concatenate(preds)
y = np.concatenate([f.malicious for f in files])
A = np.concatenate([f.features.afterimage for f in files])


def show(name, p):
    m = binary_metrics(y, p)
    print(f"{name:28s} P {m['precision']:.3f} R {m['recall']:.3f} F1 {m['f1']:.3f} "
          f"FPR {m['fpr']:.3f}")


show("det", det)
for lam in (1.0, 0.0):
    c = afterimage_columns(model.feature_config.lambdas, lam)
    k = KitNET(seed=0, min_steps=60).fit(np.ascontiguousarray(X[:, c]), epochs=2)
    rb = k.score(np.ascontiguousarray(X[:, c]))
    r = k.score(np.ascontiguousarray(A[:, c]))
    for q in (0.9, 0.99):
        T = np.quantile(rb, q)
        show(f"l>={lam} q{q} det&gate", det & (r > T))
        for K in (2, 5, 10):
            show(f"l>={lam} q{q} K{K} gate|zd", (det & (r > T)) | (r > K * T))
            show(f"l>={lam} q{q} K{K} det|zd", det | (r > K * T))

"""The work behind ``jixiaoan robustness`` (see ``robust_cli`` for what it runs)."""


from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from jixiaoan.capture.pcapfile import read_head
from jixiaoan.capture.pcapwriter import write_pcap
from jixiaoan.features.extractor import extract_capture
from jixiaoan.features.labels import packet_labels
from jixiaoan.features.mutate_search import (
    MimicSet,
    build_mimic,
    extract,
    grey_box_objective,
    payloads_of,
    pso_search,
)
from jixiaoan.model.corpus import load_corpus, read_rows
from jixiaoan.model.corpus_split import labelled_split
from jixiaoan.model.evaluate import binary_metrics, predict_files
from jixiaoan.model.robust_fgsm import fgsm_files
from jixiaoan.model.robust_report import (
    attack_effect,
    format_fgsm,
    format_traffic,
    relative_drop,
)


def _head(fb, n):
    return fb.take(slice(0, n)) if len(fb) > n else fb


def _scores(det, files):
    s, p, _ = predict_files(det, files)
    return s, p


def _fgsm_section(model, files, truth, clean, eps_values, mode) -> dict:
    y = np.concatenate(truth)
    p0 = float(np.concatenate(clean[0])[y].mean()) if y.any() else 0.0
    d0 = float(np.concatenate(clean[1])[y].mean()) if y.any() else 0.0
    mal = [i for i, t in enumerate(truth) if t.any()]
    perturbed = fgsm_files(model.det, [files[i] for i in mal], [truth[i] for i in mal],
                           eps_values, mode)
    rows = []
    for eps, pf in perturbed.items():
        s, p = list(clean[0]), list(clean[1])
        ms, mp = _scores(model, pf)
        for k, i in enumerate(mal):
            s[i], p[i] = ms[k], mp[k]
        m = binary_metrics(y, np.concatenate(p))
        pm = float(np.concatenate(s)[y].mean()) if y.any() else 0.0
        dm = float(np.concatenate(p)[y].mean()) if y.any() else 0.0
        change = max(
            (float(np.nanmax(np.abs(a.freq - f.freq) / np.maximum(np.abs(f.freq), 1e-30)))
             for a, f in zip(pf, [files[i] for i in mal]) if len(f)), default=0.0)
        rows.append({"eps": eps, **{k: m[k] for k in ("accuracy", "precision", "recall", "f1",
                                                      "tp", "fp", "fn", "tn")},
                     "mean_malicious_prob": pm, "pdr": relative_drop(p0, pm),
                     "detected_drop": relative_drop(d0, dm), "max_relative_change": change})
    return {"mode": mode, "rows": rows,
            "note": "relative: each feature moves by eps*|value|; range: by eps*training std"}


def _surrogate_objective(mimic_ai: np.ndarray, seed: int):
    from jixiaoan.model.kitnet import KitNET

    kit = KitNET(seed=seed, min_steps=20).fit(mimic_ai.astype(np.float32), epochs=2)

    def score(mutated, fb) -> float:
        rows = fb.afterimage[mutated.malicious]
        return float(np.mean(kit.score(rows))) if len(rows) else 0.0

    return score


def _mimic(corpus, train_idx, root: Path, seed: int) -> tuple[MimicSet, np.ndarray]:
    benign = [i for i in train_idx if corpus.files[i].family == "benign"]
    rng = np.random.default_rng(seed)
    feats = [corpus.files[i].features.take(slice(0, 400)) for i in benign]
    payloads: list[bytes] = []
    for i in rng.permutation(benign)[:30]:
        fr = read_head(root / corpus.files[i].name, 400)
        payloads += payloads_of(fr, extract(fr)[0], 20)
    ai = np.vstack([f.afterimage for f in feats])
    if len(ai) > 20000:
        ai = ai[np.sort(rng.choice(len(ai), 20000, replace=False))]
    return build_mimic(feats, payloads, seed=seed), ai


def _search_mutator(corpus, train_idx, root: Path, seed: int, particles=5, iterations=4):
    """Grey-box swarm search as a mutation function for ``robust_harden.harden`` (the
    attacker's mimic set, from train files only)."""
    mimic, _ = _mimic(corpus, train_idx, root, seed + 7)
    objective = grey_box_objective(mimic)

    def mutate(frames, headers, malicious, budget, _payloads):
        return pso_search(frames, headers, malicious, budget, objective, mimic, particles,
                          iterations, seed, config=corpus.config).mutated

    return mutate


def _rescored(det, feats_before, truth_before, feats_after, truth_after, base, kept=None):
    """Attack effect: F1 etc. over the whole test split (attacked files replaced, the others
    clean); PDR and detected-share drop over the attacked files' malicious packets only."""
    sb, pb = _scores(det, feats_before)
    sa, pa = _scores(det, feats_after)
    whole = attack_effect(
        np.concatenate([*base["truth"], *truth_before]),
        np.concatenate([*base["scores"], *sb]), np.concatenate([*base["preds"], *pb]),
        np.concatenate([*base["truth"], *truth_after]),
        np.concatenate([*base["scores"], *sa]), np.concatenate([*base["preds"], *pa]),
    )
    attacked = attack_effect(
        np.concatenate(truth_before), np.concatenate(sb), np.concatenate(pb),
        np.concatenate(truth_after), np.concatenate(sa), np.concatenate(pa),
    )
    extra = {}
    if kept is not None:  # the mutated captures' original packets only (crafted ones left out)
        k = np.concatenate(kept)
        extra["original_packets_only"] = attack_effect(
            np.concatenate(truth_before), np.concatenate(sb), np.concatenate(pb),
            np.concatenate(truth_after) & k, np.concatenate(sa), np.concatenate(pa))
    moved = ("pdr", "detected_drop", "mean_malicious_prob_before", "mean_malicious_prob_after",
             "detected_share_before", "detected_share_after")
    return {"before": whole["before"], "after": whole["after"],
            **{k: attacked[k] for k in moved}, "attacked_files": attacked, **extra}


def run_robustness(
    labels_csv, model_dir, eps_values, budgets, searches, max_files=40, max_packets=1500,
    particles=10, iterations=10, seed=0, cache_dir=None, fgsm_mode="relative", harden_dir=None,
    fgsm_max_packets=0, harden_search=False,
) -> dict:
    """Everything behind the command; returns the JSON-ready result."""
    from jixiaoan.model.baselines import KitNETDetector
    from jixiaoan.model.commands import split_corpus
    from jixiaoan.model.eset import ESeT

    t0 = time.perf_counter()
    model = ESeT.load(model_dir)
    corpus = load_corpus(labels_csv, model.feature_config, cache_dir=cache_dir, progress=False)
    train_idx, test_idx, split = split_corpus(corpus)
    hardening = None
    if harden_dir:
        from jixiaoan.model.robust_harden import harden

        root = Path(labels_csv).resolve().parent
        fn = _search_mutator(corpus, train_idx, root, seed) if harden_search else None
        hardening = harden(model, corpus, train_idx, root, seed=seed, max_packets=max_packets,
                           mutate_fn=fn)
        model.save(harden_dir, {"hardening": hardening,
                                "hardened_from": str(Path(model_dir).resolve())})
        print(f"hardened in {hardening['seconds']:.0f} s, saved to {harden_dir}")
    cap = fgsm_max_packets if fgsm_max_packets > 0 else max(len(corpus.files[i]) for i in test_idx)
    files = [_head(corpus.files[i].features, cap) for i in test_idx]
    truth = [corpus.files[i].malicious[:cap] for i in test_idx]
    clean = _scores(model, files)
    fgsm_clean = binary_metrics(np.concatenate(truth), np.concatenate(clean[1]))
    print(f"FGSM on {fgsm_clean['packets']} test packets (first {cap} of each file)")
    fgsm = _fgsm_section(model, files, truth, clean, eps_values, fgsm_mode)
    fgsm["max_packets"] = cap
    print(format_fgsm(fgsm["rows"]))
    files = [_head(f, max_packets) for f in files]
    truth = [t[:max_packets] for t in truth]
    clean = tuple([x[:max_packets] for x in part] for part in clean)
    clean_m = binary_metrics(np.concatenate(truth), np.concatenate(clean[1]))
    t_fgsm = time.perf_counter() - t0
    head = {"model": str(harden_dir or model_dir), "hardening": hardening,
            "model_metrics": getattr(model, "card_data", {}).get("metrics"), "split": split,
            "fgsm": fgsm}
    if not budgets or not searches or max_files <= 0:
        return {**head, "traffic": {"rows": []}, "seconds": {"fgsm": t_fgsm, "total": t_fgsm}}
    print(f"traffic attacks: clean f1 {clean_m['f1']:.4f} on {clean_m['packets']} packets")
    # KitNET alone, for contrast (the model's own KitNET, threshold on train labels)
    kit = KitNETDetector(seed=seed, kitnet=model.kitnet)
    masks = labelled_split([corpus.labels(i) for i in train_idx], 0.10, seed)
    kit.learn_many(corpus.training_data(train_idx, masks))
    dets = {"eset": model, "kitnet": kit}
    root = Path(labels_csv).resolve().parent
    rows_by_name = {r.pcap: r for r in read_rows(labels_csv)}
    attacked = [k for k, t in enumerate(truth) if t.any()][:max_files]
    others = [k for k in range(len(files)) if k not in set(attacked)]
    base = {name: {"truth": [truth[k] for k in others], "scores": [], "preds": []}
            for name in dets}
    for name, det in dets.items():
        base[name]["scores"], base[name]["preds"] = _scores(det, [files[k] for k in others])
    mimic, mimic_ai = _mimic(corpus, train_idx, root, seed)
    objectives = {"grey": grey_box_objective(mimic)}
    if "black" in searches:
        objectives["black"] = _surrogate_objective(mimic_ai, seed + 1)
    originals = []
    for k in attacked:
        name = corpus.files[test_idx[k]].name
        fr = read_head(root / name, max_packets)
        headers, fb = extract(fr, model.feature_config)
        originals.append((name, fr, headers, fb, packet_labels(rows_by_name[name], headers)))
    traffic_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for budget in budgets:
            for search in searches:
                t1 = time.perf_counter()
                after_f, after_y, used_c, used_t, mmr_b, mmr_a, kept = [], [], [], [], [], [], []
                for j, (name, fr, headers, fb, y) in enumerate(originals):
                    res = pso_search(fr, headers, y, budget, objectives[search], mimic,
                                     particles, iterations, seed + j, config=model.feature_config)
                    path = Path(tmp) / f"m{j}.pcap"
                    write_pcap(path, res.mutated.frames)
                    parts = list(extract_capture(path, model.feature_config))
                    fb2 = type(fb).concat([p[2] for p in parts])
                    y2 = np.concatenate([packet_labels(rows_by_name[name], p[1]) for p in parts])
                    after_f.append(fb2)
                    after_y.append(y2)
                    kept.append(res.mutated.origin >= 0)  # pcap order = mutated order
                    used_c.append(res.mutated.crafted_ratio)
                    used_t.append(res.mutated.duration_ratio)
                    mmr_b.append(mimic.distance(fb.take(np.flatnonzero(y))))
                    mmr_a.append(mimic.distance(fb2.take(np.flatnonzero(y2))))
                befores = [o[3] for o in originals]
                ys = [o[4] for o in originals]
                effects = {n: _rescored(d, befores, ys, after_f, after_y, base[n], kept)
                           for n, d in dets.items()}
                row = {
                    "budget": budget.label(), "l_c": budget.l_c, "l_t": budget.l_t,
                    "search": search, "files": len(originals),
                    "max_crafted_ratio": float(max(used_c, default=0.0)),
                    "max_duration_ratio": float(max(used_t, default=1.0)),
                    "mmr_before": float(np.mean(np.concatenate(mmr_b) <= mimic.radius)),
                    "mmr_after": float(np.mean(np.concatenate(mmr_a) <= mimic.radius)),
                    "detectors": effects, "seconds": time.perf_counter() - t1,
                }
                traffic_rows.append(row)
                print(format_traffic([row]), flush=True)
    return {
        **head,
        "settings": {"max_packets": max_packets, "max_files": max_files,
                     "particles": particles, "iterations": iterations, "seed": seed,
                     "mimic_radius": mimic.radius, "mimic_rows": len(mimic.rows),
                     "eset_threshold": model.threshold, "kitnet_threshold": kit.threshold},
        "clean": {k: clean_m[k] for k in ("accuracy", "precision", "recall", "f1", "packets")},
        "traffic": {"rows": traffic_rows,
                    "attacked_files": [o[0] for o in originals]},
        "seconds": {"fgsm": t_fgsm, "total": time.perf_counter() - t0},
    }

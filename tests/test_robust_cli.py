"""The robustness command end to end on the bundled captures (tiny model, tiny search)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from jixiaoan.model.commands import split_corpus
from jixiaoan.model.corpus import load_corpus
from jixiaoan.model.corpus_split import labelled_split
from jixiaoan.model.eset import ESeT, ESeTConfig
from jixiaoan.model.robust_cli import add_robustness_parser, parse_budgets
from jixiaoan.model.robust_report import attack_effect, relative_drop


def _doubled_corpus(data_dir, root):
    """Every bundled capture twice (a/, b/), so each family has files on both split sides."""
    rows = (data_dir / "labels.csv").read_text().strip().splitlines()
    out = [rows[0]]
    for side in ("a", "b"):
        shutil.copytree(data_dir, root / side, ignore=shutil.ignore_patterns("*.csv", "*.md"))
        out += [f"{side}/{r}" for r in rows[1:]]
    (root / "labels.csv").write_text("\n".join(out) + "\n")
    return root / "labels.csv"


def test_pdr_and_detected_drop():
    assert relative_drop(0.8, 0.6) == pytest.approx(0.25)
    assert relative_drop(0.0, 0.3) == 0.0
    y = np.array([1, 1, 0, 0], bool)
    eff = attack_effect(y, np.array([0.9, 0.7, 0.1, 0.2]), y, y, np.array([0.4, 0.7, 0.1, 0.2]),
                        np.array([0, 1, 0, 0], bool))
    assert eff["pdr"] == pytest.approx(1 - 0.55 / 0.8)
    assert eff["detected_drop"] == pytest.approx(0.5)
    assert eff["before"]["f1"] == 1.0 and eff["after"]["recall"] == 0.5


def test_cli_module_loads_no_torch():
    import subprocess
    import sys

    code = "import sys, jixiaoan.model.robust_cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_parse_budgets():
    b = parse_budgets("0.2:2,0.5:5")
    assert [(x.l_c, x.l_t) for x in b] == [(0.2, 2.0), (0.5, 5.0)]
    assert parse_budgets("none") == [] and parse_budgets("") == []


def test_fgsm_only_run(tiny):
    tmp_path, labels = tiny
    res = _run(tmp_path, labels, "--budgets", "none", "--fgsm-mode", "range")
    assert res["traffic"]["rows"] == [] and res["fgsm"]["mode"] == "range"
    assert [r["eps"] for r in res["fgsm"]["rows"]] == [0.0, 0.1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A doubled copy of the bundled corpus and a tiny ESeT trained on its train split."""
    data_dir = Path(__file__).resolve().parent / "data"
    if not (data_dir / "labels.csv").exists():
        pytest.skip("bundled captures not present")
    tmp_path = tmp_path_factory.mktemp("robust")
    labels = _doubled_corpus(data_dir, tmp_path / "corpus")
    corpus = load_corpus(labels, cache_dir=tmp_path / "cache", progress=False)
    train_idx, test_idx, _ = split_corpus(corpus)
    assert any(corpus.files[i].malicious.any() for i in test_idx)
    masks = labelled_split([corpus.labels(i) for i in train_idx], 0.5, 0)
    cfg = ESeTConfig(rounds=1, pretrain_epochs=2, round_epochs=1, kitnet_epochs=1,
                     kitnet_min_steps=10, calib_share=0.0,
                     det={"d_model": 16, "n_heads": 2, "d_ff": 32})
    model = ESeT(cfg, corpus.config)
    model.learn_many(corpus.training_data(train_idx, masks))
    model.save(tmp_path / "model")
    return tmp_path, labels


def _run(tmp_path, labels, *extra):
    parser = argparse.ArgumentParser()
    add_robustness_parser(parser.add_subparsers())
    out = tmp_path / "out" / "r.json"
    args = parser.parse_args([
        "robustness", "--labels", str(labels), "--model", str(tmp_path / "model"),
        "--json", str(out), "--cache-dir", str(tmp_path / "cache"), "--particles", "3",
        "--iterations", "2", "--eps", "0,0.1", "--budgets", "0.5:5", "--max-files", "2", *extra,
    ])
    assert args.func(args) == 0
    return json.loads(out.read_text())


def test_robustness_command_end_to_end(tiny):
    tmp_path, labels = tiny
    res = _run(tmp_path, labels, "--png", str(tmp_path / "r.png"))
    assert (tmp_path / "r.png").stat().st_size > 1000
    rows = res["fgsm"]["rows"]
    assert rows[0]["eps"] == 0.0 and rows[0]["pdr"] == 0.0
    assert rows[0]["f1"] == res["clean"]["f1"]
    assert rows[1]["max_relative_change"] <= 0.1 + 1e-6
    traffic = res["traffic"]["rows"]
    assert {r["search"] for r in traffic} == {"grey", "black"}
    for r in traffic:
        assert r["max_crafted_ratio"] <= 0.5 and r["max_duration_ratio"] <= 5.0 + 1e-9
        assert set(r["detectors"]) == {"eset", "kitnet"}
        # originals re-read from the pcaps score exactly as the corpus features did
        assert r["detectors"]["eset"]["before"]["f1"] == pytest.approx(res["clean"]["f1"])
        assert 0.0 <= r["mmr_after"] <= 1.0
        orig = r["detectors"]["eset"]["original_packets_only"]
        assert orig["after"]["tp"] + orig["after"]["fn"] == r["detectors"]["eset"][
            "attacked_files"]["before"]["tp"] + r["detectors"]["eset"]["attacked_files"][
            "before"]["fn"]  # the original malicious packets, crafted ones left out


@pytest.mark.parametrize("search", [False, True])
def test_hardening_saves_a_loadable_model_and_is_reported(tiny, search):
    tmp_path, labels = tiny
    extra = ["--harden-search"] if search else []
    res = _run(tmp_path, labels, "--harden", str(tmp_path / "hard"), "--search", "grey", *extra)
    info = res["hardening"]
    assert info["mutation"] == ("search" if search else "random")
    assert info["fgsm_labelled_malicious"] > 0 and info["mutated_labelled_malicious"] > 0
    hard = ESeT.load(tmp_path / "hard")
    base = ESeT.load(tmp_path / "model")
    a, b = hard.det.state_dict(), base.det.state_dict()
    assert any(not np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert res["model"] == str(tmp_path / "hard")

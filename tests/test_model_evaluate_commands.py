"""train / evaluate / adapt command functions on the bundled captures (tiny model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jixiaoan.model import commands
from jixiaoan.model.eset import ESeTConfig

TINY = ESeTConfig(
    rounds=1, pretrain_epochs=2, round_epochs=1, kitnet_epochs=1, kitnet_min_steps=5,
    det={"d_model": 16, "n_heads": 2, "d_ff": 32},
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, Path]:
    data = Path(__file__).parent / "data"
    if not (data / "labels.csv").exists():
        pytest.skip("bundled captures not present")
    tmp = tmp_path_factory.mktemp("cmd")
    out = commands.train(
        data / "labels.csv", 0.5, tmp / "model", 0, tmp / "cache", TINY, tmp / "png", False
    )
    assert set(commands.METRIC_KEYS) <= set(out["metrics"])
    return data, tmp, Path(out["model_dir"])


def test_train_writes_a_model_with_its_figures(trained):
    _, tmp, model_dir = trained
    card = json.loads((model_dir / "card.json").read_text())
    assert card["data"]["fraction"] == 0.5 and card["classes"][0] == "benign"
    assert 0.0 <= card["metrics"]["f1"] <= 1.0
    assert sorted(p.name for p in (tmp / "png").iterdir()) == [
        "eset_0.5_confusion.png", "eset_0.5_pr.png"
    ]


def test_evaluate_model_on_own_corpus_uses_the_test_split_else_all_files(trained):
    data, tmp, model_dir = trained
    own = commands.evaluate(
        data / "labels.csv", model_dir=model_dir, json_out=tmp / "own.json",
        cache_dir=tmp / "cache", progress=False,
    )
    assert own["packets"] == own["split"]["test_packets"]
    assert len(own["per_file"]) == own["split"]["test_files"]
    assert json.loads((tmp / "own.json").read_text())["f1"] == own["f1"]
    other = tmp / "other"
    other.mkdir()
    for sub in ("arkime", "zeek", "suricata-verify"):
        (other / sub).symlink_to(data / sub)
    (other / "labels.csv").write_text((data / "labels.csv").read_text())
    every = commands.evaluate(
        other / "labels.csv", model_dir=model_dir, cache_dir=tmp / "cache", progress=False
    )
    assert len(every["per_file"]) > len(own["per_file"])


def test_adapt_whole_capture_writes_a_site_model(trained):
    data, tmp, model_dir = trained
    out = commands.adapt(
        model_dir, data / "zeek" / "wikipedia.pcap", None, tmp / "site",
        cache_dir=tmp / "cache", rounds=1, progress=False, mode="retrain",
    )
    card = json.loads((tmp / "site" / "card.json").read_text())
    assert card["data"]["until_s"] is None and card["name"].endswith("-site")
    assert 0.0 <= out["adapted"]["flagged_share_after"] <= 1.0
    assert "site_gate" not in card


DEMO = Path(__file__).parent.parent / "assets" / "demo"


def test_adapt_by_default_gates_on_the_baseline_and_refuses_a_tiny_one(trained):
    data, tmp, model_dir = trained
    out = commands.adapt(model_dir, DEMO / "capture.pcap", 20.0, tmp / "gated", progress=False)
    card = json.loads((tmp / "gated" / "card.json").read_text())
    assert out["adapted"]["mode"] == "gate" and card["info"]["mode"] == "gate"
    assert card["site_gate"]["packets"] > 200 and card["site_gate"]["zero_day_factor"] == 5.0
    assert card["info"]["labelled_files"] == 0  # the gate needs no labelled corpus
    with pytest.raises(ValueError, match="needs at least"):  # 136 packets: too few to learn
        commands.adapt(model_dir, data / "zeek" / "wikipedia.pcap", None, tmp / "no",
                       progress=False)
    assert not (tmp / "no").exists()


@pytest.mark.parametrize("mode", ["gate", "retrain"])
def test_evaluate_reports_a_site_before_and_after_adaptation(trained, mode):
    _, tmp, model_dir = trained
    out = commands.evaluate(
        DEMO / "labels.csv", model_dir=model_dir, json_out=tmp / "site.json",
        cache_dir=tmp / "cache", progress=False, adapt_until_s=40.0, adapt_mode=mode,
    )
    site = out["site_adaptation"]
    total = out["packets"]
    assert site["window_packets"] + site["rest_packets"] == total
    assert 0 < site["adapt_packets"] <= site["window_packets"] < total
    assert site["mode"] == mode
    assert "AfterImage" in site["note"]  # segments: the statistics restart at every file
    if mode == "retrain":
        assert site["labelled_corpus_files"] > 0  # the model's own corpus is mixed in
        assert site["gate_threshold"] is None
    else:
        assert site["labelled_corpus_files"] == 0 and site["gate_threshold"] > 0
    for when in ("before", "after"):
        assert site[when]["whole"]["packets"] == total
        assert site[when]["rest"]["packets"] == site["rest_packets"]
        for part in ("rest", "whole"):
            assert 0.0 <= site[when][part]["f1"] <= 1.0
    # the model before adaptation is the one scored at top level, on the same packets
    assert site["before"]["whole"]["f1"] == pytest.approx(out["f1"], abs=1e-4)
    saved = json.loads((tmp / "site.json").read_text())
    assert saved["site_adaptation"]["rest_packets"] == site["rest_packets"]


def test_site_stream_orders_files_by_time_and_keeps_sessions_apart(trained):
    from jixiaoan.features.batch import FeatureConfig
    from jixiaoan.model.corpus import load_corpus
    from jixiaoan.model.site_eval import site_stream

    _, tmp, _ = trained
    corpus = load_corpus(DEMO / "labels.csv", FeatureConfig(), tmp / "cache", progress=False)
    corpus.files.reverse()
    feats, truth, names = site_stream(corpus)
    starts = [float(f.ts.min()) for f in feats]
    assert starts == sorted(starts) and names[0].startswith("segments/00")
    seen: set[int] = set()
    for f, y in zip(feats, truth):
        ids = set(np.unique(f.session).tolist())
        assert not ids & seen
        seen |= ids
        assert len(y) == len(f)


def test_evaluate_over_seeds_keeps_each_run_and_summarises_the_spread(trained):
    data, tmp, _ = trained
    kw = dict(methods=["det", "classic"], fractions=[0.5], cache_dir=tmp / "cache",
              config=TINY, progress=False)  # fmt: skip
    out = commands.evaluate(data / "labels.csv", seeds=[1, 0], json_out=tmp / "s.json", **kw)
    assert out["seeds"] == [1, 0] and out["seed"] == 1
    for method in ("det", "classic"):
        runs = out["seed_runs"][method]["0.5"]
        assert sorted(runs) == ["0", "1"]
        assert out["results"][method]["0.5"] == runs["1"]  # `results` is the first seed's
        row = out["summary"][method]["0.5"]
        f1 = [runs[s]["f1"] for s in ("0", "1")]
        assert row["seeds"] == 2 and row["f1"]["mean"] == pytest.approx(np.mean(f1))
        assert row["f1"]["min"] == min(f1) and row["f1"]["max"] == max(f1)
    paired = out["summary"]["classic"]["0.5"]["f1_minus_det"]
    runs = out["seed_runs"]
    diffs = [runs["classic"]["0.5"][s]["f1"] - runs["det"]["0.5"][s]["f1"] for s in ("0", "1")]
    assert paired["mean"] == pytest.approx(np.mean(diffs)) and paired["of"] == 2
    assert paired["ahead_in"] == sum(d > 0 for d in diffs)
    assert "f1_minus_det" not in out["summary"]["det"]["0.5"]
    assert json.loads((tmp / "s.json").read_text())["summary"] == json.loads(
        json.dumps(out["summary"])
    )
    # a seed's run is the same whether it runs alone or among others
    alone = commands.evaluate(data / "labels.csv", seed=0, **kw)
    assert "seed_runs" not in alone
    assert alone["results"]["det"]["0.5"]["f1"] == runs["det"]["0.5"]["0"]["f1"]

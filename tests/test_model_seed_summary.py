"""Seed lists and the spread summary of ``evaluate --seeds``."""

from __future__ import annotations

import pytest

from jixiaoan.model.seed_summary import format_summary, parse_seeds, summarise


def test_parse_seeds_ranges_lists_and_bad_input():
    assert parse_seeds(None) == [0]
    assert parse_seeds("4") == [4]
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("5, 1-2,2") == [1, 2, 5]
    for bad in ("3-1", "-2", "a", "1,,2", "0-"):
        with pytest.raises(ValueError, match="seeds"):
            parse_seeds(bad)


def _m(f1: float, fpr: float = 0.1) -> dict:
    return {"f1": f1, "precision": 0.9, "recall": 0.8, "fpr": fpr}


def test_summary_spread_and_paired_difference_to_det():
    runs = {
        "det": {"0.01": {"0": _m(0.6), "1": _m(0.7), "2": _m(0.65)}},
        "eset": {"0.01": {"0": _m(0.9), "1": _m(0.5), "2": _m(0.95), "3": _m(0.1)}},
        "kitnet": {"0.1": {"0": _m(0.4)}},
    }
    s = summarise(runs)
    e = s["eset"]["0.01"]
    assert e["seeds"] == 4
    assert e["f1"]["mean"] == pytest.approx(0.6125)
    assert e["f1"]["median"] == pytest.approx(0.7)
    assert (e["f1"]["min"], e["f1"]["max"]) == (0.1, 0.95)
    # paired only on the seeds both have (0, 1, 2): +0.3, -0.2, +0.3
    paired = e["f1_minus_det"]
    assert paired["of"] == 3 and paired["ahead_in"] == 2
    assert paired["mean"] == pytest.approx(0.4 / 3)
    assert "f1_minus_det" not in s["det"]["0.01"]
    assert "f1_minus_det" not in s["kitnet"]["0.1"]  # no det at that fraction
    table = format_summary(s)
    assert "eset @ 0.01" in table and "+0.133 2/3" in table

"""Particle-swarm mutation search: seeded determinism, budgets, MMR definition."""

from __future__ import annotations

import numpy as np

from jixiaoan.capture.batch import FrameBatch
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.features.mutate import Budget
from jixiaoan.features.mutate_search import (
    build_mimic,
    extract,
    grey_box_objective,
    nn_distance,
    payloads_of,
    pso_search,
)


def _capture(data_dir, name):
    frames = FrameBatch.concat(list(read_capture(data_dir / name)))
    headers, feats = extract(frames)
    return frames, headers, feats


def _mimic(data_dir):
    frames, headers, feats = _capture(data_dir, "zeek/wikipedia.pcap")
    return build_mimic([feats], payloads_of(frames, headers), max_rows=100, seed=0)


def test_pso_is_deterministic_for_a_seed_and_within_budget(data_dir):
    mimic = _mimic(data_dir)
    frames, headers, _ = _capture(data_dir, "zeek/rfb/vnc-scanner.pcap")
    mal = np.ones(len(frames), bool)
    budget = Budget(0.5, 5.0)
    runs = [pso_search(frames, headers, mal, budget, grey_box_objective(mimic), mimic,
                       particles=4, iterations=3, seed=s) for s in (3, 3, 4)]
    a, b, _ = runs
    assert a.score == b.score and a.history == b.history
    assert [a.mutated.frames.frame(i) for i in range(len(a.mutated.frames))] == [
        b.mutated.frames.frame(i) for i in range(len(b.mutated.frames))]
    np.testing.assert_array_equal(a.mutated.frames.ts, b.mutated.frames.ts)
    for r in runs:
        assert r.evaluations == 12
        assert r.score <= r.start_score  # particle 0 is "no mutation"
        assert all(x >= y for x, y in zip(r.history, r.history[1:]))
        assert r.mutated.crafted_ratio <= budget.l_c
        assert r.mutated.duration_ratio <= budget.l_t + 1e-9
        assert len(r.features) == len(r.mutated.frames)


def test_mimic_radius_and_match_rate(data_dir):
    mimic = _mimic(data_dir)
    assert mimic.radius > 0
    d_self = nn_distance(mimic.rows, mimic.rows)
    assert np.all(d_self < 1e-3)  # every mimic row is its own nearest neighbour
    frames, headers, feats = _capture(data_dir, "zeek/rfb/vnc-scanner.pcap")
    rate = mimic.match_rate(feats)
    assert 0.0 <= rate <= 1.0
    d = mimic.distance(feats)
    assert rate == np.mean(d <= mimic.radius)
    far = feats.take(np.arange(len(feats)))
    far.afterimage = far.afterimage * 0 + 1e12
    assert mimic.match_rate(far) == 0.0

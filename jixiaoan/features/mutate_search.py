"""Particle-swarm search of per-flow mutation parameters (TrafficManipulator style).

The malicious flows of a capture are ranked by size and dealt round-robin into at most
``max_groups`` groups; each group has four parameters in ``[0, 1]`` (a particle's position):
stretch (``1 + u (l_t - 1)``), crafted-packet rate (``u * 2 l_c`` per packet, the global
``l_c`` cap still applies), crafted payload length (the ``u`` quantile of the mimic payload
lengths) and padding (the ``u`` quantile of the mimic payload lengths minus the packet's,
as a fixed byte count per group). Every candidate is applied with ``mutate.mutate_capture`` and
its features are re-extracted by a fresh ``FeatureExtractor``; an objective (lower is better)
scores them. Particle 0 starts at "no mutation", so the search never ends worse than that.

Objectives: ``grey_box_objective`` (mean distance of the mutated malicious packets' features to
their nearest mimic neighbour, in our FeatureBatch space); a black-box surrogate (e.g. KitNET's
RMSE on AfterImage features) is any callable with the same signature, built by the model stage.

Feature space for distances (``feature_matrix``): frequency and AfterImage features, each
``sign(x) log1p(|x|)``-compressed, then standardised by the mimic set's mean and spread.
MMR (mimic match rate): share of mutated malicious packets whose nearest-mimic distance is at
most the mimic radius, the 95th percentile of the mimic packets' own leave-one-out
nearest-neighbour distances.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from jixiaoan.capture.batch import FrameBatch, HeaderBatch
from jixiaoan.capture.parse import parse_headers
from jixiaoan.features.batch import FeatureBatch, FeatureConfig
from jixiaoan.features.extractor import FeatureExtractor
from jixiaoan.features.mutate import (
    Budget,
    FlowParams,
    Mutated,
    flow_index,
    malicious_flows,
    mutate_capture,
)

N_PARAMS = 4
RADIUS_QUANTILE = 0.95


def _compress(x: np.ndarray) -> np.ndarray:
    x = np.nan_to_num(np.asarray(x, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return np.sign(x) * np.log1p(np.abs(x))


def raw_feature_matrix(fb: FeatureBatch) -> np.ndarray:
    """Compressed frequency + AfterImage features (n, K + 100)."""
    return np.hstack([_compress(fb.freq), _compress(fb.afterimage)])


def nn_distance(x: np.ndarray, ref: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Euclidean distance of every row of ``x`` to its nearest row of ``ref``."""
    out = np.zeros(len(x))
    r2 = (ref**2).sum(1)
    for s in range(0, len(x), chunk):
        a = x[s : s + chunk]
        d2 = (a**2).sum(1)[:, None] + r2[None, :] - 2.0 * a @ ref.T
        out[s : s + chunk] = np.sqrt(np.maximum(d2.min(1), 0.0))
    return out


@dataclass
class MimicSet:
    """Benign packets the mutated traffic should resemble."""

    rows: np.ndarray  # standardised feature rows (m, d)
    mean: np.ndarray
    scale: np.ndarray
    radius: float
    payloads: list[bytes] = field(default_factory=list)
    payload_lengths: np.ndarray = field(default_factory=lambda: np.zeros(1))

    def transform(self, fb: FeatureBatch) -> np.ndarray:
        """Standardised feature rows of a FeatureBatch."""
        return (raw_feature_matrix(fb) - self.mean) * self.scale

    def distance(self, fb: FeatureBatch) -> np.ndarray:
        """Nearest-mimic distance per packet."""
        return nn_distance(self.transform(fb), self.rows)

    def match_rate(self, fb: FeatureBatch) -> float:
        """MMR of the packets of ``fb`` (see the module docstring)."""
        return float((self.distance(fb) <= self.radius).mean()) if len(fb) else float("nan")


def build_mimic(
    features: list[FeatureBatch],
    payloads: list[bytes] | None = None,
    max_rows: int = 600,
    seed: int = 0,
) -> MimicSet:
    """Mimic set from benign packets' features (sampled to ``max_rows``) and payloads."""
    raw = np.vstack([raw_feature_matrix(f) for f in features if len(f)])
    rng = np.random.default_rng(seed)
    if len(raw) > max_rows:
        raw = raw[np.sort(rng.choice(len(raw), max_rows, replace=False))]
    mean = raw.mean(0)
    scale = 1.0 / np.maximum(raw.std(0), 1e-3)
    rows = (raw - mean) * scale
    d2 = (rows**2).sum(1)[:, None] + (rows**2).sum(1)[None, :] - 2.0 * rows @ rows.T
    np.fill_diagonal(d2, np.inf)
    loo = np.sqrt(np.maximum(d2.min(1), 0.0))
    pays = [p for p in (payloads or []) if p]
    lengths = np.array([len(p) for p in pays]) if pays else np.zeros(1)
    radius = float(np.quantile(loo, RADIUS_QUANTILE)) if len(rows) > 1 else 0.0
    return MimicSet(rows, mean, scale, radius, pays, lengths)


Objective = Callable[[Mutated, FeatureBatch], float]


def grey_box_objective(mimic: MimicSet) -> Objective:
    """Mean nearest-mimic distance of the mutated malicious packets (lower = more benign)."""

    def score(mutated: Mutated, fb: FeatureBatch) -> float:
        return float(mimic.distance(fb.take(np.flatnonzero(mutated.malicious))).mean())

    return score


def extract(frames: FrameBatch, config: FeatureConfig | None = None):
    """Headers and features of frames with a fresh extractor (the normal pipeline)."""
    headers = parse_headers(frames)
    return headers, FeatureExtractor(config).transform(frames, headers)


def flow_groups(flow: np.ndarray, malicious: np.ndarray, max_groups: int) -> np.ndarray:
    """Group of every malicious flow (order of ``malicious_flows``): size rank mod groups."""
    mflows = malicious_flows(flow, malicious)
    sizes = np.array([int((flow[malicious] == f).sum()) for f in mflows])
    rank = np.empty(len(mflows), np.int64)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(len(mflows))
    return rank % max(1, min(max_groups, len(mflows)))


def decode(u: np.ndarray, groups: np.ndarray, budget: Budget, mimic: MimicSet) -> FlowParams:
    """Flow parameters from a particle position ``u`` (groups x 4 in [0, 1])."""
    p = np.clip(u.reshape(-1, N_PARAMS), 0.0, 1.0)[groups]
    lengths = mimic.payload_lengths
    return FlowParams(
        stretch=1.0 + p[:, 0] * max(budget.l_t - 1.0, 0.0),
        craft_rate=p[:, 1] * 2.0 * budget.l_c,
        craft_len=np.quantile(lengths, p[:, 2]).astype(np.int64),
        pad=np.quantile(lengths, p[:, 3]).astype(np.int64) // 4,
    )


@dataclass
class SearchResult:
    """Best mutation found and the search's trace."""

    mutated: Mutated
    features: FeatureBatch
    params: FlowParams
    score: float
    start_score: float
    history: list[float]
    evaluations: int


def pso_search(
    frames: FrameBatch,
    headers: HeaderBatch,
    malicious: np.ndarray,
    budget: Budget,
    objective: Objective,
    mimic: MimicSet,
    particles: int = 10,
    iterations: int = 10,
    seed: int = 0,
    max_groups: int = 8,
    config: FeatureConfig | None = None,
) -> SearchResult:
    """Particle swarm over per-flow-group parameters minimising ``objective``; deterministic
    for a seed."""
    mal = np.asarray(malicious, bool)
    groups = flow_groups(flow_index(headers), mal, max_groups)
    dim = (int(groups.max()) + 1 if len(groups) else 1) * N_PARAMS
    rng = np.random.default_rng(seed)
    pos = rng.random((particles, dim))
    pos[0] = 0.0
    vel = rng.uniform(-0.2, 0.2, (particles, dim))
    cache: dict = {}

    def evaluate(u: np.ndarray) -> float:
        params = decode(u, groups, budget, mimic)
        m = mutate_capture(frames, headers, mal, params, budget, mimic.payloads)
        fb = extract(m.frames, config)[1]
        score = objective(m, fb)
        cache["last"] = (m, fb, params)
        return score

    best_pos, best_val = pos.copy(), np.full(particles, np.inf)
    g_pos, g_val, g_out, start, history, evals = pos[0].copy(), np.inf, None, np.nan, [], 0
    for it in range(iterations):
        for k in range(particles):
            val = evaluate(pos[k])
            evals += 1
            if it == 0 and k == 0:
                start = val
            if val < best_val[k]:
                best_val[k], best_pos[k] = val, pos[k].copy()
            if val < g_val:
                g_val, g_pos, g_out = val, pos[k].copy(), cache["last"]
        history.append(float(g_val))
        r1, r2 = rng.random((2, particles, dim))
        vel = 0.6 * vel + 1.5 * r1 * (best_pos - pos) + 1.5 * r2 * (g_pos - pos)
        pos = np.clip(pos + vel, 0.0, 1.0)
    m, fb, params = g_out
    return SearchResult(m, fb, params, float(g_val), float(start), history, evals)


def payloads_of(frames: FrameBatch, headers: HeaderBatch, limit: int = 200) -> list[bytes]:
    """Up to ``limit`` non-empty transport payloads of UDP/ICMP packets (mimic filler)."""
    out = []
    for i in np.flatnonzero(headers.payload_off >= 0):
        if int(headers.proto[i]) not in (5, 6, 7):  # PROTO_UDP, PROTO_ICMP, PROTO_ICMPV6
            continue
        p = frames.frame(int(i))[int(headers.payload_off[i]) :]
        if p:
            out.append(p)
        if len(out) >= limit:
            break
    return out

"""ESeT's feature enhancement and training-set mixing (ESET.md section 5.4).

Targets are per-file int arrays with -1 for "not a training sample". The mix of a round is the
kept pseudo-labels plus a share of the labelled packets. Extra samples exchange frequency-domain
features between packets of the same class: a pseudo-labelled packet keeps its byte window and
session context but takes the frequency vector of a random labelled packet of its class; those
samples live in copies of the files (only ``freq`` is copied) whose targets mark just them.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from jixiaoan.features.batch import FeatureBatch

IGNORE = -1


def empty_targets(sizes: list[int]) -> list[np.ndarray]:
    """All-ignore targets for files of the given sizes."""
    return [np.full(n, IGNORE, dtype=np.int64) for n in sizes]


def mix_targets(
    labelled: list[np.ndarray],
    pseudo: list[np.ndarray],
    labelled_share: float,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Pseudo-labels plus a random ``labelled_share`` of the labelled targets (labels win ties)."""
    out = []
    for lab, ps in zip(labelled, pseudo, strict=True):
        t = np.asarray(ps, dtype=np.int64).copy()
        keep = lab >= 0
        if labelled_share < 1.0:
            keep &= rng.random(len(lab)) < labelled_share
        t[keep] = lab[keep]
        out.append(t)
    return out


def exchange_frequency(
    files: list[FeatureBatch],
    labelled: list[np.ndarray],
    pseudo: list[np.ndarray],
    share: float,
    rng: np.random.Generator,
) -> tuple[list[FeatureBatch], list[np.ndarray]]:
    """Extra samples: ``share`` of each class's pseudo-labelled packets with a same-class
    labelled packet's frequency features. Returns (file copies, their targets)."""
    if share <= 0:
        return [], []
    lab_file, lab_row, lab_cls = _flatten(labelled)
    ps_file, ps_row, ps_cls = _flatten(pseudo)
    recv_file, recv_row, donor_freq, recv_cls = [], [], [], []
    for cls in np.unique(ps_cls):
        donors = np.flatnonzero(lab_cls == cls)
        receivers = np.flatnonzero(ps_cls == cls)
        k = int(round(share * len(receivers)))
        if len(donors) == 0 or k == 0:
            continue
        r = _runs(receivers, k, rng)
        d = rng.choice(donors, size=len(r), replace=True)
        k = len(r)
        recv_file.append(ps_file[r])
        recv_row.append(ps_row[r])
        recv_cls.append(np.full(k, cls, dtype=np.int64))
        donor_freq.append(_gather_freq(files, lab_file[d], lab_row[d]))
    if not recv_file:
        return [], []
    rf = np.concatenate(recv_file)
    rr = np.concatenate(recv_row)
    rc = np.concatenate(recv_cls)
    df = np.concatenate(donor_freq)
    out_files, out_targets = [], []
    for fi in np.unique(rf):
        sel = rf == fi
        src = files[fi]
        freq = src.freq.copy()
        freq[rr[sel]] = df[sel]
        tgt = np.full(len(src), IGNORE, dtype=np.int64)
        tgt[rr[sel]] = rc[sel]
        out_files.append(replace(src, freq=freq))
        out_targets.append(tgt)
    return out_files, out_targets


def _runs(items: np.ndarray, k: int, rng: np.random.Generator, run: int = 64) -> np.ndarray:
    """About ``k`` of ``items`` taken as random runs of ``run`` consecutive entries: receivers
    stay dense inside their sessions, so DET trains on them without paying context per packet."""
    n_runs = -(-len(items) // run)
    want = -(-k // run)
    picked = np.sort(rng.choice(n_runs, size=min(want, n_runs), replace=False))
    return np.concatenate([items[i * run : (i + 1) * run] for i in picked])[:k]


def block_ids(batch: FeatureBatch, block: int = 64) -> np.ndarray:
    """Training block of every packet: (session, pos // block), as dense ints.

    DET trains on pieces of consecutive packets of a session; sampling whole blocks keeps the
    context each sampled packet needs cheap (ESET.md section 3, det_train)."""
    if len(batch) == 0:
        return np.zeros(0, np.int64)
    key = np.stack([batch.session.astype(np.int64), batch.pos.astype(np.int64) // block], 1)
    return np.unique(key, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


def sample_blocks(
    targets: list[np.ndarray],
    files: list[FeatureBatch],
    file_weight: np.ndarray,
    max_n: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Keep at most about ``max_n`` target packets, drawn as whole session blocks with
    probability proportional to their file's per-packet weight times the block's targets
    (weighted sampling without replacement), so huge captures do not crowd out the rest."""
    total = count(targets)
    if total <= max_n:
        return targets
    keys, sizes, owner, ids = [], [], [], []
    for fi, (t, f) in enumerate(zip(targets, files, strict=True)):
        on = t >= 0
        if not on.any():
            ids.append(None)
            continue
        blk = block_ids(f)
        ids.append(blk)
        n_in = np.bincount(blk[on], minlength=int(blk.max()) + 1)
        used = np.flatnonzero(n_in)
        w = float(file_weight[fi]) * n_in[used]
        keys.append(np.log(rng.random(len(used))) / w)
        sizes.append(n_in[used])
        owner.append(np.stack([np.full(len(used), fi), used], 1))
    key = np.concatenate(keys)
    order = np.argsort(-key, kind="stable")
    size = np.concatenate(sizes)[order]
    take = order[: int(np.searchsorted(np.cumsum(size), max_n)) + 1]
    chosen = np.concatenate(owner)[take]
    out = []
    for fi, t in enumerate(targets):
        if ids[fi] is None:
            out.append(t)
            continue
        keep_blocks = chosen[chosen[:, 0] == fi, 1]
        out.append(np.where(np.isin(ids[fi], keep_blocks), t, IGNORE))
    return out


def count(targets: list[np.ndarray]) -> int:
    """Number of target packets."""
    return int(sum(int((t >= 0).sum()) for t in targets))


def _flatten(targets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    files, rows, cls = [], [], []
    for i, t in enumerate(targets):
        idx = np.flatnonzero(t >= 0)
        files.append(np.full(len(idx), i, dtype=np.int64))
        rows.append(idx)
        cls.append(np.asarray(t)[idx].astype(np.int64))
    if not files:
        z = np.zeros(0, np.int64)
        return z, z, z
    return np.concatenate(files), np.concatenate(rows), np.concatenate(cls)


def _gather_freq(files: list[FeatureBatch], fidx: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = np.empty((len(fidx), files[0].freq.shape[1]), dtype=files[0].freq.dtype)
    for fi in np.unique(fidx):
        sel = fidx == fi
        out[sel] = files[fi].freq[rows[sel]]
    return out


def loss_weights(
    targets: list[np.ndarray],
    file_weight: np.ndarray,
    labelled: list[np.ndarray] | None = None,
    labelled_share: float = 0.5,
    malicious_share: float = 0.5,
    groups: list[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Per-packet loss weights: the file's weight, then (with ``labelled``) the labelled
    packets scaled up to at least ``labelled_share`` of the total weight (pseudo-labels
    outnumber them, and must not drown them: that is how self-training confirms its own
    errors), then malicious targets scaled to ``malicious_share`` of the total weight and
    benign ones to the rest (0 leaves the classes as they come)."""
    w = [np.where(t >= 0, float(fw), 0.0) for t, fw in zip(targets, file_weight, strict=True)]
    if labelled is not None:
        is_lab = [(lab >= 0) & (t == lab) for t, lab in zip(targets, labelled, strict=False)]
        is_lab += [np.zeros(len(t), bool) for t in targets[len(is_lab) :]]
        lab_w = sum(float(x[m].sum()) for x, m in zip(w, is_lab))
        rest = sum(float(x.sum()) for x in w) - lab_w
        if lab_w > 0 and rest > 0 and lab_w < labelled_share * (lab_w + rest):
            boost = labelled_share * rest / ((1.0 - labelled_share) * lab_w)
            w = [np.where(m, x * boost, x) for x, m in zip(w, is_lab)]
    if malicious_share <= 0:
        return [x.astype(np.float32) for x in w]
    if groups is None:
        groups = [np.zeros(len(t), bool) for t in targets]
    groups = list(groups) + [np.zeros(len(t), bool) for t in targets[len(groups) :]]
    for g in (False, True):  # balance inside each group (e.g. first packets of sessions)
        sel = [gr == g for gr in groups]
        mal = sum(float(x[(t > 0) & s_].sum()) for x, t, s_ in zip(w, targets, sel))
        ben = sum(float(x[(t == 0) & s_].sum()) for x, t, s_ in zip(w, targets, sel))
        if mal > 0 and ben > 0:
            total = mal + ben
            up, down = malicious_share * total / mal, (1 - malicious_share) * total / ben
            w = [
                np.where(s_, x * np.where(t > 0, up, down), x)
                for x, t, s_ in zip(w, targets, sel)
            ]
    return [x.astype(np.float32) for x in w]

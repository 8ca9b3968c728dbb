"""Numba kernels of the AfterImage extractor (semantics in ``jixiaoan.features.afterimage``).

A *table* is a tuple of numpy arrays ``(index, keys, last_t, stats, free, meta, used)``:
``index`` an open-addressing hash index (power-of-two size, linear probing; -1 empty,
-2 deleted, else a slot), ``keys`` (cap, 5) uint64 the key of every slot, ``last_t`` (cap,)
the time of the slot's last update, ``stats`` (cap, L, k) float64 the per-decay statistics,
``free`` (cap,) int64 a stack of freed slots, ``meta`` int64 ``[high_water, n_free,
capacity, n_deleted, n_live]`` and ``used`` (cap,) uint8.
Stream tables keep ``(w, LS, SS)`` per decay; the channel's jitter lives in a second stream
table sharing the channel's slots; pair tables keep ``(SR, w3, R_a, R_b)`` per decay.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

KEY_WIDTH = 5
VAR_FLOOR = 1e-10  # a variance below this share of the mean square is round-off: 0
W, LS, SS = 0, 1, 2  # stream stats columns
SR, W3, RA, RB = 0, 1, 2, 3  # pair stats columns
HIGH, NFREE, CAP, NDEL, NLIVE = 0, 1, 2, 3, 4  # meta entries
EMPTY, DELETED = -1, -2
_MIX = np.uint64(0x9E3779B97F4A7C15)
_SHIFT = np.uint64(29)


def index_size(capacity: int) -> int:
    """Hash index length for ``capacity`` slots: a power of two, at least twice as large."""
    size = 16
    while size < 2 * capacity:
        size *= 2
    return size


def new_table(capacity: int, n_lambdas: int, width: int) -> tuple:
    """An empty table with room for ``capacity`` slots."""
    return (
        np.full(index_size(capacity), EMPTY, np.int64),
        np.zeros((capacity, KEY_WIDTH), np.uint64),
        np.zeros(capacity, np.float64),
        np.zeros((capacity, n_lambdas, width), np.float64),
        np.zeros(capacity, np.int64),
        np.array([0, 0, capacity, 0, 0], np.int64),
        np.zeros(capacity, np.uint8),
    )


def grow_table(table: tuple, capacity: int) -> tuple:
    """The same trackers in a table with room for ``capacity`` slots."""
    index, keys, last_t, stats, free, meta, used = table
    old = len(last_t)

    def grown(a: np.ndarray) -> np.ndarray:
        b = np.zeros((capacity,) + a.shape[1:], a.dtype)
        b[:old] = a
        return b

    meta = meta.copy()
    meta[CAP] = capacity
    index = np.full(index_size(capacity), EMPTY, np.int64)
    table = (index, grown(keys), grown(last_t), grown(stats), grown(free), meta, grown(used))
    rebuild_index(table)
    return table


@njit(cache=True, inline="always")
def _hash(key_row):
    h = np.uint64(0)
    for q in range(key_row.shape[0]):
        h = (h ^ key_row[q]) * _MIX
        h ^= h >> _SHIFT
    return h


@njit(cache=True, inline="always")
def _same(keys, s, key_row):
    same = True
    for q in range(key_row.shape[0]):
        same = same and keys[s, q] == key_row[q]
    return same


@njit(cache=True, inline="always")
def _lookup(table, key_row):
    """Slot of ``key_row`` or -1 (never allocates)."""
    index, keys = table[0], table[1]
    mask = np.uint64(index.shape[0] - 1)
    pos = _hash(key_row) & mask
    while True:
        e = index[pos]
        if e == EMPTY:
            return -1
        if e >= 0 and _same(keys, e, key_row):
            return e
        pos = (pos + np.uint64(1)) & mask


@njit(cache=True, inline="always")
def _index_put(index, h, s):
    mask = np.uint64(index.shape[0] - 1)
    pos = h & mask
    while index[pos] >= 0:
        pos = (pos + np.uint64(1)) & mask
    reused = index[pos] == DELETED
    index[pos] = s
    return reused


@njit(cache=True)
def rebuild_index(table):
    """Re-enter every live slot into a cleared hash index (drops deleted marks)."""
    index, keys, meta, used = table[0], table[1], table[5], table[6]
    index[:] = EMPTY
    for s in range(meta[HIGH]):
        if used[s]:
            _index_put(index, _hash(keys[s]), s)
    meta[NDEL] = 0


@njit(cache=True, inline="always")
def _slot_for(table, key_row):
    """Slot of ``key_row``, allocating an empty one if needed; -1 when the table is full."""
    index, keys, last_t, stats, free, meta, used = table
    s = _lookup(table, key_row)
    if s >= 0:
        return s
    if meta[NFREE] > 0:
        meta[NFREE] -= 1
        s = free[meta[NFREE]]
    elif meta[HIGH] < meta[CAP]:
        s = meta[HIGH]
        meta[HIGH] += 1
    else:
        return -1
    if _index_put(index, _hash(key_row), s):
        meta[NDEL] -= 1
    meta[NLIVE] += 1
    keys[s, :] = key_row
    stats[s, :, :] = 0.0
    last_t[s] = -np.inf
    used[s] = 1
    return s


@njit(cache=True, inline="always")
def _expired(w_min, lam_min, dt, eps):
    """A tracker whose slowest-decay weight, decayed over ``dt``, is <= eps holds nothing."""
    return w_min * 2.0 ** (-lam_min * dt) <= eps


@njit(cache=True, inline="always")
def _mean_var(w, ls, ss):
    if w <= 0.0:
        return 0.0, 0.0
    m = ls / w
    q = ss / w
    v = abs(q - m * m)
    if v <= VAR_FLOOR * q:
        v = 0.0
    return m, v


@njit(cache=True, inline="always")
def _insert(stream, jitter, s, t, x, lambdas, imin, eps):
    """Decay stream slot ``s`` to ``t`` and add ``x``; with a jitter table, also add the
    inter-arrival time (not on the stream's first packet). Returns True on a first packet."""
    st = stream[3]
    last_t = stream[2]
    dt = t - last_t[s]
    fresh = _expired(st[s, imin, W], lambdas[imin], dt, eps)
    has_jit = jitter[3].shape[0] > 0
    for j in range(lambdas.shape[0]):
        if fresh:
            st[s, j, W] = 1.0
            st[s, j, LS] = x
            st[s, j, SS] = x * x
            if has_jit:
                jitter[3][s, j, W] = 0.0
                jitter[3][s, j, LS] = 0.0
                jitter[3][s, j, SS] = 0.0
        else:
            d = 2.0 ** (-lambdas[j] * dt)
            st[s, j, W] = st[s, j, W] * d + 1.0
            st[s, j, LS] = st[s, j, LS] * d + x
            st[s, j, SS] = st[s, j, SS] * d + x * x
            if has_jit:
                js = jitter[3]
                js[s, j, W] = js[s, j, W] * d + 1.0
                js[s, j, LS] = js[s, j, LS] * d + dt
                js[s, j, SS] = js[s, j, SS] * d + dt * dt
    last_t[s] = t
    return fresh


@njit(cache=True, inline="always")
def _write_1d(out, i, col, st, s, L):
    for j in range(L):
        w = st[s, j, W]
        m, v = _mean_var(w, st[s, j, LS], st[s, j, SS])
        out[i, col + 3 * j] = w
        out[i, col + 3 * j + 1] = m
        out[i, col + 3 * j + 2] = math.sqrt(v)


@njit(cache=True, inline="always")
def _two_sided(out, i, col, x, t, stream, s, r, pair, p, side, lambdas, imin, eps):
    """Write the 7 stats per decay of a two-sided key: own 1D stats, then magnitude, radius,
    covariance and correlation with the reverse stream ``r`` (-1 when unknown)."""
    L = lambdas.shape[0]
    st = stream[3]
    rev_live = r >= 0 and not _expired(st[r, imin, W], lambdas[imin], t - stream[2][r], eps)
    ps = pair[3]
    plast = pair[2]
    dtp = t - plast[p]
    pair_fresh = _expired(ps[p, imin, W3], lambdas[imin], dtp, eps)
    for j in range(L):
        w = st[s, j, W]
        ma, va = _mean_var(w, st[s, j, LS], st[s, j, SS])
        mb, vb = 0.0, 0.0
        if rev_live:
            mb, vb = _mean_var(st[r, j, W], st[r, j, LS], st[r, j, SS])
        if pair_fresh:
            ps[p, j, SR] = 0.0
            ps[p, j, W3] = 0.0
            ps[p, j, RA] = 0.0
            ps[p, j, RB] = 0.0
        else:
            d = 2.0 ** (-lambdas[j] * dtp)
            ps[p, j, SR] *= d
            ps[p, j, W3] *= d
            ps[p, j, RA] *= d
            ps[p, j, RB] *= d
        res = x - ma
        if side == 0:
            ps[p, j, SR] += res * ps[p, j, RB]
            ps[p, j, RA] = res
        else:
            ps[p, j, SR] += res * ps[p, j, RA]
            ps[p, j, RB] = res
        ps[p, j, W3] += 1.0
        cov = ps[p, j, SR] / ps[p, j, W3]
        sa = math.sqrt(va)
        sb = math.sqrt(vb)
        pcc = cov / (sa * sb) if sa * sb > 0.0 else 0.0
        c = col + 7 * j
        out[i, c] = w
        out[i, c + 1] = ma
        out[i, c + 2] = sa
        out[i, c + 3] = math.sqrt(ma * ma + mb * mb)
        out[i, c + 4] = math.sqrt(va + vb)
        out[i, c + 5] = cov
        out[i, c + 6] = pcc
    plast[p] = t


@njit(cache=True)
def process(
    start, ts, x, mi_k, ch_k, ch_rk, chp_k, ch_side, sk_k, sk_rk, skp_k, sk_side,
    lambdas, imin, eps, clock, out, mi, ch, jit, chp, sk, skp, no_jit,
):
    """Walk packets ``start..n`` in order, updating the tables and writing ``out`` (n, 100).

    Returns ``(next_packet, full_table)``: ``(n, -1)`` when done, otherwise the packet that
    could not get a slot and the table (0 MI, 1 channel, 2 channel pair, 3 socket, 4 socket
    pair) to make room in before calling again from that packet.
    """
    n = ts.shape[0]
    L = lambdas.shape[0]
    for i in range(start, n):
        s_mi = _slot_for(mi, mi_k[i])
        if s_mi < 0:
            return i, 0
        s_ch = _slot_for(ch, ch_k[i])
        if s_ch < 0:
            return i, 1
        p_ch = _slot_for(chp, chp_k[i])
        if p_ch < 0:
            return i, 2
        s_sk = _slot_for(sk, sk_k[i])
        if s_sk < 0:
            return i, 3
        p_sk = _slot_for(skp, skp_k[i])
        if p_sk < 0:
            return i, 4
        t = ts[i]
        if t > clock[0] and t < np.inf:
            clock[0] = t
        elif clock[0] == -np.inf:
            clock[0] = 0.0
        t = clock[0]
        xi = x[i]
        _insert(mi, no_jit, s_mi, t, xi, lambdas, imin, eps)
        _write_1d(out, i, 0, mi[3], s_mi, L)
        _insert(ch, jit, s_ch, t, xi, lambdas, imin, eps)
        r_ch = _lookup(ch, ch_rk[i])
        _two_sided(out, i, 3 * L, xi, t, ch, s_ch, r_ch, chp, p_ch, ch_side[i], lambdas, imin, eps)
        _write_1d(out, i, 10 * L, jit[3], s_ch, L)
        _insert(sk, no_jit, s_sk, t, xi, lambdas, imin, eps)
        r_sk = _lookup(sk, sk_rk[i])
        _two_sided(out, i, 13 * L, xi, t, sk, s_sk, r_sk, skp, p_sk, sk_side[i], lambdas, imin, eps)
    return n, -1


@njit(cache=True)
def _free(table, s):
    index, keys, meta, used, free = table[0], table[1], table[5], table[6], table[4]
    mask = np.uint64(index.shape[0] - 1)
    pos = _hash(keys[s]) & mask
    while index[pos] != s:
        pos = (pos + np.uint64(1)) & mask
    index[pos] = DELETED
    meta[NDEL] += 1
    meta[NLIVE] -= 1
    used[s] = 0
    free[meta[NFREE]] = s
    meta[NFREE] += 1


@njit(cache=True)
def sweep_expired(table, weight_col, lam_min, imin, eps, now):
    """Free every slot whose tracker has expired by ``now``; returns how many were freed."""
    last_t, stats, meta, used = table[2], table[3], table[5], table[6]
    freed = 0
    for s in range(meta[HIGH]):
        if used[s] and _expired(stats[s, imin, weight_col], lam_min, now - last_t[s], eps):
            _free(table, s)
            freed += 1
    return freed


@njit(cache=True)
def evict_oldest(table, count):
    """Free the ``count`` least recently updated slots (the hard cap's last resort)."""
    last_t, meta, used = table[2], table[5], table[6]
    live = np.nonzero(used[: meta[HIGH]])[0]
    order = np.argsort(last_t[live], kind="mergesort")
    count = min(count, live.shape[0])
    for q in range(count):
        _free(table, live[order[q]])
    return count

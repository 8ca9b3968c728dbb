"""A slow, plain-Python AfterImage (one object per key, dicts, no numpy in the maths) that
follows the semantics pinned in ``jixiaoan.features.afterimage``, and its own sanity tests."""

from __future__ import annotations

import math

import numpy as np

from jixiaoan.capture.batch import HeaderBatch


class Stream:
    """Damped 1D statistics of one key, one list entry per decay factor."""

    def __init__(self, n: int) -> None:
        self.w = [0.0] * n
        self.ls = [0.0] * n
        self.ss = [0.0] * n
        self.last = -math.inf
        self.jit: Stream | None = None


class Pair:
    """Damped covariance state of an unordered pair of streams."""

    def __init__(self, n: int) -> None:
        self.sr = [0.0] * n
        self.w3 = [0.0] * n
        self.res = {0: [0.0] * n, 1: [0.0] * n}
        self.last = -math.inf


def mean_var(w: float, ls: float, ss: float) -> tuple[float, float]:
    if w <= 0.0:
        return 0.0, 0.0
    m = ls / w
    q = ss / w
    v = abs(q - m * m)
    return m, (0.0 if v <= 1e-10 * q else v)


class ReferenceAfterImage:
    """Per-packet Python implementation of the module docstring, with unbounded dicts."""

    def __init__(self, lambdas=(5.0, 3.0, 1.0, 0.1, 0.01), expiry_weight: float = 1e-9) -> None:
        self.lams = [float(v) for v in lambdas]
        self.lam_min = min(self.lams)
        self.jmin = self.lams.index(self.lam_min)
        self.eps = expiry_weight
        self.mi: dict = {}
        self.ch: dict = {}
        self.chp: dict = {}
        self.sk: dict = {}
        self.skp: dict = {}
        self.clock = -math.inf

    def expired(self, w_min: float, dt: float) -> bool:
        return w_min * 2.0 ** (-self.lam_min * dt) <= self.eps

    def insert(self, table: dict, key, t: float, x: float, jitter: bool) -> Stream:
        st = table.setdefault(key, Stream(len(self.lams)))
        dt = t - st.last
        if self.expired(st.w[self.jmin], dt):
            n = len(self.lams)
            st.w, st.ls, st.ss = [1.0] * n, [x] * n, [x * x] * n
            if jitter:
                st.jit = Stream(n)
        else:
            for j, lam in enumerate(self.lams):
                d = 2.0 ** (-lam * dt)
                st.w[j] = st.w[j] * d + 1.0
                st.ls[j] = st.ls[j] * d + x
                st.ss[j] = st.ss[j] * d + x * x
                if jitter:
                    jt = st.jit
                    jt.w[j] = jt.w[j] * d + 1.0
                    jt.ls[j] = jt.ls[j] * d + dt
                    jt.ss[j] = jt.ss[j] * d + dt * dt
        st.last = t
        return st

    @staticmethod
    def one_d(st: Stream, j: int) -> list[float]:
        m, v = mean_var(st.w[j], st.ls[j], st.ss[j])
        return [st.w[j], m, math.sqrt(v)]

    def two_sided(self, tables, src, dst, t, x, jitter=False):
        streams, pairs = tables
        own = self.insert(streams, (src, dst), t, x, jitter)
        rev = streams.get((dst, src))
        if rev is not None and self.expired(rev.w[self.jmin], t - rev.last):
            rev = None
        side = 0 if src <= dst else 1
        pkey = (src, dst) if side == 0 else (dst, src)
        pair = pairs.setdefault(pkey, Pair(len(self.lams)))
        dtp = t - pair.last
        fresh = self.expired(pair.w3[self.jmin], dtp)
        feats = []
        for j, lam in enumerate(self.lams):
            ma, va = mean_var(own.w[j], own.ls[j], own.ss[j])
            mb, vb = mean_var(rev.w[j], rev.ls[j], rev.ss[j]) if rev is not None else (0.0, 0.0)
            d = 0.0 if fresh else 2.0 ** (-lam * dtp)
            pair.sr[j] *= d
            pair.w3[j] *= d
            pair.res[0][j] *= d
            pair.res[1][j] *= d
            r = x - ma
            pair.sr[j] += r * pair.res[1 - side][j]
            pair.w3[j] += 1.0
            pair.res[side][j] = r
            cov = pair.sr[j] / pair.w3[j]
            sa, sb = math.sqrt(va), math.sqrt(vb)
            pcc = cov / (sa * sb) if sa * sb > 0 else 0.0
            feats += [own.w[j], ma, sa, math.sqrt(ma * ma + mb * mb), math.sqrt(va + vb), cov, pcc]
        pair.last = t
        return own, feats

    def packet(self, ts, length, src_mac, dst_mac, version, proto, src_addr, dst_addr, sport,
               dport) -> list[float]:
        """Features of one packet; addresses are bytes (16), MACs ints."""
        if ts > self.clock and ts < math.inf:
            self.clock = ts
        elif self.clock == -math.inf:
            self.clock = 0.0
        t, x = self.clock, float(length)
        n = len(self.lams)
        mi = self.insert(self.mi, (src_mac, version, src_addr), t, x, False)
        f_mi = [v for j in range(n) for v in self.one_d(mi, j)]
        src, dst = (version, src_addr), (version, dst_addr)
        ch, f_ch = self.two_sided((self.ch, self.chp), src, dst, t, x, jitter=True)
        f_jit = [v for j in range(n) for v in self.one_d(ch.jit, j)]
        ssock, dsock = (version, proto, src_addr, sport), (version, proto, dst_addr, dport)
        _, f_sk = self.two_sided((self.sk, self.skp), ssock, dsock, t, x)
        return f_mi + f_ch + f_jit + f_sk

    def transform(self, h: HeaderBatch) -> np.ndarray:
        rows = []
        for i in range(len(h)):
            ip = int(h.ip_version[i]) in (4, 6)
            smac, dmac = int(h.src_mac[i]), int(h.dst_mac[i])
            if ip:
                sa, da = bytes(h.src_ip[i]), bytes(h.dst_ip[i])
                version, proto = int(h.ip_version[i]), int(h.ip_proto[i])
                sport, dport = int(h.sport[i]), int(h.dport[i])
            else:
                sa, da = bytes(8) + smac.to_bytes(8, "big"), bytes(8) + dmac.to_bytes(8, "big")
                version = proto = sport = dport = 0
            rows.append(self.packet(float(h.ts[i]), int(h.length[i]), smac, dmac, version,
                                    proto, sa, da, sport, dport))  # fmt: skip
        return np.asarray(rows, dtype=np.float64).reshape(len(h), 100)


def test_reference_single_packet_stream() -> None:
    ref = ReferenceAfterImage()
    a, b = bytes(15) + b"\x01", bytes(15) + b"\x02"
    f1 = ref.packet(1.0, 100, 1, 2, 6, 6, a, b, 1000, 80)
    f2 = ref.packet(2.0, 300, 1, 2, 6, 6, a, b, 1000, 80)
    assert f1[:3] == [1.0, 100.0, 0.0]
    d = 2.0**-5.0
    w = d + 1.0
    mean = (100 * d + 300) / w
    assert math.isclose(f2[0], w) and math.isclose(f2[1], mean)
    assert math.isclose(f2[2], math.sqrt((100**2 * d + 300**2) / w - mean**2))
    assert f1[50:53] == [0.0, 0.0, 0.0]  # first packet of the channel: no jitter sample
    assert f2[50:53] == [1.0, 1.0, 0.0]  # one interval of 1 s

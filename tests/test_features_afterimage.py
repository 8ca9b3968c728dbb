"""AfterImage: equality with the plain-Python reference, streaming, bounded state, numerics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_features_afterimage_reference import ReferenceAfterImage

from jixiaoan.capture import synthetic
from jixiaoan.capture.batch import HeaderBatch
from jixiaoan.capture.parse import empty_headers, parse_headers
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.features import afterimage
from jixiaoan.features.afterimage import AfterImage
from jixiaoan.features.batch import FeatureConfig

DATA = Path(__file__).resolve().parent / "data"
CAPTURES = sorted(p for p in DATA.rglob("*") if p.suffix in (".pcap", ".pcapng"))


def synthetic_headers(n: int, seed: int = 0, hosts: int = 6, gaps: bool = True) -> HeaderBatch:
    """A mixed stream: IPv4/IPv6 TCP/UDP/ICMP, ARP and other non-IP frames, duplicate and
    out-of-order timestamps, zero lengths, and (with ``gaps``) silences past the expiry."""
    rng = np.random.default_rng(seed)
    h = empty_headers(n)
    dt = rng.exponential(0.02, n)
    dt[rng.random(n) < 0.1] = 0.0  # duplicate timestamps
    if gaps:
        dt[rng.random(n) < 0.01] = 4000.0  # longer than a single packet's expiry horizon
    ts = 1.7e9 + np.cumsum(dt)
    back = rng.random(n) < 0.03
    ts[back] -= rng.exponential(0.5, back.sum())  # out of order
    h.ts[:] = ts
    h.length[:] = rng.integers(0, 1514, n)
    h.length[rng.random(n) < 0.05] = 0
    macs = rng.integers(1, 2**48, hosts, dtype=np.uint64)
    src, dst = rng.integers(0, hosts, n), rng.integers(0, hosts, n)
    h.src_mac[:], h.dst_mac[:] = macs[src], macs[dst]
    kind = rng.choice(4, n, p=[0.6, 0.2, 0.1, 0.1])  # IPv4, IPv6, ARP, other
    h.ip_version[:] = np.select([kind == 0, kind == 1], [4, 6], 0)
    h.proto[kind == 2] = 1
    for addr, idx in ((h.src_ip, src), (h.dst_ip, dst)):
        v4 = kind == 0
        addr[v4, 10:12] = 255
        addr[v4, 15] = idx[v4]
        addr[kind == 1, 0] = 0x20
        addr[kind == 1, 15] = idx[kind == 1]
        addr[kind == 2, 15] = idx[kind == 2]  # ARP protocol addresses: not used as keys
    ip = kind < 2
    h.ip_proto[ip] = rng.choice([6, 17, 1], ip.sum())
    tcpudp = ip & (h.ip_proto != 1)
    h.sport[tcpudp] = rng.choice([80, 443, 5000, 5001], tcpudp.sum())
    h.dport[tcpudp] = rng.choice([80, 443, 5000, 5001], tcpudp.sum())
    return h


def split(h: HeaderBatch, cuts: list[int]) -> list[HeaderBatch]:
    edges = [0, *cuts, len(h)]
    return [h.take(np.arange(a, b)) for a, b in zip(edges, edges[1:])]


def assert_matches_reference(fast: np.ndarray, ref: np.ndarray) -> None:
    assert fast.dtype == np.float32 and fast.shape == ref.shape
    np.testing.assert_allclose(fast, ref.astype(np.float32), rtol=2e-6, atol=1e-9)


def test_matches_reference_on_synthetic_stream() -> None:
    h = synthetic_headers(3000)
    fast = AfterImage(FeatureConfig()).transform(h)
    assert_matches_reference(fast, ReferenceAfterImage().transform(h))


def test_matches_reference_without_expiry_and_other_lambdas() -> None:
    cfg = FeatureConfig(lambdas=(0.5, 2.0, 0.05, 8.0, 1.0))
    h = synthetic_headers(1500, seed=3)
    fast = AfterImage(cfg, expiry_weight=0.0).transform(h)
    ref = ReferenceAfterImage(cfg.lambdas, expiry_weight=0.0).transform(h)
    assert_matches_reference(fast, ref)


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_matches_reference_on_real_capture(path: Path) -> None:
    heads = [parse_headers(b) for b in read_capture(path, batch_size=7)]
    ai, ref = AfterImage(), ReferenceAfterImage()
    fast = np.concatenate([ai.transform(b) for b in heads])
    assert_matches_reference(fast, ref.transform(HeaderBatch.concat(heads)))


def test_scapy_frames_keys() -> None:
    scapy = pytest.importorskip("scapy.all")
    from jixiaoan.capture.batch import FrameBatch

    e = scapy.Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    r = scapy.Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01")
    frames = [
        e / scapy.IP(src="10.0.0.1", dst="10.0.0.2") / scapy.TCP(sport=1234, dport=80),
        r / scapy.IP(src="10.0.0.2", dst="10.0.0.1") / scapy.TCP(sport=80, dport=1234) / ("x" * 40),
        e / scapy.ARP(psrc="10.0.0.1", pdst="10.0.0.2"),
        e / scapy.ARP(psrc="10.9.9.9", pdst="10.8.8.8"),  # same MACs: same channel
        e / scapy.IPv6(src="fe80::1", dst="fe80::2") / scapy.UDP(sport=5, dport=6),
    ]
    h = parse_headers(FrameBatch.from_frames([bytes(f) for f in frames], [0.0, 0.5, 1, 2, 3]))
    f = AfterImage().transform(h)
    assert_matches_reference(f, ReferenceAfterImage().transform(h))
    lam5 = 2.0**-5.0
    # reply on the socket: own weight 1, reverse mean = 54, magnitude uses both means
    assert f[1, 65] == 1.0 and f[1, 68] == pytest.approx(np.hypot(54.0, 94.0))
    assert f[3, 15] == pytest.approx(lam5 + 1.0)  # second ARP: channel keyed by MACs
    assert f[3, 50] == pytest.approx(1.0)  # ... and it has one jitter sample (1 s)
    assert f[4, 15] == 1.0 and f[4, 50] == 0.0  # new IPv6 channel: no jitter sample yet


def test_batch_split_invariance() -> None:
    h = synthetic_headers(2000, seed=1)
    whole = AfterImage().transform(h)
    rng = np.random.default_rng(7)
    for _ in range(3):
        cuts = sorted(rng.choice(np.arange(1, 2000), 25, replace=False).tolist())
        ai = AfterImage()
        parts = [ai.transform(b) for b in split(h, [1, 2, *[c for c in cuts if c > 2]])]
        np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_determinism_and_reset() -> None:
    h = synthetic_headers(1000, seed=2)
    ai = AfterImage()
    first = ai.transform(h)
    ai.reset()
    np.testing.assert_array_equal(ai.transform(h), first)
    np.testing.assert_array_equal(AfterImage().transform(h), first)
    assert not np.array_equal(ai.transform(h), first)  # state carried over without reset


def test_sweeping_expired_slots_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    h = synthetic_headers(6000, seed=4, hosts=40)
    monkeypatch.setattr(afterimage, "INITIAL_CAPACITY", 1 << 16)
    monkeypatch.setattr(afterimage, "SWEEP_EVERY_S", np.inf)
    roomy = AfterImage()  # never full, never swept
    expected = roomy.transform(h)
    assert roomy.expired_freed == 0
    monkeypatch.setattr(afterimage, "INITIAL_CAPACITY", 16)
    monkeypatch.setattr(afterimage, "SWEEP_EVERY_S", 0.0)
    small = AfterImage()  # starts tiny: sweeps when full and after every batch, grows
    got = np.concatenate([small.transform(b) for b in split(h, list(range(300, 6000, 300)))])
    np.testing.assert_array_equal(got, expected)
    assert small.expired_freed > 0 and small.evictions == 0


def test_periodic_sweep_forgets_silent_trackers() -> None:
    h = syn_flood(3000, 1000)
    ai = AfterImage()
    ai.transform(h)
    assert ai.slot_counts()["socket"] == len(np.unique(h.src_ip[:, 13:], axis=0))
    late = h.take(np.array([0]))
    late.ts[:] = h.ts[-1] + 4000.0  # past the expiry horizon of every tracker
    ai.transform(late)
    assert ai.slot_counts() == dict.fromkeys(afterimage.TABLE_NAMES, 1)


def test_expiry_threshold_changes_features_less_than_tolerance() -> None:
    """Versus never expiring: after a silence just past the horizon, the stream statistics
    and covariance differ by at most eps*range (weight, mean, cov) and sqrt(eps)*range (std);
    the jitter and the reverse-stream terms restart by design (module docstring)."""
    eps = 1e-9
    h = empty_headers(4)
    h.ip_version[:] = 4
    h.src_ip[[0, 1, 3], 15], h.dst_ip[[0, 1, 3], 15] = 1, 2
    h.src_ip[2, 15], h.dst_ip[2, 15] = 2, 1
    h.length[:] = [1500, 40, 700, 60]
    horizon = np.log2(1 / eps) / 0.01 * 1.02  # single-packet weight below eps
    h.ts[:] = [0.0, 0.1, 0.2, 0.2 + 1.02 * horizon]
    a = AfterImage(expiry_weight=eps).transform(h).astype(np.float64)
    b = AfterImage(expiry_weight=0.0).transform(h).astype(np.float64)
    assert not np.array_equal(a[3], b[3])  # the expiry did happen
    span = 1500.0
    two_d = [base + 7 * j + k for base in (15, 65) for j in range(5) for k in range(3)]
    one_d = np.r_[0:15, two_d]
    std = one_d[2::3]
    close = np.setdiff1d(one_d, std)
    cov = [15 + 7 * j + 5 for j in range(5)] + [65 + 7 * j + 5 for j in range(5)]
    assert np.all(np.abs(a[3, close] - b[3, close]) <= eps * span + 1e-6 * np.abs(b[3, close]))
    assert np.all(np.abs(a[3, std] - b[3, std]) <= np.sqrt(eps) * span)
    assert np.all(np.abs(a[3, cov] - b[3, cov]) <= eps * span * span + 1e-6 * np.abs(b[3, cov]))
    np.testing.assert_array_equal(a[:3], b[:3])


def syn_flood(n: int, sockets: int, seed: int = 5) -> HeaderBatch:
    """Spoofed sources -> one server port, each source/socket seen about n/sockets times."""
    return synthetic.syn_flood(n, sockets, seed)


def test_bounded_state_under_syn_flood() -> None:
    h = syn_flood(60_000, 30_000)
    ai = AfterImage(max_slots=4096)
    for part in split(h, list(range(5000, 60_000, 5000))):
        out = ai.transform(part)
        assert np.isfinite(out).all()
        counts = ai.slot_counts()
        assert max(counts.values()) <= 4096
        assert all(len(t[1]) <= 4096 for t in ai._tables)
    assert ai.evictions > 0


def test_syn_flood_matches_reference_when_under_the_cap() -> None:
    h = syn_flood(6000, 3000)
    ai = AfterImage()
    fast = np.concatenate([ai.transform(b) for b in split(h, [1000, 2500])])
    assert_matches_reference(fast, ReferenceAfterImage().transform(h))
    assert ai.evictions == 0
    assert ai.slot_counts()["socket"] == len(np.unique(h.src_ip[:, 13:], axis=0))


def test_output_finite_on_degenerate_packets() -> None:
    h = synthetic_headers(500, seed=6)
    h.length[:250] = 0
    h.ts[100:300] = h.ts[100]
    h.ts[310] = np.nan
    h.ts[320] = np.inf
    h.ts[330] = -np.inf
    out = AfterImage().transform(h)
    assert out.dtype == np.float32 and out.shape == (500, 100)
    assert np.isfinite(out).all()
    assert_matches_reference(out, ReferenceAfterImage().transform(h))


def test_empty_batch_and_names() -> None:
    ai = AfterImage()
    assert ai.transform(empty_headers(0)).shape == (0, 100)
    names = ai.feature_names()
    assert len(names) == len(set(names)) == 100
    assert names[0] == "MI_L5_weight" and names[15] == "HH_L5_weight"
    assert names[21] == "HH_L5_pcc" and names[50] == "HH_jit_L5_weight"
    assert names[65] == "HpHp_L5_weight" and names[99] == "HpHp_L0.01_pcc"


def test_real_syn_flood_matches_reference(shared_datasets: Path) -> None:
    path = shared_datasets / "stopddos" / "pkt.TCP.synflood.spoofed.pcap"
    heads = []
    for b in read_capture(path, batch_size=1000):
        heads.append(parse_headers(b))
        if len(heads) == 4:
            break
    ai = AfterImage()
    fast = np.concatenate([ai.transform(b) for b in heads])
    assert_matches_reference(fast, ReferenceAfterImage().transform(HeaderBatch.concat(heads)))
    assert ai.slot_counts()["socket"] > 1000  # it is a flood of distinct sockets


def test_floods_in_corpus_stay_finite_and_bounded(shared_datasets: Path) -> None:
    for path in sorted((shared_datasets / "stopddos").iterdir()):
        ai = AfterImage(max_slots=2048)
        for b in read_capture(path):
            out = ai.transform(parse_headers(b))
            assert np.isfinite(out).all(), path.name
            assert max(ai.slot_counts().values()) <= 2048

"""Whisper frequency features against a slow per-packet reference, and batch-split invariance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from test_features_support import batches_from_packets, split_points, synthetic_headers

from jixiaoan.capture.batch import HeaderBatch
from jixiaoan.capture.parse import parse_headers
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.features.batch import FeatureConfig
from jixiaoan.features.frequency import WhisperFrequency, protocol_codes
from jixiaoan.features.sessions import SessionTracker


def reference_frequency(h: HeaderBatch, session: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Per packet, with dicts and a full complex DFT: the obviously-correct version."""
    w_len, w_proto, w_dt = cfg.whisper_weights
    last_ts: dict[int, float] = {}
    values: dict[int, list[float]] = {}
    rows = []
    for i in range(len(h)):
        sid = int(session[i])
        if h.proto[i] == 4:  # TCP
            f = int(h.tcp_flags[i])
            code = 1 if f & 2 else 40 if f & 1 else 1 if f & 4 else 1000
        else:
            code = 3 if h.proto[i] == 5 else 10
        dt = cfg.min_dt if sid not in last_ts else max(h.ts[i] - last_ts[sid], cfg.min_dt)
        last_ts[sid] = h.ts[i]
        v = w_len * float(h.length[i]) + w_proto * code + w_dt * -math.log2(dt)
        values.setdefault(sid, []).append(v)
        frame = ([0.0] * cfg.w_seg + values[sid])[-cfg.w_seg :]
        power = np.abs(np.fft.fft(np.array(frame))[: cfg.n_freq_bins]) ** 2
        feat = np.log2(power + 1)
        feat[~np.isfinite(feat)] = 0
        rows.append(feat)
    return np.array(rows, np.float32).reshape(len(h), cfg.n_freq_bins)


def run(cfg: FeatureConfig, h: HeaderBatch, cuts: list[int], pass_forgotten: bool = True):
    tracker, freq = SessionTracker(cfg), WhisperFrequency(cfg)
    sessions, feats = [], []
    for part in split_points(len(h), cuts):
        hb = h.take(part)
        session, _ = tracker.assign(hb)
        forgotten = tracker.forgotten if pass_forgotten else None
        feats.append(freq.transform(hb, session, forgotten=forgotten))
        sessions.append(session)
        if pass_forgotten:
            assert freq.n_live == tracker.n_live
    return np.concatenate(sessions), np.concatenate(feats)


def test_protocol_codes():
    eth_ip = Ether() / IP(src="10.0.0.1", dst="10.0.0.2")
    pkts = [
        eth_ip / TCP(flags="S"),
        eth_ip / TCP(flags="SA"),
        eth_ip / TCP(flags="FA"),
        eth_ip / TCP(flags="RA"),
        eth_ip / TCP(flags="FR"),
        eth_ip / TCP(flags="PA"),
        eth_ip / UDP(),
        eth_ip / ICMP(),
        Ether() / ARP(),
    ]
    _, h = batches_from_packets(pkts)
    assert protocol_codes(h).tolist() == [1, 1, 40, 1, 40, 1000, 3, 10, 10]


def test_first_packet_uses_min_dt_and_zero_history():
    pkt = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2)
    _, h = batches_from_packets([pkt, pkt], ts=[5.0, 5.5])
    cfg = FeatureConfig()
    session, _ = SessionTracker(cfg).assign(h)
    out = WhisperFrequency(cfg).transform(h, session)
    assert out.shape == (2, cfg.n_freq) and out.dtype == np.float32
    length = len(pkt)
    v0 = 10 * length + 0.1 * 3 + 15.68 * math.log2(1e-5)
    v1 = 10 * length + 0.1 * 3 + 15.68 * math.log2(0.5)
    # one nonzero value: flat power spectrum v0^2; two values: |v0 + v1 e^-ik...|^2
    np.testing.assert_allclose(out[0], np.log2(v0**2 + 1), rtol=1e-6)
    k = np.arange(cfg.n_freq)
    twiddle = np.exp(-2j * np.pi * k / 16)
    expected = np.abs(v0 * twiddle**14 + v1 * twiddle**15)
    np.testing.assert_allclose(out[1], np.log2(expected**2 + 1), rtol=1e-5)


@pytest.mark.parametrize("w_seg", [16, 5])
def test_matches_reference_and_is_batch_split_invariant(w_seg):
    rng = np.random.default_rng(7)
    h = synthetic_headers(rng, 2500, t_scale=0.4)
    h.ts[100:110] = h.ts[100]  # simultaneous packets: dt floored
    h.ts[200] -= 3.0  # a timestamp that goes backwards
    cfg = FeatureConfig(w_seg=w_seg, session_idle_s=15.0)
    session, whole = run(cfg, h, [])
    np.testing.assert_allclose(whole, reference_frequency(h, session, cfg), rtol=2e-5, atol=1e-4)
    assert len(np.unique(session)) > 50
    for cuts in ([1], [1250], [3, 4, 5, 2499], sorted(rng.integers(1, 2500, 60).tolist())):
        for pass_forgotten in (True, False):
            s, f = run(cfg, h, cuts, pass_forgotten)
            np.testing.assert_array_equal(s, session)
            np.testing.assert_allclose(f, whole, rtol=1e-6, atol=1e-5)


def test_state_is_bounded_without_tracker_help():
    rng = np.random.default_rng(3)
    h = synthetic_headers(rng, 1500, n_hosts=40, t_scale=0.2)
    cfg = FeatureConfig(max_sessions=30, session_idle_s=1e9)
    freq = WhisperFrequency(cfg)
    for part in split_points(len(h), list(range(100, 1500, 100))):
        hb = h.take(part)
        freq.transform(hb, np.arange(part.start, part.stop))  # every packet its own session
        assert freq.n_live <= 30


REAL_CAPTURES = [
    "zeek/ssh/ssh.pcap",
    "stopddos/amp.TCP.syn.optionallyACK.optionallysamePort.pcapng",
    "ndpi/coap_mqtt.pcap",
    "zeek/communityid/ipv6.pcap",
    "suricata-verify/ipv6-evasion_ipv6-rsmurf_rsmurf6.pcap",
]


@pytest.mark.parametrize("name", REAL_CAPTURES)
def test_on_real_captures(shared_datasets, name):
    path = shared_datasets / name
    batches = [parse_headers(f) for f in read_capture(path, batch_size=333)]
    h = HeaderBatch.concat(batches)
    assert len(h) > 10
    cfg = FeatureConfig()
    session, whole = run(cfg, h, [])
    ref = reference_frequency(h, session, cfg)
    np.testing.assert_allclose(whole, ref, rtol=2e-5, atol=1e-4)
    _, split = run(cfg, h, [1, 7, 333, 500, len(h) - 1])
    np.testing.assert_allclose(split, whole, rtol=1e-6, atol=1e-5)

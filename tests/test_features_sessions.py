"""Session tracker: bidirectional keys, MAC-pair keys, expiry, eviction, batch-split invariance."""

from __future__ import annotations

import numpy as np
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from test_features_support import batches_from_packets, split_points, synthetic_headers

from jixiaoan.capture.batch import HeaderBatch
from jixiaoan.features.batch import FeatureConfig
from jixiaoan.features.sessions import SessionTracker

A, B, C = "00:00:00:00:00:0a", "00:00:00:00:00:0b", "00:00:00:00:00:0c"


def reference_sessions(h: HeaderBatch, idle: float) -> tuple[list[int], list[int]]:
    """Per-packet Python reference of the session rules (no eviction)."""
    table: dict[tuple, list] = {}
    sessions, positions, next_id, clock = [], [], 0, -np.inf
    for i in range(len(h)):
        clock = max(clock, h.ts[i])
        if h.ip_version[i] in (4, 6):
            src = (bytes(h.src_ip[i]), int(h.sport[i]))
            ends = sorted([src, (bytes(h.dst_ip[i]), int(h.dport[i]))])
            key = ("ip", int(h.ip_proto[i]), *ends)
        else:
            key = ("link", int(h.ethertype[i]), *sorted([int(h.src_mac[i]), int(h.dst_mac[i])]))
        entry = table.get(key)
        if entry is None or clock - entry[2] > idle:
            entry = table[key] = [next_id, 0, clock]
            next_id += 1
        sessions.append(entry[0])
        positions.append(entry[1])
        entry[1] += 1
        entry[2] = clock
    return sessions, positions


def run_split(tracker: SessionTracker, h: HeaderBatch, cuts: list[int]):
    parts = [tracker.assign(h.take(s)) for s in split_points(len(h), cuts)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def test_bidirectional_tcp_session_and_direction():
    fwd = Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=80)
    back = Ether(src=B, dst=A) / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=80, dport=40000)
    other_port = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=4001, dport=80)
    udp_same = Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=40000, dport=80)
    _, h = batches_from_packets([fwd, back, other_port, fwd, udp_same, back])
    a = SessionTracker(FeatureConfig()).assign_full(h)
    assert a.session.tolist() == [0, 0, 1, 0, 2, 0]
    assert a.pos.tolist() == [0, 1, 0, 2, 0, 3]
    assert a.session.dtype == np.int64 and a.pos.dtype == np.int32
    # 10.0.0.1 < 10.0.0.2, so packets from .1 come from the canonical first endpoint
    assert a.forward.tolist() == [True, False, True, True, True, False]


def test_ipv6_and_ipv4_sessions_differ_and_pair_up():
    p6 = Ether() / IPv6(src="2001:db8::2", dst="2001:db8::1") / UDP(sport=5353, dport=5353)
    r6 = Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5353, dport=5353)
    p4 = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5353, dport=5353)
    _, h = batches_from_packets([p6, p4, r6])
    session, pos = SessionTracker().assign(h)
    assert session.tolist() == [0, 1, 0] and pos.tolist() == [0, 0, 1]


def test_non_ip_frames_keyed_by_mac_pair_and_ethertype():
    req = Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=A, psrc="10.0.0.1", pdst="10.0.0.2")
    reply = Ether(src=B, dst=A) / ARP(op=2, hwsrc=B, psrc="10.0.0.2", hwdst=A, pdst="10.0.0.1")
    ack = Ether(src=A, dst=B) / ARP(op=2, hwsrc=A, psrc="10.0.0.1", hwdst=B, pdst="10.0.0.2")
    lldp_ab = Ether(src=A, dst=B, type=0x88CC) / (b"\x00" * 30)
    lldp_ba = Ether(src=B, dst=A, type=0x88CC) / (b"\x00" * 30)
    other = Ether(src=A, dst=C) / ARP(hwsrc=A, psrc="10.0.0.1", pdst="10.0.0.3")
    _, h = batches_from_packets([req, reply, ack, lldp_ab, lldp_ba, other])
    session, pos = SessionTracker().assign(h)
    assert session.tolist() == [0, 1, 1, 2, 2, 3]
    assert pos.tolist() == [0, 0, 1, 0, 1, 0]


def test_matches_reference_and_is_batch_split_invariant():
    rng = np.random.default_rng(1)
    h = synthetic_headers(rng, 3000, t_scale=0.5)
    idle = 20.0
    ref_s, ref_p = reference_sessions(h, idle)
    cfg = FeatureConfig(session_idle_s=idle)
    whole = SessionTracker(cfg).assign(h)
    assert whole[0].tolist() == ref_s and whole[1].tolist() == ref_p
    assert len(set(ref_s)) > 100  # the stream really expires and restarts sessions
    for cuts in ([1], [1500], [7, 8, 9, 2999], list(rng.integers(1, 3000, 40))):
        s, p = run_split(SessionTracker(cfg), h, list(cuts))
        np.testing.assert_array_equal(s, whole[0])
        np.testing.assert_array_equal(p, whole[1])


def test_out_of_order_timestamps_do_not_move_the_clock_back():
    rng = np.random.default_rng(2)
    h = synthetic_headers(rng, 800, t_scale=1.0)
    h.ts = h.ts + rng.normal(0, 15, len(h))  # jitter larger than typical gaps
    cfg = FeatureConfig(session_idle_s=10.0)
    ref_s, ref_p = reference_sessions(h, 10.0)
    for cuts in ([], [13, 400, 401]):
        s, p = run_split(SessionTracker(cfg), h, cuts)
        assert s.tolist() == ref_s and p.tolist() == ref_p


def test_idle_session_expires_and_gets_a_new_id():
    pkt = Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2)
    other = Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.3") / TCP(sport=1, dport=2)
    _, h = batches_from_packets([pkt, pkt, other, pkt, pkt], ts=[0.0, 10.0, 15.0, 20.0, 40.0])
    tracker = SessionTracker(FeatureConfig(session_idle_s=10.0))
    session, pos = tracker.assign(h)
    # gaps of exactly 10 s continue; 20 s (to 40.0) starts session 2
    assert session.tolist() == [0, 0, 1, 0, 2]
    assert pos.tolist() == [0, 1, 0, 2, 0]
    # session 0 ended inside the batch; session 1 (last seen at 15.0) is idle at clock 40.0
    assert tracker.forgotten.tolist() == [0, 1]
    assert tracker.n_live == 1
    _, later = batches_from_packets([pkt], ts=[51.0])
    assert tracker.assign(later)[0].tolist() == [3]
    assert tracker.forgotten.tolist() == [2]


@pytest.mark.parametrize("batch", [1, 3, 50])
def test_eviction_bound_holds_and_evicted_keys_restart(batch):
    flows = [
        Ether() / IP(src="10.0.0.1", dst=f"10.0.1.{i}") / UDP(sport=7, dport=7) for i in range(20)
    ]
    _, h = batches_from_packets(flows + flows[:2], ts=np.arange(22.0))
    tracker = SessionTracker(FeatureConfig(max_sessions=5))
    sessions = []
    for part in split_points(len(h), list(range(batch, len(h), batch))):
        sessions.append(tracker.assign(h.take(part))[0])
        assert tracker.n_live <= 5
    session = np.concatenate(sessions)
    assert session[:20].tolist() == list(range(20))
    # eviction happens at batch boundaries: with small batches flows 0 and 1 were evicted long
    # before they come back; in one batch of 22 they are the most recent and survive
    assert session[20:].tolist() == ([20, 21] if batch < 20 else [0, 1])


def test_empty_batch():
    _, h = batches_from_packets([])
    session, pos = SessionTracker().assign(h)
    assert session.shape == (0,) and pos.shape == (0,)

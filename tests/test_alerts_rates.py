"""RateTracker: attribution, unclassified packets, the sliding window, families and peers."""

from __future__ import annotations

import numpy as np
import pytest

from jixiaoan.alerts.rates import UNKNOWN_FAMILY, RateTracker
from jixiaoan.alerts.scripted import scripted_batch
from jixiaoan.engine.batch import Device


def test_packet_between_two_devices_counts_for_both_and_self_traffic_once():
    # 0->1 bad, 0->unwatched benign, unwatched->1 unclassified, 0->0 bad, unwatched->unwatched bad
    b = scripted_batch(
        ts=[10.0, 10.1, 10.2, 10.3, 10.4],
        src_device=[0, 0, -1, 0, -1],
        dst_device=[1, -1, 1, 0, -1],
        is_bad=[1, 0, -1, 1, 1],
    )
    t = RateTracker(n_devices=2, window_s=5)
    t.observe(b)
    s = t.snapshot()
    assert s.window_packets.tolist() == [3, 2]
    assert s.window_classified.tolist() == [3, 1]
    assert s.window_malicious.tolist() == [2, 1]
    assert s.total_packets.tolist() == [3, 2]
    assert s.window_share == pytest.approx([2 / 3, 1.0])
    assert s.total_share == pytest.approx([2 / 3, 1.0])


def test_unclassified_packets_are_traffic_but_neither_malicious_nor_benign():
    t = RateTracker(n_devices=1, window_s=10)
    t.observe(scripted_batch([1.0] * 4, [0] * 4, [-1] * 4, [-1, -1, -1, 1]))
    r = t.snapshot().device(0)
    assert (r.window_packets, r.window_classified, r.window_malicious) == (4, 1, 1)
    assert r.window_share == 1.0  # 1 malicious of 1 classified; the 3 unclassified are left out
    t2 = RateTracker(n_devices=1)
    t2.observe(scripted_batch([1.0] * 3, [0] * 3, [-1] * 3, [-1] * 3))
    r2 = t2.snapshot().device(0)
    assert (r2.window_packets, r2.window_classified, r2.window_share) == (3, 0, 0.0)


def test_window_slides_with_capture_time_and_totals_remain():
    t = RateTracker(n_devices=1, window_s=3, bucket_s=1)
    t.observe(scripted_batch([100.2, 100.5], [0, 0], [-1, -1], [1, 1]))
    t.observe(scripted_batch([101.5, 102.5], [0, 0], [-1, -1], [0, 0]))
    s = t.snapshot()
    assert (s.window_malicious[0], s.window_classified[0]) == (2, 4)
    assert s.span_s == 3.0
    assert s.packets_per_s[0] == pytest.approx(4 / 3)
    # one second later the first bucket (100) leaves the window
    t.observe(scripted_batch([103.1], [0], [-1], [0]))
    s = t.snapshot()
    assert (s.window_malicious[0], s.window_classified[0]) == (0, 3)
    assert (s.total_malicious[0], s.total_classified[0]) == (2, 5)
    # an evaluation clock far ahead sees an empty window without new packets
    later = t.snapshot(now=200.0)
    assert later.window_packets[0] == 0 and later.total_packets[0] == 5


def test_late_packet_older_than_the_window_counts_in_totals_only():
    t = RateTracker(n_devices=1, window_s=2)
    t.observe(scripted_batch([50.0], [0], [-1], [0]))
    t.observe(scripted_batch([10.0], [0], [-1], [1]))  # 40 s late
    s = t.snapshot()
    assert (s.window_classified[0], s.window_malicious[0]) == (1, 0)
    assert (s.total_classified[0], s.total_malicious[0]) == (2, 1)


def test_batch_boundaries_do_not_change_the_figures():
    rng = np.random.default_rng(7)
    n = 400
    ts = np.sort(rng.uniform(0, 30, n))
    src = rng.integers(-1, 4, n)
    dst = rng.integers(-1, 4, n)
    bad = rng.integers(-1, 2, n)
    attack = np.where(bad == 1, rng.integers(-1, 3, n), -1)
    ip = [f"10.0.0.{i}" for i in rng.integers(1, 9, n)]
    whole = RateTracker(n_devices=4, window_s=7)
    whole.observe(scripted_batch(ts, src, dst, bad, attack, ("a", "b", "c"), src_ip=ip, dst_ip=ip))
    pieces = RateTracker(n_devices=4, window_s=7)
    for cut in np.array_split(np.arange(n), 13):
        pieces.observe(
            scripted_batch(
                ts[cut], src[cut], dst[cut], bad[cut], attack[cut], ("a", "b", "c"),
                src_ip=[ip[i] for i in cut], dst_ip=[ip[i] for i in cut],
            )
        )
    a, b = whole.snapshot(), pieces.snapshot()
    for name in ("window_packets", "window_classified", "window_malicious", "total_packets"):
        assert getattr(a, name).tolist() == getattr(b, name).tolist(), name
    assert a.window_malicious.sum() > 0
    for d in range(4):
        assert whole.top_families(d, k=5) == pieces.top_families(d, k=5)
        assert whole.top_peers(d, k=20) == pieces.top_peers(d, k=20)


def test_top_families_and_peers_come_from_malicious_packets_in_the_window():
    names = ("mirai", "scan")
    t = RateTracker(n_devices=1, window_s=5)
    t.observe(
        scripted_batch(
            ts=[1.0, 1.1, 1.2, 1.3, 1.4, 1.5],
            src_device=[0, 0, 0, -1, 0, 0],
            dst_device=[-1, -1, -1, 0, -1, -1],
            is_bad=[1, 1, 1, 1, 1, 0],
            attack=[0, 0, 1, 0, -1, -1],
            attack_names=names,
            src_ip=["10.0.0.5", "10.0.0.5", "10.0.0.5", "203.0.113.9", "10.0.0.5", "10.0.0.5"],
            dst_ip=["198.51.100.1", "198.51.100.1", "198.51.100.2", "10.0.0.5", "198.51.100.3",
                    "192.0.2.77"],
            src_mac=["02:00:00:00:00:05"] * 3 + ["02:00:00:00:00:99"] + ["02:00:00:00:00:05"] * 2,
        )
    )
    assert t.top_families(0, k=3) == [("mirai", 3), ("scan", 1), (UNKNOWN_FAMILY, 1)]
    peers = t.top_peers(0, k=10)
    assert peers[0].ip == "198.51.100.1" and peers[0].packets == 2
    labels = {p.label for p in peers}
    # the inbound packet's peer is its source, with its MAC; the benign packet's peer is absent
    assert "203.0.113.9 (02:00:00:00:00:99)" in labels
    assert not any(p.ip == "192.0.2.77" for p in peers)
    # ten seconds later the window holds nothing any more
    assert t.top_families(0, now=20.0) == [] and t.top_peers(0, now=20.0) == []


def test_distinct_peers_per_batch_are_bounded():
    n = 500
    t = RateTracker(n_devices=1, window_s=5, peers_per_batch=8)
    ips = [f"10.1.{i // 250}.{i % 250 + 1}" for i in range(n)]
    ips[:50] = ["10.9.9.9"] * 50  # one dominant peer
    t.observe(scripted_batch(np.full(n, 3.0), np.zeros(n), np.full(n, -1), np.ones(n), dst_ip=ips))
    peers = t.top_peers(0, k=100)
    assert len(peers) == 8
    assert peers[0].ip == "10.9.9.9" and peers[0].packets == 50
    assert t.snapshot().window_malicious[0] == n  # the counts themselves are exact


def test_device_list_grows_and_device_info_follows_the_engine():
    t = RateTracker(n_devices=1)
    devices = [Device(ip="10.0.0.1"), Device(ip="10.0.0.2", name="cam")]
    t.observe(scripted_batch([5.0], [1], [-1], [1], devices=devices))
    s = t.snapshot()
    assert len(s) == 2 and s.window_malicious.tolist() == [0, 1]
    assert t.device_info(1).name == "cam" and t.device_info(7) == Device()
    t.observe(scripted_batch([], [], [], []))
    t.reset()
    assert t.snapshot().total_packets.tolist() == [0, 0]


def test_one_bogus_future_timestamp_does_not_flush_the_window():
    t = RateTracker(n_devices=1, window_s=5)
    t.observe(scripted_batch([100.0, 100.5], [0, 0], [-1, -1], [1, 1]))
    t.observe(scripted_batch([101.0, 101.1, 4e9, 101.2], [0] * 4, [-1] * 4, [1, 0, 0, 0]))
    s = t.snapshot()
    assert s.now == 101.2 and (s.window_classified[0], s.window_malicious[0]) == (5, 3)
    assert s.total_classified[0] == 6

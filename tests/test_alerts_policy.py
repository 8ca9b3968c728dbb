"""AlertMonitor on scripted streams: threshold, min_packets, cooldown, hysteresis, callbacks."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from jixiaoan.alerts.policy import AlertEvent, AlertMonitor, AlertPolicy
from jixiaoan.alerts.rates import RateTracker
from jixiaoan.alerts.scripted import scripted_batch
from jixiaoan.engine.batch import ClassifiedBatch, Device

DEVICES = [
    Device(mac="02:00:00:00:00:01", ip="10.0.0.1", name="camera", vendor="Acme"),
    Device(mac="02:00:00:00:00:02", ip="10.0.0.2", name="plug", vendor="Plugco"),
]


def second(t: float, traffic: dict[int, tuple[int, int]]) -> ClassifiedBatch:
    """One second of traffic starting at ``t``: {device: (packets, malicious packets)}, each
    device talking to an outside host; malicious packets are family 0 ('mirai')."""
    src, bad = [], []
    for dev, (n, n_bad) in traffic.items():
        src += [dev] * n
        bad += [1] * n_bad + [0] * (n - n_bad)
    n = len(src)
    ts = t + np.linspace(0.0, 0.9, n) if n else []
    return scripted_batch(
        ts, src, [-1] * n, bad, attack=[0 if b else -1 for b in bad], attack_names=("mirai",),
        devices=DEVICES, src_ip=[f"10.0.0.{d + 1}" for d in src], dst_ip="203.0.113.66",
    )


def run(monitor: AlertMonitor, script: list[dict[int, tuple[int, int]]], t0: float = 1000.0):
    """Feed one batch per second; returns (second index, event) for every alert."""
    fired = []
    for k, traffic in enumerate(script):
        fired += [(k, e) for e in monitor.feed(second(t0 + k, traffic))]
    return fired


def make(window_s=5.0, **policy) -> AlertMonitor:
    return AlertMonitor(RateTracker(n_devices=2, window_s=window_s), AlertPolicy(**policy))


def test_crossing_the_threshold_fires_once_with_the_details():
    m = make(threshold=0.5, min_packets=10, cooldown_s=60, clear_threshold=0.2)
    got: list[AlertEvent] = []
    m.add_callback(got.append)
    fired = run(m, [{0: (20, 0)}] * 3 + [{0: (20, 20)}] * 6)
    # window of 5 s: after 2 attack seconds 40/100 < 0.5, after 3 it is 60/100
    assert [k for k, _ in fired] == [5]
    assert got == [e for _, e in fired]
    e = got[0]
    assert e.device_index == 0 and e.device.name == "camera" and e.device.vendor == "Acme"
    assert e.window_share == pytest.approx(0.6) and e.window_packets == 100
    assert e.window_malicious == 60
    assert e.total_share == pytest.approx(60 / 120) and e.total_packets == 120
    assert e.top_families == [("mirai", 60)]
    assert e.top_peers[0].ip == "203.0.113.66" and e.top_peers[0].packets == 60
    assert e.window_s == 5.0 and e.time == pytest.approx(1005.9)
    assert "camera" in e.summary() and "60%" in e.summary()
    d = json.loads(json.dumps(e.as_dict()))
    assert d["device"]["mac"] == "02:00:00:00:00:01" and d["top_families"] == [["mirai", 60]]
    assert d["top_peers"][0]["ip"] == "203.0.113.66" and d["window_packets"] == 100
    assert m.alerts_fired == 1


def test_min_packets_holds_back_a_quiet_device():
    m = make(window_s=10, threshold=0.5, min_packets=30, cooldown_s=0, clear_threshold=0.2)
    assert run(m, [{0: (5, 5)}] * 5) == []  # 25 packets, all malicious: below min_packets
    assert [k for k, _ in run(m, [{0: (5, 5)}], t0=1005)] == [0]  # the 30th packet fires


def test_cooldown_keeps_quiet_even_after_rearming():
    m = make(window_s=2, threshold=0.5, min_packets=1, cooldown_s=10, clear_threshold=0.2)
    attack, calm = {0: (10, 10)}, {0: (10, 0)}
    script = [attack, calm, calm, attack, attack, calm, calm] + [calm] * 4 + [attack]
    fired = run(m, script)
    # second 0 fires; re-armed at second 2 but the second attack (second 3) is within 10 s;
    # second 11 is past the cooldown and re-armed
    assert [k for k, _ in fired] == [0, 11]


def test_hysteresis_no_second_alert_until_the_share_falls_below_the_clear_level():
    m = make(window_s=1, threshold=0.5, min_packets=1, cooldown_s=0, clear_threshold=0.2)
    high, middle, low = {0: (10, 8)}, {0: (10, 3)}, {0: (10, 1)}
    fired = run(m, [high, middle, high, middle, high, low, high, high])
    # 0.8 fires; dipping to 0.3 (above the 0.2 clear level) does not re-arm; 0.1 does
    assert [k for k, _ in fired] == [0, 6]


def test_two_devices_are_independent_and_a_benign_device_never_alerts():
    m = make(window_s=3, threshold=0.5, min_packets=5, cooldown_s=0, clear_threshold=0.1)
    script = (
        [{0: (10, 9), 1: (50, 0)}] * 2
        + [{0: (10, 0), 1: (50, 0)}] * 4
        + [{0: (10, 0), 1: (20, 20)}] * 3
    )
    fired = run(m, script)
    # device 1 in its 3 s window: 20/120 at second 6, 40/90 at 7, 60/60 at 8
    assert [(k, e.device_index) for k, e in fired] == [(0, 0), (8, 1)]
    assert fired[1][1].device.name == "plug"

    benign = make(window_s=3, threshold=0.01, min_packets=1, cooldown_s=0, clear_threshold=0.0)
    assert run(benign, [{0: (100, 0), 1: (3, 0)}] * 20) == []


def test_unclassified_traffic_never_alerts():
    m = make(threshold=0.0, min_packets=0, cooldown_s=0, clear_threshold=0.0)
    b = scripted_batch([1.0] * 50, [0] * 50, [-1] * 50, [-1] * 50, devices=DEVICES)
    assert m.feed(b) == []


def test_a_failing_callback_is_logged_and_does_not_stop_the_others(caplog):
    m = make(threshold=0.5, min_packets=1, cooldown_s=0, clear_threshold=0.2)
    seen = []

    def broken(event):
        raise RuntimeError("popup crashed")

    m.add_callback(broken)
    m.add_callback(seen.append)
    with caplog.at_level(logging.ERROR, logger="jixiaoan.alerts.policy"):
        events = m.feed(second(0.0, {0: (10, 10)}))
    assert len(events) == 1 and seen == events
    assert m.callback_errors == 1
    assert "popup crashed" in caplog.text
    m.remove_callback(broken)
    m.remove_callback(broken)  # twice is harmless


def test_evaluation_clock_past_the_window_rearms_a_silent_device():
    m = make(window_s=2, threshold=0.5, min_packets=1, cooldown_s=5, clear_threshold=0.2)
    assert len(m.feed(second(0.0, {0: (10, 10)}))) == 1
    assert m.evaluate(now=3.0) == []  # the window is empty: share 0 re-arms the device
    assert len(m.feed(second(6.0, {0: (10, 10)}))) == 1


def test_policy_validation_and_settings():
    with pytest.raises(ValueError):
        AlertPolicy(threshold=0.3, clear_threshold=0.4)
    with pytest.raises(ValueError):
        AlertPolicy(threshold=1.5)

    class Settings:
        threshold, clear_threshold, min_packets, cooldown_s = 0.7, 0.9, 4, 12.0

    p = AlertPolicy.from_settings(Settings())
    assert (p.threshold, p.clear_threshold, p.min_packets, p.cooldown_s) == (0.7, 0.7, 4, 12.0)


def test_evaluating_before_any_packet_is_quiet_and_warning_free():
    import warnings

    monitor = make(threshold=0.5, min_packets=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NaN from -inf - -inf would raise here
        assert monitor.evaluate() == []
        assert monitor.evaluate(now=5.0) == []
    assert monitor.alerts_fired == 0

"""The bundled demo (assets/demo/, made with `jixiaoan lab`): small, labelled in the corpus
format, and its packets agree with its phases."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jixiaoan.capture.parse import parse_headers
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.features.labels import packet_labels, read_labels
from jixiaoan.lab.output import host_mask, read_phases
from jixiaoan.lab.topology import DEVICES, LAN_HOSTS

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo"


def test_demo_is_small_and_complete() -> None:
    total = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file())
    assert total <= 5 * 1024 * 1024, f"assets/demo is {total / 2**20:.1f} MiB"
    assert sorted(p.name for p in DEMO.glob("*.pcap")) == ["capture.pcap"]  # what the GUI opens
    for name in ("labels.csv", "capture.labels.csv", "phases.csv", "phases.json", "README.md"):
        assert (DEMO / name).is_file(), name


def test_demo_labels_match_its_phases() -> None:
    phases = read_phases(DEMO / "phases.csv")
    rows = read_labels(DEMO / "labels.csv")  # checks that every segment exists
    assert [r.pcap for r in rows] == [p["segment"] for p in phases]
    families = {p["family"] for p in phases if p["kind"] == "attack"}
    assert {"port-scan", "ssh-bruteforce", "syn-flood"} <= families
    for row, phase in zip(rows, phases, strict=True):
        assert row.malicious == (phase["kind"] == "attack")
        assert row.attack == phase["family"]
        headers = parse_headers(next(read_capture(row.path, batch_size=10**6)))
        assert len(headers) == int(phase["packets"])
        assert int(packet_labels(row, headers).sum()) == int(phase["attacker_packets"])
        if row.malicious:
            assert int(phase["attacker_packets"]) > 50


def test_demo_capture_attacker_only_in_attack_windows_and_devices_throughout() -> None:
    phases = read_phases(DEMO / "phases.csv")
    batch = next(read_capture(DEMO / "capture.pcap", batch_size=10**7))
    headers = parse_headers(batch)
    attacker = host_mask(headers, LAN_HOSTS["attacker"], arp=True)
    starts = [p["start"] for p in phases]
    ends = [*starts[1:], np.inf]
    for phase, lo, hi in zip(phases, starts, ends, strict=True):
        inside = (batch.ts >= lo) & (batch.ts < hi)
        if phase["kind"] == "benign":
            assert not (attacker & inside).any(), f"attacker in benign phase {phase['index']}"
        if hi - lo >= 5:
            for device in DEVICES:
                seen = host_mask(headers, LAN_HOSTS[device]) & inside
                assert seen.any(), f"{device} silent in phase {phase['index']}"
    assert not (attacker & (batch.ts < starts[0])).any()
    (whole,) = read_labels(DEMO / "capture.labels.csv")
    labelled = host_mask(headers, LAN_HOSTS["attacker"])
    assert np.array_equal(packet_labels(whole, headers), labelled)
    assert int(labelled.sum()) == sum(int(p["attacker_packets"]) for p in phases)

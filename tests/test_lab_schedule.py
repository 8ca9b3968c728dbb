"""Lab pieces that need no root: schedule parsing, attack command lines, the CLI's ordering,
and the outputs (segments, labels.csv, phases) from a synthetic capture."""

from __future__ import annotations

import argparse
import csv
import json

import numpy as np
import pytest

from jixiaoan.capture.batch import FrameBatch
from jixiaoan.capture.parse import parse_headers
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.capture.pcapwriter import write_pcap
from jixiaoan.features.labels import packet_labels, read_labels
from jixiaoan.lab.attacks import ATTACKS, attack_command, resolve_target
from jixiaoan.lab.cli import add_lab_parser
from jixiaoan.lab.devices import CAMERA_PASSWORD
from jixiaoan.lab.output import Phase, read_phases, split_capture, write_labels, write_phases
from jixiaoan.lab.runner import ATTACKER_IP, parse_attack, parse_benign


def test_parse_attack_spec_with_target_and_parameters() -> None:
    p = parse_attack("syn-flood:plug:rate=2000,count=20000")
    assert (p.kind, p.attack, p.family, p.target, p.target_ip) == (
        "attack", "syn-flood", "syn-flood", "plug", "192.168.137.11")
    assert p.params == {"rate": "2000", "count": "20000"}
    listed = parse_attack("service-scan:camera:ports=22,80,1883,duration=20")
    assert listed.params == {"ports": "22,80,1883", "duration": "20"}
    default = parse_attack("mqtt-abuse")
    assert (default.target, default.target_ip) == ("broker", "203.0.113.88")


@pytest.mark.parametrize("spec", ["no-such-attack", "syn-flood:camera:bogus=1",
                                  "syn-flood:camera:rate", "port-scan:8.8.8.8",
                                  "syn-flood:camera:80,rate=1", "syn-flood:camera:rate=",
                                  "port-scan:nowhere"])
def test_bad_attack_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_attack(spec)


def test_targets_outside_the_lab_are_refused() -> None:
    assert resolve_target("192.168.137.77") == "192.168.137.77"
    for outside in ("10.0.0.1", "192.168.1.1", "1.1.1.1"):
        with pytest.raises(ValueError, match="outside"):
            resolve_target(outside)


def test_benign_period_bounds() -> None:
    assert parse_benign("2.5").seconds == 2.5
    for bad in ("0", "-1", "1e9"):
        with pytest.raises(ValueError):
            parse_benign(bad)


def test_flood_commands_are_rate_and_count_limited(tmp_path) -> None:
    cmd = attack_command("syn-flood", "192.168.137.10", {"rate": "2000", "count": "777"}, tmp_path)
    assert cmd[0] == "hping3" and "--flood" not in cmd
    assert cmd[cmd.index("-i") + 1] == "u500" and cmd[cmd.index("-c") + 1] == "777"
    assert cmd[-1] == "192.168.137.10"


def test_http_flood_count_is_not_overridden_by_time_limit(tmp_path) -> None:
    # ab's -t sets -n 50000 internally; a later -n must bound the request count again
    cmd = attack_command("http-flood", "192.168.137.10", {"count": "123"}, tmp_path)
    assert cmd.index("-t") < cmd.index("-n") and cmd[cmd.index("-n") + 1] == "123"


def test_bruteforce_wordlist_has_the_requested_size_and_the_weak_password_last(tmp_path) -> None:
    cmd = attack_command("ssh-bruteforce", "192.168.137.10", {"words": "150"}, tmp_path)
    words = (tmp_path / "wordlist.txt").read_text().split()
    assert len(words) == 150 and len(set(words)) == 150 and words[-1] == CAMERA_PASSWORD
    assert cmd[0] == "hydra" and cmd[-1] == "ssh://192.168.137.10:22"


def test_every_attack_has_a_duration_bound_and_builds(tmp_path) -> None:
    for name, attack in ATTACKS.items():
        assert float(attack.defaults["duration"]) > 0, name
        cmd = attack_command(name, resolve_target(attack.default_target), {}, tmp_path)
        assert cmd and all(isinstance(c, str) for c in cmd), name


def test_cli_keeps_the_schedule_order() -> None:
    parser = argparse.ArgumentParser()
    add_lab_parser(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["lab", "--out", "x", "--benign", "5", "--attack", "port-scan:tv",
                              "--benign", "3", "--attack", "udp-flood::count=10", "--gap", "2"])
    assert [(p.kind, p.attack, p.seconds) for p in args.schedule] == [
        ("benign", "", 5.0), ("attack", "port-scan", 0.0), ("benign", "", 3.0),
        ("attack", "udp-flood", 0.0)]
    assert args.gap == 2.0 and args.schedule[1].target_ip == "192.168.137.12"
    with pytest.raises(SystemExit):
        parser.parse_args(["lab", "--attack", "teleport:camera"])


def _frame(src: str, dst: str) -> bytes:
    ip = bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]) + bytes(
        int(x) for x in src.split(".")) + bytes(int(x) for x in dst.split("."))
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + bytes(8)


def test_outputs_from_a_synthetic_capture(tmp_path) -> None:
    # one packet per second for 30 s: the plug talks throughout, the attacker from 10 s to 20 s
    ts = 1000.0 + np.arange(30, dtype=np.float64)
    frames = [_frame(ATTACKER_IP if 10 <= i < 20 and i % 2 else "192.168.137.11", "203.0.113.88")
              for i in range(30)]
    capture = tmp_path / "capture.pcap"
    write_pcap(capture, FrameBatch.from_frames(frames, ts))
    phases = [Phase("benign", start=1000.0, end=1010.0),
              Phase("attack", "syn-flood", "syn-flood", "camera", "192.168.137.10",
                    start=1010.0, end=1015.0),
              Phase("benign", start=1020.0, end=1030.0)]
    split_capture(capture, tmp_path, phases, ATTACKER_IP)
    write_labels(tmp_path, phases, ATTACKER_IP)
    write_phases(tmp_path, phases, {"attacker": ATTACKER_IP})
    assert [p.packets for p in phases] == [10, 10, 10]
    assert [p.attacker_packets for p in phases] == [0, 5, 0]
    rows = read_labels(tmp_path / "labels.csv")  # the corpus reader accepts it as is
    assert [(r.pcap, r.label, r.attack, r.hosts) for r in rows] == [
        ("segments/00-benign.pcap", "benign", "", ()),
        ("segments/01-syn-flood.pcap", "malicious", "syn-flood", (ATTACKER_IP,)),
        ("segments/02-benign.pcap", "benign", "", ())]
    seg = next(read_capture(rows[1].path))
    assert np.array_equal(seg.ts, ts[10:20])
    assert packet_labels(rows[1], parse_headers(seg)).sum() == 5
    (whole,) = read_labels(tmp_path / "capture.labels.csv")
    assert (whole.pcap, whole.label, whole.attack, whole.hosts) == (
        "capture.pcap", "malicious", "syn-flood", (ATTACKER_IP,))
    assert packet_labels(whole, parse_headers(next(read_capture(capture)))).sum() == 5
    with open(tmp_path / "phases.csv", newline="") as fh:
        assert [r["kind"] for r in csv.DictReader(fh)] == ["benign", "attack", "benign"]
    assert read_phases(tmp_path / "phases.csv")[1]["start"] == 1010.0
    assert json.loads((tmp_path / "phases.json").read_text())["phases"][1]["family"] == "syn-flood"


def test_missing_tools_are_named_with_their_package(monkeypatch) -> None:
    from jixiaoan.lab import deps

    monkeypatch.setattr(deps, "which", lambda program: None if program == "hping3" else "/x")
    assert deps.missing_tools(["hping3", "nmap"]) == {"hping3": "hping3"}
    with pytest.raises(RuntimeError, match=r"hping3 \(hping3\).*tools/lab-deps.sh"):
        deps.ensure_tools(["hping3", "nmap"], install=False)
    deps.ensure_tools(["nmap"], install=False)  # nothing missing: no error


def test_lab_deps_script_lists_every_package() -> None:
    from jixiaoan.lab.deps import TOOLS, lab_deps_script

    text = lab_deps_script().read_text()
    for package in set(TOOLS.values()):
        assert f" {package} " in f" {' '.join(text.split())} ", package

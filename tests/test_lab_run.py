"""Live lab runs (root, Linux, the Debian tools; installs them with tools/lab-deps.sh when
missing and skips with the reason when that is impossible): per-host packet counts follow the
phases, and nothing the lab started is left afterwards, also after an exception, Ctrl-C, or
a run that died."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jixiaoan.capture.parse import parse_headers
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.features.labels import read_labels
from jixiaoan.lab import topology
from jixiaoan.lab.deps import TELNET_TOOLS, ensure_tools
from jixiaoan.lab.output import host_mask, read_phases
from jixiaoan.lab.runner import BASE_TOOLS, LabRun, parse_attack, parse_benign, run_lab
from jixiaoan.lab.topology import (
    DEVICES,
    LAN_HOSTS,
    Topology,
    cleanup_stale,
    list_namespaces,
    processes_in,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lab_ready() -> None:
    """Skip (with the reason) unless namespaces and the lab's programs are available."""
    problem = topology.netns_probe()
    if problem:
        pytest.skip(problem)
    try:
        ensure_tools(sorted({*BASE_TOOLS, "nmap", "hping3"}))
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"lab tools unavailable and could not be installed: {exc}")


def _assert_nothing_left(run_id: str, ns_inodes: set[int], pids: set[int]) -> None:
    assert not [ns for ns in list_namespaces() if ns.startswith(f"jxl-{run_id}-")]
    assert not list(Path("/etc/netns").glob(f"jxl-{run_id}-*"))
    assert not (topology.STATE_DIR / f"{run_id}.pid").exists()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert run_id not in links
    assert processes_in(ns_inodes, pids) == []


def _login_records() -> dict[str, tuple[int, int] | None]:
    out = {}
    for name in ("btmp", "wtmp", "lastlog", "../../run/utmp"):
        path = Path("/var/log") / name
        out[name] = (path.stat().st_size, path.stat().st_mtime_ns) if path.exists() else None
    return out


def test_short_run_counts_follow_the_phases_and_nothing_is_left(lab_ready, tmp_path) -> None:
    ensure_tools(["hydra"])
    phases = [parse_benign(6), parse_attack("port-scan:camera:ports=1-200,rate=400"),
              parse_attack("syn-flood:camera:rate=200,count=400"), parse_benign(6),
              parse_attack("ssh-bruteforce:camera:words=6")]
    records = _login_records()
    run = LabRun(phases, tmp_path, gap=5, warmup=2, keep_logs=True)
    run_lab(run)
    assert run.run_id and len(run.ns_inodes) == 7
    # hydra guessed the camera's weak password over a real SSH login
    assert "password: admin1234" in (tmp_path / "logs" / "attack-ssh-bruteforce.log").read_text()
    _assert_nothing_left(run.run_id, set(run.ns_inodes.values()), set(run.pids))
    # the camera's sshd kept its login records to itself
    assert _login_records() == records

    rows = read_phases(tmp_path / "phases.csv")
    assert [r["kind"] for r in rows] == ["benign", "attack", "attack", "benign", "attack"]
    batches = list(read_capture(tmp_path / "capture.pcap"))
    ts = np.concatenate([b.ts for b in batches])
    headers = [parse_headers(b) for b in batches]
    attacker = np.concatenate([host_mask(h, LAN_HOSTS["attacker"], arp=True) for h in headers])
    starts = [r["start"] for r in rows]
    windows = list(zip(starts, [*starts[1:], np.inf], strict=True))
    for row, (lo, hi) in zip(rows, windows, strict=True):
        inside = (ts >= lo) & (ts < hi)
        n_attacker = int((attacker & inside).sum())
        if row["kind"] == "benign":
            assert n_attacker == 0, f"attacker packets in benign phase {row['index']}"
        else:
            assert n_attacker >= 50, f"{row['attack']}: only {n_attacker} attacker packets"
        for device in DEVICES:
            mask = np.concatenate([host_mask(h, LAN_HOSTS[device]) for h in headers])
            assert (mask & inside).any(), f"{device} silent in phase {row['index']}"
    assert not (attacker & (ts < starts[1])).any()
    # the SYN flood's 400 packets all went to the camera's port 80
    flood = (ts >= starts[2]) & (ts < starts[3]) & attacker
    assert int(flood.sum()) >= 400
    labels = read_labels(tmp_path / "labels.csv")
    assert [r.label for r in labels] == ["benign", "malicious", "malicious", "benign", "malicious"]
    assert int(rows[1]["attacker_packets"]) >= 300  # 200 probes and their answers
    assert labels[2].attack == "syn-flood" and labels[2].hosts == (LAN_HOSTS["attacker"],)
    assert sum(int(r["packets"]) for r in rows) == len(ts)


def test_exception_inside_the_lab_removes_everything(lab_ready) -> None:
    topo = Topology()
    with pytest.raises(ZeroDivisionError), topo:
        topo.start("camera", ["sleep", "600"])
        topo.start("tv", ["bash", "-c", "sleep 600 & sleep 600"])
        time.sleep(0.3)
        assert len(processes_in(set(topo.ns_inodes.values()))) >= 3
        1 / 0  # noqa: B018
    _assert_nothing_left(topo.run_id, set(topo.ns_inodes.values()), set(topo.started))


def test_cleanup_removes_the_namespaces_of_a_dead_run(lab_ready) -> None:
    topo = Topology()
    topo.__enter__()
    try:
        # a daemon that left the lab's process group, as sshd's session children do
        subprocess.run(["ip", "netns", "exec", topo.ns("plug"), "setsid", "-f", "sleep", "600"],
                       check=True, timeout=10)
        dead = subprocess.Popen(["true"])
        dead.wait()
        (topology.STATE_DIR / f"{topo.run_id}.pid").write_text(f"{dead.pid}\n")
        removed = cleanup_stale()
        assert sorted(removed) == sorted(topo.created)
        _assert_nothing_left(topo.run_id, set(topo.ns_inodes.values()), set())
    finally:
        topo.close()


def _ctrl_c_as_in_a_terminal() -> None:
    """The child handles Ctrl-C as when started from a terminal, even if this test run was
    started in the background (where the shell makes it inherit an ignored SIGINT)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_cleans_up(lab_ready, tmp_path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "jixiaoan.lab.cli", "lab", "--out", str(tmp_path), "--benign",
         "60", "--no-install"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=ROOT, preexec_fn=_ctrl_c_as_in_a_terminal)
    run_id = None
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        m = re.search(r"lab: run ([0-9a-f]+)", line)
        if m:
            run_id = m.group(1)
        if line.startswith("lab: benign") or time.monotonic() > deadline:
            break
    assert run_id, "the lab did not start"
    inodes = {os.stat(f"/run/netns/{ns}").st_ino for ns in list_namespaces()
              if ns.startswith(f"jxl-{run_id}-")}
    assert len(inodes) == 7
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, out
    _assert_nothing_left(run_id, inodes, set())


def test_telnet_bruteforce_logs_in_to_the_camera(lab_ready, tmp_path) -> None:
    try:
        ensure_tools(list(TELNET_TOOLS))
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"telnet server unavailable (tools/lab-deps.sh --with-telnet): {exc}")
    records = _login_records()
    phases = [parse_benign(2), parse_attack("telnet-bruteforce:camera:words=4")]
    run = LabRun(phases, tmp_path, gap=2, warmup=1, keep_logs=True)
    run_lab(run)
    _assert_nothing_left(run.run_id, set(run.ns_inodes.values()), set(run.pids))
    assert _login_records() == records
    log = (tmp_path / "logs" / "attack-telnet-bruteforce.log").read_text()
    assert "admin:admin1234 - Valid credentials" in log
    batch = next(read_capture(tmp_path / "capture.pcap", batch_size=10**6))
    h = parse_headers(batch)
    to_telnet = host_mask(h, LAN_HOSTS["attacker"]) & (h.dport == 23)
    assert int(to_telnet.sum()) > 20 and (batch.ts[to_telnet] >= run.phases[1].start).all()

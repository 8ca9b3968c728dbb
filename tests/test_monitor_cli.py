"""``jixiaoan monitor`` on a replayed capture: status lines, clean exit, everything flushed."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from jixiaoan.runtime.cli import add_monitor_parser
from jixiaoan.storage.store import StoreReader

DATA = Path(__file__).resolve().parent / "data"
ROOT = DATA.parent.parent
CAPTURE = DATA / "zeek" / "wikipedia.pcap"  # 136 packets over 6.4 s
RUN = (
    "import argparse, sys\n"
    "from jixiaoan.runtime.cli import add_monitor_parser\n"
    "p = argparse.ArgumentParser(prog='jixiaoan')\n"
    "add_monitor_parser(p.add_subparsers(dest='command', required=True))\n"
    "a = p.parse_args(sys.argv[1:])\n"
    "sys.exit(a.func(a))\n"
)
STATUS_LINE = re.compile(r"cap [\d,]+/s .* drops k\d+/q\d+/e\d+/s\d+")


def monitor(*args: str) -> subprocess.Popen:
    env = {**os.environ, "JIXIAOAN_CONFIG": os.devnull + ".missing"}
    return subprocess.Popen(
        [sys.executable, "-c", RUN, "monitor", *args], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        preexec_fn=ctrl_c_as_in_a_terminal,
    )


def ctrl_c_as_in_a_terminal() -> None:
    """The child handles Ctrl-C as when started from a terminal, even if this test run was
    started in the background (where the shell makes it inherit an ignored SIGINT)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def rows_in(db: Path) -> int:
    reader = StoreReader(db)
    try:
        return sum(reader.counts(d.table_name)[0] for d in reader.devices())
    finally:
        reader.close()


def stored_rows(out: str) -> int:
    m = re.search(r"([\d,]+) rows stored", out)
    assert m, out
    return int(m.group(1).replace(",", ""))


def test_parser_accepts_the_documented_options():
    p = argparse.ArgumentParser()
    add_monitor_parser(p.add_subparsers(dest="command"))
    a = p.parse_args(["monitor", "--iface", "eth0", "--device", "10.0.0.2", "--device",
                      "aa:bb:cc:dd:ee:ff,10.0.0.3,cam", "--db", "x.db", "--threshold", "0.7",
                      "--no-model", "--duration", "5"])
    assert (a.iface, a.device, a.db, a.threshold, a.no_model, a.duration) == (
        "eth0", ["10.0.0.2", "aa:bb:cc:dd:ee:ff,10.0.0.3,cam"], "x.db", 0.7, True, 5.0)
    with pytest.raises(SystemExit):
        p.parse_args(["monitor", "--iface", "eth0", "--replay", "x.pcap"])  # one source only
    with pytest.raises(SystemExit):
        p.parse_args(["monitor", "--model", "m", "--no-model", "--iface", "eth0"])


def test_replay_with_duration_prints_status_and_exits_zero_with_everything_flushed(tmp_path):
    db = tmp_path / "mon.sqlite3"
    proc = monitor("--replay", str(CAPTURE), "--speed", "1", "--duration", "3", "--db", str(db),
                   "--no-model", "--device", "00:13:7f:4f:8e:f2,,router")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("monitoring replay") and "router" in lines[0]
    assert sum(1 for line in lines if STATUS_LINE.search(line)) >= 3  # per second + final
    assert "stopped:" in lines[-1]
    stored = stored_rows(lines[-1])
    assert 0 < stored < 136  # stopped part-way through the 6.4 s capture ...
    assert rows_in(db) == stored  # ... and every row it counted is in the file


def test_ctrl_c_stops_cleanly_and_flushes(tmp_path):
    db = tmp_path / "mon.sqlite3"
    proc = monitor("--replay", str(CAPTURE), "--speed", "0.5", "--db", str(db), "--no-model")
    first = proc.stdout.readline()
    assert first.startswith("monitoring"), proc.stderr.read()
    while not STATUS_LINE.search(proc.stdout.readline()):
        pass
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "interrupted; stopped:" in out
    assert rows_in(db) == stored_rows(out) > 0


def test_a_missing_capture_is_a_user_error(tmp_path):
    proc = monitor("--replay", str(tmp_path / "nope.pcap"), "--db", str(tmp_path / "x.db"),
                   "--no-model")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "capture not found" in err


def test_an_unknown_adapter_is_a_user_error(tmp_path):
    proc = monitor("--iface", "jx-no-such-if0", "--db", str(tmp_path / "x.db"), "--no-model",
                   "--device", "10.0.0.1")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "jx-no-such-if0" in err


def test_device_arguments_follow_the_analyze_rules():
    from jixiaoan.runtime.cli import parse_device

    d = parse_device("AA-BB-CC-DD-EE-FF,10.0.0.3,front door, cam")
    assert (d.mac, d.ip, d.name) == ("aa:bb:cc:dd:ee:ff", "10.0.0.3", "front door,cam")
    assert parse_device("fe80::1").ip == "fe80::1"
    for bad in ("", "not-an-address", "10.0.0.300"):
        with pytest.raises(ValueError):
            parse_device(bad)


def test_a_bad_device_argument_is_a_user_error(tmp_path):
    proc = monitor("--replay", str(CAPTURE), "--db", str(tmp_path / "x.db"), "--no-model",
                   "--device", "bogus")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "bogus" in err


def test_a_damaged_capture_is_processed_up_to_the_damage_and_exits_1(tmp_path):
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(CAPTURE.read_bytes()[:3000])
    db = tmp_path / "cut.sqlite3"
    proc = monitor("--replay", str(cut), "--speed", "0", "--db", str(db), "--no-model")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "truncated record" in err
    assert "13 packets processed" in out
    assert rows_in(db) == stored_rows(out) > 0


def test_an_unwritable_database_is_a_user_error(tmp_path):
    proc = monitor("--replay", str(CAPTURE), "--db", str(tmp_path / "no" / "such" / "x.db"),
                   "--no-model")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "x.db" in err and "Traceback" not in err

"""``jixiaoan import``: a capture goes through reading, sessions, features and the store."""

from __future__ import annotations

import sqlite3

from jixiaoan.cli import main
from jixiaoan.storage.reader import StoreReader


def test_import_stores_every_packet_unclassified(data_dir, tmp_path, capsys):
    db = tmp_path / "out.db"
    rc = main(["import", str(data_dir / "zeek/rfb/vnc-scanner.pcap"), "--db", str(db), "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "192.168.0.11" in out and "not yet classified" in out
    reader = StoreReader(db)
    try:
        devices = {d.ip: d for d in reader.devices()}
        assert {"192.168.0.11", "10.0.0.149"} <= set(devices)
        total, malicious, unclassified = reader.counts(devices["192.168.0.11"].table_name)
        assert total == 20 and unclassified == 20 and malicious == 0
        rows = reader.latest(devices["192.168.0.11"].table_name, 50)
        assert all(r.is_bad is None for r in rows)
        assert {r.type for r in rows} == {"TCP"}
    finally:
        reader.close()


def test_import_named_device_only(data_dir, tmp_path):
    db = tmp_path / "one.db"
    rc = main(
        [
            "import",
            str(data_dir / "zeek/rfb/vnc-scanner.pcap"),
            "--db",
            str(db),
            "--device",
            "10.0.0.149,,victim",
            "--quiet",
        ]
    )
    assert rc == 0
    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM devices")]
    assert names == ["victim"]


def test_import_errors_are_clear(tmp_path, capsys):
    assert main(["import", str(tmp_path / "missing.pcap"), "--db", str(tmp_path / "a.db")]) == 2
    assert "capture not found" in capsys.readouterr().err
    junk = tmp_path / "junk.pcap"
    junk.write_text("hello, not a capture")
    assert main(["import", str(junk), "--db", str(tmp_path / "b.db"), "--device", "10.0.0.1"]) == 3
    assert "not a pcap" in capsys.readouterr().err
    assert main(["import", str(junk), "--db", str(tmp_path / "c.db"), "--device", "zz"]) == 2
    assert "neither a MAC nor an IP" in capsys.readouterr().err


def test_truncated_capture_keeps_packets_before_damage(data_dir, tmp_path, capsys):
    raw = (data_dir / "zeek/wikipedia.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(raw[: len(raw) // 2])
    db = tmp_path / "cut.db"
    assert main(["import", str(cut), "--db", str(db), "--quiet"]) == 3
    captured = capsys.readouterr()
    assert "damaged" in captured.err and "byte" in captured.err
    reader = StoreReader(db)
    try:
        assert sum(reader.counts(d.table_name)[0] for d in reader.devices()) > 0
    finally:
        reader.close()

"""The bundled test captures: labelled in the corpus format and attributed with their SHA-1."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def test_labels_cover_every_bundled_capture() -> None:
    with open(DATA / "labels.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["pcap", "label", "attack", "hosts"]
        rows = list(reader)
    captures = sorted(
        str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.suffix in (".pcap", ".pcapng")
    )
    assert sorted(r["pcap"] for r in rows) == captures
    for r in rows:
        assert r["label"] in ("benign", "malicious")
        assert (r["attack"] != "") == (r["label"] == "malicious")
        assert r["hosts"] == "" or r["label"] == "malicious"
    assert any(r["label"] == "malicious" and r["hosts"] for r in rows)


def test_attribution_names_every_capture_with_its_sha1() -> None:
    text = (DATA / "ATTRIBUTION.md").read_text()
    for path in DATA.rglob("*"):
        if path.suffix in (".pcap", ".pcapng"):
            sha1 = hashlib.sha1(path.read_bytes()).hexdigest()
            line = next(x for x in text.splitlines() if f"`{path.relative_to(DATA)}`" in x)
            assert sha1 in line, path

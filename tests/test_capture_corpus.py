"""Every capture of the shared corpus is read and parsed (skipped when the corpus is absent)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from jixiaoan.capture.batch import CaptureError
from jixiaoan.capture.parse import parse_headers
from jixiaoan.capture.pcapfile import read_capture

pytestmark = pytest.mark.shared


def test_every_corpus_capture_reads_and_parses(shared_datasets: Path) -> None:
    with open(shared_datasets / "SOURCES.tsv", newline="") as fh:
        expected = {row["pcap"]: int(row["packets"]) for row in csv.DictReader(fh, delimiter="\t")}
    with open(shared_datasets / "labels.csv", newline="") as fh:
        names = [row["pcap"] for row in csv.DictReader(fh)]
    failed: dict[str, str] = {}
    for name in names:
        count = 0
        try:
            for batch in read_capture(shared_datasets / name):
                h = parse_headers(batch)
                count += len(batch)
                assert ((h.l4_off < 0) | (h.l4_off > h.l3_off)).all(), name
                assert (h.payload_off <= h.caplen.astype(np.int64)).all(), name
                assert ((h.proto >= 4) == (h.l4_off >= 0)).all(), name
        except CaptureError as exc:
            failed[name] = str(exc)
            assert count < expected[name], name
            continue
        assert count == expected[name], name
    print(f"\n{len(names)} corpus captures read; {len(failed)} raise CaptureError:")
    for name, message in failed.items():
        print(f"  {name}: {message}")
    assert len(failed) <= len(names) // 100

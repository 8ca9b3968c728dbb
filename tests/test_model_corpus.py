"""Corpus builder: classes, per-packet truth, cache reuse, damaged captures."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from jixiaoan.model import corpus as corpus_mod
from jixiaoan.model.corpus import load_corpus


@pytest.fixture
def bundled(data_dir: Path) -> Path:
    if not (data_dir / "labels.csv").exists():
        pytest.skip("bundled captures not present")
    return data_dir / "labels.csv"


def test_classes_truth_and_cache_reuse(bundled, tmp_path, monkeypatch):
    c = load_corpus(bundled, cache_dir=tmp_path, progress=False)
    assert c.classes[0] == "benign" and list(c.classes[1:]) == sorted(c.classes[1:])
    assert len(c.files) > 5 and len(list(tmp_path.glob("*.npz"))) == len(c.files)
    for i, f in enumerate(c.files):
        y = c.labels(i)
        assert len(y) == len(f.features) == len(f.malicious)
        assert np.all((y > 0) == f.malicious)
        if f.family == "benign":
            assert not f.malicious.any()
        else:
            assert set(np.unique(y)) <= {0, c.classes.index(f.family)}
    assert any(f.malicious.any() for f in c.files)

    def boom(*_a, **_k):
        raise AssertionError("re-extracted although cached")

    monkeypatch.setattr(corpus_mod, "extract_file", boom)
    again = load_corpus(bundled, cache_dir=tmp_path, progress=False)
    assert [f.name for f in again.files] == [f.name for f in c.files]
    for a, b in zip(again.files, c.files):
        assert np.array_equal(a.features.byte_idx, b.features.byte_idx)
        assert np.array_equal(a.malicious, b.malicious)


def test_damaged_capture_keeps_earlier_packets_with_a_warning(bundled, tmp_path):
    src = bundled.parent / "zeek" / "wikipedia.pcap"
    folder = tmp_path / "data"
    folder.mkdir()
    blob = src.read_bytes()
    (folder / "cut.pcap").write_bytes(blob[: len(blob) * 2 // 3])
    shutil.copy(src, folder / "whole.pcap")
    (folder / "labels.csv").write_text(
        "pcap,label,attack,hosts\ncut.pcap,benign,,\nwhole.pcap,malicious,dos,\nmissing.pcap,benign,,\n"
    )
    c = load_corpus(folder / "labels.csv", cache_dir=tmp_path / "cache", progress=False)
    sizes = {f.name: len(f) for f in c.files}
    assert 0 < sizes["cut.pcap"] < sizes["whole.pcap"]
    assert any("cut.pcap" in w and "damaged" in w for w in c.warnings)
    assert any("missing.pcap" in w for w in c.warnings)
    assert c.classes == ("benign", "dos")
    assert c.files[[f.name for f in c.files].index("whole.pcap")].malicious.all()

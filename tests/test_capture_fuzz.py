"""Damaged captures and random frames never crash the reader or the parser."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jixiaoan.capture.batch import SUPPORTED_LINKTYPES, CaptureError, FrameBatch
from jixiaoan.capture.parse import parse_headers
from jixiaoan.capture.pcapfile import read_capture

DATA = Path(__file__).resolve().parent / "data"
SAMPLES = {
    "pcap": (DATA / "zeek" / "icmp" / "5-pings.pcap").read_bytes(),
    "pcapng": (DATA / "zeek" / "pcapng-multi-interface.pcapng").read_bytes(),
}


def read_damaged(raw: bytes, chunk_size: int) -> int:
    """Read and parse ``raw``; the number of frames yielded."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "damaged.cap"
        path.write_bytes(raw)
        n = 0
        try:
            for batch in read_capture(path, batch_size=3, chunk_size=chunk_size):
                h = parse_headers(batch)
                assert (h.payload_off <= h.caplen.astype(np.int64)).all()
                n += len(batch)
        except CaptureError as exc:
            assert "damaged.cap" in str(exc)
        return n


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(sorted(SAMPLES)),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 10_000)),
    chunk_size=st.sampled_from([8, 100, 1 << 16]),
)
def test_damaged_files_raise_only_capture_error(
    kind: str, flips: list[tuple[int, int]], cut: int | None, chunk_size: int
) -> None:
    raw = bytearray(SAMPLES[kind])
    for where, value in flips:
        raw[where % len(raw)] = value
    if cut is not None:
        raw = raw[: cut % (len(raw) + 1)]
    assert read_damaged(bytes(raw), chunk_size) <= len(raw) // 12


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(st.binary(min_size=0, max_size=120), min_size=1, max_size=20),
    linktype=st.sampled_from(sorted(SUPPORTED_LINKTYPES) + [147]),
)
def test_random_frames_parse_within_bounds(frames: list[bytes], linktype: int) -> None:
    h = parse_headers(FrameBatch.from_frames(frames, np.zeros(len(frames)), linktype))
    caplen = np.array([len(f) for f in frames])
    assert (h.l3_off < np.maximum(caplen, 1)).all()
    assert (h.l4_off <= caplen).all() and (h.payload_off <= caplen).all()
    has_l4 = h.l4_off >= 0
    assert (h.l3_off[has_l4] >= 0).all() and (h.proto[has_l4] >= 4).all()
    assert (h.sport[~has_l4] == 0).all() and (h.tcp_flags[~has_l4] == 0).all()

"""FeatureExtractor and extract_capture on the committed real captures."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
from test_features_frequency import reference_frequency
from test_features_sessions import reference_sessions

from jixiaoan.capture import batch as cb
from jixiaoan.capture.batch import FrameBatch, HeaderBatch
from jixiaoan.features.batch import AFTERIMAGE_WIDTH, PAD_INDEX, FeatureBatch, FeatureConfig
from jixiaoan.features.extractor import FeatureExtractor, extract_capture


def capture_paths(data_dir):
    paths = sorted(p for p in data_dir.rglob("*") if p.suffix in (".pcap", ".pcapng"))
    assert len(paths) >= 10
    return paths


def whole_capture(path, cfg, batch_size):
    parts = list(extract_capture(path, cfg, batch_size=batch_size))
    frames = FrameBatch.concat([p[0] for p in parts])
    headers = HeaderBatch.concat([p[1] for p in parts])
    feats = FeatureBatch.concat([p[2] for p in parts])
    return frames, headers, feats


def test_batch_split_invariance_on_real_captures(data_dir):
    cfg = FeatureConfig()
    for path in capture_paths(data_dir):
        _, headers, whole = whole_capture(path, cfg, 100_000)
        n = len(headers)
        assert whole.byte_idx.shape == (n, cfg.n_bytes) and whole.byte_idx.dtype == np.uint16
        assert whole.freq.shape == (n, cfg.n_freq) and whole.freq.dtype == np.float32
        assert whole.afterimage.shape == (n, AFTERIMAGE_WIDTH)
        assert whole.afterimage.dtype == np.float32
        assert whole.session.dtype == np.int64 and whole.pos.dtype == np.int32
        np.testing.assert_array_equal(whole.ts, headers.ts)
        for batch_size in (1, 7):
            _, _, split = whole_capture(path, cfg, batch_size)
            for f in fields(FeatureBatch):
                a, b = getattr(whole, f.name), getattr(split, f.name)
                if a.dtype.kind == "f":
                    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5, err_msg=f.name)
                else:
                    np.testing.assert_array_equal(b, a, err_msg=f"{path.name} {f.name}")


def test_sessions_and_frequency_match_references_on_real_captures(data_dir):
    cfg = FeatureConfig()
    for path in capture_paths(data_dir):
        _, headers, feats = whole_capture(path, cfg, 50)
        ref_s, ref_p = reference_sessions(headers, cfg.session_idle_s)
        assert feats.session.tolist() == ref_s and feats.pos.tolist() == ref_p, path.name
        ref_f = reference_frequency(headers, feats.session, cfg)
        np.testing.assert_allclose(feats.freq, ref_f, rtol=2e-5, atol=1e-4, err_msg=path.name)


def test_no_packet_shows_its_own_addresses(data_dir):
    cfg = FeatureConfig(n_bytes=96)
    checked = 0
    for path in capture_paths(data_dir):
        frames, headers, feats = whole_capture(path, cfg, 64)
        for i in range(len(frames)):
            row = feats.byte_idx[i]
            text = bytes(row[row != PAD_INDEX].astype(np.uint8))
            secrets = [int(m).to_bytes(6, "big") for m in (headers.src_mac[i], headers.dst_mac[i])]
            for ip in (headers.src_ip[i], headers.dst_ip[i]):
                raw = bytes(ip)
                secrets.append(raw[12:] if raw[:12] == cb.ip_from_str("0.0.0.0")[:12] else raw)
            for secret in secrets:
                if secret.strip(b"\x00") and secret.count(secret[:1]) < len(secret):
                    assert secret not in text, (path.name, i, secret.hex())
                    checked += 1
    assert checked > 1000


def test_reset_restarts_session_ids(data_dir):
    path = capture_paths(data_dir)[0]
    frames = FrameBatch.concat([p[0] for p in extract_capture(path)])
    headers = HeaderBatch.concat([p[1] for p in extract_capture(path)])
    extractor = FeatureExtractor()
    first = extractor.transform(frames, headers)
    second = extractor.transform(frames, headers)
    assert second.session.min() > first.session.max() or second.pos.min() > 0
    extractor.reset()
    again = extractor.transform(frames, headers)
    np.testing.assert_array_equal(again.session, first.session)
    np.testing.assert_array_equal(again.freq, first.freq)
    np.testing.assert_array_equal(again.afterimage, first.afterimage)


def test_length_mismatch_is_an_error(data_dir):
    path = capture_paths(data_dir)[0]
    frames, headers, _ = next(iter(extract_capture(path)))
    with pytest.raises(ValueError, match="header rows"):
        FeatureExtractor().transform(frames, headers.take(np.arange(len(headers) - 1)))


def test_empty_batch_keeps_the_stream_going(data_dir):
    path = capture_paths(data_dir)[0]
    frames, headers, whole = next(iter(extract_capture(path)))
    extractor = FeatureExtractor()
    empty = extractor.transform(FrameBatch.empty(), headers.take(np.arange(0)))
    assert len(empty) == 0 and empty.byte_idx.shape == (0, FeatureConfig().n_bytes)
    after = extractor.transform(frames, headers)
    np.testing.assert_array_equal(after.session, whole.session)
    np.testing.assert_array_equal(after.freq, whole.freq)


def test_sessions_only_matches_the_full_transform(data_dir):
    """The model-less path tracks exactly the sessions the full transform does."""
    from jixiaoan.capture.parse import parse_headers
    from jixiaoan.capture.pcapfile import read_capture

    for path in capture_paths(data_dir)[:6]:
        full, lean = FeatureExtractor(), FeatureExtractor()
        for frames in read_capture(str(path), batch_size=37):
            headers = parse_headers(frames)
            a, b = full.transform(frames, headers), lean.transform_sessions(frames, headers)
            np.testing.assert_array_equal(b.session, a.session)
            np.testing.assert_array_equal(b.pos, a.pos)
            np.testing.assert_array_equal(b.ts, a.ts)
            assert b.byte_idx.shape == (len(frames), 0) and b.afterimage.shape[1] == 0

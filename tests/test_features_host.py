"""Host-keyed Whisper features and the host-field mask of the byte view (FeatureConfig flags)."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from test_features_extractor import capture_paths, whole_capture
from test_features_frequency import reference_frequency
from test_features_support import batches_from_packets

from jixiaoan.features.anonymize import anonymized_bytes
from jixiaoan.features.batch import FeatureBatch, FeatureConfig
from jixiaoan.features.frequency import host_keys

A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"


def test_host_keys_follow_the_address_on_either_side():
    pkts = [
        Ether() / IP(src=A, dst=B) / UDP(),
        Ether() / IP(src=B, dst=A) / UDP(),
        Ether() / IP(src=A, dst=C) / TCP(),
        Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(),
        Ether(src="02:00:00:00:00:0a", dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=A, pdst=B),
        Ether(src="02:00:00:00:00:0b", dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=A, pdst=B),
    ]
    _, h = batches_from_packets(pkts)
    src, dst = host_keys(h, True), host_keys(h, False)
    assert src.dtype == np.int64 and dst.dtype == np.int64
    assert src[0] == dst[1] == src[2]  # A as sender and as receiver
    assert dst[0] == src[1] and dst[2] != dst[0]
    assert len({src[0], dst[0], dst[2], src[3], dst[3]}) == 5
    # ARP has no IP header here: keyed by the (differing) sender MACs
    assert h.ip_version[4] == 0 and src[4] != src[5] and dst[4] == dst[5]


def test_host_columns_match_the_reference_and_do_not_depend_on_batching(data_dir):
    plain, cfg = FeatureConfig(), FeatureConfig(host_frequency=True)
    k = cfg.n_freq_bins
    assert cfg.n_freq == 3 * k and plain.n_freq == k
    for path in capture_paths(data_dir)[:6]:
        _, headers, whole = whole_capture(path, cfg, 100_000)
        _, _, base = whole_capture(path, plain, 100_000)
        assert whole.freq.shape == (len(headers), 3 * k)
        np.testing.assert_array_equal(whole.freq[:, :k], base.freq)
        for col, source in ((1, True), (2, False)):
            ref = reference_frequency(headers, host_keys(headers, source), cfg)
            got = whole.freq[:, col * k : (col + 1) * k]
            np.testing.assert_allclose(got, ref, rtol=2e-5, atol=1e-4, err_msg=path.name)
        _, _, split = whole_capture(path, cfg, 7)
        for f in fields(FeatureBatch):
            a, b = getattr(whole, f.name), getattr(split, f.name)
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5, err_msg=f.name)


def test_host_field_mask_zeroes_exactly_the_stack_fields():
    v4 = (
        Ether() / IP(src=A, dst=B, id=0x1234, ttl=57)
        / TCP(sport=1000, dport=80, seq=0x01020304, ack=0x05060708, window=777,
              options=[("NOP", None), ("NOP", None), ("Timestamp", (0x0A0B0C0D, 0x0E0F1011))])
        / b"GET /"
    )  # fmt: skip
    v6 = Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=33) / UDP(sport=5, dport=6)
    frames, headers = batches_from_packets([v4, v6])
    plain = anonymized_bytes(frames, headers, 96)
    masked = anonymized_bytes(frames, headers, 96, mask_host_fields=True)
    tcp = 14 + 20
    zeroed_v4 = {18, 19, 22} | set(range(tcp + 4, tcp + 12)) | set(range(tcp + 24, tcp + 32))
    assert plain[0, 18:20].tolist() == [0x12, 0x34] and plain[0, 22] == 57
    assert plain[0, tcp + 24 : tcp + 32].tolist() == list(range(0x0A, 0x12))
    for col in range(96):
        want = 0 if col in zeroed_v4 else plain[0, col]
        assert masked[0, col] == want, col
    assert plain[1, 14 + 7] == 33 and masked[1, 14 + 7] == 0
    others = np.ones(96, bool)
    others[14 + 7] = False
    np.testing.assert_array_equal(masked[1, others], plain[1, others])
    assert masked[0, tcp + 14 : tcp + 16].tolist() == [777 >> 8, 777 & 0xFF]  # window kept


def test_extractor_applies_the_mask(data_dir):
    path = capture_paths(data_dir)[0]
    _, _, plain = whole_capture(path, FeatureConfig(), 100_000)
    _, _, masked = whole_capture(path, FeatureConfig(mask_host_fields=True), 100_000)
    changed = plain.byte_idx != masked.byte_idx
    assert changed.any() and (masked.byte_idx[changed] == 0).all()

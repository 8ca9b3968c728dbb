"""Traffic mutation: valid pcaps, flow order and payload kept, budgets never exceeded."""

from __future__ import annotations

import numpy as np
import pytest

from jixiaoan.capture.batch import FrameBatch
from jixiaoan.capture.parse import parse_headers
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.capture.pcapwriter import write_pcap
from jixiaoan.features.mutate import (
    Budget,
    FlowParams,
    flow_index,
    malicious_flows,
    mutate_capture,
    ones_sum,
)

CAPTURES = ("zeek/icmp/5-pings.pcap", "zeek/rfb/vnc-scanner.pcap", "zeek/wikipedia.pcap",
            "zeek/ipv6-fragmented-dns.pcap", "zeek/http/cooper-grill-dvwa.pcapng")


def _load(data_dir, name):
    frames = FrameBatch.concat(list(read_capture(data_dir / name)))
    return frames, parse_headers(frames)


def _params(n, stretch, rate, length, pad):
    return FlowParams(np.full(n, stretch), np.full(n, rate), np.full(n, length, np.int64),
                      np.full(n, pad, np.int64))


def _every_other_flow(headers):
    flow = flow_index(headers)
    return flow % 2 == 0


@pytest.mark.parametrize("name", CAPTURES)
@pytest.mark.parametrize("budget", [Budget(0.2, 2.0), Budget(0.5, 5.0), Budget(0.0, 1.0)])
def test_budgets_never_exceeded(data_dir, name, budget):
    frames, headers = _load(data_dir, name)
    mal = _every_other_flow(headers)
    k = len(malicious_flows(flow_index(headers), mal))
    m = mutate_capture(frames, headers, mal, _params(k, 50.0, 3.0, 64, 30), budget)
    n_mal = int(mal.sum())
    assert m.crafted.sum() <= np.floor(budget.l_c * n_mal + 1e-9)
    assert m.crafted_ratio <= budget.l_c + 1e-12
    assert m.duration_ratio <= budget.l_t + 1e-9
    t = m.frames.ts[m.malicious]
    orig = frames.ts[mal]
    if orig.max() > orig.min():
        assert (t.max() - t.min()) <= budget.l_t * (orig.max() - orig.min()) * (1 + 1e-9)
        assert m.duration_ratio == pytest.approx((t.max() - t.min()) / (orig.max() - orig.min()))
    assert not m.malicious[m.origin >= 0][~mal[m.origin[m.origin >= 0]]].any()


def test_crafted_budget_is_used_when_asked(data_dir):
    frames, headers = _load(data_dir, "zeek/wikipedia.pcap")
    mal = np.ones(len(frames), bool)
    k = len(malicious_flows(flow_index(headers), mal))
    m = mutate_capture(frames, headers, mal, _params(k, 1.0, 5.0, 20, 0), Budget(0.2, 1.0))
    assert m.crafted.sum() > 0
    assert m.duration_ratio == pytest.approx(1.0)


@pytest.mark.parametrize("name", CAPTURES)
def test_mutated_capture_is_valid_and_keeps_flows(data_dir, tmp_path, name):
    frames, headers = _load(data_dir, name)
    mal = _every_other_flow(headers)
    k = len(malicious_flows(flow_index(headers), mal))
    m = mutate_capture(frames, headers, mal, _params(k, 3.0, 1.0, 48, 25), Budget(0.5, 5.0),
                       [b"mimic-payload"])
    path = tmp_path / "m.pcap"
    write_pcap(path, m.frames)
    back = FrameBatch.concat(list(read_capture(path)))
    assert len(back) == len(m.frames) == len(frames) + int(m.crafted.sum())
    np.testing.assert_allclose(back.ts, m.frames.ts, atol=2e-6)
    assert np.all(np.diff(back.ts) >= -2e-6)  # written in time order
    # every original packet is there exactly once, in its original order inside its flow
    origin = m.origin[m.origin >= 0]
    assert sorted(origin.tolist()) == list(range(len(frames)))
    flow = flow_index(headers)
    for f in np.unique(flow):
        seq = origin[flow[origin] == f]
        assert np.all(np.diff(seq) > 0)
    # payload bytes kept: a mutated frame starts with the original's bytes up to the IP end,
    # except the lengths and checksums padding rewrites; unpadded frames are identical
    h_back = parse_headers(back)
    for row in np.flatnonzero(m.origin >= 0):
        i = int(m.origin[row])
        orig, new = frames.frame(i), back.frame(int(row))
        if m.padded[row] == 0:
            assert new == orig
        else:
            off = int(headers.payload_off[i])
            assert int(h_back.payload_off[row]) == off
            end = len(orig) if headers.ip_version[i] == 0 else off + _payload_len(orig, headers, i)
            assert new[off:end] == orig[off:end]
            assert new[end : end + int(m.padded[row])] == bytes(int(m.padded[row]))
            assert len(new) == len(orig) + int(m.padded[row])
        assert mal[i] or m.padded[row] == 0
    # crafted packets ride on their template's flow (same addresses, ports, direction)
    for row in np.flatnonzero(m.crafted):
        t = int(m.template[row])
        assert mal[t]
        for col in ("src_ip", "dst_ip", "sport", "dport", "ip_proto", "src_mac", "dst_mac"):
            np.testing.assert_array_equal(getattr(h_back, col)[row], getattr(headers, col)[t])


def _payload_len(frame, headers, i):
    l3 = int(headers.l3_off[i])
    if headers.ip_version[i] == 4:
        end = l3 + int.from_bytes(frame[l3 + 2 : l3 + 4], "big")
    else:
        end = l3 + 40 + int.from_bytes(frame[l3 + 4 : l3 + 6], "big")
    return end - int(headers.payload_off[i])


def test_padded_and_crafted_checksums_verify(data_dir):
    frames, headers = _load(data_dir, "zeek/icmp/5-pings.pcap")
    mal = np.ones(len(frames), bool)
    k = len(malicious_flows(flow_index(headers), mal))
    m = mutate_capture(frames, headers, mal, _params(k, 2.0, 1.0, 33, 17), Budget(0.5, 2.0))
    h = parse_headers(m.frames)
    changed = np.flatnonzero((m.padded > 0) | m.crafted)
    assert len(changed) > 0
    for row in changed:
        f = m.frames.frame(int(row))
        l3, l4 = int(h.l3_off[row]), int(h.l4_off[row])
        ihl = (f[l3] & 0x0F) * 4
        assert ones_sum(f[l3 : l3 + ihl]) == 0xFFFF  # IPv4 header checksum
        ip_end = l3 + int.from_bytes(f[l3 + 2 : l3 + 4], "big")
        assert ip_end == len(f) or ip_end < len(f)
        assert ones_sum(f[l4:ip_end]) == 0xFFFF  # ICMP checksum


def test_identity_mutation_changes_nothing(data_dir):
    frames, headers = _load(data_dir, "zeek/wikipedia.pcap")
    mal = _every_other_flow(headers)
    k = len(malicious_flows(flow_index(headers), mal))
    m = mutate_capture(frames, headers, mal, FlowParams.identity(k), Budget(0.5, 5.0))
    assert not m.crafted.any()
    order = np.argsort(frames.ts, kind="stable")
    assert [m.frames.frame(i) for i in range(len(frames))] == [frames.frame(i) for i in order]


def test_padded_udp_checksum_and_lengths_verify(data_dir):
    frames, headers = _load(data_dir, "zeek/wikipedia.pcap")
    mal = headers.ip_proto == 17
    assert mal.any()
    k = len(malicious_flows(flow_index(headers), mal))
    m = mutate_capture(frames, headers, mal, _params(k, 1.0, 0.0, 0, 11), Budget(0.0, 1.0))
    h = parse_headers(m.frames)
    rows = np.flatnonzero(m.padded > 0)
    assert len(rows) > 0
    for row in rows:
        f = m.frames.frame(int(row))
        l3, l4 = int(h.l3_off[row]), int(h.l4_off[row])
        if h.ip_version[row] == 4:
            ip_end = l3 + int.from_bytes(f[l3 + 2 : l3 + 4], "big")
            pseudo = f[l3 + 12 : l3 + 20] + bytes([0, 17]) + (ip_end - l4).to_bytes(2, "big")
        else:
            ip_end = l3 + 40 + int.from_bytes(f[l3 + 4 : l3 + 6], "big")
            pseudo = f[l3 + 8 : l3 + 40] + (ip_end - l4).to_bytes(4, "big") + bytes([0, 0, 0, 17])
        seg = f[l4:ip_end]
        assert int.from_bytes(seg[4:6], "big") == len(seg)  # UDP length
        if seg[6:8] != b"\0\0" or h.ip_version[row] == 6:
            assert ones_sum(pseudo + seg) == 0xFFFF

"""Traffic-space evasion: mutate the malicious flows of a capture without breaking the attack.

Three mutations, each applied only to packets of malicious flows (flow = bidirectional 5-tuple
for IP, MAC pair otherwise, as in ``sessions.session_keys``):

- **delay**: a flow's packet times are stretched from its first packet,
  ``t' = t_first + (t - t_first) * stretch`` (``stretch >= 1``), then clipped to the time budget.
  The map is monotone, so packets of one flow are never reordered (a capture's non-monotone
  timestamps are first made monotone per flow by a running maximum).
- **padding**: ``pad`` zero bytes are appended to the transport payload, with the IP total length
  (IPv6 payload length), UDP length and every checksum fixed. Only where the protocol tolerates
  trailing bytes: UDP datagrams (attacks whose effect does not hinge on the exact datagram size:
  floods, probes, amplification requests, most request parsers ignore trailing bytes) and
  ICMP/ICMPv6 echo request/reply (opaque echo data). Never TCP (it would shift the sequence
  space), never IP fragments, never frames cut by the snap length; non-IP frames are untouched.
- **injection**: crafted packets are copies of a flow packet's headers (same addresses, ports,
  direction) placed in the flow's timeline halfway to the flow's next packet. UDP/ICMP: the
  payload is ``craft_len`` bytes taken from benign mimic payloads (zeros without any). TCP: no
  payload and only the ACK flag when the template had it (a duplicate ACK the receiver ignores),
  else an exact copy of the template (a retransmission). Non-IP flows get no crafted packets.

Budgets (TrafficManipulator's): ``l_c`` = crafted packets / original malicious packets (at most
``floor(l_c * n)`` are made); ``l_t`` = duration of the mutated malicious traffic (original
malicious packets plus crafted ones, last time minus first) / the original malicious duration;
every time is clipped to ``first + l_t * duration`` so the ratio never exceeds ``l_t``.
Benign packets are never changed. The result is a FrameBatch in time order (stable).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jixiaoan.capture.batch import (
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    FrameBatch,
    HeaderBatch,
)
from jixiaoan.features.sessions import session_keys

ECHO_TYPES = {PROTO_ICMP: (0, 8), PROTO_ICMPV6: (128, 129)}
TCP_ACK = 0x10
MAX_PAD = 1200  # bytes appended at most to one packet


@dataclass(frozen=True)
class Budget:
    """Attack budget: crafted/original packet ratio and mutated/original duration ratio."""

    l_c: float
    l_t: float

    def label(self) -> str:
        """Short name, e.g. ``l_c=0.2,l_t=2``."""
        return f"l_c={self.l_c:g},l_t={self.l_t:g}"


@dataclass
class FlowParams:
    """Per malicious flow mutation parameters (arrays of one entry per flow)."""

    stretch: np.ndarray  # float >= 1
    craft_rate: np.ndarray  # crafted packets wanted per original packet of the flow, >= 0
    craft_len: np.ndarray  # int, payload bytes of crafted UDP/ICMP packets
    pad: np.ndarray  # int, bytes appended to every paddable packet of the flow

    @classmethod
    def identity(cls, n_flows: int) -> FlowParams:
        """No mutation at all."""
        z = np.zeros(n_flows)
        return cls(np.ones(n_flows), z.copy(), z.astype(np.int64), z.astype(np.int64))


@dataclass
class Mutated:
    """A mutated capture: frames in time order, and where each came from."""

    frames: FrameBatch
    origin: np.ndarray  # int64: index of the original packet, -1 for a crafted packet
    template: np.ndarray  # int64: the original packet, or the one a crafted packet copies
    malicious: np.ndarray  # bool: original malicious packets and all crafted packets
    padded: np.ndarray  # int64: bytes appended to each packet
    n_original_malicious: int
    duration_ratio: float  # mutated malicious duration / original (1.0 when it was 0)

    @property
    def crafted(self) -> np.ndarray:
        """Mask of crafted packets."""
        return self.origin < 0

    @property
    def crafted_ratio(self) -> float:
        """Crafted packets / original malicious packets."""
        return float(self.crafted.sum()) / max(self.n_original_malicious, 1)


def flow_index(headers: HeaderBatch) -> np.ndarray:
    """Flow id per packet (bidirectional 5-tuple / MAC pair), numbered by first appearance."""
    keys, _ = session_keys(headers)
    if len(keys) == 0:
        return np.zeros(0, np.int64)
    void = np.ascontiguousarray(keys).view(f"V{keys.shape[1]}").ravel()
    _, first, inv = np.unique(void, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inv.ravel()]


def malicious_flows(flow: np.ndarray, malicious: np.ndarray) -> np.ndarray:
    """Sorted ids of the flows holding malicious packets."""
    return np.unique(flow[np.asarray(malicious, bool)])


# ----- checksums and lengths -------------------------------------------------------------------


def ones_sum(data: bytes | bytearray) -> int:
    """16-bit ones-complement sum (Internet checksum before the final complement)."""
    buf = bytes(data) + (b"\0" if len(data) % 2 else b"")
    total = int(np.frombuffer(buf, ">u2").astype(np.int64).sum())
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _checksum(data: bytes | bytearray) -> int:
    return (~ones_sum(data)) & 0xFFFF


def _pseudo(frame: bytearray, l3: int, version: int, proto: int, length: int) -> bytes:
    if version == 4:
        return bytes(frame[l3 + 12 : l3 + 20]) + bytes([0, proto]) + length.to_bytes(2, "big")
    return bytes(frame[l3 + 8 : l3 + 40]) + length.to_bytes(4, "big") + bytes([0, 0, 0, proto])


def fix_ip_packet(frame: bytearray, l3: int, l4: int, version: int, proto: int, ip_end: int):
    """Rewrite the IP length fields, the UDP length and every checksum of an IP packet that
    ends at ``ip_end`` (TCP, UDP, ICMP, ICMPv6 transport checksums)."""
    if version == 4:
        ihl = (frame[l3] & 0x0F) * 4
        frame[l3 + 2 : l3 + 4] = (ip_end - l3).to_bytes(2, "big")
        frame[l3 + 10 : l3 + 12] = b"\0\0"
        frame[l3 + 10 : l3 + 12] = _checksum(frame[l3 : l3 + ihl]).to_bytes(2, "big")
    else:
        frame[l3 + 4 : l3 + 6] = (ip_end - l3 - 40).to_bytes(2, "big")
    seg_len = ip_end - l4
    if proto == 17:
        frame[l4 + 4 : l4 + 6] = seg_len.to_bytes(2, "big")
        if version == 4 and frame[l4 + 6 : l4 + 8] == b"\0\0":
            return  # IPv4 UDP without checksum stays without one
        at = l4 + 6
    elif proto == 6:
        at = l4 + 16
    elif proto in (1, 58):
        at = l4 + 2
    else:
        return
    frame[at : at + 2] = b"\0\0"
    seg = bytes(frame[l4:ip_end])
    pseudo = b"" if proto == 1 else _pseudo(frame, l3, version, proto, seg_len)
    value = _checksum(pseudo + seg)
    if proto == 17 and value == 0:
        value = 0xFFFF
    frame[at : at + 2] = value.to_bytes(2, "big")


def _ip_end(frame: bytes, l3: int, version: int) -> int:
    if version == 4:
        return l3 + int.from_bytes(frame[l3 + 2 : l3 + 4], "big")
    return l3 + 40 + int.from_bytes(frame[l3 + 4 : l3 + 6], "big")


def _is_fragment(frame: bytes, l3: int, version: int) -> bool:
    return version == 4 and (int.from_bytes(frame[l3 + 6 : l3 + 8], "big") & 0x3FFF) != 0


def paddable(headers: HeaderBatch, frames: FrameBatch) -> np.ndarray:
    """Packets whose payload may be padded (see the module docstring)."""
    h = headers
    full = (frames.caplen == frames.wire_len) & ~h.truncated & (h.payload_off >= 0)
    udp = h.proto == PROTO_UDP
    echo = np.zeros(len(h), bool)
    for proto, types in ECHO_TYPES.items():
        at = np.flatnonzero((h.proto == proto) & (h.l4_off >= 0) & full)
        if len(at):
            icmp_type = frames.data[frames.offsets[at] + h.l4_off[at]]
            echo[at] = np.isin(icmp_type, types)
    ok = full & (udp | echo)
    for i in np.flatnonzero(ok & (h.ip_version == 4)):
        f = frames.frame(int(i))
        if _is_fragment(f, int(h.l3_off[i]), 4) or _ip_end(f, int(h.l3_off[i]), 4) > len(f):
            ok[i] = False
    return ok


def pad_frame(frame: bytes, h: HeaderBatch, i: int, pad: int) -> bytes:
    """``frame`` (row ``i`` of ``h``) with ``pad`` zero bytes appended to its payload."""
    l3, l4, v = int(h.l3_off[i]), int(h.l4_off[i]), int(h.ip_version[i])
    end = _ip_end(frame, l3, v)
    out = bytearray(frame[:end]) + bytes(pad) + bytearray(frame[end:])
    fix_ip_packet(out, l3, l4, v, int(h.ip_proto[i]), end + pad)
    return bytes(out)


def craft_frame(frame: bytes, h: HeaderBatch, i: int, payload: bytes) -> bytes | None:
    """A crafted packet on the flow of row ``i`` (see the module docstring); None if none."""
    l3, l4, v, off = int(h.l3_off[i]), int(h.l4_off[i]), int(h.ip_version[i]), int(h.payload_off[i])
    if v not in (4, 6) or l4 < 0 or off < 0 or bool(h.truncated[i]) or _is_fragment(frame, l3, v):
        return None
    proto = int(h.ip_proto[i])
    if int(h.proto[i]) == PROTO_TCP:
        if not int(h.tcp_flags[i]) & TCP_ACK:
            return frame
        out = bytearray(frame[:off])
        out[l4 + 13] = TCP_ACK
    elif int(h.proto[i]) in (PROTO_UDP, PROTO_ICMP, PROTO_ICMPV6):
        out = bytearray(frame[:off]) + bytearray(payload)
    else:
        return None
    fix_ip_packet(out, l3, l4, v, proto, len(out))
    return bytes(out)


# ----- the mutation ----------------------------------------------------------------------------


def _craft_counts(rate: np.ndarray, sizes: np.ndarray, total: int) -> np.ndarray:
    """Crafted packets per flow: ``round(rate * size)``, scaled down to at most ``total``."""
    want = np.floor(np.maximum(rate, 0.0) * sizes + 0.5).astype(np.int64)
    if want.sum() > total:
        want = np.floor(want * (total / want.sum())).astype(np.int64)
    return want


def _filler(mimic_payloads: list[bytes], k: int, length: int) -> bytes:
    if length <= 0:
        return b""
    if not mimic_payloads:
        return bytes(length)
    src = mimic_payloads[k % len(mimic_payloads)] or b"\0"
    reps = -(-length // len(src))
    return (src * reps)[:length]


def mutate_capture(
    frames: FrameBatch,
    headers: HeaderBatch,
    malicious: np.ndarray,
    params: FlowParams,
    budget: Budget,
    mimic_payloads: list[bytes] | None = None,
) -> Mutated:
    """Apply ``params`` (one entry per flow of ``malicious_flows``) within ``budget``."""
    mal = np.asarray(malicious, bool)
    n = len(frames)
    flow = flow_index(headers)
    mflows = malicious_flows(flow, mal)
    slot = np.full(int(flow.max()) + 1 if n else 0, -1, np.int64)
    slot[mflows] = np.arange(len(mflows))
    fslot = np.where(mal, slot[flow] if n else flow, -1)  # flow slot of each malicious packet
    ts = frames.ts.astype(np.float64).copy()
    mal_idx = np.flatnonzero(mal)
    n_mal = len(mal_idx)
    t0 = float(ts[mal_idx].min()) if n_mal else 0.0
    dur = float(ts[mal_idx].max()) - t0 if n_mal else 0.0
    deadline = t0 + max(budget.l_t, 1.0) * dur
    stretch = np.clip(np.asarray(params.stretch, np.float64), 1.0, max(budget.l_t, 1.0))
    # delays: per flow, running-max times stretched from the flow's first packet, clipped
    new_ts = ts.copy()
    order = mal_idx[np.argsort(fslot[mal_idx], kind="stable")]
    groups = np.split(order, np.flatnonzero(np.diff(fslot[order])) + 1) if n_mal else []
    for g in groups:
        t = np.maximum.accumulate(ts[g])
        new_ts[g] = np.minimum(t[0] + (t - t[0]) * stretch[fslot[g[0]]], deadline)
    # padding
    pads = np.zeros(n, np.int64)
    can_pad = paddable(headers, frames) & mal
    pads[can_pad] = np.clip(np.asarray(params.pad, np.int64)[fslot[can_pad]], 0, MAX_PAD)
    out_frames = [frames.frame(i) for i in range(n)]
    for i in np.flatnonzero(pads > 0):
        out_frames[i] = pad_frame(out_frames[i], headers, int(i), int(pads[i]))
    # injection
    sizes = np.array([len(g) for g in groups], np.int64)
    first = np.array([fslot[g[0]] for g in groups], np.int64)
    rate = np.asarray(params.craft_rate, np.float64)[first] if groups else np.zeros(0)
    counts = _craft_counts(rate, sizes, int(np.floor(budget.l_c * n_mal + 1e-9)))
    c_frames, c_ts, c_key, c_lt, c_tpl, k = [], [], [], [], [], 0
    for g, c in zip(groups, counts):
        craft_len = int(np.asarray(params.craft_len)[fslot[g[0]]])
        for j in range(int(c)):
            pick = (j * len(g)) // int(c)
            i = int(g[pick])
            nxt = new_ts[g[pick + 1]] if pick + 1 < len(g) else new_ts[i]
            payload = _filler(mimic_payloads or [], k, max(craft_len, 0))
            made = craft_frame(frames.frame(i), headers, i, payload)
            if made is None:
                continue
            c_frames.append(made)
            c_ts.append(min(0.5 * (new_ts[i] + nxt), deadline))
            c_key.append(i + (j + 1) / (int(c) + 1))
            c_lt.append(int(frames.linktype[i]))
            c_tpl.append(i)
            k += 1
    all_ts = np.concatenate([new_ts, np.asarray(c_ts, np.float64)])
    key = np.concatenate([np.arange(n, dtype=np.float64), np.asarray(c_key, np.float64)])
    final = np.lexsort((key, all_ts))
    frames_all = out_frames + c_frames
    lt = np.concatenate([frames.linktype.astype(np.int64), np.asarray(c_lt, np.int64)])
    origin = np.concatenate([np.arange(n), np.full(len(c_frames), -1)])[final]
    template = np.concatenate([np.arange(n), np.asarray(c_tpl, np.int64)])[final]
    batch = FrameBatch.from_frames(
        [frames_all[i] for i in final], all_ts[final], lt[final].astype(np.uint16)
    )
    wl = np.concatenate([frames.wire_len.astype(np.int64) + pads, [len(f) for f in c_frames]])
    batch.wire_len = wl[final].astype(np.uint32)
    is_mal = np.concatenate([mal, np.ones(len(c_frames), bool)])[final]
    span = all_ts[final][is_mal]
    ratio = float((span.max() - span.min()) / dur) if dur > 0 and len(span) else 1.0
    padded = np.concatenate([pads, np.zeros(len(c_frames), np.int64)])[final]
    return Mutated(batch, origin, template, is_mal, padded, n_mal, ratio)

"""Anonymised byte view of frames: the first bytes with every address and checksum zeroed.

ESET.md section 2: an address must never be a feature. Zeroed, where captured:

- MAC addresses: Ethernet destination and source, the Linux SLL / SLL2 link-layer address,
  ARP sender and target hardware addresses (and the protocol addresses with them), the
  link-layer address options of IPv6 neighbour discovery.
- IP addresses: IPv4 and IPv6 source and destination, those of an IPv4/IPv6 header tunnelled
  directly inside IP (protocols 4 and 41), of the header quoted in an ICMP or ICMPv6 error,
  the ICMP redirect gateway, and the target/destination of neighbour solicitations,
  advertisements and redirects.
- Checksums that are functions of addresses: the IPv4 header checksum, TCP, UDP and ICMPv6
  checksums (also those of tunnelled and quoted headers), the ICMP checksum of errors.

- Any further occurrence, inside the window, of the packet's own MAC or IP addresses in
  binary form (DHCP ``chaddr``, DHCPv6 DUIDs, addresses quoted in payloads). Addresses whose
  bytes are all equal (broadcast, unspecified) are not searched for. Addresses of other hosts
  carried in payloads (DNS answers, text protocols) are left alone.

With ``FeatureConfig.mask_host_fields`` the fields a host's IP/TCP stack fills in on its own
(IPv4 identification and TTL, IPv6 hop limit, TCP sequence/acknowledgement numbers, TCP
timestamp values) are zeroed too: they identify a host and a moment, not a behaviour.

Bytes past the captured length are ``PAD_INDEX`` (256), distinct from a real 0x00 byte.
Everything is computed per field over the whole batch (no per-packet Python).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from jixiaoan.capture import batch as cb
from jixiaoan.capture.batch import FrameBatch, HeaderBatch
from jixiaoan.features.batch import PAD_INDEX

_ICMP_ERRORS = (3, 4, 5, 11, 12)  # destination unreachable, source quench, redirect, ...
_ICMP6_ERRORS = (1, 2, 3, 4)
_ND_OPTIONS_AT = {133: 8, 134: 16, 135: 24, 136: 24, 137: 40}  # ICMPv6 type -> options start
_ND_MAX_OPTIONS = 4


class _Reader:
    """Bounded byte reads at per-packet offsets inside the captured frames."""

    def __init__(self, frames: FrameBatch) -> None:
        self.data = frames.data
        self.start = frames.offsets[:-1]
        self.caplen = frames.caplen

    def byte(self, rows: np.ndarray, off: np.ndarray) -> np.ndarray:
        """Byte at ``off`` of each frame in ``rows`` (int64), -1 when not captured."""
        ok = (off >= 0) & (off < self.caplen[rows])
        out = np.full(len(rows), -1, np.int64)
        out[ok] = self.data[self.start[rows[ok]] + off[ok]]
        return out


class _Spans:
    """Collects the byte positions to zero, as flat indices into the (n, width) matrix."""

    def __init__(self, n: int, width: int) -> None:
        self.n, self.width = n, width
        self.parts: list[np.ndarray] = []

    def add(self, rows: np.ndarray, start: np.ndarray, length: int | np.ndarray) -> None:
        """Zero ``length`` bytes from ``start`` in each of ``rows`` (starts < 0 are skipped)."""
        keep = start >= 0
        rows, start = rows[keep], start[keep]
        if isinstance(length, np.ndarray):
            length = length[keep]
            longest = int(min(length.max(initial=0), self.width))
        else:
            longest = min(length, self.width)
        if len(rows) == 0 or longest <= 0:
            return
        cols = start[:, None] + np.arange(longest)
        ok = cols < self.width
        if isinstance(length, np.ndarray):
            ok &= np.arange(longest) < length[:, None]
        flat = rows[:, None] * self.width + cols
        self.parts.append(flat[ok])

    def mask_out(self, out: np.ndarray) -> None:
        """Zero the collected positions of ``out`` (n, width)."""
        if self.parts:
            out.reshape(-1)[np.concatenate(self.parts)] = 0


def _where(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask).astype(np.int64)


def _ip_header_spans(
    spans: _Spans, read: _Reader, rows: np.ndarray, at: np.ndarray, nested: bool = False
) -> None:
    """Addresses (and the IPv4 checksum) of the IP header starting at ``at`` in ``rows``; for a
    nested (tunnelled or quoted) header also the checksum of a TCP or UDP header right after it."""
    first = read.byte(rows, at)
    v4, v6 = first >> 4 == 4, first >> 4 == 6
    spans.add(rows[v4], at[v4] + 10, 10)  # checksum, source, destination
    spans.add(rows[v6], at[v6] + 8, 32)
    if not nested:
        return
    proto = np.where(v4, read.byte(rows, at + 9), read.byte(rows, at + 6))
    l4 = np.where(v4, at + (first & 0x0F) * 4, np.where(v6, at + 40, -1))
    tcp, udp = (proto == 6) & (l4 >= 0), (proto == 17) & (l4 >= 0)
    spans.add(rows[tcp], l4[tcp] + 16, 2)
    spans.add(rows[udp], l4[udp] + 6, 2)


def _link_spans(spans: _Spans, h: HeaderBatch) -> None:
    lt = h.linktype
    n = len(h)
    zeros = np.zeros(n, np.int64)
    eth = _where(lt == cb.LINKTYPE_ETHERNET)
    spans.add(eth, zeros[eth], 12)
    sll = _where(lt == cb.LINKTYPE_LINUX_SLL)
    spans.add(sll, zeros[sll] + 6, 8)
    sll2 = _where(lt == cb.LINKTYPE_LINUX_SLL2)
    spans.add(sll2, zeros[sll2] + 12, 8)


_LINK_HEADER = {
    cb.LINKTYPE_NULL: 4, cb.LINKTYPE_LOOP: 4, cb.LINKTYPE_RAW: 0, cb.LINKTYPE_IPV4: 0,
    cb.LINKTYPE_IPV6: 0, cb.LINKTYPE_LINUX_SLL: 16, cb.LINKTYPE_LINUX_SLL2: 20,
}  # fmt: skip


def _network_offsets(read: _Reader, h: HeaderBatch) -> np.ndarray:
    """``l3_off``, completed for IP headers the snap length cut short (the parser leaves -1
    there, but the captured part may still hold address bytes)."""
    l3 = h.l3_off.astype(np.int64)
    cut = _where((l3 < 0) & ((h.ethertype == 0x0800) | (h.ethertype == 0x86DD)))
    if len(cut) == 0:
        return l3
    lt = h.linktype[cut]
    guess = np.full(len(cut), -1, np.int64)
    for linktype, size in _LINK_HEADER.items():
        guess[lt == linktype] = size
    eth = lt == cb.LINKTYPE_ETHERNET
    at = np.full(len(cut), 12, np.int64)
    for _ in range(2):  # up to two 802.1Q / 802.1ad tags, as the parser
        tag = (read.byte(cut, at) << 8 | read.byte(cut, at + 1)) & 0xFFFF
        at = np.where(eth & ((tag == 0x8100) | (tag == 0x88A8)), at + 4, at)
    guess[eth] = at[eth] + 2
    l3[cut] = guess
    return l3


def _network_spans(spans: _Spans, read: _Reader, h: HeaderBatch) -> None:
    l3 = _network_offsets(read, h)
    is_arp = (h.proto == cb.PROTO_ARP) | (h.ethertype == 0x0806)
    arp = _where(is_arp & (l3 >= 0))
    hlen = read.byte(arp, l3[arp] + 4)
    plen = read.byte(arp, l3[arp] + 5)
    hlen = np.where(hlen < 0, 6, hlen)
    plen = np.where(plen < 0, 4, plen)
    spans.add(arp, l3[arp] + 8, 2 * (hlen + plen))
    ip = _where(~is_arp & (l3 >= 0))
    _ip_header_spans(spans, read, ip, l3[ip])
    # IP directly inside IP: IPv4 outer header length from IHL; IPv6 outer without extensions
    tunnel = _where(~is_arp & (l3 >= 0) & ((h.ip_proto == 4) | (h.ip_proto == 41)))
    at = l3[tunnel]
    first = read.byte(tunnel, at)
    next_header = read.byte(tunnel, at + 6)
    inner = np.where(
        first >> 4 == 4,
        at + (first & 0x0F) * 4,
        np.where((first >> 4 == 6) & (next_header == h.ip_proto[tunnel]), at + 40, -1),
    )
    _ip_header_spans(spans, read, tunnel, inner, nested=True)


def _transport_spans(spans: _Spans, read: _Reader, h: HeaderBatch) -> None:
    l4 = h.l4_off.astype(np.int64)
    has_l4 = l4 >= 0
    tcp = _where(has_l4 & (h.proto == cb.PROTO_TCP))
    spans.add(tcp, l4[tcp] + 16, 2)
    udp = _where(has_l4 & (h.proto == cb.PROTO_UDP))
    spans.add(udp, l4[udp] + 6, 2)

    icmp = _where(has_l4 & (h.proto == cb.PROTO_ICMP))
    icmp_type = read.byte(icmp, l4[icmp])
    err = np.isin(icmp_type, _ICMP_ERRORS)
    spans.add(icmp[err], l4[icmp][err] + 2, 2)  # the checksum covers the quoted header
    redirect = icmp_type == 5
    spans.add(icmp[redirect], l4[icmp][redirect] + 4, 4)  # gateway address
    _ip_header_spans(spans, read, icmp[err], l4[icmp][err] + 8, nested=True)

    icmp6 = _where(has_l4 & (h.proto == cb.PROTO_ICMPV6))
    at = l4[icmp6]
    spans.add(icmp6, at + 2, 2)
    kind = read.byte(icmp6, at)
    err = np.isin(kind, _ICMP6_ERRORS)
    _ip_header_spans(spans, read, icmp6[err], at[err] + 8, nested=True)
    solicit = (kind == 135) | (kind == 136)
    spans.add(icmp6[solicit], at[solicit] + 8, 16)  # target address
    redirect = kind == 137
    spans.add(icmp6[redirect], at[redirect] + 8, 32)  # target and destination addresses
    _nd_option_spans(spans, read, icmp6, at, kind)


def _nd_option_spans(spans, read: _Reader, rows: np.ndarray, at: np.ndarray, kind) -> None:
    """Link-layer address options (types 1 and 2) of neighbour-discovery messages."""
    opt = np.full(len(rows), -1, np.int64)
    for icmp_type, start in _ND_OPTIONS_AT.items():
        opt[kind == icmp_type] = at[kind == icmp_type] + start
    for _ in range(_ND_MAX_OPTIONS):
        live = opt >= 0
        rows, opt = rows[live], opt[live]
        if len(rows) == 0:
            return
        opt_type = read.byte(rows, opt)
        opt_len = read.byte(rows, opt + 1) * 8
        is_link = (opt_type == 1) | (opt_type == 2)
        body = np.maximum(opt_len - 2, 0)
        spans.add(rows[is_link], opt[is_link] + 2, body[is_link])
        opt = np.where(opt_len > 0, opt + opt_len, -1)


@njit(cache=True, nogil=True)
def _scrub_kernel(head, valid, src_mac, dst_mac, src_ip, dst_ip):  # pragma: no cover - compiled
    """Zero, in row i of ``head``, every occurrence of packet i's own MAC and IP addresses
    (IPv4 as its 4 bytes); byte strings that are all one value (00..00, ff..ff) are skipped."""
    pattern = np.zeros(16, np.uint8)
    for i in range(head.shape[0]):
        for j in range(4):
            if j < 2:
                mac = src_mac[i] if j == 0 else dst_mac[i]
                size = 6
                for b in range(6):
                    pattern[b] = (mac >> np.uint64(8 * (5 - b))) & np.uint64(0xFF)
            else:
                ip = src_ip[i] if j == 2 else dst_ip[i]
                mapped = ip[10] == 0xFF and ip[11] == 0xFF
                for b in range(10):
                    mapped = mapped and ip[b] == 0
                size = 4 if mapped else 16
                for b in range(size):
                    pattern[b] = ip[12 + b] if mapped else ip[b]
            uniform = True
            for b in range(1, size):
                uniform = uniform and pattern[b] == pattern[0]
            if uniform:
                continue
            lead = pattern[0]
            for c in range(valid[i] - size + 1):
                if head[i, c] != lead:
                    continue
                same = True
                for b in range(1, size):
                    if head[i, c + b] != pattern[b]:
                        same = False
                        break
                if same:
                    for b in range(size):
                        head[i, c + b] = 0


def _head(frames: FrameBatch, width: int) -> tuple[np.ndarray, np.ndarray]:
    """First ``width`` bytes of every frame (n, width) uint8, zero padded, and the valid
    count per row (as FrameBatch.head_matrix, but gathering whole rows at once)."""
    padded = np.concatenate((frames.data[frames.offsets[0] :], np.zeros(width, np.uint8)))
    rows = np.lib.stride_tricks.sliding_window_view(padded, width)
    head = rows[frames.offsets[:-1] - frames.offsets[0]]
    valid = np.minimum(frames.caplen, width)
    head[np.arange(width)[None, :] >= valid[:, None]] = 0
    return head, valid


_TCP_MAX_OPTIONS = 10


def _host_field_spans(spans: _Spans, read: _Reader, h: HeaderBatch) -> None:
    """Fields set by the sending host's stack, not by what it sends: IPv4 identification and
    TTL, IPv6 hop limit, TCP sequence/acknowledgement numbers and timestamp option values."""
    l3 = _network_offsets(read, h)
    is_arp = (h.proto == cb.PROTO_ARP) | (h.ethertype == 0x0806)
    ip = _where(~is_arp & (l3 >= 0))
    at = l3[ip]
    first = read.byte(ip, at)
    v4, v6 = first >> 4 == 4, first >> 4 == 6
    spans.add(ip[v4], at[v4] + 4, 2)
    spans.add(ip[v4], at[v4] + 8, 1)
    spans.add(ip[v6], at[v6] + 7, 1)
    l4 = h.l4_off.astype(np.int64)
    rows = _where((l4 >= 0) & (h.proto == cb.PROTO_TCP))
    tcp = l4[rows]
    spans.add(rows, tcp + 4, 8)
    end = tcp + (read.byte(rows, tcp + 12) >> 4) * 4
    opt = tcp + 20
    for _ in range(_TCP_MAX_OPTIONS):
        live = (opt >= 0) & (opt < end)
        rows, opt, end = rows[live], opt[live], end[live]
        if len(rows) == 0:
            return
        kind, size = read.byte(rows, opt), read.byte(rows, opt + 1)
        spans.add(rows[kind == 8], opt[kind == 8] + 2, 8)
        step = np.where(kind == 1, 1, np.where(size >= 2, size, -1))
        opt = np.where((kind <= 0) | (step < 0), -1, opt + np.maximum(step, 1))


def anonymized_bytes(
    frames: FrameBatch, headers: HeaderBatch, n_bytes: int, mask_host_fields: bool = False
) -> np.ndarray:
    """First ``n_bytes`` of every frame, addresses and checksums zeroed, as uint16 (n, n_bytes);
    positions past the captured length hold PAD_INDEX. ``mask_host_fields`` also zeroes the
    fields of ``_host_field_spans`` (FeatureConfig.mask_host_fields)."""
    n = len(frames)
    if n == 0:
        return np.zeros((0, n_bytes), np.uint16)
    head, valid = _head(frames, n_bytes)
    read = _Reader(frames)
    spans = _Spans(n, n_bytes)
    _link_spans(spans, headers)
    _network_spans(spans, read, headers)
    _transport_spans(spans, read, headers)
    if mask_host_fields:
        _host_field_spans(spans, read, headers)
    spans.mask_out(head)
    h = headers
    _scrub_kernel(head, valid.astype(np.int64), h.src_mac, h.dst_mac, h.src_ip, h.dst_ip)
    out = head.astype(np.uint16)
    out[np.arange(n_bytes)[None, :] >= valid[:, None]] = PAD_INDEX
    return out

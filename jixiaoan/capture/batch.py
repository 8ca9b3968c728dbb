"""Batch containers passed along the pipeline: raw frames and their parsed header fields.

Everything on the hot path moves in batches of numpy arrays; nothing here is per packet.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

# Link-layer types (LINKTYPE_* values from the pcap/pcapng specifications).
LINKTYPE_NULL = 0  # BSD loopback: 4-byte address family in the writer's byte order
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IPv4 or IPv6, version nibble decides
LINKTYPE_LOOP = 108  # OpenBSD loopback: 4-byte family, network byte order
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
SUPPORTED_LINKTYPES = frozenset(
    {
        LINKTYPE_NULL,
        LINKTYPE_ETHERNET,
        LINKTYPE_RAW,
        LINKTYPE_LOOP,
        LINKTYPE_LINUX_SLL,
        LINKTYPE_IPV4,
        LINKTYPE_IPV6,
        LINKTYPE_LINUX_SLL2,
    }
)

# Protocol codes of HeaderBatch.proto; PROTOCOL_NAMES[code] is the name shown to users.
PROTO_OTHER = 0
PROTO_ARP = 1
PROTO_IPV4 = 2  # IPv4 carrying something other than TCP/UDP/ICMP (or a non-first fragment)
PROTO_IPV6 = 3  # likewise for IPv6
PROTO_TCP = 4
PROTO_UDP = 5
PROTO_ICMP = 6
PROTO_ICMPV6 = 7
PROTOCOL_NAMES = ("other", "ARP", "IPv4", "IPv6", "TCP", "UDP", "ICMP", "ICMPv6")


class CaptureError(Exception):
    """A capture that cannot be read (further): names the file and the byte offset."""

    def __init__(self, path: str, offset: int | None, message: str) -> None:
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{path}{where}: {message}")
        self.path = path
        self.offset = offset
        self.reason = message


@dataclass
class FrameBatch:
    """Raw captured frames stored as one contiguous byte buffer.

    Frame ``i`` is ``data[offsets[i]:offsets[i + 1]]``; ``offsets`` has ``n + 1`` entries.
    """

    data: np.ndarray  # uint8, all captured bytes back to back
    offsets: np.ndarray  # int64 (n + 1,)
    ts: np.ndarray  # float64 (n,) capture time, seconds since the epoch
    wire_len: np.ndarray  # uint32 (n,) original length on the wire
    linktype: np.ndarray  # uint16 (n,) link type of each frame (pcapng may mix them)

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def caplen(self) -> np.ndarray:
        """Captured length of every frame (int64)."""
        return np.diff(self.offsets)

    def frame(self, i: int) -> bytes:
        """The captured bytes of frame ``i``."""
        return self.data[self.offsets[i] : self.offsets[i + 1]].tobytes()

    def head_matrix(self, width: int) -> tuple[np.ndarray, np.ndarray]:
        """First ``width`` bytes of every frame as an ``(n, width)`` uint8 matrix (zero padded)
        and the number of valid bytes per row."""
        n = len(self)
        valid = np.minimum(self.caplen, width)
        if n == 0:
            return np.zeros((0, width), np.uint8), valid
        cols = np.arange(width, dtype=np.int64)
        idx = self.offsets[:-1, None] + cols[None, :]
        mask = cols[None, :] < valid[:, None]
        idx = np.where(mask, idx, 0)
        out = self.data[idx] if len(self.data) else np.zeros((n, width), np.uint8)
        out[~mask] = 0
        return out, valid

    @classmethod
    def from_frames(
        cls,
        frames: list[bytes],
        ts: np.ndarray | list[float],
        linktype: int | np.ndarray = LINKTYPE_ETHERNET,
        wire_len: np.ndarray | list[int] | None = None,
    ) -> FrameBatch:
        """Build a batch from a list of frames (live capture, tests)."""
        n = len(frames)
        lengths = np.fromiter((len(f) for f in frames), dtype=np.int64, count=n)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        data = np.frombuffer(b"".join(frames), dtype=np.uint8).copy()
        lt = np.broadcast_to(np.asarray(linktype, dtype=np.uint16), (n,)).copy()
        wl = lengths.astype(np.uint32) if wire_len is None else np.asarray(wire_len, np.uint32)
        return cls(data, offsets, np.asarray(ts, dtype=np.float64), wl, lt)

    @classmethod
    def empty(cls) -> FrameBatch:
        """A batch with no frames."""
        return cls.from_frames([], [])

    def take(self, index: np.ndarray) -> FrameBatch:
        """A new batch holding the frames at ``index`` (any integer index or boolean mask)."""
        idx = np.arange(len(self))[index]
        frames = [self.frame(int(i)) for i in idx]
        return FrameBatch.from_frames(frames, self.ts[idx], self.linktype[idx], self.wire_len[idx])

    @staticmethod
    def concat(batches: list[FrameBatch]) -> FrameBatch:
        """Join batches in order."""
        if not batches:
            return FrameBatch.empty()
        datas, offs, base = [], [np.zeros(1, np.int64)], 0
        for b in batches:
            datas.append(b.data[b.offsets[0] : b.offsets[-1]])
            offs.append(b.offsets[1:] - b.offsets[0] + base)
            base += int(b.offsets[-1] - b.offsets[0])
        return FrameBatch(
            np.concatenate(datas) if datas else np.zeros(0, np.uint8),
            np.concatenate(offs),
            np.concatenate([b.ts for b in batches]),
            np.concatenate([b.wire_len for b in batches]),
            np.concatenate([b.linktype for b in batches]),
        )


@dataclass
class HeaderBatch:
    """Parsed header fields of a FrameBatch, one entry per frame, all numpy arrays.

    Offsets are byte offsets inside the frame, -1 when the layer is absent or cut off.
    IP addresses are 16 bytes: IPv6 as is, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), all zero
    when absent. For ARP, ``src_ip``/``dst_ip`` hold the sender/target protocol addresses.
    MAC addresses are 48-bit integers in a uint64 (0 when the link type has none).
    """

    ts: np.ndarray  # float64
    length: np.ndarray  # uint32, length on the wire
    caplen: np.ndarray  # uint32, captured length
    linktype: np.ndarray  # uint16
    src_mac: np.ndarray  # uint64
    dst_mac: np.ndarray  # uint64
    ethertype: np.ndarray  # uint16, after any VLAN tags (0 when unknown)
    vlan: np.ndarray  # uint16, outermost VLAN id, 0 when untagged
    l3_off: np.ndarray  # int16
    ip_version: np.ndarray  # uint8: 0, 4 or 6
    src_ip: np.ndarray  # uint8 (n, 16)
    dst_ip: np.ndarray  # uint8 (n, 16)
    ip_proto: np.ndarray  # uint8, transport protocol number (after IPv6 extension headers)
    l4_off: np.ndarray  # int16
    sport: np.ndarray  # uint16 (0 unless TCP/UDP)
    dport: np.ndarray  # uint16
    tcp_flags: np.ndarray  # uint8
    payload_off: np.ndarray  # int16, start of the transport payload, -1 when none
    proto: np.ndarray  # uint8, a PROTO_* code
    truncated: np.ndarray  # bool, a header was cut short by the snap length

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray) -> HeaderBatch:
        """A new batch with the rows at ``index``."""
        return HeaderBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(batches: list[HeaderBatch]) -> HeaderBatch:
        """Join batches in order."""
        return HeaderBatch(
            **{
                f.name: np.concatenate([getattr(b, f.name) for b in batches])
                for f in fields(HeaderBatch)
            }
        )

    def protocol_names(self) -> np.ndarray:
        """The protocol name of every row (object array of str)."""
        return np.asarray(PROTOCOL_NAMES, dtype=object)[self.proto]


def mac_to_str(mac: int) -> str:
    """48-bit integer to ``aa:bb:cc:dd:ee:ff``."""
    return ":".join(f"{(int(mac) >> s) & 0xFF:02x}" for s in range(40, -8, -8))


def mac_from_str(text: str) -> int:
    """``aa:bb:cc:dd:ee:ff`` (or with ``-``) to a 48-bit integer."""
    return int(text.replace("-", "").replace(":", "").replace(".", ""), 16)


def ip_to_str(addr16: np.ndarray | bytes) -> str:
    """16-byte address (IPv4-mapped for IPv4) to its usual text form; '' when all zero."""
    import ipaddress

    raw = bytes(addr16)
    if raw == bytes(16):
        return ""
    ip6 = ipaddress.IPv6Address(raw)
    return str(ip6.ipv4_mapped) if ip6.ipv4_mapped is not None else str(ip6)


def ip_from_str(text: str) -> bytes:
    """IPv4 or IPv6 text to the 16-byte form used in HeaderBatch."""
    import ipaddress

    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return b"\x00" * 10 + b"\xff\xff" + ip.packed
    return ip.packed

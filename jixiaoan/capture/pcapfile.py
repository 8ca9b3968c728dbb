"""Streaming reader for pcap and pcapng capture files (optionally gzip-compressed).

The file is read in large chunks; record headers are walked by numba kernels
(:mod:`jixiaoan.capture._walk`), so no Python code runs per packet.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from jixiaoan.capture import _walk
from jixiaoan.capture.batch import SUPPORTED_LINKTYPES, CaptureError, FrameBatch

CHUNK_SIZE = 8 * 1024 * 1024
DEFAULT_BATCH_SIZE = 8192

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BOM = 0x1A2B3C4D
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_INTERFACES = 65536


def supported_linktypes_text() -> str:
    """The supported link types, for error messages."""
    names = {0: "NULL", 1: "ETHERNET", 101: "RAW", 108: "LOOP", 113: "LINUX_SLL",
             228: "IPV4", 229: "IPV6", 276: "LINUX_SLL2"}  # fmt: skip
    return ", ".join(f"{names.get(t, '?')} ({t})" for t in sorted(SUPPORTED_LINKTYPES))


def _unsupported(path: str, offset: int | None, linktype: int) -> CaptureError:
    return CaptureError(
        path, offset, f"unsupported link type {linktype}; supported: {supported_linktypes_text()}"
    )


class _Chunks:
    """A growing window over the (decompressed) byte stream of a capture file."""

    def __init__(self, fh: BinaryIO, path: str, chunk_size: int) -> None:
        self.fh, self.path, self.chunk_size = fh, path, chunk_size
        self.buf = np.zeros(0, np.uint8)  # the valid part of ``store``
        self.store = np.zeros(0, np.uint8)  # reused between reads: batches copy their frames
        self.base = 0  # stream offset of buf[0]
        self.eof = False
        self.failure = ""
        self.is_gzip = isinstance(fh, gzip.GzipFile)

    def refill(self, pos: int, at_least: int = 0) -> int:
        """Drop the bytes before ``pos`` and read more; returns the new index of ``pos``.

        A read error (e.g. a cut gzip stream) ends the stream like EOF and is remembered in
        ``failure``; the bytes decoded before it stay available.
        """
        keep = len(self.buf) - pos
        want = max(self.chunk_size, keep, at_least)
        if len(self.store) < keep + want:
            store = np.empty(keep + want, np.uint8)
            store[:keep] = self.buf[pos:]
            self.store = store
        elif keep:
            self.store[:keep] = self.buf[pos:]  # numpy copes with the overlap
        view = memoryview(self.store)[keep : keep + want]  # type: ignore[arg-type]
        got = 0
        try:
            while got < want:
                if self.is_gzip:
                    piece = self.fh.read1(want - got)
                    view[got : got + len(piece)] = piece
                    size = len(piece)
                else:
                    size = self.fh.readinto(view[got:]) or 0  # type: ignore[attr-defined]
                if not size:
                    break
                got += size
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
            self.failure = f"read failed: {exc}"
        if got < want:
            self.eof = True
        self.base += pos
        self.buf = self.store[: keep + got]
        return 0

    def end_error(self, pos: int) -> CaptureError | None:
        """The error to raise when the records end at ``pos`` (None at a clean end)."""
        if self.failure:
            return CaptureError(self.path, self.base + len(self.buf), self.failure)
        if pos < len(self.buf):
            return CaptureError(
                self.path, self.base + pos, "truncated record (file ends inside it)"
            )
        return None

    def ensure(self, pos: int, size: int) -> int:
        """Make ``buf[pos:pos+size]`` available if the stream has it; returns the new ``pos``."""
        while len(self.buf) - pos < size and not self.eof:
            pos = self.refill(pos, size)
        return pos


class _Scratch:
    """Reusable per-record arrays for the walkers."""

    def __init__(self, n: int) -> None:
        self.start = np.zeros(n, np.int64)
        self.length = np.zeros(n, np.int64)
        self.wire = np.zeros(n, np.uint32)
        self.ts = np.zeros(n, np.float64)
        self.link = np.zeros(n, np.uint16)

    def batch(self, buf: np.ndarray, n: int, linktype: int | None = None) -> FrameBatch:
        total = int(self.length[:n].sum())
        data = np.empty(total, np.uint8)
        offsets = np.empty(n + 1, np.int64)
        _walk.gather(buf, self.start, self.length, n, data, offsets)
        link = np.full(n, linktype, np.uint16) if linktype is not None else self.link[:n].copy()
        return FrameBatch(data, offsets, self.ts[:n].copy(), self.wire[:n].copy(), link)


def _open(path: str) -> BinaryIO:
    fh = open(path, "rb")  # noqa: SIM115 - closed by the caller
    if fh.read(2) == _GZIP_MAGIC:
        fh.close()
        return gzip.open(path, "rb")  # type: ignore[return-value]
    fh.seek(0)
    return fh


def read_capture(
    path: str | os.PathLike[str], batch_size: int = DEFAULT_BATCH_SIZE, chunk_size: int = CHUNK_SIZE
) -> Iterator[FrameBatch]:
    """Stream the frames of a pcap or pcapng file (gzip allowed) in batches of at most
    ``batch_size`` frames.

    A damaged file yields every frame before the damage, then raises :class:`CaptureError`
    naming the file and the byte offset (of the decompressed stream for gzip files).
    """
    name = os.fspath(path)
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    try:
        fh = _open(name)
    except OSError as exc:
        raise CaptureError(name, None, f"cannot open: {exc}") from exc
    with fh:
        chunks = _Chunks(fh, name, chunk_size)
        chunks.ensure(0, 4)
        head = chunks.buf[:4].tobytes()
        if len(head) < 4 and chunks.failure:
            raise CaptureError(name, len(head), chunks.failure)
        if len(head) == 0:
            raise CaptureError(name, 0, "empty file")
        if len(head) < 4:
            raise CaptureError(name, 0, "file too short to be a capture")
        scratch = _Scratch(batch_size)
        if struct.unpack("<I", head)[0] == PCAPNG_SHB:
            yield from _read_pcapng(chunks, scratch, batch_size)
        else:
            yield from _read_pcap(chunks, scratch, batch_size)


def _read_pcap(chunks: _Chunks, scratch: _Scratch, batch_size: int) -> Iterator[FrameBatch]:
    path = chunks.path
    pos = chunks.ensure(0, 24)
    head = chunks.buf[:24].tobytes()
    magic_le = struct.unpack("<I", head[:4])[0]
    magic_be = struct.unpack(">I", head[:4])[0]
    if magic_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
        big, magic = False, magic_le
    elif magic_be in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
        big, magic = True, magic_be
    else:
        raise CaptureError(path, 0, f"not a pcap or pcapng file (starts with {head[:4].hex()})")
    if len(head) < 24:
        raise CaptureError(path, len(head), "truncated pcap file header")
    _major, _minor, _zone, _sigfigs, snaplen, linkfield = struct.unpack(
        (">" if big else "<") + "HHiIII", head[4:24]
    )
    linktype = linkfield & 0xFFFF
    if linktype not in SUPPORTED_LINKTYPES:
        raise _unsupported(path, 20, linktype)
    max_caplen = min(max(snaplen, 262144), _walk.MAX_BLOCK)
    frac_div = 1_000_000_000 if magic == PCAP_MAGIC_NS else 1_000_000
    pos = 24
    while True:
        n, stop, status = _walk.walk_pcap(
            chunks.buf, pos, big, max_caplen, frac_div, batch_size,
            scratch.start, scratch.length, scratch.wire, scratch.ts,
        )  # fmt: skip
        if status == _walk.FULL:
            yield scratch.batch(chunks.buf, n, linktype)
            pos = stop
            continue
        if status == _walk.NEED_MORE and not chunks.eof:
            pos = chunks.refill(pos)
            continue
        if n:
            yield scratch.batch(chunks.buf, n, linktype)
        where = chunks.base + stop
        if status == _walk.CORRUPT:
            raise CaptureError(path, where, "corrupt pcap record header (impossible length)")
        error = chunks.end_error(stop)
        if error is not None:
            raise error
        return


@dataclass
class _Section:
    """Interfaces of the current pcapng section."""

    big: bool
    linktype: list[int] = field(default_factory=list)
    snaplen: list[int] = field(default_factory=list)
    div: list[int] = field(default_factory=list)
    offset: list[float] = field(default_factory=list)

    def arrays(self) -> tuple[np.ndarray, ...]:
        k = max(len(self.linktype), 1)
        pad = [0] * (k - len(self.linktype))
        return (
            np.asarray(self.linktype + pad, np.uint16),
            np.asarray([t in SUPPORTED_LINKTYPES for t in self.linktype] + [False] * len(pad)),
            np.asarray(self.snaplen + pad, np.uint32),
            np.asarray(self.div + [1] * len(pad), np.uint64),
            np.asarray(self.offset + [0.0] * len(pad), np.float64),
        )


def _section_header(chunks: _Chunks, pos: int) -> tuple[int, _Section]:
    """Parse the SHB at ``pos``; returns (position after it, new section)."""
    path = chunks.path
    pos = chunks.ensure(pos, 12)
    buf = chunks.buf
    if len(buf) - pos < 12:
        raise CaptureError(path, chunks.base + pos, "truncated pcapng section header")
    bom = buf[pos + 8 : pos + 12].tobytes()
    if bom == struct.pack("<I", PCAPNG_BOM):
        big = False
    elif bom == struct.pack(">I", PCAPNG_BOM):
        big = True
    else:
        raise CaptureError(path, chunks.base + pos, "corrupt pcapng section header (byte order)")
    blen = struct.unpack((">" if big else "<") + "I", buf[pos + 4 : pos + 8].tobytes())[0]
    if blen < 28 or blen % 4 or blen > _walk.MAX_BLOCK:
        raise CaptureError(path, chunks.base + pos, "corrupt pcapng section header (length)")
    pos = chunks.ensure(pos, blen)
    if len(chunks.buf) - pos < blen:
        raise CaptureError(path, chunks.base + pos, "truncated pcapng section header")
    return pos + blen, _Section(big)


def _interface_block(chunks: _Chunks, pos: int, section: _Section) -> int:
    """Parse the complete IDB at ``pos`` into ``section``; returns the position after it."""
    e = ">" if section.big else "<"
    buf = chunks.buf
    blen = struct.unpack(e + "I", buf[pos + 4 : pos + 8].tobytes())[0]
    if blen < 20:
        raise CaptureError(chunks.path, chunks.base + pos, "corrupt pcapng interface block")
    body = buf[pos : pos + blen].tobytes()
    linktype, _reserved, snaplen = struct.unpack_from(e + "HHI", body, 8)
    div, offset = 1_000_000, 0.0
    opt, opt_end = 16, blen - 4
    while opt + 4 <= opt_end:
        code, olen = struct.unpack_from(e + "HH", body, opt)
        if code == 0 or opt + 4 + olen > opt_end:
            break
        value = body[opt + 4 : opt + 4 + olen]
        if code == 9 and olen >= 1:  # if_tsresol
            res = value[0]
            exp = res & 0x7F
            if (res & 0x80 and exp > 63) or (not res & 0x80 and exp > 19):
                raise CaptureError(
                    chunks.path, chunks.base + pos, f"unsupported timestamp resolution {res:#x}"
                )
            div = 2**exp if res & 0x80 else 10**exp
        elif code == 14 and olen >= 8:  # if_tsoffset, seconds
            offset = float(struct.unpack_from(e + "q", value)[0])
        opt += 4 + olen + (-olen % 4)
    if len(section.linktype) >= _MAX_INTERFACES:
        raise CaptureError(chunks.path, chunks.base + pos, "too many pcapng interfaces")
    section.linktype.append(linktype)
    section.snaplen.append(snaplen)
    section.div.append(div)
    section.offset.append(offset)
    return pos + blen


def _read_pcapng(chunks: _Chunks, scratch: _Scratch, batch_size: int) -> Iterator[FrameBatch]:
    path = chunks.path
    pos, section = _section_header(chunks, 0)
    tables = section.arrays()
    last_ts = np.zeros(1, np.float64)
    while True:
        saved_ts = last_ts[0]
        n, stop, status = _walk.walk_pcapng(
            chunks.buf, pos, section.big, *tables, len(section.linktype), 0, batch_size,
            scratch.start, scratch.length, scratch.wire, scratch.ts, scratch.link, last_ts,
        )  # fmt: skip
        if status == _walk.FULL:
            yield scratch.batch(chunks.buf, n)
            pos = stop
            continue
        if status == _walk.NEED_MORE and not chunks.eof:
            last_ts[0] = saved_ts  # these records are walked again after the refill
            pos = chunks.refill(pos)
            continue
        if n:
            yield scratch.batch(chunks.buf, n)
        pos = stop
        where = chunks.base + pos
        if status == _walk.PY_BLOCK:
            btype = struct.unpack("<I", chunks.buf[pos : pos + 4].tobytes())[0]
            if btype == PCAPNG_SHB:
                pos, section = _section_header(chunks, pos)
            else:
                pos = _interface_block(chunks, pos, section)
            tables = section.arrays()
            continue
        if status == _walk.NEED_MORE:
            error = chunks.end_error(pos)
            if error is not None:
                raise error
            return
        if status == _walk.UNSUPPORTED_LINK:
            iid = _packet_interface(chunks, pos, section)
            raise _unsupported(path, where, section.linktype[iid])
        reason = {
            _walk.CORRUPT: "corrupt pcapng block (impossible length)",
            _walk.BAD_INTERFACE: "pcapng packet names an undescribed interface",
            _walk.BAD_PACKET_LENGTH: "corrupt pcapng packet (captured length exceeds block)",
        }[status]
        raise CaptureError(path, where, reason)


def _packet_interface(chunks: _Chunks, pos: int, section: _Section) -> int:
    e = ">" if section.big else "<"
    btype = struct.unpack(e + "I", chunks.buf[pos : pos + 4].tobytes())[0]
    if btype == 3:
        return 0
    fmt = e + ("I" if btype == 6 else "H")
    return struct.unpack_from(fmt, chunks.buf[pos + 8 : pos + 12].tobytes())[0]


def read_head(path: str | os.PathLike[str], max_packets: int) -> FrameBatch:
    """The first ``max_packets`` frames of a capture as one batch (reads no further)."""
    batches, count = [], 0
    for batch in read_capture(path):
        batches.append(batch)
        count += len(batch)
        if count >= max_packets:
            break
    frames = FrameBatch.concat(batches)
    return frames.take(slice(0, max_packets)) if len(frames) > max_packets else frames


@dataclass
class CaptureSummary:
    """Packet count, byte count, time span and link types of a capture."""

    packets: int
    captured_bytes: int
    first_ts: float | None
    last_ts: float | None
    linktypes: dict[int, int]


def capture_summary(path: str | os.PathLike[str]) -> CaptureSummary:
    """Read a whole capture and summarise it (raises CaptureError like :func:`read_capture`)."""
    packets = size = 0
    first = last = None
    links: dict[int, int] = {}
    for b in read_capture(path):
        if not len(b):
            continue
        packets += len(b)
        size += int(b.offsets[-1])
        first = float(b.ts[0]) if first is None else first
        last = float(b.ts[-1])
        kinds, counts = np.unique(b.linktype, return_counts=True)
        for k, c in zip(kinds.tolist(), counts.tolist()):
            links[k] = links.get(k, 0) + c
    return CaptureSummary(packets, size, first, last, links)

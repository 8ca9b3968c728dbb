"""Classic pcap writing: a whole batch at once or batches appended incrementally."""

from __future__ import annotations

import os
import struct
from types import TracebackType
from typing import BinaryIO

import numpy as np

from jixiaoan.capture.batch import FrameBatch

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
DEFAULT_SNAPLEN = 262144


def _record_bytes(batch: FrameBatch, nanosecond: bool) -> bytes:
    """Record headers and frame bytes of every frame, in little-endian pcap layout."""
    n = len(batch)
    caplen = batch.caplen.astype(np.int64)
    scale = 1_000_000_000 if nanosecond else 1_000_000
    ts = np.asarray(batch.ts, np.float64)
    sec = np.floor(ts)
    frac = np.rint((ts - sec) * scale).astype(np.int64)
    carry = frac >= scale
    sec = sec.astype(np.int64) + carry
    frac[carry] -= scale
    if n and (sec.min() < 0 or sec.max() > 0xFFFFFFFF):
        raise ValueError("timestamps outside the range classic pcap can store")
    headers = np.empty((n, 4), "<u4")
    headers[:, 0] = sec
    headers[:, 1] = frac
    headers[:, 2] = caplen
    headers[:, 3] = batch.wire_len
    out = np.empty(16 * n + int(caplen.sum()), np.uint8)
    starts = np.arange(n, dtype=np.int64) * 16 + batch.offsets[:-1] - batch.offsets[0]
    # header bytes at starts[i] .. +16, frame bytes right after
    head_idx = (starts[:, None] + np.arange(16)[None, :]).ravel()
    out[head_idx] = headers.view(np.uint8).ravel()
    is_data = np.ones(len(out), bool)
    is_data[head_idx] = False
    out[is_data] = batch.data[batch.offsets[0] : batch.offsets[-1]]
    return out.tobytes()


class PcapWriter:
    """Append FrameBatches to a classic pcap file (context manager).

    An explicit ``linktype`` is written as given, whatever the frames say. Without one the
    link type of the first frame written is used, and as classic pcap holds a single link
    type, a later frame with another one raises ValueError.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        linktype: int | None = None,
        nanosecond: bool = False,
        snaplen: int = DEFAULT_SNAPLEN,
    ) -> None:
        self.path = os.fspath(path)
        self.linktype = linktype
        self._check_frames = linktype is None
        self.nanosecond = nanosecond
        self.snaplen = snaplen
        self.packets = 0
        self._fh: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        if linktype is not None:
            self._write_header()

    def _write_header(self) -> None:
        assert self._fh is not None
        magic = PCAP_MAGIC_NS if self.nanosecond else PCAP_MAGIC_US
        self._fh.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, self.snaplen, self.linktype))

    def write(self, batch: FrameBatch) -> None:
        """Append every frame of ``batch``."""
        if self._fh is None:
            raise ValueError("write to a closed PcapWriter")
        if len(batch) == 0:
            return
        kinds = np.unique(batch.linktype)
        if self.linktype is None:
            if len(kinds) != 1:
                raise ValueError(f"batch mixes link types {kinds.tolist()}; pass linktype=")
            self.linktype = int(kinds[0])
            self._write_header()
        elif self._check_frames and kinds.tolist() != [self.linktype]:
            raise ValueError(f"batch link types {kinds.tolist()} differ from {self.linktype}")
        self._fh.write(_record_bytes(batch, self.nanosecond))
        self.packets += len(batch)

    def close(self) -> None:
        """Finish the file (a file with no frames still gets a header, as Ethernet)."""
        if self._fh is None:
            return
        if self.linktype is None:
            self.linktype = 1
            self._write_header()
        self._fh.close()
        self._fh = None

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_pcap(
    path: str | os.PathLike[str],
    batch: FrameBatch,
    linktype: int | None = None,
    nanosecond: bool = False,
) -> None:
    """Write ``batch`` to a new classic pcap file."""
    with PcapWriter(path, linktype=linktype, nanosecond=nanosecond) as writer:
        writer.write(batch)

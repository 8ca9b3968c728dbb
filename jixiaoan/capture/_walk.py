"""Numba kernels that walk the record headers of a capture chunk and gather frame bytes.

They work on one in-memory chunk (uint8 array) and stop at the first record that is
incomplete, corrupt, or needs Python-side handling (pcapng section and interface blocks).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Status codes returned by the walkers.
NEED_MORE = 0  # the next record is not complete in the chunk
CORRUPT = 1  # the next record header is impossible
FULL = 2  # max_records records were found
PY_BLOCK = 3  # a pcapng section header or interface block: handled in Python
BAD_INTERFACE = 4  # a pcapng packet names an interface that was not described
UNSUPPORTED_LINK = 5  # a pcapng packet on an interface whose link type is not supported
BAD_PACKET_LENGTH = 6  # a pcapng packet's captured length runs past its block

MAX_BLOCK = 16 * 1024 * 1024  # largest pcapng block or pcap record accepted


@njit(cache=True, inline="always")
def _u32(buf, p, big):
    if big:
        return (
            (np.uint32(buf[p]) << 24)
            | (np.uint32(buf[p + 1]) << 16)
            | (np.uint32(buf[p + 2]) << 8)
            | np.uint32(buf[p + 3])
        )
    return (
        np.uint32(buf[p])
        | (np.uint32(buf[p + 1]) << 8)
        | (np.uint32(buf[p + 2]) << 16)
        | (np.uint32(buf[p + 3]) << 24)
    )


@njit(cache=True, inline="always")
def _u16(buf, p, big):
    if big:
        return (np.uint32(buf[p]) << 8) | np.uint32(buf[p + 1])
    return np.uint32(buf[p]) | (np.uint32(buf[p + 1]) << 8)


@njit(cache=True, nogil=True)
def walk_pcap(buf, pos, big, max_caplen, frac_div, max_records, rec_start, rec_len, wire, ts):
    """Walk classic pcap records from ``pos``; returns (records found, stop position, status)."""
    end = len(buf)
    n = 0
    while n < max_records:
        if pos + 16 > end:
            return n, pos, NEED_MORE
        sec = _u32(buf, pos, big)
        frac = _u32(buf, pos + 4, big)
        caplen = _u32(buf, pos + 8, big)
        if caplen > max_caplen or frac >= frac_div:
            return n, pos, CORRUPT
        if pos + 16 + caplen > end:
            return n, pos, NEED_MORE
        rec_start[n] = pos + 16
        rec_len[n] = caplen
        wire[n] = _u32(buf, pos + 12, big)
        ts[n] = np.float64(sec) + np.float64(frac) / np.float64(frac_div)
        n += 1
        pos += 16 + caplen
    return n, pos, FULL


@njit(cache=True, nogil=True)
def walk_pcapng(
    buf, pos, big, if_linktype, if_supported, if_snaplen, if_div, if_offset, n_if,
    n, max_records, rec_start, rec_len, wire, ts, link, last_ts,
):  # fmt: skip
    """Walk pcapng blocks from ``pos``, collecting EPB/SPB/PB packets into slots ``n`` onwards.

    Returns (records found, stop position, status). ``last_ts[0]`` carries the time of the
    latest packet, given to simple packet blocks, which have none.
    """
    end = len(buf)
    while n < max_records:
        if pos + 8 > end:
            return n, pos, NEED_MORE
        btype = _u32(buf, pos, big)
        if btype == 0x0A0D0D0A:
            return n, pos, PY_BLOCK
        blen = _u32(buf, pos + 4, big)
        if blen < 12 or blen % 4 != 0 or blen > MAX_BLOCK:
            return n, pos, CORRUPT
        if pos + blen > end:
            return n, pos, NEED_MORE
        if _u32(buf, pos + blen - 4, big) != blen:
            return n, pos, CORRUPT
        if btype == 1:
            return n, pos, PY_BLOCK
        if btype == 6 or btype == 2:  # enhanced / obsolete packet block
            if blen < 32:
                return n, pos, CORRUPT
            if btype == 6:
                iid = np.int64(_u32(buf, pos + 8, big))
            else:
                iid = np.int64(_u16(buf, pos + 8, big))
            units = (np.uint64(_u32(buf, pos + 12, big)) << np.uint64(32)) | np.uint64(
                _u32(buf, pos + 16, big)
            )
            caplen = np.int64(_u32(buf, pos + 20, big))
            wirelen = _u32(buf, pos + 24, big)
            if 28 + caplen > blen - 4:
                return n, pos, BAD_PACKET_LENGTH
            if iid >= n_if:
                return n, pos, BAD_INTERFACE
            if not if_supported[iid]:
                return n, pos, UNSUPPORTED_LINK
            div = if_div[iid]
            t = np.float64(units // div) + np.float64(units % div) / np.float64(div)
            t += if_offset[iid]
            last_ts[0] = t
            rec_start[n] = pos + 28
        elif btype == 3:  # simple packet block: interface 0, no timestamp
            if blen < 16:
                return n, pos, CORRUPT
            if n_if == 0:
                return n, pos, BAD_INTERFACE
            iid = np.int64(0)
            if not if_supported[0]:
                return n, pos, UNSUPPORTED_LINK
            wirelen = _u32(buf, pos + 8, big)
            caplen = min(np.int64(wirelen), np.int64(blen) - 16)
            if if_snaplen[0] > 0:
                caplen = min(caplen, np.int64(if_snaplen[0]))
            t = last_ts[0]
            rec_start[n] = pos + 12
        else:
            pos += blen
            continue
        rec_len[n] = caplen
        wire[n] = wirelen
        ts[n] = t
        link[n] = if_linktype[iid]
        n += 1
        pos += blen
    return n, pos, FULL


@njit(cache=True, nogil=True)
def gather(buf, rec_start, rec_len, n, out, offsets):
    """Copy ``n`` records into ``out`` back to back; fill ``offsets`` (n + 1 entries)."""
    p = 0
    for i in range(n):
        s = rec_start[i]
        ln = rec_len[i]
        offsets[i] = p
        out[p : p + ln] = buf[s : s + ln]
        p += ln
    offsets[n] = p

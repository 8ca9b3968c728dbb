"""The TPACKET_V3 ring drain of ``live_linux.RingReader`` (numba, no GIL).

Block layout (``struct tpacket_block_desc`` / ``tpacket3_hdr``): block status at +8, frame
count at +12, first frame offset at +16; per frame: next offset, seconds, nanoseconds,
captured length, wire length, status, MAC offset, then the VLAN fields and ``sockaddr_ll``.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _u32(a, p):
    return np.int64(np.uint32(a[p]) | (np.uint32(a[p + 1]) << 8)
                    | (np.uint32(a[p + 2]) << 16) | (np.uint32(a[p + 3]) << 24))


@njit(cache=True, nogil=True)
def drain_ring(ring, block_size, block_nr, block, snaplen, skip_outgoing,
                data, pos, offsets, ts, wire, count, max_count, max_pos):  # fmt: skip
    """Copy the frames of every ready block from ``block`` on into the pending arrays, give
    the blocks back; stops at a block the kernel still owns or one that might not fit.
    Returns (next block, bytes used, frames pending)."""
    while True:
        b = block * block_size
        if (_u32(ring, b + 8) & 1) == 0:  # block_status & TP_STATUS_USER
            break
        num = _u32(ring, b + 12)
        if count > 0 and (count + num > max_count or pos + block_size + 4 * num > max_pos):
            break
        p = b + _u32(ring, b + 16)
        for _ in range(num):
            nxt = _u32(ring, p)
            sec, nsec = _u32(ring, p + 4), _u32(ring, p + 8)
            caplen, wlen, status = _u32(ring, p + 12), _u32(ring, p + 16), _u32(ring, p + 20)
            mac = p + (np.int64(ring[p + 24]) | (np.int64(ring[p + 25]) << 8))
            pkttype = ring[p + 48 + 10]  # sockaddr_ll.sll_pkttype after the 48-byte header
            if not (skip_outgoing and pkttype == 4):
                n = min(caplen, np.int64(snaplen))
                if (status & 0x10) != 0 and n >= 12:  # reinsert the VLAN tag the NIC removed
                    n = min(caplen, np.int64(snaplen) - 4)
                    tci = _u32(ring, p + 32) & 0xFFFF  # hv1.tp_vlan_tci
                    tpid = np.int64(0x8100)
                    if (status & 0x40) != 0:
                        tpid = _u32(ring, p + 36) & 0xFFFF  # hv1.tp_vlan_tpid
                    data[pos : pos + 12] = ring[mac : mac + 12]
                    data[pos + 12] = tpid >> 8
                    data[pos + 13] = tpid & 0xFF
                    data[pos + 14] = tci >> 8
                    data[pos + 15] = tci & 0xFF
                    data[pos + 16 : pos + n + 4] = ring[mac + 12 : mac + n]
                    pos += n + 4
                    wlen += 4
                else:
                    data[pos : pos + n] = ring[mac : mac + n]
                    pos += n
                ts[count] = sec + nsec * 1e-9
                wire[count] = wlen
                count += 1
                offsets[count] = pos
            p += nxt
        ring[b + 8] = 0  # TP_STATUS_KERNEL: the block goes back to the kernel
        ring[b + 9] = 0
        ring[b + 10] = 0
        ring[b + 11] = 0
        block = (block + 1) % block_nr
    return block, pos, count


def warm_up() -> None:
    """Compile (or load) the kernel now, not while frames pile up in the ring."""
    ring = np.zeros(2 * 4096, np.uint8)
    drain_ring(ring, 4096, 2, 0, 65535, False, np.zeros(16, np.uint8), 0,
                np.zeros(2, np.int64), np.zeros(1), np.zeros(1, np.uint32), 0, 1, 16)

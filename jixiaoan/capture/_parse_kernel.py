"""Numba kernel decoding link, network and transport headers of every frame in a batch."""

from __future__ import annotations

import numpy as np
from numba import njit

from jixiaoan.capture.batch import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    PROTO_ARP,
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_IPV4,
    PROTO_IPV6,
    PROTO_TCP,
    PROTO_UDP,
)

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_ARP = 0x0806
MAX_VLAN_TAGS = 2
MAX_IPV6_EXT = 8  # extension headers followed before giving up


@njit(cache=True, inline="always")
def _be16(d, p):
    return (np.uint32(d[p]) << 8) | np.uint32(d[p + 1])


@njit(cache=True, inline="always")
def _mac(d, p):
    v = np.uint64(0)
    for k in range(6):
        v = (v << np.uint64(8)) | np.uint64(d[p + k])
    return v


@njit(cache=True, inline="always")
def _null_family_ethertype(d, p):
    le = np.uint32(d[p]) | (np.uint32(d[p + 1]) << 8) | (np.uint32(d[p + 2]) << 16)
    le |= np.uint32(d[p + 3]) << 24
    be = (np.uint32(d[p]) << 24) | (np.uint32(d[p + 1]) << 16) | (np.uint32(d[p + 2]) << 8)
    be |= np.uint32(d[p + 3])
    fam = le if le <= 0xFFFF else be
    if fam == 2:
        return ETH_IPV4
    if fam == 10 or fam == 24 or fam == 28 or fam == 30:
        return ETH_IPV6
    return 0


@njit(cache=True, nogil=True)
def parse_kernel(
    data, offsets, linktype, src_mac, dst_mac, ethertype, vlan, l3_off, ip_version,
    src_ip, dst_ip, ip_proto, l4_off, sport, dport, tcp_flags, payload_off, proto, truncated,
):  # fmt: skip
    """Fill the output arrays (pre-initialised to 0 / -1 / False) for every frame."""
    n = len(offsets) - 1
    for i in range(n):
        base = offsets[i]
        d = data[base : offsets[i + 1]]
        cap = len(d)
        lt = linktype[i]
        et = np.uint32(0)
        p = 0
        # ---- link layer ----
        if lt == LINKTYPE_ETHERNET:
            if cap < 14:
                truncated[i] = True
                continue
            dst_mac[i] = _mac(d, 0)
            src_mac[i] = _mac(d, 6)
            et = _be16(d, 12)
            p = 14
        elif lt == LINKTYPE_LINUX_SLL:
            if cap < 16:
                truncated[i] = True
                continue
            if _be16(d, 4) == 6:
                src_mac[i] = _mac(d, 6)
            et = _be16(d, 14)
            p = 16
        elif lt == LINKTYPE_LINUX_SLL2:
            if cap < 20:
                truncated[i] = True
                continue
            if d[11] == 6:
                src_mac[i] = _mac(d, 12)
            et = _be16(d, 0)
            p = 20
        elif lt == LINKTYPE_NULL or lt == LINKTYPE_LOOP:  # noqa: SIM109 (numba)
            if cap < 4:
                truncated[i] = True
                continue
            et = _null_family_ethertype(d, 0)
            p = 4
        elif lt == LINKTYPE_RAW:
            if cap < 1:
                truncated[i] = True
                continue
            ver = d[0] >> 4
            et = ETH_IPV4 if ver == 4 else (ETH_IPV6 if ver == 6 else 0)
        elif lt == LINKTYPE_IPV4:
            et = ETH_IPV4
        elif lt == LINKTYPE_IPV6:
            et = ETH_IPV6
        else:
            continue
        # ---- VLAN tags ----
        tags = 0
        cut = False
        while tags < MAX_VLAN_TAGS and (et == 0x8100 or et == 0x88A8 or et == 0x9100):
            if p + 4 > cap:
                cut = True
                break
            if tags == 0:
                vlan[i] = _be16(d, p) & 0x0FFF
            et = _be16(d, p + 2)
            p += 4
            tags += 1
        if cut:
            truncated[i] = True
            continue
        if et < 0x0600:  # 802.3 length field, not an ethertype
            et = 0
        ethertype[i] = et
        # ---- network layer ----
        if et == ETH_ARP:
            proto[i] = PROTO_ARP
            if p + 8 > cap:
                truncated[i] = True
                continue
            l3_off[i] = p
            hlen = d[p + 4]
            plen = d[p + 5]
            if _be16(d, p + 2) == ETH_IPV4 and plen == 4:
                end = p + 8 + 2 * hlen + 8
                if end > cap:
                    truncated[i] = True
                    continue
                sip = p + 8 + hlen
                tip = sip + 4 + hlen
                src_ip[i, 10] = 0xFF
                src_ip[i, 11] = 0xFF
                dst_ip[i, 10] = 0xFF
                dst_ip[i, 11] = 0xFF
                for k in range(4):
                    src_ip[i, 12 + k] = d[sip + k]
                    dst_ip[i, 12 + k] = d[tip + k]
            continue
        l4 = -1
        nxt = 0
        if et == ETH_IPV4:
            if p + 20 > cap:
                truncated[i] = True
                continue
            if d[p] >> 4 != 4:
                continue
            ihl = (d[p] & 0x0F) * 4
            ip_version[i] = 4
            l3_off[i] = p
            nxt = d[p + 9]
            ip_proto[i] = nxt
            src_ip[i, 10] = 0xFF
            src_ip[i, 11] = 0xFF
            dst_ip[i, 10] = 0xFF
            dst_ip[i, 11] = 0xFF
            for k in range(4):
                src_ip[i, 12 + k] = d[p + 12 + k]
                dst_ip[i, 12 + k] = d[p + 16 + k]
            proto[i] = PROTO_IPV4
            if ihl < 20:
                continue
            if p + ihl > cap:
                truncated[i] = True
                continue
            if _be16(d, p + 6) & 0x1FFF != 0:  # not the first fragment
                continue
            l4 = p + ihl
        elif et == ETH_IPV6:
            if p + 40 > cap:
                truncated[i] = True
                continue
            if d[p] >> 4 != 6:
                continue
            ip_version[i] = 6
            l3_off[i] = p
            proto[i] = PROTO_IPV6
            for k in range(16):
                src_ip[i, k] = d[p + 8 + k]
                dst_ip[i, k] = d[p + 24 + k]
            nxt = d[p + 6]
            q = p + 40
            first = True
            hops = 0
            ok = True
            while nxt == 0 or nxt == 43 or nxt == 44 or nxt == 60 or nxt == 51:
                if hops >= MAX_IPV6_EXT:
                    ok = False
                    break
                if q + 8 > cap:
                    truncated[i] = True
                    ok = False
                    break
                if nxt == 44:
                    if _be16(d, q + 2) & 0xFFF8 != 0:
                        first = False
                    size = 8
                elif nxt == 51:
                    size = (d[q + 1] + 2) * 4
                else:
                    size = (d[q + 1] + 1) * 8
                nxt = d[q]
                q += size
                hops += 1
            ip_proto[i] = nxt
            if not ok or not first:
                continue
            if q > cap:
                truncated[i] = True
                continue
            l4 = q
        else:
            continue
        # ---- transport layer ----
        v6 = et == ETH_IPV6
        if nxt == 6:
            if l4 + 20 > cap:
                truncated[i] = True
                continue
            proto[i] = PROTO_TCP
            l4_off[i] = l4
            sport[i] = _be16(d, l4)
            dport[i] = _be16(d, l4 + 2)
            tcp_flags[i] = d[l4 + 13]
            hl = (d[l4 + 12] >> 4) * 4
            if hl >= 20 and l4 + hl <= cap:
                payload_off[i] = l4 + hl
            else:
                truncated[i] = True
        elif nxt == 17:
            if l4 + 8 > cap:
                truncated[i] = True
                continue
            proto[i] = PROTO_UDP
            l4_off[i] = l4
            sport[i] = _be16(d, l4)
            dport[i] = _be16(d, l4 + 2)
            payload_off[i] = l4 + 8
        elif (nxt == 1 and not v6) or (nxt == 58 and v6):
            if l4 + 8 > cap:
                truncated[i] = True
                continue
            proto[i] = PROTO_ICMPV6 if v6 else PROTO_ICMP
            l4_off[i] = l4
            payload_off[i] = l4 + 8
    return 0

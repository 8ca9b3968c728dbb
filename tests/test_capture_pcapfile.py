"""Reading pcap/pcapng/gzip captures: formats, batching, damaged files, writer round trip."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from jixiaoan.capture.batch import CaptureError, FrameBatch, HeaderBatch
from jixiaoan.capture.parse import parse_headers
from jixiaoan.capture.pcapfile import capture_summary, read_capture
from jixiaoan.capture.pcapwriter import PcapWriter, write_pcap

DATA = Path(__file__).resolve().parent / "data"
WIKI = DATA / "zeek" / "wikipedia.pcap"
PCAPNG = DATA / "zeek" / "http" / "cooper-grill-dvwa.pcapng"


def read_all(path: Path, **kwargs: int) -> FrameBatch:
    return FrameBatch.concat(list(read_capture(path, **kwargs)))


def same_frames(a: FrameBatch, b: FrameBatch) -> None:
    assert len(a) == len(b)
    assert a.offsets.tolist() == b.offsets.tolist()
    assert a.data.tobytes() == b.data.tobytes()
    assert a.wire_len.tolist() == b.wire_len.tolist()
    assert a.linktype.tolist() == b.linktype.tolist()
    np.testing.assert_allclose(a.ts, b.ts, rtol=0, atol=1e-6)


def pcap_bytes(
    batch: FrameBatch, big: bool = False, nano: bool = False, linktype: int = 1
) -> bytes:
    """A classic pcap file written independently of PcapWriter (either byte order)."""
    e = ">" if big else "<"
    out = [
        struct.pack(e + "IHHiIII", 0xA1B23C4D if nano else 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    ]
    scale = 10**9 if nano else 10**6
    for i in range(len(batch)):
        units = round(float(batch.ts[i]) * scale)
        frame = batch.frame(i)
        out.append(
            struct.pack(
                e + "IIII", units // scale, units % scale, len(frame), int(batch.wire_len[i])
            )
        )
        out.append(frame)
    return b"".join(out)


def record_offsets(raw: bytes) -> list[int]:
    """Byte offsets of the record headers of a little-endian classic pcap."""
    offs, pos = [], 24
    while pos < len(raw):
        offs.append(pos)
        pos += 16 + struct.unpack_from("<I", raw, pos + 8)[0]
    return offs


# ---- pcapng builder -------------------------------------------------------------------------


def _block(e: str, btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    return (
        struct.pack(e + "II", btype, len(body) + 12) + body + struct.pack(e + "I", len(body) + 12)
    )


def shb(e: str) -> bytes:
    return _block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(
    e: str, linktype: int, tsresol: int | None = None, snaplen: int = 0, tsoffset: int = 0
) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += struct.pack(e + "HH", 9, 1) + bytes([tsresol]) + b"\0\0\0"
    if tsoffset:
        opts += struct.pack(e + "HHq", 14, 8, tsoffset)
    if opts:
        opts += struct.pack(e + "HH", 0, 0)
    return _block(e, 1, struct.pack(e + "HHI", linktype, 0, snaplen) + opts)


def epb(e: str, iface: int, units: int, frame: bytes, wire: int | None = None) -> bytes:
    head = struct.pack(
        e + "IIIII", iface, units >> 32, units & 0xFFFFFFFF, len(frame), wire or len(frame)
    )
    return _block(e, 6, head + frame)


def spb(e: str, frame: bytes) -> bytes:
    return _block(e, 3, struct.pack(e + "I", len(frame)) + frame)


def obsolete_pb(e: str, iface: int, units: int, frame: bytes) -> bytes:
    head = struct.pack(
        e + "HHIIII", iface, 0, units >> 32, units & 0xFFFFFFFF, len(frame), len(frame)
    )
    return _block(e, 2, head + frame)


# ---- formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("nano", [False, True])
def test_classic_pcap_byte_orders_and_resolutions(tmp_path: Path, big: bool, nano: bool) -> None:
    ref = read_all(WIKI)
    path = tmp_path / "variant.pcap"
    path.write_bytes(pcap_bytes(ref, big=big, nano=nano))
    same_frames(read_all(path), ref)


def test_gzip_capture_is_read_transparently(tmp_path: Path) -> None:
    path = tmp_path / "wiki.pcap.gz"
    path.write_bytes(gzip.compress(WIKI.read_bytes()))
    same_frames(read_all(path), read_all(WIKI))
    ng = tmp_path / "ng.pcapng.gz"
    ng.write_bytes(gzip.compress(PCAPNG.read_bytes()))
    same_frames(read_all(ng), read_all(PCAPNG))


@pytest.mark.parametrize("batch_size", [1, 3, 64, 100000])
@pytest.mark.parametrize("chunk_size", [16, 1000, 1 << 20])
@pytest.mark.parametrize("path", [WIKI, PCAPNG], ids=["pcap", "pcapng"])
def test_batch_and_chunk_sizes_do_not_change_results(
    path: Path, batch_size: int, chunk_size: int
) -> None:
    ref = read_all(path)
    batches = list(read_capture(path, batch_size=batch_size, chunk_size=chunk_size))
    assert all(0 < len(b) <= batch_size for b in batches)
    if batch_size < len(ref):
        assert len(batches[0]) == batch_size
    joined = FrameBatch.concat(batches)
    same_frames(joined, ref)
    whole = parse_headers(ref)
    split = HeaderBatch.concat([parse_headers(b) for b in batches])
    for name in whole.__dataclass_fields__:
        assert np.array_equal(getattr(whole, name), getattr(split, name)), name


@pytest.mark.parametrize("e", ["<", ">"])
def test_pcapng_sections_interfaces_and_block_kinds(tmp_path: Path, e: str) -> None:
    ref = read_all(WIKI)
    f = [ref.frame(i) for i in range(6)]
    raw_ip = f[0][14:]
    blob = b"".join([
        shb(e),
        idb(e, 1),  # microseconds
        idb(e, 101, tsresol=9),  # nanoseconds
        idb(e, 1, tsresol=0x80 | 10, tsoffset=100),  # 2^-10 s, offset 100 s
        _block(e, 4, b"\x00\x00\x00\x00"),  # name resolution block: skipped
        epb(e, 0, 1_500_000_000_250_000, f[0], wire=1000),
        epb(e, 1, 1_500_000_001_000_000_123, raw_ip),
        _block(e, 5, struct.pack(e + "IIIHH", 0, 0, 0, 0, 0)),  # interface statistics
        epb(e, 2, 1024 * 7 + 512, f[1]),
        obsolete_pb(e, 0, 1_500_000_002_000_000, f[2]),
        _block(e, 0x00000BAD, b"custom"),
        shb(">" if e == "<" else "<"),  # a new section in the other byte order
        idb(">" if e == "<" else "<", 113, snaplen=40),
    ])  # fmt: skip
    e2 = ">" if e == "<" else "<"
    sll = b"\x00\x00\x00\x01\x00\x06" + f[3][6:12] + b"\0\0" + f[3][12:]
    sll4 = b"\x00\x00\x00\x01\x00\x06" + f[4][6:12] + b"\0\0" + f[4][12:]
    blob += spb(e2, sll) + epb(e2, 0, 1_600_000_000_000_000, sll4[:30], wire=len(sll4))
    path = tmp_path / "multi.pcapng"
    path.write_bytes(blob)
    got = read_all(path)
    assert got.linktype.tolist() == [1, 101, 1, 1, 113, 113]
    assert [got.frame(i) for i in range(6)] == [f[0], raw_ip, f[1], f[2], sll[:40], sll4[:30]]
    assert got.wire_len.tolist() == [1000, len(raw_ip), len(f[1]), len(f[2]), len(sll), len(sll4)]
    want_ts = [1_500_000_000.25, 1_500_000_001.000000123, 107.5, 1_500_000_002.0]
    want_ts += [1_500_000_002.0, 1_600_000_000.0]  # the SPB repeats the latest time
    np.testing.assert_allclose(got.ts, want_ts, rtol=0, atol=1e-6)
    headers = parse_headers(got)
    assert headers.ip_version.tolist()[:2] == [4, 4]
    assert bytes(headers.src_ip[1]) == bytes(headers.src_ip[0])
    assert headers.truncated.tolist() == [False] * 4 + [headers.proto[4] == 4, True]
    assert headers.src_mac[4] == int.from_bytes(f[3][6:12], "big") and headers.dst_mac[4] == 0


def test_capture_summary(tmp_path: Path) -> None:
    summary = capture_summary(PCAPNG)
    ref = read_all(PCAPNG)
    assert summary.packets == len(ref)
    assert summary.linktypes == {1: len(ref)}
    assert summary.first_ts == ref.ts[0] and summary.last_ts == ref.ts[-1]


# ---- damaged files ---------------------------------------------------------------------------


def test_corrupt_record_header_yields_packets_before_it(tmp_path: Path) -> None:
    raw = bytearray(WIKI.read_bytes())
    offs = record_offsets(bytes(raw))
    k = len(offs) // 2
    raw[offs[k] + 8 : offs[k] + 12] = b"\xff\xff\xff\x7f"  # impossible captured length
    path = tmp_path / "corrupt.pcap"
    path.write_bytes(bytes(raw))
    got: list[FrameBatch] = []
    with pytest.raises(CaptureError) as info:
        for b in read_capture(path, batch_size=7):
            got.append(b)
    assert info.value.offset == offs[k]
    assert "corrupt.pcap" in str(info.value) and f"byte {offs[k]}" in str(info.value)
    same_frames(FrameBatch.concat(got), read_all(WIKI).take(np.arange(k)))


@pytest.mark.parametrize("cut", ["mid_header", "mid_data"])
def test_truncated_pcap_yields_packets_before_the_cut(tmp_path: Path, cut: str) -> None:
    raw = WIKI.read_bytes()
    offs = record_offsets(raw)
    k = len(offs) - 3
    end = offs[k] + (7 if cut == "mid_header" else 16 + 5)
    path = tmp_path / "cut.pcap"
    path.write_bytes(raw[:end])
    got: list[FrameBatch] = []
    with pytest.raises(CaptureError, match=rf"cut\.pcap at byte {offs[k]}: truncated") as info:
        for b in read_capture(path, chunk_size=100):
            got.append(b)
    assert info.value.offset == offs[k]
    assert len(FrameBatch.concat(got)) == k


def test_truncated_gzip_pcap(tmp_path: Path) -> None:
    packed = gzip.compress(WIKI.read_bytes())
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(packed[: len(packed) // 2])
    got: list[FrameBatch] = []
    with pytest.raises(CaptureError, match="cut.pcap.gz"):
        for b in read_capture(path, chunk_size=512):
            got.append(b)
    assert 0 < len(FrameBatch.concat(got)) < len(read_all(WIKI))


def test_corrupt_and_truncated_pcapng(tmp_path: Path) -> None:
    raw = PCAPNG.read_bytes()
    # find the block offsets by walking the (little-endian) file
    offs, pos = [], 0
    while pos < len(raw):
        offs.append(pos)
        pos += struct.unpack_from("<I", raw, pos + 4)[0]
    k = len(offs) // 2
    bad = bytearray(raw)
    bad[offs[k] + 4 : offs[k] + 8] = b"\x03\x00\x00\x00"  # block length not a multiple of 4
    path = tmp_path / "corrupt.pcapng"
    path.write_bytes(bytes(bad))
    with pytest.raises(CaptureError, match=rf"corrupt\.pcapng at byte {offs[k]}"):
        list(read_capture(path))
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(raw[: offs[k] + 20])
    got: list[FrameBatch] = []
    with pytest.raises(CaptureError, match=rf"cut\.pcapng at byte {offs[k]}: truncated"):
        for b in read_capture(cut):
            got.append(b)
    n_packets_before = sum(struct.unpack_from("<I", raw, o)[0] == 6 for o in offs[:k])
    assert len(FrameBatch.concat(got)) == n_packets_before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"ab", "too short"),
        (b"hello, this is a text file\n" * 4, "not a pcap or pcapng file"),
        (b"\x89PNG\r\n\x1a\n" + bytes(40), "not a pcap or pcapng file"),
        (struct.pack("<IHH", 0xA1B2C3D4, 2, 4) + bytes(4), "truncated pcap file header"),
    ],
)
def test_non_capture_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "notacapture.bin"
    path.write_bytes(content)
    with pytest.raises(CaptureError, match=message) as info:
        list(read_capture(path))
    assert "notacapture.bin" in str(info.value)


def test_broken_gzip_stream(tmp_path: Path) -> None:
    path = tmp_path / "broken.pcap.gz"
    path.write_bytes(b"\x1f\x8b" + b"not really deflate data" * 3)
    with pytest.raises(CaptureError, match=r"broken\.pcap\.gz at byte 0: read failed"):
        list(read_capture(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="cannot open"):
        list(read_capture(tmp_path / "nope.pcap"))


def test_unknown_link_type(tmp_path: Path) -> None:
    ref = read_all(WIKI)
    path = tmp_path / "usb.pcap"
    path.write_bytes(pcap_bytes(ref, linktype=189))
    with pytest.raises(
        CaptureError, match=r"unsupported link type 189; supported: .*ETHERNET \(1\)"
    ):
        list(read_capture(path))
    ng = tmp_path / "usb.pcapng"
    ng.write_bytes(
        shb("<")
        + idb("<", 1)
        + idb("<", 189)
        + epb("<", 0, 5, ref.frame(0))
        + epb("<", 1, 6, b"xx")
    )
    got: list[FrameBatch] = []
    with pytest.raises(CaptureError, match="unsupported link type 189.*LINUX_SLL2 \\(276\\)"):
        for b in read_capture(ng):
            got.append(b)
    assert len(FrameBatch.concat(got)) == 1


def test_pcapng_packet_on_undescribed_interface(tmp_path: Path) -> None:
    path = tmp_path / "noif.pcapng"
    path.write_bytes(shb("<") + idb("<", 1) + epb("<", 3, 5, b"x" * 20))
    with pytest.raises(CaptureError, match="undescribed interface"):
        list(read_capture(path))


# ---- writer ----------------------------------------------------------------------------------


@pytest.mark.parametrize("nano", [False, True])
@pytest.mark.parametrize("path", [WIKI, PCAPNG], ids=["pcap", "pcapng"])
def test_write_pcap_reads_back_identically(tmp_path: Path, path: Path, nano: bool) -> None:
    ref = read_all(path)
    out = tmp_path / "out.pcap"
    write_pcap(out, ref, nanosecond=nano)
    same_frames(read_all(out), ref)


def test_pcap_writer_appends_batches(tmp_path: Path) -> None:
    ref = read_all(WIKI)
    out = tmp_path / "appended.pcap"
    with PcapWriter(out) as writer:
        for b in read_capture(WIKI, batch_size=10):
            writer.write(b)
        writer.write(FrameBatch.empty())
        with pytest.raises(ValueError, match="link types"):
            writer.write(FrameBatch.from_frames([b"x" * 20], [1.0], linktype=101))
    assert writer.packets == len(ref)
    same_frames(read_all(out), ref)
    assert out.read_bytes() == pcap_bytes(ref).replace(
        struct.pack("<I", 65535), struct.pack("<I", 262144), 1
    )


def test_explicit_link_type_overrides_frames(tmp_path: Path) -> None:
    batch = FrameBatch.from_frames([b"\x45" + bytes(19)], [2.5])
    out = tmp_path / "raw.pcap"
    write_pcap(out, batch, linktype=101)
    got = read_all(out)
    assert got.linktype.tolist() == [101] and got.ts.tolist() == [2.5]
    empty = tmp_path / "empty.pcap"
    with PcapWriter(empty):
        pass
    assert len(read_all(empty)) == 0


def test_read_head_returns_exactly_the_first_frames(data_dir):
    from jixiaoan.capture.batch import FrameBatch
    from jixiaoan.capture.pcapfile import read_capture, read_head

    path = data_dir / "zeek/wikipedia.pcap"
    whole = FrameBatch.concat(list(read_capture(path)))
    head = read_head(path, 10)
    assert len(head) == 10
    assert [head.frame(i) for i in range(10)] == [whole.frame(i) for i in range(10)]
    assert len(read_head(path, 10_000)) == len(whole)

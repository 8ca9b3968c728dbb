"""Live capture in throw-away network namespaces: exact frames, times, filters, errors, drops.

Frames are sent from the peer namespace over a veth pair; nothing leaves the namespaces.
"""

from __future__ import annotations

import shutil
import struct
import threading
import time

import numpy as np
import pytest
from netns import veth_namespaces

from jixiaoan.capture import live_linux
from jixiaoan.capture.batch import LINKTYPE_ETHERNET, FrameBatch
from jixiaoan.capture.live import (
    CaptureFilterError,
    CapturePermissionError,
    LiveCapture,
    UnknownInterfaceError,
)
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.capture.queues import FrameQueue

pytestmark = pytest.mark.live
METHODS = ["ring", "socket", "scapy"]


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _frames(n: int, src: str, ethertype: int = 0x88B5, size: int = 60) -> list[bytes]:
    head = b"\xff" * 6 + _mac(src) + struct.pack("!H", ethertype)
    return [head + struct.pack("!I", i) + bytes(size - 18) for i in range(n)]


def _udp_frame(src: str, port: int, seq: int) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + 4, seq, 0, 64, 17, 0,
                     bytes([10, 203, 0, 2]), bytes([10, 203, 0, 1]))
    udp = struct.pack("!HHHH", 40000, port, 12, 0) + struct.pack("!I", seq)
    return b"\xff" * 6 + _mac(src) + b"\x08\x00" + ip + udp + bytes(14)


def _wait_for(cap: LiveCapture, count: int, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while cap.counters().received < count and time.monotonic() < deadline:
        time.sleep(0.02)


def _collect(q: FrameQueue) -> FrameBatch:
    batches = []
    while (b := q.get(0)) is not None:
        batches.append(b)
    return FrameBatch.concat(batches)


def _frames_of(batch: FrameBatch) -> list[bytes]:
    return [batch.frame(i) for i in range(len(batch))]


@pytest.fixture
def net():
    with veth_namespaces(2) as setup:
        yield setup


def _start(net, q: FrameQueue, **kw) -> LiveCapture:
    cap = LiveCapture(net.ifaces[0], q, **kw)
    with net.entered(0):
        cap.start()
    return cap


@pytest.mark.parametrize("method", METHODS)
def test_receives_exactly_the_frames_sent(net, method: str) -> None:
    q = FrameQueue(max_batches=1000, max_packets=10**6)
    cap = _start(net, q, method=method, batch_packets=256)
    sent = _frames(2000, net.macs[1])
    before = time.time()
    net.send_frames(1, sent)
    after = time.time()
    _wait_for(cap, len(sent))
    cap.stop()
    assert cap.error is None and not cap.running
    got = _collect(q)
    assert _frames_of(got) == sent
    assert np.all(np.diff(got.ts) >= 0)
    assert before - 1 <= got.ts[0] and got.ts[-1] <= after + 1  # kernel wall-clock times
    assert np.all(got.linktype == LINKTYPE_ETHERNET)
    assert np.array_equal(got.wire_len, got.caplen)
    c = cap.counters()
    assert c.received == len(sent) and c.kernel_drops == 0 and c.queue_dropped_packets == 0
    assert c.batches == q.counters().enqueued_batches >= len(sent) // 256


@pytest.mark.parametrize("method", METHODS)
def test_bpf_filter_keeps_only_matching_frames(net, method: str) -> None:
    q = FrameQueue(max_batches=1000, max_packets=10**6)
    cap = _start(net, q, method=method, bpf="udp dst port 9999")
    wanted = [_udp_frame(net.macs[1], 9999, i) for i in range(100)]
    other = [_udp_frame(net.macs[1], 7777, i) for i in range(100)]
    mixed = [f for pair in zip(wanted, other) for f in pair] + _frames(50, net.macs[1])
    net.send_frames(1, mixed)
    _wait_for(cap, len(wanted))
    time.sleep(0.2)  # a frame that slipped through would have arrived by now
    cap.stop()
    assert _frames_of(_collect(q)) == wanted


@pytest.mark.parametrize("method", ["ring", "socket"])
def test_snaplen_and_vlan_tags(net, method: str) -> None:
    q = FrameQueue()
    cap = _start(net, q, method=method, snaplen=64)
    tag = b"\xff" * 6 + _mac(net.macs[1]) + b"\x81\x00\x00\x2a\x88\xb5"
    tagged, tagged_long = tag + b"v" * 40, tag + b"w" * 200
    long_frame = _frames(1, net.macs[1], size=300)[0]
    net.send_frames(1, [tagged, tagged_long, long_frame])
    _wait_for(cap, 3)
    cap.stop()
    got = _collect(q)
    assert got.frame(0) == tagged  # VLAN 42 tag put back where the kernel took it out
    assert got.frame(1) == tagged_long[:64]
    assert got.frame(2) == long_frame[:64]
    assert got.wire_len.tolist() == [len(tagged), len(tagged_long), 300]


@pytest.mark.parametrize("method", METHODS)
def test_bad_filter_is_a_clear_error(method: str) -> None:
    cap = LiveCapture("lo", FrameQueue(), bpf="port not-a-number and", method=method)
    with pytest.raises(CaptureFilterError, match="invalid capture filter 'port not-a-number"):
        cap.start()
    assert not cap.running


@pytest.mark.parametrize("method", METHODS)
def test_unknown_interface(method: str) -> None:
    with pytest.raises(UnknownInterfaceError, match="no such network adapter.*lo"):
        LiveCapture("jx-no-such0", FrameQueue(), method=method).start()


def test_permission_error_says_what_to_do(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(live_linux.socket, "socket", refuse)
    with pytest.raises(CapturePermissionError, match="root or the CAP_NET_RAW") as info:
        LiveCapture("lo", FrameQueue()).start()
    assert isinstance(info.value, PermissionError) and "setcap" in str(info.value)


def test_permission_error_through_scapy(monkeypatch) -> None:
    import scapy.arch  # noqa: F401
    from scapy.config import conf

    def refuse(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(conf, "L2listen", refuse)
    with pytest.raises(CapturePermissionError, match="run as root"):
        LiveCapture("lo", FrameQueue(), method="scapy").start()


def test_overload_drops_whole_batches_and_counts_them(net) -> None:
    q = FrameQueue(max_batches=3, max_packets=10**6)  # nobody consumes
    cap = _start(net, q, batch_packets=100)
    sent = _frames(3000, net.macs[1])
    net.send_frames(1, sent)
    _wait_for(cap, len(sent))
    cap.stop()
    c, qc = cap.counters(), q.counters()
    assert c.received + c.kernel_drops == len(sent)
    assert qc.depth_batches <= 3 and qc.depth_packets <= 300
    assert c.queue_dropped_packets == c.received - qc.enqueued_packets > 0
    assert c.queue_dropped_batches == qc.dropped_batches == c.batches - qc.enqueued_batches


def test_stop_without_traffic_and_restart_counters(net) -> None:
    q = FrameQueue()
    cap = _start(net, q, batch_timeout_s=5.0)
    assert cap.running
    cap.stop()
    assert not cap.running and cap.error is None
    assert cap.counters().received == 0 and q.get(0) is None


def test_partial_batch_handed_on_by_time(net) -> None:
    q = FrameQueue()
    cap = _start(net, q, batch_packets=10_000, batch_timeout_s=0.05)
    net.send_frames(1, _frames(5, net.macs[1]))
    batch = q.get(timeout=15)  # far fewer than batch_packets: the timer hands it on
    cap.stop()
    assert batch is not None and len(batch) == 5


@pytest.mark.skipif(shutil.which("tcpreplay") is None, reason="tcpreplay is not installed "
                    "(tools/test.sh installs it; or apt-get install tcpreplay)")
def test_tcpreplay_of_a_bundled_capture_arrives_intact(net, data_dir) -> None:
    path = data_dir / "zeek" / "wikipedia.pcap"
    want = FrameBatch.concat(list(read_capture(path)))
    q = FrameQueue(max_batches=1000, max_packets=10**6)
    cap = _start(net, q)
    net.run(1, ["tcpreplay", "-q", "-i", net.ifaces[1], "--topspeed", str(path)])
    _wait_for(cap, len(want))
    cap.stop()
    got = _collect(q)
    assert _frames_of(got) == _frames_of(want)
    assert np.all(np.diff(got.ts) >= 0)


def test_adapter_removed_while_capturing_stops_with_an_error(net) -> None:
    q = FrameQueue()
    cap = _start(net, q)
    net.send_frames(1, _frames(10, net.macs[1]))
    _wait_for(cap, 10)
    net.run(0, ["ip", "link", "del", net.ifaces[0]])  # the peer end goes with it
    deadline = time.monotonic() + 15
    while cap.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not cap.running
    assert cap.error is not None and net.ifaces[0] in str(cap.error)
    assert cap.counters().received == 10 and len(_collect(q)) == 10
    cap.stop()


@pytest.mark.parametrize("method", ["ring", "socket"])
def test_adapter_down_and_up_again_only_pauses(net, method: str) -> None:
    q = FrameQueue()
    cap = _start(net, q, method=method)
    net.send_frames(1, _frames(5, net.macs[1]))
    _wait_for(cap, 5)
    net.run(0, ["ip", "link", "set", net.ifaces[0], "down"])
    time.sleep(0.3)
    net.run(0, ["ip", "link", "set", net.ifaces[0], "up"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait for the carrier before sending again
        link = net.run(1, ["ip", "-o", "link", "show", net.ifaces[1]]).stdout
        if b"LOWER_UP" in link:
            break
        time.sleep(0.05)
    net.send_frames(1, _frames(7, net.macs[1]))
    _wait_for(cap, 12)
    assert cap.running and cap.error is None
    cap.stop()
    assert len(_collect(q)) == 12


@pytest.mark.parametrize("method", ["ring", "socket"])
def test_kernel_drops_are_counted_when_the_reader_stalls(net, method: str, monkeypatch) -> None:
    reader_class = live_linux.RingReader if method == "ring" else live_linux.SocketReader
    original, release = reader_class.fill, threading.Event()

    def stalled_fill(self, wait: float) -> None:
        release.wait(30)  # the reader sleeps until everything was sent: the buffer overflows
        original(self, wait)

    monkeypatch.setattr(reader_class, "fill", stalled_fill)
    q = FrameQueue(max_batches=1000, max_packets=10**6)
    cap = _start(net, q, method=method, buffer_bytes=16384)
    sent = _frames(2000, net.macs[1])
    try:
        net.send_frames(1, sent)
    finally:
        release.set()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        c = cap.counters()
        if c.received + c.kernel_drops >= len(sent):
            break
        time.sleep(0.05)
    cap.stop()
    c = cap.counters()
    assert c.received + c.kernel_drops == len(sent)
    assert c.kernel_drops > 0 and c.received > 0
    got = _frames_of(_collect(q))
    kept = set(got)
    assert len(kept) == len(got) == c.received
    assert got == [f for f in sent if f in kept]  # what came through is in order


def test_namespace_helper_skips_with_a_reason_when_not_root(monkeypatch) -> None:
    import netns

    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.skip.Exception, match="need root"), netns.veth_namespaces(2):
        pass


@pytest.mark.parametrize("method", METHODS)
def test_stop_right_after_traffic_loses_nothing(net, method: str) -> None:
    """Frames the kernel already holds when stop() is called are still handed on."""
    q = FrameQueue(max_batches=1000, max_packets=10**6)
    # big batches and a slow timer: without the final drain, stop would leave frames unread
    cap = _start(net, q, method=method, batch_packets=4096, batch_timeout_s=0.2)
    sent = _frames(500, net.macs[1])
    net.send_frames(1, sent)  # returns once the peer has sent every frame
    cap.stop()
    got = _collect(q)
    assert _frames_of(got) == sent
    assert cap.counters().received == len(sent)

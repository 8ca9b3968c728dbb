"""Linux readers of :class:`~jixiaoan.capture.live.LiveCapture`: AF_PACKET sockets.

``RingReader`` maps a TPACKET_V3 ring: the kernel fills fixed-size blocks with frames and
their headers (nanosecond timestamp, captured and wire length, VLAN tag) and retires a block
when it is full or ``batch_timeout_s`` after its first frame. ``ring_kernel.drain_ring``
(numba) copies every ready block into the pending batch and gives it back to the kernel.

``SocketReader`` reads one frame per ``recvmsg`` with its SO_TIMESTAMPNS time (slower; kept
for comparison and for kernels without TPACKET_V3).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
import select
import socket
import struct
import threading

import numpy as np

from jixiaoan.capture.batch import LINKTYPE_ETHERNET, LINKTYPE_RAW, FrameBatch
from jixiaoan.capture.interfaces import (
    CaptureFilterError,
    CapturePermissionError,
    LiveCaptureError,
    UnknownInterfaceError,
    permission_message,
)
from jixiaoan.capture.ring_kernel import drain_ring as _drain_ring
from jixiaoan.capture.ring_kernel import warm_up as _warm_up

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35
PACKET_AUXDATA = 8
SIOCGIFHWADDR = 0x8927
SIOCGIFINDEX = 0x8933
PACKET_OUTGOING = 4
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40

# ARPHRD_* hardware types -> link type of the frames an AF_PACKET SOCK_RAW socket returns.
_ETHERNET_LIKE = {1, 772}  # Ethernet (also Wi-Fi in managed mode), loopback
_RAW_IP = {65534, 768, 769, 776, 778}  # none (tun), IPIP, IP6 tunnel, SIT, GRE


def _compile_and_attach(sock: socket.socket, iface: str, bpf: str, dlt: int) -> None:
    try:
        from scapy.arch.common import compile_filter
        from scapy.error import Scapy_Exception
        from scapy.libs.winpcapy import pcap_freecode
    except (ImportError, OSError) as exc:
        raise LiveCaptureError(iface, "capture filters need libpcap (Debian/Ubuntu: "
                               f"apt install libpcap0.8): {exc}") from exc
    try:
        program = compile_filter(bpf, linktype=dlt)
    except ImportError as exc:
        raise LiveCaptureError(iface, "capture filters need libpcap (Debian/Ubuntu: "
                               f"apt install libpcap0.8): {exc}") from exc
    except (Scapy_Exception, OSError) as exc:
        raise CaptureFilterError(iface, f"invalid capture filter {bpf!r}: {exc}") from exc
    try:
        fprog = struct.pack("HL", program.bf_len, ctypes.addressof(program.bf_insns.contents))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    finally:
        pcap_freecode(ctypes.byref(program))


def open_packet_socket(iface: str, bpf: str | None, buffer_bytes: int
                       ) -> tuple[socket.socket, int, bool]:
    """An AF_PACKET socket bound to ``iface`` with the filter attached before any frame can
    arrive; returns it with the link type of its frames and whether ``iface`` is a loopback."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # protocol 0: nothing yet
    except PermissionError as exc:
        raise CapturePermissionError(iface, permission_message()) from exc
    except (AttributeError, OSError) as exc:
        raise LiveCaptureError(iface, f"cannot open a packet socket: {exc}") from exc
    try:
        try:
            index = socket.if_nametoindex(iface)
        except OSError:
            names = ", ".join(name for _, name in socket.if_nameindex())
            raise UnknownInterfaceError(
                iface, f"no such network adapter; adapters here: {names}") from None
        hw = _hardware_type(sock, iface)
        if hw in _ETHERNET_LIKE:
            linktype = LINKTYPE_ETHERNET
        elif hw in _RAW_IP:
            linktype = LINKTYPE_RAW
        else:
            raise LiveCaptureError(iface, f"adapter hardware type {hw} is not supported "
                                   "(Ethernet, Wi-Fi in managed/AP mode, loopback, tun are)")
        if bpf:
            _compile_and_attach(sock, iface, bpf, linktype)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer_bytes)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
        sock.bind((iface, ETH_P_ALL))
        del index
        return sock, linktype, hw == 772
    except BaseException:
        sock.close()
        raise


def _hardware_type(sock: socket.socket, iface: str) -> int:
    import fcntl

    req = struct.pack("16s16s", iface.encode()[:15], b"")
    try:
        res = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, req)
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            raise UnknownInterfaceError(iface, "no such network adapter") from exc
        raise
    return struct.unpack_from("H", res, 16)[0]


class _Waker:
    """A pipe whose read end is polled with the socket, so ``stop`` is immediate.

    An adapter that goes down (Wi-Fi reconnecting) only pauses the capture: the kernel
    resumes it when the adapter comes back. One that disappears ends it with an error.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.rfd, self.wfd = os.pipe()
        os.set_blocking(self.wfd, False)
        self.poller = select.poll()
        self.poller.register(sock.fileno(), select.POLLIN | select.POLLERR)
        self.poller.register(self.rfd, select.POLLIN)
        self.sock, self.sock_fd = sock, sock.fileno()
        self.iface = sock.getsockname()[0]

    def _still_there(self) -> bool:
        import fcntl

        req = struct.pack("16s16s", self.iface.encode()[:15], b"")
        try:  # asked through the socket: answers for the socket's network namespace
            fcntl.ioctl(self.sock_fd, SIOCGIFINDEX, req)
        except OSError:
            return False
        return True

    def wait(self, seconds: float) -> bool:
        """True when the socket has something within ``seconds``."""
        events = self.poller.poll(max(0, int(seconds * 1000 + 0.999)))
        for fd, ev in events:
            if fd == self.sock_fd and ev & select.POLLERR:
                code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # clears it
                if not self._still_there():
                    raise OSError(errno.ENODEV, "the adapter disappeared")
                if code and code != errno.ENETDOWN:
                    raise OSError(code, os.strerror(code))
        return any(fd == self.sock_fd and ev & select.POLLIN for fd, ev in events)

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self.wfd, b"x")

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            with contextlib.suppress(OSError):
                os.close(fd)


class _KernelDrops:
    """PACKET_STATISTICS resets on every read: keep the running total."""

    def __init__(self, sock: socket.socket, size: int) -> None:
        self.sock, self.size, self.total = sock, size, 0
        self.lock = threading.Lock()

    def __call__(self) -> int:
        with self.lock:
            with contextlib.suppress(OSError):
                raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, self.size)
                self.total += struct.unpack_from("II", raw)[1]
            return self.total


class RingReader:
    """TPACKET_V3 ring reader: ``fill`` waits for retired blocks and drains them."""

    def __init__(self, sock: socket.socket, linktype: int, loopback: bool, snaplen: int,
                 buffer_bytes: int, batch_timeout_s: float, batch_packets: int,
                 batch_bytes: int) -> None:  # fmt: skip
        self.sock, self.linktype, self.snaplen = sock, linktype, snaplen
        self.skip_outgoing = loopback  # on loopback every frame is seen going out and in
        page = mmap.PAGESIZE
        self.block_size = max(page, min(1 << 20, (buffer_bytes // 8) // page * page))
        self.block_nr = max(2, buffer_bytes // self.block_size)
        frame_size = 2048
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        tov_ms = max(1, int(batch_timeout_s * 1000))
        req = struct.pack("7I", self.block_size, self.block_nr, frame_size,
                          self.block_size * self.block_nr // frame_size, tov_ms, 0, 0)
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
        self.mm = mmap.mmap(sock.fileno(), self.block_size * self.block_nr,
                            mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.ring = np.frombuffer(self.mm, np.uint8)
        self.block = 0
        per_block = self.block_size // 64
        self.max_count = batch_packets + per_block
        self.max_pos = batch_bytes + self.block_size + 4 * per_block
        self._alloc()
        _warm_up()
        self.waker = _Waker(sock)
        self.kernel_drops = _KernelDrops(sock, 12)

    def _alloc(self) -> None:
        self.data = np.empty(self.max_pos, np.uint8)
        self.offsets = np.zeros(self.max_count + 1, np.int64)
        self.ts = np.empty(self.max_count, np.float64)
        self.wire = np.empty(self.max_count, np.uint32)
        self.pos = self.pending = 0

    @property
    def pending_bytes(self) -> int:
        return self.pos

    def fill(self, wait: float) -> None:
        """Drain the ready blocks; if none is ready, wait up to ``wait`` seconds for one."""
        if not self._drain():
            self.waker.wait(wait)
            self._drain()

    def _drain(self) -> int:
        before = self.pending
        self.block, self.pos, self.pending = _drain_ring(
            self.ring, self.block_size, self.block_nr, self.block, self.snaplen,
            self.skip_outgoing, self.data, self.pos, self.offsets, self.ts, self.wire,
            self.pending, self.max_count, self.max_pos)
        return self.pending - before

    def take(self, max_packets: int) -> list[FrameBatch]:
        """Everything pending, in batches of at most ``max_packets`` frames (a ring block
        may hold more frames than one batch)."""
        out = []
        for a in range(0, self.pending, max_packets):
            b = min(a + max_packets, self.pending)
            lo, hi = int(self.offsets[a]), int(self.offsets[b])
            out.append(FrameBatch(self.data[lo:hi].copy(), self.offsets[a : b + 1] - lo,
                                  self.ts[a:b].copy(), self.wire[a:b].copy(),
                                  np.full(b - a, self.linktype, np.uint16)))
        self.pos = self.pending = 0
        return out

    def wake(self) -> None:
        self.waker.wake()

    def close(self) -> None:
        self.kernel_drops()
        self.waker.close()
        self.ring = None  # the view must go before the mapping can close
        with contextlib.suppress(BufferError, ValueError):
            self.mm.close()
        self.sock.close()


class SocketReader:
    """One ``recvmsg`` per frame, with the kernel's SO_TIMESTAMPNS capture time."""

    def __init__(self, sock: socket.socket, linktype: int, loopback: bool, snaplen: int,
                 batch_packets: int) -> None:  # fmt: skip
        self.sock, self.linktype, self.snaplen = sock, linktype, snaplen
        self.skip_outgoing, self.batch_packets = loopback, batch_packets
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)  # wire length and VLAN tag
        sock.setblocking(False)
        self.waker = _Waker(sock)
        self.kernel_drops = _KernelDrops(sock, 8)
        self._frames: list[bytes] = []
        self._ts: list[float] = []
        self._wire: list[int] = []
        self.pending_bytes = 0

    @property
    def pending(self) -> int:
        return len(self._frames)

    def fill(self, wait: float) -> None:
        """Read every frame ready now (at most a batch); if none, wait up to ``wait``."""
        if not self._read() and self.waker.wait(wait):
            self._read()

    def _read(self) -> int:
        frames, stamps, recvmsg = self._frames, self._ts, self.sock.recvmsg
        room = self.batch_packets - len(frames)
        got = 0
        for _ in range(room):
            try:
                data, anc, _flags, addr = recvmsg(self.snaplen, 96)
            except BlockingIOError:
                break
            if self.skip_outgoing and addr[2] == PACKET_OUTGOING:
                continue
            stamp, wire = 0.0, len(data)
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack_from("qq", value)
                    stamp = sec + nsec * 1e-9
                elif level == SOL_PACKET and kind == PACKET_AUXDATA:
                    status, wire, _, _, _, tci, tpid = struct.unpack_from("IIIHHHH", value)
                    if status & TP_STATUS_VLAN_VALID and len(data) >= 12:
                        tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
                        data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
                        wire += 4
            frames.append(data[: self.snaplen])
            stamps.append(stamp)
            self._wire.append(wire)
            self.pending_bytes += len(data)
            got += 1
        return got

    def take(self, max_packets: int) -> list[FrameBatch]:
        """Everything pending as one batch (``fill`` never reads more than a batch)."""
        batch = FrameBatch.from_frames(self._frames, np.asarray(self._ts), self.linktype,
                                       self._wire)
        self._frames, self._ts, self._wire, self.pending_bytes = [], [], [], 0
        return [batch]

    def wake(self) -> None:
        self.waker.wake()

    def close(self) -> None:
        self.kernel_drops()
        self.waker.close()
        self.sock.close()

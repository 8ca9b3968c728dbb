"""Live capture from a network adapter into a :class:`~jixiaoan.capture.queues.FrameQueue`.

One thread per adapter reads raw frames and hands them on in :class:`FrameBatch` es, by size
or by time, whichever comes first; nothing is dissected here. Readers (``method``):

- ``"ring"`` (Linux, default): an AF_PACKET socket with a TPACKET_V3 memory-mapped ring; the
  kernel fills blocks of frames with nanosecond timestamps and a numba kernel copies whole
  blocks into the batch, so no Python runs per packet and no system call either.
- ``"socket"`` (Linux): the same socket read one frame per ``recvmsg`` with SO_TIMESTAMPNS.
- ``"scapy"`` (any OS; the only one on Windows and macOS): scapy's ``conf.L2listen`` socket
  (Npcap/libpcap) read with ``recv_raw``.

``benchmarks/bench_live_capture.py`` measures them side by side.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time

import numpy as np

from jixiaoan.capture.batch import LINKTYPE_ETHERNET, FrameBatch
from jixiaoan.capture.interfaces import (
    CaptureFilterError,
    CapturePermissionError,
    LiveCaptureError,
    UnknownInterfaceError,
    list_interfaces,
    permission_message,
)
from jixiaoan.capture.live_linux import RingReader, SocketReader, open_packet_socket
from jixiaoan.capture.queues import CaptureCounters, FrameQueue

MiB = 1024 * 1024


class LiveCapture:
    """Captures frames on ``iface`` on its own thread and puts batches on ``queue``.

    ``bpf``: a capture filter in tcpdump syntax (compiled with libpcap through scapy).
    ``buffer_bytes``: kernel buffer (ring size for ``"ring"``, SO_RCVBUF otherwise).
    A batch is handed on when it holds ``batch_packets`` frames (or ``batch_bytes`` bytes), or
    ``batch_timeout_s`` after its first frame, whichever comes first. Timestamps are the
    kernel's capture times (seconds since the epoch, float64). ``start()`` raises
    :class:`LiveCaptureError` subclasses with an actionable message; an error later on the
    capture thread stops it and is kept in :attr:`error`.
    """

    def __init__(
        self,
        iface: str,
        queue: FrameQueue,
        bpf: str | None = None,
        snaplen: int = 65535,
        buffer_bytes: int = 4 * MiB,
        batch_packets: int = 4096,
        batch_timeout_s: float = 0.02,
        batch_bytes: int = 8 * MiB,
        method: str = "auto",
    ) -> None:
        if method == "auto":
            method = "ring" if sys.platform.startswith("linux") else "scapy"
        if method not in ("ring", "socket", "scapy"):
            raise ValueError(f"unknown capture method {method!r}: use ring, socket or scapy")
        if batch_packets < 1 or snaplen < 64 or batch_timeout_s <= 0:
            raise ValueError("batch_packets must be >= 1, snaplen >= 64, batch_timeout_s > 0")
        self.iface, self.queue, self.bpf, self.method = iface, queue, bpf, method
        self.snaplen, self.buffer_bytes = snaplen, buffer_bytes
        self.batch_packets, self.batch_timeout_s, self.batch_bytes = (
            batch_packets, batch_timeout_s, batch_bytes)
        self.linktype = LINKTYPE_ETHERNET
        self.error: BaseException | None = None
        self._reader = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._received = self._batches = self._qdrop_batches = self._qdrop_packets = 0

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> LiveCapture:
        """Open the adapter (in the calling thread, so errors surface here) and start reading."""
        if self._thread is not None:
            raise RuntimeError("capture already started")
        self._reader = self._open()
        self.linktype = self._reader.linktype
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"capture-{self.iface}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop reading, hand on the frames already read, close the adapter."""
        self._stop.set()
        reader = self._reader
        if reader is not None:
            reader.wake()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        """True while the capture thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> LiveCapture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def counters(self) -> CaptureCounters:
        """Packets received, kernel drops (PACKET_STATISTICS; 0 where unknown), batches handed
        on and those the full queue dropped."""
        reader = self._reader
        kernel = reader.kernel_drops() if reader is not None else 0
        with self._lock:
            return CaptureCounters(
                received=self._received, kernel_drops=kernel, batches=self._batches,
                queue_dropped_batches=self._qdrop_batches,
                queue_dropped_packets=self._qdrop_packets)

    # -- internals --------------------------------------------------------------------------
    def _open(self):
        if self.method == "scapy":
            return ScapyReader(self.iface, self.bpf, self.snaplen, self.batch_packets,
                               self.buffer_bytes)
        sock, linktype, loopback = open_packet_socket(self.iface, self.bpf, self.buffer_bytes)
        try:
            if self.method == "ring":
                return RingReader(sock, linktype, loopback, self.snaplen, self.buffer_bytes,
                                  self.batch_timeout_s, self.batch_packets, self.batch_bytes)
            return SocketReader(sock, linktype, loopback, self.snaplen, self.batch_packets)
        except OSError as exc:
            sock.close()
            raise LiveCaptureError(self.iface, f"cannot set up the capture: {exc}") from exc

    def _hand_on(self, batches: list[FrameBatch]) -> None:
        for batch in batches:
            accepted = self.queue.put(batch)
            with self._lock:
                self._received += len(batch)
                self._batches += 1
                if not accepted:
                    self._qdrop_batches += 1
                    self._qdrop_packets += len(batch)

    def _final_drain(self, reader, rounds: int = 256) -> None:
        """On stop, also hand on what the kernel already holds, so a stop right after traffic
        ends loses none of the frames that arrived before it. A ring block becomes readable
        once the kernel retires it (batch_timeout_s at most), so this waits that long, then
        reads whatever is ready for a bounded number of rounds."""
        deadline = time.monotonic() + min(self.batch_timeout_s, 0.25) + 0.02
        while (left := deadline - time.monotonic()) > 0:
            if reader.pending:
                self._hand_on(reader.take(self.batch_packets))
            reader.fill(min(left, 0.02))
            if not reader.pending:
                time.sleep(min(max(left, 0.0), 0.005))  # the stop wake-up may end waits early
        for _ in range(rounds):
            if reader.pending:
                self._hand_on(reader.take(self.batch_packets))
            reader.fill(0.0)
            if not reader.pending:
                return

    def _run(self) -> None:
        reader = self._reader
        first_at = 0.0
        try:
            while not self._stop.is_set():
                if reader.pending:
                    wait = max(0.0, first_at + self.batch_timeout_s - time.monotonic())
                else:
                    wait = 0.5
                had = reader.pending
                reader.fill(wait)
                now = time.monotonic()
                if reader.pending and not had:
                    first_at = now
                if reader.pending and (
                    reader.pending >= self.batch_packets
                    or reader.pending_bytes >= self.batch_bytes
                    or now - first_at >= self.batch_timeout_s
                ):
                    self._hand_on(reader.take(self.batch_packets))
            self._final_drain(reader)
        except BaseException as exc:  # noqa: BLE001 - kept for the owner, thread ends
            self.error = (exc if isinstance(exc, LiveCaptureError)
                          else LiveCaptureError(self.iface, f"capture stopped: {exc}"))
            with contextlib.suppress(Exception):  # what was read before the error still counts
                if reader.pending:
                    self._hand_on(reader.take(self.batch_packets))
        finally:
            reader.close()


class ScapyReader:
    """Frames from scapy's ``conf.L2listen`` socket (Npcap on Windows, libpcap/BPF elsewhere)."""

    def __init__(self, iface: str, bpf: str | None, snaplen: int, batch_packets: int,
                 buffer_bytes: int) -> None:
        try:
            import scapy.arch  # noqa: F401 - sets conf.L2listen for this OS
            from scapy.config import conf
            from scapy.error import Scapy_Exception
        except ImportError as exc:  # pragma: no cover - scapy is a dependency
            raise LiveCaptureError(iface, f"scapy is needed for live capture: {exc}") from exc
        self.iface, self.snaplen, self.batch_packets = iface, snaplen, batch_packets
        try:
            self.sock = conf.L2listen(iface=iface, filter=bpf)
        except PermissionError as exc:
            raise CapturePermissionError(iface, permission_message()) from exc
        except (OSError, Scapy_Exception, ValueError) as exc:
            text = str(exc)
            if sys.platform.startswith("win") and ("pcap" in text.lower() or "not available"
                                                   in text.lower()):
                raise LiveCaptureError(iface, "Npcap is not installed (or not working): install "
                                       f"it from https://npcap.com ({text})") from exc
            if bpf and "filter" in text.lower():
                raise CaptureFilterError(iface, f"invalid capture filter {bpf!r}: {text}") from exc
            if "not found" in text.lower() or "no such device" in text.lower():
                names = ", ".join(i.name for i in list_interfaces())
                raise UnknownInterfaceError(
                    iface, f"no such network adapter; adapters here: {names}") from exc
            raise LiveCaptureError(iface, f"cannot open the adapter: {text}") from exc
        ins = getattr(self.sock, "ins", None)
        if isinstance(ins, socket.socket):  # Linux and BSD: a bigger kernel buffer
            with contextlib.suppress(OSError):
                ins.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
            with contextlib.suppress(OSError):
                ins.setsockopt(socket.SOL_SOCKET, 33, buffer_bytes)  # SO_RCVBUFFORCE
        self.linktype = conf.l2types.layer2num.get(getattr(self.sock, "LL", None),
                                                   LINKTYPE_ETHERNET)
        self._frames: list[bytes] = []
        self._ts: list[float] = []
        self.pending_bytes = 0
        self._drops = 0
        self._drops_lock = threading.Lock()

    @property
    def pending(self) -> int:
        return len(self._frames)

    def fill(self, wait: float) -> None:
        """Read the frames that arrive within ``wait`` seconds (at most a batch)."""
        deadline = time.monotonic() + wait
        while len(self._frames) < self.batch_packets:
            left = max(0.0, deadline - time.monotonic())
            ready = self.sock.select([self.sock], min(left, 0.05))
            if not ready:
                if left <= 0:
                    return
                continue
            _, raw, ts = self.sock.recv_raw(self.snaplen)
            if raw is None:
                continue
            self._frames.append(raw[: self.snaplen])
            self._ts.append(float(ts) if ts is not None else time.time())
            self.pending_bytes += len(raw)
            deadline = min(deadline, time.monotonic())  # got data: drain what is ready, go

    def take(self, max_packets: int) -> list[FrameBatch]:
        """Everything pending as one batch (``fill`` never reads more than a batch)."""
        batch = FrameBatch.from_frames(self._frames, np.asarray(self._ts), self.linktype)
        self._frames, self._ts, self.pending_bytes = [], [], 0
        return [batch]

    def wake(self) -> None:
        """Nothing to do: ``fill`` returns within 50 ms."""

    def kernel_drops(self) -> int:
        """Linux: PACKET_STATISTICS of scapy's socket (reset on read, so summed here)."""
        ins = getattr(self.sock, "ins", None)
        if sys.platform.startswith("linux") and isinstance(ins, socket.socket):
            with contextlib.suppress(OSError), self._drops_lock:
                raw = ins.getsockopt(263, 6, 8)  # SOL_PACKET, PACKET_STATISTICS
                self._drops += int.from_bytes(raw[4:8], sys.byteorder)
        return self._drops

    def close(self) -> None:
        self.kernel_drops()
        with contextlib.suppress(Exception):
            self.sock.close()


__all__ = [
    "CaptureFilterError",
    "CapturePermissionError",
    "LiveCapture",
    "LiveCaptureError",
    "UnknownInterfaceError",
    "permission_message",
]

"""Live capture throughput: tcpreplay a capture into one end of a veth pair, capture the other.

Usage (root, tcpreplay installed):
  .venv/bin/python benchmarks/bench_live_capture.py [--pcap FILE] [--packets N]
      [--rates 50000,100000,200000,top] [--methods ring,socket,scapy] [--buffer-mb 4]
  .venv/bin/python benchmarks/bench_live_capture.py --timestamp-cost

Without --pcap a capture of N Ethernet frames is built from ../shared/datasets (or tests/data)
with benchmarks/make_bench_capture.py. Each run gets fresh namespaces (tests/netns.py); a
consumer thread takes batches off the queue as the engine would (without processing them).
Printed per method and rate: frames sent (tcpreplay's count), received, kernel drops, queue
drops, the rate tcpreplay achieved, the rate frames were captured at (kernel timestamps of
the first and last frame) and this process's CPU time per frame (capture + consumer
threads; tcpreplay runs in another process).
"""

from __future__ import annotations

import argparse
import re
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from make_bench_capture import build, capture_files  # noqa: E402
from netns import netns_problem, veth_namespaces  # noqa: E402

from jixiaoan.capture.live import LiveCapture  # noqa: E402
from jixiaoan.capture.queues import FrameQueue  # noqa: E402


def _drain(q: FrameQueue, stop: threading.Event, seen: list[float]) -> None:
    """Take batches as the engine would; note the count and the first and last capture time."""
    while not (stop.is_set() and len(q) == 0):
        b = q.get(timeout=0.05)
        if b is not None and len(b):
            seen[0] += len(b)
            seen[1] = min(seen[1], float(b.ts[0]))
            seen[2] = max(seen[2], float(b.ts[-1]))


def run_once(pcap: Path, method: str, rate: str, buffer_mb: int, batch_packets: int) -> dict:
    """One tcpreplay run into a fresh namespace pair, captured with ``method``."""
    with veth_namespaces(2) as net:
        for i in range(2):  # big frames in captures (TSO) must fit
            net.run(i, ["ip", "link", "set", net.ifaces[i], "mtu", "65535"], check=False)
        q = FrameQueue(max_batches=256, max_packets=1 << 20)
        cap = LiveCapture(net.ifaces[0], q, method=method, buffer_bytes=buffer_mb << 20,
                          batch_packets=batch_packets)
        with net.entered(0):
            cap.start()
        stop, seen = threading.Event(), [0, float("inf"), 0.0]
        consumer = threading.Thread(target=_drain, args=(q, stop, seen), daemon=True)
        consumer.start()
        speed = ["--topspeed"] if rate == "top" else ["--pps", rate]
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        res = net.run(1, ["tcpreplay", "-K", "-i", net.ifaces[1], *speed, str(pcap)],
                      timeout=600, check=False)
        out = res.stdout.decode() + res.stderr.decode()
        sent = int(m.group(1)) if (m := re.search(r"Actual: (\d+) packets", out)) else -1
        tc_pps = float(m.group(1)) if (m := re.search(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, "
                                                      r"([\d.]+) pps", out)) else 0.0
        last, idle_since = -1, time.monotonic()
        while time.monotonic() - idle_since < 1.0:  # wait until nothing more comes
            now = cap.counters().received
            if now != last:
                last, idle_since = now, time.monotonic()
            time.sleep(0.05)
        cap.stop()
        stop.set()
        consumer.join(5)
        wall = time.monotonic() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        c = cap.counters()
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        return {"method": method, "rate": rate, "sent": sent, "received": c.received,
                "kernel_drops": c.kernel_drops, "queue_drops": c.queue_dropped_packets,
                "consumed": seen[0], "tcpreplay_pps": tc_pps, "wall": wall, "cpu": cpu,
                "span": seen[2] - seen[1],
                "error": cap.error, "tcpreplay_rc": res.returncode,
                "tcpreplay_out": out if sent < 0 else ""}


def timestamp_cost(n: int = 100_000) -> None:
    """Per-frame cost of reading frames one system call at a time, with and without kernel
    timestamps: frames are queued in a big socket buffer first, then drained and timed."""
    import fcntl
    import socket
    import struct

    frames = [b"\xff" * 6 + b"\x02" * 6 + b"\x88\xb5" + struct.pack("!I", i) + bytes(100)
              for i in range(n)]
    print(f"per-frame read cost, {n} queued frames of 118 bytes:")
    for mode in ("recv", "recv + SIOCGSTAMP", "recvmsg + SO_TIMESTAMPNS",
                 "recvmsg + SO_TIMESTAMPNS + PACKET_AUXDATA"):
        with veth_namespaces(2) as net:
            with net.entered(0):
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
            s.setsockopt(socket.SOL_SOCKET, 33, 512 << 20)  # SO_RCVBUFFORCE
            s.bind((net.ifaces[0], 3))
            if "TIMESTAMPNS" in mode:
                s.setsockopt(socket.SOL_SOCKET, 35, 1)
            if "AUXDATA" in mode:
                s.setsockopt(263, 8, 1)
            net.send_frames(1, frames)
            time.sleep(0.5)
            s.setblocking(False)
            got, stamp, t0 = 0, bytearray(16), time.perf_counter()
            try:
                while True:
                    if mode.startswith("recvmsg"):
                        s.recvmsg(65535, 96)
                    else:
                        s.recv(65535)
                        if "SIOCGSTAMP" in mode:
                            fcntl.ioctl(s.fileno(), 0x8906, stamp)
                    got += 1
            except BlockingIOError:
                pass
            elapsed = time.perf_counter() - t0
            s.close()
            print(f"  {mode:42} {elapsed / max(got, 1) * 1e6:6.2f} us/frame ({got} frames)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pcap", type=Path, default=None)
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--rates", default="50000,100000,200000,top")
    parser.add_argument("--methods", default="ring,socket,scapy")
    parser.add_argument("--buffer-mb", type=int, default=4)
    parser.add_argument("--batch-packets", type=int, default=4096)
    parser.add_argument("--timestamp-cost", action="store_true",
                        help="only measure the per-frame cost of kernel timestamps")
    args = parser.parse_args(argv)
    problem = netns_problem()
    if problem:
        raise SystemExit(f"cannot run: {problem}")
    if args.timestamp_cost:
        timestamp_cost()
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        pcap = args.pcap
        if pcap is None:
            pcap = Path(tmp) / "bench.pcap"
            n = build(pcap, args.packets, capture_files(None))
            print(f"built {pcap.name}: {n} frames, {pcap.stat().st_size / 1e6:.1f} MB")
        print(f"buffer {args.buffer_mb} MiB, batches of up to {args.batch_packets} frames")
        print(f"{'method':7} {'rate':>7} {'sent':>8} {'received':>8} {'k-drops':>8} "
              f"{'q-drops':>8} {'sent pps':>9} {'recv pps':>9} {'cpu us/pkt':>10}")
        for method in args.methods.split(","):
            for rate in args.rates.split(","):
                r = run_once(pcap, method, rate, args.buffer_mb, args.batch_packets)
                pps = r["consumed"] / r["span"] if r["span"] > 0 else 0.0  # kernel times
                per_pkt = r["cpu"] / max(r["received"], 1) * 1e6  # capture + consumer threads
                print(f"{method:7} {rate:>7} {r['sent']:>8} {r['received']:>8} "
                      f"{r['kernel_drops']:>8} {r['queue_drops']:>8} "
                      f"{r['tcpreplay_pps']:>9.0f} {pps:>9.0f} {per_pkt:>10.2f}", flush=True)
                if r["error"] or r["tcpreplay_out"]:
                    print(f"  !! {r['error'] or ''} {r['tcpreplay_out'][-500:]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

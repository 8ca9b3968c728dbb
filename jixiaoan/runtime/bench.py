"""Live end-to-end benchmark: tcpreplay into one end of a veth pair, a MonitorSession on the
other (capture -> engine -> store -> alerts), one run per offered rate.

Reported per rate: packets sent (tcpreplay's count) and captured, drops by stage, the rate
tcpreplay achieved, the engine's throughput over the run, and the latency from each packet's
kernel capture timestamp to the commit of its row (p50/p99, PacketStore's on_commit). Needs
root, iproute2 and tcpreplay. ``run_live_bench`` is what ``jixiaoan bench --live`` calls.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from jixiaoan.capture.batch import LINKTYPE_ETHERNET
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.capture.pcapwriter import PcapWriter
from jixiaoan.config import Config
from jixiaoan.engine.offline import discover_devices
from jixiaoan.runtime.netlab import netlab_problem, veth_pair
from jixiaoan.runtime.options import MonitorOptions
from jixiaoan.runtime.session import MonitorSession

ROOT = Path(__file__).resolve().parent.parent.parent
SOURCES = (ROOT.parent / "shared" / "datasets", ROOT / "tests" / "data")
DEFAULT_MODEL = ROOT / "models" / "default"
DEFAULT_RATES = ("mbps=50", "mbps=500", "pps=100000", "top")


@dataclass
class LiveRun:
    """Figures of one offered rate."""

    rate: str
    sent: int
    captured: int
    classified: int
    stored_rows: int
    dropped_kernel: int
    dropped_queue: int
    dropped_store: int
    offered_pps: float  # what tcpreplay achieved
    offered_mbps: float
    engine_pps: float  # packets classified / seconds from the first send to the last one done
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    # CPU seconds over the run, by process (2 cores give 2 CPU-seconds per wall second)
    wall_s: float = 0.0
    cpu_monitor_s: float = 0.0  # capture + engine threads (the monitor's own process)
    cpu_tcpreplay_s: float = 0.0
    cpu_store_s: float = 0.0  # the store's child process, same span (0 when in the monitor)

    @property
    def lost(self) -> int:
        """Packets sent but not classified."""
        return self.sent - self.classified

    def line(self) -> str:
        """One printed line."""
        return (
            f"{self.rate:>11}: sent {self.sent:>8,} captured {self.captured:>8,} "
            f"classified {self.classified:>8,} lost {self.lost:>7,} "
            f"(kernel {self.dropped_kernel:,}, queue {self.dropped_queue:,}, "
            f"store {self.dropped_store:,})  offered {self.offered_pps:>9,.0f} pkt/s "
            f"{self.offered_mbps:6.1f} Mb/s  engine {self.engine_pps:>9,.0f} pkt/s  "
            f"latency p50 {self.latency_p50_ms:6.1f} ms p99 {self.latency_p99_ms:6.1f} ms "
            f"max {self.latency_max_ms:6.1f} ms  CPU s: monitor {self.cpu_monitor_s:.1f} "
            f"tcpreplay {self.cpu_tcpreplay_s:.1f} store {self.cpu_store_s:.1f} "
            f"in {self.wall_s:.1f} s"
        )


def build_capture(path: Path, n_packets: int, max_frame: int = 9000) -> int:
    """A pcap of about ``n_packets`` real Ethernet frames: the corpus (else tests/data)
    concatenated and repeated, each file shifted in time to follow the previous one."""
    files: list[Path] = []
    for folder in SOURCES:
        if folder.is_dir():
            files = sorted(p for p in folder.rglob("*") if p.suffix in (".pcap", ".pcapng"))
            if files:
                break
    written, clock = 0, 0.0
    with PcapWriter(str(path), linktype=LINKTYPE_ETHERNET) as out:
        while written < n_packets:
            before = written
            for f in files:
                try:
                    batches = list(read_capture(str(f), batch_size=65536))
                except Exception:  # noqa: BLE001 - damaged corpus files are skipped
                    continue
                for b in batches:
                    keep = (b.linktype == LINKTYPE_ETHERNET) & (b.caplen <= max_frame)
                    if not keep.any():
                        continue
                    b = b.take(keep)
                    ts = b.ts - b.ts.min()
                    b.ts = clock + ts.clip(0, 1.0)
                    clock = float(b.ts.max()) + 1e-4
                    out.write(b)
                    written += len(b)
                if written >= n_packets:
                    break
            if written == before:
                raise RuntimeError("no Ethernet capture found to build the benchmark capture")
    return written


def _tcpreplay_args(rate: str) -> list[str]:
    """tcpreplay's pacing options; ``--timer=nano`` sleeps instead of spinning (the default
    timer burns ~60% of a core at 50 Mb/s, which the monitor needs on a two-core machine)."""
    kind, _, value = rate.partition("=")
    if kind == "mbps":
        return [f"--mbps={float(value)}", "--timer=nano"]
    if kind == "pps":
        return [f"--pps={int(float(value))}", "--timer=nano"]
    if kind == "top":
        return ["--topspeed"]
    raise ValueError(f"rate {rate!r}: use mbps=X, pps=X or top")


def _number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    return float(m.group(1).replace(",", "")) if m else 0.0


def _settle(session: MonitorSession, limit_s: float = 120.0) -> None:
    """Wait until the engine took everything captured and the capture count stopped moving."""
    end, last, still = time.monotonic() + limit_s, -1, 0
    while time.monotonic() < end:
        s = session.status()
        done = s.received + s.dropped_queue >= s.captured and s.queue_depth == 0
        still = still + 1 if (done and s.captured == last) else 0
        if still >= 5:
            return
        last = s.captured
        time.sleep(0.1)


def replay_capacity(capture: Path, devices, model_dir: str | None, tmp: Path,
                    store_process: bool = True) -> tuple[int, float]:
    """Packets per second the whole pipeline sustains without a network: the capture
    replayed as fast as the engine takes it (lossless), until every row is committed."""
    opts = MonitorOptions(replay=str(capture), speed=0, devices=devices,
                          db_path=str(tmp / "capacity.sqlite3"), model_dir=model_dir,
                          store_process=store_process)
    session = MonitorSession(Config(), opts)
    session.warm_up()  # compiled kernels and the model's first call are not throughput
    opts.warm_up = False
    t0 = time.monotonic()
    session.start()
    try:
        session.wait_finished(timeout=600)
    finally:
        session.stop()  # flushes: every row is committed when it returns
    elapsed = time.monotonic() - t0
    n = session.status().classified
    return n, n / elapsed if elapsed > 0 else 0.0


def run_rate(pair, capture: Path, rate: str, devices, model_dir: str | None, tmp: Path,
             packets: int, buffer_mb: float, store_process: bool = True,
             tuning: dict | None = None) -> LiveRun:
    """One MonitorSession on ``pair`` end 0 while tcpreplay sends ``capture`` from end 1.
    ``tuning`` overrides MonitorOptions fields (e.g. ``max_wait_s``)."""
    opts = MonitorOptions(
        iface=pair.ifaces[0], devices=devices, db_path=str(tmp / f"{rate}.sqlite3"),
        model_dir=model_dir, capture_buffer_bytes=int(buffer_mb * 1024 * 1024),
        store_process=store_process, **(tuning or {}),
    )
    session = MonitorSession(Config(), opts)
    with pair.entered(0):
        session.start()
    try:
        time.sleep(0.3)
        store_pid = getattr(session.store, "pid", None)
        t0, self0, kids0 = time.monotonic(), _cpu(resource.RUSAGE_SELF), _cpu_children()
        store0 = _proc_cpu(store_pid)
        res = pair.run(1, ["tcpreplay", "-i", pair.ifaces[1], f"--limit={packets}",
                           *_tcpreplay_args(rate), str(capture)])
        kids1 = _cpu_children()  # tcpreplay has been waited for: only it is counted here
        if res.returncode != 0:
            raise RuntimeError(f"tcpreplay failed: {res.stderr.strip()}")
        _settle(session)
        elapsed = time.monotonic() - t0
        self1, store1 = _cpu(resource.RUSAGE_SELF), _proc_cpu(store_pid)
    finally:
        session.stop()
    s = session.status()
    report = res.stdout
    return LiveRun(
        rate=rate,
        sent=int(_number(r"Successful packets:\s+([\d,]+)", report)),
        captured=s.captured,
        classified=s.classified,
        stored_rows=s.stored_rows,
        dropped_kernel=s.dropped_kernel,
        dropped_queue=s.dropped_queue,
        dropped_store=s.dropped_store,
        offered_pps=_number(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps", report),
        offered_mbps=_number(r"Rated: [\d.]+ Bps, ([\d.]+) Mbps", report),
        engine_pps=s.classified / elapsed if elapsed > 0 else 0.0,
        latency_p50_ms=session.latency.percentile(50) * 1000,
        latency_p99_ms=session.latency.percentile(99) * 1000,
        latency_max_ms=session.latency.max_s * 1000,
        wall_s=elapsed,
        cpu_monitor_s=self1 - self0,
        cpu_tcpreplay_s=kids1 - kids0,
        cpu_store_s=store1 - store0,
    )


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _cpu_children() -> float:
    """CPU seconds of the terminated, waited-for child processes so far."""
    return _cpu(resource.RUSAGE_CHILDREN)


def _proc_cpu(pid: int | None) -> float:
    """CPU seconds of a running process so far (Linux /proc; 0 when unknown)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_live_bench(
    rates: Sequence[str] = DEFAULT_RATES,
    capture: str | None = None,
    packets: int = 300_000,
    model_dir: str | None = "auto",
    buffer_mb: float = 32.0,
    max_devices: int = 64,
    store_process: bool = True,
    out: Callable[[str], None] = print,
    tuning: dict | None = None,
    capacity: bool = True,
) -> list[LiveRun]:
    """Run every rate (``mbps=X``, ``pps=X``, ``top``) and print a line each. ``model_dir``
    "auto" uses the shipped model when models/default exists, else none. The watched devices
    are the capture's ``max_devices`` most active local hosts (each stored packet costs a row
    per watched end, so this sets the store's load). ``store_process`` False keeps the store in
the monitor's process (for comparison); ``tuning`` overrides MonitorOptions fields of the live
runs; ``capacity`` False skips the no-network capacity run."""
    problem = netlab_problem() or (None if shutil.which("tcpreplay") else "tcpreplay missing")
    if problem:
        raise RuntimeError(f"live benchmark impossible here: {problem}")
    if model_dir == "auto":
        model_dir = str(DEFAULT_MODEL) if (DEFAULT_MODEL / "card.json").exists() else None
    with tempfile.TemporaryDirectory(prefix="jx-live-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if capture is None:
            path = tmp / "bench.pcap"
            n = build_capture(path, packets)
            out(f"built {path.name}: {n:,} Ethernet frames from {SOURCES[0].parent.name}")
        else:
            path = Path(capture)
        devices, _ = discover_devices(str(path), limit=max_devices)
        where = "child process" if store_process else "monitor process"
        out(f"model: {model_dir or 'none (packets stored unclassified)'}; "
            f"{len(devices)} watched devices; store in the {where}; capture {path}")
        if tuning:
            out(f"tuning: {tuning}")
        if capacity:
            n, pps = replay_capacity(path, devices, model_dir, tmp, store_process)
            out(f"pipeline capacity (file replayed as fast as it goes, no network): "
                f"{n:,} packets, {pps:,.0f} pkt/s end to end")
        runs = []
        with veth_pair() as pair:
            for rate in rates:
                run = run_rate(pair, path, rate, devices, model_dir, tmp, packets, buffer_mb,
                               store_process, tuning)
                out(run.line())
                runs.append(run)
        return runs


def as_dicts(runs: list[LiveRun]) -> list[dict]:
    """JSON-ready figures."""
    return [{**asdict(r), "lost": r.lost} for r in runs]

"""What a running monitor reports: one snapshot for the status line and the GUI."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from jixiaoan.engine.batch import Device


@dataclass(frozen=True)
class DeviceStatus:
    """One watched device's figures at the moment of the snapshot."""

    index: int
    device: Device
    packets_per_s: float
    window_packets: int
    window_share: float  # malicious share of classified packets in the alert window
    total_packets: int
    total_share: float  # malicious share since start

    @property
    def label(self) -> str:
        """The device's short name."""
        return self.device.label or f"device {self.index}"


@dataclass(frozen=True)
class MonitorStatus:
    """One consistent-enough snapshot of every stage's counters (see MonitorSession.status)."""

    source: str
    model: str  # model name, '' when running without one
    running: bool
    finished: bool  # a replay reached its end and everything was processed
    uptime_s: float
    # packets per second over the last status tick
    captured_pps: float = 0.0
    classified_pps: float = 0.0
    stored_rows_ps: float = 0.0
    # totals
    captured: int = 0  # packets read by the capture source
    received: int = 0  # packets the engine took from the queue
    classified: int = 0  # packets through the engine
    stored_rows: int = 0  # device-table rows committed (a packet of two devices counts twice)
    queue_depth: int = 0  # packets waiting for the engine now
    queue_peak: int = 0
    # drops by stage (packets)
    dropped_kernel: int = 0
    dropped_queue: int = 0
    dropped_engine: int = 0
    dropped_store: int = 0
    # alerts
    alerts_fired: int = 0
    mails_sent: int = 0
    mails_failed: int = 0
    mails_queued: int = 0
    mails_dropped: int = 0
    last_mail_error: str = ""
    # latency from capture timestamp to committed row (seconds; NaN before the first commit)
    latency_p50_s: float = math.nan
    latency_p99_s: float = math.nan
    errors: list[str] = field(default_factory=list)
    devices: list[DeviceStatus] = field(default_factory=list)
    adaptation: str = ""  # live site adaptation state, '' when not asked for

    @property
    def dropped(self) -> int:
        """Packets lost at any stage."""
        return self.dropped_kernel + self.dropped_queue + self.dropped_engine + self.dropped_store

    def line(self, max_devices: int = 4) -> str:
        """One status line for the terminal."""
        parts = [
            f"{self.uptime_s:6.0f}s",
            f"cap {self.captured_pps:,.0f}/s",
            f"eng {self.classified_pps:,.0f}/s",
            f"db {self.stored_rows_ps:,.0f} rows/s",
            f"pkts {self.classified:,}/{self.captured:,}",
            f"drops k{self.dropped_kernel}/q{self.dropped_queue}"
            f"/e{self.dropped_engine}/s{self.dropped_store}",
        ]
        if not math.isnan(self.latency_p99_s):
            parts.append(f"lat p99 {self.latency_p99_s * 1000:.0f} ms")
        mail = f"mail {self.mails_sent} ok/{self.mails_failed} failed"
        parts.append(f"alerts {self.alerts_fired} ({mail})")
        if self.adaptation:
            parts.append(self.adaptation)
        busiest = sorted(self.devices, key=lambda d: -d.packets_per_s)[:max_devices]
        for d in busiest:
            share = f" {d.window_share:.0%} bad" if self.model else ""
            parts.append(f"[{d.label} {d.packets_per_s:,.0f}/s{share}]")
        if len(self.devices) > max_devices:
            parts.append(f"+{len(self.devices) - max_devices} more")
        return "  ".join(parts)


def device_rows(snap, devices: list[Device]) -> list[DeviceStatus]:
    """One DeviceStatus per watched device from a RateTracker snapshot (zeros for devices the
    tracker has not seen yet)."""
    rows = [
        DeviceStatus(
            index=i,
            device=devices[i],
            packets_per_s=float(snap.packets_per_s[i]),
            window_packets=int(snap.window_packets[i]),
            window_share=float(snap.window_share[i]),
            total_packets=int(snap.total_packets[i]),
            total_share=float(snap.total_share[i]),
        )
        for i in range(min(len(snap), len(devices)))
    ]
    unseen = range(len(rows), len(devices))
    rows += [DeviceStatus(i, devices[i], 0.0, 0, 0.0, 0, 0.0) for i in unseen]
    return rows

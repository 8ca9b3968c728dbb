"""What a monitor run is asked to do, beyond the user's saved settings."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from jixiaoan.config import Config
from jixiaoan.engine.batch import Device
from jixiaoan.model.adapt_modes import DEFAULT_MODE
from jixiaoan.model.verdict import Detector
from jixiaoan.passwords import PasswordStore

MiB = 1024 * 1024


@dataclass
class MonitorOptions:
    """Options of one MonitorSession; ``None`` means "take the saved setting".

    Exactly one of ``iface`` (live adapter) and ``replay`` (a capture file, paced at ``speed``
    times its own timing; 0 = as fast as possible) is given. ``devices`` None discovers them:
    from the capture for a replay, from the traffic as it comes for a live adapter.
    ``model_dir`` None runs without a model (packets stored unclassified), unless a ready
    ``detector`` is passed (tests, GUI).
    """

    iface: str = ""
    replay: str = ""
    speed: float = 1.0
    devices: list[Device] | None = None
    db_path: str = ""  # '' = the configured database
    model_dir: str | None = None
    detector: Detector | None = None
    # live site adaptation (engine.site_adapter): adapt on the first this many seconds
    # (None: the saved setting, Config.adapt_after_s; 0: off)
    adapt_after_s: float | None = None
    adapt_labels: str | None = None  # labelled corpus to mix in ('' / None: the model card's)
    adapt_out: str | None = None  # save the site model here
    adapt_mode: str = DEFAULT_MODE  # eset_adapt: gate (site baseline gate), retrain or both
    # alert rule overrides
    threshold: float | None = None
    clear_threshold: float | None = None
    min_packets: int | None = None
    window_s: float | None = None
    cooldown_s: float | None = None
    email: bool | None = None
    # capture and queues
    bpf: str | None = None
    capture_batch_packets: int | None = None
    # latency: a ring block is handed over after 5 ms and the worker waits at most 5 ms more for
    # company (under load batches grow by themselves: it takes whatever has queued up)
    capture_batch_timeout_s: float = 0.005
    capture_buffer_bytes: int = 32 * MiB  # kernel ring: rides out engine stalls of ~1 s
    capture_method: str = "auto"
    queue_batches: int | None = None
    queue_packets: int = 262_144
    queue_bytes: int = 128 * MiB  # captured bytes waiting: bounds memory for full-size frames
    max_batch_packets: int = 16384
    max_wait_s: float = 0.005
    store_queue_batches: int = 64
    store_process: bool = True  # write the database from a child process (own core, own GIL)
    max_devices: int = 64
    tick_s: float = 1.0
    warm_up: bool = True  # run the engine once on synthetic packets before capturing
    mail_stop_timeout_s: float = 2.0
    password_store: PasswordStore | None = None


def alert_config(cfg: Config, options: MonitorOptions) -> Config:
    """A copy of ``cfg`` with the options' alert overrides applied (clear level capped at the
    threshold)."""
    out = copy.deepcopy(cfg)
    a = out.alerts
    for name in ("threshold", "clear_threshold", "min_packets", "window_s", "cooldown_s", "email"):
        value = getattr(options, name)
        if value is not None:
            setattr(a, name, value)
    if not 0.0 <= a.threshold <= 1.0:
        raise ValueError(f"threshold {a.threshold} is not a share between 0 and 1")
    if a.window_s <= 0:
        raise ValueError("the alert window must be longer than 0 s")
    a.clear_threshold = min(a.clear_threshold, a.threshold)
    return out

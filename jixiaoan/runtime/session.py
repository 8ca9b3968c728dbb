"""MonitorSession: one running monitor (live adapter or replayed capture), headless.

It owns every stage and wires them the way ARCHITECTURE.md draws them::

    LiveCapture | ReplaySource ──► FrameQueue ──► InferenceWorker (Engine) ──► sinks:
        PacketStore.submit (its own writer thread)   Alerting.feed (rates, policy, mailer)

plus a 1 s timer thread that re-evaluates the alert policy (so a device that fell silent
re-arms) and samples the counters for the per-second rates. The command line and the GUI drive
the same object: ``start()``, ``status()`` once a second, ``add_alert_callback`` for popups,
``stop()``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from jixiaoan.alerts.mailer import MailerStats
from jixiaoan.alerts.policy import AlertEvent
from jixiaoan.alerts.setup import Alerting
from jixiaoan.capture.queues import FrameQueue
from jixiaoan.config import Config
from jixiaoan.engine.batch import ClassifiedBatch, Device
from jixiaoan.engine.live import InferenceWorker
from jixiaoan.engine.offline import discover_devices
from jixiaoan.engine.pipeline import Engine
from jixiaoan.engine.site_adapter import LEARNING_STATES
from jixiaoan.runtime.discovery import LiveDiscovery
from jixiaoan.runtime.engine_setup import live_adapter, load_model, warm_up_frames
from jixiaoan.runtime.latency import LatencyRecorder
from jixiaoan.runtime.options import MonitorOptions, alert_config
from jixiaoan.runtime.status import MonitorStatus, device_rows
from jixiaoan.runtime.store_process import open_monitor_store

log = logging.getLogger(__name__)


class MonitorSession:
    """Capture + engine + storage + alerts for one adapter or one replayed capture.

    Building it opens the store, loads the model and registers the devices; ``start()`` starts
    the threads. Raises ``ValueError`` for bad options and the capture's ``LiveCaptureError``
    from ``start()`` (with an actionable message).
    """

    def __init__(self, cfg: Config, options: MonitorOptions) -> None:
        if bool(options.iface) == bool(options.replay):
            raise ValueError("give either an interface or a capture to replay")
        self.options = options
        self.cfg = alert_config(cfg, options)
        self.detector = options.detector or load_model(options.model_dir)
        self.model_name = str(getattr(self.detector, "name", "")) if self.detector else ""
        self.source_name = (
            f"replay {options.replay}" if options.replay else f"iface {options.iface}"
        )
        self._discover = False
        devices = self._initial_devices()
        self.adapter = live_adapter(self.detector, options, self.cfg.adapt_after_s)
        self.engine = Engine(devices, self.detector, adapter=self.adapter)
        self.queue = FrameQueue(
            max_batches=options.queue_batches or self.cfg.capture.queue_size,
            max_packets=options.queue_packets,
            max_bytes=options.queue_bytes,
        )
        self.latency = LatencyRecorder()
        self.store = open_monitor_store(self.cfg, options, self.model_name, self.latency.committed)
        self.alerting: Alerting | None = None
        try:
            for dev in devices:
                self.store.register_device(dev)
            self.alerting = Alerting(self.cfg, len(devices), options.password_store)
        except BaseException:
            self._close_quietly()
            raise
        self.recent_alerts: deque[AlertEvent] = deque(maxlen=100)
        self.alerting.monitor.add_callback(self.recent_alerts.append)
        sinks: list[Callable[[ClassifiedBatch], None]] = [self._store_sink, self._alert_sink]
        if self._discover:
            sinks.insert(0, LiveDiscovery(self.engine, self._register_new, options.max_devices))
        self.worker = InferenceWorker(
            self.engine, self.queue, sinks, options.max_batch_packets, options.max_wait_s
        )
        self.source = None
        self._lock = threading.Lock()
        self._clock = (float("-inf"), 0.0)  # (latest capture time fed to alerts, monotonic then)
        self._alerts_were_held = False
        self._ticker: threading.Thread | None = None
        self._stop_tick = threading.Event()
        self._started_at = 0.0
        self._rates = (0.0, 0.0, 0.0)
        self._sample: tuple[float, int, int, int] | None = None
        self._stopped = False
        self.tick_callbacks: list[Callable[[], None]] = []
        self._final_mail: MailerStats | None = None

    # ---- building ---------------------------------------------------------------------------

    def _initial_devices(self) -> list[Device]:
        opts = self.options
        if opts.devices is not None:
            devices = [copy.copy(d) for d in opts.devices]
        elif opts.replay:
            devices, error = discover_devices(opts.replay, limit=opts.max_devices)
            if error:
                log.warning("device discovery stopped early: %s", error)
        else:
            self._discover = True
            devices = []
        for dev in devices:
            if not dev.name and dev.mac:
                dev.name = self.cfg.device_name(dev.mac)
        return devices

    def _make_source(self):
        opts = self.options
        if opts.replay:
            from jixiaoan.capture.replay import ReplaySource

            fastest = opts.speed <= 0
            return ReplaySource(
                opts.replay,
                self.queue,
                speed=None if fastest else opts.speed,
                batch_packets=opts.capture_batch_packets or self.cfg.capture.batch_size,
                batch_timeout_s=opts.capture_batch_timeout_s,
                block=fastest,  # as fast as the engine goes; a paced replay drops like live
                close_queue=True,
            )
        from jixiaoan.capture.live import LiveCapture

        return LiveCapture(
            opts.iface,
            self.queue,
            bpf=opts.bpf if opts.bpf is not None else (self.cfg.capture.bpf_filter or None),
            buffer_bytes=opts.capture_buffer_bytes,
            batch_packets=opts.capture_batch_packets or self.cfg.capture.batch_size,
            batch_timeout_s=opts.capture_batch_timeout_s,
            method=opts.capture_method,
        )

    # ---- life cycle -------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Run the engine once on a few synthetic packets, then forget them, so that loading
        compiled kernels (and the model's first call) does not stall the first live batch."""
        t0 = time.perf_counter()
        adapter, self.engine.adapter = self.engine.adapter, None  # not site traffic
        try:
            self.engine.process(warm_up_frames())
        finally:
            self.engine.adapter = adapter
        self.engine.reset()
        log.debug("engine warmed up in %.2f s", time.perf_counter() - t0)

    def start(self) -> MonitorSession:
        """Warm the engine up, open the capture (errors raise here), start the worker and the
        timer."""
        if self._stopped or self.source is not None:
            raise RuntimeError("a MonitorSession starts once; make a new one")
        if self.options.warm_up:
            self.warm_up()
        self.source = self._make_source()
        try:
            self.source.start()
        except BaseException:
            self.source = None
            self.stop()
            raise
        self._started_at = time.monotonic()
        self._sample = (self._started_at, 0, 0, 0)  # the first tick measures from here
        self.worker.start()
        self._ticker = threading.Thread(target=self._tick_loop, name="jixiaoan-tick", daemon=True)
        self._ticker.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the capture, drain the engine, flush and close the store, stop the mailer.
        Idempotent; safe to call from a Ctrl-C handler's ``finally``."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._stop_tick.set()
        if self.source is not None:
            with contextlib.suppress(Exception):
                self.source.stop()
        self.queue.close()
        if not self.worker.stop(timeout):
            log.warning("the engine did not finish the queued packets within %.0f s", timeout)
        if self._ticker is not None:
            self._ticker.join(timeout)
        if self.alerting is not None and self.alerting.tracker.now > float("-inf"):
            with contextlib.suppress(Exception):
                self.alerting.monitor.evaluate()  # the last batches' verdicts
        self._close_quietly(timeout)

    def _close_quietly(self, timeout: float = 30.0) -> None:
        try:
            if not self.store.flush(timeout):
                log.warning("the store did not commit everything within %.0f s", timeout)
        finally:
            self.store.close(timeout)
            if self.alerting is not None:
                mailer = self.alerting.mailer
                if mailer is not None:
                    mailer.stop(timeout=self.options.mail_stop_timeout_s)
                    self._final_mail = mailer.stats()
                self.alerting.close()

    def __enter__(self) -> MonitorSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def source_finished(self) -> bool:
        """True when the source ended by itself (replay done, or the capture failed)."""
        src = self.source
        return src is not None and not bool(getattr(src, "running", True))

    @property
    def finished(self) -> bool:
        """True when the source ended and the engine processed everything it had queued."""
        if not self.source_finished:
            return False
        q = self.queue.counters()
        w = self.worker.counters()
        return q.depth_packets == 0 and w.received == w.classified + w.engine_dropped

    def wait_finished(self, timeout: float | None = None, poll_s: float = 0.05) -> bool:
        """Wait until ``finished`` (a replay ran out); False on timeout."""
        end = None if timeout is None else time.monotonic() + timeout
        while not self.finished:
            if end is not None and time.monotonic() >= end:
                return False
            time.sleep(poll_s)
        return True

    def mail_stats(self) -> MailerStats:
        """The e-mail sender's counters (kept after stop; all zero when mail is off)."""
        mailer = self.alerting.mailer if self.alerting is not None else None
        if mailer is not None:
            return mailer.stats()
        return self._final_mail or MailerStats()

    def add_alert_callback(self, callback: Callable[[AlertEvent], None]) -> None:
        """Call ``callback(event)`` for every alert (on the engine or timer thread)."""
        assert self.alerting is not None
        self.alerting.monitor.add_callback(callback)

    def remove_alert_callback(self, callback: Callable[[AlertEvent], None]) -> None:
        """Stop calling ``callback``."""
        assert self.alerting is not None
        self.alerting.monitor.remove_callback(callback)

    def apply_config(self, cfg: Config) -> None:
        """Use changed alert / e-mail settings (the GUI's settings dialog)."""
        self.cfg = alert_config(cfg, self.options)
        assert self.alerting is not None
        self.alerting.apply(self.cfg)

    # ---- sinks (engine worker thread) -------------------------------------------------------

    def _store_sink(self, batch: ClassifiedBatch) -> None:
        # latency is measured for live capture only: a replay keeps the file's old times
        token = None if self.options.replay else self.latency.expect(batch)
        if not self.store.submit(batch):
            self.latency.cancel(token)

    def alerts_held(self) -> bool:
        """True while the model is still learning the site (``adapt_after_s``): verdicts are
        stored but raise no alert until the site model takes over, whose verdicts then start
        the alert windows afresh. A failed adaptation releases them (the original model goes
        on alone)."""
        adapter = self.adapter
        return adapter is not None and adapter.state in LEARNING_STATES

    def _alert_sink(self, batch: ClassifiedBatch) -> None:
        assert self.alerting is not None
        monitor = self.alerting.monitor
        held = self.alerts_held()
        if self._alerts_were_held and not held:
            monitor.tracker.reset()  # the learning period's verdicts never count
        self._alerts_were_held = held
        monitor.observe(batch)
        if not held and monitor.tracker.now > float("-inf"):  # and a watched device was seen
            monitor.evaluate()
        if len(batch):  # the capture clock: the newest packet's time, watched or not
            latest = max(float(batch.headers.ts[-1]), float(monitor.tracker.now))
            with self._lock:
                self._clock = (latest, time.monotonic())

    def _register_new(self, dev: Device) -> None:
        if not dev.name and dev.mac:
            dev.name = self.cfg.device_name(dev.mac)
        self.store.register_device(dev)

    # ---- timer ------------------------------------------------------------------------------

    def _capture_now(self) -> float | None:
        """The capture clock now: the latest capture time seen, advanced by the wall time
        since (scaled by the replay speed)."""
        with self._lock:
            last_ts, at = self._clock
        if last_ts == float("-inf"):
            return None
        speed = self.options.speed if self.options.replay and self.options.speed > 0 else 1.0
        return last_ts + (time.monotonic() - at) * speed

    def _tick_loop(self) -> None:
        tick = self.options.tick_s
        while not self._stop_tick.wait(tick):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the timer must keep running
                log.exception("monitor tick failed")

    def tick(self) -> None:
        """One timer step: re-evaluate the alert policy at the capture clock, sample rates."""
        now = self._capture_now()
        if now is not None and self.alerting is not None and not self.alerts_held():
            self.alerting.monitor.evaluate(now)
        mono = time.monotonic()
        captured = self._capture_counters()[0]
        w, s = self.worker.counters(), self.store.counters()
        sample = (mono, captured, w.classified, s.rows_stored)
        with self._lock:
            prev, self._sample = self._sample, sample
            if prev is not None and mono > prev[0]:
                dt = mono - prev[0]
                self._rates = tuple((sample[k] - prev[k]) / dt for k in (1, 2, 3))
        for callback in list(self.tick_callbacks):
            callback()

    def _capture_counters(self) -> tuple[int, int]:
        """Packets the source read and the kernel dropped (0, 0 before start)."""
        src = self.source
        if src is None:
            return 0, 0
        try:
            c = src.counters()
        except Exception:  # noqa: BLE001
            return 0, 0
        return int(getattr(c, "received", 0)), int(getattr(c, "kernel_drops", 0))

    # ---- status -----------------------------------------------------------------------------

    def status(self) -> MonitorStatus:
        """One snapshot of every counter (see MonitorStatus)."""
        assert self.alerting is not None
        captured, kernel = self._capture_counters()
        q, w, s = self.queue.counters(), self.worker.counters(), self.store.counters()
        mail = self.mail_stats()
        snap = self.alerting.tracker.snapshot(self._capture_now())
        rows = device_rows(snap, list(self.engine.devices))
        adapter_error = self.adapter.error if self.adapter is not None else ""
        errors = [e for e in (w.last_error, s.last_error, adapter_error) if e]
        src_error = getattr(self.source, "error", None)
        if src_error is not None:
            errors.insert(0, str(src_error))
        with self._lock:
            rates = self._rates
        return MonitorStatus(
            source=self.source_name,
            model=self.model_name,
            running=self.worker.running and not self._stopped,
            finished=self.finished,
            uptime_s=time.monotonic() - self._started_at if self._started_at else 0.0,
            captured_pps=rates[0],
            classified_pps=rates[1],
            stored_rows_ps=rates[2],
            captured=captured,
            received=w.received,
            classified=w.classified,
            stored_rows=s.rows_stored,
            queue_depth=q.depth_packets,
            queue_peak=q.peak_packets,
            dropped_kernel=kernel,
            dropped_queue=q.dropped_packets,
            dropped_engine=w.engine_dropped,
            dropped_store=s.packets_dropped,
            alerts_fired=self.alerting.monitor.alerts_fired,
            mails_sent=mail.sent,
            mails_failed=mail.failed,
            mails_queued=mail.queued,
            mails_dropped=mail.dropped,
            last_mail_error=mail.last_error,
            latency_p50_s=self.latency.percentile(50),
            latency_p99_s=self.latency.percentile(99),
            errors=errors,
            devices=rows,
            adaptation=self.adapter.describe() if self.adapter is not None else "",
        )

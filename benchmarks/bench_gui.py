"""GUI responsiveness during a replay: event-loop latency and memory.

A QTimer at 10 ms measures its own lateness on the GUI thread while the monitor window shows a
MonitorSession replaying a capture as fast as it can (speed 0). Prints packets/s through the
pipeline, the timer's lateness (p50, p99, max, count over 50 ms) and the process's RSS.

    .venv/bin/python benchmarks/bench_gui.py [--pcap FILE] [--model DIR] [--seconds 60]

Default capture: the bundled demo (assets/demo/*.pcap); default model: models/default when
present. Runs offscreen unless DISPLAY is set.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def rss_mib() -> float:
    """Resident memory of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pcap", help="capture to replay (default: the bundled demo)")
    p.add_argument("--model", help="model folder (default: models/default when present)")
    p.add_argument("--no-model", action="store_true", help="replay without classification")
    p.add_argument("--seconds", type=float, default=120.0, help="stop after this long")
    p.add_argument("--interval-ms", type=int, default=10, help="probe timer interval")
    p.add_argument("--switch-ms", type=float, default=None,
                   help="sys.setswitchinterval for this run (default: what the app sets)")
    p.add_argument("--idle", action="store_true",
                   help="no replay: the probe alone for --seconds (the machine's own noise)")
    p.add_argument("--profile", action="store_true",
                   help="print where the GUI thread's handlers spend their time")
    p.add_argument("--malicious-view", action="store_true",
                   help="keep the all-malicious view on screen (default: the busiest device tab)")
    p.add_argument("--handlers", action="store_true",
                   help="time every poll/status handler (wall and thread CPU), print the longest")
    args = p.parse_args(argv)
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt5.QtCore import QElapsedTimer, QTimer
    from PyQt5.QtWidgets import QApplication

    from jixiaoan.config import Config
    from jixiaoan.runtime.options import MonitorOptions
    from jixiaoan.ui.app import bundled_model, demo_capture
    from jixiaoan.ui.monitor import MonitorWindow

    pcap = args.pcap or (str(demo_capture()) if demo_capture() else None)
    if not pcap:
        print("no capture: pass --pcap (the bundled demo is missing)", file=sys.stderr)
        return 2
    model = None if args.no_model else (args.model or (
        str(bundled_model()) if bundled_model() else None))
    from jixiaoan.ui.app import tune_interpreter

    tune_interpreter()
    if args.switch_ms is not None:
        sys.setswitchinterval(args.switch_ms / 1000.0)
    app = QApplication.instance() or QApplication(["bench_gui"])
    cfg = Config()
    cfg.alerts.popup = True
    window = MonitorWindow(cfg)
    window.resize(1280, 800)
    window.show()
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        def profiled(fn):
            def wrapped(*a):
                profiler.enable()
                try:
                    return fn(*a)
                finally:
                    profiler.disable()
            return wrapped

        for name in ("on_poll", "_refresh_status"):
            setattr(window, name, profiled(getattr(window, name)))
        window.status_timer.timeout.disconnect()
        window.status_timer.timeout.connect(window._refresh_status)
    handler_log: list[tuple[float, str, float, float]] = []
    if args.handlers:
        def timed(name, fn):
            def wrapped(*a):
                w0, c0 = time.perf_counter(), time.thread_time()
                try:
                    return fn(*a)
                finally:
                    handler_log.append((w0, name, (time.perf_counter() - w0) * 1000,
                                        (time.thread_time() - c0) * 1000))
            return wrapped

        for name in ("on_poll", "_refresh_status"):
            setattr(window, name, timed(name, getattr(window, name)))
        window.status_timer.timeout.disconnect()
        window.status_timer.timeout.connect(window._refresh_status)
    rss0 = rss_mib()
    lateness: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    clock_zero = time.perf_counter()
    expected = [clock.nsecsElapsed()]
    probe = QTimer()
    probe.setTimerType(0)  # Qt.PreciseTimer

    def tick() -> None:
        now = clock.nsecsElapsed()
        late = max(0.0, (now - expected[0]) / 1e6 - args.interval_ms)
        lateness.append(late)
        if late > 50:
            stalls.append((now / 1e9, late))
        expected[0] = now

    probe.timeout.connect(tick)
    rss_peak = [rss0]
    stalls: list[tuple[float, float]] = []
    state = {"t0": None, "t1": None, "status": None}

    def watch() -> None:
        rss_peak[0] = max(rss_peak[0], rss_mib())
        if not args.malicious_view and window.device_tabs and not state.get("shown"):
            # a user looks at one device: the busiest one seen so far is brought on screen
            tab = max(window.device_tabs.values(), key=lambda t: t.info.rows_total)
            t_switch = time.perf_counter()
            window.tabs.setCurrentWidget(tab)
            state["switch_ms"] = (time.perf_counter() - t_switch) * 1000
            state["shown"] = tab.info.name or tab.info.ip
        st = window.controller.status()
        if st is not None:
            state["status"] = st
            if state["t0"] is None and st.captured:
                state["t0"] = time.monotonic()
            if st.finished and state["t1"] is None:
                state["t1"] = time.monotonic()
                QTimer.singleShot(3000, app.quit)  # the last commits reach the tables

    watcher = QTimer()
    watcher.timeout.connect(watch)
    watcher.start(200)
    QTimer.singleShot(int(args.seconds * 1000), app.quit)
    options = MonitorOptions(replay=pcap, speed=0.0, model_dir=model)
    start = time.monotonic()
    cpu0, gui_cpu0 = time.process_time(), time.thread_time()
    if not args.idle:
        window.start_monitoring(options)
    probe.start(args.interval_ms)
    app.exec_()
    probe.stop()
    cpu, gui_cpu = time.process_time() - cpu0, time.thread_time() - gui_cpu0
    run_wall = time.monotonic() - start
    st = state["status"]
    wall = (state["t1"] or time.monotonic()) - start
    window.shutdown()
    lat = np.asarray(lateness[5:] or [0.0])
    packets = st.classified if st else 0
    print(f"capture: {pcap}; GIL switch interval {sys.getswitchinterval() * 1000:g} ms")
    print(f"model: {model or 'none'}; finished: {bool(st and st.finished)}")
    flow = (state["t1"] or time.monotonic()) - (state["t0"] or start)
    print(f"packets classified: {packets:,} in {wall:.2f} s wall (start to finished) "
          f"= {packets / wall if wall > 0 else 0:,.0f} pkt/s; from the first packet captured "
          f"{packets / flow if flow > 0 else 0:,.0f} pkt/s; rows stored "
          f"{st.stored_rows if st else 0:,}; drops {st.dropped if st else 0:,}")
    switch = state.get("switch_ms")
    print(f"on screen: {state.get('shown') or 'the all-malicious view'}"
          + (f" (switching to it took {switch:.0f} ms)" if switch is not None else ""))
    print(f"GUI timer ({args.interval_ms} ms) lateness over {len(lat):,} ticks: "
          f"p50 {np.percentile(lat, 50):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms, "
          f"max {lat.max():.1f} ms, ticks late > 50 ms: {(lat > 50).sum()}")
    worst = sorted(stalls, key=lambda x: -x[1])[:5]
    print("worst stalls (s after start: ms): "
          + ", ".join(f"{t:.2f}: {ms:.0f}" for t, ms in sorted(worst)))
    print(f"GUI process CPU {cpu:.1f} s over {run_wall:.1f} s wall ({cpu / run_wall:.0%} of one "
          f"core; the monitor itself runs in a child process), of which the GUI thread "
          f"{gui_cpu:.1f} s ({gui_cpu / run_wall:.0%})")
    print(f"RSS (GUI process): start {rss0:.0f} MiB, peak {rss_peak[0]:.0f} MiB, "
          f"end {rss_mib():.0f} MiB")
    rows = {t: tab.model.rowCount() for t, tab in window.device_tabs.items()}
    print(f"device tabs: {len(rows)}, rows held: {sum(rows.values()):,} "
          f"(+{window.malicious_model.rowCount():,} malicious view)")
    if handler_log:
        walls = np.asarray([h[2] for h in handler_log])
        print(f"handlers: {len(walls)} calls, wall p50 {np.percentile(walls, 50):.1f} ms, "
              f"p99 {np.percentile(walls, 99):.1f} ms, max {walls.max():.1f} ms; longest "
              "(s after start, name, wall ms / thread-CPU ms):")
        for w0, name, ms, cpu_ms in sorted(handler_log, key=lambda h: -h[2])[:8]:
            print(f"  {w0 - clock_zero:7.2f} {name:16s} {ms:6.1f} / {cpu_ms:6.1f}")
    if profiler is not None:
        import pstats

        pstats.Stats(profiler).sort_stats("cumtime").print_stats(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())

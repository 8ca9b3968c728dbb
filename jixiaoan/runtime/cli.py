"""``jixiaoan monitor``: watch an adapter (or replay a capture) with a status line per second.

Registered by ``jixiaoan.cli`` with ``add_monitor_parser(subparsers)``. Ctrl-C (or SIGTERM)
stops the capture, lets the engine finish what it holds, flushes the database and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from jixiaoan.model.adapt_modes import ADAPT_MODE_HELP, ADAPT_MODES, DEFAULT_MODE

if TYPE_CHECKING:  # the real imports are deferred: `jixiaoan --help` must stay quick
    from jixiaoan.alerts.policy import AlertEvent
    from jixiaoan.engine.batch import Device

DEFAULT_MODEL = Path(__file__).resolve().parent.parent.parent / "models" / "default"


def add_monitor_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``monitor`` subcommand to an ``argparse`` subparsers object."""
    s = subparsers.add_parser(
        "monitor", help="watch a network adapter live (or replay a capture) and raise alerts"
    )
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--iface", help="network adapter to capture on")
    src.add_argument("--replay", metavar="CAPTURE", help="replay this pcap/pcapng instead")
    s.add_argument("--speed", type=float, default=1.0,
                   help="replay pace, times the original (0: as fast as possible)")
    s.add_argument("--device", action="append", metavar="MAC_OR_IP",
                   help="MAC, IP or MAC,IP[,NAME]; repeatable (default: discover)")
    s.add_argument("--db", help="SQLite file to write (default: the configured one)")
    model = s.add_mutually_exclusive_group()
    model.add_argument("--model", metavar="DIR", help="model directory (default: the shipped one)")
    model.add_argument("--no-model", action="store_true", help="store packets unclassified")
    s.add_argument("--threshold", type=float, help="alert when a device's malicious share "
                   "reaches this (0..1)")
    s.add_argument("--min-packets", type=int, help="classified packets needed in the window")
    s.add_argument("--window", type=float, help="alert window, seconds")
    s.add_argument("--cooldown", type=float, help="seconds between alerts of one device")
    s.add_argument("--email", action=argparse.BooleanOptionalAction, default=None,
                   help="send alert e-mails (default: the saved setting)")
    s.add_argument("--bpf", help="capture filter (tcpdump syntax)")
    s.add_argument("--adapt-after", type=float, metavar="SECONDS",
                   help="adapt the model to this network on its first SECONDS of traffic, in "
                   "the background, and switch to the site model when it is ready "
                   "(0: off; default: the saved setting)")
    s.add_argument("--adapt-labels", metavar="CSV", help="labelled corpus mixed into the "
                   "adaptation (default: the one named in the model card, if present)")
    s.add_argument("--adapt-out", metavar="DIR", help="also save the site model here")
    s.add_argument("--adapt-mode", choices=ADAPT_MODES, default=DEFAULT_MODE, help=ADAPT_MODE_HELP)
    s.add_argument("--config", help="settings file (default: the user's config.json)")
    s.add_argument("--duration", type=float, help="stop after this many seconds")
    s.add_argument("--interval", type=float, default=1.0, help="seconds between status lines")
    s.set_defaults(func=cmd_monitor)
    return s


def _user_error(message: str) -> int:
    print(f"jixiaoan monitor: {message}", file=sys.stderr)
    return 2


def _model_dir(args: argparse.Namespace) -> str | None:
    if args.no_model:
        return None
    if args.model:
        return args.model
    if (DEFAULT_MODEL / "card.json").exists():
        return str(DEFAULT_MODEL)
    print("jixiaoan monitor: no shipped model found; packets are stored unclassified",
          file=sys.stderr)
    return None


def parse_device(text: str) -> Device:
    """A ``--device`` value (see jixiaoan.engine.devices.parse_device)."""
    from jixiaoan.engine.devices import parse_device as parse

    return parse(text)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """In the main thread, SIGTERM raises KeyboardInterrupt like Ctrl-C (clean stop)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _no_interrupts():
    """Ignore Ctrl-C / SIGTERM while the session shuts down (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _print_alert(event: AlertEvent) -> None:
    print(f"ALERT {event.when} {event.summary()}", flush=True)


def cmd_monitor(args: argparse.Namespace) -> int:
    """Run the monitor until Ctrl-C, ``--duration`` or the end of a replay; 0 when it stopped
    cleanly, 1 when the capture failed on the way (damaged file, adapter gone), 2 for a
    problem the user can fix before starting."""
    from jixiaoan.config import load_config
    from jixiaoan.runtime.options import MonitorOptions
    from jixiaoan.runtime.session import MonitorSession
    from jixiaoan.storage.store import StoreError

    cfg, problems = load_config(args.config)
    for problem in problems:
        print(f"jixiaoan monitor: settings: {problem}", file=sys.stderr)
    try:
        devices = [parse_device(t) for t in args.device] if args.device else None
    except ValueError as exc:
        return _user_error(str(exc))
    options = MonitorOptions(
        iface=args.iface or "", replay=args.replay or "", speed=args.speed, devices=devices,
        db_path=args.db or "", model_dir=_model_dir(args), threshold=args.threshold,
        min_packets=args.min_packets, window_s=args.window, cooldown_s=args.cooldown,
        email=args.email, bpf=args.bpf, adapt_after_s=args.adapt_after,
        adapt_labels=args.adapt_labels, adapt_out=args.adapt_out, adapt_mode=args.adapt_mode,
    )
    if args.replay and not Path(args.replay).is_file():
        return _user_error(f"capture not found: {args.replay}")
    try:
        session = MonitorSession(cfg, options)
    except (ValueError, OSError, KeyError, StoreError) as exc:  # bad options, model or db
        return _user_error(str(exc))
    session.add_alert_callback(_print_alert)
    try:
        session.start()
    except Exception as exc:  # LiveCaptureError and friends carry an actionable message
        return _user_error(str(exc))
    names = ", ".join(d.label for d in session.engine.devices) or "discovering"
    print(f"monitoring {session.source_name}; model: {session.model_name or 'none'}; "
          f"devices: {names}; database: {session.store.path}", flush=True)
    interrupted = False
    with _sigterm_as_interrupt():
        try:
            _status_loop(session, args.duration, args.interval)
        except KeyboardInterrupt:
            interrupted = True
    with _no_interrupts():
        session.stop()
    final = session.status()
    print(final.line(), flush=True)
    print(f"{'interrupted; ' if interrupted else ''}stopped: {final.classified:,} packets "
          f"processed, {final.stored_rows:,} rows stored in {session.store.path}, "
          f"{final.dropped:,} dropped, {final.alerts_fired} alerts", flush=True)
    for problem in final.errors:
        print(f"jixiaoan monitor: {problem}", file=sys.stderr)
    source_error = getattr(session.source, "error", None)
    return 1 if source_error is not None and not interrupted else 0


def _status_loop(session, duration: float | None, interval: float) -> None:
    start = time.monotonic()
    next_line = start + interval
    while True:
        now = time.monotonic()
        if duration is not None and now - start >= duration:
            return
        if session.finished:
            return
        if now >= next_line:
            print(session.status().line(), flush=True)
            next_line += interval
        time.sleep(min(0.1, max(0.0, next_line - time.monotonic())))

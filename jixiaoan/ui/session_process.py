"""Runs the MonitorSession in a child process, so that the pipeline's Python threads never
compete with the GUI's event loop for the interpreter lock.

``ProcessSession`` has the part of MonitorSession's interface the GUI uses (``start``,
``stop``, ``status``, ``add_alert_callback``/``remove_alert_callback``, ``apply_config``,
``finished``, ``source_name``); the child builds the real session from the same Config and
MonitorOptions, writes the same store file (which the GUI reads), and sends status snapshots
(twice a second) and alert events back through a pipe. No Qt here: the child never loads it.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
STATUS_INTERVAL_S = 0.5


def _child_main(cfg: Any, options: Any, conn: Any) -> None:
    """The child process: build, start, report, obey 'stop' / 'config'."""
    import os

    from jixiaoan.runtime.session import MonitorSession

    with contextlib.suppress(AttributeError, OSError):
        os.nice(5)  # the window stays responsive under load; the pipeline has its queues
    send_lock = threading.Lock()

    def send(msg: tuple) -> None:
        with send_lock, contextlib.suppress(OSError, EOFError, BrokenPipeError):
            conn.send(msg)

    try:
        session = MonitorSession(cfg, options)
        session.add_alert_callback(lambda event: send(("alert", event)))
        session.start()
    except Exception as exc:  # noqa: BLE001 - reported to the GUI
        send(("failed", f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError | OSError)
              else str(exc)))
        return
    send(("started", session.source_name, session.model_name))
    try:
        while True:
            if conn.poll(STATUS_INTERVAL_S):
                try:
                    cmd = conn.recv()
                except (EOFError, OSError):
                    break  # the GUI is gone
                if cmd[0] == "stop":
                    break
                if cmd[0] == "config":
                    with contextlib.suppress(Exception):
                        session.apply_config(cmd[1])
            send(("status", session.status()))
    finally:
        session.stop()
        with contextlib.suppress(Exception):
            send(("status", session.status()))
        send(("stopped",))


class ProcessSession:
    """A MonitorSession in a child process (see the module docstring)."""

    def __init__(self, cfg: Any, options: Any, start_timeout_s: float = 300.0) -> None:
        if getattr(options, "detector", None) is not None:
            raise ValueError("a ready detector cannot be sent to the child process")
        self.cfg, self.options = cfg, options
        self.start_timeout_s = start_timeout_s
        self.source_name = (f"replay {options.replay}" if getattr(options, "replay", "")
                            else f"iface {getattr(options, 'iface', '')}")
        self.model_name = ""
        self._callbacks: list[Callable[[Any], None]] = []
        self._status: Any = None
        self._started = threading.Event()
        self._stopped = threading.Event()
        self._failure = ""
        self._proc: Any = None
        self._conn: Any = None
        self._reader: threading.Thread | None = None

    # -- the MonitorSession interface the GUI uses ----------------------------------------
    def add_alert_callback(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(event)`` for every alert (on this object's reader thread)."""
        self._callbacks.append(callback)

    def remove_alert_callback(self, callback: Callable[[Any], None]) -> None:
        """Stop calling ``callback``."""
        with contextlib.suppress(ValueError):
            self._callbacks.remove(callback)

    def start(self) -> ProcessSession:
        """Start the child and wait until its session runs; raises RuntimeError with the
        child's message when it cannot start."""
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._conn = parent
        # not a daemon: the session may start processes of its own (the store's)
        self._proc = ctx.Process(target=_child_main, args=(self.cfg, self.options, child),
                                 name="jixiaoan-monitor")
        self._proc.start()
        child.close()
        self._reader = threading.Thread(target=self._read, name="jixiaoan-child-reader",
                                        daemon=True)
        self._reader.start()
        end = time.monotonic() + self.start_timeout_s
        while not self._started.wait(0.1):
            if self._stopped.is_set() or time.monotonic() > end:
                self._kill()
                raise RuntimeError(self._failure or "the monitor process did not start")
        return self

    def _read(self) -> None:
        while True:
            try:
                msg = self._conn.recv()
            except (EOFError, OSError):
                break
            kind = msg[0]
            if kind == "status":
                self._status = msg[1]
            elif kind == "alert":
                for cb in list(self._callbacks):
                    try:
                        cb(msg[1])
                    except Exception:  # noqa: BLE001 - like AlertMonitor: never stop
                        log.exception("alert callback failed")
            elif kind == "started":
                self.source_name, self.model_name = msg[1], msg[2]
                self._started.set()
            elif kind == "failed":
                self._failure = msg[1]
            elif kind == "stopped":
                break
        self._stopped.set()

    def status(self) -> Any:
        """The latest snapshot from the child (None before the first)."""
        return self._status

    @property
    def finished(self) -> bool:
        """A replay reached its end (as of the latest snapshot)."""
        st = self._status
        return bool(st is not None and st.finished)

    def apply_config(self, cfg: Any) -> None:
        """Send changed alert / e-mail settings to the child's session."""
        self.cfg = cfg
        with contextlib.suppress(OSError, BrokenPipeError):
            self._conn.send(("config", cfg))

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the child to stop (drain, flush, close the store) and wait for it."""
        if self._proc is None:
            return
        with contextlib.suppress(OSError, BrokenPipeError):
            self._conn.send(("stop",))
        self._stopped.wait(timeout)
        self._proc.join(max(1.0, timeout / 3))
        self._kill()

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.is_alive():
            proc.terminate()
            proc.join(5.0)
            if proc.is_alive():
                proc.kill()
        with contextlib.suppress(Exception):
            self._conn.close()

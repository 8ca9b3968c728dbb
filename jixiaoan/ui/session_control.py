"""Starts and stops a MonitorSession off the GUI thread and brings its alerts onto it.

Building a session (device discovery of a replay, loading the model, opening the store) and
stopping it (draining the engine, flushing the store) can take seconds, so both run on a plain
worker thread; the results come back as queued Qt signals. Alert callbacks arrive on the
engine's or the timer's thread and are re-emitted through a queued signal as well.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any

from PyQt5.QtCore import QObject, Qt, pyqtSignal

from jixiaoan.config import Config

SessionFactory = Callable[[Config, Any], Any]  # (config, MonitorOptions) -> session


INPROCESS_ENV = "JIXIAOAN_GUI_INPROCESS"  # "1": run the session in the GUI process


def default_factory(cfg: Config, options: Any) -> Any:
    """The session the GUI runs: a MonitorSession in a child process (its threads then never
    hold up the event loop), or in this process when ``JIXIAOAN_GUI_INPROCESS=1`` or the
    options carry a ready detector."""
    if os.environ.get(INPROCESS_ENV) == "1" or getattr(options, "detector", None) is not None:
        from jixiaoan.runtime.session import MonitorSession

        return MonitorSession(cfg, options)
    from jixiaoan.ui.session_process import ProcessSession

    return ProcessSession(cfg, options)


def describe_start_error(exc: BaseException) -> str:
    """A message for a session that could not start: its own text, which the capture layer
    already makes actionable (rights, Npcap, unknown adapter)."""
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, ValueError | OSError) else text


class SessionController(QObject):
    """Owns at most one running session; all signals arrive on the GUI thread."""

    started = pyqtSignal(object)  # the session
    failed = pyqtSignal(str)
    stopped = pyqtSignal()
    alert = pyqtSignal(object)  # AlertEvent
    _alert_from_worker = pyqtSignal(object)

    def __init__(self, factory: SessionFactory | None = None, parent=None) -> None:
        super().__init__(parent)
        self.factory = factory or default_factory
        self.session: Any = None
        self.busy = False
        self._alert_from_worker.connect(self.alert, Qt.QueuedConnection)

    def _on_alert(self, event: Any) -> None:  # any thread
        self._alert_from_worker.emit(event)

    def start(self, cfg: Config, options: Any) -> bool:
        """Build and start a session in the background; False while another one is starting
        or stopping."""
        if self.busy:
            return False
        self.busy = True
        threading.Thread(target=self._start_worker, args=(cfg, options),
                         name="jixiaoan-ui-start", daemon=True).start()
        return True

    def _start_worker(self, cfg: Config, options: Any) -> None:
        session = None
        try:
            session = self.factory(cfg, options)
            session.add_alert_callback(self._on_alert)
            session.start()
        except Exception as exc:  # noqa: BLE001 - shown to the user
            if session is not None:
                with contextlib.suppress(Exception):
                    session.stop(timeout=5.0)
            self.busy = False
            self.failed.emit(describe_start_error(exc))
            return
        self.session = session
        self.busy = False
        self.started.emit(session)

    def stop(self, wait: bool = False) -> bool:
        """Stop the running session in the background (``wait``: on this thread, for
        shutdown); False when there is none."""
        session, self.session = self.session, None
        if session is None:
            return False
        self.busy = True

        def work() -> None:
            with contextlib.suppress(Exception):
                session.remove_alert_callback(self._on_alert)
            try:
                session.stop()
            finally:
                self.busy = False
                self.stopped.emit()

        if wait:
            work()
        else:
            threading.Thread(target=work, name="jixiaoan-ui-stop", daemon=True).start()
        return True

    def status(self) -> Any:
        """The running session's status snapshot, None when none runs."""
        session = self.session
        if session is None:
            return None
        try:
            return session.status()
        except Exception:  # noqa: BLE001 - a session in shutdown
            return None

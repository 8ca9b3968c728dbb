"""WAL checkpoints on their own thread and connection, so the writer never waits for them.

The writer's own automatic checkpoint stays on, at a high threshold, only as a safety net
should this thread fall behind.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

SAFETY_NET_PAGES = 16384  # the writer's wal_autocheckpoint (256 MiB at 16 KiB pages)


class WalCheckpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` after commits, at most every ``min_interval_s``."""

    def __init__(self, path: Path, min_interval_s: float = 0.25) -> None:
        self.path = path
        self.min_interval_s = min_interval_s
        self.checkpoints = 0
        self.last_error = ""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jixiaoan-store-ckpt", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Tell the checkpointer that a transaction was committed."""
        self._wake.set()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the thread (a last checkpoint runs when the last connection closes)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        except sqlite3.Error as exc:
            self.last_error = repr(exc)
            return
        try:
            conn.execute("PRAGMA busy_timeout=1000")
            while not self._stop.is_set():
                self._wake.wait()
                self._wake.clear()
                if self._stop.is_set():
                    break
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.checkpoints += 1
                except sqlite3.Error as exc:
                    self.last_error = repr(exc)
                self._stop.wait(self.min_interval_s)
        finally:
            conn.close()

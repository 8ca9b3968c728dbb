"""Pulls new rows and counters from the packet store on a worker thread, one signal per tick.

The GUI thread never runs SQLite: a ``StorePoller`` lives in its own QThread, wakes on a
QTimer, asks ``StoreReader`` for the rows added since the last tick (bounded: when a device is
further behind than the table window, only the newest ``window`` rows are fetched) and the row
counters, and emits one ``polled`` signal carrying a ``PollResult``. Rows are fetched only for
the tables on screen (``show_tables``); of the others only the new malicious rows are read
(for the all-malicious view), and a table coming on screen gets its newest window again.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from PyQt5.QtCore import (
    QCoreApplication,
    QMetaObject,
    QObject,
    Qt,
    QThread,
    QTimer,
    pyqtSignal,
    pyqtSlot,
)

from jixiaoan.storage.store import DeviceInfo, PacketRow, StoreError, StoreReader


class ViewRow(NamedTuple):
    """A packet row as the tables hold it: PacketRow's fields without the bytes, in a tuple
    (about a fifth of a PacketRow's memory; address strings are shared between rows)."""

    index: int
    time: float
    source: str
    dest: str
    length: int
    type: str
    is_bad: int | None
    attack: str | None
    score: float | None


class _Strings:
    """Shares equal strings between rows (addresses and protocol names repeat a lot)."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self.known: dict[str, str] = {}

    def __call__(self, text: str | None) -> str | None:
        if text is None:
            return None
        if len(self.known) >= self.limit:
            self.known.clear()
        return self.known.setdefault(text, text)


def compact(rows: list[PacketRow], share: _Strings) -> list[ViewRow]:
    """ViewRows of PacketRows."""
    return [ViewRow(r.index, r.time, share(r.source), share(r.dest), r.length, share(r.type),
                    r.is_bad, share(r.attack), r.score) for r in rows]


@dataclass
class TablePoll:
    """What changed in one device table since the previous tick."""

    device: DeviceInfo
    rows: list[ViewRow]
    skipped: int  # rows that were added but not fetched (the view was too far behind)
    reset: bool  # rows replace the view's contents (it fell behind by more than a window)
    malicious: list[ViewRow] = field(default_factory=list)  # every new malicious row, gaps too


@dataclass
class PollResult:
    """One tick of the poller: every device table's news and counters."""

    wall: float
    db: str = ""  # the store polled (results of a replaced poller are dropped)
    tables: list[TablePoll] = field(default_factory=list)
    model_name: str = ""
    error: str = ""
    # every table's new malicious rows as (device label, table, row), a packet of two watched
    # devices once, newest ``window`` only: built here so the GUI thread only shows them
    malicious: list[tuple[str, str, ViewRow]] = field(default_factory=list)


def malicious_rows(tables: list[TablePoll], limit: int) -> list[tuple[str, str, ViewRow]]:
    """The tables' new malicious rows labelled with their device, each packet once (one seen
    by two watched devices is in both tables), in table order, the last ``limit`` only."""
    out: list[tuple[str, str, ViewRow]] = []
    seen: set = set()
    for tp in tables:
        label = tp.device.name or tp.device.ip or tp.device.mac
        for r in tp.malicious:
            if r.is_bad == 1:
                key = (r.time, r.source, r.dest, r.length)
                if key not in seen:
                    seen.add(key)
                    out.append((label, tp.device.table_name, r))
    return out[-limit:] if limit > 0 else out


class StorePoller(QObject):
    """Reads the store on its own thread; see the module docstring."""

    polled = pyqtSignal(object)  # PollResult

    def __init__(self, db_path: str | Path, window: int = 5000, interval_ms: int = 250,
                 shown: set[str] | None = None) -> None:
        super().__init__()
        self.db_path = Path(db_path)
        self._shown = None if shown is None else set(shown)  # None: every table is shown
        self.window = int(window)
        self.interval_ms = int(interval_ms)
        self._reader: StoreReader | None = None
        self._last: dict[str, int] = {}
        self._timer: QTimer | None = None
        self._skip = False
        self._strings = _Strings()
        # back-pressure: no new result while the GUI has not taken the previous one
        self._taken = threading.Event()
        self._taken.set()

    @pyqtSlot()
    def start(self) -> None:
        """Start ticking (call on the poller's thread, e.g. via QThread.started)."""
        if self._timer is None:
            self._timer = QTimer(self)
            self._timer.timeout.connect(self.tick)
        self._timer.start(self.interval_ms)

    @pyqtSlot()
    def stop(self) -> None:
        """Stop ticking and close the reader's connections; on a thread of its own, end that
        thread too."""
        if self._timer is not None:
            self._timer.stop()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        app = QCoreApplication.instance()
        if app is not None and self.thread() is not app.thread():
            self.thread().quit()

    @pyqtSlot(object)
    def forget_tables(self, tables: list[str]) -> None:
        """Treat these tables as unseen: the next tick fetches their newest window again
        (the GUI had no view for them yet)."""
        for t in tables:
            self._last.pop(t, None)

    @pyqtSlot(object)
    def show_tables(self, tables: list[str] | None) -> None:
        """Fetch rows only for these tables from now on (None: all); one coming on screen
        gets its newest window at the next tick."""
        old = self._shown
        self._shown = None if tables is None else set(tables)
        for t in self._shown or ():
            if old is not None and t not in old:
                self._last.pop(t, None)

    @pyqtSlot()
    def skip_to_newest(self) -> None:
        """From the next tick on, only rows newer than the newest one now (after Clear)."""
        self._skip = True

    def taken(self) -> None:
        """The GUI has handled the last result (any thread)."""
        self._taken.set()

    @pyqtSlot()
    def tick(self) -> None:
        """Fetch what is new and emit it (never raises); skipped while the GUI has not
        handled the previous result, so that results never pile up in its event queue."""
        if not self._taken.is_set():
            return
        self._taken.clear()
        self.polled.emit(self.poll_once())

    def poll_once(self) -> PollResult:
        """One poll (also usable without a thread, e.g. in tests)."""
        result = PollResult(wall=time.time(), db=str(self.db_path))
        if not self.db_path.exists():
            return result
        if self._reader is None:
            self._reader = StoreReader(self.db_path)
        reader = self._reader
        try:
            result.model_name = reader.model_name()
            skip, self._skip = self._skip, False
            for dev in reader.devices():
                if skip:
                    newest = reader.latest(dev.table_name, 1)
                    self._last[dev.table_name] = newest[-1].index if newest else 0
                result.tables.append(self._poll_table(reader, dev))
            result.malicious = malicious_rows(result.tables, self.window)
        except (StoreError, OSError, Exception) as exc:  # noqa: BLE001 - shown, never raised
            result.error = f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):
                reader.close()
            self._reader = None
        return result

    def _poll_hidden(self, reader: StoreReader, dev: DeviceInfo) -> TablePoll:
        """A table off screen: only its new malicious rows (the newest window of them)."""
        table = dev.table_name
        top = reader.max_index(table)
        last = self._last.get(table)
        after = max(0, top - self.window) if last is None else last
        bad = reader.malicious_between(table, after, top + 1, self.window, newest=True)
        self._last[table] = top
        return TablePoll(dev, [], 0, False, compact(bad, self._strings))

    def _poll_table(self, reader: StoreReader, dev: DeviceInfo) -> TablePoll:
        table = dev.table_name
        if self._shown is not None and table not in self._shown:
            return self._poll_hidden(reader, dev)
        last = self._last.get(table)
        gap: list[PacketRow] = []
        if last is None:  # first sight: the newest window only
            rows = reader.latest(table, self.window)
            skipped = max(0, dev.rows_total - len(rows))
            reset = True
        else:
            rows = reader.since(table, last, limit=self.window + 1)
            skipped, reset = 0, False
            if len(rows) > self.window:  # too far behind: jump to the newest window
                newest = reader.latest(table, self.window)
                skipped = max(0, newest[0].index - rows[0].index) if newest else 0
                if newest:  # the malicious rows of the skipped stretch are still shown
                    gap = reader.malicious_between(table, last, newest[0].index, self.window)
                rows, reset = newest, True
        if rows:
            self._last[table] = rows[-1].index
        elif last is None:
            self._last[table] = 0
        fresh = gap + [r for r in rows if r.is_bad == 1]
        return TablePoll(
            dev, compact(rows, self._strings), skipped, reset, compact(fresh, self._strings)
        )


class PollerThread:
    """A StorePoller running on its own QThread; ``close()`` stops both."""

    def __init__(self, db_path: str | Path, window: int = 5000, interval_ms: int = 250,
                 shown: set[str] | None = None) -> None:
        self.thread = QThread()
        self.thread.setObjectName("store-poller")
        self.poller = StorePoller(db_path, window, interval_ms, shown)
        self.poller.moveToThread(self.thread)
        self.thread.started.connect(self.poller.start)
        self.thread.start()

    def close(self, wait: bool = True) -> None:
        """Stop the timer and the thread. ``wait=False`` returns at once: a tick still
        running (a read can take a while when the store is busy) finishes on its own, and
        the thread is kept referenced until it has ended."""
        sweep_retired()
        if not self.thread.isRunning():
            return
        QMetaObject.invokeMethod(self.poller, "stop", Qt.QueuedConnection)  # ends the thread
        if wait:
            self.thread.wait(5000)
            return
        _RETIRED.add(self)

    @property
    def running(self) -> bool:
        """True until the thread has ended."""
        return self.thread.isRunning()


_RETIRED: set[PollerThread] = set()  # closed without waiting, thread perhaps still running


def sweep_retired() -> int:
    """Let go of retired pollers whose thread has ended (on the GUI thread: a QThread must
    not be destroyed from its own thread); returns how many are still ending."""
    for done in [p for p in _RETIRED if p.thread.isFinished()]:
        _RETIRED.discard(done)
    return len(_RETIRED)


def wait_retired(timeout_ms: int = 5000) -> int:
    """Wait for retired pollers' threads to end (at shutdown); returns how many did not."""
    for retired in list(_RETIRED):
        retired.thread.wait(timeout_ms)
    return sweep_retired()

"""PacketStore: one writer thread, one SQLite connection, bounded queue of classified batches.

``submit`` never blocks: when the queue is full the batch is dropped and counted. The writer
drains everything queued (up to ``max_rows_per_commit`` packets) into one transaction, so a
batch is stored completely or not at all, and runs retention on its own schedule.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jixiaoan.engine.batch import ClassifiedBatch, Device
from jixiaoan.storage.devices import DeviceRegistry
from jixiaoan.storage.reader import StoreReader
from jixiaoan.storage.rows import batch_columns, device_row_indices
from jixiaoan.storage.schema import (
    StoreError,
    apply_writer_pragmas,
    checked_table,
    create_base_tables,
    insert_sql,
    storable_text,
)

OnCommit = Callable[[float, float, int], None]
"""``on_commit(max_capture_ts, commit_wall_time, rows)``, called on the writer thread."""


@dataclass(frozen=True)
class StoreCounters:
    """Snapshot of the store's counters."""

    rows_stored: int = 0  # device-table rows committed (a packet of two devices counts twice)
    batches_stored: int = 0
    batches_dropped: int = 0  # queue full (or store closed)
    packets_dropped: int = 0
    commits: int = 0
    queued_batches: int = 0
    last_commit_latency_s: float = 0.0  # wall time to build, insert and commit the last drain
    last_capture_latency_s: float = 0.0  # last commit time minus the oldest capture time in it
    retention_deleted: int = 0
    write_errors: int = 0  # failed transactions (their batches are lost, rolled back whole)
    last_error: str = ""


class _Command:
    """A function to run on the writer thread, with its result handed back."""

    def __init__(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class PacketStore:
    """Per-device SQLite packet store (see the package docstring for the schema)."""

    def __init__(
        self,
        path: str | Path,
        retention_rows: int | None = 1_000_000,
        retention_age_s: float | None = None,
        queue_batches: int = 64,
        *,
        retention_interval_s: float = 10.0,
        max_rows_per_commit: int = 100_000,
        on_commit: OnCommit | None = None,
        model_name: str = "",
    ) -> None:
        self.path = Path(path)
        self.retention_rows = retention_rows
        self.retention_age_s = retention_age_s
        self.retention_interval_s = retention_interval_s
        self.queue_batches = max(1, int(queue_batches))
        self.max_rows_per_commit = max(1, int(max_rows_per_commit))
        self.on_commit = on_commit
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._done = threading.Condition(self._lock)
        self._batches: deque[tuple[int, ClassifiedBatch]] = deque()
        self._commands: deque[_Command] = deque()
        self._submitted = 0
        self._processed = 0
        self._closing = False
        self._dead = False
        self._counts: dict[str, Any] = dict(StoreCounters().__dict__)
        self._ready = threading.Event()
        self._init_error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(model_name,), name="jixiaoan-store", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        if self._init_error is not None:
            self._thread.join()
            raise StoreError(f"cannot open store {self.path}: {self._init_error}")
        self.reader = StoreReader(self.path)

    # ---- caller side -------------------------------------------------------------------------

    def submit(self, batch: ClassifiedBatch) -> bool:
        """Queue a batch for writing; False (and counted as dropped) when the queue is full."""
        with self._lock:
            if self._closing or self._dead or len(self._batches) >= self.queue_batches:
                self._counts["batches_dropped"] += 1
                self._counts["packets_dropped"] += len(batch)
                return False
            self._submitted += 1
            self._batches.append((self._submitted, batch))
            self._work.notify()
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every batch queued so far is committed (or failed, see ``write_errors``).
        False on timeout."""
        with self._lock:
            target = self._submitted
            return self._done.wait_for(lambda: self._processed >= target or self._dead, timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush, stop the writer thread and close the connection (idempotent)."""
        self.flush(timeout)
        with self._lock:
            self._closing = True
            self._work.notify()
        self._thread.join(timeout)
        self.reader.close()

    def __enter__(self) -> PacketStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def counters(self) -> StoreCounters:
        """A consistent snapshot of the counters."""
        with self._lock:
            return StoreCounters(**{**self._counts, "queued_batches": len(self._batches)})

    def register_device(self, device: Device, timeout: float | None = 30.0) -> str:
        """Table name of ``device``, creating it when new. Idempotent by MAC, then IP; a
        non-empty name / vendor given here replaces the stored one."""
        return self._call(
            lambda conn: self._in_transaction(conn, self._registry.register, device), timeout
        )

    def set_verdicts(
        self,
        table: str,
        index: np.ndarray | Sequence[int],
        is_bad: np.ndarray | Sequence[int],
        attack: Sequence[str | None] | np.ndarray | None = None,
        score: np.ndarray | Sequence[float] | None = None,
        timeout: float | None = 60.0,
    ) -> int:
        """Bulk-set verdicts of rows ``index`` (is_bad -1 = NULL, NaN score = NULL, attack None
        = NULL). Returns the number of rows updated."""
        ident = checked_table(table)
        idx = np.asarray(index, dtype=np.int64)
        bad = np.asarray(is_bad, dtype=np.int64)
        bad_col = np.where(bad < 0, None, (bad > 0).astype(np.int64)).astype(object).tolist()
        att = [None] * len(idx) if attack is None else list(attack)
        att = [None if a is None else storable_text(str(a)) for a in att]
        sc = np.full(len(idx), np.nan) if score is None else np.asarray(score, dtype=np.float64)
        score_col = np.where(np.isnan(sc), None, sc).astype(object).tolist()
        if not (len(idx) == len(bad_col) == len(att) == len(score_col)):
            raise ValueError("set_verdicts: index, is_bad, attack and score differ in length")
        rows = list(zip(bad_col, att, score_col, idx.tolist()))
        sql = f'UPDATE {ident} SET "IsBad" = ?, "Attack" = ?, "Score" = ? WHERE "Index" = ?'

        def update(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.executemany(sql, rows)
            return conn.total_changes - before

        return self._call(lambda conn: self._in_transaction(conn, update), timeout)

    def set_model_name(self, name: str, timeout: float | None = 30.0) -> None:
        """Record the name of the model whose verdicts are stored."""
        sql = "INSERT OR REPLACE INTO meta(key, value) VALUES ('model_name', ?)"
        self._call(lambda conn: conn.execute(sql, (storable_text(name),)), timeout)

    def run_retention(self, now: float | None = None, timeout: float | None = 60.0) -> int:
        """Apply retention now (normally it runs on its own schedule); returns rows deleted."""
        return self._call(lambda conn: self._retain(conn, now), timeout)

    def _call(self, fn: Callable[[sqlite3.Connection], Any], timeout: float | None) -> Any:
        cmd = _Command(fn)
        with self._lock:
            if self._closing or self._dead:
                raise StoreError("the store is closed")
            self._commands.append(cmd)
            self._work.notify()
        if not cmd.done.wait(timeout):
            raise TimeoutError("the store writer did not answer in time")
        if cmd.error is not None:
            raise cmd.error
        return cmd.result

    # ---- writer thread -----------------------------------------------------------------------

    def _run(self, model_name: str) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
            apply_writer_pragmas(conn)
            conn.execute("BEGIN IMMEDIATE")
            create_base_tables(conn, storable_text(model_name))
            conn.execute("COMMIT")
            self._registry = DeviceRegistry(conn)
        except BaseException as exc:  # noqa: BLE001 - handed to the constructor
            self._init_error = exc
            self._ready.set()
            return
        self._ready.set()
        next_retention = time.monotonic() + self.retention_interval_s
        try:
            while True:
                with self._lock:
                    while not (self._batches or self._commands or self._closing):
                        wait = next_retention - time.monotonic()
                        if wait <= 0:
                            break
                        self._work.wait(wait)
                    commands = list(self._commands)
                    self._commands.clear()
                    items = self._take_batches()
                    stop = self._closing and not self._batches and not self._commands
                for cmd in commands:
                    self._execute(conn, cmd)
                if items:
                    self._write(conn, items)
                if time.monotonic() >= next_retention:
                    self._retain_scheduled(conn)
                    next_retention = time.monotonic() + self.retention_interval_s
                if stop and not items and not commands:
                    break
        finally:
            with self._lock:
                self._dead = True
                self._done.notify_all()
                pending = list(self._commands)
                self._commands.clear()
            for cmd in pending:
                cmd.error = StoreError("the store is closed")
                cmd.done.set()
            conn.close()

    def _take_batches(self) -> list[tuple[int, ClassifiedBatch]]:
        items: list[tuple[int, ClassifiedBatch]] = []
        packets = 0
        while self._batches and (not items or packets < self.max_rows_per_commit):
            seq, batch = self._batches.popleft()
            items.append((seq, batch))
            packets += len(batch)
        return items

    def _execute(self, conn: sqlite3.Connection, cmd: _Command) -> None:
        try:
            cmd.result = cmd.fn(conn)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            cmd.error = exc
        cmd.done.set()

    @staticmethod
    def _in_transaction(conn: sqlite3.Connection, fn: Callable[..., Any], *args: Any) -> Any:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(*args) if args else fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _write(self, conn: sqlite3.Connection, items: list[tuple[int, ClassifiedBatch]]) -> None:
        t0 = time.perf_counter()
        rows_by_table: dict[str, list[tuple]] = {}
        min_ts, max_ts = np.inf, -np.inf
        n_rows = 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            for _, batch in items:
                if len(batch) == 0:
                    continue
                cols = batch_columns(batch)
                for dev, idx in device_row_indices(batch):
                    table = self._registry.table_for(batch.devices[dev])
                    if table is None:
                        continue
                    rows_by_table.setdefault(table, []).extend(cols.rows(idx))
                    times = cols.time[idx]
                    self._registry.seen(table, float(times.min()), float(times.max()))
                    min_ts = min(min_ts, float(times.min()))
                    max_ts = max(max_ts, float(times.max()))
            for table, rows in rows_by_table.items():
                conn.executemany(insert_sql(table), rows)
                n_rows += len(rows)
            self._registry.write_seen()
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._registry.forget()
            self._finish(items, 0, t0, None, repr(exc))
            return
        self._finish(items, n_rows, t0, (min_ts, max_ts) if n_rows else None, "")

    def _finish(
        self,
        items: list[tuple[int, ClassifiedBatch]],
        n_rows: int,
        t0: float,
        ts_range: tuple[float, float] | None,
        error: str,
    ) -> None:
        wall = time.time()
        with self._lock:
            c = self._counts
            if error:
                c["write_errors"] += 1
                c["last_error"] = error
            else:
                c["rows_stored"] += n_rows
                c["batches_stored"] += len(items)
                c["commits"] += 1
                c["last_commit_latency_s"] = time.perf_counter() - t0
                if ts_range is not None:
                    c["last_capture_latency_s"] = wall - ts_range[0]
            self._processed = max(self._processed, items[-1][0])
            self._done.notify_all()
        if self.on_commit is not None and ts_range is not None and not error:
            try:
                self.on_commit(ts_range[1], wall, n_rows)
            except Exception as exc:  # noqa: BLE001 - a callback must not stop the writer
                with self._lock:
                    self._counts["last_error"] = f"on_commit: {exc!r}"

    def _retain_scheduled(self, conn: sqlite3.Connection) -> None:
        try:
            self._retain(conn, None)
        except sqlite3.Error as exc:
            with self._lock:
                self._counts["write_errors"] += 1
                self._counts["last_error"] = f"retention: {exc!r}"

    def _retain(self, conn: sqlite3.Connection, now: float | None) -> int:
        """Delete the oldest rows per device above ``retention_rows`` and rows older than
        ``retention_age_s`` (relative to ``now``, default the wall clock)."""
        if self.retention_rows is None and self.retention_age_s is None:
            return 0
        now = time.time() if now is None else now
        before = conn.total_changes
        tables = [r[0] for r in conn.execute("SELECT table_name FROM devices")]
        conn.execute("BEGIN IMMEDIATE")
        try:
            for table in tables:
                ident = checked_table(table)
                if self.retention_rows is not None:
                    conn.execute(
                        f'DELETE FROM {ident} WHERE "Index" <= (SELECT "Index" FROM {ident}'
                        ' ORDER BY "Index" DESC LIMIT 1 OFFSET ?)',
                        (int(self.retention_rows),),
                    )
                if self.retention_age_s is not None:
                    conn.execute(
                        f'DELETE FROM {ident} WHERE "Time" < ?', (now - self.retention_age_s,)
                    )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        deleted = conn.total_changes - before
        with self._lock:
            self._counts["retention_deleted"] += deleted
        return deleted

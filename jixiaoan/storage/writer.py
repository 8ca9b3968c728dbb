"""PacketStore: one writer thread, one SQLite connection, bounded queue of classified batches.

``submit`` never blocks: when the queue is full the batch is dropped and counted (a store made
with ``blocking=True``, for offline imports, waits for room instead). A converter
thread turns queued batches (up to ``max_rows_per_commit`` packets at a time) into rows while
the writer thread inserts the previous ones (SQLite releases the GIL while it works, so the two
overlap on two cores). The writer puts everything converted so far into one transaction, so a
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
from jixiaoan.storage.checkpoint import WalCheckpointer
from jixiaoan.storage.devices import DeviceRegistry
from jixiaoan.storage.reader import StoreReader
from jixiaoan.storage.retention import apply_retention
from jixiaoan.storage.rows import PreparedChunk, prepare_chunk
from jixiaoan.storage.schema import (
    META_ALIASES,
    StoreError,
    apply_writer_pragmas,
    checked_table,
    create_base_tables,
    in_transaction,
    insert_sql,
    storable_text,
)
from jixiaoan.storage.verdicts import update_verdicts, verdict_rows

OnCommit = Callable[[float, float, int], None]
"""``on_commit(max_capture_ts, commit_wall_time, rows)``, called on the writer thread after each
commit that stored rows; it must be quick and must not call the store's write methods."""


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
    write_errors: int = 0  # failed transactions (rolled back whole) + unconvertible batches
    last_error: str = ""
    convert_cpu_s: float = 0.0  # CPU time of the converter thread (batches -> rows)
    write_cpu_s: float = 0.0  # CPU time of the writer thread in inserts and commits


class _Command:
    """A function to run on the writer thread, with its result handed back."""

    def __init__(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class PacketStore:
    """Per-device SQLite packet store (see the package docstring for the schema)."""

    PREPARED_CHUNKS = 2  # converted chunks waiting for the writer (bounded)

    def __init__(
        self,
        path: str | Path,
        retention_rows: int | None = 1_000_000,
        retention_age_s: float | None = None,
        queue_batches: int = 64,
        *,
        retention_interval_s: float = 10.0,
        max_rows_per_commit: int = 50_000,
        on_commit: OnCommit | None = None,
        model_name: str = "",
        blocking: bool = False,
    ) -> None:
        self.path = Path(path)
        self.blocking = blocking
        self.retention_rows = retention_rows
        self.retention_age_s = retention_age_s
        self.retention_interval_s = retention_interval_s
        self.queue_batches = max(1, int(queue_batches))
        self.max_rows_per_commit = max(1, int(max_rows_per_commit))
        self.on_commit = on_commit
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the writer waits on it
        self._convert = threading.Condition(self._lock)  # the converter waits on it
        self._done = threading.Condition(self._lock)  # flush() waits on it
        self._space = threading.Condition(self._lock)  # a blocking submit() waits on it
        self._batches: deque[tuple[int, ClassifiedBatch]] = deque()
        self._prepared: deque[PreparedChunk] = deque()
        self._commands: deque[_Command] = deque()
        self._submitted = 0
        self._processed = 0
        self._closing = False
        self._converter_done = False
        self._dead = False
        self._counts: dict[str, Any] = dict(StoreCounters().__dict__)
        self._ready = threading.Event()
        self._init_error: BaseException | None = None
        self._writer = threading.Thread(
            target=self._run, args=(model_name,), name="jixiaoan-store-writer", daemon=True
        )
        self._writer.start()
        self._ready.wait()
        if self._init_error is not None:
            self._writer.join()
            raise StoreError(f"cannot open store {self.path}: {self._init_error}")
        self._converter = threading.Thread(
            target=self._convert_loop, name="jixiaoan-store-convert", daemon=True
        )
        self._converter.start()
        self.reader = StoreReader(self.path)

    # ---- caller side -------------------------------------------------------------------------

    def submit(self, batch: ClassifiedBatch) -> bool:
        """Queue a batch for writing; False (and counted as dropped) when the queue is full,
        unless the store is ``blocking`` (offline import): then it waits for room."""
        with self._lock:
            if self.blocking:
                self._space.wait_for(
                    lambda: len(self._batches) < self.queue_batches or self._closing or self._dead
                )
            if self._closing or self._dead or len(self._batches) >= self.queue_batches:
                self._counts["batches_dropped"] += 1
                self._counts["packets_dropped"] += len(batch)
                return False
            self._submitted += 1
            self._batches.append((self._submitted, batch))
            self._convert.notify()
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every batch queued so far is committed (or failed, see ``write_errors``).
        False on timeout."""
        with self._lock:
            target = self._submitted
            return self._done.wait_for(lambda: self._processed >= target or self._dead, timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush, stop the threads and close the connection (idempotent)."""
        self.flush(timeout)
        with self._lock:
            self._closing = True
            self._work.notify_all()
            self._convert.notify_all()
            self._space.notify_all()
        self._converter.join(timeout)
        self._writer.join(timeout)
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
            lambda conn: in_transaction(conn, self._registry.register, device), timeout
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
        checked_table(table)
        rows = verdict_rows(index, is_bad, attack, score)
        return self._call(
            lambda conn: in_transaction(conn, update_verdicts, conn, table, rows), timeout
        )

    def set_model_name(self, name: str, timeout: float | None = 30.0) -> None:
        """Record the name of the model whose verdicts are stored."""
        self.set_meta("model_name", name, timeout)

    def set_meta(self, key: str, value: str, timeout: float | None = 30.0) -> None:
        """Set a ``meta`` entry (``model`` is taken as ``model_name``; ``schema_version`` is
        the store's own)."""
        key = META_ALIASES.get(key, key)
        if key == "schema_version":
            raise StoreError("schema_version is set by the store itself")
        sql = "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)"
        args = (storable_text(key), storable_text(str(value)))
        self._call(lambda conn: conn.execute(sql, args), timeout)

    def run_retention(self, now: float | None = None, timeout: float | None = 60.0) -> int:
        """Apply retention now (normally it runs on its own schedule); returns rows deleted.
        Rows older than ``now - retention_age_s`` go; ``now`` defaults to the wall clock."""
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

    # ---- converter thread --------------------------------------------------------------------

    def _convert_loop(self) -> None:
        while True:
            with self._lock:
                while not self._dead and not (
                    (self._batches and len(self._prepared) < self.PREPARED_CHUNKS)
                    or (self._closing and not self._batches)
                ):
                    self._convert.wait()
                if self._dead or not self._batches:
                    self._converter_done = True
                    self._work.notify()
                    return
                items: list[tuple[int, ClassifiedBatch]] = []
                packets = 0
                while self._batches and (not items or packets < self.max_rows_per_commit):
                    items.append(self._batches.popleft())
                    packets += len(items[-1][1])
                self._space.notify_all()
            c0 = time.thread_time()
            chunk = prepare_chunk(items)
            with self._lock:
                self._counts["convert_cpu_s"] += time.thread_time() - c0
                self._prepared.append(chunk)
                self._work.notify()

    # ---- writer thread -----------------------------------------------------------------------

    def _run(self, model_name: str) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
            apply_writer_pragmas(conn)
            conn.execute("BEGIN IMMEDIATE")
            create_base_tables(conn, storable_text(model_name))
            conn.execute("COMMIT")
            self._registry = DeviceRegistry(conn)
            self._checkpointer = WalCheckpointer(self.path)
        except BaseException as exc:  # noqa: BLE001 - handed to the constructor
            if "conn" in locals():
                conn.close()
            self._init_error = exc
            self._ready.set()
            return
        self._ready.set()
        next_retention = time.monotonic() + self.retention_interval_s
        try:
            while True:
                with self._lock:
                    while not (
                        self._prepared or self._commands or (self._closing and self._converter_done)
                    ):
                        wait = next_retention - time.monotonic()
                        if wait <= 0:
                            break
                        self._work.wait(wait)
                    commands = list(self._commands)
                    self._commands.clear()
                    chunks = list(self._prepared)
                    self._prepared.clear()
                    self._convert.notify()
                    stop = self._closing and self._converter_done and not commands and not chunks
                for cmd in commands:
                    self._execute(conn, cmd)
                if chunks:
                    self._write(conn, chunks)
                if time.monotonic() >= next_retention:
                    self._retain_scheduled(conn)
                    next_retention = time.monotonic() + self.retention_interval_s
                if stop:
                    break
        finally:
            with self._lock:
                self._dead = True
                self._done.notify_all()
                self._convert.notify_all()
                self._space.notify_all()
                pending = list(self._commands)
                self._commands.clear()
            for cmd in pending:
                cmd.error = StoreError("the store is closed")
                cmd.done.set()
            self._checkpointer.stop()
            conn.close()

    def _execute(self, conn: sqlite3.Connection, cmd: _Command) -> None:
        try:
            cmd.result = cmd.fn(conn)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            cmd.error = exc
        cmd.done.set()

    def _write(self, conn: sqlite3.Connection, chunks: list[PreparedChunk]) -> None:
        t0, c0 = time.perf_counter(), time.thread_time()
        n_rows = 0
        errors = [e for c in chunks for e in c.errors]
        committed = False
        try:
            conn.execute("BEGIN IMMEDIATE")
            for chunk in chunks:
                for dev_rows in chunk.devices.values():
                    table = self._registry.table_for(dev_rows.device)
                    if table is None:
                        continue
                    conn.executemany(insert_sql(table), dev_rows.rows)
                    self._registry.seen(dev_rows, table)
                    n_rows += len(dev_rows.rows)
            self._registry.write_seen()
            conn.execute("COMMIT")
            committed = True
            self._checkpointer.poke()
        except Exception as exc:  # noqa: BLE001 - counted; the store keeps running
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._registry.forget()
            errors.append(repr(exc))
            n_rows = 0
        wall = time.time()
        stored = chunks if committed else []
        min_ts = min((c.min_ts for c in stored), default=np.inf)
        max_ts = max((c.max_ts for c in stored), default=-np.inf)
        with self._lock:
            c = self._counts
            c["write_cpu_s"] += time.thread_time() - c0
            if errors:
                c["write_errors"] += len(errors)
                c["last_error"] = errors[-1]
            if committed:
                c["rows_stored"] += n_rows
                c["batches_stored"] += sum(x.n_batches for x in stored)
                c["commits"] += 1
                c["last_commit_latency_s"] = time.perf_counter() - t0
                if n_rows:
                    c["last_capture_latency_s"] = wall - min_ts
            self._processed = max(self._processed, chunks[-1].last_seq)
            self._done.notify_all()
        if self.on_commit is not None and n_rows:
            try:
                self.on_commit(float(max_ts), wall, n_rows)
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
        now = time.time() if now is None else now
        deleted = apply_retention(conn, self.retention_rows, self.retention_age_s, now)
        with self._lock:
            self._counts["retention_deleted"] += deleted
        return deleted

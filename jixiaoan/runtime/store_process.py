"""The packet store in a child process, so that writing rows does not compete with capture and
the engine for one interpreter lock (two cores can then both work).

``ProcessStore`` offers the part of ``PacketStore``'s API a monitor uses (``register_device``,
``submit``, ``flush``, ``close``, ``counters``, ``on_commit``, ``path``). Batches travel over a
multiprocessing queue; the number in flight (sent but not yet taken by the child's store) is
bounded in batches and packets, and ``submit`` drops and counts a batch that does not fit
(a ``blocking`` store, for a file replayed as fast as it goes, waits for room instead). The
child reports its counters and every commit back on a second queue, read by a thread here
that calls ``on_commit`` (so latency is measured exactly as in-process).

The child is started with multiprocessing's "spawn" method, which imports the main module
again: a script that builds a monitor at top level needs an ``if __name__ == "__main__":``
guard (MonitorSession falls back to an in-process store when the child cannot start).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from jixiaoan.config import Config
from jixiaoan.engine.batch import ClassifiedBatch, Device
from jixiaoan.runtime.options import MonitorOptions
from jixiaoan.storage.store import OnCommit, PacketStore, StoreCounters, StoreError

log = logging.getLogger(__name__)
STATUS_INTERVAL_S = 0.05


def _child(path: str, kwargs: dict[str, Any], inbox, outbox) -> None:
    """The child process: one PacketStore fed from ``inbox``; replies and counters to
    ``outbox``. Ctrl-C reaches the whole process group: the child ignores it and lets the
    parent close it in order; it closes the store itself if the parent disappears."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    try:
        store = PacketStore(
            path, on_commit=lambda ts, wall, rows: outbox.put(("commit", ts, wall, rows)), **kwargs
        )
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        outbox.put(("failed", repr(exc)))
        return
    outbox.put(("ready",))
    taken, last_status = 0, 0.0
    while True:
        try:
            msg = inbox.get(timeout=STATUS_INTERVAL_S)
        except queue.Empty:
            msg = None
        if msg is not None:
            kind = msg[0]
            if kind == "batch":
                store.submit(msg[1])
                taken += 1
            elif kind == "register":
                try:
                    outbox.put(("reply", msg[1], store.register_device(msg[2]), None))
                except Exception as exc:  # noqa: BLE001
                    outbox.put(("reply", msg[1], None, repr(exc)))
            elif kind == "flush":
                ok = store.flush(msg[2])
                outbox.put(("status", taken, store.counters()))
                outbox.put(("reply", msg[1], ok, None))
            elif kind == "close":
                store.close(msg[2])
                outbox.put(("status", taken, store.counters()))
                outbox.put(("reply", msg[1], True, None))
                return
        now = time.monotonic()
        if now - last_status >= STATUS_INTERVAL_S:
            last_status = now
            outbox.put(("status", taken, store.counters()))
            if os.getppid() != parent:  # orphaned: keep what was sent, then go
                store.close()
                return


class ProcessStore:
    """A PacketStore running in a child process (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        on_commit: OnCommit | None = None,
        max_inflight_batches: int = 64,
        max_inflight_packets: int = 262_144,
        start_timeout_s: float = 60.0,
        blocking: bool = False,
        **store_kwargs: Any,
    ) -> None:
        self.path = Path(path)
        self.blocking = blocking  # submit() waits for room instead of dropping (file replays)
        store_kwargs["blocking"] = blocking
        self.on_commit = on_commit
        self.max_inflight_batches = max_inflight_batches
        self.max_inflight_packets = max_inflight_packets
        ctx = mp.get_context("spawn")  # no fork of a process full of threads
        self._inbox = ctx.Queue()
        self._outbox = ctx.Queue()
        self._proc = ctx.Process(
            target=_child, args=(str(self.path), store_kwargs, self._inbox, self._outbox),
            name="jixiaoan-store", daemon=True,
        )
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # a blocking submit() waits on it
        self._sent_sizes: list[int] = []  # packets of each batch sent and not yet taken
        self._sent = self._taken = 0
        self._dropped_batches = self._dropped_packets = 0
        self._counters = StoreCounters()
        self._replies: dict[int, tuple[threading.Event, list[Any]]] = {}
        self._ids = itertools.count(1)
        self._closed = False
        self._dead = False
        self._proc.start()
        first = self._wait_ready(start_timeout_s)
        if first[0] != "ready":
            self._proc.join(5)
            raise StoreError(f"cannot open store {self.path}: {first[1]}")
        self._reader = threading.Thread(target=self._read, name="jixiaoan-store-replies",
                                        daemon=True)
        self._reader.start()

    def _wait_ready(self, timeout: float) -> tuple:
        """The child's first message; StoreError when it died or stayed silent."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._outbox.get(timeout=0.1)
            except queue.Empty:
                if self._proc.is_alive() and time.monotonic() < deadline:
                    continue
            self._proc.terminate()
            self._proc.join(2)
            raise StoreError(
                f"the store process did not start (exit code {self._proc.exitcode}); a script "
                "that starts a monitor needs an `if __name__ == '__main__':` guard"
            )

    # ---- replies from the child -----------------------------------------------------------

    def _read(self) -> None:
        while True:
            try:
                msg = self._outbox.get(timeout=0.5)
            except queue.Empty:
                if not self._proc.is_alive():
                    break
                continue
            except (EOFError, OSError):
                break
            kind = msg[0]
            if kind == "commit" and self.on_commit is not None:
                try:
                    self.on_commit(msg[1], msg[2], msg[3])
                except Exception:  # noqa: BLE001 - a callback must not stop the replies
                    log.exception("on_commit failed")
            elif kind == "status":
                with self._lock:
                    done = msg[1] - self._taken
                    del self._sent_sizes[:done]
                    self._taken = msg[1]
                    self._counters = msg[2]
                    self._room.notify_all()
            elif kind == "reply":
                with self._lock:
                    waiter = self._replies.pop(msg[1], None)
                if waiter is not None:
                    waiter[1].extend(msg[2:])
                    waiter[0].set()
        with self._lock:
            self._dead = True
            self._room.notify_all()
            for event, _ in self._replies.values():
                event.set()

    def _call(self, kind: str, *args: Any, timeout: float | None) -> Any:
        ident = next(self._ids)
        event, answer = threading.Event(), []
        with self._lock:
            if self._dead:
                raise StoreError("the store process has ended")
            self._replies[ident] = (event, answer)
        self._inbox.put((kind, ident, *args))
        wait = None if timeout is None else timeout + 5.0
        if not event.wait(wait) or not answer:
            raise TimeoutError(f"the store process did not answer {kind!r} in time")
        result, error = answer
        if error is not None:
            raise StoreError(error)
        return result

    # ---- PacketStore's API ----------------------------------------------------------------

    def register_device(self, device: Device, timeout: float | None = 30.0) -> str:
        """Table name of ``device`` (created when new)."""
        return self._call("register", device, timeout=timeout)

    def _full(self, n: int) -> bool:
        return len(self._sent_sizes) >= self.max_inflight_batches or bool(
            self._sent_sizes and sum(self._sent_sizes) + n > self.max_inflight_packets
        )

    def submit(self, batch: ClassifiedBatch) -> bool:
        """Send a batch to the child; False (counted as dropped) when too much is in flight,
        unless the store is ``blocking`` (a file replayed as fast as it goes): then it waits
        for the child to take batches."""
        n = len(batch)
        with self._lock:
            if self.blocking:
                self._room.wait_for(lambda: self._closed or self._dead or not self._full(n))
            if self._closed or self._dead or self._full(n):
                self._dropped_batches += 1
                self._dropped_packets += n
                return False
            self._sent_sizes.append(n)
            self._sent += 1
        self._inbox.put(("batch", batch))
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything sent so far is committed; False on timeout."""
        try:
            return bool(self._call("flush", timeout, timeout=timeout))
        except (TimeoutError, StoreError):
            return False

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush, close the store and end the child (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._room.notify_all()
        with contextlib.suppress(TimeoutError, StoreError):
            self._call("close", timeout, timeout=timeout)
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.terminate()
        self._reader.join(5)

    @property
    def pid(self) -> int | None:
        """The child process's id (benchmarks read its CPU time)."""
        return self._proc.pid

    def counters(self) -> StoreCounters:
        """The child's last counters, with the batches dropped here added."""
        with self._lock:
            c = self._counters
            return replace(
                c,
                batches_dropped=c.batches_dropped + self._dropped_batches,
                packets_dropped=c.packets_dropped + self._dropped_packets,
                queued_batches=c.queued_batches + len(self._sent_sizes),
            )


def open_monitor_store(
    cfg: Config, opts: MonitorOptions, model_name: str, on_commit: OnCommit | None
) -> PacketStore | ProcessStore:
    """The store a monitor writes to: in a child process when ``opts.store_process`` (falling
    back to this process when the child cannot start), with the retention of ``cfg``."""
    storage = cfg.storage
    path = opts.db_path or str(cfg.resolved_db_path())
    if not opts.db_path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)  # the platform's data folder
    age = storage.retention_days * 86400.0 if storage.retention_days > 0 else None
    if opts.replay:
        age = None  # a replayed capture's packets carry their old capture times
    kwargs = dict(
        retention_rows=storage.retention_rows or None,
        retention_age_s=age,
        queue_batches=opts.store_queue_batches,
        model_name=model_name,
        # a file replayed as fast as it goes is paced by the slowest stage: nothing is lost
        blocking=bool(opts.replay) and opts.speed <= 0,
    )
    if opts.store_process:
        try:
            return ProcessStore(
                path, on_commit=on_commit, max_inflight_batches=opts.store_queue_batches, **kwargs
            )
        except StoreError as exc:
            log.warning("%s; writing the database from this process instead", exc)
    return PacketStore(path, on_commit=on_commit, **kwargs)

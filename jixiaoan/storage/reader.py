"""Read side of the packet store for the GUI and the CLI.

Every thread gets its own read-only connection (WAL readers never block the writer). Rows come
back as small frozen dataclasses; ``table`` arguments are device table names (as returned by
``PacketStore.register_device`` or listed by ``devices()``) or ``Device`` objects.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jixiaoan.engine.batch import Device
from jixiaoan.storage.devices import device_key
from jixiaoan.storage.schema import META_ALIASES, StoreError, checked_table

_ROW_COLUMNS = (
    '"Index", "Time", "SourceAddr", "DestAddr", "Length", "Type", "IsBad", "Attack", "Score"'
)


@dataclass(frozen=True)
class PacketRow:
    """One stored packet. ``is_bad``/``attack``/``score`` are None when not classified;
    ``data`` (the captured bytes) is only filled by ``row()`` and by
    ``rows_between(with_data=True)``."""

    index: int
    time: float  # capture time, seconds since the epoch
    source: str
    dest: str
    length: int  # length on the wire
    type: str  # protocol name
    is_bad: int | None
    attack: str | None
    score: float | None
    data: bytes | None = None


@dataclass(frozen=True)
class DeviceInfo:
    """A row of the ``devices`` table (first/last seen are capture times, None before any)."""

    id: int
    mac: str
    ip: str
    name: str
    vendor: str
    table_name: str
    first_seen: float | None
    last_seen: float | None
    rows_total: int = 0
    rows_malicious: int = 0
    rows_unclassified: int = 0


@dataclass(frozen=True)
class Rates:
    """Traffic of one device in the last ``window_s`` seconds and in total. Shares are
    malicious / classified rows, None when no row was classified."""

    window_s: float
    packets: int
    malicious: int
    classified: int
    packets_per_s: float
    malicious_share: float | None
    total_packets: int
    total_malicious: int
    total_classified: int
    total_share: float | None


def _share(bad: int, classified: int) -> float | None:
    return bad / classified if classified else None


class StoreReader:
    """Read-only access to a store file; safe to share between threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        # one connection per OS thread, keyed by thread id: not threading.local, whose data
        # lives in the Python thread state, and a thread Python did not start (a QThread)
        # may get a fresh state for each call in, which opened (and kept) a new connection
        # on every poll, 2 MiB of page cache each
        self._by_thread: dict[int, sqlite3.Connection] = {}
        self._tables: set[str] = set()

    @property
    def connections(self) -> int:
        """Connections open now (one per thread that has read)."""
        with self._lock:
            return len(self._by_thread)

    def _conn(self) -> sqlite3.Connection:
        ident = threading.get_ident()
        conn = self._by_thread.get(ident)
        if conn is None:
            if not self.path.exists():
                raise StoreError(f"no store at {self.path}")
            uri = self.path.resolve().as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=5000")
            with self._lock:
                self._by_thread[ident] = conn
        return conn

    def close(self) -> None:
        """Close the connections of all threads."""
        with self._lock:
            conns, self._by_thread = list(self._by_thread.values()), {}
        for conn in conns:
            conn.close()

    def _table(self, table: str | Device) -> str:
        """Quoted identifier of a known device table."""
        return checked_table(self._name(table))

    def _name(self, table: str | Device) -> str:
        """Name of a known device table (a Device is looked up by MAC, then IP)."""
        if isinstance(table, Device):
            name = self.table_for(table)
            if name is None:
                raise StoreError(f"device not in the store: {table.label!r}")
            table = name
        checked_table(table)
        if table not in self._tables:
            known = {r[0] for r in self._conn().execute("SELECT table_name FROM devices")}
            with self._lock:
                self._tables = known
            if table not in known:
                raise StoreError(f"no device table {table!r} in the store")
        return table

    def table_for(self, device: Device) -> str | None:
        """Table of a device, matched by MAC, else IP; None when unknown."""
        mac, ip = device_key(device)
        conn = self._conn()
        if mac:
            row = conn.execute(
                "SELECT table_name FROM devices WHERE mac = ? ORDER BY id LIMIT 1", (mac,)
            ).fetchone()
            if row:
                return row[0]
        if ip:
            row = conn.execute(
                "SELECT table_name FROM devices WHERE ip = ? ORDER BY id LIMIT 1", (ip,)
            ).fetchone()
            if row:
                return row[0]
        return None

    def devices(self) -> list[DeviceInfo]:
        """All devices, in registration order."""
        rows = self._conn().execute(
            "SELECT id, mac, ip, name, vendor, table_name, first_seen, last_seen,"
            " rows_total, rows_malicious, rows_unclassified FROM devices ORDER BY id"
        )
        return [DeviceInfo(*r) for r in rows]

    def model_name(self) -> str:
        """Name of the model recorded in ``meta`` ('' when none)."""
        return self.meta("model_name") or ""

    def meta(self, key: str) -> str | None:
        """A ``meta`` entry (``schema_version``, ``model_name``, ...), None when absent."""
        key = META_ALIASES.get(key, key)
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def latest(self, table: str | Device, n: int = 500) -> list[PacketRow]:
        """The ``n`` newest rows (without data), oldest first."""
        rows = (
            self._conn()
            .execute(
                f'SELECT {_ROW_COLUMNS} FROM {self._table(table)} ORDER BY "Index" DESC LIMIT ?',
                (int(n),),
            )
            .fetchall()
        )
        rows.reverse()
        return [PacketRow(*r) for r in rows]

    def since(self, table: str | Device, index: int, limit: int = 10_000) -> list[PacketRow]:
        """Rows with ``Index > index`` (without data), in index order, at most ``limit``."""
        rows = self._conn().execute(
            f'SELECT {_ROW_COLUMNS} FROM {self._table(table)} WHERE "Index" > ?'
            ' ORDER BY "Index" LIMIT ?',
            (int(index), int(limit)),
        )
        return [PacketRow(*r) for r in rows]

    def malicious_between(
        self, table: str | Device, after: int, before: int | None = None, limit: int = 10_000,
        newest: bool = False,
    ) -> list[PacketRow]:
        """Malicious rows (``IsBad = 1``) with ``after < Index < before``, in index order, at
        most ``limit``: the oldest ones, or with ``newest`` the newest ones (the all-malicious
        view catches up through stretches it did not fetch)."""
        upper = (1 << 62) if before is None else int(before)
        rows = self._conn().execute(
            f'SELECT {_ROW_COLUMNS} FROM {self._table(table)} WHERE "Index" > ? AND "Index" < ?'
            f' AND "IsBad" = 1 ORDER BY "Index" {"DESC" if newest else ""} LIMIT ?',
            (int(after), upper, int(limit)),
        ).fetchall()
        if newest:
            rows.reverse()
        return [PacketRow(*r) for r in rows]

    def max_index(self, table: str | Device) -> int:
        """The newest row's ``Index`` (0 for an empty table)."""
        row = self._conn().execute(f'SELECT max("Index") FROM {self._table(table)}').fetchone()
        return int(row[0] or 0)

    def row(self, table: str | Device, index: int) -> PacketRow | None:
        """One row with its captured bytes, None when absent."""
        r = (
            self._conn()
            .execute(
                f'SELECT {_ROW_COLUMNS}, "AllData" FROM {self._table(table)} WHERE "Index" = ?',
                (int(index),),
            )
            .fetchone()
        )
        return None if r is None else PacketRow(*r)

    def counts(self, table: str | Device) -> tuple[int, int, int]:
        """``(total, malicious, unclassified)`` rows of a device (kept up to date by the
        writer in the ``devices`` table: a one-row lookup)."""
        name = self._name(table)
        r = (
            self._conn()
            .execute(
                "SELECT rows_total, rows_malicious, rows_unclassified FROM devices"
                " WHERE table_name = ?",
                (name,),
            )
            .fetchone()
        )
        return int(r[0]), int(r[1]), int(r[2])

    def rates(self, table: str | Device, window_s: float, now: float | None = None) -> Rates:
        """Packets and malicious share in ``(now - window_s, now]`` and in total. ``now``
        defaults to the wall clock; pass the last capture time for a replayed capture."""
        now = time.time() if now is None else float(now)
        name = self._name(table)
        # one statement, so the window and the totals come from the same snapshot
        w = (
            self._conn()
            .execute(
                f'SELECT count(*), coalesce(sum("IsBad" = 1), 0),'
                f' coalesce(sum("IsBad" IS NOT NULL), 0),'
                " (SELECT rows_total FROM devices WHERE table_name = ?2),"
                " (SELECT rows_malicious FROM devices WHERE table_name = ?2),"
                " (SELECT rows_unclassified FROM devices WHERE table_name = ?2)"
                f' FROM {checked_table(name)} WHERE "Time" > ?1 - ?3 AND "Time" <= ?1',
                (now, name, float(window_s)),
            )
            .fetchone()
        )
        total, bad, classified = int(w[3]), int(w[4]), int(w[3]) - int(w[5])
        return Rates(
            window_s=float(window_s),
            packets=int(w[0]),
            malicious=int(w[1]),
            classified=int(w[2]),
            packets_per_s=int(w[0]) / window_s if window_s > 0 else 0.0,
            malicious_share=_share(int(w[1]), int(w[2])),
            total_packets=total,
            total_malicious=bad,
            total_classified=classified,
            total_share=_share(bad, classified),
        )

    def timeline(
        self, table: str | Device, t0: float, t1: float, bin_s: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Packets and malicious packets per ``bin_s`` bin over ``[t0, t1)`` (for plots):
        ``(bin start times, packets, malicious)``, every bin present (zeros when empty)."""
        if bin_s <= 0 or t1 <= t0:
            raise ValueError("timeline needs bin_s > 0 and t1 > t0")
        n_bins = int(np.ceil((t1 - t0) / bin_s))
        rows = (
            self._conn()
            .execute(
                f'SELECT CAST(("Time" - ?1) / ?3 AS INTEGER) AS b, count(*),'
                f' coalesce(sum("IsBad" = 1), 0) FROM {self._table(table)}'
                ' WHERE "Time" >= ?1 AND "Time" < ?2 GROUP BY b',
                (float(t0), float(t1), float(bin_s)),
            )
            .fetchall()
        )
        packets = np.zeros(n_bins, np.int64)
        malicious = np.zeros(n_bins, np.int64)
        if rows:
            b, p, m = (np.asarray(c, np.int64) for c in zip(*rows))
            keep = (b >= 0) & (b < n_bins)
            packets[b[keep]], malicious[b[keep]] = p[keep], m[keep]
        return t0 + bin_s * np.arange(n_bins), packets, malicious

    def rows_between(
        self, table: str | Device, t0: float, t1: float, with_data: bool = False
    ) -> Iterator[PacketRow]:
        """Rows with ``t0 <= Time < t1`` in time order (for CSV export), fetched in chunks."""
        cols = _ROW_COLUMNS + (', "AllData"' if with_data else "")
        cur = self._conn().execute(
            f'SELECT {cols} FROM {self._table(table)} WHERE "Time" >= ? AND "Time" < ?'
            ' ORDER BY "Time", "Index"',
            (float(t0), float(t1)),
        )
        while chunk := cur.fetchmany(4096):
            yield from (PacketRow(*r) for r in chunk)

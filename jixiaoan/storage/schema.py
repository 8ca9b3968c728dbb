"""SQLite schema of the packet store: device tables, the device list and a small meta table.

Table names never come from network-supplied text (hostnames, device names): a device table is
``dev_<12 hex digits of sha256(mac|ip)>`` (plus ``_<id>`` on a collision), every name is checked
against that pattern before use and still quoted as an identifier; values are always bound.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Callable
from typing import Any

from jixiaoan.storage.checkpoint import SAFETY_NET_PAGES

SCHEMA_VERSION = 1
META_ALIASES = {"model": "model_name"}  # other spellings of meta keys

_SURROGATE = re.compile("[\ud800-\udfff]")
TABLE_NAME_PATTERN = re.compile(r"dev_[0-9a-f]{12}(?:_[0-9]+)?")

# Columns of a device table, in the order used by inserts and by PacketRow.
PACKET_COLUMNS = (
    "Index",
    "Time",
    "SourceAddr",
    "DestAddr",
    "Length",
    "Type",
    "IsBad",
    "AllData",
    "Attack",
    "Score",
)


class StoreError(Exception):
    """The store file cannot be used (wrong schema version, unknown table, closed store)."""


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (double quotes, embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def checked_table(name: str) -> str:
    """Return the quoted identifier of a device table name, or raise StoreError when the name
    does not have the shape of a table this store creates."""
    if not isinstance(name, str) or TABLE_NAME_PATTERN.fullmatch(name) is None:
        raise StoreError(f"not a device table name: {name!r}")
    return quote_ident(name)


def table_name_for(mac: str, ip: str, suffix: int | None = None) -> str:
    """Table name derived from a hash of ``mac|ip`` (never from the device name)."""
    digest = hashlib.sha256(f"{mac}|{ip}".encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"dev_{digest}" if suffix is None else f"dev_{digest}_{suffix}"


def storable_text(text: str) -> str:
    """``text`` unchanged when it is valid Unicode for SQLite; lone surrogates (which UTF-8
    cannot hold) are replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def apply_writer_pragmas(conn: sqlite3.Connection) -> None:
    """WAL journal with synchronous=NORMAL: a committed transaction survives the process being
    killed (it may be lost only on a power cut / OS crash before the next checkpoint).
    16 KiB pages (new files only): rows of 64-1500 bytes insert about 30 % cheaper than at 4."""
    conn.execute("PRAGMA page_size=16384")
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(f"cannot switch the store to WAL mode (got {mode!r})")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB
    conn.execute(f"PRAGMA wal_autocheckpoint={SAFETY_NET_PAGES}")  # see storage.checkpoint
    conn.execute("PRAGMA journal_size_limit=67108864")  # WAL file trimmed to 64 MiB on reset
    conn.execute("PRAGMA busy_timeout=10000")


def create_base_tables(conn: sqlite3.Connection, model_name: str = "") -> None:
    """Create ``meta`` and ``devices`` when missing and check the schema version."""
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS devices ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " mac TEXT NOT NULL DEFAULT '',"
        " ip TEXT NOT NULL DEFAULT '',"
        " name TEXT NOT NULL DEFAULT '',"
        " vendor TEXT NOT NULL DEFAULT '',"
        " table_name TEXT NOT NULL UNIQUE,"
        " first_seen REAL,"
        " last_seen REAL,"
        " rows_total INTEGER NOT NULL DEFAULT 0,"
        " rows_malicious INTEGER NOT NULL DEFAULT 0,"
        " rows_unclassified INTEGER NOT NULL DEFAULT 0)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS devices_mac ON devices(mac) WHERE mac != ''")
    conn.execute("CREATE INDEX IF NOT EXISTS devices_ip ON devices(ip) WHERE ip != ''")
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
    elif row[0] != str(SCHEMA_VERSION):
        raise StoreError(f"store schema version {row[0]} is not supported (need {SCHEMA_VERSION})")
    conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('model_name', ?)", (model_name,))


def create_device_table(conn: sqlite3.Connection, table: str) -> None:
    """Create one device table and its Time index (no-op when it exists).

    ``Index`` is the rowid: a new row gets the largest index plus one. Retention never deletes
    a table's newest row, so indices only ever grow and ``since(table, index)`` cursors stay
    valid (without AUTOINCREMENT's bookkeeping, which cost ~15 % of insert speed).
    """
    ident = checked_table(table)
    index_ident = quote_ident(f"{table}_time")
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {ident} ("
        ' "Index" INTEGER PRIMARY KEY,'
        ' "Time" REAL NOT NULL,'
        ' "SourceAddr" TEXT NOT NULL,'
        ' "DestAddr" TEXT NOT NULL,'
        ' "Length" INTEGER NOT NULL,'
        ' "Type" TEXT NOT NULL,'
        ' "IsBad" INTEGER,'
        ' "AllData" BLOB NOT NULL,'
        ' "Attack" TEXT,'
        ' "Score" REAL)'
    )
    # (Time, IsBad) covers the rate queries, which then never touch the table rows.
    conn.execute(f'CREATE INDEX IF NOT EXISTS {index_ident} ON {ident}("Time", "IsBad")')


def count_rows(conn: sqlite3.Connection, table: str, where: str = "", args: tuple = ()) -> tuple:
    """``(total, malicious, unclassified)`` of the rows of ``table`` matching ``where``."""
    sql = (
        'SELECT count(*), coalesce(sum("IsBad" = 1), 0), coalesce(sum("IsBad" IS NULL), 0)'
        f" FROM {checked_table(table)} {where}"
    )
    return tuple(int(x) for x in conn.execute(sql, args).fetchone())


def insert_sql(table: str) -> str:
    """INSERT statement for one device table (Index assigned by SQLite)."""
    cols = ", ".join(quote_ident(c) for c in PACKET_COLUMNS[1:])
    marks = ", ".join("?" for _ in PACKET_COLUMNS[1:])
    return f"INSERT INTO {checked_table(table)} ({cols}) VALUES ({marks})"


def in_transaction(conn: sqlite3.Connection, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` inside BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(*args)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result

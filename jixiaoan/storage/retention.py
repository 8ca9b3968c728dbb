"""Retention: delete the oldest rows of each device table, on the writer's own schedule.

The per-device row counters in ``devices`` are decreased by what is deleted, in the same
transaction, so ``counts()`` stays a one-row lookup.
"""

from __future__ import annotations

import sqlite3

from jixiaoan.storage.schema import checked_table, count_rows


def _delete(conn: sqlite3.Connection, table: str, where: str, args: tuple) -> int:
    total, bad, unclassified = count_rows(conn, table, where, args)
    if total:
        conn.execute(f"DELETE FROM {checked_table(table)} {where}", args)
        conn.execute(
            "UPDATE devices SET rows_total = rows_total - ?, rows_malicious = rows_malicious - ?,"
            " rows_unclassified = rows_unclassified - ? WHERE table_name = ?",
            (total, bad, unclassified, table),
        )
    return total


def apply_retention(
    conn: sqlite3.Connection,
    retention_rows: int | None,
    retention_age_s: float | None,
    now: float,
) -> int:
    """Keep at most ``retention_rows`` newest rows per device and drop rows captured before
    ``now - retention_age_s``; one transaction; returns the number of rows deleted."""
    if retention_rows is None and retention_age_s is None:
        return 0
    tables = [r[0] for r in conn.execute("SELECT table_name FROM devices")]
    deleted = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table in tables:
            ident = checked_table(table)
            if retention_rows is not None:
                row = conn.execute(
                    f'SELECT "Index" FROM {ident} ORDER BY "Index" DESC LIMIT 1 OFFSET ?',
                    (int(retention_rows),),
                ).fetchone()
                if row is not None:
                    deleted += _delete(conn, table, 'WHERE "Index" <= ?', (row[0],))
            if retention_age_s is not None:
                cutoff = now - retention_age_s
                deleted += _delete(conn, table, 'WHERE "Time" < ?', (cutoff,))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return deleted

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
    """Keep at most ``retention_rows`` (at least 1) newest rows per device and drop rows
    captured before ``now - retention_age_s``, except each table's newest row (so row indices
    never restart); one transaction; returns the number of rows deleted."""
    if retention_rows is None and retention_age_s is None:
        return 0
    deleted = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        tables = conn.execute("SELECT table_name, rows_total FROM devices").fetchall()
        for table, total in tables:
            ident = checked_table(table)
            keep = max(1, int(retention_rows)) if retention_rows is not None else 0
            excess = total - keep if retention_rows is not None else 0
            if excess > 0:  # walks only the rows to delete, from the oldest end
                row = conn.execute(
                    f'SELECT "Index" FROM {ident} ORDER BY "Index" LIMIT 1 OFFSET ?',
                    (excess - 1,),
                ).fetchone()
                if row is not None:
                    deleted += _delete(conn, table, 'WHERE "Index" <= ?', (row[0],))
            if retention_age_s is not None:
                cutoff = now - retention_age_s  # the newest row stays: indices keep growing
                newest = f'(SELECT MAX("Index") FROM {ident})'
                where = f'WHERE "Time" < ? AND "Index" < {newest}'
                deleted += _delete(conn, table, where, (cutoff,))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return deleted

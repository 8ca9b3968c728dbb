"""Bulk verdict updates (classifying rows stored without a model, e.g. after an import)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

import numpy as np

from jixiaoan.storage.schema import StoreError, checked_table, count_rows, storable_text


def verdict_rows(
    index: np.ndarray | Sequence[int],
    is_bad: np.ndarray | Sequence[int],
    attack: Sequence[str | None] | np.ndarray | None,
    score: np.ndarray | Sequence[float] | None,
) -> list[tuple]:
    """``(IsBad, Attack, Score, Index)`` tuples: is_bad -1 = NULL, NaN score = NULL."""
    idx = np.asarray(index, dtype=np.int64)
    bad = np.asarray(is_bad, dtype=np.int64)
    bad_col = np.where(bad < 0, None, (bad > 0).astype(np.int64)).astype(object).tolist()
    att = [None] * len(idx) if attack is None else list(attack)
    att = [None if a is None else storable_text(str(a)) for a in att]
    sc = np.full(len(idx), np.nan) if score is None else np.asarray(score, dtype=np.float64)
    score_col = np.where(np.isnan(sc), None, sc).astype(object).tolist()
    if not (len(idx) == len(bad_col) == len(att) == len(score_col)):
        raise ValueError("set_verdicts: index, is_bad, attack and score differ in length")
    return list(zip(bad_col, att, score_col, idx.tolist()))


def update_verdicts(conn: sqlite3.Connection, table: str, rows: list[tuple]) -> int:
    """Apply ``verdict_rows`` to a device table inside the caller's transaction and move the
    device's row counters by the change over the touched rows. Returns rows updated."""
    ident = checked_table(table)
    if not conn.execute("SELECT 1 FROM devices WHERE table_name = ?", (table,)).fetchone():
        raise StoreError(f"no device table {table!r} in the store")
    where = 'WHERE "Index" IN (SELECT value FROM json_each(?))'
    ids = (json.dumps([r[3] for r in rows]),)
    before = count_rows(conn, table, where, ids)
    changes = conn.total_changes
    conn.executemany(
        f'UPDATE {ident} SET "IsBad" = ?, "Attack" = ?, "Score" = ? WHERE "Index" = ?', rows
    )
    changed = conn.total_changes - changes
    after = count_rows(conn, table, where, ids)
    conn.execute(
        "UPDATE devices SET rows_malicious = rows_malicious + ?,"
        " rows_unclassified = rows_unclassified + ? WHERE table_name = ?",
        (after[1] - before[1], after[2] - before[2], table),
    )
    return changed

"""The ``devices`` table as seen by the writer thread: identity, table names, first/last seen.

A device is identified by its MAC, else by its IP (an IP match is taken only when one of the
two sides has no MAC, so a reassigned DHCP address does not merge two devices). Names and
vendors are stored as bound values only; they never reach an SQL identifier.
"""

from __future__ import annotations

import sqlite3

from jixiaoan.engine.batch import Device
from jixiaoan.storage.rows import DeviceRows
from jixiaoan.storage.schema import create_device_table, storable_text, table_name_for


def device_key(device: Device) -> tuple[str, str]:
    """Normalised ``(mac, ip)`` of a device (lower-case MAC, both stripped)."""
    return (device.mac or "").strip().lower(), (device.ip or "").strip()


class DeviceRegistry:
    """Maps engine devices to device tables; all methods run on the writer thread, inside the
    caller's transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._cache: dict[tuple[str, str], tuple[str, str, str]] = {}  # key -> table, name, vendor
        self._seen: dict[str, list] = {}  # table -> [first, last, total, malicious, unclassified]

    def table_for(self, device: Device) -> str | None:
        """Table of a device seen in a batch (registered on first sight); None when the device
        has neither MAC nor IP."""
        key = device_key(device)
        hit = self._cache.get(key)
        if (
            hit is not None
            and (not device.name or hit[1] == storable_text(device.name))
            and (not device.vendor or hit[2] == storable_text(device.vendor))
        ):
            return hit[0]
        if not key[0] and not key[1]:
            return None
        return self.register(device)

    def register(self, device: Device) -> str:
        """Find or create the device row and its table; returns the table name."""
        mac, ip = device_key(device)
        if not mac and not ip:
            raise ValueError("a device needs a MAC or an IP address")
        name = storable_text(device.name or "")
        vendor = storable_text(device.vendor or "")
        found = self._find(mac, ip)
        if found is None:
            table = table_name_for(mac, ip)
            if self._conn.execute(
                "SELECT 1 FROM devices WHERE table_name = ?", (table,)
            ).fetchone():
                next_id = self._conn.execute("SELECT coalesce(max(id), 0) + 1 FROM devices")
                table = table_name_for(mac, ip, suffix=next_id.fetchone()[0])
            create_device_table(self._conn, table)
            self._conn.execute(
                "INSERT INTO devices(mac, ip, name, vendor, table_name) VALUES (?, ?, ?, ?, ?)",
                (mac, ip, name, vendor, table),
            )
        else:
            dev_id, table = found
            self._conn.execute(
                "UPDATE devices SET"
                " mac = CASE WHEN ? != '' THEN ? ELSE mac END,"
                " ip = CASE WHEN ? != '' THEN ? ELSE ip END,"
                " name = CASE WHEN ? != '' THEN ? ELSE name END,"
                " vendor = CASE WHEN ? != '' THEN ? ELSE vendor END"
                " WHERE id = ?",
                (mac, mac, ip, ip, name, name, vendor, vendor, dev_id),
            )
            create_device_table(self._conn, table)  # recreate when someone dropped it
        row = self._conn.execute(
            "SELECT name, vendor FROM devices WHERE table_name = ?", (table,)
        ).fetchone()
        self._cache[(mac, ip)] = (table, row[0], row[1])
        return table

    def _find(self, mac: str, ip: str) -> tuple[int, str] | None:
        if mac:
            row = self._conn.execute(
                "SELECT id, table_name FROM devices WHERE mac = ? ORDER BY id LIMIT 1", (mac,)
            ).fetchone()
            if row is not None:
                return row[0], row[1]
        if ip:
            row = self._conn.execute(
                "SELECT id, table_name FROM devices WHERE ip = ? AND (mac = '' OR ? = '')"
                " ORDER BY id LIMIT 1",
                (ip, mac),
            ).fetchone()
            if row is not None:
                return row[0], row[1]
        return None

    def seen(self, rows: DeviceRows, table: str) -> None:
        """Note rows written to ``table`` in the current transaction (times and counters)."""
        acc = self._seen.setdefault(table, [rows.first, rows.last, 0, 0, 0])
        acc[0], acc[1] = min(acc[0], rows.first), max(acc[1], rows.last)
        acc[2] += rows.total
        acc[3] += rows.malicious
        acc[4] += rows.unclassified

    def write_seen(self) -> None:
        """Write the noted first/last seen times and row counts into ``devices``."""
        if self._seen:
            self._conn.executemany(
                "UPDATE devices SET first_seen = min(coalesce(first_seen, ?1), ?1),"
                " last_seen = max(coalesce(last_seen, ?2), ?2),"
                " rows_total = rows_total + ?3, rows_malicious = rows_malicious + ?4,"
                " rows_unclassified = rows_unclassified + ?5 WHERE table_name = ?6",
                [(*acc, table) for table, acc in self._seen.items()],
            )
            self._seen.clear()

    def forget(self) -> None:
        """Drop cached state after a rolled-back transaction."""
        self._cache.clear()
        self._seen.clear()

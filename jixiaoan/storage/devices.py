"""The ``devices`` table as seen by the writer thread: identity, table names, first/last seen.

A device is identified by its MAC, else by its IP (an IP match is taken only when one of the
two sides has no MAC, so a reassigned DHCP address does not merge two devices). Names and
vendors are stored as bound values only; they never reach an SQL identifier.
"""

from __future__ import annotations

import sqlite3

from jixiaoan.engine.batch import Device
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
        self._seen: dict[str, tuple[float, float]] = {}

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

    def seen(self, table: str, first: float, last: float) -> None:
        """Note capture times of rows written to ``table`` in the current transaction."""
        old = self._seen.get(table)
        self._seen[table] = (
            (first, last) if old is None else (min(old[0], first), max(old[1], last))
        )

    def write_seen(self) -> None:
        """Write the noted first/last seen times into ``devices``."""
        if self._seen:
            self._conn.executemany(
                "UPDATE devices SET first_seen = min(coalesce(first_seen, ?), ?),"
                " last_seen = max(coalesce(last_seen, ?), ?) WHERE table_name = ?",
                [(f, f, last, last, t) for t, (f, last) in self._seen.items()],
            )
            self._seen.clear()

    def forget(self) -> None:
        """Drop cached state after a rolled-back transaction."""
        self._cache.clear()
        self._seen.clear()

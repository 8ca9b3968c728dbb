"""Device registration: identity by MAC / IP, and hostile names stored as plain values."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jixiaoan.engine.batch import Device
from jixiaoan.storage.schema import TABLE_NAME_PATTERN
from jixiaoan.storage.synthetic import synthetic_batch
from jixiaoan.storage.writer import PacketStore

HOSTILE_NAMES = [
    "'; DROP TABLE devices; --",
    '"; DROP TABLE devices; --',
    "Robert'); DROP TABLE meta;--",
    'dev_0123456789ab"',
    "名前 カメラ Ünïcödé",
    "📷🔥💀 cam",
    "x" * 300,
    "nul\x00inside\x00",
    "\n\t\r ",
    "[brackets] `backticks` ?1 :name @p $v",
]


def table_names(path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


@pytest.fixture
def store(tmp_path):
    s = PacketStore(tmp_path / "store.db", retention_interval_s=3600)
    yield s
    s.close()


def test_hostile_names_round_trip_and_create_no_tables(store):
    base = table_names(store.path)
    devices = [
        Device(mac=f"02:00:00:00:01:{i:02x}", ip=f"10.0.0.{i + 1}", name=name, vendor=name[::-1])
        for i, name in enumerate(HOSTILE_NAMES)
    ]
    tables = [store.register_device(d) for d in devices]
    assert all(TABLE_NAME_PATTERN.fullmatch(t) for t in tables)
    assert len(set(tables)) == len(devices)
    # batches carrying the same hostile devices write rows and create nothing else
    rng = np.random.default_rng(3)
    store.submit(synthetic_batch(200, devices, 5000.0, rng))
    assert store.flush(10)
    assert table_names(store.path) == base | set(tables)
    by_table = {d.table_name: d for d in store.reader.devices()}
    for dev, table in zip(devices, tables):
        assert by_table[table].name == dev.name
        assert by_table[table].vendor == dev.vendor
    assert sum(store.reader.counts(t)[0] for t in tables) == 200
    assert store.counters().write_errors == 0


def test_register_is_idempotent_and_updates_name(store):
    first = store.register_device(Device(mac="AA:00:00:00:00:01", name="old"))
    assert store.register_device(Device(mac="aa:00:00:00:00:01", ip="10.1.1.1")) == first
    assert store.register_device(Device(ip="10.1.1.1", name="new", vendor="V")) == first
    (info,) = store.reader.devices()
    assert (info.mac, info.ip) == ("aa:00:00:00:00:01", "10.1.1.1")
    assert (info.name, info.vendor) == ("new", "V")
    # an IP now used by a different MAC is a different device (DHCP reuse), not a merge
    other = store.register_device(Device(mac="aa:00:00:00:00:02", ip="10.1.1.1"))
    assert other != first
    assert len(store.reader.devices()) == 2


def test_device_without_address_is_refused(store):
    with pytest.raises(ValueError):
        store.register_device(Device(name="ghost"))


def test_lone_surrogate_name_is_stored_replaced(store):
    table = store.register_device(Device(mac="aa:00:00:00:00:09", name="bad\udcffname"))
    (info,) = [d for d in store.reader.devices() if d.table_name == table]
    assert info.name == "bad\ufffdname"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.text(st.characters(blacklist_categories=("Cs",)), max_size=400))
def test_any_name_round_trips_exactly(store, name):
    table = store.register_device(Device(mac="02:00:00:00:00:77", name=name or "x"))
    assert TABLE_NAME_PATTERN.fullmatch(table)
    (info,) = [d for d in store.reader.devices() if d.table_name == table]
    assert info.name == (name or "x")

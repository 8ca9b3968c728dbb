"""The store's public names in one place: ``from jixiaoan.storage.store import PacketStore``."""

from jixiaoan.storage.reader import DeviceInfo, PacketRow, Rates, StoreReader
from jixiaoan.storage.schema import StoreError
from jixiaoan.storage.writer import OnCommit, PacketStore, StoreCounters

__all__ = [
    "DeviceInfo",
    "OnCommit",
    "PacketRow",
    "PacketStore",
    "Rates",
    "StoreCounters",
    "StoreError",
    "StoreReader",
]

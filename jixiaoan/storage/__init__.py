"""Per-device SQLite packet store (stdlib ``sqlite3``).

``writer.PacketStore`` owns one writer thread and one connection (WAL, synchronous=NORMAL) and
takes ``ClassifiedBatch``es through a bounded, never-blocking queue; a converter thread turns
batches into rows (``rows``) and a checkpoint thread keeps WAL checkpoints off the writer
(``checkpoint``). ``reader.StoreReader`` gives other threads read-only access
(``PacketStore.reader`` is one). ``synthetic`` makes batches for tests and benchmarks.
Schema (``schema``):

- one table per watched device, ``dev_<12 hex of sha256(mac|ip)>``: ``Index`` INTEGER PRIMARY
  KEY, ``Time`` REAL (capture time), ``SourceAddr``/``DestAddr`` TEXT (IP, else MAC),
  ``Length`` INTEGER (wire length), ``Type`` TEXT (protocol), ``IsBad`` INTEGER NULL (NULL = not
  classified), ``AllData`` BLOB (captured bytes), ``Attack`` TEXT NULL, ``Score`` REAL NULL;
  index on (Time, IsBad);
- ``devices`` (id, mac, ip, name, vendor, table_name, first_seen, last_seen, rows_total,
  rows_malicious, rows_unclassified): the row counters are kept by the writer in the same
  transactions as the inserts, retention deletes and verdict updates;
- ``meta`` (key, value): ``schema_version``, ``model_name``.
"""

"""Turn a ClassifiedBatch into insert rows per watched device, with numpy column operations.

Addresses are converted to text once per distinct address of the batch, not per packet; the
per-row tuples are assembled by ``zip`` over column lists (no Python code runs per packet).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from jixiaoan.capture.batch import PROTOCOL_NAMES, HeaderBatch, ip_to_str, mac_to_str
from jixiaoan.engine.batch import ClassifiedBatch, Device

_PROTOCOL_NAMES = np.asarray(PROTOCOL_NAMES, dtype=object)


@dataclass
class BatchColumns:
    """Column arrays of one batch (object arrays hold Python values, None for SQL NULL)."""

    time: np.ndarray  # float64
    source: np.ndarray  # object: str
    dest: np.ndarray  # object: str
    length: np.ndarray  # int64
    type: np.ndarray  # object: str
    is_bad: np.ndarray  # object: 1, 0 or None
    data: np.ndarray  # object: bytes
    attack: np.ndarray  # object: str or None
    score: np.ndarray  # object: float or None

    def rows(self, index: np.ndarray) -> list[tuple]:
        """Insert tuples (column order of schema.PACKET_COLUMNS without Index) for the rows at
        ``index``."""
        return list(
            zip(
                self.time[index].tolist(),
                self.source[index].tolist(),
                self.dest[index].tolist(),
                self.length[index].tolist(),
                self.type[index].tolist(),
                self.is_bad[index].tolist(),
                self.data[index].tolist(),
                self.attack[index].tolist(),
                self.score[index].tolist(),
            )
        )


def address_texts(headers: HeaderBatch) -> tuple[np.ndarray, np.ndarray]:
    """Source and destination text of every packet: the IP when it has one, else the MAC
    ('' when neither is known). Each distinct address is formatted once."""
    n = len(headers)
    ips = np.ascontiguousarray(np.concatenate([headers.src_ip, headers.dst_ip]), dtype=np.uint8)
    macs = np.concatenate([headers.src_mac, headers.dst_mac]).astype(np.uint64)
    out = np.empty(2 * n, dtype=object)
    if n == 0:
        return out[:0], out[:0]
    ip_keys = ips.reshape(2 * n, 16).view(np.dtype((np.void, 16))).ravel()
    has_ip = ips.reshape(2 * n, 16).any(axis=1)
    if has_ip.any():
        uniq, inverse = np.unique(ip_keys[has_ip], return_inverse=True)
        texts = np.asarray([ip_to_str(u.tobytes()) for u in uniq], dtype=object)
        out[has_ip] = texts[inverse.ravel()]
    no_ip = ~has_ip
    if no_ip.any():
        uniq, inverse = np.unique(macs[no_ip], return_inverse=True)
        texts = np.asarray([mac_to_str(int(m)) if m else "" for m in uniq], dtype=object)
        out[no_ip] = texts[inverse.ravel()]
    return out[:n], out[n:]


def frame_blobs(batch: ClassifiedBatch) -> np.ndarray:
    """The captured bytes of every frame as an object array of ``bytes``."""
    frames = batch.frames
    n = len(frames)
    blobs = np.empty(n, dtype=object)
    if n:
        base = int(frames.offsets[0])
        raw = frames.data[base : int(frames.offsets[-1])].tobytes()
        starts = (frames.offsets[:-1] - base).tolist()
        ends = (frames.offsets[1:] - base).tolist()
        blobs[:] = list(map(raw.__getitem__, map(slice, starts, ends)))
    return blobs


def batch_columns(batch: ClassifiedBatch) -> BatchColumns:
    """All stored columns of a batch. ``is_bad`` -1 and NaN scores become NULL (None)."""
    h = batch.headers
    n = len(h)
    source, dest = address_texts(h)
    is_bad_raw = np.asarray(batch.is_bad, dtype=np.int64)
    is_bad = np.where(is_bad_raw < 0, None, (is_bad_raw > 0).astype(np.int64)).astype(object)
    score_raw = np.asarray(batch.score, dtype=np.float64)
    score = np.where(np.isnan(score_raw), None, score_raw).astype(object)
    names = np.asarray(list(batch.attack_names) + [None], dtype=object)
    attack_idx = np.asarray(batch.attack, dtype=np.int64)
    bad_idx = (attack_idx < 0) | (attack_idx >= len(batch.attack_names))
    attack = names[np.where(bad_idx, len(batch.attack_names), attack_idx)]
    proto = np.asarray(h.proto, dtype=np.int64)
    proto = np.where(proto < len(PROTOCOL_NAMES), proto, 0)
    return BatchColumns(
        time=np.asarray(h.ts, dtype=np.float64),
        source=source,
        dest=dest,
        length=np.asarray(h.length, dtype=np.int64),
        type=_PROTOCOL_NAMES[proto] if n else np.empty(0, dtype=object),
        is_bad=is_bad,
        data=frame_blobs(batch),
        attack=attack,
        score=score,
    )


def device_row_indices(batch: ClassifiedBatch) -> Iterator[tuple[int, np.ndarray]]:
    """``(device index, packet indices)`` for every watched device with packets in the batch;
    a packet between two watched devices is listed under both (once when src == dst)."""
    src = np.asarray(batch.src_device, dtype=np.int64)
    dst = np.asarray(batch.dst_device, dtype=np.int64)
    present = np.union1d(src[src >= 0], dst[dst >= 0])
    for dev in present.tolist():
        if dev >= len(batch.devices):
            continue
        idx = np.flatnonzero((src == dev) | (dst == dev))
        yield dev, idx


DeviceKey = tuple[str, str, str, str]  # mac, ip, name, vendor as given by the engine


@dataclass
class DeviceRows:
    """Rows of one device gathered from a chunk of batches, with their counters."""

    device: Device
    rows: list[tuple] = field(default_factory=list)
    first: float = np.inf
    last: float = -np.inf
    total: int = 0
    malicious: int = 0
    unclassified: int = 0


@dataclass
class PreparedChunk:
    """Consecutive queued batches turned into per-device rows, ready for one transaction.
    A batch that cannot be converted is left out whole and its error listed."""

    last_seq: int
    n_batches: int  # batches converted (stored when the transaction commits)
    devices: dict[DeviceKey, DeviceRows]
    min_ts: float = np.inf
    max_ts: float = -np.inf
    errors: list[str] = field(default_factory=list)


def check_lengths(batch: ClassifiedBatch) -> None:
    """Raise ValueError unless every per-packet array of the batch has the same length."""
    n = len(batch.headers)
    arrays = {
        "frames": len(batch.frames),
        "src_device": len(batch.src_device),
        "dst_device": len(batch.dst_device),
        "is_bad": len(batch.is_bad),
        "score": len(batch.score),
        "attack": len(batch.attack),
    }
    wrong = {k: v for k, v in arrays.items() if v != n}
    if wrong:
        raise ValueError(f"batch of {n} headers has arrays of other lengths: {wrong}")


def batch_device_rows(batch: ClassifiedBatch) -> list[DeviceRows]:
    """Rows and counters of one batch per watched device (nothing when the batch is empty)."""
    check_lengths(batch)
    if len(batch) == 0:
        return []
    cols = batch_columns(batch)
    flags_all = np.asarray(batch.is_bad, dtype=np.int64)
    out = []
    for dev, idx in device_row_indices(batch):
        times, flags = cols.time[idx], flags_all[idx]
        out.append(
            DeviceRows(
                device=batch.devices[dev],
                rows=cols.rows(idx),
                first=float(times.min()),
                last=float(times.max()),
                total=len(idx),
                malicious=int((flags > 0).sum()),
                unclassified=int((flags < 0).sum()),
            )
        )
    return out


def prepare_chunk(items: list[tuple[int, ClassifiedBatch]]) -> PreparedChunk:
    """Convert ``(sequence number, batch)`` pairs into per-device rows."""
    chunk = PreparedChunk(last_seq=items[-1][0], n_batches=0, devices={})
    for _, batch in items:
        try:
            parts = batch_device_rows(batch)
        except Exception as exc:  # noqa: BLE001 - a malformed batch must not stop the store
            chunk.errors.append(f"cannot convert batch: {exc!r}")
            continue
        chunk.n_batches += 1
        for part in parts:
            d = part.device
            key = (d.mac, d.ip, d.name, d.vendor)
            acc = chunk.devices.get(key)
            if acc is None:
                chunk.devices[key] = part
            else:
                acc.rows.extend(part.rows)
                acc.first, acc.last = min(acc.first, part.first), max(acc.last, part.last)
                acc.total += part.total
                acc.malicious += part.malicious
                acc.unclassified += part.unclassified
            chunk.min_ts = min(chunk.min_ts, part.first)
            chunk.max_ts = max(chunk.max_ts, part.last)
    return chunk

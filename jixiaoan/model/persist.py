"""Model directories: weights in safetensors, everything else in a JSON card, nothing executable.

A model directory holds two files:

- ``weights.safetensors``: every tensor, flat names such as ``kitnet.ensemble.weight``;
- ``card.json``: plain JSON (configuration, class names, thresholds, metrics) plus
  ``weights_sha256``, the SHA-256 of the weights file, checked on every load.

Loading never runs code from the files: no pickle, no ``torch.load``. The card is parsed by
``json``, the weights by safetensors (a JSON header and raw little-endian buffers); anything
else, including a pickle renamed to ``weights.safetensors``, is rejected with
:class:`ModelFileError`.

Nested parameter groups (lists of ragged integer arrays, dicts of arrays) are stored flat with
:func:`flatten_tensors` / :func:`unflatten_tensors` and :func:`pack_ragged` /
:func:`unpack_ragged`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load as _safetensors_load
from safetensors.numpy import save as _safetensors_save

WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "card.json"
FORMAT = "jixiaoan-model/1"
_MAX_CARD_BYTES = 16 * 1024 * 1024


class ModelFileError(ValueError):
    """A model directory that is missing, malformed, tampered with or not ours."""


def _as_numpy(name: str, value: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"tensor {name!r}: dtype {arr.dtype} cannot be stored")
    return np.ascontiguousarray(arr)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_model_dir(
    out_dir: str | os.PathLike,
    tensors: Mapping[str, np.ndarray | torch.Tensor],
    card: Mapping[str, Any],
) -> Path:
    """Write ``tensors`` to ``weights.safetensors`` and ``card`` (plus the weights' SHA-256)
    to ``card.json`` in ``out_dir`` (created if needed); returns the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {str(k): _as_numpy(str(k), v) for k, v in tensors.items()}
    blob = _safetensors_save(arrays, metadata={"format": FORMAT})
    full_card = dict(card)
    full_card["format"] = FORMAT
    full_card["weights_file"] = WEIGHTS_FILE
    full_card["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    text = json.dumps(full_card, indent=2, sort_keys=True, allow_nan=False)
    _atomic_write(out / WEIGHTS_FILE, blob)
    _atomic_write(out / CARD_FILE, text.encode("utf-8"))
    return out


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_card(model_dir: str | os.PathLike) -> dict[str, Any]:
    """The card of a model directory, parsed as plain JSON and checked for our format."""
    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        raise ModelFileError(f"{model_dir}: no {CARD_FILE}; not a model directory")
    if path.stat().st_size > _MAX_CARD_BYTES:
        raise ModelFileError(f"{path}: card larger than {_MAX_CARD_BYTES} bytes")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(card, dict):
        raise ModelFileError(f"{path}: card must be a JSON object")
    if card.get("format") != FORMAT:
        raise ModelFileError(f"{path}: unknown model format {card.get('format')!r}")
    if not isinstance(card.get("weights_sha256"), str):
        raise ModelFileError(f"{path}: card has no weights_sha256")
    return card


def load_model_dir(model_dir: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a directory written by :func:`save_model_dir`: ``(tensors, card)``.

    The weights' SHA-256 must match the card, and the weights must parse as safetensors;
    otherwise :class:`ModelFileError` is raised. No code from the files is ever run.
    """
    card = load_card(model_dir)
    wpath = Path(model_dir) / WEIGHTS_FILE
    if not wpath.is_file():
        raise ModelFileError(f"{model_dir}: no {WEIGHTS_FILE}")
    blob = wpath.read_bytes()
    actual = hashlib.sha256(blob).hexdigest()
    if actual != card["weights_sha256"]:
        raise ModelFileError(
            f"{wpath}: SHA-256 mismatch (card says {card['weights_sha256']}, file is {actual}); "
            "the weights were modified or belong to another model"
        )
    try:
        tensors = _safetensors_load(blob)
    except (SafetensorError, ValueError, TypeError, OverflowError) as exc:
        raise ModelFileError(f"{wpath}: not a valid safetensors file ({exc})") from exc
    return dict(tensors), card


def flatten_tensors(
    nested: Mapping[str, Any] | Sequence[Any], prefix: str = ""
) -> dict[str, np.ndarray]:
    """Flatten nested dicts / lists of arrays into ``{"a.b.0": array}`` names.

    Dict keys must not contain dots; list items are numbered from 0.
    """
    flat: dict[str, np.ndarray] = {}

    def walk(node: Any, name: str) -> None:
        if isinstance(node, Mapping):
            for key, child in node.items():
                if "." in str(key) or not str(key):
                    raise ValueError(f"key {key!r} under {name!r} must be non-empty, without '.'")
                walk(child, f"{name}.{key}" if name else str(key))
        elif isinstance(node, list | tuple):
            for i, child in enumerate(node):
                walk(child, f"{name}.{i}" if name else str(i))
        else:
            flat[name] = _as_numpy(name, node)

    walk(nested, prefix)
    return flat


def unflatten_tensors(flat: Mapping[str, np.ndarray], prefix: str = "") -> Any:
    """Inverse of :func:`flatten_tensors` for the names under ``prefix`` (all names if empty).

    A level whose keys are exactly ``0..k-1`` becomes a list, every other level a dict.
    """
    root: dict[str, Any] = {}
    head = prefix + "." if prefix else ""
    for name, value in flat.items():
        if name == prefix and prefix:
            return value
        if not name.startswith(head):
            continue
        parts = name[len(head) :].split(".")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    if not root:
        raise KeyError(f"no tensors under {prefix!r}")

    def listify(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        node = {k: listify(v) for k, v in node.items()}
        keys = sorted(int(k) for k in node) if all(k.isdigit() for k in node) else None
        if keys == list(range(len(node))):
            return [node[str(i)] for i in range(len(node))]
        return node

    return listify(root)


def pack_ragged(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate 1-D arrays into ``(values, offsets)``; item ``i`` is
    ``values[offsets[i]:offsets[i + 1]]``."""
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = np.concatenate([np.asarray(a).ravel() for a in arrays]) if arrays else np.zeros(0)
    return values, offsets


def unpack_ragged(values: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """Inverse of :func:`pack_ragged` (validates the offsets)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(values):
        raise ModelFileError("ragged offsets do not match their values")
    if np.any(np.diff(offsets) < 0):
        raise ModelFileError("ragged offsets are not increasing")
    return [values[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]

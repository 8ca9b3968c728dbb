"""Model directories: safetensors + JSON card, SHA-256 check, pickles never executed."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

from jixiaoan.model.persist import (
    CARD_FILE,
    WEIGHTS_FILE,
    ModelFileError,
    flatten_tensors,
    load_model_dir,
    pack_ragged,
    save_model_dir,
    sha256_file,
    unflatten_tensors,
    unpack_ragged,
)


def sample_tensors() -> dict:
    return {
        "a.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
        "a.bias": torch.tensor([1.5, -2.0]),
        "groups": np.array([3, 1, 2], dtype=np.int64),
        "flags": np.array([1, 0], dtype=np.uint8),
    }


def test_round_trip(tmp_path) -> None:
    out = save_model_dir(tmp_path / "m", sample_tensors(), {"classes": ["benign", "x"], "t": 0.5})
    tensors, card = load_model_dir(out)
    assert set(tensors) == {"a.weight", "a.bias", "groups", "flags"}
    np.testing.assert_array_equal(tensors["a.weight"], sample_tensors()["a.weight"])
    np.testing.assert_array_equal(tensors["a.bias"], np.array([1.5, -2.0], np.float32))
    assert tensors["groups"].dtype == np.int64
    assert card["classes"] == ["benign", "x"] and card["t"] == 0.5
    assert card["weights_sha256"] == sha256_file(out / WEIGHTS_FILE)


class _Marker:
    """Pickled, this would create a file when unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickle_payload_is_rejected_and_never_run(tmp_path) -> None:
    marker = tmp_path / "pwned"
    model = save_model_dir(tmp_path / "m", sample_tensors(), {})
    torch.save({"x": _Marker(str(marker))}, model / WEIGHTS_FILE)
    # an attacker controls the card too: give it the payload's hash so only the parser stands
    card = json.loads((model / CARD_FILE).read_text())
    card["weights_sha256"] = sha256_file(model / WEIGHTS_FILE)
    (model / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="not a valid safetensors"):
        load_model_dir(model)
    assert not marker.exists()
    # the payload is live: an unsafe loader would have run it
    shutil.copy(model / WEIGHTS_FILE, tmp_path / "payload.pt")
    torch.load(tmp_path / "payload.pt", weights_only=False)
    assert marker.exists()


def test_tampered_weights_fail_the_hash_check(tmp_path) -> None:
    model = save_model_dir(tmp_path / "m", sample_tensors(), {})
    blob = bytearray((model / WEIGHTS_FILE).read_bytes())
    blob[-1] ^= 0x01  # flip a bit inside the last tensor's data
    (model / WEIGHTS_FILE).write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="SHA-256 mismatch"):
        load_model_dir(model)


def test_weights_of_another_model_are_refused(tmp_path) -> None:
    one = save_model_dir(tmp_path / "one", sample_tensors(), {})
    two = save_model_dir(tmp_path / "two", {"w": np.zeros(3, np.float32)}, {})
    shutil.copy(two / WEIGHTS_FILE, one / WEIGHTS_FILE)
    with pytest.raises(ModelFileError, match="SHA-256"):
        load_model_dir(one)


@pytest.mark.parametrize(
    "card_text, message",
    [("not json", "not valid JSON"), ("[1, 2]", "JSON object"), ('{"format": "x"}', "format")],
)
def test_bad_cards_are_refused(tmp_path, card_text: str, message: str) -> None:
    model = save_model_dir(tmp_path / "m", sample_tensors(), {})
    (model / CARD_FILE).write_text(card_text)
    with pytest.raises(ModelFileError, match=message):
        load_model_dir(model)


def test_missing_files_are_refused(tmp_path) -> None:
    with pytest.raises(ModelFileError, match="not a model directory"):
        load_model_dir(tmp_path)
    model = save_model_dir(tmp_path / "m", sample_tensors(), {})
    os.remove(model / WEIGHTS_FILE)
    with pytest.raises(ModelFileError, match="no weights"):
        load_model_dir(model)


def test_object_arrays_cannot_be_saved(tmp_path) -> None:
    with pytest.raises(TypeError):
        save_model_dir(tmp_path / "m", {"o": np.array([object()], dtype=object)}, {})


def test_flatten_unflatten_nested_groups() -> None:
    nested = {"mapper": {"groups": [np.array([0, 2]), np.array([1])]}, "w": np.ones(2)}
    flat = flatten_tensors(nested, prefix="kitnet")
    assert set(flat) == {"kitnet.mapper.groups.0", "kitnet.mapper.groups.1", "kitnet.w"}
    back = unflatten_tensors(flat, prefix="kitnet")
    assert [g.tolist() for g in back["mapper"]["groups"]] == [[0, 2], [1]]
    assert unflatten_tensors(flat, prefix="kitnet.w").tolist() == [1.0, 1.0]
    with pytest.raises(ValueError):
        flatten_tensors({"a.b": np.ones(1)})
    with pytest.raises(KeyError):
        unflatten_tensors(flat, prefix="other")


def test_ragged_round_trip_and_validation() -> None:
    arrays = [np.array([5, 6, 7]), np.array([], dtype=np.int64), np.array([1])]
    values, offsets = pack_ragged(arrays)
    assert offsets.tolist() == [0, 3, 3, 4]
    assert [a.tolist() for a in unpack_ragged(values, offsets)] == [[5, 6, 7], [], [1]]
    with pytest.raises(ModelFileError):
        unpack_ragged(values, np.array([0, 5]))
    with pytest.raises(ModelFileError):
        unpack_ragged(values, np.array([0, 3, 2, 4]))

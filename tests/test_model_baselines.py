"""Baselines: header decoding, the Detector contract, learning synthetic tasks."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from jixiaoan.features.batch import PAD_INDEX, FeatureBatch
from jixiaoan.model.baselines import ClassicBaseline, KitNETDetector
from jixiaoan.model.classic_features import HEADER_FIELDS, classic_features, header_fields
from jixiaoan.model.verdict import Detector, TrainingData

NB = 64
FAST_KITNET = {"threads": 1, "min_steps": 300, "batch_size": 256, "epochs": 2, "lr": 3e-2}


def ipv4(proto: int, payload: bytes, ttl: int = 64, frag: int = 0) -> bytes:
    total = 20 + len(payload)
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, frag, ttl, proto, 0, bytes(4), bytes(4))
    return head + payload


def tcp(sport: int, dport: int, flags: int, window: int = 1024) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 0x50, flags, window, 0, 0)


def udp(sport: int, dport: int, body: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(body), 0) + body


def ethernet(ethertype: int, payload: bytes) -> bytes:
    return bytes(12) + struct.pack("!H", ethertype) + payload


def as_index(frames: list[bytes]) -> np.ndarray:
    out = np.full((len(frames), NB), PAD_INDEX, np.uint16)
    for i, f in enumerate(frames):
        f = f[:NB]
        out[i, : len(f)] = np.frombuffer(f, np.uint8)
    return out


def test_header_fields_decode_common_link_layers() -> None:
    ipv6_udp = struct.pack("!IHBB16s16s", 0x60000000, 8 + 4, 17, 255, bytes(16), bytes(16))
    ipv6_udp += udp(5353, 5353, b"abcd")
    frames = [
        ethernet(0x0800, ipv4(6, tcp(40000, 443, 0x02))),
        ethernet(0x8100, b"\x00\x05\x08\x00" + ipv4(17, udp(53, 1234), ttl=7)),
        ethernet(0x86DD, ipv6_udp),
        ipv4(1, b"\x08\x00" + bytes(6)),  # raw IP, ICMP echo
        ethernet(0x0806, bytes(28)),  # ARP
        b"\x00\x04\x00\x01\x00\x06" + bytes(8) + b"\x08\x00" + ipv4(6, tcp(1, 2, 0x12)),  # SLL
        b"\x02\x00\x00\x00" + ipv4(17, udp(7, 9)),  # BSD loopback
        ethernet(0x0800, ipv4(6, tcp(80, 81, 0x10), frag=5)),  # non-first fragment: no ports
    ]
    h = header_fields(as_index(frames))
    assert h.shape == (len(frames), len(HEADER_FIELDS)) and h.dtype == np.float32
    col = {name: h[:, i].tolist() for i, name in enumerate(HEADER_FIELDS)}
    assert col["ip_version"] == [4, 4, 6, 4, -1, 4, 4, 4]
    assert col["ip_proto"] == [6, 17, 17, 1, -1, 6, 17, 6]
    assert col["src_port"] == [40000, 53, 5353, -1, -1, 1, 7, -1]
    assert col["dst_port"] == [443, 1234, 5353, -1, -1, 2, 9, -1]
    assert col["tcp_flags"] == [2, -1, -1, -1, -1, 0x12, -1, -1]
    assert col["ttl"][:3] == [64, 7, 255]
    assert col["ip_length"][:4] == [40, 28, 52, 28]
    assert col["icmp_type"][3] == 8
    assert col["captured_bytes"][0] == 54 and col["captured_bytes"][2] == 64


def synthetic_files(seed: int, n_files: int = 6, n: int = 300, classes: int = 3, order=None):
    """Files whose class is written in their AfterImage features and their ports: file k holds
    class ``order[k]`` (default k % classes). Benign AfterImage rows are correlated blocks
    (10 blocks of 10 features, 2 latent factors each); attack class c adds independent noise
    of scale 1.5 c, which breaks those correlations."""
    rng = np.random.default_rng(seed)
    loadings = np.random.default_rng(0).normal(size=(10, 2, 10))
    order = [k % classes for k in range(n_files)] if order is None else order
    files, labels = [], []
    for k in range(n_files):
        c = order[k]
        z = rng.normal(size=(n, 10, 2))
        ai = np.einsum("nbk,bkf->nbf", z, loadings).reshape(n, 100) + 0.2 * rng.normal(
            size=(n, 100)
        )
        ai += 1.5 * c * rng.normal(size=(n, 100))
        ai = ai.astype(np.float32)
        ports = [80, 22, 23][c]
        frames = [
            ethernet(0x0800, ipv4(6, tcp(int(p), ports, 0x18)))
            for p in rng.integers(1024, 65535, n)
        ]
        files.append(
            FeatureBatch(
                byte_idx=as_index(frames),
                freq=np.zeros((n, 9), np.float32),
                afterimage=ai,
                session=np.arange(n, dtype=np.int64) + 1000 * k,
                pos=np.zeros(n, np.int32),
                ts=np.arange(n, dtype=np.float64),
            )
        )
        labels.append(np.full(n, c, np.int16))
    return files, labels


def training_data(seed: int = 0, frac: float = 0.5, classes: int = 3, order=None) -> TrainingData:
    files, labels = synthetic_files(seed, classes=classes, order=order)
    rng = np.random.default_rng(seed + 100)
    labelled = [rng.random(len(y)) < frac for y in labels]
    names = ("benign", "ddos", "scan")[:classes]
    return TrainingData(files, labels, labelled, names, [f"f{i}" for i in range(len(files))])


def make(kind: str):
    if kind == "kitnet":
        return KitNETDetector(seed=0, **FAST_KITNET)
    return ClassicBaseline(seed=0, threads=1, max_iter=30)


@pytest.fixture(scope="module", params=["kitnet", "classic"])
def trained(request) -> Detector:
    det = make(request.param)
    det.learn_many(training_data())
    return det


def test_contract(trained: Detector) -> None:
    assert isinstance(trained, Detector)
    assert trained.classes[0] == "benign"
    test = FeatureBatch.concat(synthetic_files(7)[0])
    v = trained.predict_many(test)
    assert len(v) == len(test) and v.classes == trained.classes
    assert v.malicious_prob.dtype == np.float32 and v.label.dtype == np.int16
    assert np.all((v.malicious_prob >= 0) & (v.malicious_prob <= 1))
    assert np.array_equal(v.is_malicious, v.malicious_prob >= 0.5) or np.array_equal(
        v.is_malicious, v.malicious_prob > 0.5
    )
    assert np.all((v.label >= 0) & (v.label < len(v.classes)))
    empty = trained.predict_many(test.take(np.zeros(0, np.int64)))
    assert len(empty) == 0


def test_batch_order_and_cuts_do_not_change_verdicts(trained: Detector) -> None:
    test = FeatureBatch.concat(synthetic_files(8)[0])
    whole = trained.predict_many(test)
    perm = np.random.default_rng(0).permutation(len(test))
    shuffled = trained.predict_many(test.take(perm))
    np.testing.assert_allclose(shuffled.malicious_prob, whole.malicious_prob[perm], atol=1e-6)
    assert np.array_equal(shuffled.label, whole.label[perm])
    trained.reset()
    cut = [
        trained.predict_many(test.take(np.arange(s, min(s + 77, len(test)))))
        for s in range(0, len(test), 77)
    ]
    assert np.array_equal(np.concatenate([c.label for c in cut]), whole.label)


@pytest.mark.parametrize("kind", ["kitnet", "classic"])
def test_deterministic(kind: str) -> None:
    test = FeatureBatch.concat(synthetic_files(9, n_files=3, n=100)[0])
    out = []
    for _ in range(2):
        det = make(kind)
        det.learn_many(training_data())
        out.append(det.predict_many(test))
    np.testing.assert_array_equal(out[0].malicious_prob, out[1].malicious_prob)
    np.testing.assert_array_equal(out[0].label, out[1].label)


def test_classic_learns_separable_task() -> None:
    det = ClassicBaseline(seed=0, threads=1, max_iter=30)
    det.learn_many(training_data(frac=0.2))
    assert det.classes == ("benign", "ddos", "scan")
    files, labels = synthetic_files(11)
    v = det.predict_many(FeatureBatch.concat(files))
    y = np.concatenate(labels)
    assert (v.label == y).mean() > 0.98
    assert v.attack_names()[y == 2][0] == "scan"
    probs = det.predict_proba(FeatureBatch.concat(files))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(1.0 - probs[:, 0], v.malicious_prob, atol=1e-6)


def test_classic_uses_header_fields() -> None:
    files, _ = synthetic_files(12, n_files=1, n=4)
    X = classic_features(files[0])
    assert X.shape == (4, 100 + len(HEADER_FIELDS))
    assert np.all(X[:, 100 + HEADER_FIELDS.index("dst_port")] == 80)


def test_classic_with_one_labelled_class_predicts_it() -> None:
    data = training_data(classes=3)
    data.labelled = [np.asarray(y == 0) for y in data.labels]
    det = ClassicBaseline(seed=0, threads=1, max_iter=5)
    det.learn_many(data)
    v = det.predict_many(data.files[1])
    assert not v.is_malicious.any() and np.all(v.malicious_prob == 0)


def test_kitnet_detector_flags_anomalous_files() -> None:
    mostly_benign = [0, 0, 0, 0, 1, 2]
    data = training_data(order=mostly_benign)
    for k in (4, 5):  # attacks are a small share of the training traffic (about 9 %)
        keep = np.arange(60)
        data.files[k] = data.files[k].take(keep)
        data.labels[k], data.labelled[k] = data.labels[k][keep], data.labelled[k][keep]
    det = make("kitnet")
    det.learn_many(data)
    assert det.classes == ("benign", "malicious")
    files, labels = synthetic_files(13, order=mostly_benign)
    v = det.predict_many(FeatureBatch.concat(files))
    y = np.concatenate(labels) > 0
    assert v.anomaly is not None and v.anomaly.dtype == np.float32
    assert (v.is_malicious == y).mean() > 0.9


def test_kitnet_detector_quantile_rule_and_save_load(tmp_path) -> None:
    data = training_data(classes=2)
    det = KitNETDetector(seed=0, threshold_rule="quantile", benign_quantile=0.9, **FAST_KITNET)
    det.learn_many(data)
    assert det.classes == ("benign", "ddos")
    benign = FeatureBatch.concat([f for f, y in zip(data.files, data.labels) if y[0] == 0])
    share = det.predict_many(benign).is_malicious.mean()
    assert 0.02 < share < 0.25
    det.save(tmp_path / "k")
    again = KitNETDetector.load(tmp_path / "k")
    a, b = det.predict_many(benign), again.predict_many(benign)
    np.testing.assert_array_equal(a.malicious_prob, b.malicious_prob)
    assert again.classes == det.classes and again.threshold == det.threshold


def test_untrained_detectors_refuse_to_predict() -> None:
    batch = synthetic_files(0, n_files=1, n=3)[0][0]
    with pytest.raises(RuntimeError):
        KitNETDetector().predict_many(batch)
    with pytest.raises(RuntimeError):
        ClassicBaseline().predict_many(batch)


def test_class_balance_gives_every_class_the_same_total_weight() -> None:
    from jixiaoan.model.baselines import _balance_classes, _file_weights

    y = np.array([0] * 90 + [1] * 8 + [3] * 2)
    w = _balance_classes(y, np.ones(len(y)))
    totals = np.bincount(y, weights=w)
    np.testing.assert_allclose(totals[[0, 1, 3]], totals[0])
    assert totals[2] == 0
    fw = _file_weights(np.array([10, 1000, 0, 1]), max_weight=5.0)
    assert fw[2] == 0 and fw[3] == 5.0 and fw[0] * 10 == pytest.approx(fw[1] * 1000)


def test_threshold_rules() -> None:
    data = training_data(order=[0, 0, 1, 1, 2, 2])  # most labelled packets are malicious
    thresholds = {}
    for rule in ("youden", "f1", "quantile"):
        det = KitNETDetector(seed=0, threshold_rule=rule, **FAST_KITNET)
        det.learn_many(data)
        thresholds[rule] = det.threshold
    assert thresholds["f1"] <= thresholds["youden"]
    assert len(set(thresholds.values())) >= 2
    with pytest.raises(ValueError):
        KitNETDetector(threshold_rule="max")

"""What could reach 300k pkt/s of model inference: smaller DETs and ONNX Runtime, measured.

Runs on the features of a real capture (the ``jixiaoan bench`` capture, or any pcap), in
batches of 16,384 packets, and prints packets/s (best of ``--repeats``) for:

- ``stream``: the product's streaming DET (``DETStream``, per-session caches), torch;
- ``offline torch``: ``DET.forward`` over the batch laid out session by session (every token
  recomputes its window, what streaming saves);
- ``offline onnxruntime``: the same forward exported to ONNX and run by ONNX Runtime
  (``pip install onnxruntime onnx onnxscript``; skipped with a message when missing);
- ``kitnet``: the shipped KitNET score, which ESeT runs beside the DET.

for the shipped DET size and smaller ones (random weights: speed does not depend on them).
The shipped model's own weights are used for its size, so the ONNX outputs are also checked
against torch. Run:

    PYTHONPATH=. .venv/bin/python benchmarks/bench_det_backends.py --capture CAPTURE
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as nnf

from jixiaoan.capture.parse import parse_headers
from jixiaoan.capture.pcapfile import read_capture
from jixiaoan.cli import load_detector
from jixiaoan.features.batch import FeatureBatch
from jixiaoan.features.extractor import FeatureExtractor
from jixiaoan.model.det import DET, N_BYTE_VALUES, session_order
from jixiaoan.model.det_stream import DETStream

BATCH = 16384


class _Forward(nn.Module):
    """``DET.forward`` + softmax with the byte table folded in, in exportable operations."""

    def __init__(self, det: DET, gather_bag: bool = False):
        super().__init__()
        self.det, self.gather_bag = det, gather_bag
        with torch.no_grad():
            self.register_buffer("table", det.lookup_table().detach().clone())
        offsets = torch.arange(det.cfg.n_bytes, dtype=torch.long) * N_BYTE_VALUES
        self.register_buffer("offsets", offsets)

    def forward(self, byte_idx, freq, pos, context):
        det, cfg = self.det, self.det.cfg
        rows = byte_idx + self.offsets
        if self.gather_bag:  # embedding_bag exports as a slow loop
            bag = self.table[rows].sum(1)
        else:
            bag = nnf.embedding_bag(rows, self.table, mode="sum")
        pos_bias = det.pos_embed + det.byte_proj.bias
        p = pos_bias[pos.clamp(0, cfg.max_pos - 1)]
        x = bag + p + det.freq_residual(freq) * det.alpha
        offs = torch.arange(-(cfg.window - 1), 1)
        valid = context.unsqueeze(1) + offs >= 0
        for layer in det.layers:
            q, k, v = layer.project(x)
            x = layer.finish(x, layer.attend_shifted(q, k, v, valid))
        return torch.softmax(det.head(x), dim=-1)


def _flat_inputs(batch: FeatureBatch) -> tuple[torch.Tensor, ...]:
    """The batch session by session, with each token's in-batch context."""
    order, rank, _ = session_order(np.asarray(batch.session, dtype=np.int64))
    return (
        torch.from_numpy(batch.byte_idx[order].astype(np.int64)),
        torch.from_numpy(np.nan_to_num(batch.freq[order]).astype(np.float32)),
        torch.from_numpy(batch.pos[order].astype(np.int64)),
        torch.from_numpy(rank.astype(np.int64)),
    )


def _best(fn, n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def _onnx_session(module: nn.Module, example, threads: int):
    """An ONNX Runtime session for ``module``, or None (with the reason) when unavailable."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None, "onnxruntime not installed"
    path = os.path.join(tempfile.mkdtemp(prefix="jx-onnx-"), "det.onnx")
    n = torch.export.Dim("n", min=2)
    shapes = ({0: n}, {0: n}, {0: n}, {0: n})
    try:
        torch.onnx.export(module, example, path, dynamo=True, dynamic_shapes=shapes,
                          input_names=["byte_idx", "freq", "pos", "context"], verbose=False)
    except Exception as exc:  # noqa: BLE001 - report any exporter failure and go on
        return None, f"export failed: {exc}"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"]), ""


def measure(det: DET, feats: list[FeatureBatch], threads: int, repeats: int) -> dict:
    """Packets/s of every backend for one DET."""
    det = det.eval()
    n = sum(len(f) for f in feats)
    out: dict[str, float | str] = {}
    stream = DETStream(det, threads=0)
    torch.set_num_threads(threads)

    def run_stream() -> None:
        stream.reset()
        for f in feats:
            stream.predict_proba(f)

    out["stream"] = _best(run_stream, n, repeats)
    flat = [_flat_inputs(f) for f in feats]
    with torch.inference_mode():
        module = _Forward(det).eval()
        out["offline torch"] = _best(lambda: [module(*x) for x in flat], n, repeats)
    module = _Forward(det, gather_bag=True).eval()
    with torch.no_grad():
        sess, why = _onnx_session(module, flat[0], threads)
    if sess is None:
        out["offline onnxruntime"] = why
        return out
    names = [i.name for i in sess.get_inputs()]
    feeds = [dict(zip(names, (t.numpy() for t in x), strict=True)) for x in flat]
    out["offline onnxruntime"] = _best(lambda: [sess.run(None, fd) for fd in feeds], n, repeats)
    with torch.inference_mode():
        ref = module(*flat[0]).numpy()
    out["onnx max |diff|"] = float(np.abs(sess.run(None, feeds[0])[0] - ref).max())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capture", required=True)
    ap.add_argument("--model", default=None, help="model directory (default: models/default)")
    ap.add_argument("--packets", type=int, default=131072, help="packets of the capture used")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    detector = load_detector(args.model)
    ext = FeatureExtractor(detector.feature_config)
    feats, n = [], 0
    for frames in read_capture(args.capture, batch_size=BATCH):
        feats.append(ext.transform(frames, parse_headers(frames)))
        n += len(frames)
        if n >= args.packets:
            break
    n = sum(len(f) for f in feats)
    print(f"{n} packets in {len(feats)} batches, {args.threads} threads")
    kit = detector.kitnet
    torch.set_num_threads(args.threads)
    rate = _best(lambda: [kit.score(f.afterimage) for f in feats], n, args.repeats)
    print(f"kitnet score (shipped): {rate:,.0f} pkt/s")
    base = detector.det.cfg
    sizes = {
        "shipped (d64, ff128, 2 layers)": None,
        "d32, ff64, 2 layers": replace(base, d_model=32, d_ff=64),
        "d64, ff128, 1 layer": replace(base, n_layers=1),
        "d32, ff64, 1 layer": replace(base, d_model=32, d_ff=64, n_layers=1),
    }
    for label, cfg in sizes.items():
        torch.manual_seed(0)
        det = detector.det if cfg is None else DET(cfg)
        if cfg is not None:
            det.fit_freq_scale(np.concatenate([f.freq for f in feats]))
        for name, value in measure(det, feats, args.threads, args.repeats).items():
            shown = f"{value:,.0f} pkt/s" if isinstance(value, float) and value > 1 else value
            print(f"{label:34s} {name:20s} {shown}")


if __name__ == "__main__":
    main()

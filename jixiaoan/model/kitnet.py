"""KitNET: Kitsune's ensemble of small autoencoders, trained in batch with torch (ESET.md s. 4).

Pipeline fitted by :meth:`KitNET.fit` on AfterImage features ``X`` (n, 100):

1. Optionally (``log_scale=True``) ``sign(x) * log1p(|x|)`` first. Measured on the corpus
   (366k packets, 30 % of the files held out): fitted on benign packets only, test AUC of
   benign vs malicious 0.87 / 0.87 / 0.81 (seeds 0-2) against 0.71 / 0.70 without; fitted on
   a per-file-weighted sample of all packets (30 % malicious, as ESeT does) 0.57 against 0.71.
   So it is off by default (Kitsune's plain min-max), on for mostly benign site traffic.
   Then min-max normalisation fitted on ``X`` (a constant feature gets range 1, so it stays 0 on
   training data and any later change shows up as reconstruction error). Scoring does not
   clip to [0, 1]: values outside the training range are exactly what should raise the RMSE.
2. Feature mapper: correlation distance ``1 - |corr|`` by default (``signed_corr=True`` gives
   the original Kitsune ``1 - corr``; with ``|corr|`` strongly anti-correlated features, which
   an autoencoder reconstructs just as well, land in the same group). Average-linkage
   hierarchical clustering (scipy); the dendrogram is split recursively until every group has
   at most ``max_group`` features. Features constant on the training data have no defined
   correlation; they form their own groups (chunks of ``max_group``).
3. One autoencoder per group, hidden size ``ceil(hidden_ratio * group size)``, sigmoid
   activations, tied weights (decoder = encoder transposed) as in the original. All group
   autoencoders live in one padded, batched module and are trained together with Adam on
   shuffled mini-batches (Adam's per-parameter scaling makes this the same as training each
   autoencoder alone).
4. The vector of group RMSEs, min-max normalised on the training data, feeds the output
   autoencoder (same design, one group), trained after the ensemble. Its RMSE is the score.

Scoring: a fused numba kernel for small batches, a block-diagonal dense form for big ones,
the batched torch modules as the reference. Saved by :meth:`KitNET.state` (safetensors).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch

from jixiaoan.model.kitnet_dense import dense_autoencoders, dense_rmse
from jixiaoan.model.kitnet_kernels import pack_autoencoders, score_kernel
from jixiaoan.model.kitnet_mapper import map_features
from jixiaoan.model.persist import (
    ModelFileError,
    load_model_dir,
    pack_ragged,
    save_model_dir,
    unpack_ragged,
)
from jixiaoan.model.threads import torch_threads

KERNEL_MAX_ROWS = 256  # measured crossover of the fused kernel and the dense path (BENCHMARKS.md)
_CLIP = 1e6  # normalised inputs are clipped to +-_CLIP so squared errors stay finite in float32


@dataclass(frozen=True)
class KitNETConfig:
    """KitNET settings; the defaults are the documented ones (ESET.md section 4)."""

    max_group: int = 10
    hidden_ratio: float = 0.75
    seed: int = 0
    epochs: int = 3
    output_epochs: int = 3
    batch_size: int = 1024
    lr: float = 1e-2
    min_steps: int = 600  # small data gets more epochs: at least this many Adam steps
    max_epochs: int = 200  # ... but never more epochs than this
    signed_corr: bool = False  # False: 1 - |corr|; True: 1 - corr (original Kitsune)
    linkage: str = "average"
    corr_rows: int = 200_000  # rows sampled (seeded) to estimate the correlation matrix
    log_scale: bool = False  # sign(x) * log1p(|x|) before min-max (see the module docstring)
    threads: int = 0  # torch CPU threads while fitting/scoring; 0 leaves torch's setting

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KitNETConfig:
        """Inverse of to_dict; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class GroupAutoencoders(torch.nn.Module):
    """Tied-weight sigmoid autoencoders, one per feature group, padded into one batched module."""

    def __init__(self, groups: list[np.ndarray], hidden_ratio: float, generator: torch.Generator):
        super().__init__()
        sizes = np.array([len(g) for g in groups], dtype=np.int64)
        hidden = np.array([hidden_size(int(s), hidden_ratio) for s in sizes], dtype=np.int64)
        n_groups, width, n_hidden = len(groups), int(sizes.max()), int(hidden.max())
        index = np.zeros((n_groups, width), dtype=np.int64)
        for i, g in enumerate(groups):
            index[i, : len(g)] = g
        in_mask = np.arange(width)[None, :] < sizes[:, None]
        hid_mask = np.arange(n_hidden)[None, :] < hidden[:, None]
        self.register_buffer("index", torch.from_numpy(index))
        self.register_buffer("in_mask", torch.from_numpy(in_mask.astype(np.float32)))
        self.register_buffer("hid_mask", torch.from_numpy(hid_mask.astype(np.float32)))
        self.register_buffer("sizes", torch.from_numpy(sizes.astype(np.float32)))
        w_mask = self.in_mask[:, :, None] * self.hid_mask[:, None, :]
        self.register_buffer("w_mask", w_mask)
        # Kitsune's initialisation: uniform(-1/n_visible, 1/n_visible)
        bound = torch.from_numpy((1.0 / sizes).astype(np.float32))[:, None, None]
        init = torch.rand((n_groups, width, n_hidden), generator=generator) * 2.0 - 1.0
        self.weight = torch.nn.Parameter(init * bound * w_mask)
        self.hidden_bias = torch.nn.Parameter(torch.zeros(n_groups, n_hidden))
        self.visible_bias = torch.nn.Parameter(torch.zeros(n_groups, width))

    def squared_error(self, x: torch.Tensor) -> torch.Tensor:
        """Per-group sum of squared reconstruction errors, (G, B), for normalised ``x`` (B, F)."""
        xg = x[:, self.index].transpose(0, 1) * self.in_mask[:, None, :]  # (G, B, width)
        w = self.weight * self.w_mask
        h = torch.sigmoid(torch.baddbmm(self.hidden_bias[:, None, :], xg, w))
        h = h * self.hid_mask[:, None, :]
        z = torch.sigmoid(torch.baddbmm(self.visible_bias[:, None, :], h, w.transpose(1, 2)))
        return (((z - xg) ** 2) * self.in_mask[:, None, :]).sum(dim=-1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Sum over groups of each autoencoder's mean squared error on the batch."""
        return (self.squared_error(x).mean(dim=1) / self.sizes).sum()

    def rmse(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample, per-group RMSE, (B, G)."""
        return torch.sqrt(self.squared_error(x) / self.sizes[:, None]).transpose(0, 1)


def _fit_minmax(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo = X.min(axis=0).astype(np.float32)
    span = (X.max(axis=0) - lo).astype(np.float32)
    return lo, np.where(span > 0, span, np.float32(1.0)).astype(np.float32)


def _clean(X: np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.asarray(X, dtype=np.float32), nan=0.0, posinf=3e38, neginf=-3e38)


class KitNET:
    """Kitsune's KitNET anomaly scorer; see the module docstring. ``score`` is the output RMSE."""

    def __init__(
        self, max_group: int = 10, hidden_ratio: float = 0.75, seed: int = 0, **settings: Any
    ) -> None:
        self.config = KitNETConfig(
            max_group=max_group, hidden_ratio=hidden_ratio, seed=seed, **settings
        )
        self.groups: list[np.ndarray] = []
        self.norm_min = self.norm_span = None
        self.out_min = self.out_span = None
        self.ensemble: GroupAutoencoders | None = None
        self.output: GroupAutoencoders | None = None
        self.n_features = 0
        self.epochs_run = 0
        self._packed = None  # scoring arrays of the fitted modules (built on first score)
        self._dense = None

    @property
    def is_fitted(self) -> bool:
        """True once fit (or a load) has run."""
        return self.output is not None

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        X = _clean(X)
        return np.sign(X) * np.log1p(np.abs(X)) if self.config.log_scale else X

    def _normalise(self, X: np.ndarray, prepared: bool = False) -> np.ndarray:
        Xn = ((X if prepared else self._prepare(X)) - self.norm_min) / self.norm_span
        return np.clip(Xn, -_CLIP, _CLIP, out=Xn)

    def fit(
        self, X: np.ndarray, epochs: int | None = None, batch_size: int | None = None
    ) -> KitNET:
        """Fit normaliser, mapper, the group autoencoders, then the output autoencoder."""
        with torch_threads(self.config.threads):
            return self._fit(X, epochs, batch_size)

    def _fit(self, X: np.ndarray, epochs: int | None, batch_size: int | None) -> KitNET:
        cfg = self.config
        epochs = cfg.epochs if epochs is None else epochs
        batch_size = cfg.batch_size if batch_size is None else batch_size
        if np.ndim(X) != 2 or len(X) < 2:
            raise ValueError(
                f"KitNET.fit needs a 2-D array with at least 2 rows, got {np.shape(X)}"
            )
        X = self._prepare(X)
        self.n_features = X.shape[1]
        self.norm_min, self.norm_span = _fit_minmax(X)
        Xn = self._normalise(X, prepared=True)
        rng = np.random.default_rng(cfg.seed)
        rows = (
            Xn
            if len(Xn) <= cfg.corr_rows
            else Xn[np.sort(rng.choice(len(Xn), cfg.corr_rows, replace=False))]
        )
        self.groups = map_features(rows, cfg.max_group, cfg.signed_corr, cfg.linkage)
        gen = torch.Generator().manual_seed(cfg.seed)
        self._packed = self._dense = None
        self.ensemble = GroupAutoencoders(self.groups, cfg.hidden_ratio, gen)
        Xt = torch.from_numpy(Xn)
        self.epochs_run = _train(self.ensemble, Xt, epochs, cfg, batch_size, gen)
        rmse = self._ensemble_rmse(Xt)
        self.out_min, self.out_span = _fit_minmax(rmse)
        Rn = torch.from_numpy(self._normalise_rmse(rmse))
        self.output = GroupAutoencoders([np.arange(len(self.groups))], cfg.hidden_ratio, gen)
        _train(self.output, Rn, cfg.output_epochs if epochs > 0 else 0, cfg, batch_size, gen)
        return self

    def _normalise_rmse(self, rmse: np.ndarray) -> np.ndarray:
        Rn = (rmse - self.out_min) / self.out_span
        return np.clip(Rn, -_CLIP, _CLIP, out=Rn).astype(np.float32, copy=False)

    @torch.no_grad()
    def _ensemble_rmse(self, Xt: torch.Tensor, chunk: int = 65536) -> np.ndarray:
        parts = [self.ensemble.rmse(Xt[s : s + chunk]) for s in range(0, len(Xt), chunk)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, len(self.groups)), np.float32)

    def group_rmse(self, X: np.ndarray) -> np.ndarray:
        """RMSE of every group autoencoder, float32 (n, n_groups)."""
        self._check(X)
        return self._ensemble_rmse(torch.from_numpy(self._normalise(X)))

    def score(self, X: np.ndarray) -> np.ndarray:
        """Anomaly score (output autoencoder RMSE) per row, float32 (n,). Batches of up to
        ``KERNEL_MAX_ROWS`` go through the fused kernel of ``kitnet_kernels`` (no per-call
        torch overhead: small live batches), bigger ones through :meth:`score_dense` (a few
        large matrix products); both give the figures of :meth:`score_torch`."""
        if len(X) > KERNEL_MAX_ROWS:
            return self.score_dense(X)
        return self.score_fused(X)

    def _packed_modules(self):
        if self._packed is None:
            self._packed = (pack_autoencoders(self.ensemble), pack_autoencoders(self.output))
        return self._packed

    def score_dense(self, X: np.ndarray) -> np.ndarray:
        """``score`` through the block-diagonal dense form (``kitnet_dense``), any batch size."""
        self._check(X)
        if self._dense is None:
            self._dense = tuple(dense_autoencoders(p) for p in self._packed_modules())
        ens, outer = self._dense
        with torch_threads(self.config.threads), torch.no_grad():
            rmse = dense_rmse(torch.from_numpy(self._normalise(X)), ens).numpy()
            rn = torch.from_numpy(self._normalise_rmse(rmse))
            return dense_rmse(rn, outer)[:, 0].numpy()

    def score_fused(self, X: np.ndarray) -> np.ndarray:
        """``score`` through the fused, single-threaded numba kernel, whatever the batch size."""
        self._check(X)
        ens, outer = self._packed_modules()
        return score_kernel(
            np.ascontiguousarray(X, dtype=np.float32), bool(self.config.log_scale),
            self.norm_min, self.norm_span, _CLIP, ens, outer, self.out_min, self.out_span,
        )  # fmt: skip

    def score_torch(self, X: np.ndarray, chunk: int = 65536) -> np.ndarray:
        """``score`` through the batched torch modules (the path for big batches, and the
        reference the kernel must match)."""
        self._check(X)
        with torch_threads(self.config.threads), torch.no_grad():
            return self._score_torch(X, chunk)

    def _score_torch(self, X: np.ndarray, chunk: int) -> np.ndarray:
        out = np.empty(len(X), dtype=np.float32)
        for s in range(0, len(X), chunk):
            Xt = torch.from_numpy(self._normalise(X[s : s + chunk]))
            Rn = torch.from_numpy(self._normalise_rmse(self._ensemble_rmse(Xt)))
            out[s : s + chunk] = self.output.rmse(Rn)[:, 0].numpy()
        return out

    def _check(self, X: np.ndarray) -> None:
        if not self.is_fitted:
            raise RuntimeError("KitNET is not fitted")
        if np.ndim(X) != 2 or np.shape(X)[1] != self.n_features:
            raise ValueError(f"expected (n, {self.n_features}) features, got {np.shape(X)}")

    # ---- persistence -------------------------------------------------------------------------

    def state(self, prefix: str = "kitnet") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``(tensors, config)``: flat named arrays and a JSON-ready dict that rebuild this
        model through :meth:`from_state`."""
        if not self.is_fitted:
            raise RuntimeError("KitNET is not fitted")
        values, offsets = pack_ragged(self.groups)
        t = {
            "norm.min": self.norm_min,
            "norm.span": self.norm_span,
            "mapper.groups.values": values.astype(np.int64),
            "mapper.groups.offsets": offsets,
            "output_norm.min": self.out_min,
            "output_norm.span": self.out_span,
        }
        for part, module in (("ensemble", self.ensemble), ("output", self.output)):
            for name, p in module.named_parameters():
                t[f"{part}.{name}"] = p.detach().numpy().copy()
        tensors = {f"{prefix}.{k}": np.asarray(v) for k, v in t.items()}
        config = {**self.config.to_dict(), "n_features": self.n_features}
        return tensors, config

    @classmethod
    def from_state(
        cls, tensors: dict[str, np.ndarray], config: dict[str, Any], prefix: str = "kitnet"
    ) -> KitNET:
        """Rebuild a fitted model from :meth:`state` output; raises ModelFileError when the
        arrays do not fit together."""
        cfg = KitNETConfig.from_dict(config)
        model = cls(**cfg.to_dict())
        try:
            t = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
            model.n_features = int(config["n_features"])
            model.norm_min = np.asarray(t["norm.min"], np.float32)
            model.norm_span = np.asarray(t["norm.span"], np.float32)
            model.out_min = np.asarray(t["output_norm.min"], np.float32)
            model.out_span = np.asarray(t["output_norm.span"], np.float32)
            groups = unpack_ragged(t["mapper.groups.values"], t["mapper.groups.offsets"])
            model.groups = [np.asarray(g, np.int64) for g in groups]
            covered = np.sort(np.concatenate(model.groups)) if model.groups else np.zeros(0)
            if not np.array_equal(covered, np.arange(model.n_features)):
                raise ModelFileError("mapper groups do not cover every feature exactly once")
            if model.norm_min.shape != (model.n_features,) or model.out_min.shape != (len(groups),):
                raise ModelFileError("normaliser shapes do not match the mapper")
            gen = torch.Generator().manual_seed(0)
            model.ensemble = GroupAutoencoders(model.groups, cfg.hidden_ratio, gen)
            model.output = GroupAutoencoders([np.arange(len(groups))], cfg.hidden_ratio, gen)
            for part, module in (("ensemble", model.ensemble), ("output", model.output)):
                for name, p in module.named_parameters():
                    value = torch.from_numpy(np.asarray(t[f"{part}.{name}"], np.float32).copy())
                    if value.shape != p.shape:
                        raise ModelFileError(f"{prefix}.{part}.{name}: shape {tuple(value.shape)}")
                    p.data.copy_(value)
        except KeyError as exc:
            raise ModelFileError(f"missing KitNET tensor {exc}") from exc
        return model

    def save(self, out_dir: str | os.PathLike, card: dict[str, Any] | None = None) -> None:
        """Write a model directory (see persist.py) holding this KitNET."""
        tensors, config = self.state()
        save_model_dir(out_dir, tensors, {**(card or {}), "kind": "kitnet", "kitnet": config})

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> KitNET:
        """Read a directory written by :meth:`save`."""
        tensors, card = load_model_dir(model_dir)
        if not isinstance(card.get("kitnet"), dict):
            raise ModelFileError(f"{model_dir}: card has no 'kitnet' section")
        return cls.from_state(tensors, card["kitnet"])


def _train(
    module: GroupAutoencoders,
    X: torch.Tensor,
    epochs: int,
    cfg: KitNETConfig,
    batch_size: int,
    gen: torch.Generator,
) -> int:
    """Adam on shuffled mini-batches of ``X`` (rows already normalised); returns the epochs run.

    ``epochs`` is raised so that at least ``cfg.min_steps`` steps run (capped at
    ``cfg.max_epochs``); ``epochs=0`` trains nothing.
    """
    n = len(X)
    if epochs > 0:
        steps_per_epoch = math.ceil(n / batch_size)
        epochs = min(
            max(epochs, math.ceil(cfg.min_steps / steps_per_epoch)), max(epochs, cfg.max_epochs)
        )
    # start each output unit at its feature's mean, so training learns structure, not offsets
    with torch.no_grad():
        mean = X.mean(dim=0).clamp(0.01, 0.99)
        module.visible_bias.copy_(torch.logit(mean[module.index]) * module.in_mask)
    opt = torch.optim.Adam(module.parameters(), lr=cfg.lr)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, batch_size):
            loss = module.loss(X[perm[s : s + batch_size]])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return epochs


def hidden_size(group_size: int, hidden_ratio: float = 0.75) -> int:
    """Hidden units of a group autoencoder: ``ceil(hidden_ratio * group_size)``, at least 1."""
    return max(1, math.ceil(hidden_ratio * group_size - 1e-9))

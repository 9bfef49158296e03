"""From feature-store arrays to network inputs: column selection, optional log, standardisation.

Per scale the store holds ``(N, C, K, 2)`` real/imaginary parts. Imaginary parts of coefficients that are real by
construction (``description['real']``) are identically zero and are dropped, as are columns that are constant over
the training windows (e.g. ``ps`` at a scale equal to the window under ``each_ps``). Means and standard deviations
are computed in float64 on the training split only and travel inside the checkpoint, so a model always sees its
inputs standardised exactly as in training, whatever subset of data it is applied to later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unmix.errors import DataError

CONSTANT_RTOL = 1e-5


@dataclass
class ScalePrep:
    """The fixed transform of one scale: which (coefficient, part) columns, which get a log, mean and std."""

    columns: np.ndarray  # (F, 2) int64: coefficient index, part (0 real, 1 imag)
    log: np.ndarray  # (F,) bool
    mean: np.ndarray  # (C, F) float64
    std: np.ndarray  # (C, F) float64, 0 where a column is constant for that component
    projection: np.ndarray | None = None  # (C·F, P) float64: principal axes of the standardised inputs, or None
    ps_index: np.ndarray | None = None  # ('shape') (J+1,) coefficient indices of the ps family, by jl1
    norm_pair: np.ndarray | None = None  # ('shape') (F, 2) positions in ps_index of σ_left, σ_right (-1: none)

    @property
    def n_features(self) -> int:
        """Input columns per component seen by the network."""
        return int(self.columns.shape[0] if self.projection is None else self.projection.shape[1])

    @property
    def channels(self) -> int:
        """Components seen by the network (1 after a projection, which mixes the components)."""
        return int(self.mean.shape[0] if self.projection is None else 1)

    def apply(self, a: np.ndarray) -> np.ndarray:
        """(N, C, K, 2) store array → (N, C, F) float32 standardised inputs, or (N, 1, P) projected ones."""
        x = _shape(a, self.columns, self.ps_index, self.norm_pair) if self.ps_index is not None else \
            a[:, :, self.columns[:, 0], self.columns[:, 1]].astype(np.float64)
        if self.log.any():
            x[..., self.log] = np.log(np.maximum(x[..., self.log], np.finfo(np.float64).tiny))
        scale = np.divide(1.0, self.std, out=np.zeros_like(self.std), where=self.std > 0)
        x = (x - self.mean) * scale
        if self.projection is not None:
            x = (x.reshape(len(x), -1) @ self.projection)[:, None, :]
        return x.astype(np.float32)

    def to_state(self) -> dict:
        state = {"columns": torch.from_numpy(self.columns), "log": torch.from_numpy(self.log),
                 "mean": torch.from_numpy(self.mean), "std": torch.from_numpy(self.std)}
        for name in ("projection", "ps_index", "norm_pair"):
            if getattr(self, name) is not None:
                state[name] = torch.from_numpy(getattr(self, name))
        return state

    @classmethod
    def from_state(cls, d: dict) -> ScalePrep:
        def opt(name: str, dtype) -> np.ndarray | None:
            return None if d.get(name) is None else d[name].numpy().astype(dtype)

        return cls(d["columns"].numpy().astype(np.int64), d["log"].numpy().astype(bool),
                   d["mean"].numpy().astype(np.float64), d["std"].numpy().astype(np.float64),
                   opt("projection", np.float64), opt("ps_index", np.int64), opt("norm_pair", np.int64))


def _shape(a: np.ndarray, columns: np.ndarray, ps_index: np.ndarray, norm_pair: np.ndarray) -> np.ndarray:
    """Columns of ``a`` divided by the sub-window's own first-layer RMS σ_left·σ_right (ps columns left as they are).

    This is the ``each_ps`` normalisation applied to each sub-window with its own power spectrum instead of the whole
    window's: the coefficients become scale-free shape descriptors (e.g. E|Wx|/σ, a sparsity that peaks for
    transients), while the ps columns keep the level.
    """
    x = a[:, :, columns[:, 0], columns[:, 1]].astype(np.float64)
    sigma = np.sqrt(np.maximum(a[:, :, ps_index, 0].astype(np.float64), np.finfo(np.float64).tiny))
    left, right = norm_pair[:, 0], norm_pair[:, 1]
    div = np.where(left >= 0, sigma[..., np.clip(left, 0, None)], 1.0)
    div = div * np.where(right >= 0, sigma[..., np.clip(right, 0, None)], 1.0)
    return x / div


def candidate_columns(description: np.ndarray, n_coefficients: int) -> np.ndarray:
    """All real parts, plus imaginary parts of coefficients that are not real by construction."""
    real = np.asarray(description["real"], bool) if description is not None else np.zeros(n_coefficients, bool)
    if real.shape[0] != n_coefficients:
        raise DataError(f"feature description has {real.shape[0]} coefficients, features have {n_coefficients}")
    k = np.arange(n_coefficients)
    cols = np.concatenate([np.column_stack([k, np.zeros_like(k)]), np.column_stack([k[~real], np.ones((~real).sum(),
                                                                                                   int)])])
    return cols[np.lexsort((cols[:, 1], cols[:, 0]))].astype(np.int64)


def fit_scale(a: np.ndarray, description: np.ndarray, preprocessing: str, pca: int = 0) -> ScalePrep:
    """Fit the transform of one scale on training windows ``a`` (N, C, K, 2).

    ``pca > 0`` then projects the standardised inputs of all components onto their ``pca`` leading principal axes,
    scaled so that the projected inputs have unit mean variance (the relative variances, i.e. which directions carry
    most of the signal, are kept: no whitening).
    """
    if a.shape[0] < 2:
        raise DataError(f"need at least 2 training windows to standardise features, got {a.shape[0]}")
    cols = candidate_columns(description, a.shape[2])
    ps_index = norm_pair = None
    if preprocessing == "shape":
        ps_index, norm_pair = _shape_pairs(description, cols)
        x = _shape(a, cols, ps_index, norm_pair)
    else:
        x = a[:, :, cols[:, 0], cols[:, 1]].astype(np.float64)  # (N, C, F)
    if not np.all(np.isfinite(x)):
        raise DataError("features contain NaN or infinite values")
    std0 = x.std(axis=0)
    scale0 = np.maximum(np.abs(x.mean(axis=0)), np.abs(x).max(axis=0))
    varying = std0 > CONSTANT_RTOL * scale0  # (C, F)
    keep = varying.any(axis=0)
    if not keep.any():
        raise DataError("every feature column is constant over the training windows")
    cols, x, varying = cols[keep], x[..., keep], varying[:, keep]
    if norm_pair is not None:
        norm_pair = norm_pair[keep]
    log = np.zeros(cols.shape[0], bool)
    if preprocessing == "log":
        log = (x > 0).all(axis=(0, 1))
    elif preprocessing == "shape":  # the level: log of the power spectrum, positive by construction
        log = np.isin(cols[:, 0], ps_index) & (x > 0).all(axis=(0, 1))
    x[..., log] = np.log(x[..., log])
    mean = x.mean(axis=0)
    std = np.where(varying, x.std(axis=0), 0.0)
    prep = ScalePrep(cols, log, mean, std, None, ps_index, norm_pair)
    if pca > 0:
        flat = ((x - mean) * np.divide(1.0, std, out=np.zeros_like(std), where=std > 0)).reshape(len(x), -1)
        _, sv, vt = np.linalg.svd(flat, full_matrices=False)
        p = min(pca, len(sv))
        var = sv[:p] ** 2 / len(flat)
        prep.projection = vt[:p].T / np.sqrt(max(var.mean(), np.finfo(np.float64).tiny))
    return prep


def _shape_pairs(description: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ps coefficients (ordered by jl1) and, per column, which of them normalise it (ps columns: none)."""
    if description is None or "c_type" not in description.dtype.names:
        raise DataError("the 'shape' preprocessing needs the feature description (coefficient types)")
    ctype = np.asarray(description["c_type"]).astype(str)
    ps = np.flatnonzero(ctype == "ps")
    if len(ps) == 0:
        raise DataError("the 'shape' preprocessing needs the ps coefficients in the features")
    ps = ps[np.argsort(description["jl1"][ps])]
    pos = {int(description["jl1"][k]): i for i, k in enumerate(ps)}
    pair = np.full((len(cols), 2), -1, np.int64)
    for i, k in enumerate(cols[:, 0]):
        if ctype[k] == "ps":
            continue
        pair[i, 0] = pos.get(int(description["jl1"][k]), -1)
        pair[i, 1] = pos.get(int(description["jr1"][k]), -1) if description["jr1"][k] >= 0 else -1
    return ps.astype(np.int64), pair


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random train/validation split (sorted indices); validation is empty when ``val_fraction`` is 0 or n is tiny."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction)) if n >= 20 else 0
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])

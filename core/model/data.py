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

from core.errors import DataError

CONSTANT_RTOL = 1e-5


@dataclass
class ScalePrep:
    """The fixed transform of one scale: which (coefficient, part) columns, which get a log, mean and std."""

    columns: np.ndarray  # (F, 2) int64: coefficient index, part (0 real, 1 imag)
    log: np.ndarray  # (F,) bool
    mean: np.ndarray  # (C, F) float64
    std: np.ndarray  # (C, F) float64, 0 where a column is constant for that component

    @property
    def n_features(self) -> int:
        return int(self.columns.shape[0])

    def apply(self, a: np.ndarray) -> np.ndarray:
        """(N, C, K, 2) store array → (N, C, F) float32 standardised inputs."""
        x = a[:, :, self.columns[:, 0], self.columns[:, 1]].astype(np.float64)
        if self.log.any():
            x[..., self.log] = np.log(np.maximum(x[..., self.log], np.finfo(np.float64).tiny))
        scale = np.divide(1.0, self.std, out=np.zeros_like(self.std), where=self.std > 0)
        return ((x - self.mean) * scale).astype(np.float32)

    def to_state(self) -> dict:
        return {"columns": torch.from_numpy(self.columns), "log": torch.from_numpy(self.log),
                "mean": torch.from_numpy(self.mean), "std": torch.from_numpy(self.std)}

    @classmethod
    def from_state(cls, d: dict) -> ScalePrep:
        return cls(d["columns"].numpy().astype(np.int64), d["log"].numpy().astype(bool),
                   d["mean"].numpy().astype(np.float64), d["std"].numpy().astype(np.float64))


def candidate_columns(description: np.ndarray, n_coefficients: int) -> np.ndarray:
    """All real parts, plus imaginary parts of coefficients that are not real by construction."""
    real = np.asarray(description["real"], bool) if description is not None else np.zeros(n_coefficients, bool)
    if real.shape[0] != n_coefficients:
        raise DataError(f"feature description has {real.shape[0]} coefficients, features have {n_coefficients}")
    k = np.arange(n_coefficients)
    cols = np.concatenate([np.column_stack([k, np.zeros_like(k)]), np.column_stack([k[~real], np.ones((~real).sum(),
                                                                                                   int)])])
    return cols[np.lexsort((cols[:, 1], cols[:, 0]))].astype(np.int64)


def fit_scale(a: np.ndarray, description: np.ndarray, preprocessing: str) -> ScalePrep:
    """Fit the transform of one scale on training windows ``a`` (N, C, K, 2)."""
    if a.shape[0] < 2:
        raise DataError(f"need at least 2 training windows to standardise features, got {a.shape[0]}")
    cols = candidate_columns(description, a.shape[2])
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
    log = np.zeros(cols.shape[0], bool)
    if preprocessing == "log":
        log = (x > 0).all(axis=(0, 1))
        x[..., log] = np.log(x[..., log])
    mean = x.mean(axis=0)
    std = np.where(varying, x.std(axis=0), 0.0)
    return ScalePrep(cols, log, mean, std)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random train/validation split (sorted indices); validation is empty when ``val_fraction`` is 0 or n is tiny."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction)) if n >= 20 else 0
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])

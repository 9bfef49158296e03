"""2-D maps of the model's latent space: UMAP where umap-learn is installed, PCA (NumPy SVD) otherwise."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np

from unmix.clusters import ClusterTable
from unmix.errors import ConfigError

METHODS = ("auto", "umap", "pca")


@dataclass
class Embedding:
    """``coords[j]`` places window ``indices[j]`` in 2-D; ``explained`` is PCA's explained-variance ratio."""

    scale: int
    coords: np.ndarray  # (n, 2)
    indices: np.ndarray  # (n,)
    method: str
    explained: np.ndarray | None = None


def umap_available() -> bool:
    return importlib.util.find_spec("umap") is not None


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows of ``x`` on their first two principal axes; returns (coords (n, 2), explained-variance ratio).

    Axis signs are fixed (largest loading positive) so that the map does not flip between runs.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ConfigError(f"PCA needs at least 2 points in a 2-D array, got shape {x.shape}")
    xc = x - x.mean(axis=0)
    _, sv, vt = np.linalg.svd(xc, full_matrices=False)
    axes = vt[:2]
    axes *= np.sign(axes[np.arange(len(axes)), np.argmax(np.abs(axes), axis=1)])[:, None]
    coords = xc @ axes.T
    if coords.shape[1] < 2:
        coords = np.column_stack([coords, np.zeros(len(coords))])
    var = sv**2
    explained = var[:2] / var.sum() if var.sum() > 0 else np.zeros(2)
    return coords, np.pad(explained, (0, 2 - len(explained)))


def embed_latents(
    table: ClusterTable,
    scale: int,
    method: str = "auto",
    max_points: int | None = 20000,
    seed: int = 0,
    **umap_options,
) -> Embedding:
    """2-D embedding of the latent means ``table.latent[:, s]`` at ``scale``.

    ``method='auto'`` uses UMAP (umap-learn) when importable and PCA otherwise; ``'umap'`` insists on UMAP. With more
    than ``max_points`` windows a seeded random subset is embedded (UMAP cost grows quickly); ``indices`` says which.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown embedding method {method!r}; choose one of {', '.join(METHODS)}")
    if table.latent is None:
        raise ConfigError("this cluster table has no latent means; re-run clustering with latents to embed them")
    s = table.scale_index(scale)
    idx = np.arange(table.n_windows)
    if max_points is not None and table.n_windows > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(table.n_windows, size=max_points, replace=False))
    z = np.asarray(table.latent[idx, s], dtype=np.float64)
    if method == "umap" and not umap_available():
        raise ConfigError("UMAP was asked for but umap-learn is not installed (pip install umap-learn), or use PCA")
    if method in ("auto", "umap") and umap_available() and len(idx) > 15:
        import umap

        options = {"n_neighbors": min(50, len(idx) - 1), "min_dist": 0.5, "random_state": seed} | umap_options
        coords = umap.UMAP(n_components=2, **options).fit_transform(z)
        return Embedding(int(scale), np.asarray(coords, dtype=np.float64), idx, "umap")
    coords, explained = pca_2d(z)
    return Embedding(int(scale), coords, idx, "pca", explained)

"""Outlier clusters: windows that their cluster's Gaussian cannot explain get a cluster of their own.

The mixture gives rare sources (glitches: 1–2 % of 51-s windows) a cluster of their own only now and then; otherwise
their windows fall into the large cluster nearest to them (quiet nights), although they lie far from it in the model's
inputs: on the synthetic benchmark, glitch windows are separated from quiet windows by a linear discriminant with an
AUC of 0.98–1.0, and their squared Mahalanobis distance from the quiet cluster's Gaussian is 100 times the cluster's
median. So, per scale, each large cluster ``k`` gets a robust Gaussian of its training windows' inputs (mean and
covariance re-estimated twice on the :data:`TRIM` share nearest to it), and a window of ``k`` whose squared distance
exceeds ``ratio`` times the median of ``k``'s training windows moves to a new cluster number after the network's
(the cluster's *outlier cluster*: K, K + 1, … for the split clusters of a scale, K the network's clusters; a model's
tables are as wide as its scale with the most splits needs). Nothing else changes: the other windows keep their
clusters and posteriors.

A cluster is large enough when it holds :func:`min_windows` *independent* windows: sub-windows of a scale longer than
the hop overlap, so ``n`` windows of that scale hold about ``n·hop/scale`` independent ones. Without that rule the
54.6-min windows (64 overlapping per independent one) gave covariances from a few dozen independent windows and split
the wind bursts (docs/performance.md, Clustering: outlier clusters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: Share of a cluster's windows (nearest to its Gaussian) from which the Gaussian is re-estimated.
TRIM = 0.9
ITERATIONS = 2
#: Ridge added to the covariance, relative to its mean variance.
RIDGE = 1e-6
#: Training outliers a cluster needs for an outlier cluster of its own (fewer: no cluster that stays empty).
MIN_OUTLIERS = 2


FIELDS = ("source", "target", "mean", "whiten", "threshold")


def to_tensors(split, fields: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """A split's arrays as a checkpoint holds them: cluster numbers int64, the rest as they are (float64)."""
    return {k: torch.from_numpy(getattr(split, k).astype(np.int64) if k in ("source", "target")
                                else getattr(split, k)) for k in fields}


def state_arrays(state, fields: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays of a saved split, exactly ``fields`` (raises ValueError when fields are missing or not arrays)."""
    if not isinstance(state, dict) or set(state) != set(fields):
        raise ValueError("fields missing")
    if not all(isinstance(state[k], torch.Tensor) for k in fields):
        raise ValueError("fields are not arrays")
    return {k: state[k].numpy() for k in fields}


def move_share(prob: torch.Tensor, source: np.ndarray, target: np.ndarray, mask: torch.Tensor) -> torch.Tensor:
    """``prob`` (N, width) with, for each split ``j``, cluster ``source[j]``'s share of the rows ``mask[:, j]`` marks
    moved to ``target[j]`` (in place; returned)."""
    src = torch.from_numpy(source).to(prob.device)
    tgt = torch.from_numpy(target).to(prob.device)
    moved = prob[:, src] * mask.to(prob.device, prob.dtype)
    prob[:, src] -= moved
    prob[:, tgt] += moved
    return prob


def min_windows(dims: int) -> int:
    """Independent windows a cluster needs for its Gaussian in ``dims`` dimensions."""
    return max(100, 3 * int(dims))


@dataclass
class OutlierSplit:
    """One scale's outlier clusters: cluster ``source[j]``'s outliers go to ``target[j]`` (= K + j).

    ``mean`` (J, D) and ``whiten`` (J, D, D) give the squared distance ``|whiten[j] (x − mean[j])|²`` of a flattened
    input ``x``; ``threshold`` (J,) is the distance beyond which a window is an outlier.
    """

    source: np.ndarray
    target: np.ndarray
    mean: np.ndarray
    whiten: np.ndarray
    threshold: np.ndarray

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """Squared distance (N, J) of every flattened input row from every split cluster's Gaussian."""
        xf = x.reshape(len(x), -1).to(torch.float64)
        mean = torch.from_numpy(self.mean).to(xf)
        whiten = torch.from_numpy(self.whiten).to(xf)
        return torch.einsum("jde,nje->njd", whiten, xf[:, None, :] - mean[None]).square().sum(-1)

    def apply(self, prob: torch.Tensor, x: torch.Tensor, width: int) -> torch.Tensor:
        """Posteriors (N, K) → (N, ``width``): padded with the outlier clusters, each split cluster's share of its
        outliers moved to its outlier cluster."""
        out = torch.nn.functional.pad(prob, (0, width - prob.shape[1]))
        if not len(self.source):
            return out
        far = self.distances(x) > torch.from_numpy(self.threshold).to(x.device)
        return move_share(out, self.source, self.target, far)

    def to_state(self) -> dict[str, torch.Tensor]:
        return to_tensors(self, FIELDS)

    @classmethod
    def from_state(cls, state: dict, clusters: int, dims: int) -> OutlierSplit:
        """Read back and check a saved split (raises ValueError on anything inconsistent)."""
        a = state_arrays(state, FIELDS)
        src, tgt = a["source"], a["target"]
        mean, whiten, thr = (a[k].astype(np.float64) for k in ("mean", "whiten", "threshold"))
        J = len(src)
        ok = (src.dtype == np.int64 and tgt.dtype == np.int64 and src.shape == tgt.shape == (J,)
              and mean.shape == (J, dims) and whiten.shape == (J, dims, dims) and thr.shape == (J,)
              and all(np.isfinite(a).all() for a in (mean, whiten, thr)) and (thr > 0).all()
              and len(set(src.tolist())) == J and (J == 0 or (src.min() >= 0 and src.max() < clusters))
              and np.array_equal(tgt, clusters + np.arange(J)))
        if not ok:
            raise ValueError("inconsistent shapes, numbers or values")
        return cls(src, tgt, mean, whiten, thr)


def _robust_gaussian(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, whitening matrix and squared distances of every row, re-estimated on the nearest TRIM share."""
    keep = np.ones(len(x), bool)
    for _ in range(ITERATIONS):
        mean = x[keep].mean(0)
        cov = np.atleast_2d(np.cov(x[keep].T))
        cov = cov + RIDGE * max(float(np.trace(cov)) / len(cov), np.finfo(float).tiny) * np.eye(len(cov))
        whiten = np.linalg.inv(np.linalg.cholesky(cov))
        d2 = np.square((x - mean) @ whiten.T).sum(1)
        keep = d2 <= np.quantile(d2, TRIM)
    return mean, whiten, d2


def fit(x: np.ndarray, prob: np.ndarray, ratio: float, overlap: float = 1.0) -> OutlierSplit:
    """The outlier clusters of one scale from training inputs ``x`` (N, …) and posteriors ``prob`` (N, K).

    ``overlap``: how many windows make one independent window (the scale over the hop, at least 1). Split clusters
    are taken largest first, those with at least :data:`MIN_OUTLIERS` training outliers; deterministic.
    """
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    labels = np.asarray(prob).argmax(1)
    k = np.asarray(prob).shape[1]
    counts = np.bincount(labels, minlength=k)
    need = min_windows(x.shape[1]) * max(float(overlap), 1.0)
    big = [int(c) for c in np.argsort(-counts, kind="stable") if counts[c] >= need]
    src, tgt, means, whitens, thresholds = [], [], [], [], []
    for c in big:
        mean, whiten, d2 = _robust_gaussian(x[labels == c])
        threshold = float(ratio) * float(np.median(d2))
        if np.count_nonzero(d2 > threshold) < MIN_OUTLIERS:
            continue
        src.append(c)
        tgt.append(k + len(tgt))
        means.append(mean)
        whitens.append(whiten)
        thresholds.append(threshold)
    D = x.shape[1]
    return OutlierSplit(np.asarray(src, np.int64), np.asarray(tgt, np.int64),
                        np.asarray(means, np.float64).reshape(-1, D), np.asarray(whitens, np.float64).reshape(-1, D, D),
                        np.asarray(thresholds, np.float64))

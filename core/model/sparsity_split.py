"""Sparsity splits: a cluster whose windows form two groups far apart in their sparsity coefficients is split in two.

Glitches and wind bursts are both loud and broadband, so at 51 s the mixture often puts them in one cluster (on the
synthetic benchmark: 24 glitch and 25 burst windows in one cluster, 7 glitch windows among 63 bursts). They differ in
how intermittent they are, which the scattering covariance measures directly: the sparsity coefficients
E|Wx|² / (E|Wx|)² per octave. The principal axes the network sees are dominated by the level and the envelope
columns and keep little of it (docs/performance.md, Clustering: model-side changes), but in the standardised sparsity
columns themselves such a cluster falls into two groups: a two-component Gaussian mixture with diagonal covariances
puts the glitch windows on one side and the bursts on the other, with a separation (:func:`separation`, the RMS over
the columns of the difference of the means in pooled standard deviations) of 3.6–6.6, where the large clusters of
quiet nights and windy days, which vary continuously, give at most 3.1.

So, per scale, every cluster holding at least :data:`MIN_WINDOWS` independent windows gets such a mixture, fitted on
its training windows; when the groups are at least ``threshold`` apart and the smaller one holds at least
:data:`MIN_PART` independent windows, the cluster's windows that the mixture gives to the smaller group move to a new
cluster number (after the network's clusters and the scale's outlier clusters). Nothing else changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from unmix.model.outliers import move_share, state_arrays, to_tensors

FIELDS = ("source", "target", "mean", "var", "log_weight")
#: Independent windows a cluster needs before it is tested, and the smaller group needs for a split.
MIN_WINDOWS = 20
MIN_PART = 5
#: Variance floor of the mixture's components, in units of the standardised columns.
VAR_FLOOR = 1e-2
#: Most rows of one cluster the mixture is fitted on (evenly spaced): its cost stays bounded on a mission's store.
FIT_ROWS = 4000
ITERATIONS = 200
TOLERANCE = 1e-7


@dataclass
class SparsitySplit:
    """One scale's sparsity splits: cluster ``source[j]``'s windows that component 1 of mixture ``j`` explains
    better than component 0 go to ``target[j]``.

    ``mean`` and ``var`` (J, 2, E) and ``log_weight`` (J, 2) define the two diagonal Gaussians of mixture ``j`` in
    the ``E`` standardised sparsity columns; component 1 is the smaller group.
    """

    source: np.ndarray
    target: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    log_weight: np.ndarray

    def minor(self, side: torch.Tensor) -> torch.Tensor:
        """(N, J) True where mixture ``j`` gives a row of sparsity columns to its smaller group."""
        return smaller_group(side, self.mean, self.var, self.log_weight)

    def apply(self, prob: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        """Posteriors (N, width) with each split cluster's share of the windows of its smaller group moved to the
        split's cluster number (``prob`` is already as wide as the model's tables)."""
        if not len(self.source):
            return prob
        return move_share(prob.clone(), self.source, self.target, self.minor(side.to(prob.device)))

    def to_state(self) -> dict[str, torch.Tensor]:
        return to_tensors(self, FIELDS)

    @classmethod
    def from_state(cls, state: dict, first: int, clusters: int, dims: int) -> SparsitySplit:
        """Read back and check a saved split: targets numbered from ``first``, sources below it and below
        ``clusters`` + the outlier clusters (raises ValueError on anything inconsistent)."""
        a = state_arrays(state, FIELDS)
        src, tgt = a["source"], a["target"]
        mean, var, lw = (a[k].astype(np.float64) for k in ("mean", "var", "log_weight"))
        J = len(src)
        ok = (src.dtype == np.int64 and tgt.dtype == np.int64 and src.shape == tgt.shape == (J,)
              and mean.shape == var.shape == (J, 2, dims) and lw.shape == (J, 2)
              and all(np.isfinite(a).all() for a in (mean, var, lw)) and (var > 0).all()
              and len(set(src.tolist())) == J and (J == 0 or (dims > 0 and src.min() >= 0 and src.max() < first))
              and first >= clusters and np.array_equal(tgt, first + np.arange(J)))
        if not ok:
            raise ValueError("inconsistent shapes, numbers or values")
        return cls(src, tgt, mean, var, lw)


def smaller_group(side: torch.Tensor, mean: np.ndarray, var: np.ndarray, log_weight: np.ndarray) -> torch.Tensor:
    """(N, J) True where mixture ``j`` (``mean``, ``var`` (J, 2, E), ``log_weight`` (J, 2)) explains a row of
    ``side`` better by its component 1 (the smaller group) than by its component 0."""
    s = side.reshape(len(side), -1).to(torch.float64)
    mean_t, var_t, lw = (torch.from_numpy(a).to(s) for a in (mean, var, log_weight))
    ll = -0.5 * ((s[:, None, None, :] - mean_t[None]).square() / var_t[None] + var_t.log()[None]).sum(-1) + lw[None]
    return ll[..., 1] > ll[..., 0]


def _em(x: np.ndarray, resp: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """EM of a two-component diagonal Gaussian mixture from responsibilities ``resp`` (N, 2): log-likelihood, means,
    variances, log weights and final responsibilities."""
    previous = -math.inf
    for _ in range(ITERATIONS):
        nk = resp.sum(0) + 1e-12
        mean = resp.T @ x / nk[:, None]
        var = np.maximum(resp.T @ np.square(x) / nk[:, None] - np.square(mean), 0.0) + VAR_FLOOR
        log_w = np.log(nk / nk.sum())
        lp = -0.5 * (np.square(x[:, None, :] - mean[None]) / var[None] + np.log(2 * np.pi * var)[None]).sum(-1)
        lp += log_w[None]
        top = lp.max(1, keepdims=True)
        resp = np.exp(lp - top)
        total = resp.sum(1, keepdims=True)
        resp /= total
        ll = float((top[:, 0] + np.log(total[:, 0])).sum())
        if ll - previous <= TOLERANCE * abs(ll):
            break
        previous = ll
    return ll, mean, var, log_w, resp


def _starts(x: np.ndarray) -> list[np.ndarray]:
    """Deterministic starting responsibilities: cuts of the first principal axis at its 10th, 50th and 90th
    percentiles, and the rows farthest from the column medians (robust scale) as a small group of 5, 10 or 20 %."""
    xc = x - x.mean(0)
    axis = np.linalg.svd(xc, full_matrices=False)[2][0]
    proj = xc @ axis
    groups = [proj > np.quantile(proj, q) for q in (0.5, 0.1, 0.9)]
    med = np.median(x, 0)
    spread = np.maximum(np.median(np.abs(x - med), 0), 1e-6)
    far = np.square((x - med) / spread).sum(1)
    groups += [far > np.quantile(far, q) for q in (0.8, 0.9, 0.95)]
    return [np.stack([~g, g], 1).astype(np.float64) * 0.98 + 0.01 for g in groups if 0 < g.sum() < len(g)]


def separation(mean: np.ndarray, var: np.ndarray, weight: np.ndarray) -> float:
    """RMS over the columns of the distance between the two means in pooled (weighted) standard deviations."""
    pooled = (weight[:, None] * var).sum(0) / weight.sum()
    return float(np.sqrt(np.mean(np.square(mean[0] - mean[1]) / pooled)))


def two_groups(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray]:
    """The best of a few deterministic EM runs on rows ``x`` (N, E): means, variances and log weights (smaller
    group second), their separation, and each row's group (1: the smaller)."""
    best = max((_em(x, r) for r in _starts(x)), key=lambda fit: fit[0])
    _, mean, var, log_w, resp = best
    group = resp.argmax(1)
    if np.count_nonzero(group == 1) > np.count_nonzero(group == 0):
        mean, var, log_w, group = mean[::-1], var[::-1], log_w[::-1], 1 - group
    return mean.copy(), var.copy(), log_w.copy(), separation(mean, var, np.exp(log_w)), group


def fit(side: np.ndarray, labels: np.ndarray, first: int, threshold: float, overlap: float = 1.0) -> SparsitySplit:
    """The sparsity splits of one scale from training windows' sparsity columns ``side`` (N, E) and clusters
    ``labels`` (N,); new cluster numbers start at ``first``. ``overlap``: windows per independent window (the scale
    over the hop, at least 1). Clusters are taken in increasing number; deterministic."""
    side = np.asarray(side, np.float64).reshape(len(side), -1)
    labels = np.asarray(labels)
    overlap = max(float(overlap), 1.0)
    parts: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    for c in np.unique(labels):
        rows = side[labels == c]
        if len(rows) / overlap < MIN_WINDOWS:
            continue
        sample = rows[np.linspace(0, len(rows) - 1, FIT_ROWS).round().astype(np.int64)] if len(rows) > FIT_ROWS \
            else rows
        mean, var, log_w, sep, group = two_groups(sample)
        if len(sample) < len(rows):  # every row of the cluster, by the mixture fitted on the sample
            group = smaller_group(torch.from_numpy(rows), mean[None], var[None], log_w[None]).numpy()[:, 0]
        if sep >= threshold and np.count_nonzero(group == 1) / overlap >= MIN_PART:
            parts.append((int(c), mean, var, log_w))
    E = side.shape[1]
    return SparsitySplit(np.asarray([p[0] for p in parts], np.int64), first + np.arange(len(parts), dtype=np.int64),
                         np.asarray([p[1] for p in parts], np.float64).reshape(-1, 2, E),
                         np.asarray([p[2] for p in parts], np.float64).reshape(-1, 2, E),
                         np.asarray([p[3] for p in parts], np.float64).reshape(-1, 2))

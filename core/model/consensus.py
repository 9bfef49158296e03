"""Consensus of an ensemble of models by co-association (evidence accumulation).

Models trained with different seeds find much the same groups under arbitrary numbers, and each also splits or
merges a few groups its own way, or misses a rare one (glitches: 1–2 % of the windows). Two windows are
*co-associated* by the fraction of members that put them in the same cluster. The consensus groups windows whose
average co-association exceeds :data:`THRESHOLD`, by weighted average linkage over the distinct tuples of member
clusters (each tuple weighted by its number of windows). With 3 members and a threshold of 0.7, two groups merge
only where all members mostly put them together, so a group that one member keeps apart (glitches that the others
mix with wind bursts) survives, and a group that one member splits may stay split.

Each consensus cluster ``c`` is then described by ``profile[c, m, k]``: the share of its training windows that member
``m`` puts in its cluster ``k``. Any window, of the training data or not, gets the score ``mean_m Σ_k p_m(k)
profile[c, m, k]`` (its expected co-association with cluster ``c``'s windows, ``p_m`` member ``m``'s posteriors);
the normalised scores are its consensus posteriors. The profiles are fitted once, on the training windows, and stored
with the model, so that a model numbers its clusters the same way on whatever data it is applied to; consensus
clusters are numbered like their best match among member 0's clusters (Hungarian method).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

#: Merge groups while their average co-association is above this. With the log offset, 0.7 keeps glitch groups that
#: two of three members merge with wind bursts (glitch F1 up, ARI level; docs/performance.md, Clustering).
THRESHOLD = 0.7
#: The most frequent distinct member-cluster tuples that enter the linkage; rarer ones join by their scores.
MAX_TUPLES = 500


def _linkage(tuples: np.ndarray, weights: np.ndarray, threshold: float, max_groups: int) -> np.ndarray:
    """Group index of each tuple: weighted average linkage on the co-association of member-cluster tuples."""
    sim = (tuples[:, None, :] == tuples[None, :, :]).mean(-1)
    np.fill_diagonal(sim, -1.0)
    w = weights.astype(np.float64).copy()
    group = np.arange(len(tuples))
    alive = len(tuples)
    while alive > 1:
        i, j = np.unravel_index(np.argmax(sim), sim.shape)
        if sim[i, j] <= threshold and alive <= max_groups:
            break
        i, j = min(i, j), max(i, j)
        merged = (w[i] * sim[i] + w[j] * sim[j]) / (w[i] + w[j])
        sim[i], sim[:, i] = merged, merged
        sim[j], sim[:, j] = -1.0, -1.0
        sim[i, i] = -1.0
        w[i] += w[j]
        group[group == j] = i
        alive -= 1
    return np.unique(group, return_inverse=True)[1]


def scores(probs: list[np.ndarray], profile: np.ndarray) -> np.ndarray:
    """Each window's mean co-association (N, K) with every consensus cluster, from the members' posteriors."""
    out = np.zeros((len(probs[0]), profile.shape[0]), np.float64)
    for m, p in enumerate(probs):
        out += np.asarray(p, np.float64) @ profile[:, m, :].T
    return out / len(probs)


def combine(probs: list[np.ndarray], profile: np.ndarray) -> np.ndarray:
    """Consensus posteriors (N, K): the scores normalised per window (uniform where every score is 0)."""
    s = scores(probs, profile)
    total = s.sum(1, keepdims=True)
    k = profile.shape[0]
    return np.where(total > 0, s / np.where(total > 0, total, 1.0), 1.0 / k).astype(np.asarray(probs[0]).dtype)


def fit(probs: list[np.ndarray], threshold: float = THRESHOLD, max_tuples: int = MAX_TUPLES) -> np.ndarray:
    """The consensus profiles ``(K, M, K)`` of members' posteriors ``probs[m]`` (N, K) on the same windows.

    At most K consensus clusters (merging goes on past the threshold until there are no more); rows of unused
    cluster numbers are zero. Deterministic: the same posteriors give the same profiles.
    """
    if not probs:
        raise ValueError("no members")
    n, k = probs[0].shape
    if any(np.shape(p) != (n, k) for p in probs):
        raise ValueError("members' posteriors differ in shape")
    m = len(probs)
    labels = np.stack([np.asarray(p).argmax(1) for p in probs], axis=1)  # (N, M)
    tuples, inverse, counts = np.unique(labels, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    top = np.argsort(-counts, kind="stable")[:max_tuples]
    group_of_top = _linkage(tuples[top], counts[top], threshold, k)
    tuple_group = np.full(len(tuples), -1)
    tuple_group[top] = group_of_top
    group = tuple_group[inverse]
    profile = _profiles(labels, group, int(group_of_top.max()) + 1, m, k)
    group = scores(probs, profile).argmax(1)  # every window, rare tuples too, joins its best group
    profile = _profiles(labels, group, profile.shape[0], m, k)
    return _number_like(profile, group, labels[:, 0], k)


def _profiles(labels: np.ndarray, group: np.ndarray, n_groups: int, m: int, k: int) -> np.ndarray:
    prof = np.zeros((n_groups, m, k), np.float64)
    ok = group >= 0
    for j in range(m):
        np.add.at(prof, (group[ok], j, labels[ok, j]), 1.0)
    total = prof.sum(2, keepdims=True)
    return np.divide(prof, total, out=np.zeros_like(prof), where=total > 0)


def _number_like(profile: np.ndarray, group: np.ndarray, reference: np.ndarray, k: int) -> np.ndarray:
    """Profiles renumbered so that consensus clusters carry the number of their matched member-0 cluster."""
    table = np.zeros((profile.shape[0], k), np.int64)
    np.add.at(table, (group, reference), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    out = np.zeros((k,) + profile.shape[1:], np.float64)
    out[cols] = profile[rows]
    return out


def is_profile_table(profile: np.ndarray, members: int, k: int) -> bool:
    """True when ``profile`` is a (K, members, K) table of finite shares, each used row a distribution per member."""
    p = np.asarray(profile)
    if p.shape != (k, members, k) or not np.issubdtype(p.dtype, np.floating) or not np.isfinite(p).all():
        return False
    if (p < 0).any() or (p > 1 + 1e-9).any():
        return False
    sums = p.sum(2)  # (K, M)
    used = sums.max(1) > 0
    return bool(used.any() and np.allclose(sums[used], 1.0, atol=1e-6) and np.allclose(sums[~used], 0.0))

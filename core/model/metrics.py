"""Agreement between clusters and known labels: adjusted Rand index, glitch-cluster precision and recall."""

from __future__ import annotations

import numpy as np

from unmix.matching import ari_from_contingency


def contingency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Counts of each (label of ``a``, label of ``b``) pair."""
    _, ia = np.unique(np.asarray(a), return_inverse=True)
    _, ib = np.unique(np.asarray(b), return_inverse=True)
    table = np.zeros((ia.max(initial=-1) + 1, ib.max(initial=-1) + 1), np.int64)
    np.add.at(table, (ia, ib), 1)
    return table


def adjusted_rand_index(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Hubert–Arabie adjusted Rand index: 1 for identical partitions, ≈0 for independent ones."""
    labels_true, labels_pred = np.asarray(labels_true), np.asarray(labels_pred)
    if labels_true.shape != labels_pred.shape:
        raise ValueError("label arrays differ in length")
    if labels_true.size < 2:
        return 1.0
    return ari_from_contingency(contingency(labels_true, labels_pred))


def dominated_clusters(clusters: np.ndarray, is_target: np.ndarray, share: float = 0.5) -> np.ndarray:
    """Clusters in which more than ``share`` of the windows are targets (e.g. contain a glitch)."""
    clusters, is_target = np.asarray(clusters), np.asarray(is_target, bool)
    ids = np.unique(clusters)
    frac = np.array([is_target[clusters == k].mean() for k in ids])
    return ids[frac > share]


def precision_recall(clusters: np.ndarray, is_target: np.ndarray, chosen: np.ndarray) -> tuple[float, float]:
    """Precision and recall of "window is in one of ``chosen`` clusters" as a detector of targets."""
    hit = np.isin(np.asarray(clusters), chosen)
    is_target = np.asarray(is_target, bool)
    tp = int((hit & is_target).sum())
    precision = tp / hit.sum() if hit.any() else 0.0
    recall = tp / is_target.sum() if is_target.any() else 0.0
    return float(precision), float(recall)

"""Cluster matching: Hungarian pairing on the contingency table, agreement, ARI, and alignment of two tables."""

from __future__ import annotations

import numpy as np
import pytest

from unmix.clusters import ClusterTable
from unmix.errors import ConfigError
from unmix.matching import ari_from_contingency, match_clusters, match_tables, shared_windows


def test_a_renumbering_is_matched_exactly():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 5, 400)
    perm = np.array([3, 0, 4, 1, 2])
    m = match_clusters(a, perm[a])
    assert m.mapping == {k: int(perm[k]) for k in range(5)}
    assert m.agreement == pytest.approx(1.0) and m.ari == pytest.approx(1.0)
    np.testing.assert_array_equal(m.relabel(a), perm[a])


def test_different_numbers_of_clusters():
    # a splits b's cluster 3 in two: the larger half is matched, the other stays unmatched.
    a = np.array([0, 0, 1, 1, 1, 2, 2, 2])
    b = np.array([5, 5, 3, 3, 3, 3, 3, 3])
    m = match_clusters(a, b)
    assert len(m.mapping) == 2 and m.mapping[0] == 5 and m.mapping[1 if m.mapping.get(1) == 3 else 2] == 3
    assert m.agreement == pytest.approx(5 / 8)
    # hand-computed ARI: index 1+3+3 = 7 pairs, rows 1+3+3 = 7, cols 1+15 = 16, C(8,2) = 28
    expected = 7 * 16 / 28
    assert m.ari == pytest.approx((7 - expected) / ((7 + 16) / 2 - expected))
    assert m.contingency.sum() == 8 and m.contingency.shape == (3, 2)
    assert list(m.relabel(a)).count(-1) == 3
    # swapping the roles gives the same agreement and ARI
    r = match_clusters(b, a)
    assert r.agreement == pytest.approx(m.agreement) and r.ari == pytest.approx(m.ari)


def test_the_matching_maximises_the_windows_on_matched_pairs():
    # counts (0,0)=5, (0,1)=4, (1,0)=4, (1,1)=0: a greedy pairing (largest cell first) keeps 5 windows, the optimum
    # (the anti-diagonal) 8.
    a = np.array([0] * 5 + [0] * 4 + [1] * 4)
    b = np.array([0] * 5 + [1] * 4 + [0] * 4)
    m = match_clusters(a, b)
    assert m.mapping == {0: 1, 1: 0}
    assert m.agreement == pytest.approx(8 / 13)


def test_ari_of_independent_clusterings_is_near_zero():
    rng = np.random.default_rng(0)
    m = match_clusters(rng.integers(0, 4, 20000), rng.integers(0, 6, 20000))
    assert abs(m.ari) < 0.01
    assert 4 / 24 < m.agreement < 0.19  # the best 4 cells of a near-uniform 4 × 6 table: 4/24 plus a little
    assert ari_from_contingency(np.array([[3]])) == 1.0


def test_mismatched_lengths_are_refused():
    with pytest.raises(ConfigError, match="different numbers of windows"):
        match_clusters(np.zeros(3), np.zeros(4))


def _table(starts: np.ndarray, clusters: dict[int, np.ndarray], K: int = 4) -> ClusterTable:
    scales = tuple(sorted(clusters))
    n = len(starts)
    intervals = np.stack([np.column_stack([starts + (65536 - s) / 20, starts + 65536 / 20])
                          for s in scales], axis=1)
    cl = np.stack([clusters[s] for s in scales], axis=1).astype(np.int16)
    prob = np.zeros((n, len(scales), K), np.float32)
    prob[np.arange(n)[:, None], np.arange(len(scales))[None, :], cl] = 1.0
    return ClusterTable(scales=scales, intervals=intervals, lmst=intervals / 88775.244, cluster=cl,
                        confidence=np.ones(cl.shape, np.float32), probabilities=prob)


def test_tables_are_aligned_on_the_windows_they_share():
    t0 = 1.6e9
    rng = np.random.default_rng(2)
    starts = t0 + np.arange(300) * 51.2
    truth = {1024: rng.integers(0, 4, 300), 4096: rng.integers(0, 3, 300)}
    a = _table(starts, truth)
    # b: windows 100.. of a plus 50 later ones, renumbered; only scale 1024 in common with a's scales (1024, 4096)
    perm = np.array([2, 3, 1, 0])
    later = rng.integers(0, 4, 50)
    b_starts = np.concatenate([starts[100:], t0 + np.arange(300, 350) * 51.2]) + 1e-5  # float noise
    b = _table(b_starts, {1024: np.concatenate([perm[truth[1024][100:]], later]), 16384: np.zeros(250, int)})
    out = match_tables(a, b)
    assert list(out) == [1024]
    m = out[1024]
    assert m.n_windows == 200 and m.agreement == pytest.approx(1.0) and m.ari == pytest.approx(1.0)
    assert m.mapping == {k: int(perm[k]) for k in range(4)}
    with pytest.raises(ConfigError, match="not in this table"):
        match_tables(a, b, scales=(4096,))
    c = _table(starts + 1e4 * 51.2, {1024: truth[1024]})
    with pytest.raises(ConfigError, match="share no window"):
        match_tables(a, c)
    d = _table(starts, {16384: truth[1024]})
    with pytest.raises(ConfigError, match="share no scale"):
        match_tables(a, d)


def test_shared_windows_pairs_each_start_once():
    ia, ib = shared_windows(np.array([0.0, 10.0, 20.0, 20.0, 30.0]), np.array([20.0004, 5.0, -0.0004, 30.002]))
    assert list(zip(ia.tolist(), ib.tolist(), strict=True)) == [(0, 2), (2, 0)]
    ia, ib = shared_windows(np.array([1.0, 1.0005]), np.array([1.0002]))
    assert ia.tolist() == [0] and ib.tolist() == [0]
    assert shared_windows(np.zeros(0), np.array([1.0]))[0].size == 0

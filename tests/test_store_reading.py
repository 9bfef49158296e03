"""Reading a feature store in pieces gives exactly what reading it whole gives."""

from __future__ import annotations

import numpy as np
import pytest

from unmix.features import FeatureConfig, FeatureStore, build_store
from unmix.synthetic import SyntheticConfig, generate

SMALL = dict(window=4096, hop=1024, scales=(1024, 4096), normalize=None)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> FeatureStore:
    d = tmp_path_factory.mktemp("reading")
    generate(SyntheticConfig(hours=2.0, seed=5)).write(d / "synth")
    build_store([d / "synth" / "mixture.mseed"], d / "features.h5", FeatureConfig(**SMALL), device="cpu")
    return FeatureStore(d / "features.h5")


def test_pieces_and_rows_match_the_whole(store, monkeypatch):
    monkeypatch.setattr(FeatureStore, "chunk_windows", 16)
    n = store.n_windows
    assert n > 40
    for s in store.scales:
        whole = store.features(s)
        assert np.array_equal(store.read_features(s, 5, 23), whole[5:23])
        assert store.read_features(s, n - 3, n + 10).shape[0] == 3
        rows = np.random.default_rng(0).integers(0, n, 50)
        assert np.array_equal(store.read_rows(s, rows), whole[rows])
        assert store.read_rows(s, np.zeros(0, int)).shape == (0,) + whole.shape[1:]
        run = np.arange(7, 37)  # a run of windows across blocks: one plain read
        assert np.array_equal(store.read_rows(s, run), whole[run])
        sparse = np.array([17, 18, 20, 31, 33])  # sorted, one block, read from its first to its last row only
        assert np.array_equal(store.read_rows(s, sparse), whole[sparse])
    with pytest.raises(IndexError):
        store.read_rows(store.scales[0], [n])
    with pytest.raises(IndexError):
        store.read_rows(store.scales[0], [n - 1, n])
    with pytest.raises(IndexError):
        store.read_rows(store.scales[0], [-1, 0])

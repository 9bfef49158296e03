"""features_for_file returns a typed FileFeatures (#15 item 6): what the store, FeatureSet and Dask share."""

from __future__ import annotations

import pickle

import numpy as np

from tests.conftest import make_stream
from unmix.features import FeatureConfig, FeatureStore, build_store
from unmix.features.store import FileFeatures, features_for_file

CFG = FeatureConfig(window=4096, hop=2048, scales=(1024, 4096), J=5)


def test_file_features_is_what_the_store_holds(tmp_path):
    path = tmp_path / "a.mseed"
    make_stream(npts=12000).write(str(path), "MSEED")
    res = features_for_file(str(path), CFG.to_dict(), "cpu")
    assert isinstance(res, FileFeatures) and res.path == str(path) and len(res.sha256) == 64
    assert res.n_windows == sum(r["n_windows"] for r in res.records) > 0
    again = pickle.loads(pickle.dumps(res))  # what Dask does with a worker's result
    assert again.entry() == res.entry() and again.n_windows == res.n_windows
    for s in CFG.scales:
        np.testing.assert_array_equal(np.concatenate(again.features[s]), np.concatenate(res.features[s]))
    build_store([path], tmp_path / "f.h5", CFG, device="cpu")
    store = FeatureStore(tmp_path / "f.h5")
    assert store.inputs == [res.entry()] and store.n_windows == res.n_windows
    np.testing.assert_array_equal(store.features(1024, complex_values=True), np.concatenate(res.features[1024]))
    np.testing.assert_array_equal(store.windows()["record"], np.concatenate(res.record_index))

"""The 'log-spars' preprocessing: principal axes of the log inputs with the sparsity columns passed on beside them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import synthetic_store
from unmix.errors import ConfigError
from unmix.features import FeatureStore
from unmix.model import load_model, predict, preset, train
from unmix.model.data import fit_scale, fit_scale_pieces


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("prep")
    return synthetic_store(d, 1.0, 5)


def test_log_spars_is_the_log_projection_followed_by_the_standardised_sparsities(store_path):
    store = FeatureStore(store_path)
    a, d = store.features(1024), store.description
    plain = fit_scale(a, d, "log", pca=6)
    prep = fit_scale(a, d, "log-spars", pca=6)
    spars = np.flatnonzero(np.isin(d["c_type"].astype(str)[prep.columns[:, 0]], ["spars"]))
    assert len(spars) > 0
    x = prep.apply(a)[:, 0]
    assert x.shape == (len(a), 6 + a.shape[1] * len(spars)) and prep.n_features == x.shape[1]
    np.testing.assert_allclose(x[:, :6], plain.apply(a)[:, 0], rtol=1e-5, atol=1e-5)
    z = prep.standardise(a)[:, :, spars].reshape(len(a), -1)
    np.testing.assert_allclose(x[:, 6:], z, rtol=1e-5, atol=1e-5)
    assert np.allclose(x[:, 6:].std(0)[z.std(0) > 0], 1.0, atol=1e-3)


def test_log_spars_fitted_in_pieces_equals_the_in_memory_fit(store_path):
    store = FeatureStore(store_path)
    a = store.features(4096)
    whole = fit_scale(a, store.description, "log-spars", 5)
    pieces = fit_scale_pieces(lambda: np.array_split(a, 4), store.description, a.shape[2], "log-spars", 5)
    assert pieces.projection.shape == whole.projection.shape
    sign = np.sign((whole.projection * pieces.projection).sum(0))
    np.testing.assert_allclose(pieces.projection * sign, whole.projection, rtol=1e-6,
                               atol=1e-9 * np.abs(whole.projection).max())


def test_a_log_spars_model_trains_saves_and_clusters_the_same_after_loading(store_path, tmp_path):
    config = preset("small", preprocessing="log-spars", pca=4, hidden=16, latent=4, clusters=4, epochs=2,
                    batch_size=64, ensemble=1)
    model = train(store_path, tmp_path / "m.pt", config, device="cpu")
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.preps[1024].n_features == model.preps[1024].n_features > 4
    a, b = predict(store_path, model, device="cpu"), predict(store_path, loaded, device="cpu")
    assert np.array_equal(a.cluster, b.cluster)


def test_the_log_offset_adds_kappa_times_the_column_median_before_the_log(store_path):
    store = FeatureStore(store_path)
    a, d = store.features(1024), store.description
    plain, soft = fit_scale(a, d, "log"), fit_scale(a, d, "log", log_offset=3.0)
    assert plain.offset is None and np.array_equal(soft.log, plain.log) and soft.log.any()
    x = a[:, :, soft.columns[:, 0], soft.columns[:, 1]].astype(np.float64)
    np.testing.assert_allclose(soft.offset[:, soft.log], 3.0 * np.median(x[..., soft.log], axis=0), rtol=1e-12)
    assert (soft.offset[:, ~soft.log] == 0).all()
    expected = np.log(x[..., soft.log] + soft.offset[:, soft.log])
    z = soft.standardise(a)[..., soft.log]
    np.testing.assert_allclose(z, (expected - soft.mean[:, soft.log]) / soft.std[:, soft.log], atol=1e-9)
    np.testing.assert_allclose(soft.unstandardise(soft.standardise(a)), x, rtol=1e-9,
                               atol=1e-12 * np.abs(x).max())
    # the lower tail is compressed: the lowest window sits closer to the mean than under a plain log
    low = plain.standardise(a)[..., plain.log].min(axis=0)
    assert (soft.standardise(a)[..., soft.log].min(axis=0) > low).mean() > 0.9


def test_a_negative_log_offset_is_refused():
    with pytest.raises(ConfigError, match="log_offset"):
        preset("small", log_offset=-1.0)


def test_a_model_with_a_log_offset_saves_it_and_clusters_the_same_after_loading(store_path, tmp_path):
    config = preset("small", pca=4, hidden=16, latent=4, clusters=4, epochs=2, batch_size=64, ensemble=1,
                    log_offset=3.0)
    model = train(store_path, tmp_path / "m.pt", config, device="cpu")
    loaded = load_model(tmp_path / "m.pt")
    np.testing.assert_array_equal(loaded.preps[1024].offset, model.preps[1024].offset)
    assert loaded.digest() == model.digest()
    a, b = predict(store_path, model, device="cpu"), predict(store_path, loaded, device="cpu")
    assert np.array_equal(a.cluster, b.cluster)


def test_unknown_preprocessing_is_refused():
    with pytest.raises(ConfigError, match="log-spars"):
        preset("small", preprocessing="spars")


def test_the_cli_offers_every_preprocessing_of_the_model():
    from unmix.cli.model import PREPROCESSINGS
    from unmix.model.config import PREPROCESSING

    assert PREPROCESSINGS == PREPROCESSING

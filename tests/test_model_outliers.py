"""Outlier clusters: fitted on a cluster's Gaussian, applied to posteriors, saved, validated on load, refused where
they cannot hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import synthetic_store
from unmix.clusters import ClusterTable
from unmix.errors import ConfigError, InputFileError
from unmix.generate import decode_cluster
from unmix.model import load_model, predict, preset, train
from unmix.model import outliers as outl

TINY = preset("small", hidden=16, latent=4, clusters=6, epochs=2, batch_size=64, ensemble=1, pca=4,
              outlier_split=20.0, glitch_share=0.0)


def _blobs(rng, dims=8):
    """A large Gaussian cluster 0 with 12 far windows inside it, a second cluster 1; posteriors over 5 numbers."""
    core = rng.normal(size=(600, dims))
    far = rng.normal(size=(12, dims)) + 12.0  # far from cluster 0's Gaussian, yet labelled 0
    other = rng.normal(size=(80, dims)) - 6.0
    x = np.concatenate([core, far, other])
    labels = np.repeat([0, 0, 1], [600, 12, 80])
    prob = np.eye(5)[labels] * 0.9 + 0.02
    return x, labels, prob / prob.sum(1, keepdims=True)


def test_far_windows_of_a_large_cluster_move_to_an_unused_number():
    x, labels, prob = _blobs(np.random.default_rng(0))
    split = outl.fit(x, prob, ratio=20.0)
    assert split.source.tolist() == [0] and split.target.tolist() == [5]  # cluster 1 is too small for a Gaussian
    out = split.apply(torch.from_numpy(prob), torch.from_numpy(x), 7).numpy()
    assert out.shape == (len(x), 7) and np.allclose(out.sum(1), 1.0) and not out[:, 6].any()
    got = out.argmax(1)
    assert (got[600:612] == 5).all()  # the far windows, in the new cluster after the network's five
    assert (got[:600] == 0).mean() > 0.995 and (got[612:] == 1).all()  # the rest stays where it was
    assert np.array_equal(outl.fit(x, prob, ratio=20.0).threshold, split.threshold)  # deterministic


def test_no_split_without_enough_independent_windows_or_outliers():
    x, _, prob = _blobs(np.random.default_rng(1))
    assert len(outl.fit(x, prob, ratio=20.0, overlap=8.0).source) == 0  # 612 windows ≈ 77 independent ones
    assert outl.fit(x, prob, ratio=20.0, overlap=8.0).mean.shape == (0, x.shape[1])
    plain = np.r_[0:600, 612:len(x)]  # without the far windows: nothing to split off, no cluster that stays empty
    assert len(outl.fit(x[plain], prob[plain], ratio=20.0).source) == 0


def test_split_state_round_trip_and_validation():
    x, _, prob = _blobs(np.random.default_rng(2))
    split = outl.fit(x, prob, ratio=20.0)
    back = outl.OutlierSplit.from_state(split.to_state(), 5, x.shape[1])
    assert np.array_equal(back.whiten, split.whiten) and np.array_equal(back.target, split.target)
    bad = [dict(split.to_state(), target=split.to_state()["source"]),  # outliers onto their own cluster
           dict(split.to_state(), threshold=torch.tensor([float("nan")], dtype=torch.float64)),
           dict(split.to_state(), mean=torch.zeros(1, 3, dtype=torch.float64)),
           dict(split.to_state(), target=torch.tensor([7]))]  # no such cluster
    for state in bad:
        with pytest.raises(ValueError):
            outl.OutlierSplit.from_state(state, 5, x.shape[1])


def test_config_refuses_a_ratio_that_splits_every_cluster():
    with pytest.raises(ConfigError, match="outlier_split"):
        preset("small", outlier_split=0.5)
    assert preset("paper").outlier_split == 0.0  # the published model is left as published


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("outliers")
    store = synthetic_store(d, 3.0, 5)
    train(store, d / "m.pt", TINY, device="cpu")
    return store, d / "m.pt"


def _every_window_of(model, store, tmp_path: Path, path: Path) -> tuple[Path, int, int]:
    """A copy of the checkpoint whose finest scale sends every window of its largest cluster to cluster K."""
    before = predict(store, model, device="cpu")
    src, new = int(np.bincount(before.cluster[:, 0]).argmax()), model.config.clusters
    dims = model.preps[model.scales[0]].n_features
    state = {"source": torch.tensor([src]), "target": torch.tensor([new]),
             "mean": torch.zeros(1, dims, dtype=torch.float64),
             "whiten": torch.eye(dims, dtype=torch.float64)[None],
             "threshold": torch.tensor([1e-9], dtype=torch.float64)}
    return _with_split(path, tmp_path / "e.pt", model.scales[0], state), src, new


def test_cluster_table_and_cli_name_the_outlier_clusters(trained, tmp_path):
    from click.testing import CliRunner

    from unmix.cli import main

    store, path = trained
    edited, src, new = _every_window_of(load_model(path), store, tmp_path, path)
    s = load_model(edited).scales[0]
    assert load_model(edited).outlier_clusters()[s] == {new: src}
    r = CliRunner().invoke(main, ["cluster", str(store), str(edited), "--out", str(tmp_path / "t.h5")])
    assert r.exit_code == 0, r.output
    assert f"outlier clusters: {new} (of {src})" in r.output
    table = ClusterTable.load(tmp_path / "t.h5")
    assert table.meta["outlier_clusters"][str(s)] == {str(new): src}
    assert table.label(s, new) == f"{new} (outliers of {src})" and table.label(s, src) == str(src)
    table.names = {s: {new: "glitch"}}
    assert table.label(s, new) == f"{new} (glitch)"  # a user's name wins


def test_inputs_without_principal_axes_get_no_outlier_clusters(trained, tmp_path):
    store, _ = trained
    model = train(store, tmp_path / "w.pt", TINY.replace(pca=0, epochs=1), device="cpu")  # hundreds of columns
    assert model.outliers == {} and model.n_clusters == 6
    assert load_model(tmp_path / "w.pt").outliers == {}
    assert predict(store, model, device="cpu").probabilities.shape[-1] == 6


def _with_split(ck_path: Path, out: Path, scale: int, state: dict) -> Path:
    ck = torch.load(ck_path, weights_only=True)
    ck["outliers"][str(scale)] = state
    torch.save(ck, out)
    return out


def test_a_saved_split_is_used_when_clustering_and_checked_on_load(trained, tmp_path):
    store, path = trained
    model = load_model(path)
    assert set(model.outliers) <= set(model.scales)
    before = predict(store, model, device="cpu")
    assert before.probabilities.shape[-1] == model.n_clusters >= 6
    edited_path, src, new = _every_window_of(model, store, tmp_path, path)
    edited = load_model(edited_path)
    after = predict(store, edited, device="cpu")
    moved = before.cluster[:, 0] == src
    assert edited.n_clusters == max(model.n_clusters, 7) == after.probabilities.shape[-1]
    assert (after.cluster[moved, 0] == new).all()
    assert np.array_equal(after.cluster[~moved, 0], before.cluster[~moved, 0])
    assert np.array_equal(after.cluster[:, 1], before.cluster[:, 1])
    assert np.allclose(after.latent, before.latent)  # the latent stays the one of the cluster it came from
    with pytest.raises(ConfigError, match="outliers of cluster"):
        decode_cluster(edited, new, model.scales[0])
    state = torch.load(edited_path, weights_only=True)["outliers"][str(model.scales[0])]
    bad = dict(state, target=torch.tensor([src]))  # outliers onto their own cluster
    with pytest.raises(InputFileError, match="outlier clusters at scale"):
        load_model(_with_split(path, tmp_path / "b.pt", model.scales[0], bad))
    ck = torch.load(path, weights_only=True)
    del ck["outliers"]
    torch.save(ck, tmp_path / "m.pt")
    with pytest.raises(InputFileError, match="outlier clusters are missing"):
        load_model(tmp_path / "m.pt")

"""Sparsity splits: two groups of one cluster found in the sparsity columns, applied to posteriors, saved, validated
on load, and left alone where a cluster varies continuously."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import synthetic_store
from unmix.clusters import ClusterTable
from unmix.errors import ConfigError, DataError, InputFileError
from unmix.generate import decode_cluster
from unmix.model import load_model, predict, preset, train
from unmix.model import sparsity_split as spl

TINY = preset("small", hidden=16, latent=4, clusters=6, epochs=2, batch_size=64, ensemble=1, pca=4,
              outlier_split=0.0, sparsity_split=3.3, glitch_share=0.0)


def _mixed(rng, dims=8):
    """Cluster 0: 200 'burst' rows and 30 'glitch' rows 6 σ away on every column; cluster 1: 150 plain rows."""
    bursts = rng.normal(size=(200, dims))
    glitches = rng.normal(size=(30, dims)) + 6.0
    other = rng.normal(size=(150, dims)) * 2.0
    return np.concatenate([bursts, glitches, other]), np.repeat([0, 0, 1], [200, 30, 150])


def test_two_groups_of_a_cluster_are_split_and_the_rest_stays():
    x, labels = _mixed(np.random.default_rng(0))
    split = spl.fit(x, labels, first=7, threshold=3.3)
    assert split.source.tolist() == [0] and split.target.tolist() == [7]
    prob = np.full((len(x), 9), 0.01)
    prob[np.arange(len(x)), labels] = 0.92
    out = split.apply(torch.from_numpy(prob), torch.from_numpy(x)).numpy()
    assert np.allclose(out.sum(1), prob.sum(1))
    got = out.argmax(1)
    assert (got[200:230] == 7).all() and (got[:200] == 0).mean() > 0.99 and (got[230:] == 1).all()
    again = spl.fit(x, labels, first=7, threshold=3.3)  # deterministic
    assert np.array_equal(again.mean, split.mean) and np.array_equal(again.var, split.var)


def test_a_large_cluster_is_fitted_on_a_sample_and_split_whole(monkeypatch):
    x, labels = _mixed(np.random.default_rng(4))
    monkeypatch.setattr(spl, "FIT_ROWS", 60)  # cluster 0 holds 230 rows
    split = spl.fit(x, labels, first=7, threshold=3.3)
    assert split.source.tolist() == [0]
    assert split.minor(torch.from_numpy(x[:230])).numpy()[:, 0].sum() == 30


def test_no_split_of_a_continuum_a_small_cluster_or_a_small_group():
    rng = np.random.default_rng(1)
    level = rng.uniform(-3, 3, size=(400, 1))  # a cluster spread along a continuum, as quiet nights by level
    continuum = level + 0.5 * rng.normal(size=(400, 8))
    assert len(spl.fit(continuum, np.zeros(400, int), first=6, threshold=3.3).source) == 0
    x, labels = _mixed(rng)
    assert len(spl.fit(x, labels, first=6, threshold=3.3, overlap=16.0).source) == 0  # 230 windows ≈ 14 independent
    few = np.r_[0:200, 200:203, 230:len(x)]  # 3 far windows: fewer than MIN_PART
    assert len(spl.fit(x[few], labels[few], first=6, threshold=3.3).source) == 0
    assert spl.fit(x[few], labels[few], first=6, threshold=3.3).mean.shape == (0, 2, 8)


def test_separation_grows_with_the_distance_between_groups():
    rng = np.random.default_rng(2)
    seps = []
    for shift in (1.0, 3.0, 6.0):
        x = np.concatenate([rng.normal(size=(300, 6)), rng.normal(size=(60, 6)) + shift])
        seps.append(spl.two_groups(x)[3])
    assert seps[0] < seps[1] < seps[2] and seps[2] > 4.0


def test_split_state_round_trip_and_validation():
    x, labels = _mixed(np.random.default_rng(3))
    split = spl.fit(x, labels, first=7, threshold=3.3)
    back = spl.SparsitySplit.from_state(split.to_state(), 7, 6, x.shape[1])
    assert np.array_equal(back.var, split.var) and np.array_equal(back.target, split.target)
    state = split.to_state()
    bad = [dict(state, target=state["source"]),  # onto its own cluster
           dict(state, var=-state["var"]),
           dict(state, mean=torch.zeros(1, 2, 3, dtype=torch.float64)),
           dict(state, log_weight=torch.tensor([[float("nan"), 0.0]], dtype=torch.float64)),
           dict(state, source=torch.tensor([9]))]  # no such cluster
    for s in bad:
        with pytest.raises(ValueError):
            spl.SparsitySplit.from_state(s, 7, 6, x.shape[1])
    empty = {k: v[:, :, :0] if k in ("mean", "var") else v for k, v in state.items()}
    with pytest.raises(ValueError):  # a split at a scale whose features have no sparsity columns
        spl.SparsitySplit.from_state(empty, 7, 6, 0)


def test_config_refuses_a_negative_separation():
    with pytest.raises(ConfigError, match="sparsity_split"):
        preset("small", sparsity_split=-1.0)
    assert preset("paper").sparsity_split == 0.0  # the published model is left as published
    assert preset("small").sparsity_split > 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("sparsity")
    store = synthetic_store(d, 3.0, 5)
    train(store, d / "m.pt", TINY, device="cpu")
    return store, d / "m.pt"


def _every_window_of(model, store, tmp_path: Path, path: Path) -> tuple[Path, int, int]:
    """A copy of the checkpoint whose finest scale sends every window of its largest cluster to a new number."""
    before = predict(store, model, device="cpu")
    s = model.scales[0]
    src, new = int(np.bincount(before.cluster[:, 0]).argmax()), model.first_split(s)
    dims = len(model.side_columns(s)) * model.preps[s].mean.shape[0]
    mean = torch.zeros(1, 2, dims, dtype=torch.float64)
    mean[0, 0] = 1e4  # component 0 explains nothing: every window goes to the smaller group
    state = {"source": torch.tensor([src]), "target": torch.tensor([new]), "mean": mean,
             "var": torch.ones(1, 2, dims, dtype=torch.float64),
             "log_weight": torch.log(torch.tensor([[0.9, 0.1]], dtype=torch.float64))}
    return _with_split(path, tmp_path / "e.pt", s, state), src, new


def _with_split(ck_path: Path, out: Path, scale: int, state: dict) -> Path:
    ck = torch.load(ck_path, weights_only=True)
    ck["sparsity_splits"][str(scale)] = state
    torch.save(ck, out)
    return out


def test_a_saved_split_is_used_when_clustering_and_checked_on_load(trained, tmp_path):
    store, path = trained
    model = load_model(path)
    assert set(model.splits) == set(model.scales)  # every scale of these features has sparsity columns
    before = predict(store, model, device="cpu")
    edited_path, src, new = _every_window_of(model, store, tmp_path, path)
    edited = load_model(edited_path)
    s = model.scales[0]
    assert edited.split_clusters()[s] == {new: src} and edited.derived_from(s, new) == ("split", src)
    after = predict(store, edited, device="cpu")
    moved = before.cluster[:, 0] == src
    assert after.probabilities.shape[-1] == edited.n_clusters >= new + 1
    assert (after.cluster[moved, 0] == new).all()
    assert np.array_equal(after.cluster[~moved, 0], before.cluster[~moved, 0])
    assert np.array_equal(after.cluster[:, 1], before.cluster[:, 1])
    assert np.allclose(after.latent, before.latent)
    streamed = predict(store, edited, device="cpu", memory_budget=1)  # sparsity columns read chunk by chunk
    assert np.array_equal(streamed.cluster, after.cluster)
    with pytest.raises(ConfigError, match="sparsity split of cluster"):
        decode_cluster(edited, new, s)
    with pytest.raises(DataError, match="sparsity columns"):
        edited.infer({k: torch.zeros(2, 1, 4) for k in edited.scales})
    state = torch.load(edited_path, weights_only=True)["sparsity_splits"][str(s)]
    with pytest.raises(InputFileError, match="sparsity splits at scale"):
        load_model(_with_split(path, tmp_path / "b.pt", s, dict(state, target=torch.tensor([src]))))
    ck = torch.load(path, weights_only=True)
    del ck["sparsity_splits"]
    torch.save(ck, tmp_path / "m.pt")
    with pytest.raises(InputFileError, match="sparsity splits are missing"):
        load_model(tmp_path / "m.pt")


def test_cluster_table_and_cli_name_the_splits(trained, tmp_path):
    from click.testing import CliRunner

    from unmix.cli import main

    store, path = trained
    edited, src, new = _every_window_of(load_model(path), store, tmp_path, path)
    s = load_model(edited).scales[0]
    r = CliRunner().invoke(main, ["cluster", str(store), str(edited), "--out", str(tmp_path / "t.h5")])
    assert r.exit_code == 0, r.output
    assert f"sparsity splits: {new} (of {src})" in r.output
    table = ClusterTable.load(tmp_path / "t.h5")
    assert table.meta["split_clusters"][str(s)] == {str(new): src}
    assert table.label(s, new) == f"{new} (split from {src})" and table.label(s, src) == str(src)


def test_train_option_turns_the_splits_off(trained, tmp_path):
    from click.testing import CliRunner

    from unmix.cli import main

    store, _ = trained
    r = CliRunner().invoke(main, ["train", str(store), "--out", str(tmp_path / "o.pt"), "--epochs", "1",
                                  "--sparsity-split", "0", "--clusters", "4", "-q"])
    assert r.exit_code == 0, r.output
    model = load_model(tmp_path / "o.pt")
    assert model.config.sparsity_split == 0.0 and model.splits is None

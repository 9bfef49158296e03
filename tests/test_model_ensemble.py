"""Ensembles of the factorial GMVAE: consensus alignment, checkpoint round trip, validation on load, resuming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import synthetic_store
from unmix.errors import InputFileError
from unmix.model import adjusted_rand_index, load_model, predict, preset, train
from unmix.model.consensus import combine, fit, is_profile_table

TINY3 = preset("small", hidden=16, latent=4, clusters=4, epochs=3, batch_size=64, checkpoint_every=1, ensemble=3)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ensemble")
    return synthetic_store(d, 3.0, 5)


def _onehot(labels: np.ndarray, k: int, noise: float, rng) -> np.ndarray:
    p = np.eye(k)[labels] + noise * rng.random((len(labels), k))
    return (p / p.sum(1, keepdims=True)).astype(np.float32)


def _rare_group_members(rng):
    truth = np.repeat([0, 1, 2, 3], [400, 300, 30, 70])  # group 2 is rare (≈ 4 %), like glitch windows
    member0 = truth.copy()
    member1 = np.array([3, 0, 1, 2])[truth]  # the same groups, other numbers
    member1[truth == 2] = np.where(np.arange(30) < 15, 1, 4)  # ... and the rare group split in two clusters
    member2 = np.array([1, 2, 0, 0])[truth]  # misses the rare group: merged with group 3
    return truth, [_onehot(lab, 5, 0.1, rng) for lab in (member0, member1, member2)]


def test_consensus_keeps_a_rare_group_apart_that_one_member_merges_with_another():
    rng = np.random.default_rng(0)
    truth, probs = _rare_group_members(rng)
    profile = fit(probs)  # default threshold 0.7: merging needs (almost) every member
    assert is_profile_table(profile, 3, 5)
    got = combine(probs, profile)
    assert np.allclose(got.sum(1), 1.0, atol=1e-5)
    labels = got.argmax(1)
    assert np.array_equal(labels[truth != 2], truth[truth != 2])  # the large groups numbered like member 0
    rare = np.unique(labels[truth == 2])
    assert not np.isin(rare, labels[truth != 2]).any()  # the rare group shares no cluster with the others ...
    assert len(rare) == 2  # ... and stays split where one member splits it (co-association 2/3 < 0.7)
    assert np.array_equal(fit(probs), profile)  # same posteriors, same consensus


def test_consensus_at_a_lower_threshold_also_joins_what_one_member_splits():
    rng = np.random.default_rng(0)
    truth, probs = _rare_group_members(rng)
    profile = fit(probs, threshold=0.6)
    assert np.array_equal(combine(probs, profile).argmax(1), truth)  # numbered like member 0, the rare group whole
    member0_renumbered = np.array([2, 0, 4, 1])[truth]
    probs_b = [_onehot(member0_renumbered, 5, 0.1, rng), probs[1], probs[2]]
    assert adjusted_rand_index(combine(probs_b, fit(probs_b, threshold=0.6)).argmax(1), truth) == pytest.approx(1.0)


def test_profile_table_check():
    good = np.zeros((3, 2, 3))
    good[0, :, 0] = good[1, :, 1] = 1.0
    assert is_profile_table(good, 2, 3)
    assert not is_profile_table(good[:, :1], 2, 3)
    bad = good.copy()
    bad[0, 0, 1] = 0.5  # a row that does not sum to 1
    assert not is_profile_table(bad, 2, 3)
    bad = good.copy()
    bad[1, 1, 1] = np.nan
    assert not is_profile_table(bad, 2, 3)
    assert not is_profile_table(np.zeros((3, 2, 3)), 2, 3)


def test_ensemble_checkpoint_round_trip(store_path, tmp_path):
    model = train(store_path, tmp_path / "e.pt", TINY3, device="cpu")
    assert len(model.networks) == 3 and set(model.consensus) == {1024, 4096}
    ck = torch.load(tmp_path / "e.pt", weights_only=True)  # weights only: nothing is unpickled
    assert len(ck["members"]) == 2 and len(ck["member_optimizers"]) == 2 and set(ck["consensus"]) == {"1024", "4096"}
    here = predict(store_path, model, device="cpu")
    again = load_model(tmp_path / "e.pt")
    assert again.digest() == model.digest()
    there = predict(store_path, again, device="cpu")
    assert np.array_equal(here.cluster, there.cluster) and np.allclose(here.probabilities, there.probabilities)
    assert np.allclose(here.probabilities.sum(-1), 1.0, atol=1e-5)
    # the members differ (own seeds), and the consensus is not simply member 0
    w = [dict(net.named_parameters())["heads.s1024.logits.weight"] for net in model.networks]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    single = train(store_path, tmp_path / "s.pt", TINY3.replace(ensemble=1), device="cpu")
    assert single.digest() != model.digest() and not single.members and single.consensus is None


def test_ensemble_resume_continues_exactly(store_path, tmp_path):
    full = train(store_path, tmp_path / "full.pt", TINY3, device="cpu")
    train(store_path, tmp_path / "part.pt", TINY3.replace(epochs=1), device="cpu")
    resumed = train(store_path, tmp_path / "part.pt", TINY3, device="cpu", resume=True)
    assert resumed.epoch == 3 and resumed.digest() == full.digest()


def test_damaged_ensemble_checkpoints_are_refused(store_path, tmp_path):
    train(store_path, tmp_path / "e.pt", TINY3.replace(epochs=1), device="cpu")
    ck = torch.load(tmp_path / "e.pt", weights_only=True)
    cases = {
        "further member": lambda c: c["members"].pop(),
        "consensus at scale 1024": lambda c: c["consensus"].__setitem__("1024", torch.zeros(4, 3, 4)),
        "consensus is missing": lambda c: c.pop("consensus"),
        "NaN": lambda c: next(iter(c["members"][0].values())).fill_(float("nan")),
    }
    for i, (message, damage) in enumerate(cases.items()):
        bad = {**ck, "members": [dict(m) for m in ck["members"]], "consensus": dict(ck["consensus"])}
        bad["members"][0] = {k: v.clone() for k, v in bad["members"][0].items()}
        damage(bad)
        torch.save(bad, tmp_path / f"bad{i}.pt")
        with pytest.raises(InputFileError, match=message):
            load_model(tmp_path / f"bad{i}.pt")

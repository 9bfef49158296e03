"""Glitch evidence (issue #16): per window the share of its energy the template deglitcher explains, stored with the
features, validated when read, and the model's glitch class that takes the windows it dominates."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import synthetic_store
from unmix.clusters import ClusterTable
from unmix.errors import ConfigError, InputFileError
from unmix.features import FeatureConfig, FeatureStore, build_store
from unmix.features.config import FEATURE_FORMAT_V1
from unmix.features.glitch_evidence import share, store_shares, window_energies
from unmix.model import load_model, predict, preset, train

TINY = preset("small", hidden=16, latent=4, clusters=6, epochs=2, batch_size=64, ensemble=1, pca=4,
              outlier_split=0.0, sparsity_split=0.0)


def test_window_energies_measure_each_part_about_its_blocks_means():
    rng = np.random.default_rng(0)
    block = 64
    x = rng.normal(size=(2, 8 * block)) + 1000.0  # an offset does not count
    g = np.zeros_like(x)
    g[0, 2 * block:3 * block] = 3.0 * np.sin(np.linspace(0, 6 * np.pi, block))
    x = x + g
    e = window_energies(x, g, block, np.array([0, 2, 4]), 2)
    assert e.shape == (3, 2, 2) and e.dtype == np.float32
    assert e[0, :, 0].max() == 0 and e[2, :, 0].max() == 0 and e[1, 0, 0] > 0 and e[1, 1, 0] == 0
    power = np.mean(np.concatenate([b - b.mean() for b in np.split(x[0, 2 * block:4 * block], 2)]) ** 2)
    assert e[1, 0, 1] == pytest.approx(power, rel=1e-5)
    s = share(e)
    assert s[1] == pytest.approx((e[1, 0, 0]) / e[1, :, 1].sum(), rel=1e-6) and s[0] == 0
    assert share(np.zeros((1, 3, 2), np.float32))[0] == 0.0  # a flat window


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("glitch")
    with_evidence = synthetic_store(d, 4.0, 3)
    without = d / "plain.h5"
    config = FeatureStore(with_evidence).config
    build_store([d / "synth" / "mixture.mseed"], without, replace(config, glitch_evidence=False), device="cpu")
    return {"with": with_evidence, "without": without, "folder": d}


def test_windows_dominated_by_synthetic_glitches_have_a_high_share(stores):
    from unmix.model.benchmark import LABELS, label_windows
    from unmix.synthetic import SyntheticConfig, generate

    store = FeatureStore(stores["with"])
    assert store.config.glitch_evidence
    rec = generate(SyntheticConfig(hours=4.0, seed=3))
    for s in store.scales:
        e = store.glitch_energy(s)
        assert e.shape == (store.n_windows, 3, 2)
        lab = rec.labels(window=s / 20.0, hop=store.scales[0] / 20.0)
        y = label_windows(lab, store.intervals(s)[:, 0], store.lmst(s).mean(axis=1), 20.0)
        glitch, sh = y == LABELS.index("glitch"), share(e)
        assert glitch.any() and np.median(sh[glitch]) > 0.5 and np.median(sh[~glitch]) < 0.05
        assert np.allclose(store_shares(store, s), sh)
    assert FeatureStore(stores["without"]).glitch_energy(store.scales[0]) is None


def test_the_setting_keeps_older_stores_and_their_hashes():
    off = FeatureConfig(glitch_evidence=False)
    legacy = {k: v for k, v in off.to_dict().items() if k != "glitch_evidence"}
    expected = hashlib.sha256(json.dumps({"format": FEATURE_FORMAT_V1, **legacy}, sort_keys=True).encode())
    assert off.digest() == expected.hexdigest()[:16] != FeatureConfig().digest()
    assert FeatureConfig.from_dict(legacy).glitch_evidence is False  # a store made before it holds none
    assert FeatureConfig().glitch_evidence is True
    with pytest.raises(ConfigError, match="glitch_evidence"):
        FeatureConfig(glitch_evidence="yes")


def _segment(store: Path) -> Path:
    return next((store.parent / f"{store.name}.segments").glob("*.h5"))


def test_damaged_glitch_evidence_is_one_line_naming_the_store(stores, tmp_path):
    import shutil

    for damage in ("missing", "negative"):
        copy = tmp_path / damage / "s.h5"
        copy.parent.mkdir()
        shutil.copy(stores["with"], copy)
        shutil.copytree(stores["with"].parent / f"{stores['with'].name}.segments", copy.parent / "s.h5.segments")
        with h5py.File(_segment(copy), "a") as f:
            name = f"glitch/{FeatureStore(copy).scales[0]}"
            if damage == "missing":
                del f[name]
            else:
                f[name][0, 0, 0] = -1.0
        with pytest.raises(InputFileError) as err:
            FeatureStore(copy).glitch_energy(FeatureStore(copy).scales[0])
        assert "s.h5" in str(err.value) and "\n" not in str(err.value)


@pytest.fixture(scope="module")
def model(stores) -> Path:
    path = stores["folder"] / "m.pt"
    train(stores["with"], path, TINY.replace(glitch_share=0.5), device="cpu")
    return path


def test_the_glitch_class_takes_the_windows_the_templates_dominate(stores, model, tmp_path):
    trained = load_model(model)
    k = trained.glitch_cluster
    assert k == trained.n_clusters - 1 == TINY.clusters
    table = predict(stores["with"], trained, device="cpu")
    store = FeatureStore(stores["with"])
    for j, s in enumerate(trained.scales):
        dominated = store_shares(store, s) >= 0.5
        assert dominated.any() and np.array_equal(table.cluster[:, j] == k, dominated)
    assert table.meta["glitch_class"] == {"cluster": k, "share": 0.5, "evidence": True}
    assert table.label(trained.scales[0], k) == f"{k} (template glitches)"
    streamed = predict(stores["with"], trained, device="cpu", memory_budget=1)
    assert np.array_equal(streamed.cluster, table.cluster)
    plain = predict(stores["without"], trained, device="cpu")  # no evidence: the class stays empty
    assert not (plain.cluster == k).any() and plain.meta["glitch_class"]["evidence"] is False
    assert table.probabilities.shape[-1] == trained.n_clusters


def test_the_cli_sets_and_reports_the_glitch_class(stores, model, tmp_path):
    from click.testing import CliRunner

    from unmix.cli import main
    from unmix.generate import decode_cluster

    r = CliRunner().invoke(main, ["cluster", str(stores["with"]), str(model), "--out", str(tmp_path / "t.h5")])
    assert r.exit_code == 0, r.output
    k = load_model(model).glitch_cluster
    assert f"glitch class: {k} (template share ≥ 0.5)" in r.output
    assert ClusterTable.load(tmp_path / "t.h5").meta["glitch_class"]["cluster"] == k
    with pytest.raises(ConfigError, match="glitch class"):
        decode_cluster(load_model(model), k, load_model(model).scales[0])
    r = CliRunner().invoke(main, ["train", str(stores["with"]), "--out", str(tmp_path / "o.pt"), "--epochs", "1",
                                  "--glitch-share", "0", "--clusters", "4", "-q"])
    assert r.exit_code == 0, r.output
    assert load_model(tmp_path / "o.pt").glitch_cluster is None
    with pytest.raises(ConfigError, match="glitch_share"):
        preset("small", glitch_share=1.5)
    assert preset("paper").glitch_share == 0.0 and preset("small").glitch_share == 0.5
    paper = preset("paper")  # off: hashed as before the setting existed, so older models keep their digests
    legacy = {k: v for k, v in paper.to_dict().items() if k != "glitch_share"}
    assert paper.digest() == hashlib.sha256(json.dumps(legacy, sort_keys=True).encode()).hexdigest()[:16]


def test_features_cli_can_leave_the_evidence_out(stores, tmp_path):
    from click.testing import CliRunner

    from unmix.cli import main

    out = tmp_path / "f.h5"
    r = CliRunner().invoke(main, ["features", str(stores["folder"] / "synth" / "mixture.mseed"), "--out", str(out),
                                  "--window", "4096", "--scales", "1024,4096", "--no-glitch-evidence"])
    assert r.exit_code == 0, r.output
    assert FeatureStore(out).config.glitch_evidence is False

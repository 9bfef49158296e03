"""The pipeline layer: one set of defaults and one reuse/resume policy for the CLI, the GUI and the demo."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from unmix import pipeline
from unmix.cli import main
from unmix.clusters import ClusterTable
from unmix.errors import ConfigError, OutputExistsError
from unmix.features import FeatureConfig, build_store
from unmix.jobs import Cancelled, CancelToken
from unmix.model import load_model
from unmix.model.config import PRESETS
from unmix.synthetic import SyntheticConfig, generate

SMALL = dict(window=4096, hop=1024, scales=(1024, 4096), normalize=None)
TINY = dict(hidden=16, latent=4, clusters=4, epochs=3, batch_size=64, checkpoint_every=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pipeline")
    generate(SyntheticConfig(hours=2.0, seed=5)).write(d / "a")
    generate(SyntheticConfig(hours=1.0, seed=6, start_sol=300)).write(d / "b")
    build_store([d / "a" / "mixture.mseed"], d / "store.h5", FeatureConfig(**SMALL), device="cpu")
    return {"dir": d, "store": d / "store.h5", "a": d / "a" / "mixture.mseed", "b": d / "b" / "mixture.mseed"}


def test_train_reuses_resumes_and_refuses(data, tmp_path):
    out = tmp_path / "m.pt"
    first = pipeline.train(data["store"], out, pipeline.default_model(**TINY), device="cpu")
    assert not first.reused and not first.resumed and first.model.epoch == 3
    again = pipeline.train(data["store"], out, pipeline.default_model(**TINY), device="cpu")
    assert again.reused and again.model.digest() == first.model.digest()
    longer = pipeline.train(data["store"], out, pipeline.default_model(**{**TINY, "epochs": 4}), device="cpu")
    assert longer.resumed and longer.model.epoch == 4
    with pytest.raises(OutputExistsError, match="other settings"):
        pipeline.train(data["store"], out, pipeline.default_model(**{**TINY, "clusters": 5}), device="cpu")
    replaced = pipeline.train(data["store"], out, pipeline.default_model(**{**TINY, "clusters": 5}), overwrite=True,
                              device="cpu")
    assert not replaced.reused and replaced.model.config.clusters == 5
    with pytest.raises(ConfigError, match="nothing to continue"):
        pipeline.train(data["store"], tmp_path / "none.pt", own_settings=True, device="cpu")


def test_cancelled_training_is_resumed_to_the_same_model(data, tmp_path):
    config = pipeline.default_model(**TINY)
    full = pipeline.train(data["store"], tmp_path / "full.pt", config, device="cpu").model
    token = CancelToken()

    def cancel_after_first(log: dict, _config) -> None:
        token.cancel()

    with pytest.raises(Cancelled):
        pipeline.train(data["store"], tmp_path / "part.pt", config, device="cpu", on_epoch=cancel_after_first,
                       token=token)
    assert load_model(tmp_path / "part.pt").epoch == 1
    resumed = pipeline.train(data["store"], tmp_path / "part.pt", config, device="cpu")
    assert resumed.resumed and resumed.model.digest() == full.digest()


def test_a_model_of_a_smaller_store_is_not_reused(data, tmp_path):
    store = tmp_path / "store.h5"
    shutil.copy(data["store"], store)
    segments = data["store"].with_name(data["store"].name + ".segments")
    shutil.copytree(segments, store.with_name(store.name + ".segments"))
    out = tmp_path / "m.pt"
    pipeline.train(store, out, pipeline.default_model(**TINY), device="cpu")
    pipeline.features([data["b"]], store, FeatureConfig(**SMALL), device="cpu")
    with pytest.raises(OutputExistsError, match="windows, the store now has"):
        pipeline.train(store, out, pipeline.default_model(**TINY), device="cpu")


def test_cluster_reuses_only_its_own_table(data, tmp_path, monkeypatch):
    m1 = pipeline.train(data["store"], tmp_path / "m1.pt", pipeline.default_model(**TINY), device="cpu").path
    m2 = pipeline.train(data["store"], tmp_path / "m2.pt", pipeline.default_model(**{**TINY, "seed": 3}),
                        device="cpu").path
    out = tmp_path / "t.h5"
    first = pipeline.cluster(data["store"], m1, out, device="cpu")
    assert not first.reused
    with monkeypatch.context() as mp:  # reusing reads what the table says about itself, not its arrays
        mp.setattr(ClusterTable, "load", classmethod(lambda cls, path: pytest.fail("the whole table was read")))
        again = pipeline.cluster(data["store"], m1, out, device="cpu")
    assert again.reused and again.occupancy == first.occupancy
    assert (again.table.cluster == first.table.cluster).all()
    named = first.table
    named.set_name(named.scales[0], int(named.cluster[0, 0]), "quiet night")
    named.save(out, overwrite=True)
    assert pipeline.cluster(data["store"], m1, out, device="cpu").summary.label(
        named.scales[0], int(named.cluster[0, 0])).endswith("(quiet night)")
    with pytest.raises(OutputExistsError, match="another model"):
        pipeline.cluster(data["store"], m2, out, device="cpu")
    assert not pipeline.cluster(data["store"], m2, out, overwrite=True, device="cpu").reused
    csv = tmp_path / "t.csv"
    pipeline.cluster(data["store"], m1, csv, device="cpu")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        pipeline.cluster(data["store"], m1, csv, device="cpu")
    with pytest.raises(ConfigError, match="must end in"):
        pipeline.cluster(data["store"], m1, tmp_path / "t.txt", device="cpu")


def test_cli_train_follows_the_policy(data, tmp_path):
    runner = CliRunner()
    out = tmp_path / "m.pt"
    args = ["train", str(data["store"]), "--out", str(out), "--epochs", "2", "--clusters", "3", "--hidden", "16",
            "--latent", "4", "--device", "cpu", "-q"]
    assert runner.invoke(main, args).exit_code == 0
    r = runner.invoke(main, args)
    assert r.exit_code == 0 and "reused" in r.output, r.output
    r = runner.invoke(main, [*args[:-3], "--clusters", "5", "--device", "cpu"])
    assert r.exit_code == 2 and "other settings" in r.output and "Traceback" not in r.output
    r = runner.invoke(main, ["train", str(data["store"]), "--out", str(out), "--resume", "--epochs", "3", "-q"])
    assert r.exit_code == 0 and "resumed" in r.output and load_model(out).epoch == 3
    r = runner.invoke(main, ["train", str(data["store"]), "--out", str(out), "--resume", "--clusters", "4"])
    assert r.exit_code == 2 and "only --epochs" in r.output


def _cli_defaults(name: str) -> dict:
    command = main.commands[name]
    return {p.name: p.default for p in command.params if hasattr(p, "default")}


def test_cli_defaults_are_the_pipeline_defaults():
    f = pipeline.default_features()
    d = _cli_defaults("features")
    assert (d["window"], d["hop"], d["J"], d["Q"], d["wavelet"], d["model"], d["keep"], d["edge"]) == (
        f.window, f.hop, f.J, f.Q, f.wavelet, f.model, f.keep, f.edge)
    assert tuple(int(s) for s in d["scales"].split(",")) == f.scales and d["components"] == f.components
    assert _cli_defaults("train")["preset_name"] == pipeline.DEFAULT_PRESET
    assert pipeline.DEFAULT_PRESET in PRESETS
    r = CliRunner().invoke(main, ["train", "--list-presets"])
    assert r.exit_code == 0 and all(name in r.output for name in PRESETS)

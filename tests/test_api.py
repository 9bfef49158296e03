"""The notebook API (``import unmix``): the tutorial page runs, estimators follow scikit-learn, in-memory features."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import unmix
from unmix.errors import ConfigError, OutputExistsError

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "python-api.md"
CONFIG = dict(window=16384, scales=(1024, 4096, 16384), normalize=None)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A private example cache for this module (never the user's ~/.cache)."""
    path = tmp_path_factory.mktemp("unmix-cache")
    old = os.environ.get("UNMIX_CACHE")
    os.environ["UNMIX_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("UNMIX_CACHE", None)
    else:
        os.environ["UNMIX_CACHE"] = old


@pytest.fixture(scope="module")
def features(cache):
    return unmix.extract(unmix.read(unmix.example().path), unmix.FeatureConfig(**CONFIG), device="cpu")


@pytest.fixture(scope="module")
def fitted(features):
    return unmix.FactorialGMVAE(epochs=3, seed=1, device="cpu").fit(features)


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_tutorial_page_runs(cache, tmp_path, monkeypatch):
    """Every python block of docs/python-api.md runs in order (read → features → clusters → separation → export)."""
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(PAGE.read_text())
    assert len(blocks) >= 5
    namespace: dict = {}
    for k, block in enumerate(blocks):
        exec(compile(block, f"{PAGE.name}[python block {k + 1}]", "exec"), namespace)
    assert (tmp_path / "example-features.h5").is_file() and (tmp_path / "example-clusters.h5").is_file()
    prov = json.loads((tmp_path / "separated" / "separated.provenance.json").read_text())
    assert prov["method"] == "hybrid" and {f["product"] for f in prov["files"]} >= {"background"}


def test_import_unmix_is_light_and_lists_its_api():
    """``import unmix`` loads neither PyTorch nor ObsPy; every public name resolves (lazily)."""
    code = ("import sys, unmix; heavy = [m for m in ('torch', 'obspy', 'h5py') if m in sys.modules]; "
            "print(heavy); [getattr(unmix, n) for n in unmix.__all__]; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "ok"]
    assert {"read", "example", "extract", "FeatureSet", "FactorialGMVAE", "Prior", "get_separator",
            "export", "ClusterTable", "FeatureConfig"} <= set(dir(unmix))


def test_export_is_the_function_and_stays_the_module():
    """``unmix.export(result, folder)`` works although ``unmix.export`` is also the batch-export module."""
    import unmix.export as module

    assert callable(unmix.export) and module is unmix.export and callable(module.export_separation)
    with pytest.raises(ConfigError, match="SeparationResult"):
        unmix.export("not a result", "somewhere")


def test_estimator_params_round_trip_and_validation_in_fit(features):
    """The constructor stores, fit validates; get_params/set_params round-trip; unknown names are refused."""
    est = unmix.FactorialGMVAE(preset="nonsense", clusters=5)  # no validation yet
    copy = unmix.FactorialGMVAE(**est.get_params())
    assert copy.get_params() == est.get_params() and repr(copy) == "FactorialGMVAE(preset='nonsense', clusters=5)"
    with pytest.raises(ConfigError, match="unknown preset"):
        est.fit(features)
    assert not hasattr(est, "model_")
    assert est.set_params(preset="small") is est and est.preset == "small"
    with pytest.raises(ConfigError, match="unknown parameter.*epochz.*valid: preset"):
        est.set_params(epochz=3)
    with pytest.raises(ConfigError, match="not fitted"):
        unmix.FactorialGMVAE().predict(features)


def test_training_in_memory_writes_nothing(features, fitted, tmp_path, monkeypatch):
    """Without a checkpoint path the model is trained in memory: no file appears anywhere in the working folder."""
    monkeypatch.chdir(tmp_path)
    est = unmix.FactorialGMVAE(epochs=2, device="cpu").fit(features)
    assert list(tmp_path.iterdir()) == [] and est.model_.path is None and est.model_.finished
    assert len(est.history_) == 2 and est.config_.epochs == 2 and est.scales_ == (1024, 4096, 16384)


def test_featureset_equals_its_saved_store(features, fitted, tmp_path):
    """A FeatureSet saved and loaded back is the same store; the model gives the same table on either."""
    path = features.save(tmp_path / "new folder" / "f.h5")
    store = unmix.FeatureStore(path)
    assert store.config_hash == features.config_hash and store.n_windows == features.n_windows
    loaded = unmix.FeatureSet.load(path)
    for s in features.scales:
        np.testing.assert_array_equal(loaded.features(s), features.features(s))
        np.testing.assert_array_equal(store.lmst(s), features.lmst(s))
    assert loaded.inputs[0]["path"] == str(unmix.example().path) and len(loaded.inputs[0]["sha256"]) == 64
    a, b = fitted.predict(features), fitted.predict(path)
    np.testing.assert_array_equal(a.cluster, b.cluster)
    np.testing.assert_allclose(a.probabilities, b.probabilities, rtol=1e-6, atol=1e-7)
    with pytest.raises(OutputExistsError):
        features.save(path)


def test_extract_from_paths_equals_from_records(features, cache):
    """Features of the example file read by path are those of its records."""
    from_path = unmix.extract(unmix.example().path, unmix.FeatureConfig(**CONFIG), device="cpu")
    np.testing.assert_array_equal(from_path.features(1024), features.features(1024))
    assert from_path.inputs[0]["sha256"] == features.inputs[0]["sha256"]
    with pytest.raises(ConfigError, match="FeatureConfig"):
        unmix.extract(unmix.example().path, {"window": 16384})


def test_fit_checkpoint_and_load(features, tmp_path):
    """``checkpoint=`` writes the checkpoint as ``unmix train`` does; ``load`` gives the same predictions."""
    est = unmix.FactorialGMVAE(epochs=2, device="cpu", checkpoint=tmp_path / "m.pt").fit(features)
    again = unmix.FactorialGMVAE.load(tmp_path / "m.pt", device="cpu")
    np.testing.assert_array_equal(again.predict(features).cluster, est.predict(features).cluster)
    with pytest.raises(OutputExistsError):
        unmix.FactorialGMVAE(epochs=2, device="cpu", checkpoint=tmp_path / "m.pt").fit(features)


def test_prior_validation(fitted, features):
    table = fitted.predict(features)
    big = int(table.occupancy(1024).argmax())
    prior = unmix.Prior.from_clusters(table, big, 1024, n_prior=4)
    assert prior.options() == {"table": table, "clusters": [big], "scale": 1024, "n_prior": 4}
    # left unset, the snippet count is the separator protocol's (fast: 20, paper: 300 per cluster), not fixed here
    assert unmix.Prior.from_clusters(table, big, 1024).options() == {"table": table, "clusters": [big], "scale": 1024}
    with pytest.raises(ConfigError, match="scale 999 not in this table"):
        unmix.Prior.from_clusters(table, big, 999)
    with pytest.raises(ConfigError, match="clusters must be numbers"):
        unmix.Prior.from_clusters(table, table.n_clusters, 1024)
    with pytest.raises(ConfigError, match="R >= 2"):
        unmix.Prior.from_array(np.zeros((1, 3, 1024)))
    assert unmix.Prior.from_array(np.ones((4, 1024))).snippets.shape == (4, 1, 1024)


def test_get_separator_checks_options_and_prior(cache):
    """Unknown options are one ConfigError listing the valid ones; a prior for a method that takes none is refused."""
    with pytest.raises(ConfigError, match="unknown option.*bogus.*valid:"):
        unmix.get_separator("template", bogus=1)
    with pytest.raises(ConfigError, match="bogus"):
        unmix.get_separator("hybrid", bogus=1)
    with pytest.raises(ConfigError, match="takes no prior"):
        unmix.get_separator("highpass", prior=unmix.Prior.from_array(np.ones((3, 1, 2048))))
    with pytest.raises(ConfigError, match="unknown separation method 'nope'"):
        unmix.get_separator("nope")
    stream = unmix.example().stream()
    result = unmix.get_separator("highpass").separate(stream.slice(stream[0].stats.starttime,
                                                                   stream[0].stats.starttime + 600))
    assert isinstance(result, unmix.SeparationResult)


def test_export_result_products_and_refusals(cache, tmp_path):
    """export writes derived products (location B2, quality Q) and the provenance last; it never overwrites."""
    from unmix.io import read_file

    stream = unmix.example().stream()
    result = unmix.get_separator("template").separate(stream.slice(stream[0].stats.starttime,
                                                                   stream[0].stats.starttime + 1800))
    paths = unmix.export(result, tmp_path / "out", stem="x")
    assert paths[-1].name == "x.provenance.json" and all(p.is_file() for p in paths)
    back = read_file(tmp_path / "out" / "x.background.mseed")
    assert {tr.stats.location for tr in back} == {"B2"} and back[0].stats.mseed.dataquality == "Q"
    prov = json.loads(paths[-1].read_text())
    assert prov["input"] == "<in memory>" and prov["method"] == "template"
    before = {p: p.stat().st_mtime_ns for p in paths}
    with pytest.raises(OutputExistsError):
        unmix.export(result, tmp_path / "out", stem="x")
    assert {p: p.stat().st_mtime_ns for p in paths} == before
    assert unmix.export(result, tmp_path / "out", stem="x", overwrite=True)


def test_cluster_table_columns_and_optional_frames(fitted, features, monkeypatch):
    """columns() is the long form; to_dataframe/to_xarray name the missing package in one ImportError."""
    table = fitted.predict(features)
    cols = table.columns()
    n, S = table.cluster.shape
    assert all(len(v) == n * S for v in cols.values())
    assert cols["scale"][:S].tolist() == list(table.scales) and cols["start"].dtype == np.dtype("datetime64[ns]")
    assert cols["cluster"][S] == table.cluster[1, 0]
    monkeypatch.setitem(sys.modules, "pandas", None)
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(ImportError, match="to_dataframe.*needs the pandas package"):
        table.to_dataframe()
    with pytest.raises(ImportError, match="needs the xarray package"):
        table.to_xarray()


def test_example_is_cached_and_has_truth(cache):
    """The second call reuses the files of the first; the truth and the sources come with the mixture."""
    ex = unmix.example()
    stamp = ex.path.stat().st_mtime_ns
    again = unmix.example()
    assert again.path == ex.path and again.path.stat().st_mtime_ns == stamp
    assert ex.truth["glitches"] and "glitches" in ex.sources
    assert len(ex.stream()) == 3 and ex.records()[0].key == "SY.ELYSE.02.BH"
    with pytest.raises(ConfigError, match="no source 'nope'"):
        ex.stream("nope")
    with pytest.raises(ConfigError, match="hours"):
        unmix.example(hours=0)


@pytest.mark.parametrize("module", ["unmix.api", "unmix.example_data", "unmix.featureset"])
def test_docstring_examples_run(cache, module):
    """The ``>>>`` examples in the API's docstrings run and print what they show."""
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_extract_records_one_input_per_source_file(cache):
    """Records of two files are two inputs (each with its path and sha256); a stream built in memory is an input
    without a file, and a prior from its clusters is refused in one line instead of failing when separating."""
    import obspy

    from unmix.io import build_records

    ex = unmix.example()
    keys = ("network", "station", "location", "channel", "starttime", "sampling_rate")
    memory = obspy.Stream([obspy.Trace(tr.data.copy(), header={k: tr.stats[k] for k in keys})
                           for tr in ex.stream("background")])
    records = unmix.read(ex.path) + build_records(memory)
    fs = unmix.extract(records, unmix.FeatureConfig(**CONFIG), device="cpu")
    assert [i["path"] for i in fs.inputs] == [str(ex.path), ""] and len(fs.inputs[0]["sha256"]) == 64
    table = unmix.FactorialGMVAE(epochs=1, device="cpu").fit(fs).predict(fs)
    memory_windows = table.input_index == 1
    k = int(np.bincount(table.cluster[memory_windows, 0]).argmax())
    with pytest.raises(ConfigError, match="held only in memory"):
        unmix.Prior.from_clusters(table, k, 1024)

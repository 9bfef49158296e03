"""Sampling from a cluster: decoded feature vectors, synthesised waveforms, their quality, the CLI command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from obspy import read

from unmix import pipeline
from unmix.cli import UnmixGroup
from unmix.cli.generate import COMMANDS, generate
from unmix.clusters import ClusterTable
from unmix.errors import ConfigError
from unmix.features import FeatureConfig, FeatureStore
from unmix.generate import (
    Normaliser,
    _invert_prep,
    decode_cluster,
    generation_quality,
    provenance_path,
    synthesize,
)
from unmix.hashing import file_sha256
from unmix.jobs import Cancelled, CancelToken
from unmix.model.data import fit_scale
from unmix.scattering import ScatteringCovariance
from unmix.synthetic import SyntheticConfig
from unmix.synthetic import generate as synth

SMALL = FeatureConfig(window=4096, hop=1024, scales=(1024, 4096), normalize=None)


@pytest.fixture(scope="module")
def clustered(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("generate")
    synth(SyntheticConfig(hours=2.0, seed=11)).write(d / "syn")
    store = d / "store.h5"
    pipeline.features([d / "syn" / "mixture.mseed"], store, SMALL, device="cpu")
    model = pipeline.train(store, d / "m.pt", pipeline.default_model(hidden=16, latent=4, clusters=3, epochs=2),
                           device="cpu").path
    table_path = d / "t.h5"
    table = pipeline.cluster(store, model, table_path, device="cpu").table
    busiest = int(np.argmax(table.occupancy(1024)))
    return {"dir": d, "store": store, "model": model, "table": table, "table_path": table_path, "busiest": busiest}


def test_generated_waveforms_are_closer_to_the_cluster_than_white_noise(clustered):
    table, k = clustered["table"], clustered["busiest"]
    res = synthesize(table, k, 1024, n=2, seed=3, max_iter=40, n_prior=12, device="cpu")
    assert len(res.streams) == 2 and res.data.shape == (2, 3, 1024) and np.isfinite(res.data).all()
    for i, st in enumerate(res.streams):
        assert [tr.stats.channel[-1] for tr in st] == list("UVW")
        assert {tr.stats.network for tr in st} == {"SY"} and {tr.stats.location for tr in st} == {f"{i:02d}"}
        assert all(tr.stats.sampling_rate == table.meta["sampling_rate"] and tr.stats.npts == 1024 for tr in st)
    assert res.info["iterations"] >= 1 and max(max(r) for r in res.info["final_loss"]) < 1.0
    assert np.mean(res.info["final_loss"]) < 0.5 * res.info["initial_loss"]  # the optimisation did the work
    q = generation_quality(res.data, res.snippets.data, seed=3)
    for fam in ("cov", "scat"):  # 'scat' is never optimised: a held-out check
        e = q["families"][fam]
        assert e["generated"]["median"] < e["white"]["median"], (fam, e)
    assert q["families"]["cov"]["generated"]["inside_fraction"] == 1.0
    assert q["families"]["cov"]["white"]["inside_fraction"] < 1.0


def test_synthesis_is_reproducible_and_longer_waveforms(clustered):
    table, k = clustered["table"], clustered["busiest"]
    a = synthesize(table, k, 1024, n=1, seed=5, max_iter=3, n_prior=6, device="cpu")
    b = synthesize(table, k, 1024, n=1, seed=5, max_iter=3, n_prior=6, device="cpu")
    c = synthesize(table, k, 1024, n=1, length=2048, seed=6, max_iter=3, n_prior=6, device="cpu")
    assert np.array_equal(a.data, b.data)
    assert c.data.shape == (1, 3, 2048) and c.streams[0][0].stats.npts == 2048


def test_cancel_stops_the_synthesis(clustered):
    token = CancelToken()

    def progress(fraction: float, message: str = "") -> None:
        if message.startswith("iteration"):
            token.cancel()

    with pytest.raises(Cancelled):
        synthesize(clustered["table"], clustered["busiest"], 1024, n=1, max_iter=50, tol=0.0, n_prior=6,
                   device="cpu", progress=progress, token=token)
    pre = CancelToken()
    pre.cancel()
    with pytest.raises(Cancelled):
        synthesize(clustered["table"], clustered["busiest"], 1024, n=1, device="cpu", token=pre)


def test_bad_requests_are_config_errors(clustered):
    table = clustered["table"]
    with pytest.raises(ConfigError, match="no cluster 7"):
        synthesize(table, 7, 1024, device="cpu")
    with pytest.raises(ConfigError, match="scale 999"):
        synthesize(table, 0, 999, device="cpu")
    with pytest.raises(ConfigError, match="too short"):
        synthesize(table, clustered["busiest"], 1024, length=64, device="cpu")


def test_decode_cluster_shapes_and_determinism(clustered):
    model = clustered["model"]
    d = decode_cluster(model, 1, 1024, n=5, seed=2)
    C = len("UVW")
    assert d.values.ndim == 3 and d.values.shape[:2] == (5, C) and np.isfinite(d.values).all()
    assert d.values.shape[2] == d.columns.shape[0] and d.latent.shape == (5, 4)
    K = FeatureStore(clustered["store"]).features(1024).shape[2]
    assert d.coefficients.shape == (5, C, K, 2)
    known = np.isfinite(d.coefficients)
    assert d.complete == bool(known.all())
    assert np.array_equal(d.coefficients[:, :, d.columns[:, 0], d.columns[:, 1]], d.values)
    again = decode_cluster(model, 1, 1024, n=5, seed=2)
    other = decode_cluster(model, 2, 1024, n=5, seed=2)
    assert np.array_equal(again.values, d.values) and not np.allclose(other.values, d.values)
    from unmix.model import load_model

    beyond = load_model(model).n_clusters  # past the network's clusters and any outlier cluster
    with pytest.raises(ConfigError, match=f"no cluster {beyond}"):
        decode_cluster(model, beyond, 1024)
    with pytest.raises(ConfigError, match="scale 2048"):
        decode_cluster(model, 0, 2048)


@pytest.mark.parametrize("preprocessing", ["paper", "log", "shape"])
def test_inverse_preprocessing_round_trip(clustered, preprocessing):
    """Without a PCA the inverse is exact: features → network inputs → features."""
    fs = FeatureStore(clustered["store"])
    a = fs.features(1024)
    prep = fit_scale(a, fs.description, preprocessing)
    x = prep.apply(a[:20]).astype(np.float64)
    back, _ = _invert_prep(prep, x)
    want = a[:20][:, :, prep.columns[:, 0], prep.columns[:, 1]]
    scale = np.abs(want).max(axis=0) + 1e-30
    assert np.max(np.abs(back - want) / scale) < 1e-4  # float32 network inputs


def test_normaliser_is_scale_free():
    sc = ScatteringCovariance(J=6, model="scat+cov", dtype=torch.float64, device="cpu")
    norm = Normaliser(sc.description)
    x = np.random.default_rng(0).standard_normal((2, 1, 512))
    a, b = norm(sc.transform(x)), norm(sc.transform(10.0 * x))
    ps = np.asarray(sc.description["c_type"]).astype(str) == "ps"
    assert torch.allclose(a[..., ~ps], b[..., ~ps], rtol=1e-9, atol=1e-12)
    assert torch.allclose(b[..., ps].real - a[..., ps].real, torch.full_like(a[..., ps].real, np.log(100.0)))


def _cli() -> UnmixGroup:
    group = UnmixGroup()
    for command in COMMANDS:
        group.add_command(command)
    return group


def test_cli_writes_waveforms_and_provenance(clustered, tmp_path):
    assert [generate] == COMMANDS
    table_path = clustered["table_path"]
    out = tmp_path / "gen.mseed"
    args = ["generate", "--table", str(table_path), "--cluster", str(clustered["busiest"]), "--scale", "1024",
            "--out", str(out), "--count", "2", "--seed", "4", "--max-iter", "10", "--n-prior", "8", "--device", "cpu"]
    r = CliRunner().invoke(_cli(), args)
    assert r.exit_code == 0, r.output
    st = read(str(out))
    assert len(st) == 6 and {tr.stats.network for tr in st} == {"SY"}
    prov = json.loads(provenance_path(out).read_text())
    assert prov["table_sha256"] == file_sha256(Path(table_path)) and prov["output_sha256"] == file_sha256(out)
    assert prov["cluster"] == clustered["busiest"] and prov["seed"] == 4 and prov["count"] == 2
    assert prov["iterations"] >= 1 and set(prov["quality"]["families"]) == {"cov", "scat"}
    again = CliRunner().invoke(_cli(), args)
    assert again.exit_code == 2 and "already exists" in again.output and "Traceback" not in again.output


def test_cli_cluster_by_name_and_unknown_name(clustered, tmp_path):
    table_path = tmp_path / "named.h5"
    table = ClusterTable.load(clustered["table_path"])
    table.set_name(1024, clustered["busiest"], "quiet")
    table.save(table_path)
    base = ["generate", "--table", str(table_path), "--scale", "1024", "--max-iter", "2", "--count", "1",
            "--n-prior", "4", "--device", "cpu"]
    r = CliRunner().invoke(_cli(), base + ["--cluster", "quiet", "--out", str(tmp_path / "q.mseed")])
    assert r.exit_code == 0 and f"cluster {clustered['busiest']} (quiet)" in r.output, r.output
    r = CliRunner().invoke(_cli(), base + ["--cluster", "windy", "--out", str(tmp_path / "w.mseed")])
    assert r.exit_code == 2 and "no cluster named 'windy'" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "w.mseed").exists()

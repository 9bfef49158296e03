import numpy as np
import pytest
import torch
from click.testing import CliRunner

from unmix.cli import main
from unmix.errors import ConfigError
from unmix.features import FeatureConfig, FeatureStore, build_store
from unmix.features.extract import block_statistics, make_engine, record_features
from unmix.io import build_records
from unmix.jobs import Cancelled, CancelToken
from unmix.scattering import ScatteringCovariance
from unmix.synthetic import SyntheticConfig, generate

SMALL = dict(window=16384, hop=4096, scales=(1024, 4096, 16384))


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    for seed in (1, 2):
        generate(SyntheticConfig(hours=1.5, seed=seed, start=f"2019-05-2{seed}T00:00:00")).write(d / f"s{seed}")
    return d


def _record(seed=0, hours=1.0):
    return build_records(generate(SyntheticConfig(hours=hours, seed=seed)).mixture)[0]


def test_window_mode_equals_published_each_ps_pyramid():
    rec = _record()
    cfg = FeatureConfig(edge="window", normalize="each_ps", **SMALL)
    wf = record_features(rec, cfg, device="cpu")
    x = rec.to_array()[:, 4096:4096 + 16384].astype(np.float32)
    sc = ScatteringCovariance(J=8, model="scat+cov", normalize="each_ps", dtype=torch.float32, device="cpu")
    ref = sc.transform_pyramid(x[None], scales=SMALL["scales"], keep="last")
    for s in SMALL["scales"]:
        a, b = wf.features[s][1], ref[s][0].numpy()
        assert np.max(np.abs(a - b)) / np.max(np.abs(b)) < 1e-5
    ps = np.flatnonzero(make_engine(cfg, "cpu").description["c_type"] == "ps")
    assert np.allclose(wf.features[16384][:, :, ps].real, 1.0, atol=1e-5)  # full-window ps normalised to 1


def test_record_mode_chunking_is_invisible():
    rec = _record(hours=2.0)
    cfg = FeatureConfig(**SMALL)
    engine = make_engine(cfg, "cpu")
    x = rec.to_array()
    nblk = x.shape[-1] // 1024
    chunked = block_statistics(x[:, :nblk * 1024], engine, cfg)
    whole = engine.transform(torch.from_numpy(x[None, :, :nblk * 1024].astype(np.float32)))[0].numpy()
    interior = slice(16, nblk - 16)
    err = np.abs(chunked[..., interior] - whole[..., interior]).max() / np.abs(whole).max()
    assert err < 1e-4


def test_record_mode_matches_window_mode_away_from_edges():
    rec = _record()
    a = record_features(rec, FeatureConfig(keep="centre", **SMALL), device="cpu")
    b = record_features(rec, FeatureConfig(keep="centre", edge="window", **SMALL), device="cpu")
    # the centred 1024-block is far from the window edges: mirror padding barely matters there
    rel = np.abs(a.features[1024] - b.features[1024]).max(axis=(0, 1)) / np.abs(b.features[1024]).max(axis=(0, 1))
    assert np.median(rel) < 0.02


def test_store_build_resume_and_refuse_mixing(synth_dir, tmp_path):
    out = tmp_path / "f.h5"
    cfg = FeatureConfig(**SMALL)
    inputs = [synth_dir / "s1" / "mixture.mseed", synth_dir / "s2" / "mixture.mseed"]
    rep = build_store(inputs[:1], out, cfg, device="cpu")
    n1 = rep["n_windows"]
    assert n1 == (int(1.5 * 3600 * 20) // 1024 - 16) // 4 + 1
    rep = build_store(inputs, out, cfg, device="cpu")
    assert rep["computed"] == 1 and len(rep["skipped"]) == 1 and rep["n_windows"] == 2 * n1
    store = FeatureStore(out)
    assert store.features(1024).shape == (2 * n1, 3, 210, 2)
    w = store.windows()
    assert set(w["input"]) == {0, 1}
    iv = store.intervals(4096)
    assert np.allclose(iv[:, 1] - iv[:, 0], 4096 / 20)
    assert np.all(np.diff(store.lmst(1024)[:n1, 0]) > 0)
    rep = build_store(inputs, out, cfg, device="cpu")
    assert rep["computed"] == 0
    with pytest.raises(ConfigError, match="different feature configuration .hop 4096, now 2048.; use"):
        build_store(inputs, out, FeatureConfig(window=16384, hop=2048, scales=(1024, 4096, 16384)), device="cpu")
    with pytest.raises(ConfigError, match="glitch_evidence True, now False.*--no-glitch-evidence grows"):
        build_store(inputs, out, FeatureConfig(**SMALL, glitch_evidence=False), device="cpu")


def test_interrupted_run_leaves_store_intact(synth_dir, tmp_path):
    out = tmp_path / "f.h5"
    cfg = FeatureConfig(**SMALL)
    build_store([synth_dir / "s1" / "mixture.mseed"], out, cfg, device="cpu")
    before = out.read_bytes()
    token = CancelToken()
    calls = []

    def progress(fraction, message=""):  # cancelled once the input's segment is written (the step naming it)
        calls.append(fraction)
        if message == "mixture.mseed":
            token.cancel()

    with pytest.raises(Cancelled):
        build_store([synth_dir / "s2" / "mixture.mseed"], out, cfg, device="cpu", progress=progress, token=token)
    assert out.read_bytes() == before
    assert FeatureStore(out).features(1024).shape[0] == FeatureStore(out).n_windows
    n_before = FeatureStore(out).n_windows
    rep = build_store([synth_dir / "s2" / "mixture.mseed"], out, cfg, device="cpu")
    # the finished shard of the interrupted run is reused, nothing is recomputed
    assert rep["computed"] == 0 and FeatureStore(out).n_windows == 2 * n_before


@pytest.mark.realdata
def test_features_cli_on_real_files(insight, tmp_path):
    out = tmp_path / "real.h5"
    raw = insight / "raw"
    r = CliRunner().invoke(main, ["features", str(raw / "XB.ELYSE.02.BH_2019-07-26T1149_S0235b_raw.mseed"),
                                  str(raw / "XB.ELYSE.03.BH_2019-05-22T2319_raw.mseed"), "--out", str(out),
                                  "--device", "cpu", "--sampling-rate", "20"])
    assert r.exit_code == 0, r.output
    store = FeatureStore(out)
    assert store.n_windows == 76 + (int(110965 * 2 - 1) // 1024 - 64) + 1
    assert np.isfinite(store.features(65536)).all()
    r = CliRunner().invoke(main, ["features", str(raw / "XB.ELYSE.02.BHV.2021-05-02HR01_evid0017.mseed"),
                                  "--out", str(tmp_path / "v.h5"), "--components", "V", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert FeatureStore(tmp_path / "v.h5").features(1024).shape[1:] == (1, 210, 2)


def test_dask_local_cluster_gives_same_store(synth_dir, tmp_path):
    inputs = [synth_dir / "s1" / "mixture.mseed", synth_dir / "s2" / "mixture.mseed"]
    cfg = FeatureConfig(**SMALL)
    build_store(inputs, tmp_path / "local.h5", cfg, device="cpu")
    build_store(inputs, tmp_path / "dask.h5", cfg, device="cpu", workers=2)
    a, b = FeatureStore(tmp_path / "local.h5"), FeatureStore(tmp_path / "dask.h5")
    order_a = [i["sha256"] for i in a.inputs]
    order_b = [i["sha256"] for i in b.inputs]
    assert sorted(order_a) == sorted(order_b)
    fa, fb = a.features(4096), b.features(4096)
    wa, wb = a.windows()["input"], b.windows()["input"]
    for k, sha in enumerate(order_a):
        np.testing.assert_allclose(fa[wa == k], fb[wb == order_b.index(sha)], rtol=1e-5, atol=1e-6)


def test_an_existing_scheduler_sends_features_back_and_gives_the_same_store(synth_dir, tmp_path):
    """Workers of a local cluster write their own segments; those of another scheduler may not see the store's
    folder, so their features come back and this process writes them: the same store either way."""
    from distributed import LocalCluster

    inputs = [synth_dir / "s1" / "mixture.mseed"]
    cfg = FeatureConfig(**SMALL)
    build_store(inputs, tmp_path / "local.h5", cfg, device="cpu", workers=1)
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        build_store(inputs, tmp_path / "remote.h5", cfg, device="cpu", scheduler=cluster.scheduler_address)
    a, b = FeatureStore(tmp_path / "local.h5"), FeatureStore(tmp_path / "remote.h5")
    assert [i["sha256"] for i in a.inputs] == [i["sha256"] for i in b.inputs]
    np.testing.assert_array_equal(a.features(4096), b.features(4096))
    np.testing.assert_array_equal(a.intervals(4096), b.intervals(4096))

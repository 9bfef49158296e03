import json

import numpy as np
import pytest
from obspy import UTCDateTime

from unmix.analysis import (
    align_waveforms,
    amplitude_spectrum,
    catalog_scores,
    cluster_set_scores,
    cluster_waveforms,
    embed_latents,
    event_counts,
    event_flags,
    occupancy_over_time,
    pca_2d,
    standardize,
    time_of_day,
    umap_available,
    weighted_centroid,
)
from unmix.analysis.report import make_report
from unmix.catalogs import Catalog, CatalogEntry, read_mps_glitches
from unmix.clusters import ClusterTable
from unmix.errors import ConfigError, OutputExistsError
from unmix.features import FeatureConfig, FeatureStore, build_store
from unmix.instrument import glitch_template
from unmix.jobs import Cancelled, CancelToken
from unmix.mars_time import lmst_to_utc, sol_float
from unmix.synthetic import SyntheticConfig, generate


def _table(intervals, cluster, conf=None, latent=None, k=None, inputs=None, input_index=None, record_index=None,
           meta=None):
    """A cluster table over given (N, S, 2) intervals with given clusters (N, S)."""
    cluster = np.asarray(cluster, dtype=np.int16)
    n, s = cluster.shape
    k = k or int(cluster.max()) + 1
    conf = np.full((n, s), 0.9, np.float32) if conf is None else np.asarray(conf, np.float32)
    p = np.full((n, s, k), 0.0, np.float32)
    np.put_along_axis(p, cluster[..., None].astype(int), 1.0, axis=-1)
    return ClusterTable(scales=tuple(1024 * 4**j for j in range(s)), intervals=np.asarray(intervals, float),
                        lmst=sol_float(np.asarray(intervals, float)), cluster=cluster, confidence=conf,
                        probabilities=p, latent=latent, input_index=input_index, record_index=record_index,
                        inputs=inputs or [], meta=meta or {})


# --- alignment and centroid ---------------------------------------------------------------------------------------

def _pulse(T=600, C=3, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    shapes = [np.exp(-0.5 * ((t - T / 2) / (6 + 3 * c)) ** 2) * np.sin(2 * np.pi * t / (20 + 7 * c)) for c in range(C)]
    x = np.stack(shapes) * (1 + rng.random((C, 1)))
    x[:, : T // 4] = 0.0  # compact support, so that shifting within ±T/4 keeps every sample of the pulse
    x[:, -T // 4:] = 0.0
    return x


def test_alignment_recovers_known_shifts():
    template = _pulse()
    rng = np.random.default_rng(3)
    shifts = np.array([0, 17, -33, 5, -1, 60, -72])
    data = np.stack([np.roll(template, s, axis=-1) for s in shifts])
    data = data * rng.uniform(0.5, 3.0, size=(len(shifts), 1, 1)) + 0.02 * rng.standard_normal(data.shape)
    aligned, lags, weights = align_waveforms(data)
    np.testing.assert_array_equal(lags, -shifts)
    assert np.all(weights > 0.95) and weights[0] == pytest.approx(1.0)
    ref = standardize(data[0])
    for i in range(len(shifts)):
        ok = np.isfinite(aligned[i])
        assert np.corrcoef(aligned[i][ok], ref[ok])[0, 1] > 0.9
        assert ok.sum() == 3 * (600 - abs(shifts[i]))
    # shifts beyond max_lag cannot be found
    _, lags_small, _ = align_waveforms(data, max_lag=20)
    assert np.all(np.abs(lags_small) <= 20) and lags_small[2] != 33


def test_centroid_of_identical_shifted_copies_is_the_template():
    template = _pulse(seed=1)
    shifts = [0, 40, -25, 90, -110, 3]
    data = np.stack([np.roll(template, s, axis=-1) * (i + 1) for i, s in enumerate(shifts)])
    aligned, lags, weights = align_waveforms(data)
    np.testing.assert_allclose(weights, 1.0, atol=1e-12)
    centroid = weighted_centroid(aligned, weights)
    np.testing.assert_allclose(centroid, standardize(template), atol=1e-10)
    # an anti-correlated member gets no weight and leaves the centroid unchanged
    a2, lag2, w2 = align_waveforms(np.stack([template, -template]), max_lag=0)
    assert lag2[1] == 0 and w2[1] == 0.0
    np.testing.assert_allclose(weighted_centroid(a2, w2), standardize(template), atol=1e-12)


def test_amplitude_spectrum_peaks_at_the_signal_frequency():
    fs = 20.0
    t = np.arange(8192) / fs
    x = np.stack([np.sin(2 * np.pi * 0.5 * t), np.sin(2 * np.pi * 3.0 * t)])
    x[:, :100] = np.nan  # NaN edges (from alignment) are dropped
    f, a = amplitude_spectrum(x, fs, nperseg=1024)
    assert f[np.argmax(a[0])] == pytest.approx(0.5, abs=fs / 1024)
    assert f[np.argmax(a[1])] == pytest.approx(3.0, abs=fs / 1024)
    with pytest.raises(ConfigError):
        amplitude_spectrum(np.full((1, 10), np.nan), fs)


# --- embedding -----------------------------------------------------------------------------------------------------

def test_pca_embedding_separates_separable_latents():
    rng = np.random.default_rng(0)
    n, z = 300, 16
    labels = np.repeat([0, 1, 2], n // 3)
    centers = rng.normal(scale=6.0, size=(3, z))
    lat = centers[labels] + rng.normal(size=(n, z))
    iv = 1.56e9 + 51.2 * np.stack([np.arange(n), np.arange(n) + 1], -1)[:, None, :]
    t = _table(iv, labels[:, None], latent=lat[:, None, :].astype(np.float32))
    emb = embed_latents(t, 1024, method="pca")
    assert emb.method == "pca" and emb.coords.shape == (n, 2) and np.array_equal(emb.indices, np.arange(n))
    assert emb.explained[0] >= emb.explained[1] > 0 and emb.explained.sum() <= 1.0
    # nearest-centroid classification in the 2-D map is perfect for well-separated clusters
    cent = np.stack([emb.coords[labels == k].mean(0) for k in range(3)])
    guess = np.argmin(((emb.coords[:, None] - cent[None]) ** 2).sum(-1), axis=1)
    assert np.array_equal(guess, labels)
    # PCA of a rank-2 cloud is exact: distances are preserved
    coords, explained = pca_2d(lat[:, :2] @ np.linalg.qr(rng.normal(size=(z, z)))[0][:2])
    d0 = np.linalg.norm(lat[0, :2] - lat[1, :2])
    assert np.linalg.norm(coords[0] - coords[1]) == pytest.approx(d0) and explained.sum() == pytest.approx(1.0)
    sub = embed_latents(t, 1024, method="pca", max_points=50)
    assert len(sub.indices) == 50 and len(set(sub.indices)) == 50
    auto = embed_latents(t, 1024)
    assert auto.method == ("umap" if umap_available() else "pca")
    if not umap_available():
        with pytest.raises(ConfigError, match="umap-learn"):
            embed_latents(t, 1024, method="umap")
    with pytest.raises(ConfigError):
        embed_latents(_table(iv, labels[:, None]), 1024)


# --- catalogue overlays --------------------------------------------------------------------------------------------

def test_catalogue_flags_match_hand_computed_ones():
    t0 = UTCDateTime("2019-05-23T00:00:00").timestamp
    n = 12
    a = t0 + 100.0 * np.arange(n)
    iv = np.stack([np.stack([a, a + 100.0], -1), np.stack([a - 300.0, a + 100.0], -1)], 1)  # 100 s and 400 s
    cl = np.stack([np.arange(n) % 3, np.arange(n) % 2], 1)
    t = _table(iv, cl)
    ev = [(t0 + 150, t0 + 170, "glitch"), (t0 + 200, t0 + 260, "glitch"),  # onset exactly at a window start
          (t0 + 299.9, t0 + 420, "glitch"), (t0 + 630, t0 + 990, "quake"), (t0 + 5000, t0 + 5001, "glitch")]
    cat = Catalog([CatalogEntry(UTCDateTime(s), UTCDateTime(e), k) for s, e, k in ev])
    for si, scale in enumerate((1024, 4096)):
        lo, hi = iv[:, si, 0], iv[:, si, 1]
        onset = np.array([sum(lo[i] <= s < hi[i] for s, _, _ in ev) for i in range(n)])
        overlap = np.array([sum(s < hi[i] and e >= lo[i] for s, e, _ in ev) for i in range(n)])
        glitch_onset = np.array([sum(lo[i] <= s < hi[i] for s, _, k in ev if k == "glitch") for i in range(n)])
        np.testing.assert_array_equal(event_counts(t, cat, scale, "onset"), onset)
        np.testing.assert_array_equal(event_counts(t, cat, scale, "overlap"), overlap)
        np.testing.assert_array_equal(event_counts(t, cat, scale, "onset", kinds="glitch"), glitch_onset)
    np.testing.assert_array_equal(np.flatnonzero(event_flags(t, cat, 1024)), [1, 2, 6])
    np.testing.assert_array_equal(np.flatnonzero(event_flags(t, cat, 1024, "overlap")), [1, 2, 3, 4, 6, 7, 8, 9])
    with pytest.raises(ConfigError):
        event_counts(t, cat, 1024, "nearby")


def test_catalogue_scores_per_cluster():
    iv = 1.56e9 + np.stack([np.arange(10.0), np.arange(10.0) + 1], -1)[:, None, :]
    cl = np.array([[0], [0], [0], [0], [1], [1], [1], [2], [2], [2]])
    t = _table(iv, cl, k=4)
    flags = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0], bool)
    sc = catalog_scores(t, flags, 1024)
    np.testing.assert_array_equal(sc.n_windows, [4, 3, 3, 0])
    np.testing.assert_array_equal(sc.n_flagged, [3, 1, 0, 0])
    np.testing.assert_allclose(sc.precision[:3], [0.75, 1 / 3, 0.0])
    np.testing.assert_allclose(sc.recall, [0.75, 0.25, 0.0, 0.0])
    assert sc.f1[0] == pytest.approx(0.75) and np.isnan(sc.precision[3]) and sc.best() == 0
    assert sc.enrichment[0] == pytest.approx(0.75 / 0.4)
    assert cluster_set_scores(t, flags, 1024, [0, 1]) == pytest.approx((4 / 7, 1.0))
    d = sc.to_dict()
    assert d["clusters"][3]["precision"] is None and json.dumps(d)


# --- time of day and occupancy -------------------------------------------------------------------------------------

def test_time_of_day_histograms_at_known_lmst():
    hours = np.array([0.2, 0.3, 23.9, 6.1, 6.4, 13.1, 13.2, 13.4, 23.7])
    cl = np.array([0, 0, 0, 1, 1, 2, 2, 2, 0])
    mids = np.array([lmst_to_utc(250 + i % 3, h).timestamp for i, h in enumerate(hours)])
    iv = np.stack([mids - 25.6, mids + 25.6], -1)[:, None, :]
    t = _table(iv, cl[:, None], k=4)
    tod = time_of_day(t, 1024, bin_hours=0.5)
    assert tod.counts.shape == (4, 48)
    np.testing.assert_array_equal(tod.totals, [4, 2, 3, 0])
    assert tod.counts[0, 0] == 2 and tod.counts[0, 47] == 2 and tod.counts[1, 12] == 2 and tod.counts[2, 26] == 3
    np.testing.assert_allclose(tod.share[:3].sum(1), 1.0)
    assert np.all(tod.share[3] == 0) and np.isnan(tod.peak_hours()[3])
    mean = tod.circular_mean_hours()
    assert min(mean[0], 24 - mean[0]) < 0.3 and mean[2] == pytest.approx(13.233, abs=0.01)
    np.testing.assert_allclose(np.sort(tod.hours[1]), [6.1, 6.4], atol=1e-3)
    confident = time_of_day(t, 1024, min_confidence=0.95)
    assert confident.totals.sum() == 0
    with pytest.raises(ConfigError):
        time_of_day(t, 1024, bin_hours=0)


def test_occupancy_over_time():
    n = 200
    a = 1.56e9 + 51.2 * np.arange(n)
    cl = (np.arange(n) >= 120).astype(int)  # cluster 0 then cluster 1
    t = _table(np.stack([a, a + 51.2], -1)[:, None, :], cl[:, None], k=3)
    occ = occupancy_over_time(t, 1024, bin_seconds=51.2 * 40)
    np.testing.assert_array_equal(occ.counts.sum(0), t.occupancy(1024))
    assert occ.counts.sum() == n and occ.counts.shape[1] == 3
    first, last = occ.share[0], occ.share[-1]
    assert first[0] == 1.0 and last[1] == 1.0
    auto = occupancy_over_time(t, 1024)
    assert auto.counts.sum() == n and len(auto.edges) - 1 <= 97


# --- on a real feature store of a synthetic record: waveforms and the report ----------------------------------------

@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A 2-h synthetic record rich in glitches, its feature store, and a table whose clusters follow the truth."""
    d = tmp_path_factory.mktemp("analysis")
    rec = generate(SyntheticConfig(hours=2.0, seed=11, glitch_rate_per_sol=400.0, spike_rate_per_sol=0.0,
                                   wind_rate_per_sol=0.0, quake_rate_per_sol=0.0, glitch_spike_fraction=0.0,
                                   single_axis_fraction=0.0, start_sol=200, start_lmst=22.5))
    rec.write(d / "syn")
    cfg = FeatureConfig(window=16384, hop=1024, scales=(1024, 4096, 16384))
    build_store([d / "syn" / "mixture.mseed"], d / "store.h5", cfg, device="cpu")
    store = FeatureStore(d / "store.h5")
    catalog = Catalog([CatalogEntry(g.onset, g.onset + 20.0, "glitch") for g in rec.glitches])
    iv = np.stack([store.intervals(s) for s in store.scales], 1)
    # cluster 1 = sub-window holds a glitch onset early enough for the whole glitch to be inside, 0 = quiet,
    # 2 = a glitch cut by the window edge
    onsets = np.array([g.onset.timestamp for g in rec.glitches])
    cl = np.zeros(iv.shape[:2], int)
    for s in range(iv.shape[1]):
        for i in range(iv.shape[0]):
            inside = (onsets >= iv[i, s, 0]) & (onsets < iv[i, s, 1])
            full = inside & (onsets < iv[i, s, 1] - 25.0)
            cl[i, s] = 1 if full.any() else 2 if inside.any() else 0
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, cl.shape)
    latent = (np.eye(4)[cl][..., :3] * 5 + rng.normal(size=cl.shape + (3,))).astype(np.float32)
    w = store.windows()
    table = _table(iv, cl, conf, latent, k=3, inputs=store.inputs, input_index=w["input"], record_index=w["record"],
                   meta={"feature_config": store.config.to_dict()})
    return rec, store, table, catalog


def test_cluster_waveforms_centroid_is_the_glitch_shape(synth):
    rec, store, table, _ = synth
    waves = cluster_waveforms(table, 1024, clusters=[1, 0], n=12)
    assert set(waves) == {0, 1}
    g = waves[1]
    assert len(g.indices) >= 5 and g.aligned.shape == (len(g.indices), 3, 1024)
    assert g.centroid.shape == (3, 1024) and g.spectrum.shape[0] == 3 and np.all(np.isfinite(g.centroid))
    assert np.array_equal(g.indices, np.sort(g.indices)[np.argsort(-table.confidence[np.sort(g.indices), 0],
                                                                   kind="stable")])
    tmpl = glitch_template(rec.config.sampling_rate, duration=40.0)
    tmpl = np.asarray(tmpl.data if hasattr(tmpl, "data") else tmpl, float).ravel()
    # the centroid (on the component with the most glitch energy) contains the glitch waveform
    c = int(np.argmax(np.abs(g.centroid).max(axis=1)))
    cc = np.correlate(g.centroid[c] - g.centroid[c].mean(), tmpl - tmpl.mean(), mode="valid")
    norm = np.sqrt(np.convolve((g.centroid[c] - g.centroid[c].mean()) ** 2, np.ones(len(tmpl)), "valid")
                   * ((tmpl - tmpl.mean()) ** 2).sum())
    assert np.max(np.abs(cc) / norm) > 0.8
    assert g.weights.mean() > waves[0].weights.mean()  # glitches align far better than background noise


def test_figure_decimation_keeps_peaks_and_the_whole_span():
    from unmix.analysis.report import _decimate

    t = np.arange(4096.0)
    y = np.zeros(4096)
    y[3286], y[4095], y[:10] = 9.0, -3.0, np.nan
    tt, yy = _decimate(t, y)
    assert len(yy) < 4096 and tt.max() > 4090 and np.nanmax(yy) == 9.0 and np.nanmin(yy) == -3.0
    assert np.isnan(yy[:2]).all()


@pytest.mark.slow
def test_make_report_writes_figures_and_summary(synth, tmp_path):
    _, store, table, catalog = synth
    out = tmp_path / "report"
    seen: list[float] = []
    paths = make_report(store, table, out, catalog=catalog, progress=lambda f, m="": seen.append(f), n_waveforms=8)
    names = {p.name for p in paths}
    for s in table.scales:
        for product in ("time_of_day", "waveforms", "spectra", "embedding", "occupancy", "catalog"):
            assert f"{product}_{s}.png" in names
    for p in paths:
        assert p.stat().st_size > 0
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "report.json").read_text())
    assert summary["n_windows"] == table.n_windows and "![" in (out / "index.md").read_text()
    fine = summary["per_scale"]["1024"]
    assert fine["embedding"]["method"] in ("pca", "umap")
    # the table puts whole glitches in cluster 1 and cut ones in 2: together they are exactly the flagged windows
    scores = {c["cluster"]: c for c in fine["catalog"]["clusters"]}
    assert scores[0]["flagged"] == 0 and scores[1]["precision"] == 1.0 and scores[2]["precision"] == 1.0
    assert scores[1]["recall"] + scores[2]["recall"] == pytest.approx(1.0)
    assert seen[-1] == 1.0 and all(b >= a - 1e-9 for a, b in zip(seen, seen[1:], strict=False))
    with pytest.raises(OutputExistsError):
        make_report(store, table, out)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        make_report(None, table, tmp_path / "cancelled", token=token)
    assert not (tmp_path / "cancelled" / "report.json").exists()
    bare = ClusterTable(table.scales, table.intervals, table.lmst, table.cluster, table.confidence,
                        table.probabilities)
    few = make_report(None, bare, tmp_path / "bare", waveforms=False)
    assert {p.name for p in few} >= {"time_of_day_1024.png", "occupancy_16384.png", "report.json"}
    assert not any(p.name.startswith(("embedding", "waveforms")) for p in few)
    with pytest.raises(ConfigError, match="do not belong together"):
        make_report(store, _table(table.intervals[:5], table.cluster[:5]), tmp_path / "mismatch")
    other = _table(table.intervals, table.cluster, meta={"store_config_hash": "0123456789abcdef"})
    with pytest.raises(ConfigError, match="do not belong together"):
        make_report(store, other, tmp_path / "mismatch")


@pytest.mark.realdata
def test_glitch_list_overlay_on_real_times(insight):
    cat = read_mps_glitches(insight / "catalogs" / "glitches_MPS_XB.ELYSE.03.BH_2019-05-22T2318_2019-05-23T2359.txt")
    start = UTCDateTime("2019-05-22T23:19:00").timestamp
    a = start + 102.4 * np.arange(100)  # 1024 samples at 10 sps, about 3 h
    iv = np.stack([a, a + 102.4], -1)[:, None, :]
    t = _table(iv, (np.arange(100) % 2)[:, None])
    flags = event_flags(t, cat, 1024)
    onsets = cat.onsets()
    hand = np.array([np.any((onsets >= x) & (onsets < x + 102.4)) for x in a])
    np.testing.assert_array_equal(flags, hand)
    assert 5 <= flags.sum() <= 60
    sc = catalog_scores(t, flags, 1024)
    assert sc.n_flagged.sum() == flags.sum() and sc.recall.sum() == pytest.approx(1.0)

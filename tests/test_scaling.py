"""``unmix bench scale``: tiled stores read like real ones; steps run in a fresh process; the table and its
extrapolation."""

from __future__ import annotations

import numpy as np
import pytest

from unmix.features import FeatureConfig, FeatureStore, build_store
from unmix.mars_time import SECONDS_PER_SOL
from unmix.scaling import extrapolate, format_table, measure, tiled_record, tiled_store
from unmix.synthetic import SyntheticConfig, generate

SMALL = dict(window=4096, hop=1024, scales=(1024, 4096), normalize=None)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("scale")
    generate(SyntheticConfig(hours=1.0, seed=2)).write(d / "synth")
    build_store([d / "synth" / "mixture.mseed"], d / "base.h5", FeatureConfig(**SMALL), device="cpu")
    return d / "base.h5"


def test_tiled_store_repeats_the_windows_a_sol_apart(base, tmp_path):
    src = FeatureStore(base)
    n = tiled_store(base, tmp_path / "tiled.h5", 3)
    tiled = FeatureStore(tmp_path / "tiled.h5")
    assert n == tiled.n_windows == 3 * src.n_windows
    assert len(tiled.inputs) == 3 and len({i["sha256"] for i in tiled.inputs}) == 3
    for s in src.scales:
        a, b = src.features(s), tiled.features(s)
        for k in range(3):
            assert np.array_equal(b[k * src.n_windows:(k + 1) * src.n_windows], a)
            assert np.array_equal(tiled.glitch_energy(s)[k * src.n_windows:(k + 1) * src.n_windows],
                                  src.glitch_energy(s))
        iv = tiled.intervals(s)
        np.testing.assert_allclose(iv[2 * src.n_windows:] - src.intervals(s), 2 * SECONDS_PER_SOL)
    assert list(np.unique(tiled.windows()["input"])) == [0, 1, 2]


def test_a_step_runs_in_a_fresh_process_and_reports_its_memory(base, tmp_path):
    src = FeatureStore(base)
    out = measure("extract", {"inputs": [str(base.parent / "synth" / "mixture.mseed")], "store":
                              str(tmp_path / "again.h5")})
    assert out["step"] == "extract" and out["windows"] > 0 and out["wall_s"] > 0
    assert 50e6 < out["peak_rss_bytes"] < 20e9
    assert FeatureStore(tmp_path / "again.h5").n_windows == out["windows"]
    assert src.n_windows > 0


def test_extrapolation_is_the_least_squares_line():
    def row(sols, wall):
        return {"sols": sols, "windows": 100 * sols, "train": {"wall_s": wall, "peak_rss_bytes": 1e9 + sols,
                                                                 "windows": 100 * sols, "streaming": sols > 4}}

    results = {"alone": {"wall_s": 10.0, "windows": 100, "peak_rss_bytes": 5e8},
               "sizes": [row(2, 12.0), row(8, 18.0), row(32, 42.0)]}
    e = extrapolate(results, "train", sols=1000)
    assert e["wall_s"] == pytest.approx(10.0 + 1000.0, rel=1e-9)
    assert e["peak_rss_bytes"] == 1e9 + 32
    assert extrapolate(results, "predict") is None
    text = format_table(results)
    assert "| 32 | 3200 | train | 42.0 |" in text and "streamed" in text and "in memory" in text


def test_separate_step_on_a_tiled_record(base, tmp_path):
    from obspy import read

    one = read(str(base.parent / "synth" / "mixture.mseed"))
    path = tiled_record(base.parent / "synth" / "mixture.mseed", tmp_path / "two.mseed", 2)
    two = read(str(path))
    assert len(two) == len(one)  # one gap-free trace per channel
    for a, b in zip(sorted(one, key=lambda t: t.id), sorted(two, key=lambda t: t.id), strict=True):
        assert b.stats.npts == 2 * a.stats.npts and b.stats.starttime == a.stats.starttime
        assert np.array_equal(b.data[a.stats.npts:], a.data)
    out = measure("separate", {"record": str(path), "out": str(tmp_path / "sep")})
    assert out["step"] == "separate" and out["method"] == "template" and 50e6 < out["peak_rss_bytes"] < 20e9
    assert list((tmp_path / "sep").rglob("*.mseed"))
    results = {"alone": {"wall_s": 10.0, "windows": 100, "peak_rss_bytes": 5e8}, "sizes": [],
               "separate": [{"sols": 2, **out}]}
    assert "| separate: sols in one file |" in format_table(results)

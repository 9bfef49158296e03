"""Tests for the synthetic InSight-like records and their ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from obspy import read

from unmix.errors import ConfigError
from unmix.instrument import glitch_template
from unmix.jobs import Cancelled, CancelToken
from unmix.mars_time import lmst_hours
from unmix.synthetic import (
    SOURCES,
    SyntheticConfig,
    SyntheticRecord,
    generate,
    glitch_lmst_density,
    tilt_projection,
)


@pytest.fixture(scope="module")
def one_sol() -> SyntheticRecord:
    return generate(SyntheticConfig(sols=1.0, seed=11))


def _arrays(stream) -> np.ndarray:
    return np.stack([tr.data for tr in stream])


def test_default_record_ids_and_sizes(one_sol: SyntheticRecord) -> None:
    ids = [tr.id for tr in one_sol.mixture]
    assert ids == ["SY.ELYSE.02.BHU", "SY.ELYSE.02.BHV", "SY.ELYSE.02.BHW"]
    npts = one_sol.config.npts
    assert npts == pytest.approx(88775.244 * 20, abs=1)
    for name in SOURCES:
        st = one_sol.sources[name]
        assert [tr.id for tr in st] == ids
        assert all(tr.stats.npts == npts and tr.stats.starttime == one_sol.mixture[0].stats.starttime for tr in st)


def test_mixture_is_exact_sum_of_sources(one_sol: SyntheticRecord) -> None:
    total = np.zeros_like(_arrays(one_sol.mixture))
    for name in SOURCES:
        total += _arrays(one_sol.sources[name])
    assert np.array_equal(total, _arrays(one_sol.mixture))
    assert all(np.any(_arrays(one_sol.sources[name]) != 0) for name in SOURCES)


def test_float32_mixture_is_exact_sum() -> None:
    rec = generate(SyntheticConfig(hours=1.0, seed=3, dtype="float32"))
    total = np.zeros_like(_arrays(rec.mixture))
    for name in SOURCES:
        total += _arrays(rec.sources[name])
    assert rec.mixture[0].data.dtype == np.float32
    assert np.array_equal(total, _arrays(rec.mixture))


def test_same_seed_is_bit_identical_and_different_seeds_differ() -> None:
    cfg = {"hours": 3.0, "start_sol": 200, "start_lmst": 16.0}
    a, b = generate(SyntheticConfig(seed=5, **cfg)), generate(SyntheticConfig(seed=5, **cfg))
    c = generate(SyntheticConfig(seed=6, **cfg))
    for name in SOURCES:
        assert np.array_equal(_arrays(a.sources[name]), _arrays(b.sources[name]))
    assert a.glitches == b.glitches and a.events == b.events
    assert not np.array_equal(_arrays(a.mixture), _arrays(c.mixture))


def test_switching_a_source_off_leaves_the_others_unchanged() -> None:
    full = generate(SyntheticConfig(hours=2.0, seed=9))
    part = generate(SyntheticConfig(hours=2.0, seed=9, include={"background", "glitches"}))
    assert np.array_equal(_arrays(full.sources["glitches"]), _arrays(part.sources["glitches"]))
    assert np.array_equal(_arrays(full.sources["background"]), _arrays(part.sources["background"]))
    assert not np.any(_arrays(part.sources["wind"]))


def test_start_from_sol_and_lmst() -> None:
    cfg = SyntheticConfig(hours=0.5, start_sol=235, start_lmst=19.5)
    assert lmst_hours(cfg.starttime) == pytest.approx(19.5, abs=1e-3)


def test_glitch_count_and_lmst_peaks() -> None:
    sols = 6.0
    cfg = SyntheticConfig(sols=sols, sampling_rate=1.0, seed=2, include={"glitches"})
    rec = generate(cfg)
    glitches = [g for g in rec.glitches if g.kind == "glitch"]
    expected = cfg.glitch_rate_per_sol * sols
    assert abs(len(glitches) - expected) < 4 * np.sqrt(expected)
    hours = np.asarray(lmst_hours(np.array([g.onset.timestamp for g in glitches])))

    def dist(a: np.ndarray, b: float) -> np.ndarray:
        return np.abs((a - b + 12) % 24 - 12)

    near_peaks = np.sum((dist(hours, 6.0) < 1) | (dist(hours, 17.5) < 1))
    quiet = np.sum((dist(hours, 0.0) < 1) | (dist(hours, 11.5) < 1))
    assert near_peaks > 3 * max(quiet, 1)
    grid = np.linspace(0, 24, 24001)[:-1]
    assert np.mean(glitch_lmst_density(grid, cfg.glitch_peaks)) * 24 == pytest.approx(1.0, abs=1e-3)


def test_glitch_polarity_follows_tilt_projection() -> None:
    cfg = SyntheticConfig(hours=8.0, seed=4, include={"glitches"}, single_axis_fraction=0.2, glitch_rate_per_sol=60)
    rec = generate(cfg)
    data = _arrays(rec.sources["glitches"])
    t0, fs = cfg.starttime, cfg.sampling_rate
    onsets = np.array([g.onset - t0 for g in rec.glitches])
    checked = 0
    for g, onset in zip(rec.glitches, onsets, strict=True):
        if g.azimuth is None:
            assert sum(a != 0 for a in g.amplitudes) == 1
            continue
        np.testing.assert_allclose(
            g.amplitudes, tilt_projection(g.amplitude, g.azimuth, cfg.azimuths, cfg.dips), rtol=1e-12
        )
        others = np.abs(onsets - onset)
        if np.sum(others < 70.0) > 1 or onset < 5 or onset > cfg.duration - 70:
            continue
        i = int(np.floor(onset * fs))
        tpl = glitch_template(fs, 60.0, onset_shift=onset - i / fs, pre=2.0)
        seg = data[:, i - 40 : i - 40 + tpl.size]
        fitted = seg @ tpl / (tpl @ tpl)
        np.testing.assert_allclose(fitted, g.amplitudes, rtol=1e-6, atol=1e-6 * g.amplitude)
        checked += 1
    assert checked >= 5


def test_quiet_nights_are_quieter_than_windy_days(one_sol: SyntheticRecord) -> None:
    tr = one_sol.mixture[1]
    fs = tr.stats.sampling_rate
    n = int(1800 * fs)
    chunks = tr.data[: tr.data.size // n * n].reshape(-1, n)
    mids = np.array([(tr.stats.starttime + (k + 0.5) * n / fs).timestamp for k in range(chunks.shape[0])])
    hours = np.asarray(lmst_hours(mids))
    rms = np.sqrt(np.mean((chunks - chunks.mean(axis=1, keepdims=True)) ** 2, axis=1))
    night = np.median(rms[(hours > 19) | (hours < 4)])
    day = np.median(rms[(hours > 10) & (hours < 15)])
    assert day > 2.5 * night
    bg = one_sol.sources["background"][1].data[: tr.data.size // n * n].reshape(-1, n)
    assert np.std(bg[(hours > 10) & (hours < 15)]) > 3 * np.std(bg[(hours > 19) | (hours < 4)])


def test_wind_bursts_are_mostly_daytime() -> None:
    rec = generate(SyntheticConfig(sols=4.0, sampling_rate=2.0, seed=8, include={"wind"}))
    winds = [e for e in rec.events if e.kind in ("gust", "dust_devil")]
    assert len(winds) >= 20
    hours = np.asarray(lmst_hours(np.array([e.start.timestamp for e in winds])))
    assert np.mean((hours > 6.5) & (hours < 18.0)) >= 0.8
    assert all(60.0 <= e.end - e.start <= 2401.0 for e in winds)


def test_quakes_are_band_limited_trains() -> None:
    rec = generate(SyntheticConfig(hours=12.0, seed=1, include={"quakes"}, quake_rate_per_sol=6))
    quakes = [e for e in rec.events if e.kind == "quake"]
    assert quakes
    x = rec.sources["quakes"][0].data
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / 20.0)
    assert spec[(f > 0.2) & (f < 2.0)].sum() > 0.8 * spec.sum()
    assert spec[(f > 0.1) & (f < 4.0)].sum() > 0.99 * spec.sum()
    for e in quakes:
        assert 600.0 <= e.end - e.start <= 1800.0
        assert 60.0 <= e.params["s_minus_p_s"] <= 300.0


def test_gaps_split_every_stream_into_segments() -> None:
    rec = generate(SyntheticConfig(hours=2.0, seed=3, gaps=2, gap_duration=(60.0, 120.0)))
    assert len(rec.gaps) == 2
    for stream in [rec.mixture, *rec.sources.values()]:
        assert len(stream) == 9
        for tr in stream:
            for g0, g1 in rec.gaps:
                assert tr.stats.endtime < g0 or tr.stats.starttime >= g1
    for k, tr in enumerate(rec.mixture):
        total = sum(rec.sources[name][k].data for name in SOURCES)
        assert np.array_equal(total, tr.data)
    lab = rec.labels(600.0)
    assert not lab.valid.all() and lab.valid.any()


def test_write_and_read_back(tmp_path: Path) -> None:
    rec = generate(SyntheticConfig(hours=0.5, seed=2, gaps=1, gap_duration=(30.0, 60.0)))
    paths = rec.write(tmp_path / "out")
    assert set(paths) == {"mixture", *SOURCES, "truth"}
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    for name, stream in [("mixture", rec.mixture), *rec.sources.items()]:
        back = read(str(paths[name]))
        assert [(tr.id, tr.stats.starttime, tr.stats.npts) for tr in back] == [
            (tr.id, tr.stats.starttime, tr.stats.npts) for tr in stream
        ]
        for a, b in zip(back, stream, strict=True):
            assert np.array_equal(a.data, b.data)


def test_labels_are_sane(one_sol: SyntheticRecord) -> None:
    lab = one_sol.labels(window=600.0, hop=300.0)
    assert lab.share.shape == (lab.starts.size, len(SOURCES))
    np.testing.assert_allclose(lab.share.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.diff(lab.starts), 300.0)
    assert set(lab.dominant) <= set(SOURCES) and "background" in set(lab.dominant)
    assert lab.valid.all()
    fs, k = 20.0, 7
    i0 = int(round((lab.starts[k] - one_sol.config.starttime.timestamp) * fs))
    direct = sum(np.sum(tr.data[i0 : i0 + 12000] ** 2) for tr in one_sol.sources["glitches"])
    assert lab.energy[k, SOURCES.index("glitches")] == pytest.approx(direct, rel=1e-9)
    quake = next(e for e in one_sol.events if e.kind == "quake")
    mid = (quake.start.timestamp + quake.end.timestamp) / 2
    j = np.argmin(np.abs(lab.starts + 300.0 - mid))
    assert lab.share[j, SOURCES.index("quakes")] > 0


def test_labels_of_one_component_count_its_energy_only(one_sol: SyntheticRecord) -> None:
    lab = one_sol.labels(window=600.0, hop=300.0, components="V")
    fs, k = 20.0, 7
    i0 = int(round((lab.starts[k] - one_sol.config.starttime.timestamp) * fs))
    v = one_sol.sources["glitches"].select(channel="BHV")[0].data
    assert lab.energy[k, SOURCES.index("glitches")] == pytest.approx(np.sum(v[i0 : i0 + 12000] ** 2), rel=1e-9)
    every = one_sol.labels(window=600.0, hop=300.0)
    np.testing.assert_array_equal(one_sol.labels(window=600.0, hop=300.0, components="UVW").energy, every.energy)
    assert (lab.energy <= every.energy * (1 + 1e-12)).all() and (lab.energy < every.energy).any()
    with pytest.raises(ConfigError, match="components"):
        one_sol.labels(window=600.0, components="Z")


def test_progress_and_cancel() -> None:
    seen: list[float] = []
    generate(SyntheticConfig(hours=1.0), progress=lambda f, m="": seen.append(f))
    assert seen[-1] == 1.0 and all(b >= a for a, b in zip(seen, seen[1:], strict=False))
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        generate(SyntheticConfig(hours=1.0), token=token)


def test_bad_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        SyntheticConfig(include={"glitches", "aliens"})
    with pytest.raises(ConfigError):
        SyntheticConfig(sols=0.0)
    with pytest.raises(ConfigError):
        SyntheticConfig(glitch_peaks=((6.0, 1.0, 0.8), (18.0, 1.0, 0.5)))

"""Classical baselines: the template-fit deglitcher and the high-pass separator."""

from __future__ import annotations

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime, read

from unmix.baselines import HighpassSeparator, TemplateDeglitcher
from unmix.errors import ConfigError
from unmix.evaluation.metrics import snr_db
from unmix.instrument import glitch_template
from unmix.jobs import Cancelled, CancelToken
from unmix.separation import get_method

FS = 20.0
START = UTCDateTime("2019-06-05T02:00:00")


def _glitchy(onsets_s, amps, npts=8000, noise=1.0, seed=0, channel="BHV"):
    """Noise (slightly coloured) plus acceleration-step glitches at the given onsets (s) and peak amplitudes."""
    rng = np.random.default_rng(seed)
    bg = np.convolve(rng.standard_normal(npts + 4), np.ones(5) / np.sqrt(5), mode="valid") * noise
    g = np.zeros(npts)
    pre_n = int(2.0 * FS)
    for t, a in zip(onsets_s, amps, strict=True):
        i0 = int(np.floor(t * FS))
        wave = glitch_template(FS, 60.0, t - i0 / FS)
        lo = i0 - pre_n
        hi = min(lo + wave.size, npts)
        g[lo:hi] += a * wave[:hi - lo]
    tr = Trace(bg + g, header={"network": "XB", "station": "ELYSE", "location": "02", "channel": channel,
                               "sampling_rate": FS, "starttime": START})
    return tr, bg, g


def test_registry_knows_the_baselines():
    assert isinstance(get_method("template"), TemplateDeglitcher)
    assert isinstance(get_method("highpass", freq=0.05), HighpassSeparator)
    with pytest.raises(ConfigError, match="unknown separation method"):
        get_method("nope")


def test_template_recovers_isolated_and_overlapping_glitches():
    onsets, amps = [60.3, 200.17, 207.61], [20.0, -15.0, 12.0]  # the last two overlap (7.4 s apart)
    tr, bg, g = _glitchy(onsets, amps)
    res = TemplateDeglitcher(fit_spikes=False).separate(Stream([tr.copy()]))
    cat = res.info["catalogue"]
    assert len(cat) == 3
    found = sorted((UTCDateTime(c["onset"]) - START, c["amplitude"]) for c in cat)
    for (t, a), (t_true, a_true) in zip(found, sorted(zip(onsets, amps, strict=True)), strict=True):
        assert abs(t - t_true) < 0.1
        assert abs(a - a_true) < 0.1 * abs(a_true)
    b = res.background[0].data
    assert snr_db(bg, b) - snr_db(bg, tr.data) > 15.0
    np.testing.assert_allclose(res.background[0].data + res.removed["glitches"][0].data, tr.data, atol=1e-9)
    assert res.background[0].id == tr.id and res.background[0].stats.starttime == START
    assert "template deglitcher" in res.background[0].stats.processing[-1]


def test_template_removes_nothing_from_noise_and_rejects_weak_fits():
    tr, _, _ = _glitchy([], [], seed=3)
    res = TemplateDeglitcher().separate(Stream([tr]))
    assert res.info["catalogue"] == []
    assert not np.any(res.removed["glitches"][0].data) and not np.any(res.removed["spikes"][0].data)
    # a glitch of 3 σ is found by the matched filter but does not reach 80 % variance reduction
    weak, _, _ = _glitchy([100.0], [3.0], seed=4)
    strict = TemplateDeglitcher(detector="matched", cc_threshold=0.5, fit_spikes=False)
    assert strict.detect(weak).size >= 1
    assert strict.separate(Stream([weak])).info["catalogue"] == []
    lax = TemplateDeglitcher(detector="matched", cc_threshold=0.5, fit_spikes=False, min_variance_reduction=0.3)
    assert len(lax.separate(Stream([weak])).info["catalogue"]) == 1


@pytest.mark.parametrize("detector", ["matched", "jerk"])
def test_each_detector_finds_a_clear_glitch(detector):
    tr, _, _ = _glitchy([150.55], [25.0], seed=1)
    onsets = TemplateDeglitcher(detector=detector).detect(tr)
    assert np.min(np.abs(onsets / FS - 150.55)) < 2.0


def test_template_spike_is_fitted_and_named():
    tr, _, _ = _glitchy([100.0], [20.0], seed=2)
    from unmix.instrument import spike_template

    i0 = int(100.2 * FS)
    s = spike_template(FS, 20.0)
    tr.data[i0 - 40:i0 - 40 + s.size] += 30.0 * s
    res = TemplateDeglitcher(min_spike_gain=0.005).separate(Stream([tr.copy()]))
    assert set(res.removed) == {"glitches", "spikes"}
    assert res.info["catalogue"][0]["spike_amplitude"] == pytest.approx(30.0, rel=0.2)
    assert TemplateDeglitcher(min_spike_gain=0.2).separate(Stream([tr.copy()])).info["catalogue"][0][
        "spike_amplitude"] is None
    total = res.background[0].data + res.removed["glitches"][0].data + res.removed["spikes"][0].data
    np.testing.assert_allclose(total, tr.data, atol=1e-9)


def test_template_bad_options_and_cancel():
    tr, _, _ = _glitchy([100.0], [20.0])
    for bad in ({"detector": "psychic"}, {"min_variance_reduction": 1.5}):
        with pytest.raises(ConfigError):
            TemplateDeglitcher(**bad).separate(Stream([tr.copy()]))  # stored by the constructor, checked here
        with pytest.raises(ConfigError):
            get_method("template", **bad)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        TemplateDeglitcher().separate(Stream([tr]), token=token)


def test_highpass_removes_the_low_frequencies():
    t = np.arange(12000) / FS
    low, high = 50.0 * np.sin(2 * np.pi * 0.005 * t), np.sin(2 * np.pi * 1.0 * t)
    tr = Trace(low + high, header={"network": "XB", "station": "ELYSE", "location": "02", "channel": "BHU",
                                   "sampling_rate": FS, "starttime": START})
    res = HighpassSeparator(freq=0.1).separate(Stream([tr]))
    inner = slice(2000, 10000)
    assert np.max(np.abs(res.background[0].data[inner] - high[inner])) < 0.05
    np.testing.assert_allclose(res.background[0].data + res.removed["low_frequency"][0].data, tr.data)
    assert res.background[0].id == tr.id
    with pytest.raises(ConfigError):
        HighpassSeparator(freq=0.0).separate(Stream([tr]))
    with pytest.raises(ConfigError, match="Nyquist"):
        HighpassSeparator(freq=15.0).separate(Stream([tr]))


@pytest.mark.realdata
def test_template_with_stationxml_matches_ucla_on_a_real_glitch(insight):
    """Ten minutes of raw S0235b holding a large glitch (≈11:57:44 UTC): the fit agrees with UCLA's removal."""
    raw = read(str(insight / "raw" / "XB.ELYSE.02.BH_2019-07-26T1149_S0235b_raw.mseed"))
    ref = read(str(insight / "reference" / "XB.ELYSE.02.BH_2019-07-26T1149_S0235b_deglitched_UCLA_v4.mseed"))
    t0, t1 = UTCDateTime("2019-07-26T11:54:00.011"), UTCDateTime("2019-07-26T12:04:00.011")
    st = raw.select(channel="BHV").slice(t0, t1)
    r = ref.select(channel="BHV").slice(t0, t1)
    deglitcher = TemplateDeglitcher(inventory=insight / "response" / "XB.ELYSE.02.BH.xml")
    res = deglitcher.separate(st)
    assert any(abs(UTCDateTime(c["onset"]) - UTCDateTime("2019-07-26T11:57:44")) < 3 for c in res.info["catalogue"])
    n = min(len(r[0].data), len(st[0].data))
    ucla_removed = st[0].data[:n] - r[0].data[:n]
    ours = st[0].data[:n] - res.background[0].data[:n]
    assert np.corrcoef(ucla_removed, ours)[0, 1] > 0.85
    assert "XB.ELYSE.02.BH.xml" in res.info["params"]["response"]


@pytest.mark.realdata
def test_template_finds_the_mps_catalogued_glitches_at_10_sps(insight):
    """Recall against the MPS (SEISglitch) list on the 3-h 10-sps 03.BH? record, per component."""
    from unmix.catalogs import read_catalog
    from unmix.io import read_record

    rec = read_record(insight / "raw" / "XB.ELYSE.03.BH_2019-05-22T2319_raw.mseed")
    cat = read_catalog(insight / "catalogs" / "glitches_MPS_XB.ELYSE.03.BH_2019-05-22T2318_2019-05-23T2359.txt")
    deglitcher = TemplateDeglitcher(inventory=insight / "response" / "XB.ELYSE.03.BH_2019-05-18_2019-06-01.xml")
    res = deglitcher.separate(rec.stream)
    found: dict[str, list] = {}
    for c in res.info["catalogue"]:
        found.setdefault(c["channel"][-1], []).append(UTCDateTime(c["onset"]))
    listed = hits = big = big_hits = 0
    for comp in "UVW":
        for e in cat.entries:
            if not (rec.starttime + 30 < e.start < rec.endtime - 60 and comp in e.components):
                continue
            hit = any(abs(t - e.start) < 5 for t in found.get(comp, []))
            listed, hits = listed + 1, hits + hit
            if e.amplitudes[f"{comp}_raw"] > 2000:
                big, big_hits = big + 1, big_hits + hit
    assert listed >= 25 and big >= 8
    assert hits >= 0.8 * listed and big_hits == big

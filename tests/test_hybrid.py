"""Hybrid separation (issue #9): templates with shared continuous onsets, spikes, residual, scatcov fallback;
its configuration (issue #15: stage dataclasses, flat keys, get_params/set_params) and the code shape."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from obspy import Stream

from tests.conftest import make_stream
from unmix.cli import main
from unmix.errors import ConfigError, DataError, InputFileError
from unmix.evaluation.cases import glitch_case, load_background
from unmix.evaluation.metrics import snr_db
from unmix.instrument import glitch_template, spike_template
from unmix.separation import get_method
from unmix.separation.hybrid import DetectionConfig, HybridSeparator, ResidualConfig, SolverConfig, valid_options

FS = 20.0


def _add(stream: Stream, kind: str, onset_s: float, amps: list[float]) -> None:
    """Add a unit-peak template at a (sub-sample) onset, scaled per component."""
    i0 = int(np.floor(onset_s * FS))
    make = glitch_template if kind == "glitch" else spike_template
    wave = make(FS, 60.0 if kind == "glitch" else 20.0, onset_s - i0 / FS)
    a = i0 - int(2.0 * FS)
    for tr, amp in zip(stream, amps, strict=True):
        b = min(a + wave.size, tr.stats.npts)
        tr.data[a:b] += amp * wave[: b - a]


def _removed_sum(result, i: int) -> np.ndarray:
    return sum(np.asarray(st[i].data) for st in result.removed.values())


def test_registered_and_parts_sum_to_the_input():
    st = make_stream(npts=4000)
    for tr in st:
        tr.data *= 0.2
    _add(st, "glitch", 60.33, [2.0, -1.0, 0.5])
    before = [tr.data.copy() for tr in st]
    # the whitening spectrum from clean snippets of the same noise (the record's own spectrum holds the glitch)
    prior = 0.2 * np.random.default_rng(9).standard_normal((4, 3, 2048))
    sep = get_method("hybrid", prior=prior, spectrum="prior", residual=False, fallback="none")
    assert isinstance(sep, HybridSeparator)
    res = sep.separate(st)
    assert set(res.removed) == {"glitches", "spikes", "residual"}
    for i, tr in enumerate(st):
        np.testing.assert_array_equal(tr.data, before[i])  # input untouched
        np.testing.assert_allclose(res.background[i].data + _removed_sum(res, i), tr.data, atol=1e-12)
        assert res.background[i].id == tr.id and res.background[i].stats.starttime == tr.stats.starttime
    # one shared onset (within the noise-limited precision of a smooth glitch: ~0.05 s here), amplitudes recovered
    cat = res.info["catalogue"]
    assert len(cat) == 3 and {c["onset_sample"] for c in cat} == {cat[0]["onset_sample"]}
    assert abs(cat[0]["onset_sample"] / FS - 60.33) < 0.1
    np.testing.assert_allclose([c["amplitude"] for c in cat], [2.0, -1.0, 0.5], atol=0.1)
    assert res.info["mode"] == "templates"  # residual off: templates only


def test_noise_alone_gives_no_glitch():
    st = make_stream(npts=4000, start="2019-05-24T00:00:00")
    res = HybridSeparator().separate(st)
    assert res.info["catalogue"] == []
    for i in range(len(st)):
        assert not np.any(_removed_sum(res, i))


@pytest.mark.realdata
def test_one_glitch_on_real_background_beats_the_template_fit(insight):
    bg = load_background(insight / "background" / "XB.ELYSE.02.BH_S0185a_deglitched_UCLA_v4.mseed")
    case = glitch_case(bg, span=4096, count=1, seed=5, amplitude=2.0, prior_count=10)
    mix = np.stack([tr.data for tr in case.mixture])
    hyb = HybridSeparator.from_options(prior=case.prior, residual=False).separate(case.mixture)
    tpl = get_method("template").separate(case.mixture)
    snr_h = np.mean([snr_db(case.truth_background[c], hyb.background[c].data) for c in range(3)])
    snr_t = np.mean([snr_db(case.truth_background[c], tpl.background[c].data) for c in range(3)])
    snr_in = np.mean([snr_db(case.truth_background[c], mix[c]) for c in range(3)])
    assert snr_h > snr_in + 10.0
    assert snr_h > snr_t
    onset = case.info["glitches"][0]["onset_s"]
    assert any(abs(c["onset_sample"] / FS - onset) < 0.05 for c in hyb.info["catalogue"])


@pytest.mark.realdata
def test_glitch_with_spike_and_precursor_beats_the_template_fit(insight):
    """A glitch whose onset carries a displacement spike and a small precursor step 1.5 s earlier."""
    bg = load_background(insight / "background" / "XB.ELYSE.02.BH_S0105a_deglitched_UCLA_v4.mseed")
    case = glitch_case(bg, span=4096, count=0, seed=2, prior_count=10)
    st = case.mixture.copy()
    _add(st, "glitch", 80.0, [3.0, -2.0, 2.5])
    _add(st, "glitch", 78.5, [0.6, -0.4, 0.5])
    _add(st, "spike", 80.0, [4.0, -3.0, 3.5])
    truth = case.truth_background
    hyb = HybridSeparator.from_options(prior=case.prior, residual=False).separate(st)
    tpl = get_method("template").separate(st)
    snr_h = np.mean([snr_db(truth[c], hyb.background[c].data) for c in range(3)])
    snr_t = np.mean([snr_db(truth[c], tpl.background[c].data) for c in range(3)])
    assert snr_h > snr_t + 3.0
    assert np.any(hyb.removed["spikes"][0].data)


def test_fallback_to_scatcov_when_no_template_is_accepted():
    rng = np.random.default_rng(0)
    prior = rng.standard_normal((4, 1, 256))
    st = make_stream("U", npts=512)
    kw = dict(piece=256, max_iter=2, J=4)
    hyb = HybridSeparator.from_options(prior=prior, use_template_detector=False, residual="auto", **kw).separate(st)
    assert hyb.info["mode"].startswith("scatcov fallback")
    # the scattering separation of the hybrid never separates offsets and drifts (#18)
    sc = get_method("scatcov", prior=prior, removed_name="residual", detrend="linear", hold_mean=True,
                    **kw).separate(st)
    np.testing.assert_allclose(hyb.removed["residual"][0].data, sc.removed["residual"][0].data, atol=1e-10)
    np.testing.assert_allclose(hyb.background[0].data + _removed_sum(hyb, 0), st[0].data, atol=1e-12)
    off = HybridSeparator.from_options(prior=prior, use_template_detector=False, fallback="none", residual="auto",
                                       **kw).separate(st)
    assert not np.any(_removed_sum(off, 0))
    # residual='none' is templates only: no fallback either (a record with a marsquake and no glitch is untouched)
    only = HybridSeparator.from_options(prior=prior, use_template_detector=False, residual="none", **kw).separate(st)
    assert only.info["mode"] == "templates" and not np.any(_removed_sum(only, 0))


def test_bad_options_and_input():
    st = make_stream("U", npts=500)
    for bad in (dict(fallback="maybe"), dict(threshold=0), dict(prior=np.zeros((1, 1, 64))), dict(residual="x"),
                dict(rise_times="fast"), dict(device="tpu"), dict(dtype="float16")):
        sep = HybridSeparator.from_options(**bad)  # the constructor only stores; separate() checks
        with pytest.raises(ConfigError):
            sep.separate(st)
    with pytest.raises(ConfigError, match="detection must be a DetectionConfig"):
        HybridSeparator(detection={"threshold": 3}).separate(st)
    st[0].data[10] = np.nan
    with pytest.raises(DataError, match="NaN"):
        HybridSeparator().separate(st)
    with pytest.raises(DataError):
        HybridSeparator().separate(Stream())


def test_auto_residual_only_where_the_record_departs_from_the_prior():
    rng = np.random.default_rng(1)
    prior = rng.standard_normal((6, 1, 512))
    st = make_stream("U", npts=2048)
    st[0].data[1024:1280] *= 8.0  # a loud burst the templates do not explain
    kw = dict(piece=256, max_iter=2, J=4, use_template_detector=False, fallback="none", residual="auto")
    res = HybridSeparator.from_options(prior=prior, **kw).separate(st)
    assert res.info["mode"].endswith("(auto)")
    r = res.removed["residual"][0].data
    assert np.any(r[1024:1280]) and not np.any(r[:512]) and not np.any(r[1792:])
    np.testing.assert_allclose(res.background[0].data + _removed_sum(res, 0), st[0].data, atol=1e-12)
    quiet = HybridSeparator.from_options(prior=prior, **kw).separate(make_stream("U", npts=2048))
    assert quiet.info["mode"] == "templates" and not np.any(quiet.removed["residual"][0].data)


def test_glitch_cluster_windows_seed_candidates():
    from unmix.clusters import ClusterTable

    st = make_stream(npts=4000)
    for tr in st:
        tr.data *= 0.2
    _add(st, "glitch", 60.0, [1.0, -0.5, 0.8])
    t0 = st[0].stats.starttime.timestamp
    iv = np.array([[[t0 + 50.0, t0 + 75.0]], [[t0 + 120.0, t0 + 145.0]]])
    table = ClusterTable(scales=(512,), intervals=iv, lmst=iv / 88775.0, cluster=np.array([[1], [0]], np.int16),
                         confidence=np.ones((2, 1), np.float32), probabilities=np.ones((2, 1, 2), np.float32) / 2)
    kw = dict(threshold=1e9, cluster_threshold=50.0, use_template_detector=False)
    assert HybridSeparator.from_options(**kw).separate(st).info["catalogue"] == []
    cat = HybridSeparator.from_options(table=table, glitch_clusters=1, **kw).separate(st).info["catalogue"]
    assert len(cat) == 3 and all(abs(c["onset_sample"] / FS - 60.0) < 0.1 for c in cat)


def test_record_share_hands_a_mostly_unlike_record_to_scatcov():
    rng = np.random.default_rng(1)
    prior = rng.standard_normal((6, 1, 512))
    st = make_stream("U", npts=4096)
    st[0].data[1280:2816] *= 8.0  # a third of the record is unlike the prior
    kw = dict(piece=256, max_iter=2, J=4, use_template_detector=False, fallback="none", residual="auto")
    whole = HybridSeparator.from_options(prior=prior, record_share=0.3, **kw).separate(st)
    sc = get_method("scatcov", prior=prior, piece=256, max_iter=2, J=4, removed_name="residual", detrend="linear",
                    hold_mean=True).separate(st)
    np.testing.assert_allclose(whole.removed["residual"][0].data, sc.removed["residual"][0].data, atol=1e-10)
    spans = HybridSeparator.from_options(prior=prior, **kw).separate(st)  # default: only the flagged spans
    assert not np.allclose(spans.removed["residual"][0].data, sc.removed["residual"][0].data)
    with pytest.raises(ConfigError):
        HybridSeparator.from_options(record_share=0.0).separate(st)


def test_a_tilt_spread_over_seconds_gets_its_rise_time():
    """A step in acceleration spread over 4 s (a slow tilt) is fitted with a rise time, and better than with an
    instantaneous step; an instantaneous step keeps rise time 0."""
    rng = np.random.default_rng(9)
    prior = 0.2 * rng.standard_normal((4, 3, 2048))

    def record(tau: float) -> tuple[Stream, np.ndarray]:
        st = make_stream(npts=4000)
        for tr in st:
            tr.data *= 0.2
        clean = np.stack([tr.data.copy() for tr in st])
        shifts = np.linspace(-tau / 2, tau / 2, 81) if tau else np.zeros(1)
        for tr, amp in zip(st, [3.0, -2.0, 1.0], strict=True):
            i0 = int(60.0 * FS)
            wave = np.mean([glitch_template(FS, 60.0, 0.33 + s) for s in shifts], axis=0)
            wave /= np.abs(wave).max()
            a = i0 - int(2.0 * FS)
            tr.data[a : a + wave.size] += amp * wave
        return st, clean

    kw = dict(prior=prior, spectrum="prior", residual="none", fallback="none", use_template_detector=False)
    st, clean = record(4.0)
    res = HybridSeparator.from_options(**kw).separate(st)
    assert {c["rise_time"] for c in res.info["catalogue"]} & {3.0, 4.0, 6.0}
    step = HybridSeparator.from_options(rise_times=[0.0], **kw).separate(st)
    err = sum(np.sum((res.background[i].data - clean[i]) ** 2) for i in range(3))
    err_step = sum(np.sum((step.background[i].data - clean[i]) ** 2) for i in range(3))
    assert err < 0.5 * err_step, (err, err_step)
    st0, _ = record(0.0)
    assert {c["rise_time"] for c in HybridSeparator.from_options(**kw).separate(st0).info["catalogue"]} == {0.0}


def test_params_round_trip_and_the_constructor_only_stores():
    prior = np.random.default_rng(2).standard_normal((4, 3, 512))
    h = HybridSeparator.from_options(prior=prior, threshold=200, residual=False, piece=512, inventory="nowhere.xml")
    assert h.detection == DetectionConfig(threshold=200) and h.residual == ResidualConfig(residual=False)
    assert h.solver == SolverConfig(piece=512) and h.inventory == "nowhere.xml" and h.prior is prior  # as given
    again = HybridSeparator(**h.get_params())  # was a TypeError with the 46 flat keyword arguments
    assert again.get_params().keys() == h.get_params().keys()
    assert all(again.get_params()[k] is v for k, v in h.get_params().items())
    # set_params takes constructor parameters or flat keys; a flat key changes one field of its stage
    h.set_params(component_threshold=4.0, max_iter=7)
    assert h.detection == DetectionConfig(threshold=200, component_threshold=4.0)
    assert h.solver == SolverConfig(piece=512, max_iter=7)
    assert h.set_params(detection=DetectionConfig(search=1.0)).detection == DetectionConfig(search=1.0)
    # the response file is read by separate(), not by the constructor
    with pytest.raises(InputFileError, match="no such response file"):
        h.separate(make_stream(npts=600))


def test_provenance_params_replay_the_same_separator():
    st = make_stream(npts=4000)
    for tr in st:
        tr.data *= 0.2
    _add(st, "glitch", 60.33, [2.0, -1.0, 0.5])
    res = get_method("hybrid", residual="none", threshold=250.0, rise_times=[0.0, 2.0]).separate(st)
    params = res.info["params"]
    assert params["residual"] == "none" and params["rise_times"] == (0.0, 2.0) and params["threshold"] == 250.0
    assert params["response"] == "InSight VBB poles/zeros (default)"
    replay = get_method("hybrid", **{k: v for k, v in params.items() if k != "response"}).separate(st)
    assert replay.info["params"] == params and replay.info["catalogue"] == res.info["catalogue"]
    for a, b in zip(res.background, replay.background, strict=True):
        np.testing.assert_array_equal(a.data, b.data)


def test_a_misspelt_option_is_one_line_listing_the_valid_keys(tmp_path):
    with pytest.raises(ConfigError) as err:
        get_method("hybrid", treshold=100.0)
    msg = str(err.value)
    assert "\n" not in msg and "treshold" in msg and all(k in msg for k in ("threshold", "residual", "piece"))
    assert set(valid_options()) >= {"threshold", "rise_times", "residual", "detection", "prior", "device"}
    st = make_stream(npts=600)
    st.write(str(tmp_path / "in.mseed"), format="MSEED")
    r = CliRunner().invoke(main, ["separate", str(tmp_path / "in.mseed"), "--out", str(tmp_path / "out"),
                                  "--method", "hybrid", "--hybrid-opt", "treshold=100"])
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert lines[0].startswith("error:") and "treshold" in lines[0] and "spike_threshold" in lines[0]
    assert "Traceback" not in r.output and not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_no_function_over_80_lines_in_separation():
    """Issue #15's done-when: every function (and method) in core/separation/ is at most 80 lines long."""
    root = Path(__file__).resolve().parents[1] / "core" / "separation"
    long = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 80:
                long.append(f"{path.relative_to(root)}:{node.lineno} {node.name} "
                            f"({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long


def _flag_run(**residual):
    from types import SimpleNamespace

    return SimpleNamespace(residual=ResidualConfig(**residual).checked(),
                           solver=SolverConfig(piece=512, J=6).checked())


def test_auto_keeps_templates_where_they_explain_the_departure():
    """'auto': a flagged span that the templates made much more like the prior is theirs (kept, the separation
    takes what they leave); a span they barely changed (a burst) fades them out; explained_factor=0 fades all."""
    from unmix.jobs import NO_CANCEL
    from unmix.separation.hybrid.separator import _flagged

    rng = np.random.default_rng(3)
    snippets = rng.standard_normal((6, 2048))
    noise = rng.standard_normal(4096)
    glitch = np.zeros(4096)
    glitch[1460:1460 + 1240] = 40.0 * glitch_template(FS, 60.0)  # 2 s before the onset, 60 s after
    fade, keep, chk = _flagged(_flag_run(), noise + glitch, noise + 0.05 * glitch, True, snippets, NO_CANCEL)
    assert keep and not fade and chk["template_spans"] == len(keep) and chk["flagged_pieces"] >= 1
    assert keep[0][0] <= 1460 and keep[-1][1] >= 1500
    fade, keep, _ = _flagged(_flag_run(explained_factor=0), noise + glitch, noise + 0.05 * glitch, True, snippets,
                             NO_CANCEL)
    assert fade and not keep
    burst = noise.copy()
    burst[2560:3072] *= 8.0
    spurious = 0.01 * glitch
    fade, keep, chk = _flagged(_flag_run(), burst + spurious, burst, True, snippets, NO_CANCEL)
    assert fade and not keep and chk["template_spans"] == 0
    assert fade[0][0] <= 2560 and fade[-1][1] >= 3072
    fade, keep, _ = _flagged(_flag_run(), noise, noise, False, snippets, NO_CANCEL)
    assert not fade and not keep


def test_misfit_residual_acts_only_where_templates_explain_the_departure():
    """'misfit': a slow tilt fitted with instant steps leaves a residue the separation takes (templates kept); a
    burst no template explains, and a record with no template at all, are left alone (no fallback)."""
    rng = np.random.default_rng(4)
    prior = rng.standard_normal((6, 1, 1024))
    st = make_stream("U", npts=6000)
    onset = 100.0
    shifts = np.linspace(-3.0, 3.0, 121)
    wave = np.mean([glitch_template(FS, 60.0, 0.3 + s) for s in shifts], axis=0)
    a = int(onset * FS) - int(2.0 * FS)
    st[0].data[a:a + wave.size] += 60.0 * wave / np.abs(wave).max()
    st[0].data[4600:5100] *= 8.0  # a burst
    kw = dict(piece=512, max_iter=3, J=6, use_template_detector=False, rise_times=[0.0], residual="misfit")
    res = HybridSeparator.from_options(prior=prior, **kw).separate(st)
    r = res.removed["residual"][0].data
    assert res.info["catalogue"] and np.any(res.removed["glitches"][0].data)
    assert res.info["residual"]["outliers"][0]["template_spans"] >= 1
    assert np.any(r[a:a + wave.size]) and not np.any(r[4400:])
    np.testing.assert_allclose(res.background[0].data + _removed_sum(res, 0), st[0].data, atol=1e-12)
    quiet = HybridSeparator.from_options(prior=prior, **kw).separate(make_stream("U", npts=2048))
    assert quiet.info["mode"] == "templates" and not np.any(_removed_sum(quiet, 0))


@pytest.mark.realdata
def test_defaults_beat_templates_on_glitches_with_rise_times_and_keep_a_quake(insight):
    """The default hybrid on a hard-glitch case (rise times, a pair, spikes; measured +7.1 dB over templates) and on
    a marsquake with glitches in its coda (the quake kept: none of it removed)."""
    from unmix.evaluation.cases import hard_glitch_case, quake_case
    from unmix.evaluation.metrics import quake_removed

    def snr(case, result) -> float:
        return float(np.mean([snr_db(case.truth_background[c], result.background[c].data) for c in range(3)]))

    bg = load_background(insight / "background" / "XB.ELYSE.02.BH_S0105a_deglitched_UCLA_v4.mseed")
    case = hard_glitch_case(bg, seed=1)
    hyb = HybridSeparator.from_options(prior=case.prior).separate(case.mixture)
    assert snr(case, hyb) > snr(case, get_method("template").separate(case.mixture)) + 3.0
    q = quake_case(bg, span=24000, count=2, seed=0, duration=(400.0, 600.0), prior_count=10)
    res = HybridSeparator.from_options(prior=q.prior).separate(q.mixture)
    for c in range(3):
        removed = q.mixture[c].data - res.background[c].data
        assert abs(quake_removed(removed, q.quake[c], FS)) < 0.01
    auto = HybridSeparator.from_options(prior=q.prior, residual="auto", max_iter=5).separate(q.mixture)
    assert quake_removed(q.mixture[0].data - auto.background[0].data, q.quake[0], FS) > 0.5  # 'auto' takes it

"""Harder benchmark cases (#18): glitches with rise times, pairs and spikes; gust trains; dust devils; single-component
records; and their ``unmix bench separation --case`` / ``--components`` options."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from unmix.cli import main
from unmix.errors import ConfigError
from unmix.evaluation import (
    dust_devil_case,
    gust_case,
    hard_glitch_case,
    load_background,
    rise_glitch_template,
    select_components,
)
from unmix.evaluation.benchmark import CASE_KINDS, run_case
from unmix.instrument import glitch_template

FS = 20.0


@pytest.fixture(scope="module")
def real_bg(insight):
    """The standardised UCLA-deglitched S0185a background (≈ 87 min, 3 components)."""
    return load_background(next((insight / "background").glob("*S0185a*UCLA*")))


def _high_share(x: np.ndarray, f0: float = 0.5) -> float:
    """Share of the energy above ``f0`` Hz."""
    power = np.abs(np.fft.rfft(x, axis=-1)) ** 2
    return float(power[..., np.fft.rfftfreq(x.shape[-1], 1 / FS) > f0].sum() / power.sum())


def _check_shapes(case, span: int, prior_count: int, prior_length: int = 2048) -> None:
    assert len(case.mixture) == 3 and all(tr.stats.npts == span for tr in case.mixture)
    assert case.truth_background.shape == case.truth_removed.shape == (3, span)
    assert case.prior.shape == (prior_count, 3, prior_length)
    np.testing.assert_allclose(np.stack([tr.data for tr in case.mixture]), case.truth_background + case.truth_removed)


def test_rise_time_zero_is_the_instrument_template_and_rise_smooths_it():
    for shift in (0.0, 0.021):
        np.testing.assert_allclose(rise_glitch_template(FS, 0.0, 60.0, shift), glitch_template(FS, 60.0, shift),
                                   atol=2e-3)
    slow = rise_glitch_template(FS, 2.0)
    assert slow.max() == pytest.approx(1.0)
    assert np.argmax(slow) > np.argmax(rise_glitch_template(FS, 0.0))  # the peak comes later
    assert _high_share(slow) < 0.2 * _high_share(rise_glitch_template(FS, 0.0))


@pytest.mark.realdata
def test_hard_glitches_on_real_background(real_bg):
    case = hard_glitch_case(real_bg, span=8192, count=4, seed=2, prior_count=6)
    _check_shapes(case, 8192, 6)
    assert case.info["kind"] == "hard-glitches"
    glitches = case.info["glitches"]
    onsets = np.array([g["onset_s"] for g in glitches])
    assert len(glitches) >= 4 and np.all(np.diff(onsets) >= 0)
    assert all(0.2 <= g["rise_s"] <= 3.0 for g in glitches)
    assert any(g["partner"] is not None for g in glitches) and any(g["spike_amplitude"] != 0 for g in glitches)
    for k, g in enumerate(glitches):
        if g["partner"] is not None:
            assert glitches[g["partner"]]["partner"] == k
            assert 1.0 <= abs(g["onset_s"] - glitches[g["partner"]]["onset_s"]) <= 10.0
            assert g["overlaps"]
        if g["spike_onset_s"] is not None:
            assert abs(g["spike_onset_s"] - g["onset_s"]) <= 0.5
            assert max(map(abs, g["spike_amplitudes"])) == pytest.approx(abs(g["spike_amplitude"]))
        i = int(g["onset_s"] * FS)
        peak = np.abs(case.truth_removed[:, i:i + int(10 * FS)]).max()
        assert peak > 0.3 * max(map(abs, g["amplitudes"]))
    quiet = int((onsets[0] - 2.5) * FS)  # templates start 2 s before their onset, spikes up to 0.5 s earlier
    assert quiet > 100 and not case.truth_removed[:, :quiet].any()


@pytest.mark.realdata
def test_rise_times_make_glitches_smoother(real_bg):
    plain = {"seed": 1, "overlap_fraction": 0.0, "spike_fraction": 0.0, "prior_count": 2}
    sudden = hard_glitch_case(real_bg, rise_time=(0.0, 0.0), **plain)
    slow = hard_glitch_case(real_bg, rise_time=(2.5, 2.5), **plain)
    assert [g["onset_s"] for g in sudden.info["glitches"]] == [g["onset_s"] for g in slow.info["glitches"]]
    assert all(g["rise_s"] == 2.5 for g in slow.info["glitches"])
    np.testing.assert_array_equal(sudden.truth_background, slow.truth_background)
    assert _high_share(slow.truth_removed) < 0.2 * _high_share(sudden.truth_removed)
    with pytest.raises(ConfigError):
        hard_glitch_case(real_bg, rise_time=(3.0, 1.0))


@pytest.mark.realdata
def test_gust_train_on_real_background(real_bg):
    case = gust_case(real_bg, span=24000, seed=3, prior_count=5)
    _check_shapes(case, 24000, 5)
    gusts = case.info["gusts"]
    assert 5 <= len(gusts) <= 15
    first = gusts[0]["onset_s"]
    assert first > 5.0 and not case.truth_removed[:, :int(first * FS)].any()  # nothing before the first gust
    for g in gusts:
        assert 8.0 <= g["tau_s"] <= 25.0 and all(2.0 <= a <= 6.0 for a in g["amplitudes"])
        i, w = int(g["peak_s"] * FS), int(g["tau_s"] * FS)
        assert np.abs(case.truth_removed[:, i - w:i + w]).max(axis=1).min() > 1.0
    assert len(gust_case(real_bg, span=24000, count=7, seed=3, prior_count=5).info["gusts"]) == 7


@pytest.mark.realdata
def test_dust_devils_on_real_background(real_bg):
    case = dust_devil_case(real_bg, span=36000, count=3, seed=1, prior_count=5)
    _check_shapes(case, 36000, 5)
    devils = case.info["dust_devils"]
    assert len(devils) == 3
    inside = np.zeros(36000, dtype=bool)
    for d in devils:
        assert 0 <= d["start_s"] < d["end_s"] <= 1800.0 and 60.0 <= d["end_s"] - d["start_s"] <= 300.5
        assert 5.0 <= d["pulse_width_s"] <= 20.0
        a, b = int(round(d["start_s"] * FS)), int(round(d["end_s"] * FS))
        inside[a:b] = True
        # the tilt pulse projects on at least one axis with ≥ cos(29°)·cos(60°) ≈ 0.43 of its peak
        assert np.abs(case.truth_removed[:, a:b]).max() > 0.4 * d["tilt_pulse_amplitude"]
    assert not case.truth_removed[:, ~inside].any()


@pytest.mark.realdata
@pytest.mark.parametrize("base", ["gusts", "dust-devils"])
def test_a_quake_under_gusts_and_dust_devils(real_bg, base):
    from unmix.evaluation.benchmark import QUAKE_UNDER, _make_case

    hard = {"gusts": {"span": 24000, "prior_count": 4}, "dust-devils": {"span": 24000, "prior_count": 4}}
    case = _make_case(f"{base}+quake", real_bg, 2, {}, {}, {"duration": (300.0, 600.0)}, hard)
    plain = _make_case(base, real_bg, 2, {}, {}, {}, hard)
    _check_shapes(case, 24000, 4)
    np.testing.assert_array_equal(case.truth_removed, plain.truth_removed)  # the same sources, the quake added
    np.testing.assert_allclose(case.truth_background, plain.truth_background + case.quake)
    (a, b), q = QUAKE_UNDER[base](case.info), case.info["quake"]
    assert q["start_s"] < b and q["end_s"] > a and 300.0 <= q["end_s"] - q["start_s"] <= 600.5
    assert case.info["kind"] == f"{base}+quake" and np.abs(case.quake).max() > 1.0


@pytest.mark.realdata
def test_single_component_cases_run_template_and_highpass(real_bg):
    full = hard_glitch_case(real_bg, seed=0, prior_count=4)
    v = full.truth_removed[1].copy()
    case = select_components(hard_glitch_case(real_bg, seed=0, prior_count=4), ["V"])
    assert len(case.mixture) == 1 and case.mixture[0].stats.channel == "BHV" and case.components == ["V"]
    assert case.truth_background.shape == case.truth_removed.shape == (1, 8192) and case.prior.shape == (4, 1, 2048)
    np.testing.assert_array_equal(case.truth_removed[0], v)
    out = run_case(case, ("template", "highpass"))
    for name in ("template", "highpass"):
        comps = out["methods"][name]["components"]
        assert list(comps) == ["V"]
        assert all(np.isfinite(v) for v in comps["V"].values())
    with pytest.raises(ConfigError, match="Z"):
        select_components(hard_glitch_case(real_bg, seed=0, prior_count=4), ["Z"])


def test_case_choices_cover_every_kind():
    from unmix.cli.separate import CaseChoice, bench_separation

    param = next(p for p in bench_separation.params if p.name == "cases")
    assert isinstance(param.type, CaseChoice)
    assert param.type.convert("all", param, None) == CASE_KINDS
    assert param.type.convert("both,hard,gusts", param, None) == (
        "glitches", "bursts", "hard-glitches", "gusts", "dust-devils")
    assert param.type.convert("gusts+quake,dust-devils+quake", param, None) == ("gusts+quake", "dust-devils+quake")


@pytest.mark.realdata
def test_cli_runs_the_new_kinds_on_one_component(insight, tmp_path):
    bg = next((insight / "background").glob("*S0185a*UCLA*"))
    out = tmp_path / "r.json"
    args = ["bench", "separation", "--case", "hard-glitches,gusts,dust-devils", "--methods", "highpass", "--seeds",
            "0", "--components", "V", "--background", str(bg), "--prior-count", "2", "--json", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert data["components"] == ["V"] and len(data["cases"]) == 3
    assert list(data["summary"]) == ["hard-glitches", "gusts", "dust-devils"]
    for kind in data["summary"].values():
        assert list(kind["highpass"]["components"]) == ["V", "all"]
        assert kind["highpass"]["components"]["V"]["snr_in_db"] is not None
    assert "Single-component records" in r.output
    bad = CliRunner().invoke(main, ["bench", "separation", "--case", "gusts,nope", "--background", str(bg)])
    assert bad.exit_code == 2 and "nope" in bad.output

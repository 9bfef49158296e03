"""Separation benchmark: metrics, cases with known truth, the runner and ``unmix bench separation``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from obspy import UTCDateTime

from unmix.cli import main
from unmix.errors import ConfigError
from unmix.evaluation import (
    burst_case,
    correlation,
    glitch_case,
    markdown_tables,
    reference_metrics,
    run_real_benchmark,
    separation_metrics,
    snr_db,
)
from unmix.evaluation.benchmark import run_case, summarise
from unmix.evaluation.cases import Background


def _background(n=60000, seed=0) -> Background:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, n))
    x = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    return Background("synthetic", ["XB.ELYSE.02.BHU", "XB.ELYSE.02.BHV", "XB.ELYSE.02.BHW"],
                      UTCDateTime("2019-06-05T01:00:00"), 20.0, x, np.ones(3))


def test_metrics_on_known_values():
    rng = np.random.default_rng(0)
    truth = rng.standard_normal(1000)
    truth -= truth.mean()
    err = rng.standard_normal(1000)
    err -= err.mean()
    err *= np.linalg.norm(truth) / np.linalg.norm(err) / 10.0  # 20 dB below the truth
    assert snr_db(truth, truth + err) == pytest.approx(20.0, abs=1e-9)
    assert snr_db(truth, truth + err + 7.0) == pytest.approx(20.0, abs=1e-9)  # offsets do not count
    assert snr_db(truth, truth) == np.inf
    assert correlation(truth, 3 * truth + 1) == pytest.approx(1.0)
    assert correlation(truth, np.zeros_like(truth)) is None
    m = separation_metrics(truth + 10 * err, truth, truth + err)
    assert m["gain_db"] == pytest.approx(20.0, abs=1e-9)
    assert m["corr_removed"] == pytest.approx(1.0)


def test_reference_metrics_inside_and_outside():
    rng = np.random.default_rng(1)
    raw = rng.standard_normal(2000)
    glitch = np.zeros(2000)
    glitch[500:700] = 50 * np.hanning(200)
    raw += glitch
    perfect = reference_metrics(raw, raw - glitch, raw - glitch)
    assert perfect["corr_inside"] == pytest.approx(1.0) and perfect["rel_rms_inside"] == pytest.approx(0.0)
    assert perfect["rel_rms_outside"] == pytest.approx(0.0)
    assert 0.05 < perfect["inside_fraction"] < 0.11
    nothing = reference_metrics(raw, raw - glitch, raw)
    # compared up to a constant offset over the whole record, so "removed nothing" is close to, not exactly, 1
    assert nothing["corr_inside"] is None and nothing["rel_rms_inside"] == pytest.approx(1.0, abs=0.1)
    half = reference_metrics(raw, raw - glitch, raw - 0.5 * glitch)
    assert half["corr_inside"] == pytest.approx(1.0) and half["rel_rms_inside"] == pytest.approx(0.5, abs=0.05)


def test_glitch_case_truth_adds_up_and_priors_avoid_the_target():
    bg = _background()
    case = glitch_case(bg, span=4096, count=3, seed=5, prior_count=10, prior_length=1024)
    mixture = np.stack([tr.data for tr in case.mixture])
    np.testing.assert_allclose(mixture, case.truth_background + case.truth_removed)
    assert case.prior.shape == (10, 3, 1024)
    s0, span = case.info["span_offset"], case.info["span_samples"]
    guard = 60 * 20
    for t in case.info["prior_offsets"]:
        assert t + 1024 <= s0 - guard or t >= s0 + span + guard
    assert len(case.info["glitches"]) == 3
    assert np.all(np.abs(case.truth_removed).max(axis=1) > 0)
    assert case.mixture[0].stats.starttime == bg.starttime + s0 / 20.0
    again = glitch_case(bg, span=4096, count=3, seed=5, prior_count=10, prior_length=1024)
    np.testing.assert_array_equal(again.truth_removed, case.truth_removed)
    with pytest.raises(ConfigError):
        glitch_case(bg, span=10**6)


def test_burst_case_places_whole_bursts():
    bg = _background(n=72000)
    case = burst_case(bg, span=24000, count=1, seed=2, duration=(300.0, 600.0), prior_count=5)
    (burst,) = case.info["bursts"]
    assert burst["start_s"] >= 0 and burst["end_s"] <= 24000 / 20.0
    assert 300.0 <= burst["end_s"] - burst["start_s"] <= 600.5
    assert np.std(case.truth_removed) > 0.1


def test_run_case_template_beats_highpass_and_skips_unknown_methods():
    case = glitch_case(_background(), span=8192, count=4, seed=0, amplitude=20.0, prior_count=4)
    out = run_case(case, ("template", "highpass", "nope"))
    t, h = out["methods"]["template"], out["methods"]["highpass"]
    assert "unavailable" in out["methods"]["nope"]["skipped"]
    gain_t = np.mean([m["gain_db"] for m in t["components"].values()])
    gain_h = np.mean([m["gain_db"] for m in h["components"].values()])
    assert gain_t > 10.0 and gain_t > gain_h
    summary = summarise([out])
    assert list(summary["glitches"]["template"]["components"]) == ["U", "V", "W", "all"]
    table = markdown_tables({"mode": "synthetic", "summary": summary})
    assert "| template | all |" in table and "unavailable" in table


@pytest.mark.realdata
def test_bench_separation_cli_on_real_background(insight, tmp_path):
    bg = insight / "background" / "XB.ELYSE.02.BH_S0185a_deglitched_UCLA_v4.mseed"
    args = ["bench", "separation", "--case", "glitches", "--methods", "template,highpass", "--seeds", "0",
            "--background", str(bg), "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["mode"] == "synthetic" and len(data["cases"]) == 1
    assert data["summary"]["glitches"]["template"]["components"]["all"]["gain_db"] > 5.0
    assert "| template | all |" in (tmp_path / "r.md").read_text()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "--overwrite" in again.output


@pytest.mark.realdata
def test_real_mode_compares_with_the_reference(insight):
    res = run_real_benchmark(insight / "raw" / "XB.ELYSE.02.BH_2019-07-26T1149_S0235b_raw.mseed",
                             insight / "reference" / "XB.ELYSE.02.BH_2019-07-26T1149_S0235b_deglitched_UCLA_v4.mseed",
                             methods=("highpass",))
    comps = res["results"]["highpass"]["components"]
    assert set(comps) == {"U", "V", "W"}
    for m in comps.values():
        assert 0.08 < m["inside_fraction"] < 0.2
        assert m["samples"] == 142840
        assert m["corr_inside"] is not None and m["rel_rms_outside"] > 0
    assert "corr. inside" in markdown_tables(res)


def test_quake_removed_measures_the_share_of_the_quake_taken_away():
    from unmix.evaluation import quake_removed

    rng = np.random.default_rng(1)
    t = np.arange(24000) / 20.0
    quake = np.where((t > 200) & (t < 800), np.sin(2 * np.pi * 1.0 * t) * np.exp(-(t - 200) / 300), 0.0)
    steps = np.cumsum(rng.standard_normal(t.size)) * 0.01  # long-period, unrelated to the quake
    assert quake_removed(np.zeros_like(t), quake, 20.0) == pytest.approx(0.0)
    assert quake_removed(quake, quake, 20.0) == pytest.approx(1.0, abs=1e-6)
    assert quake_removed(0.3 * quake + steps, quake, 20.0) == pytest.approx(0.3, abs=0.02)
    assert quake_removed(steps, np.zeros_like(t), 20.0) is None


def test_quake_case_keeps_the_quake_in_the_background_and_glitches_in_its_coda():
    from unmix.evaluation import quake_case

    bg = _background(n=72000)
    case = quake_case(bg, span=24000, count=3, seed=4, duration=(300.0, 600.0), prior_count=5)
    mixture = np.stack([tr.data for tr in case.mixture])
    np.testing.assert_allclose(mixture, case.truth_background + case.truth_removed)
    q = case.info["quake"]
    assert 0 <= q["start_s"] < q["s_arrival_s"] < q["end_s"] <= 24000 / 20.0
    assert all(q["s_arrival_s"] <= g["onset_s"] <= q["end_s"] for g in case.info["glitches"])
    inside = np.abs(case.quake).sum(axis=0) > 0
    assert inside.any() and not inside.all()
    assert np.std(case.quake[:, inside]) > 0.5  # a quake of a few σ
    out = run_case(case, ("template",))
    for m in out["methods"]["template"]["components"].values():
        assert m["quake_removed"] is not None and abs(m["quake_removed"]) < 0.1


def test_bursts_with_a_quake_case_kind():
    from unmix.evaluation.benchmark import _make_case

    bg = _background(n=72000)
    case = _make_case("bursts+quake", bg, 3, {}, {"span": 24000, "duration": (300.0, 600.0), "prior_count": 5},
                      {"duration": (300.0, 600.0)})
    b, q = case.info["bursts"][0], case.info["quake"]
    assert q["start_s"] < b["end_s"] and q["end_s"] > b["start_s"]
    mixture = np.stack([tr.data for tr in case.mixture])
    np.testing.assert_allclose(mixture, case.truth_background + case.truth_removed)
    assert case.info["kind"] == "bursts+quake" and case.quake is not None


def test_cli_quake_case_reports_the_share_of_the_quake_removed(tmp_path, insight):
    bg = next((insight / "background").glob("*S0185a*UCLA*"))
    out = tmp_path / "q.json"
    args = ["bench", "separation", "--case", "quake", "--methods", "template", "--seeds", "0", "--count", "2",
            "--burst-span", "24000", "--background", str(bg), "--prior-count", "4", "--json", str(out)]
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    assert "quake removed" in r.output
    data = json.loads(out.read_text())
    m = data["summary"]["quake"]["template"]["components"]["all"]
    assert m["quake_removed"] is not None and abs(m["quake_removed"]) < 0.1


def test_hard_case_kinds_build_on_any_background():
    from unmix.evaluation.benchmark import HARD_KINDS, _make_case

    bg = _background(n=72000)
    hard = {"hard-glitches": {"prior_count": 5}, "gusts": {"span": 24000, "prior_count": 5},
            "dust-devils": {"span": 24000, "count": 2, "prior_count": 5}}
    for kind in HARD_KINDS:
        case = _make_case(kind, bg, 1, {}, {}, {}, hard)
        mixture = np.stack([tr.data for tr in case.mixture])
        np.testing.assert_allclose(mixture, case.truth_background + case.truth_removed)
        assert case.info["kind"] == kind and case.prior.shape == (5, 3, 2048)
        assert np.abs(case.truth_removed).max() > 1.0


def _take_all(stream, part: str):
    """A separation that removes the whole record as ``part`` (the background is zero)."""
    from obspy import Stream

    from unmix.separation.result import SeparationResult

    zero = Stream([tr.copy() for tr in stream])
    for tr in zero:
        tr.data = tr.data * 0.0
    return SeparationResult(zero, {part: Stream([tr.copy() for tr in stream])}, {})


def test_protect_rows_keep_the_quake_a_method_takes(monkeypatch):
    """A case with its quake's span protected scores each method twice from one run: as it is, and with the span
    kept (rows 'METHOD +protect'); a method that takes the whole record removes the quake, protected it keeps it."""

    from unmix.evaluation import quake_case
    from unmix.evaluation.benchmark import quake_span
    from unmix.separation import registry

    class TakeAll:
        def separate(self, stream, progress=None, token=None):
            return _take_all(stream, "removed")

    monkeypatch.setattr(registry, "METHODS", {})
    registry.register_method("take-all")(TakeAll)
    case = quake_case(_background(n=72000), span=24000, count=0, seed=4, duration=(300.0, 600.0), prior_count=5)
    case.info["protected"] = [quake_span(case)]
    out = run_case(case, ("take-all",))
    plain, kept = out["methods"]["take-all"], out["methods"]["take-all +protect"]
    for comp in "UVW":
        assert plain["components"][comp]["quake_removed"] == pytest.approx(1.0, abs=0.1)  # with the noise
        assert abs(kept["components"][comp]["quake_removed"]) < 1e-3
    assert set(summarise([out])["quake"]) == {"take-all", "take-all +protect"}


def test_a_method_that_separates_differently_under_protection_gets_a_run_of_its_own(monkeypatch):
    """The hybrid keeps its templates inside protected spans, so its '+protect' row cannot be the plain run with the
    span put back: it is a run with ``protect`` given, as `separate --protect` makes it."""

    from unmix.evaluation import quake_case
    from unmix.evaluation.benchmark import quake_span
    from unmix.separation import registry

    runs = []

    class Aware:
        def __init__(self, kept=None):
            self.kept = kept

        def protecting(self, spans):
            return Aware(spans)

        def separate(self, stream, progress=None, token=None):
            runs.append(self.kept)
            return _take_all(stream, "glitches")

    monkeypatch.setattr(registry, "METHODS", {})
    registry.register_method("aware")(Aware)
    case = quake_case(_background(n=72000), span=24000, count=0, seed=4, duration=(300.0, 600.0), prior_count=5)
    case.info["protected"] = [quake_span(case)]
    out = run_case(case, ("aware",))
    assert runs == [None, [quake_span(case)]]  # the plain run, then one told of the protected span
    kept = out["methods"]["aware +protect"]["components"]
    assert all(kept[c]["quake_removed"] == pytest.approx(1.0, abs=0.1) for c in "UVW")  # templates stay removed

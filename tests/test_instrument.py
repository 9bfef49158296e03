"""Tests for the VBB instrument model and the glitch / spike templates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from obspy.core.inventory import PolesZerosResponseStage, Response

from unmix.errors import ResponseError
from unmix.instrument import (
    VBB_DAMPING,
    VBB_F0,
    VBB_PAZ,
    Paz,
    damped_oscillator_template,
    glitch_template,
    paz_from_inventory,
    paz_from_response,
    spike_template,
    step_zpk,
    template_times,
    templates_from_inventory,
)

RESPONSE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "insight" / "response"


@pytest.mark.parametrize("fs", [20.0, 10.0])
def test_glitch_peaks_near_3s_and_decays_to_1_percent_by_19s(fs: float) -> None:
    g = glitch_template(fs, duration=80.0)
    t = template_times(fs, 80.0)
    assert g.max() == pytest.approx(1.0, abs=2e-3)
    assert t[np.argmax(g)] == pytest.approx(2.95, abs=0.15)
    last_above = t[np.nonzero(np.abs(g) >= 0.01)[0].max()]
    assert 18.0 <= last_above <= 20.5
    assert np.abs(g[t > 60]).max() < 1e-4


def test_glitch_matches_second_order_approximation() -> None:
    g = glitch_template(20.0, duration=60.0)
    g2 = damped_oscillator_template(20.0, duration=60.0, f0=VBB_F0, damping=VBB_DAMPING)
    assert np.corrcoef(g, g2)[0, 1] > 0.999


def test_integer_and_subsample_shifts_are_consistent() -> None:
    fs = 20.0
    base = glitch_template(fs, duration=40.0, pre=5.0)
    shifted = glitch_template(fs, duration=40.0, onset_shift=3 / fs, pre=5.0)
    np.testing.assert_allclose(shifted[3:], base[:-3], atol=1e-9)
    half = glitch_template(fs, duration=40.0, onset_shift=0.5 / fs, pre=5.0)
    fine = glitch_template(2 * fs, duration=40.0, pre=5.0, antialias=0.4)
    np.testing.assert_allclose(half[1:], fine[1::2][: half.size - 1], atol=2e-3)
    # two half-sample shifts make a one-sample shift
    one = glitch_template(fs, duration=40.0, onset_shift=1.0 / fs, pre=5.0)
    np.testing.assert_allclose(one[1:], base[:-1], atol=1e-9)


def test_vectorised_shifts_equal_scalar_calls_and_peak_at_most_one() -> None:
    shifts = np.linspace(0.0, 0.05, 7)
    many = spike_template(20.0, duration=10.0, onset_shift=shifts)
    assert many.shape == (7, template_times(20.0, 10.0).size)
    for row, tau in zip(many, shifts, strict=True):
        np.testing.assert_allclose(row, spike_template(20.0, duration=10.0, onset_shift=tau), atol=1e-12)
    assert np.abs(glitch_template(20.0, onset_shift=shifts)).max() <= 1.0 + 1e-9


def test_spike_is_much_shorter_than_glitch() -> None:
    fs = 20.0
    t = template_times(fs, 30.0)
    s = spike_template(fs, duration=30.0)
    g = glitch_template(fs, duration=30.0)
    assert abs(t[np.argmax(np.abs(s))]) < 0.1
    assert np.abs(s[t > 1.0]).max() < 0.05
    energy_s = np.cumsum(s[t >= 0] ** 2) / np.sum(s[t >= 0] ** 2)
    energy_g = np.cumsum(g[t >= 0] ** 2) / np.sum(g[t >= 0] ** 2)
    assert np.searchsorted(energy_s, 0.9) / fs < 0.5
    assert np.searchsorted(energy_g, 0.9) / fs > 5.0


def test_paz_normalised_at_0p1_hz_and_obspy_roundtrip() -> None:
    assert abs(VBB_PAZ.evaluate(np.array([0.1]))[0]) == pytest.approx(1.0, rel=1e-3)
    assert paz_from_response(VBB_PAZ.to_response()) == VBB_PAZ
    d = VBB_PAZ.as_obspy_dict()
    assert d["gain"] == VBB_PAZ.a0 and len(d["poles"]) == 5
    assert d["sensitivity"] == pytest.approx(VBB_PAZ.gain, rel=1e-3)


def test_hertz_stage_is_converted_to_radians() -> None:
    two_pi = 2 * np.pi
    stage = PolesZerosResponseStage(
        1, VBB_PAZ.gain, 0.1, "M/S", "V", pz_transfer_function_type="LAPLACE (HERTZ)",
        normalization_frequency=0.1, zeros=[z / two_pi for z in VBB_PAZ.zeros],
        poles=[p / two_pi for p in VBB_PAZ.poles],
        normalization_factor=VBB_PAZ.a0 / two_pi ** (len(VBB_PAZ.poles) - len(VBB_PAZ.zeros)),
    )
    paz = paz_from_response(Response(response_stages=[stage]))
    f = np.logspace(-3, 1, 50)
    np.testing.assert_allclose(paz.evaluate(f), VBB_PAZ.evaluate(f), rtol=1e-9)


def test_non_decaying_response_is_rejected() -> None:
    no_zeros_at_origin = Paz(zeros=(-1.0 + 0j,), poles=(-0.3 + 0.3j, -0.3 - 0.3j), a0=1.0)
    with pytest.raises(ResponseError):
        step_zpk(no_zeros_at_origin, "glitch")
    zeros, poles, _ = step_zpk(VBB_PAZ, "glitch")
    assert len(zeros) == 2 and len(poles) == 5


@pytest.mark.realdata
@pytest.mark.skipif(not RESPONSE_DIR.exists(), reason="../shared/data/insight is absent")
def test_templates_from_stationxml() -> None:
    from obspy import read_inventory

    inv = read_inventory(str(RESPONSE_DIR / "XB.ELYSE.02.BH.xml"))
    assert paz_from_inventory(inv, "XB.ELYSE.02.BHU", "2019-07-26T12:00:00") == VBB_PAZ
    tpl = templates_from_inventory(inv, "XB.ELYSE.02.BHV", "2019-07-26T12:00:00")
    ref = glitch_template(20.0)
    assert tpl["glitch"].shape == ref.shape
    assert np.corrcoef(tpl["glitch"], ref)[0, 1] > 0.999
    inv03 = read_inventory(str(RESPONSE_DIR / "XB.ELYSE.03.BH_2019-05-18_2019-06-01.xml"))
    tpl03 = templates_from_inventory(inv03, "XB.ELYSE.03.BHU", "2019-05-22T23:30:00")
    assert tpl03["glitch"].size == template_times(10.0, 60.0).size

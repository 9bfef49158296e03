"""The hybrid's scattering residual keeps the record's offset, drift and long-period level (#18).

A raw record sits thousands of counts away from a prior recorded on another day; the residual used to pull each
piece towards the prior's level, leaving flat steps of 1000–5000 counts at the piece boundaries."""

from __future__ import annotations

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime
from scipy.signal import butter, sosfiltfilt

from unmix.separation.hybrid import HybridSeparator
from unmix.separation.solver import detrended, separate_signals, trend

FS, N, PIECE = 20.0, 6144, 512


def _noise(rng: np.random.Generator, n: int, std: float) -> np.ndarray:
    x = sosfiltfilt(butter(2, [0.1, 3.0], btype="band", fs=FS, output="sos"), rng.standard_normal(n))
    return std * x / x.std()


def _gusts(rng: np.random.Generator, n: int, std: float) -> np.ndarray:
    """Band-limited noise (0.2–1 Hz) under skewed envelopes: no mean, no long period."""
    t = np.arange(n) / FS
    out = np.zeros(n)
    for t0 in (40.0, 130.0, 200.0):
        u = np.clip(t - t0, 0, None)
        env = (u / 20.0) ** 2 * np.exp(2 - u / 10.0)
        c = sosfiltfilt(butter(4, [0.2, 1.0], btype="band", fs=FS, output="sos"), rng.standard_normal(n))
        out += 4.0 * std * env * c / c.std()
    return out


@pytest.fixture(scope="module")
def separated():
    rng = np.random.default_rng(3)
    std = 300.0
    t = np.arange(N)
    truth = _noise(rng, N, std) + 8000.0 + 0.3 * t  # offset and drift of a raw record, in counts
    prior = np.stack([_noise(rng, 1024, std) - 3000.0 for _ in range(8)])[:, None]  # another day's level
    tr = Trace(truth + _gusts(rng, N, std), header={"station": "ELYSE", "channel": "BHU", "sampling_rate": FS,
                                                   "starttime": UTCDateTime(2019, 7, 26)})
    sep = HybridSeparator.from_options(prior=prior, piece=PIECE, J=5, max_iter=20, use_template_detector=False,
                                      residual="auto")
    return truth, std, sep.separate(Stream([tr]))


def test_the_residual_acts_and_the_background_keeps_the_long_period_level(separated):
    truth, std, res = separated
    assert "scattering residual (auto)" in res.info["mode"] or res.info["mode"].startswith("scatcov fallback")
    assert np.abs(res.removed["residual"][0].data).max() > 0.3 * std  # the gusts are being separated
    err = res.background[0].data - truth
    level = np.convolve(err, np.ones(PIECE) / PIECE, mode="valid")  # the long-period level of the error
    assert np.abs(level).max() < 0.5 * std, f"long-period error {np.abs(level).max():.0f} counts"


def test_no_steps_at_piece_boundaries(separated):
    truth, std, res = separated
    err = res.background[0].data - truth
    w = 256  # 12.8 s: what is left of the gusts (periods under 5 s) averages out, a step does not
    local = np.convolve(err, np.ones(w) / w, mode="valid")
    jumps = np.abs(local[w:] - local[:-w])  # mean of the next w samples minus the previous w, everywhere
    assert jumps.max() < 0.5 * std, f"largest step {jumps.max():.0f} counts (noise std {std:.0f})"


def test_detrend_and_trend_restore_are_exact_on_a_pure_trend():
    t = np.arange(5000, dtype=float)
    quad = 1e4 - 3.0 * t + 2e-4 * t**2
    for mode in ("mean", "linear", "spline"):
        part, tr = detrended(quad, mode)
        np.testing.assert_array_equal(part + tr, quad)
    np.testing.assert_allclose(trend(quad, "spline"), quad, atol=1e-6 * np.abs(quad).max())
    # a separation of a pure trend gives it back whole, with or without iterations
    rng = np.random.default_rng(0)
    prior = rng.standard_normal((6, 1, 1024))
    (bg,), _ = separate_signals([quad], [0], prior, piece=1024, max_iter=0, J=5, device="cpu", detrend="spline")
    np.testing.assert_allclose(bg, quad, atol=1e-6 * np.abs(quad).max())
    # iterations act on what is left after the trend (prior scale 1), never on the trend (scale 1e4)
    (bg,), _ = separate_signals([quad], [0], prior, piece=1024, max_iter=2, J=5, device="cpu", detrend="spline",
                                hold_mean=True)
    assert np.abs(bg - quad).max() < 5.0
    with pytest.raises(Exception, match="detrend"):
        separate_signals([quad], [0], prior, detrend="cubic")

"""Separation metrics against a known truth (synthetic cases) and against an expert reference (real data).

Every comparison is made up to a constant offset (the mean of the error is removed): an offset carries no seismic
information, and a high-pass necessarily removes the mean.
"""

from __future__ import annotations

import numpy as np


def _centred(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean() if x.size else x


def snr_db(truth: np.ndarray, estimate: np.ndarray) -> float:
    """10·log10(‖truth‖² / ‖estimate − truth‖²), the error taken up to a constant offset (dB)."""
    t = _centred(truth)
    err = _centred(np.asarray(estimate, dtype=np.float64) - np.asarray(truth, dtype=np.float64))
    num, den = float(np.sum(t * t)), float(np.sum(err * err))
    if num == 0.0:
        return float("nan")
    return float("inf") if den == 0.0 else 10.0 * np.log10(num / den)


def correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation, or None when either series is constant (e.g. a method removed nothing)."""
    a, b = _centred(a), _centred(b)
    na, nb = float(np.sqrt(np.sum(a * a))), float(np.sqrt(np.sum(b * b)))
    if a.size < 2 or na == 0.0 or nb == 0.0:
        return None
    return float(np.sum(a * b) / (na * nb))


def separation_metrics(mixture: np.ndarray, truth_background: np.ndarray, background: np.ndarray) -> dict:
    """SNR of the input and of the recovered background against the true background (dB), the gain, and the
    correlation of the removed part (mixture − background) with the true removed part (mixture − truth)."""
    mixture = np.asarray(mixture, dtype=np.float64)
    snr_in = snr_db(truth_background, mixture)
    snr_out = snr_db(truth_background, background)
    return {
        "snr_in_db": snr_in,
        "snr_out_db": snr_out,
        "gain_db": snr_out - snr_in,
        "corr_removed": correlation(mixture - background, mixture - truth_background),
    }


def reference_metrics(raw: np.ndarray, reference: np.ndarray, background: np.ndarray, tolerance: float = 1e-2
                      ) -> dict:
    """Compare what a method removed (raw − background) with what a reference removed (raw − reference).

    Inside = samples the reference changed by more than ``tolerance`` counts. Reported: correlation of the removed
    parts inside and over everything; the RMS of their difference inside relative to the RMS of the reference's
    removed part there, and outside relative to the RMS of the (centred) raw record there.
    """
    raw = np.asarray(raw, dtype=np.float64)
    ref_removed = raw - np.asarray(reference, dtype=np.float64)
    removed = raw - np.asarray(background, dtype=np.float64)
    inside = np.abs(ref_removed) > tolerance
    diff = _centred(removed - ref_removed)

    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(x * x))) if x.size else float("nan")

    out_raw = _centred(raw[~inside])
    return {
        "inside_fraction": float(inside.mean()),
        "corr_inside": correlation(removed[inside], ref_removed[inside]) if inside.any() else None,
        "corr_all": correlation(removed, ref_removed),
        "rel_rms_inside": rms(diff[inside]) / rms(ref_removed[inside]) if inside.any() else None,
        "rel_rms_outside": rms(diff[~inside]) / rms(out_raw) if (~inside).any() and rms(out_raw) > 0 else None,
    }


#: The band around 1 Hz in which a marsquake's survival is measured (Hz).
QUAKE_BAND = (0.5, 2.0)


def quake_removed(removed: np.ndarray, quake: np.ndarray, sampling_rate: float,
                  band: tuple[float, float] = QUAKE_BAND) -> float | None:
    """Share of a quake a method removed, in ``band``: the least-squares coefficient of the band-passed quake in the
    band-passed removed part (0: the quake is kept whole; 1: removed whole), over the samples where the quake is.

    A removed part unrelated to the quake (glitches) does not count; a removed part that takes away a share ``a`` of
    the quake gives ``a``. None when the quake has no energy in the band.
    """
    from scipy.signal import butter, sosfiltfilt

    sos = butter(4, band, btype="bandpass", fs=sampling_rate, output="sos")
    q = sosfiltfilt(sos, np.asarray(quake, dtype=np.float64))
    r = sosfiltfilt(sos, np.asarray(removed, dtype=np.float64))
    where = np.asarray(quake) != 0
    energy = float(np.sum(q[where] ** 2))
    if energy == 0.0:
        return None
    return float(np.sum(r[where] * q[where]) / energy)

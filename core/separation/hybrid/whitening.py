"""Coloured-noise weighting: the background spectrum's whitening gain, zero-phase whitening and the robust local
noise level of the whitened record."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter
from scipy.signal import welch

from unmix.instrument import Paz
from unmix.separation.hybrid.config import PRE, DetectionConfig, TemplateConfig
from unmix.separation.hybrid.templates import Templates, Whitened, next_pow2


def whitener(x: np.ndarray, fs: float, snippets: np.ndarray | None, segment: int, max_frequency: float | None,
             band_limit: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies and zero-phase whitening gain ``1/sqrt(PSD)``: Welch spectrum of the prior snippets or a
    median Welch spectrum of the record (robust to sparse glitches); no weight on the mean; faded out above
    ``max_frequency`` when ``band_limit``. Data and templates interpolate the same gain onto their FFT grids."""
    if snippets is not None and snippets.shape[-1] >= 64:
        seg = min(segment, snippets.shape[-1])
        f, p = welch(snippets, fs, nperseg=seg, detrend="constant")
        p = p.mean(0)
    else:
        seg = min(segment, x.size)
        f, p = welch(x, fs, nperseg=seg, detrend="constant", average="median")
    p = np.maximum(p, 1e-12 * max(float(p.max()), 1e-300))
    gain = 1.0 / np.sqrt(p)
    gain[0] = 0.0  # no weight on the mean (offsets carry no information)
    if band_limit and max_frequency is not None:  # real glitches deviate from the model at high frequency
        x_ = np.clip((f - max_frequency) / max_frequency, 0.0, 1.0)
        gain = gain * 0.5 * (1.0 + np.cos(np.pi * x_))
    return f, gain / max(float(gain.max()), 1e-300)


def whiten(x: np.ndarray, gain: tuple[np.ndarray, np.ndarray], pad: int) -> np.ndarray:
    """Zero-phase filtering of ``x`` by the whitening gain (reflective padding at the ends)."""
    n = x.size
    p = min(pad, n - 1)
    xp = np.concatenate([x[p:0:-1], x, x[-2 : -p - 2 : -1]]) if p > 0 else x
    nfft = next_pow2(xp.size + pad)
    g = np.interp(np.fft.rfftfreq(nfft, 1.0 / (2 * gain[0][-1])), *gain)
    y = np.fft.irfft(np.fft.rfft(xp, nfft) * g, nfft)
    return y[p : p + n]


def local_sigma(xw: np.ndarray, block: int, span: int) -> np.ndarray:
    """Robust local standard deviation, one value per sample: MAD of blocks of ``block`` samples, then a sliding
    median over ``span`` blocks (ignores the blocks a glitch occupies)."""
    n = xw.size
    nb = max(1, n // block)
    edges = np.linspace(0, n, nb + 1).astype(int)
    mad = np.array([np.median(np.abs(xw[a:b] - np.median(xw[a:b])))
                    for a, b in zip(edges[:-1], edges[1:], strict=True)])
    mad = median_filter(mad, size=min(span, nb) | 1, mode="nearest") * 1.4826
    mad = np.where(mad > 0, mad, max(float(mad.max()), 1e-300))
    centres = 0.5 * (edges[:-1] + edges[1:])
    return np.interp(np.arange(n), centres, mad)


def whiten_group(X: np.ndarray, fs: float, pazs: list[Paz], snippets: np.ndarray | None, tc: TemplateConfig,
                 dc: DetectionConfig, rise_times: tuple[float, ...] = (0.0,), band_limit: bool = True) -> Whitened:
    """Whitened components ``X`` ``(C, n)``, their local noise and templates (spectrum of the prior ``snippets``
    ``(R, C, T)`` with ``tc.spectrum == 'prior'``, else of the record)."""
    pad = tc.whiten_segment
    tpls, XW, SIG = [], [], []
    for c in range(X.shape[0]):
        snip = None if snippets is None or tc.spectrum == "record" else snippets[:, c]
        wh = whitener(X[c], fs, snip, tc.whiten_segment, tc.max_frequency, band_limit=band_limit)
        tpls.append(Templates(fs, pazs[c], wh, tc.template_duration, min(tc.template_duration, 20.0), PRE, pad,
                              rise_times=rise_times))
        xw = whiten(X[c], wh, pad)
        XW.append(xw)
        SIG.append(local_sigma(xw, max(64, int(dc.noise_block * fs)), dc.noise_span))
    return Whitened(np.stack(XW), np.stack(SIG), tpls, fs)

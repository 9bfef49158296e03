"""``--method hybrid``: physics-informed separation, a sparse sum of instrument templates plus a free residual.

The removed part of each trace is ``Σₖ aₖ,c·G_c(t − tₖ) + Σₖ sₖ,c·S_c(t − t'ₖ) + r_c`` where ``G`` is the channel's
output for a step in ground acceleration (glitch), ``S`` for a step in displacement (spike), the onsets ``tₖ`` are
continuous and shared by the components of one sensor (a tilt moves U, V and W at the same instant), the amplitudes
are free per component, and ``r`` is a residual that the scattering-covariance prior attributes to neither.

What makes it better than the classical template fit:

1. **Coloured-noise (generalised) least squares.** The background is far from white: most of its energy sits in the
   band where glitches live. Data and templates are whitened by the background spectrum (Welch spectrum of the prior
   snippets — the second-order part of the prior's statistics — or a robust median spectrum of the record itself),
   so onsets and amplitudes are estimated where the background is weak relative to the glitch.
2. **Three-component detection and model selection.** A glitch is kept when the generalised-likelihood statistic
   ``Σ_c (gain_c / σ_c²)`` of a shared onset over all components, against the *local* whitened noise level
   ``σ_c`` (robust, sliding), exceeds ``threshold``; a component's amplitude is kept only if significant there.
   Candidates: peaks of that statistic, the template detector's detections
   (:class:`~unmix.baselines.template.TemplateDeglitcher`) and, with a cluster table, the strongest onset inside each
   window the model puts in a glitch cluster at the finest scale (tested against ``cluster_threshold``).
3. **Continuous onsets.** Onsets are refined jointly with the amplitudes by L-BFGS in PyTorch, the templates shifted
   by any real delay in the Fourier domain (exact for band-limited templates, differentiable).
4. **Scattering-covariance residual.** With prior snippets, the template-cleaned record is compared with the prior
   piece by piece (the background term of the published loss: whitened distance of its scattering covariances to the
   snippets'); where it departs from them by more than ``outlier_factor`` × the snippets' own largest value (e.g. an
   atmospheric burst that no template explains), that span is separated by the published scattering-covariance
   loss (:func:`~unmix.separation.solver.separate_signals`) and the residual ``r`` is what it removes, shrunk by
   ``residual_weight`` λ (an L2 penalty on r in closed form, ``r = r̂ / (1 + λ)``) and faded in and out at the span
   edges (``residual='auto'``); templates fade out over such spans (a record that the templates leave unlike the
   prior is one where their model is not trusted either). ``residual='glitches'`` instead separates the
   neighbourhood of every accepted glitch (to take what the templates miss; measured to remove background too on
   exact instrument steps, so not the default); ``'none'`` keeps templates only. Where no template is accepted at
   all the record is handed to the scattering separation unchanged (``fallback='scatcov'``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from obspy import Inventory, Stream, Trace
from scipy.ndimage import median_filter
from scipy.signal import find_peaks, welch

from unmix import __version__
from unmix.errors import ConfigError, DataError
from unmix.instrument import VBB_PAZ, Paz, antialias_window, paz_from_inventory, step_response_spectrum
from unmix.jobs import CancelToken, Progress, no_progress, sub_progress
from unmix.separation.result import SeparationResult, checked_signals, component_letter, register_method

FALLBACKS = ("scatcov", "none")
RESIDUALS = ("auto", "glitches", "none")
_OVERSAMPLE = 16
RISE_TIMES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)


def _next_pow2(n: int) -> int:
    return int(2 ** np.ceil(np.log2(max(n, 2))))


class _Templates:
    """Glitch and spike templates of one channel, plain and whitened, at any real onset (Fourier-domain shifts).

    A template placed at integer base ``i`` with shift ``δ`` (seconds) covers trace samples
    ``[i − pre_n − pad, i − pre_n − pad + length)`` and has its onset at ``i/fs + δ``; ``pad`` extra samples either
    side hold the whitened template's support.
    """

    def __init__(self, fs: float, paz: Paz, whitener: tuple[np.ndarray, np.ndarray], duration: float,
                 spike_duration: float, pre: float, pad: int, antialias: float = 0.8,
                 rise_times: tuple[float, ...] = (0.0,)) -> None:
        self.fs, self.pre, self.pad = fs, pre, pad
        self.pre_n = int(round(pre * fs))
        self.length = {"glitch": int(round((pre + duration) * fs)) + 2 * pad,
                       "spike": int(round((pre + spike_duration) * fs)) + 2 * pad}
        self.nfft = _next_pow2(self.length["glitch"] + int(200.0 * fs) + 2 * pad)
        self.freqs = np.fft.rfftfreq(self.nfft, 1.0 / fs)
        wgain = np.interp(self.freqs, *whitener)
        self.spec: dict[tuple[str, bool, float], torch.Tensor] = {}
        for kind in ("glitch", "spike"):
            base = step_response_spectrum(kind, self.freqs, paz) * antialias_window(self.freqs, fs, antialias)
            # a glitch's tilt need not be instantaneous: a step spread evenly over τ seconds, centred on the onset
            for tau in rise_times if kind == "glitch" else (0.0,):
                raw = base * np.sinc(self.freqs * tau)
                fine = np.fft.irfft(raw * np.exp(-2j * np.pi * self.freqs * 5.0), self.nfft * _OVERSAMPLE)
                raw = raw / (fine[int(np.argmax(np.abs(fine)))] * _OVERSAMPLE)  # unit signed peak, continuous
                for white in (False, True):
                    self.spec[kind, white, float(tau)] = torch.as_tensor(raw * wgain if white else raw,
                                                                         dtype=torch.complex128)
        self._f = torch.as_tensor(self.freqs, dtype=torch.float64)
        self._delay0 = (self.pre_n + pad) / fs

    def waves(self, kind: str, shifts: torch.Tensor | np.ndarray, white: bool, rise: float = 0.0) -> torch.Tensor:
        """(len(shifts), length) templates with onset ``pre_n + pad + shift·fs`` samples after their first sample
        (glitches: rise time ``rise`` s, one of the ``rise_times`` given at construction)."""
        s = torch.as_tensor(shifts, dtype=torch.float64).reshape(-1, 1)
        phase = torch.exp(-2j * np.pi * self._f * (self._delay0 + s))
        return torch.fft.irfft(self.spec[kind, white, float(rise)] * phase, self.nfft)[:, : self.length[kind]]

    def start(self, base: int) -> int:
        return base - self.pre_n - self.pad


def _place(out: np.ndarray, wave: np.ndarray, start: int, scale: float = 1.0) -> None:
    lo, hi = max(start, 0), min(start + wave.size, out.size)
    if hi > lo:
        out[lo:hi] += scale * wave[lo - start : hi - start]


def _cut(x: np.ndarray, start: int, length: int) -> np.ndarray:
    """``x[start:start+length]`` with zeros outside ``x``."""
    out = np.zeros(length)
    lo, hi = max(start, 0), min(start + length, x.size)
    if hi > lo:
        out[lo - start : hi - start] = x[lo:hi]
    return out


@register_method("hybrid")
class HybridSeparator:
    """Templates (glitches, spikes) + scattering-covariance residual; see the module docstring.

    Prior (optional, as :class:`~unmix.separation.scatcov.ScatCovSeparator`): ``prior`` snippets ``(R, C, T)`` or a
    cluster ``table`` with background ``clusters`` at ``scale``; it gives the whitening spectrum and the residual /
    fallback separation. Without it the spectrum comes from the record and there is no residual. ``glitch_clusters``
    (with ``table``): clusters whose windows at the finest scale seed extra candidates.

    Templates: ``inventory`` (StationXML path or ObsPy Inventory; default the InSight VBB poles/zeros ``paz``).
    Detection/selection: ``threshold`` (χ² of a shared onset over the components, local whitened noise units),
    ``component_threshold`` (per-component χ² to keep an amplitude), ``spike_threshold``, ``search`` (s, onset search
    either side of a candidate), ``min_separation`` (s), ``min_variance_reduction`` over ``vr_window`` s (of all the
    energy, or with ``vr_excess`` of the energy above the local noise). Glitch ``rise_times`` (s; the tilt spread
    over τ, chosen per glitch when it lowers χ² by ``rise_threshold``; ``'auto'``: :data:`RISE_TIMES` with
    ``residual='none'``, instantaneous steps otherwise). Onsets: ``subsample`` grid steps per sample, then
    ``refine_iter`` L-BFGS iterations (0: grid only). Residual: ``residual`` (``'auto'``, ``'glitches'``,
    ``'none'``), ``outlier_factor``, ``record_share`` (with ``'auto'``: when at least this share of a trace's
    pieces is flagged, the whole trace goes to the scattering separation), ``residual_weight`` λ,
    ``residual_margin`` (s), and the solver options ``piece``, ``max_iter``, ``tol``, ``J``, ``dtype``, ``device``,
    ``n_prior``. ``fallback``: ``'scatcov'`` or
    ``'none'`` for a record in which no template is accepted.
    """

    name = "hybrid"

    def __init__(
        self,
        prior: np.ndarray | None = None,
        table: Any = None,
        clusters: int | list[int] | None = None,
        scale: int | None = None,
        glitch_clusters: int | list[int] | None = None,
        n_prior: int = 20,
        components: str | None = None,
        inventory: Inventory | str | Path | None = None,
        paz: Paz = VBB_PAZ,
        threshold: float = 300.0,
        component_threshold: float = 9.0,
        cluster_threshold: float = 100.0,
        fit_spikes: bool = True,
        spike_threshold: float = 100.0,
        spike_search: float = 0.5,
        search: float = 2.0,
        max_group: int = 4,
        min_separation: float = 1.0,
        template_duration: float = 60.0,
        rise_times: str | tuple[float, ...] | None = "auto",
        rise_threshold: float = 150.0,
        subsample: int = 8,
        refine_iter: int = 30,
        use_template_detector: bool = True,
        whiten_segment: int = 1024,
        spectrum: str = "record",
        max_frequency: float | None = 1.0,
        min_variance_reduction: float = 0.3,
        vr_window: float = 30.0,
        vr_excess: bool = False,
        noise_block: float = 30.0,
        noise_span: int = 11,
        residual: str | bool = "auto",
        outlier_factor: float = 2.0,
        record_share: float = 1.0,
        residual_weight: float = 0.0,
        residual_margin: float = 20.0,
        fallback: str = "scatcov",
        piece: int = 1024,
        max_iter: int = 100,
        tol: float = 0.1,
        J: int = 8,
        dtype: str = "float64",
        device: str = "auto",
        feature_config: Any = None,
    ) -> None:
        if prior is not None and table is not None:
            raise ConfigError("give either `prior` or `table`, not both")
        if table is not None and (clusters is None or scale is None) and glitch_clusters is None:
            raise ConfigError("with a cluster table, give background `clusters` and `scale` and/or `glitch_clusters`")
        if prior is not None:
            prior = np.asarray(prior, dtype=np.float64)
            prior = prior[:, None] if prior.ndim == 2 else prior
            if prior.ndim != 3 or prior.shape[0] < 2:
                raise ConfigError(f"prior must be an array (R >= 2, C, T), got shape {prior.shape}")
        if spectrum not in ("record", "prior"):
            raise ConfigError(f"spectrum must be 'record' or 'prior', got {spectrum!r}")
        if fallback not in FALLBACKS:
            raise ConfigError(f"fallback must be one of {', '.join(FALLBACKS)}, got {fallback!r}")
        if min(threshold, component_threshold, spike_threshold, cluster_threshold) <= 0:
            raise ConfigError("thresholds must be > 0")
        if subsample < 1 or search < 0 or refine_iter < 0 or whiten_segment < 64 or template_duration <= 0:
            raise ConfigError("need subsample >= 1, search >= 0, refine_iter >= 0, whiten_segment >= 64 and "
                              "template_duration > 0")
        if residual_weight < 0 or residual_margin < 0:
            raise ConfigError("residual_weight and residual_margin must be >= 0")
        if device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
        if isinstance(inventory, str | Path):
            from unmix.io.response import read_inventory

            self.inventory_label = str(inventory)
            inventory = read_inventory(inventory)
        else:
            self.inventory_label = "inventory" if inventory is not None else "InSight VBB poles/zeros (default)"
        self.prior, self.table, self.clusters, self.scale = prior, table, clusters, scale
        self.glitch_clusters = glitch_clusters
        self.n_prior, self.components, self.inventory, self.paz = int(n_prior), components, inventory, paz
        self.threshold, self.component_threshold = float(threshold), float(component_threshold)
        self.cluster_threshold = float(cluster_threshold)
        self.fit_spikes, self.spike_threshold, self.spike_search = bool(fit_spikes), float(spike_threshold), float(
            spike_search)
        self.max_group = max(1, int(max_group))
        self.search, self.min_separation, self.template_duration = float(search), float(min_separation), float(
            template_duration)
        self.subsample, self.refine_iter = int(subsample), int(refine_iter)
        self.residual = {True: "glitches", False: "none"}.get(residual, residual)
        if isinstance(rise_times, str):
            if rise_times != "auto":
                raise ConfigError(f"rise_times must be 'auto' or a list of seconds, got {rise_times!r}")
            # with a scattering residual, a slow 'glitch' competes with it for smooth transients (wind gusts)
            rise_times = RISE_TIMES if self.residual == "none" else None
        rt = (0.0,) if not rise_times else tuple(sorted({0.0, *(float(t) for t in rise_times)}))
        if min(rt) < 0 or rise_threshold < 0:
            raise ConfigError("rise times and rise_threshold must be >= 0")
        self.rise_times, self.rise_threshold = rt, float(rise_threshold)
        self.use_template_detector, self.whiten_segment = bool(use_template_detector), int(whiten_segment)
        self.noise_block, self.noise_span = float(noise_block), int(noise_span)
        self.spectrum = spectrum
        self.max_frequency = None if max_frequency is None else float(max_frequency)
        self.min_variance_reduction, self.vr_window = float(min_variance_reduction), float(vr_window)
        self.vr_excess = bool(vr_excess)
        if self.residual not in RESIDUALS:
            raise ConfigError(f"residual must be one of {', '.join(RESIDUALS)}, got {residual!r}")
        self.outlier_factor = float(outlier_factor)
        if not 0.0 < record_share <= 1.0:
            raise ConfigError(f"record_share must be in (0, 1], got {record_share}")
        self.record_share = float(record_share)
        self.residual_weight, self.residual_margin = float(residual_weight), float(residual_margin)
        self.fallback, self.piece, self.max_iter, self.tol, self.J = fallback, int(piece), int(max_iter), float(
            tol), int(J)
        self.dtype, self.device, self.feature_config = dtype, device, feature_config
        self.pre = 2.0

    def get_params(self) -> dict:
        """The configuration (without arrays or tables), for provenance."""
        keys = ("clusters", "scale", "glitch_clusters", "n_prior", "components", "threshold", "component_threshold",
                "cluster_threshold", "fit_spikes", "spike_threshold", "spike_search", "search", "max_group",
                "min_separation", "template_duration", "rise_times", "rise_threshold", "subsample", "refine_iter",
                "use_template_detector", "whiten_segment",
                "noise_block", "noise_span", "spectrum", "max_frequency", "min_variance_reduction", "vr_window",
                "vr_excess",
                "residual", "outlier_factor", "record_share", "residual_weight", "residual_margin", "fallback",
                "piece", "max_iter", "tol", "J", "dtype", "device")
        return {"response": self.inventory_label, **{k: getattr(self, k) for k in keys}}

    # ------------------------------------------------------------------ helpers

    def _scatcov(self, **extra):
        from unmix.separation.scatcov import ScatCovSeparator

        opts = dict(prior=self.prior, table=self.table if self.prior is None else None, clusters=self.clusters,
                    scale=self.scale, n_prior=self.n_prior, components=self.components, piece=self.piece,
                    max_iter=self.max_iter, tol=self.tol, J=self.J, dtype=self.dtype, device=self.device,
                    feature_config=self.feature_config)
        opts.update(extra)
        return ScatCovSeparator(**opts)

    def _has_prior(self) -> bool:
        return self.prior is not None or (self.table is not None and self.clusters is not None
                                          and self.scale is not None)

    def _prior_array(self, stream: Stream, comps: str, progress: Progress, token: CancelToken | None
                     ) -> np.ndarray | None:
        if self.prior is not None:
            return self.prior
        if not self._has_prior():
            return None
        prior, _ = self._scatcov(removed_name="residual")._prior_for(stream, comps, progress, token)
        return prior

    def _paz(self, tr: Trace) -> Paz:
        if self.inventory is None:
            return self.paz
        return paz_from_inventory(self.inventory, tr.id, tr.stats.starttime)

    def _whitener(self, x: np.ndarray, fs: float, snippets: np.ndarray | None, band_limit: bool = True
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Frequencies and zero-phase whitening gain ``1/sqrt(PSD)``: Welch spectrum of the prior snippets or a
        median Welch spectrum of the record (robust to sparse glitches); no weight on the mean; faded out above
        ``max_frequency`` when ``band_limit``. Data and templates interpolate the same gain onto their FFT grids."""
        if snippets is not None and snippets.shape[-1] >= 64:
            seg = min(self.whiten_segment, snippets.shape[-1])
            f, p = welch(snippets, fs, nperseg=seg, detrend="constant")
            p = p.mean(0)
        else:
            seg = min(self.whiten_segment, x.size)
            f, p = welch(x, fs, nperseg=seg, detrend="constant", average="median")
        p = np.maximum(p, 1e-12 * max(float(p.max()), 1e-300))
        gain = 1.0 / np.sqrt(p)
        gain[0] = 0.0  # no weight on the mean (offsets carry no information)
        if band_limit and self.max_frequency is not None:  # real glitches deviate from the model at high frequency
            x_ = np.clip((f - self.max_frequency) / self.max_frequency, 0.0, 1.0)
            gain = gain * 0.5 * (1.0 + np.cos(np.pi * x_))
        return f, gain / max(float(gain.max()), 1e-300)

    @staticmethod
    def _whiten(x: np.ndarray, whitener: tuple[np.ndarray, np.ndarray], pad: int) -> np.ndarray:
        """Zero-phase filtering of ``x`` by the whitening gain (reflective padding at the ends)."""
        n = x.size
        p = min(pad, n - 1)
        xp = np.concatenate([x[p:0:-1], x, x[-2 : -p - 2 : -1]]) if p > 0 else x
        nfft = _next_pow2(xp.size + pad)
        g = np.interp(np.fft.rfftfreq(nfft, 1.0 / (2 * whitener[0][-1])), *whitener)
        y = np.fft.irfft(np.fft.rfft(xp, nfft) * g, nfft)
        return y[p : p + n]

    @staticmethod
    def _local_sigma(xw: np.ndarray, block: int, span: int) -> np.ndarray:
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

    # ------------------------------------------------------------------ the template part

    def _fit_group(self, X: np.ndarray, fs: float, pazs: list[Paz], snippets: np.ndarray | None,
                   extra: list[tuple[float, float, float]], token: CancelToken | None
                   ) -> tuple[np.ndarray, np.ndarray, list[dict]]:
        """Glitch and spike series ``(C, n)`` of time-aligned components ``X`` and the accepted glitches."""
        C, n = X.shape
        pad = self.whiten_segment
        tpls, XW, SIG = [], [], []
        for c in range(C):
            wh = self._whitener(X[c], fs, None if snippets is None or self.spectrum == "record" else snippets[:, c])
            tpls.append(_Templates(fs, pazs[c], wh, self.template_duration, min(self.template_duration, 20.0),
                                   self.pre, pad, rise_times=self.rise_times))
            xw = self._whiten(X[c], wh, pad)
            XW.append(xw)
            SIG.append(self._local_sigma(xw, max(64, int(self.noise_block * fs)), self.noise_span))
        XW, SIG = np.stack(XW), np.stack(SIG)
        glitches, spikes = np.zeros((C, n)), np.zeros((C, n))
        L = tpls[0].length["glitch"]
        if n < L // 3:
            return glitches, spikes, []
        # detection statistic: shared onset, free amplitudes, local noise units
        w0 = [t.waves("glitch", [0.0], True)[0].numpy() for t in tpls]
        off = tpls[0].pre_n + pad
        stat = np.zeros(n)
        norms = [float(w @ w) for w in w0]
        for c in range(C):
            corr = np.correlate(np.concatenate([np.zeros(off), XW[c], np.zeros(L)]), w0[c], mode="valid")[:n]
            stat += corr**2 / (norms[c] * SIG[c] ** 2)
        dist = max(1, int(self.min_separation * fs))
        peaks, _ = find_peaks(stat, height=self.threshold, distance=dist)
        cands = [(float(p), self.threshold) for p in peaks]
        for lo, hi, thr in extra:  # (first sample, last sample, threshold): the strongest onset inside
            lo, hi = max(0, int(np.floor(lo))), min(n, int(np.ceil(hi)) + 1)
            if hi > lo:
                cands.append((float(lo + int(np.argmax(stat[lo:hi]))), float(thr)))
        cands.sort()
        merged: list[tuple[float, float]] = []
        for p, thr in cands:
            if merged and p - merged[-1][0] < dist:
                if stat[int(p)] > stat[int(merged[-1][0])]:
                    merged[-1] = (p, min(thr, merged[-1][1]))
                else:
                    merged[-1] = (merged[-1][0], min(thr, merged[-1][1]))
            else:
                merged.append((p, thr))
        if not merged:
            return glitches, spikes, []
        # groups of candidates whose whitened supports overlap: fitted jointly
        groups: list[list[tuple[float, float]]] = []
        for p, thr in merged:
            if groups and p - groups[-1][-1][0] < L and len(groups[-1]) < self.max_group:
                groups[-1].append((p, thr))
            else:
                groups.append([(p, thr)])
        banks = [t.waves("glitch", np.arange(self.subsample) / self.subsample / fs, True).numpy() for t in tpls]
        accepted: list[tuple[float, np.ndarray]] = []
        for grp in groups:
            if token is not None:
                token.check()
            accepted += self._select(XW, SIG, banks, tpls, grp, fs, n)
        if not accepted:
            return glitches, spikes, []
        positions = np.array([p for p, _ in accepted])
        masks = np.stack([m for _, m in accepted])
        positions, _ = self._refine(XW, SIG, tpls, positions, masks, fs)
        none = np.full(len(positions), np.nan)
        rises = self._rise_times(XW, SIG, tpls, positions, masks, fs)
        amps, _ = self._amplitudes(XW, SIG, tpls, positions, masks, none, fs, rises)
        for k, p in enumerate(positions):
            base = int(np.floor(p))
            for c in range(C):
                if amps[k, c] != 0.0:
                    _place(glitches[c], tpls[c].waves("glitch", [(p - base) / fs], False, rises[k])[0].numpy(),
                           tpls[c].start(base), amps[k, c])
        # spikes (a few samples long: all frequencies matter) on the full-band whitened rest, near each onset
        spike_pos, samps = none, np.zeros_like(amps)
        if self.fit_spikes:
            tpl_s, XS, SS = [], [], []
            for c in range(C):
                rest = X[c] - glitches[c]
                wh = self._whitener(rest, fs, None if snippets is None or self.spectrum == "record"
                                     else snippets[:, c], band_limit=False)
                tpl_s.append(_Templates(fs, pazs[c], wh, self.template_duration, min(self.template_duration, 20.0),
                                        self.pre, pad))
                xs = self._whiten(rest, wh, pad)
                XS.append(xs)
                SS.append(self._local_sigma(xs, max(64, int(self.noise_block * fs)), self.noise_span))
            XS, SS = np.stack(XS), np.stack(SS)
            spike_pos = self._spikes(XS, SS, tpl_s, positions, amps, np.zeros_like(masks), fs)
            if np.isfinite(spike_pos).any():
                _, samps = self._amplitudes(XS, SS, tpl_s, positions, np.zeros_like(masks), spike_pos, fs)
        catalogue = []
        for k, p in enumerate(positions):
            entry = {"onset_sample": float(p), "amplitudes": [float(a) for a in amps[k]], "rise_time": float(rises[k]),
                     "spike_sample": None, "spike_amplitudes": None}
            if np.isfinite(spike_pos[k]):
                sb = int(np.floor(spike_pos[k]))
                for c in range(C):
                    if samps[k, c] != 0.0:
                        _place(spikes[c], tpls[c].waves("spike", [(spike_pos[k] - sb) / fs], False)[0].numpy(),
                               tpls[c].start(sb), samps[k, c])
                entry["spike_sample"] = float(spike_pos[k])
                entry["spike_amplitudes"] = [float(a) for a in samps[k]]
            catalogue.append(entry)
        return glitches, spikes, catalogue

    @staticmethod
    def _columns(bank: np.ndarray, positions: np.ndarray, start: int, width: int, pre: int) -> np.ndarray:
        """Whitened template columns ``(len(positions), width)`` on the window starting at ``start``."""
        m, length = bank.shape
        out = np.zeros((len(positions), width))
        for k, p in enumerate(positions):
            i = int(np.floor(p))
            j = int(round((p - i) * m))
            if j == m:
                i, j = i + 1, 0
            s = i - pre - start
            lo, hi = max(s, 0), min(s + length, width)
            if hi > lo:
                out[k, lo:hi] = bank[j, lo - s : hi - s]
        return out

    def _window(self, positions, pre: int, length: int, n: int, fs: float) -> tuple[int, int]:
        a = int(np.floor(min(positions))) - pre - int(np.ceil(self.search * fs)) - 1
        b = int(np.ceil(max(positions))) - pre + length + int(np.ceil(self.search * fs)) + 1
        return max(a, 0), min(b, n)

    def _gains(self, XW, SIG, banks, positions, a, b, pre, core: tuple[int, int] | None = None
               ) -> tuple[np.ndarray, float]:
        """Per member and component: χ² increase when that member is dropped from the joint fit ``(K, C)``; and the
        fraction of the whitened energy on the ``core`` samples ``[c0, c1)`` that the joint fit explains."""
        C = XW.shape[0]
        K = len(positions)
        out = np.zeros((K, C))
        c0, c1 = (a, b) if core is None else (max(core[0], a), min(core[1], b))
        num = den = 0.0
        for c in range(C):
            w = 1.0 / SIG[c, a:b]
            A = (self._columns(banks[c], positions, a, b - a, pre) * w).T
            d = XW[c, a:b] * w
            coef, *_ = np.linalg.lstsq(A, d, rcond=None)
            res = d - A @ coef
            full = float(np.sum(res**2))
            num += float(np.sum(res[c0 - a : c1 - a] ** 2))
            den += float(np.sum(d[c0 - a : c1 - a] ** 2))
            for k in range(K):
                if K == 1:
                    out[k, c] = float(d @ d) - full
                else:
                    Ak = np.delete(A, k, axis=1)
                    ck, *_ = np.linalg.lstsq(Ak, d, rcond=None)
                    out[k, c] = float(np.sum((d - Ak @ ck) ** 2)) - full
        if den <= 0:
            return out, 0.0
        if not self.vr_excess:
            return out, 1.0 - num / den
        # share of the energy *above the local noise level* that the fit explains: a small glitch in noise explains
        # all of it, a quake onset or coda only part (the data are in local-noise units: noise energy = samples)
        noise = float(C * (c1 - c0))
        return out, (den - num) / max(den - noise, den - num, 1e-300)

    def _select(self, XW, SIG, banks, tpls, grp, fs, n) -> list[tuple[float, np.ndarray]]:
        """Onset grid search (shared over components) and backward elimination of one candidate group."""
        pre = tpls[0].pre_n + tpls[0].pad
        length = banks[0].shape[1]
        positions = [p for p, _ in grp]
        thresholds = [t for _, t in grp]
        half = self.search * fs
        m = self.subsample
        for sweep in range(2 if len(positions) > 1 else 1):
            for i in range(len(positions)):
                width = half if sweep == 0 else min(half, 2.0)
                coarse = np.arange(np.floor(positions[i] - width), np.ceil(positions[i] + width) + 1)
                best = self._best_onset(XW, SIG, banks, positions, i, coarse, pre, length, n, fs)
                positions[i] = self._best_onset(XW, SIG, banks, positions, i, best + np.arange(-m + 1, m) / m, pre,
                                                length, n, fs)
        while positions:
            a, b = self._window(positions, pre, length, n, fs)
            core = (int(min(positions)) - int(self.pre * fs), int(max(positions)) + int(self.vr_window * fs))
            gains, vr = self._gains(XW, SIG, banks, np.array(positions), a, b, pre, core)
            total = gains.sum(1)
            weakest = int(np.argmin(total / np.array(thresholds)))
            if total[weakest] < thresholds[weakest] or vr < self.min_variance_reduction:
                positions.pop(weakest)
                thresholds.pop(weakest)
                continue
            masks = gains >= self.component_threshold
            return [(p, mk) for p, mk in zip(positions, masks, strict=True)]
        return []

    def _best_onset(self, XW, SIG, banks, positions, i, trials, pre, length, n, fs) -> float:
        """The trial onset of member ``i`` that maximises the summed whitened LS fit given the other members."""
        near = length + 2 * self.search * fs
        others = [p for k, p in enumerate(positions) if k != i and abs(p - positions[i]) < near]
        a, b = self._window([*others, float(trials.min()), float(trials.max())], pre, length, n, fs)
        score = np.zeros(len(trials))
        for c in range(XW.shape[0]):
            w = 1.0 / SIG[c, a:b]
            d = XW[c, a:b] * w
            cols = self._columns(banks[c], trials, a, b - a, pre) * w
            if others:
                B = (self._columns(banks[c], np.array(others), a, b - a, pre) * w).T
                Q, _ = np.linalg.qr(B)
                d = d - Q @ (Q.T @ d)
                cols = cols - (cols @ Q) @ Q.T
            norm = np.einsum("ij,ij->i", cols, cols)
            score += np.where(norm > 1e-12, (cols @ d) ** 2 / np.maximum(norm, 1e-300), 0.0)
        return float(trials[int(np.argmax(score))])

    def _design(self, tpls, kind: str, positions: torch.Tensor, c: int, a: int, b: int,
                rises: np.ndarray | None = None) -> torch.Tensor:
        """Differentiable whitened columns ``(K, b − a)`` of templates at continuous onsets (trace samples)."""
        t = tpls[c]
        base = torch.floor(positions.detach())
        if rises is None or not np.any(rises):
            waves = t.waves(kind, (positions - base) / t.fs, True)
        else:  # one transform per distinct rise time
            parts = {float(r): np.flatnonzero(rises == r) for r in np.unique(rises)}
            waves = torch.zeros(len(positions), t.length[kind], dtype=torch.float64)
            for r, idx in parts.items():
                sel = torch.as_tensor(idx)
                waves = waves.index_copy(0, sel, t.waves(kind, (positions[sel] - base[sel]) / t.fs, True, r))
        cols = torch.zeros(len(positions), b - a, dtype=torch.float64)
        for k in range(len(positions)):
            s = t.start(int(base[k])) - a
            lo, hi = max(s, 0), min(s + waves.shape[1], b - a)
            if hi > lo:
                cols[k, lo:hi] = waves[k, lo - s : hi - s]
        return cols

    def _refine(self, XW, SIG, tpls, positions: np.ndarray, masks: np.ndarray, fs: float
                ) -> tuple[np.ndarray, np.ndarray]:
        """Continuous onsets by L-BFGS on the whitened least squares (amplitudes solved exactly at every step)."""
        order = np.argsort(positions)
        positions, masks = positions[order], masks[order]
        if self.refine_iter == 0:
            return positions, masks.astype(float)
        length = tpls[0].length["glitch"]
        pre = tpls[0].pre_n + tpls[0].pad
        n = XW.shape[1]
        groups = self._overlapping(positions, length)  # independent clusters of overlapping templates
        out = positions.copy()
        limit = max(1.0, 0.5 * self.search * fs / self.subsample)
        for grp in groups:
            p0 = torch.as_tensor(positions[grp], dtype=torch.float64)
            a, b = self._window(positions[grp], pre, length, n, fs)
            dd = [torch.as_tensor(XW[c, a:b] / SIG[c, a:b]) for c in range(XW.shape[0])]
            ww = [torch.as_tensor(1.0 / SIG[c, a:b]) for c in range(XW.shape[0])]
            out[grp] = self._refine_group(tpls, p0, torch.as_tensor(masks[grp], dtype=torch.float64), a, b, dd, ww,
                                          limit)
        return out, masks.astype(float)

    def _refine_group(self, tpls, p0: torch.Tensor, mk: torch.Tensor, a: int, b: int, dd: list[torch.Tensor],
                      ww: list[torch.Tensor], limit: float) -> np.ndarray:
        """L-BFGS on the onsets of one cluster (bounded to ±limit samples by a tanh map); amplitudes are the exact
        least-squares solution at every evaluation (variable projection)."""
        delta = torch.zeros(len(p0), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([delta], lr=1.0, max_iter=self.refine_iter, line_search_fn="strong_wolfe")
        eye = 1e-9 * torch.eye(len(p0), dtype=torch.float64)

        def closure():
            opt.zero_grad()
            pos = p0 + limit * torch.tanh(delta / limit)
            loss = torch.zeros((), dtype=torch.float64)
            for c in range(len(dd)):
                A = (self._design(tpls, "glitch", pos, c, a, b) * ww[c]).T * mk[:, c]
                coef = torch.linalg.solve(A.T @ A + eye, A.T @ dd[c])
                loss = loss + ((dd[c] - A @ coef) ** 2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        return (p0 + limit * torch.tanh(delta.detach() / limit)).numpy()

    def _spikes(self, XW, SIG, tpls, positions, amps, masks, fs) -> np.ndarray:
        """A spike onset near each glitch onset where it is significant (χ² over components), else NaN."""
        C = XW.shape[0]
        m = self.subsample
        sbank = [t.waves("spike", np.arange(m) / m / fs, True).numpy() for t in tpls]
        pre = tpls[0].pre_n + tpls[0].pad
        slen = tpls[0].length["spike"]
        glen = tpls[0].length["glitch"]
        gbank = [t.waves("glitch", np.arange(m) / m / fs, True).numpy() for t in tpls]
        n = XW.shape[1]
        out = np.full(len(positions), np.nan)
        for k, p in enumerate(positions):
            a, b = max(int(p) - pre - 2, 0), min(int(p) - pre + slen + 2, n)
            if b - a < 8:
                continue
            trials = p + np.arange(-self.spike_search * fs * m, self.spike_search * fs * m + 1) / m
            score = np.zeros(len(trials))
            for c in range(C):
                w = 1.0 / SIG[c, a:b]
                near = [q for q in positions if abs(q - p) < glen]
                B = (self._columns(gbank[c], np.array(near), a, b - a, pre) * w).T
                Q, _ = np.linalg.qr(B)
                d = XW[c, a:b] * w
                d = d - Q @ (Q.T @ d)
                cols = self._columns(sbank[c], trials, a, b - a, pre) * w
                cols = cols - (cols @ Q) @ Q.T
                norm = np.einsum("ij,ij->i", cols, cols)
                score += np.where(norm > 1e-12, (cols @ d) ** 2 / np.maximum(norm, 1e-300), 0.0)
            j = int(np.argmax(score))
            if score[j] >= self.spike_threshold:
                out[k] = trials[j]
        return out

    @staticmethod
    def _overlapping(positions: np.ndarray, length: int) -> list[list[int]]:
        """Indices of consecutive glitches whose templates overlap, grouped."""
        groups, cur = [], [0]
        for k in range(1, len(positions)):
            if positions[k] - positions[cur[-1]] < length:
                cur.append(k)
            else:
                groups.append(cur)
                cur = [k]
        groups.append(cur)
        return groups

    def _rise_times(self, XW, SIG, tpls, positions, masks, fs) -> np.ndarray:
        """Per glitch, the rise time (one for all components: one tilt) that best explains the whitened data jointly
        with its neighbours; kept only when it lowers χ² by at least ``rise_threshold`` against an instant step."""
        K = len(positions)
        rises = np.zeros(K)
        if len(self.rise_times) < 2:
            return rises
        C, n = XW.shape
        length = tpls[0].length["glitch"]
        pre = tpls[0].pre_n + tpls[0].pad
        for grp in self._overlapping(positions, length):
            a, b = self._window(positions[grp], pre, length, n, fs)
            w = [1.0 / SIG[c, a:b] for c in range(C)]
            d = [XW[c, a:b] * w[c] for c in range(C)]
            pos = torch.as_tensor(positions[grp])
            cols = {(c, tau): self._design(tpls, "glitch", pos, c, a, b, np.full(len(grp), tau)).numpy() * w[c]
                    for c in range(C) for tau in self.rise_times}
            row = {k: i for i, k in enumerate(grp)}

            def chi2(trial: np.ndarray, grp=grp, d=d, cols=cols, row=row) -> float:
                total = 0.0
                for c in range(C):
                    keep = [k for k in grp if masks[k, c] > 0]
                    if not keep:
                        total += float(d[c] @ d[c])
                        continue
                    A = np.stack([cols[c, float(trial[k])][row[k]] for k in keep], 1)
                    coef, *_ = np.linalg.lstsq(A, d[c], rcond=None)
                    r = d[c] - A @ coef
                    total += float(r @ r)
                return total

            for k in grp:  # one pass of coordinate descent, neighbours at their current choice
                best_tau, best = 0.0, None
                base = None
                for tau in self.rise_times:
                    trial = rises.copy()
                    trial[k] = tau
                    v = chi2(trial)
                    if tau == 0.0:
                        base = v
                    if best is None or v < best:
                        best_tau, best = tau, v
                if base is not None and base - best >= self.rise_threshold:
                    rises[k] = best_tau
        return rises

    def _amplitudes(self, XW, SIG, tpls, positions, masks, spike_pos, fs, rises: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Joint whitened least-squares amplitudes of all kept glitches and spikes, cluster by cluster."""
        C, n = XW.shape
        K = len(positions)
        amps, samps = np.zeros((K, C)), np.zeros((K, C))
        length = tpls[0].length["glitch"]
        pre = tpls[0].pre_n + tpls[0].pad
        rises = np.zeros(K) if rises is None else rises
        for grp in self._overlapping(positions, length):
            a, b = self._window(positions[grp], pre, length, n, fs)
            for c in range(C):
                keep = [k for k in grp if masks[k, c] > 0]
                sp = [k for k in grp if np.isfinite(spike_pos[k])]
                if not keep and not sp:
                    continue
                w = 1.0 / SIG[c, a:b]
                cols = []
                if keep:
                    cols.append(self._design(tpls, "glitch", torch.as_tensor(positions[keep]), c, a, b,
                                             rises[keep]).numpy())
                if sp:
                    cols.append(self._design(tpls, "spike", torch.as_tensor(spike_pos[sp]), c, a, b).numpy())
                A = (np.concatenate(cols) * w).T
                coef, *_ = np.linalg.lstsq(A, XW[c, a:b] * w, rcond=None)
                amps[keep, c] = coef[: len(keep)]
                samps[sp, c] = coef[len(keep) :]
        return amps, samps

    # ------------------------------------------------------------------ residual

    def _glitch_spans(self, catalogue: list[dict], fs: float) -> list[list[int]]:
        """Sample spans around accepted glitches (``residual_margin`` either side), merged."""
        marg = int(self.residual_margin * fs)
        iv: list[list[int]] = []
        for e in sorted(catalogue, key=lambda e: e["onset_sample"]):
            lo = int(e["onset_sample"]) - int(self.pre * fs) - marg
            hi = int(e["onset_sample"]) + int(self.template_duration * fs) + marg
            if iv and lo <= iv[-1][1]:
                iv[-1][1] = max(iv[-1][1], hi)
            else:
                iv.append([lo, hi])
        return iv

    def _outlier_spans(self, x: np.ndarray, snippets: np.ndarray, fs: float) -> tuple[list[list[int]], dict]:
        """Sample spans where the template-cleaned record ``x`` departs from the prior's statistics: pieces whose
        background term of the separation loss (mean whitened distance of their scattering covariances to the
        snippets') exceeds ``outlier_factor`` × the largest value of the snippets themselves; one piece of margin."""
        from unmix.separation.loss import SeparationLoss
        from unmix.separation.solver import _snippets_of_length

        L = int(min(self.piece, snippets.shape[-1], x.size))
        snip = _snippets_of_length(snippets[:, None], L)[:, 0]
        if L < 64 or snip.shape[0] < 2:
            return [], {}
        mu, sd = float(snip.mean()), float(snip.std()) or 1.0
        starts = sorted(set(list(range(0, x.size - L + 1, L)) + [x.size - L]))
        pieces = np.stack([(x[a : a + L] - mu) / sd for a in starts])
        sn = (snip - mu) / sd
        loss = SeparationLoss(sn[:2], sn, J=self.J, device="cpu")

        def score(phi: torch.Tensor) -> np.ndarray:
            d = phi[:, None] - loss.phi_prior[0][None]
            return ((d.real.square() + d.imag.square()) / (loss.s[0].square() + 1e-30)).mean((1, 2)).numpy()

        with torch.no_grad():
            sp = np.concatenate([score(loss.phi(torch.as_tensor(pieces[i : i + 64])))
                                 for i in range(0, len(pieces), 64)])
            limit = self.outlier_factor * float(score(loss.phi(torch.as_tensor(sn))).max())
        iv: list[list[int]] = []
        for a, v in zip(starts, sp, strict=True):
            if v > limit:
                lo, hi = a - L, a + 2 * L
                if iv and lo <= iv[-1][1]:
                    iv[-1][1] = max(iv[-1][1], hi)
                else:
                    iv.append([lo, hi])
        return iv, {"limit": limit, "flagged_pieces": int((sp > limit).sum()), "pieces": len(sp)}

    @staticmethod
    def _span_mask(spans: list[list[int]], n: int, ramp: int) -> np.ndarray:
        """1 inside the spans, 0 outside, sine-squared ramps of ``ramp`` samples inside each span's ends."""
        mask = np.zeros(n)
        for lo, hi in spans:
            lo, hi = max(lo, 0), min(hi, n)
            if hi <= lo:
                continue
            r = min(ramp, (hi - lo) // 2)
            w = np.ones(hi - lo)
            if r > 0:
                up = np.sin(0.5 * np.pi * (np.arange(r) + 0.5) / r) ** 2
                w[:r] = up if lo > 0 else 1.0
                w[hi - lo - r :] = np.minimum(w[hi - lo - r :], up[::-1] if hi < n else 1.0)
            mask[lo:hi] = np.maximum(mask[lo:hi], w)
        return mask

    def _residual(self, cleaned: list[np.ndarray], comps_idx: list[int], intervals: list[list[list[int]]],
                  prior: np.ndarray, fs_list: list[float], progress: Progress, token: CancelToken | None
                  ) -> tuple[list[np.ndarray], dict]:
        """Scattering-covariance residual on the given sample spans (tapered at their edges), zero elsewhere."""
        from unmix.scattering import resolve_device
        from unmix.separation.scatcov import _DTYPES
        from unmix.separation.solver import separate_signals

        L = int(min(self.piece, prior.shape[2]))
        signals, groups, spans = [], [], []
        for i, (x, iv) in enumerate(zip(cleaned, intervals, strict=True)):
            for lo, hi in iv:
                lo, hi = max(lo, 0), min(hi, x.size)
                if hi - lo < L:  # widen to one piece
                    mid = (lo + hi) // 2
                    lo, hi = max(0, mid - L // 2), min(x.size, max(0, mid - L // 2) + L)
                    lo = max(0, hi - L)
                if hi - lo < L:
                    continue
                signals.append(x[lo:hi])
                groups.append(comps_idx[i])
                spans.append((i, lo, hi))
        out = [np.zeros_like(x) for x in cleaned]
        info = {"windows": len(spans)}
        if not signals:
            return out, info
        bgs, report = separate_signals(signals, groups, prior, piece=L, overlap=L // 4, max_iter=self.max_iter,
                                       tol=self.tol, J=self.J, dtype=_DTYPES[self.dtype],
                                       device=resolve_device(self.device), progress=progress, token=token)
        shrink = 1.0 / (1.0 + self.residual_weight)
        for (i, lo, hi), s, bg in zip(spans, signals, bgs, strict=True):
            r = (s - bg) * shrink
            ramp = min(int(self.residual_margin * fs_list[i]), (hi - lo) // 4)
            if ramp > 0:  # fade in and out inside the record; nothing to blend with at its ends
                w = np.sin(0.5 * np.pi * (np.arange(ramp) + 0.5) / ramp) ** 2
                if lo > 0:
                    r[:ramp] *= w
                if hi < cleaned[i].size:
                    r[-ramp:] *= w[::-1]
            out[i][lo:hi] += r
        info.update({"iterations": report.n_iter, "problems": report.n_problems, "piece": report.piece})
        return out, info

    # ------------------------------------------------------------------ separation

    def _cluster_windows(self, tr: Trace) -> list[tuple[float, float]]:
        """Sample spans (from ``tr``'s start) of the finest-scale windows the model puts in ``glitch_clusters``."""
        if self.table is None or self.glitch_clusters is None:
            return []
        finest = min(self.table.scales)
        idx = self.table.members(list(np.atleast_1d(self.glitch_clusters)), finest)
        iv = self.table.intervals[idx, self.table.scale_index(finest)]
        t0, fs = tr.stats.starttime.timestamp, tr.stats.sampling_rate
        out = []
        for a, b in iv:
            if np.isfinite(a) and np.isfinite(b):
                lo, hi = (a - t0) * fs, (b - t0) * fs
                if hi > 0 and lo < tr.stats.npts:
                    out.append((max(lo, 0.0), min(hi, tr.stats.npts - 1.0)))
        return out

    def separate(self, stream: Stream, progress: Progress | None = None,
                 token: CancelToken | None = None) -> SeparationResult:
        """Background, glitches, spikes and residual of every trace of ``stream`` (input untouched)."""
        progress = progress or no_progress
        t_start = time.perf_counter()
        data = checked_signals(stream)
        letters = [component_letter(tr) for tr in stream]
        comps = self.components or "".join(sorted(set(letters)))
        prior = self._prior_array(stream, comps, sub_progress(progress, 0.0, 0.05), token)
        if prior is not None and prior.shape[1] not in (1, len(comps)):
            raise DataError(f"prior snippets have {prior.shape[1]} components, the record {len(comps)} ({comps}); "
                            "give `components` in the prior's order")
        comp_idx = [0 if prior is None or prior.shape[1] == 1 else comps.index(c) if c in comps else -1
                    for c in letters]
        if prior is not None and min(comp_idx) < 0:
            raise DataError(f"no prior snippets for some component of {''.join(letters)} (prior has {comps})")
        # time-aligned traces of one sensor are fitted jointly (shared onsets)
        sets: dict[tuple, list[int]] = {}
        for i, tr in enumerate(stream):
            key = (tr.stats.station, tr.stats.location, tr.stats.channel[:2], float(tr.stats.sampling_rate),
                   tr.stats.starttime.ns, tr.stats.npts)
            sets.setdefault(key, []).append(i)
        glitches = [np.zeros_like(x) for x in data]
        spikes = [np.zeros_like(x) for x in data]
        catalogues: list[list[dict]] = [[] for _ in data]
        t_fit = time.perf_counter()
        fit_prog = sub_progress(progress, 0.05, 0.35)
        for si, members in enumerate(sets.values()):
            if token is not None:
                token.check()
            tr0 = stream[members[0]]
            fs = float(tr0.stats.sampling_rate)
            X = np.stack([data[i] for i in members])
            snippets = None if prior is None else np.stack([prior[:, comp_idx[i]] for i in members], 1)
            extra: list[tuple[float, float, float]] = []
            if self.use_template_detector:
                from unmix.baselines.template import TemplateDeglitcher

                det = TemplateDeglitcher(inventory=self.inventory, paz=self.paz)
                half = self.search * fs
                for i in members:
                    extra += [(p - half, p + half, self.threshold) for p in det.detect(stream[i])]
            extra += [(lo, hi, self.cluster_threshold) for lo, hi in self._cluster_windows(tr0)]
            g, s, cat = self._fit_group(X, fs, [self._paz(stream[i]) for i in members], snippets, extra, token)
            for j, i in enumerate(members):
                glitches[i], spikes[i] = g[j], s[j]
                t0 = stream[i].stats.starttime
                catalogues[i] = [{"channel": stream[i].id, "onset": str(t0 + e["onset_sample"] / fs),
                                  "onset_sample": e["onset_sample"], "amplitude": e["amplitudes"][j],
                                  "rise_time": e["rise_time"],
                                  "spike_amplitude": None if e["spike_amplitudes"] is None
                                  else e["spike_amplitudes"][j]} for e in cat if e["amplitudes"][j] != 0.0
                                 or (e["spike_amplitudes"] or [0.0] * len(members))[j] != 0.0]
            fit_prog((si + 1) / len(sets), f"templates: {sum(len(c) for c in catalogues)} component glitch(es)")
        fit_s = time.perf_counter() - t_fit
        n_glitches = sum(len(c) for c in catalogues)
        residual = [np.zeros_like(x) for x in data]
        res_info: dict = {}
        mode = "templates"
        if prior is not None and n_glitches == 0 and self.fallback == "scatcov":
            mode = "scatcov fallback (no template accepted)"
            sc = self._scatcov(prior=prior, table=None, removed_name="residual")
            res = sc.separate(stream, sub_progress(progress, 0.35, 1.0), token)
            residual = [np.asarray(tr.data, dtype=np.float64) for tr in res.removed["residual"]]
            res_info = {"scatcov": {k: v for k, v in res.info.items() if k in ("n_iter", "n_problems", "solve_s")}}
        elif prior is not None and self.residual != "none":
            cleaned = [x - g - s for x, g, s in zip(data, glitches, spikes, strict=True)]
            rates = [float(tr.stats.sampling_rate) for tr in stream]
            if self.residual == "glitches":
                spans = [self._glitch_spans(cat, fs) for cat, fs in zip(catalogues, rates, strict=True)]
            else:
                spans, checks = [], []
                for x, ci, fs in zip(cleaned, comp_idx, rates, strict=True):
                    iv, chk = self._outlier_spans(x, prior[:, ci if prior.shape[1] > 1 else 0], fs)
                    if iv and chk["flagged_pieces"] >= self.record_share * chk["pieces"]:
                        iv = [[0, x.size]]  # mostly unlike the prior: the scattering separation takes it all
                    spans.append(iv)
                    checks.append(chk)
                res_info["outliers"] = checks
                # where the cleaned record does not look like the prior the template model is not trusted either:
                # templates fade out there (over one piece) and the scattering separation takes the raw record
                L = int(min(self.piece, prior.shape[2]))
                for i, iv in enumerate(spans):
                    if not iv:
                        continue
                    mask = self._span_mask(iv, data[i].size, L)
                    glitches[i] *= 1.0 - mask
                    spikes[i] *= 1.0 - mask
                    cleaned[i] = data[i] - glitches[i] - spikes[i]
                    catalogues[i] = [e for e in catalogues[i]
                                     if mask[min(int(e["onset_sample"]), mask.size - 1)] <= 0.5]
            if any(spans):
                mode = f"templates + scattering residual ({self.residual})"
                residual, info_r = self._residual(cleaned, comp_idx, spans, prior, rates,
                                                  sub_progress(progress, 0.35, 1.0), token)
                res_info.update(info_r)
        n_glitches = sum(len(c) for c in catalogues)
        note = (f"unmix {__version__} hybrid: {n_glitches} component glitch(es) ({mode}; response: "
                f"{self.inventory_label})")
        background = Stream()
        removed = {"glitches": Stream(), "spikes": Stream(), "residual": Stream()}
        for i, tr in enumerate(stream):
            for name, part in (("glitches", glitches[i]), ("spikes", spikes[i]), ("residual", residual[i])):
                t = tr.copy()
                t.data = np.ascontiguousarray(part, dtype=np.float64)
                t.stats.setdefault("processing", []).append(note + f": {name}")
                removed[name].append(t)
            b = tr.copy()
            b.data = data[i] - glitches[i] - spikes[i] - residual[i]
            b.stats.setdefault("processing", []).append(note + ": background")
            background.append(b)
        progress(1.0, "done")
        info = {"method": self.name, "params": self.get_params(), "mode": mode, "catalogue": sum(catalogues, []),
                "fit_s": round(fit_s, 4), "residual": res_info, "total_s": round(time.perf_counter() - t_start, 4)}
        return SeparationResult(background, removed, info)

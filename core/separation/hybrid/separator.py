"""The hybrid separator: configuration (scikit-learn manner), the template fit per sensor, the residual and the
result."""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
from obspy import Inventory, Stream, Trace

from unmix import __version__
from unmix.errors import ConfigError, DataError
from unmix.instrument import VBB_PAZ, Paz, paz_from_inventory
from unmix.jobs import CancelToken, Progress, sub_progress
from unmix.separation.base import BaseSeparator, PieceExtent
from unmix.separation.hybrid import residual as res
from unmix.separation.hybrid.config import (
    CONFIGS,
    FLAT_KEYS,
    PRE,
    DetectionConfig,
    OnsetConfig,
    ResidualConfig,
    RiseTimeConfig,
    SolverConfig,
    SpikeConfig,
    TemplateConfig,
    group_flat,
)
from unmix.separation.hybrid.detection import Window
from unmix.separation.hybrid.fit import FitSettings, fit_group
from unmix.separation.result import SeparationResult, checked_signals, component_letter

#: constructor parameters that are not stage configurations
_PLAIN = ("prior", "table", "clusters", "scale", "glitch_clusters", "n_prior", "components", "inventory", "paz",
          "device", "feature_config")
_PARAMS = (*_PLAIN, *CONFIGS)


def valid_options() -> list[str]:
    """Every key :meth:`HybridSeparator.from_options` accepts (``--hybrid-opt KEY=VALUE``)."""
    return sorted({*_PARAMS, *FLAT_KEYS})


def _merge_options(base: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Constructor parameters: ``base`` updated by ``options`` (constructor parameters or flat stage keys)."""
    unknown = sorted(k for k in options if k not in _PARAMS and k not in FLAT_KEYS)
    if unknown:
        raise ConfigError(f"unknown hybrid option(s) {', '.join(unknown)}; valid: {', '.join(valid_options())}")
    direct = {k: v for k, v in options.items() if k in _PARAMS and (k not in FLAT_KEYS or is_dataclass(v))}
    flat = {k: v for k, v in options.items() if k not in direct}
    params = {**base, **direct}
    configs = group_flat(flat, {p: params.get(p) for p in CONFIGS})
    return params | {k: v for k, v in configs.items() if v is not None}


@dataclass(frozen=True)
class _Run:
    """What :meth:`HybridSeparator.separate` works with: validated configurations, prior and response."""

    fit: FitSettings
    residual: ResidualConfig
    solver: SolverConfig
    prior: np.ndarray | None
    inventory: Inventory | None
    label: str


class HybridSeparator(BaseSeparator):
    """Templates (glitches, spikes) + scattering-covariance residual; see :mod:`unmix.separation.hybrid`.

    Prior (optional, as :class:`~unmix.separation.scatcov.ScatCovSeparator`): ``prior`` snippets ``(R, C, T)`` or a
    cluster ``table`` with background ``clusters`` at ``scale`` (``n_prior`` snippets, ``components``,
    ``feature_config``); it gives the whitening spectrum and the residual / fallback separation. Without it the
    spectrum comes from the record and there is no residual. ``glitch_clusters`` (with ``table``): clusters whose
    windows at the finest scale seed extra candidates. Templates: ``inventory`` (StationXML path or ObsPy Inventory;
    default the InSight VBB poles/zeros ``paz``). ``device``: of the scattering separation.

    Each stage has its configuration (None: the defaults): ``templates`` :class:`TemplateConfig`, ``detection``
    :class:`DetectionConfig`, ``onsets`` :class:`OnsetConfig`, ``rise`` :class:`RiseTimeConfig`, ``spikes``
    :class:`SpikeConfig`, ``residual`` :class:`ResidualConfig`, ``solver`` :class:`SolverConfig`.
    :meth:`from_options` takes their fields as flat keys (``--hybrid-opt``). The constructor only stores its
    arguments; they are checked by :meth:`separate`.
    """

    name = "hybrid"
    #: seconds of output per piece of a long record (:mod:`unmix.separation.pieces`)
    piece_seconds = 6 * 3600.0

    def __init__(self, prior: np.ndarray | None = None, table: Any = None, clusters: int | list[int] | None = None,
                 scale: int | None = None, glitch_clusters: int | list[int] | None = None, n_prior: int = 20,
                 components: str | None = None, inventory: Inventory | str | Path | None = None, paz: Paz = VBB_PAZ,
                 device: str = "auto", feature_config: Any = None, templates: TemplateConfig | None = None,
                 detection: DetectionConfig | None = None, onsets: OnsetConfig | None = None,
                 rise: RiseTimeConfig | None = None, spikes: SpikeConfig | None = None,
                 residual: ResidualConfig | None = None, solver: SolverConfig | None = None) -> None:
        self.prior, self.table, self.clusters, self.scale = prior, table, clusters, scale
        self.glitch_clusters, self.n_prior, self.components = glitch_clusters, n_prior, components
        self.inventory, self.paz, self.device, self.feature_config = inventory, paz, device, feature_config
        self.templates, self.detection, self.onsets, self.rise = templates, detection, onsets, rise
        self.spikes, self.residual, self.solver = spikes, residual, solver

    @classmethod
    def from_options(cls, **options: Any) -> HybridSeparator:
        """A separator from constructor parameters and/or the stages' fields as flat keys (e.g. ``threshold=200``,
        ``residual='none'``); an unknown key raises :class:`ConfigError` listing the valid ones."""
        return cls(**_merge_options({}, options))

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """The constructor parameters (``HybridSeparator(**h.get_params())`` is an equal separator); the stage
        configurations are returned as they are (``deep`` is accepted for scikit-learn and changes nothing)."""
        return {k: getattr(self, k) for k in _PARAMS}

    def set_params(self, **params: Any) -> HybridSeparator:
        """Set constructor parameters or flat stage keys (as :meth:`from_options`); returns ``self``."""
        for k, v in _merge_options(self.get_params(), params).items():
            setattr(self, k, v)
        return self

    def flat_params(self) -> dict[str, Any]:
        """The checked configuration as flat keys plus the response's label (no arrays or tables), for provenance."""
        return self._flat(self._resolve(read_inventory=False))

    def provenance_params(self) -> dict[str, Any]:
        """``info['params']``: :meth:`flat_params`."""
        return self.flat_params()

    def piece_extent(self, sampling_rate: float) -> PieceExtent:
        """Pieces of :attr:`piece_seconds` (hours: the record's whitening spectrum is a median Welch spectrum, well
        estimated from hours). Margin: a chain of ``max_group`` whitened template supports (padding included) and
        one more, the local noise's sliding median (``noise_span`` blocks), and the residual's reach (outlier spans
        widened by a solver piece either side, the fade ramps); with ``use_template_detector`` at least the
        template deglitcher's detection margin. Per piece, as per record before: the scattering fallback (no
        template accepted) and ``record_share``."""
        run = self._resolve(read_inventory=False)
        tc, dc, fs = run.fit.templates, run.fit.detection, float(sampling_rate)
        support = PRE + tc.template_duration + 2 * tc.whiten_segment / fs
        margin = (dc.max_group + 1) * (support + 2 * dc.search) + (dc.noise_span + 1) * dc.noise_block
        margin += 3 * run.solver.piece / fs + run.residual.residual_margin
        if dc.use_template_detector:
            from unmix.baselines.template import TemplateDeglitcher

            margin = max(margin, TemplateDeglitcher().piece_margin(self.piece_seconds))
        return PieceExtent.of(self.piece_seconds, margin, fs)

    def protecting(self, spans: dict[str, list] | list) -> HybridSeparator:
        """A copy that keeps its templates inside the protected ``spans``: ``residual='auto'`` fades them out over
        spans unlike the prior (a marsquake is one), and the protection then puts the residual back, glitches
        included; kept, the glitches inside a protected event are removed as with ``'misfit'``."""
        clone = copy.copy(self)
        clone._protected = spans
        return clone

    def _kept_masks(self, stream: Stream) -> list[np.ndarray | None]:
        """Per trace, where the templates stay whatever the residual's check says (1 inside protected spans)."""
        spans = getattr(self, "_protected", None)
        if not spans:
            return [None] * len(stream)
        from unmix.separation.protect import protect_mask

        return [protect_mask(tr, spans.get(tr.id, []) if isinstance(spans, dict) else spans) for tr in stream]

    # ------------------------------------------------------------------ configuration

    def _config(self, name: str):
        value = getattr(self, name)
        return CONFIGS[name]() if value is None else value

    def _checked_prior(self) -> np.ndarray | None:
        if self.prior is not None and self.table is not None:
            raise ConfigError("give either `prior` or `table`, not both")
        if self.table is not None and (self.clusters is None or self.scale is None) and self.glitch_clusters is None:
            raise ConfigError("with a cluster table, give background `clusters` and `scale` and/or `glitch_clusters`")
        if self.prior is None:
            return None
        prior = np.asarray(self.prior, dtype=np.float64)
        prior = prior[:, None] if prior.ndim == 2 else prior
        if prior.ndim != 3 or prior.shape[0] < 2:
            raise ConfigError(f"prior must be an array (R >= 2, C, T), got shape {prior.shape}")
        return prior

    def _resolve(self, read_inventory: bool = True) -> _Run:
        """Validated configurations, prior and response (raises :class:`ConfigError`)."""
        for name, cls in CONFIGS.items():
            if not isinstance(self._config(name), cls):
                raise ConfigError(f"{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        residual = self._config("residual").checked()
        fit = FitSettings(self._config("templates").checked(), self._config("detection").checked(),
                          self._config("onsets").checked(), self._config("rise").checked(),
                          self._config("spikes").checked())
        inventory, label = self.inventory, "inventory" if self.inventory is not None else \
            "InSight VBB poles/zeros (default)"
        if isinstance(inventory, str | Path):
            label = str(inventory)
            if read_inventory:
                from unmix.io.response import read_inventory as read_response_file

                inventory = read_response_file(inventory)
        return _Run(fit, residual, self._config("solver").checked(), self._checked_prior(), inventory, label)

    def _flat(self, run: _Run) -> dict[str, Any]:
        stages = {**asdict(run.fit.templates), **asdict(run.fit.detection), **asdict(run.fit.onsets),
                  **asdict(run.fit.rise), **asdict(run.fit.spikes), **asdict(run.residual), **asdict(run.solver)}
        plain = {"clusters": self.clusters, "scale": self.scale, "glitch_clusters": self.glitch_clusters,
                 "n_prior": int(self.n_prior), "components": self.components}
        return {"response": run.label, **plain, **{k: stages[k] for k in _FLAT_ORDER}, "device": self.device}

    # ------------------------------------------------------------------ prior and response

    def _scatcov(self, run: _Run, **extra):
        from unmix.separation.scatcov import ScatCovSeparator

        s = run.solver
        opts = dict(prior=run.prior, table=self.table if run.prior is None else None, clusters=self.clusters,
                    scale=self.scale, n_prior=int(self.n_prior), components=self.components, piece=s.piece,
                    max_iter=s.max_iter, tol=s.tol, J=s.J, dtype=s.dtype, device=self.device,
                    feature_config=self.feature_config)
        opts.update(extra)
        return ScatCovSeparator(**opts)

    def _prior_array(self, run: _Run, stream: Stream, comps: str, progress: Progress, token: CancelToken
                     ) -> tuple[np.ndarray | None, dict | None]:
        """The prior snippets (None without prior) and where they come from (cluster windows, as scatcov's)."""
        if run.prior is not None:
            return run.prior, {"source": "array", "n": int(run.prior.shape[0])}
        if self.table is None or self.clusters is None or self.scale is None:
            return None, None
        return self._scatcov(run, removed_name="residual", detrend="none")._prior_for(stream, comps, progress, token)

    def _paz(self, run: _Run, tr: Trace) -> Paz:
        if run.inventory is None:
            return self.paz
        return paz_from_inventory(run.inventory, tr.id, tr.stats.starttime)

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

    # ------------------------------------------------------------------ separation

    def _separate(self, stream: Stream, progress: Progress, token: CancelToken) -> SeparationResult:
        """Background, glitches, spikes and residual of every trace of ``stream`` (input untouched)."""
        run = self._resolve()
        data = checked_signals(stream)
        prior, comp_idx, prior_info = self._prior_and_components(run, stream, progress, token)
        t_fit = time.perf_counter()
        glitches, spikes, catalogues = self._fit_templates(run, stream, data, prior, comp_idx, progress, token)
        fit_s = time.perf_counter() - t_fit
        residual, res_info, mode = self._residual_part(run, stream, data, glitches, spikes, catalogues, prior,
                                                       comp_idx, progress, token)
        n_glitches = sum(len(c) for c in catalogues)
        note = f"unmix {__version__} hybrid: {n_glitches} component glitch(es) ({mode}; response: {run.label})"
        background, removed = _assemble(stream, data, {"glitches": glitches, "spikes": spikes, "residual": residual},
                                        note)
        progress(1.0, "done")
        info = {"mode": mode, "catalogue": sum(catalogues, []), "fit_s": round(fit_s, 4), "residual": res_info,
                "prior": prior_info}
        return SeparationResult(background, removed, info)

    def _prior_and_components(self, run: _Run, stream: Stream, progress: Progress, token: CancelToken
                              ) -> tuple[np.ndarray | None, list[int], dict | None]:
        """The prior snippets (or None), per trace its component's index in them, and the prior's report."""
        letters = [component_letter(tr) for tr in stream]
        comps = self.components or "".join(sorted(set(letters)))
        prior, prior_info = self._prior_array(run, stream, comps, sub_progress(progress, 0.0, 0.05), token)
        if prior is not None and prior.shape[1] not in (1, len(comps)):
            raise DataError(f"prior snippets have {prior.shape[1]} components, the record {len(comps)} ({comps}); "
                            "give `components` in the prior's order")
        comp_idx = [0 if prior is None or prior.shape[1] == 1 else comps.index(c) if c in comps else -1
                    for c in letters]
        if prior is not None and min(comp_idx) < 0:
            raise DataError(f"no prior snippets for some component of {''.join(letters)} (prior has {comps})")
        return prior, comp_idx, prior_info

    def _candidate_windows(self, run: _Run, stream: Stream, members: list[int], fs: float, token: CancelToken
                           ) -> list[Window]:
        """Extra candidates: the template detector's detections and the glitch-cluster windows."""
        extra: list[Window] = []
        det_cfg = run.fit.detection
        if det_cfg.use_template_detector:
            from unmix.baselines.template import TemplateDeglitcher

            det = TemplateDeglitcher(inventory=run.inventory, paz=self.paz)
            half = det_cfg.search * fs
            for i in members:
                extra += [(p - half, p + half, det_cfg.threshold) for p in det.detect(stream[i], token=token)]
        extra += [(lo, hi, det_cfg.cluster_threshold) for lo, hi in self._cluster_windows(stream[members[0]])]
        return extra

    def _fit_templates(self, run: _Run, stream: Stream, data: list[np.ndarray], prior: np.ndarray | None,
                       comp_idx: list[int], progress: Progress, token: CancelToken
                       ) -> tuple[list[np.ndarray], list[np.ndarray], list[list[dict]]]:
        """Glitch and spike series and the catalogue of every trace; time-aligned traces of one sensor are fitted
        jointly (shared onsets)."""
        sets: dict[tuple, list[int]] = {}
        for i, tr in enumerate(stream):
            key = (tr.stats.station, tr.stats.location, tr.stats.channel[:2], float(tr.stats.sampling_rate),
                   tr.stats.starttime.ns, tr.stats.npts)
            sets.setdefault(key, []).append(i)
        glitches = [np.zeros_like(x) for x in data]
        spikes = [np.zeros_like(x) for x in data]
        catalogues: list[list[dict]] = [[] for _ in data]
        fit_prog = sub_progress(progress, 0.05, 0.35)
        for si, members in enumerate(sets.values()):
            token.check()
            fs = float(stream[members[0]].stats.sampling_rate)
            X = np.stack([data[i] for i in members])
            snippets = None if prior is None else np.stack([prior[:, comp_idx[i]] for i in members], 1)
            extra = self._candidate_windows(run, stream, members, fs, token)
            g, s, cat = fit_group(X, fs, [self._paz(run, stream[i]) for i in members], snippets, extra, run.fit,
                                  token)
            for j, i in enumerate(members):
                glitches[i], spikes[i] = g[j], s[j]
                catalogues[i] = _channel_catalogue(stream[i], cat, j, len(members), fs)
            fit_prog((si + 1) / len(sets), f"templates: {sum(len(c) for c in catalogues)} component glitch(es)")
        return glitches, spikes, catalogues

    def _residual_part(self, run: _Run, stream: Stream, data: list[np.ndarray], glitches: list[np.ndarray],
                       spikes: list[np.ndarray], catalogues: list[list[dict]], prior: np.ndarray | None,
                       comp_idx: list[int], progress: Progress, token: CancelToken
                       ) -> tuple[list[np.ndarray], dict, str]:
        """The residual of every trace, its report and the mode; fades templates out where 'auto' flags spans
        (``glitches``, ``spikes`` and ``catalogues`` are updated in place)."""
        rc = run.residual
        residual = [np.zeros_like(x) for x in data]
        res_info: dict = {}
        mode = "templates"
        if prior is None or rc.residual == "none":  # templates only: no separation, marsquakes untouched
            return residual, res_info, mode
        if sum(len(c) for c in catalogues) == 0 and rc.fallback == "scatcov" and rc.residual != "misfit":
            mode = "scatcov fallback (no template accepted)"
            sc = self._scatcov(run, prior=prior, table=None, removed_name="residual", detrend=res.DETREND,
                               hold_mean=True)  # offsets and drifts are not separated (see the residual module)
            out = sc.separate(stream, sub_progress(progress, 0.35, 1.0), token)
            residual = [np.asarray(tr.data, dtype=np.float64) for tr in out.removed["residual"]]
            res_info = {"scatcov": {k: v for k, v in out.info.items() if k in ("n_iter", "n_problems", "solve_s")}}
        else:
            cleaned = [x - g - s for x, g, s in zip(data, glitches, spikes, strict=True)]
            rates = [float(tr.stats.sampling_rate) for tr in stream]
            if rc.residual == "glitches":
                spans = [res.glitch_spans(cat, fs, rc.residual_margin, run.fit.templates.template_duration)
                         for cat, fs in zip(catalogues, rates, strict=True)]
            else:
                spans, res_info["outliers"] = _auto_spans(run, data, cleaned, glitches, spikes, catalogues, prior,
                                                          comp_idx, self._kept_masks(stream), token)
            if any(spans):
                mode = f"templates + scattering residual ({rc.residual})"
                residual, info_r = res.residual(cleaned, comp_idx, spans, prior, rates, rc, run.solver, self.device,
                                                sub_progress(progress, 0.35, 1.0), token)
                res_info.update(info_r)
        return residual, res_info, mode


def _auto_spans(run: _Run, data: list[np.ndarray], cleaned: list[np.ndarray], glitches: list[np.ndarray],
                spikes: list[np.ndarray], catalogues: list[list[dict]], prior: np.ndarray, comp_idx: list[int],
                kept: list[np.ndarray | None], token: CancelToken) -> tuple[list[res.Spans], list[dict]]:
    """``residual='auto'`` and ``'misfit'``: per trace the spans unlike the prior (all of it past ``record_share``)
    and the checks.
    A span whose departure the templates explain (they divide it by ``explained_factor`` or more: glitches the
    template model fits only roughly) keeps them, and the separation takes what they leave. Elsewhere (wind, bursts)
    the template model is not trusted either: templates fade out there (over one piece; ``glitches``, ``spikes``,
    ``cleaned`` and ``catalogues`` updated in place) and the separation takes the raw record; ``'misfit'`` leaves
    those spans alone. ``kept`` (per trace, or None): where templates stay all the same (protected events)."""
    L = int(min(run.solver.piece, prior.shape[2]))
    spans, checks = [], []
    for i, (x, ci) in enumerate(zip(cleaned, comp_idx, strict=True)):
        snip = prior[:, ci if prior.shape[1] > 1 else 0]
        fade, keep, chk = _flagged(run, data[i], x, glitches[i].any() or spikes[i].any(), snip, token)
        checks.append(chk)
        if run.residual.residual == "misfit":  # only what the templates leave of the departures they explain
            spans.append(keep)
            continue
        spans.append(res.merged(fade + keep))
        if fade:
            mask = res.span_mask(fade, data[i].size, L)
            if kept[i] is not None:
                mask *= 1.0 - kept[i]
            glitches[i] *= 1.0 - mask
            spikes[i] *= 1.0 - mask
            cleaned[i] = data[i] - glitches[i] - spikes[i]
            catalogues[i] = [e for e in catalogues[i] if mask[min(int(e["onset_sample"]), mask.size - 1)] <= 0.5]
    return spans, checks


def _flagged(run: _Run, raw: np.ndarray, cleaned: np.ndarray, fitted: bool, snippets: np.ndarray,
             token: CancelToken) -> tuple[res.Spans, res.Spans, dict]:
    """One trace's flagged spans where templates fade out, those where they are kept, and the check's report."""
    rc = run.residual
    starts, dep, L = res.departures(cleaned, snippets, run.solver, token)
    runs = res.flagged_runs(starts, dep, rc.outlier_factor, L)
    flagged = int((dep > rc.outlier_factor).sum())
    chk = {"limit": rc.outlier_factor, "flagged_pieces": flagged, "pieces": len(dep)}
    fade: res.Spans = []
    keep: res.Spans = []
    if runs and rc.residual == "auto" and flagged >= rc.record_share * len(dep):
        fade = [[0, raw.size]]  # mostly unlike the prior: the scattering separation takes it all
    elif runs:
        before = res.departures(raw, snippets, run.solver, token)[1] if fitted and rc.explained_factor > 0 else dep
        for iv, ks in runs:
            explained = rc.explained_factor > 0 and before[ks].sum() >= rc.explained_factor * dep[ks].sum()
            (keep if explained else fade).extend(iv)
    chk["template_spans"] = len(keep)
    return fade, keep, chk


def _channel_catalogue(tr: Trace, cat: list[dict], j: int, members: int, fs: float) -> list[dict]:
    """The glitches of a sensor's catalogue ``cat`` that have an amplitude on its ``j``-th component ``tr``."""
    t0 = tr.stats.starttime
    return [{"channel": tr.id, "onset": str(t0 + e["onset_sample"] / fs), "onset_sample": e["onset_sample"],
             "amplitude": e["amplitudes"][j], "rise_time": e["rise_time"],
             "spike_amplitude": None if e["spike_amplitudes"] is None else e["spike_amplitudes"][j]}
            for e in cat if e["amplitudes"][j] != 0.0 or (e["spike_amplitudes"] or [0.0] * members)[j] != 0.0]


def _assemble(stream: Stream, data: list[np.ndarray], parts: dict[str, list[np.ndarray]], note: str
              ) -> tuple[Stream, dict[str, Stream]]:
    """The background (input minus every part) and each removed part as Streams with the input's headers."""
    background = Stream()
    removed = {name: Stream() for name in parts}
    for i, tr in enumerate(stream):
        for name, series in parts.items():
            t = tr.copy()
            t.data = np.ascontiguousarray(series[i], dtype=np.float64)
            t.stats.setdefault("processing", []).append(note + f": {name}")
            removed[name].append(t)
        b = tr.copy()
        b.data = data[i] - parts["glitches"][i] - parts["spikes"][i] - parts["residual"][i]
        b.stats.setdefault("processing", []).append(note + ": background")
        background.append(b)
    return background, removed


#: the flat keys of the provenance, in their historical order
_FLAT_ORDER = ("threshold", "component_threshold", "cluster_threshold", "fit_spikes", "spike_threshold",
               "spike_search", "search", "max_group", "min_separation", "template_duration", "rise_times",
               "rise_threshold", "subsample", "refine_iter", "use_template_detector", "whiten_segment", "noise_block",
               "noise_span", "spectrum", "max_frequency", "min_variance_reduction", "vr_window", "vr_excess",
               "residual", "outlier_factor", "record_share", "residual_weight", "residual_margin", "fallback",
               "piece", "max_iter", "tol", "J", "dtype", "explained_factor")

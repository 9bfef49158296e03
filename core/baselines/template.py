"""Template-fit deglitcher: the classical baseline of the InSight team (SEISglitch / "MPS"), with a joint fit.

A glitch is the channel's output for a step in ground acceleration; its waveform (the *template*) comes from the
channel's poles and zeros (StationXML, or the InSight VBB default), band-limited and shiftable by any fraction of a
sample (:mod:`unmix.instrument`). Per component:

1. **detection**: a matched filter (normalised cross-correlation of the band-passed data with the band-passed
   template, ObsPy ``correlate_template``) and/or a jerk threshold (response removed to acceleration with ObsPy,
   band-passed 0.001–0.1 Hz, differentiated, triggers above ``jerk_threshold`` robust standard deviations);
2. **fit**: candidates whose fit windows overlap (up to ``max_group`` at a time; later groups see the data with
   earlier accepted glitches removed) are fitted jointly by linear least squares on
   [template(t − τₖ) for each glitch, offset, linear trend]; each onset τₖ is found by a grid search of
   ``search`` seconds either side at 1/``subsample`` of a sample (coordinate sweeps for groups);
3. **acceptance**: only if removing the glitches reduces the window's variance by at least ``min_variance_reduction``
   (80 %, as SEISglitch); candidates that add less than ``min_glitch_gain`` are dropped and the group is refitted;
4. optional **spike**: the response to a displacement step near each accepted onset, kept if it adds at least
   ``min_spike_gain`` variance reduction.

Only the template parts (never the offset/trend) are removed, over the whole template length.

With ``detections`` (a SEISglitch/MPS glitch list, QuakeML or Snuffler marker file, :mod:`unmix.catalogs`), step 1 is
replaced by the listed glitch starts on each listed component: only those are fitted (onset searched ``search`` s
either side) and, when accepted, removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from obspy import Inventory, Stream, Trace
from obspy.signal.cross_correlation import correlate_template
from scipy.signal import find_peaks

from unmix import __version__
from unmix.catalogs import Catalog, glitch_onsets, read_catalog, seed_mismatch
from unmix.errors import ConfigError, DataError
from unmix.instrument import VBB_PAZ, Paz, glitch_template, paz_from_inventory, spike_template
from unmix.io.response import read_inventory
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress, sub_progress
from unmix.separation.base import BaseSeparator, PieceExtent, settle_seconds
from unmix.separation.result import SeparationResult

DETECTORS = ("matched", "jerk", "both")
#: the jerk detector's band (Hz) and taper (share of the trace at each end), and both detectors' filter corners
JERK_BAND = (0.001, 0.1)
JERK_TAPER = 0.05
DETECT_CORNERS = 3


@dataclass
class _Bank:
    """Templates at ``m`` sub-sample shifts: ``waves[j]`` has its onset ``pre_n + j/m`` samples after its start."""

    waves: np.ndarray  # (m, L)
    pre_n: int

    @property
    def m(self) -> int:
        return self.waves.shape[0]

    def split(self, position: float) -> tuple[int, int]:
        """Integer sample and sub-sample index of an onset at fractional sample ``position``."""
        i = int(np.floor(position))
        j = int(round((position - i) * self.m))
        if j == self.m:
            i, j = i + 1, 0
        return i, j

    def column(self, position: float, w0: int, n: int) -> np.ndarray:
        """The template with its onset at ``position`` (trace samples) on the window [w0, w0 + n)."""
        i, j = self.split(position)
        return _place(self.waves[j], i - self.pre_n - w0, n)

    def columns(self, positions: np.ndarray, w0: int, n: int) -> np.ndarray:
        """(len(positions), n) columns for many onsets at once (rows of sliding views of zero-padded templates)."""
        length = self.waves.shape[1]
        padded = np.zeros((self.m, n + length + n))
        padded[:, n:n + length] = self.waves
        views = np.lib.stride_tricks.sliding_window_view(padded, n, axis=1)  # (m, n + length + 1, n)
        p = np.asarray(positions, dtype=float)
        i = np.floor(p).astype(int)
        j = np.rint((p - i) * self.m).astype(int)
        i, j = np.where(j == self.m, i + 1, i), np.where(j == self.m, 0, j)
        idx = n - (i - self.pre_n - w0)
        ok = (idx >= 0) & (idx < views.shape[1])
        out = np.zeros((p.size, n))
        out[ok] = views[j[ok], idx[ok]]
        return out

def _place(wave: np.ndarray, offset: int, n: int) -> np.ndarray:
    col = np.zeros(n)
    lo, hi = max(offset, 0), min(offset + wave.size, n)
    if hi > lo:
        col[lo:hi] = wave[lo - offset:hi - offset]
    return col


class TemplateDeglitcher(BaseSeparator):
    """Classical template-fit deglitcher (see the module docstring); removed parts ``glitches`` and ``spikes``.

    ``info['catalogue']`` lists the accepted glitches: channel, onset (UTC, sub-sample), ``amplitude`` (signed peak
    of the fitted glitch in the data's units, e.g. counts), the group's variance reduction and the spike's peak.
    The constructor only stores its arguments; they are checked when :meth:`separate` runs.
    """

    name = "template"

    def __init__(
        self,
        inventory: Inventory | str | Path | None = None,
        paz: Paz = VBB_PAZ,
        detector: Literal["matched", "jerk", "both"] = "both",
        cc_threshold: float = 0.8,
        jerk_threshold: float = 8.0,
        detect_band: tuple[float, float] = (0.01, 1.0),
        search: float = 3.0,
        fit_length: float = 25.0,
        margin: float = 2.0,
        subsample: int = 4,
        template_duration: float = 60.0,
        min_separation: float = 5.0,
        min_variance_reduction: float = 0.8,
        min_glitch_gain: float = 0.02,
        fit_spikes: bool = True,
        spike_search: int = 7,
        min_spike_gain: float = 0.02,
        sweeps: int = 2,
        max_group: int = 4,
        detections: str | Path | None = None,
    ) -> None:
        self.inventory = inventory
        self.paz = paz
        self.detector = detector
        self.cc_threshold = cc_threshold
        self.jerk_threshold = jerk_threshold
        self.detect_band = detect_band
        self.search = search
        self.fit_length = fit_length
        self.margin = margin
        self.subsample = subsample
        self.template_duration = template_duration
        self.min_separation = min_separation
        self.min_variance_reduction = min_variance_reduction
        self.min_glitch_gain = min_glitch_gain
        self.fit_spikes = fit_spikes
        self.spike_search = spike_search
        self.min_spike_gain = min_spike_gain
        self.sweeps = sweeps
        self.max_group = max_group
        self.detections = detections

    #: seconds of template before the onset
    pre = 2.0
    #: seconds of output per piece of a long record (:mod:`unmix.separation.pieces`)
    piece_seconds = 8 * 3600.0

    def piece_margin(self, kept_s: float) -> float:
        """Seconds of context either side of a piece of ``kept_s`` seconds: a chain of ``max_group`` fit windows
        plus a template (every glitch that reaches the kept part is fitted from the same data), beyond the zone the
        detectors do not see as over the whole record: the jerk detector's taper (:data:`JERK_TAPER` of the whole
        piece, margins included) and the start-up transients of both detectors' band-passes (decayed to 1e-4)."""
        fit = self._max_group * (self.pre + self.fit_length + 2 * (self.search + self.margin)) + self.template_duration
        matched = settle_seconds(self.detect_band[0], DETECT_CORNERS)
        jerk = settle_seconds(JERK_BAND[0], DETECT_CORNERS)
        # margin ≥ taper(kept + 2·margin) + jerk + fit, solved for the margin
        return max(matched + fit, (JERK_TAPER * kept_s + jerk + fit) / (1.0 - 2.0 * JERK_TAPER))

    def piece_extent(self, sampling_rate: float) -> PieceExtent:
        """Pieces of :attr:`piece_seconds` with :meth:`piece_margin`."""
        self.provenance_params()
        return PieceExtent.of(self.piece_seconds, self.piece_margin(self.piece_seconds), sampling_rate)

    @property
    def inventory_label(self) -> str:
        """How the response is given: the StationXML path, 'inventory', or the default VBB poles/zeros."""
        if isinstance(self.inventory, str | Path):
            return str(self.inventory)
        return "inventory" if self.inventory is not None else "InSight VBB poles/zeros (default)"

    def provenance_params(self) -> dict:
        """The checked configuration, JSON-ready (for provenance); raises :class:`ConfigError` for a bad one."""
        if self.detector not in DETECTORS:
            raise ConfigError(f"unknown detector {self.detector!r}; choose one of {', '.join(DETECTORS)}")
        if not 0 < self.min_variance_reduction < 1:
            raise ConfigError("min_variance_reduction must be in (0, 1)")
        if self.subsample < 1 or self.search < 0 or self.fit_length <= 0 or self.template_duration <= 0:
            raise ConfigError("subsample ≥ 1, search ≥ 0, fit_length > 0 and template_duration > 0 are required")
        if not 0 < self.cc_threshold <= 1 or self.jerk_threshold <= 0:
            raise ConfigError("cc_threshold must be in (0, 1] and jerk_threshold > 0")
        keys = ("detector", "cc_threshold", "jerk_threshold", "detect_band", "search", "fit_length", "margin",
                "subsample", "template_duration", "min_separation", "min_variance_reduction", "min_glitch_gain",
                "fit_spikes", "spike_search", "min_spike_gain", "sweeps", "max_group", "detections")
        out = {"response": self.inventory_label, **{k: getattr(self, k) for k in keys}}
        out.update(detect_band=tuple(self.detect_band), max_group=self._max_group, detections=self._detections)
        return out

    def check_params(self) -> None:
        """Also reads the StationXML given as a path (so a missing or bad file is refused before any work)."""
        super().check_params()
        self._response()

    @property
    def _max_group(self) -> int:
        return max(1, int(self.max_group))

    @property
    def _detections(self) -> str | None:
        return None if self.detections is None else str(self.detections)

    def _response(self) -> Inventory | None:
        """The response inventory (a StationXML path is read once and kept while ``inventory`` is unchanged)."""
        if not isinstance(self.inventory, str | Path):
            return self.inventory
        cached = getattr(self, "_read_response", None)
        if cached is None or cached[0] != self.inventory:
            self._read_response = (self.inventory, read_inventory(self.inventory))
        return self._read_response[1]

    # -- public ---------------------------------------------------------------------------------------------------

    def _separate(self, stream: Stream, progress: Progress, token: CancelToken) -> SeparationResult:
        """Split every trace into background, glitches and (if fitted) spikes."""
        traces = stream.split() if any(isinstance(tr.data, np.ma.MaskedArray) for tr in stream) else stream
        if len(traces) == 0:
            raise DataError("nothing to separate: the stream has no traces")
        background, glitches, spikes = Stream(), Stream(), Stream()
        catalogue: list[dict] = []
        listed = self._listed_catalog(traces)
        for k, tr in enumerate(traces):
            sub = sub_progress(progress, k / len(traces), (k + 1) / len(traces))
            g, s, cat = self.separate_trace(tr, sub, token, listed)
            for out, data in ((glitches, g), (spikes, s)):
                t = tr.copy()
                t.data = data.astype(np.float64)
                out.append(t)
            b = tr.copy()
            b.data = np.asarray(tr.data, dtype=np.float64) - g - s
            background.append(b)
            catalogue += cat
        note = (f"unmix {__version__} template deglitcher: {len(catalogue)} glitch(es) removed "
                f"(VR ≥ {self.min_variance_reduction:.0%}, response: {self.inventory_label})")
        for st in (background, glitches, spikes):
            for tr in st:
                tr.stats.setdefault("processing", []).append(note)
        removed = {"glitches": glitches}
        if self.fit_spikes:
            removed["spikes"] = spikes
        progress(1.0, "done")
        info: dict = {"catalogue": catalogue}
        if listed is not None:
            info["detections"] = {"file": self._detections, "listed": sum(
                int(self._listed_onsets(tr, listed).size) for tr in traces), "removed": len(catalogue)}
        return SeparationResult(background, removed, info)

    def separate_trace(self, tr: Trace, progress: Progress = no_progress, token: CancelToken = NO_CANCEL,
                       listed: Catalog | None = None) -> tuple[np.ndarray, np.ndarray, list[dict]]:
        """Fitted glitch and spike series (same length as ``tr``) and the catalogue of accepted glitches; with
        ``listed`` only the glitches of that catalogue are fitted (no detection)."""
        x = np.asarray(tr.data, dtype=np.float64)
        fs = float(tr.stats.sampling_rate)
        paz = self._paz(tr)
        gbank = self._bank("glitch", fs, paz)
        sbank = self._bank("spike", fs, paz) if self.fit_spikes else None
        glitches, spikes = np.zeros_like(x), np.zeros_like(x)
        catalogue: list[dict] = []
        if x.size < gbank.waves.shape[1] // 2:
            return glitches, spikes, catalogue
        candidates = self.detect(tr, paz, token) if listed is None else self._listed_onsets(tr, listed)
        progress(0.2, f"{tr.id}: {candidates.size} candidate(s)")
        groups = self._groups(candidates, fs, x.size)
        for gi, (w0, w1, members) in enumerate(groups):
            token.check()
            # glitches accepted in earlier groups are known: fit what is left of the data
            work = x[w0:w1] - glitches[w0:w1] - spikes[w0:w1]
            fit = self._fit_group(work, members, w0, gbank, fs)
            if fit is not None:
                positions, amps, vr = fit
                d = work
                parts = np.zeros(w1 - w0)
                for p, a in zip(positions, amps, strict=True):
                    i, j = gbank.split(p)
                    _add(glitches, a * gbank.waves[j], i - gbank.pre_n)
                    parts += a * gbank.column(p, w0, w1 - w0)
                spike_info = self._fit_spikes(d - parts, d, positions, w0, sbank) if sbank is not None else []
                for p, a, sp in zip(positions, amps, spike_info or [None] * len(positions), strict=True):
                    entry = {"channel": tr.id, "onset": str(tr.stats.starttime + p / fs), "amplitude": float(a),
                             "variance_reduction": float(vr), "spike_amplitude": None}
                    if sp is not None:
                        sp_pos, sp_amp = sp
                        i, j = sbank.split(sp_pos)
                        _add(spikes, sp_amp * sbank.waves[j], i - sbank.pre_n)
                        entry["spike_amplitude"] = float(sp_amp)
                    catalogue.append(entry)
            progress(0.2 + 0.8 * (gi + 1) / len(groups), f"{tr.id}: fitting")
        return glitches, spikes, catalogue

    # -- detection ------------------------------------------------------------------------------------------------

    def _listed_catalog(self, traces: Stream) -> Catalog | None:
        """The glitch list of ``detections`` (None without one); refused when it is for other SEED ids."""
        if self.detections is None:
            return None
        catalog = read_catalog(self._detections)
        line = seed_mismatch(catalog, [tr.id for tr in traces])
        if line is not None:
            raise DataError(f"--detections: {line.replace(': its overlays will not match', '')}")
        return catalog

    def _listed_onsets(self, tr: Trace, listed: Catalog) -> np.ndarray:
        """Listed glitch starts on this trace's component, as fractional samples from its start."""
        fs = float(tr.stats.sampling_rate)
        pos = (glitch_onsets(listed, tr.id) - tr.stats.starttime.timestamp) * fs
        return np.sort(pos[(pos >= 0) & (pos < tr.stats.npts)])

    def detect(self, tr: Trace, paz: Paz | None = None, token: CancelToken = NO_CANCEL) -> np.ndarray:
        """Candidate onsets (fractional samples from the trace start), at least ``min_separation`` apart."""
        paz = paz or self._paz(tr)
        fs = float(tr.stats.sampling_rate)
        found: list[np.ndarray] = []
        if self.detector in ("matched", "both"):
            token.check()
            found.append(self._matched(tr, paz, token))
        if self.detector in ("jerk", "both"):
            token.check()
            found.append(self._jerk(tr, paz, token))
        onsets = np.sort(np.concatenate(found)) if found else np.zeros(0)
        merged: list[float] = []
        for o in onsets:
            if not merged or o - merged[-1] > self.min_separation * fs:
                merged.append(float(o))
        return np.asarray(merged)

    def _filtered(self, data: np.ndarray, fs: float) -> np.ndarray:
        t = Trace(np.asarray(data, dtype=np.float64).copy())
        t.stats.sampling_rate = fs
        t.detrend("linear")
        lo, hi = self.detect_band
        hi = min(hi, 0.45 * fs)
        t.filter("bandpass", freqmin=lo, freqmax=hi, corners=DETECT_CORNERS, zerophase=True)
        return t.data

    def _matched(self, tr: Trace, paz: Paz, token: CancelToken = NO_CANCEL) -> np.ndarray:
        fs = float(tr.stats.sampling_rate)
        length = self.pre + self.fit_length
        raw = glitch_template(fs, length + 120.0, 0.0, paz, self.pre + 120.0)
        # band-pass the template exactly like the data (with room for the filter's transients), then cut it
        tpl = self._filtered(raw, fs)[int(round(120.0 * fs)):int(round((120.0 + length) * fs))]
        data = self._filtered(tr.data, fs)
        if data.size <= tpl.size:
            return np.zeros(0)
        token.check()
        cc = correlate_template(data, tpl, mode="valid", normalize="full", method="auto")
        peaks, _ = find_peaks(np.abs(cc), height=self.cc_threshold, distance=max(1, int(self.min_separation * fs)))
        return peaks + self.pre * fs

    def _jerk(self, tr: Trace, paz: Paz, token: CancelToken = NO_CANCEL) -> np.ndarray:
        fs = float(tr.stats.sampling_rate)
        t = tr.copy()
        t.data = np.asarray(t.data, dtype=np.float64)
        t.detrend("linear")
        t.taper(JERK_TAPER)
        inventory = self._response()
        if inventory is not None:
            t.remove_response(inventory=inventory, output="ACC", water_level=60)
        else:
            t.simulate(paz_remove=paz.as_obspy_dict(), water_level=60)
            t.differentiate()
        token.check()
        t.filter("bandpass", freqmin=JERK_BAND[0], freqmax=min(JERK_BAND[1], 0.45 * fs), corners=DETECT_CORNERS,
                 zerophase=True)
        jerk = np.gradient(t.data) * fs
        edge = int(JERK_TAPER * jerk.size)
        core_part = jerk[edge:jerk.size - edge] if jerk.size > 2 * edge + 10 else jerk
        sigma = 1.4826 * np.median(np.abs(core_part - np.median(core_part)))
        if not np.isfinite(sigma) or sigma <= 0:
            return np.zeros(0)
        mag = np.abs(jerk)
        mag[:edge] = 0.0
        mag[jerk.size - edge:] = 0.0
        peaks, _ = find_peaks(mag, height=self.jerk_threshold * sigma,
                              distance=max(1, int(self.min_separation * fs)))
        return peaks.astype(float)

    # -- fitting --------------------------------------------------------------------------------------------------

    def _groups(self, candidates: np.ndarray, fs: float, npts: int) -> list[tuple[int, int, list[float]]]:
        """Candidates whose fit windows overlap, with the joint window [w0, w1)."""
        before = int(np.ceil((self.pre + self.search + self.margin) * fs))
        after = int(np.ceil((self.fit_length + self.search + self.margin) * fs))
        groups: list[tuple[int, int, list[float]]] = []
        max_group = self._max_group
        for c in candidates:
            lo, hi = max(int(c) - before, 0), min(int(c) + after, npts)
            if groups and lo < groups[-1][1] and len(groups[-1][2]) < max_group:
                w0, _, members = groups[-1]
                groups[-1] = (w0, hi, [*members, float(c)])
            else:
                groups.append((lo, hi, [float(c)]))
        return [g for g in groups if g[1] - g[0] > 8]

    def _fit_group(self, d: np.ndarray, members: list[float], w0: int, bank: _Bank, fs: float
                   ) -> tuple[list[float], np.ndarray, float] | None:
        """Jointly fitted onsets, amplitudes and variance reduction of an accepted group on the window ``d`` (which
        starts at trace sample ``w0``), or None."""
        n = d.size
        base = np.stack([np.ones(n), np.linspace(-1.0, 1.0, n)], axis=1)
        var_d = float(np.var(d))
        if var_d <= 0:
            return None
        positions = list(members)
        half = self.search * fs
        for sweep in range(max(1, self.sweeps if len(positions) > 1 else 1)):
            for i in range(len(positions)):
                others = [bank.column(p, w0, n) for k, p in enumerate(positions) if k != i]
                B = np.column_stack([*others, base]) if others else base
                width = half if sweep == 0 else min(half, 1.0)
                positions[i] = self._grid_search(d, B, positions[i], width, bank, w0)
        while positions:
            cols = np.column_stack([bank.column(p, w0, n) for p in positions])
            coef, *_ = np.linalg.lstsq(np.column_stack([cols, base]), d, rcond=None)
            amps = coef[:len(positions)]
            parts = cols * amps
            total = parts.sum(axis=1)
            vr = 1.0 - np.var(d - total) / var_d
            gains = np.array([vr - (1.0 - np.var(d - total + parts[:, k]) / var_d) for k in range(len(positions))])
            weakest = int(np.argmin(gains))
            if gains[weakest] < self.min_glitch_gain or (vr < self.min_variance_reduction and len(positions) > 1):
                positions.pop(weakest)
                continue
            if vr < self.min_variance_reduction:
                return None
            return positions, amps, float(vr)
        return None

    def _grid_search(self, d: np.ndarray, B: np.ndarray, centre: float, half: float, bank: _Bank, w0: int) -> float:
        """Onset (fractional trace samples) within ±half samples of ``centre`` minimising the least-squares residual
        of ``d`` on [B, template]: whole samples first, then sub-samples around the best. The model is linear once
        the onset is fixed, so each trial is a projection."""
        Q, _ = np.linalg.qr(B)
        d_perp = d - Q @ (Q.T @ d)

        def best(trials: np.ndarray) -> float:
            cols = bank.columns(trials, w0, d.size)
            c_perp = cols - (cols @ Q) @ Q.T
            norm = np.einsum("ij,ij->i", c_perp, c_perp)
            ok = norm > 1e-12 * max(float(norm.max()), 1e-300)
            gain = np.where(ok, (c_perp @ d_perp) ** 2 / np.maximum(norm, 1e-300), 0.0)
            return float(trials[int(np.argmax(gain))])

        coarse = best(np.arange(np.floor(centre - half), np.ceil(centre + half) + 1))
        if bank.m == 1:
            return coarse
        return best(coarse + np.arange(-bank.m + 1, bank.m) / bank.m)

    def _fit_spikes(self, r: np.ndarray, d: np.ndarray, positions: list[float], w0: int, bank: _Bank
                    ) -> list[tuple[float, float] | None]:
        """Per glitch, a spike near its onset if it reduces the variance of ``d`` by ≥ ``min_spike_gain``."""
        n = r.size
        base = np.stack([np.ones(n), np.linspace(-1.0, 1.0, n)], axis=1)
        Q, _ = np.linalg.qr(base)
        var_d = float(np.var(d))
        out: list[tuple[float, float] | None] = []
        for p in positions:
            trials = p + np.arange(-self.spike_search * bank.m, self.spike_search * bank.m + 1) / bank.m
            cols = bank.columns(trials, w0, n)
            r_perp = r - Q @ (Q.T @ r)
            c_perp = cols - (cols @ Q) @ Q.T
            norm = np.maximum(np.einsum("ij,ij->i", c_perp, c_perp), 1e-300)
            k = int(np.argmax((c_perp @ r_perp) ** 2 / norm))
            amp = float(c_perp[k] @ r_perp / norm[k])
            gain = (np.var(r) - np.var(r - amp * cols[k])) / var_d
            if gain >= self.min_spike_gain:
                r = r - amp * cols[k]
                out.append((float(trials[k]), amp))
            else:
                out.append(None)
        return out

    # -- templates ------------------------------------------------------------------------------------------------

    def _paz(self, tr: Trace) -> Paz:
        inventory = self._response()
        if inventory is None:
            return self.paz
        return paz_from_inventory(inventory, tr.id, tr.stats.starttime)

    def _bank(self, kind: str, fs: float, paz: Paz) -> _Bank:
        shifts = np.arange(self.subsample) / self.subsample / fs
        if kind == "glitch":
            waves = glitch_template(fs, self.template_duration, shifts, paz, self.pre)
        else:
            waves = spike_template(fs, min(self.template_duration, 20.0), shifts, paz, self.pre)
        return _Bank(np.atleast_2d(waves), int(round(self.pre * fs)))


def _add(out: np.ndarray, wave: np.ndarray, start: int) -> None:
    lo, hi = max(start, 0), min(start + wave.size, out.size)
    if hi > lo:
        out[lo:hi] += wave[lo - start:hi - start]


"""Benchmark cases: real glitch-free Mars background plus synthetic sources with known truth.

The background is a deglitched InSight record (default: the UCLA v4 products in ``shared/data/insight/background``),
standardised per component (zero mean, unit standard deviation over the whole file), so amplitudes below are in
background standard deviations (σ). A target span is cut from it at a seeded position; prior snippets for methods
that need examples of clean background (scattering-covariance separation) come from the same file, away from the
target span.

* :func:`glitch_case`: acceleration-step glitches (the VBB response of :mod:`unmix.instrument`, sub-sample onsets), as
  in the synthetic generator: a horizontal tilt projected on the U/V/W axes (or, for a fraction, one axis only),
  log-normal amplitudes with random sign.
* :func:`burst_case`: atmospheric (wind) bursts of tens of minutes from :func:`unmix.synthetic.generate`.
* :func:`quake_case`: a marsquake (the generator's P/S/coda model, 0.2–2 Hz) that must survive, with glitches inside
  its coda; :func:`add_quake` puts such a quake under any case (e.g. over a wind burst). The quake belongs to the
  background to keep; ``BenchCase.quake`` holds it so that the share of it a method removed can be measured
  (:func:`unmix.evaluation.metrics.quake_removed`).

Harder cases, whose sources the methods' models do not match exactly (real data are not the template model):

* :func:`hard_glitch_case`: glitches whose acceleration step rises over a raised cosine of random duration
  (:func:`rise_glitch_template`), pairs of glitches a few seconds apart, and the short displacement-step spike that
  accompanies many InSight glitches (the synthetic generator's attached-spike model).
* :func:`gust_case`: a train of wind gusts, band-limited noise under skewed envelopes (:func:`gust_train`).
* :func:`dust_devil_case`: dust-devil tilt pulses with their high-frequency burst (the synthetic generator's model).
* :func:`select_components`: any case cut down to some of its components (single-component records).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from obspy import Stream, Trace
from scipy.signal import butter, sosfiltfilt

from unmix.errors import ConfigError, DataError
from unmix.instrument import VBB_PAZ, Paz, antialias_window, glitch_template, spike_template, step_response_spectrum
from unmix.io import build_records, read_records, read_stream
from unmix.mars_time import SECONDS_PER_SOL
from unmix.synthetic import SyntheticConfig, generate, tilt_projection

INSIGHT_AZIMUTHS = {"U": 135.1, "V": 15.0, "W": 255.0}
INSIGHT_DIPS = {"U": -29.4, "V": -29.2, "W": -29.7}
_PRE = 2.0  # templates start this many seconds before their onset


@dataclass
class Background:
    """A standardised real background: ids, start, rate and the (C, N) samples in units of σ."""

    path: str
    ids: list[str]
    starttime: object
    sampling_rate: float
    data: np.ndarray
    scale: np.ndarray  # σ per component, counts


@dataclass
class BenchCase:
    """One benchmark target: the mixture, the true background and removed part, and prior snippets."""

    name: str
    mixture: Stream
    truth_background: np.ndarray  # (C, n)
    truth_removed: np.ndarray  # (C, n)
    prior: np.ndarray  # (R, C, T) clean background away from the target
    info: dict = field(default_factory=dict)
    quake: np.ndarray | None = None  # (C, n) a synthetic marsquake inside truth_background, or None

    @property
    def components(self) -> list[str]:
        return [tr.stats.channel[-1] for tr in self.mixture]


def load_background(path: str | Path) -> Background:
    """Read a deglitched record (longest gap-free segment) and standardise each component.

    Expert products are taken as they are: the UCLA S0105a file's two pieces disagree on a few overlapping samples,
    which a plain read refuses (the later piece's samples are kept here). A damaged file is still refused.
    """
    records = build_records(read_stream(path), allow_damaged=True)
    rec = max(records, key=lambda r: r.npts)
    x = rec.to_array()
    mean = x.mean(axis=1, keepdims=True)
    scale = x.std(axis=1)
    if np.any(scale == 0):
        raise DataError("a component of the background is constant", path)
    return Background(str(path), [tr.id for tr in rec.stream], rec.starttime, rec.sampling_rate,
                      (x - mean) / scale[:, None], scale)


def _span_and_prior(bg: Background, span: int, rng: np.random.Generator, prior_count: int, prior_length: int,
                    guard: int) -> tuple[int, np.ndarray, list[int]]:
    n = bg.data.shape[1]
    if span < 64 or span > n:
        raise ConfigError(f"the target span ({span} samples) must be between 64 and the background length ({n})")
    s0 = int(rng.integers(0, n - span + 1))
    free = [(0, s0 - guard), (s0 + span + guard, n)]
    tiles = [a + k * prior_length for a, b in free if b - a >= prior_length
             for k in range((b - a) // prior_length)]
    if prior_count > 0 and not tiles:
        raise ConfigError(f"no room for prior snippets of {prior_length} samples beside a {span}-sample target "
                          f"in {bg.path}; use a shorter span or snippets")
    picked = rng.choice(tiles, size=min(prior_count, len(tiles)), replace=False) if tiles else []
    chosen = [int(t) for t in sorted(picked)]
    prior = np.stack([bg.data[:, t:t + prior_length] for t in chosen]) if chosen else np.zeros(
        (0, bg.data.shape[0], prior_length))
    return s0, prior, chosen


def _target(bg: Background, span: int, rng: np.random.Generator, prior_count: int, prior_length: int,
            guard_seconds: float) -> tuple[int, np.ndarray, list[int], np.ndarray]:
    """A seeded target span (its offset), prior snippets away from it (and their offsets), and its (C, span) clean
    background: what every case starts from."""
    s0, prior, tiles = _span_and_prior(bg, span, rng, prior_count, prior_length,
                                       int(guard_seconds * bg.sampling_rate))
    return s0, prior, tiles, bg.data[:, s0:s0 + span].copy()


def _stream(bg: Background, s0: int, data: np.ndarray) -> Stream:
    traces = []
    for c, tid in enumerate(bg.ids):
        net, sta, loc, cha = tid.split(".")
        traces.append(Trace(np.ascontiguousarray(data[c], dtype=np.float64), header={
            "network": net, "station": sta, "location": loc, "channel": cha, "sampling_rate": bg.sampling_rate,
            "starttime": bg.starttime + s0 / bg.sampling_rate}))
    return Stream(traces)


def background_stream(bg: Background) -> Stream:
    """The whole standardised background as an ObsPy Stream (its ids, start and rate)."""
    return _stream(bg, 0, bg.data)


def glitch_case(bg: Background, span: int = 8192, count: int = 4, seed: int = 0, amplitude: float = 4.0,
                amplitude_sigma: float = 0.6, single_axis_fraction: float = 0.2, prior_count: int = 20,
                prior_length: int = 2048, guard_seconds: float = 60.0) -> BenchCase:
    """``count`` acceleration-step glitches (median peak ``amplitude`` σ) on a ``span``-sample target."""
    if count < 0:
        raise ConfigError("the glitch count must be ≥ 0")
    rng = np.random.default_rng(seed)
    fs = bg.sampling_rate
    s0, prior, tiles, truth = _target(bg, span, rng, prior_count, prior_length, guard_seconds)
    lo, hi = 2.0, max(span / fs - 15.0, 2.5)
    onsets = np.sort(rng.uniform(lo, hi, count))
    removed, per = _render_glitches(rng, bg, span, onsets, amplitude, amplitude_sigma, single_axis_fraction)
    info = {**_span_info("glitches", bg, seed, s0, span, prior, prior_length, tiles),
            "glitches": _glitch_info(onsets, per)}
    return BenchCase(f"glitches seed {seed}", _stream(bg, s0, truth + removed), truth, removed, prior, info)


def _span_info(kind: str, bg: Background, seed: int, s0: int, span: int, prior: np.ndarray, prior_length: int,
               tiles: list[int]) -> dict:
    """What every case records of its target span and prior snippets."""
    return {"kind": kind, "background": bg.path, "seed": seed, "span_start": str(bg.starttime + s0 / bg.sampling_rate),
            "span_offset": s0, "span_samples": span, "prior_snippets": int(prior.shape[0]),
            "prior_length": prior_length, "prior_offsets": tiles}


def _glitch_info(onsets: np.ndarray, per: np.ndarray) -> list[dict]:
    return [{"onset_s": float(o), "amplitudes": [float(v) for v in p]} for o, p in zip(onsets, per, strict=True)]


def _glitch_amplitudes(rng: np.random.Generator, bg: Background, count: int, amplitude: float,
                       amplitude_sigma: float, single_axis_fraction: float) -> np.ndarray:
    """(count, C) signed peak amplitudes: log-normal tilts projected on the axes, or (a fraction) one axis only."""
    amps = amplitude * np.exp(amplitude_sigma * rng.standard_normal(count)) * rng.choice([-1.0, 1.0], count)
    azimuth = rng.uniform(0.0, 360.0, count)
    single = rng.uniform(size=count) < single_axis_fraction
    comps = [tid[-1] for tid in bg.ids]
    az = [INSIGHT_AZIMUTHS.get(c, 0.0) for c in comps]
    dip = [INSIGHT_DIPS.get(c, 0.0) for c in comps]
    per = tilt_projection(amps, azimuth, az, dip) if count else np.zeros((0, len(comps)))
    axis = rng.integers(0, len(comps), count)
    for k in np.flatnonzero(single):
        per[k] = 0.0
        per[k, axis[k]] = amps[k]
    return per


def _add_wave(out: np.ndarray, onset: float, fs: float, amps: np.ndarray,
              wave_of: Callable[[float], np.ndarray]) -> None:
    """Add ``amps[c]·wave`` to ``out[c]``; ``wave_of(shift)`` is a waveform starting ``_PRE`` s before an onset
    ``shift`` s after the sample where it is placed (sub-sample onsets)."""
    i0 = int(np.floor(onset * fs))
    wave = wave_of(onset - i0 / fs)
    a = i0 - int(round(_PRE * fs))
    b = min(a + wave.size, out.shape[1])
    for c in range(out.shape[0]):
        out[c, max(a, 0):b] += amps[c] * wave[max(a, 0) - a:b - a]


def _render_glitches(rng: np.random.Generator, bg: Background, span: int, onsets: np.ndarray, amplitude: float,
                     amplitude_sigma: float, single_axis_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(C, span) acceleration-step glitches at ``onsets`` (s) and their (count, C) amplitudes."""
    fs = bg.sampling_rate
    per = _glitch_amplitudes(rng, bg, len(onsets), amplitude, amplitude_sigma, single_axis_fraction)
    removed = np.zeros((len(bg.ids), span))
    for k, onset in enumerate(onsets):
        _add_wave(removed, onset, fs, per[k], lambda shift: glitch_template(fs, 60.0, shift, VBB_PAZ, _PRE))
    return removed, per


def raised_cosine_spectrum(freqs: np.ndarray, rise: float) -> np.ndarray:
    """Spectrum of a unit-area raised-cosine pulse ``(1 − cos 2πt/T)/T`` on [0, T] (T = ``rise`` s): the derivative
    of a step that rises smoothly over T. T = 0 gives 1 (an instantaneous step)."""
    if rise <= 0:
        return np.ones_like(np.asarray(freqs, dtype=float), dtype=complex)
    x = np.asarray(freqs, dtype=float) * rise
    return (np.sinc(x) + 0.5 * (np.sinc(x - 1.0) + np.sinc(x + 1.0))) * np.exp(-1j * np.pi * x)


def rise_glitch_template(sampling_rate: float, rise: float, duration: float = 60.0, onset_shift: float = 0.0,
                         paz: Paz = VBB_PAZ, pre: float = _PRE, antialias: float = 0.8) -> np.ndarray:
    """VBB output for a step in ground acceleration that rises over ``rise`` s (raised cosine), unit sampled peak.

    Real glitches are not instantaneous steps: thermal tilts settle over a fraction of a second to seconds. The
    step's spectrum H(s)/s² (:func:`unmix.instrument.step_response_spectrum`) is multiplied by the rise's
    (:func:`raised_cosine_spectrum`), the anti-alias low-pass and the onset delay, as
    :func:`unmix.instrument.glitch_template` does; ``rise=0`` is that template (to its ≈1 % sampled-peak
    normalisation). Sample ``k`` is at ``k/sampling_rate − pre − onset_shift`` s from the start of the rise.
    """
    n_out = int(round((pre + duration) * sampling_rate))
    nfft = int(2 ** np.ceil(np.log2(n_out + 200.0 * sampling_rate)))  # the slowest pole has decayed by then
    f = np.fft.rfftfreq(nfft, 1.0 / sampling_rate)
    spec = (step_response_spectrum("glitch", f, paz) * antialias_window(f, sampling_rate, antialias)
            * raised_cosine_spectrum(f, rise))
    wave = np.fft.irfft(spec * np.exp(-2j * np.pi * f * (pre + onset_shift)), nfft)[:n_out]
    return wave / wave[np.argmax(np.abs(wave))]


def burst_case(bg: Background, span: int = 36000, count: int = 1, seed: int = 0, amplitude: float = 1.5,
               duration: tuple[float, float] = (600.0, 1200.0), prior_count: int = 20, prior_length: int = 2048,
               guard_seconds: float = 60.0, max_tries: int = 500) -> BenchCase:
    """``count`` atmospheric bursts (median RMS-scale ``amplitude`` σ, ``duration`` s) from the synthetic
    generator's wind model, each wholly inside a ``span``-sample target."""
    if count < 1:
        raise ConfigError("the burst count must be ≥ 1")
    rng = np.random.default_rng(seed)
    fs = bg.sampling_rate
    s0, prior, tiles, truth = _target(bg, span, rng, prior_count, prior_length, guard_seconds)
    seconds = span / fs
    if duration[0] > seconds:
        raise ConfigError(f"bursts of ≥ {duration[0]:g} s do not fit in a {seconds:g}-s target span")
    start = bg.starttime + s0 / fs
    rec = _placed(lambda attempt: SyntheticConfig(
        hours=seconds / 3600.0, start=start, sampling_rate=fs, include=("wind",), seed=seed * 100003 + attempt,
        wind_rate_per_sol=count * SECONDS_PER_SOL / seconds, wind_night_fraction=1.0, dust_devil_fraction=0.0,
        wind_duration=tuple(duration), wind_amplitude_median=amplitude, wind_amplitude_sigma=0.3),
        count, start + seconds, lambda ev: True, max_tries, f"{count} burst(s) of {duration} s in {seconds:g} s")
    wind = np.stack([np.asarray(tr.data, dtype=np.float64)[:span] for tr in rec.sources["wind"]])
    info = {**_span_info("bursts", bg, seed, s0, span, prior, prior_length, tiles),
            "bursts": [{"start_s": float(e.start - start), "end_s": float(e.end - start), "amplitude": e.amplitude}
                       for e in rec.events]}
    return BenchCase(f"bursts seed {seed}", _stream(bg, s0, truth + wind), truth, wind, prior, info)


def _placed(config_of, count: int, end, accept, max_tries: int, what: str):
    """The first synthetic record (``config_of(attempt)``) with exactly ``count`` events, all ending by ``end`` and
    each accepted by ``accept``."""
    for attempt in range(max_tries):
        rec = generate(config_of(attempt))
        if len(rec.events) == count and all(e.end <= end and accept(e) for e in rec.events):
            return rec
    raise ConfigError(f"could not place {what} after {max_tries} tries")


def _quake(bg: Background, s0: int, span: int, seed: int, amplitude: float, duration: tuple[float, float],
           overlap: tuple[float, float] | None, max_tries: int = 500) -> tuple[np.ndarray, dict]:
    """(C, span) one synthetic marsquake wholly inside the span (and overlapping ``overlap``, s, when given)."""
    fs = bg.sampling_rate
    seconds = span / fs
    if duration[0] > seconds:
        raise ConfigError(f"a quake of ≥ {duration[0]:g} s does not fit in a {seconds:g}-s target span")
    start = bg.starttime + s0 / fs

    def overlaps(ev) -> bool:
        return overlap is None or (ev.start - start < overlap[1] and ev.end - start > overlap[0])

    rec = _placed(lambda attempt: SyntheticConfig(
        hours=seconds / 3600.0, start=start, sampling_rate=fs, include=("quakes",), seed=seed * 100019 + attempt,
        quake_rate_per_sol=SECONDS_PER_SOL / seconds, quake_amplitude_median=amplitude, quake_amplitude_sigma=0.0,
        quake_duration=tuple(duration)), 1, start + seconds, overlaps, max_tries,
        f"a quake of {duration} s in {seconds:g} s")
    ev = rec.events[0]
    a, b = ev.start - start, ev.end - start
    data = np.stack([np.asarray(tr.data, dtype=np.float64)[:span] for tr in rec.sources["quakes"]])
    sp = float(ev.params["s_minus_p_s"])
    return data, {"start_s": float(a), "end_s": float(b), "s_arrival_s": float(a + sp), "amplitude": ev.amplitude}


def add_quake(case: BenchCase, bg: Background, seed: int = 0, amplitude: float = 3.0,
              duration: tuple[float, float] = (600.0, 1200.0), overlap: tuple[float, float] | None = None
              ) -> BenchCase:
    """Add a marsquake (median envelope ``amplitude`` σ) to ``case``'s mixture and to the background to keep."""
    span = case.truth_background.shape[1]
    quake, info = _quake(bg, int(case.info["span_offset"]), span, seed, amplitude, duration, overlap)
    for c, tr in enumerate(case.mixture):
        tr.data = np.asarray(tr.data, dtype=np.float64) + quake[c]
    case.truth_background = case.truth_background + quake
    case.quake = quake
    case.info["quake"] = info
    return case


def quake_case(bg: Background, span: int = 36000, count: int = 4, seed: int = 0, amplitude: float = 3.0,
               duration: tuple[float, float] = (600.0, 1200.0), glitch_amplitude: float = 4.0,
               amplitude_sigma: float = 0.6, single_axis_fraction: float = 0.2, prior_count: int = 20,
               prior_length: int = 2048, guard_seconds: float = 60.0) -> BenchCase:
    """A marsquake to keep, with ``count`` glitches (median peak ``glitch_amplitude`` σ) inside its coda (from the
    S arrival to the quake's end); ``count=0``: the quake alone."""
    if count < 0:
        raise ConfigError("the glitch count must be ≥ 0")
    rng = np.random.default_rng(seed)
    fs = bg.sampling_rate
    s0, prior, tiles, truth = _target(bg, span, rng, prior_count, prior_length, guard_seconds)
    quake, qinfo = _quake(bg, s0, span, seed, amplitude, duration, None)
    lo, hi = qinfo["s_arrival_s"], min(qinfo["end_s"], span / fs - 15.0)
    onsets = np.sort(rng.uniform(lo, max(hi, lo + 1.0), count))
    removed, per = _render_glitches(rng, bg, span, onsets, glitch_amplitude, amplitude_sigma, single_axis_fraction)
    info = {**_span_info("quake", bg, seed, s0, span, prior, prior_length, tiles), "quake": qinfo,
            "glitches": _glitch_info(onsets, per)}
    return BenchCase(f"quake seed {seed}", _stream(bg, s0, truth + quake + removed), truth + quake, removed, prior,
                     info, quake)


SPIKE_LAG = (-0.5, 0.5)
"""Spike onset relative to its glitch's (s), as the synthetic generator's attached spikes."""
SPIKE_RATIO = SyntheticConfig.spike_amplitude_median / SyntheticConfig.glitch_amplitude_median
"""Median spike peak over median glitch peak, from the synthetic generator's defaults."""


def hard_glitch_case(bg: Background, span: int = 8192, count: int = 4, seed: int = 0, amplitude: float = 4.0,
                     amplitude_sigma: float = 0.6, single_axis_fraction: float = 0.2,
                     rise_time: tuple[float, float] = (0.2, 3.0), overlap_fraction: float = 0.5,
                     overlap_gap: tuple[float, float] = (1.0, 10.0), spike_fraction: float = 0.5,
                     prior_count: int = 20, prior_length: int = 2048, guard_seconds: float = 60.0) -> BenchCase:
    """``count`` glitch events that the template model does not match exactly, on a ``span``-sample target.

    Each glitch's acceleration step rises over a raised cosine of ``rise_time`` s (uniform;
    :func:`rise_glitch_template`); a fraction ``overlap_fraction`` of events are pairs, the second glitch
    ``overlap_gap`` s after the first (its own amplitude, direction and rise); a fraction ``spike_fraction`` of
    glitches carry the short displacement-step spike (:func:`unmix.instrument.spike_template`) as in the synthetic
    generator: onset within :data:`SPIKE_LAG` of the glitch's, same direction, random sign, log-normal peak of median
    :data:`SPIKE_RATIO` × ``amplitude``. Amplitudes are sampled peaks in σ. ``info['glitches']`` lists per glitch its
    onset, rise, partner (the other glitch of its pair), whether another glitch starts within ``overlap_gap[1]`` s,
    and its spike's onset and amplitude (0: none).
    """
    if count < 0 or not 0 <= rise_time[0] <= rise_time[1] or not 0 < overlap_gap[0] <= overlap_gap[1]:
        raise ConfigError("the glitch count must be ≥ 0, rise_time (min, max) with 0 ≤ min ≤ max and overlap_gap "
                          "(min, max) with 0 < min ≤ max")
    rng = np.random.default_rng(seed)
    fs = bg.sampling_rate
    s0, prior, tiles, truth = _target(bg, span, rng, prior_count, prior_length, guard_seconds)
    first = rng.uniform(2.0, max(span / fs - 15.0 - overlap_gap[1], 2.5), count)
    paired = rng.uniform(size=count) < overlap_fraction
    second = first[paired] + rng.uniform(*overlap_gap, int(paired.sum()))
    onsets = np.concatenate([first, second])
    partner = np.concatenate([np.where(paired, count + np.cumsum(paired) - 1, -1), np.flatnonzero(paired)])
    order = np.argsort(onsets, kind="stable")
    rank = np.argsort(order)
    onsets, partner = onsets[order], np.where(partner[order] >= 0, rank[np.maximum(partner[order], 0)], -1)
    removed, per, rises = _render_rise_glitches(rng, bg, span, onsets, amplitude, amplitude_sigma,
                                                single_axis_fraction, rise_time)
    spikes = _render_spikes(rng, removed, fs, onsets, per, spike_fraction, SPIKE_RATIO * amplitude)
    info = {**_span_info("hard-glitches", bg, seed, s0, span, prior, prior_length, tiles),
            "glitches": _hard_glitch_info(onsets, per, rises, partner, overlap_gap[1], spikes)}
    return BenchCase(f"hard-glitches seed {seed}", _stream(bg, s0, truth + removed), truth, removed, prior, info)


def _render_rise_glitches(rng: np.random.Generator, bg: Background, span: int, onsets: np.ndarray,
                          amplitude: float, amplitude_sigma: float, single_axis_fraction: float,
                          rise_time: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(C, span) glitches with rise times, their (count, C) amplitudes and (count,) rise times (s)."""
    fs = bg.sampling_rate
    per = _glitch_amplitudes(rng, bg, len(onsets), amplitude, amplitude_sigma, single_axis_fraction)
    rises = rng.uniform(*rise_time, len(onsets))
    removed = np.zeros((len(bg.ids), span))
    for k, onset in enumerate(onsets):
        _add_wave(removed, onset, fs, per[k], lambda shift, r=rises[k]: rise_glitch_template(fs, r, 60.0, shift))
    return removed, per, rises


def _render_spikes(rng: np.random.Generator, removed: np.ndarray, fs: float, onsets: np.ndarray, per: np.ndarray,
                   fraction: float, median: float) -> list[tuple[float, np.ndarray] | None]:
    """Add a spike to a ``fraction`` of the glitches (in place); per glitch (onset s, (C,) amplitudes) or None."""
    n = len(onsets)
    attached = rng.uniform(size=n) < fraction
    lag = rng.uniform(*SPIKE_LAG, n)
    amp = median * np.exp(SyntheticConfig.spike_amplitude_sigma * rng.standard_normal(n)) * rng.choice([-1.0, 1.0], n)
    out: list[tuple[float, np.ndarray] | None] = []
    for k in range(n):
        if not attached[k]:
            out.append(None)
            continue
        peak = np.max(np.abs(per[k]))
        amps = amp[k] * per[k] / peak if peak > 0 else np.zeros_like(per[k])  # the glitch's direction
        onset = max(float(onsets[k] + lag[k]), 0.0)
        _add_wave(removed, onset, fs, amps, lambda shift: spike_template(fs, 30.0, shift, VBB_PAZ, _PRE))
        out.append((onset, amps))
    return out


def _hard_glitch_info(onsets: np.ndarray, per: np.ndarray, rises: np.ndarray, partner: np.ndarray, near: float,
                      spikes: list) -> list[dict]:
    rows = []
    for k, base in enumerate(_glitch_info(onsets, per)):
        others = np.delete(onsets, k)
        spike = spikes[k]
        rows.append({**base, "rise_s": float(rises[k]), "partner": int(partner[k]) if partner[k] >= 0 else None,
                     "overlaps": bool(np.any(np.abs(others - onsets[k]) <= near)),
                     "spike_onset_s": None if spike is None else spike[0],
                     "spike_amplitude": 0.0 if spike is None else float(spike[1][np.argmax(np.abs(spike[1]))]),
                     "spike_amplitudes": None if spike is None else [float(v) for v in spike[1]]})
    return rows


def gust_train(n: int, fs: float, std: np.ndarray, rng: np.random.Generator, count: int = 10,
               amplitude: tuple[float, float] = (2.0, 6.0), tau: tuple[float, float] = (8.0, 25.0),
               events: list | None = None) -> np.ndarray:
    """``(C, n)`` wind gusts unlike the synthetic generator's bursts: each is noise band-limited to 0.05–1 Hz
    (fourth-order Butterworth, zero phase) under a skewed envelope ``t² exp(−t/τ)`` (peak 1 at t = 2τ, τ uniform in
    ``tau`` s), ``amplitude`` (uniform) times the component's ``std``, independent carriers per component; onsets
    uniform over the record but the last minute. It has no mean and no long-period part. Each gust's onset, τ and
    per-component amplitudes are appended to ``events`` when given."""
    C = std.size
    out = np.zeros((C, n))
    sos = butter(4, [0.05, 1.0], btype="band", fs=fs, output="sos")
    t = np.arange(n) / fs
    for _ in range(count):
        t0, tau_k = rng.uniform(0, n / fs - 60), rng.uniform(*tau)
        u = np.clip(t - t0, 0, None)
        env = (u / (2 * tau_k)) ** 2 * np.exp(2 - u / tau_k)
        amps = []
        for c in range(C):
            carrier = sosfiltfilt(sos, rng.standard_normal(n))
            carrier /= carrier.std()
            amps.append(rng.uniform(*amplitude) * std[c])
            out[c] += amps[-1] * env * carrier
        if events is not None:
            events.append({"onset_s": float(t0), "tau_s": float(tau_k), "peak_s": float(t0 + 2 * tau_k),
                           "amplitudes": [float(a) for a in amps]})
    return out


def gust_case(bg: Background, span: int = 36000, count: int | None = None, seed: int = 0,
              amplitude: tuple[float, float] = (2.0, 6.0), tau: tuple[float, float] = (8.0, 25.0),
              prior_count: int = 20, prior_length: int = 2048, guard_seconds: float = 60.0) -> BenchCase:
    """A train of ``count`` wind gusts (None: 5–15 at random) of ``amplitude`` σ on a ``span``-sample target
    (:func:`gust_train`): short, skewed, band-limited gusts, unlike the generator's tens-of-minutes bursts."""
    rng = np.random.default_rng(seed)
    fs = bg.sampling_rate
    if span / fs <= 60.0:
        raise ConfigError(f"a gust train needs a target span over 60 s ({span} samples at {fs:g} Hz)")
    s0, prior, tiles, truth = _target(bg, span, rng, prior_count, prior_length, guard_seconds)
    count = int(rng.integers(5, 16)) if count is None else count
    if count < 1:
        raise ConfigError("the gust count must be ≥ 1")
    events: list = []
    gusts = gust_train(span, fs, np.ones(truth.shape[0]), rng, count, amplitude, tau, events)
    info = {**_span_info("gusts", bg, seed, s0, span, prior, prior_length, tiles),
            "gusts": sorted(events, key=lambda e: e["onset_s"])}
    return BenchCase(f"gusts seed {seed}", _stream(bg, s0, truth + gusts), truth, gusts, prior, info)


def dust_devil_case(bg: Background, span: int = 36000, count: int = 3, seed: int = 0, amplitude: float = 1.5,
                    prior_count: int = 20, prior_length: int = 2048, guard_seconds: float = 60.0,
                    max_tries: int = 500) -> BenchCase:
    """``count`` dust devils (median amplitude ``amplitude`` σ) from the synthetic generator's model, each wholly
    inside a ``span``-sample target: a passing vortex tilts the lander, a long-period pulse (the VBB response to a
    Gaussian acceleration pulse of 5–20 s, peak twice the amplitude, projected on the axes) under a short
    high-frequency wind burst, 60–300 s in all."""
    if count < 1:
        raise ConfigError("the dust-devil count must be ≥ 1")
    rng = np.random.default_rng(seed)
    fs = bg.sampling_rate
    s0, prior, tiles, truth = _target(bg, span, rng, prior_count, prior_length, guard_seconds)
    seconds = span / fs
    if seconds < 300.0:
        raise ConfigError(f"dust devils last up to 300 s and do not fit in a {seconds:g}-s target span")
    start = bg.starttime + s0 / fs
    rec = _placed(lambda attempt: SyntheticConfig(
        hours=seconds / 3600.0, start=start, sampling_rate=fs, include=("wind",), seed=seed * 100043 + attempt,
        wind_rate_per_sol=count * SECONDS_PER_SOL / seconds, wind_night_fraction=1.0, dust_devil_fraction=1.0,
        wind_amplitude_median=amplitude, wind_amplitude_sigma=0.3), count, start + seconds,
        lambda ev: ev.kind == "dust_devil", max_tries, f"{count} dust devil(s) in {seconds:g} s")
    wind = np.stack([np.asarray(tr.data, dtype=np.float64)[:span] for tr in rec.sources["wind"]])
    info = {**_span_info("dust-devils", bg, seed, s0, span, prior, prior_length, tiles),
            "dust_devils": [{"start_s": float(e.start - start), "end_s": float(e.end - start),
                             "amplitude": float(e.amplitude), **{k: float(v) for k, v in e.params.items()}}
                            for e in rec.events]}
    return BenchCase(f"dust-devils seed {seed}", _stream(bg, s0, truth + wind), truth, wind, prior, info)


def select_components(case: BenchCase, components: Sequence[str]) -> BenchCase:
    """``case`` keeping only ``components`` (letters, e.g. ``['V']``) of its mixture, truths, prior and quake, so
    that every method runs on a record with those components only."""
    have = case.components
    missing = [c for c in components if c not in have]
    if missing or not components:
        raise ConfigError(f"component(s) {missing or '(none)'} not in the case ({', '.join(have)})")
    keep = [have.index(c) for c in dict.fromkeys(components)]
    case.mixture = Stream([case.mixture[i] for i in keep])
    case.truth_background = case.truth_background[keep]
    case.truth_removed = case.truth_removed[keep]
    case.prior = case.prior[:, keep]
    case.quake = None if case.quake is None else case.quake[keep]
    case.info["components"] = [have[i] for i in keep]
    return case


def prior_snippets(path: str | Path, count: int = 20, length: int = 2048, seed: int = 0,
                   standardise: bool = False) -> np.ndarray:
    """(R, C, T) snippets of clean background from a file (counts unless ``standardise``), non-overlapping."""
    return labelled_prior_snippets(path, count, length, seed, standardise)[0]


def labelled_prior_snippets(path: str | Path, count: int = 20, length: int = 2048, seed: int = 0,
                            standardise: bool = False) -> tuple[np.ndarray, str]:
    """:func:`prior_snippets` and their component letters, in the order of the array's second axis."""
    records = read_records(path)
    rec = max(records, key=lambda r: r.npts)
    x = rec.to_array()
    if standardise:
        x = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    n = x.shape[1] // length
    if n == 0:
        raise DataError(f"shorter than one prior snippet ({length} samples)", path)
    rng = np.random.default_rng(seed)
    starts = sorted(rng.choice(n, size=min(count, n), replace=False).tolist())
    return np.stack([x[:, s * length:(s + 1) * length] for s in starts]), rec.components

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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from obspy import Stream, Trace

from unmix.errors import ConfigError, DataError
from unmix.instrument import VBB_PAZ, glitch_template
from unmix.io import build_records, read_records, read_stream
from unmix.mars_time import SECONDS_PER_SOL
from unmix.synthetic import SyntheticConfig, generate, tilt_projection

INSIGHT_AZIMUTHS = {"U": 135.1, "V": 15.0, "W": 255.0}
INSIGHT_DIPS = {"U": -29.4, "V": -29.2, "W": -29.7}


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
    s0, prior, tiles = _span_and_prior(bg, span, rng, prior_count, prior_length, int(guard_seconds * fs))
    truth = bg.data[:, s0:s0 + span].copy()
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


def _render_glitches(rng: np.random.Generator, bg: Background, span: int, onsets: np.ndarray, amplitude: float,
                     amplitude_sigma: float, single_axis_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(C, span) acceleration-step glitches at ``onsets`` (s) and their (count, C) amplitudes."""
    count, fs = len(onsets), bg.sampling_rate
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
    removed = np.zeros((len(comps), span))
    pre = 2.0
    pre_n = int(round(pre * fs))
    for k in range(count):
        i0 = int(np.floor(onsets[k] * fs))
        frac = onsets[k] - i0 / fs
        wave = glitch_template(fs, 60.0, frac, VBB_PAZ, pre)
        a, b = i0 - pre_n, min(i0 - pre_n + wave.size, span)
        for c in range(len(comps)):
            removed[c, max(a, 0):b] += per[k, c] * wave[max(a, 0) - a:b - a]
    return removed, per


def burst_case(bg: Background, span: int = 36000, count: int = 1, seed: int = 0, amplitude: float = 1.5,
               duration: tuple[float, float] = (600.0, 1200.0), prior_count: int = 20, prior_length: int = 2048,
               guard_seconds: float = 60.0, max_tries: int = 500) -> BenchCase:
    """``count`` atmospheric bursts (median RMS-scale ``amplitude`` σ, ``duration`` s) from the synthetic
    generator's wind model, each wholly inside a ``span``-sample target."""
    if count < 1:
        raise ConfigError("the burst count must be ≥ 1")
    rng = np.random.default_rng(seed)
    fs = bg.sampling_rate
    s0, prior, tiles = _span_and_prior(bg, span, rng, prior_count, prior_length, int(guard_seconds * fs))
    truth = bg.data[:, s0:s0 + span].copy()
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
    s0, prior, tiles = _span_and_prior(bg, span, rng, prior_count, prior_length, int(guard_seconds * fs))
    truth = bg.data[:, s0:s0 + span].copy()
    quake, qinfo = _quake(bg, s0, span, seed, amplitude, duration, None)
    lo, hi = qinfo["s_arrival_s"], min(qinfo["end_s"], span / fs - 15.0)
    onsets = np.sort(rng.uniform(lo, max(hi, lo + 1.0), count))
    removed, per = _render_glitches(rng, bg, span, onsets, glitch_amplitude, amplitude_sigma, single_axis_fraction)
    info = {**_span_info("quake", bg, seed, s0, span, prior, prior_length, tiles), "quake": qinfo,
            "glitches": _glitch_info(onsets, per)}
    return BenchCase(f"quake seed {seed}", _stream(bg, s0, truth + quake + removed), truth + quake, removed, prior,
                     info, quake)


def prior_snippets(path: str | Path, count: int = 20, length: int = 2048, seed: int = 0,
                   standardise: bool = False) -> np.ndarray:
    """(R, C, T) snippets of clean background from a file (counts unless ``standardise``), non-overlapping."""
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
    return np.stack([x[:, s * length:(s + 1) * length] for s in starts])

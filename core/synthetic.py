"""Synthetic InSight-like 3-component VBB records with ground truth (demo, tests, benchmarks).

A record is the exact sum of five sources, each generated on the same sample grid (U, V, W; counts-like units):

* ``background`` — coloured noise whose level and spectrum follow LMST: a quiet night process (red, long-period
  dominated) everywhere plus a day process (broadband, relatively richer in 1–5 Hz, as in real afternoon data)
  weighted by a smooth daytime activity :func:`daytime_activity` (≈0 from 18:00 to 06:00 LMST, ramps of ≈1 h around
  07:30 and 17:00, maximum around 13:00). Components share a common part (``component_correlation``).
  Generated block-wise in the Fourier domain with sine-window overlap (constant variance, no seams).
* ``glitches`` — VBB responses to steps in ground acceleration (:func:`unmix.instrument.glitch_template`) with
  sub-sample onsets. The rate follows LMST: a uniform part plus wrapped-Gaussian peaks (default 06:00 LMST, sunrise
  warming, and 17:30 LMST, evening cooling; see ``glitch_peaks``). Peak amplitudes are log-normal. A tilt of amplitude
  a in horizontal direction θ (degrees from north) projects onto axis c as ``a·cos(dip_c)·cos(θ − az_c)``; a
  fraction ``single_axis_fraction`` of glitches are sensor-internal and hit one axis only (``axis`` set, no azimuth).
* ``spikes`` — responses to steps in ground displacement (:func:`unmix.instrument.spike_template`): isolated ones
  (same LMST shape as glitches) and ones attached to a fraction of glitch onsets, projected like glitches.
* ``wind`` — gusts (minutes to tens of minutes; broadband 0.05–5 Hz carrier with a lander-mode bump at 2.4 Hz,
  gust-modulated envelope) and dust devils (a long-period tilt pulse: VBB response to a Gaussian acceleration pulse,
  plus a short high-frequency burst). Onsets follow :func:`daytime_activity` (a small share at night).
* ``quakes`` — emergent P and S trains with exponential coda, 0.2–2 Hz, 10–30 min, P polarised along the ray
  (incidence 25°), S mostly transverse, plus a scattered part independent on each axis.

Gaps (``gaps`` > 0) remove samples: every stream (mixture and each source) is then split into one trace per
contiguous segment; ``SyntheticRecord.gaps`` lists them as (first missing sample, first sample after). The ground-truth
catalogues are unaffected. Each source draws from its own child of ``numpy.random.SeedSequence(seed)``, so the same
seed gives bit-identical output and switching a source off (``include``) leaves the other sources unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from obspy import Stream, Trace, UTCDateTime

from unmix.atomic import atomic_path, write_stream
from unmix.errors import ConfigError
from unmix.instrument import VBB_PAZ, Paz, glitch_template, spike_template, step_response_spectrum
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress
from unmix.mars_time import SECONDS_PER_SOL, lmst_to_utc, sol_float

SOURCES: tuple[str, ...] = ("background", "glitches", "spikes", "wind", "quakes")
"""Source names, in the order in which they are summed into the mixture."""

#: Network code of synthetic records (the code IRIS's synthetics service uses), so they never pass for XB.ELYSE data.
SYNTHETIC_NETWORK = "SY"
_BLOCK = 2**16
_PRE = 2.0
_GRID = 60.0


@dataclass
class SyntheticConfig:
    """Everything that defines a synthetic record; amplitudes are in counts (peak for transients, RMS for noise)."""

    sols: float = 1.0
    hours: float | None = None
    start: UTCDateTime | str | None = "2019-05-22T00:00:00"
    start_sol: int | None = None
    start_lmst: float = 0.0
    sampling_rate: float = 20.0
    seed: int = 0
    include: Iterable[str] = SOURCES
    dtype: str = "float64"
    # background
    night_rms: float = 150.0
    day_rms: float = 600.0
    component_correlation: float = 0.5
    # glitches and spikes
    glitch_rate_per_sol: float = 40.0
    glitch_peaks: tuple[tuple[float, float, float], ...] = ((6.0, 0.75, 0.30), (17.5, 1.0, 0.35))
    glitch_amplitude_median: float = 1500.0
    glitch_amplitude_sigma: float = 0.9
    single_axis_fraction: float = 0.2
    spike_rate_per_sol: float = 20.0
    glitch_spike_fraction: float = 0.3
    spike_amplitude_median: float = 400.0
    spike_amplitude_sigma: float = 0.8
    template_duration: float = 60.0
    # wind
    wind_rate_per_sol: float = 12.0
    dust_devil_fraction: float = 0.3
    wind_night_fraction: float = 0.05
    wind_amplitude_median: float = 800.0
    wind_amplitude_sigma: float = 0.5
    wind_duration: tuple[float, float] = (120.0, 2400.0)
    # quakes
    quake_rate_per_sol: float = 2.0
    quake_amplitude_median: float = 400.0
    quake_amplitude_sigma: float = 0.8
    quake_duration: tuple[float, float] = (600.0, 1800.0)
    quake_band: tuple[float, float] = (0.2, 2.0)
    # gaps
    gaps: int = 0
    gap_duration: tuple[float, float] = (30.0, 600.0)
    # identity and instrument: a synthetic network code (as IRIS's synthetics service uses), never the real XB
    network: str = SYNTHETIC_NETWORK
    station: str = "ELYSE"
    location: str = "02"
    channels: tuple[str, str, str] = ("BHU", "BHV", "BHW")
    azimuths: tuple[float, float, float] = (135.1, 15.0, 255.0)
    dips: tuple[float, float, float] = (-29.4, -29.2, -29.7)
    paz: Paz = VBB_PAZ

    def __post_init__(self) -> None:
        include = {self.include} if isinstance(self.include, str) else set(self.include)
        if "all" in include:
            include = set(SOURCES)
        unknown = include - set(SOURCES)
        if unknown:
            raise ConfigError(f"unknown source(s) {sorted(unknown)}; choose from {list(SOURCES)}")
        self.include = frozenset(include)
        if self.hours is not None and self.hours <= 0 or self.hours is None and self.sols <= 0:
            raise ConfigError("the duration (sols or hours) must be > 0")
        if self.sampling_rate <= 0:
            raise ConfigError("sampling_rate must be > 0")
        if not (1 <= len(self.network) <= 2 and self.network.isalnum() and self.network.isascii()):
            raise ConfigError(f"network code {self.network!r} must be 1 or 2 letters or digits (SEED)")
        if len(self.channels) != 3 or len(self.azimuths) != 3 or len(self.dips) != 3:
            raise ConfigError("channels, azimuths and dips need exactly 3 entries (U, V, W)")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError("dtype must be 'float32' or 'float64'")
        if not 0 <= self.component_correlation <= 1:
            raise ConfigError("component_correlation must be in [0, 1]")
        if sum(w for _, _, w in self.glitch_peaks) > 1:
            raise ConfigError("the glitch_peaks fractions must add up to at most 1")
        rates = (self.glitch_rate_per_sol, self.spike_rate_per_sol, self.wind_rate_per_sol, self.quake_rate_per_sol)
        if min(rates) < 0 or self.gaps < 0:
            raise ConfigError("rates and the number of gaps must be ≥ 0")
        for name in ("wind_duration", "quake_duration", "gap_duration"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ConfigError(f"{name} must be (min, max) with 0 < min ≤ max")

    @property
    def duration(self) -> float:
        """Record length in seconds."""
        return self.hours * 3600.0 if self.hours is not None else self.sols * SECONDS_PER_SOL

    @property
    def starttime(self) -> UTCDateTime:
        """First sample time: ``start_sol``/``start_lmst`` if a sol is given, else ``start``."""
        if self.start_sol is not None:
            return lmst_to_utc(self.start_sol, self.start_lmst)
        if self.start is None:
            raise ConfigError("give start or start_sol")
        return UTCDateTime(self.start)

    @property
    def npts(self) -> int:
        return int(round(self.duration * self.sampling_rate))


@dataclass(frozen=True)
class Glitch:
    """One glitch or spike: onset, signed per-component peak amplitudes (U, V, W), tilt amplitude and direction."""

    onset: UTCDateTime
    amplitudes: tuple[float, float, float]
    amplitude: float
    azimuth: float | None
    kind: str
    axis: int | None = None


@dataclass(frozen=True)
class Event:
    """A wind burst (``'gust'``, ``'dust_devil'``) or a marsquake (``'quake'``) with its time span and parameters."""

    kind: str
    start: UTCDateTime
    end: UTCDateTime
    amplitude: float
    azimuth: float
    params: dict = field(default_factory=dict)


@dataclass
class WindowLabels:
    """Per-window energy of each source (summed over the components asked for) and the dominant source.

    ``starts`` are POSIX timestamps of window starts; ``share`` rows sum to 1; ``valid`` is False where a window
    overlaps a gap (its energies are still those of the gap-free truth).
    """

    starts: np.ndarray
    window: float
    names: tuple[str, ...]
    energy: np.ndarray
    share: np.ndarray
    dominant: np.ndarray
    valid: np.ndarray


@dataclass
class SyntheticRecord:
    """A generated record: the mixture, each source, and the ground-truth catalogues."""

    config: SyntheticConfig
    mixture: Stream
    sources: dict[str, Stream]
    glitches: list[Glitch]
    events: list[Event]
    gaps: list[tuple[UTCDateTime, UTCDateTime]]
    _truth: dict[str, np.ndarray] = field(repr=False, default_factory=dict)

    def labels(self, window: float = 600.0, hop: float | None = None,
               sources: Iterable[str] | None = None, components: str | None = None) -> WindowLabels:
        """Energy share of each source in windows of ``window`` s every ``hop`` s (default: ``window``), over the
        components whose channel code ends in one of the letters ``components`` (default: all), so that a source
        is labelled where it dominates the data a model sees (a glitch invisible on V is no glitch for V alone)."""
        rows = self._component_rows(components)
        fs = self.config.sampling_rate
        names = tuple(sources) if sources is not None else SOURCES
        n = int(round(window * fs))
        h = int(round((hop if hop is not None else window) * fs))
        npts = self.config.npts
        if n < 1 or h < 1 or n > npts:
            raise ConfigError("window and hop must be > 0 and the window no longer than the record")
        starts = np.arange(0, npts - n + 1, h)
        energy = np.empty((starts.size, len(names)))
        for j, name in enumerate(names):
            power = np.sum(self._truth[name][rows].astype(np.float64) ** 2, axis=0)
            cum = np.concatenate(([0.0], np.cumsum(power)))
            energy[:, j] = cum[starts + n] - cum[starts]
        total = energy.sum(axis=1, keepdims=True)
        share = np.divide(energy, total, out=np.zeros_like(energy), where=total > 0)
        dominant = np.asarray(names)[np.argmax(share, axis=1)]
        valid = np.ones(starts.size, dtype=bool)
        t0 = self.config.starttime
        for g0, g1 in self.gaps:
            i0, i1 = round((g0 - t0) * fs), round((g1 - t0) * fs)
            valid &= ~((starts < i1) & (starts + n > i0))
        return WindowLabels(t0.timestamp + starts / fs, window, names, energy, share, dominant, valid)

    def _component_rows(self, components: str | None) -> np.ndarray | slice:
        """Rows of the truth arrays (ordered as ``config.channels``) of the components ``components`` (a slice when
        all: no copy of the truth)."""
        letters = [ch[-1] for ch in self.config.channels]
        rows = np.flatnonzero([components is None or c in components for c in letters])
        if not len(rows):
            raise ConfigError(f"none of the components {components!r} is in this record ({''.join(letters)})")
        return slice(None) if len(rows) == len(letters) else rows

    def write(self, directory: str | Path, format: str = "MSEED") -> dict[str, Path]:
        """Write ``mixture`` and each source (``<name>.<ext>``) plus ``truth.json``; each file atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        ext = {"MSEED": "mseed", "SAC": "sac"}.get(format.upper(), format.lower())
        written: dict[str, Path] = {}
        single_trace = format.upper() in ("SAC", "SH_ASC", "GSE1", "WAV", "Q")
        for name, stream in [("mixture", self.mixture), *self.sources.items()]:
            if single_trace:
                parts = [(f"{name}.{tr.id}" + (f".{i}" if len(stream.select(id=tr.id)) > 1 else ""), Stream([tr]))
                         for i, tr in enumerate(stream)]
            else:
                parts = [(name, stream)]
            for stem, part in parts:
                path = directory / f"{stem}.{ext}"
                with atomic_path(path) as tmp:
                    write_stream(part, tmp, format)
                written[stem] = path
        path = directory / "truth.json"
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.truth_dict(), indent=1))
        written["truth"] = path
        return written

    def truth_dict(self) -> dict:
        """JSON-ready ground truth: catalogues, gaps, and the configuration."""
        cfg = {k: v for k, v in asdict(self.config).items() if k != "paz"}
        cfg["include"] = sorted(self.config.include)
        cfg["start"] = str(self.config.starttime)
        return {
            "config": cfg,
            "glitches": [{**asdict(g), "onset": str(g.onset)} for g in self.glitches],
            "events": [{**asdict(e), "start": str(e.start), "end": str(e.end)} for e in self.events],
            "gaps": [[str(a), str(b)] for a, b in self.gaps],
        }


def daytime_activity(hours: np.ndarray | float) -> np.ndarray:
    """Wind/convection activity in [0, 1] versus LMST hours: ≈0 at night, ramps near 07:30 and 17:00, peak ≈13:00."""
    h = np.mod(np.asarray(hours, dtype=float), 24.0)
    rise = 1.0 / (1.0 + np.exp(-(h - 7.5) / 0.5))
    fall = 1.0 / (1.0 + np.exp(-(17.0 - h) / 0.5))
    return rise * fall * (0.6 + 0.4 * np.exp(-0.5 * ((h - 13.0) / 2.5) ** 2))


def glitch_lmst_density(hours: np.ndarray | float, peaks: tuple[tuple[float, float, float], ...]) -> np.ndarray:
    """Glitch onset density per LMST hour (integrates to 1 over 24 h): uniform + wrapped Gaussians (hour, σ, share)."""
    h = np.mod(np.asarray(hours, dtype=float), 24.0)
    dens = np.full_like(h, (1.0 - sum(w for _, _, w in peaks)) / 24.0)
    for centre, width, weight in peaks:
        for k in (-24.0, 0.0, 24.0):
            dens = dens + weight * np.exp(-0.5 * ((h - centre - k) / width) ** 2) / (width * np.sqrt(2 * np.pi))
    return dens


_DAY_INTEGRAL = float(np.mean(daytime_activity(np.linspace(0.0, 24.0, 2401)[:-1])) * 24.0)


def _hp(f: np.ndarray, fc: float, order: int = 2) -> np.ndarray:
    x = (f / fc) ** order
    return x / np.sqrt(1.0 + x * x)


def _lp(f: np.ndarray, fc: float, order: int = 2) -> np.ndarray:
    return 1.0 / np.sqrt(1.0 + (f / fc) ** (2 * order))


def _night_spectrum(f: np.ndarray, fs: float) -> np.ndarray:
    fp = np.maximum(f, 1e-6)
    return _hp(fp, 0.004) * ((0.03 / fp) + 0.03) * _lp(fp, 0.4 * fs, 8)


def _day_spectrum(f: np.ndarray, fs: float) -> np.ndarray:
    fp = np.maximum(f, 1e-6)
    return _hp(fp, 0.004) * (0.3 * (0.03 / fp) ** 0.7 + 0.5 + 0.6 * np.exp(-0.5 * ((fp - 3.0) / 1.5) ** 2)) * _lp(
        fp, 0.4 * fs, 8)


def _gust_spectrum(f: np.ndarray, fs: float) -> np.ndarray:
    fp = np.maximum(f, 1e-6)
    return _hp(fp, 0.05) * _lp(fp, 5.0, 2) * ((0.3 / fp) ** 0.5 + 1.5 * np.exp(-0.5 * ((fp - 2.4) / 0.25) ** 2))


def _band(f: np.ndarray, lo: float, hi: float, order: int = 4) -> np.ndarray:
    return _hp(np.maximum(f, 1e-9), lo, order) * _lp(f, hi, order)


def _axis_vectors(config: SyntheticConfig) -> np.ndarray:
    """Unit vectors (N, E, Z-up) of the three axes; SEED dip is positive downwards."""
    az = np.radians(config.azimuths)
    dip = np.radians(config.dips)
    return np.stack([np.cos(dip) * np.cos(az), np.cos(dip) * np.sin(az), -np.sin(dip)], axis=1)


def tilt_projection(amplitude: np.ndarray | float, azimuth: np.ndarray | float,
                    azimuths: Iterable[float], dips: Iterable[float]) -> np.ndarray:
    """Per-axis amplitudes ``a·cos(dip)·cos(θ − az)`` of a horizontal tilt; shape (..., 3)."""
    az = np.radians(np.asarray(tuple(azimuths), dtype=float))
    dip = np.radians(np.asarray(tuple(dips), dtype=float))
    theta = np.radians(np.asarray(azimuth, dtype=float))[..., None]
    return np.asarray(amplitude, dtype=float)[..., None] * np.cos(dip) * np.cos(theta - az)


class _Clock:
    """LMST hours at arbitrary offsets (s) from the start, via a 60-s grid of the continuous sol number."""

    def __init__(self, start: UTCDateTime, duration: float) -> None:
        self.grid = np.arange(0.0, duration + 2 * _GRID, _GRID)
        self.sols = sol_float(start.timestamp + self.grid)

    def hours(self, offsets: np.ndarray) -> np.ndarray:
        return np.mod(np.interp(offsets, self.grid, self.sols), 1.0) * 24.0


def _poisson_onsets(rng: np.random.Generator, clock: _Clock, duration: float, per_sol: float,
                    density) -> np.ndarray:
    """Onset offsets (s) of an inhomogeneous Poisson process with ``per_sol``·density(LMST h) per LMST hour."""
    edges = np.append(np.arange(0.0, duration, _GRID), duration)
    widths = np.diff(edges)
    hours = clock.hours(edges[:-1] + widths / 2)
    expected = per_sol * density(hours) * widths * 24.0 / SECONDS_PER_SOL
    counts = rng.poisson(expected)
    cell = np.repeat(np.arange(widths.size), counts)
    return np.sort(edges[cell] + rng.uniform(0.0, 1.0, cell.size) * widths[cell])


def _noise_blocks(rng: np.random.Generator, npts: int, fs: float, spectrum, correlation: float,
                  token: CancelToken, progress: Progress, p0: float, p1: float) -> np.ndarray:
    """(3, npts) unit-variance coloured noise, partly common to the components, by overlapping Fourier blocks."""
    block = min(_BLOCK, max(256, int(2 ** np.ceil(np.log2(npts)))))
    hop = block // 2
    amp = spectrum(np.fft.rfftfreq(block, 1.0 / fs), fs)
    amp[0] = amp[-1] = 0.0
    amp *= block / (2.0 * np.sqrt(np.sum(amp**2)))
    window = np.sin(np.pi * (np.arange(block) + 0.5) / block)
    out = np.zeros((3, npts))
    starts = np.arange(-hop, npts, hop)
    a, b = np.sqrt(correlation), np.sqrt(1.0 - correlation)
    for i, s in enumerate(starts):
        token.check()
        z = rng.standard_normal((4, 2, amp.size))
        spec = (z[:, 0] + 1j * z[:, 1]) * amp
        seg = np.fft.irfft(a * spec[:1] + b * spec[1:], block, axis=-1) * window
        lo, hi = max(s, 0), min(s + block, npts)
        out[:, lo:hi] += seg[:, lo - s:hi - s]
        progress(p0 + (p1 - p0) * (i + 1) / starts.size, "background noise")
    return out


def _overlap_add(out: np.ndarray, index0: np.ndarray, waves: np.ndarray, amps: np.ndarray) -> None:
    """Add ``amps[k, c]·waves[k]`` into ``out[c]`` starting at sample ``index0[k]`` (clipped to the record)."""
    idx = index0[:, None] + np.arange(waves.shape[1])
    ok = (idx >= 0) & (idx < out.shape[1])
    for c in range(out.shape[0]):
        np.add.at(out[c], idx[ok], (amps[:, c, None] * waves)[ok])


def _render_steps(out: np.ndarray, onsets: np.ndarray, amps: np.ndarray, kind: str, config: SyntheticConfig,
                  token: CancelToken) -> None:
    fs = config.sampling_rate
    pos = onsets * fs
    i0 = np.floor(pos).astype(int)
    frac = (pos - i0) / fs
    make = glitch_template if kind == "glitch" else spike_template
    duration = config.template_duration if kind == "glitch" else min(config.template_duration, 30.0)
    pre_n = int(round(_PRE * fs))
    for k in range(0, onsets.size, 256):
        token.check()
        waves = make(fs, duration, frac[k:k + 256], config.paz, _PRE)
        _overlap_add(out, i0[k:k + 256] - pre_n, np.atleast_2d(waves), amps[k:k + 256])


def _glitch_catalogue(rng: np.random.Generator, config: SyntheticConfig, clock: _Clock
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Onsets, tilt amplitudes, azimuths (NaN for single-axis), single axes (−1 for tilts), per-axis amplitudes."""
    onsets = _poisson_onsets(rng, clock, config.duration, config.glitch_rate_per_sol,
                             lambda h: glitch_lmst_density(h, config.glitch_peaks))
    n = onsets.size
    amp = config.glitch_amplitude_median * np.exp(config.glitch_amplitude_sigma * rng.standard_normal(n))
    azimuth = rng.uniform(0.0, 360.0, n)
    single = rng.uniform(size=n) < config.single_axis_fraction
    axis = np.where(single, rng.integers(0, 3, n), -1)
    sign = rng.choice([-1.0, 1.0], n)
    per_axis = tilt_projection(amp, azimuth, config.azimuths, config.dips)
    one = np.zeros((n, 3))
    one[np.arange(n), np.maximum(axis, 0)] = sign * amp
    per_axis = np.where(single[:, None], one, per_axis)
    azimuth = np.where(single, np.nan, azimuth)
    return onsets, amp, azimuth, axis, per_axis


def _spike_catalogue(rng: np.random.Generator, config: SyntheticConfig, clock: _Clock,
                     glitch_onsets: np.ndarray, glitch_az: np.ndarray, glitch_axis: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    free = _poisson_onsets(rng, clock, config.duration, config.spike_rate_per_sol,
                           lambda h: glitch_lmst_density(h, config.glitch_peaks))
    attached = rng.uniform(size=glitch_onsets.size) < config.glitch_spike_fraction
    lag = rng.uniform(-0.5, 0.5, glitch_onsets.size)
    onsets = np.concatenate([free, np.clip(glitch_onsets + lag, 0.0, config.duration - 1e-6)[attached]])
    az = np.concatenate([rng.uniform(0.0, 360.0, free.size), glitch_az[attached]])
    axis = np.concatenate([np.full(free.size, -1), glitch_axis[attached]])
    n = onsets.size
    amp = config.spike_amplitude_median * np.exp(config.spike_amplitude_sigma * rng.standard_normal(n))
    sign = rng.choice([-1.0, 1.0], n)
    per_axis = tilt_projection(amp * sign, np.nan_to_num(az), config.azimuths, config.dips)
    single = axis >= 0
    one = np.zeros((n, 3))
    one[np.arange(n), np.maximum(axis, 0)] = sign * amp
    per_axis = np.where(single[:, None], one, per_axis)
    order = np.argsort(onsets, kind="stable")
    return onsets[order], amp[order], az[order], axis[order], per_axis[order]


def _carriers(rng: np.random.Generator, n: int, fs: float, spectrum, count: int) -> np.ndarray:
    """``count`` unit-RMS noise series of length ``n`` with amplitude spectrum ``spectrum(f, fs)``."""
    nfft = int(2 ** np.ceil(np.log2(max(n, 16))))
    amp = spectrum(np.fft.rfftfreq(nfft, 1.0 / fs), fs)
    amp[0] = 0.0
    z = rng.standard_normal((count, 2, amp.size))
    x = np.fft.irfft((z[:, 0] + 1j * z[:, 1]) * amp, nfft, axis=-1)[:, :n]
    return x / np.maximum(np.sqrt(np.mean(x**2, axis=1, keepdims=True)), 1e-30)


def _taper_envelope(n: int, ramp: int) -> np.ndarray:
    env = np.ones(n)
    ramp = max(1, min(ramp, n // 2))
    r = np.sin(0.5 * np.pi * (np.arange(ramp) + 0.5) / ramp) ** 2
    env[:ramp] = r
    env[n - ramp:] = r[::-1]
    return env


def _render_wind(out: np.ndarray, rng: np.random.Generator, config: SyntheticConfig, clock: _Clock,
                 token: CancelToken) -> list[Event]:
    fs, t0, axes = config.sampling_rate, config.starttime, _axis_vectors(config)
    nf = config.wind_night_fraction

    def density(h: np.ndarray) -> np.ndarray:
        return (1 - nf) * daytime_activity(h) / _DAY_INTEGRAL + nf / 24.0

    onsets = _poisson_onsets(rng, clock, config.duration, config.wind_rate_per_sol, density)
    events = []
    for onset in onsets:
        token.check()
        dust = rng.uniform() < config.dust_devil_fraction
        lo, hi = (60.0, 300.0) if dust else config.wind_duration
        length = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        amp = config.wind_amplitude_median * np.exp(config.wind_amplitude_sigma * rng.standard_normal())
        theta = rng.uniform(0.0, 360.0)
        n = max(int(length * fs), 8)
        i0 = int(round(onset * fs))
        horiz = np.array([np.cos(np.radians(theta)), np.sin(np.radians(theta)), 0.0])
        proj = axes @ horiz
        carriers = _carriers(rng, n, fs, _gust_spectrum, 4)
        gust = np.exp(0.4 * _carriers(rng, n, fs, lambda f, _: _lp(f, 1 / 60.0, 2) * (f > 0), 1)[0])
        env = _taper_envelope(n, int(0.25 * n)) * gust
        sig = amp * env * (proj[:, None] * carriers[0] + 0.6 * carriers[1:])
        params: dict = {}
        if dust:
            width = rng.uniform(5.0, 20.0)
            centre = 0.5 * length
            nfft = int(2 ** np.ceil(np.log2(n + 200 * fs)))
            f = np.fft.rfftfreq(nfft, 1.0 / fs)
            accel = np.exp(-2 * (np.pi * width * f) ** 2 - 2j * np.pi * f * centre)
            pulse = np.fft.irfft(step_response_spectrum("glitch", f, config.paz) * 2j * np.pi * f * accel, nfft)[:n]
            pulse /= np.max(np.abs(pulse))
            lp_amp = 2.0 * amp
            sig = sig * np.exp(-0.5 * ((np.arange(n) / fs - centre) / (3 * width)) ** 2)[None]
            sig += lp_amp * proj[:, None] * pulse[None]
            params = {"pulse_width_s": width, "pulse_centre_s": centre, "tilt_pulse_amplitude": lp_amp}
        hi_i = min(i0 + n, out.shape[1])
        out[:, i0:hi_i] += sig[:, :hi_i - i0]
        events.append(Event("dust_devil" if dust else "gust", t0 + onset, t0 + onset + n / fs, float(amp),
                            float(theta), params))
    return events


def _render_quakes(out: np.ndarray, rng: np.random.Generator, config: SyntheticConfig,
                   token: CancelToken) -> list[Event]:
    fs, t0, axes = config.sampling_rate, config.starttime, _axis_vectors(config)
    count = rng.poisson(config.quake_rate_per_sol * config.duration / SECONDS_PER_SOL)
    onsets = np.sort(rng.uniform(0.0, config.duration, count))
    lo, hi = config.quake_band
    events = []
    incidence = np.radians(25.0)
    for onset in onsets:
        token.check()
        length = rng.uniform(*config.quake_duration)
        t_sp = rng.uniform(60.0, min(300.0, length / 3))
        amp = config.quake_amplitude_median * np.exp(config.quake_amplitude_sigma * rng.standard_normal())
        baz = rng.uniform(0.0, 360.0)
        rise_p, rise_s = rng.uniform(5.0, 20.0), rng.uniform(10.0, 30.0)
        n = int(length * fs)
        t = np.arange(n) / fs
        tau = (length - t_sp) / np.log(20.0)
        ts = np.clip(t - t_sp, 0.0, None)
        env_p = 0.5 * (1 - np.exp(-((t / rise_p) ** 2))) * np.exp(-t / tau)
        env_s = (1 - np.exp(-((ts / rise_s) ** 2))) * np.exp(-ts / tau) * (t >= t_sp)
        b = np.radians(baz)
        radial = np.array([-np.cos(b), -np.sin(b), 0.0])
        transverse = np.array([np.sin(b), -np.cos(b), 0.0])
        up = np.array([0.0, 0.0, 1.0])
        p_vec = np.sin(incidence) * radial + np.cos(incidence) * up
        sv_vec = np.cos(incidence) * radial - np.sin(incidence) * up
        c = _carriers(rng, n, fs, lambda f, _: _band(f, lo, hi), 6)
        sig = (axes @ p_vec)[:, None] * c[0] * env_p
        sig = sig + ((axes @ transverse)[:, None] * c[1] + 0.5 * (axes @ sv_vec)[:, None] * c[2]) * env_s
        sig = amp * (sig + 0.3 * c[3:] * (env_p + env_s))
        i0 = int(round(onset * fs))
        hi_i = min(i0 + n, out.shape[1])
        out[:, i0:hi_i] += sig[:, :hi_i - i0]
        events.append(Event("quake", t0 + onset, t0 + onset + length, float(amp), float(baz),
                            {"p_time": str(t0 + onset), "s_time": str(t0 + onset + t_sp),
                             "s_minus_p_s": float(t_sp), "band_hz": [lo, hi]}))
    return events


def _gap_spans(rng: np.random.Generator, config: SyntheticConfig) -> list[tuple[int, int]]:
    """Non-overlapping gap spans [i0, i1) in samples, not touching either end."""
    fs, npts = config.sampling_rate, config.npts
    spans: list[tuple[int, int]] = []
    for _ in range(config.gaps):
        for _try in range(100):
            length = max(1, int(rng.uniform(*config.gap_duration) * fs))
            if length >= npts - 2:
                break
            i0 = int(rng.integers(1, npts - length - 1))
            i1 = i0 + length
            if all(i1 + 1 < a or i0 > b + 1 for a, b in spans):
                spans.append((i0, i1))
                break
    return sorted(spans)


def _to_stream(data: np.ndarray, config: SyntheticConfig, segments: list[tuple[int, int]]) -> Stream:
    fs, t0 = config.sampling_rate, config.starttime
    traces = []
    for c, channel in enumerate(config.channels):
        for a, b in segments:
            header = {"network": config.network, "station": config.station, "location": config.location,
                      "channel": channel, "sampling_rate": fs, "starttime": t0 + a / fs}
            traces.append(Trace(data=np.ascontiguousarray(data[c, a:b]), header=header))
    return Stream(traces)


def generate(config: SyntheticConfig | None = None, progress: Progress = no_progress,
             token: CancelToken = NO_CANCEL) -> SyntheticRecord:
    """Generate a synthetic record (see the module docstring); reports progress and honours cancellation."""
    config = config if config is not None else SyntheticConfig()
    fs, npts, t0 = config.sampling_rate, config.npts, config.starttime
    if npts < 2:
        raise ConfigError("the record would have fewer than 2 samples")
    seeds = np.random.SeedSequence(config.seed).spawn(len(SOURCES) + 1)
    rngs = {name: np.random.default_rng(s) for name, s in zip((*SOURCES, "gaps"), seeds, strict=True)}
    clock = _Clock(t0, config.duration)
    truth = {name: np.zeros((3, npts)) for name in SOURCES}
    progress(0.0, "starting")

    if "background" in config.include:
        night = _noise_blocks(rngs["background"], npts, fs, _night_spectrum, config.component_correlation,
                              token, progress, 0.0, 0.3)
        day = _noise_blocks(rngs["background"], npts, fs, _day_spectrum, config.component_correlation,
                            token, progress, 0.3, 0.6)
        hours = clock.hours(np.arange(npts) / fs)
        truth["background"] = config.night_rms * night + config.day_rms * daytime_activity(hours) * day
        del night, day, hours
    progress(0.6, "glitches")

    g_on, g_amp, g_az, g_axis, g_per = _glitch_catalogue(rngs["glitches"], config, clock)
    s_on, s_amp, s_az, s_axis, s_per = _spike_catalogue(rngs["spikes"], config, clock, g_on, g_az, g_axis)
    glitches: list[Glitch] = []
    if "glitches" in config.include:
        _render_steps(truth["glitches"], g_on, g_per, "glitch", config, token)
        glitches += _glitch_list(t0, g_on, g_amp, g_az, g_axis, g_per, "glitch")
    if "spikes" in config.include:
        _render_steps(truth["spikes"], s_on, s_per, "spike", config, token)
        glitches += _glitch_list(t0, s_on, s_amp, s_az, s_axis, s_per, "spike")
    glitches.sort(key=lambda g: (g.onset, g.kind))
    progress(0.7, "wind")

    events: list[Event] = []
    if "wind" in config.include:
        events += _render_wind(truth["wind"], rngs["wind"], config, clock, token)
    progress(0.85, "quakes")
    if "quakes" in config.include:
        events += _render_quakes(truth["quakes"], rngs["quakes"], config, token)
    events.sort(key=lambda e: e.start)
    progress(0.9, "assembling")

    dtype = np.dtype(config.dtype)
    truth = {name: arr.astype(dtype, copy=False) for name, arr in truth.items()}
    mixture = np.zeros((3, npts), dtype=dtype)
    for name in SOURCES:
        mixture += truth[name]
    spans = _gap_spans(rngs["gaps"], config)
    bounds = [0, *[x for span in spans for x in span], npts]
    segments = [(bounds[i], bounds[i + 1]) for i in range(0, len(bounds), 2)]
    gaps = [(t0 + a / fs, t0 + b / fs) for a, b in spans]
    record = SyntheticRecord(
        config=config,
        mixture=_to_stream(mixture, config, segments),
        sources={name: _to_stream(truth[name], config, segments) for name in SOURCES},
        glitches=glitches,
        events=events,
        gaps=gaps,
        _truth=truth,
    )
    progress(1.0, "done")
    return record


def _glitch_list(t0: UTCDateTime, onsets: np.ndarray, amp: np.ndarray, az: np.ndarray, axis: np.ndarray,
                 per_axis: np.ndarray, kind: str) -> list[Glitch]:
    return [
        Glitch(t0 + float(o), tuple(float(x) for x in p), float(a), None if np.isnan(z) else float(z), kind,
               None if ax < 0 else int(ax))
        for o, a, z, ax, p in zip(onsets, amp, az, axis, per_axis, strict=True)
    ]

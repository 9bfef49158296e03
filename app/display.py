"""Display data for the views, computed off the GUI thread: min/max pyramids, band-pass filters, spectrograms.

Qt-free on purpose: these functions run inside workers and hand NumPy arrays to the views. Times are seconds relative
to a reference timestamp (``t_ref``) so that float64 keeps sub-sample precision over months of data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from unmix.intervals import merge_intervals
from unmix.io import Record
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress

FILTER_PRESETS: dict[str, tuple[float | None, float | None]] = {
    "Long period 0.01–0.1 Hz": (0.01, 0.1),
    "Marsquake 0.1–1 Hz": (0.1, 1.0),
    "High frequency 1–5 Hz": (1.0, 5.0),
    "High-pass 0.05 Hz": (0.05, None),
}
"""Band-pass presets: (low corner, high corner) in Hz; ``None`` means open on that side."""


def check_band(low: float | None, high: float | None, sampling_rate: float) -> tuple[float | None, float | None]:
    """A custom band's corners checked against the record: positive, low < high, high below Nyquist; the one-line
    reason as ``ValueError`` otherwise."""
    nyquist = 0.5 * sampling_rate
    if low is None and high is None:
        raise ValueError("give a low corner, a high corner or both")
    for name, f in (("low", low), ("high", high)):
        if f is not None and not f > 0:
            raise ValueError(f"the {name} corner must be above 0 Hz")
        if f is not None and f >= nyquist:
            raise ValueError(f"the {name} corner ({f:g} Hz) must be below Nyquist ({nyquist:g} Hz)")
    if low is not None and high is not None and low >= high:
        raise ValueError(f"the low corner ({low:g} Hz) must be below the high corner ({high:g} Hz)")
    return low, high


class MinMaxPyramid:
    """Min/max envelopes of one evenly sampled series at block sizes ``factor**k``, for drawing ~2 points per pixel."""

    def __init__(self, y: np.ndarray, t0: float, dt: float, factor: int = 4, smallest: int = 512) -> None:
        self.t0, self.dt, self.factor = float(t0), float(dt), factor
        self.raw = np.asarray(y, dtype=np.float32)
        self.n = self.raw.size
        self.levels: list[tuple[np.ndarray, np.ndarray]] = []
        lo = hi = self.raw
        while lo.size > smallest:
            pad = (-lo.size) % factor
            if pad:
                lo = np.concatenate([lo, np.repeat(lo[-1], pad)])
                hi = np.concatenate([hi, np.repeat(hi[-1], pad)])
            lo = lo.reshape(-1, factor).min(axis=1)
            hi = hi.reshape(-1, factor).max(axis=1)
            self.levels.append((lo, hi))

    @property
    def t1(self) -> float:
        return self.t0 + (self.n - 1) * self.dt

    def query(self, x0: float, x1: float, bins: int) -> tuple[np.ndarray, np.ndarray]:
        """Points covering [x0, x1]: raw samples when few enough, else min/max pairs of about ``bins`` blocks."""
        i0 = max(int(np.floor((x0 - self.t0) / self.dt)) - 1, 0)
        i1 = min(int(np.ceil((x1 - self.t0) / self.dt)) + 2, self.n)
        if i1 <= i0:
            return np.empty(0), np.empty(0, dtype=np.float32)
        per_bin = (i1 - i0) / max(bins, 1)
        k = 0
        while k < len(self.levels) and self.factor ** (k + 1) <= per_bin:
            k += 1
        if k == 0:
            idx = np.arange(i0, i1)
            return self.t0 + idx * self.dt, self.raw[i0:i1]
        block = self.factor**k
        lo, hi = self.levels[k - 1]
        j0, j1 = i0 // block, min(-(-i1 // block), lo.size)
        starts = np.minimum(np.arange(j0, j1) * block + block // 2, self.n - 1)
        x = np.repeat(self.t0 + starts * self.dt, 2)
        y = np.empty(2 * (j1 - j0), dtype=np.float32)
        y[0::2], y[1::2] = lo[j0:j1], hi[j0:j1]
        return x, y


@dataclass
class TraceDisplay:
    """One component across the gap-free segments of an instrument."""

    component: str
    segments: list[MinMaxPyramid]

    def query(self, x0: float, x1: float, bins: int) -> tuple[np.ndarray, np.ndarray]:
        """Visible points of every segment, with a NaN between segments so gaps draw as breaks."""
        parts_x: list[np.ndarray] = []
        parts_y: list[np.ndarray] = []
        visible = [s for s in self.segments if s.t1 >= x0 and s.t0 <= x1]
        total = sum(min(s.t1, x1) - max(s.t0, x0) for s in visible) or 1.0
        for seg in visible:
            share = max(int(bins * (min(seg.t1, x1) - max(seg.t0, x0)) / total), 16)
            x, y = seg.query(x0, x1, share)
            if parts_x:
                parts_x.append(np.array([x[0] if x.size else np.nan]))
                parts_y.append(np.array([np.nan], dtype=np.float32))
            parts_x.append(x)
            parts_y.append(y)
        if not parts_x:
            return np.empty(0), np.empty(0, dtype=np.float32)
        return np.concatenate(parts_x), np.concatenate(parts_y)


@dataclass
class Display:
    """What the waveform browser draws for one instrument: traces, gaps and overlaps in relative seconds."""

    key: str
    t_ref: float
    components: list[str]
    traces: dict[str, TraceDisplay]
    gaps: list[tuple[float, float]] = field(default_factory=list)
    overlaps: list[tuple[float, float]] = field(default_factory=list)
    band: tuple[float | None, float | None] | None = None
    unit: str = "counts"  # y unit of every row (m/s, m/s², m after response removal: unmix.gui.units)
    conversion: str | None = None  # e.g. "VEL (m/s), ZNE"; None: as recorded

    @property
    def span(self) -> tuple[float, float]:
        segs = [s for tr in self.traces.values() for s in tr.segments]
        return min(s.t0 for s in segs), max(s.t1 for s in segs)


def _filtered(y: np.ndarray, fs: float, band: tuple[float | None, float | None]) -> np.ndarray:
    lo, hi = band
    nyq = fs / 2.0
    hi = None if hi is None or hi >= nyq * 0.99 else hi
    y = signal.detrend(np.asarray(y, dtype=np.float64), type="linear")
    taper = signal.windows.tukey(y.size, alpha=min(1.0, 2 * 0.05)) if y.size > 16 else 1.0
    y = y * taper
    if lo is not None and hi is not None:
        sos = signal.butter(4, [lo, hi], btype="bandpass", fs=fs, output="sos")
    elif lo is not None:
        sos = signal.butter(4, lo, btype="highpass", fs=fs, output="sos")
    elif hi is not None:
        sos = signal.butter(4, hi, btype="lowpass", fs=fs, output="sos")
    else:
        return y
    if y.size <= 3 * (2 * sos.shape[0] + 1):
        return y
    return signal.sosfiltfilt(sos, y)


def build_display(
    records: list[Record],
    t_ref: float | None = None,
    band: tuple[float | None, float | None] | None = None,
    progress: Progress = no_progress,
    token: CancelToken = NO_CANCEL,
) -> Display:
    """Pyramids for every component of the segments of one instrument, optionally band-pass filtered first."""
    records = sorted(records, key=lambda r: r.starttime)
    t_ref = records[0].starttime.timestamp if t_ref is None else t_ref
    components: list[str] = []
    for rec in records:
        components += [c for c in rec.components if c not in components]
    segments: dict[str, list[MinMaxPyramid]] = {c: [] for c in components}
    total = sum(len(r.stream) for r in records)
    done = 0
    for rec in records:
        for tr in rec.stream:
            token.check()
            y = np.ma.getdata(tr.data)
            if band is not None:
                y = _filtered(y, tr.stats.sampling_rate, band)
            t0 = tr.stats.starttime.timestamp - t_ref
            segments[tr.stats.channel[-1]].append(MinMaxPyramid(y, t0, tr.stats.delta))
            done += 1
            progress(done / total, "filtering" if band else "preparing display")
    gaps = [(g.start.timestamp - t_ref, g.end.timestamp - t_ref) for r in records for g in r.gaps]
    for prev, nxt in zip(records[:-1], records[1:], strict=True):
        if nxt.starttime - prev.endtime > 1.5 / prev.sampling_rate:
            gaps.append((prev.endtime.timestamp - t_ref, nxt.starttime.timestamp - t_ref))
    overlaps = [(o.start.timestamp - t_ref, o.end.timestamp - t_ref) for r in records for o in r.overlaps]
    return Display(
        key=records[0].key,
        t_ref=t_ref,
        components=components,
        traces={c: TraceDisplay(c, segments[c]) for c in components},
        gaps=merge_intervals(gaps),
        overlaps=merge_intervals(overlaps),
        band=band,
    )


@dataclass
class SpectrogramTile:
    """Power (dB) of one gap-free segment: ``image[time, frequency]`` over [x0, x1] × [log10 f_min, log10 f_max].

    ``unit`` is the unit of the samples it was computed from (counts, m/s, m/s², m: the display's), so that the dB
    are relative to 1 unit²/Hz; ``band`` the display filter applied first (None: unfiltered).
    """

    x0: float
    x1: float
    f_min: float
    f_max: float
    image: np.ndarray
    unit: str = "counts"
    band: tuple[float | None, float | None] | None = None


def psd_unit(unit: str) -> str:
    """The colour bar's unit for samples in ``unit``: dB relative to 1 unit²/Hz (a compound unit in parentheses)."""
    squared = f"({unit})²" if "/" in unit or "²" in unit else f"{unit}²"
    return f"dB rel. 1 {squared}/Hz"


SPECTROGRAM_COLUMNS_PER_SPAN = 120
"""About this many windows across the visible span: the window follows the zoom (long windows for a sol, short
ones for a minute), so that time and frequency resolution stay balanced on screen."""


def spectrogram_window(span_s: float, sampling_rate: float) -> float:
    """Window length (s) for a visible span of ``span_s`` seconds: a power-of-two number of samples near
    ``span_s / 120``, at least 32 samples and at most 2**15."""
    target = max(float(span_s), 0.0) / SPECTROGRAM_COLUMNS_PER_SPAN * sampling_rate
    nperseg = 2 ** int(np.clip(np.round(np.log2(max(target, 1.0))), 5, 15))
    return nperseg / sampling_rate


def display_spectrogram(
    display: Display,
    component: str,
    window_s: float = 50.0,
    max_columns: int = 4000,
    rows: int = 256,
    x_range: tuple[float, float] | None = None,
    progress: Progress = no_progress,
    token: CancelToken = NO_CANCEL,
) -> list[SpectrogramTile]:
    """Spectrogram of one component of a :class:`Display`: of the very samples its rows draw (response removed to
    its unit and band-pass filtered by its band, when they were), so that the trace and its spectrogram never
    disagree on units or filter. Times are the display's (seconds after ``display.t_ref``)."""
    trace = display.traces.get(component)
    if trace is None:
        return []
    segments = [(seg.raw, seg.t0, 1.0 / seg.dt) for seg in sorted(trace.segments, key=lambda s: s.t0)]
    tiles = _spectrogram_tiles(segments, window_s, max_columns, rows, x_range, progress, token)
    for tile in tiles:
        tile.unit, tile.band = display.unit, display.band
    return tiles


def _spectrogram_tiles(
    segments: list[tuple[np.ndarray, float, float]],
    window_s: float,
    max_columns: int,
    rows: int,
    x_range: tuple[float, float] | None,
    progress: Progress,
    token: CancelToken,
) -> list[SpectrogramTile]:
    """One tile per (samples, t0, rate) segment: only its part inside ``x_range`` when given (a zoomed-in view with
    a short window stays cheap), with a hop that keeps at most ``max_columns`` columns."""
    tiles: list[SpectrogramTile] = []
    for i, (y, t0, fs) in enumerate(segments):
        token.check()
        if x_range is not None:
            i0 = max(int(np.floor((x_range[0] - t0) * fs)), 0)
            i1 = min(int(np.ceil((x_range[1] - t0) * fs)) + 1, y.size)
            if i1 <= i0:
                continue
            y, t0 = y[i0:i1], t0 + i0 / fs
        tile = _segment_tile(np.asarray(y, dtype=np.float64), t0, fs, window_s, max_columns, rows)
        if tile is not None:
            tiles.append(tile)
        progress((i + 1) / len(segments), "spectrogram")
    return tiles


def _segment_tile(y: np.ndarray, t0: float, fs: float, window_s: float, max_columns: int,
                  rows: int) -> SpectrogramTile | None:
    """``scipy.signal.spectrogram`` of one segment in dB, resampled onto ``rows`` log-spaced frequencies; None when
    the segment is shorter than 16 samples."""
    nperseg = int(min(2 ** np.round(np.log2(window_s * fs)), y.size))
    if nperseg < 16:
        return None
    hop = max(nperseg // 2, int(np.ceil(y.size / max_columns)))
    noverlap = max(nperseg - hop, 0)
    f, t, sxx = signal.spectrogram(y, fs=fs, nperseg=nperseg, noverlap=noverlap, detrend="linear",
                                   scaling="density", mode="psd")
    floor = max(float(sxx.max(initial=0.0)), 1e-300) * 1e-30  # relative: PSD in m²/Hz can be ~1e-25
    db = 10.0 * np.log10(np.maximum(sxx[1:], floor))
    log_f = np.log10(f[1:])
    grid = np.linspace(log_f[0], log_f[-1], rows)
    index = np.clip(np.searchsorted(log_f, grid), 1, log_f.size - 1)
    w = ((grid - log_f[index - 1]) / (log_f[index] - log_f[index - 1]))[:, None]
    image = ((1.0 - w) * db[index - 1] + w * db[index]).T.astype(np.float32)
    half = hop / fs / 2.0
    return SpectrogramTile(t0 + t[0] - half, t0 + t[-1] + half, float(f[1]), float(f[-1]), image)

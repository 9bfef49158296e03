"""Group traces into 3-component records, merge overlaps, report gaps and apply a gap policy.

A :class:`Record` is one instrument (network.station.location.band) over one span: an ObsPy Stream with one trace per
component, all on the same sample grid, plus what was found on the way (gaps, overlaps, processing notes). Gaps are
never interpolated silently: the policy decides between splitting into gap-free segments, filling short gaps (up to a
stated number of samples) or refusing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from obspy import Stream, Trace, UTCDateTime

from unmix.errors import ConfigError, DataError
from unmix.io.read import TimeWindow, read_stream
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress

log = logging.getLogger(__name__)

COMPONENT_ORDERS = ("UVW", "ZNE", "Z12", "123", "ZRT")
GAP_POLICIES = ("split", "fill", "error")


@dataclass(frozen=True)
class Interruption:
    """A gap (positive duration) or overlap (negative duration) in one channel."""

    channel: str
    start: UTCDateTime
    end: UTCDateTime
    samples: int
    identical: bool | None = None  # overlaps only: whether both traces carried the same samples
    differing: int = 0  # overlaps only: how many samples differ
    sources: tuple[str, ...] = ()  # overlaps only: the files of the overlapping traces

    @property
    def duration(self) -> float:
        return float(self.end - self.start)

    def describe(self) -> str:
        kind = "gap" if self.samples > 0 else "overlap"
        extra = "" if self.identical is None else (
            ", same samples" if self.identical else f", {self.differing} differing samples, the later piece's kept")
        return f"{self.channel}: {kind} {self.start} – {self.end} ({abs(self.samples)} samples{extra})"


@dataclass
class Record:
    """One instrument's components over a common span and sample grid."""

    key: str
    stream: Stream
    gaps: list[Interruption] = field(default_factory=list)
    overlaps: list[Interruption] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    damage: list[str] = field(default_factory=list)  # what was lost or is suspect in the inputs (--allow-damaged)

    @property
    def components(self) -> str:
        return "".join(tr.stats.channel[-1] for tr in self.stream)

    @property
    def sampling_rate(self) -> float:
        return float(self.stream[0].stats.sampling_rate)

    @property
    def starttime(self) -> UTCDateTime:
        return max(tr.stats.starttime for tr in self.stream)

    @property
    def endtime(self) -> UTCDateTime:
        return min(tr.stats.endtime for tr in self.stream)

    @property
    def npts(self) -> int:
        return min(tr.stats.npts for tr in self.stream)

    @property
    def has_gaps(self) -> bool:
        return any(isinstance(tr.data, np.ma.MaskedArray) and np.ma.is_masked(tr.data) for tr in self.stream)

    def to_array(self, dtype=np.float64) -> np.ndarray:
        """Samples as a (components, npts) array; raises if the record still has gaps."""
        if self.has_gaps:
            raise DataError(f"record {self.key} has gaps; apply a gap policy first", self.sources_label)
        n = self.npts
        return np.stack([np.asarray(tr.data[:n], dtype=dtype) for tr in self.stream])

    @property
    def sources_label(self) -> str:
        return ", ".join(self.sources) if self.sources else self.key

    def copy(self) -> Record:
        return Record(self.key, self.stream.copy(), list(self.gaps), list(self.overlaps), list(self.sources),
                      list(self.notes), list(self.damage))


def record_key(tr: Trace) -> str:
    s = tr.stats
    return f"{s.network}.{s.station}.{s.location}.{s.channel[:-1]}"


def _component_rank(code: str) -> tuple[int, int]:
    for i, order in enumerate(COMPONENT_ORDERS):
        if code in order:
            return (i, order.index(code))
    return (len(COMPONENT_ORDERS), ord(code))


def _sources(stream: Stream) -> list[str]:
    return sorted({tr.stats.get("unmix_source", "") for tr in stream} - {""})


def _check_rates(stream: Stream, key: str, resample_to: float | None) -> tuple[Stream, list[str]]:
    rates = sorted({round(tr.stats.sampling_rate, 9) for tr in stream})
    if len(rates) == 1 and (resample_to is None or np.isclose(rates[0], resample_to)):
        return stream, []
    if resample_to is None:
        raise DataError(
            f"{key} mixes sampling rates {', '.join(f'{r:g}' for r in rates)} Hz; "
            "choose one with resampling (e.g. --resample RATE)",
            ", ".join(_sources(stream)) or key,
        )
    out = stream.copy()
    for tr in out:
        if not np.isclose(tr.stats.sampling_rate, resample_to):
            tr.resample(resample_to, window="hann", no_filter=resample_to > tr.stats.sampling_rate)
    return out, [f"resampled to {resample_to:g} Hz (FFT, anti-aliased)"]


def _merge_channel(traces: Stream, max_fill: int, allow_damaged: bool = False
                   ) -> tuple[list[Trace], list[Interruption], list[Interruption]]:
    """Merge one channel's traces into contiguous runs; gaps longer than ``max_fill`` samples start a new run.

    Runs are merged separately so that a directory spanning months never materialises its gaps in memory. Overlaps
    must carry the same samples (:func:`_check_overlap`).
    """
    traces = Stream(sorted(traces, key=lambda t: t.stats.starttime))
    gaps: list[Interruption] = []
    overlaps: list[Interruption] = []
    for g in traces.get_gaps():
        net, sta, loc, cha, t0, t1, _dt, nsamp = g
        channel = f"{net}.{sta}.{loc}.{cha}"
        if t1 > t0:
            gaps.append(Interruption(channel, t0, t1, max(int(nsamp), 1)))
        else:
            overlaps.append(_check_overlap(traces, channel, t1, t0, -abs(int(nsamp)), allow_damaged))
    dt = traces[0].stats.delta
    runs: list[Stream] = []
    run_end = None
    for tr in traces:
        if run_end is None or tr.stats.starttime > run_end + (max_fill + 1.5) * dt:
            runs.append(Stream())
        runs[-1].append(tr)
        run_end = tr.stats.endtime if run_end is None else max(run_end, tr.stats.endtime)
    merged: list[Trace] = []
    for run in runs:
        run = run.copy()
        for tr in run:
            tr.data = tr.data.astype(np.float64)
        run.merge(method=1, fill_value=None, interpolation_samples=0)
        if len(run) != 1:
            raise DataError(f"cannot merge traces of {traces[0].id} (inconsistent sample grids)",
                            ", ".join(_sources(traces)))
        merged.append(run[0])
    return merged, gaps, overlaps


def _check_overlap(traces: Stream, channel: str, t0: UTCDateTime, t1: UTCDateTime, samples: int,
                   allow_damaged: bool) -> Interruption:
    """Describe an overlap; refuse one whose traces carry different samples.

    Traces of different files that disagree are never merged (e.g. a raw record and a processed version of it).
    Pieces of one file that disagree are a damaged file: merged (the later piece's samples are kept, ObsPy's rule)
    only with ``allow_damaged``.
    """
    clash = _overlap_clash(traces, t0, t1)
    if clash is None:
        return Interruption(channel, t0, t1, samples, True)
    a, b, differ, n = clash
    files = tuple(dict.fromkeys(tr.stats.get("unmix_source", "") for tr in (a, b)))
    what = f"{t0} – {t1}, {differ} of {n} samples differ"
    if len(files) > 1:
        raise DataError(f"{channel} is in both files with different samples ({what}), e.g. a raw record and a "
                        "processed version of it; read them separately", ", ".join(files))
    if not allow_damaged:
        raise DataError(f"{channel}: pieces of this file overlap with different samples ({what}); --allow-damaged "
                        "keeps the later piece's samples", files[0])
    return Interruption(channel, t0, t1, samples, False, differ, files)


def _same_samples(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per sample: equal (integers exactly; floats within a relative 1e-6 of the overlap's largest value)."""
    if np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer):
        return a == b
    a, b = a.astype(np.float64), b.astype(np.float64)
    scale = max(float(np.abs(a).max(initial=0.0)), float(np.abs(b).max(initial=0.0)))
    return np.isclose(a, b, rtol=1e-6, atol=1e-6 * scale)


def _overlap_clash(traces: Stream, t0: UTCDateTime, t1: UTCDateTime) -> tuple[Trace, Trace, int, int] | None:
    """The first pair of traces whose samples differ over [t0, t1], with the count of differing samples and length."""
    parts = [(tr, np.ma.getdata(tr.slice(t0, t1, nearest_sample=True).data)) for tr in traces
             if tr.stats.starttime <= t1 and tr.stats.endtime >= t0]
    if len(parts) < 2:
        return None
    first, ref = parts[0]
    for tr, data in parts[1:]:
        n = min(len(ref), len(data))
        if n == 0:
            continue
        same = _same_samples(ref[:n], data[:n])
        if not same.all():
            return first, tr, int(n - same.sum()), n
    return None


def _align_to_grid(traces: list[Trace], notes: list[str]) -> None:
    """Put every component on the first component's sample grid (sub-sample shift by Lanczos interpolation)."""
    ref = traces[0]
    dt = ref.stats.delta
    for tr in traces[1:]:
        offset = ((tr.stats.starttime - ref.stats.starttime) / dt) % 1.0
        offset = min(offset, 1.0 - offset)
        if offset <= 1e-3:
            continue
        new_start = ref.stats.starttime + np.ceil((tr.stats.starttime - ref.stats.starttime) / dt) * dt
        npts = int(np.floor((tr.stats.endtime - new_start) / dt)) + 1
        tr.interpolate(tr.stats.sampling_rate, method="lanczos", a=12, starttime=new_start, npts=npts)
        notes.append(f"{tr.id}: shifted by {offset * dt * 1e3:.1f} ms onto the common sample grid (Lanczos)")


def _fill_short_gaps(tr: Trace, max_samples: int) -> int:
    """Linearly fill masked runs of at most ``max_samples``; returns how many runs were filled."""
    if not (isinstance(tr.data, np.ma.MaskedArray) and np.ma.is_masked(tr.data)):
        return 0
    mask = np.ma.getmaskarray(tr.data)
    data = np.ma.getdata(tr.data).copy()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    filled = 0
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if stop - start <= max_samples and start > 0 and stop < len(data):
            data[start:stop] = np.interp(np.arange(start, stop), [start - 1, stop], [data[start - 1], data[stop]])
            mask[start:stop] = False
            filled += 1
    tr.data = np.ma.masked_array(data, mask=mask) if mask.any() else data
    return filled


def _valid_intervals(tr: Trace, min_samples: int) -> list[tuple[UTCDateTime, UTCDateTime]]:
    mask = np.ma.getmaskarray(tr.data)
    valid = ~mask
    edges = np.flatnonzero(np.diff(np.concatenate([[0], valid.astype(np.int8), [0]])))
    t0, dt = tr.stats.starttime, tr.stats.delta
    runs = zip(edges[::2], edges[1::2], strict=True)
    return [(t0 + a * dt, t0 + (b - 1) * dt) for a, b in runs if b - a >= min_samples]


def _component_spans(
    channels: list[list[Trace]], min_samples: int, partial_min_seconds: float
) -> list[tuple[UTCDateTime, UTCDateTime, tuple[int, ...]]]:
    """Split time into spans with a constant set of components present.

    Spans with every component are kept when at least ``min_samples`` long; spans where only some components exist
    (single-component files, ragged starts) are kept only when at least ``partial_min_seconds`` long, so a few seconds
    of ragged edge do not become a record of their own.
    """
    intervals = [
        sorted((a.timestamp, b.timestamp) for tr in runs for a, b in _valid_intervals(tr, min_samples))
        for runs in channels
    ]
    dt = channels[0][0].stats.delta
    cuts = sorted({round(t, 6) for ivs in intervals for iv in ivs for t in (iv[0], iv[1] + dt)})
    pieces: list[list] = []
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        mid = lo + (hi - lo) / 2
        present = tuple(i for i, ivs in enumerate(intervals) if any(a <= mid <= b + dt for a, b in ivs))
        if not present:
            continue
        if pieces and pieces[-1][2] == present and abs(pieces[-1][1] - lo) < dt / 2:
            pieces[-1][1] = hi
        else:
            pieces.append([lo, hi, present])
    out = []
    for lo, hi, present in pieces:
        seconds = hi - lo
        if seconds / dt < min_samples:
            continue
        if len(present) < len(channels) and seconds < partial_min_seconds:
            continue
        out.append((UTCDateTime(lo), UTCDateTime(hi - dt), present))
    return out


def _damage(group: Stream, sources: list[str], overlaps: list[Interruption]) -> list[str]:
    """What a record's files lost (their ``stats.unmix_damage``) and the disagreeing overlaps let through."""
    by_file: dict[str, list[str]] = {}
    for tr in group:
        by_file.setdefault(tr.stats.get("unmix_source", ""), list(tr.stats.get("unmix_damage", [])))
    out = [f"{Path(src).name}: {d}" for src in sources for d in by_file.get(src, [])]
    out += [f"{Path(o.sources[0]).name}: {o.channel} pieces overlap with different samples ({o.start} – {o.end}, "
            f"{o.differing} of {abs(o.samples)} samples differ); the later piece's samples were kept"
            for o in overlaps if o.identical is False and o.sources]
    return out


def _near(t0: UTCDateTime, t1: UTCDateTime, margin: float):
    """Predicate: does an interruption (start/end) or trace stats (starttime/endtime) touch [t0, t1]?"""

    def test(item) -> bool:
        start = getattr(item, "start", None) or item.starttime
        end = getattr(item, "end", None) or item.endtime
        return end >= t0 - margin and start <= t1 + margin

    return test


def build_records(
    stream: Stream,
    gap_policy: str = "split",
    max_fill: int = 0,
    resample_to: float | None = None,
    min_samples: int = 2,
    partial_min_seconds: float = 600.0,
    allow_damaged: bool = False,
) -> list[Record]:
    """Group ``stream`` by instrument, merge, align and trim it, and apply the gap policy.

    ``gap_policy``: ``'split'`` returns one record per gap-free segment, ``'fill'`` fills gaps of at most ``max_fill``
    samples by linear interpolation (longer gaps still split), ``'error'`` raises on any gap. The input is not modified.
    Overlapping traces must carry the same samples; ``allow_damaged`` lets pieces of one file that disagree through
    (see :func:`_check_overlap`). Each record's ``damage`` lists what its files lost (``stats.unmix_damage``).
    """
    if gap_policy not in GAP_POLICIES:
        raise ConfigError(f"unknown gap policy {gap_policy!r}; choose one of {', '.join(GAP_POLICIES)}")
    if max_fill < 0:
        raise ConfigError("max_fill must be ≥ 0 samples")
    groups: dict[str, Stream] = defaultdict(Stream)
    for tr in stream:
        groups[record_key(tr)].append(tr)
    records: list[Record] = []
    for key in sorted(groups):
        group, notes = _check_rates(groups[key], key, resample_to)
        sources = _sources(group)
        by_channel: dict[str, Stream] = defaultdict(Stream)
        for tr in group:
            by_channel[tr.id].append(tr)
        channels, gaps, overlaps = [], [], []
        fill = max_fill if gap_policy == "fill" else 0
        for cid in sorted(by_channel, key=lambda c: _component_rank(c[-1])):
            runs, g, o = _merge_channel(by_channel[cid], fill, allow_damaged)
            channels.append(runs)
            gaps += g
            overlaps += o
        if gap_policy == "error" and gaps:
            raise DataError(f"{key} has {len(gaps)} gap(s), first: {gaps[0].describe()}", ", ".join(sources))
        if fill > 0:
            n = sum(_fill_short_gaps(tr, fill) for runs in channels for tr in runs)
            if n:
                notes.append(f"filled {n} gap(s) of ≤ {fill} samples by linear interpolation")
        spans = _component_spans(channels, min_samples, partial_min_seconds)
        if not spans:
            raise DataError(f"{key}: the components have no common gap-free span", ", ".join(sources))
        for t0, t1, present in spans:
            seg = []
            for runs in (channels[i] for i in present):
                tr = next(r for r in runs if r.stats.starttime <= t0 + 1e-6 and r.stats.endtime >= t1 - 1e-6)
                seg.append(tr.slice(t0 - tr.stats.delta / 2, t1 + tr.stats.delta / 2).copy())
            seg_notes = list(notes)
            _align_to_grid(seg, seg_notes)
            lo, hi = max(tr.stats.starttime for tr in seg), min(tr.stats.endtime for tr in seg)
            for tr in seg:
                tr.trim(lo, hi, nearest_sample=True)
            npts = min(tr.stats.npts for tr in seg)
            for tr in seg:
                tr.data = np.ascontiguousarray(np.ma.getdata(tr.data)[:npts])
            if npts >= min_samples:
                near = _near(seg[0].stats.starttime, seg[0].stats.endtime, 2 * seg[0].stats.delta)
                seg_sources = sorted({
                    s for tr in seg for s in _sources(Stream([o for o in by_channel[tr.id] if near(o.stats)]))
                }) or sources
                seg_overlaps = [o for o in overlaps if near(o)]
                if seg_overlaps:
                    seg_notes.insert(0, f"merged {len(seg_overlaps)} overlap(s)")
                records.append(Record(key, Stream(seg), [g for g in gaps if near(g)], seg_overlaps, seg_sources,
                                      seg_notes, _damage(group, seg_sources, seg_overlaps)))
    return records


def read_records(
    inputs: str | Path | Iterable[str | Path],
    gap_policy: str = "split",
    max_fill: int = 0,
    resample_to: float | None = None,
    format: str | None = None,
    progress: Progress = no_progress,
    token: CancelToken = NO_CANCEL,
    allow_damaged: bool = False,
    window: TimeWindow | None = None,
) -> list[Record]:
    """Read files and return their records (see :func:`build_records`; ``allow_damaged``, ``window``:
    :func:`~unmix.io.read.read_file`)."""
    stream = read_stream(inputs, format, progress, token, allow_damaged=allow_damaged, window=window)
    records = build_records(stream, gap_policy, max_fill, resample_to, allow_damaged=allow_damaged)
    for rec in records:
        log.debug("read %s %s–%s: %d samples at %g Hz, %d gap(s)%s", rec.key, rec.starttime, rec.endtime, rec.npts,
                  rec.sampling_rate, len(rec.gaps), "".join(f"; {n}" for n in rec.notes))
        for d in rec.damage:
            log.info("%s: damaged input used (--allow-damaged): %s", rec.key, d)
    return records


def read_record(
    inputs: str | Path | Iterable[str | Path],
    gap_policy: str = "split",
    max_fill: int = 0,
    resample_to: float | None = None,
    format: str | None = None,
    allow_damaged: bool = False,
) -> Record:
    """Read exactly one instrument; mixed stations or several gap-free segments are a clear error."""
    stream = read_stream(inputs, format, allow_damaged=allow_damaged)
    keys = sorted({record_key(tr) for tr in stream})
    where = ", ".join(_sources(stream))
    if len(keys) > 1:
        raise DataError(
            f"channels of {len(keys)} different instruments are mixed ({', '.join(keys)}); "
            "give one station/location/band at a time",
            where,
        )
    records = build_records(stream, gap_policy, max_fill, resample_to, allow_damaged=allow_damaged)
    if len(records) > 1:
        raise DataError(f"{keys[0]} splits into {len(records)} gap-free segments; choose a gap policy or a span", where)
    return records[0]

"""Separation of long records in overlapping pieces, so that memory stays bounded whatever the record's length.

A method that declares a :class:`~unmix.separation.base.PieceExtent` (``separator.piece_extent(sampling_rate)``)
runs on pieces of at most ``kept + 2·margin`` samples; of each piece only its centre, the kept part, is given back.
The kept parts tile the record: contiguous, without gaps or repeated samples, in time order, so a writer can append
them as they come (:mod:`unmix.io.append`) and no piece's output outlives the next one. The margin is what the method
needs for the kept part to come out as from the whole record (see each method's ``piece_extent``). A record no longer
than one piece, a method without an extent (plugins, by default) and traces that are not on one sample grid are
separated whole, exactly as :meth:`~unmix.separation.base.BaseSeparator.separate` does.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from obspy import Stream, Trace, UTCDateTime

from unmix.errors import DataError
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress, sub_progress
from unmix.separation.base import PieceExtent
from unmix.separation.result import SeparationResult

#: keys of ``info`` that every piece repeats (taken from the first piece when pieces' infos are combined)
_SHARED_INFO = ("method", "params")


@dataclass(frozen=True)
class Grid:
    """The common sample grid of a stream's traces: first sample time, rate, each trace's offset, total length."""

    start: UTCDateTime
    sampling_rate: float
    offsets: tuple[int, ...]
    npts: int

    def time(self, index: int) -> UTCDateTime:
        """Time of sample ``index`` of the grid."""
        return self.start + index / self.sampling_rate

    def index(self, t: UTCDateTime) -> int:
        """The first sample at or after ``t`` (within 1e-3 sample), clipped to ``[0, npts]``: windows that meet
        at ``t`` split the samples of one file without gap or repeat."""
        return min(max(math.ceil((t - self.start) * self.sampling_rate - 1e-3), 0), self.npts)


def sample_grid(stream: Stream) -> Grid | None:
    """The grid of ``stream``'s traces, or None when they differ in rate, lie off one grid or hold masked gaps."""
    if len(stream) == 0 or any(np.ma.isMaskedArray(tr.data) for tr in stream):
        return None
    fs = float(stream[0].stats.sampling_rate)
    if any(float(tr.stats.sampling_rate) != fs for tr in stream):
        return None
    start = min(tr.stats.starttime for tr in stream)
    shifts = [(tr.stats.starttime - start) * fs for tr in stream]
    if any(abs(s - round(s)) > 1e-3 for s in shifts):
        return None
    offsets = tuple(int(round(s)) for s in shifts)
    return Grid(start, fs, offsets, max(o + tr.stats.npts for o, tr in zip(offsets, stream, strict=True)))


def piece_bounds(npts: int, extent: PieceExtent | None, keep: tuple[int, int] | None = None
                 ) -> list[tuple[int, int, int, int]]:
    """``(lo, a, b, hi)`` per piece: it sees samples ``[lo, hi)`` and keeps ``[a, b)``. The kept parts are spread
    evenly (each at most ``extent.kept``) and tile ``keep`` (default ``[0, npts)``); one piece (the whole) when
    ``npts`` is at most ``kept + 2·margin`` or there is no extent. A piece sees at most ``extent.margin`` samples
    beyond its kept part (the whole record without an extent)."""
    if keep is None and (extent is None or npts <= extent.kept + 2 * extent.margin):
        return [(0, 0, npts, npts)]
    k0, k1 = keep if keep is not None else (0, npts)
    if extent is None:
        return [(0, k0, k1, npts)]
    count = max(1, math.ceil((k1 - k0) / extent.kept))
    edges = [k0 + round(k * (k1 - k0) / count) for k in range(count + 1)]
    m = extent.margin
    return [(max(0, a - m), a, b, min(npts, b + m)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _cut(tr: Trace, i0: int, i1: int, copy: bool) -> Trace:
    """Samples ``[i0, i1)`` of ``tr`` as a trace of their own (a view of the samples unless ``copy``)."""
    out = Trace(header=tr.stats.copy())
    out.data = np.array(tr.data[i0:i1]) if copy else tr.data[i0:i1]  # sets npts (the constructor would not)
    out.stats.starttime = tr.stats.starttime + i0 / float(tr.stats.sampling_rate)
    return out


def _piece_stream(stream: Stream, grid: Grid, lo: int, hi: int) -> Stream:
    """The samples of every trace within grid samples ``[lo, hi)`` (views; traces with none there left out)."""
    out = Stream()
    for off, tr in zip(grid.offsets, stream, strict=True):
        i0, i1 = max(lo - off, 0), min(hi - off, tr.stats.npts)
        if i1 > i0:
            out.append(_cut(tr, i0, i1, copy=False))
    return out


def _kept_stream(stream: Stream, t0: UTCDateTime, t1: UTCDateTime) -> Stream:
    """Copies of the samples of every trace from ``t0`` (included) to ``t1`` (excluded)."""
    out = Stream()
    for tr in stream:
        fs = float(tr.stats.sampling_rate)
        i0 = min(max(round((t0 - tr.stats.starttime) * fs), 0), tr.stats.npts)
        i1 = min(max(round((t1 - tr.stats.starttime) * fs), 0), tr.stats.npts)
        if i1 > i0:
            out.append(_cut(tr, i0, i1, copy=True))
    return out


def _kept_info(info: dict, t0: UTCDateTime, t1: UTCDateTime, shifts: dict[str, int], piece: dict) -> dict:
    """A piece's ``info`` with its ``catalogue`` limited to onsets in its kept part (each glitch listed once, by
    the piece that keeps its onset), sample numbers (``onset_sample``) counted from the record's trace start as
    over the whole record (``shifts``: samples from there to the piece's, per trace id), and where the piece lies."""
    out = dict(info)
    if isinstance(out.get("catalogue"), list):
        entries = []
        for e in out["catalogue"]:
            if isinstance(e, dict) and "onset" in e and not t0 <= UTCDateTime(e["onset"]) < t1:
                continue
            if isinstance(e, dict) and isinstance(e.get("onset_sample"), int | float):
                e = {**e, "onset_sample": e["onset_sample"] + shifts.get(e.get("channel"), 0)}
            entries.append(e)
        out["catalogue"] = entries
    out["piece"] = piece
    return out


def _kept_result(result: SeparationResult, stream: Stream, grid: Grid, bounds: tuple[int, int, int, int],
                 index: int) -> SeparationResult:
    """The kept part ``[a, b)`` of a piece's result (copied, so that nothing of the piece outlives it)."""
    lo, a, b, hi = bounds
    t0, t1 = grid.time(a), grid.time(b)
    piece = {"index": index, "start": str(t0), "end": str(t1), "seen": [str(grid.time(lo)), str(grid.time(hi))]}
    shifts = {tr.id: max(lo - off, 0) for off, tr in zip(grid.offsets, stream, strict=True)}
    return SeparationResult(_kept_stream(result.background, t0, t1),
                            {name: _kept_stream(st, t0, t1) for name, st in result.removed.items()},
                            _kept_info(result.info, t0, t1, shifts, piece))


def separate_in_pieces(stream, separator, progress: Progress = no_progress, token: CancelToken = NO_CANCEL,
                       keep: tuple[UTCDateTime, UTCDateTime] | None = None) -> Iterator[SeparationResult]:
    """Separate ``stream`` (an ObsPy Stream or a :class:`~unmix.io.record.Record`) with ``separator`` piece by
    piece (see the module docstring); yields the kept part of every piece in time order, each with the info of its
    piece (``info['piece']``: index, kept ``start``/``end``, the span it ``seen``). One piece: the very result of
    ``separator.separate(stream, progress, token)``.

    ``keep`` (start, end): give back only the samples from ``start`` (included) to ``end`` (excluded); the rest of
    ``stream`` is margin (a window of a longer file, :mod:`unmix.io.windows`). Needs one sample grid."""
    stream = getattr(stream, "stream", stream)
    grid = sample_grid(stream)
    extent_of = getattr(separator, "piece_extent", None)
    extent = extent_of(grid.sampling_rate) if grid is not None and callable(extent_of) else None
    if keep is not None and grid is None:
        raise DataError("a window of a record can only be separated when its traces share one sample grid")
    span = None if keep is None else (grid.index(keep[0]), grid.index(keep[1]))
    if span is not None and span[1] <= span[0]:
        return
    bounds = piece_bounds(grid.npts, extent, span) if grid is not None else [(0, 0, 0, 0)]
    if keep is None and len(bounds) == 1:
        yield separator.separate(stream, progress, token)
        return
    total = sum(hi - lo for lo, _, _, hi in bounds)
    done = 0
    for k, (lo, a, b, hi) in enumerate(bounds):
        token.check()
        part = _piece_stream(stream, grid, lo, hi)
        result = separator.separate(part, sub_progress(progress, done / total, (done + hi - lo) / total), token)
        kept = _kept_result(result, stream, grid, (lo, a, b, hi), k)
        del part, result  # the piece's own output is gone before the next piece starts
        done += hi - lo
        yield kept
        del kept


def join_pieces(streams: list[Stream]) -> Stream:
    """The pieces of one product (in time order) joined into one trace per channel run: a trace continues the last
    one of its id that ends one sample before it starts (for writers that cannot append, e.g. SAC)."""
    runs: list[list[Trace]] = []
    last: dict[str, list[Trace]] = {}
    for tr in (tr for st in streams for tr in st):
        run = last.get(tr.id)
        if run is not None and abs(tr.stats.starttime - (run[-1].stats.endtime + run[-1].stats.delta)) < \
                0.5 * tr.stats.delta and tr.stats.sampling_rate == run[-1].stats.sampling_rate:
            run.append(tr)
        else:
            last[tr.id] = run = [tr]
            runs.append(run)
    out = Stream()
    for run in runs:
        tr = Trace(header=run[0].stats.copy())
        tr.data = np.concatenate([t.data for t in run]) if len(run) > 1 else run[0].data
        out.append(tr)
    return out


def combined_info(infos: list[dict]) -> dict:
    """One ``info`` for a record separated in pieces: the method and parameters (of the first piece), the summed
    ``total_s``/``seconds``, the ``catalogue`` of every piece channel by channel (as over the whole record) and,
    under ``pieces``, what else each piece reported. One piece: its info unchanged."""
    if len(infos) == 1:
        return infos[0]
    out = {k: infos[0][k] for k in _SHARED_INFO if k in infos[0]}
    catalogues = [i["catalogue"] for i in infos if isinstance(i.get("catalogue"), list)]
    if catalogues:
        entries = [e for c in catalogues for e in c]
        channels = list(dict.fromkeys(e.get("channel") if isinstance(e, dict) else None for e in entries))
        out["catalogue"] = sorted(entries, key=lambda e: channels.index(e.get("channel") if isinstance(e, dict)
                                                                        else None))
    seconds = round(sum(float(i.get("total_s", 0.0)) for i in infos), 4)
    out["pieces"] = [{k: v for k, v in i.items() if k not in (*_SHARED_INFO, "catalogue", "total_s", "seconds")}
                     for i in infos]
    out.update(total_s=seconds, seconds=seconds)
    return out


__all__ = ["Grid", "combined_info", "join_pieces", "piece_bounds", "sample_grid", "separate_in_pieces"]

"""Pick and read waveform snippets of clustered windows (prior realisations for separation, analysis products).

A snippet is the sub-window of one feature-store window at one scale: ``table.intervals[i, s]`` says when it is, and
``table.inputs[table.input_index[i]]`` which file it came from (path and sha256). Selection follows the published
rules (most confident first, no two snippets overlapping, optionally near a time of day) and also refuses anything
that overlaps the separation target, which the published code never checked.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from obspy import UTCDateTime

from unmix.clusters import ClusterTable
from unmix.errors import ConfigError, DataError, InputFileError
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress
from unmix.mars_time import lmst_hours

_EPS = 1e-6  # seconds: adjacent sub-windows share an end/start instant and must not count as overlapping


def _posix(t) -> float:
    return float(t.timestamp) if isinstance(t, UTCDateTime) else float(t)


def midpoints(table: ClusterTable, scale: int) -> np.ndarray:
    """POSIX time of the middle of every window's sub-window at ``scale``."""
    iv = table.intervals[:, table.scale_index(scale)]
    return 0.5 * (iv[:, 0] + iv[:, 1])


def window_lmst_hours(table: ClusterTable, scale: int) -> np.ndarray:
    """LMST time of day (hours in [0, 24)) of every window's sub-window midpoint at ``scale``."""
    mid = midpoints(table, scale)
    out = np.full(mid.shape, np.nan)
    ok = np.isfinite(mid)
    if ok.any():
        out[ok] = np.atleast_1d(lmst_hours(mid[ok]))
    return out


def hour_distance(a, b) -> np.ndarray:
    """Distance between times of day in hours, with wrap-around at 24 h (23:30 and 00:30 are 1 h apart)."""
    d = np.mod(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), 24.0)
    return np.minimum(d, 24.0 - d)


def lmst_distance(hours, near) -> np.ndarray:
    """Hours from each time of day to ``near``: one LMST hour, or a (start, end) span (may wrap past midnight)."""
    hours = np.asarray(hours, dtype=float)
    if np.ndim(near) == 0:
        return hour_distance(hours, float(near) % 24.0)
    h0, h1 = (float(h) % 24.0 for h in near)
    inside = np.mod(hours - h0, 24.0) <= np.mod(h1 - h0, 24.0)
    return np.where(inside, 0.0, np.minimum(hour_distance(hours, h0), hour_distance(hours, h1)))


def _merge(intervals: Iterable[tuple]) -> list[tuple[float, float]]:
    ivs = sorted((_posix(a), _posix(b)) for a, b in intervals)
    merged: list[list[float]] = []
    for a, b in ivs:
        if b < a:
            raise ConfigError(f"exclusion interval ends before it starts: {UTCDateTime(a)} – {UTCDateTime(b)}")
        if merged and a < merged[-1][1] - _EPS:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


class _Occupied:
    """Disjoint time intervals sorted by start; answers 'does [a, b) overlap any of them?' in O(log n)."""

    def __init__(self, intervals: Sequence[tuple[float, float]] = ()) -> None:
        self.starts = [a for a, _ in intervals]
        self.ends = [b for _, b in intervals]

    def overlaps(self, a: float, b: float) -> bool:
        i = bisect.bisect_left(self.starts, b - _EPS)
        return i > 0 and self.ends[i - 1] > a + _EPS

    def add(self, a: float, b: float) -> None:
        i = bisect.bisect_left(self.starts, a)
        self.starts.insert(i, a)
        self.ends.insert(i, b)


def select_windows(
    table: ClusterTable,
    clusters: int | Sequence[int],
    scale: int,
    n: int,
    exclude: Iterable[tuple] = (),
    near_lmst: float | tuple[float, float] | None = None,
    lmst_tolerance_hours: float = 2.0,
    min_confidence: float = 0.0,
    per_cluster: bool = False,
) -> np.ndarray:
    """Up to ``n`` window indices in any of ``clusters`` at ``scale``, most confident first.

    Their sub-windows at ``scale`` overlap neither each other nor any ``exclude`` (t0, t1) interval (POSIX seconds or
    UTCDateTime, e.g. the separation target). With ``near_lmst`` (hours, or an (h0, h1) span such as the target's) only
    windows whose sub-window midpoint is within ``lmst_tolerance_hours`` of that LMST time of day are kept (any sol;
    wrap-around at 24 h). ``per_cluster``: up to ``n`` windows of each cluster (the published prior: R per prior
    cluster), the clusters in the order given, no two overlapping across clusters either; otherwise ``n`` over their
    union.
    """
    if n <= 0:
        raise ConfigError(f"the number of windows to select must be > 0, got {n}")
    if near_lmst is not None and lmst_tolerance_hours < 0.0:
        raise ConfigError(f"the LMST tolerance must be ≥ 0 hours, got {lmst_tolerance_hours}")
    s = table.scale_index(scale)
    groups = [[k] for k in np.atleast_1d(clusters)] if per_cluster else [list(np.atleast_1d(clusters))]
    hours = window_lmst_hours(table, scale) if near_lmst is not None else None
    occupied = _Occupied(_merge(exclude))
    chosen: list[int] = []
    for group in groups:
        candidates = table.members(group, scale, min_confidence)
        iv = table.intervals[candidates, s]
        keep = np.all(np.isfinite(iv), axis=1)
        if hours is not None:
            keep &= lmst_distance(hours[candidates], near_lmst) <= lmst_tolerance_hours
        taken = 0
        for i, (a, b), ok in zip(candidates, iv, keep, strict=True):
            if not ok or occupied.overlaps(a, b):
                continue
            occupied.add(a, b)
            chosen.append(int(i))
            taken += 1
            if taken == n:
                break
    return np.asarray(chosen, dtype=np.int64)


@dataclass
class Snippets:
    """Waveforms of selected sub-windows: ``data[k]`` is window ``indices[k]``'s sub-window, starting at ``starts[k]``.

    ``ids`` are the channel ids of the components (of the first snippet when inputs differ in naming); ``sources``
    the file each snippet was read from.
    """

    data: np.ndarray  # (n, C, T) float64
    starts: list[UTCDateTime]
    ids: list[str]
    sampling_rate: float
    indices: np.ndarray
    scale: int = 0
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.data.shape[0])


def _feature_options(table: ClusterTable, feature_config) -> dict:
    cfg = feature_config
    if cfg is None:
        cfg = table.meta.get("feature_config") or table.meta.get("config") or {}
    if not isinstance(cfg, dict):
        cfg = cfg.to_dict()
    return {"gap_policy": cfg.get("gap_policy", "split"), "max_fill": int(cfg.get("max_fill", 0) or 0),
            "response": cfg.get("response"), "response_output": cfg.get("response_output", "VEL"),
            "rotate": bool(cfg.get("rotate", False))}


def _load_input(entry: dict, options: dict, rate: float | None, token: CancelToken = NO_CANCEL) -> list:
    from unmix.hashing import file_sha256
    from unmix.io import read_records, remove_response, rotate_to_zne

    path = Path(entry["path"])
    if not path.is_file():
        raise InputFileError("input of the cluster table is missing (moved or deleted?)", path)
    digest = entry.get("sha256")
    if digest and file_sha256(path, token) != digest:
        raise InputFileError("input of the cluster table has changed since its features were computed (sha256 "
                             "differs)", path)
    # an input whose features were computed with --allow-damaged (its records list the damage) is read the same way
    damaged = any(r.get("damage") for r in entry.get("records", []) if isinstance(r, dict))
    records = read_records(path, gap_policy=options["gap_policy"], max_fill=options["max_fill"], resample_to=rate,
                           token=token, allow_damaged=damaged)
    if options["response"]:
        records = [remove_response(r, options["response"], output=options["response_output"]) for r in records]
        if options["rotate"]:
            records = [rotate_to_zne(r, options["response"]) for r in records]
    return records


def read_snippets(
    table: ClusterTable,
    indices: Sequence[int] | np.ndarray,
    scale: int,
    components: str = "UVW",
    progress: Progress = no_progress,
    token: CancelToken = NO_CANCEL,
    feature_config=None,
    cache: dict | None = None,
    detrend: str | None = None,
) -> Snippets:
    """Read the sub-window at ``scale`` of each window in ``indices`` from the table's input files.

    Files are read once (``cache`` may be shared between calls) with the gap policy, response removal and rotation of
    the feature configuration (``feature_config``, else ``table.meta['feature_config']``, else raw counts, gaps split).
    A file that moved or whose sha256 differs from the table's record is an :class:`InputFileError`.
    ``detrend='spline'``: every record is detrended as a whole before the snippets are cut (the published prior:
    ObsPy's spline detrend, order 2, knots every 2000 samples, on the whole day file).
    """
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    s = table.scale_index(scale)
    if table.input_index is None or not table.inputs:
        raise ConfigError("this cluster table does not record its input files; waveforms cannot be re-read")
    if indices.size and (indices.min() < 0 or indices.max() >= table.n_windows):
        raise ConfigError(f"window indices must lie in [0, {table.n_windows}), got {indices.min()}…{indices.max()}")
    options = _feature_options(table, feature_config)
    cache = {} if cache is None else cache
    data, starts, sources, ids, rates = [], [], [], None, set()
    for k, i in enumerate(indices):
        token.check()
        entry = table.inputs[int(table.input_index[i])]
        recs_meta = entry.get("records") or []
        ri = int(table.record_index[i]) if table.record_index is not None else -1
        meta = recs_meta[ri] if 0 <= ri < len(recs_meta) else {}
        rate = meta.get("sampling_rate") or table.meta.get("sampling_rate")
        key = (str(entry["path"]), rate, tuple(sorted(options.items(), key=lambda kv: kv[0])), detrend)
        if key not in cache:
            cache[key] = _detrended(_load_input(entry, options, rate, token), detrend)
        t0 = float(table.intervals[i, s, 0])
        x, start, chan, fs = _cut(cache[key], meta.get("key"), t0, scale, components, entry["path"])
        data.append(x)
        starts.append(start)
        sources.append(str(entry["path"]))
        rates.add(round(fs, 9))
        ids = ids or chan
        progress((k + 1) / len(indices), "reading snippets")
    if len(rates) > 1:
        raise DataError(f"snippets come from records at different sampling rates {sorted(rates)}")
    C = len(components)
    arr = np.stack(data) if data else np.zeros((0, C, scale))
    return Snippets(arr, starts, ids or [], rates.pop() if rates else float(table.meta.get("sampling_rate", 0.0)),
                    indices, int(scale), sources)


def _detrended(records: list, mode: str | None) -> list:
    """The records with every trace's trend (:func:`unmix.separation.solver.trend`) removed; unchanged for None."""
    if mode is None:
        return records
    from unmix.separation.solver import detrended

    for rec in records:
        for tr in rec.stream:
            tr.data = detrended(np.asarray(tr.data, dtype=np.float64), mode)[0]
    return records


def _cut(records: list, key: str | None, t0: float, npts: int, components: str, path) -> tuple:
    """Samples [t0, t0 + npts/fs) of the record that contains them, components in the asked order."""
    for rec in records:
        if key is not None and rec.key != key:
            continue
        fs = rec.sampling_rate
        first = int(round((t0 - rec.starttime.timestamp) * fs))
        if first < 0 or first + npts > rec.npts:
            continue
        traces = []
        for c in components:
            match = [tr for tr in rec.stream if tr.stats.channel[-1] == c]
            if not match:
                raise DataError(f"{rec.key} has components {rec.components}, component {c} was asked for", path)
            traces.append(match[0])
        x = np.stack([np.asarray(tr.data[first:first + npts], dtype=np.float64) for tr in traces])
        return x, rec.starttime + first / fs, [tr.id for tr in traces], fs
    raise DataError(f"no gap-free record covers {UTCDateTime(t0)} + {npts} samples; was the table made from other "
                    "data or another gap policy?", path)


__all__ = ["Snippets", "hour_distance", "lmst_distance", "midpoints", "read_snippets", "select_windows",
           "window_lmst_hours"]

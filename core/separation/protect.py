"""Protected spans: events the analyst keeps (marsquakes from a catalogue, marked spans) that no separation removes.

A separation that takes whatever departs from the background prior (``scatcov``, ``hybrid`` with
``residual='auto'``) removes a marsquake along with the wind (docs/performance.md, issue #18). An analyst who knows
where the events are (the MQS catalogue, spans marked in the GUI) protects them: inside a protected span only what the
instrument templates model (the ``glitches`` and ``spikes`` parts) is removed; every other removed part is put back
into the background there, faded in and out over :data:`TAPER_S` seconds outside the span, so the background stays
continuous. Protection is a wrapper around any method (:class:`ProtectedSeparator`), made by
:func:`unmix.separation.registry.get_method` from the common option ``protect``: a catalogue file (QuakeML, MPS
list, Snuffler markers, truth JSON: :func:`unmix.catalogs.read_catalog`; entries for another instrument are
ignored) or a list of ``(start, end)`` pairs (POSIX seconds, ISO strings or ``UTCDateTime``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from obspy import Stream, Trace, UTCDateTime

from unmix.errors import ConfigError
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress

if TYPE_CHECKING:  # the registry imports this module: no import back into unmix.separation at run time
    from unmix.separation.base import PieceExtent
    from unmix.separation.result import SeparationResult

#: Removed parts a protected span still gives up: what the instrument's step responses model.
MODELLED = ("glitches", "spikes")
#: Seconds over which the protection fades in before a span and out after it.
TAPER_S = 10.0


def _time(value: Any, what: str) -> float:
    try:
        return float(value) if isinstance(value, int | float) else float(UTCDateTime(value).timestamp)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"protect: {what} is not a time ({value!r})") from exc


def protected_spans(protect: Any, seed_id: str = "") -> list[tuple[float, float]]:
    """The spans (POSIX seconds, sorted) of ``protect``: a catalogue (a file, or a read
    :class:`~unmix.catalogs.Catalog`) entries for the instrument of ``seed_id`` (or naming none), or the given
    ``(start, end)`` pairs."""
    from unmix.catalogs import Catalog, matches_seed, read_catalog

    if isinstance(protect, str | Path | Catalog):
        entries = (read_catalog(protect) if isinstance(protect, str | Path) else protect).entries
        return sorted((float(e.start.timestamp), float(e.end.timestamp)) for e in entries
                      if not seed_id or matches_seed(Catalog([e]), seed_id))
    spans = []
    for i, pair in enumerate(protect):
        if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
            raise ConfigError(f"protect: span {i} must be a (start, end) pair, got {pair!r}")
        a, b = _time(pair[0], f"the start of span {i}"), _time(pair[1], f"the end of span {i}")
        if not b > a:
            raise ConfigError(f"protect: span {i} ends before it starts")
        spans.append((a, b))
    return sorted(spans)


def protect_mask(tr: Trace, spans: list[tuple[float, float]], taper: float = TAPER_S) -> np.ndarray:
    """1 inside every span, 0 farther than ``taper`` seconds from all of them, a raised cosine in between, on the
    samples of ``tr``."""
    n, fs = tr.stats.npts, float(tr.stats.sampling_rate)
    t = float(tr.stats.starttime.timestamp) + np.arange(n) / fs
    mask = np.zeros(n)
    for a, b in spans:
        if b + taper < t[0] or a - taper > t[-1]:
            continue
        d = np.maximum(np.maximum(a - t, t - b), 0.0)  # distance outside the span, 0 inside
        ramp = np.where(d < taper, 0.5 * (1.0 + np.cos(np.pi * d / taper)), 0.0) if taper > 0 else (d == 0) * 1.0
        mask = np.maximum(mask, ramp)
    return mask


def protect_result(result: SeparationResult, spans: dict[str, list] | list, taper: float = TAPER_S
                   ) -> SeparationResult:
    """``result`` (changed in place and returned) with its non-template removed parts put back into the background
    inside ``spans`` (POSIX seconds; per trace id, or the same for every trace); ``info['protected']``: the longest
    span of a trace wholly protected (s) and the RMS over each trace of what was put back, per part."""
    restored, covered = {}, 0.0
    for i, bg in enumerate(result.background):
        mask = protect_mask(bg, spans.get(bg.id, []) if isinstance(spans, dict) else spans, taper)
        if not mask.any():
            continue
        covered = max(covered, float((mask >= 1.0).sum()) / float(bg.stats.sampling_rate))
        data = np.asarray(bg.data, dtype=np.float64).copy()
        for name, part in result.removed.items():
            if name in MODELLED:
                continue
            tr = part[i]
            back = np.asarray(tr.data, dtype=np.float64) * mask
            tr.data = np.asarray(tr.data, dtype=np.float64) - back
            data += back
            restored[f"{bg.id}:{name}"] = float(np.sqrt(np.mean(np.square(back))))
        bg.data = data
    result.info = {**result.info, "protected": {"seconds": round(covered, 3), "restored_rms": restored}}
    return result


def protecting(separator: Any, spans: dict[str, list] | list) -> Any:
    """``separator`` for a run with ``spans`` protected: its own ``protecting`` (a method that would give up its
    templates there returns a copy that keeps them), or itself (plain registered callables have none)."""
    hook = getattr(separator, "protecting", None)
    return hook(spans) if callable(hook) else separator


class ProtectedSeparator:
    """``inner`` whose non-template removed parts are put back into the background inside protected spans."""

    def __init__(self, inner: Any, protect: str | Path | Sequence, taper: float = TAPER_S) -> None:
        self.inner, self.protect, self.taper = inner, protect, float(taper)
        self.name = getattr(inner, "name", type(inner).__name__)
        if isinstance(protect, str | Path):
            protected_spans(protect)  # a bad catalogue is one line now, not one per input
        else:
            self.protect = protected_spans(protect)

    def piece_extent(self, sampling_rate: float) -> PieceExtent | None:
        extent = getattr(self.inner, "piece_extent", None)
        return extent(sampling_rate) if callable(extent) else None

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        get = getattr(self.inner, "get_params", None)
        return {**(get(deep) if callable(get) else {}), "protect": self.protect}

    def provenance_params(self) -> dict[str, Any]:
        params = getattr(self.inner, "provenance_params", getattr(self.inner, "get_params", dict))()
        return {**params, "protect": self._described()}

    def _described(self) -> str | list[list[str]]:
        """The protection as the provenance records it: the catalogue's path, or the spans in ISO time."""
        if isinstance(self.protect, str | Path):
            return str(self.protect)
        return [[UTCDateTime(a).isoformat(), UTCDateTime(b).isoformat()] for a, b in self.protect]

    def check_params(self) -> None:
        check = getattr(self.inner, "check_params", None)
        if callable(check):
            check()

    def separate(self, stream: Stream, progress: Progress = no_progress,
                 token: CancelToken = NO_CANCEL) -> SeparationResult:
        spans: dict[str, list] | list = self.protect
        if isinstance(self.protect, str | Path):  # read once; each trace keeps the entries for its instrument
            from unmix.catalogs import read_catalog

            catalog = read_catalog(self.protect)
            spans = {tr.id: protected_spans(catalog, tr.id) for tr in stream}
            if catalog.entries and not any(spans.values()):  # a catalogue for another instrument protects nothing
                ids = sorted({tr.id[:-1] + "?" for tr in stream})
                raise ConfigError(f"protect: the catalogue is for {', '.join(catalog.seed_ids)}, not for the "
                                  f"data's {', '.join(ids)}", Path(self.protect))
        result = protect_result(protecting(self.inner, spans).separate(stream, progress, token), spans, self.taper)
        result.info = {**result.info, "params": {**result.info.get("params", {}), "protect": self._described()}}
        result.info["protected"].update(self._source())
        return result

    def _source(self) -> dict[str, str]:
        """The catalogue's checksum, so a provenance says which version of the file was used."""
        if not isinstance(self.protect, str | Path):
            return {}
        from unmix.hashing import file_sha256

        return {"catalogue_sha256": file_sha256(Path(self.protect))}


__all__ = ["MODELLED", "TAPER_S", "ProtectedSeparator", "protect_mask", "protect_result", "protected_spans",
           "protecting"]

"""What every separation method returns, and the registry through which the CLI, GUI and benchmarks find methods."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from obspy import Stream, Trace

from unmix.errors import DataError
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress


@dataclass
class SeparationResult:
    """The background and each removed source as Streams with the input's ids, start times and rates.

    ``background + sum(removed.values())`` equals the input sample by sample. ``info`` holds the method, its
    parameters and timings (written into the provenance JSON by the export): ``method``, ``params``, ``total_s``
    (wall seconds; also as ``seconds``, the key the baselines wrote before) and what the method reports.
    """

    background: Stream
    removed: dict[str, Stream]
    info: dict = field(default_factory=dict)


def component_letter(tr: Trace) -> str:
    """The component letter of a trace (last letter of its channel code, '' when there is none)."""
    return tr.stats.channel[-1:] if tr.stats.channel else ""


def checked_signals(stream: Stream) -> list[np.ndarray]:
    """Every trace of ``stream`` as float64, refusing empty streams, gaps (masked samples) and non-finite values."""
    if len(stream) == 0:
        raise DataError("nothing to separate: the stream holds no traces")
    signals = []
    for tr in stream:
        if np.ma.isMaskedArray(tr.data) and np.ma.getmaskarray(tr.data).any():
            raise DataError(f"{tr.id} has gaps (masked samples); split or fill them first")
        data = np.asarray(tr.data, dtype=np.float64)
        if not np.isfinite(data).all():
            raise DataError(f"{tr.id} contains NaN or infinite samples")
        signals.append(data)
    return signals


class Separator(Protocol):
    """A configured separation method (configuration in the constructor, scikit-learn style).

    :class:`unmix.separation.base.BaseSeparator` implements it (the built-in methods subclass it): it checks the
    configuration, times the call and writes ``method``, ``params`` and ``total_s`` into ``info``.
    """

    name: str

    def separate(self, stream: Stream, progress: Progress = no_progress,
                 token: CancelToken = NO_CANCEL) -> SeparationResult: ...


# The registry lives in unmix.separation.registry; these names stay importable from here.
from unmix.separation.registry import METHODS, get_method, register_method  # noqa: E402

__all__ = ["METHODS", "SeparationResult", "Separator", "checked_signals", "component_letter", "get_method",
           "register_method"]

"""Plain high-pass baseline: the background is the record above a corner frequency, the removed part the rest."""

from __future__ import annotations

import numpy as np
from obspy import Stream

from unmix import __version__
from unmix.errors import ConfigError, DataError
from unmix.jobs import CancelToken, Progress
from unmix.separation.base import BaseSeparator, PieceExtent, settle_seconds
from unmix.separation.result import SeparationResult


class HighpassSeparator(BaseSeparator):
    """ObsPy Butterworth high-pass (zero-phase by default); removed part ``low_frequency`` = input − high-passed.

    Glitches live mostly below 0.1 Hz (the VBB's acceleration-step response rings at 0.06 Hz), so a high-pass at
    0.1 Hz removes them — together with every other long-period signal, which is why it is only a baseline.
    The constructor only stores its arguments; they are checked when :meth:`separate` runs.
    """

    name = "highpass"
    #: seconds of output per piece of a long record (:mod:`unmix.separation.pieces`)
    piece_seconds = 6 * 3600.0

    def __init__(self, freq: float = 0.1, corners: int = 4, zerophase: bool = True) -> None:
        self.freq = freq
        self.corners = corners
        self.zerophase = zerophase

    def provenance_params(self) -> dict:
        """The checked configuration (corner in Hz, number of corners, zero-phase), JSON-ready."""
        if self.freq <= 0 or self.corners < 1:
            raise ConfigError("the high-pass corner frequency must be > 0 and corners ≥ 1")
        return {"freq": float(self.freq), "corners": int(self.corners), "zerophase": bool(self.zerophase)}

    def piece_extent(self, sampling_rate: float) -> PieceExtent:
        """Pieces of :attr:`piece_seconds`; the margin lets the filter's start-up transient (each pass, when
        zero-phase) decay to 1e-12 of the step that starts it, so pieces match the whole record to round-off."""
        p = self.provenance_params()
        return PieceExtent.of(self.piece_seconds, settle_seconds(p["freq"], p["corners"], 1e-12), sampling_rate)

    def _separate(self, stream: Stream, progress: Progress, token: CancelToken) -> SeparationResult:
        p = self.provenance_params()
        freq, corners, zerophase = p["freq"], p["corners"], p["zerophase"]
        traces = stream.split() if any(isinstance(tr.data, np.ma.MaskedArray) for tr in stream) else stream
        if len(traces) == 0:
            raise DataError("nothing to separate: the stream has no traces")
        background, low = Stream(), Stream()
        note = f"unmix {__version__} highpass: Butterworth {freq:g} Hz, {corners} corners, zerophase={zerophase}"
        for k, tr in enumerate(traces):
            token.check()
            if freq >= 0.5 * tr.stats.sampling_rate:
                raise ConfigError(f"high-pass corner {freq:g} Hz is not below the Nyquist frequency of {tr.id}")
            b = tr.copy()
            b.data = np.asarray(b.data, dtype=np.float64)
            b.filter("highpass", freq=freq, corners=corners, zerophase=zerophase)
            r = tr.copy()
            r.data = np.asarray(tr.data, dtype=np.float64) - b.data
            for t in (b, r):
                t.stats.setdefault("processing", []).append(note)
            background.append(b)
            low.append(r)
            progress((k + 1) / len(traces), tr.id)
        return SeparationResult(background, {"low_frequency": low}, {})

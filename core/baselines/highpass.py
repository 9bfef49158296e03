"""Plain high-pass baseline: the background is the record above a corner frequency, the removed part the rest."""

from __future__ import annotations

import time

import numpy as np
from obspy import Stream

from unmix import __version__
from unmix.errors import ConfigError, DataError
from unmix.jobs import CancelToken, Progress, no_progress
from unmix.separation.result import SeparationResult


class HighpassSeparator:
    """ObsPy Butterworth high-pass (zero-phase by default); removed part ``low_frequency`` = input − high-passed.

    Glitches live mostly below 0.1 Hz (the VBB's acceleration-step response rings at 0.06 Hz), so a high-pass at
    0.1 Hz removes them — together with every other long-period signal, which is why it is only a baseline.
    """

    name = "highpass"

    def __init__(self, freq: float = 0.1, corners: int = 4, zerophase: bool = True) -> None:
        if freq <= 0 or corners < 1:
            raise ConfigError("the high-pass corner frequency must be > 0 and corners ≥ 1")
        self.freq = float(freq)
        self.corners = int(corners)
        self.zerophase = bool(zerophase)

    def params(self) -> dict:
        return {"freq": self.freq, "corners": self.corners, "zerophase": self.zerophase}

    def separate(self, stream: Stream, progress: Progress | None = None,
                 token: CancelToken | None = None) -> SeparationResult:
        progress = progress or no_progress
        t0 = time.perf_counter()
        traces = stream.split() if any(isinstance(tr.data, np.ma.MaskedArray) for tr in stream) else stream
        if len(traces) == 0:
            raise DataError("nothing to separate: the stream has no traces")
        background, low = Stream(), Stream()
        note = (f"unmix {__version__} highpass: Butterworth {self.freq:g} Hz, {self.corners} corners, "
                f"zerophase={self.zerophase}")
        for k, tr in enumerate(traces):
            if token is not None:
                token.check()
            if self.freq >= 0.5 * tr.stats.sampling_rate:
                raise ConfigError(f"high-pass corner {self.freq:g} Hz is not below the Nyquist frequency of {tr.id}")
            b = tr.copy()
            b.data = np.asarray(b.data, dtype=np.float64)
            b.filter("highpass", freq=self.freq, corners=self.corners, zerophase=self.zerophase)
            r = tr.copy()
            r.data = np.asarray(tr.data, dtype=np.float64) - b.data
            for t in (b, r):
                t.stats.setdefault("processing", []).append(note)
            background.append(b)
            low.append(r)
            progress((k + 1) / len(traces), tr.id)
        return SeparationResult(background, {"low_frequency": low},
                                {"method": "highpass", "params": self.params(), "seconds": time.perf_counter() - t0})

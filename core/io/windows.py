"""Reading a long miniSEED file window by window, so that what is done to it needs the memory of one window.

A file longer than :data:`WINDOW_SECONDS` is cut into windows of that length (the last one shorter) that tile its
span: each window's samples are *kept*, and it is read with a pad on either side (``pad(rate)`` seconds, e.g. a
separation method's piece margin) so that what is computed for its kept samples comes out as from the whole file.
Only the bytes of the records that reach into the padded window are read (the record headers are indexed once,
:class:`unmix.io.integrity.Layout`), and libmseed's time selection decodes only those records
(:func:`unmix.io.read.read_file`).

Only sound miniSEED files are read so (the record headers are walked once, :func:`unmix.io.integrity.layout`);
anything else — other formats, damaged files, files of one window or less — is read whole, as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from obspy import UTCDateTime

from unmix.io.integrity import layout
from unmix.io.read import TimeWindow, detect_format

#: The kept length of a reading window (s): one day, the size of the mission's day files.
WINDOW_SECONDS = 86400.0


@dataclass(frozen=True)
class ReadWindow:
    """One window of a file: the samples it keeps (``keep``: start included, end excluded) and the span read."""

    keep: tuple[UTCDateTime, UTCDateTime]
    read: TimeWindow


def read_windows(path: str | Path, pad: Callable[[float], float | None], window_s: float | None = None
                 ) -> list[ReadWindow] | None:
    """The windows to read ``path`` in, or ``None`` to read it whole (see the module docstring). ``pad(rate)``:
    the seconds each window is read beyond its kept span, for a channel sampled at ``rate`` Hz (None: the file
    must be read whole). ``window_s``: the kept length, default :data:`WINDOW_SECONDS`."""
    window_s = WINDOW_SECONDS if window_s is None else window_s
    if not window_s > 0:
        raise ValueError(f"a reading window must be longer than 0 s, got {window_s}")
    if detect_format(path) != "MSEED":
        return None
    lay = layout(path)
    if lay is None or lay.damage or lay.end - lay.start <= window_s:
        return None
    pads = {rate: pad(rate) for rate in set(lay.rates.values())}
    if any(p is None for p in pads.values()):
        return None
    margin = max(p + 2.0 / rate for rate, p in pads.items())
    count = math.ceil((lay.end - lay.start) / window_s)
    start = UTCDateTime(lay.start)
    edges = [start + k * window_s for k in range(count)] + [UTCDateTime(lay.end) + 1.0]
    return [ReadWindow((a, b), TimeWindow(a - margin, b + margin, lay.ranges(float(a - margin), float(b + margin))))
            for a, b in zip(edges[:-1], edges[1:], strict=True)]


__all__ = ["WINDOW_SECONDS", "ReadWindow", "read_windows"]

"""Time axis in UTC, LMST (sol + local mean solar time at InSight) or relative seconds, on relative-second data."""

from __future__ import annotations

import math

import pyqtgraph as pg
from obspy import UTCDateTime

from unmix.mars_time import SECONDS_PER_SOL, sol_float

AXIS_MODES = {"utc": "UTC", "lmst": "LMST", "relative": "Relative"}
_NICE = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
         21600, 43200, 86400, 172800, 432000, 864000, 1728000, 4320000)
_LMST_RATE = 86400.0 / SECONDS_PER_SOL


def lmst_sol(lmst_seconds: float) -> int:
    """Sol number of LMST seconds since sol 0 midnight, rounded to the millisecond first so that a value a hair
    below midnight (299.99999999977 sols, float error of the Mars-time conversion) is the sol the ticks show."""
    return math.floor(round(lmst_seconds, 3) / 86400.0)


class TimeAxis(pg.AxisItem):
    """Bottom axis whose ticks fall on round clock times of the chosen mode.

    The plotted x values are seconds after ``t_ref`` (a POSIX timestamp). LMST is linear in UTC over any span shown
    (a Mars second is 1.0275 s), so one :func:`unmix.mars_time.sol_float` call at ``t_ref`` anchors the whole axis.
    """

    def __init__(self, orientation: str = "bottom", **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        self.mode = "utc"
        self.t_ref = 0.0
        self._lmst0 = 0.0
        self.enableAutoSIPrefix(False)

    def set_reference(self, t_ref: float) -> None:
        self.t_ref = float(t_ref)
        self._lmst0 = float(sol_float(UTCDateTime(self.t_ref))) * 86400.0
        self.picture = None
        self.update()

    def set_mode(self, mode: str) -> None:
        self.mode = mode if mode in AXIS_MODES else "utc"
        self.picture = None
        self.update()

    def to_clock(self, v: float) -> float:
        """View x (relative seconds) → clock seconds (POSIX, LMST seconds since sol 0 midnight, or relative)."""
        if self.mode == "utc":
            return self.t_ref + v
        if self.mode == "lmst":
            return self._lmst0 + v * _LMST_RATE
        return v

    def from_clock(self, c: float) -> float:
        if self.mode == "utc":
            return c - self.t_ref
        if self.mode == "lmst":
            return (c - self._lmst0) / _LMST_RATE
        return c

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:  # noqa: N802
        c0, c1 = sorted((self.to_clock(minVal), self.to_clock(maxVal)))
        span = c1 - c0
        if not math.isfinite(span) or span <= 0 or size <= 0:
            return []
        label = 120.0 if self.mode == "lmst" else 90.0
        target = span / max(size / label, 1.0)
        major = next((s for s in _NICE if s >= target), _NICE[-1])
        minors = [s for s in _NICE if s < major and abs(major / s - round(major / s)) < 1e-9 and major / s <= 6]
        levels = []
        for spacing in [major, *minors[-1:]]:
            k0, k1 = math.ceil(c0 / spacing), math.floor(c1 / spacing)
            if k1 - k0 > 2000:
                continue
            levels.append((spacing, [self.from_clock(k * spacing) for k in range(k0, k1 + 1)]))
        return levels

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        return [self.format(v, spacing) for v in values]

    def format(self, v: float, spacing: float = 1.0) -> str:
        """Label of view x ``v`` at tick ``spacing`` (clock seconds)."""
        c = self.to_clock(v)
        decimals = max(0, -math.floor(math.log10(spacing))) if spacing < 1 else 0
        c = round(c, decimals + 3)
        if self.mode == "utc":
            t = UTCDateTime(c)
            if spacing >= 86400 or (spacing >= 60 and t.hour == 0 and t.minute == 0 and t.second == 0):
                return t.strftime("%Y-%m-%d")
            if spacing >= 60:
                return t.strftime("%H:%M")
            text = t.strftime("%H:%M:%S")
            return text + f"{t.microsecond / 1e6:.{decimals}f}"[1:] if decimals else text
        if self.mode == "lmst":
            if spacing >= 1:
                c = float(round(c))
            sol = math.floor(c / 86400.0)
            tod = c - sol * 86400.0
            if spacing >= 86400:
                return f"Sol {sol}"
            hh, rem = divmod(int(tod), 3600)
            mm, ss = divmod(rem, 60)
            if spacing >= 60:
                return f"S{sol:04d} {hh:02d}:{mm:02d}"
            frac = f"{tod - int(tod):.{decimals}f}"[1:] if decimals else ""
            return f"S{sol:04d} {hh:02d}:{mm:02d}:{ss:02d}{frac}"
        if abs(spacing) >= 60:
            sign = "-" if c < 0 else ""
            hh, rem = divmod(abs(c), 3600)
            mm, ss = divmod(rem, 60)
            return f"{sign}{int(hh)}:{int(mm):02d}:{int(round(ss)):02d}"
        return f"{c:.{decimals}f} s"

    def describe(self, v: float) -> str:
        """Axis caption for the left edge ``v``: date in UTC, sol in LMST."""
        if self.mode == "utc":
            return f"UTC  {UTCDateTime(self.to_clock(v)).strftime('%Y-%m-%d')}"
        if self.mode == "lmst":
            return f"LMST at InSight, sol {lmst_sol(self.to_clock(v))}"
        return f"seconds after {UTCDateTime(self.t_ref).strftime('%Y-%m-%dT%H:%M:%S')}"

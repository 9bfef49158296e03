"""UTC ↔ Local Mean Solar Time (LMST) and sol number at the InSight lander, via the ``marstime`` package (Mars24).

``marstime`` works in east/west longitudes and J2000 offsets in Terrestrial Time; this module adapts it to ObsPy
``UTCDateTime`` and NumPy arrays of POSIX timestamps. Its leap-second table stops in 2012; the two leap seconds
inserted since (2015-07-01 and 2017-01-01) are added here so that TT − UTC is right for the InSight mission.
"""

from __future__ import annotations

from dataclasses import dataclass

import marstime
import numpy as np
from obspy import UTCDateTime

INSIGHT_EAST_LONGITUDE = 135.623447
INSIGHT_LATITUDE = 4.502384
INSIGHT_LANDING = UTCDateTime("2018-11-26T19:52:59")
SECONDS_PER_SOL = 88775.244147

_JD_UNIX_EPOCH = 2440587.5
_LEAP_SECONDS_AFTER_MARSTIME = (UTCDateTime("2015-07-01").timestamp, UTCDateTime("2017-01-01").timestamp)


@dataclass(frozen=True)
class MarsSite:
    """A place on Mars, planetocentric east longitude in degrees."""

    east_longitude: float = INSIGHT_EAST_LONGITUDE
    landing: UTCDateTime = INSIGHT_LANDING

    @property
    def west_longitude(self) -> float:
        return float(marstime.east_to_west(self.east_longitude))


INSIGHT = MarsSite()


def _timestamps(t) -> np.ndarray:
    if isinstance(t, UTCDateTime):
        return np.asarray(t.timestamp, dtype=float)
    arr = np.asarray(t)
    if arr.dtype == object:
        return np.asarray([UTCDateTime(x).timestamp for x in arr.ravel()], dtype=float).reshape(arr.shape)
    return arr.astype(float)


def _tt_minus_utc(timestamp: np.ndarray) -> np.ndarray:
    jday = _JD_UNIX_EPOCH + timestamp / 86400.0
    offset = np.asarray(marstime.utc_to_tt_offset(jday), dtype=float).reshape(np.shape(jday))
    for leap in _LEAP_SECONDS_AFTER_MARSTIME:
        offset = offset + (timestamp >= leap)
    return offset


def _j2000_ott(timestamp: np.ndarray) -> np.ndarray:
    jday_tt = _JD_UNIX_EPOCH + (timestamp + _tt_minus_utc(timestamp)) / 86400.0
    return marstime.j2000_offset_tt(jday_tt)


def local_mars_solar_date(t, site: MarsSite = INSIGHT) -> np.ndarray:
    """Continuous local Mars solar date (MSD shifted to the site's longitude), in sols."""
    msd = marstime.Mars_Solar_Date(_j2000_ott(_timestamps(t)))
    return msd - site.west_longitude / 360.0


def sol_float(t, site: MarsSite = INSIGHT) -> np.ndarray:
    """Mission sol as a real number: the integer part is the sol, the fraction the LMST time of day / 24 h."""
    return local_mars_solar_date(t, site) - np.floor(local_mars_solar_date(site.landing, site))


def sol(t, site: MarsSite = INSIGHT):
    """Mission sol number (sol 0 is the landing sol)."""
    s = np.floor(sol_float(t, site)).astype(int)
    return int(s) if np.ndim(s) == 0 else s


def lmst_hours(t, site: MarsSite = INSIGHT):
    """LMST time of day in hours [0, 24), from ``marstime.Local_Mean_Solar_Time``."""
    h = marstime.Local_Mean_Solar_Time(site.west_longitude, _j2000_ott(_timestamps(t)))
    return float(h) if np.ndim(h) == 0 else np.asarray(h)


def format_lmst(t, site: MarsSite = INSIGHT, seconds: bool = True) -> str:
    """``'S0235 19:30:12'``-style LMST string for one time."""
    f = float(sol_float(t, site))
    s = int(np.floor(f))
    total = (f - s) * 86400.0
    hh, rem = divmod(int(round(total)), 3600)
    mm, ss = divmod(rem, 60)
    if hh == 24:
        s, hh = s + 1, 0
    return f"S{s:04d} {hh:02d}:{mm:02d}:{ss:02d}" if seconds else f"S{s:04d} {hh:02d}:{mm:02d}"


def lmst_to_utc(sol_number: int, hours: float = 0.0, site: MarsSite = INSIGHT) -> UTCDateTime:
    """UTC time of LMST ``hours`` on mission sol ``sol_number``, inverting the Mars24 relations."""
    local_msd = np.floor(local_mars_solar_date(site.landing, site)) + sol_number + hours / 24.0
    msd = local_msd + site.west_longitude / 360.0
    j2000_tt = marstime.j2000_from_Mars_Solar_Date(msd)
    jday_tt = j2000_tt + marstime.j2000_epoch()
    ts_tt = (jday_tt - _JD_UNIX_EPOCH) * 86400.0
    ts_utc = ts_tt - _tt_minus_utc(np.asarray(ts_tt))
    ts_utc = ts_tt - _tt_minus_utc(np.asarray(ts_utc))  # TT − UTC is piecewise constant: one more pass settles it
    return UTCDateTime(float(ts_utc))

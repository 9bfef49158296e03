import numpy as np
import pytest
from obspy import UTCDateTime

from unmix import mars_time as mt


def test_known_sols_and_lmst():
    # README of the shared data: 2019-07-26T12:19 UTC is sol 235 at about 19:30 LMST (marsquake S0235b).
    t = UTCDateTime("2019-07-26T12:19:00")
    assert mt.sol(t) == 235
    assert 19.3 < mt.lmst_hours(t) < 19.7
    # S0173a (2019-05-23T02:22:59 UTC) is on sol 173
    assert mt.sol(UTCDateTime("2019-05-23T02:22:59")) == 173
    # landing day is sol 0
    assert mt.sol(mt.INSIGHT_LANDING) == 0


def test_matches_mps_catalogue_within_two_minutes():
    # The MPS glitch list prints LMST from a linear sol model (sol 0 = 2018-11-26T05:10:50 UTC);
    # Mars24 agrees with it to ~1.5 min.
    t = UTCDateTime("2019-05-22T23:31:39")
    assert mt.sol(t) == 173
    mps_hours = 0 + 11 / 60 + 52 / 3600
    assert abs(mt.lmst_hours(t) - mps_hours) * 60 < 2.0


def test_sol_start_close_to_seisglitch_epoch():
    sol0 = mt.lmst_to_utc(0, 0.0)
    assert abs(sol0 - UTCDateTime("2018-11-26T05:10:50.335")) < 120


def test_roundtrip_and_vectorised():
    t = UTCDateTime("2020-04-07T08:22:04")
    s, h = mt.sol(t), mt.lmst_hours(t)
    back = mt.lmst_to_utc(s, h)
    assert abs(back - t) < 1e-3
    ts = np.array([t.timestamp, t.timestamp + 88775.244147])
    hours = mt.lmst_hours(ts)
    assert hours.shape == (2,)
    assert np.allclose(hours[0], hours[1], atol=1e-3)  # one sol later, same LMST
    assert list(mt.sol(ts)) == [s, s + 1]


def test_leap_seconds_after_marstime_table():
    # marstime's own table stops at 2012 (TT−UTC = 67.184 s); since 2017-01-01 it is 69.184 s.
    assert mt._tt_minus_utc(np.array([UTCDateTime("2019-01-01").timestamp]))[0] == pytest.approx(69.184)
    assert mt._tt_minus_utc(np.array([UTCDateTime("2014-01-01").timestamp]))[0] == pytest.approx(67.184)


def test_format_lmst():
    assert mt.format_lmst(UTCDateTime("2019-07-26T12:19:00")).startswith("S0235 19:")

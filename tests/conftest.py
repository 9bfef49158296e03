"""Shared fixtures: where the real InSight data live, and small synthetic waveform files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("UNMIX_SHARED", ROOT.parent / "shared"))
INSIGHT = SHARED / "data" / "insight"


@pytest.fixture(scope="session")
def insight() -> Path:
    """The real InSight data folder (``../shared/data/insight``); tests skip with a reason where it is absent."""
    if not INSIGHT.is_dir():
        pytest.skip(f"real InSight data not found at {INSIGHT} (set UNMIX_SHARED to the shared folder)")
    return INSIGHT


def make_trace(channel: str = "BHU", npts: int = 2000, rate: float = 20.0, start: str = "2019-05-23T00:00:00",
               station: str = "ELYSE", location: str = "02", seed: int = 0) -> Trace:
    rng = np.random.default_rng(seed)
    tr = Trace(rng.standard_normal(npts).astype(np.float64))
    tr.stats.network, tr.stats.station, tr.stats.location, tr.stats.channel = "XB", station, location, channel
    tr.stats.sampling_rate = rate
    tr.stats.starttime = UTCDateTime(start)
    return tr


def make_stream(components: str = "UVW", **kw) -> Stream:
    return Stream([make_trace(channel="BH" + c, seed=i, **kw) for i, c in enumerate(components)])

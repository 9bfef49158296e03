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


def synthetic_store(folder: Path, hours: float, seed: int, name: str = "features.h5") -> Path:
    """A small feature store of a synthetic record (windows 4096, scales 1024 and 4096, no normalisation): the store
    the model tests train on."""
    from unmix.features import FeatureConfig, build_store
    from unmix.synthetic import SyntheticConfig, generate

    generate(SyntheticConfig(hours=hours, seed=seed)).write(folder / "synth")
    build_store([folder / "synth" / "mixture.mseed"], folder / name,
                FeatureConfig(window=4096, hop=1024, scales=(1024, 4096), normalize=None), device="cpu")
    return folder / name

"""Cancelling a scattering-covariance separation while the loss makes its statistics (issue #17): with a long prior
they take many seconds, and a cancel must be seen within a second, not after them."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime

from unmix.jobs import Cancelled, CancelToken
from unmix.separation.hybrid.config import SolverConfig
from unmix.separation.hybrid.residual import outlier_spans
from unmix.separation.loss import SeparationLoss
from unmix.separation.scatcov import ScatCovSeparator

T = 1024
#: snippets enough for the statistics to take several seconds (about 1 ms per snippet and transform)
LONG_PRIOR = 600


def _cancel_after(token: CancelToken, seconds: float) -> tuple[threading.Timer, list[float]]:
    """A started timer that cancels ``token`` after ``seconds``, and the list that gets the time it did."""
    at: list[float] = []

    def cancel() -> None:
        at.append(time.perf_counter())
        token.cancel()

    timer = threading.Timer(seconds, cancel)
    timer.start()
    return timer, at


def _prior(n: int = LONG_PRIOR, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1, T))


def test_cancelling_the_statistics_of_the_loss_stops_within_a_second():
    rng = np.random.default_rng(1)
    token = CancelToken()
    timer, at = _cancel_after(token, 1.0)
    with pytest.raises(Cancelled):  # raised by the constructor: the cancel came while it made the statistics
        SeparationLoss(rng.standard_normal((8, T)), _prior()[:, 0], device="cpu", token=token)
    stopped = time.perf_counter()
    timer.join()
    assert stopped - at[0] < 1.0


def _stream(npts: int = 3 * T) -> Stream:
    """One component of 4 overlapping pieces: with the long prior, seconds of statistics before any iteration."""
    return Stream([Trace(np.random.default_rng(2).standard_normal(npts), header={
        "network": "SY", "station": "ELYSE", "location": "02", "channel": "BHU", "sampling_rate": 20.0,
        "starttime": UTCDateTime("2019-05-22T00:00:00")})])


def test_cancelling_a_scatcov_separation_during_its_prior_statistics_stops_within_a_second():
    token = CancelToken()
    messages: list[str] = []
    sep = ScatCovSeparator(prior=_prior(), piece=T, max_iter=5, device="cpu")
    timer, at = _cancel_after(token, 1.0)
    with pytest.raises(Cancelled):
        sep.separate(_stream(), progress=lambda f, m="": messages.append(m), token=token)
    stopped = time.perf_counter()
    timer.join()
    assert messages[-1] == "preparing prior statistics"  # no iteration had begun: cancelled in the statistics
    assert stopped - at[0] < 1.0


def test_cancelling_the_hybrid_outlier_check_during_its_prior_statistics_stops_within_a_second():
    token = CancelToken()
    x = np.random.default_rng(3).standard_normal(8 * T)
    timer, at = _cancel_after(token, 0.5)  # the check takes several seconds with 4× the prior, even on idle cores
    with pytest.raises(Cancelled):
        outlier_spans(x, _prior(4 * LONG_PRIOR)[:, 0], 2.0, SolverConfig(piece=T), token)
    stopped = time.perf_counter()
    timer.join()
    assert stopped - at[0] < 1.0

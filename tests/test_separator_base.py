"""The separators' base class (#15 item 6): constructors only store, separate() checks, times and writes the
provenance (method, checked parameters, timing) in one place."""

from __future__ import annotations

import numpy as np
import pytest
from obspy import Stream

from tests.conftest import make_stream
from unmix.baselines import HighpassSeparator, TemplateDeglitcher
from unmix.errors import ConfigError, DataError
from unmix.jobs import CancelToken, Progress
from unmix.separation import BaseSeparator, HybridSeparator, ScatCovSeparator, SeparationResult, get_method

PRIOR = np.random.default_rng(3).standard_normal((4, 3, 256))


def _all() -> list[BaseSeparator]:
    return [HighpassSeparator(freq=0.2, corners=2), TemplateDeglitcher(detector="jerk", max_group=2.0),
            ScatCovSeparator(prior=PRIOR, piece=256, max_iter=0, J=5, device="cpu"),
            HybridSeparator.from_options(residual="none", threshold=250.0, device="cpu")]


@pytest.mark.parametrize("sep", _all(), ids=lambda s: s.name)
def test_get_params_round_trips_and_set_params_changes_the_run(sep):
    params = sep.get_params()
    copy = type(sep)(**params)
    assert copy.get_params().keys() == params.keys()
    assert all(copy.get_params()[k] is v for k, v in params.items())  # stored as given, not converted
    assert copy.provenance_params() == sep.provenance_params()
    with pytest.raises(ConfigError, match="unknown parameter|unknown hybrid option"):
        sep.set_params(no_such_option=1)


def test_constructors_only_store_and_separate_checks():
    st = make_stream(npts=600)
    bad = [HighpassSeparator(freq=-1.0), TemplateDeglitcher(detector="psychic"),
           ScatCovSeparator(prior=PRIOR, piece=32), HybridSeparator(device="tpu")]
    assert [s.get_params()[k] for s, k in zip(bad, ("freq", "detector", "piece", "device"), strict=True)] == [
        -1.0, "psychic", 32, "tpu"]
    for sep in bad:
        with pytest.raises(ConfigError):
            sep.separate(st)
    # set_params repairs them: nothing was converted or rejected at construction
    good = [s.set_params(**fix) for s, fix in zip(bad, ({"freq": 0.2}, {"detector": "jerk"}, {"piece": 256},
                                                          {"device": "cpu"}), strict=True)]
    for sep in good[:2]:
        assert sep.separate(st).info["method"] == sep.name


def test_set_params_takes_effect_at_the_next_run():
    st = make_stream(npts=4000)
    sep = HighpassSeparator(freq=0.1)
    first = sep.separate(st)
    second = sep.set_params(freq=0.5).separate(st)
    assert second.info["params"]["freq"] == 0.5 and first.info["params"]["freq"] == 0.1
    np.testing.assert_array_equal(second.background[0].data, HighpassSeparator(freq=0.5).separate(st).background[0]
                                  .data)
    assert not np.array_equal(first.background[0].data, second.background[0].data)
    sc = ScatCovSeparator(prior=PRIOR, piece=512, max_iter=0, J=5, device="cpu")
    assert sc.set_params(piece=256).separate(st).info["params"]["overlap"] == 64  # default: a quarter piece


@pytest.mark.parametrize("sep", _all(), ids=lambda s: s.name)
def test_every_method_writes_method_params_and_timing(sep):
    res = sep.separate(make_stream(npts=1200))
    info = res.info
    assert info["method"] == sep.name and info["params"] == sep.provenance_params()
    assert isinstance(info["total_s"], float) and info["total_s"] >= 0 and info["seconds"] == info["total_s"]
    assert list(info)[:2] == ["method", "params"]


def test_a_subclass_only_implements_separate_and_an_empty_stream_is_refused():
    class Halves(BaseSeparator):
        """Takes half of every trace."""

        name = "halves"

        def __init__(self, share: float = 0.5) -> None:
            self.share = share

        def _separate(self, stream: Stream, progress: Progress, token: CancelToken) -> SeparationResult:
            token.check()
            progress(1.0, "done")
            removed = stream.copy()
            for tr in removed:
                tr.data = tr.data * self.share
            background = stream.copy()
            for b, r in zip(background, removed, strict=True):
                b.data = b.data - r.data
            return SeparationResult(background, {"half": removed}, {"note": "toy"})

    res = Halves(0.25).separate(make_stream(npts=100))
    assert res.info["method"] == "halves" and res.info["params"] == {"share": 0.25} and res.info["note"] == "toy"
    assert repr(Halves(0.25)) == "Halves(share=0.25)"
    with pytest.raises(DataError, match="^nothing to separate: the stream holds no traces$"):
        Halves().separate(Stream())


def test_get_method_checks_before_any_work():
    with pytest.raises(ConfigError, match="corner frequency"):
        get_method("highpass", freq=0.0)
    with pytest.raises(ConfigError, match="device"):
        get_method("hybrid", device="tpu")
    assert get_method("highpass", freq=0.3).get_params() == {"freq": 0.3, "corners": 4, "zerophase": True}


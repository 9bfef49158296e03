"""Protected spans: events the analyst keeps are left in the background by every method (issue #18, quakes)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime

from unmix.errors import ConfigError
from unmix.separation import get_method
from unmix.separation.protect import TAPER_S, protect_mask, protected_spans
from unmix.separation.result import SeparationResult

T0 = UTCDateTime(2019, 7, 26, 12)
FS = 20.0


def _stream(n: int = 24000, seed: int = 0, location: str = "02") -> Stream:
    rng = np.random.default_rng(seed)
    return Stream([Trace(rng.normal(size=n), {"network": "XB", "station": "ELYSE", "location": location,
                                              "channel": f"BH{c}", "sampling_rate": FS, "starttime": T0})
                   for c in "UVW"])


def test_mask_is_one_inside_zero_far_away_and_tapers_between():
    tr = _stream()[0]
    mask = protect_mask(tr, [(T0.timestamp + 300, T0.timestamp + 400)])
    t = np.arange(tr.stats.npts) / FS
    assert np.all(mask[(t >= 300) & (t <= 400)] == 1.0)
    assert np.all(mask[(t < 300 - TAPER_S) | (t > 400 + TAPER_S)] == 0.0)
    ramp = mask[(t > 400) & (t < 400 + TAPER_S)]
    assert np.all(np.diff(ramp) <= 0) and 0 < ramp[len(ramp) // 2] < 1


def test_highpass_keeps_the_protected_span_whole_and_the_rest_as_before():
    st = _stream()
    span = (T0 + 300, T0 + 400)
    plain = get_method("highpass").separate(st)
    kept = get_method("highpass", protect=[span]).separate(st)
    t = np.arange(st[0].stats.npts) / FS
    inside, far = (t >= 300) & (t <= 400), (t < 300 - TAPER_S) | (t > 400 + TAPER_S)
    for i, tr in enumerate(st):
        bg = kept.background[i].data
        assert np.allclose(bg[inside], tr.data[inside])  # nothing removed in the event
        assert np.allclose(bg[far], plain.background[i].data[far])  # elsewhere the method's own result
        total = bg + sum(p[i].data for p in kept.removed.values())
        assert np.allclose(total, tr.data)  # the parts still add up to the input
    assert kept.info["params"]["protect"] == [[span[0].isoformat(), span[1].isoformat()]]
    assert kept.info["protected"]["seconds"] == pytest.approx(100.0, abs=0.1)


def test_template_parts_are_still_removed_inside_protected_spans():
    """Inside an event, glitches and spikes (what the instrument templates model) still go; the rest stays."""
    from unmix.separation.registry import METHODS, register_method

    @register_method("fake-parts")
    class FakeParts:
        def separate(self, stream, progress=None, token=None):
            parts = {name: Stream([tr.copy() for tr in stream]) for name in ("glitches", "residual")}
            for name, scale in (("glitches", 0.25), ("residual", 0.5)):
                for tr in parts[name]:
                    tr.data = tr.data * scale
            bg = Stream([tr.copy() for tr in stream])
            for tr in bg:
                tr.data = tr.data * 0.25
            return SeparationResult(bg, parts, {})

    try:
        st = _stream(n=4000)
        r = get_method("fake-parts", protect=[(T0.timestamp, T0.timestamp + 4000 / FS)]).separate(st)
        assert np.allclose(r.removed["glitches"][0].data, 0.25 * st[0].data)
        assert np.allclose(r.removed["residual"][0].data, 0.0)
        assert np.allclose(r.background[0].data, 0.75 * st[0].data)
    finally:
        METHODS.pop("fake-parts")


def test_catalogue_entries_for_another_instrument_are_ignored(tmp_path):
    from unmix.catalogs import Catalog, CatalogEntry, write_catalog

    quake = CatalogEntry(T0 + 300, T0 + 400, "marsquake", "S0235b")
    other = CatalogEntry(T0 + 600, T0 + 700, "marsquake", "elsewhere", seed_id="XB.ELYSE.03.BH?")
    path = write_catalog(Catalog([quake, other]), tmp_path / "events.xml")
    assert protected_spans(path, "XB.ELYSE.02.BHU") == [(float((T0 + 300).timestamp), float((T0 + 400).timestamp))]
    assert len(protected_spans(path, "XB.ELYSE.03.BHV")) == 2
    only_03 = write_catalog(Catalog([other]), tmp_path / "elsewhere.xml")
    with pytest.raises(ConfigError, match="is for XB.ELYSE.03.BH"):
        get_method("highpass", protect=str(only_03)).separate(_stream())
    r = get_method("highpass", protect=str(path)).separate(_stream())
    assert r.info["params"]["protect"] == str(path)
    assert len(r.info["protected"]["catalogue_sha256"]) == 64
    assert r.info["protected"]["seconds"] == pytest.approx(100.0, abs=0.1)


@pytest.mark.parametrize("protect, message", [([(T0 + 5, T0)], "ends before it starts"),
                                              ([("yesterday", T0)], "not a time"),
                                              ([(T0,)], "pair")])
def test_bad_spans_are_one_clear_error(protect, message):
    with pytest.raises(ConfigError, match=message):
        get_method("highpass", protect=protect)


def test_cli_separate_protect_keeps_the_event_and_records_it(tmp_path):
    from unmix.catalogs import Catalog, CatalogEntry, write_catalog

    src = tmp_path / "in.mseed"
    st = _stream()
    st.write(str(src), format="MSEED")
    events = write_catalog(Catalog([CatalogEntry(T0 + 300, T0 + 400, "marsquake", "S0235b")]),
                           tmp_path / "events.xml")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "unmix.cli", "-q", "separate", str(src), "--method", "highpass",
                           "--protect", str(events), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    from obspy import read

    bg = read(str(next(out.glob("*background*"))))
    t = np.arange(st[0].stats.npts) / FS
    inside = (t >= 300) & (t <= 400)
    for tr in st:
        got = bg.select(channel=tr.stats.channel)[0].data
        assert np.allclose(got[inside], tr.data[inside])
    prov = json.loads(next(out.glob("*.json")).read_text())
    assert str(events.resolve()) in json.dumps(prov)
    bad = tmp_path / "bad.xml"
    bad.write_text("<not quakeml")
    proc = subprocess.run([sys.executable, "-m", "unmix.cli", "separate", str(src), "--protect", str(bad),
                           "--out", str(tmp_path / "o2")], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "bad.xml" in proc.stderr and "Traceback" not in proc.stderr


def test_bench_quake_span_is_where_the_quake_is():
    from unmix.evaluation.benchmark import quake_span
    from unmix.evaluation.cases import BenchCase

    st = _stream(n=2000)
    quake = np.zeros((3, 2000))
    quake[1, 500:900] = 1.0
    case = BenchCase("q", st, np.zeros((3, 2000)), np.zeros((3, 2000)), None, {}, quake)
    a, b = quake_span(case)
    assert a == pytest.approx(T0.timestamp + 25.0) and b == pytest.approx(T0.timestamp + 899 / FS)


def test_hybrid_auto_keeps_its_templates_inside_a_protected_event():
    """``residual='auto'`` fades its templates over spans unlike the prior (a marsquake is one) and lets the
    residual take them; protected, the residual goes back, so the templates must stay for the glitches to go."""
    from tests.conftest import make_stream
    from tests.test_hybrid import FS as HFS
    from tests.test_hybrid import _add

    prior = np.random.default_rng(1).standard_normal((6, 1, 512))
    st = make_stream("U", npts=6000)
    st[0].data[2048:4096] *= 6.0  # the event, unlike the prior
    _add(st, "glitch", 150.0, [40.0])  # a glitch inside it
    t0 = st[0].stats.starttime
    event = slice(2048, 4096)
    kw = dict(piece=256, max_iter=2, J=4, fallback="none", residual="auto", explained_factor=0)
    plain = get_method("hybrid", prior=prior, **kw).separate(st)
    assert not np.any(plain.removed["glitches"][0].data[event])  # faded: the residual took the glitch
    sep = get_method("hybrid", prior=prior, protect=[(t0 + 2048 / HFS, t0 + 4096 / HFS)], **kw)
    kept = sep.separate(st)
    glitch = kept.removed["glitches"][0].data[event]
    assert np.abs(glitch).max() > 30.0 and kept.info["catalogue"]
    assert not np.any(kept.removed["residual"][0].data[event])
    np.testing.assert_allclose(kept.background[0].data[event], st[0].data[event] - glitch
                               - kept.removed["spikes"][0].data[event], atol=1e-9)
    assert not hasattr(sep.inner, "_protected")  # the configured separator is not changed by a run

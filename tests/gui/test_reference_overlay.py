"""Reference overlay of the separation view: a waveform file drawn over the background of the matching channel, on
the view's time axis, with its fit over the visible span; a bad file is one line."""

from __future__ import annotations

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

pytestmark = pytest.mark.gui

RATE = 20.0
START = UTCDateTime("2019-07-26T11:49:00")
NPTS = 12000  # 10 minutes


def _trace(channel: str, data: np.ndarray, start: UTCDateTime = START, location: str = "02",
           dtype=np.float64) -> Trace:
    tr = Trace(np.asarray(data, dtype=dtype))
    tr.stats.network, tr.stats.station, tr.stats.location, tr.stats.channel = "XB", "ELYSE", location, channel
    tr.stats.sampling_rate, tr.stats.starttime = RATE, start
    return tr


@pytest.fixture
def separation():
    """A separation of U/V/W whose 'truth' is known: the reference, and a background that is the reference plus
    noise 10 % of its amplitude in the second half only."""
    from unmix.separation.result import SeparationResult

    rng = np.random.default_rng(3)
    truth = {c: rng.standard_normal(NPTS).cumsum() for c in "UVW"}
    noise = np.zeros(NPTS)
    noise[NPTS // 2:] = rng.standard_normal(NPTS - NPTS // 2)
    background = Stream([_trace("BH" + c, truth[c] + 0.1 * truth[c].std() * noise) for c in "UVW"])
    glitch = Stream([_trace("BH" + c, np.where(np.arange(NPTS) % 3000 < 100, 50.0, 0.0)) for c in "UVW"])
    original = Stream([b.copy() for b in background])
    for tr, g in zip(original, glitch, strict=True):
        tr.data = tr.data + g.data
    return original, SeparationResult(background, {"glitches": glitch}, {"method": "test"}), truth


@pytest.fixture
def view(qtbot, separation):
    from unmix.gui.views.results import SeparationView

    v = SeparationView()
    qtbot.addWidget(v)
    v.resize(1100, 700)
    original, result, _truth = separation
    v.set_result(original, result, t_ref=START.timestamp - 100.0)  # the browser's origin: 100 s before
    return v


def _write_reference(tmp_path, truth, location: str = "02", channel_prefix: str = "BH", shift_s: float = 0.0):
    st = Stream([_trace(channel_prefix + c, truth[c], START + shift_s, location, np.float32) for c in "UVW"])
    path = tmp_path / "reference.mseed"
    st.write(str(path), format="MSEED", encoding="FLOAT32")
    return path


def _reference_curve(view, i: int):
    (curve,) = view.reference_curves[view.result.background[i].id]
    assert id(curve) in set(map(id, view.plots[i].listDataItems()))  # on the upper row of its own channel
    return curve


@pytest.mark.parametrize("location", ["02", "58"])  # same id, or matched by component letter
def test_reference_drawn_at_its_times_over_its_channel(view, separation, tmp_path, qtbot, location):
    truth = separation[2]
    path = _write_reference(tmp_path, truth, location=location, channel_prefix="BH" if location == "02" else "HH",
                            shift_s=2.5)
    with qtbot.waitSignal(view.message) as said:
        assert view.load_reference(path)
    assert str(path) in said.args[0]
    for i, comp in enumerate("UVW"):
        x, y = _reference_curve(view, i).getOriginalDataset()
        assert x[0] == pytest.approx(102.5) and np.diff(x) == pytest.approx(np.full(NPTS - 1, 1 / RATE))
        np.testing.assert_array_equal(y, truth[comp].astype(np.float32))
    (legend,) = view.legends
    assert legend.parentItem() is view.plots[0].getViewBox()
    labels = [label.text for _sample, label in legend.items]
    assert labels == ["background", "reference: reference.mseed"]
    assert (f"U (← XB.ELYSE.{location}.HHU)" in view.reference_info.text()) == (location != "02")
    assert view.clear_reference_button.isEnabled()


def test_fit_over_the_visible_span(view, separation, tmp_path):
    """Clean first half: the background equals the reference (SNR far above 40 dB); second half: noise at 10 % of
    the record's amplitude, SNR and correlation as computed here from the known parts over the visible samples."""
    _original, result, truth = separation
    view.load_reference(_write_reference(tmp_path, truth))
    view.set_x_range(100.0, 100.0 + 0.45 * NPTS / RATE)
    first = view.reference_info.text()
    x0, x1 = 100.0 + 0.55 * NPTS / RATE, 100.0 + NPTS / RATE
    view.set_x_range(x0, x1)
    second = view.reference_info.text()
    snr = [[float(s.split("SNR ")[1].split(" dB")[0]) for s in text.split("; ")[:3]] for text in (first, second)]
    corr = [float(s.split("r ")[1].split(",")[0]) for s in second.split("; ")[:3]]
    assert min(snr[0]) > 40.0
    shown = (100.0 + np.arange(NPTS) / RATE >= x0) & (100.0 + np.arange(NPTS) / RATE <= x1)
    for i, c in enumerate("UVW"):
        ref = truth[c][shown].astype(np.float32).astype(np.float64)
        err = result.background[i].data[shown] - ref
        ref, err = ref - ref.mean(), err - err.mean()
        assert snr[1][i] == pytest.approx(10 * np.log10((ref**2).sum() / (err**2).sum()), abs=0.06)
        bg = ref + err
        assert corr[i] == pytest.approx((ref * bg).sum() / np.sqrt((ref**2).sum() * (bg**2).sum()), abs=6e-4)
    assert min(snr[1]) > 10.0 and max(snr[1]) < 30.0


def test_bad_files_are_one_line(view, separation, tmp_path, qtbot):
    good = _write_reference(tmp_path, separation[2])
    assert view.load_reference(good)
    drawn = {k: list(v) for k, v in view.reference_curves.items()}
    garbage = tmp_path / "notes.mseed"
    garbage.write_bytes(b"this is not a waveform\n" * 50)
    other = tmp_path / "other.mseed"
    Stream([_trace("BHX", np.zeros(100))]).write(str(other), format="MSEED")
    for bad, why in ((garbage, "format"), (other, "no trace matches"), (tmp_path / "missing.mseed", "no such file")):
        with qtbot.waitSignal(view.message) as said:
            assert not view.load_reference(bad)
        line = said.args[0]
        assert str(bad) in line and why in line and "\n" not in line and "Traceback" not in line
        assert view.status.text().strip() == line
    assert view.reference_curves == drawn  # the good reference stays
    view.clear_reference()
    assert not view.reference_curves and not view.clear_reference_button.isEnabled()
    assert not any(c in drawn[k] for k in drawn for p in view.plots for c in p.listDataItems())
    assert not view.reference_info.isVisible()


def test_reference_kept_over_a_new_result(view, separation, tmp_path, screenshot):
    original, result, truth = separation
    view.load_reference(_write_reference(tmp_path, truth))
    view.set_result(original, result, t_ref=START.timestamp)
    x, _y = _reference_curve(view, 0).getOriginalDataset()
    assert x[0] == pytest.approx(0.0)
    view.set_x_range(250.0, 400.0)
    view.show()
    screenshot(view, "separation_reference")

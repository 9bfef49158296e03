"""The spectrogram is computed from the samples the browser draws (units after response removal, display filter) and
its colour bar names the unit."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

pytestmark = pytest.mark.gui

RAW = "raw/XB.ELYSE.02.BH_2019-07-26T1149_S0235b_raw.mseed"
RESPONSE = "response/XB.ELYSE.02.BH.xml"


@pytest.fixture(scope="module")
def records(insight_module):
    """Half an hour of the raw S0235b record (counts), enough for 50-s windows, small enough to convert quickly."""
    from unmix.io import build_records, read_stream

    stream = read_stream(insight_module / RAW)
    t0 = max(tr.stats.starttime for tr in stream) + 60
    return build_records(stream.trim(t0, t0 + 1800))


@pytest.fixture(scope="module")
def insight_module():
    from tests.conftest import INSIGHT

    if not (INSIGHT / RAW).is_file() or not (INSIGHT / RESPONSE).is_file():
        pytest.skip(f"real InSight data not found at {INSIGHT}")
    return INSIGHT


def _band_db(tiles, f_lo: float, f_hi: float) -> float:
    """Median PSD (dB) of the tiles over the frequencies in [f_lo, f_hi]."""
    values = []
    for tile in tiles:
        f = np.logspace(np.log10(tile.f_min), np.log10(tile.f_max), tile.image.shape[1])
        values.append(tile.image[:, (f >= f_lo) & (f <= f_hi)].ravel())
    return float(np.median(np.concatenate(values)))


def test_spectrogram_follows_response_removal(records, insight_module):
    """Counts → VEL: in the VBB's flat band the PSD drops by the sensitivity (dB), and the tiles carry the unit."""
    from obspy import read_inventory

    from unmix.gui.display import display_spectrogram
    from unmix.gui.units import Conversion, build_view

    counts = build_view(records)
    vel = build_view(records, conversion=Conversion("VEL", str(insight_module / RESPONSE)))
    comp = counts.components[0]
    raw_tiles = display_spectrogram(counts, comp, window_s=51.2)
    vel_tiles = display_spectrogram(vel, comp, window_s=51.2)
    assert raw_tiles and vel_tiles
    assert {t.unit for t in raw_tiles} == {"counts"} and {t.unit for t in vel_tiles} == {"m/s"}
    trace_id = next(tr.id for tr in records[0].stream if tr.stats.channel[-1] == comp)
    gain = read_inventory(str(insight_module / RESPONSE)).get_response(trace_id, records[0].starttime)
    expected = 20 * np.log10(gain.instrument_sensitivity.value)  # counts per m/s, ≈ 219 dB
    drop = _band_db(raw_tiles, 0.2, 1.0) - _band_db(vel_tiles, 0.2, 1.0)
    assert drop == pytest.approx(expected, abs=2.0)


def test_spectrogram_follows_the_display_filter(records):
    """A 0.1–1 Hz display filter: the same power inside the band, far less outside it."""
    from unmix.gui.display import build_display, display_spectrogram

    plain = build_display(records)
    band = build_display(records, band=(0.1, 1.0))
    comp = plain.components[0]
    a, b = display_spectrogram(plain, comp, window_s=51.2), display_spectrogram(band, comp, window_s=51.2)
    assert {t.band for t in b} == {(0.1, 1.0)} and {t.band for t in a} == {None}
    assert _band_db(b, 0.3, 0.6) == pytest.approx(_band_db(a, 0.3, 0.6), abs=1.5)
    assert _band_db(a, 4.0, 8.0) - _band_db(b, 4.0, 8.0) > 40.0
    # the tiles hold the display's own samples: the spectrogram of its first segment, computed directly
    from scipy import signal

    seg = sorted(band.traces[comp].segments, key=lambda s: s.t0)[0]
    _f, _t, sxx = signal.spectrogram(seg.raw.astype(np.float64), fs=1 / seg.dt, nperseg=1024, noverlap=512,
                                     detrend="linear", scaling="density", mode="psd")
    assert b[0].image.max() == pytest.approx(10 * np.log10(sxx[1:].max()), abs=0.5)


@pytest.mark.parametrize(("unit", "text"), [("m/s", "dB rel. 1 (m/s)²/Hz"), ("counts", "dB rel. 1 counts²/Hz"),
                                            ("m/s²", "dB rel. 1 (m/s²)²/Hz"), ("m", "dB rel. 1 m²/Hz")])
def test_colour_bar_names_the_unit(qtbot, unit, text):
    from unmix.gui.display import SpectrogramTile
    from unmix.gui.views.spectrogram import SpectrogramView

    view = SpectrogramView()
    qtbot.addWidget(view)
    rng = np.random.default_rng(0)
    tile = SpectrogramTile(0.0, 100.0, 0.01, 10.0, rng.normal(-150, 5, (40, 32)).astype(np.float32), unit,
                           (0.1, 1.0))
    view.set_tiles([tile], "key U")
    assert view.scale_legend.texts()[1].endswith(text)
    assert text in view.scale_legend.toolTip() and "filtered 0.1–1 Hz" in view.status.text()
    assert view.scale_legend.width() > view.scale_legend.fontMetrics().horizontalAdvance(f"0 {text}")


def _window_uses_display_spectrogram() -> bool:
    from unmix.gui import main_window

    return hasattr(main_window, "display_spectrogram")


@pytest.mark.skipif(not _window_uses_display_spectrogram(),
                    reason="unmix.gui.main_window still computes the spectrogram from the raw records")
def test_window_spectrogram_follows_units_and_custom_filter(window, qtbot, tmp_path, load, insight_module, records,
                                                            screenshot):
    """In the window: the spectrogram's tiles come from the display the browser shows, after a units change and
    after a custom filter, and its colour bar names the unit."""
    from obspy import Stream

    path = tmp_path / "s0235b_30min.mseed"
    stream = Stream([tr.copy() for rec in records for tr in rec.stream])
    for tr in stream:
        tr.stats.pop("mseed", None)  # its encoding is that of the raw file (int32)
    stream.write(str(path), format="MSEED")
    load(window, [path])
    key, comp = window.current_key, window.spectrogram.component()
    counts_db = _band_db(window.spectrograms[(key, comp)][2], 0.2, 1.0)
    assert window.spectrogram.scale_legend.texts()[1].endswith("dB rel. 1 counts²/Hz")
    with qtbot.waitSignal(window.spectrogram_shown, timeout=30000):
        window.units.set_conversion("VEL", str(insight_module / RESPONSE))
    tiles = window.spectrograms[(key, comp)][2]
    assert window.spectrogram_sources[(key, comp)] is window.waveform.display  # one source of truth
    assert {t.unit for t in tiles} == {"m/s"} and counts_db - _band_db(tiles, 0.2, 1.0) > 200.0
    assert window.spectrogram.scale_legend.texts()[1].endswith("dB rel. 1 (m/s)²/Hz")
    with qtbot.waitSignal(window.spectrogram_shown, timeout=30000):
        window.waveform.set_custom_band(0.1, 1.0)
    tiles = window.spectrograms[(key, comp)][2]
    assert {(t.unit, t.band) for t in tiles} == {("m/s", (0.1, 1.0))}
    assert window.spectrogram_sources[(key, comp)] is window.waveform.display
    assert _band_db(tiles, 4.0, 8.0) < _band_db(tiles, 0.3, 0.6) - 40.0
    assert "filtered 0.1–1 Hz" in window.spectrogram.status.text()
    screenshot(window, "spectrogram_units_filter")


def test_colour_range_is_bounded(qtbot):
    """A band-passed display leaves most frequencies far down: the colours span at most MAX_RANGE_DB from the top."""
    from unmix.gui.display import SpectrogramTile
    from unmix.gui.views.spectrogram import MAX_RANGE_DB, SpectrogramView

    view = SpectrogramView()
    qtbot.addWidget(view)
    image = np.full((40, 64), -320.0, np.float32)
    image[:, 20:30] = np.linspace(-170.0, -150.0, 10)
    view.set_tiles([SpectrogramTile(0.0, 100.0, 0.01, 10.0, image, "m/s", (0.1, 1.0))])
    lo, hi = view.scale_legend.levels
    assert -155.0 < hi <= -150.0 and lo == pytest.approx(hi - MAX_RANGE_DB)
    image[:, :] = np.linspace(-200.0, -150.0, 64)  # within range: the 2nd percentile stays the floor
    view.set_tiles([SpectrogramTile(0.0, 100.0, 0.01, 10.0, image, "m/s")])
    assert view.scale_legend.levels[0] == pytest.approx(np.percentile(image[::4, ::2], 2))

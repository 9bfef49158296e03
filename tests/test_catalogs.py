import pytest
from obspy import UTCDateTime
from obspy.core.event import Catalog as ObsCatalog
from obspy.core.event import Event, Origin, Pick, WaveformStreamID

from unmix.catalogs import read_catalog, read_mps_glitches
from unmix.errors import InputFileError

MPS = "catalogs/glitches_MPS_XB.ELYSE.03.BH_2019-05-22T2318_2019-05-23T2359.txt"


@pytest.mark.realdata
def test_mps_glitch_list_parses(insight):
    cat = read_mps_glitches(insight / MPS)
    assert len(cat) == 153  # the list's own footer: "Glitches all: 153"
    assert sum("U" in e.components for e in cat) == 99
    assert sum("W" in e.components for e in cat) == 94
    first = cat.entries[0]
    assert first.start == UTCDateTime("2019-05-22T23:31:39") and first.end - first.start == 25
    assert first.components == "VW" and first.amplitudes["W_raw"] == 1430
    assert first.extra["polarization"] == pytest.approx(0.993)


@pytest.mark.realdata
def test_glitches_in_the_10sps_record(insight):
    # README: 15 glitches catalogued in the span of the 03.BH? raw file, 8 of them > 2000 counts
    cat = read_catalog(insight / MPS).between(UTCDateTime("2019-05-22T23:19:27"), UTCDateTime("2019-05-23T02:24:23"))
    assert len(cat) == 15
    assert sum(max(e.amplitudes[f"{c}_raw"] for c in "UVW") > 2000 for e in cat) == 8


def test_quakeml_via_obspy(tmp_path):
    ev = Event(event_type="earthquake")
    t = UTCDateTime("2019-07-26T12:16:00")
    ev.origins.append(Origin(time=t))
    wid = WaveformStreamID(network_code="XB", station_code="ELYSE")
    ev.picks += [Pick(time=t - 60, phase_hint="start", waveform_id=wid), Pick(time=t + 900, phase_hint="end",
                                                                              waveform_id=wid)]
    p = tmp_path / "events.xml"
    ObsCatalog([ev]).write(str(p), format="QUAKEML")
    cat = read_catalog(p)
    assert len(cat) == 1 and cat.entries[0].kind == "quake"
    assert cat.entries[0].start == t - 60 and cat.entries[0].end == t + 900


def test_bad_catalogue(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("000001 2019-05-22T23:31:39 only four\n")
    with pytest.raises(InputFileError, match=r"bad.txt: line 1: expected 23 columns"):
        read_catalog(p)
    with pytest.raises(InputFileError, match="no such catalogue"):
        read_catalog(tmp_path / "missing.txt")

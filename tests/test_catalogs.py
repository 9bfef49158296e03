import json

import pytest
from obspy import UTCDateTime, read_events
from obspy.core.event import Catalog as ObsCatalog
from obspy.core.event import Event, Origin, Pick, WaveformStreamID

from unmix.catalogs import (
    catalog_from_detections,
    matches_seed,
    read_catalog,
    read_mps_glitches,
    seed_mismatch,
    write_catalog,
)
from unmix.errors import InputFileError, OutputExistsError

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


# --- interoperability: writers, truth.json, SEED ids (issue #15 item 8) ---------------------------------------------

DETECTIONS = [  # what the template deglitcher's info["catalogue"] holds: one entry per component
    {"channel": "XB.ELYSE.02.BHU", "onset": "2019-07-26T12:00:00.250000Z", "amplitude": -1500.0},
    {"channel": "XB.ELYSE.02.BHW", "onset": "2019-07-26T12:00:00.500000Z", "amplitude": 3200.5},
    {"channel": "XB.ELYSE.02.BHV", "onset": "2019-07-26T12:10:00Z", "amplitude": 800.0},
]


def test_detections_become_one_glitch_per_onset():
    cat = catalog_from_detections(DETECTIONS)
    assert len(cat) == 2 and cat.seed_ids == ["XB.ELYSE.02.BH?"]
    first = cat.entries[0]
    assert first.components == "UW" and first.start == UTCDateTime("2019-07-26T12:00:00.25")
    assert first.end - first.start == 25 and first.amplitudes == {"U_raw": 1500.0, "W_raw": 3200.5}


@pytest.mark.realdata
def test_a_written_glitch_list_reads_back_the_same(insight, tmp_path):
    original = read_mps_glitches(insight / MPS)
    for cat in (original, catalog_from_detections(DETECTIONS)):
        path = write_catalog(cat, tmp_path / f"list{len(cat)}.txt")
        back = read_catalog(path)
        assert back.seed_ids == cat.seed_ids and len(back) == len(cat)
        for a, b in zip(cat, back, strict=True):
            assert (b.start, b.end, b.components, b.kind) == (a.start, a.end, a.components, a.kind)
            assert {k: v for k, v in b.amplitudes.items() if k.endswith("_raw") and v} == \
                {k: pytest.approx(v) for k, v in a.amplitudes.items() if k.endswith("_raw") and v}
    back = read_mps_glitches(tmp_path / f"list{len(original)}.txt")
    assert back.entries[0].extra["polarization"] == pytest.approx(0.993) and back.entries[0].name == "000001"
    with pytest.raises(OutputExistsError):
        write_catalog(original, tmp_path / f"list{len(original)}.txt")


def test_glitches_as_quakeml_read_back_by_obspy_and_unmix(tmp_path):
    cat = catalog_from_detections(DETECTIONS)
    path = write_catalog(cat, tmp_path / "glitches.xml")
    events = read_events(str(path))
    assert len(events) == 2 and {e.event_type for e in events} == {"other event"}
    assert sorted(p.waveform_id.get_seed_string() for p in events[0].picks) == \
        ["XB.ELYSE.02.BHU", "XB.ELYSE.02.BHU", "XB.ELYSE.02.BHW", "XB.ELYSE.02.BHW"]
    back = read_catalog(path)
    assert [(e.kind, e.start, e.end, e.components) for e in back] == [(e.kind, e.start, e.end, e.components)
                                                                      for e in cat]
    assert back.seed_ids == ["XB.ELYSE.02.BH?"]


def test_snuffler_markers_have_pyrockos_layout(tmp_path):
    cat = catalog_from_detections(DETECTIONS)
    path = write_catalog(cat, tmp_path / "glitches.markers")
    lines = path.read_text().splitlines()
    assert lines[0] == "# Snuffler Markers File Version 0.2"
    # pyrocko's Marker.parse_attributes: 7 columns = date time date time duration kind nslc,…
    cols = lines[1].split()
    assert len(cols) == 7 and cols[:4] == ["2019-07-26", "12:00:00.250", "2019-07-26", "12:00:25.250"]
    assert float(cols[4]) == 25 and cols[5] == "1" and cols[6] == "XB.ELYSE.02.BHU,XB.ELYSE.02.BHW"
    assert lines[2].split()[6] == "XB.ELYSE.02.BHV"
    back = read_catalog(path)
    assert [(e.start, e.end, e.kind) for e in back] == [(e.start, e.end, e.kind) for e in cat]


def test_the_truth_of_synth_is_a_catalogue_with_its_seed_id(tmp_path):
    truth = {"config": {"network": "SY", "station": "ELYSE", "location": "02", "channels": ["BHU", "BHV", "BHW"]},
             "glitches": [{"onset": "2019-07-26T12:00:00Z", "amplitudes": [1.0, -2.0, 3.0], "amplitude": 2.0,
                           "azimuth": 10.0, "kind": "glitch", "axis": None}],
             "events": [{"kind": "quake", "start": "2019-07-26T13:00:00Z", "end": "2019-07-26T13:10:00Z",
                         "amplitude": 1.0, "azimuth": 0.0, "params": {}}], "gaps": []}
    path = tmp_path / "truth.json"
    path.write_text(json.dumps(truth))
    cat = read_catalog(path)
    assert [e.kind for e in cat] == ["glitch", "quake"] and cat.seed_ids == ["SY.ELYSE.02.BH?"]
    assert cat.entries[0].amplitudes["V_raw"] == 2.0 and cat.entries[1].end - cat.entries[1].start == 600
    assert seed_mismatch(cat, ["SY.ELYSE.02.BHU", "SY.ELYSE.02.BHV"]) is None
    line = seed_mismatch(cat, ["XB.ELYSE.02.BHU"])
    assert line is not None and "is for SY.ELYSE.02.BH?, not for the data's XB.ELYSE.02.BH?" in line
    path.write_text('{"config": {}}')
    with pytest.raises(InputFileError, match="not a truth.json"):
        read_catalog(path)


@pytest.mark.realdata
def test_a_glitch_list_of_another_location_is_a_mismatch(insight):
    cat = read_catalog(insight / MPS)  # the SEED id comes from SEISglitch's file name
    assert cat.seed_ids == ["XB.ELYSE.03.BH?"]
    assert seed_mismatch(cat, ["XB.ELYSE.03.BHU", "XB.ELYSE.03.BHW"]) is None
    assert "not for the data's XB.ELYSE.02.BH?" in seed_mismatch(cat, ["XB.ELYSE.02.BHU"])
    assert matches_seed(cat, "XB.ELYSE.03.BHV") and not matches_seed(cat, "XB.ELYSE.02.BHV")


def test_report_overlays_the_truth_of_synth_and_warns_on_other_seed_ids(tmp_path):
    from click.testing import CliRunner

    from unmix.cli import main
    from unmix.features import FeatureConfig, build_store
    from unmix.model import preset, train
    from unmix.synthetic import SyntheticConfig, generate

    rec = generate(SyntheticConfig(hours=3.0, seed=3))
    rec.write(tmp_path / "synth")
    store = tmp_path / "f.h5"
    build_store([tmp_path / "synth" / "mixture.mseed"], store,
                FeatureConfig(window=4096, hop=1024, scales=(1024, 4096), normalize=None), device="cpu")
    train(store, tmp_path / "m.pt", preset("small", hidden=16, latent=4, clusters=4, epochs=1, batch_size=64),
          device="cpu")
    truth = tmp_path / "synth" / "truth.json"

    def report(catalog, out):
        return CliRunner().invoke(main, ["report", str(store), str(tmp_path / "m.pt"), "--out", str(tmp_path / out),
                                         "--catalog", str(catalog), "--device", "cpu"])

    r = report(truth, "rep")
    assert r.exit_code == 0, r.output + r.stderr
    assert "warning" not in r.stderr
    summary = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert summary["catalog"] == str(truth) and "catalog" in summary["per_scale"]["1024"]
    xb = json.loads(truth.read_text())
    xb["config"]["network"] = "XB"  # the same truth, as if for the real network
    other = tmp_path / "xb-truth.json"
    other.write_text(json.dumps(xb))
    r = report(other, "rep-xb")
    assert r.exit_code == 0, r.output + r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("warning:")] == [
        f"warning: catalogue {other} is for XB.ELYSE.02.BH?, not for the data's SY.ELYSE.02.BH?: its overlays will "
        "not match"]

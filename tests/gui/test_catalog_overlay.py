"""Catalogue overlays in the browser (#17): MPS glitch list on the 10-sps record, kinds/filters, hits and misses
against cluster windows, SEED-id warning, catalogues remembered in the project."""

from __future__ import annotations

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime

from unmix.catalogs import Catalog, CatalogEntry, read_catalog, write_catalog
from unmix.clusters import ClusterTable
from unmix.gui.catalog_layers import HIT, MISS, OUTSIDE, CatalogLayer, CatalogSelection, event_hits, filter_fields
from unmix.mars_time import sol_float

RAW_10SPS = "raw/XB.ELYSE.03.BH_2019-05-22T2319_raw.mseed"
MPS_LIST = "catalogs/glitches_MPS_XB.ELYSE.03.BH_2019-05-22T2318_2019-05-23T2359.txt"


def _table(starts: np.ndarray, length: float, cluster: np.ndarray, k: int = 3) -> ClusterTable:
    iv = np.stack([starts, starts + length], -1)[:, None, :]
    p = np.full((len(starts), 1, k), 0.01, np.float32)
    p[np.arange(len(starts)), 0, cluster] = 0.98
    return ClusterTable(scales=(1024,), intervals=iv, lmst=sol_float(iv), cluster=cluster[:, None].astype(np.int16),
                        confidence=p.max(-1), probabilities=p, meta={"sampling_rate": 10.0})


def test_event_hits_hit_miss_outside():
    t0 = 1.6e9
    table = _table(t0 + np.array([0.0, 100.0, 200.0, 400.0]), 100.0, np.array([0, 1, 0, 2]))
    onsets = t0 + np.array([50.0, 150.0, 250.0, 350.0, 420.0, -5.0])
    status = event_hits(table, onsets, 1024, [0])
    assert status.tolist() == [HIT, MISS, HIT, OUTSIDE, MISS, OUTSIDE]
    assert event_hits(table, onsets, 1024, [0, 2]).tolist() == [HIT, MISS, HIT, OUTSIDE, HIT, OUTSIDE]
    only_first = np.array([True, True, False, False])  # windows of another record do not count
    assert event_hits(table, onsets, 1024, [0], only_first).tolist()[2:5] == [OUTSIDE, OUTSIDE, OUTSIDE]


def test_quakeml_filters_and_kinds(tmp_path):
    t = UTCDateTime("2019-05-23T01:00:00")
    cat = Catalog([CatalogEntry(t, t + 600, "quake", name="S0173a"), CatalogEntry(t + 3600, t + 3700, "quake"),
                   CatalogEntry(t + 7200, t + 7225, "glitch", seed_id="XB.ELYSE.03.BH?", components="UV")])
    path = write_catalog(cat, tmp_path / "events.xml")
    layer = CatalogLayer(str(path), read_catalog(path))
    fields = filter_fields(layer.catalog)
    assert fields == {"event_type": ["earthquake", "other event"]}
    sel = CatalogSelection()
    sel.add([layer])
    assert sel.kind_counts() == {"quake": 2, "glitch": 1}
    sel.filters = {"event_type": {"earthquake"}}
    assert [e.kind for e in sel.shown()] == ["quake", "quake"]
    assert sel.kind_counts() == {"quake": 2, "glitch": 0}
    sel.filters = {}
    sel.hidden_kinds = {"quake"}
    assert [e.kind for e in sel.shown()] == ["glitch"]
    assert sel.colour("glitch") != sel.colour("quake")


@pytest.fixture
def record_and_list(insight):
    raw, mps = insight / RAW_10SPS, insight / MPS_LIST
    if not raw.exists() or not mps.exists():
        pytest.skip("the 10-sps record or its MPS glitch list is missing")
    return raw, mps


def _open_catalogs(win, qtbot, paths):
    with qtbot.waitSignal(win.catalogs.drawn, timeout=20000):
        win.catalogs.open([str(p) for p in paths])


def test_mps_overlay_on_the_10sps_record(window, qtbot, load, record_and_list, screenshot, tmp_path):
    raw, mps = record_and_list
    load(window, [raw])
    _open_catalogs(window, qtbot, [mps])
    ctl = window.catalogs
    catalog = read_catalog(mps)
    assert ctl.bar.isVisible() and list(ctl.bar.kind_checks) == ["glitch"]
    assert ctl.bar.kind_checks["glitch"].text() == f"glitch ({len(catalog)})"
    assert ctl.warning is None and not ctl.bar.warning.isVisible()  # XB.ELYSE.03.BH? list on XB.ELYSE.03 data
    assert len(ctl.items) == len(window.waveform.plots) == 3
    item = ctl.items[0][1]
    t_ref = window.waveform.display.t_ref
    assert np.allclose(np.sort(item.starts + t_ref), np.sort(catalog.onsets()))
    # the list covers a day, the record less: the onsets on the record's time axis are the list's within its span
    rec = window.records[window.current_key][0]
    lo, hi = window.waveform.display.span
    on_axis = int(((item.starts >= lo) & (item.starts <= hi)).sum())
    in_record = int(((catalog.onsets() >= rec.starttime.timestamp) & (catalog.onsets() <= rec.endtime.timestamp)).sum())
    assert on_axis == in_record > 5

    # a cluster table over the record: windows of 102.4 s every 51.2 s, cluster = index % 3
    starts = rec.starttime.timestamp + np.arange(0, rec.endtime - rec.starttime - 102.4, 51.2)
    cluster = np.arange(len(starts)) % 3
    table = _table(starts, 102.4, cluster)
    window.results.set_table(table)
    ctl.bar.clusters_edit.setText("1")
    with qtbot.waitSignal(ctl.drawn, timeout=5000):
        ctl.bar.hits_check.setChecked(True)
    onsets = catalog.onsets()
    expected = []
    for t in onsets:  # brute force: any window of cluster 1 holds the onset
        covering = (starts <= t) & (t < starts + 102.4)
        expected.append(HIT if np.any(covering & (cluster == 1)) else MISS if covering.any() else OUTSIDE)
    assert ctl.status is not None
    assert ctl.status.tolist() == expected
    assert ctl.summary.hits == expected.count(HIT) > 0 and ctl.summary.misses == expected.count(MISS) > 0
    assert f"{ctl.summary.hits} of {ctl.summary.hits + ctl.summary.misses} events hit" in ctl.bar.summary.text()
    window.waveform.set_x_range(onsets[5] - t_ref - 1800, onsets[5] - t_ref + 1800)
    qtbot.wait(100)
    screenshot(window.waveform, "catalog_overlay_mps_10sps")

    # a kind switched off is not drawn; the whole overlay toggles
    with qtbot.waitSignal(ctl.drawn, timeout=5000):
        ctl.bar.kind_checks["glitch"].setChecked(False)
    assert ctl.items == []
    with qtbot.waitSignal(ctl.drawn, timeout=5000):
        ctl.bar.kind_checks["glitch"].setChecked(True)
    assert len(ctl.items) == 3
    with qtbot.waitSignal(ctl.drawn, timeout=5000):
        ctl.bar.toggle.setChecked(False)
    assert ctl.items == []
    ctl.bar.toggle.setChecked(True)

    # remembered in the project, reopened with it
    ctl.bar.kind_checks["glitch"].setChecked(False)
    window.project.path = None
    saved = window._write_project(tmp_path / "p.unmix.json")
    from unmix.gui.project import Project

    project = Project.load(saved)
    assert project.parameters["catalogs"] == [str(mps)]
    assert project.parameters["catalog_hidden"] == ["glitch"]
    with qtbot.waitSignal(window.catalogs.drawn, timeout=60000):
        window.open_project(saved)
    qtbot.waitUntil(lambda: window.catalogs.paths == [str(mps)], timeout=60000)
    assert window.catalogs.bar.hidden_kinds() == {"glitch"}


def test_seed_mismatch_warns_in_the_status_line(window, qtbot, load, tmp_path, record_and_list):
    _raw, mps = record_and_list
    traces = []
    for i, comp in enumerate("UVW"):  # an XB.ELYSE.02 record during the list's span
        tr = Trace(np.random.default_rng(i).standard_normal(4000))
        tr.stats.update({"network": "XB", "station": "ELYSE", "location": "02", "channel": "BH" + comp,
                         "sampling_rate": 10.0, "starttime": UTCDateTime("2019-05-23T00:00:00")})
        traces.append(tr)
    stream = Stream(traces)
    path = tmp_path / "other.mseed"
    stream.write(str(path), format="MSEED")
    load(window, [path])
    _open_catalogs(window, qtbot, [mps])
    assert window.catalogs.warning is not None and "XB.ELYSE.03.BH?" in window.catalogs.warning
    qtbot.waitUntil(lambda: "XB.ELYSE.02.BH?" in window.statusBar().currentMessage(), timeout=2000)
    assert window.catalogs.bar.warning.isVisible()


def test_project_validates_catalogue_fields(tmp_path):
    import json

    from unmix.errors import InputFileError
    from unmix.gui.project import Project

    path = tmp_path / "bad.unmix.json"
    path.write_text(json.dumps({"format": "unmix-project", "version": 1, "parameters": {"catalogs": [3]}}))
    with pytest.raises(InputFileError, match="parameters.catalogs"):
        Project.load(path)

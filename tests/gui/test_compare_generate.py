"""The "Compare cluster tables" and "Generate from a cluster" dialogs (#16): the figures shown are the API's
(unmix.matching, unmix.generate), copying names rewrites the other table, generation runs as a job that can be
cancelled, and saving writes a readable miniSEED with its provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import Qt  # noqa: E402

pytestmark = pytest.mark.gui

SCALES = (1024, 4096)


def _tables(n: int = 300, seed: int = 0):
    """Table ``a`` with two scales (the coarse one merges clusters 0 and 1 of the fine one, with a few windows
    moved) and table ``b``: ``a``'s fine clusters renumbered by ``PERM`` with 10 % of the windows reassigned and
    its first 20 windows missing (so the tables share 280 windows). Names on ``a``'s fine clusters 0 and 2."""
    from unmix.clusters import ClusterTable

    rng = np.random.default_rng(seed)
    starts = 1.6e9 + 512.0 * np.arange(n)
    iv = np.stack([np.stack([starts, starts + 51.2], -1), np.stack([starts, starts + 204.8], -1)], 1)
    fine = rng.integers(0, 4, n)
    coarse = np.where(fine <= 1, 0, fine - 1)
    coarse[rng.random(n) < 0.05] = 2
    cluster = np.stack([fine, coarse], 1).astype(np.int16)

    def table(c: np.ndarray, keep: slice = slice(None)) -> ClusterTable:
        p = np.full((n, 2, 4), 0.02, np.float32)
        p[np.arange(n)[:, None], np.arange(2)[None, :], c] = 0.94
        return ClusterTable(scales=SCALES, intervals=iv[keep], lmst=np.zeros(iv[keep].shape), cluster=c[keep],
                            confidence=p.max(-1)[keep], probabilities=p[keep], meta={"sampling_rate": 20.0})

    a = table(cluster)
    a.set_name(1024, 0, "quiet night")
    a.set_name(1024, 2, "glitch")
    perm = np.array([2, 0, 3, 1])
    other = perm[cluster]
    moved = rng.random(n) < 0.1
    other[moved] = rng.integers(0, 4, (int(moved.sum()), 2))
    b = table(other.astype(np.int16), slice(20, None))
    return a, b, perm


@pytest.fixture
def pair(tmp_path):
    a, b, perm = _tables()
    return a, a.save(tmp_path / "a.h5"), b, b.save(tmp_path / "b.h5"), perm


def _shown(dialog):
    """Per tab: its summary and rows (cluster, windows, partner, shared) as the dialog shows them."""
    return [(v.summary.text(), [tuple(v.cell(i, c) for c in range(4)) for i in range(v.table.rowCount())])
            for v in dialog.views]


def _expected(a, b, matchings):
    """The same from the API: match_tables / match_clusters and table.label."""
    out = []
    for (sa, sb), m in matchings.items():
        rows = []
        for i, ka in enumerate(int(k) for k in m.clusters_a):
            kb = m.mapping.get(ka)
            shared = 0 if kb is None else int(m.contingency[i, list(m.clusters_b).index(kb)])
            rows.append((a.label(sa, ka), str(int(m.contingency[i].sum())),
                         "(no partner)" if kb is None else b.label(sb, kb), str(shared)))
        out.append((f"{m.n_windows} shared windows, ARI {m.ari:.3f}, {m.agreement:.1%} on matched clusters", rows))
    return out


def test_compare_with_another_file_shows_the_api_figures_and_copies_names(qtbot, pair, errors, screenshot):
    from unmix.clusters import ClusterTable
    from unmix.gui.dialogs.compare_tables import CompareTablesDialog
    from unmix.matching import match_tables

    a, a_path, _b, b_path, perm = pair
    dialog = CompareTablesDialog(a, a_path)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert not dialog.copy_button.isEnabled()
    dialog.set_file(b_path)
    qtbot.mouseClick(dialog.compare_button, Qt.MouseButton.LeftButton)  # every shared scale
    assert errors == [] and dialog.tabs.count() == 2
    b = ClusterTable.load(b_path)
    api = match_tables(a, b)
    assert _shown(dialog) == _expected(a, b, {(s, s): m for s, m in api.items()})
    assert api[1024].mapping == {k: int(perm[k]) for k in range(4)}  # the renumbering is found
    assert 0.6 < api[1024].ari < 1.0 and api[1024].n_windows == 280
    assert dialog.views[0].cell(0, 0) == "0 (quiet night)" and dialog.views[0].cell(0, 2) == f"{perm[0]}"
    screenshot(dialog, "compare_tables_dialog")
    assert dialog.width() <= 1366 and dialog.height() <= 768

    assert dialog.copy_button.isEnabled()
    qtbot.mouseClick(dialog.copy_button, Qt.MouseButton.LeftButton)
    assert errors == []
    saved = ClusterTable.load(b_path)
    assert saved.names == {1024: {int(perm[0]): "quiet night", int(perm[2]): "glitch"}}
    assert dialog.views[0].cell(0, 2) == f"{perm[0]} (quiet night)"  # the partner shows its new name
    assert "2 name(s) copied" in dialog.status.text() and a.names == {1024: {0: "quiet night", 2: "glitch"}}

    dialog.set_scale(4096)  # one scale only
    qtbot.mouseClick(dialog.compare_button, Qt.MouseButton.LeftButton)
    assert dialog.tabs.count() == 1 and dialog.views[0].comparison.scale_a == 4096


def test_two_scales_of_this_table_copy_names_into_it(qtbot, pair, errors):
    from unmix.clusters import ClusterTable
    from unmix.gui.dialogs.compare_tables import SCALE_MODE, CompareTablesDialog
    from unmix.matching import match_clusters

    a, a_path, *_ = pair
    dialog = CompareTablesDialog(a, a_path)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.set_mode(SCALE_MODE)
    assert not dialog.file_edit.isEnabled() and dialog.scale_combo.findData(None) < 0
    dialog.set_scale(1024, 4096)
    qtbot.mouseClick(dialog.compare_button, Qt.MouseButton.LeftButton)
    m = match_clusters(a.cluster[:, 0], a.cluster[:, 1])  # 4 fine clusters, 3 coarse: one has no partner
    assert _shown(dialog) == _expected(a, a, {(1024, 4096): m})
    assert sum(r.partner is None for r in dialog.views[0].comparison.rows) == 1
    with qtbot.waitSignal(dialog.names_saved, timeout=2000) as saved:
        qtbot.mouseClick(dialog.copy_button, Qt.MouseButton.LeftButton)
    assert saved.args == [a_path] and errors == []
    expected = {m.mapping[k]: name for k, name in ((0, "quiet night"), (2, "glitch")) if k in m.mapping}
    assert a.names[4096] == expected and ClusterTable.load(a_path).names[4096] == expected


def test_compare_errors_are_one_message(qtbot, pair, tmp_path, errors):
    from unmix.gui.dialogs.compare_tables import CompareTablesDialog

    a, a_path, *_ = pair
    dialog = CompareTablesDialog(a, a_path)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.mouseClick(dialog.compare_button, Qt.MouseButton.LeftButton)
    assert errors[-1][:2] == ("Cannot compare the tables", "choose the cluster table file to compare with")
    dialog.set_file(tmp_path / "missing.h5")
    qtbot.mouseClick(dialog.compare_button, Qt.MouseButton.LeftButton)
    assert len(errors) == 2 and "missing.h5" in errors[1][1] and errors[1][2] == ""
    assert dialog.tabs.count() == 0 and not dialog.copy_button.isEnabled()


def test_compare_from_the_results_panel_and_the_menu(window, qtbot, pair, errors):
    from unmix.gui.dialogs.compare_tables import CompareTablesDialog
    from unmix.gui.dialogs.generate_cluster import GenerateClusterDialog

    a, a_path, *_ = pair
    menus = [m.menu() for m in window.menuBar().actions() if m.menu() is not None]
    actions = {x.text().replace("&", ""): x for m in menus for x in m.actions()}
    actions["Compare cluster tables…"].trigger()  # no table yet
    assert window.findChild(CompareTablesDialog) is None
    assert "no cluster table" in window.statusBar().currentMessage()
    window.project.results["table"] = str(a_path)
    window.results.table = a
    window.results.panel.set_scales(a.scales, 20.0, 4096)
    panel = window.results.panel
    assert panel.compare_button.isEnabled() and panel.generate_button.isEnabled()
    qtbot.mouseClick(panel.compare_button, Qt.MouseButton.LeftButton)
    dialog = window.findChild(CompareTablesDialog)
    assert dialog is not None and dialog.isVisible() and dialog.path == a_path
    assert dialog.scale_combo.currentData() == 4096  # the scale the results show
    dialog.close()
    actions["Generate from a cluster…"].trigger()
    generate = window.findChild(GenerateClusterDialog)
    assert generate is not None and generate.scale() == 4096
    generate.close()
    assert errors == []


# --- generation ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clustered(tmp_path_factory) -> dict:
    """A tiny real table (as tests/test_generate.py): 2 h of synthetic record, a 2-epoch model, its clusters."""
    from unmix import pipeline
    from unmix.features import FeatureConfig
    from unmix.synthetic import SyntheticConfig
    from unmix.synthetic import generate as synth

    d = tmp_path_factory.mktemp("gui_generate")
    synth(SyntheticConfig(hours=2.0, seed=11)).write(d / "syn")
    store = d / "store.h5"
    config = FeatureConfig(window=4096, hop=1024, scales=(1024, 4096), normalize=None)
    pipeline.features([d / "syn" / "mixture.mseed"], store, config, device="cpu")
    model = pipeline.train(store, d / "m.pt", pipeline.default_model(hidden=16, latent=4, clusters=3, epochs=2),
                           device="cpu").path
    path = d / "t.h5"
    table = pipeline.cluster(store, model, path, device="cpu").table
    busiest = int(np.argmax(table.occupancy(1024)))
    table.set_name(1024, busiest, "busy")
    table.save(path, overwrite=True)
    return {"table": table, "path": path, "busiest": busiest}


def _dialog(qtbot, clustered, window=None):
    from unmix.gui.dialogs.generate_cluster import GenerateClusterDialog

    dialog = GenerateClusterDialog(clustered["table"], clustered["path"], window, scale=1024)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


def test_generate_shows_the_api_waveforms_and_quality_and_saves(qtbot, clustered, tmp_path, errors, screenshot):
    from obspy import read

    from unmix.generate import generation_quality, provenance_path, synthesize
    from unmix.gui.dialogs.generate_cluster import quality_rows
    from unmix.hashing import file_sha256

    table, k = clustered["table"], clustered["busiest"]
    dialog = _dialog(qtbot, clustered)
    dialog.set_cluster("busy")  # typed by name
    assert dialog.cluster() == k
    dialog.count.setValue(2)
    dialog.seed.setValue(3)
    dialog.iterations.setValue(8)
    with qtbot.waitSignal(dialog.generated, timeout=60000) as got:
        qtbot.mouseClick(dialog.generate_button, Qt.MouseButton.LeftButton)
    result = got.args[0]
    qtbot.waitUntil(dialog.generate_button.isEnabled, timeout=5000)  # the worker's "done" follows its result
    assert errors == [] and dialog.progress.value() == 1000 and dialog.worker is None

    api = synthesize(table, k, 1024, n=2, seed=3, max_iter=8, device="cpu")
    assert np.array_equal(result.synthesis.data, api.data)
    quality = generation_quality(api.data, api.snippets.data, seed=3)
    assert result.quality == quality
    shown = [tuple(dialog.quality_cell(i, j) for j in range(6)) for i in range(dialog.quality.rowCount())]
    cov = quality["families"]["cov"]
    assert shown == quality_rows(quality) and shown[0][1] == f"{cov['generated']['inside_fraction']:.0%}"
    assert shown[0][2] == f"{cov['generated']['median']:.3g}" and len(shown) == 2
    curves = dialog.waveforms.curves  # generated 0, member 0, generated 1, member 1, member 2 (component U)
    assert len(curves) == 5
    assert np.array_equal(curves[0].yData, api.data[0, 0]) and np.array_equal(curves[1].yData, api.snippets.data[0, 0])
    dialog.waveforms.component.setCurrentIndex(2)
    assert np.array_equal(dialog.waveforms.curves[2].yData, api.data[1, 2])
    assert f"cluster {k} (busy)" in dialog.status.text()
    screenshot(dialog, "generate_cluster_dialog")
    assert dialog.width() <= 1366 and dialog.height() <= 768

    written, prov = dialog.save(tmp_path / "gen")  # the .mseed suffix is added
    assert written == tmp_path / "gen.mseed" and prov == provenance_path(written) and errors == []
    st = read(str(written))
    assert len(st) == 6 and {tr.stats.network for tr in st} == {"SY"}
    assert np.allclose(st.select(location="01", channel="*W")[0].data, api.data[1, 2])
    record = json.loads(prov.read_text())
    assert record["cluster"] == k and record["cluster_label"] == f"{k} (busy)" and record["seed"] == 3
    assert record["table_sha256"] == file_sha256(clustered["path"]) and record["quality"] == quality
    assert record["output_sha256"] == file_sha256(written)


def test_generation_runs_as_a_window_job_and_can_be_cancelled(window, qtbot, clustered, errors):
    table = clustered["table"]
    window.results.table = table
    window.project.results["table"] = str(clustered["path"])
    window.results.panel.set_scales(table.scales, 20.0, 1024)
    qtbot.mouseClick(window.results.panel.generate_button, Qt.MouseButton.LeftButton)
    from unmix.gui.dialogs.generate_cluster import GenerateClusterDialog

    dialog = window.findChild(GenerateClusterDialog)
    assert dialog is not None and dialog.path == clustered["path"]
    dialog.set_cluster(clustered["busiest"])
    dialog.count.setValue(1)
    dialog.iterations.setValue(100000)  # would run for long: only Cancel ends it
    seen: list[str] = []
    qtbot.mouseClick(dialog.generate_button, Qt.MouseButton.LeftButton)
    assert window.jobs.busy and dialog.worker is window.jobs.worker  # the window's job, followed by the dialog
    dialog.worker.signals.progress.connect(lambda _f, message: seen.append(message))
    qtbot.waitUntil(lambda: any(m.startswith("iteration") for m in seen), timeout=60000)
    assert dialog.cancel_button.isEnabled() and not dialog.generate_button.isEnabled()
    with qtbot.waitSignal(window.jobs.job_cancelled, timeout=30000):
        qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.generate_button.isEnabled(), timeout=5000)
    assert dialog.status.text() == "cancelled" and dialog.result is None and not dialog.save_button.isEnabled()
    assert errors == []


def test_bad_cluster_is_one_message(qtbot, clustered, errors):
    dialog = _dialog(qtbot, clustered)
    dialog.set_cluster("no such name")
    qtbot.mouseClick(dialog.generate_button, Qt.MouseButton.LeftButton)
    assert len(errors) == 1 and errors[0][0] == "Cannot generate" and "no cluster named" in errors[0][1]
    assert dialog.worker is None and dialog.generate_button.isEnabled()

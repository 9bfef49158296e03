"""The "Cluster names" dialog: edit, suggest (with a catalogue), accept, OK → names saved in the table file; invalid
names refused; names shown in the clusters legend and the result views; the truth of a synthetic record as evidence."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QDialogButtonBox, QLineEdit  # noqa: E402

pytestmark = pytest.mark.gui

SOL = 88775.244


def _table(n_per_sol: int = 96, sols: int = 2):
    """Windows over ``sols`` sols: cluster 0 at night, 1 in the afternoon, 2 holds every catalogued glitch, 3 the
    rest of the morning/evening (no rule names it); and the glitch catalogue (as tests/test_naming.py)."""
    from obspy import UTCDateTime

    from unmix.catalogs import Catalog, CatalogEntry
    from unmix.clusters import ClusterTable
    from unmix.mars_time import sol_float

    t0 = UTCDateTime("2019-05-23T00:00:00").timestamp
    lmst0 = float(sol_float(np.array([t0]))[0])
    start = t0 + (np.ceil(lmst0) - lmst0) * SOL  # LMST midnight
    starts = start + np.arange(n_per_sol * sols) * SOL / n_per_sol
    iv = np.stack([starts, starts + 300.0], -1)[:, None, :]
    hours = (sol_float(starts + 150.0) % 1) * 24
    cluster = np.where((hours >= 18) | (hours < 6), 0, np.where((hours >= 8) & (hours < 17), 1, 3))
    glitchy = np.arange(len(starts)) % 17 == 5
    cluster[glitchy] = 2
    entries = [CatalogEntry(UTCDateTime(a + 100), UTCDateTime(a + 130), "glitch", seed_id="XB.ELYSE.02.BH?")
               for a in starts[glitchy]]
    p = np.full((len(starts), 1, 5), 0.01, np.float32)  # 5 clusters: cluster 4 is empty (not listed)
    p[np.arange(len(starts)), 0, cluster] = 0.96
    table = ClusterTable(scales=(1024,), intervals=iv, lmst=sol_float(iv),
                         cluster=cluster[:, None].astype(np.int16), confidence=p.max(-1), probabilities=p,
                         meta={"sampling_rate": 20.0})
    return table, Catalog(entries, "test")


@pytest.fixture
def saved(tmp_path):
    """The table written to disk, and a glitch list of its catalogue."""
    from unmix.catalogs import write_catalog

    table, catalog = _table()
    path = table.save(tmp_path / "clusters.h5")
    glitches = write_catalog(catalog, tmp_path / "glitches.txt")
    return table, path, glitches


def _row(view, cluster: int) -> int:
    return [r.cluster for r in view.rows].index(cluster)


def _type_name(qtbot, view, cluster: int, text: str) -> None:
    """Type ``text`` into the Name cell of ``cluster`` with the cell's own editor, as a user does."""
    from unmix.gui.dialogs.cluster_names import NAME_COLUMN

    item = view.item(_row(view, cluster), NAME_COLUMN)
    view.setCurrentItem(item)
    view.editItem(item)
    editor = view.findChild(QLineEdit)
    assert editor is not None
    editor.selectAll()
    qtbot.keyClick(editor, Qt.Key.Key_Backspace)
    qtbot.keyClicks(editor, text)
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # the delegate commits in a queued call
    qtbot.waitUntil(lambda: item.text() == text, timeout=2000)


def _ok(dialog):
    return dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok)


def test_edit_suggest_accept_ok_saves_the_names(qtbot, saved, errors, screenshot):
    from unmix.clusters import ClusterTable
    from unmix.gui.dialogs.cluster_names import NAME_COLUMN, ClusterNamesDialog

    table, path, glitches = saved
    dialog = ClusterNamesDialog(table, path)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    view = dialog.views[1024]
    assert [r.cluster for r in view.rows] == [0, 1, 2, 3]  # the empty cluster 4 is not listed
    assert [r.windows for r in view.rows] == table.occupancy(1024)[:4].tolist()
    _type_name(qtbot, view, 1, "afternoon wind")
    assert table.names == {}  # nothing changes before OK

    dialog.set_catalog_file(glitches)
    qtbot.mouseClick(dialog.suggest_button, Qt.MouseButton.LeftButton)
    suggested = {r.cluster: r for r in view.rows}
    assert suggested[0].suggestion == "quiet night" and suggested[1].suggestion == "windy day"
    assert suggested[2].suggestion == "glitch" and suggested[3].suggestion == ""
    assert "hold a catalogued glitch" in view.item(_row(view, 2), 3).toolTip()
    assert view.item(_row(view, 1), NAME_COLUMN).text() == "afternoon wind"  # typed text survives a suggestion
    screenshot(dialog, "cluster_names_dialog")
    assert dialog.width() <= 1366 and dialog.height() <= 768

    qtbot.mouseClick(dialog.accept_button, Qt.MouseButton.LeftButton)  # fills the empty names only
    assert view.names() == {0: "quiet night", 1: "afternoon wind", 2: "glitch", 3: ""}
    qtbot.mouseClick(_ok(dialog), Qt.MouseButton.LeftButton)
    assert not dialog.isVisible() and errors == []
    back = ClusterTable.load(path)
    assert back.names == {1024: {0: "quiet night", 1: "afternoon wind", 2: "glitch"}}
    glitch = back.suggestions[1024][2]
    assert glitch["name"] == "glitch" and "catalogued glitch" in glitch["evidence"]
    assert 3 not in back.suggestions[1024]  # no name suggested, nothing stored
    assert table.label(1024, 2) == "2 (glitch)"


def test_cancel_changes_nothing_and_invalid_names_are_refused(qtbot, saved, errors):
    from unmix.clusters import ClusterTable
    from unmix.gui.dialogs.cluster_names import ClusterNamesDialog

    table, path, _ = saved
    table.set_name(1024, 3, "dusk")
    table.save(path, overwrite=True)
    dialog = ClusterNamesDialog(table, path)
    qtbot.addWidget(dialog)
    dialog.show()
    view = dialog.views[1024]
    assert view.names()[3] == "dusk"
    _type_name(qtbot, view, 0, "night")
    _type_name(qtbot, view, 1, "12")  # a number is not a name
    qtbot.mouseClick(_ok(dialog), Qt.MouseButton.LeftButton)
    assert len(errors) == 1
    title, text, _ = errors[0]
    assert title == "Cannot set the cluster names" and "scale 1024, cluster 1" in text and "not a number" in text
    assert dialog.isVisible()  # stays open to fix it
    assert table.names == {1024: {3: "dusk"}} and ClusterTable.load(path).names == {1024: {3: "dusk"}}

    _type_name(qtbot, view, 1, "a,b")  # commas separate names where clusters are chosen
    qtbot.mouseClick(_ok(dialog), Qt.MouseButton.LeftButton)
    assert len(errors) == 2 and "no commas" in errors[1][1] and table.names == {1024: {3: "dusk"}}

    _type_name(qtbot, view, 3, "")  # an empty cell removes a name
    dialog.reject()
    assert table.names == {1024: {3: "dusk"}} and ClusterTable.load(path).names == {1024: {3: "dusk"}}


def test_unwritable_file_leaves_the_table_as_it_was(qtbot, tmp_path, errors):
    from unmix.gui.dialogs.cluster_names import ClusterNamesDialog

    table, _ = _table()
    dialog = ClusterNamesDialog(table, tmp_path / "clusters.txt")  # not a cluster table name: the save fails
    qtbot.addWidget(dialog)
    dialog.show()
    _type_name(qtbot, dialog.views[1024], 0, "night")
    qtbot.mouseClick(_ok(dialog), Qt.MouseButton.LeftButton)
    assert len(errors) == 1 and "must end in .h5" in errors[0][1]
    assert dialog.isVisible() and table.names == {}


def test_names_in_the_legend_and_views_from_the_results_panel(window, qtbot, saved, errors):
    from unmix.clusters import ClusterTable
    from unmix.gui.dialogs.cluster_names import ClusterNamesDialog

    table, path, _ = saved
    window.project.results["table"] = str(path)
    with qtbot.waitSignal(window.results.products_shown, timeout=20000):
        window.results.set_table(table)
    panel, legend = window.results.panel, window.results.bar.legend
    assert panel.names_button.isEnabled()
    assert [lbl.text().split("</span> ")[1] for lbl in legend.labels][:2] == [
        f"0: {table.occupancy(1024)[0]}", f"1: {table.occupancy(1024)[1]}"]

    qtbot.mouseClick(panel.names_button, Qt.MouseButton.LeftButton)  # the results panel's "Names…"
    dialog = window.findChild(ClusterNamesDialog)
    assert dialog is not None and dialog.isVisible() and dialog.path == path
    _type_name(qtbot, dialog.views[1024], 0, "quiet night")
    with qtbot.waitSignal(window.results.names_changed, timeout=5000):
        qtbot.mouseClick(_ok(dialog), Qt.MouseButton.LeftButton)
    assert legend.labels[0].text().split("</span> ")[1] == f"0 (quiet night): {table.occupancy(1024)[0]}"
    assert "cluster 0 (quiet night)" in panel.histograms.plots[0].titleLabel.text
    assert "cluster 1<" in panel.histograms.plots[1].titleLabel.text  # unnamed: the number alone
    assert ClusterTable.load(path).names == {1024: {0: "quiet night"}}
    assert errors == []


def test_menu_action_and_synthetic_truth_as_evidence(window, qtbot, saved, errors):
    from unmix.gui.dialogs.cluster_names import ClusterNamesDialog

    table, path, _ = saved
    menus = [a.menu() for a in window.menuBar().actions() if a.menu() is not None]
    actions = {a.text().replace("&", ""): a for m in menus for a in m.actions()}
    actions["Cluster names…"].trigger()  # no table yet: one status-bar line, no dialog
    assert window.findChild(ClusterNamesDialog) is None
    assert "no cluster table" in window.statusBar().currentMessage()

    params = {"sols": 1.0, "hours": 1.0, "seed": 4, "gaps": 0, "start_sol": 210}
    window.project.synthetic.append(params)
    window.results.table = table  # the products are not needed here
    actions["Cluster names…"].trigger()
    dialog = window.findChild(ClusterNamesDialog)
    assert dialog is not None and dialog.path is None  # no file: names for the session only
    truth = dialog.evidence.findText("truth of the synthetic record (seed 4)")
    assert truth >= 0
    dialog.evidence.setCurrentIndex(truth)
    with qtbot.waitSignal(window.jobs.job_finished, timeout=30000):
        qtbot.mouseClick(dialog.suggest_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.found is not None, timeout=5000)
    assert "catalogued events" in dialog.status.text() and dialog.suggest_button.isEnabled()
    assert errors == []

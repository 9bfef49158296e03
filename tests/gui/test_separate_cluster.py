"""'Separate this cluster's windows…' (issue #18): the occupancy legend's action opens a dialog at the CLI's defaults
whose job writes what ``unmix separate --target-cluster`` writes, can be cancelled, and reports in the log; the
Separate form offers the cluster prior's ``n_prior`` and ``near_lmst`` as the API does."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytest.importorskip("PySide6")

from click.testing import CliRunner  # noqa: E402

from unmix import pipeline  # noqa: E402
from unmix.export import PROVENANCE_SUFFIX  # noqa: E402
from unmix.gui import option_widgets as ow  # noqa: E402
from unmix.separation import registry  # noqa: E402

pytestmark = pytest.mark.gui
SCALE = 4096


@pytest.fixture(scope="module")
def clustered(tmp_path_factory) -> dict:
    """Half an hour of synthetic record, its feature store, and a table of random posteriors over its windows (the
    windows are real, read back from the record; which cluster holds them does not matter here)."""
    from unmix.clusters import ClusterTable
    from unmix.features import FeatureConfig, FeatureStore, build_store
    from unmix.synthetic import SyntheticConfig, generate

    d = tmp_path_factory.mktemp("separate_cluster")
    generate(SyntheticConfig(hours=0.5, seed=4)).write(d / "syn")
    build_store([d / "syn" / "mixture.mseed"], d / "store.h5",
                FeatureConfig(window=SCALE, hop=1024, scales=(1024, SCALE), normalize=None), device="cpu")
    store = FeatureStore(d / "store.h5")
    w = store.windows()
    p = np.random.default_rng(0).dirichlet(np.ones(3), size=(store.n_windows, 2)).astype(np.float32)
    table = ClusterTable(scales=store.scales, intervals=np.stack([store.intervals(s) for s in store.scales], 1),
                         lmst=np.stack([store.lmst(s) for s in store.scales], 1), cluster=p.argmax(-1).astype(np.int16),
                         confidence=p.max(-1), probabilities=p, input_index=w["input"], record_index=w["record"],
                         inputs=store.inputs, meta={"feature_config": store.config.to_dict()})
    busiest = int(np.argmax(table.occupancy(SCALE)))
    table.set_name(SCALE, busiest, "busy")
    table.save(d / "t.h5")
    return {"table": table, "path": d / "t.h5", "busiest": busiest, "other": (busiest + 1) % 3}


def _dialog(window, qtbot, clustered, cluster: int):
    """The dialog as the user opens it: right-click on the cluster's chip in the occupancy legend."""
    from unmix.gui.dialogs.separate_cluster import SeparateClusterDialog
    from unmix.gui.views.occupancy import SEPARATE_ACTION

    results = window.results
    results.table = clustered["table"]
    window.project.results["table"] = str(clustered["path"])
    results.overlay.set_table(clustered["table"])
    results.bar.set_scale(SCALE)
    assert len(results.bar.legend.labels) == 3  # one chip per cluster
    menu = results.bar.legend.cluster_menu(cluster)
    assert [a.text() for a in menu.actions()] == [SEPARATE_ACTION]
    menu.actions()[0].trigger()
    dialogs = window.findChildren(SeparateClusterDialog)
    assert len(dialogs) == 1 and dialogs[0].isVisible()  # those closed before are gone
    return dialogs[0]


def _stems(folder) -> list[str]:
    return sorted(p.name.removesuffix(PROVENANCE_SUFFIX) for p in folder.glob(f"*{PROVENANCE_SUFFIX}"))


def _run(window, qtbot, dialog, timeout: int = 30000):
    with qtbot.waitSignal(window.jobs.job_finished, timeout=timeout) as got:
        dialog.accept()
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=5000)
    return got.args[1]


def test_the_dialog_starts_at_the_clis_defaults_and_writes_what_the_cli_writes(window, qtbot, clustered, tmp_path,
                                                                               errors):
    import click

    from unmix.cli import main
    from unmix.cli.separate import separate

    k = clustered["busiest"]
    dialog = _dialog(window, qtbot, clustered, k)
    ctx = click.Context(separate)
    cli = {p.name: p.get_default(ctx) for p in separate.params}
    assert dialog.scale == SCALE and dialog.cluster.currentData() == k and "busy" in dialog.cluster.currentText()
    assert (dialog.count.value(), dialog.format.currentText(), dialog.overwrite.isChecked()) == (
        cli["count"], cli["fmt"], cli["overwrite"])
    assert dialog.background.currentData() is None and not dialog.background.isEnabled()  # template: no prior
    assert dialog.method_options().changed() == {}
    backgrounds = [dialog.background.itemText(i) for i in range(dialog.background.count())]
    assert backgrounds[0] == "none" and f"{k} (busy) — {clustered['table'].occupancy(SCALE)[k]} windows" in backgrounds

    r = CliRunner().invoke(main, ["separate", "--table", str(clustered["path"]), "--target-cluster", "busy",
                                  "--scale", str(SCALE), "--out", str(tmp_path / "cli")])  # no --method, no --count
    assert r.exit_code == 0, r.output
    dialog.out.set_text(str(tmp_path / "gui"))
    method = dialog.method.currentData()
    report = _run(window, qtbot, dialog)
    assert errors == []
    assert _stems(tmp_path / "gui") == _stems(tmp_path / "cli") and len(_stems(tmp_path / "cli")) == cli["count"]
    assert sorted(p.name for p in (tmp_path / "gui").iterdir()) == sorted(p.name for p in (tmp_path / "cli").iterdir())
    stem = _stems(tmp_path / "cli")[0]
    ours, theirs = (json.loads((tmp_path / d / f"{stem}{PROVENANCE_SUFFIX}").read_text()) for d in ("gui", "cli"))
    assert ours["method"] == theirs["method"] == method
    assert len(report["done"]) == cli["count"] and report["folder"] == str((tmp_path / "gui").resolve())
    log = window.jobs.log.toPlainText()
    assert f"1 window(s) of cluster {k} (busy) at scale {SCALE} separated (template)" in log
    qtbot.waitUntil(lambda: str((tmp_path / "gui").resolve()) in window.statusBar().currentMessage(), timeout=2000)


def test_highpass_on_several_windows_writes_the_apis_outputs_and_skips_them_again(window, qtbot, clustered,
                                                                                  tmp_path, errors):
    k = clustered["other"]
    dialog = _dialog(window, qtbot, clustered, k)
    assert dialog.out.text().endswith(f"separated-cluster{k}-scale{SCALE}")  # one default folder per cluster
    dialog.method.setCurrentIndex(dialog.method.findData("highpass"))
    dialog.method_options().set_values({"freq": 0.5})
    dialog.count.setValue(3)
    dialog.format.setCurrentText("SAC")
    dialog.out.set_text(str(tmp_path / "gui"))
    report = _run(window, qtbot, dialog)
    api = pipeline.separate_cluster_windows(clustered["table"], [k], SCALE, tmp_path / "api", "highpass",
                                            {"freq": 0.5}, 3, "SAC")
    assert errors == [] and sorted(report["done"]) == sorted(api["done"]) == _stems(tmp_path / "gui")
    assert len(report["done"]) == 3 and sorted(p.name for p in (tmp_path / "gui").iterdir()) == sorted(
        p.name for p in (tmp_path / "api").iterdir())
    assert all(p.endswith(".sac") or p.endswith(PROVENANCE_SUFFIX) for p in report["outputs"])
    info = json.loads(next((tmp_path / "gui").glob(f"*{PROVENANCE_SUFFIX}")).read_text())["records"][0]["info"]
    assert info["method"] == "highpass" and info["params"]["freq"] == 0.5
    assert (info["target"]["cluster"], info["target"]["scale"]) == (k, SCALE)
    assert info["target"]["table"] == str(clustered["path"].resolve())

    again = _dialog(window, qtbot, clustered, k)
    again.method.setCurrentIndex(again.method.findData("highpass"))
    again.count.setValue(3)
    again.out.set_text(str(tmp_path / "gui"))
    report = _run(window, qtbot, again)
    assert report["done"] == [] and len(report["skipped"]) == 3
    outcome = [line for line in window.jobs.log.toPlainText().splitlines() if "window(s) of cluster" in line][-1]
    assert f"0 window(s) of cluster {k} at scale {SCALE} separated (highpass), 3 already done" in outcome


class Endless:
    """A toy method that separates nothing and only stops when its job is cancelled (or after 60 s, failing)."""

    def separate(self, stream, progress, token):
        progress(0.0, "toy: waiting to be cancelled")
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            token.check()
            time.sleep(0.01)
        raise RuntimeError("the job was not cancelled")


def test_cancel_stops_the_job_and_writes_nothing(window, qtbot, clustered, tmp_path, errors, monkeypatch):
    monkeypatch.setattr(registry, "METHODS", {})
    registry.register_method("endless")(Endless)
    dialog = _dialog(window, qtbot, clustered, clustered["busiest"])
    dialog.method.setCurrentIndex(dialog.method.findData("endless"))
    dialog.count.setValue(2)
    dialog.out.set_text(str(tmp_path / "out"))
    dialog.accept()
    assert window.jobs.busy and window.jobs.request_.title == f"Separate cluster {clustered['busiest']} (busy) " \
                                                               f"(scale {SCALE})"
    qtbot.waitUntil(lambda: "toy: waiting" in window.jobs.log.toPlainText(), timeout=30000)
    with qtbot.waitSignal(window.jobs.job_cancelled, timeout=10000):
        window.jobs.cancel()
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=5000)
    assert errors == [] and _stems(tmp_path / "out") == [] and "cancelled" in window.jobs.log.toPlainText()
    # the folder is free again: a new run there goes through
    monkeypatch.setattr(registry, "METHODS", {})
    dialog = _dialog(window, qtbot, clustered, clustered["busiest"])
    dialog.method.setCurrentIndex(dialog.method.findData("highpass"))
    dialog.out.set_text(str(tmp_path / "out"))
    assert len(_run(window, qtbot, dialog)["done"]) == 1 and errors == []


def test_a_prior_method_needs_a_background_and_gets_the_priors_options(window, qtbot, clustered, errors):
    from unmix.prior import Prior

    table, k = clustered["table"], clustered["other"]
    dialog = _dialog(window, qtbot, clustered, k)
    dialog.method.setCurrentIndex(dialog.method.findData("scatcov"))
    assert dialog.background.isEnabled()
    dialog.accept()  # no background: one message, the dialog stays open, no job
    assert len(errors) == 1 and errors[0][0] == "Cannot separate" and "needs a prior" in errors[0][1]
    assert dialog.isVisible() and not window.jobs.busy
    dialog.background.setEditText("busy")  # typed by name
    options = dialog.method_options()
    assert options.fields["near_lmst"].widget.isVisibleTo(dialog) and options.fields["n_prior"].widget.isVisibleTo(
        dialog)
    options.set_values({"n_prior": 7, "near_lmst": False})
    kwargs = dialog.request().kwargs
    api = Prior.from_clusters(table, table.resolve("busy", SCALE), SCALE, n_prior=7, near_lmst=False).options()
    assert {key: kwargs["options"][key] for key in api} == api
    assert kwargs["options"]["device"] == window.preferences.device and kwargs["cluster"] == k
    dialog.background.setEditText("no such name")
    dialog.accept()
    assert len(errors) == 2 and "no cluster named 'no such name'" in errors[1][1]
    dialog.reject()


def test_optional_bools_are_none_true_or_false_and_scatcov_offers_the_prior_choices(qtbot, clustered):
    from unmix.gui.panels.pipeline import SeparateForm
    from unmix.separation.registry import OptionSpec, get_method

    field = ow.field_for(OptionSpec("near_lmst", "bool | None", None))
    assert (field.kind, field.optional, field.choices) == ("choice", True, (None, True, False))
    assert ow.field_for(OptionSpec("strict", "bool", False)).kind == "bool"
    form = SeparateForm()
    qtbot.addWidget(form)
    form.set_values(method="scatcov")
    options = form.method_options()
    shown = {name for name, f in options.fields.items() if f.widget.isVisibleTo(form)}
    assert {"n_prior", "near_lmst"} <= shown and options.advanced is not None
    assert options.values()["near_lmst"] is None and options.changed() == {}  # unset: the protocol decides
    for value in (True, False):
        options.set_values({"near_lmst": value, "n_prior": 5})
        assert options.changed() == {"near_lmst": value, "n_prior": 5}
        assert form.values()["scatcov.near_lmst"] is value
        sep = get_method("scatcov", table=clustered["table"], clusters=[0], scale=SCALE, **options.changed())
        assert (sep.near_lmst, sep.n_prior) == (value, 5)
    options.set_values({"near_lmst": None})
    assert "near_lmst" not in options.changed()


def test_the_results_panels_separate_button_opens_the_dialog_on_the_busiest_cluster(window, qtbot, clustered):
    from unmix.gui.dialogs.separate_cluster import SeparateClusterDialog

    results = window.results
    assert not results.panel.separate_button.isEnabled()  # no table yet
    results.table = clustered["table"]
    window.project.results["table"] = str(clustered["path"])
    results.panel.set_scales(clustered["table"].scales, 20.0, SCALE)
    assert results.panel.separate_button.isEnabled()
    results.panel.separate_button.click()
    dialogs = window.findChildren(SeparateClusterDialog)
    assert len(dialogs) == 1 and dialogs[0].isVisible()
    assert dialogs[0].scale == SCALE and dialogs[0].cluster.currentData() == clustered["busiest"]
    dialogs[0].reject()

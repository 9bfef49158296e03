"""Training loss curve (#17): a job reports its epochs as structured progress; the pipeline panel draws them and
logs one line per epoch instead of one per step."""

from __future__ import annotations

import types

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

pytestmark = pytest.mark.gui

EPOCHS, STEPS = 4, 60


def _log(epoch: int) -> dict:
    """An epoch's log as ``unmix.model.train.Training`` yields it."""
    return {"epoch": epoch, "temperature": 0.9, "loss": 10.0 / epoch, "rec": 8.0 / epoch, "gauss": 1.5 / epoch,
            "cat": 0.5 / epoch, "val_loss": 11.0 / epoch, "val_rec": 9.0 / epoch, "occupancy": {"1024": [3, 4]},
            "seconds": 0.01, "eta_s": 0.01 * (EPOCHS - epoch)}


def fake_training(epochs: int = EPOCHS, progress=None, token=None, report=None) -> dict:
    """A job like Train: many step messages per epoch, the epoch summary, and the epoch's report."""
    from unmix.model.train import format_log

    for epoch in range(1, epochs + 1):
        for step in range(1, STEPS + 1):
            token.check()
            progress(((epoch - 1) * STEPS + step) / (epochs * STEPS + 1), f"epoch {epoch}/{epochs} step {step}/{STEPS}")
        log = _log(epoch)
        progress(epoch / (epochs + 1), format_log(log))
        report({"kind": "epoch", "epoch": epoch, "epochs": epochs,
                "terms": {k: v for k, v in log.items() if k in ("loss", "rec", "gauss", "cat", "val_loss")}})
    return {"epochs": epochs}


def test_epoch_point_keeps_the_loss_terms():
    from unmix.gui.tasks import epoch_point

    point = epoch_point(_log(2), EPOCHS)
    assert point["kind"] == "epoch" and point["epoch"] == 2 and point["epochs"] == EPOCHS
    assert point["terms"] == {"loss": 5.0, "rec": 4.0, "gauss": 0.75, "cat": 0.25, "val_loss": 5.5, "val_rec": 4.5}
    assert point["seconds"] == 0.01


def test_train_model_reports_each_epoch(monkeypatch):
    from unmix import pipeline
    from unmix.gui import tasks

    def fake_train(store, out, config, *, overwrite, device, on_epoch, progress, token):
        cfg = types.SimpleNamespace(epochs=3)
        for epoch in (1, 2, 3):
            on_epoch(_log(epoch), cfg)
        return types.SimpleNamespace(summary=lambda: {"model": out})

    monkeypatch.setattr(pipeline, "train", fake_train)
    seen: list[dict] = []
    assert tasks.train_model("s.h5", "m.pt", epochs=3, report=seen.append) == {"model": "m.pt"}
    assert [p["epoch"] for p in seen] == [1, 2, 3] and all(p["epochs"] == 3 for p in seen)
    assert seen[1]["terms"]["loss"] == 5.0


def test_panel_draws_the_loss_curve_and_logs_one_line_per_epoch(window, qtbot, screenshot, tmp_path):
    from unmix.gui.registry import JobRequest

    jobs = window.jobs
    assert not jobs.loss_curve.isVisible()
    with qtbot.waitSignal(jobs.job_finished, timeout=20000):
        jobs.start(JobRequest("Train", fake_training, {"epochs": EPOCHS}))
    curve = jobs.loss_curve
    assert curve.isVisible()
    assert set(curve.curves) == {"loss", "rec", "gauss", "cat", "val_loss"}
    x, y = curve.curves["loss"].getData()
    assert x.tolist() == list(range(1, EPOCHS + 1))
    assert np.allclose(y, [10.0 / e for e in range(1, EPOCHS + 1)])
    log = jobs.log.toPlainText().splitlines()
    epoch_lines = [line for line in log if "epoch " in line]
    assert len(epoch_lines) == EPOCHS  # not one per step
    assert "epoch 2/4: loss 5 (rec 4, gauss 0.75, cat 0.25), validation 5.5" in epoch_lines[1]
    assert "Training loss: epoch 4/4" in curve.title.text()
    window.jobs_dock.setFloating(True)
    window.jobs_dock.resize(360, 700)
    screenshot(jobs, "loss_curve_pipeline_panel")
    from unmix.gui.export_figure import export_view

    exported = export_view(window, "Training loss", str(tmp_path / "loss.pdf"))
    assert exported.read_bytes()[:5] == b"%PDF-"

    # a job that does not report keeps its progress lines in the log, and a new training starts a new curve
    def plain(progress=None, token=None):
        progress(0.5, "epoch 1 of something else")
        return None

    assert not any(k == "report" for k in plain.__code__.co_varnames)
    with qtbot.waitSignal(jobs.job_finished, timeout=20000):
        jobs.start(JobRequest("Other", plain, {}))
    assert "epoch 1 of something else" in jobs.log.toPlainText()
    with qtbot.waitSignal(jobs.job_finished, timeout=20000):
        jobs.start(JobRequest("Train", fake_training, {"epochs": 2}))
    assert curve.curves["loss"].getData()[0].tolist() == [1, 2]


def _run_form(qtbot, win, key: str, **values) -> object:
    """Fill a pipeline form, press Run and wait for the job; its result (a failure fails the test)."""
    from PySide6.QtCore import Qt

    jobs = win.jobs
    qtbot.waitUntil(lambda: not jobs.busy and not jobs.queue, timeout=60000)
    jobs.select(key)
    jobs.form(key).set_values(**values)
    with qtbot.waitSignal(jobs.job_finished, timeout=180000) as blocker:
        qtbot.mouseClick(jobs.run_button, Qt.MouseButton.LeftButton)
    return blocker.args[1]


def test_real_training_draws_its_loss_curve(window, qtbot, tmp_path, prefs, errors, screenshot):
    """Features and a 3-epoch training of a 1-hour synthetic record through the panel: three points per term and
    three epoch lines in the log, no step lines."""
    prefs.device = "cpu"
    with qtbot.waitSignal(window.jobs.job_finished, timeout=30000):
        window.generate_synthetic(hours=1.0, seed=11, start_sol=240)
    _run_form(qtbot, window, "features", store=str(tmp_path / "features.h5"), window=4096, hop=1024,
              scales="1024,4096", J=6, Q=1)
    window.jobs.log.clear()
    _run_form(qtbot, window, "train", model=str(tmp_path / "model.pt"), preset="small", epochs=3, clusters=4, seed=3)
    assert not errors
    curve = window.jobs.loss_curve
    assert curve.epochs == [1, 2, 3] and "loss" in curve.curves
    assert np.all(np.isfinite(curve.values["loss"]))
    log = window.jobs.log.toPlainText()
    assert log.count(" epoch ") == 3 and "step" not in log
    window.jobs_dock.setFloating(True)
    window.jobs_dock.resize(380, 720)
    screenshot(window.jobs, "loss_curve_real_training")

"""Opening a malformed or hostile project in the GUI: one dialog naming the file (and field), nothing run."""

from __future__ import annotations

import json
import pickle
from pathlib import Path


class _Marker:
    """Unpickling this creates ``path``: the proof that a loader ran code from the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _project(path: Path, **fields) -> Path:
    path.write_text(json.dumps({"format": "unmix-project", "version": 1, **fields}))
    return path


def test_project_with_inputs_as_a_string_shows_one_dialog(window, tmp_path, errors, monkeypatch):
    started = []
    monkeypatch.setattr(window.jobs, "start", lambda request: started.append(request))
    path = _project(tmp_path / "bad.unmix.json", inputs="/tmp/x")
    window.open_paths([str(path)])  # as from the command line or a drop
    assert started == []  # no load job: the file system is not walked
    assert len(errors) == 1
    title, text, details = errors[0]
    assert title == "Cannot open the project"
    assert "bad.unmix.json" in text and "'inputs'" in text and "must be a list" in text
    assert details == ""


def test_project_with_wrong_types_in_forms_shows_one_dialog(window, tmp_path, errors):
    path = _project(tmp_path / "forms.unmix.json", parameters={"pipeline": {"features": {"window": {"a": 1}}}})
    assert window.open_project(path) is None
    assert len(errors) == 1 and "parameters.pipeline.features.window" in errors[0][1]


def test_out_of_range_form_numbers_are_clamped_not_a_crash(window, tmp_path, errors):
    path = _project(tmp_path / "ok.unmix.json",
                    parameters={"pipeline": {"features": {"window": 10**11, "J": "x", "store": 3}}})
    assert window.open_project(path) is not None
    assert errors == []
    form = window.results.forms()["features"]
    assert form.window_size.value() == form.window_size.maximum()


def test_project_listing_a_pickle_disguised_as_mseed_is_refused(window, qtbot, tmp_path, errors):
    marker = tmp_path / "MARKER"
    bad = tmp_path / "x.mseed"
    bad.write_bytes(pickle.dumps(("obspy.core.stream", _Marker(marker)), protocol=2))
    path = _project(tmp_path / "hostile.unmix.json", inputs=[str(bad)])
    with qtbot.waitSignal(window.jobs.job_failed, timeout=20000):
        window.open_paths([str(path)])
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=5000)
    assert not marker.exists()
    assert len(errors) == 1
    title, text, details = errors[0]
    assert "x.mseed" in text and details == ""
    assert window.displays == {}

"""GUI project files are validated against a schema before anything is opened (issue #14, §5)."""

from __future__ import annotations

import json
import re

import pytest

from unmix.errors import InputFileError
from unmix.gui.project import MAX_INPUTS, MAX_PATH, Project

GOOD = {"format": "unmix-project", "version": 1, "inputs": ["/data/a.mseed"],
        "synthetic": [{"sols": 1.0, "hours": None, "seed": 3, "gaps": 2, "start_sol": 300}],
        "parameters": {"axis_mode": "lmst", "filter": None, "selected": "XB.ELYSE.02.BH",
                       "pipeline": {"features": {"store": "", "window": 8192, "scales": "1024,2048"},
                                    "train": {"preset": "small", "epochs": 3},
                                    "export": {"folder": "", "sources": ["background", "glitches"]}}},
        "results": {"store": "/data/features.h5"}}

BAD = [  # (what to change, field named in the message)
    ({"inputs": "/tmp/x"}, "inputs"),  # a string: used to be walked character by character, '/' = the whole disk
    ({"inputs": [1, 2]}, "inputs[0]"),
    ({"inputs": [["/a"]]}, "inputs[0]"),
    ({"inputs": [""]}, "inputs[0]"),
    ({"inputs": ["x" * (MAX_PATH + 1)]}, "inputs[0]"),
    ({"inputs": ["/a\0b"]}, "inputs[0]"),
    ({"inputs": ["/a"] * (MAX_INPUTS + 1)}, "inputs"),
    ({"inputs": {"a": 1}}, "inputs"),
    ({"synthetic": {"sols": 1}}, "synthetic"),
    ({"synthetic": ["sols"]}, "synthetic[0]"),
    ({"synthetic": [{"sols": "many"}]}, "synthetic[0].sols"),
    ({"synthetic": [{"sols": 1e9}]}, "synthetic[0].sols"),
    ({"synthetic": [{"seed": 1.5}]}, "synthetic[0].seed"),
    ({"synthetic": [{"seed": True}]}, "synthetic[0].seed"),
    ({"synthetic": [{"gaps": -1}]}, "synthetic[0].gaps"),
    ({"synthetic": [{"rm_rf": 1}]}, "synthetic[0].rm_rf"),
    ({"synthetic": [{}] * 101}, "synthetic"),
    ({"parameters": []}, "parameters"),
    ({"parameters": {"axis_mode": 3}}, "parameters.axis_mode"),
    ({"parameters": {"filter": ["a"]}}, "parameters.filter"),
    ({"parameters": {"selected": "k" * 1000}}, "parameters.selected"),
    ({"parameters": {"colour": "red"}}, "parameters.colour"),
    ({"parameters": {"pipeline": "features"}}, "parameters.pipeline"),
    ({"parameters": {"pipeline": {"features": [1]}}}, "parameters.pipeline.features"),
    ({"parameters": {"pipeline": {"features": {"window": {"a": 1}}}}}, "parameters.pipeline.features.window"),
    ({"parameters": {"pipeline": {"features": {"window": 1e300}}}}, "parameters.pipeline.features.window"),
    ({"parameters": {"pipeline": {"export": {"sources": [["a"]]}}}}, "parameters.pipeline.export.sources[0]"),
    ({"parameters": {"pipeline": {"export": {"sources": ["a"] * 101}}}}, "parameters.pipeline.export.sources"),
    ({"results": ["a"]}, "results"),
    ({"results": {"store": 5}}, "results.store"),
    ({"version": "1"}, "version"),
    ({"version": 2}, "version"),
    ({"extra": 1}, "(top level).extra"),
]


@pytest.fixture
def qapp_or_skip(tmp_path):
    """A main window (offscreen) with settings of this test only; skipped without Qt."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    pytest.importorskip("PySide6")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from unmix.gui.main_window import MainWindow
    from unmix.gui.settings import Preferences

    _app = QApplication.instance() or QApplication([])
    window = MainWindow(Preferences(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)))
    yield window
    window.close()
    window.deleteLater()


def _write(tmp_path, change: dict):
    data = json.loads(json.dumps(GOOD)) | change
    path = tmp_path / "p.unmix.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.gui
def test_the_main_windows_own_project_is_valid(qapp_or_skip):
    """Whatever the GUI writes, it reads back (every pipeline form's values pass the schema)."""
    from unmix.gui.project import validate

    validate(json.loads(json.dumps(qapp_or_skip.current_project().to_dict())))


def test_a_valid_project_loads(tmp_path):
    project = Project.load(_write(tmp_path, {}))
    assert project.inputs == GOOD["inputs"] and project.synthetic == GOOD["synthetic"]
    assert project.parameters == GOOD["parameters"] and project.results == GOOD["results"]
    assert Project.load(project.save(tmp_path / "again.unmix.json")) == project


@pytest.mark.parametrize(("change", "field"), BAD, ids=[f for _, f in BAD])
def test_malformed_project_is_refused_naming_file_and_field(tmp_path, change, field):
    path = _write(tmp_path, change)
    before = path.read_bytes()
    with pytest.raises(InputFileError) as info:
        Project.load(path)
    message = info.value.message
    assert "p.unmix.json" in message and f"field {field!r}" in message, message
    assert "\n" not in message and len(message) < 400
    assert path.read_bytes() == before


@pytest.mark.parametrize("text", ["[" * 100_000, "nul\0l", '{"format": "unmix-project", "inputs": [1e999999]}'])
def test_unparsable_project_is_one_error(tmp_path, text):
    path = tmp_path / "p.unmix.json"
    path.write_text(text)
    with pytest.raises(InputFileError, match="p.unmix.json"):
        Project.load(path)


def test_oversized_project_file_is_not_read(tmp_path):
    path = tmp_path / "p.unmix.json"
    with path.open("wb") as f:
        f.truncate(17 * 2**20)
    with pytest.raises(InputFileError, match="too large"):
        Project.load(path)


def test_project_loads_must_name_its_inputs(tmp_path):
    good = Project(inputs=["/d/a.mseed", "/d/b.mseed"], loads=[["/d/a.mseed"], ["/d/b.mseed"]])
    path = good.save(tmp_path / "p.unmix.json")
    assert Project.load(path).loads == [["/d/a.mseed"], ["/d/b.mseed"]]
    for loads, field in (([["/d/c.mseed"]], "loads[0][0]"), ([[]], "loads[0]"), (["/d/a.mseed"], "loads[0]"),
                         ([[3]], "loads[0][0]")):
        data = good.to_dict() | {"loads": loads}
        path.write_text(json.dumps(data))
        with pytest.raises(InputFileError, match=re.escape(f"field '{field}'")):
            Project.load(path)
    data = good.to_dict()
    data.pop("loads")  # a project written before loads were kept: one load of every input
    path.write_text(json.dumps(data))
    assert Project.load(path).loads == []

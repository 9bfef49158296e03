"""Response removal and rotation of the Features form: the CLI's names and defaults, what the job receives."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

pytestmark = pytest.mark.gui

RESPONSE = "response/XB.ELYSE.02.BH.xml"


@pytest.fixture
def response_file(tmp_path):
    """A file to name as response (the fields check only that it exists; the pipeline reads it)."""
    path = tmp_path / "station.xml"
    path.write_text("<FDSNStationXML/>")
    return path


def _cli_option(name: str):
    from unmix.cli.data import features

    return next(p for p in features.params if p.name == name)


def test_fields_have_the_cli_s_choices_and_defaults(qtbot):
    from unmix.gui.views.forms import ResponseFields
    from unmix.pipeline import default_features

    fields = ResponseFields()
    qtbot.addWidget(fields)
    outputs = [fields.output.itemData(i) for i in range(fields.output.count())]
    assert tuple(outputs) == tuple(_cli_option("response_output").type.choices)
    assert fields.output.currentData() == _cli_option("response_output").default == default_features().response_output
    assert _cli_option("response").opts == ["--response"] and _cli_option("rotate").opts == ["--rotate"]
    assert fields.options() == {"response": None, "response_output": "VEL", "rotate": False}
    assert not fields.rotate.isEnabled() and not fields.output.isEnabled()  # nothing to convert without a file


def test_chosen_options_reach_the_features_job(qtbot, response_file, monkeypatch, tmp_path):
    """The options go through FeatureConfig (as the form's config dict) to ``unmix.pipeline.features``."""
    from unmix.gui import tasks
    from unmix.gui.views.forms import ResponseFields
    from unmix.pipeline import default_features

    fields = ResponseFields()
    qtbot.addWidget(fields)
    fields.response.setText(str(response_file))
    assert fields.rotate.isEnabled()
    fields.output.setCurrentIndex(fields.output.findData("ACC"))
    with qtbot.waitSignal(fields.rotate_toggled) as toggled:
        fields.rotate.setChecked(True)
    assert toggled.args == [True]
    config = default_features(components="ZNE", **fields.options()).to_dict()
    seen = {}
    monkeypatch.setattr(tasks.pipeline, "features", lambda inputs, out, cfg, **kw: seen.update(cfg=cfg) or
                        {"failures": []})
    tasks.compute_features(["in.mseed"], str(tmp_path / "f.h5"), config)
    cfg = seen["cfg"]
    assert (cfg.response, cfg.response_output, cfg.rotate) == (str(response_file.resolve()), "ACC", True)
    assert cfg.components == "ZNE" and cfg.digest() != default_features(components="ZNE").digest()


def test_inconsistent_choices_are_one_line(qtbot, tmp_path, response_file):
    from unmix.errors import ConfigError
    from unmix.gui.views.forms import ResponseFields

    fields = ResponseFields()
    qtbot.addWidget(fields)
    fields.response.setText(str(response_file))
    fields.rotate.setChecked(True)
    fields.response.setText("")
    with pytest.raises(ConfigError, match="needs a response file"):
        fields.options()
    missing = tmp_path / "nowhere.xml"
    fields.response.setText(str(missing))
    with pytest.raises(ConfigError) as err:
        fields.options()
    assert str(missing) in err.value.message and "\n" not in err.value.message


def test_values_round_trip_and_rotated_components(qtbot, response_file):
    from unmix.gui.views.forms import ResponseFields, rotated_components

    assert rotated_components("UVW", True) == "ZNE" and rotated_components("zne", False) == "UVW"
    assert rotated_components("UV", True) == "ZN" and rotated_components("ZNE", True) == "ZNE"
    a, b = ResponseFields(), ResponseFields()
    qtbot.addWidget(a)
    qtbot.addWidget(b)
    a.response.setText(str(response_file))
    a.output.setCurrentIndex(a.output.findData("DISP"))
    a.rotate.setChecked(True)
    b.set_values(**a.values())
    assert b.options() == a.options() == {"response": str(response_file.resolve()), "response_output": "DISP",
                                          "rotate": True}


def _features_form_mounts_fields() -> bool:
    from unmix.gui.panels.pipeline import FeaturesForm

    return "response_fields" in FeaturesForm.__init__.__code__.co_names


@pytest.mark.skipif(not _features_form_mounts_fields(),
                    reason="unmix.gui.panels.pipeline.FeaturesForm does not mount ResponseFields yet")
def test_features_form_passes_response_and_rotation(qtbot, tmp_path, response_file):
    from unmix.gui.panels.pipeline import FeaturesForm

    results = SimpleNamespace(default_path=lambda name: tmp_path / name)
    window = SimpleNamespace(results=results, project=SimpleNamespace(inputs=["a.mseed"], synthetic=[]),
                             preferences=SimpleNamespace(device="cpu"), records={}, current_key=None)
    form = FeaturesForm(window)
    qtbot.addWidget(form)
    assert form.config()["response"] is None and form.config()["rotate"] is False
    form.set_values(response=str(response_file), response_output="ACC")
    form.response_fields.rotate.setChecked(True)
    assert form.components.text() == "ZNE"  # rotation switches the components
    config = form.request().kwargs["config"]
    assert (config["response"], config["response_output"], config["rotate"], config["components"]) == (
        str(response_file.resolve()), "ACC", True, "ZNE")
    again = FeaturesForm(window)
    qtbot.addWidget(again)
    again.set_values(**form.values())  # the project file keeps them
    assert again.config() == form.config()


def test_features_form_keeps_glitch_evidence_as_the_cli_does(qtbot, tmp_path):
    from unmix.gui.panels.pipeline import FeaturesForm

    results = SimpleNamespace(default_path=lambda name: tmp_path / name)
    window = SimpleNamespace(results=results, project=SimpleNamespace(inputs=["a.mseed"], synthetic=[]),
                             preferences=SimpleNamespace(device="cpu"), records={}, current_key=None)
    form = FeaturesForm(window)
    qtbot.addWidget(form)
    assert form.glitch_evidence.isChecked() is _cli_option("glitch_evidence").default is True
    assert form.config()["glitch_evidence"] is True
    form.glitch_evidence.setChecked(False)
    assert form.request().kwargs["config"]["glitch_evidence"] is False
    again = FeaturesForm(window)
    qtbot.addWidget(again)
    again.set_values(**form.values())  # the project file keeps it
    assert again.config()["glitch_evidence"] is False

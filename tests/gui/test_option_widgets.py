"""The Separate form's method options are generated from the registry: one field per simple option, initialised to
the registry default, and a job gets exactly the options changed from it."""

from __future__ import annotations

import inspect
from typing import Literal

import pytest

pytest.importorskip("PySide6")

from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox  # noqa: E402

from unmix.gui import option_widgets as ow  # noqa: E402
from unmix.separation import registry  # noqa: E402
from unmix.separation.registry import OptionSpec  # noqa: E402

pytestmark = pytest.mark.gui


class ToyChoices:
    """A toy method: ``mode`` ``'fast'`` or ``'exact'``; ``weights`` are per component."""

    def __init__(self, prior=None, mode: str = "fast", kind: Literal["a", "b", "c"] = "b", steps: int = 3,
                 gain: float | None = None, strict: bool = False, label: str = "toy",
                 weights: tuple[float, ...] = (1.0, 2.0), device: str = "auto") -> None:
        self.options = dict(mode=mode, kind=kind, steps=steps, gain=gain, strict=strict, label=label, weights=weights)


def _other_value(field: ow.OptionField):
    """A valid value different from the field's current one."""
    value = field.value()
    kind = field.field.kind
    if kind == "bool":
        return not value
    if kind == "int":
        return 5 if value is None else value + 1
    if kind == "float":
        return 0.5 if value is None else round(value + 2 * field.widget.singleStep(), field.widget.decimals())
    if kind == "choice":
        return next(c for c in field.field.choices if c != value)
    return "x" if value != "x" else "y"


def test_type_and_choice_parsing():
    assert ow.type_parts("int | list[int] | None") == ["int", "list[int]", "None"]
    assert ow.type_parts("Optional[float]") == ["float", "None"]
    assert ow.literal_choices("Literal['auto', 'none'] | None") == ("auto", "none")
    assert ow.literal_choices("str") == ()
    assert ow.help_choices("``'record'`` or ``'prior'``") == ("record", "prior")
    assert ow.help_choices("``'time'``") == ()  # one value is no choice set
    doc = ("``standardize`` ``'time'`` (published) / ``'global'`` / None; ``fallback`` (``'a'`` or ``'b'``) and "
           "``name`` ``'x'`` for a name")
    assert ow.doc_choices(doc, "standardize") == ("time", "global", None)
    assert ow.doc_choices(doc, "fallback") == ("a", "b")
    assert ow.doc_choices(doc, "name") == ()
    assert ow.decimals_for(0.1) == 3 and ow.decimals_for(1e-5) == 5 and ow.decimals_for(None) == 3


def test_fields_from_option_types():
    empty = inspect.Parameter.empty
    cases = {OptionSpec("n", "int", 3): ("int", False), OptionSpec("x", "float | None", 1.0): ("float", True),
             OptionSpec("b", "bool", True): ("bool", False), OptionSpec("s", "str | None", None): ("text", True),
             OptionSpec("r", "int", empty): ("int", False),
             OptionSpec("m", "Literal['p', 'q']", "q"): ("choice", False)}
    for option, (kind, optional) in cases.items():
        field = ow.field_for(option)
        assert (field.kind, field.optional) == (kind, optional), option
    for option in (OptionSpec("prior", "np.ndarray | None", None), OptionSpec("device", "str", "auto"),
                   OptionSpec("band", "tuple[float, float]", (0.1, 1.0)), OptionSpec("cfg", "Any", None),
                   OptionSpec("clusters_", "int | list[int] | None", None), OptionSpec("n", "int", "many")):
        assert ow.field_for(option) is None, option


def test_hybrid_residual_choices_are_the_valid_ones():
    """Choices read from the docstrings match what the configuration accepts (residual has no ``Literal`` type)."""
    from unmix.separation.hybrid.config import FALLBACKS, RESIDUALS

    fields = {f.name: f for f in ow.method_fields(registry.method_spec("hybrid"))[0]}
    assert fields["residual"].choices == RESIDUALS and fields["fallback"].choices == FALLBACKS


@pytest.mark.parametrize("method", list(registry.methods()))
def test_every_method_form_starts_at_the_registry_defaults(qtbot, method):
    from unmix.gui.panels.pipeline import SeparateForm

    form = SeparateForm()
    qtbot.addWidget(form)
    form.set_values(method=method)
    spec = registry.method_spec(method)
    options = form.method_options()
    assert options is form.options[method] is form.method_options(method)
    simple = {f.name: f.option for f in ow.method_fields(spec)[0]}
    assert set(options.fields) == set(simple) and simple  # every method has fields
    plain = {o.name for o in spec.options() if o.type in ("int", "float", "bool") and o.name not in ow.PIPELINE_OPTIONS}
    assert plain <= set(simple)
    for name, value in options.values().items():
        default = simple[name].default
        assert value == pytest.approx(default) if isinstance(value, float) else value == default, name
    assert options.changed() == {} and not [k for k in form.values() if "." in k]
    for name, field in options.fields.items():  # one field changed: exactly that option is passed
        new = _other_value(field)
        field.set_value(new)
        assert options.changed() == {name: new}, name
        assert {k: v for k, v in form.values().items() if "." in k} == {f"{method}.{name}": new}
        field.reset()
        assert options.changed() == {}
    rest = {o.name for o in spec.options()} - set(simple) - ow.PIPELINE_OPTIONS
    assert {o.name for o in options.rest} == rest
    assert form.extra.isVisibleTo(form) == bool(rest)  # "Other options" only where an option has no field


def test_a_toy_method_gets_a_generated_form(qtbot, monkeypatch):
    from unmix.gui.panels.pipeline import SeparateForm

    monkeypatch.setattr(registry, "METHODS", {})
    registry.register_method("toychoices")(ToyChoices)
    form = SeparateForm()
    qtbot.addWidget(form)
    form.set_values(method="toychoices")
    assert form.method.currentData() == "toychoices"
    options = form.method_options()
    widgets = {name: type(f.widget) for name, f in options.fields.items()}
    assert widgets == {"mode": QComboBox, "kind": QComboBox, "steps": QSpinBox, "gain": QDoubleSpinBox,
                       "strict": QCheckBox, "label": QLineEdit}
    assert options.fields["mode"].field.choices == ("fast", "exact")  # from the docstring
    assert options.fields["kind"].field.choices == ("a", "b", "c")  # from the Literal
    assert options.values() == {"mode": "fast", "kind": "b", "steps": 3, "gain": None, "strict": False,
                                "label": "toy"}
    assert options.fields["gain"].widget.text() == ow.NONE_TEXT
    assert [o.name for o in options.rest] == ["weights"] and form.extra.isVisibleTo(form)
    assert "weights" in form.extra.toolTip()
    form.set_values(kind="c", gain=0.25, extra="weights=[3, 4]")
    assert options.changed() == {"kind": "c", "gain": 0.25}
    assert form._extra("toychoices") == {"weights": [3, 4]}
    made = registry.get_method("toychoices", **options.changed(), **form._extra("toychoices"))
    assert made.options["kind"] == "c" and made.options["gain"] == 0.25 and made.options["weights"] == [3, 4]
    form.set_values(gain=None)
    assert options.changed() == {"kind": "c"}


def test_project_values_round_trip_and_older_keys(qtbot, tmp_path):
    from unmix.gui.panels.pipeline import SeparateForm
    from unmix.gui.project import Project

    form = SeparateForm()
    qtbot.addWidget(form)
    # an older project file: fixed fields for n_prior, max_iter, freq, residual and one "Other options" text
    form.set_values(method="highpass", n_prior=7, max_iter=3, freq=0.5, residual="none", extra="corners=2",
                    target="span")
    assert form.method_options("scatcov").changed() == {"n_prior": 7, "max_iter": 3}
    assert form.method_options("hybrid").changed() == {"n_prior": 7, "max_iter": 3, "residual": "none"}
    assert form.method_options("highpass").changed() == {"freq": 0.5}
    assert form.extra.text() == "corners=2" and form.extra.isVisibleTo(form)  # given, so shown
    saved = form.values()
    assert saved["highpass.freq"] == 0.5 and saved["hybrid.residual"] == "none" and saved["extra"] == "corners=2"
    assert "scatcov.tol" not in saved  # only what differs from the defaults

    path = Project(parameters={"pipeline": {"separate": saved}}).save(tmp_path / "p.unmix.json")
    restored = Project.load(path).parameters["pipeline"]["separate"]  # the project file accepts the values
    assert restored == saved

    again = SeparateForm()
    qtbot.addWidget(again)
    again.set_values(method="hybrid", residual="glitches", **{"scatcov.tol": 0.5})  # state the restore replaces
    again.set_values(**restored)
    assert again.values() == saved
    assert again.method_options("hybrid").changed() == {"n_prior": 7, "max_iter": 3, "residual": "none"}


def test_hybrid_form_fits_the_pipeline_dock(qtbot):
    from unmix.gui.panels.pipeline import SeparateForm

    form = SeparateForm()
    qtbot.addWidget(form)
    form.set_values(method="hybrid")
    options = form.method_options()
    assert options.advanced is not None and not options.advanced.isVisibleTo(form)
    assert set(ow.FEATURED) - {"freq"} <= {n for n, f in options.fields.items() if f.widget.isVisibleTo(form)}
    closed = form.sizeHint().height()
    options.show_advanced(True)
    form.resize(300, form.sizeHint().height())
    assert form.minimumSizeHint().width() <= 300
    assert closed < 400 and form.sizeHint().height() < 620  # the dock also holds the Run bar, progress and log
    assert options.advanced.isVisibleTo(form)


def test_keep_events_passes_the_shown_catalogue_spans(qtbot, tmp_path):
    """'keep the events': the separation gets the spans of the catalogue entries the browser shows."""
    from types import SimpleNamespace

    from obspy import UTCDateTime

    from unmix.catalogs import Catalog, CatalogEntry
    from unmix.errors import ConfigError
    from unmix.gui.catalog_layers import CatalogLayer, CatalogSelection
    from unmix.gui.panels.pipeline import SeparateForm

    t = UTCDateTime("2019-05-23T01:00:00")
    sel = CatalogSelection()
    sel.add([CatalogLayer("events.xml", Catalog([CatalogEntry(t, t + 600, "quake"),
                                                 CatalogEntry(t + 3600, t + 3625, "glitch")]))])
    sel.visible = True
    sel.hidden_kinds = {"glitch"}
    window = SimpleNamespace(catalogs=SimpleNamespace(selection=sel))
    form = SeparateForm()
    qtbot.addWidget(form)
    form.set_values(method="highpass", protect=True)
    assert form.values()["protect"] is True
    assert form._protected(window) == [(t.timestamp, (t + 600).timestamp)]
    sel.hidden_kinds = {"glitch", "quake"}
    with pytest.raises(ConfigError, match="no catalogue events to keep"):
        form._protected(window)
    form.set_values(protect=False)
    assert form.values()["protect"] is False

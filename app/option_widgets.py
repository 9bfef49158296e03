"""Qt widgets generated from a separation method's registry options (:mod:`unmix.separation.registry`).

The registry is the single source of a method's options: their names, types, defaults and help. This module turns
each option of a simple type into a field (int → spin box, float → decimal spin box, bool → check box, an optional
bool → None/True/False combo box, a string with a known set of choices → combo box, another string → line edit)
whose initial value is the registry default and whose tooltip is the option's help. Options the pipeline supplies
itself (prior, cluster table, device, …) and options of other types (arrays, tuples, objects) get no field; the form
offers a ``KEY=VALUE`` line for those.

The toolkit-free part (:class:`Field`, :func:`field_for`, :func:`method_fields`, the choice parsing) uses no widget,
so tests can check it without a window.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import math
import re
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLineEdit,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from unmix.separation.registry import MethodSpec, OptionSpec

PIPELINE_OPTIONS = frozenset({"prior", "table", "clusters", "scale", "device", "inventory"})
"""Options the Separate form supplies itself (the prior from the cluster table, the device preference)."""
FEATURED = ("residual", "n_prior", "max_iter", "tol", "freq")
"""Options shown above the "advanced" area whatever the method (besides those the method's entry documents)."""
PRIOR_OPTIONS = ("n_prior", "near_lmst")
"""The choices of the cluster prior (:class:`unmix.Prior`): how many windows, and only those near the target's LMST
time of day; None leaves them to the separator's protocol. Shown above the "advanced" area where a method has them."""
MAX_PLAIN = 6
"""A method with at most this many fields shows them all; one with more keeps the rest in an "advanced" area."""
NONE_TEXT = "None"
"""How an optional number's "no value" (``None``) reads in its spin box."""

_INT_MAX = 2**31 - 1
_FLOAT_MAX = 1e9
_QUOTED = re.compile(r"``'([^'`]*)'``")


@dataclass(frozen=True)
class Field:
    """How one option is edited: ``kind`` is 'int', 'float', 'bool', 'choice' or 'text'; ``optional``: None is a
    valid value; ``choices``: the values of a 'choice' (None included when optional)."""

    option: OptionSpec
    kind: str
    optional: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def name(self) -> str:
        return self.option.name

    @property
    def required(self) -> bool:
        """The option has no default: its value is always passed."""
        return self.option.default is inspect.Parameter.empty


def type_parts(type_: str) -> list[str]:
    """The members of a union type string (``'int | None'`` → ``['int', 'None']``), split at top level only."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(type_):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "|" and depth == 0:
            parts.append(type_[start:i].strip())
            start = i + 1
    parts.append(type_[start:].strip())
    optional_words = {"Optional"}
    out = []
    for part in parts:
        head, _, inner = part.partition("[")
        if head.split(".")[-1] in optional_words and inner.endswith("]"):  # Optional[X] → X | None
            out += [*type_parts(inner[:-1]), "None"]
        else:
            out.append(part)
    return [p for p in out if p]


def literal_choices(type_: str) -> tuple[Any, ...]:
    """The values of a ``Literal[...]`` member of a type string (``"Literal['auto', 'none']"`` → ``('auto',
    'none')``); () when there is none or it does not parse."""
    for part in type_parts(type_):
        head, _, inner = part.partition("[")
        if head.split(".")[-1] == "Literal" and inner.endswith("]"):
            try:
                values = ast.literal_eval(f"({inner[:-1]},)")
            except (ValueError, SyntaxError):
                return ()
            return tuple(values)
    return ()


def help_choices(text: str) -> tuple[str, ...]:
    """Quoted values in an option's help (``"``'record'`` or ``'prior'``"``); () unless there are at least two."""
    found = tuple(dict.fromkeys(_QUOTED.findall(text or "")))
    return found if len(found) >= 2 else ()


_CHOICE = r"(?:``'[^'`]*'``|None\b)"
_ASIDE = r"(?:\s*\([^()]*\))?"
_SEP = r"\s*(?:,\s*or|,|/|or)\s*"


def doc_choices(doc: str, name: str) -> tuple[Any, ...]:
    """The values listed right after ````name```` in a docstring: ````name```` ``'a'``, ``'b'`` or ``'c'``
    (each may be followed by a parenthesis; None counts), or the same inside a parenthesis; () unless two or more."""
    text = " ".join((doc or "").split())
    run = rf"{_CHOICE}{_ASIDE}(?:{_SEP}{_CHOICE}{_ASIDE})+"
    for match in re.finditer(rf"``{re.escape(name)}``\s*(\(\s*)?({run})", text):
        values = [None if tok == "None" else tok[3:-3] for tok in re.findall(_CHOICE, re.sub(r"\([^()]*\)", "",
                                                                                                   match.group(2)))]
        values = list(dict.fromkeys(values))
        if len(values) >= 2:
            return tuple(values)
    return ()


def method_doc(spec: MethodSpec) -> str:
    """The docstrings that describe a method's options: the separator's (class and constructor) and those of its
    configuration dataclasses; '' when the method cannot be loaded."""
    try:
        factory = spec.load()
    except Exception:  # noqa: BLE001 - a broken plugin shows no choices, the form still opens
        return ""
    docs = [inspect.getdoc(factory) or ""]
    init = getattr(factory, "__init__", None)
    if inspect.isclass(factory) and init is not None and init is not object.__init__:
        docs.append(inspect.getdoc(init) or "")
    if spec.config_fields:
        module, _, attr = spec.config_fields.partition(":")
        try:
            configs = getattr(importlib.import_module(module), attr)
            docs += [inspect.getdoc(cls) or "" for cls in configs.values()]
        except (ImportError, AttributeError):
            pass
    return "\n".join(docs)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def field_for(option: OptionSpec, doc: str = "") -> Field | None:
    """The field of ``option``, or None when it gets none (supplied by the pipeline, or not of a simple type).
    Choices come from a ``Literal`` type, else from the option's help, else from ``doc`` (the method's docstrings)."""
    if option.name in PIPELINE_OPTIONS:
        return None
    parts = type_parts(option.type)
    optional = "None" in parts or option.default is None
    base = {p for p in parts if p != "None"}
    default = option.default
    required = default is inspect.Parameter.empty
    choices = literal_choices(option.type)
    if not choices and base & {"str", "bool"} and "str" in base:
        choices = help_choices(option.help) or doc_choices(doc, option.name)
    if not choices and base == {"bool"} and optional:
        choices = (None, True, False)  # None: the method decides (e.g. a separator's protocol), as in the API
    if choices:
        values = list(choices)
        if optional and None not in values:
            values.append(None)
        if not required and default not in values:
            values.insert(0, default)
        return Field(option, "choice", optional, tuple(values))
    if base == {"bool"} and (required or isinstance(default, bool)):
        return Field(option, "bool")
    if base == {"int"} and (required or default is None or (isinstance(default, int) and not isinstance(default, bool)
                                                            and abs(default) <= _INT_MAX)):
        return Field(option, "int", optional)
    if base in ({"float"}, {"int", "float"}) and (required or default is None or _is_number(default)):
        return Field(option, "float", optional)
    if base in ({"str"}, {"str", "Path"}) and (required or default is None or isinstance(default, str)):
        return Field(option, "text", optional)
    return None


def method_fields(spec: MethodSpec) -> tuple[list[Field], list[OptionSpec]]:
    """The fields of a method's options, and its options that get none (the pipeline's own excluded)."""
    try:
        options = spec.options()
    except Exception:  # noqa: BLE001 - a method that cannot be loaded gets an empty form; running it says why
        return [], []
    doc = method_doc(spec) if any("str" in type_parts(o.type) for o in options) else ""
    fields_, rest = [], []
    for option in options:
        field = field_for(option, doc)
        if field is not None:
            fields_.append(field)
        elif option.name not in PIPELINE_OPTIONS:
            rest.append(option)
    return fields_, rest


def featured(spec: MethodSpec, fields_: list[Field]) -> list[Field]:
    """The fields shown outside the "advanced" area: all when there are few, else those the method's entry
    documents (:attr:`MethodSpec.help`) and those named in :data:`FEATURED` or :data:`PRIOR_OPTIONS`."""
    if len(fields_) <= MAX_PLAIN:
        return list(fields_)
    names = {name for name, _ in spec.help} | set(FEATURED) | set(PRIOR_OPTIONS)
    return [f for f in fields_ if f.name in names]


def decimals_for(value: Any) -> int:
    """Decimals that show ``value`` exactly (3 at least, 8 at most)."""
    if not _is_number(value):
        return 3
    for places in range(3, 9):
        if abs(round(value, places) - value) <= 1e-12 * max(1.0, abs(value)):
            return places
    return 8


def step_for(value: Any, kind: str) -> float:
    """A spin box step near a tenth of the default's magnitude (1 for integers)."""
    if kind == "int" or not _is_number(value) or value == 0:
        return 1 if kind == "int" else 0.1
    return 10.0 ** math.floor(math.log10(abs(value)) - 1)


class OptionField:
    """One option's widget: ``value()`` in the option's own type, ``set_value()``, ``changed()`` from the default."""

    def __init__(self, field: Field) -> None:
        self.field = field
        option = field.option
        default = None if field.required else option.default
        if field.kind == "bool":
            self.widget: QWidget = QCheckBox()
        elif field.kind == "int":
            box = QSpinBox()
            lo = -_INT_MAX + 1 if isinstance(default, int) and default < 0 else 0
            box.setRange(lo - 1 if field.optional else lo, _INT_MAX)
            self.widget = box
        elif field.kind == "float":
            box = QDoubleSpinBox()
            box.setDecimals(decimals_for(default))
            step = step_for(default, "float")
            box.setSingleStep(step)
            lo = -_FLOAT_MAX if _is_number(default) and default < 0 else 0.0
            box.setRange(lo - step if field.optional else lo, _FLOAT_MAX)
            self.widget = box
        elif field.kind == "choice":
            combo = QComboBox()
            for value in field.choices:
                combo.addItem(NONE_TEXT if value is None else str(value))
            self.widget = combo
        else:
            edit = QLineEdit()
            if field.optional:
                edit.setPlaceholderText(NONE_TEXT)
            self.widget = edit
        if field.optional and isinstance(self.widget, QSpinBox | QDoubleSpinBox):
            self.widget.setSpecialValueText(NONE_TEXT)  # shown at the minimum, which stands for None
        self.widget.setObjectName(option.name)
        self.widget.setToolTip(self.tooltip())
        if not field.required:
            self.set_value(default)
        self.initial = self.value()

    def tooltip(self) -> str:
        """The option's help, its type and default."""
        option = self.field.option
        default = "required" if self.field.required else f"default {option.default!r}"
        return (f"{option.help}\n" if option.help else "") + f"{option.name}: {option.type}, {default}"

    def value(self) -> Any:
        w, field = self.widget, self.field
        if isinstance(w, QCheckBox):
            return w.isChecked()
        if isinstance(w, QSpinBox | QDoubleSpinBox):
            if field.optional and w.value() == w.minimum():
                return None
            return int(w.value()) if isinstance(w, QSpinBox) else float(w.value())
        if isinstance(w, QComboBox):
            return field.choices[w.currentIndex()] if w.currentIndex() >= 0 else None
        text = w.text()
        return None if field.optional and not text.strip() else text

    def set_value(self, value: Any) -> None:
        """Show ``value`` (from a project file: a value of another type is ignored, a number out of range clamped;
        an unknown choice is added, so that running tells what is wrong with it)."""
        w, field = self.widget, self.field
        if isinstance(w, QCheckBox):
            if isinstance(value, bool):
                w.setChecked(value)
        elif isinstance(w, QSpinBox | QDoubleSpinBox):
            if value is None and field.optional:
                w.setValue(w.minimum())
            elif _is_number(value) and abs(value) < 1e12:
                low = w.minimum() + (w.singleStep() if field.optional else 0)
                value = min(max(value, low), w.maximum())
                w.setValue(int(value) if isinstance(w, QSpinBox) else float(value))
        elif isinstance(w, QComboBox):
            matches = [i for i, c in enumerate(field.choices) if c == value and type(c) is type(value)]
            if not matches and isinstance(value, str):
                self.field = field = Field(field.option, field.kind, field.optional, (*field.choices, value))
                w.addItem(value)
                matches = [len(field.choices) - 1]
            if matches:
                w.setCurrentIndex(matches[0])
        elif value is None or isinstance(value, str):
            w.setText("" if value is None else value)

    def reset(self) -> None:
        """Back to the registry default."""
        self.set_value(self.initial)

    def changed(self) -> bool:
        """The value differs from the default (a required option always counts, once given)."""
        if self.field.required:
            return self.value() not in (None, "")
        return self.value() != self.initial


class OptionsForm(QWidget):
    """The fields of one method's options; with many, the less common ones in a collapsible scrolling area."""

    def __init__(self, spec: MethodSpec, advanced_height: int = 200) -> None:
        super().__init__()
        self.spec = spec
        fields_, self.rest = method_fields(spec)
        self.fields = {f.name: OptionField(f) for f in fields_}
        shown = {f.name for f in featured(spec, fields_)}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.main = _form()
        layout.addLayout(self.main)
        advanced = [f for f in fields_ if f.name not in shown]
        self.advanced_button: QToolButton | None = None
        self.advanced: QScrollArea | None = None
        for f in fields_:
            if f.name in shown:
                self._add(self.main, f)
        if advanced:
            button = QToolButton()
            button.setText(f"Advanced options ({len(advanced)})")
            button.setToolTip(f"the other options of {spec.name}, with the registry's defaults")
            button.setCheckable(True)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            button.setArrowType(Qt.ArrowType.RightArrow)
            button.setAutoRaise(True)
            inner = QWidget()
            form = _form(inner)
            for f in advanced:
                self._add(form, f)
            area = QScrollArea()
            area.setWidget(inner)
            area.setWidgetResizable(True)
            area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            area.setFrameShape(QScrollArea.Shape.StyledPanel)
            area.setMaximumHeight(advanced_height)
            area.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
            area.setVisible(False)
            button.toggled.connect(self.show_advanced)
            layout.addWidget(button)
            layout.addWidget(area)
            self.advanced_button, self.advanced = button, area

    def _add(self, form: QFormLayout, field: Field) -> None:
        widget = self.fields[field.name].widget
        form.addRow(field.name, widget)
        label = form.labelForField(widget)
        if label is not None:
            label.setToolTip(widget.toolTip())

    def align_labels(self, width: int) -> None:
        """Give the labels above the "advanced" area at least ``width`` pixels, to line up with the enclosing form."""
        for row in range(self.main.rowCount()):
            item = self.main.itemAt(row, QFormLayout.ItemRole.LabelRole)
            if item is not None and item.widget() is not None:
                item.widget().setMinimumWidth(width)

    def show_advanced(self, on: bool = True) -> None:
        """Open (or close) the "advanced" area."""
        if self.advanced is None or self.advanced_button is None:
            return
        self.advanced_button.setChecked(on)
        self.advanced_button.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        self.advanced.setVisible(on)

    def values(self) -> dict[str, Any]:
        """Every field's value."""
        return {name: f.value() for name, f in self.fields.items()}

    def changed(self) -> dict[str, Any]:
        """The options whose value differs from the registry default: what a job is given."""
        return {name: f.value() for name, f in self.fields.items() if f.changed()}

    def set_values(self, values: dict[str, Any]) -> list[str]:
        """Set the fields named in ``values``; returns the names that have no field."""
        for name, value in values.items():
            if name in self.fields:
                self.fields[name].set_value(value)
        return [name for name in values if name not in self.fields]

    def reset(self) -> None:
        for f in self.fields.values():
            f.reset()


def _form(parent: QWidget | None = None) -> QFormLayout:
    form = QFormLayout(parent) if parent is not None else QFormLayout()
    form.setContentsMargins(0, 0, 0, 0)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    return form

"""Project file: the inputs, parameters and result paths of one analysis, as JSON (written atomically)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from unmix.atomic import atomic_path
from unmix.errors import InputFileError
from unmix.gui.annotations import parse_annotations

FORMAT = "unmix-project"
VERSION = 1
SUFFIX = ".unmix.json"


@dataclass
class Project:
    """What is needed to reopen an analysis: inputs, synthetic records, parameters and paths of results."""

    inputs: list[str] = field(default_factory=list)
    loads: list[list[str]] = field(default_factory=list)  # the inputs opened together, one list per load, in order
    synthetic: list[dict[str, Any]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    results: dict[str, str] = field(default_factory=dict)
    annotations: list[dict[str, Any]] = field(default_factory=list)  # flat {kind, start, end, label, channel}
    path: Path | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("path")
        return {"format": FORMAT, "version": VERSION, **data}

    def save(self, path: str | Path) -> Path:
        """Write the project atomically; input and result paths are kept as given (absolute is safest)."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | Path) -> Project:
        """Read a project file; anything malformed is an :class:`~unmix.errors.InputFileError` naming the file
        and, for a field of the wrong type or size, the field (see :func:`validate`)."""
        path = Path(path)
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise InputFileError(f"too large for a project file (over {MAX_FILE_BYTES // 2**20} MiB)", path)
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputFileError("no such project file", path) from None
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise InputFileError(f"not a readable project file ({exc})", path) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputFileError("not an Unmix project file", path)
        try:
            validate(data)
        except ProjectFieldError as exc:
            raise InputFileError(f"field {exc.field!r}: {exc.problem}", path) from None
        project = cls(inputs=list(data.get("inputs", [])), loads=[list(g) for g in data.get("loads", [])],
                      synthetic=[dict(s) for s in data.get("synthetic", [])],
                      parameters=dict(data.get("parameters", {})), results=dict(data.get("results", {})),
                      annotations=[a.to_json() for a in parse_annotations(data.get("annotations", []))])
        project.path = path
        return project


# --- schema -----------------------------------------------------------------------------------------------------------

MAX_FILE_BYTES = 16 * 2**20
MAX_INPUTS = 10_000
MAX_SYNTHETIC = 100
MAX_PATH = 4096
MAX_TEXT = 256
MAX_NUMBER = 1e12
SYNTHETIC_KEYS = {"sols": (0.0, 1000.0), "hours": (0.0, 24_000.0), "seed": (0, 2**32 - 1), "gaps": (0, 10_000),
                  "start_sol": (0, 100_000)}
"""Fields of a synthetic record (``unmix.synthetic.SyntheticConfig``) and their allowed ranges."""
PARAMETER_KEYS = {"axis_mode", "filter", "selected", "pipeline", "catalogs", "catalog_hidden", "units", "response",
                  "rotate", "stacked"}
MAX_CATALOGS = 100
TOP_KEYS = {"format", "version", "inputs", "loads", "synthetic", "parameters", "results", "annotations"}


class ProjectFieldError(ValueError):
    """One field of a project file has the wrong type, size or value."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


def _type_name(value: Any) -> str:
    return {str: "a string", list: "a list", dict: "an object", bool: "true/false", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _text(value: Any, field: str, limit: int = MAX_TEXT, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, str):
        raise ProjectFieldError(field, f"must be a string, not {_type_name(value)}")
    if not value or len(value) > limit or "\0" in value:
        raise ProjectFieldError(field, f"must be a non-empty string of at most {limit} characters without NUL")


def _number(value: Any, field: str, lo: float, hi: float, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ProjectFieldError(field, f"must be {'an integer' if integer else 'a number'}, not {_type_name(value)}")
    if not lo <= value <= hi:
        raise ProjectFieldError(field, f"must be between {lo:g} and {hi:g}, not {value!r}")


def _object(value: Any, field: str, allowed: set[str] | None = None, limit: int = 1000) -> dict:
    if not isinstance(value, dict):
        raise ProjectFieldError(field, f"must be an object, not {_type_name(value)}")
    if len(value) > limit:
        raise ProjectFieldError(field, f"has {len(value)} entries, at most {limit} allowed")
    unknown = sorted(set(value) - allowed) if allowed is not None else []
    if unknown:
        raise ProjectFieldError(f"{field}.{unknown[0]}", f"unknown field (known: {', '.join(sorted(allowed))})")
    return value


def _list(value: Any, field: str, limit: int) -> list:
    if not isinstance(value, list):
        raise ProjectFieldError(field, f"must be a list, not {_type_name(value)}")
    if len(value) > limit:
        raise ProjectFieldError(field, f"has {len(value)} entries, at most {limit} allowed")
    return value


def _synthetic(entry: Any, field: str) -> None:
    _object(entry, field, set(SYNTHETIC_KEYS))
    for key, value in entry.items():
        if key == "hours" and value is None:
            continue
        lo, hi = SYNTHETIC_KEYS[key]
        _number(value, f"{field}.{key}", lo, hi, integer=isinstance(lo, int))


def _form_value(value: Any, field: str, nested: bool = False) -> None:
    """A pipeline form's field: a string, number, true/false, null, or a list of those (e.g. export sources)."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        _text(value or "-", field, MAX_PATH)
    elif isinstance(value, int | float):
        _number(value, field, -MAX_NUMBER, MAX_NUMBER)
    elif isinstance(value, list) and not nested:
        for i, item in enumerate(_list(value, field, 100)):
            _form_value(item, f"{field}[{i}]", nested=True)
    else:
        raise ProjectFieldError(field, "must be a string, number, true/false, null or a list of those, "
                                       f"not {_type_name(value)}")


def _parameters(params: Any) -> None:
    _object(params, "parameters", PARAMETER_KEYS)
    if "axis_mode" in params:
        _text(params["axis_mode"], "parameters.axis_mode", 32)
    for key in ("filter", "selected"):
        if key in params:
            _text(params[key], f"parameters.{key}", MAX_TEXT, allow_none=True)
    if "units" in params and params["units"] not in ("COUNTS", "VEL", "ACC", "DISP"):
        raise ProjectFieldError("parameters.units", f"must be COUNTS, VEL, ACC or DISP, not {params['units']!r}")
    if "response" in params:
        _text(params["response"], "parameters.response", MAX_PATH, allow_none=True)  # StationXML of the browser
    if "rotate" in params and not isinstance(params["rotate"], bool):
        raise ProjectFieldError("parameters.rotate", f"must be true/false, not {_type_name(params['rotate'])}")
    if "stacked" in params and not isinstance(params["stacked"], bool):  # the browser shows every record stacked
        raise ProjectFieldError("parameters.stacked", f"must be true/false, not {_type_name(params['stacked'])}")
    for i, item in enumerate(_list(params.get("catalogs", []), "parameters.catalogs", MAX_CATALOGS)):
        _text(item, f"parameters.catalogs[{i}]", MAX_PATH)  # catalogue files overlaid on the browser
    for i, item in enumerate(_list(params.get("catalog_hidden", []), "parameters.catalog_hidden", 1000)):
        _text(item, f"parameters.catalog_hidden[{i}]", 64)  # catalogue kinds not shown
    pipeline = params.get("pipeline")
    if pipeline is not None:
        for form, values in _object(pipeline, "parameters.pipeline", limit=50).items():
            _text(form, "parameters.pipeline (form name)", 64)
            for name, value in _object(values, f"parameters.pipeline.{form}", limit=100).items():
                _text(name, f"parameters.pipeline.{form} (field name)", 64)
                _form_value(value, f"parameters.pipeline.{form}.{name}")


def _loads(loads: Any, inputs: list[str]) -> None:
    """Each load: a non-empty list of paths that the project's inputs hold (older files have no loads)."""
    known = set(inputs)
    total = 0
    for i, group in enumerate(_list(loads, "loads", MAX_INPUTS)):
        total += len(_list(group, f"loads[{i}]", MAX_INPUTS))
        if not group:
            raise ProjectFieldError(f"loads[{i}]", "must list at least one input")
        if total > MAX_INPUTS:
            raise ProjectFieldError("loads", f"lists more than {MAX_INPUTS} paths in all")
        for j, path in enumerate(group):
            _text(path, f"loads[{i}][{j}]", MAX_PATH)
            if path not in known:
                raise ProjectFieldError(f"loads[{i}][{j}]", "is not among the project's inputs")


def validate(data: dict[str, Any]) -> None:
    """Check a project file's content against its schema; raise :class:`ProjectFieldError` naming the first bad
    field: every field's type, the element types, sizes (at most ``MAX_INPUTS`` inputs, paths of at most
    ``MAX_PATH`` characters, ...), numeric ranges; unknown fields are refused."""
    _object(data, "(top level)", TOP_KEYS)
    version = data.get("version", VERSION)
    _number(version, "version", 0, 2**31, integer=True)
    if version > VERSION:
        raise ProjectFieldError("version", f"written by a newer Unmix (project version {version})")
    for i, item in enumerate(_list(data.get("inputs", []), "inputs", MAX_INPUTS)):
        _text(item, f"inputs[{i}]", MAX_PATH)
    _loads(data.get("loads", []), data.get("inputs", []))
    for i, entry in enumerate(_list(data.get("synthetic", []), "synthetic", MAX_SYNTHETIC)):
        _synthetic(entry, f"synthetic[{i}]")
    _parameters(data.get("parameters", {}))
    for key, value in _object(data.get("results", {}), "results", limit=100).items():
        _text(key, "results (name)", 64)
        _text(value, f"results.{key}", MAX_PATH)
    try:  # analyst marks: flat objects, POSIX or ISO times (unmix.gui.annotations)
        parse_annotations(data.get("annotations", []))
    except ValueError as exc:
        name, _, problem = str(exc).partition(": ")
        raise ProjectFieldError(name, problem) from None

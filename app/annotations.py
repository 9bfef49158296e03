"""Analyst annotations: labelled spans and picks on the browser's time axis, as plain data (Qt-free).

An annotation is kept in the project file as a flat JSON object ``{kind, start, end, label, channel}`` (times POSIX
seconds; ISO 8601 strings are accepted on reading) and exported as CSV or, through :mod:`unmix.catalogs`, as QuakeML
or Pyrocko/Snuffler markers, so that the marks travel to the tools analysts already use.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obspy import UTCDateTime

from unmix.atomic import atomic_path
from unmix.catalogs import Catalog, CatalogEntry, write_catalog

KINDS = ("span", "pick")
FIELDS = ("kind", "start", "end", "label", "channel")
MAX_LABEL = 256
MAX_ANNOTATIONS = 100_000
EXPORT_FORMATS = {"csv": (".csv",), "quakeml": (".xml", ".qml", ".quakeml"), "markers": (".markers", ".pf")}
_TIME_RANGE = (-1e10, 1e11)  # POSIX seconds: years ~1653 to ~5138, enough for Mars missions and tests


@dataclass(frozen=True)
class Annotation:
    """One mark: a span [start, end] or a pick (start == end) in POSIX seconds, on a channel (``""``: all)."""

    kind: str
    start: float
    end: float
    label: str = ""
    channel: str = ""

    def to_json(self) -> dict[str, Any]:
        """The flat object the project file stores."""
        return {"kind": self.kind, "start": self.start, "end": self.end, "label": self.label, "channel": self.channel}


def parse_time(value: Any, field: str) -> float:
    """POSIX seconds from a number or an ISO 8601 string; ``ValueError`` naming ``field`` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{field}: must be POSIX seconds or an ISO 8601 time, not true/false")
    if isinstance(value, int | float):
        t = float(value)
    elif isinstance(value, str) and 0 < len(value) <= 64:
        try:
            t = UTCDateTime(value).timestamp
        except Exception:
            raise ValueError(f"{field}: not an ISO 8601 time: {value!r}") from None
    else:
        raise ValueError(f"{field}: must be POSIX seconds or an ISO 8601 time")
    if not math.isfinite(t) or not _TIME_RANGE[0] <= t <= _TIME_RANGE[1]:
        raise ValueError(f"{field}: time out of range: {value!r}")
    return t


def parse_annotation(entry: Any, field: str = "annotation") -> Annotation:
    """Check one stored annotation (flat object, known keys, kind, times, label/channel sizes) and return it."""
    if not isinstance(entry, dict):
        raise ValueError(f"{field}: must be an object")
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        raise ValueError(f"{field}.{unknown[0]}: unknown field (known: {', '.join(FIELDS)})")
    kind = entry.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{field}.kind: must be one of {', '.join(KINDS)}, not {kind!r}")
    start = parse_time(entry.get("start"), f"{field}.start")
    end = parse_time(entry.get("end", entry.get("start")), f"{field}.end")
    if end < start:
        raise ValueError(f"{field}.end: before start")
    if kind == "pick" and end != start:
        raise ValueError(f"{field}.end: a pick has end == start")
    for key, limit in (("label", MAX_LABEL), ("channel", 64)):
        value = entry.get(key, "")
        if not isinstance(value, str) or len(value) > limit or "\0" in value:
            raise ValueError(f"{field}.{key}: must be a string of at most {limit} characters without NUL")
    return Annotation(kind, start, end, entry.get("label", ""), entry.get("channel", ""))


def parse_annotations(value: Any, field: str = "annotations") -> list[Annotation]:
    """A stored list of annotations, each checked by :func:`parse_annotation`."""
    if not isinstance(value, list):
        raise ValueError(f"{field}: must be a list")
    if len(value) > MAX_ANNOTATIONS:
        raise ValueError(f"{field}: has {len(value)} entries, at most {MAX_ANNOTATIONS} allowed")
    return [parse_annotation(e, f"{field}[{i}]") for i, e in enumerate(value)]


def to_catalog(annotations: list[Annotation], source: str = "unmix annotations") -> Catalog:
    """Catalogue entries of the annotations: kind ``annotation-span``/``annotation-pick``, name the label, SEED id
    the channel (``NET.STA.LOC.CHA``; an instrument ``NET.STA.LOC.BH`` becomes ``BH?`` on every component)."""
    entries = []
    for a in annotations:
        seed, comps = a.channel, ""
        if seed.count(".") == 3 and len(seed.rsplit(".", 1)[1]) == 2:
            seed = seed + "?"
        entries.append(CatalogEntry(start=UTCDateTime(a.start), end=UTCDateTime(a.end), kind=f"annotation-{a.kind}",
                                    name=a.label, components=comps, seed_id=seed))
    return Catalog(entries, source)


def export_format(path: str | Path, fmt: str | None = None) -> str:
    """``csv``, ``quakeml`` or ``markers`` from ``fmt`` or the file's extension."""
    from unmix.catalogs import format_for

    return format_for(path, fmt, EXPORT_FORMATS, "annotation",
                      "use .csv, .xml (QuakeML) or .markers (Snuffler)")


def write_annotations(annotations: list[Annotation], path: str | Path, fmt: str | None = None) -> Path:
    """Write the annotations as CSV (ISO UTC and POSIX times), QuakeML or Snuffler markers, atomically."""
    path = Path(path)
    fmt = export_format(path, fmt)
    if fmt != "csv":
        return write_catalog(to_catalog(annotations), path, fmt, overwrite=True)
    with atomic_path(path, overwrite=True) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["kind", "start_utc", "end_utc", "duration_s", "label", "channel", "start_posix",
                         "end_posix"])
        for a in sorted(annotations, key=lambda a: a.start):
            writer.writerow([a.kind, str(UTCDateTime(a.start)), str(UTCDateTime(a.end)), f"{a.end - a.start:.6f}",
                             a.label, a.channel, repr(a.start), repr(a.end)])  # exact round trip
    return path


def read_annotations_csv(path: str | Path) -> list[Annotation]:
    """Read back a CSV written by :func:`write_annotations`."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [parse_annotation({"kind": row["kind"], "start": float(row["start_posix"]),
                                  "end": float(row["end_posix"]), "label": row["label"], "channel": row["channel"]})
                for row in csv.DictReader(fh)]

"""Event catalogues in one table: MPS (SEISglitch) glitch lists and QuakeML marsquake catalogues (via ObsPy)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from obspy import UTCDateTime, read_events

from unmix.errors import InputFileError

_MPS_COLUMNS = 23


@dataclass(frozen=True)
class CatalogEntry:
    """One catalogued event: a glitch, a marsquake, a pressure drop…; times in UTC."""

    start: UTCDateTime
    end: UTCDateTime
    kind: str
    name: str = ""
    components: str = ""
    amplitudes: dict[str, float] = field(default_factory=dict)
    extra: dict[str, float | str] = field(default_factory=dict)


@dataclass
class Catalog:
    """A time-sorted list of :class:`CatalogEntry` with a source description."""

    entries: list[CatalogEntry]
    source: str = ""

    def __post_init__(self) -> None:
        self.entries.sort(key=lambda e: e.start)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    def between(self, t0: UTCDateTime, t1: UTCDateTime) -> Catalog:
        """Entries that overlap [t0, t1]."""
        return Catalog([e for e in self.entries if e.end >= t0 and e.start <= t1], self.source)

    def of_kind(self, kind: str) -> Catalog:
        return Catalog([e for e in self.entries if e.kind == kind], self.source)

    def onsets(self) -> np.ndarray:
        """Start times as POSIX timestamps."""
        return np.array([e.start.timestamp for e in self.entries], dtype=float)

    def __add__(self, other: Catalog) -> Catalog:
        return Catalog(self.entries + other.entries, "; ".join(s for s in (self.source, other.source) if s))


def read_mps_glitches(path: str | Path) -> Catalog:
    """Parse a SEISglitch (MPS) glitch list: start/end UTC, per-component flags, RAW and GAI amplitudes, polarisation.

    Note (SEISglitch behaviour): its "U/V/W-GAI" columns hold Z/N/E amplitudes; both are kept, named as they are.
    """
    path = Path(path)
    _check_file(path)
    entries: list[CatalogEntry] = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            cols = text.split()
            if len(cols) != _MPS_COLUMNS:
                raise InputFileError(f"line {lineno}: expected {_MPS_COLUMNS} columns of an MPS glitch list, "
                                     f"found {len(cols)}", path)
            try:
                start, end = UTCDateTime(cols[1]), UTCDateTime(cols[2])
                flags = [int(c) for c in cols[5:8]]
                raw = [float(c) for c in cols[8:11]]
                gai = [float(c) for c in cols[11:17]]
                pol = [float(c) for c in cols[17:23]]
            except Exception:
                raise InputFileError(f"line {lineno}: unreadable MPS glitch entry", path) from None
            comps = "".join(c for c, f in zip("UVW", flags, strict=True) if f)
            entries.append(CatalogEntry(
                start=start, end=end, kind="glitch", name=cols[0], components=comps,
                amplitudes={f"{c}_raw": v for c, v in zip("UVW", raw, strict=True)}
                | {f"{c}_gai": v for c, v in zip("UVWZNE", gai, strict=True)},
                extra={"lmst_start": cols[3], "lmst_end": cols[4], "azimuth": pol[0], "azimuth_err": pol[1],
                       "incidence": pol[2], "incidence_err": pol[3], "snr": pol[4], "polarization": pol[5]},
            ))
    if not entries:
        raise InputFileError("no glitch entries found (is this an MPS glitch list?)", path)
    return Catalog(entries, str(path))


def read_quakeml(path: str | Path, default_duration: float = 600.0) -> Catalog:
    """Read a QuakeML catalogue with ObsPy; start/end from picks named 'start'/'end' when present (MQS style)."""
    path = Path(path)
    _check_file(path)
    try:
        events = read_events(str(path), format="QUAKEML")
    except Exception as exc:
        raise InputFileError(f"not a readable QuakeML/event file ({type(exc).__name__})", path) from None
    entries = []
    for ev in events:
        origin = ev.preferred_origin() or (ev.origins[0] if ev.origins else None)
        picks = {(p.phase_hint or "").lower(): p.time for p in ev.picks}
        t0 = picks.get("start") or (origin.time if origin else None)
        if t0 is None:
            continue
        t1 = picks.get("end") or (t0 + default_duration)
        name = ""
        for d in ev.event_descriptions:
            if d.text:
                name = d.text
                break
        mag = ev.preferred_magnitude() or (ev.magnitudes[0] if ev.magnitudes else None)
        extra: dict[str, float | str] = {"event_type": str(ev.event_type or "")}
        if mag is not None and mag.mag is not None:
            extra["magnitude"] = float(mag.mag)
        entries.append(CatalogEntry(start=t0, end=t1, kind="quake", name=name or str(ev.resource_id).split("/")[-1],
                                    extra=extra))
    return Catalog(entries, str(path))


def read_catalog(path: str | Path) -> Catalog:
    """Read a glitch list or a QuakeML catalogue, recognised by content."""
    path = Path(path)
    _check_file(path)
    with path.open("rb") as fh:
        head = fh.read(512).lstrip()
    if head.startswith(b"<"):
        return read_quakeml(path)
    return read_mps_glitches(path)


def read_catalogs(paths: Iterable[str | Path]) -> Catalog:
    """Several glitch lists and QuakeML catalogues (each recognised by content) merged into one time-sorted table."""
    merged = Catalog([], "")
    for path in paths:
        merged = merged + read_catalog(path)
    return merged


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise InputFileError("no such catalogue file", path)
    if path.stat().st_size == 0:
        raise InputFileError("catalogue file is empty", path)

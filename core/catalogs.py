"""Event catalogues in one table: MPS (SEISglitch) glitch lists, QuakeML catalogues (via ObsPy), Pyrocko/Snuffler
marker files and the ``truth.json`` of ``unmix synth``; writers for glitch lists, QuakeML and markers
(``docs/interop.md``)."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from obspy import UTCDateTime, read_events

from unmix.errors import ConfigError, InputFileError

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
    seed_id: str = ""  # NET.STA.LOC.CHA the entry is for (``?`` for the component, e.g. XB.ELYSE.03.BH?); "" unknown


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

    @property
    def seed_ids(self) -> list[str]:
        """The SEED ids (patterns such as ``XB.ELYSE.03.BH?``) the entries name; empty when none does."""
        return sorted({e.seed_id for e in self.entries if e.seed_id})

    def __add__(self, other: Catalog) -> Catalog:
        return Catalog(self.entries + other.entries, "; ".join(s for s in (self.source, other.source) if s))


def read_mps_glitches(path: str | Path) -> Catalog:
    """Parse a SEISglitch (MPS) glitch list: start/end UTC, per-component flags, RAW and GAI amplitudes, polarisation.

    Note (SEISglitch behaviour): its "U/V/W-GAI" columns hold Z/N/E amplitudes; both are kept, named as they are.
    """
    path = Path(path)
    _check_file(path)
    entries: list[CatalogEntry] = []
    seed = _seed_in_name(path.name)
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.strip()
            if text.startswith("#") and _SEED_LINE.match(text):
                seed = _SEED_LINE.match(text).group(1)
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
    entries = [_with_seed(e, seed) for e in entries]
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
        kind, seed, comps = _quakeml_identity(ev)
        name = ""
        for d in ev.event_descriptions:
            if d.text:
                name = d.text
                break
        mag = ev.preferred_magnitude() or (ev.magnitudes[0] if ev.magnitudes else None)
        extra: dict[str, float | str] = {"event_type": str(ev.event_type or "")}
        if mag is not None and mag.mag is not None:
            extra["magnitude"] = float(mag.mag)
        entries.append(CatalogEntry(start=t0, end=t1, kind=kind, name=name or str(ev.resource_id).split("/")[-1],
                                    extra=extra, seed_id=seed, components=comps))
    return Catalog(entries, str(path))


def read_catalog(path: str | Path) -> Catalog:
    """Read a glitch list or a QuakeML catalogue, recognised by content."""
    path = Path(path)
    _check_file(path)
    with path.open("rb") as fh:
        head = fh.read(512).lstrip()
    if head.startswith(b"<"):
        return read_quakeml(path)
    if head.startswith(b"{"):
        return read_truth(path)
    if head.startswith(_MARKERS_HEAD[:31].encode()):
        return read_markers(path)
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


# --- SEED ids ---------------------------------------------------------------------------------------------------------

_SEED_LINE = re.compile(r"^#\s*SEED id:\s*(\S+)", re.IGNORECASE)
_SEED_IN_NAME = re.compile(r"(?<![A-Za-z0-9])([A-Z0-9]{1,2})\.([A-Z0-9]{1,5})\.([A-Z0-9]{0,2})\.([A-Z0-9]{2,3})[_?]?")


def _seed_in_name(name: str) -> str:
    """``XB.ELYSE.03.BH?`` from a SEISglitch file name such as ``glitches_MPS_XB.ELYSE.03.BH_2019-….txt``."""
    m = _SEED_IN_NAME.search(name)
    if not m:
        return ""
    cha = m.group(4)
    return ".".join(m.groups()[:3]) + "." + (cha if len(cha) == 3 else cha + "?")


def _with_seed(entry: CatalogEntry, seed: str) -> CatalogEntry:
    from dataclasses import replace

    return replace(entry, seed_id=seed) if seed and not entry.seed_id else entry


def _instrument(sid: str) -> str:
    """NET.STA.LOC.BAND+INSTRUMENT of a SEED id (the component left out): what must agree with the data."""
    parts = sid.split(".")
    return ".".join(parts[:3] + [parts[3][:2]]) if len(parts) == 4 else sid


def matches_seed(catalog: Catalog, seed_id: str) -> bool:
    """Whether the catalogue is for the instrument of ``seed_id`` (or names no SEED id at all)."""
    ids = catalog.seed_ids
    return not ids or any(fnmatch.fnmatchcase(_instrument(seed_id), _instrument(p)) for p in ids)


def seed_mismatch(catalog: Catalog, data_ids: Iterable[str]) -> str | None:
    """One line when none of the data's SEED ids is one the catalogue names (e.g. a list for XB.ELYSE.02 given
    with 03 data, or a synthetic SY truth with XB data); None when they match or the catalogue names none."""
    data = sorted({_instrument(i) for i in data_ids})
    if not catalog.seed_ids or not data or any(matches_seed(catalog, d + "?") for d in data):
        return None
    return (f"catalogue {catalog.source} is for {', '.join(catalog.seed_ids)}, not for the data's "
            f"{', '.join(d + '?' for d in data)}: its overlays will not match")


# --- truth.json of `unmix synth` -----------------------------------------------------------------------------------

GLITCH_WINDOW = 25.0  # seconds: the span a glitch list gives a glitch (as SEISglitch's lists)


def read_truth(path: str | Path) -> Catalog:
    """The ground truth that ``unmix synth`` writes (``truth.json``): glitches and spikes (a 25-s window from the
    onset), gusts, dust devils and marsquakes (their spans), with the record's SEED id."""
    path = Path(path)
    _check_file(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        cfg = data["config"]
        seed = f"{cfg['network']}.{cfg['station']}.{cfg['location']}.{cfg['channels'][0][:2]}?"
        entries = [CatalogEntry(start=UTCDateTime(g["onset"]), end=UTCDateTime(g["onset"]) + GLITCH_WINDOW,
                                kind=str(g.get("kind", "glitch")), name=f"truth {i + 1}", seed_id=seed,
                                amplitudes={f"{c}_raw": abs(float(a)) for c, a in zip("UVW", g["amplitudes"],
                                                                                    strict=True)})
                   for i, g in enumerate(data.get("glitches", []))]
        entries += [CatalogEntry(start=UTCDateTime(e["start"]), end=UTCDateTime(e["end"]), kind=str(e["kind"]),
                                 name=f"{e['kind']} {i + 1}", seed_id=seed)
                    for i, e in enumerate(data.get("events", []))]
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise InputFileError(f"not a truth.json of `unmix synth` ({type(exc).__name__}: {exc})", path) from None
    return Catalog(entries, str(path))


# --- detections -------------------------------------------------------------------------------------------------------


def catalog_from_detections(detections: list[dict], tolerance: float = 3.0, window: float = GLITCH_WINDOW,
                            source: str = "") -> Catalog:
    """One glitch per onset from per-component detections (``info['catalogue']`` of the template method: channel,
    onset, amplitude): components whose onsets lie within ``tolerance`` s are one glitch; RAW amplitudes are the
    absolute fitted peaks."""
    rows = sorted(detections, key=lambda d: UTCDateTime(d["onset"]))
    groups: list[list[dict]] = []
    for d in rows:
        g = groups[-1] if groups else None
        same = g is not None and _instrument(g[0]["channel"]) == _instrument(d["channel"])
        if same and UTCDateTime(d["onset"]) - UTCDateTime(g[0]["onset"]) <= tolerance and \
                d["channel"] not in {x["channel"] for x in g}:
            g.append(d)
        else:
            groups.append([d])
    entries = []
    for g in groups:
        t0 = min(UTCDateTime(d["onset"]) for d in g)
        comps = "".join(sorted({d["channel"][-1] for d in g}, key="UVWZNE123".find))
        entries.append(CatalogEntry(start=t0, end=t0 + window, kind="glitch", components=comps,
                                    seed_id=_instrument(g[0]["channel"]) + "?",
                                    amplitudes={f"{d['channel'][-1]}_raw": abs(float(d["amplitude"])) for d in g}))
    entries = [_renamed(e, i) for i, e in enumerate(sorted(entries, key=lambda e: e.start))]
    return Catalog(entries, source)


def _renamed(entry: CatalogEntry, i: int) -> CatalogEntry:
    from dataclasses import replace

    return replace(entry, name=f"{i + 1:06d}")


def glitch_onsets(catalog: Catalog, seed_id: str) -> np.ndarray:
    """POSIX onsets of the catalogue's glitches on the component of ``seed_id`` (all components when an entry does
    not say which)."""
    comp = seed_id.split(".")[-1][-1:]
    return np.array([e.start.timestamp for e in catalog.of_kind("glitch")
                     if not e.components or comp in e.components or comp not in "UVW"], dtype=float)


# --- writers ----------------------------------------------------------------------------------------------------------

FORMATS = {"mps": (".txt", ".mps"), "quakeml": (".xml", ".qml", ".quakeml"), "markers": (".markers", ".pf")}
_MARKERS_HEAD = "# Snuffler Markers File Version 0.2"


def format_for(path: str | Path, fmt: str | None = None, formats: dict[str, tuple[str, ...]] = FORMATS,
               what: str = "catalogue",
               hint: str = "use .txt (SEISglitch list), .xml (QuakeML) or .markers (Snuffler), or give the format"
               ) -> str:
    """The format of ``fmt`` or, when None, of the file's extension, among ``formats`` (name → suffixes)."""
    if fmt:
        if fmt.lower() not in formats:
            raise ConfigError(f"unknown {what} format {fmt!r}; choose one of {', '.join(formats)}")
        return fmt.lower()
    suffix = Path(path).suffix.lower()
    for name, suffixes in formats.items():
        if suffix in suffixes:
            return name
    raise ConfigError(f"cannot tell the {what} format from {Path(path).name!r}: {hint}")


def write_catalog(catalog: Catalog, path: str | Path, fmt: str | None = None, overwrite: bool = False) -> Path:
    """Write ``catalog`` as a SEISglitch glitch list, QuakeML or Snuffler markers (atomically)."""
    from unmix.atomic import atomic_path

    path = Path(path)
    text = {"mps": mps_text, "quakeml": quakeml_text, "markers": markers_text}[format_for(path, fmt)](catalog)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


_MPS_HEADER = ("NUM", "GLITCH-UTC-S", "GLITCH-UTC-E", "GLITCH-LMST-S", "GLITCH-LMST-E", "U-GLITCH", "V-GLITCH",
               "W-GLITCH", "U-RAW", "V-RAW", "W-RAW", "U-GAI", "V-GAI", "W-GAI", "Z-GAI", "N-GAI", "E-GAI",
               "AZI_3D_GAI", "AZI_ERR_3D_GAI", "INC_3D_GAI", "INC_ERR_3D_GAI", "SNR_3D_GAI", "POL_3D_GAI")


def _mps_lmst(t: UTCDateTime) -> str:
    from unmix.mars_time import format_lmst

    sol_text, clock = format_lmst(t).split()
    return f"{int(sol_text[1:]):03d}M{clock}"


def mps_text(catalog: Catalog) -> str:
    """The 23-column SEISglitch glitch list of the catalogue's glitches (unknown columns ``nan``)."""
    ids = catalog.seed_ids
    lines = [f"# SEED id: {ids[0]}" if len(ids) == 1 else "# SEED id: unknown",
             "# written by unmix; columns as SEISglitch's glitch lists", "# " + "  ".join(_MPS_HEADER)]
    for i, e in enumerate(catalog.of_kind("glitch")):
        flags = [int(c in e.components) for c in "UVW"] if e.components else [1, 1, 1]
        raw = [e.amplitudes.get(f"{c}_raw", 0.0) for c in "UVW"]
        gai = [e.amplitudes.get(f"{c}_gai", float("nan")) for c in "UVWZNE"]
        pol = [e.extra.get(k, float("nan")) for k in ("azimuth", "azimuth_err", "incidence", "incidence_err", "snr",
                                                      "polarization")]
        cols = [e.name if e.name.isdigit() else f"{i + 1:06d}", _utc(e.start), _utc(e.end), _mps_lmst(e.start),
                _mps_lmst(e.end), *map(str, flags), *(f"{v:.6g}" for v in raw), *(f"{v:.3g}" for v in gai),
                *(f"{float(v):.4g}" for v in pol)]
        lines.append("  ".join(cols))
    return "\n".join(lines) + "\n"


def _utc(t: UTCDateTime) -> str:
    """``2019-05-22T23:31:39.25`` (centiseconds; whole seconds as SEISglitch writes them)."""
    text = t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-4]
    return text[:-3] if text.endswith(".00") else text


def _nslc(e: CatalogEntry) -> list[str]:
    """The channels of an entry (its SEED id with each component), or its SEED id."""
    if not e.seed_id:
        return []
    if e.seed_id.endswith("?") and e.components:
        return [e.seed_id[:-1] + c for c in e.components]
    return [e.seed_id]


def quakeml_text(catalog: Catalog) -> str:
    """QuakeML: one event per entry (``other event`` for glitches), picks ``start``/``end`` on each component."""
    import io

    from obspy.core.event import Catalog as ObsCatalog
    from obspy.core.event import Comment, Event, EventDescription, Pick, WaveformStreamID

    events = []
    for e in catalog:
        ev = Event(event_type="earthquake" if e.kind == "quake" else "other event")
        ev.event_descriptions.append(EventDescription(text=e.name or e.kind))
        ev.comments.append(Comment(text=f"unmix:kind={e.kind}"))
        for sid in _nslc(e) or [""]:
            net, sta, loc, cha = (sid.split(".") + ["", "", "", ""])[:4]
            for phase, t in (("start", e.start), ("end", e.end)):
                wid = WaveformStreamID(network_code=net, station_code=sta, location_code=loc, channel_code=cha)
                ev.picks.append(Pick(time=t, phase_hint=phase, waveform_id=wid))
        events.append(ev)
    buf = io.BytesIO()
    ObsCatalog(events).write(buf, format="QUAKEML")
    return buf.getvalue().decode("utf-8")


def _quakeml_identity(ev) -> tuple[str, str, str]:
    """(kind, SEED id pattern, components) of an event: kind from an ``unmix:kind=`` comment (else ``quake``)."""
    kind = next((c.text.split("=", 1)[1] for c in ev.comments if (c.text or "").startswith("unmix:kind=")), "quake")
    ids = sorted({p.waveform_id.get_seed_string() for p in ev.picks if p.waveform_id is not None
                  and p.waveform_id.channel_code})
    if not ids:
        return kind, "", ""
    return (kind, *_seed_and_components(ids))


def _seed_and_components(ids: list[str]) -> tuple[str, str]:
    """(``NET.STA.LOC.BH?``, ``UW``) of the channels ``XB.ELYSE.02.BHU``, ``XB.ELYSE.02.BHW``."""
    if not ids:
        return "", ""
    comps = "".join(sorted({i[-1] for i in ids}, key="UVWZNE123".find))
    return _instrument(ids[0]) + "?", comps


def _marker_time(t: UTCDateTime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def markers_text(catalog: Catalog) -> str:
    """Pyrocko/Snuffler marker file: one span marker (``tmin tmax duration kind nslc,…``) per entry; kind 1 for
    glitches, 0 for quakes, 2 for the rest (Snuffler's colour groups)."""
    lines = [_MARKERS_HEAD]
    for e in catalog:
        kind = {"glitch": 1, "quake": 0}.get(e.kind, 2)
        lines.append(f"{_marker_time(e.start)}  {_marker_time(e.end)}  {e.end - e.start:g}  {kind}  "
                     f"{','.join(_nslc(e)) or 'None'}")
    return "\n".join(lines) + "\n"


def read_markers(path: str | Path) -> Catalog:
    """Span markers of a Snuffler marker file (phase and event markers are skipped); kind 1 → glitch, 0 → quake."""
    path = Path(path)
    _check_file(path)
    kinds = {1: "glitch", 0: "quake"}
    entries = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()[1:], 2):
        cols = line.split()
        if not cols or cols[0] in ("event:", "phase:") or line.startswith("#"):
            continue
        if len(cols) != 7:
            continue  # a point marker: no span
        try:
            t0, t1, kind = UTCDateTime(f"{cols[0]}T{cols[1]}"), UTCDateTime(f"{cols[2]}T{cols[3]}"), int(cols[5])
        except Exception:
            raise InputFileError(f"line {lineno}: unreadable Snuffler marker", path) from None
        ids = [] if cols[6] == "None" else cols[6].split(",")
        seed, comps = _seed_and_components(ids)
        entries.append(CatalogEntry(start=t0, end=t1, kind=kinds.get(kind, "event"), components=comps, seed_id=seed))
    return Catalog(entries, str(path))

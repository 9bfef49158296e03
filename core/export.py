"""Batch separation and export: one file per separated source per input, plus a provenance JSON.

For every input file (files, directories and globs, see :func:`unmix.io.expand_inputs`) the records are read, each
is separated with the configured method, and ``DIR/<stem>.<source>.<ext>`` is written for the background and for
each removed source (SAC: one file per trace, ``<stem>.<source>.<trace id>[.<k>].sac``), then
``DIR/<stem>.provenance.json`` (tool version, configuration, model hash, input SHA-256, method, timings, and every
output file with its size, SHA-256, trace ids and processing history).

**Commit protocol.** Before the outputs, a hidden ``DIR/.<stem>.unmix-pending.json`` names them; the provenance is
written last, atomically, and then the pending note is removed. Only a provenance whose listed files all match their
size and digest marks a finished input (a re-run skips it); outputs named by a pending note or by a provenance that
no longer matches are an interrupted result of this input and are redone on the next run without ``overwrite``.
Other existing outputs are never replaced without ``overwrite``; inputs never, at all. Outputs of earlier runs that
lie among the inputs (``unmix separate D --out D``) are recognised by these notes and never separated again.

**Derived identity.** Separated traces can never pass for raw data: each product gets its own location code
(default: a letter per product, ``B`` background, ``G`` glitches, ``S`` spikes, ``R`` residual, ``L`` low
frequency, ``X`` removed, followed by the last character of the raw location, so ``02`` → ``B2``/``G2``), miniSEED
data quality ``Q``, a ``stats.processing`` entry, and in SAC ``KUSER0='unmix'``, ``KUSER1`` the product,
``KUSER2`` the method, ``KEVNM`` the product, and station coordinates and orientation from ``inventory``.
A bad input is reported and the batch goes on; :class:`ExportReport` lists what failed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from obspy import Stream

from unmix import __version__
from unmix.atomic import atomic_path, write_stream
from unmix.errors import ConfigError, DataError, OutputExistsError, UnmixError, describe_os_error
from unmix.hashing import file_sha256
from unmix.jobs import NO_CANCEL, Cancelled, CancelToken, Progress, no_progress, sub_progress
from unmix.lock import folder_lock

FORMATS = {"MSEED": "mseed", "SAC": "sac"}
PROVENANCE_SUFFIX = ".provenance.json"
PENDING_SUFFIX = ".unmix-pending.json"
DTYPES = ("float64", "float32")
log = logging.getLogger(__name__)
#: miniSEED data quality of every derived product ('Q': quality-controlled data, as processed data centres mark it).
DATAQUALITY = "Q"
#: First character of the default location code of each product (the second is the raw location's last one).
PRODUCT_LETTERS = {"background": "B", "glitches": "G", "spikes": "S", "residual": "R", "low_frequency": "L",
                   "removed": "X"}
_SPARE_LETTERS = "YZWVUTKPNMH"
_MSEED_ENCODING = {"float32": "FLOAT32", "float64": "FLOAT64"}


@dataclass
class ExportPlan:
    """What to do with every input (picklable, so that worker processes can rebuild the separator)."""

    out_dir: str
    method: str = "template"
    options: dict = field(default_factory=dict)
    fmt: str = "MSEED"
    overwrite: bool = False
    gap_policy: str = "split"
    max_fill: int = 0
    resample_to: float | None = None
    model: dict | None = None  # {"path": ..., "sha256": ...} when the prior comes from a trained model
    sources: tuple[str, ...] | None = None  # names of the sources to write (None: all)
    locations: dict[str, str] = field(default_factory=dict)  # product → location code (others: the default)
    dtype: str = "float64"
    inventory: str | None = None  # StationXML: SAC station coordinates and component orientation
    allow_damaged: bool = False  # read damaged inputs for what they hold; the damage goes into the provenance

    def configuration(self) -> dict:
        """JSON-ready configuration; arrays and tables are summarised by shape and digest."""
        options = {**_unrecorded_now(self.method, self.options), **self.options}
        config = {"method": self.method, "options": {k: _summary(v) for k, v in sorted(options.items())},
                  "format": self.fmt, "gap_policy": self.gap_policy, "max_fill": self.max_fill,
                  "resample_to": self.resample_to, "model": self.model, "locations": dict(sorted(
                      self.locations.items())), "dtype": self.dtype, "dataquality": DATAQUALITY,
                  "inventory": self.inventory}
        if self.sources is not None:
            config["sources"] = list(self.sources)
        return config


@dataclass
class ExportReport:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # inputs that are outputs of earlier runs in the out folder

    def summary(self) -> str:
        own = f", {len(self.ignored)} own output(s) ignored" if self.ignored else ""
        return (f"{len(self.done)} separated, {len(self.skipped)} already done, {len(self.failed)} failed{own} "
                f"({len(self.outputs)} file(s) written)")


def _unrecorded_now(method: str, options: dict) -> dict:
    """The current values of the options ``method`` lists in ``unrecorded`` (provenance from before they were
    recorded lacks them, and its replay takes the values of that time), so that every provenance now holds them."""
    from unmix.separation.registry import get_method, methods

    spec = methods().get(method)
    keys = spec.unrecorded() if spec is not None else {}
    if not keys:
        return {}
    params = get_method(method, **options).provenance_params()
    return {k: params[k] for k in keys if k in params}


def _summary(value):
    if isinstance(value, np.ndarray):
        return {"array": list(value.shape), "dtype": str(value.dtype),
                "sha256": hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()}
    if hasattr(value, "n_windows") and hasattr(value, "scales"):  # a ClusterTable
        return {"cluster_table": {"windows": int(value.n_windows), "scales": list(value.scales),
                                  "meta": _json_safe(getattr(value, "meta", {}))}}
    return _json_safe(value)


def _json_safe(value):
    try:
        return json.loads(json.dumps(value, default=_jsonable))
    except (TypeError, ValueError):
        return str(value)


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return {"array": list(v.shape)} if v.size > 64 else v.tolist()
    if isinstance(v, Path):
        return str(v)
    return str(v)


def output_stems(files: list[Path]) -> dict[Path, str]:
    """Output name stem per input: the file name without extension; where names collide, prefixed with as many
    parent folder names as it takes to tell them apart (a path hash as the last resort)."""
    stems = {f: f.stem for f in files}
    for depth in range(1, 8):
        counts: dict[str, int] = {}
        for s in stems.values():
            counts[s] = counts.get(s, 0) + 1
        clashing = [f for f in files if counts[stems[f]] > 1]
        if not clashing:
            return stems
        for f in clashing:
            parents = [p for p in f.resolve().parent.parts[-depth:] if p.strip("/")]
            stems[f] = "_".join([*parents, f.stem])
    return {f: f"{f.stem}_{hashlib.sha1(str(f.resolve()).encode()).hexdigest()[:8]}" for f in files}


def _stream_files(stream: Stream, out_dir: Path, stem: str, source: str, fmt: str) -> list[tuple[Path, Stream]]:
    ext = FORMATS[fmt]
    if fmt != "SAC":
        return [(out_dir / f"{stem}.{source}.{ext}", stream)]
    out, seen = [], {}
    for tr in stream:
        k = seen.get(tr.id, 0)
        seen[tr.id] = k + 1
        many = len(stream.select(id=tr.id)) > 1
        out.append((out_dir / f"{stem}.{source}.{tr.id}{f'.{k}' if many else ''}.{ext}", Stream([tr])))
    return out


def parse_locations(text: str | dict | None) -> dict[str, str]:
    """``background=B0,glitches=G0`` (or a dict) → {product: code}; codes are 1–2 letters/digits, all different."""
    if not text:
        return {}
    pairs = text.items() if isinstance(text, dict) else (p.partition("=")[::2] for p in str(text).split(",") if p)
    out = {}
    for product, code in pairs:
        product, code = product.strip(), code.strip().upper()
        if not product or not (1 <= len(code) <= 2 and code.isalnum() and code.isascii()):
            raise ConfigError(f"--location expects PRODUCT=CODE with a code of 1 or 2 letters/digits, got "
                              f"{product}={code!r}")
        out[product] = code
    if len(set(out.values())) < len(out):
        raise ConfigError(f"--location gives two products the same location code: {out}")
    return out


def product_location(product: str, raw_location: str, locations: dict[str, str]) -> str:
    """Location code of ``product`` derived from a trace of ``raw_location`` (see the module docstring)."""
    if product in locations:
        return locations[product]
    letter = PRODUCT_LETTERS.get(product)
    if letter is None:
        taken = set(PRODUCT_LETTERS.values())
        first = product[:1].upper()
        letter = first if first.isalpha() and first.isascii() and first not in taken else next(
            c for c in _SPARE_LETTERS if c not in taken)
    return letter + (raw_location[-1:] or "0")


def _station_header(inventory, raw_id: str, time) -> dict:
    """SAC station coordinates and component orientation of ``raw_id`` from a StationXML inventory."""
    from unmix.errors import ResponseError

    try:
        coords = inventory.get_coordinates(raw_id, time)
        orient = inventory.get_orientation(raw_id, time)
    except Exception:  # ObsPy raises plain Exceptions for channels it does not hold
        raise ResponseError(f"the --inventory has no coordinates or orientation for {raw_id} at {time}") from None
    return {"stla": coords["latitude"], "stlo": coords["longitude"], "stel": coords["elevation"],
            "stdp": coords.get("local_depth", 0.0), "cmpaz": orient["azimuth"], "cmpinc": orient["dip"] + 90.0}


def label_product(stream: Stream, product: str, plan: ExportPlan, inventory=None) -> list[str]:
    """Give the traces of one product their derived identity (see the module docstring); returns their raw ids."""
    from obspy.core import AttribDict

    raw_ids = []
    for tr in stream:
        raw_id, raw_location = tr.id, tr.stats.location
        code = product_location(product, raw_location, plan.locations)
        if code == raw_location:
            raise ConfigError(f"the location code {code!r} of {product} is the input's own ({raw_id}): is the input "
                              "already a separated product? Otherwise choose another with --location")
        raw_ids.append(raw_id)
        tr.data = np.ascontiguousarray(tr.data, dtype=plan.dtype)
        tr.stats.location = code
        tr.stats.pop("mseed", None)  # the input's encoding (e.g. Steim2 integers) does not fit float samples
        tr.stats.mseed = AttribDict(dataquality=DATAQUALITY, encoding=_MSEED_ENCODING[plan.dtype])
        tr.stats.setdefault("processing", []).append(
            f"unmix {__version__}: separate(method={plan.method!r}): {product} of {raw_id}")
        if plan.fmt == "SAC":
            sac = AttribDict(tr.stats.get("sac", {}))
            sac.update({"kuser0": "unmix", "kuser1": product[:8], "kuser2": plan.method[:8], "kevnm": product[:16]})
            if inventory is not None:
                sac.update(_station_header(inventory, raw_id, tr.stats.starttime))
            tr.stats.sac = sac
    return raw_ids


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _files_match(out_dir: Path, prov: dict) -> bool:
    """True when every output a provenance lists exists with its recorded size and digest."""
    files = prov.get("files")
    if not isinstance(files, list):
        return all((out_dir / str(name)).is_file() for name in prov.get("outputs", []))
    for entry in files:
        try:
            target = out_dir / Path(str(entry["name"])).name
            ok = target.stat().st_size == entry["bytes"] and file_sha256(target) == entry["sha256"]
        except (OSError, KeyError, TypeError):
            return False
        if not ok:
            return False
    return True


def _prior_state(prov_path: Path, sha: str, config: dict) -> tuple[str, list[str]]:
    """What the provenance at ``prov_path`` says: ('none' | 'finished' | 'other' | 'incomplete', its outputs).
    'other': a finished result of another input or configuration; 'incomplete': of this input and configuration,
    but its files no longer match (an interrupted re-run)."""
    if not prov_path.exists():
        return "none", []
    prov = _read_json(prov_path)
    if prov is None:
        return "incomplete", []
    outputs = [Path(str(n)).name for n in prov.get("outputs", []) if isinstance(n, str)]
    if prov.get("input_sha256") != sha or prov.get("configuration") != config:
        return "other", outputs
    return ("finished" if _files_match(prov_path.parent, prov) else "incomplete"), outputs


def _pending_path(out_dir: Path, stem: str) -> Path:
    return out_dir / f".{stem}{PENDING_SUFFIX}"


def own_outputs(out_dir: str | Path) -> set[str]:
    """Resolved paths of every file that provenance files or pending notes in ``out_dir`` name as Unmix outputs."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return set()
    notes = [*out_dir.glob(f"*{PROVENANCE_SUFFIX}"), *out_dir.glob(f".*{PENDING_SUFFIX}")]
    names = set()
    for note in notes:
        data = _read_json(note) or {}
        names.update(Path(str(n)).name for n in data.get("outputs", []) if isinstance(n, str))
    return {str((out_dir / n).resolve()) for n in names}


def _file_entry(path: Path, stream: Stream, product: str, raw_ids: list[str]) -> dict:
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path), "product": product,
            "ids": sorted({tr.id for tr in stream}), "raw_ids": sorted(set(raw_ids)),
            "processing": list(dict.fromkeys(p for tr in stream for p in tr.stats.get("processing", [])))}


def _check_targets(targets, inputs: frozenset[str], ours: set[str], overwrite: bool) -> None:
    for target, _ in targets:
        if str(target.resolve()) in inputs:
            raise OutputExistsError("an output would replace an input file; choose another --out", target)
        if target.exists() and not overwrite and target.name not in ours:
            raise OutputExistsError("already exists and no provenance of this input says Unmix wrote it; pass "
                                    "--overwrite to replace it", target)


def derived_product(tr) -> str | None:
    """What Unmix product a trace read back is (None for raw data): SAC ``KUSER0='unmix'``, or miniSEED quality
    ``Q`` with a derived location code (a product letter and one character)."""
    sac = tr.stats.get("sac") or {}
    if str(sac.get("kuser0", "")).strip() == "unmix":
        return str(sac.get("kevnm", "")).strip() or "a product"
    quality = (tr.stats.get("mseed") or {}).get("dataquality")
    loc = tr.stats.location
    if quality == DATAQUALITY and len(loc) == 2 and loc[0] in {*PRODUCT_LETTERS.values(), *_SPARE_LETTERS}:
        return next((p for p, c in PRODUCT_LETTERS.items() if c == loc[0]), "a product")
    return None


def _separate_records(path: Path, plan: ExportPlan, progress: Progress, token: CancelToken,
                      sink: Callable[[dict[str, Stream]], None]) -> tuple[list[dict], float]:
    """Separate every record of ``path``, long ones in pieces (:mod:`unmix.separation.pieces`) and long files
    window by window (:mod:`unmix.io.windows`); ``sink`` gets the products of every piece in time order,
    ``{'background': ..., <removed>: ...}``. Returns each record's info and the time the (first) reading ended."""
    from unmix.allocator import release_memory
    from unmix.separation import get_method
    from unmix.separation.pieces import separate_in_pieces

    separator = get_method(plan.method, **plan.options)
    windows: list = _reading_windows(path, plan, separator) or [None]
    infos, t_read = _RecordInfos(), None
    for w, window in enumerate(windows):
        token.check()
        records = _read_checked(path, plan, None if window is None else window.read)
        t_read = t_read or time.perf_counter()
        for k, record in enumerate(records):
            token.check()
            keep = None if window is None else window.keep
            step = (w + k / len(records)) / len(windows), (w + (k + 1) / len(records)) / len(windows)
            parts = []
            for part in separate_in_pieces(record.stream, separator, sub_progress(progress, *step), token, keep):
                sink({"background": part.background, **part.removed})
                parts.append((part.info, _kept_span(part.background)))
                del part
            infos.add(record, parts, keep)
        del records
        release_memory()  # a window's samples and products go back to the system before the next window is read
    return infos.entries(), t_read


def _reading_windows(path: Path, plan: ExportPlan, separator) -> list | None:
    """The windows a long miniSEED input is read in (pads: the method's piece margin and the longest gap filled),
    or None to read it whole (short, other formats, damaged inputs read for what they hold, resampled records, and
    methods that need the whole record)."""
    from unmix.io.windows import read_windows

    extent_of = getattr(separator, "piece_extent", None)
    if plan.allow_damaged or plan.resample_to is not None or not callable(extent_of):
        return None
    fill = plan.max_fill if plan.gap_policy == "fill" else 0

    def pad(rate: float) -> float | None:
        extent = extent_of(rate)
        return None if extent is None else (extent.margin + fill) / rate

    return read_windows(path, pad)


def _read_checked(path: Path, plan: ExportPlan, window) -> list:
    """The records of ``path`` (in ``window``), refusing Unmix's own outputs as inputs."""
    from unmix.io import read_records

    records = read_records(path, plan.gap_policy, plan.max_fill, plan.resample_to, allow_damaged=plan.allow_damaged,
                           window=window)
    for record in records:
        for tr in record.stream:
            if (product := derived_product(tr)) is not None:
                raise DataError(f"{tr.id} is an Unmix output ({product}, location {tr.stats.location}), not raw "
                                "data; separate the raw record instead", path)
    return records


def _kept_span(stream: Stream) -> tuple | None:
    """(first sample, last sample, samples) of a piece's kept part; None when it is empty."""
    if len(stream) == 0:
        return None
    return (min(tr.stats.starttime for tr in stream), max(tr.stats.endtime for tr in stream),
            max(tr.stats.npts for tr in stream))


class _RecordInfos:
    """The provenance's ``records``: one entry per record, a record that runs on from one reading window into the
    next (it starts in the window's pad) being one entry, its sample numbers counted from its first window."""

    def __init__(self) -> None:
        self._done: list[dict] = []
        self._open: dict[str, dict] = {}  # record key -> the entry still growing, with its pieces and trace starts

    def add(self, record, parts: list[tuple[dict, tuple | None]], keep) -> None:
        spans = [s for _, s in parts if s is not None]
        if not spans:
            return
        starts = {tr.id: tr.stats.starttime for tr in record.stream}
        entry = self._open.get(record.key)
        if entry is None or keep is None or record.starttime >= keep[0]:
            if entry is not None:
                self._done.append(self._close(entry))
            entry = self._open[record.key] = {"record": record, "start": spans[0][0], "npts": 0, "pieces": [],
                                              "starts": starts, "notes": [], "damage": []}
        shifts = {cid: round((t - entry["starts"].get(cid, t)) * record.sampling_rate) for cid, t in starts.items()}
        entry["pieces"] += [_shifted(info, shifts) for info, s in parts if s is not None]
        entry["end"] = spans[-1][1]
        entry["npts"] += sum(s[2] for s in spans)
        entry["notes"] += [n for n in record.notes if n not in entry["notes"]]
        entry["damage"] += [d for d in record.damage if d not in entry["damage"]]

    @staticmethod
    def _close(entry: dict) -> dict:
        from unmix.separation.pieces import combined_info

        return {"record": entry["record"].key, "start": str(entry["start"]), "end": str(entry["end"]),
                "npts": entry["npts"], "notes": entry["notes"], "damage": entry["damage"],
                "info": _json_safe(combined_info(entry["pieces"]))}

    def entries(self) -> list[dict]:
        done = self._done + [self._close(e) for e in self._open.values()]
        return sorted(done, key=lambda e: (e["record"], e["start"]))


def _shifted(info: dict, shifts: dict[str, int]) -> dict:
    """A piece's info with its catalogue's ``onset_sample`` counted from its record's first window."""
    if not any(shifts.values()) or not isinstance(info.get("catalogue"), list):
        return info
    return {**info, "catalogue": [
        {**e, "onset_sample": e["onset_sample"] + shifts.get(e.get("channel"), 0)}
        if isinstance(e, dict) and isinstance(e.get("onset_sample"), int | float) else e
        for e in info["catalogue"]]}


def _write_pending(pending: Path, sha: str, names: list[str]) -> None:
    with atomic_path(pending, overwrite=True) as tmp:
        tmp.write_text(json.dumps({"input_sha256": sha, "outputs": names}))


def _commit(targets, products, prov_path: Path, pending: Path, ours: set[str], provenance: dict, fmt: str,
            clock: tuple[float, float, float]) -> list[str]:
    """Write the outputs under the commit protocol of the module docstring; returns the written paths.
    ``clock``: the perf_counter() readings at start, after reading and after separating (for the timings)."""
    out_dir = prov_path.parent
    prov_path.unlink(missing_ok=True)  # no provenance may vouch for a mix of old and new files
    names = sorted({t.name for t, _ in targets} | ours)
    _write_pending(pending, provenance["input_sha256"], names)
    written, files = [], []
    try:
        for target, st in targets:
            with atomic_path(target, overwrite=True) as tmp:
                write_stream(st, tmp, fmt)
            written.append(str(target))
            files.append(_file_entry(target, st, *products[target]))
    except BaseException:  # e.g. disk full: take back this attempt's files; the note stays while older ones remain
        for w in written:
            Path(w).unlink(missing_ok=True)
        if not any((out_dir / n).exists() for n in names):
            pending.unlink(missing_ok=True)
        raise
    return _finish(written, files, prov_path, pending, ours, provenance, clock)


def _finish(written: list[str], files: list[dict], prov_path: Path, pending: Path, ours: set[str],
            provenance: dict, clock: tuple[float, float, float]) -> list[str]:
    """After the outputs: remove the interrupted run's others, write the provenance, drop the pending note."""
    out_dir = prov_path.parent
    for stale in ours - {Path(w).name for w in written}:  # outputs of the interrupted run that this one does not make
        (out_dir / stale).unlink(missing_ok=True)
    t_start, t_read, t_sep = clock
    t_write = time.perf_counter()
    provenance.update(outputs=[Path(w).name for w in written], files=files, timings={
        "read_s": t_read - t_start, "separate_s": t_sep - t_read, "write_s": t_write - t_sep,
        "total_s": t_write - t_start})
    with atomic_path(prov_path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(provenance, indent=1, default=_jsonable))
    pending.unlink(missing_ok=True)
    return [*written, str(prov_path)]


class _Appending:
    """The sink of :func:`_separate_records` for miniSEED: every product's pieces labelled and appended to
    ``<stem>.<product>.mseed`` (:class:`unmix.io.append.AppendedFiles`); a product's target is checked and named in
    the pending note before its first piece is written."""

    def __init__(self, files, plan: ExportPlan, stem: str, inputs: frozenset[str], ours: set[str], prov_path: Path,
                 pending: Path, sha: str) -> None:
        self.files, self.plan, self.stem, self.inputs, self.ours = files, plan, stem, inputs, ours
        self.prov_path, self.pending, self.sha = prov_path, pending, sha
        self.targets: dict[str, Path] = {}
        self.raw_ids: dict[str, list[str]] = {}
        self.locations: dict[str, set[str]] = {}

    def __call__(self, parts: dict[str, Stream]) -> None:
        for name, st in parts.items():
            if self.plan.sources is not None and name not in self.plan.sources:
                continue
            if name not in self.targets:
                target = Path(self.plan.out_dir) / f"{self.stem}.{name}.{FORMATS['MSEED']}"
                _check_targets([(target, None)], self.inputs, self.ours, self.plan.overwrite)
                if not self.targets:
                    self.prov_path.unlink(missing_ok=True)  # no provenance may vouch for a mix of old and new files
                self.targets[name] = target
                _write_pending(self.pending, self.sha, self.names())
            self.raw_ids.setdefault(name, []).extend(label_product(st, name, self.plan))
            self.locations.setdefault(name, set()).update(tr.stats.location for tr in st)
            self.files.append(self.targets[name], st)

    def names(self) -> list[str]:
        """The outputs the pending note names: this run's targets so far and the interrupted run's."""
        return sorted({t.name for t in self.targets.values()} | self.ours)

    def entries(self) -> list[dict]:
        """The provenance's ``files`` entries, from what the appenders wrote."""
        out = []
        for name, target in self.targets.items():
            app = self.files.files[target]
            out.append({"name": target.name, "bytes": app.bytes, "sha256": app.sha256, "product": name,
                        "ids": sorted(app.ids), "raw_ids": sorted(set(self.raw_ids[name])),
                        "processing": list(app.processing)})
        return out


def process_file(path: str | Path, stem: str, plan: ExportPlan, inputs: frozenset[str] = frozenset(),
                 progress: Progress = no_progress, token: CancelToken = NO_CANCEL) -> tuple[str, list[str]]:
    """Separate one input file and write its outputs; returns ('done' | 'skipped', written paths)."""
    path = Path(path)
    out_dir = Path(plan.out_dir)
    t_start = time.perf_counter()
    sha = file_sha256(path, token)
    config = _json_safe(plan.configuration())
    prov_path, pending = out_dir / f"{stem}{PROVENANCE_SUFFIX}", _pending_path(out_dir, stem)
    state, prov_outputs = _prior_state(prov_path, sha, config)
    if state == "finished" and not plan.overwrite:
        return "skipped", []
    if state == "other" and not plan.overwrite:
        raise OutputExistsError("results of another input or configuration exist; pass --overwrite to replace them",
                                prov_path)
    note = _read_json(pending) or {}
    ours = {Path(str(n)).name for n in note.get("outputs", []) if note.get("input_sha256") == sha}
    ours |= set(prov_outputs) if state == "incomplete" else set()
    provenance = {"input": str(path), "input_sha256": sha, "configuration": config}
    if plan.fmt == "SAC":
        written = _separate_whole_files(path, stem, plan, inputs, ours, prov_path, pending, provenance, progress,
                                        token, t_start)
    else:
        written = _separate_appending(path, stem, plan, inputs, ours, prov_path, pending, provenance, progress, token,
                                      t_start)
    progress(1.0, path.name)
    return "done", written


def _provenance(plan: ExportPlan, given: dict, infos: list[dict], locations: dict[str, set[str]]) -> dict:
    """The provenance of one input before its outputs are listed (``given``: input, its digest, configuration)."""
    return {
        "tool": "unmix", "version": __version__, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": given["input"], "input_sha256": given["input_sha256"], "method": plan.method,
        "configuration": given["configuration"], "model": plan.model, "records": infos, "dataquality": DATAQUALITY,
        "damage": list(dict.fromkeys(d for info in infos for d in info["damage"])),
        "products": {name: sorted(locs) for name, locs in locations.items()},
    }


def _separate_appending(path: Path, stem: str, plan: ExportPlan, inputs: frozenset[str], ours: set[str],
                        prov_path: Path, pending: Path, provenance: dict, progress: Progress, token: CancelToken,
                        t_start: float) -> list[str]:
    """miniSEED: separate and append every piece to the outputs as it comes (memory bounded by a piece)."""
    from unmix.io.append import AppendedFiles

    files = AppendedFiles(overwrite=True)
    sink = _Appending(files, plan, stem, inputs, ours, prov_path, pending, provenance["input_sha256"])
    try:
        with files:
            infos, t_read = _separate_records(path, plan, progress, token, sink)
    except BaseException:  # the temporary files are gone; the note stays while older outputs remain
        if sink.targets and not any((prov_path.parent / n).exists() for n in sink.names()):
            pending.unlink(missing_ok=True)
        raise
    t_sep = time.perf_counter()
    provenance = _provenance(plan, provenance, infos, sink.locations)
    written = [str(t) for t in sink.targets.values()]
    return _finish(written, sink.entries(), prov_path, pending, ours, provenance, (t_start, t_read, t_sep))


def _separate_whole_files(path: Path, stem: str, plan: ExportPlan, inputs: frozenset[str], ours: set[str],
                          prov_path: Path, pending: Path, provenance: dict, progress: Progress, token: CancelToken,
                          t_start: float) -> list[str]:
    """SAC (one file per trace, not appendable): the pieces joined per product, then written as before."""
    from unmix.separation.pieces import join_pieces

    pieces: dict[str, list[Stream]] = {"background": []}
    infos, t_read = _separate_records(path, plan, progress, token,
                                      lambda parts: [pieces.setdefault(n, []).append(st) for n, st in parts.items()])
    sources = {name: join_pieces(parts) for name, parts in pieces.items()}
    t_sep = time.perf_counter()
    inventory = None
    if plan.inventory is not None:
        from unmix.io import read_inventory

        inventory = read_inventory(plan.inventory)
    products, targets = {}, []
    for name, st in sources.items():
        if plan.sources is not None and name not in plan.sources:
            continue
        raw_ids = label_product(st, name, plan, inventory)
        for target, part in _stream_files(st, Path(plan.out_dir), stem, name, plan.fmt):
            targets.append((target, part))
            products[target] = (name, raw_ids)
    _check_targets(targets, inputs, ours, plan.overwrite)
    provenance = _provenance(plan, provenance, infos, {name: {tr.stats.location for tr in st}
                                                       for name, st in sources.items()
                                                       if plan.sources is None or name in plan.sources})
    return _commit(targets, products, prov_path, pending, ours, provenance, plan.fmt, (t_start, t_read, t_sep))


def _failure(path, exc: Exception) -> str:
    """One line for what went wrong with one input."""
    if isinstance(exc, UnmixError):
        return exc.message
    if isinstance(exc, OSError) and (message := describe_os_error(exc)) is not None:
        return message
    return f"{path}: {type(exc).__name__}: {exc}"


def _log_outcome(path: Path, status: str, payload) -> None:
    log.info("%s: %s", path, {"done": f"separated ({len(payload)} file(s) written)", "skipped": "already done",
                              }.get(status, f"failed: {payload}"))


def _guarded(path: str, stem: str, *, plan: ExportPlan, inputs: frozenset[str],
             token: CancelToken = NO_CANCEL) -> tuple[str, list[str] | str]:
    """Task of one input on a Dask worker: never raises for a bad input, returns ('failed', message) instead."""
    try:
        return process_file(path, stem, plan, inputs, no_progress, token)
    except Cancelled:
        raise
    except Exception as exc:  # keep going past anything a single file triggers
        return "failed", _failure(path, exc)


def export_separation(inputs, out_dir: str | Path, method: str = "template", options: dict | None = None,
                      fmt: str = "MSEED", workers: int = 0, overwrite: bool = False, gap_policy: str = "split",
                      max_fill: int = 0, resample_to: float | None = None, model: dict | None = None,
                      sources: list[str] | None = None, progress: Progress = no_progress,
                      token: CancelToken = NO_CANCEL, locations: dict[str, str] | str | None = None,
                      dtype: str = "float64", inventory: str | Path | None = None,
                      allow_damaged: bool = False, scheduler: str | None = None) -> ExportReport:
    """Separate every input and export the sources (see the module docstring); ``sources`` limits the written
    sources by name (e.g. ``['background']``). ``workers > 1`` runs one Dask task per file on a local cluster of
    that many processes, ``scheduler`` on an existing dask.distributed cluster (input and output paths must name the
    same files there); the outputs and report are those of a run in this process. ``locations``
    overrides the location code of products (``{'background': 'B0'}`` or ``'background=B0'``), ``dtype`` is the
    sample type written, ``inventory`` a StationXML for SAC coordinates. Failures of single files are collected in
    the report, not raised. ``allow_damaged`` reads damaged inputs for what they hold (:func:`unmix.io.read_file`);
    their provenance lists the damage."""
    from unmix.io import expand_inputs

    fmt = fmt.upper()
    if fmt not in FORMATS:
        raise ConfigError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if workers < 0:
        raise ConfigError("--workers must be ≥ 0")
    if dtype not in DTYPES:
        raise ConfigError(f"unknown --dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    locations = parse_locations(locations)
    known = set(PRODUCT_LETTERS) | {str((options or {}).get("removed_name", "removed"))}
    if set(locations) - known:
        raise ConfigError(f"--location names unknown product(s) {sorted(set(locations) - known)}; products are "
                          f"{', '.join(sorted(known))}")
    report = ExportReport()
    files: list[Path] = []
    for item in [inputs] if isinstance(inputs, str | Path) else list(inputs):
        try:
            files += [f for f in expand_inputs(item) if f not in files]
        except UnmixError as exc:  # a missing file or an empty pattern fails on its own, the rest goes on
            report.failed.append((str(item), exc.message))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError("--out must be a directory", out)
    blocking = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ConfigError(f"cannot make the --out folder: {blocking} is a file, not a folder", out)
    plan = ExportPlan(str(out), method, dict(options or {}), fmt, overwrite, gap_policy, max_fill, resample_to, model,
                      tuple(sources) if sources is not None else None, locations, dtype,
                      None if inventory is None else str(Path(inventory).resolve()), allow_damaged)
    from unmix.separation import get_method

    get_method(method, **plan.options)  # configuration errors stop the batch before any file is touched
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        return _export_files(files, out, plan, workers, report, progress, token, scheduler)


def _export_files(files: list[Path], out: Path, plan: ExportPlan, workers: int, report: ExportReport,
                  progress: Progress, token: CancelToken, scheduler: str | None = None) -> ExportReport:
    """Separate and write ``files`` into ``out`` (held by :func:`folder_lock`), skipping the folder's own outputs."""
    own = own_outputs(out)
    report.ignored = [str(f) for f in files if str(f.resolve()) in own]
    files = [f for f in files if str(f.resolve()) not in own]
    stems = output_stems(files)
    inputs_set = frozenset(str(f.resolve()) for f in files)

    def record(path: Path, status: str, payload) -> None:
        if status == "failed":
            report.failed.append((str(path), payload))
        else:
            (report.done if status == "done" else report.skipped).append(str(path))
            report.outputs += payload

    if not files or (workers <= 1 and not scheduler):
        for k, f in enumerate(files):
            token.check()
            sub = sub_progress(progress, k / len(files), (k + 1) / len(files))
            try:
                status, payload = process_file(f, stems[f], plan, inputs_set, sub, token)
            except Cancelled:
                raise
            except Exception as exc:
                status, payload = "failed", _failure(f, exc)
            _log_outcome(f, status, payload)
            record(f, status, payload)
            progress((k + 1) / len(files), f.name)
        return report
    outcomes = _separate_on_dask(files, stems, plan, inputs_set, workers, scheduler, progress, token)
    for f in files:  # the report in input order, as in this process
        record(f, *outcomes[f])
    return report


def _separate_on_dask(files: list[Path], stems: dict[Path, str], plan: ExportPlan, inputs: frozenset[str],
                      workers: int, scheduler: str | None, progress: Progress,
                      token: CancelToken) -> dict[Path, tuple[str, list[str] | str]]:
    """One Dask task per file (:func:`unmix.distributed.run_tasks`); each task commits its file's outputs itself, so
    what finished is kept when the run stops. Returns (status, written paths or failure) per file."""
    from unmix.distributed import run_tasks

    if scheduler:  # workers elsewhere have another working directory
        plan = replace(plan, out_dir=str(Path(plan.out_dir).resolve()))
    outcomes: dict[Path, tuple[str, list[str] | str]] = {}

    def handle(i: int, value, error: BaseException | None) -> None:
        f = files[i]
        outcomes[f] = ("failed", _failure(f, error)) if error is not None else value
        _log_outcome(f, *outcomes[f])
        progress(len(outcomes) / len(files), f.name)

    paths = [str(f.resolve()) if scheduler else str(f) for f in files]
    run_tasks(_guarded, [(p, stems[f]) for p, f in zip(paths, files, strict=True)], paths, workers, scheduler, handle,
              token, shared={"plan": plan, "inputs": inputs})
    return outcomes


def report_dict(report: ExportReport) -> dict:
    return asdict(report)


def export_result(result, out_dir: str | Path, stem: str = "separated", fmt: str = "MSEED", overwrite: bool = False,
                  dtype: str = "float64", locations: dict[str, str] | str | None = None) -> list[str]:
    """Write one in-memory :class:`~unmix.separation.SeparationResult` as ``separate`` writes an input's: each
    product with its derived identity, under the commit protocol, the provenance JSON last (its ``input`` is
    ``<in memory>`` and ``input_sha256`` the digest of the separated samples). Returns the written paths."""
    fmt, out_dir = fmt.upper(), Path(out_dir)
    if fmt not in FORMATS or dtype not in DTYPES:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)} and dtype one of {', '.join(DTYPES)}")
    if not stem or "/" in stem:
        raise ConfigError(f"stem must be a plain file name stem, got {stem!r}")
    t_start = time.perf_counter()
    method = str(result.info.get("method", "unknown"))
    plan = ExportPlan(str(out_dir), method, fmt=fmt, overwrite=overwrite, locations=parse_locations(locations),
                      dtype=dtype)
    sources = {"background": result.background.copy(), **{k: st.copy() for k, st in result.removed.items()}}
    digest = hashlib.sha256()
    for st in sources.values():
        for tr in st:
            digest.update(np.ascontiguousarray(tr.data, np.float64).tobytes())
    products, targets = {}, []
    for name, st in sources.items():
        raw_ids = label_product(st, name, plan)
        for target, part in _stream_files(st, out_dir, stem, name, fmt):
            targets.append((target, part))
            products[target] = (name, raw_ids)
    prov_path, pending = out_dir / f"{stem}{PROVENANCE_SUFFIX}", _pending_path(out_dir, stem)
    if prov_path.exists() and not overwrite:
        raise OutputExistsError("already exists; pass overwrite=True to replace it", prov_path)
    _check_targets(targets, frozenset(), set(), overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    provenance = {
        "tool": "unmix", "version": __version__, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": "<in memory>", "input_sha256": digest.hexdigest(), "method": method,
        "configuration": _json_safe(plan.configuration()), "records": [{"info": _json_safe(result.info)}],
        "dataquality": DATAQUALITY, "damage": [],
        "products": {name: sorted({tr.stats.location for tr in st}) for name, st in sources.items()},
    }
    now = time.perf_counter()
    return _commit(targets, products, prov_path, pending, set(), provenance, fmt, (t_start, now, now))


def export_checked(result, folder: str | Path, stem: str = "separated", fmt: str = "MSEED", overwrite: bool = False,
                   dtype: str = "float64", locations: dict[str, str] | str | None = None) -> list[Path]:
    """:func:`export_result` of a :class:`~unmix.separation.SeparationResult` of Streams (else a ConfigError);
    :func:`unmix.api.export`."""
    from unmix.separation.result import SeparationResult

    if not isinstance(result, SeparationResult):
        raise ConfigError(f"result must be a SeparationResult, got {type(result).__name__}")
    if not all(isinstance(st, Stream) for st in (result.background, *result.removed.values())):
        raise ConfigError("the result's background and removed sources must be ObsPy Streams")
    return [Path(p) for p in export_result(result, folder, stem, fmt, overwrite, dtype, locations)]


class _ExportModule(types.ModuleType):
    """``unmix.export`` is both this module and the API function :func:`unmix.api.export`: importing the module
    ``unmix.export`` sets the package attribute of that name, so the module itself is made callable."""

    def __call__(self, result, folder: str | Path, **options) -> list[Path]:
        return export_checked(result, folder, **options)


sys.modules[__name__].__class__ = _ExportModule

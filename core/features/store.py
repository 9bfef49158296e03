"""The feature store: windows × scales × features with times, provenance and configuration, grown input by input.

A store is the file ``X.h5`` (a small index) and the folder ``X.h5.segments/`` of its segment files, one per input
(layout, reasons and checks: :mod:`unmix.features.segments`). Adding inputs writes one segment each (under a
temporary name, then renamed; named by the input's digest and the settings' digest) and then a new index over the
old one in one rename: nothing already in the store is rewritten, so adding a sol costs about what computing it
costs, whatever the store's size. An interrupted run leaves the old index valid and its finished segments reusable
by the next run. One run at a time writes a store (``STORE.lock``); a full disk leaves the old store and no
temporary file. A store holds one sampling rate. Single-file stores of format 1 are read as they are and converted
without copying when an input is added. Reading validates shapes, dtypes and declared sizes, and refuses non-finite
features, with one line naming the store (and the segment).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from obspy import Stream

from unmix.errors import ConfigError, DataError, InputFileError, UnmixError
from unmix.features.config import FEATURE_FORMAT, FEATURE_FORMAT_V1, SEGMENT_FORMAT, FeatureConfig
from unmix.features.distributed import run_on_dask
from unmix.features.segments import (
    MOVE_TOGETHER,
    Segment,
    check_body,
    check_segment,
    legacy_id,
    link_v1,
    parse_table,
    pending,
    remove_unreferenced,
    segment_meta,
    segment_name,
    segments_dir,
    write_index,
    write_segment,
)
from unmix.h5safe import H5_ERRORS, DiskFullError, check_dataset, damaged, h5_atomic_writer, json_attr
from unmix.hashing import file_sha256
from unmix.jobs import NO_CANCEL, Cancelled, CancelToken, Progress, no_progress, sub_progress
from unmix.lock import store_lock
from unmix.scattering import DESCRIPTION_DTYPE, build_description

log = logging.getLogger(__name__)


@dataclass
class FileFeatures:
    """One input's features and provenance: what :func:`features_for_file` returns and a segment holds.

    ``path``, ``sha256`` and ``size`` name the input (``path`` "" for records held only in memory); ``records`` and
    ``notes`` are its provenance in the store; ``features`` and ``intervals`` hold per scale one array per record
    with windows, ``record_index`` per record the record's index of each of its windows. A dataclass of lists, dicts
    and arrays: Dask moves it between processes as it is.
    """

    path: str
    sha256: str
    size: int
    features: dict[int, list[np.ndarray]]
    intervals: dict[int, list[np.ndarray]]
    records: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    record_index: list[np.ndarray] = field(default_factory=list)
    glitch: dict[int, list[np.ndarray]] = field(default_factory=dict)  # per scale (n, C, 2) glitch and record power

    @classmethod
    def empty(cls, path: str | Path, config: FeatureConfig) -> FileFeatures:
        """No windows yet (:func:`add_records` fills it); the digest and size of ``path`` when it is a file."""
        return cls(str(path), file_sha256(path) if path else "", os.path.getsize(path) if path else 0,
                   {s: [] for s in config.scales}, {s: [] for s in config.scales},
                   glitch={s: [] for s in config.scales} if config.glitch_evidence else {})

    @property
    def n_windows(self) -> int:
        return sum(len(r) for r in self.record_index)

    def entry(self) -> dict:
        """The input's entry in a store's ``inputs``: path, sha256, size, records and notes."""
        return {"path": self.path, "sha256": self.sha256, "size": self.size, "records": self.records,
                "notes": self.notes}


def features_for_file(path: str, config_dict: dict, device: str = "auto", token: CancelToken = NO_CANCEL,
                      progress: Progress = no_progress) -> FileFeatures:
    """Compute one input file's features (runs in-process or on a Dask worker); returns arrays and provenance."""
    from unmix.allocator import tune_allocator
    from unmix.features.extract import make_engine
    from unmix.io import read_records

    tune_allocator()  # on a Dask worker process too

    config_dict = dict(config_dict)
    allow_damaged = bool(config_dict.pop("allow_damaged", False))  # how to read, not part of the features' settings
    config = FeatureConfig.from_dict(config_dict)
    records = read_records(path, gap_policy=config.gap_policy, max_fill=config.max_fill,
                           resample_to=config.sampling_rate, allow_damaged=allow_damaged)
    out = FileFeatures.empty(path, config)
    out.notes += [f"damaged input used (--allow-damaged): {d}" for d in dict.fromkeys(d for r in records
                                                                                      for d in r.damage)]
    reasons = add_records(out, records, config, make_engine(config, device), path, token, progress)
    if not out.records:
        raise DataError("no windows: " + ("; ".join(dict.fromkeys(reasons)) or "no data"), path)
    rates = {r["sampling_rate"] for r in out.records}
    if len(rates) > 1:
        raise DataError(f"records at different sampling rates {sorted(rates)}; set a sampling rate to resample", path)
    return out


def segment_for_file(path: str, config_dict: dict, segment: str, device: str = "auto",
                     token: CancelToken = NO_CANCEL) -> dict:
    """:func:`features_for_file`, written as the segment file ``segment`` where it ran (a worker of a local Dask
    cluster, which sees the store's folder): only the summary travels back (:func:`_summary`). A worker that stops
    after writing leaves a finished segment, which the next run reuses."""
    result = features_for_file(path, config_dict, device, token)
    config = FeatureConfig.from_dict({k: v for k, v in config_dict.items() if k != "allow_damaged"})
    Path(segment).parent.mkdir(parents=True, exist_ok=True)
    write_segment(result, config, Path(segment))
    return _summary(result)


def _summary(result: FileFeatures) -> dict:
    """What the store's builder needs of a computed input once its segment is written."""
    return {"path": result.path, "notes": list(result.notes), "n_windows": result.n_windows}


def add_records(out: FileFeatures, records: list, config: FeatureConfig, engine, where: str | Path | None,
                token: CancelToken = NO_CANCEL, progress: Progress = no_progress) -> list[str]:
    """Append the windows of ``records`` to ``out``; returns why records gave none (they are skipped with a note)."""
    from unmix.features.extract import record_features
    from unmix.io import remove_response, rotate_to_zne

    reasons: list[str] = []
    for rec in records:
        raw = rec
        if config.response:
            rec = remove_response(rec, config.response, output=config.response_output)
            if config.rotate:
                rec = rotate_to_zne(rec, config.response)
        comps = rec.components
        if not set(config.components) <= set(comps):
            out.notes.append(f"{rec.key} {rec.starttime}–{rec.endtime}: has components {comps}, needs "
                                f"{config.components}; skipped")
            reasons.append(_component_reason(comps, config.components))
            continue
        rec = rec.copy()
        rec.stream.traces = [next(tr for tr in rec.stream if tr.stats.channel[-1] == c) for c in config.components]
        scattering = sub_progress(progress, 0.0, 0.8) if config.glitch_evidence else progress
        wf = record_features(rec, config, engine=engine, token=token, progress=scattering)
        if wf.n_windows == 0:
            out.notes.append(f"{rec.key} {rec.starttime}–{rec.endtime}: {rec.npts} samples, shorter than one "
                                f"window of {config.window}; skipped")
            reasons.append(f"{rec.npts} samples ({rec.npts / rec.sampling_rate:.0f} s), shorter than one window of "
                           f"{config.window} samples ({config.window / rec.sampling_rate:.0f} s)")
            continue
        if not all(np.isfinite(wf.features[s]).all() for s in config.scales):
            raise DataError(f"{rec.key}: non-finite (NaN or infinite) features; are there NaN or infinite samples?",
                            where)
        out.records.append({"key": rec.key, "channels": wf.channels, "start": str(rec.starttime),
                            "end": str(rec.endtime), "sampling_rate": rec.sampling_rate, "npts": rec.npts,
                            "n_windows": wf.n_windows, "notes": rec.notes, "damage": rec.damage})
        for s in config.scales:
            out.features[s].append(wf.features[s])
            out.intervals[s].append(wf.intervals[s])
        if config.glitch_evidence:
            energies = _glitch_energies(raw, config, wf.intervals, token)
            for s in config.scales:
                out.glitch[s].append(energies[s])
            progress(1.0, "glitch evidence")
        out.record_index.append(np.full(wf.n_windows, len(out.records) - 1, np.int32))
    return reasons


def _glitch_energies(raw, config: FeatureConfig, intervals: dict[int, np.ndarray], token: CancelToken
                     ) -> dict[int, np.ndarray]:
    """The glitch evidence of one record's windows (:mod:`unmix.features.glitch_evidence`), from the record as read:
    its traces of the features' components, or (rotated features) its own components in order."""
    from unmix.features.glitch_evidence import record_energies

    letters = config.components if set(config.components) <= set(raw.components) else sorted(raw.components)
    traces = [next(tr for tr in raw.stream if tr.stats.channel[-1] == c) for c in letters]
    if len(traces) != len(config.components):
        raise DataError(f"{raw.key}: glitch evidence needs {len(config.components)} components as read, got "
                        f"{raw.components}", raw.sources_label)
    return record_energies(Stream(traces), intervals, config.block, config.response, token)


def _component_reason(have: str, want: str) -> str:
    only = "only component" + ("s " if len(have) > 1 else " ")
    return f"{only}{have} (needs {want}); pass --components {have}"



class NoFeaturesError(DataError):
    """No input gave features, so nothing was written (each failure was reported through ``on_error``)."""

    def __init__(self, failures: list[str]) -> None:
        more = f" (and {len(failures) - 1} more input(s) failed)" if len(failures) > 1 else ""
        super().__init__(f"{failures[0]}{more}; nothing written")
        self.failures = failures


class FeatureStore:
    """Read access to a feature store: its index and segment files, or a single format-1 file.

    The index is validated when opened and every segment file must exist; a segment is checked the first time it is
    read (:func:`unmix.features.segments.check_segment`); features are checked finite when read. Segment files are
    opened for each read and closed again: many segments hold no file handles, and a store grown by another run
    meanwhile is read as this one was opened.
    """

    #: The segment table; None for an in-memory subclass (:class:`unmix.FeatureSet`), which reads through ``_read``.
    _segments: list[Segment] | None = None

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputFileError("no such feature store", self.path)
        if not h5py.is_hdf5(self.path):
            raise InputFileError("not a feature store (not an HDF5 file)", self.path)
        self._checked: set[str] = set()
        try:
            with h5py.File(self.path, "r") as f:
                self._open(f)
        except UnmixError:
            raise
        except H5_ERRORS as exc:
            raise damaged(exc, self.path, "feature store") from None

    def _open(self, f: h5py.File) -> None:
        what = "feature store"
        fmt = f.attrs.get("format")
        if fmt not in (FEATURE_FORMAT, FEATURE_FORMAT_V1):
            raise InputFileError(f"not an Unmix feature store (format {fmt!r})", self.path)
        try:
            self.config = FeatureConfig.from_dict(json_attr(f, "config", dict, self.path, what))
        except (TypeError, KeyError, ValueError, ConfigError) as exc:
            raise InputFileError(f"damaged feature store: bad feature configuration ({exc})", self.path) from None
        self.config_hash = str(f.attrs.get("config_hash", ""))
        self.inputs = json_attr(f, "inputs", list, self.path, what)
        if not all(isinstance(i, dict) and isinstance(i.get("records", []), list) for i in self.inputs):
            raise InputFileError("damaged feature store: attribute 'inputs' is not a list of inputs", self.path)
        K = len(build_description(self.config.J, self.config.Q, self.config.model))
        self.description = check_dataset(f, "description", (K,), "V", self.path, what)[()].astype(DESCRIPTION_DTYPE)
        self._v1: tuple[int, int] | None = None
        if fmt == FEATURE_FORMAT_V1:
            n = check_body(f, None, len(self.inputs), self.config, K, self.path, what)
            st = os.stat(self.path)
            self._v1 = (st.st_dev, st.st_ino)
            self._segments = [Segment("", n, 0, len(self.inputs), legacy_id(f), 0)]
            self._checked.add("")
        else:
            self._segments = parse_table(json_attr(f, "segments", list, self.path, what), len(self.inputs),
                                         self.path)
            folder = segments_dir(self.path)
            for seg in self._segments:
                if not (folder / seg.name).is_file():
                    raise InputFileError(f"segment {folder.name}/{seg.name} is missing ({MOVE_TOGETHER})", self.path)
        self._starts = np.array([seg.start for seg in self._segments], np.int64)
        self.n_windows = int(sum(seg.n_windows for seg in self._segments))

    @property
    def scales(self) -> tuple[int, ...]:
        return self.config.scales

    @property
    def is_single_file(self) -> bool:
        """A format-1 store (one file holding everything; appending to it converts it, see the module notes)."""
        return getattr(self, "_v1", None) is not None

    def files(self) -> list[Path]:
        """Every file of the store: the index, then its segment files (a format-1 store is one file)."""
        if self._segments is None:
            return []
        if self.is_single_file:
            return [self.path]
        return [self.path] + [segments_dir(self.path) / seg.name for seg in self._segments]

    def _segment_file(self, seg: Segment) -> Path:
        if not self.is_single_file:
            return segments_dir(self.path) / seg.name
        with contextlib.suppress(OSError):  # converted by a run since it was opened: now its first segment
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) != self._v1:
                moved = segments_dir(self.path) / f"{seg.id}.h5"
                st = os.stat(moved)
                if (st.st_dev, st.st_ino) == self._v1:
                    return moved
        return self.path

    def _read_segment(self, seg: Segment, name: str, lo: int, hi: int, out: np.ndarray) -> None:
        """Windows ``lo:hi`` of the segment's dataset ``name`` into ``out`` (checked on its first read)."""
        file = self._segment_file(seg)
        if seg.name not in self._checked:
            check_segment(file, seg, self.path, self.config, self.config_hash, self.inputs)
            self._checked.add(seg.name)
        try:
            with h5py.File(file, "r") as f:
                f[name].read_direct(out, np.s_[lo:hi])
        except H5_ERRORS as exc:
            where = "" if self.is_single_file else f" segment {segments_dir(self.path).name}/{seg.name}"
            raise damaged(exc, self.path, "feature store" + where) from None
        if name == "windows/input":
            out += seg.first_input

    def _read_span(self, name: str, start: int, stop: int) -> np.ndarray:
        """Windows ``start:stop`` of dataset ``name``, read from the segments that hold them into one array."""
        if self._segments is None:
            return self._read(name)[start:stop]
        out = self._empty(name, max(0, stop - start))
        i = max(0, int(np.searchsorted(self._starts, start, side="right")) - 1)
        for seg in self._segments[i:]:
            if seg.start >= stop:
                break
            lo, hi = max(start, seg.start) - seg.start, min(stop, seg.start + seg.n_windows) - seg.start
            if hi > lo:
                self._read_segment(seg, name, lo, hi, out[seg.start + lo - start:seg.start + hi - start])
        return out

    def _empty(self, name: str, n: int) -> np.ndarray:
        if name.startswith("features/"):
            return np.empty((n, len(self.config.components), len(self.description), 2), np.float32)
        if name.startswith("glitch/"):
            return np.empty((n, len(self.config.components), 2), np.float32)
        return np.empty(n, np.int32) if name.startswith("windows/") else np.empty((n, 2))

    def _read(self, name: str) -> np.ndarray:
        return self._read_span(name, 0, self.n_windows)

    def features(self, scale: int, complex_values: bool = False) -> np.ndarray:
        """(N, C, K, 2) float32 real/imag parts, or (N, C, K) complex64; refuses NaN or infinite features.

        Loads every window: for large stores read pieces with :meth:`read_features`.
        """
        a = self.read_features(scale)
        return a[..., 0] + 1j * a[..., 1] if complex_values else a

    #: Windows per read that suit the storage layout (a multiple of the HDF5 chunk length).
    chunk_windows = 4096

    def read_features(self, scale: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Windows ``start:stop`` of ``scale`` as (n, C, K, 2) float32; refuses NaN or infinite features."""
        if int(scale) not in self.scales:
            raise ConfigError(f"scale {scale} not in this store (scales {', '.join(map(str, self.scales))})",
                              self.path)
        start, stop, _ = slice(start, stop).indices(self.n_windows)
        a = self._read_span(f"features/{int(scale)}", start, max(start, stop))
        return self._finite(a.astype(np.float32, copy=False), scale, start)

    def read_rows(self, scale: int, rows: np.ndarray) -> np.ndarray:
        """Windows ``rows`` (any order, repeats allowed) of ``scale`` as (n, C, K, 2) float32.

        Reads the span the rows cover piece by piece (at most :attr:`chunk_windows` at a time, from the first to the
        last row asked for in each block), so memory follows the number of rows asked for, not the span.
        """
        rows = np.asarray(rows, np.int64)
        if len(rows) and rows[0] >= 0 and rows[-1] < self.n_windows and (np.diff(rows) == 1).all():  # a run: one read
            return self.read_features(scale, int(rows[0]), int(rows[-1]) + 1)
        C, K = len(self.config.components), len(self.description)
        out = np.empty((len(rows), C, K, 2), np.float32)
        if not len(rows):
            return out
        if rows.min() < 0 or rows.max() >= self.n_windows:
            raise IndexError(f"window index outside 0..{self.n_windows - 1}")
        order = np.argsort(rows, kind="stable")
        srt = rows[order]
        for a in range(int(srt[0]) // self.chunk_windows * self.chunk_windows, int(srt[-1]) + 1,
                       self.chunk_windows):
            lo, hi = np.searchsorted(srt, [a, a + self.chunk_windows])
            if hi > lo:  # only the span the rows cover, at most one chunk_windows block
                first = int(srt[lo])
                piece = self.read_features(scale, first, int(srt[hi - 1]) + 1)
                out[order[lo:hi]] = piece[srt[lo:hi] - first]
        return out

    def _finite(self, a: np.ndarray, scale: int, start: int) -> np.ndarray:
        finite = np.isfinite(a).all(axis=tuple(range(1, a.ndim)))
        if not finite.all():
            raise DataError(f"{int((~finite).sum())} window(s) with NaN or infinite features at scale {scale} "
                            f"(first: window {start + int(np.flatnonzero(~finite)[0])}); rebuild the store",
                            self.path)
        return a

    def intervals(self, scale: int) -> np.ndarray:
        """(N, 2) UTC start/end of each window's sub-window at ``scale`` (POSIX seconds)."""
        return self._read(f"intervals/{int(scale)}")

    def lmst(self, scale: int) -> np.ndarray:
        return self._read(f"lmst/{int(scale)}")

    def glitch_energy(self, scale: int, start: int = 0, stop: int | None = None) -> np.ndarray | None:
        """(n, C, 2) mean power at ``scale`` of what the instrument's glitch model explains and of the record, per
        window ``start:stop`` and component (:mod:`unmix.features.glitch_evidence`, whose ``share`` makes the share);
        None for a store made without glitch evidence. Negative or non-finite values are refused, naming the store."""
        if not self.config.glitch_evidence:
            return None
        a = self._read_span(f"glitch/{int(scale)}", start, self.n_windows if stop is None else stop)
        if not np.all((a >= 0.0) & np.isfinite(a)):
            raise InputFileError(f"damaged feature store: negative or non-finite glitch evidence at scale {scale}",
                                 self.path)
        return a

    def windows(self) -> dict[str, np.ndarray]:
        return {k: self._read(f"windows/{k}") for k in ("input", "record")}

    @property
    def sampling_rate(self) -> float | None:
        """The store's one sampling rate (None for an empty store)."""
        return _rate(self.inputs)


def _rate(inputs: list[dict]) -> float | None:
    for inp in inputs:
        for rec in inp.get("records", []):
            if isinstance(rec, dict) and rec.get("sampling_rate"):
                return float(rec["sampling_rate"])
    return None


def _read_existing(path: Path, config: FeatureConfig) -> FeatureStore | None:
    if not path.exists():
        return None
    store = FeatureStore(path)
    if store.config_hash != config.digest():
        mine, asked = store.config.to_dict(), config.to_dict()
        differ = [f"{k} {mine[k]!r}, now {asked[k]!r}" for k in mine if mine[k] != asked.get(k)]
        hint = (" (--no-glitch-evidence grows a store made without it)"
                if store.config.glitch_evidence != config.glitch_evidence else "")
        raise ConfigError(f"was made with a different feature configuration ({'; '.join(differ) or 'hash'}); use "
                          f"another output path or the same options{hint}", path)
    return store


def _names(store: FeatureStore | None) -> set[str]:
    """The segment file names a store's index holds (none for a format-1 store)."""
    if store is None or store.is_single_file:
        return set()
    return {seg.name for seg in store._segments}


def _shard_rate(meta: dict) -> float:
    return float(meta["records"][0]["sampling_rate"])


def _select_shards(shards: list[Path], metas: dict[Path, dict], existing: FeatureStore | None,
                   failures: list[str], on_error) -> list[Path]:
    """Segments to add: not yet in the store (re-read now), at the store's one sampling rate (in input order)."""
    done = {i.get("sha256") for i in existing.inputs} if existing else set()
    rate = existing.sampling_rate if existing else None
    keep = []
    for sh in shards:
        meta = metas[sh]
        if meta["sha256"] in done:
            continue
        r = _shard_rate(meta)
        if rate is not None and abs(r - rate) > 1e-9 * rate:
            msg = (f"{meta['path']}: sampled at {r:g} Hz but the store holds {rate:g} Hz; a store has one rate "
                   "(use another store, or --sampling-rate to resample)")
            failures.append(msg)
            if on_error:
                on_error(msg)
            continue
        rate = r
        done.add(meta["sha256"])
        keep.append(sh)
    return keep


def _consolidate(out: Path, config: FeatureConfig, existing: FeatureStore | None, shards: list[Path],
                 metas: dict[Path, dict]) -> None:
    """Add the finished segments ``shards`` to the store ``out`` (a new store when ``existing`` is None).

    Segments written elsewhere are moved into the segments folder; a format-1 store becomes the first segment
    (:func:`~unmix.features.segments.link_v1`); then the index is written atomically and segment files it does not
    name are removed. Nothing already in the store is rewritten.
    """
    folder = segments_dir(out)
    inputs = list(existing.inputs) if existing else []
    table = [seg.entry() for seg in existing._segments] if existing else []
    converted = existing is not None and existing.is_single_file
    if converted:
        seg = existing._segments[0]
        table = [{**seg.entry(), "name": link_v1(out, seg.id)}] if inputs else []
    for sh in shards:
        meta = metas[sh]
        name = sh.name
        if sh.parent.resolve() != folder.resolve():
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{meta['segment_id']}.h5"
            os.replace(sh, folder / name)
        table.append({"name": name, "n_windows": meta["n_windows"], "first_input": len(inputs),
                      "id": meta["segment_id"]})
        inputs.append({k: v for k, v in meta.items() if k not in ("n_windows", "segment_id")})
    write_index(out, config, inputs, table)
    if converted:
        log.warning("%s: converted to the growing store format: this file is now the store's index and its earlier "
                    "windows stay, unchanged, in %s/%s (a hard link, not a copy); a store is the file and its "
                    ".segments folder", out, folder.name, table[0]["name"] if table else "")
    remove_unreferenced(out, {e["name"] for e in table})


_write_shard = write_segment  # the names unmix.featureset uses
_shard_meta = segment_meta


def build_store(
    inputs: Iterable[str | Path],
    out: str | Path,
    config: FeatureConfig | None = None,
    device: str = "auto",
    workers: int = 0,
    scheduler: str | None = None,
    progress: Progress = no_progress,
    token: CancelToken = NO_CANCEL,
    on_error=None,
    allow_damaged: bool = False,
) -> dict:
    """Compute features of every input not yet in ``out`` and add them to it (a segment each, then the index).

    ``allow_damaged``: damaged inputs are used for what they hold (:func:`unmix.io.read_file`); their damage becomes
    notes of the input in the store.

    ``workers > 0`` starts a local Dask cluster of that many processes; ``scheduler`` uses an existing
    dask.distributed cluster; otherwise everything runs in this process. Returns a small report. Only one run at a
    time may write ``out`` (:class:`unmix.lock.StoreBusyError` otherwise). When no input gives features and
    there is no store yet, nothing is written and :class:`NoFeaturesError` is raised.
    """
    from unmix.io import expand_inputs

    config = config or FeatureConfig()
    out = Path(out)
    _read_existing(out, config)  # refuse another configuration before taking the lock
    files = [p.resolve() for p in expand_inputs(inputs)]
    with store_lock(out):
        return _build_locked(files, out, config, device, workers, scheduler, progress, token, on_error,
                             allow_damaged)


def _plan(files: list[Path], out: Path, existing: FeatureStore | None, config: FeatureConfig,
          token: CancelToken) -> tuple[list[tuple[Path, Path]], list[str], list[Path], dict[Path, dict]]:
    """Inputs to compute (with their segment paths), inputs skipped, and finished segments of earlier runs."""
    done = {i.get("sha256") for i in existing.inputs} if existing else set()
    taken = _names(existing)
    folder = segments_dir(out)
    todo, skipped, segments, metas = [], [], [], {}
    for p in files:
        digest = file_sha256(p, token)
        seg = folder / segment_name(digest, config)
        if seg.name in taken:  # never write over a segment of the store
            seg = seg.with_name(f"{seg.stem}-{secrets.token_hex(4)}.h5")
        meta = segment_meta(seg, config) if digest not in done and seg.exists() else None
        if digest in done:
            log.info("%s: already in %s, skipped", p, out.name)
            skipped.append(str(p))
        elif meta is not None and meta["sha256"] == digest:
            log.info("%s: finished segment of an earlier run reused (%s)", p, seg.name)
            segments.append(seg)
            metas[seg] = meta
            skipped.append(str(p))
        else:
            todo.append((p, seg))
    return todo, skipped, segments, metas


def _build_locked(files: list[Path], out: Path, config: FeatureConfig, device: str, workers: int,
                  scheduler: str | None, progress: Progress, token: CancelToken, on_error,
                  allow_damaged: bool = False) -> dict:
    existing = _read_existing(out, config)
    folder = segments_dir(out)
    todo, skipped, segments, metas = _plan(files, out, existing, config, token)
    failures: list[str] = []
    notes: list[str] = []
    cfg = config.to_dict() | ({"allow_damaged": True} if allow_damaged else {})

    def accept(result: FileFeatures | dict, segment: Path) -> None:
        """A computed input: its features (written here) or the summary of a worker that wrote its segment."""
        if isinstance(result, FileFeatures):
            folder.mkdir(parents=True, exist_ok=True)
            write_segment(result, config, segment)
            result = _summary(result)
        meta = segment_meta(segment, config)
        if meta is None:
            raise InputFileError("the segment just written cannot be read back", segment)
        segments.append(segment)
        metas[segment] = meta
        notes.extend(f"{Path(result['path']).name}: {n}" for n in result["notes"])
        log.info("%s: %d window(s) computed", result["path"], result["n_windows"])
        for n in result["notes"]:
            log.debug("%s: %s", result["path"], n)

    try:
        try:
            _compute(todo, cfg, device, workers, scheduler, accept, failures, sub_progress(progress, 0.0, 0.9),
                     token, on_error)
        except DiskFullError as exc:  # name the store, which is kept as it was
            raise DiskFullError(exc.problem, out) from None
        token.check()
        order = {str(p): i for i, p in enumerate(files)}
        segments = sorted(set(segments), key=lambda sh: order.get(metas[sh]["path"], len(order)))
        existing = _read_existing(out, config)  # re-read: the store may have changed while computing
        new = _select_shards(segments, metas, existing, failures, on_error)
        if not new and existing is None:
            if failures:
                raise NoFeaturesError(failures)
            raise DataError("no input files given; nothing written", out)
        if new:
            progress(0.95, "adding to the store")
            _consolidate(out, config, existing, new, metas)
    except (UnmixError, Cancelled) as exc:
        left = pending(out, _names(existing))
        if folder.is_dir() and not any(folder.glob("*.h5")):
            shutil.rmtree(folder, ignore_errors=True)
        elif isinstance(exc, DiskFullError) and left:
            raise DiskFullError(f"{exc.problem}; the finished segments not yet in the store are kept in "
                                f"{folder.name}/ for the next run", exc.path) from None
        raise
    store = FeatureStore(out)
    remove_unreferenced(out, _names(store))
    progress(1.0, "done")
    return {"store": str(out), "n_windows": store.n_windows, "inputs": len(store.inputs), "computed": len(todo)
            - len(failures), "skipped": skipped, "failures": failures, "notes": notes}


def _compute(todo: list[tuple[Path, Path]], cfg: dict, device: str, workers: int, scheduler: str | None, accept,
             failures: list[str], step: Progress, token: CancelToken, on_error) -> None:
    """Features of every ``(input, segment)`` in ``todo``, handed to ``accept``; failures are collected."""
    if todo and scheduler:
        run_on_dask(features_for_file, todo, [(str(p), cfg) for p, _ in todo], device, workers, scheduler, accept,
                    failures, step, token, on_error)
        return
    if todo and workers > 0:
        run_on_dask(segment_for_file, todo, [(str(p), cfg, str(seg)) for p, seg in todo], device, workers, None,
                    accept, failures, step, token, on_error)
        return
    for i, (p, segment) in enumerate(todo):
        token.check()
        try:
            child = sub_progress(step, i / len(todo), (i + 1) / len(todo))
            accept(features_for_file(str(p), cfg, device, token, child), segment)
        except UnmixError as exc:
            if isinstance(exc, DiskFullError):
                raise
            failures.append(exc.message)
            if on_error:
                on_error(exc.message)
        step((i + 1) / len(todo), p.name)


def compact_store(path: str | Path, progress: Progress = no_progress, token: CancelToken = NO_CANCEL) -> dict:
    """Merge the segments of the store at ``path`` into one segment (under the store's lock).

    Worth it after many small appends (fewer files to open). Copies every window once: the new segment is written
    under a temporary name, then the index names it alone, then the old segments are removed; an interruption leaves
    the store as it was. Returns ``{"store", "segments_before", "segments_after", "n_windows"}``.
    """
    path = Path(path)
    with store_lock(path):
        store = FeatureStore(path)
        before = 0 if store.is_single_file else len(store._segments)
        if before > 1:
            folder = segments_dir(path)
            ident = secrets.token_hex(8)
            name = f"compact-{ident}.h5"
            _write_merged(store, folder / name, ident, progress, token)
            write_index(path, store.config, store.inputs, [{"name": name, "n_windows": store.n_windows,
                                                            "first_input": 0, "id": ident}])
            remove_unreferenced(path, {name})
    progress(1.0, "done")
    return {"store": str(path), "segments_before": before, "segments_after": min(before, 1),
            "n_windows": store.n_windows}


def _write_merged(store: FeatureStore, target: Path, ident: str, progress: Progress, token: CancelToken) -> None:
    """One segment holding every window of ``store`` (read and written :attr:`~FeatureStore.chunk_windows` at a
    time)."""
    config, N = store.config, store.n_windows
    C, K = len(config.components), len(store.description)
    chunk = max(1, min(N, 512))
    names = ["windows/input", "windows/record"] + [f"{kind}/{s}" for s in config.scales
                                                  for kind in config.scale_datasets()]
    with h5_atomic_writer(target, "feature store segment") as g:
        g.attrs["format"] = SEGMENT_FORMAT
        g.attrs["segment_id"] = ident
        g.attrs["config_hash"] = config.digest()
        g.attrs["inputs"] = json.dumps(store.inputs)
        for s in config.scales:
            g.create_dataset(f"features/{s}", (N, C, K, 2), np.float32, chunks=(chunk, C, K, 2), compression="lzf")
            g.create_dataset(f"intervals/{s}", (N, 2), np.float64, chunks=(chunk, 2))
            g.create_dataset(f"lmst/{s}", (N, 2), np.float64, chunks=(chunk, 2))
            if config.glitch_evidence:
                g.create_dataset(f"glitch/{s}", (N, C, 2), np.float32, chunks=(chunk, C, 2))
        g.create_dataset("windows/input", (N,), np.int32)
        g.create_dataset("windows/record", (N,), np.int32)
        step = store.chunk_windows
        for a in range(0, N, step):
            token.check()
            for name in names:
                g[name][a:a + step] = store._read_span(name, a, min(a + step, N))
            progress(min(a + step, N) / N * 0.95, "merging segments")

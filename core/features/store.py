"""The feature store: one HDF5 file of windows × scales × features with times, provenance and configuration.

Writing is resumable and atomic: every input's features first go to a shard file (written under a temporary name,
then renamed) in ``STORE.parts/``, named by the input's digest and the feature settings' digest; shards and the
existing store are then consolidated into a new file that replaces the store in one rename. An interrupted run
leaves the old store intact and its finished shards reusable. One run at a time writes a store (``STORE.lock``);
a full disk leaves the old store and no temporary file. A store holds one sampling rate.
Reading validates shapes, dtypes and declared sizes, and refuses non-finite features, with one line naming the file.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from unmix import __version__
from unmix.errors import ConfigError, DataError, InputFileError, UnmixError
from unmix.features.config import FEATURE_FORMAT, FeatureConfig
from unmix.features.distributed import run_on_dask
from unmix.h5safe import H5_ERRORS, DiskFullError, check_dataset, damaged, h5_atomic_writer, json_attr
from unmix.hashing import file_sha256
from unmix.jobs import NO_CANCEL, Cancelled, CancelToken, Progress, no_progress, sub_progress
from unmix.lock import store_lock
from unmix.mars_time import sol_float
from unmix.scattering import DESCRIPTION_DTYPE, build_description

log = logging.getLogger(__name__)


@dataclass
class FileFeatures:
    """One input's features and provenance: what :func:`features_for_file` returns and a shard holds.

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

    @classmethod
    def empty(cls, path: str | Path, config: FeatureConfig) -> FileFeatures:
        """No windows yet (:func:`add_records` fills it); the digest and size of ``path`` when it is a file."""
        return cls(str(path), file_sha256(path) if path else "", os.path.getsize(path) if path else 0,
                   {s: [] for s in config.scales}, {s: [] for s in config.scales})

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


def add_records(out: FileFeatures, records: list, config: FeatureConfig, engine, where: str | Path | None,
                token: CancelToken = NO_CANCEL, progress: Progress = no_progress) -> list[str]:
    """Append the windows of ``records`` to ``out``; returns why records gave none (they are skipped with a note)."""
    from unmix.features.extract import record_features
    from unmix.io import remove_response, rotate_to_zne

    reasons: list[str] = []
    for rec in records:
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
        wf = record_features(rec, config, engine=engine, token=token, progress=progress)
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
        out.record_index.append(np.full(wf.n_windows, len(out.records) - 1, np.int32))
    return reasons


def _component_reason(have: str, want: str) -> str:
    only = "only component" + ("s " if len(have) > 1 else " ")
    return f"{only}{have} (needs {want}); pass --components {have}"


def _as_real(z: np.ndarray) -> np.ndarray:
    return np.stack([z.real, z.imag], axis=-1).astype(np.float32)


def _write_shard(result: FileFeatures, config: FeatureConfig, path: Path) -> None:
    with h5_atomic_writer(path, "feature shard") as f:
        f.attrs["meta"] = json.dumps(result.entry())
        f.attrs["config_hash"] = config.digest()
        n = result.n_windows
        f["record_index"] = np.concatenate(result.record_index) if n else np.zeros(0, np.int32)
        C, K = len(config.components), len(build_description(config.J, config.Q, config.model))
        for s in config.scales:
            feats = result.features[s]
            f[f"features/{s}"] = _as_real(np.concatenate(feats)) if n else np.zeros((0, C, K, 2), np.float32)
            f[f"intervals/{s}"] = np.concatenate(result.intervals[s]) if n else np.zeros((0, 2))


class NoFeaturesError(DataError):
    """No input gave features, so nothing was written (each failure was reported through ``on_error``)."""

    def __init__(self, failures: list[str]) -> None:
        more = f" (and {len(failures) - 1} more input(s) failed)" if len(failures) > 1 else ""
        super().__init__(f"{failures[0]}{more}; nothing written")
        self.failures = failures


class FeatureStore:
    """Read access to a consolidated store (validated when opened; features checked finite when read)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputFileError("no such feature store", self.path)
        if not h5py.is_hdf5(self.path):
            raise InputFileError("not a feature store (not an HDF5 file)", self.path)
        try:
            with h5py.File(self.path, "r") as f:
                self._open(f)
        except UnmixError:
            raise
        except H5_ERRORS as exc:
            raise damaged(exc, self.path, "feature store") from None

    def _open(self, f: h5py.File) -> None:
        what = "feature store"
        if f.attrs.get("format") != FEATURE_FORMAT:
            raise InputFileError(f"not an Unmix feature store (format {f.attrs.get('format')!r})", self.path)
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
        n = check_dataset(f, "windows/input", (None,), "iu", self.path, what).shape[0]
        shapes = {"windows/record": ((n,), "iu")}
        for s in self.config.scales:
            shapes[f"features/{s}"] = ((n, len(self.config.components), len(self.description), 2), "f")
            shapes[f"intervals/{s}"] = ((n, 2), "f")
            shapes[f"lmst/{s}"] = ((n, 2), "f")
        for name, (shape, kind) in shapes.items():
            check_dataset(f, name, shape, kind, self.path, what)
        win_in, win_rec = f["windows/input"][()], f["windows/record"][()]
        if n and (win_in.min() < 0 or win_in.max() >= len(self.inputs) or win_rec.min() < 0):
            raise InputFileError("damaged feature store: window indices point outside its inputs", self.path)
        self.n_windows = int(n)

    @property
    def scales(self) -> tuple[int, ...]:
        return self.config.scales

    def _read(self, name: str) -> np.ndarray:
        try:
            with h5py.File(self.path, "r") as f:
                return f[name][()]
        except H5_ERRORS as exc:
            raise damaged(exc, self.path, "feature store") from None

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
        try:
            with h5py.File(self.path, "r") as f:
                a = f[f"features/{int(scale)}"][start:max(start, stop)]
        except H5_ERRORS as exc:
            raise damaged(exc, self.path, "feature store") from None
        return self._finite(a.astype(np.float32, copy=False), scale, start)

    def read_rows(self, scale: int, rows: np.ndarray) -> np.ndarray:
        """Windows ``rows`` (any order, repeats allowed) of ``scale`` as (n, C, K, 2) float32.

        Reads the span the rows cover piece by piece (:attr:`chunk_windows` at a time), so memory follows the
        number of rows asked for, not the span.
        """
        rows = np.asarray(rows, np.int64)
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
            if hi > lo:
                piece = self.read_features(scale, a, min(a + self.chunk_windows, self.n_windows))
                out[order[lo:hi]] = piece[srt[lo:hi] - a]
        return out

    def _finite(self, a: np.ndarray, scale: int, start: int) -> np.ndarray:
        finite = np.isfinite(a).reshape(len(a), -1).all(axis=1)
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
        raise ConfigError(
            f"was made with a different feature configuration (hash {store.config_hash}, now {config.digest()}); "
            "use another output path or the same options", path)
    return store


def _shard_meta(path: Path, config: FeatureConfig) -> dict | None:
    """The metadata of a finished shard made with ``config``; None when it is damaged or made otherwise."""
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("config_hash") != config.digest():
                return None
            meta = json.loads(f.attrs["meta"])
            n = f["record_index"].shape[0]
            if any(f[f"features/{s}"].shape[0] != n or f[f"intervals/{s}"].shape[0] != n for s in config.scales):
                return None
            meta["n_windows"] = int(n)
            return meta
    except (*H5_ERRORS, UnmixError):
        return None


def _shard_rate(meta: dict) -> float:
    return float(meta["records"][0]["sampling_rate"])


def _select_shards(shards: list[Path], metas: dict[Path, dict], existing: FeatureStore | None,
                   failures: list[str], on_error) -> list[Path]:
    """Shards to add: not yet in the store (re-read now), at the store's one sampling rate (in input order)."""
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
    description = build_description(config.J, config.Q, config.model)
    parts: list[tuple[str, Path]] = [("store", existing.path)] if existing is not None else []
    parts += [("shard", sh) for sh in shards]
    inputs = list(existing.inputs) if existing else []
    sizes = [existing.n_windows] if existing is not None else []
    sizes += [metas[sh]["n_windows"] for sh in shards]
    N = sum(sizes)
    C, K = len(config.components), len(description)
    chunk = max(1, min(N, 512))
    with h5_atomic_writer(out, "feature store") as g:
        g.attrs["format"] = FEATURE_FORMAT
        g.attrs["config"] = json.dumps(config.to_dict())
        g.attrs["config_hash"] = config.digest()
        g.attrs["unmix_version"] = __version__
        fields = [(n, "S8" if description.dtype[n].kind == "U" else description.dtype[n])
                  for n in description.dtype.names]
        g["description"] = np.array(description.tolist(), dtype=fields)
        for s in config.scales:
            g.create_dataset(f"features/{s}", (N, C, K, 2), np.float32, chunks=(chunk, C, K, 2), compression="lzf")
            g.create_dataset(f"intervals/{s}", (N, 2), np.float64, chunks=(chunk, 2))
            g.create_dataset(f"lmst/{s}", (N, 2), np.float64, chunks=(chunk, 2))
        g.create_dataset("windows/input", (N,), np.int32)
        g.create_dataset("windows/record", (N,), np.int32)
        pos = 0
        for (kind, p), n in zip(parts, sizes, strict=True):
            with h5py.File(p, "r") as f:
                for s in config.scales:
                    g[f"features/{s}"][pos:pos + n] = f[f"features/{s}"][()]
                    g[f"intervals/{s}"][pos:pos + n] = f[f"intervals/{s}"][()]
                if kind == "store":
                    for s in config.scales:
                        g[f"lmst/{s}"][pos:pos + n] = f[f"lmst/{s}"][()]
                    g["windows/input"][pos:pos + n] = f["windows/input"][()]
                    g["windows/record"][pos:pos + n] = f["windows/record"][()]
                else:
                    for s in config.scales:
                        g[f"lmst/{s}"][pos:pos + n] = sol_float(f[f"intervals/{s}"][()]) if n else np.zeros((0, 2))
                    g["windows/input"][pos:pos + n] = len(inputs)
                    g["windows/record"][pos:pos + n] = f["record_index"][()]
                    meta = {k: v for k, v in metas[p].items() if k != "n_windows"}
                    inputs.append(meta)
            pos += n
        g.attrs["inputs"] = json.dumps(inputs)


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
    """Compute features of every input not yet in ``out`` and consolidate them into it.

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


def _build_locked(files: list[Path], out: Path, config: FeatureConfig, device: str, workers: int,
                  scheduler: str | None, progress: Progress, token: CancelToken, on_error,
                  allow_damaged: bool = False) -> dict:
    existing = _read_existing(out, config)
    done = {i.get("sha256") for i in existing.inputs} if existing else set()
    parts_dir = out.with_name(out.name + ".parts")
    todo, skipped, shards, metas = [], [], [], {}
    for p in files:
        digest = file_sha256(p, token)
        shard = parts_dir / f"{digest[:24]}-{config.digest()}.h5"
        meta = _shard_meta(shard, config) if shard.exists() else None
        if digest in done:
            log.info("%s: already in %s, skipped", p, out.name)
            skipped.append(str(p))
        elif meta is not None:
            log.info("%s: finished part of an earlier run reused (%s)", p, shard.name)
            shards.append(shard)
            metas[shard] = meta
            skipped.append(str(p))
        else:
            todo.append((p, shard))
    failures: list[str] = []
    notes: list[str] = []
    cfg = config.to_dict() | ({"allow_damaged": True} if allow_damaged else {})

    def accept(result: FileFeatures, shard: Path) -> None:
        parts_dir.mkdir(parents=True, exist_ok=True)
        _write_shard(result, config, shard)
        meta = _shard_meta(shard, config)
        if meta is None:
            raise InputFileError("the shard just written cannot be read back", shard)
        shards.append(shard)
        metas[shard] = meta
        notes.extend(f"{Path(result.path).name}: {n}" for n in result.notes)
        log.info("%s: %d window(s) computed", result.path, sum(r["n_windows"] for r in result.records))
        for n in result.notes:
            log.debug("%s: %s", result.path, n)

    try:
        _compute(todo, cfg, device, workers, scheduler, accept, failures, sub_progress(progress, 0.0, 0.9), token,
                 on_error)
        token.check()
        order = {str(p): i for i, p in enumerate(files)}
        shards = sorted(set(shards), key=lambda sh: order.get(metas[sh]["path"], len(order)))
        existing = _read_existing(out, config)  # re-read: the store may have changed while computing
        new_shards = _select_shards(shards, metas, existing, failures, on_error)
        if not new_shards and existing is None:
            if failures:
                raise NoFeaturesError(failures)
            raise DataError("no input files given; nothing written", out)
        if new_shards:
            progress(0.95, "consolidating")
            _consolidate(out, config, existing, new_shards, metas)
    except (UnmixError, Cancelled) as exc:
        if not any(parts_dir.glob("*.h5")):
            shutil.rmtree(parts_dir, ignore_errors=True)
        elif isinstance(exc, DiskFullError):
            raise DiskFullError(f"{exc.problem}; the finished parts in {parts_dir.name}/ are kept for the next run "
                                "(remove it to free space)", exc.path) from None
        raise
    shutil.rmtree(parts_dir, ignore_errors=True)
    store = FeatureStore(out)
    progress(1.0, "done")
    return {"store": str(out), "n_windows": store.n_windows, "inputs": len(store.inputs), "computed": len(todo)
            - len(failures), "skipped": skipped, "failures": failures, "notes": notes}


def _compute(todo: list[tuple[Path, Path]], cfg: dict, device: str, workers: int, scheduler: str | None, accept,
             failures: list[str], step: Progress, token: CancelToken, on_error) -> None:
    """Features of every ``(input, shard)`` in ``todo``, handed to ``accept``; failures are collected."""
    if todo and (workers > 0 or scheduler):
        run_on_dask(features_for_file, todo, cfg, device, workers, scheduler, accept, failures, step, token, on_error)
        return
    for i, (p, shard) in enumerate(todo):
        token.check()
        try:
            child = sub_progress(step, i / len(todo), (i + 1) / len(todo))
            accept(features_for_file(str(p), cfg, device, token, child), shard)
        except UnmixError as exc:
            if isinstance(exc, DiskFullError):
                raise
            failures.append(exc.message)
            if on_error:
                on_error(exc.message)
        step((i + 1) / len(todo), p.name)

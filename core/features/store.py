"""The feature store: one HDF5 file of windows × scales × features with times, provenance and configuration.

Writing is resumable and atomic: every input's features first go to a shard file (written under a temporary name,
then renamed) in ``STORE.parts/``; shards and the existing store are then consolidated into a new file that replaces
the store in one rename. An interrupted run leaves the old store intact and its finished shards reusable.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from core import __version__
from core.atomic import atomic_path
from core.errors import ConfigError, DataError, InputFileError, UnmixError
from core.features.config import FEATURE_FORMAT, FeatureConfig
from core.jobs import CancelToken, Progress, no_progress, sub_progress
from core.mars_time import sol_float
from core.scattering import DESCRIPTION_DTYPE, build_description


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def features_for_file(path: str, config_dict: dict, device: str = "auto", token: CancelToken | None = None,
                      progress: Progress | None = None) -> dict:
    """Compute one input file's features (runs in-process or on a Dask worker); returns arrays and provenance."""
    from core.allocator import tune_allocator
    from core.features.extract import make_engine, record_features
    from core.io import read_records, remove_response, rotate_to_zne

    tune_allocator()  # on a Dask worker process too

    config = FeatureConfig.from_dict(config_dict)
    records = read_records(path, gap_policy=config.gap_policy, max_fill=config.max_fill,
                           resample_to=config.sampling_rate)
    engine = make_engine(config, device)
    out = {"path": str(path), "sha256": file_digest(path), "size": os.path.getsize(path), "records": [],
           "notes": [], "features": {s: [] for s in config.scales}, "intervals": {s: [] for s in config.scales},
           "record_index": []}
    for rec in records:
        if config.response:
            rec = remove_response(rec, config.response, output=config.response_output)
            if config.rotate:
                rec = rotate_to_zne(rec, config.response)
        comps = rec.components
        if not set(config.components) <= set(comps):
            out["notes"].append(f"{rec.key} {rec.starttime}–{rec.endtime}: has components {comps}, needs "
                                f"{config.components}; skipped")
            continue
        rec = rec.copy()
        rec.stream.traces = [next(tr for tr in rec.stream if tr.stats.channel[-1] == c) for c in config.components]
        wf = record_features(rec, config, engine=engine, token=token, progress=progress)
        if wf.n_windows == 0:
            out["notes"].append(f"{rec.key} {rec.starttime}–{rec.endtime}: {rec.npts} samples, shorter than one "
                                f"window of {config.window}; skipped")
            continue
        out["records"].append({"key": rec.key, "channels": wf.channels, "start": str(rec.starttime),
                               "end": str(rec.endtime), "sampling_rate": rec.sampling_rate, "npts": rec.npts,
                               "n_windows": wf.n_windows, "notes": rec.notes})
        for s in config.scales:
            out["features"][s].append(wf.features[s])
            out["intervals"][s].append(wf.intervals[s])
        out["record_index"].append(np.full(wf.n_windows, len(out["records"]) - 1, np.int32))
    rates = {r["sampling_rate"] for r in out["records"]}
    if len(rates) > 1:
        raise DataError(f"records at different sampling rates {sorted(rates)}; set a sampling rate to resample", path)
    return out


def _as_real(z: np.ndarray) -> np.ndarray:
    return np.stack([z.real, z.imag], axis=-1).astype(np.float32)


def _write_shard(result: dict, config: FeatureConfig, path: Path) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        meta = {k: result[k] for k in ("path", "sha256", "size", "records", "notes")}
        f.attrs["meta"] = json.dumps(meta)
        f.attrs["config_hash"] = config.digest()
        n = sum(len(r) for r in result["record_index"])
        f["record_index"] = np.concatenate(result["record_index"]) if n else np.zeros(0, np.int32)
        C, K = len(config.components), len(build_description(config.J, config.Q, config.model))
        for s in config.scales:
            feats = result["features"][s]
            f[f"features/{s}"] = _as_real(np.concatenate(feats)) if n else np.zeros((0, C, K, 2), np.float32)
            f[f"intervals/{s}"] = np.concatenate(result["intervals"][s]) if n else np.zeros((0, 2))


class FeatureStore:
    """Read access to a consolidated store."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputFileError("no such feature store", self.path)
        try:
            with h5py.File(self.path, "r") as f:
                if f.attrs.get("format") != FEATURE_FORMAT:
                    raise InputFileError(f"not an Unmix feature store (format {f.attrs.get('format')!r})", self.path)
                self.config = FeatureConfig.from_dict(json.loads(f.attrs["config"]))
                self.config_hash = str(f.attrs["config_hash"])
                self.inputs = json.loads(f.attrs["inputs"])
                self.description = f["description"][()].astype(DESCRIPTION_DTYPE)
                self.n_windows = int(f["windows/input"].shape[0])
        except OSError as exc:
            raise InputFileError(f"unreadable feature store ({exc})", self.path) from None

    @property
    def scales(self) -> tuple[int, ...]:
        return self.config.scales

    def features(self, scale: int, complex_values: bool = False) -> np.ndarray:
        """(N, C, K, 2) float32 real/imag parts, or (N, C, K) complex64."""
        with h5py.File(self.path, "r") as f:
            a = f[f"features/{scale}"][()]
        return a[..., 0] + 1j * a[..., 1] if complex_values else a

    def intervals(self, scale: int) -> np.ndarray:
        """(N, 2) UTC start/end of each window's sub-window at ``scale`` (POSIX seconds)."""
        with h5py.File(self.path, "r") as f:
            return f[f"intervals/{scale}"][()]

    def lmst(self, scale: int) -> np.ndarray:
        with h5py.File(self.path, "r") as f:
            return f[f"lmst/{scale}"][()]

    def windows(self) -> dict[str, np.ndarray]:
        with h5py.File(self.path, "r") as f:
            return {k: f[f"windows/{k}"][()] for k in f["windows"]}


def _read_existing(path: Path, config: FeatureConfig) -> FeatureStore | None:
    if not path.exists():
        return None
    store = FeatureStore(path)
    if store.config_hash != config.digest():
        raise ConfigError(
            f"was made with a different feature configuration (hash {store.config_hash}, now {config.digest()}); "
            "use another output path or the same options", path)
    return store


def _consolidate(out: Path, config: FeatureConfig, existing: FeatureStore | None, shards: list[Path]) -> None:
    description = build_description(config.J, config.Q, config.model)
    parts = []
    inputs = list(existing.inputs) if existing else []
    if existing is not None:
        parts.append(("store", existing.path))
    for sh in shards:
        parts.append(("shard", sh))
    sizes, metas = [], []
    for kind, p in parts:
        with h5py.File(p, "r") as f:
            if kind == "store":
                sizes.append(int(f["windows/input"].shape[0]))
                metas.append(None)
            else:
                sizes.append(int(f["record_index"].shape[0]))
                metas.append(json.loads(f.attrs["meta"]))
    N = sum(sizes)
    C, K = len(config.components), len(description)
    chunk = max(1, min(N, 512))
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as g:
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
        for (kind, p), n, meta in zip(parts, sizes, metas, strict=True):
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
    progress: Progress | None = None,
    token: CancelToken | None = None,
    on_error=None,
) -> dict:
    """Compute features of every input not yet in ``out`` and consolidate them into it.

    ``workers > 0`` starts a local Dask cluster of that many processes; ``scheduler`` uses an existing
    dask.distributed cluster; otherwise everything runs in this process. Returns a small report.
    """
    from core.io import expand_inputs

    progress = progress or no_progress
    config = config or FeatureConfig()
    out = Path(out)
    existing = _read_existing(out, config)
    files = [p.resolve() for p in expand_inputs(inputs)]
    done = {i["sha256"] for i in existing.inputs} if existing else set()
    parts_dir = out.with_name(out.name + ".parts")
    parts_dir.mkdir(parents=True, exist_ok=True)
    todo, skipped, shards = [], [], []
    for p in files:
        digest = file_digest(p)
        shard = parts_dir / f"{digest[:24]}.h5"
        if digest in done:
            skipped.append(str(p))
        elif shard.exists():
            shards.append(shard)
            skipped.append(str(p))
        else:
            todo.append((p, shard))
    failures: list[str] = []
    notes: list[str] = []
    cfg = config.to_dict()

    def accept(result: dict, shard: Path) -> None:
        _write_shard(result, config, shard)
        shards.append(shard)
        notes.extend(f"{Path(result['path']).name}: {n}" for n in result["notes"])

    step = sub_progress(progress, 0.0, 0.9)
    if todo and (workers > 0 or scheduler):
        from core.features.distributed import run_on_dask

        run_on_dask(todo, cfg, device, workers, scheduler, accept, failures, step, token)
    else:
        for i, (p, shard) in enumerate(todo):
            if token is not None:
                token.check()
            try:
                child = sub_progress(step, i / len(todo), (i + 1) / len(todo))
                accept(features_for_file(str(p), cfg, device, token, child), shard)
            except UnmixError as exc:
                failures.append(exc.message)
                if on_error:
                    on_error(exc.message)
            step((i + 1) / len(todo), p.name)
    if token is not None:
        token.check()
    new_shards = sorted(set(shards))
    if new_shards or existing is None:
        progress(0.95, "consolidating")
        _consolidate(out, config, existing, new_shards)
    shutil.rmtree(parts_dir, ignore_errors=True)
    store = FeatureStore(out)
    progress(1.0, "done")
    return {"store": str(out), "n_windows": store.n_windows, "inputs": len(store.inputs), "computed": len(todo)
            - len(failures), "skipped": skipped, "failures": failures, "notes": notes}

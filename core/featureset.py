"""In-memory features: :func:`extract` computes them from records or files without writing a store.

A :class:`FeatureSet` holds the same arrays and metadata as a feature store (:class:`unmix.features.FeatureStore`,
of which it is a subclass), so the model trains on it and clusters it directly; :meth:`FeatureSet.save` writes a
normal store through the store code and :meth:`FeatureSet.load` reads one back into memory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from unmix.errors import ConfigError, DataError, OutputExistsError
from unmix.features.config import FeatureConfig
from unmix.features.store import (
    FeatureStore,
    FileFeatures,
    _consolidate,
    _shard_meta,
    _write_shard,
    add_records,
    features_for_file,
)
from unmix.io.record import Record
from unmix.lock import store_lock
from unmix.mars_time import sol_float
from unmix.scattering import DESCRIPTION_DTYPE, build_description


class FeatureSet(FeatureStore):
    """Features of every window at every scale, held in memory (the read interface of a feature store).

    ``inputs`` lists where the windows come from (``path`` and ``sha256`` of each input file, ``''`` for records
    that were not read from one file: their waveforms cannot be re-read, e.g. for a prior from clusters).

    >>> import unmix
    >>> fs = unmix.extract(unmix.example().path, unmix.FeatureConfig(window=16384, scales=(1024, 4096, 16384)))
    >>> fs.n_windows, fs.scales
    (195, (1024, 4096, 16384))
    """

    def __init__(self, config: FeatureConfig, inputs: list[dict], arrays: dict[str, np.ndarray],
                 path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.config = config
        self.config_hash = config.digest()
        self.inputs = inputs
        self.description = build_description(config.J, config.Q, config.model).astype(DESCRIPTION_DTYPE)
        self._arrays = arrays
        self.n_windows = int(len(arrays["windows/input"]))

    def __repr__(self) -> str:
        return (f"FeatureSet({self.n_windows} windows, scales {self.scales}, {len(self.inputs)} input(s), "
                f"config {self.config_hash})")

    def _read(self, name: str) -> np.ndarray:
        return self._arrays[name]

    @classmethod
    def load(cls, path: str | Path) -> FeatureSet:
        """Read a feature store (written by :meth:`save` or ``unmix features``) into memory, validated."""
        store = FeatureStore(path)
        names = ["windows/input", "windows/record"] + [f"{kind}/{s}" for s in store.scales
                                                      for kind in store.config.scale_datasets()]
        arrays = {n: store._read(n) for n in names}
        for s in store.scales:
            store.features(s)  # refuses NaN or infinite features, naming the file
            store.glitch_energy(s)  # and negative or non-finite glitch evidence
        return cls(store.config, list(store.inputs), arrays, store.path)

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write a feature store at ``path`` (atomically, under the store's lock); returns the path."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise OutputExistsError("already exists; pass overwrite=True to replace it", path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with store_lock(path), tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
            shards, metas = [], {}
            for i, entry in enumerate(self.inputs):
                shard = Path(tmp) / f"{i}.h5"
                _write_shard(self._shard_result(i, entry), self.config, shard)
                metas[shard] = _shard_meta(shard, self.config)
                shards.append(shard)
            _consolidate(path, self.config, None, shards, metas)
        self.path = path
        return path

    def _shard_result(self, i: int, entry: dict) -> FileFeatures:
        """What :func:`unmix.features.store.features_for_file` returns for input ``i`` (its windows only)."""
        mine = self._arrays["windows/input"] == i
        return FileFeatures(entry["path"], entry["sha256"], entry["size"],
                            {s: [self.features(s, complex_values=True)[mine]] for s in self.scales},
                            {s: [self.intervals(s)[mine]] for s in self.scales}, entry["records"], entry["notes"],
                            [self._arrays["windows/record"][mine]],
                            {s: [self.glitch_energy(s)[mine]] for s in self.scales} if self.config.glitch_evidence
                            else {})


def _records_result(records: list[Record], config: FeatureConfig, device: str) -> FileFeatures:
    """Features of in-memory records in the form :func:`features_for_file` gives for a file."""
    from unmix.features.extract import make_engine

    sources = sorted({s for r in records for s in r.sources})
    path = sources[0] if len(sources) == 1 and Path(sources[0]).is_file() else ""
    for rec in records:
        if not config.response and not set(config.components) <= set(rec.components):
            raise DataError(f"{rec.key} has components {rec.components}, the configuration needs "
                            f"{config.components} (FeatureConfig(components=...))", rec.sources_label)
    out = FileFeatures.empty(path, config)
    add_records(out, records, config, make_engine(config, device), path or None)
    return out


def _assemble(results: list[FileFeatures], config: FeatureConfig) -> FeatureSet:
    """One feature set from per-input results (inputs without windows are dropped)."""
    results = [r for r in results if r.records]
    if not results:
        raise DataError("no windows: every record is shorter than one window of "
                        f"{config.window} samples (or has no data)")
    rates = {rec["sampling_rate"] for r in results for rec in r.records}
    if len(rates) > 1:
        raise DataError(f"records at different sampling rates {sorted(rates)}; a feature set holds one rate")
    arrays = {"windows/input": np.concatenate([np.full(r.n_windows, i, np.int32) for i, r in enumerate(results)]),
              "windows/record": np.concatenate([x for r in results for x in r.record_index]).astype(np.int32)}
    for s in config.scales:
        feats = np.concatenate([x for r in results for x in r.features[s]])
        arrays[f"features/{s}"] = np.stack([feats.real, feats.imag], axis=-1).astype(np.float32)
        arrays[f"intervals/{s}"] = np.concatenate([x for r in results for x in r.intervals[s]])
        arrays[f"lmst/{s}"] = sol_float(arrays[f"intervals/{s}"])
        if config.glitch_evidence:
            arrays[f"glitch/{s}"] = np.concatenate([x for r in results for x in r.glitch[s]]).astype(np.float32)
    return FeatureSet(config, [r.entry() for r in results], arrays)


def extract(data: str | Path | Record | Iterable[str | Path | Record], config: FeatureConfig | None = None,
            device: str = "auto", allow_damaged: bool = False) -> FeatureSet:
    """Multi-scale scattering-covariance features of every window, in memory (no store is written).

    ``data``: files, folders or glob patterns (read with the configuration's gap policy, one input per file, as
    ``unmix features`` does), or :class:`~unmix.io.Record` objects from :func:`unmix.read` (one input per source
    file). ``config`` defaults to :class:`~unmix.features.FeatureConfig` ``()`` (the published 65536-sample window).
    """
    from unmix.io import expand_inputs

    config = config or FeatureConfig()
    if not isinstance(config, FeatureConfig):
        raise ConfigError(f"config must be a FeatureConfig, got {type(config).__name__}")
    items = [data] if isinstance(data, str | Path | Record) else list(data)
    records = [x for x in items if isinstance(x, Record)]
    paths = [x for x in items if not isinstance(x, Record)]
    cfg = config.to_dict() | ({"allow_damaged": True} if allow_damaged else {})
    results = [features_for_file(str(p), cfg, device) for p in (expand_inputs(paths) if paths else [])]
    by_source: dict[tuple[str, ...], list[Record]] = {}
    for rec in records:
        by_source.setdefault(tuple(sorted(rec.sources)), []).append(rec)
    results += [_records_result(group, config, device) for group in by_source.values()]
    return _assemble(results, config)


__all__ = ["FeatureSet", "extract"]

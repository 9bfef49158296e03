"""The cluster table: what the model says about every window at every scale.

It is the hand-over between the model (which writes it), the analysis products, the GUI overlays and the
separation (which picks prior snippets and targets from it). One row per feature-store window; per scale the UTC
interval of the window's sub-window at that scale, the cluster, its confidence, the full posterior and the
deterministic latent mean. Saved as HDF5 (everything) or CSV (times, clusters and confidences, for spreadsheets).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import h5py
import numpy as np
from obspy import UTCDateTime

from unmix.atomic import atomic_path
from unmix.errors import ConfigError, InputFileError
from unmix.h5safe import H5_ERRORS, check_dataset, damaged, h5_atomic_writer, json_attr

TABLE_FORMAT = "unmix-clusters-1"
T = TypeVar("T")


@dataclass
class ClusterTable:
    """Per-window, per-scale clustering of a feature store.

    Arrays are indexed ``[window, scale_index]``; ``scales`` gives the scale (samples) of each column.
    ``intervals[:, s]`` is the (start, end) UTC of the sub-window at scale ``scales[s]`` in POSIX seconds, and
    ``lmst[:, s]`` the same interval in fractional sols. ``input_index`` and ``record_index`` point back into
    ``inputs`` (the feature store's input list: path, sha256, records) so that waveforms can be re-read.
    """

    scales: tuple[int, ...]
    intervals: np.ndarray  # (N, S, 2) float64 POSIX seconds
    lmst: np.ndarray  # (N, S, 2) float64 fractional sols
    cluster: np.ndarray  # (N, S) int16
    confidence: np.ndarray  # (N, S) float32
    probabilities: np.ndarray  # (N, S, K) float32
    latent: np.ndarray | None = None  # (N, S, Z) float32
    input_index: np.ndarray | None = None  # (N,) int32
    record_index: np.ndarray | None = None  # (N,) int32
    inputs: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # model digest, store path, sampling rate, ...
    names: dict[int, dict[int, str]] = field(default_factory=dict)  # scale → cluster → name given by the user
    suggestions: dict[int, dict[int, dict]] = field(default_factory=dict)  # scale → cluster → {name, evidence}

    def __post_init__(self) -> None:
        self.scales = tuple(int(s) for s in self.scales)
        n, s = self.cluster.shape
        if s != len(self.scales) or self.intervals.shape != (n, s, 2) or self.confidence.shape != (n, s):
            raise ConfigError(f"inconsistent cluster table shapes: cluster {self.cluster.shape}, intervals "
                              f"{self.intervals.shape}, confidence {self.confidence.shape}, scales {self.scales}")

    # --- names ------------------------------------------------------------------------------------------------------

    def set_name(self, scale: int, cluster: int, name: str | None) -> None:
        """Name ``cluster`` at ``scale`` (``None`` or '' removes the name). Several clusters may share a name."""
        self.scale_index(scale)
        if not 0 <= int(cluster) < self.n_clusters:
            raise ConfigError(f"no cluster {cluster}: this table has clusters 0–{self.n_clusters - 1}")
        per_scale = self.names.setdefault(int(scale), {})
        if not name:
            per_scale.pop(int(cluster), None)
            return
        per_scale[int(cluster)] = check_name(name)

    def name_of(self, scale: int, cluster: int) -> str:
        """The user's name of ``cluster`` at ``scale``, else '' (suggestions are not names until accepted)."""
        return self.names.get(int(scale), {}).get(int(cluster), "")

    def label(self, scale: int, cluster: int) -> str:
        """``'3'`` or ``'3 (quiet night)'``; an unnamed outlier cluster ``'16 (outliers of 3)'``, an unnamed sparsity
        split ``'17 (split from 2)'``, the unnamed glitch class ``'20 (template glitches)'``."""
        return _label(cluster, self.name_of(scale, cluster) or _outlier_name(self.meta, scale, cluster))

    def resolve(self, spec: str | int | list, scale: int) -> list[int]:
        """Cluster numbers of ``spec`` at ``scale``: numbers and names, comma-separated (``'3,5'``, ``'quiet'``,
        ``'quiet,2'``); a name stands for every cluster of that name. Unknown names are one line listing the names."""
        self.scale_index(scale)
        items = spec if isinstance(spec, list) else str(spec).split(",")
        out: list[int] = []
        for item in (str(i).strip() for i in items):
            if not item:
                continue
            if item.lstrip("-").isdigit():
                k = int(item)
                if not 0 <= k < self.n_clusters:
                    raise ConfigError(f"no cluster {k}: this table has clusters 0–{self.n_clusters - 1}")
                found = [k]
            else:
                named = self.names.get(int(scale), {})
                found = sorted(k for k, n in named.items() if n.lower() == item.lower())
                if not found:
                    known = ", ".join(sorted(set(named.values()))) or "none (see `unmix name`)"
                    raise ConfigError(f"no cluster named {item!r} at scale {scale}; names there: {known}")
            out += [k for k in found if k not in out]
        if not out:
            raise ConfigError("give at least one cluster (a number or a name)")
        return out

    @property
    def n_windows(self) -> int:
        return int(self.cluster.shape[0])

    @property
    def n_clusters(self) -> int:
        return int(self.probabilities.shape[-1])

    def scale_index(self, scale: int) -> int:
        try:
            return self.scales.index(int(scale))
        except ValueError:
            raise ConfigError(f"scale {scale} not in this table (scales {', '.join(map(str, self.scales))})") from None

    def occupancy(self, scale: int) -> np.ndarray:
        """Number of windows in each cluster at ``scale``."""
        return np.bincount(self.cluster[:, self.scale_index(scale)], minlength=self.n_clusters)

    def members(self, clusters: int | list[int], scale: int, min_confidence: float = 0.0) -> np.ndarray:
        """Window indices in any of ``clusters`` at ``scale``, most confident first."""
        s = self.scale_index(scale)
        wanted = np.isin(self.cluster[:, s], np.atleast_1d(clusters))
        idx = np.flatnonzero(wanted & (self.confidence[:, s] >= min_confidence))
        return idx[np.argsort(-self.confidence[idx, s], kind="stable")]

    def columns(self) -> dict[str, np.ndarray]:
        """The table in long form, one row per window and scale: ``window``, ``scale``, ``start``/``end`` (UTC,
        ``datetime64[ns]``), ``lmst_start``/``lmst_end`` (fractional sols), ``cluster``, ``confidence``, ``input``."""
        n, S = self.cluster.shape
        posix = self.intervals.reshape(n * S, 2)
        return {"window": np.repeat(np.arange(n), S), "scale": np.tile(np.asarray(self.scales, np.int64), n),
                "start": (posix[:, 0] * 1e9).round().astype("datetime64[ns]"),
                "end": (posix[:, 1] * 1e9).round().astype("datetime64[ns]"),
                "lmst_start": self.lmst[..., 0].ravel(), "lmst_end": self.lmst[..., 1].ravel(),
                "cluster": self.cluster.ravel().astype(np.int64), "confidence": self.confidence.ravel(),
                "input": np.repeat(self.input_index if self.input_index is not None else np.full(n, -1), S)}

    def to_dataframe(self):
        """A pandas DataFrame of :meth:`columns` (needs pandas, which Unmix does not install)."""
        pandas = _optional("pandas", "to_dataframe")
        return pandas.DataFrame(self.columns())

    def to_xarray(self):
        """An xarray Dataset over (window, scale, k[, z]): ``start``/``end`` (POSIX seconds), ``lmst_start`` (sols),
        clusters, confidences, probabilities and latents (needs xarray, which Unmix does not install)."""
        xr = _optional("xarray", "to_xarray")
        dims = ("window", "scale")
        data = {"start": (dims, self.intervals[..., 0]), "end": (dims, self.intervals[..., 1]),
                "lmst_start": (dims, self.lmst[..., 0]), "cluster": (dims, self.cluster),
                "confidence": (dims, self.confidence), "probabilities": (dims + ("k",), self.probabilities)}
        if self.latent is not None:
            data["latent"] = (dims + ("z",), self.latent)
        return xr.Dataset(data, coords={"scale": list(self.scales)},
                          attrs={k: json.dumps(v, default=str) for k, v in self.meta.items()})

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write as HDF5 (``.h5``/``.hdf5``, everything) or CSV (``.csv``: times, clusters, confidences)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".h5", ".hdf5", ".csv"):
            raise ConfigError(f"cluster table must end in .h5, .hdf5 or .csv, got {path.name!r}")
        if suffix == ".csv":
            with atomic_path(path, overwrite=overwrite) as tmp:
                self._write_csv(tmp)
        else:
            with h5_atomic_writer(path, "cluster table", overwrite=overwrite) as f:
                self._write_h5(f)
        return path

    def _write_h5(self, f: h5py.File) -> None:
        _write_attrs(f, self.scales, self.inputs, self.meta, self.names, self.suggestions)
        for name in _TABLE_DATASETS:
            value = getattr(self, name)
            if value is not None:
                if value.ndim > 1:
                    f.create_dataset(name, data=value, compression="lzf", chunks=_row_chunks(value.shape,
                                                                                              value.itemsize))
                else:
                    f.create_dataset(name, data=value)

    def _write_csv(self, tmp: Path) -> None:
        from unmix.mars_time import format_lmst

        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            header = ["window", "input"]
            for s in self.scales:
                header += [f"start_{s}", f"end_{s}", f"lmst_start_{s}", f"cluster_{s}", f"confidence_{s}"]
                header += [f"name_{s}"] if self.names.get(s) else []
            w.writerow(header)
            for i in range(self.n_windows):
                row = [i, self.input_index[i] if self.input_index is not None else ""]
                for j in range(len(self.scales)):
                    t0, t1 = self.intervals[i, j]
                    row += [str(UTCDateTime(t0)), str(UTCDateTime(t1)), format_lmst(UTCDateTime(t0)),
                            int(self.cluster[i, j]), f"{self.confidence[i, j]:.4f}"]
                    s = self.scales[j]
                    row += [self.name_of(s, int(self.cluster[i, j]))] if self.names.get(s) else []
                w.writerow(row)

    @classmethod
    def load(cls, path: str | Path) -> ClusterTable:
        """Read a table written by :meth:`save` (HDF5), validating shapes, dtypes and values; one line otherwise."""
        return cls(**_read_saved(path, _read_table))


@dataclass
class TableSummary:
    """What a saved table says about itself without its per-window arrays: enough to decide whether it can be
    reused and to report it (:func:`read_summary`; a mission's table holds ≈ 1.8 GB of posteriors and latents)."""

    path: Path
    scales: tuple[int, ...]
    inputs: list[dict]
    meta: dict
    names: dict[int, dict[int, str]]
    n_windows: int
    n_clusters: int
    counts: np.ndarray  # (S, K) windows per cluster at each scale

    def occupancy(self, scale: int) -> np.ndarray:
        return self.counts[self.scales.index(int(scale))].copy()

    def label(self, scale: int, cluster: int) -> str:
        """``'3'`` or ``'3 (quiet night)'``, as :meth:`ClusterTable.label`."""
        return _label(cluster, self.names.get(int(scale), {}).get(int(cluster), "")
                      or _outlier_name(self.meta, scale, cluster))


def read_summary(path: str | Path, rows: int = 1 << 18) -> TableSummary:
    """The :class:`TableSummary` of a table written by :meth:`ClusterTable.save`, its cluster column read ``rows``
    windows at a time (validated as :meth:`ClusterTable.load` validates it); one line for a bad file."""
    return _read_saved(path, lambda f, p: _read_summary(f, p, rows))


def _read_summary(f: h5py.File, path: Path, rows: int) -> TableSummary:
    scales, inputs, meta, dims = _read_header(f, path)
    n, K = dims["N"], dims["K"]
    counts = np.zeros((len(scales), K), np.int64)
    for a in range(0, n, rows):
        block = f["cluster"][a:a + rows]
        if block.min() < 0 or block.max() >= max(K, 1):
            raise InputFileError("damaged cluster table: cluster numbers outside the table's clusters", path)
        for j in range(len(scales)):
            counts[j] += np.bincount(block[:, j], minlength=K)
    return TableSummary(path, tuple(int(s) for s in scales), inputs, meta, _names_of(f, scales, K, path), n, K,
                        counts)


def _read_saved(path: str | Path, reader: Callable[[h5py.File, Path], T]) -> T:
    """``reader(f, path)`` on the open table at ``path``, after checking it is one; one line for a bad file."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError("no such cluster table", path)
    if not h5py.is_hdf5(path):
        raise InputFileError("not an Unmix cluster table (not HDF5; expected one written by 'unmix cluster')", path)
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != TABLE_FORMAT:
                raise InputFileError(f"not an Unmix cluster table (format {f.attrs.get('format')!r})", path)
            return reader(f, path)
    except (InputFileError, ConfigError):
        raise
    except H5_ERRORS as exc:
        raise damaged(exc, path, "cluster table") from None


def _label(cluster: int, name: str) -> str:
    return f"{cluster} ({name})" if name else str(cluster)


def glitch_class(meta: dict) -> int | None:
    """The glitch class's number a table's ``meta`` records (``ModelConfig.glitch_share``), or None."""
    glitch = meta.get("glitch_class") if isinstance(meta, dict) else None
    k = glitch.get("cluster") if isinstance(glitch, dict) else None
    return k if isinstance(k, int) and not isinstance(k, bool) else None


def _outlier_name(meta: dict, scale: int, cluster: int) -> str:
    """'outliers of 3' when the table's model split ``cluster`` off cluster 3 at ``scale`` (unmix.model.outliers),
    'split from 2' when it is cluster 2's sparsity split (unmix.model.sparsity_split), 'template glitches' for the
    glitch class (``ModelConfig.glitch_share``)."""
    if glitch_class(meta) == int(cluster):
        return "template glitches"
    for key, words in (("outlier_clusters", "outliers of"), ("split_clusters", "split from")):
        pairs = meta.get(key) if isinstance(meta, dict) else None
        per_scale = pairs.get(str(int(scale))) if isinstance(pairs, dict) else None
        source = per_scale.get(str(int(cluster))) if isinstance(per_scale, dict) else None
        if isinstance(source, int) and not isinstance(source, bool):
            return f"{words} {source}"
    return ""


CHUNK_BYTES = 1 << 22


def _row_chunks(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Chunks of whole rows, ~4 MiB: a table is read whole, and HDF5's own choice for (N, S, K) arrays (one column
    per chunk) makes reading a mission's table about twice as slow."""
    rows = CHUNK_BYTES // max(int(np.prod(shape[1:])) * itemsize, 1)
    return (max(1, min(shape[0], rows)), *shape[1:])


def _write_attrs(f: h5py.File, scales, inputs: list, meta: dict, names: dict, suggestions: dict) -> None:
    f.attrs["format"] = TABLE_FORMAT
    f.attrs["scales"] = np.asarray(scales, np.int64)
    f.attrs["inputs"] = json.dumps(inputs)
    f.attrs["meta"] = json.dumps(meta, default=str)
    f.attrs["names"] = json.dumps({str(s): {str(k): v for k, v in d.items()} for s, d in names.items()})
    f.attrs["suggestions"] = json.dumps({str(s): {str(k): v for k, v in d.items()} for s, d in suggestions.items()})


class TableWriter:
    """A cluster table written to an open HDF5 file block of rows by block of rows, in :meth:`ClusterTable.save`'s
    layout, so that clustering a store larger than memory never holds its (N, S, K) posteriors and latents.

    The times and indices come whole (they are small); :meth:`write` takes each block's posteriors and latents and
    derives the clusters and confidences; :meth:`occupancy` counts as it goes."""

    def __init__(self, f: h5py.File, scales, n_windows: int, clusters: int, latent: int, inputs: list,
                 meta: dict) -> None:
        self.f, self.scales, self.n, self.k = f, tuple(int(s) for s in scales), int(n_windows), int(clusters)
        S = len(self.scales)
        _write_attrs(f, self.scales, inputs, meta, {}, {})
        shapes = {"intervals": ((self.n, S, 2), np.float64), "lmst": ((self.n, S, 2), np.float64),
                  "cluster": ((self.n, S), np.int16), "confidence": ((self.n, S), np.float32),
                  "probabilities": ((self.n, S, self.k), np.float32), "latent": ((self.n, S, int(latent)), np.float32)}
        for name, (shape, dtype) in shapes.items():
            chunks = _row_chunks(shape, np.dtype(dtype).itemsize) if self.n else None
            f.create_dataset(name, shape=shape, dtype=dtype, compression="lzf" if self.n else None, chunks=chunks)
        self.counts = np.zeros((S, self.k), np.int64)

    def write_times(self, scale_index: int, intervals: np.ndarray, lmst: np.ndarray) -> None:
        self.f["intervals"][:, scale_index] = intervals
        self.f["lmst"][:, scale_index] = lmst

    def write_index(self, input_index: np.ndarray, record_index: np.ndarray) -> None:
        self.f.create_dataset("input_index", data=np.asarray(input_index, np.int32))
        self.f.create_dataset("record_index", data=np.asarray(record_index, np.int32))

    def write(self, start: int, prob: np.ndarray, latent: np.ndarray) -> None:
        """Rows ``start:start + len(prob)``: posteriors (n, S, K) and latents (n, S, Z)."""
        stop = start + len(prob)
        cluster = prob.argmax(-1).astype(np.int16)
        self.f["probabilities"][start:stop] = prob
        self.f["latent"][start:stop] = latent
        self.f["cluster"][start:stop] = cluster
        self.f["confidence"][start:stop] = prob.max(-1).astype(np.float32)
        for j in range(len(self.scales)):
            self.counts[j] += np.bincount(cluster[:, j], minlength=self.k)

    def occupancy(self) -> dict[int, np.ndarray]:
        """Windows per cluster at each scale, of the rows written."""
        return {s: self.counts[j].copy() for j, s in enumerate(self.scales)}


def _optional(package: str, method: str):
    """Import an optional dependency, or say in one line what to install."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError:
        raise ImportError(f"ClusterTable.{method}() needs the {package} package, which Unmix does not install; "
                          f"pip install {package}") from None


#: Datasets of a saved table: (dimensions as names, dtype kinds, required). N windows, S scales, K clusters, Z latent.
_TABLE_DATASETS = {
    "intervals": (("N", "S", 2), "f", True), "lmst": (("N", "S", 2), "f", True), "cluster": (("N", "S"), "iu", True),
    "confidence": (("N", "S"), "f", True), "probabilities": (("N", "S", "K"), "f", True),
    "latent": (("N", "S", "Z"), "f", False), "input_index": (("N",), "iu", False),
    "record_index": (("N",), "iu", False),
}


def _read_header(f: h5py.File, path: Path) -> tuple[np.ndarray, list, dict, dict]:
    """Validated scales, inputs, meta and dimensions (N, S, K) of a saved table, without reading its arrays."""
    what = "cluster table"
    scales = np.asarray(f.attrs.get("scales", []))
    if scales.ndim != 1 or not len(scales) or scales.dtype.kind not in "iu" or (scales <= 0).any():
        raise InputFileError("damaged cluster table: attribute 'scales' is not a list of positive integers", path)
    inputs = json_attr(f, "inputs", list, path, what)
    if not all(isinstance(i, dict) and isinstance(i.get("path"), str) for i in inputs):
        raise InputFileError("damaged cluster table: attribute 'inputs' is not a list of input files", path)
    meta = json_attr(f, "meta", dict, path, what)
    extra = sorted(set(f) - set(_TABLE_DATASETS))
    if extra:
        raise InputFileError(f"damaged cluster table: unexpected datasets {extra[:3]}", path)
    n = check_dataset(f, "cluster", (None, len(scales)), "iu", path, what).shape[0]
    dims = {"N": n, "S": len(scales), "K": check_dataset(f, "probabilities", (n, len(scales), None), "f", path,
                                                         what).shape[2], "Z": None}
    return scales, inputs, meta, dims


def _names_of(f: h5py.File, scales: np.ndarray, K: int, path: Path) -> dict:
    return _read_names(f, "names", scales, K, path, lambda v: isinstance(v, str) and bool(_valid_name(v)))


def _read_table(f: h5py.File, path: Path) -> dict:
    """Validated arrays and attributes of a saved table, as keyword arguments of :class:`ClusterTable`."""
    what = "cluster table"
    scales, inputs, meta, dims = _read_header(f, path)
    n = dims["N"]
    arrays = {}
    for name, (shape, kind, required) in _TABLE_DATASETS.items():
        if name in f or required:
            ds = check_dataset(f, name, tuple(dims.get(d, d) if isinstance(d, str) else d for d in shape), kind,
                               path, what)
            arrays[name] = ds[()]
    K = dims["K"]
    if n and (arrays["cluster"].min() < 0 or arrays["cluster"].max() >= max(K, 1)):
        raise InputFileError("damaged cluster table: cluster numbers outside the table's clusters", path)
    if not all(np.isfinite(arrays[k]).all() for k in ("intervals", "lmst", "confidence", "probabilities")):
        raise InputFileError("damaged cluster table: NaN or infinite times or probabilities", path)
    index = arrays.get("input_index")
    if index is not None and n and (index.min() < 0 or index.max() >= len(inputs)):
        raise InputFileError("damaged cluster table: window inputs point outside its input list", path)
    names = _names_of(f, scales, K, path)
    suggestions = _read_names(f, "suggestions", scales, K, path,
                              lambda v: isinstance(v, dict) and isinstance(v.get("name"), str)
                              and _valid_name(v["name"]) and isinstance(v.get("evidence", ""), str))
    return {"scales": tuple(int(s) for s in scales), "inputs": inputs, "meta": meta, "names": names,
            "suggestions": suggestions, **arrays}


MAX_NAME = 40


def _valid_name(name: str) -> str:
    """``name`` stripped, or '' when it is not a usable cluster name (empty, too long, a number, control chars)."""
    name = name.strip()
    if not name or len(name) > MAX_NAME or name.lstrip("-").isdigit() or "," in name:
        return ""
    return name if name.isprintable() else ""


def check_name(name: str) -> str:
    """A cluster name as stored, or one line saying what is wrong with it."""
    valid = _valid_name(str(name))
    if not valid:
        raise ConfigError(f"cluster name {name!r} must be 1–{MAX_NAME} printable characters, not a number, no commas")
    return valid


def _read_names(f: h5py.File, attr: str, scales: np.ndarray, K: int, path: Path, ok) -> dict:
    """``{scale: {cluster: value}}`` of a JSON attribute (absent in tables written before names existed)."""
    if attr not in f.attrs:
        return {}
    raw = json_attr(f, attr, dict, path, "cluster table")
    out: dict[int, dict] = {}
    for s, per in raw.items():
        if not (isinstance(s, str) and s.isdigit() and int(s) in set(scales.tolist()) and isinstance(per, dict)):
            raise InputFileError(f"damaged cluster table: attribute {attr!r} names a scale it does not have", path)
        for k, v in per.items():
            if not (isinstance(k, str) and k.isdigit() and int(k) < K and ok(v)):
                raise InputFileError(f"damaged cluster table: attribute {attr!r} has a bad entry for cluster {k!r}",
                                     path)
        out[int(s)] = {int(k): (v.strip() if isinstance(v, str) else v) for k, v in per.items()}
    return out

"""The files of a feature store: a small index file and the segment files that hold its windows.

A store is addressed by its path ``X.h5``: the index (format ``unmix-features/2``) holds the feature configuration
and its hash, every input's provenance, the scattering description and the segment table (per segment: file name,
number of windows, position of its first input in ``inputs``, and a random id that the segment file also holds).
The windows live in the sibling folder ``X.h5.segments/``: a segment holds the features, sub-window intervals, LMST
and record/input indices of one input (several after a migration or :func:`unmix.features.compact_store`).

Why: appending an input writes its segment (the cost of computing it anyway) and rewrites the small index under a
temporary name and a rename; nothing already written is read or rewritten, where the single-file format rewrote the
whole store (39 GB at 1,400 sols) to add one sol. A crash at any moment leaves the previous index, which names only
complete segments; a segment written but not yet in the index is reused by the next run (it is found by its name:
input digest and settings hash) or removed after the next successful one.

Format 1 (one file holding everything) is still read: a store of one segment, itself. Appending to it hard-links
the file into the segments folder as the first segment (no copy; a copy only where the file system has no hard
links) and then writes the index over the store's path.

Reading trusts nothing: the table's names must be plain file names inside the folder and its counts must add up,
and every segment must exist when the store is opened; a segment's id, settings hash, inputs and datasets (shapes,
dtypes, declared sizes, indices) are checked the first time it is read. A fault is one line naming the store and
the segment.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from unmix import __version__
from unmix.atomic import atomic_path
from unmix.errors import InputFileError, UnmixError
from unmix.features.config import FEATURE_FORMAT, FEATURE_FORMAT_V1, SEGMENT_FORMAT, FeatureConfig
from unmix.h5safe import H5_ERRORS, SPACE_ERRNOS, DiskFullError, check_dataset, h5_atomic_writer
from unmix.mars_time import sol_float
from unmix.scattering import build_description

if TYPE_CHECKING:
    from unmix.features.store import FileFeatures

log = logging.getLogger(__name__)

#: What a segment's location tells a user who moved the index alone.
MOVE_TOGETHER = "a store is the file and its .segments folder; move them together"


def segments_dir(store: Path) -> Path:
    """The folder of ``store``'s segment files."""
    return store.with_name(store.name + ".segments")


def segment_name(digest: str, config: FeatureConfig) -> str:
    """The file name of an input's segment: found again by the next run when a run is interrupted."""
    return f"{digest[:24]}-{config.digest()}.h5"


@dataclass(frozen=True)
class Segment:
    """One row of a store's segment table; ``start`` is its first window in the store."""

    name: str
    n_windows: int
    first_input: int
    n_inputs: int
    id: str
    start: int

    def entry(self) -> dict:
        return {"name": self.name, "n_windows": self.n_windows, "first_input": self.first_input, "id": self.id}


def parse_table(table: list, n_inputs: int, store: Path) -> list[Segment]:
    """The segment table of an index, checked: plain names, whole numbers that add up to ``n_inputs`` inputs."""
    def bad(problem: str) -> InputFileError:
        return InputFileError(f"damaged feature store: segment table {problem}", store)

    rows, names, start = [], set(), 0
    for i, e in enumerate(table):
        if not isinstance(e, dict) or not all(isinstance(e.get(k), t) and not isinstance(e.get(k), bool)
                                              for k, t in (("name", str), ("n_windows", int),
                                                           ("first_input", int), ("id", str))):
            raise bad(f"entry {i} is not a segment (name, n_windows, first_input, id)")
        name = e["name"]
        if not plain_name(name):
            raise bad(f"entry {i} names {name[:80]!r}, not a plain file name in {segments_dir(store).name}/")
        if name in names:
            raise bad(f"names {name!r} twice")
        first = e["first_input"]
        if e["n_windows"] < 0 or first >= n_inputs or (first != 0 if i == 0 else first <= rows[-1].first_input):
            raise bad(f"entry {i} ({name}) has counts that do not fit the store's {n_inputs} input(s)")
        names.add(name)
        rows.append(Segment(name, e["n_windows"], e["first_input"], 0, e["id"], start))
        start += e["n_windows"]
    if not rows and n_inputs:
        raise bad(f"is empty but the store lists {n_inputs} input(s)")
    ends = [r.first_input for r in rows[1:]] + [n_inputs]
    return [Segment(r.name, r.n_windows, r.first_input, end - r.first_input, r.id, r.start)
            for r, end in zip(rows, ends, strict=True)]


def plain_name(name: str) -> bool:
    """A file name without folders, not hidden, ending in ``.h5`` (no ``..``, no absolute path, no separator)."""
    return (0 < len(name) <= 255 and name == Path(name).name and "/" not in name and "\\" not in name
            and "\0" not in name and not name.startswith(".") and name.endswith(".h5"))


def legacy_id(f: h5py.File) -> str:
    """The id of a format-1 file taken as a segment (it cannot hold one): the digest of its ``inputs``."""
    raw = f.attrs.get("inputs", "")
    raw = raw if isinstance(raw, bytes) else str(raw).encode()
    return "v1-" + hashlib.sha256(raw).hexdigest()[:16]


def check_body(f: h5py.File, n: int | None, n_inputs: int, config: FeatureConfig, K: int, store: Path, what: str,
               size_of: Path | None = None) -> int:
    """Check the window datasets of a segment or a format-1 store (``n`` windows, None: any); returns their number.

    Reads the two index datasets (8 bytes a window) to refuse indices outside the inputs; the features are checked
    finite when read.
    """
    n = check_dataset(f, "windows/input", (n,), "iu", store, what, size_of).shape[0]
    shapes = {"windows/record": ((n,), "iu")}
    for s in config.scales:
        shapes[f"features/{s}"] = ((n, len(config.components), K, 2), "f")
        shapes[f"intervals/{s}"] = ((n, 2), "f")
        shapes[f"lmst/{s}"] = ((n, 2), "f")
        if config.glitch_evidence:
            shapes[f"glitch/{s}"] = ((n, len(config.components), 2), "f")
    for name, (shape, kind) in shapes.items():
        check_dataset(f, name, shape, kind, store, what, size_of)
    win_in, win_rec = f["windows/input"][()], f["windows/record"][()]
    if n and (win_in.min() < 0 or win_in.max() >= n_inputs or win_rec.min() < 0):
        raise InputFileError(f"damaged {what}: window indices point outside its inputs", store)
    return int(n)


def check_segment(file: Path, seg: Segment, store: Path, config: FeatureConfig, config_hash: str,
                  inputs: list[dict]) -> None:
    """Refuse a segment file that is missing, damaged or not the one the index names; one line naming both.

    ``config_hash`` is the index's: a segment must have been made with the same settings.
    """
    label = f"{segments_dir(store).name}/{seg.name}"
    what = f"feature store segment {label}"
    if not file.is_file():
        raise InputFileError(f"segment {label} is missing ({MOVE_TOGETHER})", store)
    try:
        with h5py.File(file, "r") as f:
            fmt = f.attrs.get("format")
            ident = legacy_id(f) if fmt == FEATURE_FORMAT_V1 else str(f.attrs.get("segment_id", ""))
            if fmt not in (SEGMENT_FORMAT, FEATURE_FORMAT_V1) or ident != seg.id:
                raise InputFileError(f"segment {label} is not the one this store wrote there (id {ident[:40]!r}, "
                                     f"expected {seg.id[:40]!r}); {MOVE_TOGETHER}", store)
            if f.attrs.get("config_hash") != config_hash:
                raise InputFileError(f"segment {label} was made with other feature settings; {MOVE_TOGETHER}", store)
            _check_inputs(f, seg, inputs[seg.first_input:seg.first_input + seg.n_inputs], store, what)
            K = len(build_description(config.J, config.Q, config.model))
            check_body(f, seg.n_windows, seg.n_inputs, config, K, store, what, file)
    except UnmixError:
        raise
    except H5_ERRORS as exc:
        detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise InputFileError(f"unreadable or damaged {what} ({detail})", store) from None


def _check_inputs(f: h5py.File, seg: Segment, expected: list[dict], store: Path, what: str) -> None:
    try:
        mine = json.loads(f.attrs["inputs"])
    except (KeyError, ValueError, TypeError):
        raise InputFileError(f"damaged {what}: attribute 'inputs' is missing or not JSON", store) from None
    if (not isinstance(mine, list) or not all(isinstance(i, dict) for i in mine)
            or [i.get("sha256") for i in mine] != [i.get("sha256") for i in expected]):
        raise InputFileError(f"damaged {what}: its inputs are not those the index lists for it", store)


def write_segment(result: FileFeatures, config: FeatureConfig, path: Path) -> str:
    """Write one input's windows as a segment (atomically: temporary name, then rename); returns its id."""
    ident = secrets.token_hex(8)
    n = result.n_windows
    C, K = len(config.components), len(build_description(config.J, config.Q, config.model))
    chunk = max(1, min(n, 512))
    with h5_atomic_writer(path, "feature store segment") as f:
        f.attrs["format"] = SEGMENT_FORMAT
        f.attrs["segment_id"] = ident
        f.attrs["config_hash"] = config.digest()
        f.attrs["inputs"] = json.dumps([result.entry()])
        f["windows/input"] = np.zeros(n, np.int32)
        f["windows/record"] = np.concatenate(result.record_index).astype(np.int32) if n else np.zeros(0, np.int32)
        for s in config.scales:
            z = np.concatenate(result.features[s]) if n else np.zeros((0, C, K), np.complex64)
            f.create_dataset(f"features/{s}", data=np.stack([z.real, z.imag], axis=-1).astype(np.float32),
                             chunks=(chunk, C, K, 2), compression="lzf")
            intervals = np.concatenate(result.intervals[s]) if n else np.zeros((0, 2))
            f.create_dataset(f"intervals/{s}", data=intervals, chunks=(chunk, 2))
            f.create_dataset(f"lmst/{s}", data=sol_float(intervals) if n else np.zeros((0, 2)), chunks=(chunk, 2))
            if config.glitch_evidence:
                energy = np.concatenate(result.glitch[s]) if n else np.zeros((0, C, 2))
                f.create_dataset(f"glitch/{s}", data=energy.astype(np.float32), chunks=(chunk, C, 2))
    return ident


def segment_meta(path: Path, config: FeatureConfig) -> dict | None:
    """A finished one-input segment made with ``config``: its input entry, ``n_windows`` and ``segment_id``.

    None when it is damaged or made otherwise (then it is computed again).
    """
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != SEGMENT_FORMAT or f.attrs.get("config_hash") != config.digest():
                return None
            inputs = json.loads(f.attrs["inputs"])
            if not (isinstance(inputs, list) and len(inputs) == 1 and isinstance(inputs[0], dict)):
                return None
            K = len(build_description(config.J, config.Q, config.model))
            n = check_body(f, None, 1, config, K, path, "feature store segment")
            return {**inputs[0], "n_windows": n, "segment_id": str(f.attrs["segment_id"])}
    except (*H5_ERRORS, UnmixError):
        return None


def write_index(out: Path, config: FeatureConfig, inputs: list[dict], table: list[dict]) -> None:
    """Write the store's index over ``out`` atomically (temporary name, then rename)."""
    description = build_description(config.J, config.Q, config.model)
    with h5_atomic_writer(out, "feature store index") as g:
        g.attrs["format"] = FEATURE_FORMAT
        g.attrs["config"] = json.dumps(config.to_dict())
        g.attrs["config_hash"] = config.digest()
        g.attrs["unmix_version"] = __version__
        g.attrs["inputs"] = json.dumps(inputs)
        g.attrs["segments"] = json.dumps(table)
        fields = [(n, "S8" if description.dtype[n].kind == "U" else description.dtype[n])
                  for n in description.dtype.names]
        g["description"] = np.array(description.tolist(), dtype=fields)


def link_v1(store: Path, ident: str) -> str:
    """Put the format-1 file ``store`` into its segments folder as a segment (hard link; a copy where none can be
    made); returns the segment's name. A link left by an interrupted earlier attempt is reused."""
    folder = segments_dir(store)
    folder.mkdir(exist_ok=True)
    dst = folder / f"{ident}.h5"
    with contextlib.suppress(OSError):
        if os.path.samefile(dst, store):
            return dst.name
    try:
        with atomic_path(dst) as tmp:
            tmp.unlink()
            try:
                os.link(store, tmp)
            except OSError as exc:
                log.warning("%s: cannot hard-link it into %s/ (%s); copying it instead", store, folder.name,
                            exc.strerror)
                shutil.copyfile(store, tmp)
    except OSError as exc:
        if exc.errno in SPACE_ERRNOS:
            raise DiskFullError(f"disk full while copying the store into {folder.name}/ ({exc.strerror}); the "
                                "store is unchanged", store) from None
        raise
    return dst.name


def remove_unreferenced(store: Path, names: set[str]) -> None:
    """Remove the segment files the index does not name (left by interrupted runs); the folder when it is empty."""
    folder = segments_dir(store)
    if not folder.is_dir():
        return
    for p in folder.glob("*.h5"):
        if p.name not in names:
            with contextlib.suppress(OSError):
                p.unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()  # only when empty


def pending(store: Path, names: set[str]) -> list[Path]:
    """Finished segment files that the index does not name yet."""
    folder = segments_dir(store)
    return [p for p in folder.glob("*.h5") if p.name not in names] if folder.is_dir() else []

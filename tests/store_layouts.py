"""Feature stores in the layouts tests need: a copy of a store (index and segments), and the single-file format 1."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np

from unmix.features import FeatureStore
from unmix.features.config import FEATURE_FORMAT_V1
from unmix.features.segments import segments_dir


def copy_store(src: Path, dst: Path) -> Path:
    """A copy of the store ``src`` (its file and, when it has one, its segments folder) at ``dst``."""
    shutil.copy(src, dst)
    if segments_dir(src).is_dir():
        shutil.copytree(segments_dir(src), segments_dir(dst))
    return dst


def write_v1(store: FeatureStore, path: Path) -> Path:
    """The single file earlier versions wrote (format 1) holding what ``store`` holds."""
    with h5py.File(path, "w") as g:
        g.attrs["format"] = FEATURE_FORMAT_V1
        config = replace(store.config, glitch_evidence=False)  # format 1 predates glitch evidence
        g.attrs["config"] = json.dumps({k: v for k, v in config.to_dict().items() if k != "glitch_evidence"})
        g.attrs["config_hash"] = config.digest()
        g.attrs["unmix_version"] = "0.9"
        g.attrs["inputs"] = json.dumps(store.inputs)
        d = store.description
        g["description"] = np.array(d.tolist(), dtype=[(n, "S8" if d.dtype[n].kind == "U" else d.dtype[n])
                                                        for n in d.dtype.names])
        for s in store.scales:
            g.create_dataset(f"features/{s}", data=store.features(s), chunks=True, compression="lzf")
            g[f"intervals/{s}"] = store.intervals(s)
            g[f"lmst/{s}"] = store.lmst(s)
        for k, v in store.windows().items():
            g[f"windows/{k}"] = v.astype(np.int32)
    return path


def snapshot(store: Path) -> dict[str, bytes]:
    """Every file of the store at ``store`` (index, segments folder) by name, with its bytes."""
    files = [store] + (sorted(segments_dir(store).iterdir()) if segments_dir(store).is_dir() else [])
    return {str(p): p.read_bytes() for p in files if p.is_file()}

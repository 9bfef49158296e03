"""Clustering quality, measured: synthetic records with known sources, and a real record with a glitch list.

Synthetic labels (:data:`LABELS`): for each sub-window the source with the largest energy among quiet night, windy
day, glitch (glitches and spikes), wind burst (gusts and dust devils) and quake. The background's energy counts as
*windy day* when the daytime activity at the sub-window's midpoint (LMST) is ≥ 0.5, else as *quiet night*. Real
labels: a sub-window is a glitch window when it overlaps a catalogued glitch.

The synthetic benchmark measures the path a user takes: the default feature settings
(:func:`unmix.pipeline.default_features`) and the default preset, unless told otherwise, and reports how well models
trained with different seeds agree (ARI and matched agreement after Hungarian matching, :mod:`unmix.matching`).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unmix.clusters import ClusterTable
from unmix.features import FeatureConfig, FeatureStore, build_store
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress, sub_progress
from unmix.model.config import ModelConfig, preset
from unmix.model.metrics import adjusted_rand_index, dominated_clusters, precision_recall
from unmix.model.predict import predict
from unmix.model.train import train

LABELS = ("quiet night", "windy day", "glitch", "wind burst", "quake")

# Short windows for short tests: 13.7 min windows with the published 51 s finest scale at 20 sps.
SYNTHETIC_FEATURES = FeatureConfig(window=16384, hop=1024, scales=(1024, 4096, 16384), normalize=None)
# The real 10-sps record lasts ~3 h: 6.8 min windows, 25.6 s finest scale, hop = finest scale (tiling).
REAL_FEATURES = FeatureConfig(window=4096, hop=256, scales=(256, 1024, 4096), normalize=None)
REAL_RECORD = "raw/XB.ELYSE.03.BH_2019-05-22T2319_raw.mseed"
REAL_CATALOG = "catalogs/glitches_MPS_XB.ELYSE.03.BH_2019-05-22T2318_2019-05-23T2359.txt"


@dataclass
class ScaleScore:
    scale: int
    ari: float
    glitch_share: float  # share of glitch windows in glitch-dominated clusters (= glitch recall)
    label_counts: dict
    glitch_precision: float = float("nan")  # share of glitch windows among the windows of glitch-dominated clusters
    glitch_f1: float = float("nan")


def synthetic_labels(record, table: ClusterTable, scale: int, components: str | None = None) -> np.ndarray:
    """Label (index into :data:`LABELS`) of every window's sub-window at ``scale``, from the record's truth in the
    components ``components`` (the letters the features were made from; default: all)."""
    fs = record.config.sampling_rate
    lab = record.labels(window=scale / fs, hop=min(table.scales) / fs, components=components)
    j = table.scale_index(scale)
    return label_windows(lab, table.intervals[:, j, 0], table.lmst[:, j].mean(axis=1), fs)


def label_windows(lab, starts: np.ndarray, lmst: np.ndarray, fs: float) -> np.ndarray:
    """Labels of sub-windows starting at ``starts`` (POSIX s) from the truth's energies ``lab`` on the same grid.

    ``lab`` is a :class:`unmix.synthetic.WindowLabels` whose windows have the sub-window's length; ``lmst`` is the
    sub-window's mid-point in sols (only its fraction, the local time, matters). Background energy counts as *quiet
    night* when the daytime activity there is < 0.5, else as *windy day*; gusts and dust devils are *wind burst*.
    """
    from unmix.synthetic import daytime_activity

    idx = np.clip(np.searchsorted(lab.starts, starts - 0.5 / fs), 0, len(lab.starts) - 1)
    if np.any(np.abs(lab.starts[idx] - starts) > 1.0 / fs):
        raise RuntimeError("sub-windows do not line up with the synthetic record's label grid")
    e = lab.energy[idx]
    names = list(lab.names)
    col = {n: e[:, names.index(n)] for n in names}
    day = daytime_activity((np.asarray(lmst) % 1.0) * 24.0) >= 0.5
    energies = np.column_stack([
        np.where(day, 0.0, col["background"]),
        np.where(day, col["background"], 0.0),
        col["glitches"] + col["spikes"],
        col["wind"],
        col["quakes"],
    ])
    return energies.argmax(axis=1)


def score_scale(table: ClusterTable, labels: np.ndarray, scale: int) -> ScaleScore:
    """ARI against ``labels`` and the glitch clusters' precision, recall (share) and F1 at ``scale``.

    Glitch clusters are those in which more than half the windows are glitch windows.
    """
    j = table.scale_index(scale)
    clusters = table.cluster[:, j]
    glitch = labels == LABELS.index("glitch")
    counts = {name: int((labels == i).sum()) for i, name in enumerate(LABELS)}
    if not glitch.any():
        return ScaleScore(scale, adjusted_rand_index(labels, clusters), float("nan"), counts)
    precision, recall = precision_recall(clusters, glitch, dominated_clusters(clusters, glitch))
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return ScaleScore(scale, adjusted_rand_index(labels, clusters), recall, counts, precision, f1)


def seed_agreement(tables: dict[int, ClusterTable]) -> list[dict]:
    """For every pair of training seeds and every scale: ARI and matched agreement of their clusterings."""
    from unmix.matching import match_tables

    seeds = list(tables)
    out = []
    for i, a in enumerate(seeds):
        for b in seeds[i + 1:]:
            m = match_tables(tables[a], tables[b])
            out.append({"seeds": [a, b], "ari": {s: v.ari for s, v in m.items()},
                        "agreement": {s: v.agreement for s, v in m.items()}})
    return out


def synthetic_benchmark(sols: float = 2.0, seed: int = 0, hours: float | None = None,
                        features: FeatureConfig | None = None, model: ModelConfig | None = None,
                        train_seeds: tuple[int, ...] | None = None, synthetic: dict | None = None,
                        device: str = "auto", workdir: str | Path | None = None, progress: Progress = no_progress,
                        token: CancelToken = NO_CANCEL) -> dict:
    """Generate → features → train (one model per training seed) → predict → per-scale scores and seed agreement.

    ``features`` and ``model`` default to what ``unmix features`` and ``unmix train`` use
    (:func:`unmix.pipeline.default_features`, :func:`unmix.pipeline.default_model`), so the figures are those of
    the default path. ``runs[i]['scores']`` holds a :class:`ScaleScore` per scale; ``agreement`` the ARI and matched
    agreement between every two training seeds' clusterings, per scale. Labels come from the truth in the features'
    components (V only: the energies on V).
    """
    from unmix.pipeline import default_features, default_model
    from unmix.synthetic import SyntheticConfig, generate

    features = features or default_features()
    model = model or default_model()
    seeds = tuple(train_seeds) if train_seeds else (model.seed,)
    runs, tables = [], {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        rec = generate(SyntheticConfig(sols=sols, hours=hours, seed=seed, **(synthetic or {})), token=token)
        rec.write(tmp / "synth")
        t_syn = time.perf_counter() - t
        t = time.perf_counter()
        build_store([tmp / "synth" / "mixture.mseed"], tmp / "features.h5", features, device=device,
                    progress=sub_progress(progress, 0.0, 0.1), token=token)
        t_feat = time.perf_counter() - t
        store = FeatureStore(tmp / "features.h5")
        labels = None
        for i, s in enumerate(seeds):
            step = sub_progress(progress, 0.1 + 0.9 * i / len(seeds), 0.1 + 0.9 * (i + 1) / len(seeds))
            t = time.perf_counter()
            trained = train(store, tmp / f"model{s}.pt", model.replace(seed=s), device=device, progress=step,
                            token=token)
            t_train = time.perf_counter() - t
            table = predict(store, trained, device=device, token=token)
            tables[s] = table
            if labels is None:
                labels = {sc: synthetic_labels(rec, table, sc, features.components) for sc in table.scales}
            runs.append({"seed": s, "training_s": t_train,
                         "scores": [score_scale(table, labels[sc], sc) for sc in table.scales],
                         "occupancy": {sc: table.occupancy(sc).tolist() for sc in table.scales}})
    progress(1.0, "done")
    return {"kind": "synthetic", "sols": sols, "hours": hours, "seed": seed, "windows": store.n_windows,
            "labels": list(LABELS), "features": features.to_dict(), "model": model.to_dict(), "runs": runs,
            "agreement": seed_agreement(tables), "times": {"synthesis_s": t_syn, "features_s": t_feat}}


def glitch_windows(table: ClusterTable, scale: int, catalog) -> np.ndarray:
    """True where the sub-window at ``scale`` overlaps a catalogued glitch."""
    j = table.scale_index(scale)
    starts, ends = catalog.onsets(), np.array([e.end.timestamp for e in catalog], float)
    a, b = table.intervals[:, j, 0], table.intervals[:, j, 1]
    return ((starts[None, :] < b[:, None]) & (ends[None, :] > a[:, None])).any(axis=1)


def real_benchmark(data_dir: str | Path, features: FeatureConfig = REAL_FEATURES, model: ModelConfig | None = None,
                   train_seeds: tuple[int, ...] | None = None, device: str = "auto",
                   workdir: str | Path | None = None, progress: Progress = no_progress,
                   token: CancelToken = NO_CANCEL) -> dict:
    """The real 10-sps record with its MPS glitch list: precision/recall of glitch cluster(s) at the finest scale.

    Glitch clusters are those in which more than half the windows overlap a catalogued glitch; when none is, the
    cluster with the largest such share is used (and reported as a fallback).
    """
    from obspy import UTCDateTime

    from unmix.catalogs import read_catalog

    data_dir = Path(data_dir)
    model = model or preset("small")
    seeds = tuple(train_seeds) if train_seeds else (model.seed,)
    catalog = read_catalog(data_dir / REAL_CATALOG)
    runs = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        build_store([data_dir / REAL_RECORD], tmp / "features.h5", features, device=device,
                    progress=sub_progress(progress, 0.0, 0.1), token=token)
        t_feat = time.perf_counter() - t
        store = FeatureStore(tmp / "features.h5")
        for i, s in enumerate(seeds):
            step = sub_progress(progress, 0.1 + 0.9 * i / len(seeds), 0.1 + 0.9 * (i + 1) / len(seeds))
            t = time.perf_counter()
            trained = train(store, tmp / f"model{s}.pt", model.replace(seed=s), device=device, progress=step,
                            token=token)
            t_train = time.perf_counter() - t
            table = predict(store, trained, device=device, token=token)
            scale = min(table.scales)
            j = table.scale_index(scale)
            t0, t1 = table.intervals[:, j, 0].min(), table.intervals[:, j, 1].max()
            in_span = catalog.between(UTCDateTime(t0), UTCDateTime(t1))
            is_glitch = glitch_windows(table, scale, in_span)
            clusters = table.cluster[:, j]
            chosen = dominated_clusters(clusters, is_glitch)
            fallback = len(chosen) == 0
            if fallback:
                ids = np.unique(clusters)
                chosen = ids[[np.argmax([is_glitch[clusters == k].mean() for k in ids])]]
            precision, recall = precision_recall(clusters, is_glitch, chosen)
            runs.append({"seed": s, "training_s": t_train, "glitch_clusters": [int(c) for c in chosen],
                         "fallback": fallback, "precision": precision, "recall": recall,
                         "occupancy": table.occupancy(scale).tolist()})
    progress(1.0, "done")
    return {"kind": "real", "record": REAL_RECORD, "catalog": REAL_CATALOG, "glitches_in_span": len(in_span),
            "windows": table.n_windows, "glitch_windows": int(is_glitch.sum()), "scale": scale,
            "features": features.to_dict(), "model": model.to_dict(), "runs": runs, "times": {"features_s": t_feat}}


def training_speed(config: ModelConfig, features: int = 420, scales: tuple[int, ...] = (1024, 4096, 16384, 65536),
                   channels: int = 3, steps: int = 5, device: str = "auto") -> dict:
    """Seconds per optimiser step of ``config``'s network at its batch size, on random standardised inputs.

    ``features`` columns per component and scale (420: the real and imaginary parts of the 210 ``scat+cov``
    coefficients, J=8). Measures the speed of training alone: no data loading, no validation pass.
    """
    from unmix.devices import resolve_device
    from unmix.model.network import build_network, count_parameters
    from unmix.model.train import train_step

    dev = resolve_device(device)
    torch.manual_seed(config.seed)
    net = build_network(config, {s: features for s in scales}, channels, device=dev)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    xb = {s: torch.randn(config.batch_size, channels, features, device=dev) for s in scales}

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    train_step(net, opt, xb, 1.0, config.clip)  # warm-up: allocations, kernel selection
    sync()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        terms = train_step(net, opt, xb, 1.0, config.clip)
        sync()
        times.append(time.perf_counter() - t0)
    step_s = float(np.median(times))
    out = {"device": str(dev), "parameters": count_parameters(net), "batch_size": config.batch_size,
           "scales": list(scales), "features": features, "step_s": step_s, "step_min_s": float(min(times)),
           "windows_per_s": config.batch_size / step_s, "loss": float(terms["loss"].detach())}
    if dev.type == "cuda":
        out["cuda_peak_gb"] = torch.cuda.max_memory_allocated(dev) / 2**30
        out["gpu"] = torch.cuda.get_device_name(dev)
    return out

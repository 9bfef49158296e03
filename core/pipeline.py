"""The pipeline layer: one set of defaults and one reuse/resume policy, shared by the CLI, the GUI and the demo.

Each step takes paths and options, follows the job protocol of :mod:`unmix.jobs` and returns what it produced. The
policy is the same wherever a step is started from:

- **features**: inputs already in the store (same file content, same settings) are skipped; a store of other
  settings is refused (:func:`unmix.features.build_store`).
- **train**: a checkpoint already at ``out`` that was trained with the same settings on the same store is *reused*
  when it has run its epochs and *resumed* otherwise (a cancelled run continues where it stopped); a checkpoint of
  other settings, or trained before the store grew, is refused unless ``overwrite``.
- **cluster**: an HDF5 table already at ``out`` computed by the same model from the same store is reused; anything
  else there is refused unless ``overwrite``.
- **separate**: files whose outputs are complete (provenance written last) are skipped
  (:func:`unmix.export.export_separation`).

The defaults live here too: :func:`default_features` and :data:`DEFAULT_PRESET`; the CLI's options and the GUI's
forms read them instead of repeating numbers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from unmix.errors import ConfigError, OutputExistsError
from unmix.features.config import FeatureConfig
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress, sub_progress

if TYPE_CHECKING:
    from unmix.clusters import ClusterTable, TableSummary

#: The model preset every entry point starts from (``unmix train``, the GUI's Train form, the demo).
DEFAULT_PRESET = "small"
#: ``unmix separate``'s method when none is given and no prior is asked for (a prior makes it scatcov).
DEFAULT_SEPARATION_METHOD = "template"
#: How many windows ``separate --target-cluster`` separates by default (the most confident one).
DEFAULT_TARGET_COUNT = 1
#: The waveform format separated products are written in by default.
DEFAULT_OUTPUT_FORMAT = "MSEED"


def default_features(**changes) -> FeatureConfig:
    """The feature settings every entry point starts from (the :class:`FeatureConfig` defaults), with ``changes``."""
    return FeatureConfig(**changes)


def default_model(preset: str = DEFAULT_PRESET, **changes):
    """The model configuration of ``preset`` with ``changes`` applied (None values ignored)."""
    from unmix.model import preset as model_preset

    return model_preset(preset, **changes)


# --- features -------------------------------------------------------------------------------------------------------


def synthetic_input_path(folder: str | Path, params: dict) -> Path:
    """Where a synthetic record of these parameters is written for the feature store (one file per parameter set)."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    return Path(folder) / f"synthetic_seed{params.get('seed', 0)}_{digest}.mseed"


def write_synthetic_input(params: dict, folder: str | Path, progress: Progress = no_progress,
                          token: CancelToken = NO_CANCEL) -> Path:
    """Generate the synthetic record of ``params`` and write its mixture as miniSEED (skipped when already there)."""
    from unmix.atomic import atomic_path, write_stream
    from unmix.synthetic import SyntheticConfig, generate

    path = synthetic_input_path(folder, params)
    if path.exists():
        return path
    keys = ("sols", "hours", "seed", "gaps", "start_sol", "sampling_rate")
    synth = generate(SyntheticConfig(**{k: params[k] for k in keys if params.get(k) is not None}),
                     progress=progress, token=token)
    with atomic_path(path) as tmp:
        write_stream(synth.mixture, tmp, "MSEED")
    return path


def features(inputs: list[str | Path], out: str | Path, config: FeatureConfig | None = None, *,
             synthetic: list[dict] | None = None, work_dir: str | Path | None = None, device: str = "auto",
             workers: int = 0, scheduler: str | None = None, allow_damaged: bool = False,
             on_error: Callable[[str], None] | None = None, progress: Progress = no_progress,
             token: CancelToken = NO_CANCEL) -> dict:
    """Feature store of ``inputs`` (and of the ``synthetic`` records, written to files in ``work_dir`` first).

    Returns the report of :func:`unmix.features.build_store` (inputs failed are listed there, not raised)."""
    from unmix.features import build_store

    paths = [str(p) for p in inputs]
    synthetic = synthetic or []
    folder = Path(work_dir) if work_dir else Path(out).parent
    for i, params in enumerate(synthetic):
        step = sub_progress(progress, 0.1 * i / len(synthetic), 0.1 * (i + 1) / len(synthetic))
        paths.append(str(write_synthetic_input(params, folder, step, token)))
    if not paths:
        raise ConfigError("nothing to compute features of: give input files or a synthetic record")
    return build_store(paths, out, config or default_features(), device=device, workers=workers,
                       scheduler=scheduler, allow_damaged=allow_damaged, on_error=on_error,
                       progress=sub_progress(progress, 0.1 if synthetic else 0.0, 1.0), token=token)


# --- train ----------------------------------------------------------------------------------------------------------


@dataclass
class Trained:
    """What :func:`train` did: the model, and whether the checkpoint on disk was reused or resumed."""

    model: object  # unmix.model.TrainedModel
    path: Path
    reused: bool = False
    resumed: bool = False

    @property
    def last_log(self) -> dict:
        return self.model.logs[-1] if self.model.logs else {}

    def summary(self) -> dict:
        """JSON-ready: path, epochs, what was done with the checkpoint, the last epoch's log."""
        return {"model": str(self.path), "reused": self.reused, "resumed": self.resumed,
                "epochs": self.model.epoch, "log": self.last_log}


def _checkpoint_policy(path: Path, config, store, overwrite: bool, own_settings: bool) -> tuple[str, object]:
    """What to do with the checkpoint at ``path``: ('new' | 'reuse' | 'resume', the configuration to train with)."""
    from unmix.model import ModelConfig
    from unmix.model.train import read_checkpoint

    if own_settings and overwrite:
        raise ConfigError("continuing a checkpoint with its own settings and replacing it exclude each other")
    if not path.exists() or overwrite:
        if own_settings:
            raise ConfigError("nothing to continue: no checkpoint at this path", path)
        return "new", config or default_model()
    ck = read_checkpoint(path, resume=True)
    try:
        saved = ModelConfig.from_dict(ck["model_config"])
    except (ConfigError, TypeError) as exc:
        raise ConfigError(f"damaged model checkpoint: bad model configuration ({exc})", path) from None
    if own_settings:
        config = saved if config is None else saved.replace(epochs=config.epochs)
    config = config or default_model()
    if saved.replace(epochs=config.epochs) != config or ck["feature_digest"] != store.config_hash:
        raise OutputExistsError("holds a model trained with other settings or features; replace it (--overwrite, or "
                                "'retrain' in the GUI) or choose another path", path)
    if int(ck["n_windows"]) != store.n_windows:
        raise OutputExistsError(f"holds a model trained on {int(ck['n_windows'])} windows, the store now has "
                                f"{store.n_windows}; replace it (--overwrite, or 'retrain' in the GUI)", path)
    if ck["finished"] and int(ck["epoch"]) >= config.epochs:
        return "reuse", config
    return "resume", config


def train(store: str | Path, out: str | Path, config=None, *, own_settings: bool = False, overwrite: bool = False,
          device: str = "auto", on_epoch: Callable[[dict, object], None] | None = None,
          progress: Progress = no_progress,
          token: CancelToken = NO_CANCEL, memory_budget: int | None = None) -> Trained:
    """Train the factorial GMVAE on ``store`` into the checkpoint ``out`` (policy: module docstring).

    ``config``: a :class:`unmix.model.ModelConfig` (default: the :data:`DEFAULT_PRESET`). ``own_settings``: continue
    the checkpoint at ``out`` with the settings it was trained with (only ``config.epochs`` is taken, if given).
    ``on_epoch`` is called with each epoch's log and the configuration trained with. ``memory_budget`` (bytes; None:
    the model's default): a store needing more is streamed from disk (:mod:`unmix.model.stream`)."""
    from unmix.features import FeatureStore
    from unmix.model import Training, load_model

    fs = FeatureStore(store)
    path = Path(out)
    action, config = _checkpoint_policy(path, config, fs, overwrite, own_settings)
    if action == "reuse":
        progress(1.0, "reusing the trained model")
        return Trained(load_model(path, "cpu"), path, reused=True)
    run = Training(fs, path, config, device=device, resume=action == "resume", overwrite=overwrite,
                   progress=progress, token=token, memory_budget=memory_budget)
    for log in run:
        if on_epoch is not None:
            on_epoch(log, run.config)
    return Trained(run.run(), path, resumed=action == "resume")


# --- cluster --------------------------------------------------------------------------------------------------------

TABLE_SUFFIXES = (".h5", ".hdf5", ".csv")


@dataclass
class Clustered:
    """What :func:`cluster` did: where the table is, whether the one on disk was reused, and each scale's occupancy.

    ``table`` is read from ``path`` on first use when the run wrote it batch by batch (an HDF5 table) or reused it;
    ``summary`` is what a reused table says about itself (names included), read without its per-window arrays.
    ``outliers``: per scale, each outlier cluster's number → the cluster it was split from
    (:mod:`unmix.model.outliers`); ``splits`` the same for sparsity splits (:mod:`unmix.model.sparsity_split`);
    ``glitch_class``: the glitch class's ``cluster``, ``share`` and whether the store had ``evidence`` (None: the
    model has none)."""

    path: Path
    occupancy: dict[int, list[int]]
    reused: bool = False
    _table: ClusterTable | None = None
    summary: TableSummary | None = None
    outliers: dict[int, dict[int, int]] = field(default_factory=dict)
    splits: dict[int, dict[int, int]] = field(default_factory=dict)
    glitch_class: dict | None = None

    @property
    def table(self) -> ClusterTable:
        if self._table is None:
            from unmix.clusters import ClusterTable

            self._table = ClusterTable.load(self.path)
        return self._table

    @classmethod
    def of(cls, table: ClusterTable, path: Path, reused: bool = False) -> Clustered:
        return cls(path, {s: table.occupancy(s).tolist() for s in table.scales}, reused, table)


def _same_inputs(table: ClusterTable | TableSummary, store) -> bool:
    digests = [str(i.get("sha256", "")) for i in table.inputs if isinstance(i, dict)]
    return digests == [str(i.get("sha256", "")) for i in store.inputs] and table.n_windows == store.n_windows


def cluster(store: str | Path, model: str | Path, out: str | Path, *, overwrite: bool = False,
            device: str = "auto", progress: Progress = no_progress, token: CancelToken = NO_CANCEL,
            memory_budget: int | None = None) -> Clustered:
    """Cluster every window of ``store`` with ``model`` and save the table at ``out`` (.h5 keeps everything, written
    batch by batch; .csv the times, clusters and confidences); an up-to-date HDF5 table on disk is reused (policy:
    module docstring). ``memory_budget``: as for :func:`train`."""
    from unmix.clusters import read_summary
    from unmix.features import FeatureStore
    from unmix.model import load_model, predict, predict_to_file
    from unmix.model.predict import glitch_class_record

    path = Path(out)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise ConfigError(f"a cluster table must end in {', '.join(TABLE_SUFFIXES)}", path)
    fs = FeatureStore(store)
    trained = load_model(model)
    derived = {"outliers": trained.outlier_clusters(), "splits": trained.split_clusters(),
               "glitch_class": glitch_class_record(fs, trained)}
    if path.exists() and not overwrite:
        if path.suffix.lower() == ".csv":
            raise OutputExistsError("already exists; pass --overwrite to replace it", path)
        summary = read_summary(path)  # not the whole table: a mission's is ≈ 1.8 GB
        if summary.meta.get("model_digest") != trained.digest() or not _same_inputs(summary, fs):
            raise OutputExistsError("holds clusters of another model or store; replace it (--overwrite, or "
                                    "'recompute' in the GUI) or choose another path", path)
        progress(1.0, "reusing the cluster table on disk")
        return Clustered(path, {s: summary.occupancy(s).tolist() for s in summary.scales}, True, summary=summary,
                         **derived)
    if path.suffix.lower() != ".csv":
        occupancy = predict_to_file(fs, trained, path, overwrite=True, device=device, progress=progress,
                                    token=token, memory_budget=memory_budget)
        return Clustered(path, {s: c.tolist() for s, c in occupancy.items()}, **derived)
    table = predict(fs, trained, device=device, progress=sub_progress(progress, 0.0, 0.95), token=token,
                    memory_budget=memory_budget)
    token.check()
    table.save(path, overwrite=True)
    progress(1.0, "saved")
    done = Clustered.of(table, path)
    done.outliers, done.splits, done.glitch_class = derived["outliers"], derived["splits"], derived["glitch_class"]
    return done


# --- separate -------------------------------------------------------------------------------------------------------


def cluster_spans(table: ClusterTable, clusters: list[int], scale: int, key: str | None = None
                  ) -> list[tuple[float, float]]:
    """Merged UTC spans (POSIX seconds) of every window of ``clusters`` at ``scale`` (of record ``key`` if given)."""
    import numpy as np

    from unmix.intervals import merge_intervals

    s = table.scale_index(scale)
    members = table.members(list(clusters), scale)
    if key is not None and table.input_index is not None and table.record_index is not None and table.inputs:
        keys = np.array([(table.inputs[int(i)].get("records") or [{}] * (int(j) + 1))[int(j)].get("key", "")
                         for i, j in zip(table.input_index[members], table.record_index[members], strict=True)])
        if np.any(keys == key):
            members = members[keys == key]
    if members.size == 0:
        raise ConfigError(f"no window of cluster(s) {', '.join(map(str, clusters))} at scale {scale}")
    return merge_intervals(tuple(iv) for iv in table.intervals[members, s])


def separate_stream(stream, method: str, options: dict | None = None,
                    spans: list[tuple[float, float]] | None = None, progress: Progress = no_progress,
                    token: CancelToken = NO_CANCEL):
    """Separate ``stream`` (or each of ``spans``, POSIX seconds, one after the other) in memory with a registered
    method; returns the pieces separated (one Stream) and one :class:`unmix.separation.SeparationResult` of them."""
    from obspy import Stream, UTCDateTime

    from unmix.errors import DataError
    from unmix.separation import SeparationResult, get_method

    separator = get_method(method, **dict(options or {}))
    pieces = [stream] if not spans else [stream.slice(UTCDateTime(a), UTCDateTime(b)) for a, b in spans]
    pieces = [p for p in pieces if len(p) and any(tr.stats.npts > 1 for tr in p)]
    if not pieces:
        raise DataError("nothing to separate: the target holds no samples")
    target, background, removed, infos = Stream(), Stream(), {}, []
    for i, piece in enumerate(pieces):
        token.check()
        result = separator.separate(piece, progress=sub_progress(progress, i / len(pieces), (i + 1) / len(pieces)),
                                    token=token)
        target += piece
        background += result.background
        for name, part in result.removed.items():
            removed.setdefault(name, Stream())
            removed[name] += part
        infos.append(result.info)
    info = dict(infos[0]) if len(infos) == 1 else {"method": method, "pieces": infos}
    info.setdefault("method", method)
    progress(1.0, "separated")
    return target, SeparationResult(background, removed, info)


# --- cluster-driven targets (the paper's workflow) ------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterTarget:
    """One window chosen as a separation target: its table row, the span of its sub-window at the scale."""

    window: int
    cluster: int
    start: float  # POSIX seconds
    end: float
    confidence: float


def cluster_targets(table: ClusterTable, clusters: list[int], scale: int, count: int = 1) -> list[ClusterTarget]:
    """The ``count`` most confident windows of ``clusters`` at ``scale`` whose sub-windows do not overlap (each a
    target of its own, as the published workflow separates the most confident window of a cluster)."""
    if count < 1:
        raise ConfigError("the number of target windows must be at least 1")
    s = table.scale_index(scale)
    chosen: list[ClusterTarget] = []
    for i in table.members(list(clusters), scale):
        a, b = (float(v) for v in table.intervals[i, s])
        if all(b <= t.start or a >= t.end for t in chosen):
            chosen.append(ClusterTarget(int(i), int(table.cluster[i, s]), a, b, float(table.confidence[i, s])))
            if len(chosen) == count:
                break
    if not chosen:
        raise ConfigError(f"no window of cluster(s) {', '.join(map(str, clusters))} at scale {scale}")
    return chosen


def _target_stream(snippets, k: int):
    """The ``k``-th snippet as an ObsPy Stream with the ids, start and rate of the record it was cut from."""
    from obspy import Stream, Trace

    traces = []
    for c, sid in enumerate(snippets.ids):
        net, sta, loc, cha = sid.split(".")
        traces.append(Trace(snippets.data[k, c].copy(), header={
            "network": net, "station": sta, "location": loc, "channel": cha, "starttime": snippets.starts[k],
            "sampling_rate": snippets.sampling_rate}))
    return Stream(traces)


def target_stem(source: str, target: ClusterTarget, table: ClusterTable, scale: int) -> str:
    """``<input stem>.c<cluster>-s<scale>.<UTC start>``: one set of output names per target."""
    from obspy import UTCDateTime

    return f"{Path(source).stem}.c{target.cluster}-s{scale}.{UTCDateTime(target.start).strftime('%Y%m%dT%H%M%S')}"


def separate_cluster_windows(table: ClusterTable, clusters: list[int], scale: int, out_dir: str | Path,
                             method: str, options: dict | None = None, count: int = DEFAULT_TARGET_COUNT,
                             fmt: str = DEFAULT_OUTPUT_FORMAT,
                             overwrite: bool = False, table_path: str | Path | None = None,
                             progress: Progress = no_progress, token: CancelToken = NO_CANCEL) -> dict:
    """Separate the ``count`` most confident windows of ``clusters`` at ``scale`` (:func:`cluster_targets`), read
    from the table's input files, and export each as ``unmix separate`` does (products + provenance, written last).

    Targets already exported (their provenance exists) are skipped unless ``overwrite``; the output folder is
    locked for the run. Returns ``{'done': [stems], 'skipped': [stems], 'outputs': [paths]}``."""
    from unmix.export import PROVENANCE_SUFFIX, export_result
    from unmix.lock import folder_lock
    from unmix.separation import get_method
    from unmix.snippets import read_snippets

    targets = cluster_targets(table, clusters, scale, count)
    components = str((table.meta.get("feature_config") or {}).get("components", "UVW"))
    separator = get_method(method, **dict(options or {}))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"done": [], "skipped": [], "outputs": []}
    cache: dict = {}
    with folder_lock(out):
        for k, target in enumerate(targets):
            snippets = read_snippets(table, [target.window], scale, components, token=token, cache=cache)
            stem = target_stem(snippets.sources[0], target, table, scale)
            if (out / f"{stem}{PROVENANCE_SUFFIX}").exists() and not overwrite:
                report["skipped"].append(stem)
                continue
            step = sub_progress(progress, k / len(targets), (k + 1) / len(targets))
            result = separator.separate(_target_stream(snippets, 0), progress=step, token=token)
            result.info["target"] = {"table": str(table_path) if table_path else "", "cluster": target.cluster,
                                     "cluster_name": table.name_of(scale, target.cluster), "scale": int(scale),
                                     "window": target.window, "confidence": target.confidence,
                                     "input": snippets.sources[0], "start": target.start, "end": target.end}
            report["outputs"] += export_result(result, out, stem, fmt=fmt, overwrite=overwrite)
            report["done"].append(stem)
    progress(1.0, "separated")
    return report


__all__ = ["DEFAULT_PRESET", "ClusterTarget", "Clustered", "Trained", "cluster", "cluster_spans", "cluster_targets",
           "separate_cluster_windows", "default_features", "default_model",
           "features", "separate_stream", "synthetic_input_path", "train", "write_synthetic_input"]

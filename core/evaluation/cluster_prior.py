"""``unmix bench separation --prior clusters``: the scattering-covariance prior of the published protocol.

Instead of snippets cut from a clean file, the prior is a cluster of a model trained on the benchmark's own
background record: the record's features (default settings, or the largest window and scales that fit a short
record), the default model, its cluster table, and its quietest clusters at the finest scale (ranked by the median RMS
of their windows; per target, of their windows outside the target, which the separator never takes), as many as it
takes to hold :data:`PRIOR_WINDOWS` windows, handed to scatcov/hybrid as :meth:`unmix.prior.Prior.from_clusters`
does for ``unmix separate --table T --background-cluster K[,K2,...] --scale S``. The published
configurations likewise draw one prior from one or two clusters the analysts chose; a single small cluster (2–5
windows of a 75-min record) gave scatcov too few snippets to estimate the statistics from.
The record is written standardised (σ units, as the benchmark's mixtures are) so that the snippets read back from
the table share the mixture's units and time base. Everything is kept in a work folder keyed by the record's
content, so a rerun reuses the store, the model and the table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unmix.errors import ConfigError, DataError
from unmix.evaluation.cases import Background, background_stream
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress, sub_progress
from unmix.separation.scatcov import FEW_SNIPPETS

#: Fewest windows a record must give for a model to be trained on it (the window shrinks until it gives that many).
MIN_WINDOWS = 16
#: Windows the chosen clusters must hold together (the quietest clusters are added until they do): scatcov's own
#: threshold below which it warns that the statistics are poorly estimated.
PRIOR_WINDOWS = FEW_SNIPPETS


@dataclass
class ClusterPrior:
    """A trained record's table and the background clusters chosen on it (``info``: what was done and why)."""

    table: object  # unmix.clusters.ClusterTable
    clusters: tuple[int, ...]
    scale: int
    info: dict = field(default_factory=dict)
    rms: np.ndarray | None = None  # (N,) RMS of every window's sub-window at ``scale``

    def for_target(self, t0: float, t1: float) -> ClusterPrior:
        """The quietest clusters counting only windows whose sub-windows at ``scale`` lie outside ``[t0, t1]`` (POSIX
        s; the separated span, which the separator's prior never overlaps); DataError when fewer than 2 are left."""
        s = self.table.scale_index(self.scale)
        iv = self.table.intervals[:, s]
        free = (iv[:, 1] <= t0) | (iv[:, 0] >= t1)
        stats = cluster_stats(self.rms, self.table.cluster[:, s], free)
        chosen = quietest_clusters(stats)
        return ClusterPrior(self.table, chosen, self.scale,
                            {**self.info, "clusters": list(chosen), "record_clusters": list(self.clusters),
                             "target_clusters": _keyed(stats)}, self.rms)

    def prior(self, n_prior: int | None = None, near_lmst: bool | None = None):
        """The :class:`unmix.prior.Prior` of the chosen clusters (None options: the separator's protocol decides)."""
        from unmix.prior import Prior

        return Prior.from_clusters(self.table, list(self.clusters), self.scale, n_prior=n_prior, near_lmst=near_lmst)


def fitting_features(n_samples: int, window: int | None = None):
    """The default feature settings, or (record too short for :data:`MIN_WINDOWS` default windows) the largest
    window ``1024·2^k`` that gives them, with the default scales that fit; and a note saying which (None: default).
    ``window``: this window (samples) instead, with the default scales that fit."""
    from unmix.pipeline import default_features

    config = default_features()
    hop = config.hop

    def count(window: int) -> int:
        return (n_samples - window) // hop + 1 if n_samples >= window else 0

    if window is not None:
        scales = tuple(s for s in config.scales if s <= window)
        if not scales or window % scales[0] or count(window) < MIN_WINDOWS:
            raise ConfigError(f"a prior window of {window} samples must be a multiple of {config.scales[0]} giving "
                              f">= {MIN_WINDOWS} windows of the {n_samples}-sample background")
        return default_features(window=window, scales=scales), (f"features use the window asked for, {window} "
                                                                f"samples, scales {scales}")
    if count(config.window) >= MIN_WINDOWS:
        return config, None
    window = config.scales[0]
    while window * 2 <= config.window and count(window * 2) >= MIN_WINDOWS:
        window *= 2
    if count(window) < MIN_WINDOWS:
        raise DataError(f"a background of {n_samples} samples gives fewer than {MIN_WINDOWS} windows of "
                        f"{window} samples; a cluster prior needs a longer record")
    scales = tuple(s for s in config.scales if s <= window)
    note = (f"the background ({n_samples} samples) is too short for the default {config.window}-sample window "
            f"({count(config.window)} window(s)); features use window {window}, scales {scales}")
    return default_features(window=window, scales=scales), note


def _record_folder(bg: Background, work: Path) -> Path:
    digest = hashlib.sha256(np.ascontiguousarray(bg.data).tobytes()).hexdigest()[:12]
    return work / f"{Path(bg.path).stem}-{digest}"


def _write_record(bg: Background, folder: Path) -> Path:
    """The standardised background as a float64 miniSEED file (written once)."""
    from unmix.atomic import atomic_path, write_stream

    path = folder / "background.mseed"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            write_stream(background_stream(bg), tmp, "MSEED")
    return path


def window_rms(table, scale: int, components: str, token: CancelToken = NO_CANCEL) -> np.ndarray:
    """(N,) RMS (all components) of every window's sub-window at ``scale``, read from the table's input files."""
    from unmix.snippets import read_snippets

    snip = read_snippets(table, np.arange(table.n_windows), scale, components=components, token=token)
    return np.sqrt(np.mean(np.asarray(snip.data, dtype=np.float64) ** 2, axis=(1, 2)))


def cluster_stats(rms: np.ndarray, labels: np.ndarray, keep: np.ndarray | None = None) -> dict[int, dict]:
    """Per cluster: its window count and the median RMS of its windows (only those in ``keep`` when given)."""
    keep = np.ones(len(labels), bool) if keep is None else np.asarray(keep, bool)
    return {int(k): {"windows": int(((labels == k) & keep).sum()),
                     "median_rms": float(np.median(rms[(labels == k) & keep])) if ((labels == k) & keep).any()
                     else float("inf")} for k in np.unique(labels)}


#: how the benchmark's log states the choice
QUIETEST = f"the quietest clusters, as many as hold >= {PRIOR_WINDOWS} windows together"


def named(clusters: tuple[int, ...]) -> str:
    """'cluster 4' or 'clusters 4, 10, 12'."""
    return ("cluster " if len(clusters) == 1 else "clusters ") + ", ".join(str(k) for k in clusters)


def _keyed(stats: dict[int, dict]) -> dict[str, dict]:
    return {str(k): v for k, v in stats.items()}


def describe(stats: dict[int, dict], scale: int) -> str:
    """'cluster: windows, median RMS' for every cluster with windows, quietest first."""
    ranked = sorted((k for k in stats if stats[k]["windows"]), key=lambda k: stats[k]["median_rms"])
    return (f"cluster: windows, median RMS at scale {scale}: "
            + ", ".join(f"{k}: {stats[k]['windows']}, {stats[k]['median_rms']:.3f} σ" for k in ranked))


def quietest_clusters(stats: dict[int, dict], windows: int = PRIOR_WINDOWS) -> tuple[int, ...]:
    """The clusters of lowest median RMS, quietest first, as many as it takes to hold ``windows`` windows together
    (all of them when they hold fewer); DataError when they hold fewer than 2, the least a prior needs."""
    ranked = sorted((k for k, v in stats.items() if v["windows"]), key=lambda k: (stats[k]["median_rms"], k))
    if sum(stats[k]["windows"] for k in ranked) < 2:
        raise DataError("the clusters hold fewer than 2 windows; a prior needs at least 2")
    chosen, held = [], 0
    for k in ranked:
        chosen.append(k)
        held += stats[k]["windows"]
        if held >= windows:
            break
    return tuple(chosen)


def build_cluster_prior(bg: Background, work: str | Path, epochs: int | None = None, device: str = "auto",
                        say: Callable[[str], None] = lambda line: None, window: int | None = None,
                        progress: Progress = no_progress, token: CancelToken = NO_CANCEL) -> ClusterPrior:
    """Features (``window``: see :func:`fitting_features`), default model (``epochs``: None keeps the preset's) and
    cluster table of ``bg`` in ``work`` (reused when there), and the quietest clusters at the finest scale (see
    :func:`quietest_clusters`) as the background prior."""
    from unmix import pipeline

    if epochs is not None and epochs < 1:
        raise ConfigError(f"the prior model's epochs must be >= 1, got {epochs}")
    folder = _record_folder(bg, Path(work))
    record = _write_record(bg, folder)
    config, note = fitting_features(bg.data.shape[1], window)
    if note:
        say(f"prior: {Path(bg.path).name}: {note}")
    store = folder / ("features.h5" if config.window == 65536 else f"features-w{config.window}.h5")
    report = pipeline.features([record], store, config, device=device, progress=sub_progress(progress, 0.0, 0.3),
                               token=token)
    if report.get("failed"):
        raise DataError(f"features of the background failed: {report['failed']}", record)
    model_config = pipeline.default_model(epochs=epochs)
    stem = store.stem.replace("features", "") + f"-e{model_config.epochs}"
    trained = pipeline.train(store, folder / f"model{stem}.pt", model_config, device=device,
                             progress=sub_progress(progress, 0.3, 0.85), token=token)
    clustered = pipeline.cluster(store, trained.path, folder / f"clusters{stem}.h5", device=device,
                                 progress=sub_progress(progress, 0.85, 0.95), token=token)
    table = clustered.table
    scale = min(table.scales)
    rms = window_rms(table, scale, config.components, token)
    stats = cluster_stats(rms, table.cluster[:, table.scale_index(scale)])
    chosen = quietest_clusters(stats)
    say(f"prior: {Path(bg.path).name}: model {trained.path} ({'reused' if trained.reused else 'trained'}, "
        f"{model_config.epochs} epochs), table {clustered.path} ({table.n_windows} windows); background "
        f"{named(chosen)} at scale {scale}: {QUIETEST} ({describe(stats, scale)})")
    progress(1.0, "cluster prior ready")
    info = {"source": "clusters", "work": str(folder), "model": str(trained.path), "table": str(clustered.path),
            "model_reused": trained.reused, "epochs": model_config.epochs, "window": config.window,
            "scales": list(config.scales), "features_note": note, "clusters": list(chosen), "scale": scale,
            "cluster_stats": _keyed(stats)}
    return ClusterPrior(table, chosen, scale, info, rms)

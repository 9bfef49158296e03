"""Inference: every window and scale of a feature store → a :class:`unmix.clusters.ClusterTable`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from unmix.clusters import ClusterTable, TableWriter
from unmix.devices import resolve_device
from unmix.errors import DataError
from unmix.features import FeatureStore
from unmix.h5safe import h5_atomic_writer
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress
from unmix.model import stream
from unmix.model.trained import TrainedModel, load_model

log = logging.getLogger(__name__)
PREDICT_BATCH = 4096


def predict(store: FeatureStore | str | Path, model: TrainedModel | str | Path, device: str = "auto",
            batch_size: int = PREDICT_BATCH, progress: Progress = no_progress,
            token: CancelToken = NO_CANCEL, memory_budget: int | None = None) -> ClusterTable:
    """Cluster, confidence, posterior probabilities and deterministic latent mean of every window at every scale.

    The network runs in evaluation mode (BatchNorm running statistics); the latent is the mean of q(z|x, y) with y
    the posterior probabilities, not a random Gumbel draw, so the same model and store always give the same table.
    An ensemble gives its members' consensus (:meth:`unmix.model.TrainedModel.infer`).

    A store whose inputs need more than ``memory_budget`` bytes (None:
    :data:`unmix.model.stream.DEFAULT_MEMORY_BUDGET`) is read one store chunk at a time (the next one read in the
    background); the returned table holds every window's (S, K) probabilities and (S, latent) latents (about 0.9 KB
    per window with the small preset). :func:`predict_to_file` writes them to disk as they come instead.
    """
    store, model, dev = _setup(store, model, device)
    n, S = store.n_windows, len(model.scales)
    prob = np.zeros((n, S, model.n_clusters), np.float32)
    latent = np.zeros((n, S, model.config.latent), np.float32)
    for a, p, z in _batches(store, model, dev, batch_size, memory_budget, progress, token):
        prob[a:a + len(p)], latent[a:a + len(p)] = p, z
    windows = store.windows()
    table = ClusterTable(
        scales=model.scales,
        intervals=np.stack([store.intervals(s) for s in model.scales], axis=1),
        lmst=np.stack([store.lmst(s) for s in model.scales], axis=1),
        cluster=prob.argmax(-1).astype(np.int16),
        confidence=prob.max(-1).astype(np.float32),
        probabilities=prob,
        latent=latent,
        input_index=windows["input"].astype(np.int32),
        record_index=windows["record"].astype(np.int32),
        inputs=list(store.inputs),
        meta=_meta(store, model),
    )
    progress(1.0, "done")
    return table


def predict_to_file(store: FeatureStore | str | Path, model: TrainedModel | str | Path, out: str | Path,
                    overwrite: bool = False, device: str = "auto", batch_size: int = PREDICT_BATCH,
                    progress: Progress = no_progress, token: CancelToken = NO_CANCEL,
                    memory_budget: int | None = None) -> dict[int, np.ndarray]:
    """What :func:`predict` computes, written to the HDF5 cluster table ``out`` batch by batch (atomically: the
    file appears only when complete), so memory does not grow with the store; returns each scale's occupancy."""
    store, model, dev = _setup(store, model, device)
    with h5_atomic_writer(out, "cluster table", overwrite=overwrite) as f:
        writer = TableWriter(f, model.scales, store.n_windows, model.n_clusters, model.config.latent,
                             list(store.inputs), _meta(store, model))
        for j, s in enumerate(model.scales):
            writer.write_times(j, store.intervals(s), store.lmst(s))
        windows = store.windows()
        writer.write_index(windows["input"], windows["record"])
        for a, p, z in _batches(store, model, dev, batch_size, memory_budget, progress, token):
            writer.write(a, p, z)
        token.check()
    progress(1.0, "done")
    return writer.occupancy()


def _setup(store: FeatureStore | str | Path, model: TrainedModel | str | Path, device: str
           ) -> tuple[FeatureStore, TrainedModel, torch.device]:
    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    dev = resolve_device(device)
    model = model if isinstance(model, TrainedModel) else load_model(model, dev)
    model.check_store(store)
    model.to(dev)
    return store, model, dev


def _batches(store: FeatureStore, model: TrainedModel, dev: torch.device, batch_size: int,
             memory_budget: int | None, progress: Progress, token: CancelToken
             ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(first window, posteriors (n, S, K), latents (n, S, Z)) of every window, in batches, in store order; a store
    over the budget is read one chunk at a time. Non-finite outputs are refused."""
    budget = stream.memory_budget(memory_budget)
    need = stream.in_memory_bytes(store, model.config.pca, fitting=False)
    log.info("%s: %s (%s)", store.path, "streaming from the store" if need > budget else "clustering in memory",
             stream.describe(need, budget))
    shares = _glitch_shares(store, model, token)
    if need > budget:
        pieces = stream.store_pieces(store, model, token)
    else:
        pieces = iter([(0, *stream.held_views(store, model))])
    n = max(store.n_windows, 1)
    for start, x, side in pieces:
        stop = start + len(next(iter(x.values())))
        for b in range(start, stop, batch_size):
            token.check()
            e = min(b + batch_size, stop)
            glitch = None if shares is None else {s: torch.from_numpy(v[b:e]).to(dev) for s, v in shares.items()}
            out = model.infer({s: v[b - start:e - start].to(dev) for s, v in x.items()},
                              {s: v[b - start:e - start].to(dev) for s, v in side.items()}, glitch)
            prob = np.stack([out[s]["prob"].cpu().numpy() for s in model.scales], axis=1)
            latent = np.stack([out[s]["latent"].cpu().numpy() for s in model.scales], axis=1)
            if not (np.isfinite(prob).all() and np.isfinite(latent).all()):
                raise DataError("the model gives NaN or infinite posteriors for this store; it cannot cluster it",
                                store.path)
            yield b, prob, latent
            progress(e / n, "clustering")


def _glitch_shares(store: FeatureStore, model: TrainedModel, token: CancelToken) -> dict[int, np.ndarray] | None:
    """Per scale, every window's glitch share (float32, read a store chunk at a time) when the model has a glitch
    class and the store glitch evidence; None otherwise (the class stays empty, said once in the log)."""
    if model.glitch_cluster is None:
        return None
    if not store.config.glitch_evidence:
        log.warning("%s: made without glitch evidence (unmix features --glitch-evidence): the model's glitch class "
                    "%d stays empty", store.path, model.glitch_cluster)
        return None
    from unmix.features.glitch_evidence import store_shares

    return {s: store_shares(store, s, token) for s in model.scales}


def _meta(store: FeatureStore, model: TrainedModel) -> dict:
    K = model.n_clusters
    outliers = {str(s): {str(t): c for t, c in m.items()} for s, m in model.outlier_clusters().items()}
    splits = {str(s): {str(t): c for t, c in m.items()} for s, m in model.split_clusters().items()}
    return {"model_digest": model.digest(), "model": str(model.path) if model.path else "",
            "store": str(store.path.resolve()) if store.path else "", "store_config_hash": store.config_hash,
            "feature_config": store.config.to_dict(), "model_config": model.config.to_dict(),
            "epochs_trained": model.epoch, "finished": model.finished, "n_clusters": K,
            "outlier_clusters": outliers, "split_clusters": splits, "glitch_class": glitch_class_record(store, model),
            "sampling_rate": _sampling_rate(store)}


def glitch_class_record(store: FeatureStore, model: TrainedModel) -> dict | None:
    """The table's record of the glitch class: its number, the share it takes and whether the store had evidence."""
    if model.glitch_cluster is None:
        return None
    return {"cluster": model.glitch_cluster, "share": model.config.glitch_share,
            "evidence": bool(store.config.glitch_evidence)}


def _sampling_rate(store: FeatureStore) -> float | None:
    for inp in store.inputs:
        for rec in inp.get("records", []):
            if rec.get("sampling_rate"):
                return float(rec["sampling_rate"])
    return None

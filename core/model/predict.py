"""Inference: every window and scale of a feature store → a :class:`unmix.clusters.ClusterTable`."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from unmix.clusters import ClusterTable
from unmix.devices import resolve_device
from unmix.errors import DataError
from unmix.features import FeatureStore
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
    background); the table's (N, S, K) probabilities and (N, S, latent) latents stay in memory either way: they are
    small next to the features (e.g. 2.3 M windows × 4 scales × 16 clusters: 0.6 GB in float32).
    """
    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    dev = resolve_device(device)
    model = model if isinstance(model, TrainedModel) else load_model(model, dev)
    model.check_store(store)
    model.to(dev)
    budget = stream.memory_budget(memory_budget)
    need = stream.in_memory_bytes(store, model.config.pca, fitting=False)
    log.info("%s: %s (%s)", store.path, "streaming from the store" if need > budget else "clustering in memory",
             stream.describe(need, budget))
    n, S, K, Z = store.n_windows, len(model.scales), model.config.clusters, model.config.latent
    prob = np.zeros((n, S, K), np.float32)
    latent = np.zeros((n, S, Z), np.float32)
    if need > budget:
        pieces = stream.store_pieces(store, model, token)
    else:
        x = model.inputs({s: store.features(s) for s in model.scales})
        pieces = iter([(0, x)])
    for a, x in pieces:
        _infer(model, x, a, batch_size, dev, prob, latent, progress, token)
    if not (np.isfinite(prob).all() and np.isfinite(latent).all()):
        raise DataError("the model gives NaN or infinite posteriors for this store; it cannot cluster it", store.path)
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
        meta={"model_digest": model.digest(), "model": str(model.path) if model.path else "",
              "store": str(store.path.resolve()) if store.path else "", "store_config_hash": store.config_hash,
              "feature_config": store.config.to_dict(), "model_config": model.config.to_dict(),
              "epochs_trained": model.epoch, "finished": model.finished, "n_clusters": K,
              "sampling_rate": _sampling_rate(store)},
    )
    progress(1.0, "done")
    return table


def _infer(model: TrainedModel, x: dict[int, torch.Tensor], start: int, batch_size: int, dev: torch.device,
           prob: np.ndarray, latent: np.ndarray, progress: Progress, token: CancelToken) -> None:
    """Posteriors and latents of inputs ``x`` (windows from ``start``) into ``prob`` and ``latent``, in batches."""
    stop = start + len(next(iter(x.values())))
    for b in range(start, stop, batch_size):
        token.check()
        e = min(b + batch_size, stop)
        out = model.infer({s: v[b - start:e - start].to(dev) for s, v in x.items()})
        for j, s in enumerate(model.scales):
            prob[b:e, j] = out[s]["prob"].cpu().numpy()
            latent[b:e, j] = out[s]["latent"].cpu().numpy()
        progress(e / len(prob), "clustering")


def _sampling_rate(store: FeatureStore) -> float | None:
    for inp in store.inputs:
        for rec in inp.get("records", []):
            if rec.get("sampling_rate"):
                return float(rec["sampling_rate"])
    return None

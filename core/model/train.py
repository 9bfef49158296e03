"""Training loop (an epoch iterator usable from CLI and GUI), checkpoints and resuming.

A checkpoint is one ``torch.save`` file written atomically (temporary name, then rename). It holds everything needed
to use or continue the model: network and optimiser state, completed epochs, RNG states, logs, the model
configuration, the feature configuration and its digest, the coefficient description, the scales, the train/validation
split and the standardisation statistics. It is written every ``checkpoint_every`` epochs, at the end, and when the
run is cancelled (then with the weights reached so far; resuming repeats the interrupted epoch from them).

An ensemble (``ModelConfig.ensemble > 1``) stores member 0 where a single model's weights go (``model``,
``optimizer``), the other members under ``members`` and ``member_optimizers``, and the consensus profiles
(``consensus``: per scale a (K, M, K) table, :mod:`unmix.model.consensus`, fitted on the training windows at every
save). A model with ``outlier_split`` also stores its outlier clusters (``outliers``: per scale the arrays of
:class:`unmix.model.outliers.OutlierSplit`), fitted at the same time, after the consensus, and one with
``sparsity_split`` its sparsity splits (``sparsity_splits``: per scale the arrays of
:class:`unmix.model.sparsity_split.SparsitySplit`), fitted after the outlier clusters.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from unmix.atomic import atomic_path
from unmix.devices import resolve_device
from unmix.errors import ConfigError, InputFileError, OutputExistsError
from unmix.features import FeatureStore
from unmix.jobs import NO_CANCEL, Cancelled, CancelToken, Progress, no_progress
from unmix.model import consensus as cons
from unmix.model import outliers as outl
from unmix.model import sparsity_split as spl
from unmix.model import stream
from unmix.model.config import MAX_OUTLIER_DIMS, PRESETS, ModelConfig
from unmix.model.data import fit_scale, split_indices
from unmix.model.network import FactorialVAE, build_network
from unmix.model.trained import (
    CHECKPOINT_FORMAT,
    TrainedModel,
    damaged,
    description_dict,
    model_from_checkpoint,
    split_from,
)
from unmix.model.trained import load_model as load_model  # re-exported: unmix.model.train.load_model
from unmix.model.trained import read_checkpoint as read_checkpoint  # re-exported (unmix.pipeline)

log = logging.getLogger(__name__)

OCCUPANCY_WINDOWS = 4096
#: Training windows (evenly spaced) on which an ensemble's consensus is fitted.
CONSENSUS_WINDOWS = 50_000
INFER_BATCH = 4096


def train_step(net: FactorialVAE, optimizer: torch.optim.Optimizer, xb: dict[int, torch.Tensor], tau: float,
               clip: float) -> dict[str, torch.Tensor]:
    """One optimiser step on a batch (published loss, element-wise gradient clamp); returns the loss terms."""
    terms = net.loss(xb, net(xb, tau))
    optimizer.zero_grad(set_to_none=True)
    terms["loss"].backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    torch._foreach_clamp_min_(grads, -clip)
    torch._foreach_clamp_max_(grads, clip)
    optimizer.step()
    return terms


class Training:
    """One training run over a feature store; iterate it to run epochs (each yields that epoch's log).

    ``progress``/``token`` follow the job protocol: the token is checked between optimisation steps, progress is
    reported after each step. Use :meth:`run` to go to the end and get the :class:`TrainedModel`. ``out=None``
    trains in memory only: no checkpoint is written (``unmix.FactorialGMVAE`` without ``checkpoint``).

    ``memory_budget`` (bytes; None: :data:`unmix.model.stream.DEFAULT_MEMORY_BUDGET`): when holding the store's
    features and inputs would need more, the run *streams* them from the store (``streaming`` is True; the
    preprocessing is fitted in passes, epochs read shuffled chunks, :mod:`unmix.model.stream`); otherwise everything
    is held in memory, exactly as without a budget.
    """

    def __init__(self, store: FeatureStore | str | Path, out: str | Path | None, config: ModelConfig | None = None,
                 device: str | torch.device = "auto", resume: bool = False, overwrite: bool = False,
                 progress: Progress = no_progress, token: CancelToken = NO_CANCEL,
                 memory_budget: int | None = None) -> None:
        self.store = store if isinstance(store, FeatureStore) else FeatureStore(store)
        self.out = None if out is None else Path(out)  # None: in memory only, no checkpoint is written
        self.device = resolve_device(device)
        self.progress = progress
        self.token = token
        self.memory_budget = stream.memory_budget(memory_budget)
        if self.out is None and resume:
            raise ConfigError("resuming needs the checkpoint path")
        if self.out is not None and self.out.exists() and not resume and not overwrite:
            raise OutputExistsError("already exists; pass --overwrite to replace it or --resume to continue", self.out)
        if resume and not self.out.is_file():
            raise InputFileError("nothing to resume: no checkpoint at this path", self.out)
        ck = read_checkpoint(self.out, resume=True) if resume else None
        self.config = self._resumed_config(ck, config) if ck is not None else config or PRESETS["small"]
        n = self.store.n_windows
        self.streaming = self._choose_mode()
        if n < 4:
            raise ConfigError(f"only {n} windows in the store; training needs at least 4", self.store.path)
        self.model = self._resumed_model(ck) if ck is not None else self._new_model()
        self.x = None if self.streaming else stream.held_inputs(self.store, self.model)
        self.optimizers = [torch.optim.Adam(net.parameters(), lr=self.config.lr) for net in self.model.networks]
        if ck is not None:
            self._restore_state(ck)
        self.n_train = len(self.train_idx)
        self.batch = max(2, min(self.config.batch_size, self.n_train))
        self.steps_per_epoch = max(1, self.n_train // self.batch)
        self.stream = stream.StreamedInputs(self.store, self.model, self.train_idx, self.val_idx, self.memory_budget,
                                            self.batch) if self.streaming else None
        self._times: list[float] = []

    def _choose_mode(self) -> bool:
        """Stream from the store when holding it in memory would exceed the budget (logged, with why)."""
        need = stream.in_memory_bytes(self.store, self.config.pca)
        streaming = need > self.memory_budget
        log.info("%s: %s (%s)", self.store.path, "streaming from the store" if streaming else "training in memory",
                 stream.describe(need, self.memory_budget))
        return streaming

    def _resumed_config(self, ck: dict, config: ModelConfig | None) -> ModelConfig:
        try:
            saved = ModelConfig.from_dict(ck["model_config"])
        except (ConfigError, TypeError) as exc:
            raise damaged(self.out, f"bad model configuration ({exc})") from None
        return saved if config is None else saved.replace(epochs=config.epochs)

    def _resumed_model(self, ck: dict) -> TrainedModel:
        """The checkpoint's model and split, checked against the store."""
        n = self.store.n_windows
        if ck["feature_digest"] != self.store.config_hash or int(ck["n_windows"]) != n:
            raise ConfigError("the checkpoint was trained on other features (different configuration or number "
                              "of windows); start a new model instead of --resume", self.out)
        self.train_idx, self.val_idx = split_from(ck, n, self.out)
        model = model_from_checkpoint(ck, self.out, self.device)
        model.check_store(self.store)
        model.config = self.config
        for net in model.networks:
            net.config = self.config
        return model

    def _new_model(self) -> TrainedModel:
        """A fresh model: split, preprocessing fitted on the training windows (in passes when streaming, else one
        scale's training windows at a time), networks."""
        cfg = self.config
        self.train_idx, self.val_idx = split_indices(self.store.n_windows, cfg.val_fraction, cfg.seed)
        if self.streaming:
            preps = stream.fit_preps(self.store, self.train_idx, cfg.preprocessing, cfg.pca, self.progress,
                                     self.token, cfg.log_offset)
        else:
            preps = {s: fit_scale(self.store.read_rows(s, self.train_idx), self.store.description,
                                  cfg.preprocessing, cfg.pca, cfg.log_offset) for s in self.store.scales}
        C = preps[self.store.scales[0]].channels
        nets = []
        for i in range(cfg.ensemble):
            torch.manual_seed(cfg.member_seed(i))
            nets.append(build_network(cfg, {s: p.n_features for s, p in preps.items()}, C).to(self.device))
        return TrainedModel(cfg, nets[0], preps, self.store.config.to_dict(), self.store.config_hash,
                            description_dict(self.store.description), members=nets[1:])

    def _restore_state(self, ck: dict) -> None:
        """Optimiser and random states of a resumed checkpoint."""
        try:
            states = [ck["optimizer"], *ck.get("member_optimizers", [])]
            if len(states) != len(self.optimizers):
                raise ValueError("one optimiser state per ensemble member expected")
            for opt, state in zip(self.optimizers, states, strict=True):
                opt.load_state_dict(state)
            torch.set_rng_state(ck["rng"]["torch"])
            if self.device.type == "cuda" and ck["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state(ck["rng"]["cuda"], self.device)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            raise damaged(self.out, f"optimiser or random state ({type(exc).__name__})") from None

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """Member 0's optimiser (the only one of a single model)."""
        return self.optimizers[0]

    # -- cluster stages fitted on the training windows ---------------------------------------------------------------
    @torch.no_grad()
    def fit_clusters(self, cancellable: bool = True) -> None:
        """Fit what turns the networks' posteriors into clusters, on (up to CONSENSUS_WINDOWS, evenly spaced)
        training windows: an ensemble's consensus profiles, then the outlier clusters (``outlier_split``), then the
        sparsity splits (``sparsity_split``); nothing to do for a single model without either. The run's token stops
        it unless ``cancellable`` is False (the checkpoint of a cancelled run, so that what it saves can be used)."""
        m, cfg = self.model, self.config
        if not m.members and not cfg.outlier_split and not cfg.sparsity_split:
            return
        idx = self.train_idx
        if len(idx) > CONSENSUS_WINDOWS:
            idx = idx[np.linspace(0, len(idx) - 1, CONSENSUS_WINDOWS).round().astype(np.int64)]
        probs = {s: [np.empty((len(idx), cfg.clusters), np.float32) for _ in m.networks] for s in m.scales}
        xs = {s: [] for s in m.scales if m.preps[s].channels * m.preps[s].n_features <= MAX_OUTLIER_DIMS}
        if cfg.outlier_split and len(xs) < len(m.scales):
            log.info("no outlier clusters at scale(s) %s: more than %d input columns (use pca)",
                     ", ".join(str(s) for s in m.scales if s not in xs), MAX_OUTLIER_DIMS)
        for net in m.networks:
            net.eval()
        a = 0
        token = self.token if cancellable else NO_CANCEL
        for xb in self._rows(idx, token):
            b = a + len(next(iter(xb.values())))
            for i, net in enumerate(m.networks):
                for s, r in net.infer(xb).items():
                    probs[s][i][a:b] = r["prob"].cpu().numpy()
            if cfg.outlier_split:
                for s in xs:
                    xs[s].append(xb[s].reshape(b - a, -1).cpu().numpy())
            a = b
        if m.members:
            m.consensus = {s: cons.fit(probs[s]) for s in m.scales}
        if cfg.outlier_split:
            hop = int(m.feature_config.get("hop", min(m.scales)))
            m.outliers = {s: outl.fit(np.concatenate(xs[s]), self._clustered(probs[s], m.consensus, s),
                                      cfg.outlier_split, s / hop) for s in xs}
        if cfg.sparsity_split:
            m.splits = self._fit_splits(idx, probs, xs, token)

    def _fit_splits(self, idx: np.ndarray, probs: dict[int, list[np.ndarray]], xs: dict[int, list[np.ndarray]],
                    token: CancelToken) -> dict[int, spl.SparsitySplit]:
        """The sparsity splits of every scale with sparsity columns, on the training windows ``idx`` (their members'
        posteriors ``probs`` and inputs ``xs``) clustered as the model clusters them up to this stage."""
        m, cfg = self.model, self.config
        hop = int(m.feature_config.get("hop", min(m.scales)))
        step = max(min(stream.FIT_ROWS, self.store.chunk_windows), 1)  # reads no larger than a streamed chunk's
        out = {}
        for s in m.scales:
            if m.side_columns(s) is None:
                log.info("no sparsity splits at scale %d: the features have no sparsity coefficients", s)
                continue
            side = []
            for b in range(0, len(idx), step):
                token.check()
                side.append(m.scale_side(s, self.store.read_rows(s, idx[b:b + step])).numpy())
            prob = torch.from_numpy(np.asarray(self._clustered(probs[s], m.consensus, s), np.float32))
            outliers = (m.outliers or {}).get(s)
            if outliers is not None:
                prob = outliers.apply(prob, torch.from_numpy(np.concatenate(xs[s])), m.first_split(s))
            out[s] = spl.fit(np.concatenate(side), prob.argmax(1).numpy(), m.first_split(s), cfg.sparsity_split,
                             s / hop)
        return out

    @staticmethod
    def _clustered(probs: list[np.ndarray], consensus: dict[int, np.ndarray] | None, scale: int) -> np.ndarray:
        return probs[0] if consensus is None else cons.combine(probs, consensus[scale])

    # -- checkpoints ------------------------------------------------------------------------------------------------
    def checkpoint(self, partial: bool = False) -> Path | None:
        """Write the checkpoint atomically (nothing when the run has no output path: in memory only)."""
        m = self.model
        if self.out is None:
            return None
        was_training = m.network.training
        self.fit_clusters(cancellable=not partial)
        for net in m.networks:
            net.train(was_training)
        rng = {"torch": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}
        state = {
            "format": CHECKPOINT_FORMAT, "model_config": self.config.to_dict(),
            "model": {k: v.detach().cpu() for k, v in m.network.state_dict().items()},
            "optimizer": _to_cpu(self.optimizer.state_dict()), "epoch": m.epoch, "partial": partial,
            "finished": m.finished, "rng": rng, "logs": m.logs, "feature_config": m.feature_config,
            "feature_digest": m.feature_digest, "description": m.description,
            "scales": list(m.scales), "channels": m.network.channels, "n_windows": self.store.n_windows,
            "store": str(self.store.path), "train_idx": torch.from_numpy(np.asarray(self.train_idx, np.int64)),
            "val_idx": torch.from_numpy(np.asarray(self.val_idx, np.int64)),
            "preps": {str(s): p.to_state() for s, p in m.preps.items()}, "digest": m.digest(),
            "torch_version": str(torch.__version__),
        }
        if m.members:
            state["members"] = [{k: v.detach().cpu() for k, v in net.state_dict().items()} for net in m.members]
            state["member_optimizers"] = [_to_cpu(opt.state_dict()) for opt in self.optimizers[1:]]
            state["consensus"] = {str(s): torch.from_numpy(a) for s, a in m.consensus.items()}
        if m.outliers is not None:
            state["outliers"] = {str(s): split.to_state() for s, split in m.outliers.items()}
        if m.splits is not None:
            state["sparsity_splits"] = {str(s): split.to_state() for s, split in m.splits.items()}
        with atomic_path(self.out, overwrite=True) as tmp:
            torch.save(state, tmp)
        m.path = self.out
        return self.out

    # -- one epoch --------------------------------------------------------------------------------------------------
    def _batch(self, idx: torch.Tensor) -> dict[int, torch.Tensor]:
        return {s: v[idx].to(self.device, non_blocking=True) for s, v in self.x.items()}

    def _rows(self, idx: np.ndarray, token: CancelToken) -> Iterator[dict[int, torch.Tensor]]:
        """Inputs (on the device) of the training windows ``idx`` (sorted), in pieces of at most INFER_BATCH."""
        if not self.streaming:
            for a in range(0, len(idx), INFER_BATCH):
                yield self._batch(torch.from_numpy(np.asarray(idx[a:a + INFER_BATCH])))
            return
        with contextlib.closing(self.stream.pieces("train", token, np.isin(self.train_idx, idx))) as pieces:
            for _, x in pieces:
                token.check()
                yield {s: v.to(self.device, non_blocking=True) for s, v in x.items()}

    def _batches(self, seed: int) -> Iterator[dict[int, torch.Tensor]]:
        """One epoch's training batches (on the device), shuffled with ``seed``."""
        if self.streaming:
            with contextlib.closing(self.stream.epoch(seed, self.token)) as batches:
                for xb in batches:
                    yield {s: v.to(self.device, non_blocking=True) for s, v in xb.items()}
            return
        gen = torch.Generator().manual_seed(seed)
        order = torch.from_numpy(self.train_idx)[torch.randperm(self.n_train, generator=gen)]
        for step in range(self.steps_per_epoch):
            yield self._batch(order[step * self.batch:(step + 1) * self.batch])

    def _epoch(self, epoch: int) -> dict:
        """One epoch of every member in turn (each its own batch order); the log holds the members' mean losses."""
        cfg, nets = self.config, self.model.networks
        tau = cfg.temperature(epoch)
        sums = {"loss": 0.0, "rec": 0.0, "gauss": 0.0, "cat": 0.0}
        total = max(cfg.epochs, 1) * len(nets) * self.steps_per_epoch
        for i, (net, opt) in enumerate(zip(nets, self.optimizers, strict=True)):
            net.train()
            with contextlib.closing(self._batches(cfg.member_seed(i) * 1_000_003 + epoch)) as batches:
                for step in range(self.steps_per_epoch):
                    self.token.check()
                    terms = train_step(net, opt, next(batches), tau, cfg.clip)
                    for k in sums:
                        sums[k] += float(terms[k].detach())
                    done = (epoch * len(nets) + i) * self.steps_per_epoch + step + 1
                    who = f" member {i + 1}/{len(nets)}" if len(nets) > 1 else ""
                    self.progress(done / total,
                                  f"epoch {epoch + 1}/{cfg.epochs}{who} step {step + 1}/{self.steps_per_epoch}")
        n = self.steps_per_epoch * len(nets)
        log = {"epoch": epoch + 1, "temperature": tau, **{k: v / n for k, v in sums.items()}}
        log.update(self._evaluate(tau))
        return log

    @torch.no_grad()
    def _evaluate(self, tau: float) -> dict:
        """Validation loss terms (members' mean) and member 0's cluster occupancy on the validation windows."""
        nets = self.model.networks
        for net in nets:
            net.eval()
        if self.streaming:
            out = self.stream.evaluate(nets, tau, self.config.clusters, OCCUPANCY_WINDOWS, self.device, self.token)
            for net in nets:
                net.train()
            return out
        idx = self.val_idx if len(self.val_idx) >= 2 else self.train_idx[:OCCUPANCY_WINDOWS]
        xb = self._batch(torch.from_numpy(np.asarray(idx)))
        out = {}
        if len(self.val_idx) >= 2:
            sums: dict[str, float] = {}
            for net in nets:
                for k, v in net.loss(xb, net(xb, tau)).items():
                    sums[k] = sums.get(k, 0.0) + float(v) / len(nets)
            out.update({f"val_{k}": v for k, v in sums.items()})
        inf = nets[0].infer(xb)
        K = self.config.clusters
        out["occupancy"] = {str(s): np.bincount(r["prob"].argmax(-1).cpu().numpy(), minlength=K).tolist()
                            for s, r in inf.items()}
        for net in nets:
            net.train()
        return out

    # -- the loop ---------------------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict]:
        cfg, m = self.config, self.model
        with _determinism(cfg.deterministic):
            while m.epoch < cfg.epochs:
                t0 = time.perf_counter()
                try:
                    log = self._epoch(m.epoch)
                except Cancelled:
                    self.checkpoint(partial=True)
                    raise
                self._times.append(time.perf_counter() - t0)
                m.epoch += 1
                log["seconds"] = self._times[-1]
                log["eta_s"] = float(np.mean(self._times[-5:]) * (cfg.epochs - m.epoch))
                m.logs.append(log)
                m.finished = m.epoch >= cfg.epochs
                if m.finished and self.out is None:
                    self.fit_clusters()  # in memory only (a checkpoint fits them when it is written)
                if m.finished or m.epoch % cfg.checkpoint_every == 0:
                    self.checkpoint()
                self.progress(m.epoch / cfg.epochs, format_log(log))
                yield log
        for net in m.networks:
            net.eval()

    def run(self) -> TrainedModel:
        for _ in self:
            pass
        m = self.model
        if ((m.members and m.consensus is None) or (self.config.outlier_split and m.outliers is None)
                or (self.config.sparsity_split and m.splits is None)):
            self.fit_clusters()  # in memory only: no checkpoint fitted them
        if not self.model.finished or (self.model.path is None and self.out is not None):
            self.model.finished = self.model.epoch >= self.config.epochs
            self.checkpoint()
        return self.model


def train(store: FeatureStore | str | Path, out: str | Path, config: ModelConfig | None = None,
          device: str | torch.device = "auto", resume: bool = False, overwrite: bool = False,
          progress: Progress = no_progress, token: CancelToken = NO_CANCEL,
          memory_budget: int | None = None) -> TrainedModel:
    """Train a factorial GMVAE on ``store``, checkpointing to ``out``; returns the trained model.

    ``memory_budget`` (bytes; None: :data:`unmix.model.stream.DEFAULT_MEMORY_BUDGET`): a store whose model inputs
    need more is streamed from disk (:mod:`unmix.model.stream`)."""
    return Training(store, out, config, device, resume, overwrite, progress, token, memory_budget).run()


def format_log(log: dict) -> str:
    """One-line summary of an epoch log (loss terms, occupancy of the finest scale, ETA)."""
    occ = log.get("occupancy", {})
    first = occ[min(occ, key=int)] if occ else []
    eta = log.get("eta_s", 0.0)
    return (f"epoch {log['epoch']} loss {log['loss']:.3g} (rec {log['rec']:.3g}, gauss {log['gauss']:.3g}, "
            f"cat {log['cat']:.3g}) τ {log['temperature']:.2f} occ {first} ETA {eta:.0f}s")


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


@contextlib.contextmanager
def _determinism(enabled: bool):
    """Deterministic algorithms during training (restored afterwards)."""
    before = torch.are_deterministic_algorithms_enabled()
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)

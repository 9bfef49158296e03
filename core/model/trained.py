"""A trained model and its checkpoint read back: what a model needs to be applied or continued, validated on load.

The checkpoint is written by :class:`unmix.model.train.Training` (its contents: :mod:`unmix.model.train`); reading
takes weights only (no code is unpickled) and checks every field, shape and value it uses, with one line naming the
file when something is wrong.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from unmix.devices import resolve_device
from unmix.errors import ConfigError, DataError, InputFileError
from unmix.features import FeatureStore
from unmix.model import consensus as cons
from unmix.model import outliers as outl
from unmix.model import sparsity_split as spl
from unmix.model.config import ModelConfig
from unmix.model.data import ScalePrep
from unmix.model.network import FactorialVAE, build_network

CHECKPOINT_FORMAT = "unmix-fgmvae/1"


@dataclass
class TrainedModel:
    """A trained (or partly trained) model with everything needed to apply it to a feature store."""

    config: ModelConfig
    network: FactorialVAE
    preps: dict[int, ScalePrep]
    feature_config: dict
    feature_digest: str
    description: dict
    epoch: int = 0
    logs: list[dict] = field(default_factory=list)
    finished: bool = False
    path: Path | None = None
    members: list[FactorialVAE] = field(default_factory=list)  # ensemble members 1..M-1 (member 0 is ``network``)
    consensus: dict[int, np.ndarray] | None = None  # per scale (K, M, K) profiles, :mod:`unmix.model.consensus`
    outliers: dict[int, outl.OutlierSplit] | None = None  # per scale, :mod:`unmix.model.outliers`
    splits: dict[int, spl.SparsitySplit] | None = None  # per scale, :mod:`unmix.model.sparsity_split`

    @property
    def networks(self) -> list[FactorialVAE]:
        """Every member of the model (one network unless ``config.ensemble > 1``)."""
        return [self.network, *self.members]

    def to(self, device: torch.device) -> TrainedModel:
        for net in self.networks:
            net.to(device).eval()
        return self

    @torch.no_grad()
    def infer(self, x: dict[int, torch.Tensor], side: dict[int, torch.Tensor] | None = None,
              glitch: dict[int, torch.Tensor] | None = None) -> dict[int, dict[str, torch.Tensor]]:
        """Posterior probabilities and latent means of a batch.

        An ensemble gives the consensus posteriors (:mod:`unmix.model.consensus`), numbered like member 0's clusters,
        and member 0's mean of q(z|x, y) given them. A model with outlier clusters (:mod:`unmix.model.outliers`)
        then moves each split cluster's outliers to its outlier cluster, and one with sparsity splits
        (:mod:`unmix.model.sparsity_split`, which need the batch's sparsity columns ``side``, :meth:`scale_side`)
        moves the smaller group of each split cluster to its new number (posteriors :attr:`n_clusters` wide).
        Last, with a glitch class (``config.glitch_share``), the windows whose glitch share (``glitch``: per scale,
        the batch's shares, :func:`unmix.features.glitch_evidence.share`; None: no evidence) reaches it go to
        :attr:`glitch_cluster`. Their latent stays the one given the cluster they came from (a derived cluster has
        no latent Gaussian of its own)."""
        if not self.members:
            out = self.network.infer(x)
        elif self.consensus is None:
            raise DataError("this ensemble has no consensus of its members yet (unfinished training)")
        else:
            out = self.network.infer(x, self._consensus(x))
        width = self.n_clusters
        if width > self.config.clusters:
            for s in self.scales:
                out[s]["prob"] = self._derived(s, out[s]["prob"], x[s], side, width)
                if glitch is not None and self.glitch_cluster is not None:
                    out[s]["prob"] = _to_class(out[s]["prob"], glitch[s] >= self.config.glitch_share,
                                               self.glitch_cluster)
        return out

    def _derived(self, scale: int, prob: torch.Tensor, x: torch.Tensor, side: dict[int, torch.Tensor] | None,
                 width: int) -> torch.Tensor:
        """One scale's posteriors widened to ``width`` with its outlier clusters and sparsity splits applied."""
        outliers = (self.outliers or {}).get(scale)
        prob = (outliers.apply(prob, x, width) if outliers is not None
                else torch.nn.functional.pad(prob, (0, width - prob.shape[1])))
        split = (self.splits or {}).get(scale)
        if split is None or not len(split.source):
            return prob
        if side is None or scale not in side:
            raise DataError(f"this model's sparsity splits at scale {scale} need the windows' sparsity columns")
        return split.apply(prob, side[scale])

    def outlier_clusters(self) -> dict[int, dict[int, int]]:
        """Per scale with outlier clusters: each outlier cluster's number → the cluster it was split from."""
        return {s: {int(t): int(c) for t, c in zip(sp.target, sp.source, strict=True)}
                for s, sp in (self.outliers or {}).items() if len(sp.source)}

    def split_clusters(self) -> dict[int, dict[int, int]]:
        """Per scale with sparsity splits: each new cluster's number → the cluster it was split from."""
        return {s: {int(t): int(c) for t, c in zip(sp.target, sp.source, strict=True)}
                for s, sp in (self.splits or {}).items() if len(sp.source)}

    def derived_from(self, scale: int, cluster: int) -> tuple[str, int] | None:
        """('outliers' or 'split', source cluster) when ``cluster`` at ``scale`` was derived after the network."""
        for kind, pairs in (("outliers", self.outlier_clusters()), ("split", self.split_clusters())):
            source = pairs.get(scale, {}).get(int(cluster))
            if source is not None:
                return kind, source
        return None

    def first_split(self, scale: int) -> int:
        """The first sparsity-split number at ``scale``: after the network's clusters and the scale's outlier ones."""
        outliers = (self.outliers or {}).get(scale)
        return self.config.clusters + (0 if outliers is None else len(outliers.source))

    @property
    def n_clusters(self) -> int:
        """Cluster numbers in this model's tables: the network's, then per scale its outlier clusters and its
        sparsity splits, as many as the scale with most needs, then the glitch class (:attr:`glitch_cluster`)."""
        return self._derived_end() + (self.glitch_cluster is not None)

    @property
    def glitch_cluster(self) -> int | None:
        """The glitch class's number (the same at every scale, after every other cluster); None without one."""
        return self._derived_end() if self.config.glitch_share > 0 else None

    def _derived_end(self) -> int:
        ends = [self.config.clusters + len(sp.source) for sp in (self.outliers or {}).values()]
        ends += [self.first_split(s) + len(sp.source) for s, sp in (self.splits or {}).items()]
        return max(ends, default=self.config.clusters)

    def side_scales(self) -> tuple[int, ...]:
        """Scales whose sparsity splits need the windows' sparsity columns at inference (:meth:`scale_side`)."""
        return tuple(s for s, sp in (self.splits or {}).items() if len(sp.source))

    def side_columns(self, scale: int) -> np.ndarray | None:
        """Positions among ``scale``'s prepared columns of the sparsity coefficients, or None (no description of
        coefficient types, or no sparsity coefficients)."""
        ctype = self.description.get("c_type") if isinstance(self.description, dict) else None
        if ctype is None:
            return None
        cols = self.preps[scale].columns[:, 0]
        names = np.asarray(ctype).astype(str)
        if cols.size and cols.max() >= len(names):
            return None
        picked = np.flatnonzero(names[cols] == "spars")
        return picked if len(picked) else None

    def scale_side(self, scale: int, a: np.ndarray) -> torch.Tensor:
        """One scale's store array (N, C, K, 2) → its standardised sparsity columns (N, C·E) (CPU float32)."""
        picked = self.side_columns(scale)
        if picked is None:
            raise DataError(f"the features at scale {scale} have no sparsity coefficients")
        p = self.preps[scale]
        sub = ScalePrep(p.columns[picked], p.log[picked], p.mean[:, picked], p.std[:, picked], None, p.ps_index,
                        None if p.norm_pair is None else p.norm_pair[picked],
                        None if p.offset is None else p.offset[:, picked])
        x = sub.standardise(a).reshape(len(a), -1).astype(np.float32)
        if not np.isfinite(x).all():
            raise DataError(f"windows at scale {scale} give non-finite sparsity columns (features far outside the "
                            "model's range)")
        return torch.from_numpy(x)

    def _consensus(self, x: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        outs = [net.infer(x) for net in self.networks]
        prob = {}
        for s in self.scales:
            profile = torch.from_numpy(self.consensus[s]).to(outs[0][s]["prob"])
            score = sum(o[s]["prob"] @ profile[:, m, :].T for m, o in enumerate(outs)) / len(outs)
            total = score.sum(1, keepdim=True)
            prob[s] = torch.where(total > 0, score / total.clamp_min(torch.finfo(score.dtype).tiny),
                                  torch.full_like(score, 1.0 / score.shape[1]))
        return prob

    @property
    def scales(self) -> tuple[int, ...]:
        return self.network.scales

    @property
    def components(self) -> str:
        return str(self.feature_config.get("components", ""))

    def digest(self) -> str:
        """Hash of what determines the outputs: configuration, preprocessing and weights."""
        h = hashlib.sha256(json.dumps(self.config.hashed(), sort_keys=True).encode())
        h.update(self.feature_digest.encode())
        for s in self.scales:
            p = self.preps[s]
            for a in (p.columns, p.log, p.mean, p.std) + tuple(a for a in (p.projection, p.offset) if a is not None):
                h.update(np.ascontiguousarray(a).tobytes())
        for net in self.networks:
            for k, v in sorted(net.state_dict().items()):
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
        for s in sorted(self.consensus or {}):
            h.update(np.ascontiguousarray(self.consensus[s], np.float64).tobytes())
        for derived in (self.outliers, self.splits):
            for s in sorted(derived or {}):
                for a in derived[s].to_state().values():
                    h.update(a.contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def inputs(self, arrays: dict[int, np.ndarray]) -> dict[int, torch.Tensor]:
        """Store arrays (N, C, K, 2) per scale → standardised network inputs (N, C, F) per scale (CPU float32).

        Refuses features that become non-finite (far outside anything the model was fitted on).
        """
        return {s: self.scale_inputs(s, arrays[s]) for s in self.scales}

    def scale_inputs(self, scale: int, a: np.ndarray, rows: int | None = None) -> torch.Tensor:
        """One scale's store array (N, C, K, 2) → network inputs (N, C, F) (CPU float32), ``rows`` rows at a time
        when given (the float64 working copies then stay that small); refuses non-finite inputs."""
        prep = self.preps[scale]
        step = max(len(a) if rows is None else int(rows), 1)
        parts = [prep.apply(a[b:b + step]) for b in range(0, len(a), step)] or [prep.apply(a)]
        x = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if not np.isfinite(x).all():
            bad = int((~np.isfinite(x.reshape(len(x), -1)).all(axis=1)).sum())
            raise DataError(f"{bad} window(s) at scale {scale} give non-finite model inputs (features far outside "
                            "the model's range)")
        return torch.from_numpy(x)

    def _same_features(self, store: FeatureStore) -> bool:
        from unmix.features import FeatureConfig

        try:
            mine = FeatureConfig.from_dict(self.feature_config)
        except (ConfigError, TypeError, KeyError, ValueError):
            return False
        return mine.features_digest() == store.config.features_digest()

    def check_store(self, store: FeatureStore) -> None:
        """Refuse a store whose features were made differently from the training features (with or without glitch
        evidence, which changes no feature)."""
        if store.config_hash != self.feature_digest and not self._same_features(store):
            raise ConfigError(f"features were made with another configuration (hash {store.config_hash}) than the "
                              f"model's training features ({self.feature_digest}); rebuild them with the model's "
                              "feature settings", store.path)
        if len(next(iter(self.description.values()), [])) != len(store.description):
            raise InputFileError("damaged model checkpoint: its feature description does not match the store's",
                                 self.path)


def _to_class(prob: torch.Tensor, moved: torch.Tensor, cluster: int) -> torch.Tensor:
    """``prob`` with the rows where ``moved`` all on ``cluster``."""
    if not bool(moved.any()):
        return prob
    prob = prob.clone()
    prob[moved] = 0.0
    prob[moved, cluster] = 1.0
    return prob


def description_dict(description: np.ndarray) -> dict:
    return {name: [x.item() if hasattr(x, "item") else x for x in description[name]]
            for name in description.dtype.names}


def load_model(path: str | Path, device: str | torch.device = "cpu") -> TrainedModel:
    """Load a checkpoint written by :func:`train` (weights only; no code is unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError("no such model checkpoint", path)
    return model_from_checkpoint(read_checkpoint(path), path, device)


#: What every checkpoint holds (name → type); resuming also needs :data:`_RESUME_FIELDS`.
_FIELDS = {"model_config": dict, "model": dict, "preps": dict, "channels": int, "epoch": int, "logs": list,
           "finished": bool, "feature_config": dict, "feature_digest": str, "description": dict}
_RESUME_FIELDS = {"optimizer": dict, "rng": dict, "n_windows": int, "train_idx": torch.Tensor,
                  "val_idx": torch.Tensor}


def read_checkpoint(path: Path, resume: bool = False) -> dict:
    """The checkpoint's contents (weights only: no code is unpickled), its fields checked; one line otherwise."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputFileError(f"not a readable model checkpoint ({type(exc).__name__}: truncated, damaged or not "
                             "written by 'unmix train')", path) from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise InputFileError("not an Unmix model checkpoint (written by 'unmix train')", path)
    for name, kind in {**_FIELDS, **(_RESUME_FIELDS if resume else {})}.items():
        if not isinstance(ck.get(name), kind):
            raise InputFileError(f"damaged model checkpoint: {name!r} is missing or not a {kind.__name__}", path)
    return ck


def damaged(path: Path | None, problem: str) -> InputFileError:
    return InputFileError(f"damaged model checkpoint: {problem}", path)


def _check_preps(preps: dict[int, ScalePrep], ck: dict, path: Path | None) -> None:
    """Preprocessing arrays of consistent shapes, finite, pointing inside the feature description."""
    n_coef = len(next(iter(ck["description"].values()), []))
    n_comp = len(str(ck["feature_config"].get("components", "")))
    if not preps:
        raise damaged(path, "no scales")
    for s, p in preps.items():
        F = p.columns.shape[0] if p.columns.ndim == 2 else -1
        ok = (p.columns.shape == (F, 2) and p.log.shape == (F,) and p.mean.shape == (n_comp, F)
              and p.std.shape == (n_comp, F) and F > 0 and (p.projection is None or p.projection.shape[0] == n_comp * F)
              and p.columns[:, 0].min() >= 0 and p.columns[:, 0].max() < n_coef and set(np.unique(p.columns[:, 1]))
              <= {0, 1} and (p.std >= 0).all() and (p.offset is None or (p.offset.shape == (n_comp, F)
                                                                       and (p.offset >= 0).all())))
        arrays = (p.mean, p.std) + tuple(a for a in (p.projection, p.offset) if a is not None)
        if not ok or not all(np.isfinite(a).all() for a in arrays):
            raise damaged(path, f"preprocessing of scale {s} is inconsistent or not finite")
        if p.channels != int(ck["channels"]):
            raise damaged(path, f"scale {s} has {p.channels} channels, the network {ck['channels']}")


def _check_weights(state: dict, expected: dict, path: Path | None) -> None:
    """Weights with the network's names, shapes and dtypes, all finite."""
    if set(state) != set(expected):
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        raise damaged(path, f"weights do not fit the network (missing {missing[:3]}, unexpected {extra[:3]})")
    for k, v in state.items():
        e = expected[k]
        if not isinstance(v, torch.Tensor) or v.shape != e.shape or v.dtype != e.dtype:
            got = f"{tuple(v.shape)} {v.dtype}" if isinstance(v, torch.Tensor) else type(v).__name__
            raise damaged(path, f"weight {k!r} is {got}, expected {tuple(e.shape)} {e.dtype}")
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise damaged(path, f"weight {k!r} holds NaN or infinite values")


def model_from_checkpoint(ck: dict, path: Path | None, device: str | torch.device) -> TrainedModel:
    try:
        config = ModelConfig.from_dict(ck["model_config"])
        preps = {int(s): ScalePrep.from_state(d) for s, d in ck["preps"].items()}
        _check_preps(preps, ck, path)
        net = build_network(config, {s: p.n_features for s, p in preps.items()}, int(ck["channels"]))
    except InputFileError:
        raise
    except (ConfigError, KeyError, TypeError, ValueError, AttributeError, RuntimeError, IndexError) as exc:
        detail = (exc.problem if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}").splitlines()[0]
        raise damaged(path, detail[:200]) from None
    _check_weights(ck["model"], net.state_dict(), path)
    net.load_state_dict(ck["model"])
    states = ck.get("members", [])
    if not isinstance(states, list) or len(states) != config.ensemble - 1:
        raise damaged(path, f"an ensemble of {config.ensemble} needs {config.ensemble - 1} further member(s)")
    members = []
    for i, state in enumerate(states, start=1):
        if not isinstance(state, dict):
            raise damaged(path, f"member {i}'s weights are not a dictionary")
        member = build_network(config, {s: p.n_features for s, p in preps.items()}, int(ck["channels"]))
        _check_weights(state, member.state_dict(), path)
        member.load_state_dict(state)
        members.append(member)
    profiles = _read_consensus(ck.get("consensus"), config, net.scales, path) if members else None
    outliers = _read_outliers(ck.get("outliers"), config, preps, path) if config.outlier_split else None
    model = TrainedModel(config, net, preps, ck["feature_config"], ck["feature_digest"], ck["description"],
                         int(ck["epoch"]), list(ck["logs"]), bool(ck["finished"]), path, members, profiles, outliers)
    if config.sparsity_split:
        model.splits = _read_splits(ck.get("sparsity_splits"), model, path)
    return model.to(resolve_device(device))


def _read_consensus(raw, config: ModelConfig, scales: tuple[int, ...], path: Path | None) -> dict[int, np.ndarray]:
    """The ensemble's consensus profiles, checked: per scale a (K, M, K) table of per-member distributions."""
    if not isinstance(raw, dict) or set(raw) != {str(s) for s in scales}:
        raise damaged(path, "the ensemble's consensus is missing or does not cover its scales")
    out = {}
    for s in scales:
        a = raw[str(s)]
        if not isinstance(a, torch.Tensor) or not cons.is_profile_table(a.numpy(), config.ensemble, config.clusters):
            raise damaged(path, f"the ensemble's consensus at scale {s} is not a table of cluster profiles")
        out[s] = a.numpy().astype(np.float64)
    return out


def _read_outliers(raw, config: ModelConfig, preps: dict[int, ScalePrep], path: Path | None
                   ) -> dict[int, outl.OutlierSplit]:
    """The outlier clusters of every scale, checked (shapes, distinct cluster numbers, finite values)."""
    if not isinstance(raw, dict) or not set(raw) <= {str(s) for s in preps}:
        raise damaged(path, "the outlier clusters are missing or name scales the model does not have")
    out = {}
    for s, p in preps.items():
        if str(s) not in raw:
            continue
        try:
            out[s] = outl.OutlierSplit.from_state(raw[str(s)], config.clusters, p.channels * p.n_features)
        except ValueError as exc:
            raise damaged(path, f"the outlier clusters at scale {s} are not valid ({exc})") from None
    return out


def _read_splits(raw, model: TrainedModel, path: Path | None) -> dict[int, spl.SparsitySplit]:
    """The sparsity splits of every scale, checked (shapes, numbers after the outlier clusters, finite values)."""
    if not isinstance(raw, dict) or not set(raw) <= {str(s) for s in model.scales}:
        raise damaged(path, "the sparsity splits are missing or name scales the model does not have")
    out = {}
    for s in model.scales:
        if str(s) not in raw:
            continue
        picked = model.side_columns(s)
        dims = 0 if picked is None else len(picked) * int(model.preps[s].mean.shape[0])
        try:
            out[s] = spl.SparsitySplit.from_state(raw[str(s)], model.first_split(s), model.config.clusters, dims)
        except ValueError as exc:
            raise damaged(path, f"the sparsity splits at scale {s} are not valid ({exc})") from None
    return out


def split_from(ck: dict, n: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The checkpoint's train/validation window indices, checked to lie in [0, n)."""
    out = []
    for name in ("train_idx", "val_idx"):
        a = ck[name]
        if a.dtype != torch.int64 or a.ndim != 1 or (a.numel() and (int(a.min()) < 0 or int(a.max()) >= n)):
            raise damaged(path, f"{name!r} is not a list of window indices below {n}")
        out.append(a.numpy())
    if not len(out[0]):
        raise damaged(path, "no training windows")
    return out[0], out[1]

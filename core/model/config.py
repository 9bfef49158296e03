"""Model configuration: network sizes, loss weights, optimisation and preprocessing, with named presets."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace

from unmix.errors import ConfigError

PREPROCESSING = ("paper", "log", "shape", "log-spars")
#: Seed distance between ensemble members (far from the neighbouring seeds a user tries: 29, 30, 31…).
MEMBER_SEED_STEP = 7919
#: Most input columns an outlier split's covariance may span: wider scales (no ``pca``) get no outlier clusters.
MAX_OUTLIER_DIMS = 256


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a factorial GMVAE and how it is trained.

    Published values (``preset('paper')``): hidden 1024, 4 layers, latent 32, 9 clusters, w_rec 0.15, Adam 1e-3,
    batch 16384, 1000 epochs, element-wise gradient clamp ±20, Gumbel temperature ``max(exp(-ln2·e/50), 0.5)``,
    seed 29, 90/10 split. ``preprocessing='paper'`` z-scores the features; ``'log'`` first takes the logarithm of
    every feature column that is positive in all training windows (moduli, energies), which tames the heavy tails
    that glitches produce; ``'shape'`` divides every coefficient by its own sub-window's first-layer RMS (each_ps per
    sub-window: scale-free shape such as the sparsity E|Wx|/σ) and keeps the level as the log power spectrum;
    ``'log-spars'`` is ``'log'`` with the standardised sparsity columns passed on beside the principal axes (glitches
    apart from wind bursts: glitch F1 up, ARI down on the synthetic benchmark, docs/performance.md).
    ``pca > 0`` projects each scale's standardised inputs (all components together) onto that many principal axes.
    The loss weights apply to sums over input columns, so with fewer columns (``pca``) ``w_rec`` must grow to keep
    the reconstruction's share of the loss. ``ensemble > 1`` trains that many networks (member ``i`` seeded with
    ``seed + i·MEMBER_SEED_STEP``) on the same inputs and clusters by their consensus (:mod:`unmix.model.consensus`).
    ``log_offset`` κ > 0 takes log(x + κ·m) instead of log(x) on the log columns, m the column's median over (up to
    512 evenly spaced) training windows: values far above the median (glitches) keep the log's compression, values
    below it are no longer stretched. A plain log turns the long lower tail of short-window energy estimates (a
    quiet night's long-period bands at 51 s) into modes of their own, which the clustering split into "level bands"
    (docs/performance.md, Clustering: the log offset).
    ``outlier_split`` r > 1 gives each large cluster an *outlier cluster*: its windows whose squared Mahalanobis
    distance from the cluster's (robust) Gaussian in the model inputs exceeds r times the cluster's median move there
    (:mod:`unmix.model.outliers`; rare sources such as glitches that the mixture left in a large cluster). Only
    scales whose inputs have at most :data:`MAX_OUTLIER_DIMS` columns get them (``pca``); 0 turns it off.
    ``sparsity_split`` t > 0 splits a cluster in two where its windows form two groups at least t apart in the
    standardised sparsity columns (:mod:`unmix.model.sparsity_split`; glitches and wind bursts the mixture put in one
    cluster); 0 turns it off. Features without sparsity coefficients get no splits.
    ``glitch_share`` g in (0, 1] adds a *glitch class* at every scale, numbered after every other cluster: the
    windows of which the instrument's glitch model explains at least the share g of the energy (the store's glitch
    evidence, :mod:`unmix.features.glitch_evidence`) go there, whatever the network says. It is not fitted: a store
    without glitch evidence leaves it empty. 0 turns it off.
    """

    hidden: int = 64
    layers: int = 2
    latent: int = 16
    clusters: int = 9
    w_rec: float = 0.15
    w_gauss: float = 1.0
    w_cat: float = 1.0
    lr: float = 1e-3
    batch_size: int = 256
    epochs: int = 30
    clip: float = 20.0
    init_temp: float = 1.0
    min_temp: float = 0.5
    temp_half_life: float = 5.0
    val_fraction: float = 0.1
    seed: int = 29
    preprocessing: str = "paper"
    pca: int = 0
    deterministic: bool = True
    checkpoint_every: int = 5
    negative_slope: float = 0.2
    ensemble: int = 1
    log_offset: float = 0.0
    outlier_split: float = 0.0
    sparsity_split: float = 0.0
    glitch_share: float = 0.0

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "latent", "batch_size", "epochs", "checkpoint_every", "ensemble"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.clusters < 2:
            raise ConfigError(f"clusters must be ≥ 2, got {self.clusters}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.preprocessing not in PREPROCESSING:
            raise ConfigError(f"preprocessing must be one of {', '.join(PREPROCESSING)}, got {self.preprocessing!r}")
        if not 0 < self.min_temp <= self.init_temp:
            raise ConfigError("temperatures must satisfy 0 < min_temp ≤ init_temp")
        if self.pca < 0:
            raise ConfigError(f"pca must be ≥ 0 (0: no projection), got {self.pca}")
        if self.lr <= 0 or self.clip <= 0 or self.temp_half_life <= 0:
            raise ConfigError("lr, clip and temp_half_life must be > 0")
        if not 0.0 <= self.log_offset < math.inf:
            raise ConfigError(f"log_offset must be a finite number ≥ 0, got {self.log_offset}")
        if not (self.outlier_split == 0.0 or 1.0 < self.outlier_split < math.inf):
            raise ConfigError(f"outlier_split must be 0 (off) or a finite ratio > 1, got {self.outlier_split}")
        if not 0.0 <= self.sparsity_split < math.inf:
            raise ConfigError(f"sparsity_split must be 0 (off) or a finite separation > 0, got {self.sparsity_split}")
        if not 0.0 <= self.glitch_share <= 1.0:
            raise ConfigError(f"glitch_share must be 0 (off) or a share in (0, 1], got {self.glitch_share}")

    def member_seed(self, member: int) -> int:
        """Seed of ensemble member ``member`` (member 0: ``seed`` itself, so ``ensemble=1`` is one ordinary model)."""
        return self.seed + member * MEMBER_SEED_STEP

    def temperature(self, epoch: int) -> float:
        """Gumbel-softmax temperature during ``epoch`` (exponential decay to a floor, as published)."""
        return max(self.init_temp * math.exp(-math.log(2.0) * epoch / self.temp_half_life), self.min_temp)

    @property
    def final_temperature(self) -> float:
        """Temperature used at inference: the one reached at the last training epoch."""
        return self.temperature(self.epochs - 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown model configuration keys {sorted(unknown)}")
        return cls(**d)

    def replace(self, **changes) -> ModelConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.hashed(), sort_keys=True).encode()).hexdigest()[:16]

    def hashed(self) -> dict:
        """:meth:`to_dict` as hashed: settings added later are left out at their 'off' value, so models made before
        them keep their digests."""
        d = self.to_dict()
        if not d["glitch_share"]:
            del d["glitch_share"]
        return d


PRESETS: dict[str, ModelConfig] = {
    # CPU-sized: trains on a few sols of features in minutes on 2 cores. Chosen by measurement on the default path
    # (docs/performance.md, Clustering): log features with the log offset κ = 10 (log(x + 10·median): the lower tail
    # of short-window energy estimates no longer splits quiet nights into level bands), 32 principal axes per scale,
    # w_rec 8 (the reconstruction's share of the loss, ≈ 0.3 × the ~880 columns the published weight saw per scale,
    # spread over 32), a weaker pull of q(y|x) to uniform (w_cat 0.2, else the posteriors stay near 1/K and rare
    # sources never win a cluster), 16 clusters, 60 epochs, an ensemble of 3 clustered by co-association
    # consensus (seed agreement), and outlier clusters at 64 × the median squared distance (glitches the mixture
    # left in the quiet-night cluster; the ratio chosen from the flat range 48–96), and sparsity splits at a
    # separation of 3.3 (glitches and wind bursts in one cluster; between the 3.1 of the largest continuous cluster
    # and the 3.6 of the smallest glitch group measured), and a glitch class of the windows whose energy the
    # template deglitcher explains for at least half (glitch energy dominating, the benchmark's own definition; not
    # tuned). On 2 synthetic sols (3 synthetic × 3 training seeds) and the real 3-h record, see docs/performance.md
    # for the figures.
    "small": ModelConfig(clusters=16, preprocessing="log", pca=32, w_rec=8.0, w_cat=0.2, epochs=60, ensemble=3,
                         log_offset=10.0, outlier_split=64.0, sparsity_split=3.3, glitch_share=0.5),
    # The published network and training settings (≈196 M parameters with the published 4 × (3, 420) inputs).
    "paper": ModelConfig(hidden=1024, layers=4, latent=32, clusters=9, w_rec=0.15, w_cat=1.0, batch_size=16384,
                         epochs=1000, temp_half_life=50.0, preprocessing="paper", pca=0, checkpoint_every=50),
}


def preset(name: str, **changes) -> ModelConfig:
    """A named preset (``'small'`` or ``'paper'``), with ``changes`` applied (None values are ignored)."""
    try:
        base = PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
    return base.replace(**changes)

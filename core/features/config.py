"""Feature configuration: everything that changes the numbers in a feature store, hashed to refuse mixing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

from unmix.errors import ConfigError

FEATURE_FORMAT = "unmix-features/2"
"""A store's index file: configuration, inputs and the table of its segment files (``unmix.features.store``)."""
FEATURE_FORMAT_V1 = "unmix-features/1"
"""A single-file store (before the segment files); still read, and taken whole as the first segment on appending."""
SEGMENT_FORMAT = "unmix-features-segment/2"
"""One segment file of a store: the windows of one or more inputs."""
EDGE_MODES = ("record", "window")
KEEP_MODES = ("last", "centre")
NORMALIZE_MODES = (None, "each_ps")
"""Feature normalisations: none (the default), or the published per-window power spectrum (``each_ps``)."""


@dataclass(frozen=True)
class FeatureConfig:
    """How windows are cut and described.

    ``window``/``hop``/``scales`` are in samples (published: 65536, 1024, (1024, 4096, 16384, 65536)). ``keep`` picks
    which sub-window of each scale describes a window: the right-most (``'last'``, published) or the centred one.
    ``edge='record'`` computes the wavelet transforms once over the whole record (reflection only at its ends) and
    assembles windows from 1024-sample block statistics: the same statistics without per-window mirror artefacts and
    ~window/hop times less work; ``edge='window'`` reflects every window as the published code does.
    ``normalize``: ``None`` (the default) keeps each window's level; ``'each_ps'`` divides each first-layer channel
    by its RMS over the window, as the published code does. The default is chosen by measurement: with ``each_ps`` a
    quiet night and a windy afternoon look alike at scales finer than the window, and the clusters of the default
    path mix them (ARI 0.07–0.22 against the synthetic truth, against 0.53–0.66 without; ``docs/performance.md``).
    ``glitch_evidence``: also store, per window, scale and component, the power of what the instrument's glitch
    model explains and of the record (:mod:`unmix.features.glitch_evidence`: the template deglitcher on the record
    as read, before any response removal); the model's glitch class reads it (``ModelConfig.glitch_share``).
    """

    window: int = 65536
    hop: int = 1024
    scales: tuple[int, ...] = (1024, 4096, 16384, 65536)
    J: int = 8
    Q: int = 1
    wavelet: str = "battle_lemarie"
    high_freq: float = 0.425
    model: str = "scat+cov"
    normalize: str | None = None
    keep: str = "last"
    edge: str = "record"
    components: str = "UVW"
    gap_policy: str = "split"
    max_fill: int = 0
    sampling_rate: float | None = None
    response: str | None = None
    response_output: str = "VEL"
    rotate: bool = False
    glitch_evidence: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        scales = tuple(sorted(int(s) for s in self.scales))
        object.__setattr__(self, "scales", scales)
        block = scales[0]
        if any(s % block for s in scales):
            raise ConfigError(f"every scale must be a multiple of the smallest ({block}): {scales}")
        if self.window % block or self.hop % block:
            raise ConfigError(f"window ({self.window}) and hop ({self.hop}) must be multiples of the smallest "
                              f"scale ({block})")
        if scales[-1] > self.window:
            raise ConfigError(f"the largest scale ({scales[-1]}) exceeds the window ({self.window})")
        if self.hop <= 0:
            raise ConfigError("hop must be > 0")
        if self.keep not in KEEP_MODES:
            raise ConfigError(f"keep must be one of {KEEP_MODES}")
        if self.edge not in EDGE_MODES:
            raise ConfigError(f"edge must be one of {EDGE_MODES}")
        if self.normalize not in NORMALIZE_MODES:
            raise ConfigError("normalize must be None or 'each_ps' for feature stores")
        if block * 8 < 2 ** self.J:
            raise ConfigError(f"J={self.J} wavelets are too long for {block}-sample blocks")
        if not isinstance(self.glitch_evidence, bool):
            raise ConfigError("glitch_evidence must be true or false")
        if self.rotate and self.response is None:
            raise ConfigError("rotation to ZNE needs the response/orientation metadata (--response)")

    def scale_datasets(self) -> tuple[str, ...]:
        """The per-scale datasets of a store made with this configuration (``NAME/SCALE``), in writing order."""
        return ("features", "intervals", "lmst") + (("glitch",) if self.glitch_evidence else ())

    @property
    def block(self) -> int:
        return self.scales[0]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["scales"] = list(self.scales)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FeatureConfig:
        d = dict(d)
        d.setdefault("glitch_evidence", False)  # stores made before it hold none
        d["scales"] = tuple(d["scales"])
        return cls(**d)

    def features_digest(self) -> str:
        """:meth:`digest` of the settings that change the features themselves (not whether glitch evidence is kept
        beside them): a model trained on either kind of store clusters the other."""
        return replace(self, glitch_evidence=False).digest()

    def digest(self) -> str:
        """Stable hash of everything that changes the features (the response path is hashed by name)."""
        # format 1 named here on purpose: format 2 changed the files, not the numbers, so old stores keep their hash
        d = self.to_dict()
        if not d["glitch_evidence"]:  # added later: stores made without it keep their hash
            del d["glitch_evidence"]
        payload = json.dumps({"format": FEATURE_FORMAT_V1, **d}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

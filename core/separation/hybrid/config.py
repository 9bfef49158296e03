"""Configuration of the hybrid separator: small frozen dataclasses, one per stage, and the flat option keys
(``--hybrid-opt KEY=VALUE``) that map onto their fields.

Constructing a configuration only stores values; :meth:`checked` validates them and returns a copy with the
types the algorithm uses (called by :meth:`HybridSeparator.separate <unmix.separation.hybrid.HybridSeparator>`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from unmix.errors import ConfigError

FALLBACKS = ("scatcov", "none")
RESIDUALS = ("auto", "misfit", "glitches", "none")
#: rise times (s) tried per glitch with ``rise_times='auto'``
RISE_TIMES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
#: seconds of template before the onset
PRE = 2.0


@dataclass(frozen=True)
class TemplateConfig:
    """Templates and the whitening they are fitted under: ``template_duration`` (s), Welch segment
    ``whiten_segment`` (samples; also the padding), ``spectrum`` ``'record'`` or ``'prior'``, and ``max_frequency``
    (Hz, the whitening gain fades out above it; None: full band)."""

    template_duration: float = 60.0
    whiten_segment: int = 1024
    spectrum: str = "record"
    max_frequency: float | None = 1.0

    def checked(self) -> TemplateConfig:
        """Validated copy with the algorithm's types."""
        if self.spectrum not in ("record", "prior"):
            raise ConfigError(f"spectrum must be 'record' or 'prior', got {self.spectrum!r}")
        if self.whiten_segment < 64 or self.template_duration <= 0:
            raise ConfigError("need whiten_segment >= 64 and template_duration > 0")
        return replace(self, template_duration=float(self.template_duration), whiten_segment=int(self.whiten_segment),
                       max_frequency=None if self.max_frequency is None else float(self.max_frequency))


@dataclass(frozen=True)
class DetectionConfig:
    """Candidates and model selection: ``threshold`` (χ² of a shared onset over the components, local whitened
    noise units), ``component_threshold`` (per component, to keep an amplitude), ``cluster_threshold`` (for
    candidates from glitch-cluster windows), ``search`` (s either side of a candidate), ``max_group`` (candidates
    fitted jointly), ``min_separation`` (s), ``use_template_detector``, ``min_variance_reduction`` over ``vr_window``
    s (of all the energy, or with ``vr_excess`` of the energy above the local noise), and the local noise level:
    MAD of ``noise_block``-s blocks, sliding median over ``noise_span`` blocks."""

    threshold: float = 300.0
    component_threshold: float = 9.0
    cluster_threshold: float = 100.0
    search: float = 2.0
    max_group: int = 4
    min_separation: float = 1.0
    use_template_detector: bool = True
    min_variance_reduction: float = 0.3
    vr_window: float = 30.0
    vr_excess: bool = False
    noise_block: float = 30.0
    noise_span: int = 11

    def checked(self) -> DetectionConfig:
        """Validated copy with the algorithm's types."""
        if min(self.threshold, self.component_threshold, self.cluster_threshold) <= 0:
            raise ConfigError("thresholds must be > 0")
        if self.search < 0:
            raise ConfigError(f"search must be >= 0, got {self.search}")
        return replace(self, threshold=float(self.threshold), component_threshold=float(self.component_threshold),
                       cluster_threshold=float(self.cluster_threshold), search=float(self.search),
                       max_group=max(1, int(self.max_group)), min_separation=float(self.min_separation),
                       use_template_detector=bool(self.use_template_detector),
                       min_variance_reduction=float(self.min_variance_reduction), vr_window=float(self.vr_window),
                       vr_excess=bool(self.vr_excess), noise_block=float(self.noise_block),
                       noise_span=int(self.noise_span))


@dataclass(frozen=True)
class OnsetConfig:
    """Onset fitting: ``subsample`` grid steps per sample, then ``refine_iter`` L-BFGS iterations (0: grid only)."""

    subsample: int = 8
    refine_iter: int = 30

    def checked(self) -> OnsetConfig:
        """Validated copy with the algorithm's types."""
        if self.subsample < 1 or self.refine_iter < 0:
            raise ConfigError("need subsample >= 1 and refine_iter >= 0")
        return replace(self, subsample=int(self.subsample), refine_iter=int(self.refine_iter))


@dataclass(frozen=True)
class RiseTimeConfig:
    """Glitch rise times (s; a tilt spread over τ), chosen per glitch when that lowers χ² by ``rise_threshold``;
    ``'auto'``: :data:`RISE_TIMES`."""

    rise_times: str | tuple[float, ...] | None = "auto"
    rise_threshold: float = 150.0

    def checked(self) -> RiseTimeConfig:
        """Validated copy whose ``rise_times`` is a sorted tuple holding 0."""
        rise_times = self.rise_times
        if isinstance(rise_times, str):
            if rise_times != "auto":
                raise ConfigError(f"rise_times must be 'auto' or a list of seconds, got {rise_times!r}")
            rise_times = RISE_TIMES
        rt = (0.0,) if not rise_times else tuple(sorted({0.0, *(float(t) for t in rise_times)}))
        if min(rt) < 0 or self.rise_threshold < 0:
            raise ConfigError("rise times and rise_threshold must be >= 0")
        return replace(self, rise_times=rt, rise_threshold=float(self.rise_threshold))


@dataclass(frozen=True)
class SpikeConfig:
    """Spikes (steps in displacement) near each glitch onset: ``fit_spikes``, ``spike_threshold`` (χ² over the
    components), ``spike_search`` (s either side of the glitch onset)."""

    fit_spikes: bool = True
    spike_threshold: float = 100.0
    spike_search: float = 0.5

    def checked(self) -> SpikeConfig:
        """Validated copy with the algorithm's types."""
        if self.spike_threshold <= 0:
            raise ConfigError("thresholds must be > 0")
        return replace(self, fit_spikes=bool(self.fit_spikes), spike_threshold=float(self.spike_threshold),
                       spike_search=float(self.spike_search))


@dataclass(frozen=True)
class ResidualConfig:
    """The scattering-covariance residual: ``residual`` ``'auto'``, ``'misfit'``, ``'glitches'`` or ``'none'``
    (True/False: 'glitches'/'none'), ``outlier_factor``, ``record_share`` (with 'auto': when at least this share of a
    trace's pieces is flagged the whole trace goes to the scattering separation), ``explained_factor`` (with 'auto'
    and 'misfit': a flagged span whose departure from the prior the templates divide by at least this factor is
    theirs: they are kept there and the separation takes the template-cleaned record; with 'auto', elsewhere they
    fade out and it takes the raw record; 0: they fade out over every flagged span), ``residual_weight`` λ,
    ``residual_margin`` (s), and ``fallback`` (``'scatcov'`` or ``'none'``) for a record without any template."""

    residual: str | bool = field(default="misfit", metadata={"help": (
        "'auto': the scattering separation also acts where the record is unlike the prior (wind, bursts, and "
        "marsquakes too: it removes them); 'misfit': only where the templates explain a departure from the prior "
        "(it takes what they leave; wind, marsquakes and long periods untouched); "
        "'glitches': only around fitted glitches; 'none': templates only, marsquakes and long periods untouched "
        "(use it for records with events)")})
    outlier_factor: float = 2.0
    record_share: float = 1.0
    explained_factor: float = 1.5
    residual_weight: float = 0.0
    residual_margin: float = 20.0
    fallback: str = field(default="scatcov", metadata={"help": (
        "'scatcov' or 'none': what a trace without any fitted template gets (with residual 'auto' or "
        "'glitches')")})

    def checked(self) -> ResidualConfig:
        """Validated copy with ``residual`` as one of :data:`RESIDUALS`."""
        mode = {True: "glitches", False: "none"}.get(self.residual, self.residual)
        if mode not in RESIDUALS:
            raise ConfigError(f"residual must be one of {', '.join(RESIDUALS)}, got {self.residual!r}")
        if self.fallback not in FALLBACKS:
            raise ConfigError(f"fallback must be one of {', '.join(FALLBACKS)}, got {self.fallback!r}")
        if self.residual_weight < 0 or self.residual_margin < 0 or self.explained_factor < 0:
            raise ConfigError("residual_weight, residual_margin and explained_factor must be >= 0")
        if not 0.0 < self.record_share <= 1.0:
            raise ConfigError(f"record_share must be in (0, 1], got {self.record_share}")
        return replace(self, residual=mode, outlier_factor=float(self.outlier_factor),
                       record_share=float(self.record_share), explained_factor=float(self.explained_factor),
                       residual_weight=float(self.residual_weight),
                       residual_margin=float(self.residual_margin))


@dataclass(frozen=True)
class SolverConfig:
    """The scattering-covariance separation of the residual and the fallback: ``piece`` (samples), ``max_iter``,
    ``tol``, ``J`` (octaves) and ``dtype`` (``'float64'`` or ``'float32'``)."""

    piece: int = 1024
    max_iter: int = 100
    tol: float = 0.1
    J: int = 8
    dtype: str = "float64"

    def checked(self) -> SolverConfig:
        """Validated copy with the algorithm's types."""
        if self.dtype not in ("float64", "float32"):
            raise ConfigError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")
        return replace(self, piece=int(self.piece), max_iter=int(self.max_iter), tol=float(self.tol), J=int(self.J))


#: constructor parameter name → configuration class
CONFIGS: dict[str, type] = {"templates": TemplateConfig, "detection": DetectionConfig, "onsets": OnsetConfig,
                            "rise": RiseTimeConfig, "spikes": SpikeConfig, "residual": ResidualConfig,
                            "solver": SolverConfig}
#: flat option key → constructor parameter of the configuration that holds it
FLAT_KEYS: dict[str, str] = {f.name: param for param, cls in CONFIGS.items() for f in fields(cls)}


def group_flat(options: dict[str, Any], configs: dict[str, Any]) -> dict[str, Any]:
    """The configurations of ``configs`` (param → instance or None) updated by the flat ``options``."""
    updates: dict[str, dict[str, Any]] = {}
    for key, value in options.items():
        updates.setdefault(FLAT_KEYS[key], {})[key] = value
    out = dict(configs)
    for param, values in updates.items():
        out[param] = replace(configs.get(param) or CONFIGS[param](), **values)
    return out

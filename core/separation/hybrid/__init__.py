"""``--method hybrid``: physics-informed separation, a sparse sum of instrument templates plus a free residual.

The removed part of each trace is ``Σₖ aₖ,c·G_c(t − tₖ) + Σₖ sₖ,c·S_c(t − t'ₖ) + r_c`` where ``G`` is the channel's
output for a step in ground acceleration (glitch), ``S`` for a step in displacement (spike), the onsets ``tₖ`` are
continuous and shared by the components of one sensor (a tilt moves U, V and W at the same instant), the amplitudes
are free per component, and ``r`` is a residual that the scattering-covariance prior attributes to neither.

What makes it better than the classical template fit, module by module:

1. **Coloured-noise (generalised) least squares** (:mod:`.whitening`, :mod:`.templates`). The background is far from
   white: most of its energy sits in the band where glitches live. Data and templates are whitened by the background
   spectrum (Welch spectrum of the prior snippets — the second-order part of the prior's statistics — or a robust
   median spectrum of the record itself), so onsets and amplitudes are estimated where the background is weak
   relative to the glitch.
2. **Three-component detection and model selection** (:mod:`.detection`). A glitch is kept when the
   generalised-likelihood statistic ``Σ_c (gain_c / σ_c²)`` of a shared onset over all components, against the
   *local* whitened noise level ``σ_c`` (robust, sliding), exceeds ``threshold``; a component's amplitude is kept
   only if significant there. Candidates: peaks of that statistic, the template detector's detections
   (:class:`~unmix.baselines.template.TemplateDeglitcher`) and, with a cluster table, the strongest onset inside each
   window the model puts in a glitch cluster at the finest scale (tested against ``cluster_threshold``).
3. **Continuous onsets** (:mod:`.onsets`). Onsets are refined jointly with the amplitudes by L-BFGS in PyTorch, the
   templates shifted by any real delay in the Fourier domain (exact for band-limited templates, differentiable).
   Then per glitch a rise time (:mod:`.rise_times`), the amplitudes (:mod:`.amplitudes`) and spikes near each onset
   (:mod:`.spikes`); :mod:`.fit` chains these for one sensor.
4. **Scattering-covariance residual** (:mod:`.residual`). With prior snippets, the template-cleaned record is
   compared with the prior piece by piece (the background term of the published loss: whitened distance of its
   scattering covariances to the snippets'); runs of pieces departing by more than ``outlier_factor`` × the
   snippets' own largest value are flagged. A flagged run whose departure the templates divide by
   ``explained_factor`` or more is theirs (glitches their model fits only roughly: rise times, pairs, spikes). The
   default ``residual='misfit'`` separates only those runs, by the published scattering-covariance loss
   (:func:`~unmix.separation.solver.separate_signals`), from the template-cleaned record: the residual ``r`` is what
   the templates left, shrunk by ``residual_weight`` λ (an L2 penalty on r in closed form, ``r = r̂ / (1 + λ)``) and
   faded in and out at the span edges. Anything no template explains (wind, bursts, a marsquake, a background
   louder than the prior) is left alone. ``residual='auto'`` also separates those other runs: templates fade out
   there (their model is not trusted where the record is unlike the prior for another reason) and the separation
   takes the raw record. It removes wind gusts and bursts, and marsquakes with them (measured in
   ``docs/performance.md``): use it on records without events. ``residual='glitches'`` instead separates the
   neighbourhood of every accepted glitch (measured to remove background too on exact instrument steps);
   ``'none'`` keeps templates only. With ``'auto'`` or ``'glitches'``, a record where no template is accepted at all
   is handed to the scattering separation unchanged (``fallback='scatcov'``).

Configuration (:mod:`.config`): one frozen dataclass per stage; :class:`HybridSeparator` takes them as
``templates=``, ``detection=``, ``onsets=``, ``rise=``, ``spikes=``, ``residual=``, ``solver=``, and
:meth:`HybridSeparator.from_options` (used by ``get_method`` and ``--hybrid-opt``) their fields as flat keys.
"""

from unmix.separation.hybrid.config import (
    FALLBACKS,
    RESIDUALS,
    RISE_TIMES,
    DetectionConfig,
    OnsetConfig,
    ResidualConfig,
    RiseTimeConfig,
    SolverConfig,
    SpikeConfig,
    TemplateConfig,
)
from unmix.separation.hybrid.separator import HybridSeparator, valid_options

__all__ = [
    "FALLBACKS",
    "RESIDUALS",
    "RISE_TIMES",
    "DetectionConfig",
    "HybridSeparator",
    "OnsetConfig",
    "ResidualConfig",
    "RiseTimeConfig",
    "SolverConfig",
    "SpikeConfig",
    "TemplateConfig",
    "valid_options",
]

"""Source separation in scattering-covariance space (issue #5).

* :class:`BaseSeparator`: the base class of methods (parameters, configuration check, provenance and timing);
* :class:`SeparationLoss`: the published three-term loss and its gradient for a batch of problems;
* :func:`separate_array` / :func:`separate_signals`: pieces, standardisation, one batched L-BFGS solve, stitching;
* :class:`ScatCovSeparator` (``--method scatcov``): the same on ObsPy Streams, prior from snippets or clusters;
* :class:`HybridSeparator` (``--method hybrid``): instrument templates + scattering-covariance residual.
"""

from importlib import import_module
from typing import Any

_WHERE = {
    "BaseSeparator": "base", "HybridSeparator": "hybrid", "SeparationLoss": "loss", "METHODS": "registry",
    "get_method": "registry",
    "register_method": "registry", "SeparationResult": "result", "Separator": "result",
    "ScatCovSeparator": "scatcov", "SolveReport": "solver", "piece_starts": "solver", "separate_array": "solver",
    "separate_signals": "solver", "stitch": "solver", "taper_weights": "solver",
}


def __getattr__(name: str) -> Any:
    """The public names, imported on first use (``import unmix.separation.registry`` stays light: no torch)."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)


__all__ = [
    "BaseSeparator",
    "HybridSeparator",
    "METHODS",
    "ScatCovSeparator",
    "SeparationLoss",
    "SeparationResult",
    "Separator",
    "SolveReport",
    "get_method",
    "piece_starts",
    "register_method",
    "separate_array",
    "separate_signals",
    "stitch",
    "taper_weights",
]

"""Source separation in scattering-covariance space (issue #5).

* :class:`SeparationLoss`: the published three-term loss and its gradient for a batch of problems;
* :func:`separate_array` / :func:`separate_signals`: pieces, standardisation, one batched L-BFGS solve, stitching;
* :class:`ScatCovSeparator` (``--method scatcov``): the same on ObsPy Streams, prior from snippets or clusters;
* :class:`HybridSeparator` (``--method hybrid``): instrument templates + scattering-covariance residual.
"""

from unmix.separation.hybrid import HybridSeparator
from unmix.separation.loss import SeparationLoss
from unmix.separation.result import METHODS, SeparationResult, Separator, get_method, register_method
from unmix.separation.scatcov import ScatCovSeparator
from unmix.separation.solver import SolveReport, piece_starts, separate_array, separate_signals, stitch, taper_weights

__all__ = [
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

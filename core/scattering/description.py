"""Coefficient descriptions (meaning and order) of the scattering-covariance statistics.

The order is the published one (srcsep ``Model``), so arrays can be compared index by index:

1. per channel ``c``: ``spars`` (``j = 0..JQ-1``), ``mean``, then for ``'scat+cov'`` the ``scat`` paths in lexicographic
   ``(j1, j2)`` order;
2. for every channel pair ``(nl, nr)`` (diagonal ``(c, c)``; off-diagonal pairs in lexicographic order):
   ``ps`` (``j = 0..JQ``), then
3. ``phaseenv`` for every pair, sorted by ``j2`` then ``j1`` (``jl1 = j2``, ``jr1 = j1``), then
4. ``envelope`` for every pair, left paths ``(jl1, j2)`` in lexicographic order, then ``jr1 = 0..jl1``.

Index ``JQ`` denotes the low-pass; ``-1`` marks an unused column.
"""

from __future__ import annotations

import numpy as np

DESCRIPTION_DTYPE = np.dtype(
    [
        ("c_type", "U8"),
        ("nl", "i4"),
        ("nr", "i4"),
        ("jl1", "i4"),
        ("jr1", "i4"),
        ("j2", "i4"),
        ("real", "?"),
        ("low", "?"),
    ]
)
MODELS = ("cov", "scat+cov")
CHANNEL_MODES = ("diag", "offdiag", "full")


def n_first(j2: int, Q: int) -> int:
    """Number of admissible first-layer indices ``j1`` for last index ``j2`` (octave rule ``j1//Q < j2//Q``)."""
    return Q * (j2 // Q)


def channel_pairs(n_channels: int, channel_mode: str) -> list[tuple[int, int]]:
    """Channel pairs ``(nl, nr)`` of the correlation families for ``channel_mode``."""
    if channel_mode == "diag":
        return [(c, c) for c in range(n_channels)]
    if channel_mode == "offdiag":
        return [(a, b) for a in range(n_channels) for b in range(n_channels) if a != b]
    if channel_mode == "full":
        return [(a, b) for a in range(n_channels) for b in range(n_channels)]
    raise ValueError(channel_mode)


def build_description(
    J: int, Q: int, model: str = "cov", n_channels: int = 1, channel_mode: str = "diag"
) -> np.ndarray:
    """Structured array (fields of :data:`DESCRIPTION_DTYPE`) describing every coefficient, in output order.

    ``real`` is True when the coefficient is real by construction (moduli, low-pass products, same-channel
    auto-products); it differs from the published flag only for cross-channel ``ps``/diagonal ``envelope``,
    which the published code labels real although they are complex.
    """
    JQ = J * Q
    rows: list[tuple] = []
    for c in range(n_channels):
        rows += [("spars", c, c, j, -1, -1, True, False) for j in range(JQ)]
        rows.append(("mean", c, c, JQ, -1, -1, True, True))
        if model == "scat+cov":
            rows += [
                ("scat", c, c, j1, -1, j2, True, j2 == JQ)
                for j1 in range(JQ)
                for j2 in range(JQ + 1)
                if j1 < n_first(j2, Q)
            ]
    pairs = channel_pairs(n_channels, channel_mode)
    for nl, nr in pairs:
        rows += [("ps", nl, nr, j, j, -1, nl == nr or j == JQ, j == JQ) for j in range(JQ + 1)]
    for nl, nr in pairs:
        rows += [
            ("phaseenv", nl, nr, j2, j1, j2, j2 == JQ, j2 == JQ) for j2 in range(JQ + 1) for j1 in range(n_first(j2, Q))
        ]
    for nl, nr in pairs:
        for jl1 in range(JQ):
            for j2 in range(JQ + 1):
                if jl1 >= n_first(j2, Q):
                    continue
                rows += [
                    ("envelope", nl, nr, jl1, jr1, j2, j2 == JQ or (nl == nr and jl1 == jr1), j2 == JQ)
                    for jr1 in range(jl1 + 1)
                ]
    return np.array(rows, dtype=DESCRIPTION_DTYPE)


def count_coefficients(J: int, Q: int = 1, model: str = "cov", n_channels: int = 1, channel_mode: str = "diag") -> int:
    """Number of coefficients per output row (all channels of a cross model together)."""
    return len(build_description(J, Q, model, n_channels, channel_mode))

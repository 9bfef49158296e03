"""Multi-scale "pyramid" of local statistics from one set of block averages.

Every statistic is a time average of a pointwise product (the normalisation, if any, is global to the window), so the
statistics over ``s`` samples are the mean of the statistics of the ``s / block`` blocks it contains.  The published
pipeline pools 1 024-sample blocks of a 65 536-sample window and keeps, per scale, the **right-most** block
(``keep='last'``: all scales end at the window's last sample).  ``keep='centre'`` keeps the block centred in the
window instead, which is further from the reflection-padding edge; it needs ``(T - s) / 2`` to be a multiple of
``block`` (use a base block of ``gcd`` of the scales and the half-differences, see :func:`base_block`).
"""

from __future__ import annotations

import math

import torch

from unmix.errors import ConfigError

DEFAULT_SCALES = (1024, 4096, 16384, 65536)
KEEP = ("last", "centre", "all")


def base_block(T: int, scales: tuple[int, ...] | list[int], keep: str = "last") -> int:
    """Largest pooling block from which every scale (and, for ``'centre'``, its centred position) can be formed."""
    b = 0
    for s in scales:
        b = math.gcd(b, int(s))
        if keep == "centre" and s < T:
            b = math.gcd(b, (T - int(s)) // 2)
    return b


def pyramid(
    stats_blocks: torch.Tensor,
    scales: tuple[int, ...] | list[int] = DEFAULT_SCALES,
    block: int = 1024,
    keep: str = "last",
) -> dict[int, torch.Tensor]:
    """Statistics at several time scales from block statistics ``(..., n_blocks)`` of ``block`` samples each.

    Returns ``{scale: tensor}``: ``(...)`` for ``keep='last'`` (right-most ``scale`` samples) or ``'centre'``
    (centred ``scale`` samples), ``(..., n_blocks // (scale // block))`` for ``'all'`` (non-overlapping averages).
    """
    if keep not in KEEP:
        raise ConfigError(f"keep must be one of {', '.join(KEEP)}, got {keep!r}")
    nb = stats_blocks.shape[-1]
    T = nb * block
    out: dict[int, torch.Tensor] = {}
    for s in scales:
        s = int(s)
        if s % block or s > T:
            raise ConfigError(f"scale {s} is not a multiple of the block {block} or exceeds the window {T}")
        f = s // block
        if keep == "centre":
            if (T - s) % (2 * block):
                raise ConfigError(
                    f"the centred {s}-sample block of a {T}-sample window does not start on a {block}-sample "
                    f"block boundary; use block={base_block(T, scales, 'centre')}"
                )
            start = (T - s) // (2 * block)
            out[s] = stats_blocks[..., start : start + f].mean(-1)
            continue
        if nb % f:
            raise ConfigError(f"scale {s} does not divide the window of {T} samples")
        if keep == "last":
            out[s] = stats_blocks[..., nb - f :].mean(-1)
        else:
            out[s] = stats_blocks.reshape(stats_blocks.shape[:-1] + (nb // f, f)).mean(-1)
    return out

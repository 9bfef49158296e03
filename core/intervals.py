"""Unions of time intervals (gaps, overlaps, cluster spans, snippet exclusions): one helper for every caller."""

from __future__ import annotations

from collections.abc import Iterable


def merge_intervals(items: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of closed intervals ``(start, end)`` as sorted, disjoint intervals (touching ones are joined).

    >>> merge_intervals([(5, 6), (0, 2), (1, 3), (3, 4)])
    [(0.0, 4.0), (5.0, 6.0)]
    """
    out: list[list[float]] = []
    for a, b in sorted((float(a), float(b)) for a, b in items):
        if b < a:
            raise ValueError(f"interval ends before it starts: ({a}, {b})")
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


__all__ = ["merge_intervals"]

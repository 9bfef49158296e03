"""A toy separation method for the registry tests: one file, installed as a plugin or listed as a registry entry.

The background is each trace minus ``scale`` times its mean; the removed part (``offset``) is the rest, so
``background + offset`` equals the input sample by sample.
"""

from __future__ import annotations

import numpy as np
from obspy import Stream

from unmix.jobs import CancelToken, Progress
from unmix.separation.base import BaseSeparator
from unmix.separation.result import SeparationResult


class ToySeparator(BaseSeparator):
    """Removes the mean of each trace (a toy method)."""

    name = "toy"

    def __init__(self, scale: float = 1.0, removed_name: str = "offset") -> None:
        self.scale = scale
        self.removed_name = removed_name

    def _separate(self, stream: Stream, progress: Progress, token: CancelToken) -> SeparationResult:
        background, removed = stream.copy(), stream.copy()
        for b, r in zip(background, removed, strict=True):
            data = np.asarray(r.data, dtype=np.float64)
            r.data = np.full_like(data, float(self.scale) * data.mean())
            b.data = data - r.data
        return SeparationResult(background, {self.removed_name: removed})


def spec():
    """The plugin's registry entry (an entry point may name a ``MethodSpec`` to declare what the method uses)."""
    from unmix.separation.registry import MethodSpec

    return MethodSpec("toy", ToySeparator, "removes the mean of each trace", uses=("device",),
                      help=(("scale", "fraction of the mean removed"),))


SPEC = spec()

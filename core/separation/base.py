"""The base class of separation methods: provenance and timing written in one place.

A method subclasses :class:`BaseSeparator`, stores its constructor arguments under their own names (scikit-learn
style, :class:`unmix.params.ParamsMixin`: no validation in ``__init__``) and implements ``_separate``; the public
:meth:`~BaseSeparator.separate` refuses an empty stream, checks the configuration, times the call and stamps
``method``, ``params`` and ``total_s`` into :attr:`SeparationResult.info` (the provenance the export writes).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from obspy import Stream

from unmix.errors import ConfigError, DataError
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress
from unmix.params import ParamsMixin
from unmix.separation.result import SeparationResult


@dataclass(frozen=True)
class PieceExtent:
    """How a method runs over a long record in pieces (:mod:`unmix.separation.pieces`): each piece gives ``kept``
    samples of output and sees ``margin`` samples more on either side, enough for its kept part to come out as it
    would from the whole record."""

    kept: int
    margin: int

    @classmethod
    def of(cls, kept_s: float, margin_s: float, sampling_rate: float) -> PieceExtent:
        """From seconds (the kept part rounded, the margin rounded up) at ``sampling_rate``."""
        return cls(max(1, round(kept_s * sampling_rate)), max(0, math.ceil(margin_s * sampling_rate)))


def settle_seconds(corner: float, corners: int, decay: float = 1e-4) -> float:
    """Seconds until the start-up transient of a Butterworth high-pass (``corner`` Hz, ``corners`` poles) has
    decayed by ``decay``: its slowest pole pair decays as exp(-2π·corner·sin(π/(2·corners))·t)."""
    if not (corner > 0 and corners >= 1 and 0 < decay < 1):
        raise ConfigError(f"a high-pass needs a corner > 0 Hz and corners >= 1, got {corner} Hz, {corners}")
    return math.log(1.0 / decay) / (2.0 * math.pi * corner * math.sin(math.pi / (2 * corners)))


class BaseSeparator(ParamsMixin):
    """A configured separation method (configuration in the constructor, checked when it runs).

    Subclasses set ``name`` (the registry name), implement :meth:`_separate` and, when ``get_params()`` holds
    arrays or objects that do not belong in a provenance file, :meth:`provenance_params`.
    """

    name: str
    #: options a provenance written before they were recorded does not hold, with the values such a run had; a
    #: replay fills them in (:mod:`unmix.replay`), so that a changed default does not change what it re-runs
    unrecorded: ClassVar[dict[str, Any]] = {}

    def piece_extent(self, sampling_rate: float) -> PieceExtent | None:
        """Kept and margin samples of the pieces a long record may be separated in (:mod:`unmix.separation.pieces`);
        None (the default): the method needs the whole record."""
        return None

    def separate(self, stream: Stream, progress: Progress = no_progress,
                 token: CancelToken = NO_CANCEL) -> SeparationResult:
        """Background and removed parts of every trace of ``stream`` (input untouched); ``info`` holds the method,
        its checked parameters, what the method reports and the wall time ``total_s`` (also as ``seconds``)."""
        if len(stream) == 0:
            raise DataError("nothing to separate: the stream holds no traces")
        t_start = time.perf_counter()
        params = self.provenance_params()  # checks the configuration before any work
        result = self._separate(stream, progress, token)
        seconds = round(time.perf_counter() - t_start, 4)
        result.info = {"method": getattr(self, "name", type(self).__name__), "params": params, **result.info,
                       "total_s": seconds, "seconds": seconds}
        return result

    def _separate(self, stream: Stream, progress: Progress, token: CancelToken) -> SeparationResult:
        """The method itself; ``info`` of the result holds only what is particular to the method."""
        raise NotImplementedError

    def protecting(self, spans: dict[str, list] | list) -> BaseSeparator:
        """This separator for a run whose ``spans`` (POSIX seconds; per trace id, or the same for every trace) the
        analyst protects (:mod:`unmix.separation.protect` puts its non-template parts back there afterwards).
        Default: itself; a method that would otherwise give up its templates inside such spans returns a copy that
        keeps them."""
        return self

    def check_params(self) -> None:
        """Raise :class:`~unmix.errors.ConfigError` for an invalid configuration; :func:`unmix.separation.registry.
        get_method` calls it, so that the CLI, GUI and batch exports refuse a bad option before any work."""
        self.provenance_params()

    def provenance_params(self) -> dict[str, Any]:
        """The checked configuration, JSON-ready, for ``info['params']`` (default: :meth:`get_params`); raises
        :class:`~unmix.errors.ConfigError` for an invalid one."""
        return self.get_params()


__all__ = ["BaseSeparator", "PieceExtent", "settle_seconds"]

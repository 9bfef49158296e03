"""The base class of separation methods: provenance and timing written in one place.

A method subclasses :class:`BaseSeparator`, stores its constructor arguments under their own names (scikit-learn
style, :class:`unmix.params.ParamsMixin`: no validation in ``__init__``) and implements ``_separate``; the public
:meth:`~BaseSeparator.separate` refuses an empty stream, checks the configuration, times the call and stamps
``method``, ``params`` and ``total_s`` into :attr:`SeparationResult.info` (the provenance the export writes).
"""

from __future__ import annotations

import time
from typing import Any

from obspy import Stream

from unmix.errors import DataError
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress
from unmix.params import ParamsMixin
from unmix.separation.result import SeparationResult


class BaseSeparator(ParamsMixin):
    """A configured separation method (configuration in the constructor, checked when it runs).

    Subclasses set ``name`` (the registry name), implement :meth:`_separate` and, when ``get_params()`` holds
    arrays or objects that do not belong in a provenance file, :meth:`provenance_params`.
    """

    name: str

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

    def check_params(self) -> None:
        """Raise :class:`~unmix.errors.ConfigError` for an invalid configuration; :func:`unmix.separation.registry.
        get_method` calls it, so that the CLI, GUI and batch exports refuse a bad option before any work."""
        self.provenance_params()

    def provenance_params(self) -> dict[str, Any]:
        """The checked configuration, JSON-ready, for ``info['params']`` (default: :meth:`get_params`); raises
        :class:`~unmix.errors.ConfigError` for an invalid one."""
        return self.get_params()


__all__ = ["BaseSeparator"]

"""``--method scatcov``: the published scattering-covariance separation as a :class:`Separator` on ObsPy Streams."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from obspy import Stream

from unmix.errors import ConfigError, DataError
from unmix.jobs import CancelToken, Progress, sub_progress
from unmix.scattering import resolve_device
from unmix.separation.base import BaseSeparator
from unmix.separation.result import SeparationResult, checked_signals, component_letter
from unmix.separation.solver import OPTIMIZERS, STANDARDIZE, separate_signals

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


class ScatCovSeparator(BaseSeparator):
    """Separate a record into a background with the prior snippets' scattering-covariance statistics and the rest.

    Prior: either ``prior``, an array ``(R, C, T)`` of snippets (``C`` components in the order ``components``, default
    the record's component letters sorted, e.g. ``'UVW'``; ``C = 1`` serves every component), or a cluster
    ``table`` (:class:`~unmix.clusters.ClusterTable`) with ``clusters`` at ``scale``: the ``n_prior`` most confident
    windows that overlap neither each other nor the target (within ``lmst_tolerance`` hours of the target's LMST time
    of day when ``near_lmst``) are read with :func:`unmix.snippets.read_snippets`.

    Solver: ``piece`` samples per problem (all pieces and components solved as one batch, stitched with tapered
    overlap-add over ``overlap`` samples: default a quarter piece, at most half), at most ``max_iter`` L-BFGS
    iterations, early stop at ``sqrt(loss) <= tol`` (published: 0.1), ``standardize`` ``'time'`` (published) /
    ``'global'`` / None; ``optimizer`` ``'batched'`` (one L-BFGS per piece and component, evaluated together) or
    ``'scipy'`` (L-BFGS-B on the summed loss).  ``removed_name`` names the removed part in the result.

    The constructor only stores its arguments (``ScatCovSeparator(**s.get_params())`` is an equal separator); they
    are checked when :meth:`separate` runs.
    """

    name = "scatcov"

    def __init__(
        self,
        prior: np.ndarray | None = None,
        table: Any = None,
        clusters: int | list[int] | None = None,
        scale: int | None = None,
        n_prior: int = 20,
        near_lmst: bool = False,
        lmst_tolerance: float = 2.0,
        components: str | None = None,
        piece: int = 1024,
        overlap: int | None = None,
        max_iter: int = 100,
        tol: float = 0.1,
        standardize: str | None = "time",
        J: int = 8,
        Q: int = 1,
        x_weight: float = 1.0,
        indep_weight: float = 1.0,
        dtype: str = "float64",
        device: str = "auto",
        removed_name: str = "removed",
        chunk_budget: int | None = None,
        optimizer: str = "batched",
        feature_config: Any = None,
    ) -> None:
        self.prior, self.table, self.clusters, self.scale = prior, table, clusters, scale
        self.n_prior, self.near_lmst, self.lmst_tolerance = n_prior, near_lmst, lmst_tolerance
        self.components = components
        self.piece, self.overlap, self.max_iter, self.tol = piece, overlap, max_iter, tol
        self.standardize, self.J, self.Q = standardize, J, Q
        self.x_weight, self.indep_weight = x_weight, indep_weight
        self.dtype, self.device, self.removed_name = dtype, device, removed_name
        self.chunk_budget, self.optimizer, self.feature_config = chunk_budget, optimizer, feature_config

    def _checked(self) -> SimpleNamespace:
        """The parameters validated and converted (prior as float64 ``(R, C, T)``, overlap resolved); raises
        :class:`ConfigError` for an invalid configuration. The constructor only stores, so this runs at separation."""
        prior, table, clusters, scale = self.prior, self.table, self.clusters, self.scale
        if prior is None and table is None:
            raise ConfigError("scatcov needs prior snippets: give `prior` or a cluster `table` with `clusters` and "
                              "`scale`")
        if prior is not None and table is not None:
            raise ConfigError("give either `prior` or `table`, not both")
        if table is not None and (clusters is None or scale is None):
            raise ConfigError("with a cluster table, `clusters` and `scale` select the prior")
        if prior is not None:
            prior = np.asarray(prior, dtype=np.float64)
            if prior.ndim == 2:
                prior = prior[:, None]
            if prior.ndim != 3 or prior.shape[0] < 2:
                raise ConfigError(f"prior must be an array (R >= 2, C, T), got shape {prior.shape}")
        if self.n_prior < 2:
            raise ConfigError(f"n_prior must be >= 2, got {self.n_prior}")
        piece = self.piece
        overlap = piece // 4 if self.overlap is None else self.overlap
        if piece < 64 or overlap < 0 or overlap >= piece:
            raise ConfigError(f"need piece >= 64 and 0 <= overlap < piece, got piece={piece}, overlap={overlap}")
        if self.max_iter < 0 or self.tol < 0:
            raise ConfigError("max_iter and tol must be non-negative")
        if self.standardize not in STANDARDIZE:
            raise ConfigError(f"standardize must be 'time', 'global' or None, got {self.standardize!r}")
        if self.dtype not in _DTYPES:
            raise ConfigError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was asked for but PyTorch sees no GPU")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not self.removed_name:
            raise ConfigError("removed_name must not be empty")
        return SimpleNamespace(
            prior=prior, table=table, clusters=clusters, scale=scale, n_prior=int(self.n_prior),
            near_lmst=bool(self.near_lmst), lmst_tolerance=float(self.lmst_tolerance), components=self.components,
            piece=int(piece), overlap=int(overlap), max_iter=int(self.max_iter), tol=float(self.tol),
            standardize=self.standardize, J=int(self.J), Q=int(self.Q), x_weight=float(self.x_weight),
            indep_weight=float(self.indep_weight), dtype=self.dtype, device=self.device,
            removed_name=self.removed_name,
            chunk_budget=None if self.chunk_budget is None else int(self.chunk_budget), optimizer=self.optimizer,
            feature_config=self.feature_config)

    def provenance_params(self) -> dict:
        """The checked configuration (without the prior array or table), for provenance."""
        c = self._checked()
        return {k: getattr(c, k) for k in _PROVENANCE_KEYS}

    # ------------------------------------------------------------------ prior

    def _prior_for(self, stream: Stream, comps: str, progress: Progress, token: CancelToken,
                   c: SimpleNamespace | None = None) -> tuple[np.ndarray, dict]:
        c = c or self._checked()
        if c.prior is not None:
            return c.prior, {"source": "array", "n": int(c.prior.shape[0])}
        from unmix.mars_time import lmst_hours
        from unmix.snippets import read_snippets, select_windows

        t0 = min(tr.stats.starttime for tr in stream)
        t1 = max(tr.stats.endtime for tr in stream)
        near = None
        if c.near_lmst:
            near = float(np.atleast_1d(lmst_hours(0.5 * (t0.timestamp + t1.timestamp)))[0])
        idx = select_windows(c.table, c.clusters, c.scale, c.n_prior,
                             exclude=[(t0.timestamp, t1.timestamp + stream[0].stats.delta)],
                             near_lmst=near, lmst_tolerance_hours=c.lmst_tolerance)
        if len(idx) < 2:
            raise DataError(f"only {len(idx)} window(s) of cluster(s) {c.clusters} at scale {c.scale} are "
                            "available as prior snippets (need >= 2 that do not overlap the target)")
        snip = read_snippets(c.table, idx, c.scale, components=comps, progress=progress, token=token,
                             feature_config=c.feature_config)
        return snip.data, {"source": "clusters", "clusters": c.clusters, "scale": c.scale,
                           "windows": [int(i) for i in idx], "near_lmst_hours": near,
                           "first_start": str(snip.starts[0]) if snip.starts else None}

    # ------------------------------------------------------------------ separation

    def _separate(self, stream: Stream, progress: Progress, token: CancelToken) -> SeparationResult:
        """Background and removed part of every trace of ``stream`` (input untouched)."""
        c = self._checked()
        signals = checked_signals(stream)
        letters = [component_letter(tr) for tr in stream]
        comps = c.components or "".join(sorted(set(letters)))
        prior, prior_info = self._prior_for(stream, comps, sub_progress(progress, 0.0, 0.05), token, c)
        if prior.shape[1] == 1:
            groups = [0] * len(signals)
        else:
            if prior.shape[1] != len(comps):
                raise DataError(f"prior snippets have {prior.shape[1]} components, the record {len(comps)} "
                                f"({comps}); give `components` in the prior's order")
            missing = sorted({x for x in letters if x not in comps})
            if missing:
                raise DataError(f"no prior snippets for component(s) {', '.join(missing)} (prior has {comps})")
            groups = [comps.index(x) for x in letters]
        device = resolve_device(c.device)
        bgs, report = separate_signals(
            signals, groups, prior, piece=c.piece, overlap=c.overlap, max_iter=c.max_iter, tol=c.tol,
            standardize=c.standardize, J=c.J, Q=c.Q, x_weight=c.x_weight, indep_weight=c.indep_weight,
            dtype=_DTYPES[c.dtype], device=device, chunk_budget=c.chunk_budget, optimizer=c.optimizer,
            progress=sub_progress(progress, 0.05, 1.0), token=token)
        note = (f"unmix scatcov: scattering-covariance separation (J={c.J}, Q={c.Q}, R={report.n_prior}, "
                f"piece={report.piece}, {report.n_iter} L-BFGS iterations, prior {prior_info['source']})")
        background, removed = Stream(), Stream()
        for tr, x, bg in zip(stream, signals, bgs, strict=True):
            b = tr.copy()
            b.data = np.ascontiguousarray(bg, dtype=np.float64)
            r = tr.copy()
            r.data = x - b.data
            b.stats.setdefault("processing", []).append(note + ": background")
            r.stats.setdefault("processing", []).append(note + f": {c.removed_name}")
            background += b
            removed += r
        info = {"device": str(device), "prior": prior_info, **report.to_dict()}
        return SeparationResult(background, {c.removed_name: removed}, info)


#: the configuration written into the provenance (no arrays, tables or feature settings), in its historical order
_PROVENANCE_KEYS = ("clusters", "scale", "n_prior", "near_lmst", "lmst_tolerance", "components", "piece", "overlap",
                    "max_iter", "tol", "standardize", "J", "Q", "x_weight", "indep_weight", "dtype", "device",
                    "removed_name", "optimizer")

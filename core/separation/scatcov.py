"""``--method scatcov``: the published scattering-covariance separation as a :class:`Separator` on ObsPy Streams."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from obspy import Stream

from unmix.errors import ConfigError, DataError
from unmix.jobs import CancelToken, Progress, no_progress, sub_progress
from unmix.scattering import resolve_device
from unmix.separation.result import SeparationResult, checked_signals, component_letter
from unmix.separation.solver import OPTIMIZERS, STANDARDIZE, separate_signals

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


class ScatCovSeparator:
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
        if n_prior < 2:
            raise ConfigError(f"n_prior must be >= 2, got {n_prior}")
        overlap = piece // 4 if overlap is None else overlap
        if piece < 64 or overlap < 0 or overlap >= piece:
            raise ConfigError(f"need piece >= 64 and 0 <= overlap < piece, got piece={piece}, overlap={overlap}")
        if max_iter < 0 or tol < 0:
            raise ConfigError("max_iter and tol must be non-negative")
        if standardize not in STANDARDIZE:
            raise ConfigError(f"standardize must be 'time', 'global' or None, got {standardize!r}")
        if dtype not in _DTYPES:
            raise ConfigError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
        if device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was asked for but PyTorch sees no GPU")
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
        if not removed_name:
            raise ConfigError("removed_name must not be empty")
        self.prior, self.table, self.clusters, self.scale = prior, table, clusters, scale
        self.n_prior, self.near_lmst, self.lmst_tolerance = int(n_prior), bool(near_lmst), float(lmst_tolerance)
        self.components = components
        self.piece, self.overlap, self.max_iter, self.tol = int(piece), int(overlap), int(max_iter), float(tol)
        self.standardize, self.J, self.Q = standardize, int(J), int(Q)
        self.x_weight, self.indep_weight = float(x_weight), float(indep_weight)
        self.dtype, self.device, self.removed_name = dtype, device, removed_name
        self.chunk_budget = None if chunk_budget is None else int(chunk_budget)
        self.optimizer, self.feature_config = optimizer, feature_config

    def get_params(self) -> dict:
        """The configuration (without the prior array or table), for provenance."""
        keys = ("clusters", "scale", "n_prior", "near_lmst", "lmst_tolerance", "components", "piece", "overlap",
                "max_iter", "tol", "standardize", "J", "Q", "x_weight", "indep_weight", "dtype", "device",
                "removed_name", "optimizer")
        return {k: getattr(self, k) for k in keys}

    # ------------------------------------------------------------------ prior

    def _prior_for(self, stream: Stream, comps: str, progress: Progress, token: CancelToken | None
                   ) -> tuple[np.ndarray, dict]:
        if self.prior is not None:
            return self.prior, {"source": "array", "n": int(self.prior.shape[0])}
        from unmix.mars_time import lmst_hours
        from unmix.snippets import read_snippets, select_windows

        t0 = min(tr.stats.starttime for tr in stream)
        t1 = max(tr.stats.endtime for tr in stream)
        near = None
        if self.near_lmst:
            near = float(np.atleast_1d(lmst_hours(0.5 * (t0.timestamp + t1.timestamp)))[0])
        idx = select_windows(self.table, self.clusters, self.scale, self.n_prior,
                             exclude=[(t0.timestamp, t1.timestamp + stream[0].stats.delta)],
                             near_lmst=near, lmst_tolerance_hours=self.lmst_tolerance)
        if len(idx) < 2:
            raise DataError(f"only {len(idx)} window(s) of cluster(s) {self.clusters} at scale {self.scale} are "
                            "available as prior snippets (need >= 2 that do not overlap the target)")
        snip = read_snippets(self.table, idx, self.scale, components=comps, progress=progress, token=token,
                             feature_config=self.feature_config)
        return snip.data, {"source": "clusters", "clusters": self.clusters, "scale": self.scale,
                           "windows": [int(i) for i in idx], "near_lmst_hours": near,
                           "first_start": str(snip.starts[0]) if snip.starts else None}

    # ------------------------------------------------------------------ separation

    def separate(self, stream: Stream, progress: Progress | None = None,
                 token: CancelToken | None = None) -> SeparationResult:
        """Background and removed part of every trace of ``stream`` (input untouched)."""
        progress = progress or no_progress
        t_start = time.perf_counter()
        signals = checked_signals(stream)
        letters = [component_letter(tr) for tr in stream]
        comps = self.components or "".join(sorted(set(letters)))
        prior, prior_info = self._prior_for(stream, comps, sub_progress(progress, 0.0, 0.05), token)
        if prior.shape[1] == 1:
            groups = [0] * len(signals)
        else:
            if prior.shape[1] != len(comps):
                raise DataError(f"prior snippets have {prior.shape[1]} components, the record {len(comps)} "
                                f"({comps}); give `components` in the prior's order")
            missing = sorted({c for c in letters if c not in comps})
            if missing:
                raise DataError(f"no prior snippets for component(s) {', '.join(missing)} (prior has {comps})")
            groups = [comps.index(c) for c in letters]
        device = resolve_device(self.device)
        bgs, report = separate_signals(
            signals, groups, prior, piece=self.piece, overlap=self.overlap, max_iter=self.max_iter, tol=self.tol,
            standardize=self.standardize, J=self.J, Q=self.Q, x_weight=self.x_weight,
            indep_weight=self.indep_weight, dtype=_DTYPES[self.dtype], device=device,
            chunk_budget=self.chunk_budget, optimizer=self.optimizer, progress=sub_progress(progress, 0.05, 1.0),
            token=token)
        note = (f"unmix scatcov: scattering-covariance separation (J={self.J}, Q={self.Q}, R={report.n_prior}, "
                f"piece={report.piece}, {report.n_iter} L-BFGS iterations, prior {prior_info['source']})")
        background, removed = Stream(), Stream()
        for tr, x, bg in zip(stream, signals, bgs, strict=True):
            b = tr.copy()
            b.data = np.ascontiguousarray(bg, dtype=np.float64)
            r = tr.copy()
            r.data = x - b.data
            b.stats.setdefault("processing", []).append(note + ": background")
            r.stats.setdefault("processing", []).append(note + f": {self.removed_name}")
            background += b
            removed += r
        info = {"method": self.name, "params": self.get_params(), "device": str(device), "prior": prior_info,
                "total_s": round(time.perf_counter() - t_start, 4), **report.to_dict()}
        return SeparationResult(background, {self.removed_name: removed}, info)

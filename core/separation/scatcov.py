"""``--method scatcov``: the scattering-covariance separation as a :class:`Separator` on ObsPy Streams, with two
protocols: ``'fast'`` (Unmix's default, few snippets and iterations) and ``'paper'`` (the published settings)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from obspy import Stream

from unmix.errors import ConfigError, DataError
from unmix.jobs import CancelToken, Progress, sub_progress
from unmix.scattering import resolve_device
from unmix.separation.base import BaseSeparator, PieceExtent
from unmix.separation.result import SeparationResult, checked_signals, component_letter
from unmix.separation.solver import DETRENDS, OPTIMIZERS, SPLINE_SPACING, STANDARDIZE, separate_signals

log = logging.getLogger(__name__)
_DTYPES = {"float64": torch.float64, "float32": torch.float32}
#: Fewer prior snippets than this draw a warning: the per-time-index whitening estimates each standard deviation from
#: R snippets (≈ 1/√(2R) relative error), and with 2–3 snippets the solver diverged on the cluster-prior benchmark
#: (losses of 1e24 and more, docs/performance.md).
FEW_SNIPPETS = 10
PROTOCOLS = ("fast", "paper")
#: the values an option left at None takes under each protocol. 'paper' is the published srcsep/fVAE separation
#: (shared/docs/reference/facvae-pipeline.md §4): R = 300 snippets per prior cluster within ±2 h LMST of the target,
#: spline detrend (order 2, knots every 2000 samples) of target and snippets, per-time-index whitening, L-BFGS up to
#: 1000 iterations with the stop at sqrt(loss) <= 0.1, the target cut into pieces without overlap. 'fast' is Unmix's
#: own quick setting (not published), with the published spline detrend since it gained 1–5 dB on synthetic cases and
#: turned the removed part's correlation with UCLA on raw S0235b from -0.17 to 0.96 (docs/performance.md).
#: ``overlap`` is in pieces (a quarter piece with 'fast').
PROTOCOL_VALUES: dict[str, dict[str, Any]] = {
    "fast": {"n_prior": 20, "near_lmst": False, "max_iter": 100, "detrend": "spline", "per_cluster": False,
             "overlap": 0.25},
    "paper": {"n_prior": 300, "near_lmst": True, "max_iter": 1000, "detrend": "spline", "per_cluster": True,
              "overlap": 0.0},
}


class ScatCovSeparator(BaseSeparator):
    """Separate a record into a background with the prior snippets' scattering-covariance statistics and the rest.

    Prior: either ``prior``, an array ``(R, C, T)`` of snippets (``C`` components in the order ``components``, default
    the record's component letters sorted, e.g. ``'UVW'``; ``C = 1`` serves every component), or a cluster
    ``table`` (:class:`~unmix.clusters.ClusterTable`) with ``clusters`` at ``scale``: the ``n_prior`` (most confident
    windows to read; None: the protocol's, 20 over the clusters' union with 'fast', 300 per cluster with 'paper')
    windows that overlap neither each other nor the target (within ``lmst_tolerance`` hours of the target's LMST time
    of day when ``near_lmst`` (only windows near the target's LMST time of day; None: the protocol's, off with 'fast',
    on with 'paper')) are read with :func:`unmix.snippets.read_snippets`.

    Solver: ``piece`` samples per problem (all pieces and components solved as one batch, stitched with tapered
    overlap-add over ``overlap`` samples; None: the protocol's, a quarter piece with 'fast', none with 'paper'), at
    most ``max_iter`` (L-BFGS iterations at most; None: the protocol's, 100 with 'fast', 1000 with 'paper')
    iterations, early stop at ``sqrt(loss) <= tol`` (0.1 as published), ``standardize`` ``'time'`` (per-time-index
    whitening, as published) / ``'global'`` / None; ``optimizer`` ``'batched'`` (one L-BFGS per piece and component,
    evaluated together) or ``'scipy'`` (L-BFGS-B on the summed loss). ``detrend`` (``'none'``, ``'mean'``,
    ``'linear'`` or ``'spline'``: order 2, knots every 2000 samples; None: the protocol's, 'spline' with both) is
    removed from the record and the snippets before separating and put back into the background; ``hold_mean`` keeps
    each piece's mean in the background. ``removed_name`` names the removed part in the result.

    ``protocol`` (``'fast'``: 20 snippets over the union of the prior clusters, no LMST filter, the spline detrend,
    100 iterations, pieces overlapping by a quarter; ``'paper'``: the published separation, 300 snippets per prior
    cluster within ±2 h LMST of the target, spline detrend, 1000 iterations, pieces without overlap) gives the value
    of every option left at None (``n_prior``, ``near_lmst``, ``max_iter``, ``detrend``, ``overlap``); an option given
    explicitly wins over the protocol's value.

    The constructor only stores its arguments (``ScatCovSeparator(**s.get_params())`` is an equal separator); they
    are checked when :meth:`separate` runs.
    """

    name = "scatcov"
    #: what a provenance written before these options were recorded ran with (no detrend until 'fast' took the
    #: spline detrend), so that its replay stays exact
    unrecorded: ClassVar[dict[str, Any]] = {"protocol": "fast", "detrend": "none", "hold_mean": False}
    #: solver pieces (``piece`` samples each) per piece of a long record (:mod:`unmix.separation.pieces`)
    piece_problems = 256

    def __init__(
        self,
        prior: np.ndarray | None = None,
        table: Any = None,
        clusters: int | list[int] | None = None,
        scale: int | None = None,
        protocol: Literal["fast", "paper"] = "fast",
        n_prior: int | None = None,
        near_lmst: bool | None = None,
        lmst_tolerance: float = 2.0,
        components: str | None = None,
        piece: int = 1024,
        overlap: int | None = None,
        max_iter: int | None = None,
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
        detrend: Literal["none", "mean", "linear", "spline"] | None = None,
        hold_mean: bool = False,
    ) -> None:
        self.prior, self.table, self.clusters, self.scale = prior, table, clusters, scale
        self.protocol, self.detrend, self.hold_mean = protocol, detrend, hold_mean
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
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol must be 'fast' or 'paper', got {self.protocol!r}")
        proto = PROTOCOL_VALUES[self.protocol]

        def pick(name: str) -> Any:
            value = getattr(self, name)
            return proto[name] if value is None else value

        n_prior, near_lmst, max_iter, detrend = pick("n_prior"), pick("near_lmst"), pick("max_iter"), pick("detrend")
        if prior is not None and self.n_prior is None and self.protocol == "paper":
            n_prior = max(int(prior.shape[0]), 2)  # a given array is the prior: R selects only from a table
        if detrend not in ("none", *DETRENDS):
            raise ConfigError(f"detrend must be 'none', 'mean', 'linear' or 'spline', got {detrend!r}")
        if n_prior < 2:
            raise ConfigError(f"n_prior must be >= 2, got {n_prior}")
        piece = self.piece
        overlap = int(piece * proto["overlap"]) if self.overlap is None else self.overlap
        if piece < 64 or overlap < 0 or overlap >= piece:
            raise ConfigError(f"need piece >= 64 and 0 <= overlap < piece, got piece={piece}, overlap={overlap}")
        if max_iter < 0 or self.tol < 0:
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
            prior=prior, table=table, clusters=clusters, scale=scale, n_prior=int(n_prior),
            near_lmst=bool(near_lmst), lmst_tolerance=float(self.lmst_tolerance), components=self.components,
            piece=int(piece), overlap=int(overlap), max_iter=int(max_iter), tol=float(self.tol),
            standardize=self.standardize, J=int(self.J), Q=int(self.Q), x_weight=float(self.x_weight),
            indep_weight=float(self.indep_weight), dtype=self.dtype, device=self.device,
            removed_name=self.removed_name,
            chunk_budget=None if self.chunk_budget is None else int(self.chunk_budget), optimizer=self.optimizer,
            feature_config=self.feature_config, protocol=self.protocol, detrend=detrend,
            hold_mean=bool(self.hold_mean), per_cluster=bool(proto["per_cluster"]))

    def piece_extent(self, sampling_rate: float) -> PieceExtent:
        """Pieces of :attr:`piece_problems` solver pieces. The statistics are those of one solver piece (each is its
        own problem, with its own L-BFGS), so the number of them per piece changes no problem's quality; 256 keeps
        the solver's state (L-BFGS history of 2 × 10 copies per problem) to a few hundred MB. Margin: two solver
        pieces (the problems and the stitching overlap at a piece's edge lie in it), plus two knot spacings with the
        spline detrend. A 'mean' or 'linear' detrend is then fitted piece by piece, and the prior is selected for
        each piece as for a record of its span."""
        c = self._checked()
        margin = 2 * c.piece + (2 * SPLINE_SPACING if c.detrend == "spline" else 0)
        return PieceExtent(self.piece_problems * c.piece, margin)

    def provenance_params(self) -> dict:
        """The checked configuration (without the prior array or table), for provenance."""
        c = self._checked()
        out = {k: getattr(c, k) for k in _PROVENANCE_KEYS}
        out.update(protocol=c.protocol, detrend=c.detrend, hold_mean=c.hold_mean)
        return out

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
        if c.near_lmst and c.protocol == "paper" and t1 - t0 < 20 * 3600:  # published: the target's LMST span
            near = tuple(float(np.atleast_1d(lmst_hours(t.timestamp))[0]) for t in (t0, t1))
        elif c.near_lmst:
            near = float(np.atleast_1d(lmst_hours(0.5 * (t0.timestamp + t1.timestamp)))[0])
        idx = select_windows(c.table, c.clusters, c.scale, c.n_prior,
                             exclude=[(t0.timestamp, t1.timestamp + stream[0].stats.delta)],
                             near_lmst=near, lmst_tolerance_hours=c.lmst_tolerance, per_cluster=c.per_cluster)
        if len(idx) < 2:
            raise DataError(f"only {len(idx)} window(s) of cluster(s) {c.clusters} at scale {c.scale} are "
                            "available as prior snippets (need >= 2 that do not overlap the target)")
        # the published extractor detrends the whole record before cutting snippets; the target gets the same below
        snip = read_snippets(c.table, idx, c.scale, components=comps, progress=progress, token=token,
                             feature_config=c.feature_config, detrend="spline" if c.detrend == "spline" else None)
        return snip.data, {"source": "clusters", "clusters": c.clusters, "scale": c.scale,
                           "windows": [int(i) for i in idx], "near_lmst_hours": near, "per_cluster": c.per_cluster,
                           "record_detrended": c.detrend == "spline",
                           "first_start": str(snip.starts[0]) if snip.starts else None}

    # ------------------------------------------------------------------ separation

    def _separate(self, stream: Stream, progress: Progress, token: CancelToken) -> SeparationResult:
        """Background and removed part of every trace of ``stream`` (input untouched)."""
        c = self._checked()
        signals = checked_signals(stream)
        letters = [component_letter(tr) for tr in stream]
        comps = c.components or "".join(sorted(set(letters)))
        prior, prior_info = self._prior_for(stream, comps, sub_progress(progress, 0.0, 0.05), token, c)
        if prior.shape[0] < FEW_SNIPPETS:
            log.warning("scatcov: only %d prior snippets (fewer than %d): the background statistics are poorly "
                        "estimated and the separation may diverge; give more windows (a larger or longer cluster, "
                        "a finer scale, n_prior)", prior.shape[0], FEW_SNIPPETS)
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
            detrend=None if c.detrend == "none" else c.detrend, hold_mean=c.hold_mean,
            prior_detrended=bool(prior_info.get("record_detrended")),
            progress=sub_progress(progress, 0.05, 1.0), token=token)
        proto = "paper protocol, " if c.protocol == "paper" else ""
        note = (f"unmix scatcov: scattering-covariance separation ({proto}J={c.J}, Q={c.Q}, "
                f"R={report.n_prior}, piece={report.piece}, {report.n_iter} L-BFGS iterations, "
                f"prior {prior_info['source']})")
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

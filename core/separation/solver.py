"""Separation of arrays: pieces, standardisation, one batched L-BFGS solve, tapered overlap-add.

A record longer than one piece is cut into overlapping pieces of the prior snippets' length; every (piece, trace)
pair is an independent problem of the published loss (:class:`~unmix.separation.loss.SeparationLoss`), and all of them
are solved together as one batch: each problem has its own L-BFGS (history, direction, line search), but every
evaluation computes the losses and gradients of all the problems that need one in a single call.  The background
estimates are then stitched with complementary sine-squared tapers over each overlap (weights normalised to sum to
one), so pieces blend smoothly instead of meeting at a seam.  Standardisation follows the published code: per
component, the mean and standard deviation of the prior snippets at each time index (``'time'``) are removed from
snippets and pieces and restored afterwards; ``'global'`` uses one mean and standard deviation per component.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import minimize

from unmix.errors import ConfigError, DataError
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress, sub_progress
from unmix.separation.loss import SeparationLoss

STANDARDIZE = ("time", "global", None)
OPTIMIZERS = ("batched", "scipy")
DETRENDS = ("mean", "linear", "spline", None)
#: the published spline detrend (ObsPy ``detrend(type='spline')`` as called by the fVAE snippet extractor)
SPLINE_ORDER, SPLINE_SPACING = 2, 2000


def trend(x: np.ndarray, mode: str | None, order: int = SPLINE_ORDER, dspline: int = SPLINE_SPACING) -> np.ndarray:
    """The trend of the 1-D series ``x`` that ``mode`` removes: ``'mean'`` (its mean), ``'linear'`` (least-squares
    line), ``'spline'`` (least-squares spline of ``order`` with knots every ``dspline`` samples, ObsPy's
    ``detrend(type='spline')``; a series shorter than two knot spacings gets one polynomial of ``order``) or None
    (zeros).  ``x - trend(x)`` is what is separated; the trend goes back into the background."""
    x = np.asarray(x, dtype=np.float64)
    if mode is None or x.size == 0:
        return np.zeros_like(x)
    if mode == "mean":
        return np.full_like(x, x.mean())
    t = np.arange(x.size, dtype=np.float64)
    if mode == "linear" or x.size <= order + 1:
        deg = 1 if mode == "linear" else min(order, x.size - 1)
        return np.polynomial.polynomial.polyval(t, np.polynomial.polynomial.polyfit(t, x, deg))
    if mode != "spline":
        raise ConfigError(f"detrend must be one of 'mean', 'linear', 'spline' or None, got {mode!r}")
    from scipy.interpolate import LSQUnivariateSpline

    knots = np.arange(dspline / 2.0, x.size - dspline / 2.0 + 2, dspline)
    knots = knots[(knots > t[0]) & (knots < t[-1])]
    if knots.size == 0:
        return np.polynomial.polynomial.polyval(t, np.polynomial.polynomial.polyfit(t, x, order))
    return LSQUnivariateSpline(t, x, knots, k=order)(t)


def detrended(x: np.ndarray, mode: str | None, **kw) -> tuple[np.ndarray, np.ndarray]:
    """``x`` without its trend (:func:`trend`) over the last axis, and the trend (``x == part + trend`` exactly up
    to rounding)."""
    x = np.asarray(x, dtype=np.float64)
    tr = np.zeros_like(x)
    if mode is not None:
        flat = x.reshape(-1, x.shape[-1])
        tr = np.stack([trend(row, mode, **kw) for row in flat]).reshape(x.shape) if flat.size else tr
    return x - tr, tr


@dataclass
class SolveReport:
    """What the solver did: iterations, evaluations, loss history (mean loss per problem), timings."""

    n_iter: int = 0
    n_eval: int = 0
    history: list[float] = field(default_factory=list)
    stopped: str = ""
    setup_s: float = 0.0
    solve_s: float = 0.0
    n_problems: int = 0
    piece: int = 0
    starts: dict[int, list[int]] = field(default_factory=dict)
    unseparated: list[int] = field(default_factory=list)
    n_prior: int = 0

    def to_dict(self) -> dict:
        return {"n_iter": self.n_iter, "n_eval": self.n_eval, "loss_history": self.history,
                "stopped": self.stopped, "setup_s": round(self.setup_s, 4), "solve_s": round(self.solve_s, 4),
                "n_problems": self.n_problems, "piece": self.piece, "n_prior": self.n_prior,
                "piece_starts": {str(k): v for k, v in self.starts.items()}, "unseparated": self.unseparated}


def piece_starts(n: int, piece: int, overlap: int) -> list[int]:
    """Start indices of pieces of ``piece`` samples covering ``n`` samples with at least ``overlap`` in common,
    spread evenly; the first starts at 0, the last ends at ``n``."""
    if n <= piece:
        return [0]
    hop = max(1, piece - overlap)
    count = int(np.ceil((n - piece) / hop)) + 1
    return [int(s) for s in np.round(np.linspace(0, n - piece, count)).astype(int)]


def taper_weights(n: int, piece: int, starts: list[int]) -> np.ndarray:
    """Overlap-add weights ``(len(starts), piece)``: each piece fades out over its overlap with the next while the
    next fades in (sine-squared, complementary); normalised so that the weights of every sample sum to one."""
    w = np.ones((len(starts), piece))
    for i in range(len(starts) - 1):
        ov = starts[i] + piece - starts[i + 1]
        if ov <= 0:
            continue
        ramp = np.sin(0.5 * np.pi * (np.arange(ov) + 0.5) / ov) ** 2
        w[i, piece - ov :] *= 1.0 - ramp
        w[i + 1, :ov] *= ramp
    total = np.zeros(n)
    for s, wi in zip(starts, w, strict=True):
        total[s : s + piece] += wi
    for i, s in enumerate(starts):
        w[i] /= total[s : s + piece]
    return w


def stitch(estimates: np.ndarray, starts: list[int], n: int) -> np.ndarray:
    """Overlap-add of piece estimates ``(len(starts), piece)`` into ``n`` samples with :func:`taper_weights`."""
    piece = estimates.shape[-1]
    out = np.zeros(n)
    for a, e, w in zip(starts, estimates, taper_weights(n, piece, starts), strict=True):
        out[a : a + piece] += w * e
    return out


def _snippets_of_length(prior: np.ndarray, piece: int) -> np.ndarray:
    """Cut ``(R, C, Tp)`` snippets into non-overlapping sub-snippets of ``piece`` samples ``(R * (Tp // piece), C,
    piece)``."""
    R, C, Tp = prior.shape
    m = Tp // piece
    return prior[:, :, : m * piece].reshape(R, C, m, piece).transpose(0, 2, 1, 3).reshape(R * m, C, piece)


def _standardizer(prior: np.ndarray, mode: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale ``(C, piece)`` (broadcast over time for ``'global'``) from the snippets ``(R, C, piece)``."""
    if mode == "time":
        return prior.mean(0), prior.std(0) + 1e-8
    if mode == "global":
        mu = prior.mean((0, 2))[:, None]
        sd = prior.std((0, 2))[:, None]
        sd = np.where(sd > 0, sd, 1.0)
        return np.broadcast_to(mu, prior.shape[1:]), np.broadcast_to(sd, prior.shape[1:])
    return np.zeros(prior.shape[1:]), np.ones(prior.shape[1:])


def separate_signals(
    signals: list[np.ndarray],
    groups: list[int],
    prior: np.ndarray,
    piece: int = 1024,
    overlap: int = 256,
    max_iter: int = 100,
    tol: float = 0.1,
    standardize: str | None = "time",
    J: int = 8,
    Q: int = 1,
    wavelet: str = "battle_lemarie",
    high_freq: float = 0.425,
    x_weight: float = 1.0,
    indep_weight: float = 1.0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "auto",
    chunk_budget: int | None = None,
    optimizer: str = "batched",
    detrend: str | None = None,
    hold_mean: bool = False,
    prior_detrended: bool = False,
    progress: Progress = no_progress,
    token: CancelToken = NO_CANCEL,
) -> tuple[list[np.ndarray], SolveReport]:
    """Background estimates of 1-D ``signals`` (each with the prior component ``groups[i]`` of ``prior`` ``(R, C,
    Tp)``), solved as one batch.  Signals shorter than the piece are returned unchanged (listed in
    ``report.unseparated``).  ``optimizer``: ``'batched'`` (an independent L-BFGS per problem, all evaluated together)
    or ``'scipy'`` (SciPy L-BFGS-B on the sum of the losses, as the published code on one problem).

    ``detrend`` (:func:`trend`) is taken off every signal and prior snippet (not the snippets with
    ``prior_detrended``: cut from records detrended as a whole) and the signal's trend goes back into its background:
    raw offsets and drifts are neither separated nor pulled to the prior's level. ``hold_mean``: each piece's
    background keeps the piece's mean (a mean chosen piece by piece makes steps at the piece boundaries).
    Cancellable between L-BFGS iterations (``token``), reports progress."""
    _check_options(standardize, max_iter, tol, optimizer, overlap, detrend)
    signals, prior = _checked_inputs(signals, groups, prior)
    trends = [np.zeros_like(s) for s in signals]
    if detrend is not None:
        parts = [detrended(s, detrend) for s in signals]
        signals, trends = [p for p, _ in parts], [t for _, t in parts]
        if not prior_detrended:
            prior = detrended(prior, detrend)[0]
    longest = max((len(s) for s in signals), default=0)
    L = int(min(piece, prior.shape[2], longest))
    if L < 64:
        raise DataError(f"pieces of {L} samples are too short for scattering statistics (need >= 64)")
    snip = _snippets_of_length(prior, L)
    if snip.shape[0] < 2:
        raise DataError(f"at least 2 prior snippets are needed, got {snip.shape[0]}")
    ov = min(int(overlap), L // 2)
    report = SolveReport(piece=L, n_prior=int(snip.shape[0]))
    mu, sd = _standardizer(snip, standardize)
    prior_std = (snip - mu) / sd  # (R, C, L)
    pieces, owner, pgroup = _cut_pieces(signals, groups, L, ov, mu, sd, report)
    outputs = [s + t for s, t in zip(signals, trends, strict=True)]
    if not pieces:
        report.stopped = "nothing to separate"
        return outputs, report
    t0 = time.perf_counter()
    token.check()
    progress(0.0, "preparing prior statistics")
    loss = SeparationLoss(np.stack(pieces), prior_std.transpose(1, 0, 2), group=pgroup, J=J, Q=Q, wavelet=wavelet,
                          high_freq=high_freq, x_weight=x_weight, indep_weight=indep_weight, dtype=dtype,
                          device=device, chunk_budget=chunk_budget, token=token)
    report.setup_s = time.perf_counter() - t0
    report.n_problems = loss.P
    solve = _batched_lbfgs if optimizer == "batched" else _lbfgs
    b = solve(loss, np.stack(pieces), max_iter, tol, report, sub_progress(progress, 0.02, 1.0), token)
    report.solve_s = time.perf_counter() - t0 - report.setup_s
    owner_arr = np.asarray(owner)
    for i, st in report.starts.items():
        g = groups[i]
        est = b[owner_arr == i] * sd[g] + mu[g]
        if hold_mean:
            est += (np.stack([signals[i][a : a + L] for a in st]) - est).mean(-1, keepdims=True)
        outputs[i] = stitch(est, st, len(signals[i])) + trends[i]
    progress(1.0, f"separated in {report.n_iter} iterations")
    return outputs, report


def _check_options(standardize: str | None, max_iter: int, tol: float, optimizer: str, overlap: int,
                   detrend: str | None) -> None:
    """Raise :class:`ConfigError` for an invalid option of :func:`separate_signals`."""
    if standardize not in STANDARDIZE:
        raise ConfigError(f"standardize must be 'time', 'global' or None, got {standardize!r}")
    if max_iter < 0 or tol < 0:
        raise ConfigError("max_iter and tol must be non-negative")
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if overlap < 0:
        raise ConfigError(f"overlap must be >= 0, got {overlap}")
    if detrend not in DETRENDS:
        raise ConfigError(f"detrend must be one of 'mean', 'linear', 'spline' or None, got {detrend!r}")


def _checked_inputs(signals: list[np.ndarray], groups: list[int], prior: np.ndarray
                    ) -> tuple[list[np.ndarray], np.ndarray]:
    """Signals as 1-D float64 and the prior as ``(R, C, T)`` float64, refusing what cannot be separated."""
    prior = np.asarray(prior, dtype=np.float64)
    if prior.ndim == 2:
        prior = prior[:, None]
    if prior.ndim != 3:
        raise DataError(f"prior snippets must have shape (R, C, T), got {prior.shape}")
    if not np.isfinite(prior).all():
        raise DataError("prior snippets contain NaN or infinite values")
    if len(signals) != len(groups):
        raise ConfigError("one prior component index is needed per signal")
    if any(g < 0 or g >= prior.shape[1] for g in groups):
        raise ConfigError(f"prior component index out of range [0, {prior.shape[1]})")
    signals = [np.asarray(s, dtype=np.float64) for s in signals]
    for s in signals:
        if s.ndim != 1 or not np.isfinite(s).all():
            raise DataError("signals must be 1-D and finite (fill or split gaps first)")
    return signals, prior


def _cut_pieces(signals: list[np.ndarray], groups: list[int], L: int, ov: int, mu: np.ndarray, sd: np.ndarray,
                report: SolveReport) -> tuple[list[np.ndarray], list[int], list[int]]:
    """Standardised pieces of every signal long enough (their starts into ``report.starts``, the others into
    ``report.unseparated``), the signal and the prior component of each piece."""
    pieces, owner, pgroup = [], [], []
    for i, (s, g) in enumerate(zip(signals, groups, strict=True)):
        if len(s) < L:
            report.unseparated.append(i)
            continue
        st = piece_starts(len(s), L, ov)
        report.starts[i] = st
        for a in st:
            pieces.append((s[a : a + L] - mu[g]) / sd[g])
            owner.append(i)
            pgroup.append(g)
    return pieces, owner, pgroup


class _Stop(Exception):
    pass


def _batched_lbfgs(loss: SeparationLoss, x0: np.ndarray, max_iter: int, tol: float, report: SolveReport,
                   progress: Progress, token: CancelToken, memory: int = 10, max_ls: int = 20
                   ) -> np.ndarray:
    """L-BFGS run independently for every problem, evaluated as one batch.

    Each problem has its own history (``memory`` pairs), search direction and backtracking Armijo line search (with
    quadratic interpolation); every trial evaluates only the problems still searching, and a problem stops when
    ``sqrt(loss) <= tol`` (the published criterion) or when its line search fails twice in a row.  An iteration is
    one accepted step of every active problem.
    """
    dev, dt = loss.device, loss.dtype
    x = torch.as_tensor(x0, device=dev, dtype=dt).clone()
    P, T = x.shape
    f, g = loss.loss_and_grad(x)
    report.n_eval += 1
    report.history.append(float(f.mean()))
    S = torch.zeros(memory, P, T, dtype=dt, device=dev)
    Y = torch.zeros_like(S)
    rho = torch.zeros(memory, P, dtype=dt, device=dev)
    gamma = torch.ones(P, dtype=dt, device=dev)
    has_history = torch.zeros(P, dtype=torch.bool, device=dev)
    failures = torch.zeros(P, dtype=torch.long, device=dev)
    active = f.sqrt() > tol
    c1 = 1e-4
    if not bool(active.any()):
        report.stopped = "tolerance reached"
    for it in range(max_iter):
        if not bool(active.any()):
            break
        token.check()
        idx = active.nonzero()[:, 0]
        slots = [(it - 1 - j) % memory for j in range(min(it, memory))]  # newest first
        d, gd = _direction(g, idx, slots, S, Y, rho, gamma, has_history)
        new_x, new_f, new_g, accepted = _line_search(loss, x, f, g, idx, d, gd, max_ls, c1, report)
        # history update of the problems that moved
        slot = it % memory
        s_ = new_x - x[idx]
        y_ = new_g - g[idx]
        sy = (s_ * y_).sum(-1)
        good = accepted & (sy > 1e-12 * s_.norm(dim=-1) * y_.norm(dim=-1))
        S[slot, idx] = torch.where(good[:, None], s_, torch.zeros_like(s_))
        Y[slot, idx] = torch.where(good[:, None], y_, torch.zeros_like(y_))
        rho[slot, idx] = torch.where(good, 1.0 / torch.where(good, sy, torch.ones_like(sy)), torch.zeros_like(sy))
        gamma[idx] = torch.where(good, sy / (y_ * y_).sum(-1).clamp_min(1e-300), gamma[idx])
        has_history[idx] |= good
        x[idx], f[idx], g[idx] = new_x, new_f, new_g
        # a failed line search forgets the history once; a second failure in a row ends that problem
        failed = idx[~accepted]
        failures[idx[accepted]] = 0
        failures[failed] += 1
        rho[:, failed] = 0.0
        has_history[failed] = False
        active &= (f.sqrt() > tol) & (failures < 2)
        report.n_iter += 1
        mean = float(f.mean())
        report.history.append(mean)
        progress(report.n_iter / max(max_iter, 1),
                 f"iteration {report.n_iter}, loss {mean:.4g}, {int(active.sum())}/{P} active")
    if not report.stopped:
        conv = int((f.sqrt() <= tol).sum())
        stalled = int((failures >= 2).sum())
        report.stopped = (f"{conv}/{P} reached the tolerance, {stalled} stopped by line-search failures, "
                          f"{P - conv - stalled} at max_iter")
    token.check()
    return x.cpu().double().numpy()


def _direction(g: torch.Tensor, idx: torch.Tensor, slots: list[int], S: torch.Tensor, Y: torch.Tensor,
               rho: torch.Tensor, gamma: torch.Tensor, has_history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """L-BFGS search directions of the problems ``idx`` (two-loop recursion over the history ``slots``, newest
    first; scaled steepest descent without history or descent) and their directional derivatives."""
    q = g[idx].clone()
    alphas = []
    for j in slots:
        a = rho[j, idx] * (S[j, idx] * q).sum(-1)
        q -= a[:, None] * Y[j, idx]
        alphas.append(a)
    r = gamma[idx, None] * q
    for j, a in zip(reversed(slots), reversed(alphas), strict=True):
        r += S[j, idx] * (a - rho[j, idx] * (Y[j, idx] * r).sum(-1))[:, None]
    d = -r
    gd = (g[idx] * d).sum(-1)
    bad = ~(gd < 0) | ~has_history[idx]
    if bool(bad.any()):  # no history or not a descent direction: scaled steepest descent
        gb = g[idx[bad]]
        d[bad] = -gb / gb.norm(dim=-1, keepdim=True).clamp_min(1e-300)
        gd[bad] = (gb * d[bad]).sum(-1)
    return d, gd


def _line_search(loss: SeparationLoss, x: torch.Tensor, f: torch.Tensor, g: torch.Tensor, idx: torch.Tensor,
                 d: torch.Tensor, gd: torch.Tensor, max_ls: int, c1: float, report: SolveReport
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backtracking Armijo line search (quadratic interpolation) of every problem ``idx`` at once; the new points,
    losses, gradients and which problems accepted a step."""
    dev, dt = loss.device, loss.dtype
    step = torch.ones(len(idx), dtype=dt, device=dev)
    new_x, new_f, new_g = x[idx].clone(), f[idx].clone(), g[idx].clone()
    accepted = torch.zeros(len(idx), dtype=torch.bool, device=dev)
    pending = torch.arange(len(idx), device=dev)
    for _ in range(max_ls):
        xt = x[idx[pending]] + step[pending, None] * d[pending]
        ft, gt = loss.loss_and_grad(xt, problems=idx[pending].cpu())
        report.n_eval += 1
        f0 = f[idx[pending]]
        ok = torch.isfinite(ft) & (ft <= f0 + c1 * step[pending] * gd[pending])
        done = pending[ok]
        new_x[done], new_f[done], new_g[done] = xt[ok], ft[ok], gt[ok]
        accepted[done] = True
        pending = pending[~ok]
        if len(pending) == 0:
            break
        st, ftp, gdp = step[pending], ft[~ok], gd[pending]
        quad = -gdp * st**2 / (2 * (ftp - f[idx[pending]] - gdp * st))
        quad = torch.where(torch.isfinite(quad), quad, 0.5 * st)
        step[pending] = torch.minimum(torch.maximum(quad, 0.1 * st), 0.5 * st)
    return new_x, new_f, new_g, accepted


def _lbfgs(loss: SeparationLoss, x0: np.ndarray, max_iter: int, tol: float, report: SolveReport,
           progress: Progress, token: CancelToken) -> np.ndarray:
    """SciPy L-BFGS-B (published settings: ``maxcor=10``, tolerances off) on the sum of the problems' losses,
    starting from the mixture; stops when ``sqrt(mean loss) <= tol`` or after ``max_iter`` iterations."""
    shape = x0.shape
    P = shape[0]

    def fun(v: np.ndarray) -> tuple[float, np.ndarray]:
        token.check()
        lo, gr = loss.loss_and_grad(torch.from_numpy(v.reshape(shape)))
        report.n_eval += 1
        return float(lo.sum()), gr.double().cpu().numpy().reshape(-1)

    def callback(res) -> None:
        report.n_iter += 1
        mean = float(res.fun) / P
        report.history.append(mean)
        progress(report.n_iter / max(max_iter, 1), f"iteration {report.n_iter}, loss {mean:.4g}")
        token.check()
        if np.sqrt(max(mean, 0.0)) <= tol:
            raise _Stop

    if max_iter == 0:
        report.stopped = "max_iter = 0"
        return x0
    v0 = x0.reshape(-1).copy()
    f0, _ = fun(v0)
    report.history.append(f0 / P)
    if np.sqrt(max(f0 / P, 0.0)) <= tol:
        report.stopped = "tolerance reached"
        return x0
    state = {"x": v0}

    def cb(intermediate_result) -> None:
        state["x"] = intermediate_result.x.copy()
        try:
            callback(intermediate_result)
        except _Stop:
            report.stopped = "tolerance reached"
            raise StopIteration from None

    res = minimize(fun, v0, jac=True, method="L-BFGS-B", callback=cb,
                   options={"maxiter": max_iter, "maxfun": 2_000_000, "ftol": 1e-24, "gtol": 1e-24, "maxcor": 10})
    if not report.stopped:
        report.stopped = "max_iter reached" if report.n_iter >= max_iter else str(res.message)
    return np.asarray(res.x if res.x is not None else state["x"]).reshape(shape)


def separate_array(x, prior, progress: Progress = no_progress, token: CancelToken = NO_CANCEL, **options
                   ) -> tuple[np.ndarray, SolveReport]:
    """Background of ``x`` ``(C, T)`` (or ``(T,)``) given prior snippets ``(R, C, Tp)`` (one component: ``(R, Tp)``
    or ``(R, 1, Tp)``, used for every row of ``x``).  ``options``: those of :func:`separate_signals`."""
    x = np.asarray(x, dtype=np.float64)
    squeeze = x.ndim == 1
    x = x[None] if squeeze else x
    prior = np.asarray(prior, dtype=np.float64)
    prior = prior[:, None] if prior.ndim == 2 else prior
    if prior.ndim != 3 or prior.shape[1] not in (1, x.shape[0]):
        raise DataError(f"prior snippets {prior.shape} do not match {x.shape[0]} component(s)")
    groups = [0 if prior.shape[1] == 1 else c for c in range(x.shape[0])]
    out, report = separate_signals(list(x), groups, prior, progress=progress, token=token, **options)
    bg = np.stack(out)
    return (bg[0] if squeeze else bg), report

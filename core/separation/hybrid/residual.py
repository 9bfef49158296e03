"""The scattering-covariance residual: spans where the template-cleaned record departs from the prior (or around
accepted glitches), separated by the published scattering-covariance loss, shrunk and faded in at the span edges.

Offsets and drifts are not separated: the spans and the prior snippets are detrended (:data:`DETREND`) before the
scattering statistics see them and every piece keeps its own mean (the removed part has zero mean piece by piece).
Raw records sit thousands of counts away from a prior recorded on another day; without this the separation pulled
each piece towards the prior's level, and the residual carried flat steps of 1000–5000 counts from piece to piece."""

from __future__ import annotations

import numpy as np
import torch

from unmix.jobs import NO_CANCEL, CancelToken, Progress
from unmix.separation.hybrid.config import PRE, ResidualConfig, SolverConfig

Spans = list[list[int]]
#: the trend removed from every span and prior snippet before the residual's separation (kept in the background)
DETREND = "linear"


def _merge(iv: Spans, lo: int, hi: int) -> None:
    """Append ``[lo, hi]`` to the sorted spans ``iv``, merging it with the last one when they touch."""
    if iv and lo <= iv[-1][1]:
        iv[-1][1] = max(iv[-1][1], hi)
    else:
        iv.append([lo, hi])


def glitch_spans(catalogue: list[dict], fs: float, margin: float, template_duration: float) -> Spans:
    """Sample spans around accepted glitches (``margin`` s either side), merged."""
    marg = int(margin * fs)
    iv: Spans = []
    for e in sorted(catalogue, key=lambda e: e["onset_sample"]):
        lo = int(e["onset_sample"]) - int(PRE * fs) - marg
        hi = int(e["onset_sample"]) + int(template_duration * fs) + marg
        _merge(iv, lo, hi)
    return iv


def departures(x: np.ndarray, snippets: np.ndarray, sc: SolverConfig, token: CancelToken = NO_CANCEL
               ) -> tuple[list[int], np.ndarray, int]:
    """Start and departure from the prior of every piece of ``x``, and the piece length. The departure is the
    background term of the separation loss (mean whitened distance of the piece's scattering covariances to the
    snippets', each piece's own mean off) over the largest value of the snippets themselves (above 1: less like the
    prior than any snippet). No pieces when ``x`` or the prior is too short."""
    from unmix.separation.loss import SeparationLoss
    from unmix.separation.solver import _snippets_of_length

    L = int(min(sc.piece, snippets.shape[-1], x.size))
    snip = _snippets_of_length(snippets[:, None], L)[:, 0]
    if L < 64 or snip.shape[0] < 2:
        return [], np.zeros(0), L
    snip = snip - snip.mean(-1, keepdims=True)  # offsets are no departure from the prior: each piece's own mean off
    sd = float(snip.std()) or 1.0
    starts = sorted(set(list(range(0, x.size - L + 1, L)) + [x.size - L]))
    pieces = np.stack([(x[a : a + L] - x[a : a + L].mean()) / sd for a in starts])
    sn = snip / sd
    loss = SeparationLoss(sn[:2], sn, J=sc.J, device="cpu", token=token)

    def score(phi: torch.Tensor) -> np.ndarray:
        d = phi[:, None] - loss.phi_prior[0][None]
        return ((d.real.square() + d.imag.square()) / (loss.s[0].square() + 1e-30)).mean((1, 2)).numpy()

    with torch.no_grad():
        scores = []
        for i in range(0, len(pieces), 64):
            token.check()
            scores.append(score(loss.phi(torch.as_tensor(pieces[i : i + 64]))))
        own = float(score(loss.phi_prior[0]).max())
    return starts, np.concatenate(scores) / (own or 1.0), L


def flagged_runs(starts: list[int], departure: np.ndarray, outlier_factor: float, L: int
                 ) -> list[tuple[Spans, list[int]]]:
    """Runs of consecutive pieces departing more than ``outlier_factor``: each as its sample span (one piece of
    margin either side; the spans of two runs one piece apart touch) and the indices of its pieces."""
    runs: list[tuple[Spans, list[int]]] = []
    for k in np.flatnonzero(departure > outlier_factor):
        a = starts[k]
        if runs and runs[-1][1][-1] == k - 1:
            runs[-1][0][0][1] = a + 2 * L
            runs[-1][1].append(int(k))
        else:
            runs.append(([[a - L, a + 2 * L]], [int(k)]))
    return runs


def merged(spans: Spans) -> Spans:
    """The union of ``spans`` as sorted, disjoint spans."""
    out: Spans = []
    for lo, hi in sorted(spans):
        _merge(out, lo, hi)
    return out


def outlier_spans(x: np.ndarray, snippets: np.ndarray, outlier_factor: float, sc: SolverConfig,
                  token: CancelToken = NO_CANCEL) -> tuple[Spans, dict]:
    """Sample spans where the template-cleaned record ``x`` departs from the prior's statistics
    (:func:`departures` over ``outlier_factor``), one piece of margin either side, merged; and the check's report."""
    starts, dep, L = departures(x, snippets, sc, token)
    if not starts:
        return [], {}
    iv = merged([run[0][0] for run in flagged_runs(starts, dep, outlier_factor, L)])
    return iv, {"limit": outlier_factor, "flagged_pieces": int((dep > outlier_factor).sum()), "pieces": len(dep)}


def span_mask(spans: Spans, n: int, ramp: int) -> np.ndarray:
    """1 inside the spans, 0 outside, sine-squared ramps of ``ramp`` samples inside each span's ends."""
    mask = np.zeros(n)
    for lo, hi in spans:
        lo, hi = max(lo, 0), min(hi, n)
        if hi <= lo:
            continue
        r = min(ramp, (hi - lo) // 2)
        w = np.ones(hi - lo)
        if r > 0:
            up = np.sin(0.5 * np.pi * (np.arange(r) + 0.5) / r) ** 2
            w[:r] = up if lo > 0 else 1.0
            w[hi - lo - r :] = np.minimum(w[hi - lo - r :], up[::-1] if hi < n else 1.0)
        mask[lo:hi] = np.maximum(mask[lo:hi], w)
    return mask


def _pieces(cleaned: list[np.ndarray], comps_idx: list[int], intervals: list[Spans], L: int
            ) -> tuple[list[np.ndarray], list[int], list[tuple[int, int, int]]]:
    """The signals to separate (each span, widened to one piece), their prior group and (trace, lo, hi)."""
    signals, groups, spans = [], [], []
    for i, (x, iv) in enumerate(zip(cleaned, intervals, strict=True)):
        for lo, hi in iv:
            lo, hi = max(lo, 0), min(hi, x.size)
            if hi - lo < L:  # widen to one piece
                mid = (lo + hi) // 2
                lo, hi = max(0, mid - L // 2), min(x.size, max(0, mid - L // 2) + L)
                lo = max(0, hi - L)
            if hi - lo < L:
                continue
            signals.append(x[lo:hi])
            groups.append(comps_idx[i])
            spans.append((i, lo, hi))
    return signals, groups, spans


def residual(cleaned: list[np.ndarray], comps_idx: list[int], intervals: list[Spans], prior: np.ndarray,
             fs_list: list[float], rc: ResidualConfig, sc: SolverConfig, device: str, progress: Progress,
             token: CancelToken) -> tuple[list[np.ndarray], dict]:
    """Scattering-covariance residual on the given sample spans (tapered at their edges), zero elsewhere."""
    from unmix.scattering import resolve_device
    from unmix.separation.scatcov import _DTYPES
    from unmix.separation.solver import separate_signals

    L = int(min(sc.piece, prior.shape[2]))
    signals, groups, spans = _pieces(cleaned, comps_idx, intervals, L)
    out = [np.zeros_like(x) for x in cleaned]
    info = {"windows": len(spans)}
    if not signals:
        return out, info
    bgs, report = separate_signals(signals, groups, prior, piece=L, overlap=L // 4, max_iter=sc.max_iter,
                                   tol=sc.tol, J=sc.J, dtype=_DTYPES[sc.dtype], detrend=DETREND, hold_mean=True,
                                   device=resolve_device(device), progress=progress, token=token)
    shrink = 1.0 / (1.0 + rc.residual_weight)
    for (i, lo, hi), s, bg in zip(spans, signals, bgs, strict=True):
        r = (s - bg) * shrink
        ramp = min(int(rc.residual_margin * fs_list[i]), (hi - lo) // 4)
        if ramp > 0:  # fade in and out inside the record; nothing to blend with at its ends
            w = np.sin(0.5 * np.pi * (np.arange(ramp) + 0.5) / ramp) ** 2
            if lo > 0:
                r[:ramp] *= w
            if hi < cleaned[i].size:
                r[-ramp:] *= w[::-1]
        out[i][lo:hi] += r
    info.update({"iterations": report.n_iter, "problems": report.n_problems, "piece": report.piece})
    return out, info

"""From feature-store arrays to network inputs: column selection, optional log, standardisation.

Per scale the store holds ``(N, C, K, 2)`` real/imaginary parts. Imaginary parts of coefficients that are real by
construction (``description['real']``) are identically zero and are dropped, as are columns that are constant over
the training windows (e.g. ``ps`` at a scale equal to the window under ``each_ps``). Means and standard deviations
are computed in float64 on the training split only and travel inside the checkpoint, so a model always sees its
inputs standardised exactly as in training, whatever subset of data it is applied to later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from unmix.errors import DataError

CONSTANT_RTOL = 1e-5
#: Training windows (evenly spaced) on which the log offset's column medians are taken.
OFFSET_WINDOWS = 512
#: Columns converted at a time when those medians are taken from a store sample.
MEDIAN_COLUMNS = 32

#: Per preprocessing, coefficient types (``c_type``) whose standardised columns are passed on as they are, next to
#: the principal axes (with ``pca > 0``). ``'log-spars'``: the sparsities E|Wx|/√E|Wx|², scale-free, where glitches
#: and wind bursts differ most (one column separates them with d' ≈ 4.7 at 51 s, the 32 principal axes together with
#: d' ≈ 2.6, being dominated by the hundreds of envelope columns and the level).
EXTRA_COLUMNS: dict[str, tuple[str, ...]] = {"log-spars": ("spars",)}


@dataclass
class ScalePrep:
    """The fixed transform of one scale: which (coefficient, part) columns, which get a log, mean and std."""

    columns: np.ndarray  # (F, 2) int64: coefficient index, part (0 real, 1 imag)
    log: np.ndarray  # (F,) bool
    mean: np.ndarray  # (C, F) float64
    std: np.ndarray  # (C, F) float64, 0 where a column is constant for that component
    projection: np.ndarray | None = None  # (C·F, P) float64: principal axes of the standardised inputs, or None
    ps_index: np.ndarray | None = None  # ('shape') (J+1,) coefficient indices of the ps family, by jl1
    norm_pair: np.ndarray | None = None  # ('shape') (F, 2) positions in ps_index of σ_left, σ_right (-1: none)
    offset: np.ndarray | None = None  # (C, F) float64 added before the log (``log_offset``), 0 on other columns

    @property
    def n_features(self) -> int:
        """Input columns per component seen by the network."""
        return int(self.columns.shape[0] if self.projection is None else self.projection.shape[1])

    @property
    def channels(self) -> int:
        """Components seen by the network (1 after a projection, which mixes the components)."""
        return int(self.mean.shape[0] if self.projection is None else 1)

    def apply(self, a: np.ndarray) -> np.ndarray:
        """(N, C, K, 2) store array → (N, C, F) float32 standardised inputs, or (N, 1, P) projected ones."""
        x = self.standardise(a)
        if self.projection is not None:
            x = (x.reshape(len(x), -1) @ self.projection)[:, None, :]
        return x.astype(np.float32)

    def standardise(self, a: np.ndarray) -> np.ndarray:
        """(N, C, K, 2) store array → (N, C, F) float64 standardised columns (before any projection)."""
        x = _shape(a, self.columns, self.ps_index, self.norm_pair) if self.ps_index is not None else \
            a[:, :, self.columns[:, 0], self.columns[:, 1]].astype(np.float64)
        if self.log.any():
            _log(x, self.log, self.offset)
        scale = np.divide(1.0, self.std, out=np.zeros_like(self.std), where=self.std > 0)
        x -= self.mean  # in place: x is a fresh array, and one copy less of a large input
        x *= scale
        return x

    def to_state(self) -> dict:
        state = {"columns": torch.from_numpy(self.columns), "log": torch.from_numpy(self.log),
                 "mean": torch.from_numpy(self.mean), "std": torch.from_numpy(self.std)}
        for name in ("projection", "ps_index", "norm_pair", "offset"):
            if getattr(self, name) is not None:
                state[name] = torch.from_numpy(getattr(self, name))
        return state

    @classmethod
    def from_state(cls, d: dict) -> ScalePrep:
        def opt(name: str, dtype) -> np.ndarray | None:
            return None if d.get(name) is None else d[name].numpy().astype(dtype)

        return cls(d["columns"].numpy().astype(np.int64), d["log"].numpy().astype(bool),
                   d["mean"].numpy().astype(np.float64), d["std"].numpy().astype(np.float64),
                   opt("projection", np.float64), opt("ps_index", np.int64), opt("norm_pair", np.int64),
                   opt("offset", np.float64))

    def unstandardise(self, x: np.ndarray) -> np.ndarray:
        """(n, C, F) standardised columns → column values (the inverse of :meth:`standardise` up to the column
        selection; a column constant for a component gives its mean)."""
        x = x * self.std + self.mean
        if self.log.any():
            off = 0.0 if self.offset is None else self.offset[:, self.log]
            x[..., self.log] = np.exp(np.minimum(x[..., self.log], 700.0)) - off
        return x


def _log(x: np.ndarray, log: np.ndarray, offset: np.ndarray | None) -> None:
    """In place: the log columns of ``x`` (n, C, F) → log(x + offset) (offset None: plain log)."""
    v = x[..., log] if offset is None else x[..., log] + offset[:, log]  # a fresh array either way
    x[..., log] = _safe_log(v)


def _safe_log(v: np.ndarray) -> np.ndarray:
    """log(max(v, tiny)) computed in place in ``v`` (a fresh float64 array), which is returned."""
    np.maximum(v, np.finfo(np.float64).tiny, out=v)
    return np.log(v, out=v)


def _shape(a: np.ndarray, columns: np.ndarray, ps_index: np.ndarray, norm_pair: np.ndarray) -> np.ndarray:
    """Columns of ``a`` divided by the sub-window's own first-layer RMS σ_left·σ_right (ps columns left as they are).

    This is the ``each_ps`` normalisation applied to each sub-window with its own power spectrum instead of the whole
    window's: the coefficients become scale-free shape descriptors (e.g. E|Wx|/σ, a sparsity that peaks for
    transients), while the ps columns keep the level.
    """
    x = a[:, :, columns[:, 0], columns[:, 1]].astype(np.float64)
    sigma = np.sqrt(np.maximum(a[:, :, ps_index, 0].astype(np.float64), np.finfo(np.float64).tiny))
    left, right = norm_pair[:, 0], norm_pair[:, 1]
    div = np.where(left >= 0, sigma[..., np.clip(left, 0, None)], 1.0)
    div = div * np.where(right >= 0, sigma[..., np.clip(right, 0, None)], 1.0)
    return x / div


def candidate_columns(description: np.ndarray, n_coefficients: int) -> np.ndarray:
    """All real parts, plus imaginary parts of coefficients that are not real by construction."""
    real = np.asarray(description["real"], bool) if description is not None else np.zeros(n_coefficients, bool)
    if real.shape[0] != n_coefficients:
        raise DataError(f"feature description has {real.shape[0]} coefficients, features have {n_coefficients}")
    k = np.arange(n_coefficients)
    cols = np.concatenate([np.column_stack([k, np.zeros_like(k)]), np.column_stack([k[~real], np.ones((~real).sum(),
                                                                                                   int)])])
    return cols[np.lexsort((cols[:, 1], cols[:, 0]))].astype(np.int64)


def fit_scale(a: np.ndarray, description: np.ndarray, preprocessing: str, pca: int = 0, log_offset: float = 0.0
              ) -> ScalePrep:
    """Fit the transform of one scale on training windows ``a`` (N, C, K, 2).

    ``pca > 0`` then projects the standardised inputs of all components onto their ``pca`` leading principal axes,
    scaled so that the projected inputs have unit mean variance (the relative variances, i.e. which directions carry
    most of the signal, are kept: no whitening). ``log_offset`` κ > 0 takes log(x + κ·m) instead of log(x), m the
    column's median over the windows :func:`offset_rows` picks (see :class:`unmix.model.ModelConfig`).
    """
    if a.shape[0] < 2:
        raise DataError(f"need at least 2 training windows to standardise features, got {a.shape[0]}")
    cols, ps_index, norm_pair = _candidates(description, a.shape[2], preprocessing)
    x = _columns(a, cols, ps_index, norm_pair)  # (N, C, F) float64
    if not np.all(np.isfinite(x)):
        raise DataError("features contain NaN or infinite values")
    offset = _medians(a[offset_rows(len(a))], cols, ps_index, norm_pair, log_offset)
    std0 = x.std(axis=0)
    scale0 = np.maximum(np.abs(x.mean(axis=0)), np.abs(x).max(axis=0))
    varying, keep = _varying(std0, scale0)
    cols, x, varying = cols[keep], x[..., keep], varying[:, keep]
    if norm_pair is not None:
        norm_pair = norm_pair[keep]
    log = _log_columns(preprocessing, cols, ps_index, (x > 0).all(axis=(0, 1)))
    offset = _on_log(offset, keep, log)
    _log(x, log, offset)
    mean = x.mean(axis=0)
    std = np.where(varying, x.std(axis=0), 0.0)
    prep = ScalePrep(cols, log, mean, std, None, ps_index, norm_pair, offset)
    if pca > 0:
        flat = ((x - mean) * np.divide(1.0, std, out=np.zeros_like(std), where=std > 0)).reshape(len(x), -1)
        _, sv, vt = np.linalg.svd(flat, full_matrices=False)
        p = min(pca, len(sv))
        var = sv[:p] ** 2 / len(flat)
        axes = vt[:p].T / np.sqrt(max(var.mean(), np.finfo(np.float64).tiny))
        prep.projection = _with_extra(axes, preprocessing, description, cols, x.shape[1])
    return prep


def offset_rows(n: int) -> np.ndarray:
    """Positions (sorted) among ``n`` training windows of the :data:`OFFSET_WINDOWS` evenly spaced ones whose column
    medians set the log offset (the same in memory and streamed, so both fit the same transform)."""
    return np.unique(np.linspace(0, n - 1, min(n, OFFSET_WINDOWS)).round().astype(np.int64))


def _medians(sample: np.ndarray, cols: np.ndarray, ps_index: np.ndarray | None, norm_pair: np.ndarray | None,
             log_offset: float) -> np.ndarray | None:
    """κ × the medians (C, F) of the candidate columns ``cols`` over a store array ``sample`` (n, C, K, 2); None when
    κ = 0. A block of columns at a time, so that beside the sample only one block's float64 copy is held."""
    if log_offset <= 0:
        return None
    out = np.empty((sample.shape[1], len(cols)))
    for b in range(0, len(cols), MEDIAN_COLUMNS):
        block = slice(b, b + MEDIAN_COLUMNS)
        pairs = None if norm_pair is None else norm_pair[block]
        out[:, block] = np.median(_columns(sample, cols[block], ps_index, pairs), axis=0)
    return log_offset * out


def _on_log(offset: np.ndarray | None, keep: np.ndarray, log: np.ndarray) -> np.ndarray | None:
    """The offsets of the kept columns, zero on the columns that take no log."""
    return None if offset is None or not log.any() else np.where(log, offset[:, keep], 0.0)


def _with_extra(axes: np.ndarray, preprocessing: str, description: np.ndarray, cols: np.ndarray, channels: int
                ) -> np.ndarray:
    """Principal ``axes`` (C·F, P), followed by one unit column per standardised input (flattened component-major,
    as ``reshape(n, -1)``) of the preprocessing's :data:`EXTRA_COLUMNS` types."""
    extra = EXTRA_COLUMNS.get(preprocessing, ())
    if not extra:
        return axes
    if description is None or "c_type" not in description.dtype.names:
        raise DataError(f"the {preprocessing!r} preprocessing needs the feature description (coefficient types)")
    ctype = np.asarray(description["c_type"]).astype(str)[cols[:, 0]]
    picked = np.flatnonzero(np.tile(np.isin(ctype, extra), channels))
    unit = np.zeros((axes.shape[0], len(picked)))
    unit[picked, np.arange(len(picked))] = 1.0
    return np.concatenate([axes, unit], axis=1)


class Moments:
    """Per-column count, mean and sum of squared deviations, merged piece by piece (Chan et al.'s parallel update),
    so that a mean and standard deviation over many windows need only one piece in memory at a time."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def add(self, x: np.ndarray) -> None:
        """Add the rows of ``x`` (n, ...) float64."""
        nb = len(x)
        if nb == 0:
            return
        mb = x.mean(axis=0)
        m2b = ((x - mb) ** 2).sum(axis=0)
        if self.n == 0:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        n, d = self.n + nb, mb - self.mean
        self.mean = self.mean + d * (nb / n)
        self.m2 = self.m2 + m2b + d * d * (self.n * nb / n)
        self.n = n

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (as ``np.std``)."""
        return np.sqrt(np.maximum(self.m2, 0.0) / self.n)


class StreamingFit:
    """:func:`fit_scale`'s decisions from training windows seen in pieces, for stores too large to load.

    Pass 1 (:meth:`add`) gathers per-column moments of the candidate columns and of their logs, the largest modulus
    and the minimum; :meth:`prep` then drops constant columns, picks log columns and gives means and standard
    deviations exactly as :func:`fit_scale` defines them. With ``pca > 0`` pass 2 (:meth:`add_gram`, on the same
    windows) accumulates the float64 Gram matrix of the standardised inputs and :meth:`finish` projects on its leading
    eigenvectors, scaled like :func:`fit_scale`'s SVD (each axis up to its sign).
    """

    def __init__(self, description: np.ndarray, n_coefficients: int, preprocessing: str, pca: int = 0,
                 log_offset: float = 0.0, offset_sample: np.ndarray | None = None) -> None:
        self.cols, self.ps_index, self.norm_pair = _candidates(description, n_coefficients, preprocessing)
        self.preprocessing, self.pca, self.description = preprocessing, pca, description
        if log_offset > 0 and offset_sample is None:
            raise ValueError("a log offset needs the training windows that offset_rows picks (offset_sample)")
        self.offset = None if offset_sample is None else _medians(
            offset_sample, self.cols, self.ps_index, self.norm_pair, log_offset)
        self.raw, self.logs = Moments(), Moments()
        self.absmax: np.ndarray | None = None
        self.min: np.ndarray | None = None
        self._prep: ScalePrep | None = None
        self.gram: np.ndarray | None = None
        self.n_gram = 0

    def add(self, a: np.ndarray) -> None:
        """Pass 1: training windows ``a`` (n, C, K, 2)."""
        if not len(a):
            return
        x = _columns(a, self.cols, self.ps_index, self.norm_pair)
        if not np.all(np.isfinite(x)):
            raise DataError("features contain NaN or infinite values")
        self.raw.add(x)
        amax, lo = np.abs(x).max(axis=0), x.min(axis=0)
        self.absmax = amax if self.absmax is None else np.maximum(self.absmax, amax)
        self.min = lo if self.min is None else np.minimum(self.min, lo)
        if self.preprocessing != "paper":
            self.logs.add(_safe_log(x if self.offset is None else x + self.offset))  # x: last use

    def prep(self) -> ScalePrep:
        """The transform decided by pass 1 (without projection)."""
        if self._prep is not None:
            return self._prep
        if self.raw.n < 2:
            raise DataError(f"need at least 2 training windows to standardise features, got {self.raw.n}")
        varying, keep = _varying(self.raw.std, np.maximum(np.abs(self.raw.mean), self.absmax))
        cols, varying = self.cols[keep], varying[:, keep]
        log = _log_columns(self.preprocessing, cols, self.ps_index, (self.min[:, keep] > 0).all(axis=0))
        mean, std = self.raw.mean[:, keep], self.raw.std[:, keep]
        if log.any():
            mean[:, log], std[:, log] = self.logs.mean[:, keep][:, log], self.logs.std[:, keep][:, log]
        norm_pair = None if self.norm_pair is None else self.norm_pair[keep]
        self._prep = ScalePrep(cols, log, mean, np.where(varying, std, 0.0), None, self.ps_index, norm_pair,
                               _on_log(self.offset, keep, log))
        return self._prep

    def add_gram(self, a: np.ndarray) -> None:
        """Pass 2 (only with ``pca > 0``): the same training windows again."""
        z = self.prep().standardise(a).reshape(len(a), -1)
        self.gram = z.T @ z if self.gram is None else self.gram + z.T @ z
        self.n_gram += len(z)

    def finish(self) -> ScalePrep:
        """The fitted transform, with its projection when ``pca > 0`` (after pass 2)."""
        prep = self.prep()
        if self.pca > 0:
            if self.n_gram != self.raw.n:
                raise RuntimeError("pass 2 must see the training windows of pass 1")
            prep.projection = _with_extra(_gram_projection(self.gram, self.n_gram, self.pca), self.preprocessing,
                                          self.description, prep.columns, prep.mean.shape[0])
        return prep


def _gram_projection(gram: np.ndarray, n: int, pca: int) -> np.ndarray:
    """Leading ``pca`` eigenvectors of the Gram matrix of ``n`` standardised windows, scaled as in fit_scale."""
    w, v = np.linalg.eigh(gram)
    order = np.argsort(w)[::-1][:min(pca, n, len(w))]
    var = np.maximum(w[order], 0.0) / n
    return v[:, order] / np.sqrt(max(var.mean(), np.finfo(np.float64).tiny))


def fit_scale_pieces(pieces: Callable[[], Iterable[np.ndarray]], description: np.ndarray, n_coefficients: int,
                     preprocessing: str, pca: int = 0, log_offset: float = 0.0) -> ScalePrep:
    """:func:`fit_scale` on training windows given in pieces: ``pieces()`` yields (n, C, K, 2) arrays (called once,
    or twice with ``pca > 0``, and twice more with a log offset: to count the windows, then to pick
    :func:`offset_rows`)."""
    sample = None
    if log_offset > 0:
        n = sum(len(a) for a in pieces())
        rows, parts, start = offset_rows(n), [], 0
        for a in pieces():
            inside = rows[(rows >= start) & (rows < start + len(a))] - start
            parts.append(a[inside])
            start += len(a)
        sample = np.concatenate(parts)
    fit = StreamingFit(description, n_coefficients, preprocessing, pca, log_offset, sample)
    for a in pieces():
        fit.add(a)
    if pca > 0:
        for a in pieces():
            fit.add_gram(a)
    return fit.finish()


def _candidates(description: np.ndarray, n_coefficients: int, preprocessing: str
                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Candidate columns, and for 'shape' the ps coefficients and each column's normalising pair."""
    cols = candidate_columns(description, n_coefficients)
    if preprocessing != "shape":
        return cols, None, None
    ps_index, norm_pair = _shape_pairs(description, cols)
    return cols, ps_index, norm_pair


def _columns(a: np.ndarray, cols: np.ndarray, ps_index: np.ndarray | None, norm_pair: np.ndarray | None
             ) -> np.ndarray:
    """The candidate columns of ``a`` (N, C, K, 2) as (N, C, F) float64 ('shape': divided by the sub-window's RMS)."""
    if ps_index is not None:
        return _shape(a, cols, ps_index, norm_pair)
    return a[:, :, cols[:, 0], cols[:, 1]].astype(np.float64)


def _varying(std0: np.ndarray, scale0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which (component, column) vary over the training windows, and which columns vary for some component."""
    varying = std0 > CONSTANT_RTOL * scale0  # (C, F)
    keep = varying.any(axis=0)
    if not keep.any():
        raise DataError("every feature column is constant over the training windows")
    return varying, keep


def _log_columns(preprocessing: str, cols: np.ndarray, ps_index: np.ndarray | None, positive: np.ndarray
                 ) -> np.ndarray:
    """Columns that get a log: 'log' every column positive in all training windows, 'shape' the positive ps ones."""
    if preprocessing in ("log", "log-spars"):
        return positive.copy()
    if preprocessing == "shape":  # the level: log of the power spectrum, positive by construction
        return np.isin(cols[:, 0], ps_index) & positive
    return np.zeros(cols.shape[0], bool)


def _shape_pairs(description: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ps coefficients (ordered by jl1) and, per column, which of them normalise it (ps columns: none)."""
    if description is None or "c_type" not in description.dtype.names:
        raise DataError("the 'shape' preprocessing needs the feature description (coefficient types)")
    ctype = np.asarray(description["c_type"]).astype(str)
    ps = np.flatnonzero(ctype == "ps")
    if len(ps) == 0:
        raise DataError("the 'shape' preprocessing needs the ps coefficients in the features")
    ps = ps[np.argsort(description["jl1"][ps])]
    pos = {int(description["jl1"][k]): i for i, k in enumerate(ps)}
    pair = np.full((len(cols), 2), -1, np.int64)
    for i, k in enumerate(cols[:, 0]):
        if ctype[k] == "ps":
            continue
        pair[i, 0] = pos.get(int(description["jl1"][k]), -1)
        pair[i, 1] = pos.get(int(description["jr1"][k]), -1) if description["jr1"][k] >= 0 else -1
    return ps.astype(np.int64), pair


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random train/validation split (sorted indices); validation is empty when ``val_fraction`` is 0 or n is tiny."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction)) if n >= 20 else 0
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])

"""Sampling from a cluster: decoded feature vectors and synthetic waveforms with the cluster's statistics.

Two ways of drawing "a new member" of a cluster (issue #16 item 4):

* :func:`decode_cluster` draws latent vectors from the model's prior ``p(z | y = cluster)`` at one scale, decodes them
  and maps the decoder's output back to feature space through the inverse of the model's preprocessing;
* :func:`synthesize` makes waveforms: white noise with the cluster's mean power spectrum, then L-BFGS (the
  separation's batched solver) on the distance between the signal's scattering-covariance statistics and the mean
  statistics of real snippets of the cluster, each coefficient divided by the snippets' spread. This is the
  microcanonical gradient-descent synthesis of the scattering-spectra work, with the separation's statistics.

:func:`generation_quality` says whether generated waveforms look like members: for each waveform, the normalised
distance of its statistics to the cluster mean, as a percentile of the same distance for the real snippets
(leave-one-out), for the optimised ``cov`` statistics and for the second-order scattering coefficients (``scat``),
which the synthesis never sees. White noise of the members' power is the baseline that must fall outside.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from obspy import Stream, Trace

from unmix.clusters import ClusterTable
from unmix.errors import ConfigError, DataError
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress, sub_progress
from unmix.scattering import ScatteringCovariance, resolve_device
from unmix.scattering.transform import estimate_bytes_per_window
from unmix.separation.solver import SolveReport, _batched_lbfgs
from unmix.synthetic import SYNTHETIC_NETWORK

#: A realisation is "inside the cluster's spread" when its distance is below this percentile of the real members'.
INSIDE_PERCENTILE = 90.0
DEFAULT_PRIOR = 32
DEFAULT_TOL = 0.1
DEFAULT_MAX_ITER = 200
MAX_COUNT = 100
_GRAD_BUDGET = 256 << 20

# --- decoded feature vectors ----------------------------------------------------------------------------------------


@dataclass
class DecodedFeatures:
    """Feature vectors decoded from ``p(z | y = cluster)`` at ``scale``.

    ``values`` ``(n, C, F)``: the model's input columns ``columns`` (``(F, 2)``: coefficient index, 0 real / 1
    imaginary part) in feature-store units, for the ``C = len(components)`` components. ``coefficients``
    ``(n, C, K, 2)``: the same laid out like a feature-store array, NaN where the value cannot be recovered (columns
    the preprocessing dropped as constant over the training windows) and 0 for imaginary parts of coefficients real by
    construction. ``complete``: every (coefficient, part) of the store is known. ``latent`` ``(n, Z)``: the samples.
    """

    values: np.ndarray
    columns: np.ndarray
    coefficients: np.ndarray
    latent: np.ndarray
    components: str
    cluster: int
    scale: int
    complete: bool
    notes: list[str] = field(default_factory=list)


def _one_hot(cluster: int, k: int, n: int) -> torch.Tensor:
    y = torch.zeros(n, k)
    y[:, cluster] = 1.0
    return y


def decode_cluster(model: Any, cluster: int, scale: int, n: int = 16, seed: int = 0) -> DecodedFeatures:
    """``n`` feature vectors of ``cluster`` at ``scale``: ``z ~ p(z | y = cluster)``, decoded (network in evaluation
    mode), then the model's preprocessing inverted.

    ``model``: a :class:`unmix.model.TrainedModel` or a checkpoint path. Inversion: a PCA projection is inverted by
    its pseudo-inverse (the decoded point lies in the principal subspace, which is all the network ever sees), the
    z-score exactly, the logarithm by ``exp``, and the ``'shape'`` division by ``σ_left·σ_right`` with the σ taken
    from the decoded power-spectrum columns of the same vector. The column selection is *not* invertible: columns the
    model dropped as constant over its training windows are NaN in ``coefficients`` (``complete`` is then False and
    ``notes`` says so); ``values`` always holds exactly the model's columns.
    """
    from unmix.model import TrainedModel, load_model
    from unmix.model.network import _key

    if n < 1:
        raise ConfigError(f"the number of samples must be >= 1, got {n}")
    trained = model if isinstance(model, TrainedModel) else load_model(model, "cpu")
    scale = int(scale)
    if scale not in trained.scales:
        raise ConfigError(f"scale {scale} not in this model (scales {', '.join(map(str, trained.scales))})")
    K = int(trained.config.clusters)
    if trained.glitch_cluster is not None and int(cluster) == trained.glitch_cluster:
        raise ConfigError(f"cluster {cluster} is the glitch class (windows the template deglitcher explains) and has "
                          "no latent Gaussian to decode; synthesise waveforms from its windows instead")
    derived = trained.derived_from(scale, int(cluster))
    if derived is not None:
        what = "the outliers" if derived[0] == "outliers" else "a sparsity split"
        raise ConfigError(f"cluster {cluster} at scale {scale} holds {what} of cluster {derived[1]} and has no "
                          "latent Gaussian to decode; synthesise waveforms from its windows instead")
    if not 0 <= int(cluster) < K:
        raise ConfigError(f"no cluster {cluster}: this model has clusters 0–{K - 1}")
    head = trained.network.heads[_key(scale)]
    was_training = trained.network.training
    trained.network.eval()
    gen = torch.Generator().manual_seed(int(seed))
    try:
        with torch.no_grad():
            p = next(head.parameters())
            y = _one_hot(int(cluster), K, n).to(p.device, p.dtype)
            mu, var = head.prior(y)
            z = mu + var.sqrt() * torch.randn(mu.shape, generator=gen, dtype=mu.dtype).to(mu.device)
            out = head.decode(z).double().cpu().numpy()  # (n, C', F')
    finally:
        trained.network.train(was_training)
    prep = trained.preps[scale]
    values, notes = _invert_prep(prep, out)
    d = trained.description
    real = np.asarray(d["real"], bool) if isinstance(d, dict) and "real" in d else None
    n_coef = len(real) if real is not None else int(prep.columns[:, 0].max()) + 1
    coefficients = np.full((n, values.shape[1], n_coef, 2), np.nan)
    coefficients[:, :, prep.columns[:, 0], prep.columns[:, 1]] = values
    if real is not None:
        coefficients[:, :, np.flatnonzero(real), 1] = 0.0
    complete = bool(np.isfinite(coefficients).all())
    if not complete:
        missing = int((~np.isfinite(coefficients[0, 0])).sum())
        notes.append(f"{missing} (coefficient, part) entries per component were dropped by the model's column "
                     "selection (constant over its training windows) and are NaN")
    return DecodedFeatures(values, prep.columns.copy(), coefficients, z.cpu().numpy(), trained.components,
                           int(cluster), scale, complete, notes)


def _invert_prep(prep: Any, out: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Decoder output ``(n, C', F')`` → feature values ``(n, C, F)`` of the prep's columns (see decode_cluster)."""
    notes: list[str] = []
    n = out.shape[0]
    C, F = prep.mean.shape
    x = out.reshape(n, -1)
    if prep.projection is not None:
        x = x @ np.linalg.pinv(prep.projection)
        if prep.projection.shape[1] < prep.projection.shape[0]:
            notes.append(f"PCA: {prep.projection.shape[1]} of {prep.projection.shape[0]} directions; the values lie "
                         "in the principal subspace")
    x = prep.unstandardise(x.reshape(n, C, F))
    if prep.ps_index is not None and prep.norm_pair is not None:
        x, ok = _undo_shape(x, prep)
        if not ok:
            notes.append("'shape' preprocessing: some power-spectrum columns are missing, the columns they normalise "
                         "are left as scale-free shape values")
    return x, notes


def _undo_shape(x: np.ndarray, prep: Any) -> tuple[np.ndarray, bool]:
    """Multiply the 'shape' columns back by σ_left·σ_right, σ from the decoded ps columns (real parts)."""
    where = {int(k): i for i, (k, part) in enumerate(prep.columns) if part == 0}
    pos = [where.get(int(k), -1) for k in prep.ps_index]
    ok = all(p >= 0 for p in pos)
    sigma = np.stack([np.sqrt(np.maximum(x[..., p], 0.0)) if p >= 0 else np.ones(x.shape[:2]) for p in pos], -1)
    left, right = prep.norm_pair[:, 0], prep.norm_pair[:, 1]
    mult = np.where(left >= 0, sigma[..., np.clip(left, 0, None)], 1.0)
    mult = mult * np.where(right >= 0, sigma[..., np.clip(right, 0, None)], 1.0)
    usable = np.array([(lf < 0 or pos[lf] >= 0) and (r < 0 or pos[r] >= 0) for lf, r in prep.norm_pair])
    out = x.copy()
    out[..., usable] = x[..., usable] * mult[..., usable]
    return out, ok


# --- the synthesis loss ---------------------------------------------------------------------------------------------


class Normaliser:
    """Scattering statistics made scale-free (the convention of the scattering-spectra work and of the model's
    ``'shape'`` preprocessing): the power spectrum ``E|W_j x|²`` → its logarithm, every other coefficient divided by
    ``σ_jl1`` (and ``σ_jr1`` when it has a right path), ``σ_j² = E|W_j x|²`` of the same signal. Built from a
    statistics description (``cov`` or ``scat+cov``, one channel); applied to ``(..., K)`` complex tensors."""

    def __init__(self, description: np.ndarray, device: torch.device | str = "cpu") -> None:
        ctype = np.asarray(description["c_type"]).astype(str)
        ps = np.flatnonzero(ctype == "ps")
        if len(ps) == 0:
            raise ConfigError("scale-free statistics need the power-spectrum coefficients")
        where = {int(description["jl1"][k]): i for i, k in enumerate(ps)}
        jl, jr = np.asarray(description["jl1"]), np.asarray(description["jr1"])
        left = np.array([where.get(int(j), -1) for j in jl])
        right = np.array([where.get(int(j), -1) if j >= 0 else -1 for j in jr])
        self.is_ps = torch.as_tensor(ctype == "ps", device=device)
        self.ps = torch.as_tensor(ps, device=device)
        self.left = torch.as_tensor(np.clip(left, 0, None), device=device)
        self.right = torch.as_tensor(np.clip(right, 0, None), device=device)
        self.has_left = torch.as_tensor(left >= 0, device=device)
        self.has_right = torch.as_tensor(right >= 0, device=device)

    def __call__(self, phi: torch.Tensor) -> torch.Tensor:
        tiny = torch.finfo(phi.real.dtype).tiny
        power = phi.real.index_select(-1, self.ps).clamp_min(tiny)  # (..., JQ+1)
        sigma = power.sqrt()
        one = torch.ones((), dtype=sigma.dtype, device=sigma.device)
        div = torch.where(self.has_left, sigma.index_select(-1, self.left), one)
        div = div * torch.where(self.has_right, sigma.index_select(-1, self.right), one)
        out = phi / div
        logp = torch.zeros_like(phi.real)
        logp[..., self.ps] = power.log()
        return torch.where(self.is_ps, logp.to(phi.dtype), out)


def _std(z: torch.Tensor, dim: int) -> torch.Tensor:
    """Bessel-corrected spread of (complex) values along ``dim``."""
    d = z - z.mean(dim, keepdim=True)
    return ((d.real.square() + d.imag.square()).sum(dim) / max(z.shape[dim] - 1, 1)).sqrt()


def spread_floor(s, mean):
    """The per-coefficient spread (torch or numpy) with a floor (1e-6 of the coefficient's magnitude, at least
    1e-12), so a coefficient that is constant over the snippets does not divide by zero."""
    lib = torch if isinstance(s, torch.Tensor) else np
    return lib.maximum(s, lib.maximum(1e-6 * abs(mean), lib.full_like(s, 1e-12)))


class SynthesisLoss:
    """``L_p(x) = mean_i |Φ̃_i(x_p) − m_{g,i}|² / s_{g,i}²`` for a batch of one-channel problems ``x_p``.

    ``Φ̃`` = the separation's ``cov`` statistics (J, Q, wavelet, high_freq) made scale-free by
    :func:`normalised_statistics` (log power spectrum; every other coefficient divided by the power of its wavelets),
    ``m``/``s`` = mean and spread over real snippets of target ``g = group[p]`` (one target per component). Scale-free
    statistics keep the few loud members a cluster may hold (a glitch in a quiet cluster) from setting the target
    and the spread of every coefficient alone. The interface is the one the separation's batched L-BFGS evaluates
    (``device``, ``dtype``, ``loss_and_grad``). A fresh real member scores about ``1 + 1/R``.
    """

    def __init__(self, snippets: np.ndarray, group: np.ndarray, length: int, J: int = 8, Q: int = 1,
                 wavelet: str = "battle_lemarie", high_freq: float = 0.425, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "auto") -> None:
        self.device, self.dtype = resolve_device(device), dtype
        n = np.asarray(snippets, dtype=np.float64)  # (R, G, T)
        if n.ndim != 3 or n.shape[0] < 2:
            raise DataError(f"need at least 2 snippets (R, G, T) to set the target, got shape {n.shape}")
        self.sc = ScatteringCovariance(J=J, Q=Q, wavelet=wavelet, high_freq=high_freq, model="cov", dtype=dtype,
                                       device=self.device)
        R, G, T = n.shape
        self.norm = Normaliser(self.sc.description, self.device)
        with torch.no_grad():
            phi = self.statistics(torch.as_tensor(n.reshape(R * G, T)).to(self.device, dtype)).reshape(R, G, -1)
        self.mean = phi.mean(0)
        self.spread = spread_floor(_std(phi, 0), self.mean)
        self.group = torch.as_tensor(np.asarray(group), dtype=torch.long, device=self.device)
        self.P, self.T, self.R = int(self.group.numel()), int(length), R
        plan = self.sc.plan(self.T)
        self.chunk = max(1, _GRAD_BUDGET // estimate_bytes_per_window(plan, True))

    def statistics(self, x: torch.Tensor) -> torch.Tensor:
        """Scale-free ``cov`` statistics ``(B, K)`` of ``(B, T)`` signals (differentiable)."""
        return self.norm(self.sc.transform(x[:, None])[:, 0])

    def loss_and_grad(self, x: torch.Tensor, problems: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss ``(p,)`` and gradient ``(p, T)`` of the problems ``problems`` (default all) at ``x`` ``(p, T)``."""
        problems = torch.arange(self.P) if problems is None else torch.as_tensor(problems, dtype=torch.long).cpu()
        xb = torch.as_tensor(x).detach().to(self.device, self.dtype).reshape(len(problems), self.T)
        xb.requires_grad_(True)
        loss = torch.zeros(len(problems), dtype=self.dtype, device=self.device)
        g_all = self.group[problems.to(self.device)]
        with torch.enable_grad():
            for a in range(0, len(problems), self.chunk):
                g = g_all[a:a + self.chunk]
                d = self.statistics(xb[a:a + self.chunk]) - self.mean[g]
                part = ((d.real.square() + d.imag.square()) / self.spread[g].square()).mean(-1)
                part.sum().backward()
                loss[a:a + self.chunk] = part.detach()
        return loss, xb.grad.detach()


# --- waveforms ------------------------------------------------------------------------------------------------------


@dataclass
class Synthesis:
    """Waveforms generated for one cluster: ``streams[k]`` is realisation ``k`` (one trace per component);
    ``data`` ``(n, C, length)`` the same samples; ``snippets`` the real members that set the target; ``info`` what
    was done (JSON-ready)."""

    streams: list[Stream]
    data: np.ndarray
    snippets: Any  # unmix.snippets.Snippets
    components: str
    cluster: int
    scale: int
    info: dict


def _standardiser(snip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-component mean and standard deviation over all snippets and samples ``(C,)`` (statistics are computed on
    standardised signals for conditioning; normalised distances do not depend on it)."""
    mu = snip.mean((0, 2))
    sd = snip.std((0, 2))
    return mu, np.where(sd > 0, sd, 1.0)


def mean_spectrum_noise(snip: np.ndarray, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise ``(n, C, length)`` with the snippets' mean power spectrum per component (periodogram averaged
    over the snippets, interpolated to the output's frequency grid) and their mean: the starting point."""
    R, C, T = snip.shape
    d = snip - snip.mean(-1, keepdims=True)
    psd = (np.abs(np.fft.rfft(d * np.hanning(T), axis=-1)) ** 2).mean(0) / (np.hanning(T) ** 2).sum()  # (C, T//2+1)
    f_in, f_out = np.fft.rfftfreq(T), np.fft.rfftfreq(length)
    amp = np.sqrt(np.stack([np.interp(f_out, f_in, psd[c]) for c in range(C)]) * length)
    spec = amp * (rng.standard_normal((n, C, len(f_out))) + 1j * rng.standard_normal((n, C, len(f_out)))) / np.sqrt(2)
    spec[..., 0] = 0.0
    x = np.fft.irfft(spec, n=length, axis=-1)
    return x + snip.mean((0, 2))[None, :, None]


def white_noise(snip: np.ndarray, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise ``(n, C, length)`` with the snippets' per-component mean and power (the baseline)."""
    mu, sd = snip.mean((0, 2)), snip.std((0, 2))
    return mu[None, :, None] + sd[None, :, None] * rng.standard_normal((n, snip.shape[1], length))


def _feature_config(table: ClusterTable) -> dict:
    cfg = table.meta.get("feature_config") or table.meta.get("config") or {}
    return cfg if isinstance(cfg, dict) else cfg.to_dict()


def read_cluster_snippets(table: ClusterTable, cluster: int, scale: int, n_prior: int = DEFAULT_PRIOR,
                          components: str | None = None, progress: Progress = no_progress,
                          token: CancelToken = NO_CANCEL):
    """The ``n_prior`` most confident, non-overlapping members of ``cluster`` at ``scale``, read from the table's
    input files (:func:`unmix.snippets.read_snippets`)."""
    from unmix.snippets import read_snippets, select_windows

    if n_prior < 2:
        raise ConfigError(f"at least 2 real members are needed to set the target, got n_prior={n_prior}")
    comps = components or str(_feature_config(table).get("components") or "UVW")
    idx = select_windows(table, [int(cluster)], int(scale), int(n_prior))
    if len(idx) < 2:
        raise DataError(f"cluster {table.label(scale, cluster)} at scale {scale} has {len(idx)} non-overlapping "
                        "window(s); at least 2 are needed to set the target statistics")
    return read_snippets(table, idx, int(scale), components=comps, progress=progress, token=token)


def synthesize(
    table: ClusterTable,
    cluster: int,
    scale: int,
    n: int = 4,
    length: int | None = None,
    seed: int = 0,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    n_prior: int = DEFAULT_PRIOR,
    device: str = "auto",
    dtype: str = "float64",
    progress: Progress = no_progress,
    token: CancelToken = NO_CANCEL,
) -> Synthesis:
    """``n`` waveforms of ``length`` samples (default: ``scale``) whose scattering-covariance statistics match those
    of ``cluster`` at ``scale``.

    Target: mean ``cov`` statistics of the cluster's ``n_prior`` most confident non-overlapping members (read from
    the table's inputs), per component, each coefficient divided by the members' spread. Start: Gaussian noise with
    the members' mean power spectrum (seeded by ``seed``). Optimiser: the separation's batched L-BFGS (one problem per
    realisation and component), at most ``max_iter`` iterations, stopping a problem at ``sqrt(loss) <= tol`` (a
    fresh member scores about 1). Components are generated independently: their cross-correlation is not matched.
    Streams: network ``SY`` (synthetic), the members' station and channel codes, location = realisation number,
    starting at the most confident member's start time; the table's sampling rate.
    """
    if not 1 <= n <= MAX_COUNT:
        raise ConfigError(f"the number of waveforms must be in 1–{MAX_COUNT}, got {n}")
    if max_iter < 0 or tol < 0:
        raise ConfigError("max_iter and tol must be non-negative")
    dtypes = {"float64": torch.float64, "float32": torch.float32}
    if dtype not in dtypes:
        raise ConfigError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but PyTorch sees no GPU")
    cluster = int(cluster)
    if not 0 <= cluster < table.n_clusters:
        raise ConfigError(f"no cluster {cluster}: this table has clusters 0–{table.n_clusters - 1}")
    scale = int(scale)
    table.scale_index(scale)
    length = int(scale if length is None else length)
    cfg = _feature_config(table)
    J, Q = int(cfg.get("J", 8)), int(cfg.get("Q", 1))
    if length < max(64, 2 ** J // 2):
        raise ConfigError(f"length {length} is too short for J={J} wavelets (need >= {max(64, 2 ** J // 2)} samples)")
    t0 = time.perf_counter()
    snip = read_cluster_snippets(table, cluster, scale, n_prior, progress=sub_progress(progress, 0.0, 0.05),
                                 token=token)
    data = snip.data
    comps = str(cfg.get("components") or "UVW")
    mu, sd = _standardiser(data)
    std_snip = (data - mu[None, :, None]) / sd[None, :, None]
    rng = np.random.default_rng(seed)
    x0 = mean_spectrum_noise(std_snip, n, length, rng)  # (n, C, L)
    C = data.shape[1]
    token.check()
    progress(0.05, "target statistics")
    loss = SynthesisLoss(std_snip, np.tile(np.arange(C), n), length, J=J, Q=Q,
                         wavelet=str(cfg.get("wavelet", "battle_lemarie")), high_freq=float(cfg.get("high_freq",
                                                                                                    0.425)),
                         dtype=dtypes[dtype], device=device)
    report = SolveReport(n_problems=n * C, piece=length, n_prior=len(snip))
    report.setup_s = time.perf_counter() - t0
    x = _batched_lbfgs(loss, x0.reshape(n * C, length), max_iter, tol, report, sub_progress(progress, 0.08, 1.0),
                       token)
    report.solve_s = time.perf_counter() - t0 - report.setup_s
    out = x.reshape(n, C, length) * sd[None, :, None] + mu[None, :, None]
    if not np.isfinite(out).all():
        raise DataError("the synthesis diverged (non-finite samples); try fewer iterations or another seed")
    streams = _streams(out, snip, comps, cluster, scale, table)
    with torch.no_grad():
        final = loss.loss_and_grad(torch.as_tensor(x))[0].cpu().numpy().reshape(n, C)
    info = {"cluster": cluster, "cluster_label": table.label(scale, cluster), "scale": scale, "count": n,
            "length": length, "seed": int(seed), "max_iter": int(max_iter), "tol": float(tol),
            "components": comps, "sampling_rate": snip.sampling_rate, "n_prior": len(snip),
            "prior_windows": [int(i) for i in snip.indices], "J": J, "Q": Q,
            "device": str(loss.device), "dtype": dtype, "iterations": report.n_iter, "evaluations": report.n_eval,
            "stopped": report.stopped, "initial_loss": round(report.history[0], 6) if report.history else None,
            "final_loss": final.round(6).tolist(),
            "setup_s": round(report.setup_s, 3), "solve_s": round(report.solve_s, 3),
            "seconds_per_waveform": round((report.setup_s + report.solve_s) / n, 3)}
    progress(1.0, f"{n} waveform(s) in {report.n_iter} iterations")
    return Synthesis(streams, out, snip, comps, cluster, scale, info)


def _streams(out: np.ndarray, snip: Any, comps: str, cluster: int, scale: int, table: ClusterTable
             ) -> list[Stream]:
    """One Stream per realisation, marked synthetic (network SY, location = realisation number)."""
    fs = float(snip.sampling_rate)
    start = snip.starts[0]
    note = (f"unmix generate: synthesised to match the scattering-covariance statistics of cluster "
            f"{table.label(scale, cluster)} at scale {scale} (not recorded data)")
    streams = []
    for k, realisation in enumerate(out):
        traces = []
        for c, letter in enumerate(comps):
            parts = snip.ids[c].split(".") if c < len(snip.ids) else []
            station = parts[1] if len(parts) == 4 and parts[1] else "GEN"
            channel = parts[3] if len(parts) == 4 and parts[3] else f"BH{letter}"
            header = {"network": SYNTHETIC_NETWORK, "station": station, "location": f"{k:02d}", "channel": channel,
                      "sampling_rate": fs, "starttime": start}
            tr = Trace(np.ascontiguousarray(realisation[c], dtype=np.float64), header=header)
            tr.stats.processing = [note]
            traces.append(tr)
        streams.append(Stream(traces))
    return streams


# --- quality --------------------------------------------------------------------------------------------------------


def _family_distance(phi: np.ndarray, mean: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """RMS over components and coefficients of ``|Φ − mean| / spread``: ``(B, C, K)`` → ``(B,)``."""
    return np.sqrt((np.abs(phi - mean) ** 2 / spread**2).mean((1, 2)))


def generation_quality(generated: np.ndarray, snippets: np.ndarray, J: int = 8, Q: int = 1,
                       wavelet: str = "battle_lemarie", high_freq: float = 0.425, seed: int = 0,
                       device: str = "cpu") -> dict:
    """How well ``generated`` ``(n, C, T)`` waveforms fall inside the spread of the real ``snippets`` ``(R, C, Ts)``.

    For every waveform, the distance ``D = sqrt(mean_{c,i} |Φ_ci − m_ci|² / s_ci²)`` to the members' mean ``m`` with
    their spread ``s`` (scale-free ``scat+cov`` statistics, :class:`Normaliser`), for two families: ``cov``
    (what the synthesis optimises) and ``scat`` (second-order scattering ``E|W_j2 |W_j1 x||``, never optimised: the
    held-out check). Real members are scored leave-one-out (``m``, ``s`` from the others). Each waveform's
    ``percentile`` = share of real members with a smaller distance (%); it is *inside* when ``D`` is at most the
    real members' 90th percentile. Baselines scored the same way: white noise of the members' mean and power
    (``white``, must fall outside) and Gaussian noise with their mean power spectrum (``coloured``: matches the
    second-order statistics only). Returns a JSON-ready dict.
    """
    gen = np.asarray(generated, dtype=np.float64)
    snip = np.asarray(snippets, dtype=np.float64)
    if gen.ndim != 3 or snip.ndim != 3 or gen.shape[1] != snip.shape[1]:
        raise DataError(f"generated (n, C, T) and snippets (R, C, T) must share C; got {gen.shape}, {snip.shape}")
    R, C, _ = snip.shape
    if R < 3:
        raise DataError(f"at least 3 real snippets are needed for a leave-one-out spread, got {R}")
    mu, sd = _standardiser(snip)

    def standard(a: np.ndarray) -> np.ndarray:
        return (a - mu[None, :, None]) / sd[None, :, None]

    sc = ScatteringCovariance(J=J, Q=Q, wavelet=wavelet, high_freq=high_freq, model="scat+cov", dtype=torch.float64,
                              device=device)
    ctype = np.asarray(sc.description["c_type"]).astype(str)
    norm = Normaliser(sc.description)
    families = {"cov": ctype != "scat", "scat": ctype == "scat"}
    rng = np.random.default_rng(seed + 7919)
    n, T = gen.shape[0], gen.shape[2]
    sets = {"generated": gen, "white": white_noise(snip, n, T, rng), "coloured": mean_spectrum_noise(snip, n, T, rng)}
    with torch.no_grad():
        phi_real = norm(sc.transform(standard(snip))).cpu().numpy()
        phi = {k: norm(sc.transform(standard(v))).cpu().numpy() for k, v in sets.items()}
    result: dict = {"n_real": R, "n_generated": n, "inside_percentile": INSIDE_PERCENTILE, "families": {}}
    for fam, sel in families.items():
        pr = phi_real[..., sel]
        m = pr.mean(0)
        s = spread_floor(_np_std(pr), m)
        loo = []
        for k in range(R):
            others = np.delete(pr, k, 0)
            mo = others.mean(0)
            so = spread_floor(_np_std(others), mo)
            loo.append(_family_distance(pr[k:k + 1], mo, so)[0])
        real = np.asarray(loo)
        limit = float(np.percentile(real, INSIDE_PERCENTILE))
        entry = {"real": _summary(real), "limit": limit}
        for name, p in phi.items():
            d = _family_distance(p[..., sel], m, s)
            pct = np.array([100.0 * (real < v).mean() for v in d])
            entry[name] = _summary(d) | {"percentiles": pct.round(1).tolist(),
                                         "inside_fraction": float((d <= limit).mean())}
        result["families"][fam] = entry
    return result


def synthesis_quality(synthesis: Synthesis, table: ClusterTable, seed: int | None = None) -> dict | None:
    """:func:`generation_quality` of ``synthesis`` against the real members it was made from, with the scattering
    settings of ``table``'s feature configuration (what ``unmix generate`` and the GUI report); ``seed`` defaults to
    the synthesis's. None when fewer than 3 members were read (no leave-one-out spread)."""
    if len(synthesis.snippets) < 3:
        return None
    cfg = _feature_config(table)
    return generation_quality(synthesis.data, synthesis.snippets.data, J=int(cfg.get("J", 8)), Q=int(cfg.get("Q", 1)),
                              wavelet=str(cfg.get("wavelet", "battle_lemarie")),
                              high_freq=float(cfg.get("high_freq", 0.425)),
                              seed=int(synthesis.info.get("seed", 0) if seed is None else seed))


def _np_std(z: np.ndarray) -> np.ndarray:
    d = z - z.mean(0, keepdims=True)
    return np.sqrt((np.abs(d) ** 2).sum(0) / max(z.shape[0] - 1, 1))


def _summary(d: np.ndarray) -> dict:
    return {"distance": [round(float(v), 4) for v in d], "median": round(float(np.median(d)), 4)}


# --- files ----------------------------------------------------------------------------------------------------------

PROVENANCE_SUFFIX = ".provenance.json"


def provenance_path(out: str | Path) -> Path:
    """``F.mseed`` → ``F.provenance.json`` (as the separation export names its provenance)."""
    out = Path(out)
    return out.with_name(out.stem + PROVENANCE_SUFFIX)


def write_generation(synthesis: Synthesis, out: str | Path, table_path: str | Path | None = None,
                     quality: dict | None = None, overwrite: bool = False) -> tuple[Path, Path]:
    """Write every realisation to ``out`` (miniSEED, atomically) and then its provenance beside it (what cluster,
    the table's sha256, seed, iterations, the quality figures); returns both paths."""
    import json

    from unmix import __version__
    from unmix.atomic import atomic_path, write_stream
    from unmix.errors import OutputExistsError
    from unmix.hashing import file_sha256

    out = Path(out)
    prov = provenance_path(out)
    if not overwrite:
        for p in (out, prov):
            if p.exists():
                raise OutputExistsError("already exists; pass --overwrite to replace it", p)
    stream = Stream([tr for st in synthesis.streams for tr in st])
    with atomic_path(out) as tmp:
        write_stream(stream, tmp, "MSEED")
    record = {"tool": "unmix generate", "version": __version__, "output": out.name,
              "output_sha256": file_sha256(out), "synthetic": True, "network": SYNTHETIC_NETWORK,
              "traces": [tr.id for tr in stream],
              "table": str(table_path) if table_path else None,
              "table_sha256": file_sha256(Path(table_path)) if table_path else None,
              **synthesis.info, "quality": quality}
    with atomic_path(prov) as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=str))
    return out, prov


__all__ = ["DEFAULT_MAX_ITER", "DEFAULT_PRIOR", "DEFAULT_TOL", "INSIDE_PERCENTILE", "DecodedFeatures", "Normaliser",
           "PROVENANCE_SUFFIX",
           "Synthesis", "SynthesisLoss", "decode_cluster", "generation_quality", "mean_spectrum_noise",
           "provenance_path", "read_cluster_snippets", "synthesis_quality", "synthesize", "white_noise",
           "write_generation"]

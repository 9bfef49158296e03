"""Scattering-covariance statistics: a fast, differentiable, batched torch implementation.

Definitions (``W_j x = x * psi_j`` complex, ``W_JQ x = x * phi`` real, ``U_j = |W_j x|``, ``E`` = time average over the
``T`` cropped samples or over blocks of ``P`` samples):

* ``mean = E[x * phi]``, ``spars_j = E U_j``, ``ps_j = E[W_j x_l conj(W_j x_r)]``;
* ``phaseenv(j2, j1) = E[W_j2 x_l conj(W_j2 U_j1 r)]``, ``envelope(jl1, jr1, j2) = E[W_j2 U_jl1 l conj(W_j2 U_jr1 r)]``;
* ``scat(j1, j2) = E|W_j2 U_j1|`` (model ``'scat+cov'``).

Convolutions use the reflection padding ``[x, reverse(x)]`` of length ``N = 2T`` and keep the first ``T`` samples.

Speed: the padded signal is half-sample symmetric, so its spectrum is ``e^{i pi k/N} R[k]`` with ``R`` real (a DCT-II,
computed with one length-``T`` real FFT).  A band-pass output on the ``T`` kept samples is then obtained from the real
product ``R psi`` with one complex FFT of length ``T`` (not ``2T``); low-pass outputs are DCT-IIIs.  Every correlation
family sharing the last wavelet ``j2`` is one Gram matrix ``V V^H`` of the rows ``[W_j2 x, W_j2 U_j1 ...]`` (all
channels), i.e. one batched matmul per ``j2``.  For full-window averages without ``scat``, compactly supported
band-pass outputs are evaluated on a decimated grid and the cropped average is recovered exactly with fixed
quadrature weights (the products are band-limited).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from unmix.errors import ConfigError, DataError
from unmix.scattering.description import CHANNEL_MODES, MODELS, build_description, n_first
from unmix.scattering.filters import WAVELETS, filter_bank

NORMALIZATIONS = (None, "each_ps", "batch_ps")


@dataclass
class _Group:
    j2: int
    n: int
    lowpass: bool
    M: int
    filt: torch.Tensor
    L: int = 0
    weights: torch.Tensor | None = None
    spectral: bool = False


@dataclass
class Plan:
    """Precomputed filters, decimation grids and output indices for one configuration."""

    T: int
    J: int
    Q: int
    wavelet: str
    high_freq: float
    model: str
    n_channels: int
    channel_mode: str
    pool: int | None
    no_mean: bool
    dtype: torch.dtype
    device: torch.device
    decimate: bool = True
    filter_dtype: str = "float64"
    description: np.ndarray = field(init=False, repr=False)
    groups: list[_Group] = field(init=False, repr=False)
    index: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        T, J, Q = self.T, self.J, self.Q
        if self.model not in MODELS:
            raise ConfigError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        if self.channel_mode not in CHANNEL_MODES:
            raise ConfigError(f"unknown channel_mode {self.channel_mode!r}; choose one of {', '.join(CHANNEL_MODES)}")
        if self.wavelet not in WAVELETS:
            raise ConfigError(f"unknown wavelet {self.wavelet!r}; choose one of {', '.join(WAVELETS)}")
        if self.pool is not None and (self.pool < 1 or T % self.pool):
            raise ConfigError(f"pooling size {self.pool} must divide the window length {T}")
        if T < 4:
            raise DataError(f"window of {T} samples is too short")
        JQ = J * Q
        N = 2 * T
        self.nb = 1 if self.pool is None else T // self.pool
        self.P = T if self.pool is None else self.pool
        self.JQ, self.N = JQ, N
        rdt, dev = self.dtype, self.device
        cdt = _complex_of(rdt)
        bank = np.array(filter_bank(N, J, Q, self.wavelet, self.high_freq, self.filter_dtype))
        self.bank_bp = torch.from_numpy(bank[:JQ]).to(dev, rdt)
        self.phi_half = torch.from_numpy(bank[JQ, : T + 1]).to(dev, rdt)
        k = np.arange(T)
        self.tw_pre = torch.from_numpy(np.exp(1j * np.pi * k / T)).to(dev, cdt)
        w = np.exp(1j * np.pi * (2 * k + 1) / N)
        self.alpha = torch.from_numpy((1 - 1j * w) / 4).to(dev, cdt)
        self.beta = torch.from_numpy((1 + 1j * w) / 4).to(dev, cdt)
        if T % 2 == 0:
            h = np.arange(T // 2 + 1)
            self.tw_dct2 = torch.from_numpy(np.exp(-1j * np.pi * h / (2 * T))).to(dev, cdt)
            self.tw_dct3 = torch.from_numpy(np.exp(1j * np.pi * h / (2 * T))).to(dev, cdt)
        else:
            h = np.arange(T + 1)
            self.tw_dct2 = torch.from_numpy(np.exp(-1j * np.pi * h / N)).to(dev, cdt)
            self.tw_dct3 = torch.from_numpy(np.exp(1j * np.pi * h / N)).to(dev, cdt)
        use_dec = self.decimate and self.nb == 1 and self.model == "cov"
        self.groups = []
        for j2 in range(JQ + 1):
            n = n_first(j2, Q)
            if j2 == JQ:
                if use_dec:
                    # even filter on a half-sample-symmetric signal: the output is symmetric too, so its cropped
                    # time average is half the full-period one, i.e. (Parseval) a weighted sum over DCT bins
                    w = bank[JQ, :T] ** 2 / (T * N)
                    w[0] /= 2
                    L = int(np.nonzero(w)[0].max()) + 1
                    self.groups.append(_Group(j2, n, True, L, self.phi_half, L, torch.from_numpy(w[:L]).to(dev, rdt),
                                              spectral=True))
                else:
                    self.groups.append(_Group(j2, n, True, N, self.phi_half))
                continue
            M = _decimation(bank[j2], N) if use_dec else N
            if M == N:
                self.groups.append(_Group(j2, n, False, N, self.bank_bp[j2]))
            else:
                L = int(np.nonzero(bank[j2])[0].max()) + 1
                fd = bank[j2, :L] * np.exp(1j * np.pi * np.arange(L) / N) * (M / N)
                wts = _quadrature_weights(T, M) / T
                self.groups.append(
                    _Group(j2, n, False, M, torch.from_numpy(fd).to(dev, cdt), L, torch.from_numpy(wts).to(dev, rdt))
                )
        self.description = build_description(J, Q, self.model, self.n_channels, self.channel_mode)
        self.index = torch.from_numpy(self._build_index()).to(dev)

    @property
    def n_coefficients(self) -> int:
        return len(self.description)

    def _build_index(self) -> np.ndarray:
        C, JQ = self.n_channels, self.JQ
        off = {"spars": 0, "mean": C * JQ}
        pos = C * JQ + C
        scat_off = {}
        if self.model == "scat+cov":
            for g in self.groups:
                scat_off[g.j2] = pos
                pos += C * g.n
        gram_off = {}
        for g in self.groups:
            gram_off[g.j2] = pos
            pos += (C * (g.n + 1)) ** 2

        def gram(j2: int, cl: int, rl: int, cr: int, rr: int) -> int:
            r = n_first(j2, self.Q) + 1
            return gram_off[j2] + (cl * r + rl) * (C * r) + cr * r + rr

        out = []
        for d in self.description:
            t, nl, nr, jl1, jr1, j2 = d["c_type"], d["nl"], d["nr"], d["jl1"], d["jr1"], d["j2"]
            if t == "spars":
                out.append(off["spars"] + nl * JQ + jl1)
            elif t == "mean":
                out.append(off["mean"] + nl)
            elif t == "scat":
                out.append(scat_off[j2] + nl * n_first(j2, self.Q) + jl1)
            elif t == "ps":
                out.append(gram(jl1, nl, 0, nr, 0))
            elif t == "phaseenv":
                out.append(gram(j2, nl, 0, nr, 1 + jr1))
            else:
                out.append(gram(j2, nl, 1 + jl1, nr, 1 + jr1))
        self.n_pieces = pos
        return np.array(out, dtype=np.int64)


def _complex_of(dtype: torch.dtype) -> torch.dtype:
    return {torch.float32: torch.complex64, torch.float64: torch.complex128}[dtype]


def _decimation(h: np.ndarray, N: int) -> int:
    """Smallest power-of-two grid ``M | N`` on which products of outputs filtered by ``h`` are exactly summable."""
    nz = np.nonzero(h)[0]
    if len(nz) == 0 or nz.max() >= N // 2:
        return N
    a, b = int(nz.min()), int(nz.max())
    M = N
    while M % 2 == 0 and b - a <= M // 4 - 1 and b < M // 2:
        M //= 2
    return M


def _quadrature_weights(T: int, M: int) -> np.ndarray:
    """Weights ``w`` with ``sum_{n<T} p[n] = sum_s w[s] p[s N/M]``.

    Exact for ``2T``-periodic ``p`` whose spectrum vanishes for ``|m| >= M/2``.
    """
    N = 2 * T
    m = np.fft.fftfreq(M, 1.0 / M).astype(np.int64)
    H = np.zeros(M, dtype=np.complex128)
    H[m == 0] = T
    odd = (m % 2) != 0
    H[odd] = 2.0 / (1.0 - np.exp(2j * np.pi * m[odd] / N))
    H[m == -M // 2] = 0.0
    w = np.fft.fft(H) / M
    return w.real.copy()


def dct2(x: torch.Tensor, plan: Plan) -> torch.Tensor:
    """DCT-II ``R[k] = 2 sum_n x[n] cos(pi k (2n+1) / 2T)``, ``k = 0..T``.

    ``R`` is the spectrum of the padded ``[x, reverse(x)]`` without its phase ``e^{i pi k / 2T}``; ``R[T] = 0``.
    """
    T = x.shape[-1]
    if T % 2:
        X = torch.fft.rfft(torch.cat([x, x.flip(-1)], -1))
        return (X * plan.tw_dct2).real
    v = torch.cat([x[..., 0::2], x[..., 1::2].flip(-1)], -1)
    P = torch.fft.rfft(v) * plan.tw_dct2
    zero = x.new_zeros(x.shape[:-1] + (1,))
    return torch.cat([2 * P.real, (-2 * P.imag[..., 1 : T // 2]).flip(-1), zero], -1)


def dct3(c: torch.Tensor, plan: Plan) -> torch.Tensor:
    """DCT-III ``(1/2T)[c0 + 2 sum_{k=1}^{T-1} c_k cos(pi k (2n+1) / 2T)]``, ``n < T`` (``c`` has length ``T+1``).

    This is the kept part of a real, even filter's output (the low-pass).
    """
    T = c.shape[-1] - 1
    if T % 2:
        return torch.fft.irfft(c * plan.tw_dct3, n=2 * T)[..., :T]
    V = plan.tw_dct3 * torch.complex(c[..., : T // 2 + 1], -c[..., T // 2 :].flip(-1))
    v = torch.fft.irfft(V, n=T)
    return 0.5 * torch.stack([v[..., : T // 2], v.flip(-1)[..., : T // 2]], -1).reshape(c.shape[:-1] + (T,))


def antisym_full(R: torch.Tensor) -> torch.Tensor:
    """Extend ``R[0..T]`` to all ``2T`` bins with ``R[2T-k] = -R[k]``."""
    T = R.shape[-1] - 1
    return torch.cat([R, -R[..., 1:T].flip(-1)], -1)


def half_idft(c: torch.Tensor, plan: Plan) -> torch.Tensor:
    """``y[n] = (1/N) sum_{k<N} c[k] e^{i pi k (2n+1)/N}`` for ``n < T`` from real ``c`` (length ``N = 2T``)."""
    T = c.shape[-1] // 2
    z = torch.view_as_complex(c.reshape(c.shape[:-1] + (T, 2)))
    F = torch.fft.ifft(z * plan.tw_pre)
    return (F * plan.alpha).addcmul_(F.flip(-1).conj(), plan.beta)


class _Modulus(torch.autograd.Function):
    """``|z|`` for complex ``z`` (faster than ``abs``); its gradient is 0 where ``z = 0``."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        r = (z.real.square() + z.imag.square()).sqrt()
        ctx.save_for_backward(z, r)
        return r

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        z, r = ctx.saved_tensors
        return z * torch.where(r > 0, g / r, torch.zeros_like(r))


def modulus(z: torch.Tensor) -> torch.Tensor:
    """Modulus of a complex tensor with a zero gradient at ``z = 0``."""
    return _Modulus.apply(z)


def _blocks(V: torch.Tensor, nb: int) -> torch.Tensor:
    """``(B, C, r, T)`` -> ``(B, nb, C*r, P)``."""
    B, C, r, T = V.shape
    if nb == 1:
        return V.reshape(B, 1, C * r, T)
    return V.reshape(B, C, r, nb, T // nb).permute(0, 3, 1, 2, 4).reshape(B, nb, C * r, T // nb)


def _block_mean(U: torch.Tensor, nb: int) -> torch.Tensor:
    """``(B, C, r, T)`` -> ``(B, nb, C*r)``."""
    B, C, r, T = U.shape
    return U.reshape(B, C * r, nb, T // nb).mean(-1).transpose(1, 2)


def layer1(x: torch.Tensor, plan: Plan) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """First layer on ``x`` ``(B, C, T)``.

    Returns ``R`` (DCT-II, ``T+1``), ``W_j x`` ``(B, C, JQ, T)`` complex and ``x * phi`` ``(B, C, T)`` real.
    """
    R = dct2(x, plan)
    A = half_idft(antisym_full(R)[:, :, None, :] * plan.bank_bp, plan)
    lp = dct3(R * plan.phi_half, plan)
    return R, A, lp


def full_rows(plan: Plan) -> int:
    """Second-layer rows ``U_j1`` needed at the full rate (by the band-pass groups that are not decimated)."""
    return max((g.n for g in plan.groups if not g.lowpass and g.M == plan.N), default=0)


def sigma2_of(A: torch.Tensor, lp: torch.Tensor) -> torch.Tensor:
    """Power ``E_t|W_j x|^2`` over the whole window, ``j = 0..JQ`` (low-pass last): ``(B, C, JQ+1)``."""
    return torch.cat([(A.real**2 + A.imag**2).mean(-1), (lp**2).mean(-1)[..., None]], -1)


def compute_statistics(
    x: torch.Tensor, plan: Plan, sigma2: torch.Tensor | None = None, each_ps: bool = False
) -> torch.Tensor:
    """Statistics of ``x`` ``(B, C, T)`` with ``C = plan.n_channels``: complex ``(B, K, nb)``.

    ``sigma2`` ``(B or 1, C, JQ+1)``: divide ``W_j x`` by ``sqrt(sigma2_j)`` before the modulus (None: none);
    ``each_ps=True`` uses each window's own power spectrum instead.
    """
    B, C, T = x.shape
    JQ, nb = plan.JQ, plan.nb
    cdt = _complex_of(x.dtype)
    Rx, A, lp = layer1(x, plan)
    if each_ps:
        sigma2 = sigma2_of(A, lp)
    U = modulus(A)
    if sigma2 is not None:
        inv = sigma2.rsqrt()
        A = A * inv[..., :JQ, None]
        U = U * inv[..., :JQ, None]
        lp = lp * inv[..., JQ, None]
    pieces = [_block_mean(U, nb), _block_mean(lp[:, :, None], nb)]
    U2 = U - U.mean(-1, keepdim=True) if plan.no_mean else U
    RU = dct2(U2, plan)
    RU_full = None
    grams = []
    scats = []
    for g in plan.groups:
        if g.spectral:
            V = torch.cat([Rx[:, :, None, : g.L], RU[:, :, : g.n, : g.L]], 2)
            if sigma2 is not None:
                V = V * torch.cat([inv[..., JQ:], inv.new_ones(inv.shape[:-1] + (g.n,))], -1)[..., None]
        elif g.lowpass:
            Y = dct3(RU * g.filt, plan)
            V = torch.cat([lp[:, :, None], Y], 2)
        elif g.M == plan.N:
            if g.n:
                if RU_full is None:
                    RU_full = antisym_full(RU[:, :, : full_rows(plan)])
                Y = half_idft(RU_full[:, :, : g.n] * g.filt, plan)
                V = torch.cat([A[:, :, g.j2 : g.j2 + 1], Y], 2)
            else:
                Y = None
                V = A[:, :, g.j2 : g.j2 + 1]
        else:
            spec = torch.cat([Rx[:, :, None, : g.L], RU[:, :, : g.n, : g.L]], 2) * g.filt
            V = torch.fft.ifft(spec, n=g.M)
            if sigma2 is not None:
                scale = torch.cat([inv[..., g.j2 : g.j2 + 1], inv.new_ones(inv.shape[:-1] + (g.n,))], -1)
                V = V * scale[..., None]
            Y = None
        if plan.model == "scat+cov" and g.n:
            scats.append(_block_mean(modulus(V[:, :, 1:]) if V.is_complex() else V[:, :, 1:].abs(), nb))
        if g.weights is not None:
            Vf = V.reshape(B, 1, -1, g.M)
            G = (Vf * g.weights) @ Vf.mH
        else:
            Vb = _blocks(V, nb)
            G = (Vb @ Vb.mH) / plan.P if V.is_complex() else (Vb @ Vb.mT) / plan.P
        grams.append(G.reshape(B, nb, -1))
    allp = [p.to(cdt) for p in pieces + scats + grams]
    out = torch.cat(allp, -1).index_select(-1, plan.index)
    return out.transpose(1, 2)


def estimate_bytes_per_window(plan: Plan, requires_grad: bool = False) -> int:
    """Rough peak working memory (bytes) of :func:`compute_statistics` per window (all channels)."""
    c_item = 16 if plan.dtype == torch.float64 else 8
    rows = plan.JQ + 1 + sum(g.n + 1 for g in plan.groups)
    factor = 10 if requires_grad else 4
    return int(plan.n_channels * rows * plan.T * c_item * factor)

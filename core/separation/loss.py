"""The published three-term separation loss in scattering-covariance space, computed fast.

For a mixture ``x``, prior snippets ``n_k`` (``k = 1..R``) and a background estimate ``b`` (``u = x - b`` is the
removed part)::

    L(b) = mean_{k,i} |Phi_i(b) - Phi_i(n_k)|^2 / s_i^2                       (A: background statistics)
         + w_x   mean_{k,i} |Phi_i(x) - Phi_i(u + n_k)|^2 / s'_i^2            (B: mixture consistency)
         + w_ind 1/2 [mean_{k,i} |Psi01_i(u, n_k)|^2 / c01_i^2 + mean |Psi10_i(u, n_k)|^2 / c10_i^2]   (C: independence)

``Phi`` = ``cov`` statistics (one channel), ``Psi`` = cross statistics of the pair ``(u, n_k)`` with the envelope mean
removed (``no_mean``); the weights are standard deviations over ``k``: ``s = std Phi(n_k)``, ``s' = std Phi(x + n_k)``,
``c = std Psi(x, n_k)`` (Bessel-corrected, complex: ``sqrt(sum |z - mean|^2 / (R - 1))``).

Speed (all exact, no approximation):

* everything that depends only on the snippets is computed once: ``Phi(n_k)``, their first-layer transforms and the
  rows ``[W_j2 n_k, W_j2 (|W_j1 n_k| - mean)]`` used by the cross term; ``Phi(x)`` and the weights once per mixture;
* the first layer is linear, so ``W(u + n_k) = W u + W n_k``: one new first-layer transform per evaluation;
* the cross statistics of ``(u, n_k)`` for all ``k`` are the cross-Gram matrices ``V_j2(u) V_j2(n_k)^H`` of one
  transform of ``u`` against the cached snippet rows (one batched matmul per ``j2``), never a 2-channel transform;
* the ``R`` second-layer transforms of term B are batched and chunked to a memory budget; each chunk is
  back-propagated at once, so the autograd graph never holds more than one chunk.

Several independent problems (pieces of a record, components) are evaluated as one batch: problem ``p`` uses the
snippet set ``group[p]``.
"""

from __future__ import annotations

import numpy as np
import torch

from unmix.errors import ConfigError, DataError
from unmix.jobs import NO_CANCEL, CancelToken
from unmix.scattering import ScatteringCovariance, default_budget, resolve_device
from unmix.scattering.transform import Plan, antisym_full, dct2, dct3, full_rows, half_idft, layer1, modulus

DEFAULT_CHUNK_BUDGET = 192 << 20
#: (problem, snippet) pairs of the cross term per chunk, in units of ``chunk`` (a cross pair costs far less than a
#: second-layer transform: about 1/30 of one with its gradient)
CROSS_PAIRS = 30


def _layer2_rows(R: torch.Tensor, A: torch.Tensor, lp: torch.Tensor, plan: Plan, no_mean: bool
                 ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """From first-layer outputs (``(B, 1, T+1)``, ``(B, 1, JQ, T)``, ``(B, 1, T)``) of one-channel signals.

    Returns the order-1 pieces ``[E U_j, E lp]`` ``(B, JQ+1)`` and, per ``j2`` group of the plan, the rows
    ``V = [W_j2 x, W_j2 U_j1 ...]`` ``(B, r, M)`` whose (weighted) Gram matrices give every correlation family.
    """
    U = modulus(A)
    first = torch.cat([U.mean(-1), lp.mean(-1, keepdim=True)], -1)[:, 0]
    U2 = U - U.mean(-1, keepdim=True) if no_mean else U
    RU = dct2(U2, plan)
    RU_full = None
    rows = []
    for g in plan.groups:
        if g.spectral:
            V = torch.cat([R[:, :, None, : g.L], RU[:, :, : g.n, : g.L]], 2)
        elif g.lowpass:
            V = torch.cat([lp[:, :, None], dct3(RU * g.filt, plan)], 2)
        elif g.M == plan.N:
            if g.n:
                if RU_full is None:
                    RU_full = antisym_full(RU[:, :, : full_rows(plan)])
                V = torch.cat([A[:, :, g.j2 : g.j2 + 1], half_idft(RU_full[:, :, : g.n] * g.filt, plan)], 2)
            else:
                V = A[:, :, g.j2 : g.j2 + 1]
        else:
            spec = torch.cat([R[:, :, None, : g.L], RU[:, :, : g.n, : g.L]], 2) * g.filt
            V = torch.fft.ifft(spec, n=g.M)
        rows.append(V.squeeze(1))  # a view: its backward needs no zero-filled copy
    return first, rows


def _gram(plan: Plan, g, Va: torch.Tensor, Vb: torch.Tensor) -> torch.Tensor:
    """Time average ``E[Va_a conj(Vb_b)]`` for all row pairs: ``(..., r, M) x (..., r, M) -> (..., r, r)``."""
    if g.weights is not None:
        return (Va * g.weights) @ Vb.mH
    if Va.is_complex():
        return (Va @ Vb.mH) / plan.T
    return (Va @ Vb.mT) / plan.T


def _cross_index(plan: Plan) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per group, flat indices into the ``r x r`` cross-Gram ``G = E[V(u) V(n)^H]`` of the ``(0,1)`` and ``(1,0)``
    cross coefficients (ps, phaseenv, envelope with ``jr1 <= jl1``); ``(1,0)`` entries are conjugates of ``G``
    entries, which changes neither the loss nor the weights."""
    i01, i10 = [], []
    for g in plan.groups:
        r = g.n + 1
        a01 = [0] + [1 + j1 for j1 in range(g.n)]
        a10 = [0] + [(1 + j1) * r for j1 in range(g.n)]
        for jl in range(g.n):
            for jr in range(jl + 1):
                a01.append((1 + jl) * r + 1 + jr)
                a10.append((1 + jr) * r + 1 + jl)
        i01.append(np.array(a01))
        i10.append(np.array(a10))
    return i01, i10


def _std(z: torch.Tensor, dim: int) -> torch.Tensor:
    """Bessel-corrected standard deviation of (complex) values along ``dim``."""
    d = z - z.mean(dim, keepdim=True)
    sq = d.real.square() + d.imag.square() if d.is_complex() else d.square()
    return (sq.sum(dim) / (z.shape[dim] - 1)).sqrt()


class SeparationLoss:
    """The three-term loss for a batch of independent problems, with its gradient.

    ``mixture``: ``(P, T)`` (or ``(T,)``); ``prior``: ``(G, R, T)`` snippet sets (or ``(R, T)``); ``group``: ``(P,)``
    index of each problem's snippet set (default 0).  ``J``, ``Q``, ``wavelet``, ``high_freq``: the statistics
    (published: 8, 1, Battle-Lemarie, 0.425); ``filter_dtype='float32'`` reproduces the published numbers to
    round-off.  ``x_weight``, ``indep_weight``: the published weights (1, 1).  ``chunk_budget``: bytes of autograd
    working memory per chunk of (problem, snippet) pairs (default 192 MiB on the CPU, a quarter of the free memory
    on a GPU). ``token`` is checked before every chunk of the statistics (prior and mixture side, at construction)
    and of each loss evaluation, so that a cancel is seen within a chunk's time.
    """

    def __init__(
        self,
        mixture,
        prior,
        group=None,
        J: int = 8,
        Q: int = 1,
        wavelet: str = "battle_lemarie",
        high_freq: float = 0.425,
        x_weight: float = 1.0,
        indep_weight: float = 1.0,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "auto",
        filter_dtype: str = "float64",
        chunk_budget: int | None = None,
        eps: float = 1e-30,
        token: CancelToken = NO_CANCEL,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = dtype
        if chunk_budget is None:
            chunk_budget = default_budget(self.device, DEFAULT_CHUNK_BUDGET)
        x = torch.as_tensor(mixture).to(self.device, dtype)
        n = torch.as_tensor(prior).to(self.device, dtype)
        if x.ndim == 1:
            x = x[None]
        if n.ndim == 2:
            n = n[None]
        if x.ndim != 2 or n.ndim != 3:
            raise DataError(f"mixture must be (P, T) and prior (G, R, T); got {tuple(x.shape)} and {tuple(n.shape)}")
        P, T = x.shape
        G, Rn, Tn = n.shape
        if Tn != T:
            raise DataError(f"prior snippets have {Tn} samples, the mixture pieces {T}")
        if Rn < 2:
            raise DataError(f"at least 2 prior snippets are needed (got {Rn}): the weights are standard deviations")
        if not (torch.isfinite(x).all() and torch.isfinite(n).all()):
            raise DataError("mixture or prior snippets contain NaN or infinite values")
        g = torch.zeros(P, dtype=torch.long) if group is None else torch.as_tensor(group, dtype=torch.long).cpu()
        if g.shape != (P,) or (P and (g.min() < 0 or g.max() >= G)):
            raise ConfigError(f"group must hold one snippet-set index in [0, {G}) per problem")
        if x_weight < 0 or indep_weight < 0:
            raise ConfigError("loss weights must be non-negative")
        self.P, self.T, self.G, self.R = P, T, G, Rn
        self.group = g
        self.x_weight, self.indep_weight = float(x_weight), float(indep_weight)
        self.eps = eps
        sc = ScatteringCovariance(J=J, Q=Q, wavelet=wavelet, high_freq=high_freq, model="cov", dtype=dtype,
                                  device=self.device, filter_dtype=filter_dtype)
        self.plan = sc.plan(T)
        self.J, self.Q, self.wavelet, self.high_freq, self.filter_dtype = J, Q, wavelet, high_freq, filter_dtype
        self.index = self.plan.index
        self.i01, self.i10 = _cross_index(self.plan)
        self.i01 = [torch.as_tensor(i, device=self.device) for i in self.i01]
        self.i10 = [torch.as_tensor(i, device=self.device) for i in self.i10]
        self.K = int(self.index.numel())
        self.K_cross = int(sum(len(i) for i in self.i01))
        cplx = torch.complex128 if dtype == torch.float64 else torch.complex64
        per_pair = sum((gr.n + 1) * gr.M for gr in self.plan.groups) + 3 * (J * Q + 2) * T
        self.chunk = max(1, int(chunk_budget // (per_pair * torch.empty((), dtype=cplx).element_size() * 6)))
        self.x = x
        self.token = token
        with torch.no_grad():
            self._prior_side(n)
            self._mixture_side(x)

    def _prior_side(self, n: torch.Tensor) -> None:
        """Snippet-side quantities ``n`` ``(G, R, T)``: statistics, first layer, centred second-layer rows (cross
        term)."""
        G, Rn, T = n.shape
        flat = n.reshape(G * Rn, 1, T)
        l1, phi, rows = [], [], []
        step = 2 * self.chunk  # no graph: about half the memory per transform
        for i in range(0, G * Rn, step):
            self.token.check()
            part = layer1(flat[i : i + step], self.plan)  # row by row: the same values as one call on all
            l1.append(part)
            phi.append(self._stats_from_l1(*part))
            rows.append(_layer2_rows(*part, self.plan, no_mean=True)[1])
        self.prior_l1 = tuple(torch.cat(t).reshape(G, Rn, *t[0].shape[1:]) for t in zip(*l1, strict=True))
        self.phi_prior = torch.cat(phi).reshape(G, Rn, -1)
        self.s = _std(self.phi_prior, 1)
        self.prior_rows = [torch.cat(r).reshape(G, Rn, *r[0].shape[1:]) for r in zip(*rows, strict=True)]

    def _mixture_side(self, x: torch.Tensor) -> None:
        """Mixture-side quantities of ``x`` ``(P, T)``, problem by problem chunk."""
        phi_x, s_x, c01, c10 = [], [], [], []
        for sel in self._problem_chunks(torch.arange(x.shape[0])):
            self.token.check()
            phi_x.append(self.phi(x[sel]))
            xl1 = layer1(x[sel][:, None], self.plan)
            s_x.append(torch.stack([self._pair_std(l1) for l1 in self._pair_l1(xl1, sel)]))
            _, xrows = _layer2_rows(*xl1, self.plan, no_mean=True)
            a, b = self._cross(xrows, sel)
            c01.append(_std(a, 1))
            c10.append(_std(b, 1))
        self.phi_x, self.s_x = torch.cat(phi_x), torch.cat(s_x)
        self.c01, self.c10 = torch.cat(c01), torch.cat(c10)

    def _pair_std(self, l1: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Standard deviation over the snippets of the statistics of ``u + n_k`` from their first layers ``l1``
        (``R`` rows), in chunks of snippets (one problem's statistics of all its pairs take seconds with a long
        prior)."""
        step = 2 * self.chunk
        phi = []
        for i in range(0, l1[0].shape[0], step):
            self.token.check()
            phi.append(self._stats_from_l1(*(t[i : i + step] for t in l1)))
        return _std(torch.cat(phi), 0)

    # ------------------------------------------------------------------ statistics

    def _stats_from_l1(self, R: torch.Tensor, A: torch.Tensor, lp: torch.Tensor) -> torch.Tensor:
        """``cov`` statistics ``(B, K)`` (published order) from first-layer outputs."""
        first, rows = _layer2_rows(R, A, lp, self.plan, no_mean=False)
        cdt = torch.complex128 if self.dtype == torch.float64 else torch.complex64
        grams = [_gram(self.plan, g, V, V).reshape(V.shape[0], -1) for g, V in zip(self.plan.groups, rows, strict=True)]
        return torch.cat([p.to(cdt) for p in [first] + grams], -1).index_select(-1, self.index)

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        """``cov`` statistics of one-channel signals ``(B, T)`` -> ``(B, K)`` complex."""
        return self._stats_from_l1(*layer1(x[:, None], self.plan))

    def _problem_chunks(self, problems: torch.Tensor) -> list[torch.Tensor]:
        """Problems in chunks of about ``chunk / 2`` (two transforms with gradient per problem for terms A, C), and
        of at most ``CROSS_PAIRS × chunk`` (problem, snippet) pairs of the cross term C (with a long prior, 16
        problems' cross terms took seconds: a cancel waited for them)."""
        n = max(1, min(self.chunk // 2, CROSS_PAIRS * self.chunk // self.R))
        return [problems[i : i + n] for i in range(0, len(problems), n)]

    def _pair_l1(self, ul1, problems: torch.Tensor):
        """For each problem, first-layer outputs of ``u_p + n_k`` for all its snippets (linearity)."""
        for i, p in enumerate(problems.tolist()):
            gi = int(self.group[p])
            yield tuple(a[i : i + 1] + b[gi] for a, b in zip(ul1, self.prior_l1, strict=True))

    def _cross(self, urows: list[torch.Tensor], problems: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross coefficients ``(0,1)`` and ``(1,0)`` of ``(u_p, n_k)``: two ``(len(problems), R, K_cross)``.

        One matrix product per ``j2`` group and snippet set, ``(p r, M) x (M, R r)``: nothing broadcast or gathered."""
        cdt = torch.complex128 if self.dtype == torch.float64 else torch.complex64
        gsel = self.group[problems]
        sets = torch.unique(gsel).tolist()
        out01 = out10 = None
        for gi in sets:
            mask = (gsel == gi).nonzero()[:, 0].to(self.device)
            p01, p10 = [], []
            for g, Vu, Vn, i01, i10 in zip(self.plan.groups, urows, self.prior_rows, self.i01, self.i10, strict=True):
                Va = Vu[mask] * g.weights if g.weights is not None else Vu[mask] / self.plan.T
                Gm = torch.einsum("prm,kqm->pkrq", Va, Vn[gi].conj() if Vn.is_complex() else Vn[gi])
                flat = Gm.reshape(*Gm.shape[:2], -1)
                p01.append(flat.index_select(-1, i01).to(cdt))
                p10.append(flat.index_select(-1, i10).to(cdt))
            a, b = torch.cat(p01, -1), torch.cat(p10, -1)
            if len(sets) == 1:
                return a, b
            if out01 is None:
                out01 = a.new_empty(len(problems), *a.shape[1:])
                out10 = torch.empty_like(out01)
            out01[mask], out10[mask] = a, b
        return out01, out10

    # ------------------------------------------------------------------ loss

    @staticmethod
    def _wmse(z: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
        """``mean_{k,i} |z|^2 / w^2`` per problem; ``z`` ``(p, R, K)``, ``w`` ``(p, K)``."""
        return ((z.real.square() + z.imag.square()) / (w.square() + eps)[:, None]).mean((1, 2))

    def terms(self, background: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three terms per problem (differentiable, no chunking: for small problems and tests)."""
        b = torch.as_tensor(background).to(self.device, self.dtype)
        b = b[None] if b.ndim == 1 else b
        u = self.x - b
        allp = torch.arange(self.P)
        g = self.group.to(self.device)
        A = self._wmse(self.phi(b)[:, None] - self.phi_prior[g], self.s[g], self.eps)
        ul1 = layer1(u[:, None], self.plan)
        phi_un = torch.stack([self._stats_from_l1(*l1) for l1 in self._pair_l1(ul1, allp)])
        B = self._wmse(self.phi_x[:, None] - phi_un, self.s_x, self.eps)
        _, urows = _layer2_rows(*ul1, self.plan, no_mean=True)
        c01, c10 = self._cross(urows, allp)
        C = 0.5 * (self._wmse(c01, self.c01, self.eps) + self._wmse(c10, self.c10, self.eps))
        return {"background": A, "mixture": B, "independence": C,
                "total": A + self.x_weight * B + self.indep_weight * C}

    def __call__(self, background) -> torch.Tensor:
        return self.terms(background)["total"]

    def loss_and_grad(self, background: torch.Tensor, problems: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss per problem ``(p,)`` and its gradient ``(p, T)`` with respect to the background estimate.

        ``background`` ``(p, T)`` holds the estimates of ``problems`` (default: all, in order).  Memory is bounded
        by chunking the (problem, snippet) pairs of the mixture term and back-propagating chunk by chunk.
        """
        problems = torch.arange(self.P) if problems is None else torch.as_tensor(problems, dtype=torch.long).cpu()
        b = torch.as_tensor(background).detach().to(self.device, self.dtype).reshape(len(problems), self.T)
        b.requires_grad_(True)
        loss = torch.zeros(len(problems), dtype=self.dtype, device=self.device)
        with torch.enable_grad():
            for sel in self._problem_chunks(torch.arange(len(problems))):
                self.token.check()
                ps = problems[sel]
                bs = b[sel.to(self.device)]
                pd, g = ps.to(self.device), self.group[ps].to(self.device)
                A = self._wmse(self.phi(bs)[:, None] - self.phi_prior[g], self.s[g], self.eps)
                _, urows = _layer2_rows(*layer1((self.x[pd] - bs)[:, None], self.plan), self.plan, no_mean=True)
                c01, c10 = self._cross(urows, ps)
                C = 0.5 * (self._wmse(c01, self.c01[pd], self.eps) + self._wmse(c10, self.c10[pd], self.eps))
                total = A + self.indep_weight * C
                total.sum().backward()
                loss[sel.to(self.device)] = total.detach()
            if self.x_weight:
                loss += self.x_weight * self._mixture_term_backward(b, problems)
        return loss, b.grad.detach()

    def _mixture_term_backward(self, b: torch.Tensor, problems: torch.Tensor) -> torch.Tensor:
        """Term B per problem; accumulates ``x_weight * dB/db`` into ``b.grad`` chunk by chunk of (problem, snippet)
        pairs, so that the autograd graph never holds more than one chunk.  A chunk is a list of segments
        ``(problem, k0, k1)``; the snippets' first layers are sliced, never gathered."""
        p, R, dev = len(problems), self.R, self.device
        out = torch.zeros(p, dtype=self.dtype, device=dev)
        segments = [(i, k0, min(k0 + self.chunk, R)) for i in range(p) for k0 in range(0, R, self.chunk)]
        chunks: list[list[tuple[int, int, int]]] = [[]]
        filled = 0
        for seg in segments:
            if filled + seg[2] - seg[1] > self.chunk and chunks[-1]:
                chunks.append([])
                filled = 0
            chunks[-1].append(seg)
            filled += seg[2] - seg[1]
        norm = 1.0 / (R * self.K)
        for chunk in chunks:
            self.token.check()
            owners = sorted({i for i, _, _ in chunk})
            pos = {i: j for j, i in enumerate(owners)}
            sel = torch.as_tensor(owners, device=dev)
            pids = problems[owners].tolist()
            ul1 = layer1((self.x[problems[owners].to(dev)] - b[sel])[:, None], self.plan)
            parts = [[a[pos[i] : pos[i] + 1] + c[int(self.group[pids[pos[i]]]), k0:k1]
                      for i, k0, k1 in chunk] for a, c in zip(ul1, self.prior_l1, strict=True)]
            phi = self._stats_from_l1(*(q[0] if len(q) == 1 else torch.cat(q) for q in parts))
            terms, off = [], 0
            for i, k0, k1 in chunk:
                pid = pids[pos[i]]
                d = self.phi_x[pid] - phi[off : off + k1 - k0]
                off += k1 - k0
                terms.append(((d.real.square() + d.imag.square()) / (self.s_x[pid].square() + self.eps)).sum() * norm)
            t = torch.stack(terms)
            (self.x_weight * t).sum().backward()
            out.index_add_(0, torch.as_tensor([i for i, _, _ in chunk], device=dev), t.detach())
        return out

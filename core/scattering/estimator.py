"""The scattering-covariance estimator: :class:`ScatteringCovariance`, a scikit-learn-like transform over the
filter bank (:mod:`.filters`), the kernel plan and statistics (:mod:`.transform`) and the coefficient description
(:mod:`.description`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from unmix.devices import resolve_device
from unmix.errors import ConfigError, DataError
from unmix.scattering.description import (
    CHANNEL_MODES,
    MODELS,
    build_description,
    count_coefficients,
)
from unmix.scattering.multiscale import DEFAULT_SCALES, base_block, pyramid
from unmix.scattering.transform import (
    NORMALIZATIONS,
    Plan,
    compute_statistics,
    estimate_bytes_per_window,
    layer1,
    sigma2_of,
)

DEFAULT_MEMORY_BUDGET = 1 << 30


def default_budget(device: torch.device, cpu_bytes: int) -> int:
    """Working-memory budget: ``cpu_bytes`` on the CPU; on a GPU a quarter of its free memory (fewer, larger
    batches are what make a GPU fast), never less than ``cpu_bytes``."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(cpu_bytes, free // 4)
    return cpu_bytes


class ScatteringCovariance:
    """Scikit-learn-like scattering-covariance transform (J, Q wavelets on both layers, reflection padding).

    ``model``: ``'cov'`` (mean, spars, ps, phaseenv, envelope; 174 coefficients for J=8, Q=1) or ``'scat+cov'``
    (adds ``scat``; 210).  ``channel_mode='diag'`` treats channels independently; ``'offdiag'`` (or
    ``cross=True``) / ``'full'`` compute cross-channel correlations of ``n_channels`` channels together (one output
    row).  ``no_mean`` removes the envelope mean before layer 2 (the separation's independence term).
    ``normalize``: None, ``'each_ps'`` (each window/channel by its own power spectrum) or ``'batch_ps'`` (power
    spectrum averaged over the batch, or the one stored by :meth:`fit`).  ``pooling=P``: local averages over
    non-overlapping blocks of ``P`` samples instead of the full window.  ``filter_dtype='float32'`` rounds filters
    like the published code (bit-level reproduction of its float64 outputs).  Batches are processed in chunks that
    fit ``memory_budget`` bytes (without autograd; with a graph, memory grows with the batch; default 1 GiB on the
    CPU, a quarter of the free memory on a GPU).
    """

    def __init__(
        self,
        J: int = 8,
        Q: int = 1,
        wavelet: str = "battle_lemarie",
        high_freq: float = 0.425,
        model: str = "scat+cov",
        normalize: str | None = None,
        pooling: int | None = None,
        channel_mode: str = "diag",
        cross: bool = False,
        n_channels: int = 2,
        no_mean: bool = False,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "auto",
        memory_budget: int | None = None,
        filter_dtype: str = "float64",
        decimate: bool = True,
    ) -> None:
        if cross:
            channel_mode = "offdiag"
        if model not in MODELS:
            raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
        if channel_mode not in CHANNEL_MODES:
            raise ConfigError(f"unknown channel_mode {channel_mode!r}; choose one of {', '.join(CHANNEL_MODES)}")
        if normalize not in NORMALIZATIONS:
            raise ConfigError(f"normalize must be None, 'each_ps' or 'batch_ps', got {normalize!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if memory_budget is not None and memory_budget <= 0:
            raise ConfigError("memory_budget must be positive")
        self.J, self.Q, self.wavelet, self.high_freq = int(J), int(Q), wavelet, float(high_freq)
        self.model, self.normalize, self.pooling = model, normalize, pooling
        self.channel_mode = channel_mode
        self.n_channels = 1 if channel_mode == "diag" else int(n_channels)
        self.no_mean, self.dtype, self.device = bool(no_mean), dtype, resolve_device(device)
        if memory_budget is None:
            memory_budget = default_budget(self.device, DEFAULT_MEMORY_BUDGET)
        self.memory_budget, self.filter_dtype, self.decimate = int(memory_budget), filter_dtype, bool(decimate)
        self.sigma2_: torch.Tensor | None = None
        self._plans: dict[int, Plan] = {}

    @property
    def cross(self) -> bool:
        return self.channel_mode != "diag"

    @property
    def description(self) -> np.ndarray:
        """Structured array (c_type, nl, nr, jl1, jr1, j2, real, low), one row per output coefficient."""
        return build_description(self.J, self.Q, self.model, self.n_channels, self.channel_mode)

    @property
    def n_coefficients(self) -> int:
        return count_coefficients(self.J, self.Q, self.model, self.n_channels, self.channel_mode)

    def get_params(self) -> dict[str, Any]:
        keys = (
            "J",
            "Q",
            "wavelet",
            "high_freq",
            "model",
            "normalize",
            "pooling",
            "channel_mode",
            "n_channels",
            "no_mean",
            "dtype",
            "device",
            "memory_budget",
            "filter_dtype",
            "decimate",
        )
        return {k: getattr(self, k) for k in keys}

    def plan(self, T: int, pooling: int | None = None) -> Plan:
        """The cached :class:`Plan` (filters, grids, indices) for windows of ``T`` samples."""
        p = self._plans.get((T, pooling))
        if p is None:
            p = Plan(
                T,
                self.J,
                self.Q,
                self.wavelet,
                self.high_freq,
                self.model,
                self.n_channels,
                self.channel_mode,
                pooling,
                self.no_mean,
                self.dtype,
                self.device,
                self.decimate,
                self.filter_dtype,
            )
            self._plans[(T, pooling)] = p
        return p

    def _as_tensor(self, x: Any) -> torch.Tensor:
        t = torch.as_tensor(x)
        if t.is_complex():
            raise DataError("scattering covariance expects real signals")
        t = t.to(device=self.device, dtype=self.dtype)
        if t.ndim == 1:
            t = t[None, None]
        elif t.ndim == 2:
            t = t[:, None] if not self.cross else t[None]
        if t.ndim != 3:
            raise DataError(f"expected signals of shape (B, C, T), (B, T) or (T,), got {tuple(t.shape)}")
        if self.cross and t.shape[1] != self.n_channels:
            raise DataError(f"cross statistics were set up for {self.n_channels} channels, got {t.shape[1]}")
        if not torch.isfinite(t).all():
            raise DataError("signals contain NaN or infinite values")
        return t

    def _chunk(self, plan: Plan, requires_grad: bool) -> int:
        per = estimate_bytes_per_window(plan, requires_grad)
        return max(1, self.memory_budget // per)

    def _rows(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, 1, x.shape[-1]) if not self.cross else x

    def power_spectrum(self, x: Any) -> torch.Tensor:
        """Per-window power ``E_t|W_j x|^2``, ``j = 0..JQ`` (low-pass last): ``(B, C, JQ+1)`` real."""
        t = self._as_tensor(x)
        rows = self._rows(t)
        plan = self.plan(t.shape[-1])
        n = self._chunk(plan, rows.requires_grad)
        out = []
        for i in range(0, rows.shape[0], n):
            _, A, lp = layer1(rows[i : i + n], plan)
            out.append(sigma2_of(A, lp))
        s2 = torch.cat(out)
        return s2.reshape(t.shape[0], -1, s2.shape[-1]) if not self.cross else s2

    def fit(self, x: Any, y: Any = None) -> ScatteringCovariance:
        """Store the batch-averaged power spectrum used by ``normalize='batch_ps'``."""
        s2 = self.power_spectrum(x).detach()
        self.sigma2_ = s2.mean(0, keepdim=True)
        return self

    def transform(self, x: Any) -> torch.Tensor:
        """Statistics of ``x`` (numpy or torch; ``(B, C, T)``, ``(B, T)`` or ``(T,)``).

        Returns a complex tensor ``(B, C, K)`` (``(B, 1, K)`` for cross modes) or ``(B, C, K, T // pooling)``.
        Differentiable with respect to a torch ``x`` that requires grad.
        """
        y = self._transform(self._as_tensor(x), self.pooling)
        return y if self.pooling is not None else y[..., 0]

    def _transform(self, t: torch.Tensor, pooling: int | None) -> torch.Tensor:
        B, C, T = t.shape
        plan = self.plan(T, pooling)
        rows = self._rows(t)
        sig = None
        if self.normalize == "batch_ps":
            sig = self.sigma2_ if self.sigma2_ is not None else self.power_spectrum(t).mean(0, keepdim=True)
            sig = sig.to(self.device, self.dtype)
            if not self.cross:
                if sig.shape[1] not in (1, C):
                    raise DataError(f"fitted power spectrum has {sig.shape[1]} channels, data have {C}")
                sig = sig.expand(B, C, -1).reshape(B * C, 1, -1)
        n = self._chunk(plan, rows.requires_grad)
        outs = []
        for i in range(0, rows.shape[0], n):
            s = None if sig is None else sig[i : i + n] if sig.shape[0] > 1 else sig
            outs.append(compute_statistics(rows[i : i + n], plan, s, each_ps=self.normalize == "each_ps"))
        y = torch.cat(outs)
        return y.reshape(B, -1, *y.shape[1:])

    def fit_transform(self, x: Any, y: Any = None) -> torch.Tensor:
        return self.fit(x).transform(x)

    def transform_pyramid(
        self, x: Any, scales: tuple[int, ...] | list[int] = DEFAULT_SCALES, keep: str = "last"
    ) -> dict[int, torch.Tensor]:
        """Statistics of the last (or centred) ``scale`` samples of each window, for every scale, in one pass."""
        t = self._as_tensor(x)
        block = base_block(t.shape[-1], scales, keep)
        return pyramid(self._transform(t, block), scales, block, keep)


__all__ = ["DEFAULT_MEMORY_BUDGET", "ScatteringCovariance", "default_budget"]

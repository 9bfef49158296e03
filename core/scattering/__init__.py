"""Scattering covariance ("scattering spectra") of seismic windows: filters, statistics, pyramid, benchmark.

Typical use::

    sc = ScatteringCovariance(J=8, Q=1, model="scat+cov", normalize="each_ps", pooling=512)
    y = sc.transform(x)                      # (B, C, K, T // 512) complex
    feats = pyramid(y, DEFAULT_SCALES, block=512, keep="last")

See ``docs/scattering.md`` for definitions, coefficient order and speed tricks.
"""

from __future__ import annotations

import importlib
from typing import Any

from unmix.scattering.description import (
    CHANNEL_MODES,
    DESCRIPTION_DTYPE,
    MODELS,
    build_description,
    count_coefficients,
)

#: Names of the torch-based parts, imported on first use so that what only needs the coefficient description (a
#: feature store's reader, the client of a Dask run) does not pay for importing torch.
_LAZY = {
    "ScatteringCovariance": "unmix.scattering.estimator",
    "default_budget": "unmix.scattering.estimator",
    "DEFAULT_MEMORY_BUDGET": "unmix.scattering.estimator",
    "BL_XI0": "unmix.scattering.filters",
    "centre_frequencies": "unmix.scattering.filters",
    "filter_bank": "unmix.scattering.filters",
    "filter_bank_torch": "unmix.scattering.filters",
    "DEFAULT_SCALES": "unmix.scattering.multiscale",
    "base_block": "unmix.scattering.multiscale",
    "pyramid": "unmix.scattering.multiscale",
    "NORMALIZATIONS": "unmix.scattering.transform",
    "Plan": "unmix.scattering.transform",
    "compute_statistics": "unmix.scattering.transform",
    "estimate_bytes_per_window": "unmix.scattering.transform",
    "layer1": "unmix.scattering.transform",
    "sigma2_of": "unmix.scattering.transform",
    "resolve_device": "unmix.devices",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'unmix.scattering' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "BL_XI0",
    "CHANNEL_MODES",
    "MODELS",
    "DEFAULT_SCALES",
    "DESCRIPTION_DTYPE",
    "ScatteringCovariance",
    "base_block",
    "build_description",
    "centre_frequencies",
    "compute_statistics",
    "count_coefficients",
    "filter_bank",
    "filter_bank_torch",
    "pyramid",
    "default_budget",
    "resolve_device",
]

"""Where computations run: one rule for ``device='auto'`` everywhere (features, training, separation, generation)."""

from __future__ import annotations

import torch

from unmix.errors import ConfigError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``'auto'`` is CUDA when PyTorch sees a GPU, else the CPU; asking for CUDA without one is one clear error
    (instead of a PyTorch traceback at the first tensor)."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but PyTorch sees no GPU; use --device cpu or auto")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda") from None


__all__ = ["resolve_device"]

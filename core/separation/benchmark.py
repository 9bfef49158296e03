"""Speed of one loss-and-gradient evaluation of the separation (``unmix bench separation-speed``).

Reference point: the published srcsep code needs 16–24 s and 7.2 GB peak RSS for one evaluation with R = 100 prior
snippets, T = 2048, J = 8, float64, on the project's 2-core machine
(``shared/docs/reference/scattering-covariance-and-srcsep.md`` §5).
"""

from __future__ import annotations

import gc
import statistics
import time
from typing import Any

import numpy as np
import torch

from unmix.allocator import release_memory, tune_allocator
from unmix.scattering import resolve_device
from unmix.scattering.benchmark import _PeakRSS
from unmix.separation.loss import SeparationLoss

PUBLISHED_SECONDS = (16.0, 24.0)
PUBLISHED_PEAK_GB = 7.2


def benchmark_separation_speed(
    R: int = 100,
    T: int = 2048,
    J: int = 8,
    dtype: str = "float64",
    device: str = "cpu",
    repeats: int = 5,
    chunk_budget: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Median seconds per loss-and-gradient evaluation (after one warm-up), set-up time and peak memory.

    The inputs are white-noise snippets and a mixture with a few steps (values do not change the cost).  CPU memory
    is the process's peak resident set size (sampled) and its rise during the benchmark; CUDA memory is the peak
    allocated by PyTorch.
    """
    dev = resolve_device(device)
    dt = {"float64": torch.float64, "float32": torch.float32}[dtype]
    rng = np.random.default_rng(seed)
    prior = rng.standard_normal((R, T))
    x = rng.standard_normal(T) + np.repeat(rng.standard_normal(8), T // 8)
    tune_allocator()
    gc.collect()
    release_memory()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with _PeakRSS() as mem:
        t0 = time.perf_counter()
        loss = SeparationLoss(x, prior, J=J, dtype=dt, device=dev, chunk_budget=chunk_budget)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        setup = time.perf_counter() - t0
        b = torch.as_tensor(x - 0.1 * rng.standard_normal(T))[None]
        times = []
        for i in range(repeats + 1):
            t = time.perf_counter()
            value, grad = loss.loss_and_grad(b)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if i:
                times.append(time.perf_counter() - t)
    med = statistics.median(times)
    out = {
        "R": R, "T": T, "J": J, "dtype": dtype, "device": str(dev), "repeats": repeats,
        "setup_s": setup, "eval_s": med, "eval_s_min": min(times), "eval_s_max": max(times),
        "speedup_vs_published": (PUBLISHED_SECONDS[0] / med, PUBLISHED_SECONDS[1] / med),
        "peak_rss_gb": mem.peak / 2**30, "rss_rise_gb": (mem.peak - mem.baseline) / 2**30,
        "torch_threads": torch.get_num_threads(), "loss": float(value.sum()),
    }
    if dev.type == "cuda":
        out["cuda_peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
        out["gpu"] = torch.cuda.get_device_name()
    return out


def format_result(r: dict[str, Any]) -> str:
    """One line of the benchmark table."""
    lo, hi = r["speedup_vs_published"]
    mem = f"peak RSS {r['peak_rss_gb']:.2f} GB (rise {r['rss_rise_gb']:.2f} GB)"
    if "cuda_peak_gb" in r:
        mem += f", CUDA peak {r['cuda_peak_gb']:.2f} GB"
    return (f"{r['device']:>5} {r['dtype']}: R={r['R']} T={r['T']} J={r['J']}: {r['eval_s']:.3f} s per evaluation "
            f"(min {r['eval_s_min']:.3f}, max {r['eval_s_max']:.3f}; set-up {r['setup_s']:.2f} s), {mem}; "
            f"{lo:.0f}x - {hi:.0f}x faster than the published 16-24 s")

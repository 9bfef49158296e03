"""Throughput benchmark of the scattering-covariance engine (``python3 -m unmix.scattering.benchmark``).

Reference point: the published srcsep code needs 0.34 s for 32 windows of 2 048 samples (J=8, Q=1, ``cov``, float64,
2 CPU cores), i.e. about 94 windows/s.
"""

from __future__ import annotations

import argparse
import gc
import os
import threading
import time
from typing import Any

import torch

from unmix.allocator import release_memory, tune_allocator
from unmix.scattering import DEFAULT_SCALES, ScatteringCovariance, resolve_device

PUBLISHED_SECONDS_PER_32 = 0.34
PUBLISHED_WINDOWS_PER_S = 32 / PUBLISHED_SECONDS_PER_32

STANDARD_CONFIGS: list[dict[str, Any]] = [
    {"name": "cov T=2048 float64", "T": 2048, "batch": 32, "model": "cov", "dtype": "float64"},
    {"name": "cov T=2048 float32", "T": 2048, "batch": 32, "model": "cov", "dtype": "float32"},
    {
        "name": "cov T=2048 float64 fwd+bwd",
        "T": 2048,
        "batch": 32,
        "model": "cov",
        "dtype": "float64",
        "backward": True,
    },
    {
        "name": "scat+cov pyramid T=65536 float32",
        "T": 65536,
        "batch": 8,
        "model": "scat+cov",
        "dtype": "float32",
        "pyramid": DEFAULT_SCALES,
        "normalize": "each_ps",
    },
]


class _PeakRSS:
    """Samples the process resident set size in a thread (CPU peak memory of torch is invisible to tracemalloc)."""

    def __init__(self, interval: float = 0.002) -> None:
        import psutil

        self._proc = psutil.Process(os.getpid())
        self._interval = interval
        self._stop = threading.Event()
        self.baseline = self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self._interval)

    def sample(self) -> int:
        """Take one more reading now (after the sampling thread stopped) and return the peak."""
        self.peak = max(self.peak, self._proc.memory_info().rss)
        return self.peak

    def __enter__(self) -> _PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def _run_once(sc: ScatteringCovariance, x: torch.Tensor, cfg: dict[str, Any]) -> None:
    if cfg.get("backward"):
        xg = x.detach().requires_grad_(True)
        sc.transform(xg).abs().sum().backward()
    elif cfg.get("pyramid"):
        sc.transform_pyramid(x, scales=cfg["pyramid"], keep="last")
    else:
        with torch.no_grad():
            sc.transform(x)
    if x.device.type == "cuda":
        torch.cuda.synchronize()


def benchmark_config(cfg: dict[str, Any], device: str = "cpu", repeats: int = 5) -> dict[str, Any]:
    """Time one configuration (median of ``repeats`` runs after a warm-up); peak memory from one extra run.

    Returns windows/s, seconds per batch, peak memory (CUDA: ``max_memory_allocated``; CPU: peak RSS increase,
    sampled in a thread) and the speed-up over the published code where comparable (T=2048 forward).
    """
    dev = resolve_device(device)
    dtype = torch.float64 if cfg.get("dtype", "float32") == "float64" else torch.float32
    sc = ScatteringCovariance(
        J=cfg.get("J", 8),
        Q=cfg.get("Q", 1),
        model=cfg.get("model", "cov"),
        normalize=cfg.get("normalize"),
        dtype=dtype,
        device=dev,
    )
    T, B = int(cfg["T"]), int(cfg["batch"])
    x = torch.randn(B, 1, T, dtype=dtype, generator=torch.Generator().manual_seed(0)).to(dev)
    gc.collect()
    release_memory()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    # freed memory stays with the process (unmix.allocator), so the RSS rise is measured from before the first run
    with _PeakRSS() as rss:
        for _ in range(3):
            _run_once(sc, x, cfg)
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        _run_once(sc, x, cfg)
        times.append(time.perf_counter() - t0)
    t = sorted(times)[len(times) // 2]
    peak = torch.cuda.max_memory_allocated(dev) - base if dev.type == "cuda" else rss.sample() - rss.baseline
    wps = B / t
    comparable = T == 2048 and not cfg.get("backward")
    return {
        "name": cfg.get("name", ""),
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "T": T,
        "batch": B,
        "n_coefficients": sc.n_coefficients,
        "seconds_per_batch": t,
        "seconds_per_32x2048": t * 32 / B * T / 2048,
        "windows_per_s": wps,
        "peak_memory_mb": peak / 2**20,
        "speedup_vs_published": wps / PUBLISHED_WINDOWS_PER_S if comparable else None,
    }


def benchmark_scattering(
    configs: list[dict[str, Any]] | None = None, device: str = "cpu", repeats: int = 5, verbose: bool = True
) -> list[dict[str, Any]]:
    """Benchmark the standard (or given) configurations; prints a table when ``verbose``."""
    tune_allocator()
    results = [benchmark_config(c, device, repeats) for c in (configs or STANDARD_CONFIGS)]
    if verbose:
        print(format_table(results))
    return results


def format_table(results: list[dict[str, Any]]) -> str:
    """Plain-text table of benchmark results."""
    head = (
        f"{'config':36s} {'device':6s} {'win/s':>9s} {'s/batch':>9s} {'s/32x2048':>10s} {'peak MB':>8s} "
        f"{'speed-up':>9s}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        sp = "-" if r["speedup_vs_published"] is None else f"{r['speedup_vs_published']:.1f}x"
        lines.append(
            f"{r['name']:36s} {r['device']:6s} {r['windows_per_s']:9.1f} {r['seconds_per_batch']:9.4f} "
            f"{r['seconds_per_32x2048']:10.4f} {r['peak_memory_mb']:8.1f} {sp:>9s}"
        )
    lines.append(
        f"published srcsep code: {PUBLISHED_SECONDS_PER_32} s per 32x2048 (float64, 2 cores) = "
        f"{PUBLISHED_WINDOWS_PER_S:.0f} windows/s"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    benchmark_scattering(device=args.device, repeats=args.repeats)


if __name__ == "__main__":
    main()

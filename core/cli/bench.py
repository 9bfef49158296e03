"""``unmix bench ...``: benchmarks that print measured figures."""

from __future__ import annotations

import json
from pathlib import Path

import click

from core.cli import main


@main.group("bench")
def bench() -> None:
    """Benchmarks that print measured figures (recorded in docs/performance.md)."""


@bench.command("scattering")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "all"]), default="all", show_default=True,
              help="'all' measures CPU, and CUDA when present")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the results as JSON")
def bench_scattering(device, repeats, json_out):
    """Windows/s and peak memory of the scattering engine for the standard configurations, with the speed-up over
    the published code (0.34 s per 32 windows of 2048 samples, J=8, float64, 2 CPU cores)."""
    import platform

    import torch

    from core.atomic import atomic_path
    from core.scattering.benchmark import benchmark_scattering

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if device == "all" else [device]
    click.echo(f"machine: {platform.node()} {platform.machine()}, {torch.get_num_threads()} torch threads, "
               f"torch {torch.__version__}" + (f", GPU {torch.cuda.get_device_name()}" if "cuda" in devices else ""))
    results = []
    for d in devices:
        results += benchmark_scattering(device=d, repeats=repeats, verbose=True)
    if json_out:
        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps(results, indent=1, default=str))

"""``unmix bench ...``: benchmarks that print measured figures."""

from __future__ import annotations

import json
from pathlib import Path

import click

from unmix.cli.common import ByteSize


@click.group("bench")
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

    from unmix.atomic import atomic_path
    from unmix.scattering.benchmark import benchmark_scattering

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if device == "all" else [device]
    click.echo(f"machine: {platform.node()} {platform.machine()}, {torch.get_num_threads()} torch threads, "
               f"torch {torch.__version__}" + (f", GPU {torch.cuda.get_device_name()}" if "cuda" in devices else ""))
    results = []
    for d in devices:
        results += benchmark_scattering(device=d, repeats=repeats, verbose=True)
    if json_out:
        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps(results, indent=1, default=str))


@bench.command("separation-speed")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "all"]), default="all", show_default=True,
              help="'all' measures CPU, and CUDA when present")
@click.option("--snippets", "R", type=click.IntRange(min=2), default=100, show_default=True,
              help="number of prior snippets R")
@click.option("--length", "T", type=click.IntRange(min=64), default=2048, show_default=True, help="samples T")
@click.option("-J", "J", type=click.IntRange(min=1), default=8, show_default=True, help="octaves J")
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default="float64", show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads (default: torch's choice; 1 is faster when other jobs share the cores)")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the results as JSON")
def bench_separation_speed(device, R, T, J, dtype, repeats, threads, json_out):
    """Time and peak memory of one loss-and-gradient evaluation of the scattering-covariance separation, with the
    speed-up over the published code (16-24 s, 7.2 GB peak for R=100, T=2048, J=8, float64, 2 CPU cores)."""
    import platform

    import torch

    from unmix.atomic import atomic_path
    from unmix.errors import ConfigError
    from unmix.separation.benchmark import benchmark_separation_speed, format_result

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but PyTorch sees no GPU")
    if threads:
        torch.set_num_threads(threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if device == "all" else [device]
    click.echo(f"machine: {platform.node()} {platform.machine()}, {torch.get_num_threads()} torch threads, "
               f"torch {torch.__version__}")
    results = []
    for d in devices:
        r = benchmark_separation_speed(R=R, T=T, J=J, dtype=dtype, device=d, repeats=repeats)
        click.echo(format_result(r))
        results.append(r)
    if json_out:
        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps(results, indent=1, default=str))

@bench.command("scale")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="folder for the synthetic sols, stores and checkpoints (several GB at 128 sols)")
@click.option("--sols", default="2,8,32,128", show_default=True, help="comma-separated store sizes in sols")
@click.option("--steps", default="append,train,predict,separate", show_default=True,
              help="comma-separated steps: append, train and predict at each size; separate on files of 1, 4 and "
                   "16 sols")
@click.option("--memory-budget", type=ByteSize(), default=None,
              help="model inputs held in memory before streaming (e.g. 2GB; default: the model's default)")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the results as JSON")
def bench_scale(work, sols, steps, memory_budget, json_out):
    """Wall time, windows/s and peak RSS of feature appending, one training epoch and clustering on stores of
    growing size (tiled from one synthetic sol), and of separating ever longer files, each step in a fresh process,
    with the extrapolation to the mission."""
    import os
    import platform

    from unmix.atomic import atomic_path
    from unmix.cli.common import job
    from unmix.errors import ConfigError
    from unmix.scaling import STEPS, format_table, run_scale_benchmark

    chosen = [s.strip() for s in steps.split(",") if s.strip()]
    if not chosen or set(chosen) - set(STEPS):
        raise ConfigError(f"--steps: choose from {', '.join(STEPS)}")
    try:
        sizes = [int(v) for v in sols.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--sols: {sols!r} is not a comma-separated list of whole numbers") from None
    if not sizes or min(sizes) < 1:
        raise ConfigError("--sols: give at least one size of 1 sol or more")
    click.echo(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, load average "
               f"{os.getloadavg()[0]:.1f}")
    with job("bench scale") as (progress, token):
        results = run_scale_benchmark(work, sizes, chosen, memory_budget, progress, token)
    click.echo(format_table(results))
    if json_out:
        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps(results, indent=1, default=str))


#: The commands this module adds to ``unmix``.
COMMANDS = [bench]

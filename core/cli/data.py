"""Reading, synthesising and feature commands: ``info``, ``synth``, ``demo``, ``features``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from unmix.cli.common import allow_damaged_option, gap_options, job, with_options
from unmix.features.config import EDGE_MODES, KEEP_MODES, NORMALIZE_MODES
from unmix.pipeline import default_features

#: the feature settings of the pipeline layer: the option defaults below
_F = default_features()


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@with_options(gap_options)
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@click.option("-v", "--verbose", is_flag=True, help="list every gap, overlap and full file paths")
def info(inputs, gap_policy, max_fill, resample_to, allow_damaged, as_json, verbose):
    """Describe waveform files: ids, rates, UTC and LMST spans, gaps and overlaps.

    INPUTS are files, directories (read recursively) or glob patterns, in any format ObsPy reads.
    """
    from unmix.io.summary import format_summary, summarize

    with job("reading", quiet=as_json) as (progress, token):
        summary = summarize(inputs, gap_policy, max_fill, resample_to, progress=progress, token=token,
                            allow_damaged=allow_damaged)
    click.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary, verbose))


@click.command()
@click.option("--sols", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="length in sols (fractions allowed)")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), default=None,
              help="length in Earth hours (overrides --sols)")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="output directory")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--start-sol", type=click.IntRange(min=0), default=None, help="start at LMST midnight of this sol")
@click.option("--sampling-rate", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True)
@click.option("--gaps", type=click.IntRange(min=0), default=0, show_default=True, help="number of data gaps to cut")
@click.option("--format", "fmt", type=click.Choice(["MSEED", "SAC"], case_sensitive=False), default="MSEED",
              show_default=True)
@click.option("--network", default="SY", show_default=True,
              help="network code of the synthetic record (SY: synthetic, never the real XB of InSight)")
@click.option("--overwrite", is_flag=True, help="replace existing files in --out")
def synth(sols, hours, out_dir, seed, start_sol, sampling_rate, gaps, fmt, network, overwrite):
    """Generate a synthetic InSight-like record with ground truth (mixture, each source, glitch list)."""
    from unmix.workflows import run_synth

    with job("synthesising") as (progress, token):
        written = run_synth(sols=sols, hours=hours, out_dir=out_dir, seed=seed, start_sol=start_sol,
                            sampling_rate=sampling_rate, gaps=gaps, fmt=fmt.upper(), overwrite=overwrite,
                            progress=progress, token=token, network=network)
    for p in written:
        click.echo(str(p))


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("unmix-demo"),
              show_default=True, help="where the demo writes its files")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--sols", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), default=None,
              help="length in Earth hours (overrides --sols)")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="training epochs (default: the preset's)")
@click.option("--target-minutes", type=click.FloatRange(min=1), default=5.0, show_default=True,
              help="length of the span that is separated")
@click.option("--max-iter", type=click.IntRange(min=1), default=30, show_default=True,
              help="L-BFGS iterations of the scattering separation")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--overwrite", is_flag=True, help="replace an earlier demo run in --out")
def demo(out_dir, seed, sols, hours, epochs, target_minutes, max_iter, device, overwrite):
    """Run the whole chain on the embedded synthetic default and score it against the truth.

    synthetic sol → features → train → cluster → separate (template, scatcov, hybrid) → export, then the SNR of the
    recovered background against the synthetic truth.
    """
    from unmix.workflows import run_demo

    with job("demo") as (progress, token):
        run_demo(out_dir, seed=seed, sols=sols, hours=hours, epochs=epochs, target_minutes=target_minutes,
                 max_iter=max_iter, device=device, overwrite=overwrite, progress=progress, token=token,
                 echo=click.echo)


def _replay_store(ctx: click.Context, value: Path | None) -> Path | None:
    """Eager ``--replay``: the store's recorded configuration and inputs become the command's defaults."""
    if value is not None:
        from unmix.config import check_values
        from unmix.replay import features_options

        values, ctx.meta["unmix.replay_digests"] = features_options(value)
        ctx.default_map = {**(ctx.default_map or {}), **check_values(ctx.command, values, value)}
    return value


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="feature store (HDF5); existing stores are extended, never mixed with other settings")
@click.option("--window", type=click.IntRange(min=1), default=_F.window, show_default=True, help="window (samples)")
@click.option("--hop", type=click.IntRange(min=1), default=_F.hop, show_default=True, help="hop between windows")
@click.option("--scales", default=",".join(map(str, _F.scales)), show_default=True,
              help="comma-separated scales (samples)")
@click.option("--J", "J", type=click.IntRange(min=1), default=_F.J, show_default=True, help="octaves")
@click.option("--Q", "Q", type=click.IntRange(min=1), default=_F.Q, show_default=True, help="wavelets per octave")
@click.option("--wavelet", type=click.Choice(["battle_lemarie", "morlet"]), default=_F.wavelet, show_default=True)
@click.option("--model", type=click.Choice(["scat+cov", "cov"]), default=_F.model, show_default=True)
@click.option("--normalize", type=click.Choice([str(m).lower() for m in NORMALIZE_MODES]),
              default=str(_F.normalize).lower(), show_default=True,
              help="none: keep each window's level (clusters separate quiet nights from windy days); each_ps: divide "
                   "each first-layer channel by its RMS over the window, as the published code does")
@click.option("--keep", type=click.Choice(KEEP_MODES), default=_F.keep, show_default=True,
              help="which sub-window of each scale describes a window (published: last)")
@click.option("--edge", type=click.Choice(EDGE_MODES), default=_F.edge, show_default=True,
              help="transform whole records (fast, no mirror artefacts) or every window separately (published)")
@click.option("--components", default=_F.components, show_default=True, help="components to use, in order")
@click.option("--response", type=click.Path(exists=True, dir_okay=False), default=None,
              help="StationXML/RESP: remove the instrument response first")
@click.option("--output", "response_output", type=click.Choice(["VEL", "ACC", "DISP"]), default=_F.response_output,
              show_default=True)
@click.option("--rotate", is_flag=True, help="rotate to Z/N/E (needs --response); use --components ZNE")
@click.option("--glitch-evidence/--no-glitch-evidence", default=_F.glitch_evidence, show_default=True,
              help="also store per window the share of its energy the template deglitcher explains (the model's "
                   "glitch class reads it; costs about one template run per input)")
@click.option("--sampling-rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="resample every input to this rate")
@with_options(gap_options[:2])
@allow_damaged_option
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="run on a local Dask cluster with this many worker processes")
@click.option("--scheduler", default=None, help="address of an existing dask.distributed scheduler")
@click.option("--replay", type=click.Path(dir_okay=False, path_type=Path), default=None, is_eager=True,
              callback=lambda ctx, param, value: _replay_store(ctx, value),
              help="recompute with the configuration recorded in this feature store (on its recorded inputs unless "
                   "INPUTS are given; options given here win)")
def features(inputs, out, window, hop, scales, J, Q, wavelet, model, normalize, keep, edge, components, response,
             response_output, rotate, glitch_evidence, sampling_rate, gap_policy, max_fill, allow_damaged, device,
             workers, scheduler, replay):
    """Compute multi-scale scattering-covariance features of INPUTS into a feature store (resumable)."""
    from unmix import pipeline
    from unmix.errors import ConfigError

    ctx = click.get_current_context()
    if replay is not None and ctx.get_parameter_source("inputs").name == "DEFAULT_MAP":
        from unmix.replay import check_recorded_inputs

        check_recorded_inputs(replay, ctx.meta["unmix.replay_digests"])

    try:
        scale_list = tuple(int(s) for s in scales.split(","))
    except ValueError:
        raise ConfigError(f"--scales must be comma-separated integers, got {scales!r}") from None
    config = pipeline.default_features(window=window, hop=hop, scales=scale_list, J=J, Q=Q, wavelet=wavelet,
                                       model=model, keep=keep, edge=edge, components=components.upper(),
                                       normalize=None if normalize == "none" else normalize,
                                       response=str(Path(response).resolve()) if response else None,
                                       response_output=response_output, rotate=rotate, sampling_rate=sampling_rate,
                                       gap_policy=gap_policy, max_fill=max_fill, glitch_evidence=glitch_evidence)
    from unmix.features.store import NoFeaturesError

    with job("features") as (progress, token):
        try:
            report = pipeline.features(inputs, out, config, device=device, workers=workers, scheduler=scheduler,
                                       progress=progress, token=token, allow_damaged=allow_damaged,
                                       on_error=lambda m: click.echo(f"error: {m}", err=True))
        except NoFeaturesError:
            raise SystemExit(2) from None  # every input failed (each said why, above); nothing was written
    for note in report["notes"]:
        click.echo(f"note: {note}", err=True)
    click.echo(f"{report['store']}: {report['n_windows']} windows from {report['inputs']} input(s) "
               f"({report['computed']} computed now, {len(report['skipped'])} already done)")
    if report["failures"]:
        names = ", ".join(Path(str(f).split(": ")[0]).name for f in report["failures"])
        click.echo(f"{len(report['failures'])} input(s) failed (each said why above): {names}", err=True)
        raise SystemExit(1)

#: The commands this module adds to ``unmix``.
COMMANDS = [info, synth, demo, features]

"""Sampling from a cluster: ``generate`` (issue #16 item 4)."""

from __future__ import annotations

from pathlib import Path

import click

from unmix.cli.common import job


@click.command()
@click.option("--table", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="cluster table (.h5) whose input files are still readable")
@click.option("--cluster", "cluster_spec", required=True, help="cluster number or name (see `unmix name`)")
@click.option("--scale", type=click.IntRange(min=1), required=True, help="scale (samples) of the cluster")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="miniSEED file of the generated waveforms (network SY, location = realisation number); the "
                   "provenance is written beside it as <stem>.provenance.json")
@click.option("--count", type=click.IntRange(1, 100), default=4, show_default=True, help="waveforms to generate")
@click.option("--length", type=click.IntRange(min=64), default=None, help="samples per waveform (default: --scale)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the starting noise")
@click.option("--max-iter", type=click.IntRange(min=0), default=None, help="L-BFGS iterations at most [200]")
@click.option("--tol", type=click.FloatRange(min=0), default=None,
              help="stop a waveform at sqrt(loss) <= TOL (a real member scores about 1) [0.1]")
@click.option("--n-prior", type=click.IntRange(min=3), default=None,
              help="real members that set the target statistics [32]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--overwrite", is_flag=True, help="replace --out and its provenance")
def generate(table, cluster_spec, scale, out, count, length, seed, max_iter, tol, n_prior, device, overwrite):
    """Synthesise waveforms whose scattering-covariance statistics match a cluster's, and score them against the
    cluster's real members (docs/generation.md)."""
    from unmix import generate as gen
    from unmix.clusters import ClusterTable
    from unmix.errors import ConfigError, OutputExistsError

    if out.suffix.lower() not in (".mseed", ".miniseed"):
        raise ConfigError("the output must be a miniSEED file (.mseed)", out)
    if not overwrite:
        for p in (out, gen.provenance_path(out)):
            if p.exists():
                raise OutputExistsError("already exists; pass --overwrite to replace it", p)
    t = ClusterTable.load(table)
    clusters = t.resolve(cluster_spec, scale)
    if len(clusters) != 1:
        raise ConfigError(f"{cluster_spec!r} names {len(clusters)} clusters at scale {scale} "
                          f"({', '.join(map(str, clusters))}); give one")
    options = {k: v for k, v in {"max_iter": max_iter, "tol": tol, "n_prior": n_prior}.items() if v is not None}
    with job("generating") as (progress, token):
        result = gen.synthesize(t, clusters[0], scale, n=count, length=length, seed=seed, device=device,
                                progress=progress, token=token, **options)
        token.check()
        quality = gen.synthesis_quality(result, t, seed)
    written, prov = gen.write_generation(result, out, table, quality, overwrite=overwrite)
    click.echo(f"wrote {count} waveform(s) of cluster {t.label(scale, clusters[0])} at scale {scale} to {written} "
               f"({result.info['iterations']} iterations, {result.info['seconds_per_waveform']} s per waveform)")
    if quality is not None:
        for fam, e in quality["families"].items():
            g = e["generated"]
            click.echo(f"  {fam}: inside the members' spread {g['inside_fraction']:.0%} (median distance "
                       f"{g['median']}, members' 90th percentile {e['limit']:.3g}; white noise "
                       f"{e['white']['inside_fraction']:.0%} inside)")
    else:
        click.echo("  quality not measured: fewer than 3 real members")
    click.echo(f"provenance: {prov}")


COMMANDS = [generate]

"""FDSN download: ``fetch`` (issue #7)."""

from __future__ import annotations

from pathlib import Path

import click

from unmix.cli.common import job


@click.command()
@click.option("--network", "-N", default="XB", show_default=True, help="FDSN network code")
@click.option("--station", "-S", default="ELYSE", show_default=True, help="station code")
@click.option("--location", "-L", default="02", show_default=True, help="location code ('--' or '' for none)")
@click.option("--channel", "-C", default="BH?", show_default=True, help="channel code; ? and * wildcards allowed")
@click.option("--start", required=True, help="UTC start, e.g. 2019-07-26 or 2019-07-26T11:00:00")
@click.option("--end", required=True, help="UTC end")
@click.option("--provider", default="IRIS", show_default=True,
              help="data centre: IRIS (EarthScope), IPGP, or the http(s):// base URL of an FDSN web service")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="folder of the local cache: day files, StationXML and the manifest")
@click.option("--no-response", is_flag=True, help="do not fetch StationXML")
@click.option("--recheck-empty", is_flag=True, help="ask again for spans that had no data at an earlier run")
@click.option("--overwrite", is_flag=True, help="ignore the cache: download again and replace the files")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="seconds to wait for any byte of the data centre's answer")
@click.option("--deadline", type=click.FloatRange(min=0, min_open=True), default=600.0, show_default=True,
              help="seconds one request may take in all (connection, answer and body)")
@click.option("--max-size", "max_size", type=click.FloatRange(min=0, min_open=True), default=256.0,
              show_default=True, help="MB one response may hold (a day of 100-sps 3-component data is ≈ 120 MB)")
@click.option("--retries", type=click.IntRange(min=0), default=3, show_default=True,
              help="retries of a transient failure (HTTP 5xx or 429, connection reset or refused, timeout)")
@click.option("--retry-delay", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="seconds before the first retry, doubled for each next one (or the server's Retry-After)")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar, no file list")
def fetch(network, station, location, channel, start, end, provider, out_dir, no_response, recheck_empty, overwrite,
          timeout, deadline, max_size, retries, retry_delay, quiet):
    """Download miniSEED day files and StationXML from an FDSN data centre into a local cache.

    Whatever the folder's manifest says was received already is not downloaded again, so a second run of the same
    command makes no request and an interrupted run resumes. Every response is checked against the request (stream
    ids, time span, StationXML channels) before it is cached. Failed requests and wrong answers are listed (exit
    status 1); what was received and checked is kept.
    """
    from unmix.fetch import fetch as run_fetch

    with job("fetching", quiet=quiet) as (progress, token):
        report = run_fetch(network, station, location, channel, start, end, out_dir, provider=provider,
                           response=not no_response, overwrite=overwrite, recheck_empty=recheck_empty,
                           timeout=timeout, progress=progress, token=token, deadline=deadline,
                           max_bytes=max(int(max_size * 1e6), 1), retries=retries, retry_delay=retry_delay)
    for line in report.replaced:
        click.echo(f"removed from the cache, did not match the request (cached before downloads were checked): "
                   f"{line}", err=True)
    if not quiet:
        for path in report.files:
            click.echo(f"{path}  ({'downloaded' if path in report.downloaded else 'already present'})")
        for label in report.empty:
            click.echo(f"no data: {label}")
    click.echo(report.summary())
    if report.failures:
        click.echo(f"{len(report.failures)} request(s) failed (what was received is kept; run again to retry):",
                   err=True)
        for line in report.failures:
            click.echo(f"  {line}", err=True)
        raise SystemExit(1)

#: The commands this module adds to ``unmix``.
COMMANDS = [fetch]

"""Separation and batch export: ``separate`` and ``bench separation`` (issue #5)."""

from __future__ import annotations

from pathlib import Path

import click

from unmix.cli.bench import bench
from unmix.cli.common import gap_options, job, with_options
from unmix.errors import ConfigError, OutputExistsError
from unmix.pipeline import DEFAULT_OUTPUT_FORMAT, DEFAULT_SEPARATION_METHOD, DEFAULT_TARGET_COUNT
from unmix.separation.registry import BUILTIN


def _parse_options(pairs: tuple[str, ...], what: str) -> dict:
    """``KEY=VALUE`` pairs (see :func:`unmix.separation.registry.parse_options`)."""
    from unmix.separation.registry import parse_options

    return parse_options(pairs, what)


def _csv(text: str, cast=str) -> list:
    try:
        return [cast(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"cannot read the comma-separated list {text!r}") from None


def _opt_param(name: str) -> str:
    """The click parameter name of ``--NAME-opt``."""
    return f"{name.replace('-', '_')}_opt"


def _method_option_flags() -> list:
    """One ``--NAME-opt KEY=VALUE`` flag per method of the registry."""
    from unmix.separation.registry import methods

    return [click.option(f"--{name}-opt", _opt_param(name), multiple=True, metavar="KEY=VALUE",
                         help=f"option of the {name} method (repeatable; keys, types and defaults: "
                              "`unmix separate --list-methods`)")
            for name in methods()]


method_option_flags = _method_option_flags()


class MethodChoice(click.Choice):
    """``--method``: the registry's method names, read when the option is parsed or its help shown."""

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        from unmix.separation.registry import method_names

        return tuple(method_names())

    @choices.setter
    def choices(self, _value) -> None:
        pass


def _list_methods(ctx: click.Context, _param, value: bool) -> None:
    """Eager ``--list-methods``: every method, what it uses, and its options; then exit."""
    if value and not ctx.resilient_parsing:
        from unmix.separation.registry import describe, method_names

        click.echo("\n\n".join(_describe(name, describe) for name in method_names()))
        ctx.exit()


def _describe(name: str, describe) -> str:
    try:
        return describe(name)
    except ConfigError as exc:  # a broken plugin is listed, not fatal
        return f"{name}: {exc}"


def _method_options(opts: dict, names, inventory=None, device=None) -> dict:
    """Per method: its ``--NAME-opt`` pairs (checked for the methods in ``names``), plus ``inventory``/``device``
    for the methods that use them."""
    from unmix.separation.registry import method_spec, methods

    options = {}
    for name in methods():
        flag = f"--{name}-opt"
        options[name] = _parse_options(opts.get(_opt_param(name), ()), flag)
        if name not in names:
            continue
        spec = method_spec(name)  # a plugin's own entry (what it uses) once it is loaded
        spec.check_options(options[name], flag)
        if inventory is not None and "inventory" in spec.uses:
            options[name].setdefault("inventory", str(inventory))
        if device is not None and "device" in spec.uses:
            options[name].setdefault("device", device)
    return options


CASE_GROUPS = {"both": ("glitches", "bursts"), "hard": ("hard-glitches", "gusts", "dust-devils")}
"""``--case`` names that stand for several kinds (``all``: every kind)."""


class CaseChoice(click.Choice):
    """``--case``: one or more comma-separated case kinds or groups, returned as a tuple of kinds."""

    name = "case"

    def convert(self, value, param, ctx) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        every = tuple(c for c in self.choices if c not in CASE_GROUPS and c != "all")
        kinds: list[str] = []
        for part in (p.strip() for p in str(value).split(",")):
            name = super().convert(part, param, ctx)
            kinds += {**CASE_GROUPS, "all": every}.get(name, (name,))
        return tuple(dict.fromkeys(kinds))


def _range(text: str, what: str) -> tuple[float, float]:
    """``MIN,MAX`` seconds (0 ≤ MIN ≤ MAX)."""
    values = _csv(text, float)
    if len(values) != 2 or not 0 <= values[0] <= values[1]:
        raise ConfigError(f"{what} takes MIN,MAX with 0 <= MIN <= MAX, not {text!r}")
    return values[0], values[1]


@bench.command("separation")
@click.option("--real", is_flag=True, help="compare with the UCLA deglitching of the raw S0235b record instead")
@click.option("--background", "backgrounds", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="glitch-free background file(s) (default: shared background/*UCLA*)")
@click.option("--case", "cases", type=CaseChoice(["glitches", "bursts", "both", "quake", "bursts+quake",
                                                  "hard-glitches", "gusts", "gusts+quake", "dust-devils",
                                                  "dust-devils+quake", "hard", "all"]),
              default="both", show_default=True,
              help="case kind(s), comma-separated. both: glitches and bursts; quake: a marsquake with --count "
                   "glitches in its coda; bursts+quake: a wind burst over a marsquake (quake cases report the share "
                   "of the quake removed); hard-glitches: --count glitch events with rise times (--rise-time), "
                   "overlapping pairs and spikes; gusts: a train of short band-limited wind gusts; dust-devils: "
                   "--dust-devil-count tilt pulses (gusts and dust devils on --burst-span targets); hard: the last "
                   "three; gusts+quake, dust-devils+quake: a marsquake under the first gust / dust devil; all: "
                   "every kind")
@click.option("--components", default=None,
              help="keep only these components of every case, comma-separated (e.g. V: single-component records)")
@click.option("--rise-time", default="0.2,3", show_default=True,
              help="hard-glitches: MIN,MAX rise time of the acceleration step (s)")
@click.option("--gust-count", type=click.IntRange(min=1), default=None,
              help="gusts: gusts per target (default: 5-15 at random)")
@click.option("--dust-devil-count", type=click.IntRange(min=1), default=3, show_default=True,
              help="dust-devils: dust devils per target (median amplitude --burst-amplitude)")
@click.option("--seeds", default="0", show_default=True, help="comma-separated seeds")
@click.option("--count", type=click.IntRange(min=0), default=4, show_default=True, help="glitches per target")
@click.option("--span", type=click.IntRange(min=64), default=8192, show_default=True,
              help="glitch target length (samples)")
@click.option("--amplitude", type=click.FloatRange(min=0, min_open=True), default=4.0, show_default=True,
              help="median glitch peak (background σ)")
@click.option("--burst-count", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--burst-span", type=click.IntRange(min=64), default=36000, show_default=True,
              help="burst target length (samples)")
@click.option("--burst-amplitude", type=click.FloatRange(min=0, min_open=True), default=1.5, show_default=True,
              help="median burst amplitude (background σ)")
@click.option("--prior-count", type=click.IntRange(min=2), default=20, show_default=True,
              help="scatcov prior snippets per target")
@click.option("--prior-length", type=click.IntRange(min=64), default=2048, show_default=True)
@click.option("--methods", default=",".join(BUILTIN), show_default=True)
@click.option("--raw", type=click.Path(dir_okay=False, path_type=Path), default=None, help="--real: raw record")
@click.option("--reference", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="--real: deglitched reference")
@click.option("--inventory", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="StationXML for the template method (--real default: the shared 02.BH response)")
@click.option("--prior-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="--real: deglitched record of another event for scatcov's prior (default: S0185a UCLA)")
@click.option("--prior", "prior_source", type=click.Choice(["file", "clusters"]), default="file", show_default=True,
              help="scatcov/hybrid prior: file, snippets of the background away from the target (--real: of "
                   "--prior-file); clusters, the quietest clusters (finest scale, together >= 10 windows) of the "
                   "default model trained on the background record, as separate --table --background-cluster "
                   "--scale (the published workflow)")
@click.option("--prior-work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="--prior clusters: folder keeping the features, model and table (reused by reruns; default: a "
                   "temporary folder)")
@click.option("--prior-epochs", type=click.IntRange(min=1), default=None,
              help="--prior clusters: training epochs (default: the preset's)")
@click.option("--prior-window", type=click.IntRange(min=1024), default=None,
              help="--prior clusters: feature window in samples (default: the default features' 65536, or the "
                   "largest that gives 16 windows of a short record)")
@click.option("--protect-quake", is_flag=True,
              help="quake cases: also score each method's run with the marsquake's span kept (rows 'METHOD "
                   "+protect': what `separate --protect` does with a catalogue listing the quake)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@with_options(method_option_flags)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--markdown", "md_out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--overwrite", is_flag=True, help="replace existing --json/--markdown files")
def bench_separation(real, backgrounds, cases, components, rise_time, gust_count, dust_devil_count, seeds, count,
                     span, amplitude, burst_count, burst_span,
                     burst_amplitude, prior_count, prior_length, methods, raw, reference, inventory, prior_file,
                     prior_source, prior_work, prior_epochs, prior_window, protect_quake, device, json_out, md_out,
                     overwrite, **method_opts):
    """Separation quality of every method: SNR gain on real background with synthetic glitches / atmospheric
    bursts / gusts / dust devils (known truth; --components: on some components only), or (--real) agreement with
    the UCLA deglitching of S0235b."""
    from unmix.evaluation.benchmark import (
        insight_dir,
        markdown_tables,
        run_real_benchmark,
        run_synthetic_benchmark,
    )
    from unmix.evaluation.benchmark import write_results as write

    for path in (json_out, md_out):
        if path is not None and path.exists() and not overwrite:
            raise OutputExistsError("already exists; pass --overwrite to replace it", path)
    data = insight_dir()
    names = _csv(methods)
    if real and prior_source == "clusters":
        raise ConfigError("--prior clusters is for the synthetic cases; --real takes its prior from --prior-file")
    if real and components:
        raise ConfigError("--components is for the synthetic cases")
    rises = _range(rise_time, "--rise-time")
    if real:
        raw = raw or data / "raw" / "XB.ELYSE.02.BH_2019-07-26T1149_S0235b_raw.mseed"
        reference = reference or data / "reference" / "XB.ELYSE.02.BH_2019-07-26T1149_S0235b_deglitched_UCLA_v4.mseed"
        default_inv = data / "response" / "XB.ELYSE.02.BH.xml"
        inventory = inventory or (default_inv if default_inv.exists() else None)
        prior_file = prior_file or data / "background" / "XB.ELYSE.02.BH_S0185a_deglitched_UCLA_v4.mseed"
        options = _method_options(method_opts, names, inventory, device)
        with job("separation benchmark (real)") as (progress, token):
            results = run_real_benchmark(raw, reference, names, options, prior_file, prior_count, prior_length,
                                         progress=progress, token=token)
    else:
        if not backgrounds:
            backgrounds = tuple(sorted((data / "background").glob("*UCLA*")))
            if not backgrounds:
                raise ConfigError(f"no background/*UCLA* files under {data}; give --background")
        options = _method_options(method_opts, names, inventory, device)
        prior_opts = {"prior_count": prior_count, "prior_length": prior_length}
        hard = {"hard-glitches": {"span": span, "count": count, "amplitude": amplitude, "rise_time": rises,
                                  **prior_opts},
                "gusts": {"span": burst_span, "count": gust_count, **prior_opts},
                "dust-devils": {"span": burst_span, "count": dust_devil_count, "amplitude": burst_amplitude,
                                **prior_opts}}
        with job("separation benchmark") as (progress, token):
            results = run_synthetic_benchmark(
                backgrounds, cases, _csv(seeds, int), names, options,
                glitch_options={"span": span, "count": count, "amplitude": amplitude, "prior_count": prior_count,
                                "prior_length": prior_length},
                burst_options={"span": burst_span, "count": burst_count, "amplitude": burst_amplitude,
                               "prior_count": prior_count, "prior_length": prior_length},
                quake_options={"span": burst_span, "count": count, "glitch_amplitude": amplitude,
                               "prior_count": prior_count, "prior_length": prior_length},
                hard_options=hard, components=_csv(components) if components else None,
                prior=prior_source, prior_work=prior_work, prior_epochs=prior_epochs, prior_window=prior_window,
                protect_quake=protect_quake, say=click.echo,
                progress=progress, token=token)
    click.echo(markdown_tables(results))
    for p in write(results, json_out, md_out, overwrite=overwrite):
        click.echo(f"wrote {p}")


def _detections(path: Path, method: str) -> str:
    """``--detections``: a readable glitch list, for the template method only; its absolute path."""
    from unmix.separation.registry import method_spec

    if "detections" not in method_spec(method).option_names():
        raise ConfigError(f"--detections gives the template method its glitches; --method {method} does not take "
                          "a glitch list")
    from unmix.catalogs import read_catalog

    read_catalog(path)  # a bad list is one line now, not one per input
    return str(path.resolve())


def _replay(ctx: click.Context, value: Path | None) -> Path | None:
    """Eager ``--replay``: the provenance's configuration becomes the command's defaults."""
    if value is not None:
        from unmix.config import check_values
        from unmix.replay import separate_options

        values = separate_options(value)
        pairs = values.pop("method_options")
        values = check_values(ctx.command, values, value)  # the method first: it names the option of its pairs
        values.update(check_values(ctx.command, {_opt_param(values["method"]): pairs}, value))
        ctx.default_map = {**(ctx.default_map or {}), **values}
    return value


@click.command()
@click.argument("inputs", nargs=-1)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="output directory (one file per separated source per input, plus a provenance JSON)")
@click.option("--method", type=MethodChoice(), default=None,
              help="separation method (default: template; scatcov with --model/--table/--prior; hybrid = physical "
                   "templates + scatcov residual, takes the same prior options; all: --list-methods)")
@click.option("--list-methods", is_flag=True, is_eager=True, expose_value=False, callback=_list_methods,
              help="list the separation methods, what each uses and their options (types, defaults), and exit")
@click.option("--model", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="trained model: scatcov takes its prior from the windows the model puts in --background-cluster")
@click.option("--store", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="with --model: the feature store the model clusters (made by `unmix features`)")
@click.option("--table", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="instead of --model/--store: a saved cluster table (.h5)")
@click.option("--background-cluster", default=None,
              help="cluster(s) whose windows are clean background: numbers or names given with `unmix name`, e.g. "
                   "3, 3,5 or 'quiet night'")
@click.option("--scale", type=click.IntRange(min=1), default=None,
              help="scale (samples) of --background-cluster and --target-cluster")
@click.option("--target-cluster", default=None,
              help="instead of INPUTS: separate the most confident windows of this cluster (number or name) at "
                   "--scale, read from the table's input files (the published workflow); needs --table or "
                   "--model/--store")
@click.option("--count", type=click.IntRange(min=1), default=DEFAULT_TARGET_COUNT, show_default=True,
              help="with --target-cluster: how many windows (the most confident ones that do not overlap)")
@click.option("--prior", "prior_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="scatcov without a model: snippets of this clean-background file are the prior")
@click.option("--format", "fmt", type=click.Choice(["MSEED", "SAC"], case_sensitive=False),
              default=DEFAULT_OUTPUT_FORMAT, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="separate files on a local Dask cluster of this many worker processes, one file per task (0/1: "
                   "in this process)")
@click.option("--scheduler", default=None,
              help="address of an existing dask.distributed scheduler to run one task per file on (its workers must "
                   "see the input and --out paths)")
@click.option("--inventory", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="StationXML for the template method's glitch templates (default: InSight VBB poles/zeros)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--location", "locations", default=None, metavar="PRODUCT=CODE,…",
              help="location code of each product, e.g. background=B0,glitches=G0 (default: B/G/S/R/L/X for "
                   "background/glitches/spikes/residual/low_frequency/removed + the raw location's last character)")
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default="float64", show_default=True,
              help="sample type of the outputs (miniSEED encoding FLOAT64/FLOAT32; SAC is always float32)")
@click.option("--detections", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="glitch list (SEISglitch/MPS list, QuakeML or Snuffler markers, e.g. from `unmix glitches`): the "
                   "template method fits and removes only these glitches instead of detecting its own")
@click.option("--protect", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="catalogue of events to keep (QuakeML, e.g. the MQS marsquakes; MPS list; Snuffler markers): inside "
                   "each entry's span only glitch/spike templates are removed, whatever the method")
@click.option("--overwrite", is_flag=True, help="replace existing outputs in --out (inputs are never replaced)")
@with_options(gap_options)
@with_options(method_option_flags)
@click.option("--replay", type=click.Path(dir_okay=False, path_type=Path), default=None, is_eager=True,
              callback=lambda ctx, param, value: _replay(ctx, value),
              help="re-run the configuration recorded in this provenance JSON (on its recorded input unless INPUTS "
                   "are given; options given here win)")
def separate(inputs, out_dir, method, model, store, table, background_cluster, scale, target_cluster, count,
             prior_file, fmt, workers, scheduler, inventory, device, locations, dtype, detections, protect, overwrite,
             gap_policy, max_fill, resample_to, allow_damaged, replay, **method_opts):
    """Separate records into a background and the removed sources, and export them (MSEED or SAC).

    INPUTS are files, directories (read recursively) or glob patterns. Finished inputs are skipped on a re-run,
    interrupted ones are redone, outputs of earlier runs in --out are never taken as inputs; a bad file is reported
    and the others go on; the exit status is non-zero if any failed. Outputs carry their own location code per
    product and miniSEED quality Q, so they never merge with raw data; SAC outputs get KUSER0-2/KEVNM and, with
    --inventory, station coordinates and orientation.
    """
    from unmix.export import export_separation
    from unmix.hashing import file_sha256

    if replay is not None and click.get_current_context().get_parameter_source("inputs").name == "DEFAULT_MAP":
        from unmix.replay import check_recorded_input

        check_recorded_input(replay, inputs[0])
    from unmix.separation.registry import method_spec

    uses_clusters = model is not None or table is not None
    if bool(inputs) == (target_cluster is not None):
        raise click.UsageError("give INPUTS to separate, or --target-cluster K (with --table or --model/--store)")
    if target_cluster is not None and not uses_clusters:
        raise ConfigError("--target-cluster needs the cluster table: --table T, or --model M --store S")
    if (uses_clusters and target_cluster is None) or prior_file is not None or background_cluster is not None:
        if method is not None and "prior" not in method_spec(method).uses:
            raise ConfigError("--model/--table/--prior/--background-cluster give scatcov or hybrid their prior; "
                              f"they do not combine with --method {method}")
        method = method or "scatcov"
    method = method or DEFAULT_SEPARATION_METHOD
    spec = method_spec(method)
    options = _method_options(method_opts, (method,), inventory, device)[method]
    if detections is not None:
        options["detections"] = _detections(detections, method)
    if protect is not None:
        from unmix.catalogs import read_catalog

        read_catalog(protect)  # a bad catalogue is one line now, not one per input
        options["protect"] = str(protect.resolve())
    model_info, cluster_table = None, None
    if uses_clusters and target_cluster is None and (background_cluster is None or scale is None):
        raise ConfigError("--model/--table need --background-cluster K and --scale S")
    if uses_clusters:
        cluster_table, model_info = _cluster_table(table, model, store, device)
    wants_prior = (uses_clusters and target_cluster is None) or background_cluster is not None or prior_file is not None
    if spec.requires_prior or ("prior" in spec.uses and wants_prior):
        if uses_clusters:
            if background_cluster is None or scale is None:
                raise ConfigError("--model/--table need --background-cluster K and --scale S")
            clusters = cluster_table.resolve(background_cluster, scale)
            if any(not c.strip().isdigit() for c in background_cluster.split(",")):
                model_info["background_cluster"] = {"given": background_cluster, "clusters": clusters}
            options.update(table=cluster_table, clusters=clusters, scale=scale)
        elif prior_file is not None:
            from unmix.evaluation.cases import labelled_prior_snippets
            from unmix.separation.scatcov import PROTOCOL_VALUES

            protocol = PROTOCOL_VALUES.get(str(options.get("protocol", "fast")), PROTOCOL_VALUES["fast"])
            n_prior = options.pop("n_prior", None) or protocol["n_prior"]  # fast: 20; paper: 300
            options["prior"], letters = labelled_prior_snippets(prior_file, int(n_prior),
                                                                int(options.get("piece", 1024)))
            if "components" in {o.name for o in spec.options()}:  # the file's order, whatever the record's
                options.setdefault("components", letters)
            model_info = {"prior_file": str(prior_file.resolve()), "prior_sha256": file_sha256(prior_file)}
        else:
            raise ConfigError(f"--method {method} needs a prior: --model/--store or --table with --background-cluster "
                              "and --scale, or --prior FILE")
    if target_cluster is not None:
        _separate_targets(cluster_table, target_cluster, scale, count, out_dir, method, options, fmt, overwrite,
                          table)
        return
    with job(f"separating ({method})") as (progress, token):
        report = export_separation(inputs, out_dir, method, options, fmt.upper(), workers, overwrite, gap_policy,
                                   max_fill, resample_to, model_info, progress=progress, token=token,
                                   locations=locations, dtype=dtype, inventory=inventory, allow_damaged=allow_damaged,
                                   scheduler=scheduler)
    click.echo(report.summary())
    if report.failed and len(report.failed) + len(report.done) + len(report.skipped) == 1:
        path, message = report.failed[0]  # a single input: its problem is the one error line
        raise ConfigError(message if path in message else f"{path}: {message}")
    if report.failed:
        for path, message in report.failed:
            click.echo(f"failed: {message}" if path in message else f"failed: {path}: {message}", err=True)
        raise ConfigError(f"{len(report.failed)} of {len(report.failed) + len(report.done) + len(report.skipped)} "
                          f"input(s) failed: {', '.join(Path(p).name for p, _ in report.failed)}")


def _cluster_table(table: Path | None, model: Path | None, store: Path | None, device: str):
    """The cluster table of --table, or of --model on --store (clustered now), with what goes into the provenance."""
    from unmix.hashing import file_sha256

    if table is not None:
        from unmix.clusters import ClusterTable

        return ClusterTable.load(table), {"table": str(table.resolve()), "table_sha256": file_sha256(table)}
    if store is None:
        raise ConfigError("--model needs --store: the feature store it clusters (see `unmix features`)")
    from unmix.model.predict import predict

    with job("clustering") as (progress, token):
        cluster_table = predict(store, model, device=device, progress=progress, token=token)
    return cluster_table, {"path": str(model.resolve()), "sha256": file_sha256(model), "store": str(store.resolve())}


def _separate_targets(cluster_table, target_cluster: str, scale: int | None, count: int, out_dir: Path, method: str,
                      options: dict, fmt: str, overwrite: bool, table: Path | None) -> None:
    """``--target-cluster``: the most confident windows of a cluster, separated and exported one by one."""
    from unmix import pipeline

    if scale is None:
        raise ConfigError("--target-cluster needs --scale S")
    clusters = cluster_table.resolve(target_cluster, scale)
    with job(f"separating cluster {target_cluster} ({method})") as (progress, token):
        report = pipeline.separate_cluster_windows(cluster_table, clusters, scale, out_dir, method, options, count,
                                                   fmt.upper(), overwrite, table, progress=progress, token=token)
    click.echo(f"{len(report['done'])} window(s) of cluster {target_cluster} at scale {scale} separated, "
               f"{len(report['skipped'])} already done ({len(report['outputs'])} file(s) written) into {out_dir}")


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="glitch list to write: .txt (SEISglitch/MPS list), .xml (QuakeML) or .markers (Snuffler)")
@click.option("--format", "fmt", type=click.Choice(["mps", "quakeml", "markers"]), default=None,
              help="format of --out (default: from its extension)")
@click.option("--inventory", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="StationXML for the glitch templates (default: InSight VBB poles/zeros)")
@click.option("--overwrite", is_flag=True, help="replace an existing --out")
@with_options(gap_options)
@click.option("--template-opt", multiple=True, metavar="KEY=VALUE",
              help="option of the template deglitcher, e.g. min_variance_reduction=0.7 (repeatable)")
def glitches(inputs, out, fmt, inventory, overwrite, gap_policy, max_fill, resample_to, allow_damaged, template_opt):
    """Detect glitches with the template deglitcher and write them as a glitch list (no waveforms are written).

    The list is taken by `unmix separate --detections LIST` (e.g. after editing it), opens in Snuffler (.markers)
    or any QuakeML reader, and overlays the clusters in `unmix report --catalog`.
    """
    from unmix.glitchlist import export_glitches

    options = _parse_options(template_opt, "--template-opt")
    from unmix.separation.registry import method_spec

    method_spec("template").check_options(options, "--template-opt")
    if inventory is not None:
        options.setdefault("inventory", str(inventory))
    with job("detecting glitches") as (progress, token):
        path, catalog = export_glitches(inputs, out, fmt, overwrite, options=options, gap_policy=gap_policy,
                                        max_fill=max_fill, resample_to=resample_to, allow_damaged=allow_damaged,
                                        progress=progress, token=token)
    click.echo(f"{path}: {len(catalog)} glitch(es) on {', '.join(catalog.seed_ids) or 'no channel'}")

#: The commands this module adds to ``unmix``.
COMMANDS = [separate, glitches]

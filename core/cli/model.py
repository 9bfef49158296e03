"""Model commands: ``train``, ``cluster``, ``report`` and ``bench clustering`` (issue #4)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from unmix.cli.bench import bench
from unmix.cli.common import ByteSize, job
from unmix.pipeline import DEFAULT_PRESET

#: ``unmix.model.config.PREPROCESSING``, repeated here so that the CLI starts without importing torch (a test checks
#: that the two agree).
PREPROCESSINGS = ("paper", "log", "shape", "log-spars")


def _list_presets(ctx: click.Context, _param, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from unmix.model.config import PRESETS

    for name, config in PRESETS.items():
        default = " (default)" if name == DEFAULT_PRESET else ""
        click.echo(f"{name}{default}: " + ", ".join(f"{k}={v}" for k, v in config.to_dict().items()))
    ctx.exit()


DEVICE = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)


MEMORY_BUDGET = click.option(
    "--memory-budget", type=ByteSize(), default=None,
    help="memory for the model's inputs (e.g. 2GB, 512MiB; default 512 MiB, unmix.model.DEFAULT_MEMORY_BUDGET); a "
         "store needing more is read from disk in pieces")


def _echo_log(line: str) -> None:
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


LOG_OFFSET = click.option(
    "--log-offset", type=click.FloatRange(min=0), default=None,
    help="override the preset's log offset κ: log(x + κ·median) on the log columns (0: plain log)")
OUTLIER_SPLIT = click.option(
    "--outlier-split", type=float, default=None,
    help="override the preset's outlier clusters: windows farther than this many times their cluster's median "
         "squared distance get a cluster of their own (0: off; needs principal axes)")
SPARSITY_SPLIT = click.option(
    "--sparsity-split", type=click.FloatRange(min=0), default=None,
    help="override the preset's sparsity splits: a cluster whose windows form two groups at least this far apart "
         "(RMS, in standard deviations) in the sparsity coefficients is split in two (0: off)")

GLITCH_SHARE = click.option(
    "--glitch-share", type=click.FloatRange(min=0, max=1), default=None,
    help="override the preset's glitch class: windows of which the template deglitcher explains at least this share "
         "of the energy (the store's glitch evidence) form a cluster of their own at every scale (0: off)")


@click.command()
@click.argument("store", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="model checkpoint (written periodically, atomically); one of the same settings and store already "
                   "there is reused when finished and resumed otherwise")
@click.option("--preset", "preset_name", type=click.Choice(["small", "paper"]), default=DEFAULT_PRESET,
              show_default=True,
              help="network size and training settings: CPU-sized, or the published ones (≈196 M parameters, GPU)")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="override the preset's epochs")
@click.option("--batch-size", type=click.IntRange(min=2), default=None, help="override the preset's batch size")
@click.option("--clusters", type=click.IntRange(min=2), default=None,
              help="override the preset's clusters per scale (`unmix train --list-presets` shows the presets)")
@click.option("--hidden", type=click.IntRange(min=1), default=None, help="override the hidden width")
@click.option("--latent", type=click.IntRange(min=1), default=None, help="override the latent dimension")
@click.option("--preprocessing", type=click.Choice(PREPROCESSINGS), default=None,
              help="z-score only (published), log of positive columns first (small preset), or each sub-window's "
                   "own shape plus log level")
@LOG_OFFSET
@OUTLIER_SPLIT
@SPARSITY_SPLIT
@GLITCH_SHARE
@click.option("--seed", type=int, default=None,
              help="override the preset's seed")
@DEVICE
@MEMORY_BUDGET
@click.option("--resume", is_flag=True,
              help="continue the checkpoint at --out with the settings it was trained with (only --epochs may change)")
@click.option("--overwrite", is_flag=True, help="replace an existing checkpoint at --out")
@click.option("-q", "--quiet", is_flag=True, help="no per-epoch log lines")
@click.option("--list-presets", is_flag=True, is_eager=True, expose_value=False, callback=_list_presets,
              help="print every preset's settings and exit")
def train(store, out, preset_name, epochs, batch_size, clusters, hidden, latent, preprocessing, log_offset,
          outlier_split, sparsity_split, glitch_share, seed, device, memory_budget, resume, overwrite, quiet):
    """Train the factorial GMVAE on a feature STORE; the checkpoint at --out is usable at every save."""
    from unmix import pipeline
    from unmix.model import format_log

    changes = {"batch_size": batch_size, "clusters": clusters, "hidden": hidden, "latent": latent,
               "preprocessing": preprocessing, "log_offset": log_offset, "outlier_split": outlier_split,
               "sparsity_split": sparsity_split, "glitch_share": glitch_share, "seed": seed}
    if resume and any(v is not None for v in changes.values()):
        raise click.UsageError("--resume continues with the checkpoint's settings; only --epochs may change")
    config = pipeline.default_model(preset_name, epochs=epochs, **changes)
    if resume and epochs is None:
        config = None

    def on_epoch(log: dict, trained_with) -> None:
        if not quiet and (log["epoch"] % trained_with.checkpoint_every == 0 or log["epoch"] == trained_with.epochs):
            _echo_log(format_log(log))

    with job("training") as (progress, token):
        done = pipeline.train(store, out, config, own_settings=resume, overwrite=overwrite, device=device,
                              on_epoch=on_epoch, progress=progress, token=token, memory_budget=memory_budget)
    model, last = done.model, done.last_log
    how = "reused (already trained with these settings), " if done.reused else "resumed, " if done.resumed else ""
    click.echo(f"{out}: {how}{model.epoch} epochs, loss {last.get('loss', float('nan')):.4g}, "
               f"{sum(p.numel() for p in model.network.parameters())} parameters, digest {model.digest()}")


@click.command()
@click.argument("store", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="cluster table: .h5 (everything) or .csv (times, clusters, confidences); an .h5 table of the same "
                   "model and store already there is reused")
@DEVICE
@MEMORY_BUDGET
@click.option("--overwrite", is_flag=True, help="replace an existing table")
def cluster(store, model, out, device, memory_budget, overwrite):
    """Cluster every window of STORE at every scale with MODEL; write the cluster table."""
    from unmix import pipeline

    with job("clustering") as (progress, token):
        done = pipeline.cluster(store, model, out, overwrite=overwrite, device=device, progress=progress,
                                token=token, memory_budget=memory_budget)
    n = sum(next(iter(done.occupancy.values()), []))
    click.echo(f"{out}: {'reused, ' if done.reused else ''}{n} windows × {len(done.occupancy)} scales")
    table = done.summary if done.reused else None  # a new table has no names yet
    for s, counts in done.occupancy.items():
        click.echo(f"  scale {s}: occupancy {counts}")
        named = [table.label(s, k) for k in sorted(table.names.get(s, {}))] if table is not None else []
        if named:
            click.echo(f"    named: {', '.join(named)}")
        for what, derived in (("outlier clusters", done.outliers), ("sparsity splits", done.splits)):
            if derived.get(s):
                pairs = ", ".join(f"{t} (of {c})" for t, c in sorted(derived[s].items()))
                click.echo(f"    {what}: {pairs}")
        if done.glitch_class:
            k = done.glitch_class["cluster"]
            evidence = "" if done.glitch_class["evidence"] else "; empty: the store has no glitch evidence"
            click.echo(f"    glitch class: {k} (template share ≥ {done.glitch_class['share']:g}), "
                       f"{counts[k] if k < len(counts) else 0} windows{evidence}")


@click.command()
@click.argument("table", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--scale", type=click.IntRange(min=1), default=None, help="scale (samples) to show or name")
@click.option("--cluster", "cluster_number", type=click.IntRange(min=0), default=None, help="cluster to name")
@click.option("--as", "new_name", default=None, metavar="NAME", help="name for --cluster ('' removes its name)")
@click.option("--suggest", is_flag=True,
              help="suggest names from evidence (catalogue overlap, time of day, rarity) and store the suggestions")
@click.option("--catalog", "catalogs", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="with --suggest: catalogue(s) whose kinds may name clusters (glitch list, QuakeML, markers, "
                   "truth.json); repeatable")
@click.option("--accept", is_flag=True, help="make the stored suggestions names (names you gave are kept)")
def name(table, scale, cluster_number, new_name, suggest, catalogs, accept):
    """Show, suggest and set the names of the clusters of a cluster TABLE (.h5); names are stored in the table.

    Names stand for cluster numbers elsewhere, e.g. `unmix separate --table T --background-cluster "quiet night"`.
    """
    import numpy as np

    from unmix.analysis.naming import accept as accept_suggestions
    from unmix.analysis.naming import suggest as suggest_names
    from unmix.catalogs import read_catalogs
    from unmix.clusters import ClusterTable
    from unmix.errors import ConfigError

    t = ClusterTable.load(table)
    if (cluster_number is None) != (new_name is None):
        raise ConfigError("--cluster K and --as NAME go together")
    scales = [scale] if scale is not None else list(t.scales)
    for s in scales:
        t.scale_index(s)
    changed = False
    if new_name is not None:
        if scale is None:
            raise ConfigError("naming a cluster needs --scale: clusters of different scales are different classes")
        t.set_name(scale, cluster_number, new_name)
        changed = True
    evidence: dict[int, dict[int, str]] = {}
    if suggest:
        catalog = read_catalogs(catalogs) if catalogs else None
        for s in t.scales:
            found = suggest_names(t, s, catalog)
            t.suggestions[s] = {sg.cluster: sg.to_dict() for sg in found if sg.name}
            evidence[s] = {sg.cluster: sg.evidence for sg in found}
        changed = True
    elif catalogs:
        raise ConfigError("--catalog is evidence for --suggest")
    if accept:
        click.echo(f"{accept_suggestions(t)} suggestion(s) accepted")
        changed = True
    if changed:
        t.save(table, overwrite=True)
    for s in scales:
        occupancy = t.occupancy(s)
        click.echo(f"scale {s}:")
        for k in np.flatnonzero(occupancy):
            sg = t.suggestions.get(s, {}).get(int(k))
            hint = f"  suggested: {sg['name']}" if sg and sg["name"] != t.name_of(s, k) else ""
            click.echo(f"  {t.label(s, int(k))}: {occupancy[k]} windows{hint}")
            if int(k) in evidence.get(s, {}):
                click.echo(f"      {evidence[s][int(k)]}")


@click.command()
@click.argument("table_a", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("table_b", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--scale", type=click.IntRange(min=1), default=None, help="only this scale (default: every shared one)")
@click.option("--scale-b", type=click.IntRange(min=1), default=None,
              help="compare --scale of A with this scale of B (the same table twice: how the scales nest)")
@click.option("--copy-names", is_flag=True, help="give B's matched clusters the names of A's (B is rewritten)")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the matchings as JSON")
def match(table_a, table_b, scale, scale_b, copy_names, json_out):
    """Align the clusters of cluster table B with those of A (Hungarian method on their co-occurrence) and say how
    well they agree: two training seeds, a retrained model, two scales of one table.

    Windows are paired by their sub-window start time; per scale: ARI, the share of windows on matched clusters, and
    each cluster of A with its partner in B and the windows they share.
    """
    from unmix.atomic import atomic_path
    from unmix.clusters import ClusterTable
    from unmix.errors import ConfigError
    from unmix.matching import match_clusters, match_tables

    a, b = ClusterTable.load(table_a), ClusterTable.load(table_b)
    if scale_b is not None:
        if scale is None or table_a.resolve() != table_b.resolve():
            raise ConfigError("--scale-b compares two scales of one table: give the same table twice and --scale")
        found = {(scale, scale_b): match_clusters(a.cluster[:, a.scale_index(scale)],
                                                  b.cluster[:, b.scale_index(scale_b)])}
    else:
        found = {(s, s): m for s, m in match_tables(a, b, None if scale is None else (scale,)).items()}
    for (sa, sb), m in found.items():
        where = f"scale {sa}" if sa == sb else f"scale {sa} → {sb}"
        click.echo(f"{where}: {m.n_windows} shared windows, ARI {m.ari:.3f}, {m.agreement:.1%} on matched clusters")
        rows = {int(k): i for i, k in enumerate(m.clusters_a)}
        cols = {int(k): j for j, k in enumerate(m.clusters_b)}
        for ka, kb in sorted(m.mapping.items()):
            both = int(m.contingency[rows[ka], cols[kb]])
            click.echo(f"  {a.label(sa, ka)} → {b.label(sb, kb)}: {both} of {int(m.contingency[rows[ka]].sum())} "
                       "windows")
        for ka in sorted(set(rows) - set(m.mapping)):
            click.echo(f"  {a.label(sa, ka)} → (no partner)")
    if copy_names:
        copied = 0
        for (sa, sb), m in found.items():
            for ka, kb in m.mapping.items():
                if a.name_of(sa, ka):
                    b.set_name(sb, kb, a.name_of(sa, ka))
                    copied += 1
        b.save(table_b, overwrite=True)
        click.echo(f"{copied} name(s) copied into {table_b}")
    if json_out:
        data = [{"scale_a": sa, "scale_b": sb, "ari": m.ari, "agreement": m.agreement, "windows": m.n_windows,
                 "mapping": {str(k): int(v) for k, v in m.mapping.items()}} for (sa, sb), m in found.items()]
        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps(data, indent=1))


@click.command()
@click.argument("store", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="report directory (PNG figures per product and scale)")
@click.option("--catalog", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="catalogue to overlay: glitch list (SEISglitch/MPS, or from `unmix glitches`), QuakeML, Snuffler "
                   "markers, or the truth.json of `unmix synth`; a warning when it is for other SEED ids than the data")
@DEVICE
@click.option("--overwrite", is_flag=True, help="replace existing report files")
def report(store, model, out_dir, catalog, device, overwrite):
    """Cluster STORE with MODEL and write the analysis report (time-of-day, waveforms, embedding, overlays)."""
    from unmix.analysis.report import make_report
    from unmix.catalogs import read_catalog
    from unmix.features import FeatureStore
    from unmix.jobs import sub_progress
    from unmix.model import predict

    cat = read_catalog(catalog) if catalog is not None else None
    fs = FeatureStore(store)
    if cat is not None:
        _warn_if_other_seed_ids(cat, fs.inputs)
    with job("report") as (progress, token):
        table = predict(fs, model, device=device, progress=sub_progress(progress, 0.0, 0.2), token=token)
        written = make_report(fs, table, out_dir, catalog=cat, progress=sub_progress(progress, 0.2, 1.0),
                              token=token, overwrite=overwrite)
    click.echo(f"{out_dir}: {len(written)} files")


def _warn_if_other_seed_ids(catalog, inputs: list[dict]) -> None:
    """One warning line when the catalogue names SEED ids and none is the store's (e.g. an 02 list with 03 data)."""
    import logging

    from unmix.catalogs import seed_mismatch

    ids = [f"{r['key']}?" for entry in inputs if isinstance(entry, dict) for r in entry.get("records", [])
           if isinstance(r, dict) and "key" in r]
    line = seed_mismatch(catalog, ids)
    if line is not None:
        logging.getLogger(__name__).warning(line)


def _default_data() -> Path:
    shared = os.environ.get("UNMIX_SHARED")
    base = Path(shared) if shared else Path(__file__).resolve().parents[3] / "shared"
    return base / "data" / "insight"


@bench.command("training")
@click.option("--preset", "preset_name", type=click.Choice(["small", "paper"]), default="paper", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=None, help="override the preset's batch size")
@click.option("--steps", type=click.IntRange(min=1), default=5, show_default=True)
@DEVICE
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the results as JSON")
def bench_training(preset_name, batch_size, steps, device, json_out):
    """Seconds per training step of a preset's network at its batch size (published: 195.7 M parameters, batch
    16384, 4 scales), on random inputs: the cost of training alone, per epoch of that many windows."""
    import platform

    import torch

    from unmix.atomic import atomic_path
    from unmix.model import preset
    from unmix.model.benchmark import training_speed

    config = preset(preset_name, batch_size=batch_size)
    click.echo(f"machine: {platform.node()} {platform.machine()}, {torch.get_num_threads()} torch threads, "
               f"torch {torch.__version__}")
    r = training_speed(config, steps=steps, device=device)
    mem = f", CUDA peak {r['cuda_peak_gb']:.1f} GB" if "cuda_peak_gb" in r else ""
    click.echo(f"{preset_name} preset on {r['device']}{' (' + r['gpu'] + ')' if 'gpu' in r else ''}: "
               f"{r['parameters'] / 1e6:.1f} M parameters, batch {r['batch_size']}: {r['step_s']:.3f} s per step "
               f"(min {r['step_min_s']:.3f}), {r['windows_per_s']:.0f} windows/s{mem}")
    if json_out:
        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps(r, indent=1))


@bench.command("clustering")
@click.option("--sols", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True,
              help="length of the synthetic record")
@click.option("--seed", type=int, default=0, show_default=True, help="synthetic record seed")
@click.option("--train-seeds", default="29,30,31", show_default=True,
              help="comma-separated training seeds (one model each, same features)")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="override the small preset's epochs")
@click.option("--clusters", type=click.IntRange(min=2), default=None, help="clusters per scale")
@click.option("--preprocessing", type=click.Choice(PREPROCESSINGS), default=None)
@LOG_OFFSET
@OUTLIER_SPLIT
@SPARSITY_SPLIT
@GLITCH_SHARE
@click.option("--ensemble", type=click.IntRange(min=1), default=None,
              help="override the default preset's ensemble size (models per training seed, clustered by consensus)")
@click.option("--real/--no-real", default=True, show_default=True,
              help="also run on the real 10-sps record with its MPS glitch list")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="the shared InSight data folder (default: $UNMIX_SHARED/data/insight or ../shared/data/insight)")
@DEVICE
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the results as JSON")
def bench_clustering(sols, seed, train_seeds, epochs, clusters, preprocessing, log_offset, outlier_split,
                     sparsity_split, glitch_share, ensemble, real, data_dir, device, json_out):
    """Clustering quality of the default path (the settings of `unmix features` and `unmix train`): per-scale ARI
    against known synthetic sources, glitch-cluster precision/recall/F1, agreement between training seeds, and
    glitch-cluster precision/recall on a real record with a catalogue (feature settings for a 3-h record, see docs)."""
    import platform

    import numpy as np
    import torch

    from unmix.atomic import atomic_path
    from unmix.errors import ConfigError, InputFileError
    from unmix.model.benchmark import real_benchmark, synthetic_benchmark
    from unmix.pipeline import default_model

    try:
        seeds = tuple(int(s) for s in train_seeds.split(","))
    except ValueError:
        raise ConfigError(f"--train-seeds must be comma-separated integers, got {train_seeds!r}") from None
    config = default_model(epochs=epochs, clusters=clusters, preprocessing=preprocessing, ensemble=ensemble,
                           log_offset=log_offset, outlier_split=outlier_split, sparsity_split=sparsity_split,
                           glitch_share=glitch_share)
    click.echo(f"machine: {platform.node()} {platform.machine()}, {torch.get_num_threads()} torch threads, "
               f"torch {torch.__version__}")
    data = data_dir or _default_data()
    if real and not data.is_dir():
        raise InputFileError("real InSight data folder not found (use --data or --no-real)", data)
    results = []
    with job("bench clustering") as (progress, token):
        r = synthetic_benchmark(sols=sols, seed=seed, model=config, train_seeds=seeds, device=device,
                                progress=progress, token=token)
    results.append(r)
    f = r["features"]
    click.echo(f"synthetic: {sols} sol(s), seed {seed}, {r['windows']} windows; features window {f['window']}, hop "
               f"{f['hop']}, scales {f['scales']}, normalize {f['normalize']}; {config.clusters} clusters, "
               f"{config.epochs} epochs, ensemble {config.ensemble}, preprocessing {config.preprocessing}, log "
               f"offset {config.log_offset:g}, outlier split {config.outlier_split:g}, sparsity split "
               f"{config.sparsity_split:g}, glitch share {config.glitch_share:g}, pca {config.pca}; features "
               f"{r['times']['features_s']:.1f} s")
    click.echo(f"  labels per scale: {[vars(s)['label_counts'] for s in r['runs'][0]['scores']]}")
    for run in r["runs"]:
        parts = [f"{s.scale}: ARI {s.ari:.3f}, glitch P/R/F1 {s.glitch_precision:.2f}/{s.glitch_share:.2f}/"
                 f"{s.glitch_f1:.2f}" for s in run["scores"]]
        click.echo(f"  seed {run['seed']} ({run['training_s']:.0f} s): " + "; ".join(parts))
    for j, s in enumerate(r["runs"][0]["scores"]):
        aris = [run["scores"][j].ari for run in r["runs"]]
        f1s = [run["scores"][j].glitch_f1 for run in r["runs"] if not np.isnan(run["scores"][j].glitch_f1)]
        agree = [a["ari"][s.scale] for a in r["agreement"]]
        f1_text = f"glitch F1 mean {np.mean(f1s):.2f} (min {min(f1s):.2f})" if f1s else "no glitch windows"
        seeds_ari = f", seed agreement ARI mean {np.mean(agree):.3f} (min {min(agree):.3f})" if agree else ""
        click.echo(f"  scale {s.scale}: ARI mean {np.mean(aris):.3f} (range {min(aris):.3f}–{max(aris):.3f}), "
                   f"{f1_text}{seeds_ari}")
    for a in r["agreement"]:
        click.echo(f"  seeds {a['seeds'][0]} vs {a['seeds'][1]}: ARI "
                   + ", ".join(f"{sc} {v:.3f}" for sc, v in a["ari"].items()) + "; matched agreement "
                   + ", ".join(f"{sc} {v:.2f}" for sc, v in a["agreement"].items()))
    if real:
        with job("bench clustering (real)") as (progress, token):
            rr = real_benchmark(data, model=config, train_seeds=seeds, device=device, progress=progress, token=token)
        results.append(rr)
        f = rr["features"]
        click.echo(f"real: {rr['record']}, {rr['windows']} windows, {rr['glitch_windows']} at scale {rr['scale']} "
                   f"overlap one of {rr['glitches_in_span']} catalogued glitches; features window {f['window']}, hop "
                   f"{f['hop']}, scales {f['scales']}, normalize {f['normalize']}")
        for run in rr["runs"]:
            click.echo(f"  seed {run['seed']}: glitch cluster(s) {run['glitch_clusters']}"
                       f"{' (none glitch-dominated; the most glitch-rich)' if run['fallback'] else ''}: precision "
                       f"{run['precision']:.2f}, recall {run['recall']:.2f}, "
                       f"F1 {_f1(run['precision'], run['recall']):.2f}")
        click.echo(f"  mean precision {np.mean([x['precision'] for x in rr['runs']]):.2f}, mean recall "
                   f"{np.mean([x['recall'] for x in rr['runs']]):.2f}")
    if json_out:
        for res in results:
            for run in res["runs"]:
                if "scores" in run:
                    run["scores"] = [vars(s) for s in run["scores"]]
        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps(results, indent=1, default=str))

def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


#: The commands this module adds to ``unmix``.
COMMANDS = [train, cluster, name, match, report]

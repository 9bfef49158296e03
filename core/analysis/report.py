"""The clustering report: PNG figures of every analysis product at every scale, plus ``report.json`` and ``index.md``.

Figures are drawn with matplotlib's object API (no pyplot state), so the GUI may build a report from a worker thread.
Every file is written atomically; an existing report is replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter
from obspy import UTCDateTime

from unmix.analysis.embedding import Embedding, embed_latents
from unmix.analysis.occupancy import Occupancy, occupancy_over_time
from unmix.analysis.overlays import CatalogScores, catalog_scores, event_counts
from unmix.analysis.time_of_day import TimeOfDay, time_of_day
from unmix.analysis.waveforms import ClusterWaveforms, cluster_waveforms
from unmix.atomic import atomic_path
from unmix.catalogs import Catalog
from unmix.clusters import ClusterTable
from unmix.errors import ConfigError, OutputExistsError
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress, sub_progress
from unmix.mars_time import format_lmst, sol_float

PRODUCTS = ("time_of_day", "waveforms", "spectra", "embedding", "occupancy", "catalog")
_DPI = 110


def cluster_colors(k: int) -> list:
    """One distinct colour per cluster, the same in every figure."""
    from matplotlib import colormaps

    if k <= 9:  # tab10 without its grey, which would vanish among the grey member traces
        palette = [colormaps["tab10"](i) for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)]
    else:
        palette = [colormaps["tab20"](i) for i in range(20) if i not in (14, 15)]
    return [palette[i % len(palette)] for i in range(k)]


def scale_label(table: ClusterTable, scale: int) -> str:
    """'1024 (51.2 s)'-style label from the sub-window durations in the table."""
    iv = table.intervals[:, table.scale_index(scale)]
    d = float(np.nanmedian(iv[:, 1] - iv[:, 0])) if len(iv) else float("nan")
    if not np.isfinite(d):
        return f"{scale}"
    text = f"{d:.1f} s" if d < 120 else f"{d / 60:.1f} min" if d < 7200 else f"{d / 3600:.1f} h"
    return f"{scale} ({text})"


def _save(fig: Figure, path: Path, overwrite: bool) -> Path:
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=_DPI, format="png")
    return path


def _decimate(t: np.ndarray, y: np.ndarray, bins: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """Min/max decimation of long traces (keeps peaks and the whole span, draws fast); NaN runs stay gaps."""
    if len(y) <= 2 * bins:
        return t, y
    step = int(np.ceil(len(y) / bins))
    pad = (-len(y)) % step
    yy = np.concatenate([y, np.full(pad, np.nan)]).reshape(-1, step)
    tt = t[::step]
    finite = np.isfinite(yy)
    filled = finite.any(axis=1)
    lo = np.where(filled, np.min(np.where(finite, yy, np.inf), axis=1), np.nan)
    hi = np.where(filled, np.max(np.where(finite, yy, -np.inf), axis=1), np.nan)
    return np.repeat(tt, 2), np.column_stack([lo, hi]).ravel()


def _hour_axis(ax) -> None:
    ax.set_xlim(0, 24)
    ax.set_xticks(np.arange(0, 25, 6))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda h, _: f"{int(h) % 24:02d}h"))
    ax.set_xticks(np.arange(0, 25, 3), minor=True)


def plot_time_of_day(tod: TimeOfDay, label: str, colors: list) -> Figure:
    ks = [j for j in range(len(tod.clusters)) if tod.totals[j] > 0]
    ncols = min(3, max(len(ks), 1))
    nrows = max(int(np.ceil(len(ks) / ncols)), 1)
    fig = Figure(figsize=(4.2 * ncols, 2.2 * nrows + 0.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, squeeze=False)).ravel()
    width = float(tod.edges[1] - tod.edges[0])
    for ax, j in zip(axes, ks, strict=False):
        k = int(tod.clusters[j])
        ax.bar(tod.edges[:-1], 100 * tod.share[j], width=width, align="edge", color=colors[k], edgecolor="none")
        ax.set_title(f"cluster {k}  (n = {tod.totals[j]})", fontsize=10)
        ax.grid(alpha=0.3)
        _hour_axis(ax)
    for ax in axes[len(ks):]:
        ax.set_visible(False)
    for ax in axes[::ncols]:
        ax.set_ylabel("% of cluster")
    for ax in axes[-ncols:]:
        ax.set_xlabel("LMST time of day (sub-window midpoint)")
    if not ks:
        axes[0].text(0.5, 0.5, "no windows", ha="center", va="center", transform=axes[0].transAxes)
    fig.suptitle(f"Time of day of each cluster, scale {label}")
    return fig


def plot_waveforms(waves: dict[int, ClusterWaveforms], label: str, colors: list, n_traces: int = 10) -> Figure:
    ks = sorted(waves)
    C = len(waves[ks[0]].components) if ks else 3
    fig = Figure(figsize=(4.0 * C + 1.0, 1.7 * max(len(ks), 1) + 1.0), layout="constrained")
    axes = fig.subplots(max(len(ks), 1), C, sharex=True, squeeze=False)
    for r, k in enumerate(ks):
        w = waves[k]
        t = np.arange(w.aligned.shape[-1]) / w.sampling_rate
        best = w.best_correlated(n_traces)
        peak = max(float(np.nanmax(np.abs(w.centroid))) * 1.1, float(np.nanpercentile(np.abs(w.aligned[best]), 99.8)))
        lim = max(3.0, min(peak, 30.0))
        for c in range(C):
            ax = axes[r, c]
            for i in best[::-1]:
                ax.plot(*_decimate(t, w.aligned[i, c]), color="0.6", lw=0.5, alpha=0.5)
            ax.plot(*_decimate(t, w.centroid[c]), color=colors[k], lw=1.1)
            ax.set_ylim(-lim, lim)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
            if r == 0:
                ax.set_title(f"{w.components[c]}", fontsize=10)
        axes[r, 0].set_ylabel(f"cluster {k}\nn = {len(w.indices)}", fontsize=9)
        axes[r, -1].text(1.0, 1.0, f"ref. {format_lmst(w.starts[0], seconds=False)} LMST", fontsize=7, ha="right",
                         va="bottom", transform=axes[r, -1].transAxes)
    for ax in axes[-1]:
        ax.set_xlabel("seconds from sub-window start (aligned)")
    if not ks:
        axes[0, 0].text(0.5, 0.5, "no waveforms", ha="center", va="center", transform=axes[0, 0].transAxes)
    fig.suptitle(f"Aligned waveforms (grey: up to {n_traces} best correlated, std units) and weighted centroid, "
                 f"scale {label}")
    return fig


def plot_spectra(waves: dict[int, ClusterWaveforms], label: str, colors: list) -> Figure:
    ks = sorted(waves)
    comps = waves[ks[0]].components if ks else "UVW"
    fig = Figure(figsize=(4.2 * len(comps) + 1.2, 3.8), layout="constrained")
    axes = fig.subplots(1, len(comps), sharey=True, squeeze=False)[0]
    for c, ax in enumerate(axes):
        for k in ks:
            w = waves[k]
            f, a = w.freqs[1:], w.spectrum[c, 1:]
            ax.loglog(f, a, color=colors[k], lw=1.2, label=f"cluster {k}")
        ax.set_title(comps[c], fontsize=10)
        ax.set_xlabel("frequency (Hz)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("centroid amplitude (std units / √Hz)")
    if ks:
        axes[-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"Amplitude spectra (Welch) of the cluster centroids, scale {label}")
    return fig


def plot_embedding(emb: Embedding, clusters: np.ndarray, label: str, colors: list,
                   flagged: np.ndarray | None = None, flag_label: str = "catalogue event") -> Figure:
    fig = Figure(figsize=(7.8, 6.2), layout="constrained")
    ax = fig.subplots()
    c = clusters[emb.indices]
    size = float(np.clip(4000 / max(len(c), 1), 2, 30))
    for k in np.unique(c):
        m = c == k
        ax.scatter(emb.coords[m, 0], emb.coords[m, 1], s=size, color=colors[int(k)], alpha=0.7, linewidths=0,
                   label=f"cluster {int(k)} ({int(m.sum())})")
    if flagged is not None:
        f = flagged[emb.indices]
        if f.any():
            ax.scatter(emb.coords[f, 0], emb.coords[f, 1], s=max(size * 3, 25), marker="*", facecolor="none",
                       edgecolor="k", linewidths=0.7, label=f"{flag_label} ({int(f.sum())})")
    if emb.method == "pca" and emb.explained is not None:
        ax.set_xlabel(f"PC 1 ({100 * emb.explained[0]:.0f} % of variance)")
        ax.set_ylabel(f"PC 2 ({100 * emb.explained[1]:.0f} % of variance)")
    else:
        ax.set_xlabel("UMAP 1")
        ax.set_ylabel("UMAP 2")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"Latent space ({emb.method.upper()}), scale {label}")
    return fig


def _lmst_top_axis(ax, t_ref: float) -> None:
    """Secondary x axis in LMST (sol hh:mm) over a bottom axis in hours since ``t_ref`` (UTC)."""
    sol0 = float(sol_float(t_ref))
    per_hour = 3600.0 / 88775.244147

    def to_lmst(x):
        return (sol0 + np.asarray(x) * per_hour) * 24.0

    def from_lmst(h):
        return (np.asarray(h) / 24.0 - sol0) / per_hour

    top = ax.secondary_xaxis("top", functions=(to_lmst, from_lmst))
    top.xaxis.set_major_formatter(
        FuncFormatter(lambda h, _: f"S{int(h // 24)} {int(h % 24):02d}:{int(h * 60 % 60):02d}"))
    top.set_xlabel("LMST (sol hh:mm)")
    top.tick_params(labelsize=8)


def plot_occupancy(occ: Occupancy, label: str, colors: list) -> Figure:
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    ax = fig.subplots()
    t_ref = float(occ.edges[0])
    x = (occ.edges - t_ref) / 3600.0
    bottom = np.zeros(len(occ.share))
    for k in range(occ.share.shape[1]):
        if occ.counts[:, k].sum() == 0:
            continue
        ax.bar(x[:-1], 100 * occ.share[:, k], width=np.diff(x), bottom=100 * bottom, align="edge", color=colors[k],
               edgecolor="none", label=f"cluster {k}")
        bottom += occ.share[:, k]
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(0, 100)
    ax.set_ylabel("% of windows in bin")
    ax.set_xlabel(f"hours since {UTCDateTime(t_ref).strftime('%Y-%m-%d %H:%M:%S')} UTC")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    _lmst_top_axis(ax, t_ref)
    fig.suptitle(f"Cluster occupancy over time, scale {label}")
    return fig


def plot_catalog_scores(scores: CatalogScores, label: str, colors: list, what: str) -> Figure:
    fig = Figure(figsize=(8.5, 3.8), layout="constrained")
    ax = fig.subplots()
    ks = np.flatnonzero(scores.n_windows > 0)
    x = np.arange(len(ks))
    ax.bar(x - 0.2, np.nan_to_num(scores.precision[ks]), 0.4, color=[colors[k] for k in ks])
    ax.bar(x + 0.2, np.nan_to_num(scores.recall[ks]), 0.4, color=[colors[k] for k in ks], alpha=0.45, hatch="//")
    base = ax.axhline(scores.base_rate, color="k", lw=0.8, ls="--",
                      label=f"share of all windows ({scores.base_rate:.2f})")
    handles = [Patch(color="0.45", label="precision (flagged share of the cluster)"),
               Patch(facecolor="0.45", alpha=0.45, hatch="//", label="recall (share of flagged windows)"),
               base]
    ax.set_xticks(x, [f"{k}\n(n={scores.n_windows[k]})" for k in ks], fontsize=8)
    ax.set_xlabel("cluster")
    ax.set_ylim(0, 1)
    ax.set_ylabel("window-level score")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(handles=handles, fontsize=8)
    fig.suptitle(f"Clusters against {what} ({scores.total_flagged} windows with an event), scale {label}")
    return fig


def _catalog_flags(table: ClusterTable, catalog: Catalog, scale: int) -> tuple[np.ndarray, str]:
    """Glitch lists flag the window holding each onset; quakes flag every window they overlap."""
    kinds = {e.kind for e in catalog}
    counts = np.zeros(table.n_windows, dtype=np.int64)
    if "glitch" in kinds:
        counts += event_counts(table, catalog, scale, how="onset", kinds="glitch")
    others = sorted(kinds - {"glitch"})
    if others:
        counts += event_counts(table, catalog, scale, how="overlap", kinds=others)
    what = " + ".join(sorted(kinds)) or "catalogue"
    return counts > 0, what


def _round(x) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def make_report(
    store,
    table: ClusterTable,
    out_dir: str | Path,
    catalog: Catalog | None = None,
    progress: Progress = no_progress,
    token: CancelToken = NO_CANCEL,
    overwrite: bool = False,
    scales: list[int] | None = None,
    n_waveforms: int = 30,
    waveforms: bool = True,
    embedding_method: str = "auto",
) -> list[Path]:
    """Write the report figures (one per product and scale), ``report.json`` and ``index.md`` into ``out_dir``.

    ``store`` (a :class:`unmix.features.FeatureStore` or None) supplies the feature configuration used to re-read
    waveforms and is checked against the table. ``waveforms=False`` skips the products that re-read input files.
    Returns the written paths, ``report.json`` last.
    """
    out_dir = Path(out_dir)
    summary_path = out_dir / "report.json"
    if summary_path.exists() and not overwrite:
        raise OutputExistsError("already contains a report; pass --overwrite to replace it", out_dir)
    feature_config = None
    if store is not None:
        if store.n_windows != table.n_windows:
            raise ConfigError(f"the cluster table has {table.n_windows} windows but the feature store "
                              f"{store.n_windows}; they do not belong together", store.path)
        made_from = table.meta.get("store_config_hash")
        if made_from and made_from != store.config_hash:
            raise ConfigError(f"the cluster table was made from features with configuration {made_from}, this store "
                              f"has {store.config_hash}; they do not belong together", store.path)
        feature_config = store.config
    scales = list(table.scales if scales is None else scales)
    for s in scales:
        table.scale_index(s)
    colors = cluster_colors(table.n_clusters)
    started = time.perf_counter()
    written: list[Path] = []
    summary: dict = {"format": "unmix-report-1", "created": str(UTCDateTime()), "n_windows": table.n_windows,
                     "n_clusters": table.n_clusters, "scales": scales, "meta": table.meta,
                     "store": str(store.path) if store is not None else None,
                     "catalog": catalog.source if catalog is not None else None, "per_scale": {}}
    if table.n_windows:
        t = table.intervals[:, :, 0]
        t_lo, t_hi = float(np.nanmin(t)), float(np.nanmax(table.intervals[:, :, 1]))
        summary["span_utc"] = [str(UTCDateTime(t_lo)), str(UTCDateTime(t_hi))]
        summary["span_lmst"] = [format_lmst(UTCDateTime(t_lo)), format_lmst(UTCDateTime(t_hi))]
    cache: dict = {}
    steps = len(scales) * 5

    def stage(i: int, message: str):
        token.check()
        progress(i / steps, message)
        return sub_progress(progress, i / steps, (i + 1) / steps)

    for j, s in enumerate(scales):
        label = scale_label(table, s)
        entry: dict = {"label": label, "occupancy": table.occupancy(s).tolist()}
        base = 5 * j

        stage(base, f"time of day, scale {s}")
        tod = time_of_day(table, s)
        written.append(_save(plot_time_of_day(tod, label, colors), out_dir / f"time_of_day_{s}.png", overwrite))
        entry["time_of_day"] = [{"cluster": int(k), "windows": int(n), "peak_lmst_hour": _round(p),
                                 "mean_lmst_hour": _round(m)}
                                for k, n, p, m in zip(tod.clusters, tod.totals, tod.peak_hours(),
                                                      tod.circular_mean_hours(), strict=True)]

        flagged, what = (None, "")
        if catalog is not None:
            flagged, what = _catalog_flags(table, catalog, s)
            scores = catalog_scores(table, flagged, s)
            entry["catalog"] = scores.to_dict() | {"events": what, "best_cluster": scores.best()
                                                   if scores.total_flagged else None}
            written.append(_save(plot_catalog_scores(scores, label, colors, what), out_dir / f"catalog_{s}.png",
                                 overwrite))

        part = stage(base + 1, f"aligned waveforms, scale {s}")
        if waveforms:
            waves = cluster_waveforms(table, s, n=n_waveforms, feature_config=feature_config, cache=cache,
                                      progress=part, token=token)
            written.append(_save(plot_waveforms(waves, label, colors), out_dir / f"waveforms_{s}.png", overwrite))
            stage(base + 2, f"centroid spectra, scale {s}")
            written.append(_save(plot_spectra(waves, label, colors), out_dir / f"spectra_{s}.png", overwrite))
            entry["waveforms"] = [{"cluster": k, "snippets": int(len(w.indices)),
                                   "mean_weight": _round(float(np.mean(w.weights))),
                                   "median_abs_lag_s": _round(float(np.median(np.abs(w.lags))) / w.sampling_rate),
                                   "reference_start": str(w.starts[0])} for k, w in sorted(waves.items())]

        stage(base + 3, f"latent embedding, scale {s}")
        if table.latent is not None and table.n_windows >= 2:
            emb = embed_latents(table, s, method=embedding_method)
            fig = plot_embedding(emb, table.cluster[:, table.scale_index(s)], label, colors, flagged, what)
            written.append(_save(fig, out_dir / f"embedding_{s}.png", overwrite))
            entry["embedding"] = {"method": emb.method, "points": int(len(emb.indices)),
                                  "explained": None if emb.explained is None else [_round(v) for v in emb.explained]}

        stage(base + 4, f"occupancy over time, scale {s}")
        if table.n_windows:
            occ = occupancy_over_time(table, s)
            written.append(_save(plot_occupancy(occ, label, colors), out_dir / f"occupancy_{s}.png", overwrite))
        summary["per_scale"][str(s)] = entry

    summary["figures"] = [p.name for p in written]
    summary["seconds"] = round(time.perf_counter() - started, 2)
    index = out_dir / "index.md"
    with atomic_path(index, overwrite=True) as tmp:
        tmp.write_text(_index_markdown(summary), encoding="utf-8")
    written.append(index)
    with atomic_path(summary_path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    written.append(summary_path)
    progress(1.0, "report written")
    return written


def _index_markdown(summary: dict) -> str:
    lines = ["# Unmix clustering report", ""]
    lines.append(f"{summary['n_windows']} windows, {summary['n_clusters']} clusters per scale.")
    if "span_utc" in summary:
        lines.append(f"UTC {summary['span_utc'][0]} – {summary['span_utc'][1]}; "
                     f"LMST {summary['span_lmst'][0]} – {summary['span_lmst'][1]}.")
    if summary.get("catalog"):
        lines.append(f"Catalogue: {summary['catalog']}.")
    for s, entry in summary["per_scale"].items():
        lines += ["", f"## Scale {entry['label']}", ""]
        occ = entry["occupancy"]
        lines.append("Occupancy: " + ", ".join(f"{k}: {n}" for k, n in enumerate(occ) if n))
        if "catalog" in entry and entry["catalog"]["best_cluster"] is not None:
            best = entry["catalog"]["clusters"][entry["catalog"]["best_cluster"]]
            lines.append(f"Best match to the catalogue ({entry['catalog']['events']}): cluster {best['cluster']}, "
                         f"precision {best['precision']}, recall {best['recall']}.")
        lines.append("")
        lines += [f"![{name}]({name})" for name in summary["figures"] if name.endswith(f"_{s}.png")]
    return "\n".join(lines) + "\n"

"""End-to-end jobs behind CLI commands and GUI actions (each follows the progress/cancel protocol)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from unmix.atomic import atomic_path, write_stream
from unmix.errors import DataError, OutputExistsError
from unmix.io.read import read_file
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress, sub_progress


def run_synth(
    sols: float = 1.0,
    hours: float | None = None,
    out_dir: str | Path = "synthetic",
    seed: int = 0,
    start_sol: int | None = None,
    sampling_rate: float = 20.0,
    gaps: int = 0,
    fmt: str = "MSEED",
    overwrite: bool = False,
    progress: Progress = no_progress,
    token: CancelToken = NO_CANCEL,
    network: str | None = None,
) -> list[Path]:
    """Generate a synthetic record and write mixture, sources and truth into ``out_dir``; returns the paths.
    ``network``: the network code of the record (default: the synthetic ``SY``)."""
    from unmix.synthetic import SyntheticConfig, generate

    out_dir = Path(out_dir)
    if not overwrite and out_dir.is_dir() and ((out_dir / "truth.json").exists() or any(out_dir.glob("mixture*"))):
        raise OutputExistsError("already contains a synthetic record; pass --overwrite to replace it", out_dir)
    config = SyntheticConfig(sols=sols, hours=hours, seed=seed, start_sol=start_sol, sampling_rate=sampling_rate,
                             gaps=gaps, **({} if network is None else {"network": network}))
    record = generate(config, progress=sub_progress(progress, 0.0, 0.8), token=token)
    written = record.write(out_dir, format=fmt)
    progress(1.0, "written")
    return list(written.values())


def _snr_db(truth: np.ndarray, estimate: np.ndarray) -> float:
    err = float(np.sum((estimate - truth) ** 2))
    return float("inf") if err == 0 else float(10 * np.log10(np.sum(truth ** 2) / err))


def _target_span(table, background: int, scale_index: int, length: float, onsets: np.ndarray
                 ) -> tuple[float, float]:
    """The span of ``length`` seconds with most glitch onsets (``onsets``, POSIX s, accepted by the template fit),
    ties broken by finest-scale windows in rare clusters (< 5 % of the windows, where transients land)."""
    t0 = table.intervals[:, scale_index, 0]
    clusters = table.cluster[:, scale_index]
    share = np.bincount(clusters, minlength=table.n_clusters) / len(clusters)
    rare = (share[clusters] < 0.05) & (clusters != background)
    order = np.argsort(t0)
    t0, rare = t0[order], rare[order]
    sub = float(table.intervals[0, scale_index, 1] - table.intervals[0, scale_index, 0])
    onsets = np.sort(onsets)
    best, best_start = (-1, -1), float(t0[0])
    for a in range(len(t0)):
        if t0[a] + length > t0[-1] + sub:
            break
        b = np.searchsorted(t0, t0[a] + length - 1e-6)
        n_onsets = np.searchsorted(onsets, t0[a] + length - 30.0) - np.searchsorted(onsets, t0[a] + 5.0)
        score = (int(n_onsets), int(rare[a:b].sum()))
        if score > best:
            best, best_start = score, float(t0[a])
    return best_start, best_start + length


def _clustering_quality(record, table, truth_path: Path, rate: float, table_path: Path) -> list[str]:
    """One line per scale: ARI against the synthetic truth's classes and the glitch clusters' precision/recall/F1;
    the clusters get the names suggested from the truth (stored in the table, as ``unmix name --suggest`` does)."""
    from unmix.analysis.naming import suggest_all
    from unmix.catalogs import read_catalog
    from unmix.model.benchmark import LABELS, score_scale, synthetic_labels

    lines = []
    for s in table.scales:
        sc = score_scale(table, synthetic_labels(record, table, s), s)
        glitch = ("no glitch window" if not np.isfinite(sc.glitch_share) else
                  f"glitch clusters precision {sc.glitch_precision:.2f}, recall {sc.glitch_share:.2f}, F1 "
                  f"{sc.glitch_f1:.2f}")
        lines.append(f"clusters at {s} samples ({s / rate:.0f} s): ARI {sc.ari:.2f} against the truth "
                     f"({len(LABELS)} classes: {', '.join(LABELS)}); {glitch}")
    table.suggestions = suggest_all(table, read_catalog(truth_path))
    s = min(table.scales)
    named = [f"{k} {v['name']}" for k, v in sorted(table.suggestions.get(s, {}).items())]
    lines.append(f"suggested names at {s} samples (from the truth catalogue and time of day): "
                 + (", ".join(named) or "none"))
    table.save(table_path, overwrite=True)
    return lines


def run_demo(
    out_dir: str | Path = "unmix-demo",
    seed: int = 0,
    sols: float = 1.0,
    hours: float | None = None,
    epochs: int | None = None,
    target_minutes: float = 5.0,
    max_iter: int = 30,
    n_prior: int = 20,
    device: str = "auto",
    overwrite: bool = False,
    progress: Progress = no_progress,
    token: CancelToken = NO_CANCEL,
    echo: Callable[[str], None] = print,
) -> str:
    """The whole chain on the embedded synthetic default, with the truth to score it.

    synthetic record → read back from disk → features → train → cluster (the defaults and policy of
    :mod:`unmix.pipeline`, as ``unmix features``/``train``/``cluster`` use them) → pick the background
    cluster (the most populated one at the finest scale, as an analyst would start) and the span with most
    glitches accepted by a template fit → separate it (template fit; scatcov with the background cluster's
    snippets as prior; hybrid) → export MSEED with provenance → SNR of the recovered background against the
    synthetic truth.
    """
    from obspy import UTCDateTime

    from unmix import pipeline
    from unmix.export import export_separation
    from unmix.io import read_record
    from unmix.mars_time import format_lmst
    from unmix.plotting import plot_overview
    from unmix.synthetic import SyntheticConfig, generate

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise OutputExistsError("already holds a demo run; pass --overwrite to replace it", out_dir)
    if overwrite and out_dir.exists():
        for name in ("features.h5", "features.h5.segments", "model.pt", "clusters.h5", "separated", "target.mseed"):
            p = out_dir / name
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
    t_start = time.perf_counter()
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        echo(line)

    config = SyntheticConfig(sols=sols, hours=hours, seed=seed, start_sol=173)
    record = generate(config, progress=sub_progress(progress, 0.0, 0.05), token=token)
    data_dir = out_dir / "synthetic"
    record.write(data_dir)
    rec = read_record(data_dir / "mixture.mseed")
    glitch_onsets = [g.onset for g in record.glitches if g.kind == "glitch"]
    say(f"synthetic record: {rec.key} {rec.components} {rec.sampling_rate:g} sps, {rec.npts} samples, "
        f"LMST {format_lmst(rec.starttime)} – {format_lmst(rec.endtime)}; truth: {len(record.glitches)} "
        f"glitches/spikes, {len(record.events)} wind bursts and quakes")

    t = time.perf_counter()
    store_path = out_dir / "features.h5"
    pipeline.features([data_dir / "mixture.mseed"], store_path, device=device,
                      progress=sub_progress(progress, 0.05, 0.2), token=token)
    say(f"features: {store_path}, the default settings ({time.perf_counter() - t:.1f} s)")

    t = time.perf_counter()
    model = pipeline.train(store_path, out_dir / "model.pt", pipeline.default_model(seed=seed, epochs=epochs),
                           device=device, progress=sub_progress(progress, 0.2, 0.5), token=token).model
    table = pipeline.cluster(store_path, model.path, out_dir / "clusters.h5", device=device,
                             progress=sub_progress(progress, 0.5, 0.52), token=token).table
    scale = min(table.scales)
    si = table.scale_index(scale)
    occupancy = table.occupancy(scale)
    background = int(np.argmax(occupancy))
    say(f"model: {model.epoch} epochs ({time.perf_counter() - t:.1f} s); clusters at scale {scale}: "
        + ", ".join(f"{k}:{n}" for k, n in enumerate(occupancy) if n) + f"; background cluster = {background}")
    for line in _clustering_quality(record, table, data_dir / "truth.json", rec.sampling_rate,
                                    out_dir / "clusters.h5"):
        say(line)
    png = plot_overview(rec.stream, out_dir / "overview.png",
                        title=f"Synthetic InSight record (seed {seed}) with {len(glitch_onsets)} glitches",
                        overlays={"glitch onsets": glitch_onsets},
                        clusters={f"{s / rec.sampling_rate:.0f} s": (table.intervals[:, j], table.cluster[:, j])
                                  for j, s in enumerate(table.scales)})

    from unmix.baselines.template import TemplateDeglitcher

    fitted = TemplateDeglitcher().separate(rec.stream, sub_progress(progress, 0.5, 0.52), token)
    onsets = np.array([UTCDateTime(g["onset"]).timestamp for g in fitted.info.get("catalogue", [])])
    a, b = _target_span(table, background, si, 60.0 * target_minutes, onsets)
    target = rec.stream.slice(UTCDateTime(a), UTCDateTime(b) - 1.0 / rec.sampling_rate)
    target_path = out_dir / "target.mseed"
    for tr in target:
        tr.stats.pop("mseed", None)
    with atomic_path(target_path, overwrite=True) as tmp:
        write_stream(target, tmp, "MSEED")
    say(f"target: {format_lmst(UTCDateTime(a))} – {format_lmst(UTCDateTime(b))} ({target_minutes:g} min, the span "
        "with most glitches accepted by the template fit)")

    truth = record.mixture.copy()
    for name in ("glitches", "spikes"):
        if name in record.sources:
            for tr, src in zip(truth, record.sources[name], strict=True):
                tr.data = tr.data - src.data
    truth = truth.slice(UTCDateTime(a), UTCDateTime(b) - 1.0 / rec.sampling_rate)
    results = {}
    prior = {"table": table, "clusters": [background], "scale": scale, "n_prior": n_prior, "max_iter": max_iter,
             "device": device}
    methods = [("template", {}), ("scatcov", prior | {"removed_name": "rest"}), ("hybrid", prior)]
    for k, (method, options) in enumerate(methods):
        t = time.perf_counter()
        sub = sub_progress(progress, 0.52 + 0.46 * k / len(methods), 0.52 + 0.46 * (k + 1) / len(methods))
        report = export_separation([target_path], out_dir / "separated" / method, method=method, options=options,
                                   overwrite=True, progress=sub, token=token)
        if report.failed:
            raise DataError(f"{method} separation failed: {report.failed[0][1]}", target_path)
        background_file = next(p for p in report.outputs if ".background." in p)
        estimate = read_file(background_file)
        gains = []
        for tr_true, tr_mix in zip(truth, target, strict=True):
            est = estimate.select(channel=tr_mix.stats.channel)[0].data.astype(float)  # products: own location
            x, b_true = tr_mix.data.astype(float), tr_true.data.astype(float)
            n = min(len(x), len(b_true), len(est))
            gains.append((tr_mix.stats.channel, _snr_db(b_true[:n], x[:n]), _snr_db(b_true[:n], est[:n])))
        results[method] = gains
        say(f"{method}: " + "; ".join(f"{c} {i:+.1f} → {o:+.1f} dB (gain {o - i:+.1f})" if np.isfinite(i) else
                                      f"{c} no glitch in the span, background kept at {o:+.1f} dB"
                                      for c, i, o in gains)
            + f"  [{time.perf_counter() - t:.1f} s, {out_dir / 'separated' / method}]")
    progress(1.0, "done")
    say(f"overview: {png}")
    say(f"done in {time.perf_counter() - t_start:.1f} s")
    return "\n".join(lines)


__all__ = ["run_demo", "run_synth"]

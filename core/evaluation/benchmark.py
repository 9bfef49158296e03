"""``unmix bench separation``: every separation method on cases with known truth, and on real data against an
expert reference; results as JSON and markdown tables."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from obspy import Stream

from unmix import __version__
from unmix.atomic import atomic_path
from unmix.errors import ConfigError, DataError
from unmix.evaluation.cases import (
    BenchCase,
    add_quake,
    burst_case,
    dust_devil_case,
    glitch_case,
    gust_case,
    hard_glitch_case,
    load_background,
    prior_snippets,
    quake_case,
    select_components,
)
from unmix.evaluation.cluster_prior import build_cluster_prior
from unmix.evaluation.metrics import quake_removed, reference_metrics, separation_metrics
from unmix.io import read_record, read_records
from unmix.jobs import NO_CANCEL, Cancelled, CancelToken, Progress, labelled, no_progress, sub_progress
from unmix.separation.protect import protect_result, protecting
from unmix.separation.registry import BUILTIN
from unmix.separation.registry import methods as registry_methods
from unmix.separation.result import SeparationResult

DEFAULT_METHODS = tuple(BUILTIN)
"""The built-in methods of the registry, in its order."""
CASE_KINDS = ("glitches", "bursts", "quake", "bursts+quake", "hard-glitches", "gusts", "gusts+quake", "dust-devils",
              "dust-devils+quake")
"""glitches; wind bursts; a marsquake with glitches in its coda; glitches with rise times, overlapping pairs and
spikes; a train of short wind gusts; dust-devil tilt pulses; ``KIND+quake``: a marsquake under the first source of
``KIND`` (:data:`QUAKE_UNDER`)."""
HARD_KINDS = {"hard-glitches": hard_glitch_case, "gusts": gust_case, "dust-devils": dust_devil_case}
"""The case kinds whose sources the methods' models do not match exactly, and the function that builds each."""
QUAKE_UNDER: dict[str, Callable[[dict], tuple[float, float]]] = {
    "bursts": lambda info: (info["bursts"][0]["start_s"], info["bursts"][0]["end_s"]),
    "gusts": lambda info: (info["gusts"][0]["onset_s"], info["gusts"][0]["peak_s"] + 4 * info["gusts"][0]["tau_s"]),
    "dust-devils": lambda info: (info["dust_devils"][0]["start_s"], info["dust_devils"][0]["end_s"]),
}
"""The kinds that take a marsquake underneath (``KIND+quake``), and the span (s) of their first source it overlaps."""
PRIOR_SOURCES = ("file", "clusters")
"""Where scatcov/hybrid's prior comes from: snippets of the background file, or a cluster of a model trained on it."""


def insight_dir() -> Path:
    """The shared real-data folder: ``$UNMIX_SHARED/data/insight`` or ``../shared/data/insight`` beside the repo."""
    root = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("UNMIX_SHARED", root.parent / "shared")) / "data" / "insight"


def machine() -> dict:
    import torch

    return {"node": platform.node(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def _by_id(stream: Stream) -> dict[str, np.ndarray]:
    return {tr.id: np.asarray(tr.data, dtype=np.float64) for tr in stream}


def _run_method(name: str, options: dict, stream: Stream, progress: Progress, token: CancelToken,
                info: dict | None = None) -> tuple[SeparationResult | None, float, str | None]:
    """The result and run time, or (None, 0, reason) when the method is unavailable or fails; the result's info is
    copied into ``info`` when given."""
    from unmix.separation import get_method

    try:
        separator = get_method(name, **options)
    except Exception as exc:  # a method under development must not stop the benchmark
        return None, 0.0, f"unavailable: {type(exc).__name__}: {exc}"
    t0 = time.perf_counter()
    try:
        result = separator.separate(stream.copy(), progress, token)
    except Cancelled:
        raise
    except Exception as exc:
        return None, time.perf_counter() - t0, f"failed: {type(exc).__name__}: {exc}"
    if info is not None:
        info.update(result.info)
    return result, time.perf_counter() - t0, None


def _uses(name: str) -> tuple[str, ...]:
    """What the registry says method ``name`` uses (nothing for an unknown name: it is reported as unavailable)."""
    known = registry_methods()
    return known[name].uses if name in known else ()


def _options(name: str, method_options: dict | None, prior: np.ndarray | None) -> dict:
    opts = dict((method_options or {}).get(name, {}))
    uses = _uses(name)
    if "prior" in uses and prior is not None and "table" not in opts:
        opts.setdefault("prior", prior)
    for key in ("inventory", "device"):  # the same response and device as the other methods' runs unless given
        given = [o[key] for o in (method_options or {}).values() if key in o]
        if key in uses and given:
            opts.setdefault(key, given[0])
    return opts


def quake_span(case: BenchCase) -> tuple[float, float]:
    """The span (POSIX seconds) of a case's synthetic marsquake, as a catalogue would list it: its first to its last
    non-zero sample on any component."""
    where = np.flatnonzero(np.any(case.quake != 0, axis=0))
    tr = case.mixture[0]
    t0, fs = float(tr.stats.starttime.timestamp), float(tr.stats.sampling_rate)
    return t0 + where[0] / fs, t0 + where[-1] / fs


#: what an optimising method reports of its solve, kept with its scores (e.g. whether a run stopped early)
SOLVER_KEYS = ("n_iter", "n_eval", "n_prior", "n_problems")


def run_case(case: BenchCase, methods: Sequence[str] = DEFAULT_METHODS, method_options: dict | None = None,
             progress: Progress = no_progress, token: CancelToken = NO_CANCEL) -> dict:
    """Every method on one case: per component SNR in/out, gain and correlation of the removed part."""
    ids = [tr.id for tr in case.mixture]
    mixture = np.stack([np.asarray(tr.data, dtype=np.float64) for tr in case.mixture])
    out: dict = {"case": case.name, "info": case.info, "methods": {}}
    for k, name in enumerate(methods):
        token.check()
        sub = labelled(sub_progress(progress, k / len(methods), (k + 1) / len(methods)), f"{case.name}: {name}")
        info: dict = {}
        result, seconds, problem = _run_method(name, _options(name, method_options, case.prior), case.mixture,
                                               sub, token, info)
        if result is None:
            out["methods"][name] = {"skipped": problem, "seconds": seconds}
            continue
        variants = {name: (result, seconds, None)}
        if case.info.get("protected"):
            variants[f"{name} +protect"] = _protected_run(name, method_options, case, result, seconds, sub, token)
        for label, (res, secs, why) in variants.items():
            if res is None:
                out["methods"][label] = {"skipped": why, "seconds": secs}
                continue
            out["methods"][label] = {"seconds": secs, "components": _scores(case, ids, mixture, res)}
            if isinstance(info.get("prior"), dict):  # which snippets a prior-using method took (cluster windows)
                out["methods"][label]["prior"] = info["prior"]
            out["methods"][label].update({k: info[k] for k in SOLVER_KEYS if k in info})
    return out


def _protected_run(name: str, method_options: dict | None, case: BenchCase, result: SeparationResult,
                   seconds: float, progress: Progress, token: CancelToken
                   ) -> tuple[SeparationResult | None, float, str | None]:
    """The method's result with the quake's span kept, as `separate --protect` gives it: the plain run's result with
    its non-template parts put back there, or, for a method that separates differently when spans are protected
    (the hybrid keeps its templates inside them), a run of its own."""
    from unmix.separation import get_method

    spans = case.info["protected"]
    options = _options(name, method_options, case.prior)
    separator = get_method(name, **options)
    if protecting(separator, spans) is not separator:
        return _run_method(name, {**options, "protect": spans}, case.mixture,
                           labelled(progress, "with the quake's span kept"), token)
    copy = SeparationResult(result.background.copy(), {k: v.copy() for k, v in result.removed.items()})
    return protect_result(copy, spans), seconds, None


def _scores(case: BenchCase, ids: list[str], mixture: np.ndarray, result: SeparationResult) -> dict:
    """Per component: SNR in/out, gain, correlation of the removed part and, with a quake, the share removed."""
    background = _by_id(result.background)
    fs = case.mixture[0].stats.sampling_rate
    comps = {}
    for c, tid in enumerate(ids):
        est = background[tid][:mixture.shape[1]]
        comps[tid[-1]] = separation_metrics(mixture[c], case.truth_background[c], est)
        if case.quake is not None:
            comps[tid[-1]]["quake_removed"] = quake_removed(mixture[c] - est, case.quake[c], fs)
    return comps


def _make_case(kind: str, bg, seed: int, glitch: dict, burst: dict, quake: dict,
               hard: dict | None = None) -> BenchCase:
    """One case of ``kind``; ``hard`` maps each of :data:`HARD_KINDS` to its function's options. ``KIND+quake``:
    the case of ``KIND`` with a marsquake (``quake``'s ``amplitude`` and ``duration``) overlapping its first
    source."""
    base, _, under = kind.partition("+")
    if under:
        case = _make_case(base, bg, seed, glitch, burst, quake, hard)
        extra = {k: v for k, v in quake.items() if k in ("amplitude", "duration")}
        case = add_quake(case, bg, seed=seed, overlap=QUAKE_UNDER[base](case.info), **extra)
        case.info["kind"] = kind
        return case
    if kind in HARD_KINDS:
        return HARD_KINDS[kind](bg, seed=seed, **(hard or {}).get(kind, {}))
    if kind == "glitches":
        return glitch_case(bg, seed=seed, **glitch)
    if kind == "quake":
        return quake_case(bg, seed=seed, **quake)
    return burst_case(bg, seed=seed, **burst)


def _mean(values: list) -> float | None:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def summarise(cases: list[dict]) -> dict:
    """Mean over cases per kind, method and component (and over components: ``all``)."""
    summary: dict = {}
    for case in cases:
        kind = case["info"]["kind"]
        for name, res in case["methods"].items():
            slot = summary.setdefault(kind, {}).setdefault(name, {"_rows": {}, "_seconds": [], "skipped": None,
                                                                  "not_run": 0})
            if "skipped" in res:
                slot["skipped"] = res["skipped"]
                slot["not_run"] += 1
                continue
            slot["_seconds"].append(res["seconds"])
            for comp, m in res["components"].items():
                for key in (comp, "all"):
                    rows = slot["_rows"].setdefault(key, {})
                    for metric, v in m.items():
                        rows.setdefault(metric, []).append(v)
    for kind in summary.values():
        for slot in kind.values():
            rows = slot.pop("_rows")
            seconds = slot.pop("_seconds")
            slot["cases"] = len(seconds)
            slot["seconds_mean"] = _mean(seconds)
            order = sorted(rows, key=lambda c: (c == "all", c))
            slot["components"] = {comp: {metric: _mean(v) for metric, v in rows[comp].items()} for comp in order}
            if slot["skipped"] is None:
                del slot["skipped"], slot["not_run"]
    return summary


def run_synthetic_benchmark(
    backgrounds: Sequence[str | Path],
    kinds: Sequence[str] = CASE_KINDS,
    seeds: Sequence[int] = (0,),
    methods: Sequence[str] = DEFAULT_METHODS,
    method_options: dict | None = None,
    glitch_options: dict | None = None,
    burst_options: dict | None = None,
    quake_options: dict | None = None,
    hard_options: dict | None = None,
    components: Sequence[str] | None = None,
    prior: str = "file",
    prior_work: str | Path | None = None,
    prior_epochs: int | None = None,
    prior_window: int | None = None,
    protect_quake: bool = False,
    say: Callable[[str], None] = lambda line: None,
    progress: Progress = no_progress,
    token: CancelToken = NO_CANCEL,
) -> dict:
    """Cases of each kind (:data:`CASE_KINDS`) on each background file and seed, every method.

    ``quake_options`` go to :func:`~unmix.evaluation.cases.quake_case` (its ``amplitude`` and ``duration`` also to
    the quake under a burst); cases with a quake report the share of it each method removed (``quake_removed``).
    ``hard_options`` maps ``'hard-glitches'``, ``'gusts'`` and ``'dust-devils'`` to the options of their case
    functions (:data:`HARD_KINDS`). ``components`` (e.g. ``['V']``): every case keeps only these components
    (:func:`~unmix.evaluation.cases.select_components`), so the methods run on records of those components only.
    ``prior``: ``'file'``, snippets cut from the background away from the target; ``'clusters'``, the quietest
    clusters (together >= 10 windows) of a model trained on the background record
    (:mod:`unmix.evaluation.cluster_prior`; models and tables kept in ``prior_work``, default a temporary folder;
    ``prior_epochs``: None keeps the preset's; ``prior_window``: the feature window, None: the default, shrunk to fit
    a short record). ``say`` gets
    the lines that tell which clusters were chosen and why.
    """
    unknown = set(kinds) - set(CASE_KINDS)
    if unknown:
        raise ConfigError(f"unknown case kind(s) {sorted(unknown)}; choose from {', '.join(CASE_KINDS)}")
    if prior not in PRIOR_SOURCES:
        raise ConfigError(f"unknown prior source {prior!r}; choose from {', '.join(PRIOR_SOURCES)}")
    if not backgrounds:
        raise ConfigError("no background file given")
    if components is not None and not components:
        raise ConfigError("no component given (e.g. components=['V'])")
    jobs = [(kind, bg, seed) for kind in kinds for bg in backgrounds for seed in seeds]
    loaded: dict[str, object] = {}
    priors: dict[str, object] = {}
    cases = []
    with ExitStack() as stack:
        if prior == "clusters" and prior_work is None:
            prior_work = stack.enter_context(tempfile.TemporaryDirectory(prefix="unmix-bench-prior-"))
        for k, (kind, path, seed) in enumerate(jobs):
            token.check()
            step = sub_progress(progress, k / len(jobs), (k + 1) / len(jobs))
            bg = loaded.get(str(path)) or load_background(path)
            loaded[str(path)] = bg
            if prior == "clusters" and str(path) not in priors:
                priors[str(path)] = build_cluster_prior(bg, prior_work, prior_epochs, _device(method_options), say,
                                                        prior_window, sub_progress(step, 0.0, 0.5), token)
                step = sub_progress(step, 0.5, 1.0)
            case = _make_case(kind, bg, seed, glitch_options or {}, burst_options or {}, quake_options or {},
                              hard_options)
            if components:
                case = select_components(case, components)
            case.name = f"{kind}, {Path(path).name}, seed {seed}"
            options = method_options
            if prior == "clusters":
                chosen = _target_prior(priors[str(path)], case, say)
                case.info["prior"] = chosen.info
                options = _cluster_options(methods, method_options, chosen)
            if protect_quake and case.quake is not None:
                case.info["protected"] = [quake_span(case)]
            cases.append(run_case(case, methods, options, step, token))
    return {"mode": "synthetic", "date": datetime.now(UTC).isoformat(timespec="seconds"), "version": __version__,
            "machine": machine(), "methods": list(methods), "prior": prior,
            "components": None if components is None else list(components), "cases": cases,
            "summary": summarise(cases)}


def _target_prior(record_prior, case: BenchCase, say: Callable[[str], None]):
    """The record's quietest clusters counting only windows outside this case's target (the record-wide choice when
    fewer than 2 are left: the prior-using methods then report that they had too few windows)."""
    from unmix.evaluation.cluster_prior import QUIETEST, describe, named

    t0 = min(tr.stats.starttime for tr in case.mixture).timestamp
    t1 = max(tr.stats.endtime for tr in case.mixture).timestamp + case.mixture[0].stats.delta
    try:
        chosen = record_prior.for_target(t0, t1)
    except DataError:
        say(f"prior: {case.name}: fewer than 2 windows outside the target; {named(record_prior.clusters)} kept")
        return record_prior
    stats = {int(k): v for k, v in chosen.info["target_clusters"].items()}
    say(f"prior: {case.name}: background {named(chosen.clusters)} at scale {chosen.scale}, {QUIETEST} outside "
        f"the target ({describe(stats, chosen.scale)})")
    return chosen


def _device(method_options: dict | None) -> str:
    """The device the methods were given (the prior's model runs on it too), else 'auto'."""
    return next((o["device"] for o in (method_options or {}).values() if "device" in o), "auto")


def _cluster_options(methods: Sequence[str], method_options: dict | None, cluster_prior) -> dict:
    """``method_options`` with the cluster prior's table, cluster and scale for every method that takes a prior (as
    ``unmix separate --table T --background-cluster K --scale S``), unless it was given a prior or table itself."""
    out = {name: dict(opts) for name, opts in (method_options or {}).items()}
    for name in methods:
        opts = out.setdefault(name, {})
        if "prior" in _uses(name) and "prior" not in opts and "table" not in opts:
            opts.update(cluster_prior.prior().options())
    return out


def run_real_benchmark(
    raw: str | Path,
    reference: str | Path,
    methods: Sequence[str] = DEFAULT_METHODS,
    method_options: dict | None = None,
    prior_file: str | Path | None = None,
    prior_count: int = 20,
    prior_length: int = 2048,
    progress: Progress = no_progress,
    token: CancelToken = NO_CANCEL,
) -> dict:
    """Every method on a raw record, compared with what an expert reference removed (see
    :func:`unmix.evaluation.metrics.reference_metrics`). scatcov's prior snippets come from ``prior_file``
    (a deglitched record of another event, in counts)."""
    record = read_record(raw)
    ref = max(read_records(reference), key=lambda r: r.npts)
    ref_by_id = {tr.id: tr for tr in ref.stream}
    wants_prior = prior_file and any("prior" in _uses(name) for name in methods)
    prior = prior_snippets(prior_file, prior_count, prior_length) if wants_prior else None
    results: dict = {}
    for k, name in enumerate(methods):
        token.check()
        sub = labelled(sub_progress(progress, k / len(methods), (k + 1) / len(methods)), name)
        result, seconds, problem = _run_method(name, _options(name, method_options, prior), record.stream, sub, token)
        if result is None:
            results[name] = {"skipped": problem, "seconds": seconds}
            continue
        background = _by_id(result.background)
        comps = {}
        for tr in record.stream:
            rtr = ref_by_id.get(tr.id)
            if rtr is None:
                continue
            fs = tr.stats.sampling_rate
            shift = int(round((rtr.stats.starttime - tr.stats.starttime) * fs))
            a0, b0 = max(shift, 0), max(-shift, 0)
            n = min(tr.stats.npts - a0, rtr.stats.npts - b0)
            if n <= 0:
                continue
            raw_x = np.asarray(tr.data, dtype=np.float64)[a0:a0 + n]
            comps[tr.stats.channel[-1]] = {
                **reference_metrics(raw_x, np.asarray(rtr.data, dtype=np.float64)[b0:b0 + n],
                                    background[tr.id][a0:a0 + n]),
                "samples": int(n)}
        results[name] = {"seconds": seconds, "components": comps}
    return {"mode": "real", "date": datetime.now(UTC).isoformat(timespec="seconds"), "version": __version__,
            "machine": machine(), "raw": str(raw), "reference": str(reference),
            "prior_file": None if prior_file is None else str(prior_file), "methods": list(methods),
            "results": results}


def _fmt(v, digits: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and not np.isfinite(v):
        return "inf" if v > 0 else "–"
    return f"{v:.{digits}f}"


def markdown_tables(results: dict) -> str:
    """Markdown tables of a synthetic or real benchmark result."""
    lines: list[str] = []
    if results["mode"] == "synthetic":
        if results.get("components"):
            lines += [f"Single-component records: every case keeps only {', '.join(results['components'])} "
                      "(`--components`).", ""]
        if results.get("prior") == "clusters":
            lines += ["Prior of scatcov/hybrid: the quietest clusters (finest scale, outside the target, together "
                      ">= 10 windows) of the default model trained on each background record (`--prior clusters`).",
                      ""]
        for kind, methods in results["summary"].items():
            quake = any("quake_removed" in m for slot in methods.values() for m in slot["components"].values())
            lines += [f"**Case: {kind}** (mean over {max(m.get('cases', 0) for m in methods.values())} case(s))", "",
                      "| method | component | input SNR (dB) | output SNR (dB) | gain (dB) | corr. removed "
                      + ("| quake removed (0.5–2 Hz) " if quake else "") + "| time (s) |",
                      "|---|---|---|---|---|---|---|" + ("---|" if quake else "")]
            for name, slot in methods.items():
                if "skipped" in slot and not slot["components"]:
                    lines.append(f"| {name} | – | – | – | – | – | {slot['skipped']} |")
                    continue
                for comp, m in slot["components"].items():
                    q = f"{_fmt(m.get('quake_removed'), 3)} | " if quake else ""
                    lines.append(f"| {name} | {comp} | {_fmt(m['snr_in_db'])} | {_fmt(m['snr_out_db'])} | "
                                 f"{_fmt(m['gain_db'])} | {_fmt(m['corr_removed'], 3)} | {q}"
                                 f"{_fmt(slot['seconds_mean'], 1)} |")
            partial = [f"{name}: mean over {slot['cases']} case(s), {slot['not_run']} not run (last: "
                       f"{slot['skipped']})" for name, slot in methods.items() if slot.get("not_run") and slot["cases"]]
            lines += [""] + partial if partial else []
            lines.append("")
    else:
        lines += [f"**Real record** `{Path(results['raw']).name}` vs `{Path(results['reference']).name}`", "",
                  "| method | component | corr. inside | corr. all | rel. RMS diff. inside | rel. RMS diff. outside | "
                  "time (s) |", "|---|---|---|---|---|---|---|"]
        for name, res in results["results"].items():
            if "skipped" in res:
                lines.append(f"| {name} | – | – | – | – | – | {res['skipped']} |")
                continue
            for comp, m in res["components"].items():
                lines.append(f"| {name} | {comp} | {_fmt(m['corr_inside'], 3)} | {_fmt(m['corr_all'], 3)} | "
                             f"{_fmt(m['rel_rms_inside'], 3)} | {_fmt(m['rel_rms_outside'], 3)} | "
                             f"{_fmt(res['seconds'], 1)} |")
        lines.append("")
    return "\n".join(lines)


def write_results(results: dict, json_path: str | Path | None = None, markdown_path: str | Path | None = None,
                  overwrite: bool = False) -> list[Path]:
    """Write the JSON and/or the markdown tables atomically."""
    written = []
    if json_path is not None:
        with atomic_path(json_path, overwrite=overwrite) as tmp:
            tmp.write_text(json.dumps(_clean(results), indent=1, default=_jsonable))
        written.append(Path(json_path))
    if markdown_path is not None:
        with atomic_path(markdown_path, overwrite=overwrite) as tmp:
            tmp.write_text(markdown_tables(results) + "\n")
        written.append(Path(markdown_path))
    return written


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def _clean(v):
    """Non-finite floats become null (JSON has no NaN/inf)."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if isinstance(v, float | np.floating) and not np.isfinite(v):
        return None
    return v

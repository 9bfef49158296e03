"""``unmix bench scale``: time, throughput and peak memory of each step as the data set grows.

Every measured step runs in a fresh Python process (:func:`measure`), which reports its wall time and its own peak
resident memory (``getrusage``), so one step's memory never hides another's. Stores of many sols are made by tiling
the feature rows of one extracted sol (:func:`tiled_store`): shapes, dtypes, chunking and the on-disk layout are
those of a real store; only the values repeat. Feature extraction itself is measured on a real synthetic sol, alone
and appended to each store.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from unmix.errors import UnmixError
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress

#: Sols the benchmark builds stores of by default.
DEFAULT_SOLS = (2, 8, 32, 128)
#: Mission size the table is extrapolated to.
MISSION_SOLS = 1400
#: Steps measured: per store size (append, train, predict), and separate on files of :data:`SEPARATE_SOLS`.
STEPS = ("append", "train", "predict", "separate")
#: Lengths (sols in one miniSEED file) that ``separate`` is measured on.
SEPARATE_SOLS = (1, 4, 16)


def _child_entry(step: str, args: dict) -> dict:
    """Run one step in this (fresh) process and return its figures (allocator tuned as the ``unmix`` command
    tunes it, so the memory is what a user's run takes)."""
    from unmix.allocator import tune_allocator

    tune_allocator()
    t0 = time.perf_counter()
    figures = _STEP_FUNCTIONS[step](**args) or {}
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"step": step, "wall_s": wall, "peak_rss_bytes": peak, **figures}


def measure(step: str, args: dict, token: CancelToken = NO_CANCEL, threads: int | None = None) -> dict:
    """Run ``step`` with ``args`` in a fresh interpreter; its wall time, peak RSS and step figures.

    The child is stopped when ``token`` is cancelled (checked every 0.2 s).
    """
    code = ("import json, sys; from unmix.scaling import _child_entry; "
            "print('UNMIX-SCALE ' + json.dumps(_child_entry(sys.argv[1], json.loads(sys.argv[2]))))")
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.Popen([sys.executable, "-c", code, step, json.dumps(args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    while proc.poll() is None:
        if token.cancelled:
            proc.kill()
            proc.wait()
            token.check()
        time.sleep(0.2)
    out, err = proc.communicate()
    lines = [ln for ln in out.splitlines() if ln.startswith("UNMIX-SCALE ")]
    if proc.returncode != 0 or not lines:
        tail = (err.strip().splitlines() or ["no output"])[-1]
        raise UnmixError(f"step {step} failed: {tail}")
    return json.loads(lines[-1][len("UNMIX-SCALE "):])


def _extract(inputs: list[str], store: str) -> dict:
    from unmix import pipeline
    from unmix.features import FeatureStore

    before = FeatureStore(store).n_windows if Path(store).exists() else 0
    pipeline.features(inputs, store, pipeline.default_features(), device="cpu")
    return {"windows": FeatureStore(store).n_windows - before}


def _train(store: str, out: str, memory_budget: int | None = None) -> dict:
    from unmix import pipeline
    from unmix.model import Training

    kw = {} if memory_budget is None else {"memory_budget": memory_budget}
    training = Training(store, out, pipeline.default_model(epochs=1), device="cpu", overwrite=True, **kw)
    training.run()
    return {"windows": int(training.store.n_windows), "members": len(training.model.networks),
            "streaming": bool(training.streaming)}


def _predict(store: str, model: str, out: str, memory_budget: int | None = None) -> dict:
    """What ``unmix cluster STORE MODEL OUT.h5`` does: the table written batch by batch."""
    from unmix import pipeline
    from unmix.features import FeatureStore
    from unmix.model import load_model, stream

    fs = FeatureStore(store)
    done = pipeline.cluster(fs.path, model, out, overwrite=True, device="cpu", memory_budget=memory_budget)
    need = stream.in_memory_bytes(fs, load_model(model).config.pca, fitting=False)
    return {"windows": int(sum(next(iter(done.occupancy.values())))),
            "streaming": need > stream.memory_budget(memory_budget)}


def _separate(record: str, out: str) -> dict:
    """What ``unmix separate FILE --out DIR`` does with the default method (a long file is read day by day)."""
    from unmix.export import export_separation
    from unmix.pipeline import DEFAULT_SEPARATION_METHOD

    report = export_separation([record], out, DEFAULT_SEPARATION_METHOD, {}, overwrite=True)
    if report.failed:
        raise UnmixError(f"separating {record} failed: {report.failed[0][1]}")
    return {"method": DEFAULT_SEPARATION_METHOD}


_STEP_FUNCTIONS: dict[str, Callable[..., dict]] = {"extract": _extract, "train": _train, "predict": _predict,
                                                   "separate": _separate}


def rate(figures: dict) -> float | None:
    """Windows per second of a step's figures."""
    return figures["windows"] / figures["wall_s"] if figures.get("windows") and figures["wall_s"] > 0 else None


def synthetic_sol(folder: Path, seed: int, start_sol: int = 200) -> Path:
    """One synthetic sol as miniSEED in ``folder`` (made once)."""
    from unmix.pipeline import write_synthetic_input

    return write_synthetic_input({"sols": 1.0, "seed": seed, "start_sol": start_sol}, folder)


def tiled_record(sol: str | Path, out: str | Path, sols: int) -> Path:
    """One miniSEED file of ``sols`` copies of the one-sol record ``sol``, each following the last without a gap."""
    from obspy import Stream, read

    from unmix.atomic import atomic_path, write_stream

    one = read(str(sol), format="MSEED")
    st = Stream()
    for k in range(sols):
        for tr in one:
            c = tr.copy()
            c.stats.starttime += k * tr.stats.npts * tr.stats.delta
            st += c
    st.merge(method=1)
    with atomic_path(out, overwrite=True) as tmp:
        write_stream(st, tmp, "MSEED")
    return Path(out)


def tiled_store(base: str | Path, out: str | Path, sols: int, token: CancelToken = NO_CANCEL) -> int:
    """A store of ``sols`` inputs, each the windows of the one-input store ``base`` shifted by a whole sol.

    Written as ``unmix features`` writes a store (one segment per input, then the index), so reading it costs what
    reading a real store of that size costs. Returns the number of windows.
    """
    import hashlib

    import numpy as np

    from unmix.features import FeatureStore
    from unmix.features.segments import segment_name, segments_dir, write_index, write_segment
    from unmix.features.store import FileFeatures
    from unmix.mars_time import SECONDS_PER_SOL

    src = FeatureStore(base)
    if len(src.inputs) != 1:
        raise UnmixError(f"{base}: a tiled store is made from a store of one input")
    out = Path(out)
    config, entry = src.config, src.inputs[0]
    feats = {s: src.features(s, complex_values=True).astype(np.complex64) for s in src.scales}
    glitch = {s: src.glitch_energy(s) for s in src.scales} if config.glitch_evidence else {}
    intervals = {s: src.intervals(s) for s in src.scales}
    rec_index = src.windows()["record"].astype(np.int32)
    folder = segments_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    inputs, table = [], []
    for k in range(sols):
        token.check()
        shift = k * SECONDS_PER_SOL
        digest = hashlib.sha256(f"{entry['sha256']}-tile-{k}".encode()).hexdigest()
        records = [{**r, "start": str(_shift(r["start"], shift)), "end": str(_shift(r["end"], shift))}
                   for r in entry["records"]]
        tile = FileFeatures(f"tile-{k:04d}-of-{Path(entry['path']).name}", digest, int(entry["size"]),
                            {s: [feats[s]] for s in src.scales}, {s: [intervals[s] + shift] for s in src.scales},
                            records, [], [rec_index], {s: [g] for s, g in glitch.items()})
        name = segment_name(digest, config)
        ident = write_segment(tile, config, folder / name)
        table.append({"name": name, "n_windows": tile.n_windows, "first_input": k, "id": ident})
        inputs.append(tile.entry())
    write_index(out, config, inputs, table)
    return sum(t["n_windows"] for t in table)


def _shift(time_text: str, seconds: float):
    from obspy import UTCDateTime

    return UTCDateTime(time_text) + seconds


def _ensure_store(path: Path, make: Callable[[], object]) -> None:
    if not path.exists():
        make()


def run_scale_benchmark(work: str | Path, sols: Sequence[int] = DEFAULT_SOLS, steps: Sequence[str] = STEPS,
                        memory_budget: int | None = None, progress: Progress = no_progress,
                        token: CancelToken = NO_CANCEL) -> dict:
    """Build the synthetic sols and tiled stores in ``work`` and measure every step at every size.

    ``alone``: extracting one new sol into a fresh store. Per size: ``append`` (the same sol added to the store),
    ``train`` (one epoch of the default model), ``predict`` (the cluster table of every window). ``separate``: the
    default separation of one file of each length in :data:`SEPARATE_SOLS` (the base sol tiled). Stores, checkpoints
    and tiled files stay in ``work`` (a later run reuses the sols, the base store and the tiled files).
    """
    from unmix.jobs import sub_progress

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    base_sol, new_sol = synthetic_sol(work / "sols", 1), synthetic_sol(work / "sols", 2, start_sol=700)
    base = work / "base.h5"
    _ensure_store(base, lambda: measure("extract", {"inputs": [str(base_sol)], "store": str(base)}, token))
    fresh = work / "alone.h5"
    _remove_store(fresh)
    results = {"alone": measure("extract", {"inputs": [str(new_sol)], "store": str(fresh)}, token), "sizes": []}
    for i, n in enumerate(sols if set(steps) - {"separate"} else ()):
        step = sub_progress(progress, i / len(sols), (i + 1) / len(sols))
        step(0.0, f"{n} sols: building the store")
        store = work / f"tiled-{n}.h5"
        _remove_store(store)
        row = {"sols": n, "windows": tiled_store(base, store, n, token)}
        budget = {} if memory_budget is None else {"memory_budget": memory_budget}
        if "train" in steps or "predict" in steps:
            step(0.2, f"{n} sols: training one epoch")
            row["train"] = measure("train", {"store": str(store), "out": str(work / f"model-{n}.pt"), **budget},
                                   token)
        if "predict" in steps:
            step(0.6, f"{n} sols: clustering")
            row["predict"] = measure("predict", {"store": str(store), "model": str(work / f"model-{n}.pt"),
                                                 "out": str(work / f"clusters-{n}.h5"), **budget}, token)
        if "append" in steps:
            step(0.8, f"{n} sols: appending one sol")
            _remove_store(fresh)  # the same sol alone just before, so both see the same load on a shared machine
            row["alone"] = measure("extract", {"inputs": [str(new_sol)], "store": str(fresh)}, token)
            row["append"] = measure("extract", {"inputs": [str(new_sol)], "store": str(store)}, token)
        results["sizes"].append(row)
        _remove_store(store)
        step(1.0, f"{n} sols done")
    if "separate" in steps:
        results["separate"] = []
        for n in SEPARATE_SOLS:
            progress(1.0, f"separating a file of {n} sol(s)")
            record = work / "sols" / f"tiled-{n}.mseed"
            _ensure_store(record, lambda n=n, record=record: tiled_record(base_sol, record, n))
            out = work / f"separated-{n}"
            results["separate"].append({"sols": n, **measure("separate", {"record": str(record), "out": str(out)},
                                                               token)})
    return results


def _remove_store(path: Path) -> None:
    import shutil

    from unmix.features.segments import segments_dir

    path.unlink(missing_ok=True)
    shutil.rmtree(segments_dir(path), ignore_errors=True)


def extrapolate(results: dict, step: str, sols: int = MISSION_SOLS) -> dict | None:
    """Least-squares line of wall time against windows over the measured sizes, evaluated at ``sols`` sols."""
    import numpy as np

    rows = [r for r in results["sizes"] if step in r]
    if step == "append" and rows:  # costs what extracting the sol costs, whatever the store's size
        ratio = max(r["append"]["wall_s"] / r.get("alone", results["alone"])["wall_s"] for r in rows)
        return {"sols": sols, "windows": rows[-1]["append"]["windows"], "ratio": ratio,
                "wall_s": ratio * results["alone"]["wall_s"],
                "peak_rss_bytes": max(r[step]["peak_rss_bytes"] for r in rows)}
    if len(rows) < 2:
        return None
    n = np.array([r["windows"] for r in rows], float)
    t = np.array([r[step]["wall_s"] for r in rows], float)
    slope, intercept = np.polyfit(n, t, 1)
    per_sol = rows[-1]["windows"] / rows[-1]["sols"]
    return {"sols": sols, "windows": per_sol * sols, "wall_s": float(intercept + slope * per_sol * sols),
            "seconds_per_window": float(slope), "peak_rss_bytes": max(r[step]["peak_rss_bytes"] for r in rows)}


def format_table(results: dict) -> str:
    """The measured figures as a markdown table, with the mission extrapolation per step."""
    gb = 1024**3
    alone = results["alone"]
    lines = [f"extracting one new sol alone: {alone['wall_s']:.1f} s, {alone['windows']} windows, peak RSS "
             f"{alone['peak_rss_bytes'] / gb:.2f} GB", "",
             "| sols | windows | step | wall (s) | windows/s | peak RSS (GB) | note |", "|---|---|---|---|---|---|---|"]
    for row in results["sizes"]:
        for step in ("append", "train", "predict"):
            if step not in row:
                continue
            f = row[step]
            r = rate(f)
            note = ""
            if step == "append":
                ref = row.get("alone", alone)
                note = f"{f['wall_s'] / ref['wall_s']:.2f}× extracting it alone ({ref['wall_s']:.1f} s)"
            elif "streaming" in f:
                note = ("streamed" if f["streaming"] else "in memory") + (
                    f", {f['members']} members" if f.get("members", 1) > 1 else "")
            lines.append(f"| {row['sols']} | {row['windows']} | {step} | {f['wall_s']:.1f} | "
                         f"{'–' if r is None else f'{r:.0f}'} | {f['peak_rss_bytes'] / gb:.2f} | {note} |")
    if results.get("separate"):
        lines += ["", "| separate: sols in one file | wall (s) | s per sol | peak RSS (GB) | method |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['sols']} | {r['wall_s']:.1f} | {r['wall_s'] / r['sols']:.1f} | "
                  f"{r['peak_rss_bytes'] / gb:.2f} | {r.get('method', '')} |" for r in results["separate"]]
    lines += ["", f"| extrapolated to {MISSION_SOLS} sols (one machine) | windows | wall | peak RSS (GB) |",
              "|---|---|---|---|"]
    for step in ("append", "train", "predict"):
        e = extrapolate(results, step)
        if e is None:
            continue
        what = (f"one sol appended (≤ {e['ratio']:.2f}× extracting it alone)" if step == "append" else
                "one epoch" if step == "train" else "every window clustered")
        lines.append(f"| {step}: {what} | {e['windows']:.0f} | {_duration(e['wall_s'])} | "
                     f"{e['peak_rss_bytes'] / gb:.2f} (largest measured) |")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else (f"{seconds / 60:.1f} min" if seconds < 7200 else
                                                       f"{seconds / 3600:.2f} h")

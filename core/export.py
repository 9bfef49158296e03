"""Batch separation and export: one file per separated source per input, plus a provenance JSON.

For every input file (files, directories and globs, see :func:`core.io.expand_inputs`) the records are read, each
is separated with the configured method, and ``DIR/<stem>.<source>.<ext>`` is written for the background and for
each removed source (SAC: one file per trace, ``<stem>.<source>.<trace id>[.<k>].sac``), then
``DIR/<stem>.provenance.json`` (tool version, configuration, model hash, input SHA-256, method, timings). The
provenance file is written last, so its presence marks a finished input: a re-run with the same input and
configuration skips it. Existing outputs are never replaced without ``overwrite``; inputs never, at all. A bad
input is reported and the batch goes on; :class:`ExportReport` lists what failed.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from obspy import Stream

from core import __version__
from core.atomic import atomic_path
from core.errors import ConfigError, OutputExistsError, UnmixError
from core.jobs import Cancelled, CancelToken, Progress, no_progress, sub_progress

FORMATS = {"MSEED": "mseed", "SAC": "sac"}
PROVENANCE_SUFFIX = ".provenance.json"


@dataclass
class ExportPlan:
    """What to do with every input (picklable, so that worker processes can rebuild the separator)."""

    out_dir: str
    method: str = "template"
    options: dict = field(default_factory=dict)
    fmt: str = "MSEED"
    overwrite: bool = False
    gap_policy: str = "split"
    max_fill: int = 0
    resample_to: float | None = None
    model: dict | None = None  # {"path": ..., "sha256": ...} when the prior comes from a trained model
    sources: tuple[str, ...] | None = None  # names of the sources to write (None: all)

    def configuration(self) -> dict:
        """JSON-ready configuration; arrays and tables are summarised by shape and digest."""
        config = {"method": self.method, "options": {k: _summary(v) for k, v in sorted(self.options.items())},
                  "format": self.fmt, "gap_policy": self.gap_policy, "max_fill": self.max_fill,
                  "resample_to": self.resample_to, "model": self.model}
        if self.sources is not None:
            config["sources"] = list(self.sources)
        return config


@dataclass
class ExportReport:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{len(self.done)} separated, {len(self.skipped)} already done, {len(self.failed)} failed "
                f"({len(self.outputs)} file(s) written)")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _summary(value):
    if isinstance(value, np.ndarray):
        return {"array": list(value.shape), "dtype": str(value.dtype),
                "sha256": hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()}
    if hasattr(value, "n_windows") and hasattr(value, "scales"):  # a ClusterTable
        return {"cluster_table": {"windows": int(value.n_windows), "scales": list(value.scales),
                                  "meta": _json_safe(getattr(value, "meta", {}))}}
    return _json_safe(value)


def _json_safe(value):
    try:
        return json.loads(json.dumps(value, default=_jsonable))
    except (TypeError, ValueError):
        return str(value)


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return {"array": list(v.shape)} if v.size > 64 else v.tolist()
    if isinstance(v, Path):
        return str(v)
    return str(v)


def output_stems(files: list[Path]) -> dict[Path, str]:
    """Output name stem per input: the file name without extension; where names collide, prefixed with as many
    parent folder names as it takes to tell them apart (a path hash as the last resort)."""
    stems = {f: f.stem for f in files}
    for depth in range(1, 8):
        counts: dict[str, int] = {}
        for s in stems.values():
            counts[s] = counts.get(s, 0) + 1
        clashing = [f for f in files if counts[stems[f]] > 1]
        if not clashing:
            return stems
        for f in clashing:
            parents = [p for p in f.resolve().parent.parts[-depth:] if p.strip("/")]
            stems[f] = "_".join([*parents, f.stem])
    return {f: f"{f.stem}_{hashlib.sha1(str(f.resolve()).encode()).hexdigest()[:8]}" for f in files}


def _stream_files(stream: Stream, out_dir: Path, stem: str, source: str, fmt: str) -> list[tuple[Path, Stream]]:
    ext = FORMATS[fmt]
    if fmt != "SAC":
        return [(out_dir / f"{stem}.{source}.{ext}", stream)]
    out, seen = [], {}
    for tr in stream:
        k = seen.get(tr.id, 0)
        seen[tr.id] = k + 1
        many = len(stream.select(id=tr.id)) > 1
        out.append((out_dir / f"{stem}.{source}.{tr.id}{f'.{k}' if many else ''}.{ext}", Stream([tr])))
    return out


def _finished(prov_path: Path, sha: str, config: dict) -> bool:
    """True when a provenance file says this input was done with this configuration and its outputs exist."""
    try:
        prov = json.loads(prov_path.read_text())
    except (OSError, ValueError):
        return False
    same = prov.get("input_sha256") == sha and prov.get("configuration") == config
    return same and all((prov_path.parent / name).exists() for name in prov.get("outputs", []))


def process_file(path: str | Path, stem: str, plan: ExportPlan, inputs: frozenset[str] = frozenset(),
                 progress: Progress | None = None, token: CancelToken | None = None) -> tuple[str, list[str]]:
    """Separate one input file and write its outputs; returns ('done' | 'skipped', written paths)."""
    from core.io import read_records
    from core.separation import get_method

    progress = progress or no_progress
    path = Path(path)
    out_dir = Path(plan.out_dir)
    t_start = time.perf_counter()
    sha = file_sha256(path)
    config = _json_safe(plan.configuration())
    prov_path = out_dir / f"{stem}{PROVENANCE_SUFFIX}"
    if prov_path.exists() and not plan.overwrite:
        if _finished(prov_path, sha, config):
            return "skipped", []
        raise OutputExistsError("results of another input or configuration exist; pass --overwrite to replace them",
                                prov_path)
    records = read_records(path, plan.gap_policy, plan.max_fill, plan.resample_to)
    t_read = time.perf_counter()
    separator = get_method(plan.method, **plan.options)
    sources: dict[str, Stream] = {"background": Stream()}
    infos = []
    for k, record in enumerate(records):
        if token is not None:
            token.check()
        result = separator.separate(record.stream, sub_progress(progress, k / len(records), (k + 1) / len(records)),
                                    token)
        sources["background"] += result.background
        for name, st in result.removed.items():
            sources.setdefault(name, Stream())
            sources[name] += st
        infos.append({"record": record.key, "start": str(record.starttime), "end": str(record.endtime),
                      "npts": record.npts, "notes": record.notes, "info": _json_safe(result.info)})
    t_sep = time.perf_counter()
    targets = [t for name, st in sources.items() if plan.sources is None or name in plan.sources
               for t in _stream_files(st, out_dir, stem, name, plan.fmt)]
    for target, _ in targets:
        if str(target.resolve()) in inputs:
            raise OutputExistsError("an output would replace an input file; choose another --out", target)
        if target.exists() and not plan.overwrite:
            raise OutputExistsError("already exists; pass --overwrite to replace it", target)
    written = []
    for target, st in targets:
        for tr in st:
            tr.stats.pop("mseed", None)  # the input's encoding (e.g. Steim2 integers) does not fit float samples
        with atomic_path(target, overwrite=plan.overwrite) as tmp:
            st.write(str(tmp), format=plan.fmt)
        written.append(str(target))
    t_write = time.perf_counter()
    provenance = {
        "tool": "unmix", "version": __version__, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": str(path), "input_sha256": sha, "method": plan.method, "configuration": config,
        "model": plan.model, "records": infos, "outputs": [Path(w).name for w in written],
        "timings": {"read_s": t_read - t_start, "separate_s": t_sep - t_read, "write_s": t_write - t_sep,
                    "total_s": t_write - t_start},
    }
    with atomic_path(prov_path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(provenance, indent=1, default=_jsonable))
    written.append(str(prov_path))
    progress(1.0, path.name)
    return "done", written


def _guarded(path: str, stem: str, plan: ExportPlan, inputs: frozenset[str]) -> tuple[str, list[str] | str]:
    """Worker entry: never raises for a bad input, returns ('failed', message) instead."""
    try:
        return process_file(path, stem, plan, inputs)
    except UnmixError as exc:
        return "failed", exc.message
    except Exception as exc:  # keep going past anything a single file triggers
        return "failed", f"{path}: {type(exc).__name__}: {exc}"


def export_separation(inputs, out_dir: str | Path, method: str = "template", options: dict | None = None,
                      fmt: str = "MSEED", workers: int = 0, overwrite: bool = False, gap_policy: str = "split",
                      max_fill: int = 0, resample_to: float | None = None, model: dict | None = None,
                      sources: list[str] | None = None, progress: Progress | None = None,
                      token: CancelToken | None = None) -> ExportReport:
    """Separate every input and export the sources (see the module docstring); ``sources`` limits the written
    sources by name (e.g. ``['background']``). ``workers > 1`` runs files in that many processes. Failures of single
    files are collected in the report, not raised."""
    from core.io import expand_inputs

    progress = progress or no_progress
    fmt = fmt.upper()
    if fmt not in FORMATS:
        raise ConfigError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if workers < 0:
        raise ConfigError("--workers must be ≥ 0")
    report = ExportReport()
    files: list[Path] = []
    for item in [inputs] if isinstance(inputs, str | Path) else list(inputs):
        try:
            files += [f for f in expand_inputs(item) if f not in files]
        except UnmixError as exc:  # a missing file or an empty pattern fails on its own, the rest goes on
            report.failed.append((str(item), exc.message))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError("--out must be a directory", out)
    out.mkdir(parents=True, exist_ok=True)
    plan = ExportPlan(str(out), method, dict(options or {}), fmt, overwrite, gap_policy, max_fill, resample_to, model,
                      tuple(sources) if sources is not None else None)
    from core.separation import get_method

    get_method(method, **plan.options)  # configuration errors stop the batch before any file is touched
    stems = output_stems(files)
    inputs_set = frozenset(str(f.resolve()) for f in files)

    def record(path: Path, status: str, payload) -> None:
        if status == "failed":
            report.failed.append((str(path), payload))
        else:
            (report.done if status == "done" else report.skipped).append(str(path))
            report.outputs += payload

    if workers <= 1:
        for k, f in enumerate(files):
            if token is not None:
                token.check()
            sub = sub_progress(progress, k / len(files), (k + 1) / len(files))
            try:
                status, payload = process_file(f, stems[f], plan, inputs_set, sub, token)
            except Cancelled:
                raise
            except UnmixError as exc:
                status, payload = "failed", exc.message
            except Exception as exc:
                status, payload = "failed", f"{f}: {type(exc).__name__}: {exc}"
            record(f, status, payload)
            progress((k + 1) / len(files), f.name)
        return report
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending = {pool.submit(_guarded, str(f), stems[f], plan, inputs_set): f for f in files}
        done_count = 0
        try:
            while pending:
                finished, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                if token is not None and token.cancelled:
                    raise Cancelled("cancelled by user")
                for fut in finished:
                    f = pending.pop(fut)
                    status, payload = fut.result()
                    record(f, status, payload)
                    done_count += 1
                    progress(done_count / len(files), f.name)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return report


def report_dict(report: ExportReport) -> dict:
    return asdict(report)

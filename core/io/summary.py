"""What was read: a structured summary of records (ids, rates, spans, gaps, overlaps, LMST) for ``unmix info``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from unmix.io.read import read_stream
from unmix.io.record import build_records
from unmix.jobs import NO_CANCEL, CancelToken, Progress, no_progress
from unmix.mars_time import format_lmst


def summarize(
    inputs: str | Path | Iterable[str | Path],
    gap_policy: str = "split",
    max_fill: int = 0,
    resample_to: float | None = None,
    progress: Progress = no_progress,
    token: CancelToken = NO_CANCEL,
    allow_damaged: bool = False,
) -> dict:
    """Read ``inputs`` and describe every trace read and every record built from them (JSON-friendly).

    ``allow_damaged``: damaged files are read (see :func:`unmix.io.read.read_file`) and their damage is listed.
    """
    stream = read_stream(inputs, progress=progress, token=token, allow_damaged=allow_damaged)
    records = build_records(stream, gap_policy=gap_policy, max_fill=max_fill, resample_to=resample_to,
                            allow_damaged=allow_damaged)
    files = sorted({tr.stats.get("unmix_source", "") for tr in stream} - {""})
    out_records = []
    for r in records:
        out_records.append({
            "key": r.key,
            "channels": [tr.id for tr in r.stream],
            "components": r.components,
            "sampling_rate": r.sampling_rate,
            "start": str(r.starttime),
            "end": str(r.endtime),
            "npts": r.npts,
            "duration_s": float(r.endtime - r.starttime) + 1.0 / r.sampling_rate,
            "lmst_start": format_lmst(r.starttime),
            "lmst_end": format_lmst(r.endtime),
            "gaps": [g.describe() for g in r.gaps],
            "overlaps": [o.describe() for o in r.overlaps],
            "notes": list(r.notes),
            "damage": list(r.damage),
            "sources": list(r.sources),
        })
    traces = [
        {"id": tr.id, "start": str(tr.stats.starttime), "end": str(tr.stats.endtime), "npts": tr.stats.npts,
         "sampling_rate": tr.stats.sampling_rate, "source": tr.stats.get("unmix_source", ""),
         "format": tr.stats.get("_format", ""), "damage": list(tr.stats.get("unmix_damage", []))}
        for tr in stream
    ]
    return {"files": files, "traces": traces, "records": out_records}


def _duration(seconds: float) -> str:
    h, rem = divmod(int(round(seconds)), 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def format_summary(summary: dict, verbose: bool = False) -> str:
    """Human-readable text of :func:`summarize`'s result."""
    lines = [f"{len(summary['files'])} file(s), {len(summary['traces'])} trace(s), "
             f"{len(summary['records'])} record(s)"]
    for i, r in enumerate(summary["records"], 1):
        lines.append(
            f"[{i}] {r['key']}{{{r['components']}}}  {r['sampling_rate']:g} sps  {r['npts']} samples "
            f"({_duration(r['duration_s'])})"
        )
        lines.append(f"    UTC   {r['start']} – {r['end']}")
        lines.append(f"    LMST  {r['lmst_start']} – {r['lmst_end']}")
        lines.append(f"    gaps: {len(r['gaps'])}   overlaps: {len(r['overlaps'])}")
        shown = r["gaps"] + r["overlaps"]
        for item in shown if verbose else shown[:4]:
            lines.append(f"      {item}")
        if not verbose and len(shown) > 4:
            lines.append(f"      … {len(shown) - 4} more (use --verbose)")
        for note in r["notes"]:
            lines.append(f"    note: {note}")
        for damage in r.get("damage", []):
            lines.append(f"    DAMAGED: {damage}")
        files = r["sources"] if verbose else [Path(s).name for s in r["sources"]]
        lines.append(f"    from: {', '.join(files)}")
    return "\n".join(lines)

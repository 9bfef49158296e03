"""End-to-end jobs behind CLI commands and GUI actions (each follows the progress/cancel protocol)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from core.errors import OutputExistsError
from core.jobs import CancelToken, Progress, no_progress, sub_progress


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
    progress: Progress | None = None,
    token: CancelToken | None = None,
) -> list[Path]:
    """Generate a synthetic record and write mixture, sources and truth into ``out_dir``; returns the paths."""
    from core.synthetic import SyntheticConfig, generate

    progress = progress or no_progress
    out_dir = Path(out_dir)
    if not overwrite and out_dir.is_dir() and ((out_dir / "truth.json").exists() or any(out_dir.glob("mixture*"))):
        raise OutputExistsError("already contains a synthetic record; pass --overwrite to replace it", out_dir)
    config = SyntheticConfig(sols=sols, hours=hours, seed=seed, start_sol=start_sol, sampling_rate=sampling_rate,
                             gaps=gaps)
    record = generate(config, progress=sub_progress(progress, 0.0, 0.8), token=token)
    written = record.write(out_dir, format=fmt)
    progress(1.0, "written")
    return list(written.values())


def run_demo(
    out_dir: str | Path = "unmix-demo",
    seed: int = 0,
    sols: float = 1.0,
    progress: Progress | None = None,
    token: CancelToken | None = None,
    echo: Callable[[str], None] = print,
) -> str:
    """The main job on the embedded default: a synthetic sol → read back from disk → overview figure.

    It grows into the full chain (features → model → clusters → separation → export) as those parts land.
    """
    from core.io import read_record
    from core.mars_time import format_lmst
    from core.plotting import plot_overview
    from core.synthetic import SyntheticConfig, generate

    progress = progress or no_progress
    out_dir = Path(out_dir)
    t_start = time.perf_counter()
    config = SyntheticConfig(sols=sols, seed=seed, start_sol=173)
    record = generate(config, progress=sub_progress(progress, 0.0, 0.4), token=token)
    data_dir = out_dir / "synthetic"
    record.write(data_dir)
    progress(0.5, "reading back")
    if token is not None:
        token.check()
    rec = read_record(data_dir / "mixture.mseed")
    progress(0.6, "plotting")
    glitch_onsets = [g.onset for g in record.glitches if g.kind == "glitch"]
    png = plot_overview(
        rec.stream, out_dir / "overview.png",
        title=f"Synthetic InSight record (seed {seed}) with {len(glitch_onsets)} glitches",
        overlays={"glitch onsets": glitch_onsets},
    )
    progress(1.0, "done")
    elapsed = time.perf_counter() - t_start
    return "\n".join([
        f"synthetic record: {rec.key} {rec.components} {rec.sampling_rate:g} sps, {rec.npts} samples",
        f"  UTC  {rec.starttime} – {rec.endtime}",
        f"  LMST {format_lmst(rec.starttime)} – {format_lmst(rec.endtime)}",
        f"  truth: {len(record.glitches)} glitches/spikes, {len(record.events)} wind bursts and quakes",
        f"data:     {data_dir}",
        f"overview: {png}",
        f"done in {elapsed:.1f} s",
    ])


__all__ = ["run_demo", "run_synth"]

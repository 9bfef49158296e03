"""Static figures (matplotlib, no Qt) for the CLI: record overviews with UTC and LMST time axes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from obspy import Stream, UTCDateTime  # noqa: E402

from unmix.atomic import atomic_path  # noqa: E402
from unmix.mars_time import sol_float  # noqa: E402


def _minmax(t: np.ndarray, y: np.ndarray, bins: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Min/max decimation so that millions of samples draw fast and keep their peaks."""
    if len(y) <= 2 * bins:
        return t, y
    edges = np.linspace(0, len(y), bins + 1).astype(int)
    lo, hi = np.minimum.reduceat(y, edges[:-1]), np.maximum.reduceat(y, edges[:-1])
    tt = t[edges[:-1]]
    return np.repeat(tt, 2), np.column_stack([lo, hi]).ravel()


def plot_overview(stream: Stream, path: str | Path, title: str = "", overlays: dict[str, list] | None = None,
                  clusters: dict[str, tuple] | None = None) -> Path:
    """One panel per trace, UTC on the bottom axis and LMST (sol + time of day) on the top axis; PNG written atomically.

    ``overlays`` maps a label to a list of UTCDateTime marks (e.g. glitch onsets) drawn as vertical ticks.
    ``clusters`` maps a row label (e.g. ``'51 s'``) to ``(intervals, cluster)`` of a cluster table at one scale
    (POSIX seconds, shape (N, 2), and cluster numbers): drawn as a coloured band per scale under the traces.
    """
    from unmix.analysis.occupancy import CLUSTER_COLOURS, occupancy_runs

    n, bands = len(stream), list((clusters or {}).items())
    fig, axes = plt.subplots(n + len(bands), 1, figsize=(12, 1.9 * n + 0.45 * len(bands) + 1.2), sharex=True,
                             squeeze=False, gridspec_kw={"height_ratios": [1.0] * n + [0.22] * len(bands)})
    axes, band_axes = axes[:n, 0], axes[n:, 0]
    for ax, (label, (intervals, cluster)) in zip(band_axes, bands, strict=True):
        starts, ends, k = occupancy_runs(np.asarray(intervals, float), np.asarray(cluster))
        x0 = np.array([UTCDateTime(t).matplotlib_date for t in starts])
        x1 = np.array([UTCDateTime(t).matplotlib_date for t in ends])
        ax.broken_barh(list(zip(x0, x1 - x0, strict=True)), (0, 1),
                       facecolors=[CLUSTER_COLOURS[int(c) % len(CLUSTER_COLOURS)] for c in k])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, labelpad=22, fontsize=8)
    t_ref = min(tr.stats.starttime for tr in stream)
    for ax, tr in zip(axes, stream, strict=True):
        t = tr.times("matplotlib")
        tt, yy = _minmax(t, np.asarray(tr.data, dtype=float))
        ax.plot(tt, yy, lw=0.5, color="k")
        ax.set_ylabel(tr.stats.channel, rotation=0, labelpad=22)
        ax.grid(alpha=0.3)
        for k, (label, marks) in enumerate((overlays or {}).items()):
            if marks:
                x = [m.matplotlib_date for m in marks]
                ax.vlines(x, 0.88, 1.0, transform=ax.get_xaxis_transform(), color=f"C{k + 1}", lw=1.0, label=label)
    if overlays and any(overlays.values()):
        axes[0].legend(loc="upper right", fontsize=8)
    bottom = band_axes[-1] if len(band_axes) else axes[-1]
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    bottom.set_xlabel(f"UTC from {t_ref.strftime('%Y-%m-%d %H:%M:%S')}" + (" (bands: clusters per scale)"
                                                                            if len(band_axes) else ""))
    t0_num = t_ref.matplotlib_date
    sol0 = float(sol_float(t_ref))
    sols_per_day = 86400.0 / 88775.244147

    def to_lmst(x):
        return (sol0 + (np.asarray(x) - t0_num) * sols_per_day) * 24.0

    def from_lmst(h):
        return t0_num + (np.asarray(h) / 24.0 - sol0) / sols_per_day

    top = axes[0].secondary_xaxis("top", functions=(to_lmst, from_lmst))
    top.xaxis.set_major_formatter(
        plt.FuncFormatter(lambda h, _: f"S{int(h // 24)} {int(h % 24):02d}:{int(h * 60 % 60):02d}"))
    top.set_xlabel("LMST (sol hh:mm)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path

"""GUI benchmark at mission scale (#19): opening a large cluster table and panning/zooming the views that show it.

Run headless: ``python benchmarks/gui_scale_bench.py`` (8, 32 and 128 sols; ``--sols 8 32 128 1400`` adds the
mission, ~3.5 GB of memory and a 1.5 GB temporary file; ``--no-record`` skips the browser overlay, which needs a
generated one-sol record). Tables come from :func:`unmix.scale_data.synthetic_cluster_table`, saved to HDF5 and
opened as File → Open cluster table does (a job reads it, then the views fill).

Open = from the open request to the table's views on screen: table read (job), legend and scales, time-of-day
histograms and latent space (the cluster-views job), the occupancy-over-time index (job), then both the time-of-day
and the over-time tabs painted (``QWidget.grab``; the over-time tab in its default layout, sols × LMST beyond 3
sols). Lateness: how late a 10-ms timer ticks while that runs (the GUI thread stays free when it is small). Frame =
set the view's x range, redraw what the view redraws on a range change, and let the event loop paint (wall time, and
this thread's CPU time: what a frame costs without the other processes of a shared machine). Zoom frames halve the
span from the whole table to 1/4096 of it, and back; pan frames step a quarter of the span at eight zoom levels.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def _wait(app, done, timeout_s: float) -> bool:
    t_end = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > t_end:
            return False
        app.processEvents()
        time.sleep(0.002)
    return True


def _window(tmp: Path):
    import pyqtgraph as pg
    from PySide6.QtCore import QSettings

    from unmix.gui.main_window import MainWindow
    from unmix.gui.settings import Preferences

    pg.setConfigOptions(antialias=False, foreground="k", background="w")
    win = MainWindow(Preferences(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)))
    win.resize(1366, 768)
    win.show()
    return win


def _record(app, win) -> None:
    """A generated one-sol record from the table's first sol, shown in the browser."""
    seen = {"spec": False}
    win.spectrogram_shown.connect(lambda *_: seen.__setitem__("spec", True))
    win.generate_synthetic(sols=1.0, seed=0, start_sol=200)
    if not _wait(app, lambda: seen["spec"], 600):
        raise SystemExit("the synthetic record did not open")


def _open(app, win, path: Path) -> tuple[float, float, np.ndarray]:
    """Seconds to the table's views on screen, seconds to the table read, and the 10-ms timer's lateness (ms)."""
    from PySide6.QtCore import Qt, QTimer

    results = win.results
    seen: dict[str, float] = {}
    results.table_shown.connect(lambda: seen.setdefault("table", time.perf_counter()))
    results.products_shown.connect(lambda _s: seen.setdefault("products", time.perf_counter()))
    results.timeline_shown.connect(lambda: seen.setdefault("timeline", time.perf_counter()))
    late: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        late.append((now - last[0]) * 1e3 - 10.0)
        last[0] = now

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(10)
    timer.timeout.connect(tick)
    t0 = time.perf_counter()
    last[0] = t0
    timer.start()
    results.open_table(path)
    if not _wait(app, lambda: {"table", "products", "timeline"} <= set(seen), 900):
        raise SystemExit(f"opening {path.name} timed out ({sorted(seen)} arrived)")
    panel = results.panel
    panel.tabs.setCurrentWidget(panel.histograms)
    win.grab()
    panel.tabs.setCurrentWidget(panel.timeline)
    win.grab()
    opened = time.perf_counter() - t0
    timer.stop()
    return opened, seen["table"] - t0, np.maximum(np.array(late[1:] or [0.0]), 0.0)


def _sequences(lo: float, hi: float) -> tuple[list, list]:
    """Zoom ranges (whole → 1/4096 → whole, centred on the middle third) and pan ranges (quarter steps at 8 levels)."""
    centre = lo + (hi - lo) * 0.37
    zoom = []
    for level in [*range(0, 13), *range(11, -1, -1)]:
        half = (hi - lo) / 2 ** (level + 1)
        a = min(max(centre - half, lo), hi - 2 * half)
        zoom.append((a, a + 2 * half))
    pan = []
    for level in (0.5, 1, 2, 3, 5, 7, 9, 11):
        width = (hi - lo) / 2**level
        a = lo + (hi - lo - width) * 0.2
        for step in range(8):
            b = min(a + step * width / 4, hi - width)
            pan.append((b, b + width))
    return zoom, pan


def _frames(app, set_range, ranges) -> tuple[np.ndarray, np.ndarray]:
    wall, cpu = [], []
    for a, b in ranges[:3]:  # warm up
        set_range(a, b)
        app.processEvents()
    for a, b in ranges:
        t0, c0 = time.perf_counter(), time.thread_time()
        set_range(a, b)
        app.processEvents()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    return np.array(wall) * 1e3, np.array(cpu) * 1e3


def _view_frames(app, win, record: bool) -> dict[str, tuple]:
    """Zoom and pan frames (ms, wall and CPU) of each view that shows the table."""
    panel = win.results.panel
    out = {}
    panel.tabs.setCurrentWidget(panel.timeline)
    timeline = panel.timeline
    timeline.set_layout("timeline")
    zoom, pan = _sequences(*timeline.data.span)
    out["over time: timeline"] = (_frames(app, timeline.set_x_range, zoom), _frames(app, timeline.set_x_range, pan))
    if timeline.data.clock is not None:
        timeline.set_layout("clock")
        clock = timeline.clock_plot.getViewBox()
        first, n_sols = timeline.data.first_sol, timeline.data.clock[0].shape[0]

        def clock_range(a: float, b: float) -> None:
            clock.setRange(xRange=(a, b), padding=0)

        zoom, pan = _sequences(first, first + n_sols)
        out["over time: sols x LMST"] = (_frames(app, clock_range, zoom[:17]), _frames(app, clock_range, pan[:40]))
    panel.tabs.setCurrentWidget(panel.latent)
    vb = panel.latent.plot.getViewBox()
    (x0, x1), (y0, y1) = vb.viewRange()
    cy, hy = (y0 + y1) / 2, (y1 - y0) / 2

    def latent_range(a: float, b: float) -> None:
        f = (b - a) / (x1 - x0)
        vb.setRange(xRange=(a, b), yRange=(cy - hy * f, cy + hy * f), padding=0)

    zoom, pan = _sequences(x0, x1)
    out[f"latent space ({sum(len(s.data) for s in panel.latent.scatters)} points)"] = (
        _frames(app, latent_range, zoom[:17]), _frames(app, latent_range, pan[:40]))
    if record:
        view = win.waveform

        def browser_range(a: float, b: float) -> None:
            view.set_x_range(a, b)
            view.refresh()

        zoom, pan = _sequences(*win.displays[win.current_key].span)
        out["browser + clusters overlay (1-sol record)"] = (_frames(app, browser_range, zoom[:19]),
                                                            _frames(app, browser_range, pan))
    return out


def _stats(ms: np.ndarray) -> str:
    return f"{np.median(ms):.1f} / {np.percentile(ms, 95):.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sols", type=float, nargs="+", default=[8, 32, 128], help="table lengths (sols)")
    parser.add_argument("--no-record", action="store_true", help="skip the browser overlay (no generated record)")
    parser.add_argument("--keep", type=Path, default=None, help="write the tables here (default: a temporary folder)")
    args = parser.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    from unmix.gui.workers import cancel_all
    from unmix.scale_data import synthetic_cluster_table

    app = QApplication.instance() or QApplication(sys.argv)
    print(f"# gui_scale_bench {time.strftime('%Y-%m-%d %H:%M')} | {platform.node()} | {os.cpu_count()} CPUs | "
          f"load {os.getloadavg()[0]:.2f} | OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} | "
          f"QT_QPA_PLATFORM={os.environ['QT_QPA_PLATFORM']} | window 1366x768")
    opens, frames = [], []
    with tempfile.TemporaryDirectory() as tmpdir:
        folder = args.keep or Path(tmpdir)
        folder.mkdir(parents=True, exist_ok=True)
        for sols in args.sols:
            t0 = time.perf_counter()
            table = synthetic_cluster_table(sols)
            made = time.perf_counter() - t0
            n = table.n_windows
            path = folder / f"scale_{sols:g}sols.h5"
            t0 = time.perf_counter()
            table.save(path, overwrite=True)
            saved = time.perf_counter() - t0
            del table
            win = _window(folder)
            if not args.no_record:
                _record(app, win)
            opened, read, late = _open(app, win, path)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
            opens.append(f"| {sols:g} | {n:,} | {made:.1f} / {saved:.1f} | {path.stat().st_size / 2**20:.0f} | "
                         f"{opened:.2f} | {read:.2f} | {np.percentile(late, 95):.1f} / {late.max():.0f} | {rss:.1f} |")
            print(opens[-1], flush=True)
            for view, ((zw, zc), (pw, pc)) in _view_frames(app, win, not args.no_record).items():
                frames.append(f"| {sols:g} | {view} | {zw.size} / {pw.size} | {_stats(zw)} | {_stats(pw)} | "
                              f"{_stats(np.r_[zc, pc])} |")
                print(frames[-1], flush=True)
            win.close()
            win.deleteLater()
            app.processEvents()
            cancel_all(10000)
            if args.keep is None:
                path.unlink()
    print("\n| sols | windows | make / save table (s) | file (MiB) | open (s) | table read (s) | "
          "lateness p95 / max (ms) | peak RSS so far (GiB) |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(opens))
    print("\n| sols | view | zoom / pan frames | zoom median / p95 (ms) | pan median / p95 (ms) | "
          "CPU median / p95 (ms) |")
    print("|---|---|---|---|---|---|")
    print("\n".join(frames))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

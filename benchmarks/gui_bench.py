"""GUI benchmark (#17): open time, pan/zoom frame time of the waveform browser, event-loop lateness during jobs, and
the cancel latency of a scatcov separation run as the GUI runs it.

Run headless: ``python benchmarks/gui_bench.py`` (``--quick`` skips the 10-sol record and shortens the jobs,
``--frames-only`` skips the jobs). Frame
time = set the browser's x range, redraw its traces from the min/max pyramids (what the 20-ms refresh timer does) and
paint the window (``QWidget.grab``); the sequence zooms from the whole record to ~1/256 of it and pans at each
level. Lateness: a 10-ms QTimer measures how late each of its ticks comes while a job runs on the worker pool.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

RAW = Path("/work/shared/data/insight/raw/XB.ELYSE.02.BH_2019-07-26T1149_S0235b_raw.mseed")


def _wait(app, done, timeout_s: float) -> bool:
    """Spin the event loop until ``done()`` or the timeout; True when done."""
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


def _open(app, win, start) -> float:
    """Seconds from starting the load job to the traces and first spectrogram on screen."""
    seen = {"job": False, "spec": False}
    win.jobs.job_finished.connect(lambda *_: seen.__setitem__("job", True))
    win.spectrogram_shown.connect(lambda *_: seen.__setitem__("spec", True))
    t0 = time.perf_counter()
    start()
    if not _wait(app, lambda: seen["job"] and seen["spec"], 900):
        raise SystemExit("opening timed out")
    win.grab()
    return time.perf_counter() - t0


def _stack(win) -> None:
    """Show every loaded record stacked in the browser (what its "All records" toggle does)."""
    view = win.waveform
    if not hasattr(view, "set_records"):
        raise SystemExit("this browser cannot stack records")
    view.set_records(win.displays)
    view.set_stacked(True)


def _frames(app, win) -> tuple[np.ndarray, np.ndarray]:
    """Frame times (ms, wall and this thread's CPU) over a zoom-and-pan sequence of the browser: set the range,
    redraw the traces (what the browser's 20-ms refresh timer does) and let the event loop paint every view the
    range change touched (browser, linked spectrogram). CPU time is what the frame costs without the other
    processes on a shared machine."""
    view = win.waveform
    lo, hi = win.displays[win.current_key].span
    ranges = []
    for level in range(0, 9):
        width = (hi - lo) / 2**level
        for step in range(6):
            a = lo + (hi - lo - width) * step / 5
            ranges.append((a, a + width))
    for _ in range(3):  # warm up
        view.set_x_range(lo, hi)
        view.refresh()
        app.processEvents()
    wall, cpu = [], []
    for a, b in ranges:
        t0, c0 = time.perf_counter(), time.thread_time()
        view.set_x_range(a, b)
        view.refresh()
        app.processEvents()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    return np.array(wall) * 1e3, np.array(cpu) * 1e3


def _lateness(app, start_job, seconds: float):
    """p50/p95/max lateness (ms) of a 10-ms timer while ``start_job()``'s worker runs (cancelled after ``seconds``),
    and how the job ended (finished, failed, or cancelled and how long the cancel took)."""
    from PySide6.QtCore import QTimer

    late: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        late.append((now - last[0]) * 1e3 - 10.0)
        last[0] = now

    timer = QTimer()
    timer.setTimerType(__import__("PySide6.QtCore", fromlist=["Qt"]).Qt.TimerType.PreciseTimer)
    timer.setInterval(10)
    timer.timeout.connect(tick)
    worker = start_job()
    ended = {"done": False, "status": "finished"}
    worker.signals.done.connect(lambda: ended.__setitem__("done", True))
    worker.signals.failed.connect(lambda msg, _tb: ended.__setitem__("status", f"failed: {msg}"))
    last[0] = time.perf_counter()
    timer.start()
    _wait(app, lambda: ended["done"], seconds)
    timer.stop()
    cancel_s = None
    if not ended["done"]:
        t0 = time.perf_counter()
        worker.cancel()
        _wait(app, lambda: ended["done"], 120)
        cancel_s = time.perf_counter() - t0
    arr = np.maximum(np.array(late[1:] or [0.0]), 0.0)
    ended_as = ended["status"] if cancel_s is None else f"cancelled after {seconds:g} s in {cancel_s:.2f} s"
    return float(np.median(arr)), float(np.percentile(arr, 95)), float(arr.max()), len(arr), ended_as


def _cancel_latency(app, worker, after_s: float) -> float | None:
    """Start ``worker``, cancel it ``after_s`` seconds later, return the seconds until it is done (None when it
    ended before)."""
    state = {"done": False}
    worker.signals.done.connect(lambda: state.__setitem__("done", True))
    worker.start()
    if _wait(app, lambda: state["done"], after_s):
        return None
    t0 = time.perf_counter()
    worker.cancel()
    _wait(app, lambda: state["done"], 600)
    return time.perf_counter() - t0


def _separation_cancel(app, stream, delays=(2.0, 10.0, 45.0)) -> list[tuple[float, float | None]]:
    """Cancel latency (s) of a scatcov separation of a 10-minute span (the Separate form's visible-span target) run
    on the GUI's worker (tasks.separate_record), cancelled ``delays`` seconds after its start: during the prior
    statistics (setup) and during the L-BFGS iterations. The prior: 24 snippets of the record, as an array."""
    from unmix.gui import tasks
    from unmix.gui.workers import Worker

    t0 = stream[0].stats.starttime
    span = stream.slice(t0 + 1800, t0 + 2400)
    n = 4096
    starts = np.linspace(0, stream[0].stats.npts - n - 1, 24).astype(int)
    prior = np.stack([np.stack([np.asarray(t.data[s:s + n], float) for t in stream]) for s in starts])
    out = []
    for delay in delays:
        worker = Worker(tasks.separate_record, span, "scatcov", {"prior": prior, "max_iter": 1000}, title="sep")
        out.append((delay, _cancel_latency(app, worker, delay)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 10-sol record; shorter jobs")
    parser.add_argument("--frames-only", action="store_true", help="only the open and frame-time table (no jobs)")
    parser.add_argument("--no-stacked", action="store_true", help="skip the two stacked records")
    parser.add_argument("--job-seconds", type=float, default=None, help="run each job this long, then cancel it")
    parser.add_argument("--jobs-only", action="store_true", help="only the event-loop lateness during jobs")
    args = parser.parse_args(argv)
    job_s = args.job_seconds or (15.0 if args.quick else 30.0)

    from PySide6.QtWidgets import QApplication

    from unmix.gui import tasks
    from unmix.gui.workers import Worker, cancel_all

    app = QApplication.instance() or QApplication(sys.argv)
    print(f"# gui_bench {time.strftime('%Y-%m-%d %H:%M')} | {platform.node()} | {os.cpu_count()} CPUs | "
          f"load {os.getloadavg()[0]:.2f} | OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} | "
          f"QT_QPA_PLATFORM={os.environ['QT_QPA_PLATFORM']} | window 1366x768")
    cases = []
    if RAW.exists():
        cases.append(("S0235b 2 h (20 sps)", lambda w: w.open_paths([str(RAW)])))
    cases.append(("synthetic 1 sol", lambda w: w.generate_synthetic(sols=1.0, seed=0)))
    if not args.no_stacked:
        cases.append(("2 × synthetic 1 sol, stacked", lambda w: w.generate_synthetic(sols=1.0, seed=0)))
    if not args.quick:
        cases.append(("synthetic 10 sols", lambda w: w.generate_synthetic(sols=10.0, seed=0)))
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        print("| record | open (s) | frames | median frame (ms) | p95 frame (ms) | max (ms) | CPU median / p95 (ms) |")
        print("|---|---|---|---|---|---|---|")
        for name, start in ([] if args.jobs_only else cases):
            win = _window(tmp)
            opened = _open(app, win, lambda w=win, s=start: s(w))
            if name.endswith("stacked"):
                _open(app, win, lambda w=win: w.generate_synthetic(sols=1.0, seed=1))
                _stack(win)
            ms, cpu = _frames(app, win)
            print(f"| {name} | {opened:.2f} | {ms.size} | {np.median(ms):.1f} | {np.percentile(ms, 95):.1f} | "
                  f"{ms.max():.1f} | {np.median(cpu):.1f} / {np.percentile(cpu, 95):.1f} |", flush=True)
            win.close()
            win.deleteLater()
            app.processEvents()
        cancel_all(10000)
        if RAW.exists() and not args.frames_only:
            win = _window(tmp)
            _open(app, win, lambda: win.open_paths([str(RAW)]))
            store, model, quick_model = tmp / "features.h5", tmp / "model.pt", tmp / "model-2.pt"
            stream = win.records[win.current_key][0].stream
            config = {"window": 16384, "hop": 1024, "scales": [1024, 4096, 16384]}
            print("\n| job | lateness p50 (ms) | p95 (ms) | max (ms) | ticks | job ended |")
            print("|---|---|---|---|---|---|")
            for name, start in (
                ("features (S0235b)", lambda: Worker(tasks.compute_features, [str(RAW)], str(store), config,
                                                     device="cpu").start()),
                ("training (small preset)", lambda: Worker(tasks.train_model, str(store), str(model),
                                                           device="cpu").start()),
                ("training (small preset, 2 epochs, to the end)", lambda: Worker(
                    tasks.train_model, str(store), str(quick_model), epochs=2, device="cpu").start()),
                ("clustering (that model)", lambda: Worker(tasks.cluster_windows, str(store), str(quick_model),
                                                           str(tmp / "table.h5"), device="cpu").start()),
                ("separation (template, S0235b)", lambda: Worker(tasks.separate_record, stream, "template").start()),
                ("loading (S0235b)", lambda: Worker(tasks.load_files, [str(RAW)]).start()),
            ):
                needs = quick_model if name.startswith("clustering") else store
                if name.startswith(("training", "clustering")) and not needs.exists():
                    print(f"| {name} | – | – | – | – | {needs.name} missing |")
                    continue
                # jobs run to completion (later ones need their outputs), except the full training: cancelled
                to_end = name != "training (small preset)"
                p50, p95, mx, n, ended = _lateness(app, start, 600.0 if to_end else job_s)
                print(f"| {name} | {p50:.1f} | {p95:.1f} | {mx:.1f} | {n} | {ended} |", flush=True)
            records = win.records[win.current_key]
            lat = _separation_cancel(app, records[0].stream)
            print("\nscatcov separation of 10 min (GUI worker), cancel latency: " + ", ".join(
                f"cancelled at {d:g} s: " + ("ended first" if v is None else f"{v:.2f} s") for d, v in lat))
            win.close()
        cancel_all(10000)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

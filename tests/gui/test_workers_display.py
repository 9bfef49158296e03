"""Worker protocol (signals, throttling, error mapping), display pyramids, time axis and project file."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from unmix.errors import DataError, InputFileError  # noqa: E402

pytestmark = pytest.mark.gui


def _chatty(n: int, progress=None, token=None) -> int:
    for i in range(n):
        progress(i / n, "step")
        time.sleep(0.0001)
    return n


def _user_error(progress=None, token=None):
    raise DataError("trace has NaN samples", "/data/x.mseed")


def _bug(progress=None, token=None):
    return 1 / 0


def _slow(progress=None, token=None):
    for _ in range(1000):
        token.check()
        time.sleep(0.01)


def test_worker_throttles_progress_and_returns(qtbot):
    from unmix.gui.workers import Worker

    worker = Worker(_chatty, 3000)
    seen: list[float] = []
    worker.signals.progress.connect(lambda f, m: seen.append(f))
    with qtbot.waitSignal(worker.signals.finished, timeout=10000) as blocker:
        worker.start()
    assert blocker.args == [3000]
    assert len(seen) < 3000 / 10  # ~10 per second, not one per call


@pytest.mark.parametrize(("fn", "message", "has_details"), [
    (_user_error, "/data/x.mseed: trace has NaN samples", False),
    (_bug, "ZeroDivisionError: division by zero", True),
])
def test_worker_maps_errors(qtbot, fn, message, has_details):
    from unmix.gui.workers import Worker

    worker = Worker(fn)
    with qtbot.waitSignal(worker.signals.failed, timeout=5000) as blocker:
        worker.start()
    got_message, details = blocker.args
    assert got_message == message
    assert ("Traceback" in details) is has_details


def test_worker_cancel(qtbot):
    from unmix.gui.workers import Worker

    worker = Worker(_slow)
    with qtbot.waitSignal(worker.signals.cancelled, timeout=5000):
        worker.start()
        qtbot.wait(50)
        worker.cancel()


def test_pyramid_envelope_matches_data():
    from unmix.gui.display import MinMaxPyramid

    rng = np.random.default_rng(0)
    y = np.cumsum(rng.standard_normal(2_000_003))
    pyr = MinMaxPyramid(y, t0=10.0, dt=0.05)
    x, env = pyr.query(10.0, pyr.t1, 1000)
    assert env.size <= 2 * 1000 * 4 + 8
    assert env.min() == pytest.approx(y.min(), rel=1e-6) and env.max() == pytest.approx(y.max(), rel=1e-6)
    assert x[0] >= 10.0 and x[-1] <= pyr.t1
    xs, raw = pyr.query(20.0, 30.0, 1000)  # 200 samples: raw, exact
    assert np.allclose(raw, y[np.round((xs - 10.0) / 0.05).astype(int)].astype(np.float32))


def test_time_axis_modes():
    from obspy import UTCDateTime

    from unmix.gui.views.time_axis import TimeAxis

    axis = TimeAxis()
    t_ref = UTCDateTime("2019-07-26T11:49:06.411").timestamp
    axis.set_reference(t_ref)
    spacing, values = axis.tickValues(0.0, 7200.0, 1000)[0]
    assert spacing == 900 and [axis.format(v, spacing) for v in values[:2]] == ["12:00", "12:15"]
    axis.set_mode("lmst")
    spacing, values = axis.tickValues(0.0, 7200.0, 1000)[0]
    assert axis.format(values[0], spacing).startswith("S0235 19:")
    assert axis.format(values[0], spacing).endswith(("00", "15", "30", "45"))
    axis.set_mode("relative")
    assert axis.format(90.0, 60) == "0:01:30" and axis.format(1.5, 0.5) == "1.5 s"


def test_project_roundtrip_and_errors(tmp_path):
    from unmix.gui.project import Project

    project = Project(inputs=["/data/a.mseed"], parameters={"axis_mode": "lmst"}, results={"store": "f.h5"})
    path = project.save(tmp_path / "p.unmix.json")
    again = Project.load(path)
    assert again == project and again.path == path
    (tmp_path / "other.json").write_text('{"format": "something"}')
    with pytest.raises(InputFileError, match="not an Unmix project"):
        Project.load(tmp_path / "other.json")
    with pytest.raises(InputFileError, match="no such project"):
        Project.load(tmp_path / "missing.unmix.json")


def test_entry_point_help(capsys):
    from unmix.gui.main import main

    assert main(["unmix-gui", "--help"]) == 0
    assert "usage: unmix-gui" in capsys.readouterr().out


def test_eta_format():
    from unmix.gui.views.jobs import format_eta

    assert [format_eta(s) for s in (4.4, 75, 3725)] == ["4 s", "1 min 15 s", "1 h 02 min"]

"""One writer per output: a feature store and a separation output folder each admit one run at a time."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from tests.conftest import make_stream
from unmix.cli import main
from unmix.export import export_separation
from unmix.lock import FOLDER_LOCK, BusyError, folder_lock


def test_a_second_separation_into_the_same_folder_is_refused(tmp_path):
    src = tmp_path / "in.mseed"
    make_stream(npts=4000).write(str(src), format="MSEED")
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from unmix.lock import folder_lock\n"
        f"with folder_lock({str(out)!r}):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BusyError, match=r"another 'unmix separate' run .*pid \d+"):
            export_separation([src], out, method="highpass")
        r = CliRunner().invoke(main, ["separate", str(src), "--out", str(out), "--method", "highpass"])
        assert r.exit_code != 0 and "another 'unmix separate' run" in r.output and "Traceback" not in r.output
        assert not list(out.glob("*.mseed"))
    finally:
        holder.kill()
        holder.wait()
    report = export_separation([src], out, method="highpass")  # the holder died: its lock is stale, taken over
    assert len(report.done) == 1 and not (out / FOLDER_LOCK).exists()


def test_the_lock_is_released_after_the_run(tmp_path):
    with folder_lock(tmp_path) as lock:
        assert lock.exists()
    assert not lock.exists()
    with folder_lock(tmp_path):
        pass

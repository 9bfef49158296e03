"""Logging and batch progress (issue #15 item 7): -v/-q/--log-file, progress lines when stderr is not a terminal."""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from unmix.cli import main
from unmix.logs import ProgressLog, format_duration

UNMIX = [sys.executable, "-m", "unmix.cli"]
LINE = re.compile(r"^separating \(template\): (\d+)% – .* – elapsed \d+(m\d\ds|s)(, ETA \d+(m\d\ds|s))?$")


@pytest.fixture(scope="module")
def record(tmp_path_factory) -> Path:
    """A one-hour synthetic record with glitches (the template method takes a few seconds on it)."""
    out = tmp_path_factory.mktemp("synth")
    r = CliRunner().invoke(main, ["synth", "--hours", "1", "--out", str(out), "--seed", "1"])
    assert r.exit_code == 0, r.output
    return out / "mixture.mseed"


@pytest.fixture
def progress_lines():
    """The messages logged on ``unmix.progress`` during the test."""
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("unmix.progress")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)


def test_progress_log_every_seconds_and_step_whichever_later(progress_lines):
    now = [0.0]
    p = ProgressLog("features", every=10, step=0.1, clock=lambda: now[0])
    for t, f in [(5, 0.5), (11, 0.55), (12, 0.7), (25, 0.72), (30, 1.0)]:
        now[0] = t
        p(f, "file 3 of 7")
    p.close()
    lines = progress_lines
    # 5 s: too early; 11 s: 55 % (first line); 12 s: 15 % more but 1 s later; 25 s: both passed
    assert lines[0] == "features: 55% – file 3 of 7 – elapsed 11s, ETA 9s"
    assert lines[1].startswith("features: 72% – ") and len(lines) == 3
    assert lines[2] == "features: 100% – file 3 of 7 – elapsed 30s"
    assert format_duration(80) == "1m20s" and format_duration(3725) == "1h02m"


def test_progress_log_heartbeat_while_progress_is_slow(progress_lines):
    """A long step that moves the fraction little still logs a line a minute, with its latest message."""
    now = [0.0]
    p = ProgressLog("bench", every=10, step=0.1, clock=lambda: now[0])
    for t, f, msg in [(30, 0.01, "case 1 of 6"), (59, 0.02, "case 1 of 6"), (61, 0.03, "case 1 of 6: scatcov"),
                      (100, 0.04, ""), (122, 0.05, "")]:
        now[0] = t
        p(f, msg)
    assert progress_lines == ["bench: 3% – case 1 of 6: scatcov – elapsed 1m01s, ETA 32m52s",
                     "bench: 5% – case 1 of 6: scatcov – elapsed 2m02s, ETA 38m38s"]


def test_progress_lines_when_stderr_is_a_pipe(record, tmp_path):
    """A batch run (stderr a pipe) prints plain progress lines as it goes, ending at 100 %."""
    proc = subprocess.run([*UNMIX, "--progress-every", "0", "separate", str(record), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) >= 3 and all(LINE.match(ln) for ln in lines), proc.stderr
    percents = [int(LINE.match(ln).group(1)) for ln in lines]
    assert percents == sorted(percents) and percents[-1] == 100
    assert "1 separated" in proc.stdout


def test_quiet_prints_no_progress(record, tmp_path):
    proc = subprocess.run([*UNMIX, "-q", "--progress-every", "0", "separate", str(record), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_sigint_cancels_within_a_second_with_progress_lines(tmp_path):
    """Ctrl-C still cancels a batch run promptly while progress lines are printed."""
    r = CliRunner().invoke(main, ["synth", "--hours", "4", "--out", str(tmp_path / "s")])
    assert r.exit_code == 0
    proc = subprocess.Popen([*UNMIX, "--progress-every", "0", "separate", str(tmp_path / "s" / "mixture.mseed"),
                             "--out", str(tmp_path / "o")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()  # the first progress line: the run is under way
        assert first.startswith("separating (template): "), first
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "cancelled", err
    assert elapsed < 3.0, f"took {elapsed:.1f} s to stop (cancel ≈ 1 s, plus interpreter shutdown)"
    assert not list((tmp_path / "o").glob("*.provenance.json"))


def test_log_file_has_debug_detail_and_stderr_keeps_one_error_line(record, tmp_path):
    log = tmp_path / "run.log"
    missing = tmp_path / "nothing.mseed"
    r = CliRunner().invoke(main, ["--log-file", str(log), "separate", str(record), str(missing), "--out",
                                  str(tmp_path / "o")])
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1] == f"error: 1 of 2 input(s) failed: {missing.name}", r.stderr
    text = log.read_text()
    assert "DEBUG unmix.cli: unmix " in text  # the command line
    assert "DEBUG unmix.io.record: read SY.ELYSE.02.BH" in text  # what was read
    assert f"INFO unmix.export: {record}: separated (" in text  # per-input result
    assert "ERROR unmix.cli: 1 of 2 input(s) failed" in text  # the error line is in the log too


def test_verbose_shows_per_input_results(record, tmp_path):
    args = ["separate", str(record), "--out", str(tmp_path / "o")]
    quiet = CliRunner().invoke(main, args)
    assert quiet.exit_code == 0 and "separated (" not in quiet.stderr
    again = CliRunner().invoke(main, ["-v", *args])
    assert again.exit_code == 0 and f"{record}: already done" in again.stderr, again.stderr
    debug = CliRunner().invoke(main, ["-vv", *args])
    assert "debug: unmix.io.record: read SY.ELYSE.02.BH" not in debug.stderr  # skipped inputs are not read again
    assert "debug: unmix.cli: unmix " in debug.stderr


def test_unwritable_log_file_is_one_line(tmp_path):
    (tmp_path / "f").write_text("")
    r = CliRunner().invoke(main, ["--log-file", str(tmp_path / "f" / "x.log"), "info", str(tmp_path)])
    assert r.exit_code == 2 and len(r.stderr.splitlines()) == 1 and r.stderr.startswith("error: ")

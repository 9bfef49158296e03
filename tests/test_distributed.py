"""Dask runs (``--workers N``/``--scheduler``) of ``separate`` give what a run in this process gives; the shared
task runner (:mod:`unmix.distributed`) reports failing and dying tasks, stops on cancel, and leaves this process's
environment as it was."""

from __future__ import annotations

import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from obspy import read

from unmix.cli import main
from unmix.distributed import run_tasks, threads_per_worker
from unmix.errors import DataError, InputFileError
from unmix.export import export_separation
from unmix.jobs import Cancelled, CancelToken
from unmix.synthetic import SyntheticConfig, generate

TIMING_FIELDS = {"timings", "created", "total_s", "seconds"}
GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
WORKER_ENV = ("MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "PYTHONHASHSEED")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[Path]:
    """Two small synthetic records with dozens of glitches each, and an unreadable file between them."""
    d = tmp_path_factory.mktemp("in")
    good = [generate(SyntheticConfig(hours=0.5, seed=s, start=None, start_sol=100 + s, start_lmst=5.75,
                                     glitch_rate_per_sol=400.0)).write(d / f"s{s}")["mixture"] for s in (1, 2)]
    bad = d / "bad.mseed"
    bad.write_bytes(b"not a miniSEED record " * 64)
    return [good[0], bad, good[1]]


def _untimed(value):
    """A provenance without its timing fields (at any depth)."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k not in TIMING_FIELDS}
    return [_untimed(v) for v in value] if isinstance(value, list) else value


def _outputs(folder: Path) -> dict[str, dict]:
    """Every visible output file of ``folder``: traces (id → samples) or provenance without its timing fields."""
    out = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.name.endswith(".provenance.json"):
            out[p.name] = _untimed(json.loads(p.read_text()))
        else:
            out[p.name] = {tr.id: (str(tr.stats.starttime), tr.data) for tr in read(str(p))}
    return out


def _assert_same_outputs(a: Path, b: Path, inputs: int = 2) -> None:
    oa, ob = _outputs(a), _outputs(b)
    assert sorted(oa) == sorted(ob)
    assert sum(n.endswith(".provenance.json") for n in oa) == inputs and len(oa) > inputs
    for name, content in oa.items():
        if name.endswith(".json"):
            assert content == ob[name], name
            assert len(content["records"][0]["info"]["catalogue"]) > 10  # glitches were found and removed
            continue
        assert sorted(content) == sorted(ob[name]), name
        for tid, (start, data) in content.items():
            assert ob[name][tid][0] == start
            np.testing.assert_array_equal(ob[name][tid][1], data, err_msg=f"{name} {tid}")


def test_dask_separation_equals_in_process_and_reports_the_bad_input(inputs, tmp_path):
    here = export_separation(inputs, tmp_path / "here", "template")
    env = {k: os.environ.get(k) for k in WORKER_ENV}
    dask = export_separation(inputs, tmp_path / "dask", "template", workers=2)
    assert {k: os.environ.get(k) for k in WORKER_ENV} == env  # the workers' settings do not leak into this process
    assert here.done == dask.done == [str(inputs[0]), str(inputs[2])]
    assert [p for p, _ in dask.failed] == [str(inputs[1])] and dask.failed == here.failed
    assert dask.outputs == [o.replace(str(tmp_path / "here"), str(tmp_path / "dask")) for o in here.outputs]
    _assert_same_outputs(tmp_path / "here", tmp_path / "dask")
    again = export_separation(inputs, tmp_path / "dask", "template", workers=2)  # finished inputs are skipped
    assert again.skipped == here.done and not again.done and len(again.failed) == 1


def test_cli_workers_smoke(inputs, tmp_path):
    good = [str(inputs[0]), str(inputs[2])]
    res = CliRunner().invoke(main, ["separate", *good, "--out", str(tmp_path / "o"), "--workers", "2"])
    assert res.exit_code == 0, res.output
    assert "2 separated, 0 already done, 0 failed" in res.output
    assert len(list((tmp_path / "o").glob("*.provenance.json"))) == 2
    res = CliRunner().invoke(main, ["separate", *good, str(inputs[1]), "--out", str(tmp_path / "o"), "--workers", "2"])
    assert res.exit_code != 0 and "0 separated, 2 already done, 1 failed" in res.output
    assert "1 of 3 input(s) failed: bad.mseed" in res.output


def _task(kind: str, folder: str, token: CancelToken):
    """Test task: 'ok' returns, 'error' raises a user error, 'die' ends its worker process, 'wait' runs until the
    run is cancelled (and notes that it saw it), 'setup' returns the worker's allocator and thread settings."""
    if kind == "setup":
        from unmix import allocator

        return (os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS"), allocator._done,
                os.environ.get("GLIBC_TUNABLES"))
    if kind == "threads":
        import torch

        token.check()  # asks the scheduler, and takes the advised thread count
        return torch.get_num_threads()
    if kind == "error":
        raise InputFileError("cannot be read", "broken.mseed")
    if kind == "die":
        os._exit(3)
    if kind == "wait":
        end = time.monotonic() + 120
        while time.monotonic() < end:
            if token.cancelled:
                Path(folder, "saw-cancel").write_text("yes")
                token.check()
            time.sleep(0.05)
    return f"{kind} done"


def test_run_tasks_reports_errors_and_dead_workers_and_goes_on(tmp_path):
    got = {}
    kinds = ("ok", "error", "die", "ok", "setup")
    run_tasks(_task, [(k, str(tmp_path)) for k in kinds], list("abcde"), 2, None,
              lambda i, v, e: got.__setitem__(i, (v, e)), CancelToken())
    assert got[0] == ("ok done", None) and got[3] == ("ok done", None)
    threads = os.environ.get("OMP_NUM_THREADS") or str(threads_per_worker(2))  # the user's setting wins
    tunables = os.environ.get("GLIBC_TUNABLES", "glibc.malloc.arena_max=1")  # one arena for the task threads too
    assert got[4] == ((None, threads, GLIBC, tunables), None)  # no Dask trim threshold; allocator tuned as here
    assert isinstance(got[1][1], InputFileError) and got[1][1].message == "broken.mseed: cannot be read"
    assert isinstance(got[2][1], DataError) and got[2][1].message.startswith("c: the Dask worker died")


def test_the_last_task_takes_the_cores_of_idle_workers(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # a user's setting would win
    got = {}
    run_tasks(_task, [("threads", str(tmp_path))], ["a"], 2, None, lambda i, v, e: got.__setitem__(i, (v, e)),
              CancelToken())
    assert got[0] == (threads_per_worker(1), None)  # its worker started with threads_per_worker(2)


def test_cancel_stops_running_tasks(tmp_path):
    token = CancelToken()
    started = time.monotonic()

    def handle(i, value, error):
        assert (value, error) == ("ok done", None)
        threading.Timer(0.5, token.cancel).start()  # the long task is running by now

    with pytest.raises(Cancelled):
        run_tasks(_task, [("wait", str(tmp_path)), ("ok", str(tmp_path))], ["long", "short"], 2, None, handle, token)
    assert time.monotonic() - started < 100  # did not wait for the long task's 120 s
    deadline = time.monotonic() + 20
    while not (tmp_path / "saw-cancel").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (tmp_path / "saw-cancel").exists()  # the task itself saw the cancel through its token


def test_separate_on_an_existing_scheduler(inputs, tmp_path, monkeypatch):
    """Workers started by someone else (Dask's own settings: MALLOC_TRIM_THRESHOLD_=65536) still get the tuned
    allocator, and a relative --out names the same folder there."""
    from distributed import LocalCluster

    here = export_separation(inputs[2:], tmp_path / "here", "template")
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        got = {}
        run_tasks(_task, [("setup", str(tmp_path))], ["x"], 0, cluster.scheduler_address,
                  lambda i, v, e: got.__setitem__(i, (v, e)), CancelToken())
        assert got[0][1] is None and got[0][0][0] == "65536" and got[0][0][2] == GLIBC
        monkeypatch.chdir(tmp_path)
        there = export_separation(inputs[2:], "there", "template", scheduler=cluster.scheduler_address)
    assert there.done == here.done and len(there.outputs) == len(here.outputs)
    _assert_same_outputs(tmp_path / "here", tmp_path / "there", 1)

"""Feature stores, checkpoints and cluster tables under misuse (issue #14 §2 and §5).

Two writers at once, a killed writer's lock, a full disk, inputs that give no windows, mixed sampling rates, crafted
or damaged stores, checkpoints and tables, NaN features; and single-component (V-only) records end to end. Every bad
file is built here, at test time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from store_layouts import copy_store, snapshot, write_v1

from unmix.cli import main
from unmix.clusters import ClusterTable
from unmix.errors import InputFileError
from unmix.features import FeatureConfig, FeatureStore, build_store
from unmix.features.segments import segments_dir
from unmix.jobs import Cancelled, CancelToken
from unmix.lock import StoreBusyError, lock_path, store_lock
from unmix.synthetic import SyntheticConfig, generate

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(window=16384, hop=4096, scales=(1024, 4096, 16384))
CLI_SMALL = ["--window", "16384", "--hop", "4096", "--scales", "1024,4096,16384", "--device", "cpu"]


def _write(stream, path: Path, decimate: int = 1) -> Path:
    stream = stream.copy()
    if decimate > 1:
        for tr in stream:
            tr.decimate(decimate, no_filter=True)
    stream.write(str(path), format="MSEED")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """1-hour synthetic records: three-component s1, s2, a 10-sps copy of s2, V-only v1…v3, a 5-minute s_short."""
    d = tmp_path_factory.mktemp("integrity")
    out = {}
    for i in (1, 2, 3):
        mix = generate(SyntheticConfig(hours=1.0, seed=i, start=f"2019-05-2{i}T00:00:00")).mixture
        if i < 3:
            out[f"s{i}"] = _write(mix, d / f"s{i}.mseed")
        out[f"v{i}"] = _write(mix.select(channel="*V"), d / f"v{i}.mseed")
    out["s2_10sps"] = _write(generate(SyntheticConfig(hours=1.0, seed=2)).mixture, d / "s2_10sps.mseed", decimate=2)
    short = generate(SyntheticConfig(hours=1.0, seed=4)).mixture
    short.trim(short[0].stats.starttime, short[0].stats.starttime + 300)
    out["short"] = _write(short, d / "short.mseed")
    return out


@pytest.fixture(scope="module")
def store(data, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("store") / "f.h5"
    build_store([data["s1"], data["s2"]], path, FeatureConfig(**SMALL), device="cpu")
    return path


@pytest.fixture(scope="module")
def model(store, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.pt"
    r = CliRunner().invoke(main, ["train", str(store), "--out", str(path), "--epochs", "1", "--clusters", "3",
                                  "--device", "cpu", "-q"])
    assert r.exit_code == 0, r.output
    return path


def _cli(args: list[str]):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)


def _one_error_line(result, path: Path, *words: str) -> str:
    """The run failed with exactly one stderr line, naming ``path`` and containing ``words``; no traceback."""
    assert result.exit_code in (1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and all(w in lines[0] for w in words), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def _leftovers(store: Path) -> list[Path]:
    """What is named after ``store`` beside it, then what its segments folder holds that its index does not name."""
    beside = sorted(p for p in store.parent.iterdir() if p.name.startswith((store.name, "." + store.name)))
    named = set(FeatureStore(store).files()) if store.exists() else set()
    folder = segments_dir(store)
    return beside + sorted(p for p in folder.iterdir() if p not in named) if folder.is_dir() else beside


def _store_files(store: Path) -> list[Path]:
    """What a finished store leaves: its index and its segments folder."""
    return [store, segments_dir(store)]


def _python(code: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _features_cmd(inputs: list[Path], out: Path) -> list[str]:
    return [sys.executable, "-m", "unmix.cli", "features", *map(str, inputs), "--out", str(out), *CLI_SMALL]


# -- one writer per store ----------------------------------------------------------------------------------------------

def test_a_held_store_is_refused_and_a_dead_holders_lock_is_taken_over(data, tmp_path):
    out = tmp_path / "f.h5"
    holder = _python(f"""
        import time
        from unmix.lock import store_lock
        with store_lock({str(out)!r}):
            print("held", flush=True)
            time.sleep(600)
        """)
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = subprocess.run(_features_cmd([data["s1"]], out), capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        assert f"pid {holder.pid}" in proc.stderr and "in use" in proc.stderr and str(out) in proc.stderr
        assert not out.exists()
        with pytest.raises(StoreBusyError), store_lock(out):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock_path(out).exists()  # the killed holder could not clean up: its lock is stale
    rep = build_store([data["s1"]], out, FeatureConfig(**SMALL), device="cpu")
    assert rep["inputs"] == 1 and not lock_path(out).exists()
    assert _leftovers(out) == _store_files(out)


def test_two_features_runs_at_once_lose_nothing(data, tmp_path):
    out = tmp_path / "f.h5"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {name: subprocess.Popen(_features_cmd([data[name]], out), env=env, text=True, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE) for name in ("s1", "s2")}
    finished = []
    for name, proc in runs.items():
        _, err = proc.communicate(timeout=600)
        assert "Traceback" not in err, err
        if proc.returncode == 0:
            finished.append(str(data[name]))
        else:
            assert proc.returncode == 2 and "in use by another 'unmix features' run" in err, err
    assert finished
    assert sorted(i["path"] for i in FeatureStore(out).inputs) == sorted(finished)  # the last writer kept all
    assert _leftovers(out) == _store_files(out)


def test_parts_are_keyed_by_input_and_settings(data, tmp_path):
    out = tmp_path / "f.h5"
    token = CancelToken()
    with pytest.raises(Cancelled):  # an interrupted UVW run leaves its finished segment
        build_store([data["s1"]], out, FeatureConfig(**SMALL), device="cpu", token=token,
                    progress=lambda f, m="": token.cancel() if f >= 0.9 else None)
    assert not out.exists() and list(segments_dir(out).glob("*.h5"))
    rep = build_store([data["s1"]], out, FeatureConfig(components="V", **SMALL), device="cpu")
    assert rep["computed"] == 1 and FeatureStore(out).features(1024).shape[1] == 1
    assert _leftovers(out) == _store_files(out)  # the UVW segment is gone


def test_store_is_reread_before_consolidating(data, tmp_path):
    """A store changed between the start of a run and the writing of its index is re-read, not overwritten."""
    out = tmp_path / "f.h5"
    cfg = FeatureConfig(**SMALL)
    other = tmp_path / "other.h5"
    build_store([data["s2"]], other, cfg, device="cpu")

    def progress(fraction, message=""):
        if message == data["s1"].name and not out.exists():  # s1 computed, not yet in the index
            shutil.copytree(segments_dir(other), segments_dir(out), dirs_exist_ok=True)
            shutil.copy(other, out)  # what another writer (without the lock) made meanwhile

    build_store([data["s1"]], out, cfg, device="cpu", progress=progress)
    assert sorted(Path(i["path"]).name for i in FeatureStore(out).inputs) == ["s1.mseed", "s2.mseed"]


# -- disk full ---------------------------------------------------------------------------------------------------------

def test_disk_full_during_consolidation_keeps_the_old_store(data, store, tmp_path):
    """The file-size limit hits s2's segment; the store (index and s1's segment) stays byte-identical."""
    out = tmp_path / "f.h5"
    build_store([data["s1"]], out, FeatureConfig(**SMALL), device="cpu")
    before = snapshot(out)
    limit = FeatureStore(out).files()[1].stat().st_size // 2  # room for the index, not for a segment
    code = f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        from unmix.cli import main
        main({["features", str(data["s2"]), "--out", str(out), *CLI_SMALL]!r})
        """
    proc = _python(code)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 2, err  # was a segmentation fault (139)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "disk full" in lines[0] and f"{out}: " in lines[0], err  # names the store
    assert snapshot(out) == before  # no hidden temporary file either
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert not lock_path(out).exists() and _leftovers(out) == _store_files(out)


# -- inputs without windows, mixed rates -------------------------------------------------------------------------------

@pytest.mark.parametrize("name, words", [("v1", ("only component V", "--components V")),
                                         ("short", ("shorter than one window",))])
def test_input_without_windows_says_why_and_leaves_nothing(data, tmp_path, name, words):
    out = tmp_path / "f.h5"
    result = _cli(["features", data[name], "--out", out, *CLI_SMALL])
    assert result.exit_code == 2
    _one_error_line(result, data[name], *words)
    assert _leftovers(out) == []


def test_a_store_has_one_sampling_rate(data, tmp_path):
    out = tmp_path / "f.h5"
    build_store([data["s1"]], out, FeatureConfig(**SMALL), device="cpu")
    before = snapshot(out)
    result = _cli(["features", data["s2_10sps"], "--out", out, *CLI_SMALL])
    assert result.exit_code == 1
    first = result.stderr.splitlines()[0]
    assert str(data["s2_10sps"]) in first and "10 Hz" in first and "one rate" in first
    assert snapshot(out) == before and _leftovers(out) == _store_files(out)


# -- damaged feature stores --------------------------------------------------------------------------------------------

def _wrong_shape(f):
    a = f["features/1024"][()]
    del f["features/1024"]
    f["features/1024"] = a[:, :, :-1]


def _wrong_dtype(f):
    a = f["features/1024"][()]
    del f["features/1024"]
    f["features/1024"] = a.astype(np.int32)


def _missing(f):
    del f["intervals/4096"]


def _bad_json(f):
    f.attrs["inputs"] = "[{not json"


def _bad_config(f):
    f.attrs["config"] = '{"window": "x"}'


def _short_description(f):
    d = f["description"][()]
    del f["description"]
    f["description"] = d[:-1]


def _absurd_size(f):
    del f["windows/input"]
    f.create_dataset("windows/input", shape=(10**12,), dtype="i4", chunks=(4096,))


def _bad_index(f):
    f["windows/input"][0] = 99


STORE_DAMAGE = {"wrong shape": _wrong_shape, "wrong dtype": _wrong_dtype, "missing dataset": _missing,
                "bad JSON attribute": _bad_json, "bad configuration": _bad_config, "absurd declared size": _absurd_size,
                "description of another length": _short_description,
                "window index out of range": _bad_index}


INDEX_DAMAGE = ("bad JSON attribute", "bad configuration", "description of another length")


def _damaged_store(store: Path, tmp_path: Path, how: str, layout: str) -> Path:
    """A damaged copy of ``store``: a single file (format 1), or an index and segments where the index (its
    attributes, or the whole file) or the first segment (its windows) is damaged."""
    bad = tmp_path / "bad.h5"
    if layout == "single file":
        write_v1(FeatureStore(store), bad)
    else:
        copy_store(store, bad)
    target = bad if layout == "single file" or how in INDEX_DAMAGE else FeatureStore(bad).files()[1]
    if how == "not HDF5":
        bad.write_bytes(b"this is not an HDF5 file\n" * 100)
    elif how == "truncated HDF5":
        bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    else:
        with h5py.File(target, "r+") as f:
            STORE_DAMAGE[how](f)
    return bad


@pytest.mark.parametrize("layout", ["single file", "segments"])
@pytest.mark.parametrize("how", [*STORE_DAMAGE, "not HDF5", "truncated HDF5"])
def test_damaged_store_is_one_line(store, model, tmp_path, how, layout):
    bad = _damaged_store(store, tmp_path, how, layout)
    before = snapshot(bad)
    with pytest.raises(InputFileError, match="feature store"):
        FeatureStore(bad).features(1024)
    for args in (["train", bad, "--out", tmp_path / "m.pt", "--epochs", "1", "--device", "cpu"],
                 ["cluster", bad, model, "--out", tmp_path / "t.h5", "--device", "cpu"],
                 ["report", bad, model, "--out", tmp_path / "rep", "--device", "cpu"]):
        _one_error_line(_cli(args), bad)
    assert snapshot(bad) == before
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "t.h5").exists()


def test_nan_features_are_refused_not_clustered(store, model, tmp_path):
    bad = copy_store(store, tmp_path / "nan.h5")
    with h5py.File(FeatureStore(bad).files()[1], "r+") as f:
        a = f["features/4096"][()]
        a[3, 0, 5, 0] = np.nan
        a[7, 0, 9, 1] = np.inf
        f["features/4096"][...] = a
    for args in (["cluster", bad, model, "--out", tmp_path / "t.h5", "--device", "cpu"],
                 ["train", bad, "--out", tmp_path / "m.pt", "--epochs", "1", "--device", "cpu"]):
        _one_error_line(_cli(args), bad, "2 window(s) with NaN or infinite features at scale 4096")
    assert not (tmp_path / "t.h5").exists() and not (tmp_path / "m.pt").exists()


# -- damaged checkpoints -----------------------------------------------------------------------------------------------

def _edit_checkpoint(model: Path, bad: Path, edit) -> Path:
    ck = torch.load(model, map_location="cpu", weights_only=True)
    edit(ck)
    torch.save(ck, bad)
    return bad


def _first_weight(ck: dict) -> str:
    return next(k for k, v in ck["model"].items() if v.is_floating_point() and v.ndim == 2)


CHECKPOINT_DAMAGE = {
    "missing field": lambda ck: ck.pop("preps"),
    "wrong field type": lambda ck: ck.update(epoch="seven"),
    "wrong weight shape": lambda ck: ck["model"].update({_first_weight(ck): torch.zeros(3, 3)}),
    "wrong weight dtype": lambda ck: ck["model"].update({_first_weight(ck): ck["model"][_first_weight(ck)].double()}),
    "NaN weight": lambda ck: ck["model"][_first_weight(ck)].view(-1).__setitem__(0, float("nan")),
    "missing weight": lambda ck: ck["model"].pop(_first_weight(ck)),
    "bad preprocessing": lambda ck: next(iter(ck["preps"].values()))["columns"].__setitem__((0, 0), 10**6),
    "bad model configuration": lambda ck: ck["model_config"].update(bogus=1),
    "bad split": lambda ck: ck.update(train_idx=torch.tensor([10**6])),
    "description longer than the features": lambda ck: [v.append(v[-1]) for v in ck["description"].values()],
}


def _damaged_checkpoint(model: Path, tmp_path: Path, how: str) -> Path:
    bad = tmp_path / "bad.pt"
    raw = model.read_bytes()
    if how == "truncated":
        bad.write_bytes(raw[: len(raw) // 2])
    elif how == "garbage":
        bad.write_bytes(np.random.default_rng(0).bytes(4096))
    elif how == "empty":
        bad.write_bytes(b"")
    else:
        _edit_checkpoint(model, bad, CHECKPOINT_DAMAGE[how])
    return bad


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", *CHECKPOINT_DAMAGE])
def test_damaged_checkpoint_is_one_line(store, model, tmp_path, how):
    bad = _damaged_checkpoint(model, tmp_path, how)
    before = bad.read_bytes()
    commands = [["train", store, "--out", bad, "--resume", "--epochs", "2", "--device", "cpu"]]
    if how != "bad split":  # the split is only used to resume training
        commands += [["cluster", store, bad, "--out", tmp_path / "t.h5", "--device", "cpu"],
                     ["report", store, bad, "--out", tmp_path / "rep", "--device", "cpu"]]
    for args in commands:
        _one_error_line(_cli(args), bad, "checkpoint")
    assert bad.read_bytes() == before  # --resume never overwrote the damaged file
    assert not (tmp_path / "t.h5").exists()


# -- damaged cluster tables --------------------------------------------------------------------------------------------

TABLE_DAMAGE = {
    "unexpected dataset": lambda f: f.create_dataset("bogus", data=np.zeros(3)),
    "cluster out of range": lambda f: f["cluster"].__setitem__((0, 0), 99),
    "wrong shape": lambda f: (f.__delitem__("confidence"), f.create_dataset("confidence", data=np.zeros(3))),
    "bad JSON": lambda f: f.attrs.__setitem__("meta", "{"),
    "NaN probabilities": lambda f: f["probabilities"].__setitem__((0, 0, 0), np.nan),
    "missing dataset": lambda f: f.__delitem__("lmst"),
    "inputs without paths": lambda f: f.attrs.__setitem__("inputs", "[1, 2]"),
}


@pytest.mark.parametrize("how", list(TABLE_DAMAGE))
def test_damaged_cluster_table_is_one_line(store, model, tmp_path, how):
    table = tmp_path / "t.h5"
    assert _cli(["cluster", store, model, "--out", table, "--device", "cpu"]).exit_code == 0
    ClusterTable.load(table)
    with h5py.File(table, "r+") as f:
        TABLE_DAMAGE[how](f)
    with pytest.raises(InputFileError, match="cluster table") as info:
        ClusterTable.load(table)
    assert "\n" not in str(info.value) and str(table) in str(info.value)


# -- single-component records end to end -------------------------------------------------------------------------------

def test_v_only_records_work_end_to_end(data, tmp_path):
    """features → train → cluster → report → separate (scatcov, prior from a cluster) on BHV-only records."""
    s, m, t = tmp_path / "v.h5", tmp_path / "m.pt", tmp_path / "t.h5"
    steps = [["features", data["v1"], data["v2"], "--out", s, "--components", "V", *CLI_SMALL],
             ["train", s, "--out", m, "--epochs", "2", "--clusters", "2", "--device", "cpu", "-q"],
             ["cluster", s, m, "--out", t, "--device", "cpu"],
             ["report", s, m, "--out", tmp_path / "report", "--device", "cpu"]]
    for args in steps:
        r = _cli(args)
        assert r.exit_code == 0, (args[0], r.output)
    assert FeatureStore(s).features(1024).shape[1:3] == (1, 210)
    assert any(p.name.startswith("waveforms_") for p in (tmp_path / "report").iterdir())
    table = ClusterTable.load(t)
    busiest = int(np.argmax(table.occupancy(1024)))
    r = _cli(["separate", data["v3"], "--out", tmp_path / "sep", "--method", "scatcov", "--table", t,
              "--background-cluster", busiest, "--scale", 1024, "--device", "cpu", "--scatcov-opt", "max_iter=2"])
    assert r.exit_code == 0, r.output
    written = sorted(p.name for p in (tmp_path / "sep").iterdir())
    assert "v3.provenance.json" in written and any("background" in n for n in written)

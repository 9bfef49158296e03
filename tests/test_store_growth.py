"""A feature store grows without rewriting (issue #19 item 2): an index file and one segment file per input.

Appending writes one segment and a new index and leaves every earlier file as it was; what is read afterwards equals
a store built in one go. An interrupted append leaves the old store and its finished segment for the next run.
Single-file (format 1) stores are read as they are and converted by a hard link. Damaged, missing, foreign or
escaping segments give one line naming the store and the segment.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
from store_layouts import copy_store, write_v1

import unmix.features.store as store_mod
from unmix.errors import InputFileError
from unmix.features import FeatureConfig, FeatureStore, build_store, compact_store
from unmix.features.config import FEATURE_FORMAT
from unmix.features.segments import segments_dir
from unmix.jobs import Cancelled
from unmix.lock import StoreBusyError, store_lock
from unmix.synthetic import SyntheticConfig, generate

CONFIG = FeatureConfig(window=4096, hop=1024, scales=(1024, 4096))
V1 = replace(CONFIG, glitch_evidence=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Three 40-minute synthetic records (three components, 20 sps) on different days."""
    d = tmp_path_factory.mktemp("growth")
    out = {}
    for i, name in enumerate("abc"):
        mix = generate(SyntheticConfig(hours=2 / 3, seed=i + 1, start=f"2019-05-2{i + 1}T00:00:00")).mixture
        mix.write(str(d / f"{name}.mseed"), format="MSEED")
        out[name] = d / f"{name}.mseed"
    return out


@pytest.fixture(scope="module")
def together(data, tmp_path_factory) -> FeatureStore:
    """a and b built in one run."""
    path = tmp_path_factory.mktemp("together") / "f.h5"
    build_store([data["a"], data["b"]], path, CONFIG, device="cpu")
    return FeatureStore(path)


@pytest.fixture(scope="module")
def grown(data, tmp_path_factory) -> Path:
    """a, then b appended in a second run."""
    path = tmp_path_factory.mktemp("grown") / "f.h5"
    build_store([data["a"]], path, CONFIG, device="cpu")
    build_store([data["b"]], path, CONFIG, device="cpu")
    return path


def _identity(path: Path) -> tuple:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_same(a: FeatureStore, b: FeatureStore) -> None:
    """Same windows, features, times and inputs."""
    assert a.n_windows == b.n_windows > 0
    assert [i["sha256"] for i in a.inputs] == [i["sha256"] for i in b.inputs]
    assert [i["records"] for i in a.inputs] == [i["records"] for i in b.inputs]
    for s in a.scales:
        assert np.array_equal(a.features(s), b.features(s))
        assert np.array_equal(a.intervals(s), b.intervals(s))
        assert np.array_equal(a.lmst(s), b.lmst(s))
    wa, wb = a.windows(), b.windows()
    assert all(np.array_equal(wa[k], wb[k]) for k in ("input", "record"))


# -- appending ---------------------------------------------------------------------------------------------------------

def test_append_writes_one_segment_and_the_index(data, together, tmp_path):
    out = tmp_path / "f.h5"
    build_store([data["a"]], out, CONFIG, device="cpu")
    (first,) = FeatureStore(out).files()[1:]
    before = _identity(first)
    report = build_store([data["b"]], out, CONFIG, device="cpu")
    assert report["computed"] == 1 and report["inputs"] == 2 and not report["failures"]
    store = FeatureStore(out)
    files = store.files()
    assert files[0] == out and files[1] == first and len(files) == 3
    assert _identity(first) == before  # not rewritten, not even touched
    assert sorted(p.name for p in segments_dir(out).iterdir()) == sorted(p.name for p in files[1:])
    assert [p.name for p in tmp_path.iterdir() if p.name != "f.h5"] == ["f.h5.segments"]
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == FEATURE_FORMAT and "features" not in f  # the index holds no windows
    _assert_same(store, together)
    assert build_store([data["a"], data["b"]], out, CONFIG, device="cpu")["computed"] == 0


def test_reads_across_segments_equal_one_store(grown, together, monkeypatch):
    monkeypatch.setattr(FeatureStore, "chunk_windows", 16)
    store = FeatureStore(grown)
    n, edge = store.n_windows, store._segments[1].start
    assert 0 < edge < n
    s = store.scales[0]
    whole = together.features(s)
    for a, b in ((edge - 3, edge + 5), (0, n), (edge, edge), (edge, n), (n - 2, n + 7)):
        assert np.array_equal(store.read_features(s, a, b), whole[a:b])
    rows = np.random.default_rng(1).integers(0, n, 200)
    assert np.array_equal(store.read_rows(s, rows), whole[rows])
    assert store.windows()["input"].tolist() == [0] * edge + [1] * (n - edge)


def test_interrupted_append_keeps_the_old_store_and_the_next_run_reuses_its_segment(data, together, tmp_path,
                                                                                     monkeypatch):
    out = tmp_path / "f.h5"
    build_store([data["a"]], out, CONFIG, device="cpu")
    index = out.read_bytes()

    def crash(*args, **kwargs):
        raise Cancelled()  # the run stops after b's segment is written, before the new index

    monkeypatch.setattr(store_mod, "write_index", crash)
    with pytest.raises(Cancelled):
        build_store([data["b"]], out, CONFIG, device="cpu")
    monkeypatch.undo()
    assert out.read_bytes() == index
    old = FeatureStore(out)
    assert len(old.inputs) == 1 and old.features(CONFIG.scales[0]).shape[0] == old.n_windows
    assert len(list(segments_dir(out).glob("*.h5"))) == 2  # a's segment, and b's finished one waiting

    def never(*args, **kwargs):
        raise AssertionError("b was computed again")

    monkeypatch.setattr(store_mod, "features_for_file", never)
    report = build_store([data["b"]], out, CONFIG, device="cpu")
    assert report["computed"] == 0 and report["skipped"] == [str(data["b"].resolve())]
    _assert_same(FeatureStore(out), together)


def test_segments_of_other_inputs_left_by_an_interrupted_run_are_removed_by_the_next(data, tmp_path, monkeypatch):
    out = tmp_path / "f.h5"
    build_store([data["a"]], out, CONFIG, device="cpu")
    monkeypatch.setattr(store_mod, "write_index", lambda *a, **k: (_ for _ in ()).throw(Cancelled()))
    with pytest.raises(Cancelled):
        build_store([data["b"]], out, CONFIG, device="cpu")
    monkeypatch.undo()
    build_store([data["c"]], out, CONFIG, device="cpu")
    store = FeatureStore(out)
    assert len(store.inputs) == 2
    assert sorted(segments_dir(out).iterdir()) == sorted(store.files()[1:])


# -- format-1 stores ---------------------------------------------------------------------------------------------------

def test_single_file_store_is_read_and_converted_by_a_hard_link(data, together, tmp_path, caplog):
    one = tmp_path / "one.h5"  # format 1 predates glitch evidence
    build_store([data["a"]], one, V1, device="cpu")
    out = write_v1(FeatureStore(one), tmp_path / "old.h5")
    old = FeatureStore(out)
    assert old.is_single_file and old.files() == [out]
    _assert_same(old, FeatureStore(one))
    inode, _, digest = _identity(out)

    with caplog.at_level(logging.INFO):
        build_store([data["b"]], out, V1, device="cpu")
        build_store([data["c"]], out, V1, device="cpu")
    assert sum("converted" in r.getMessage() for r in caplog.records) == 1
    new = FeatureStore(out)
    assert not new.is_single_file and len(new.inputs) == 3
    first = new.files()[1]
    assert first.stat().st_ino == inode and hashlib.sha256(first.read_bytes()).hexdigest() == digest
    assert FeatureStore(first).is_single_file  # the old file, still whole, now the first segment
    _assert_same(old, FeatureStore(first))
    s = V1.scales[0]
    assert np.array_equal(old.features(s), new.features(s)[:old.n_windows])  # opened before: still reads it
    both = tmp_path / "both.h5"
    shutil.copy(out, both)
    shutil.copytree(segments_dir(out), segments_dir(both))
    with h5py.File(both, "r+") as f:  # the same store without c
        f.attrs["inputs"] = json.dumps(json.loads(f.attrs["inputs"])[:2])
        f.attrs["segments"] = json.dumps(json.loads(f.attrs["segments"])[:2])
    _assert_same(FeatureStore(both), together)


# -- damaged, missing, foreign segments --------------------------------------------------------------------------------

def _edit_table(path: Path, edit) -> None:
    with h5py.File(path, "r+") as f:
        table = json.loads(f.attrs["segments"])
        edit(table)
        f.attrs["segments"] = json.dumps(table)


def _second(path: Path) -> Path:
    return FeatureStore(path).files()[2]


def _foreign(path: Path, other: Path) -> None:
    shutil.copy(FeatureStore(other).files()[1], _second(path))


def _set_attr(path: Path, name: str, value: str) -> None:
    with h5py.File(path, "r+") as f:
        f.attrs[name] = value


DAMAGE = {
    "missing": (lambda p, o: _second(p).unlink(), "is missing"),
    "truncated": (lambda p, o: _second(p).write_bytes(_second(p).read_bytes()[:5000]), "damaged"),
    "not HDF5": (lambda p, o: _second(p).write_bytes(b"no HDF5 here\n" * 500), "damaged"),
    "from another store": (_foreign, "not the one this store wrote"),
    "other settings": (lambda p, o: _set_attr(_second(p), "config_hash", "0" * 16), "other feature settings"),
    "other input": (lambda p, o: _set_attr(_second(p), "inputs", json.dumps([{"sha256": "0" * 64}])),
                    "not those the index lists"),
    "one window more": (lambda p, o: _edit_table(p, lambda t: t[1].update(n_windows=t[1]["n_windows"] + 1)),
                        "shape"),
    "path traversal": (lambda p, o: _edit_table(p, lambda t: t[1].update(name="../x.h5")), "not a plain file name"),
    "absolute path": (lambda p, o: _edit_table(p, lambda t: t[1].update(name=str(o))), "not a plain file name"),
    "same name twice": (lambda p, o: _edit_table(p, lambda t: t[1].update(name=t[0]["name"])), "twice"),
    "input of no segment": (lambda p, o: _edit_table(p, lambda t: t[1].update(first_input=2)), "do not fit"),
    "segment row missing": (lambda p, o: _edit_table(p, lambda t: t.pop()), "not those the index lists"),
    "table not a list": (lambda p, o: _edit_table(p, lambda t: t.__setitem__(0, "x")), "is not a segment"),
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_bad_segment_is_one_line_naming_store_and_segment(grown, data, tmp_path, how):
    other = tmp_path / "other.h5"
    build_store([data["c"]], other, CONFIG, device="cpu")
    bad = copy_store(grown, tmp_path / "bad.h5")
    name = _second(bad).name
    shutil.copy(_second(bad), tmp_path / "x.h5")  # what "../x.h5" would reach: a real segment, still refused
    damage, words = DAMAGE[how]
    damage(bad, other)
    with pytest.raises(InputFileError) as info:
        store = FeatureStore(bad)
        for s in store.scales:
            store.features(s), store.intervals(s), store.lmst(s)
        store.windows()
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{bad}: ") and words in message, message
    if how in ("missing", "truncated", "not HDF5", "from another store", "other settings", "other input",
               "one window more"):
        assert f"bad.h5.segments/{name}" in message, message


def test_an_index_moved_without_its_folder_says_so(grown, tmp_path):
    moved = tmp_path / "moved.h5"
    shutil.copy(grown, moved)
    with pytest.raises(InputFileError, match="move them together"):
        FeatureStore(moved)


# -- one writer, compaction --------------------------------------------------------------------------------------------

def test_a_held_store_is_refused_to_other_writers(data, grown, tmp_path):
    out = copy_store(grown, tmp_path / "f.h5")
    before = {p: _identity(p) for p in FeatureStore(out).files()}
    with store_lock(out):
        with pytest.raises(StoreBusyError):
            build_store([data["c"]], out, CONFIG, device="cpu")
        with pytest.raises(StoreBusyError):
            compact_store(out)
    assert {p: _identity(p) for p in FeatureStore(out).files()} == before


def test_compacting_merges_segments_into_one(grown, together, tmp_path, monkeypatch):
    monkeypatch.setattr(FeatureStore, "chunk_windows", 64)  # several pieces, crossing the segment boundary
    out = copy_store(grown, tmp_path / "f.h5")
    report = compact_store(out)
    assert report["segments_before"] == 2 and report["segments_after"] == 1
    store = FeatureStore(out)
    assert len(store.files()) == 2 and sorted(segments_dir(out).iterdir()) == [store.files()[1]]
    _assert_same(store, together)


def test_in_memory_features_save_as_a_grown_store(data, together, tmp_path):
    from unmix.featureset import FeatureSet

    fs = FeatureSet.load(together.path)
    path = fs.save(tmp_path / "saved.h5")
    saved = FeatureStore(path)
    assert len(saved.files()) == 3 and os.path.isdir(segments_dir(path))
    _assert_same(saved, together)

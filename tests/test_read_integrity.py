"""Reading integrity (issue #14 §2): damaged miniSEED and overlaps that disagree are refused, never merged silently.

Every damaged file is built here, at test time, from a clean synthetic record (Steim-2 integers in 512-byte records,
written channel after channel as data centres do) or from the real S0235b record.
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from obspy import Stream, Trace, UTCDateTime

from unmix.cli import main
from unmix.errors import DataError, InputFileError
from unmix.io import read_file, read_record, read_records
from unmix.io.integrity import walk

T0 = UTCDateTime("2019-07-26T12:00:00")
RATE = 20.0
RECLEN = 512
S0235B = "raw/XB.ELYSE.02.BH_2019-07-26T1149_S0235b_raw.mseed"
REFERENCE = "reference/XB.ELYSE.02.BH_2019-07-26T1149_S0235b_deglitched_UCLA_v4.mseed"
UCLA_S0105A = "background/XB.ELYSE.02.BH_S0105a_deglitched_UCLA_v4.mseed"


def _stream(seconds: float = 1800.0, components: str = "UVW", dtype=np.int32, start: UTCDateTime = T0) -> Stream:
    rng = np.random.default_rng(0)
    n = int(seconds * RATE)
    return Stream([Trace(np.cumsum(rng.normal(0, 50, n)).astype(dtype),
                         header={"network": "XB", "station": "ELYSE", "location": "02", "channel": f"BH{c}",
                                 "sampling_rate": RATE, "starttime": start}) for c in components])


def _mseed(st: Stream | None = None) -> bytes:
    buf = io.BytesIO()
    st = st if st is not None else _stream()
    st.write(buf, format="MSEED", reclen=RECLEN, encoding="STEIM2" if st[0].data.dtype == np.int32 else None)
    return buf.getvalue()


@pytest.fixture
def clean(tmp_path) -> bytes:
    data = _mseed()
    assert len(data) % RECLEN == 0 and len(data) // RECLEN > 100
    return data


def _write(tmp_path, data: bytes, name: str = "bad.mseed"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _refused(path, **kw) -> str:
    """The one-line problem of reading ``path`` (it must be refused and name the file)."""
    with pytest.raises(InputFileError) as ei:
        read_file(path, **kw)
    msg = str(ei.value)
    assert "\n" not in msg and str(path) in msg and "damaged miniSEED" in msg and "--allow-damaged" in msg
    return msg


def _poke(data: bytes, offset: int, patch: bytes) -> bytes:
    return data[:offset] + patch + data[offset + len(patch):]


# ------------------------------------------------------------------------------------------- damaged miniSEED
def test_clean_file_has_no_damage(tmp_path, clean):
    p = _write(tmp_path, clean, "clean.mseed")
    w = walk(p)
    assert w.bad == [] and w.cut is None and len(w.records) == len(clean) // RECLEN
    st = read_file(p)
    assert len(st) == 3 and not any("unmix_damage" in tr.stats for tr in st)
    assert read_record(p).damage == []


def test_cut_mid_record(tmp_path, clean):
    size = len(clean) // RECLEN // 2 * RECLEN + 100
    p = _write(tmp_path, clean[:size])
    msg = _refused(p)
    assert f"the last record is truncated at byte {size} (100 of its 512 bytes" in msg
    st = read_file(p, allow_damaged=True)
    assert all(any("truncated" in d for d in tr.stats.unmix_damage) for tr in st)
    assert p.read_bytes() == clean[:size]  # the input is never modified


def test_cut_at_a_record_boundary_is_recognised(tmp_path, clean):
    """A clean cut leaves no broken byte; the last record's component then ends long before another one."""
    p = _write(tmp_path, clean[: len(clean) // 2 // RECLEN * RECLEN])
    msg = _refused(p)
    assert "looks cut short" in msg and "(BHV)" in msg and "before BHU ends" in msg
    records = read_records(p, allow_damaged=True)
    assert {r.components for r in records} == {"UV", "U"}  # V stops half-way, W is gone
    assert all(any("cut short" in d for d in r.damage) for r in records)


def test_components_ending_together_are_not_a_cut(tmp_path):
    """Channels interleaved in time (a real-time archive) or ending together are no sign of a cut."""
    st = _stream()
    parts = Stream([tr.slice(T0 + k * 300, T0 + (k + 1) * 300 - 1 / RATE) for k in range(6) for tr in st])
    p = _write(tmp_path, b"".join(_mseed(Stream([tr])) for tr in parts), "interleaved.mseed")
    assert read_record(p).damage == []


def test_header_overwritten_with_garbage(tmp_path, clean):
    p = _write(tmp_path, _poke(clean, 10 * RECLEN, b"\xab" * 48))
    msg = _refused(p)
    assert f"1 of {len(clean) // RECLEN} records unreadable (bytes {10 * RECLEN}–{11 * RECLEN - 1}; " in msg
    gap = read_file(p, allow_damaged=True).get_gaps()[0]  # what the unreadable record held: BHU, first to last sample
    assert f"samples lost: BHU {gap[4] + 1 / RATE} – {gap[5] - 1 / RATE})" in msg


def test_corrupt_header_time_is_not_an_ordinary_gap(tmp_path, clean):
    """A record whose header time was corrupted (hour + 5) would show as a gap plus a lone record 5 h later."""
    data = bytearray(clean)
    data[10 * RECLEN + 24] = (data[10 * RECLEN + 24] + 5) % 24
    p = _write(tmp_path, bytes(data))
    msg = _refused(p)
    assert "1 record(s) of BHU carry start times that fit none of their neighbours" in msg
    assert f"bytes {10 * RECLEN}–{11 * RECLEN - 1}" in msg and "cut short" not in msg
    st = read_file(p, allow_damaged=True)  # the misplaced record is left out: a gap where it belonged
    assert max(tr.stats.endtime for tr in st) < T0 + 1800


def test_garbage_appended(tmp_path, clean):
    p = _write(tmp_path, clean + np.random.default_rng(1).bytes(700))
    msg = _refused(p)
    assert f"the last 700 bytes (from byte {len(clean)}) are not miniSEED records" in msg


def test_zero_filled_block(tmp_path, clean):
    p = _write(tmp_path, _poke(clean, 20 * RECLEN, bytes(4 * RECLEN)))
    msg = _refused(p)
    assert f"4 of {len(clean) // RECLEN} records unreadable (bytes {20 * RECLEN}–{24 * RECLEN - 1}; samples lost" in msg
    rec = max(read_records(p, allow_damaged=True), key=lambda r: r.npts)
    assert rec.damage and "4 of" in rec.damage[0] and rec.damage[0].startswith("bad.mseed: ")


def _steim_frames_damaged(clean: bytes, rng_seed: int) -> tuple[bytes, str]:
    """Overwrite 4 bytes inside the data frames of record 30; returns the file and what ObsPy makes of it."""
    rng = np.random.default_rng(rng_seed)
    off = 30 * RECLEN + 64 + 4 + int(rng.integers(0, 400))
    return _poke(clean, off, rng.bytes(4)), f"bytes {30 * RECLEN}–{31 * RECLEN - 1}"


def test_corrupt_data_frames_are_found_and_located(tmp_path, clean):
    """Scrambled Steim frames either fail to decode or fail the integrity check: both name the record's bytes."""
    kinds = set()
    for seed in range(12):
        data, where = _steim_frames_damaged(clean, seed)
        p = _write(tmp_path, data, f"frames{seed}.mseed")
        msg = _refused(p)
        assert where in msg
        kinds.add("cannot be decoded" if "cannot be decoded" in msg else "integrity")
        assert "Steim integrity check" in msg or "cannot be decoded" in msg
        st = read_file(p, allow_damaged=True)  # the bad record is left out: a gap, never wrong samples
        u = st.select(channel="BHU")
        assert sum(tr.stats.npts for tr in u) < len(_stream()[0].data)
    assert kinds == {"cannot be decoded", "integrity"}


def test_real_record_cut_in_half(tmp_path, insight):
    """The issue's recipe: S0235b cut in half kept BHU whole, BHV half, BHW nothing, and exited 0."""
    data = (insight / S0235B).read_bytes()
    p = _write(tmp_path, data[: len(data) // 2 + 100], "half.mseed")
    msg = _refused(p)
    assert "truncated" in msg and "BHV" in msg and "before BHU ends" in msg


def test_every_real_file_is_sound(insight):
    for f in sorted(insight.glob("*/*.mseed")):
        w = walk(f)
        assert w.bad == [] and w.cut is None, f


# ------------------------------------------------------------------------------------- overlaps that disagree
def test_overlap_between_files_with_different_samples_is_refused(tmp_path):
    raw = _stream()
    processed = raw.copy()
    for tr in processed:
        tr.data = (tr.data // 2).astype(np.int32)
    a = _write(tmp_path, _mseed(raw), "raw.mseed")
    b = _write(tmp_path, _mseed(processed.slice(T0 + 600, T0 + 900)), "processed.mseed")
    with pytest.raises(DataError) as ei:
        read_records([a, b])
    msg = str(ei.value)
    assert "\n" not in msg and str(a) in msg and str(b) in msg and "different samples" in msg
    with pytest.raises(DataError):  # not even when damage is allowed: two products must not mix
        read_records([a, b], allow_damaged=True)


def test_overlap_with_identical_samples_is_merged(tmp_path):
    raw = _stream()
    a = _write(tmp_path, _mseed(raw.slice(T0, T0 + 1000)), "a.mseed")
    b = _write(tmp_path, _mseed(raw.slice(T0 + 900, T0 + 1800)), "b.mseed")
    rec = read_record([a, b])
    assert rec.npts == len(raw[0].data) and len(rec.overlaps) == 3 and all(o.identical for o in rec.overlaps)
    assert rec.damage == []


def test_float_overlap_within_a_tiny_relative_tolerance_is_merged(tmp_path):
    raw = _stream(dtype=np.float64)
    nudged = raw.slice(T0 + 900, T0 + 1800).copy()
    for tr in nudged:
        tr.data = tr.data * (1 + 1e-9)
    paths = [_write(tmp_path, _mseed(raw.slice(T0, T0 + 1000)), "a.mseed"), _write(tmp_path, _mseed(nudged), "b.mseed")]
    assert read_record(paths).npts == len(raw[0].data)
    for tr in nudged:
        tr.data = tr.data * (1 + 1e-4)
    _write(tmp_path, _mseed(nudged), "b.mseed")
    with pytest.raises(DataError, match="different samples"):
        read_record(paths)


def test_pieces_of_one_file_that_disagree(tmp_path):
    raw = _stream()
    edited = raw.slice(T0 + 600, T0 + 700).copy()
    for tr in edited:
        tr.data = (tr.data // 2).astype(np.int32)
    p = _write(tmp_path, _mseed(raw + edited), "one.mseed")
    with pytest.raises(DataError) as ei:
        read_records(p)
    msg = str(ei.value)
    assert "\n" not in msg and str(p) in msg and "pieces of this file overlap with different samples" in msg
    rec = read_record(p, allow_damaged=True)
    assert len(rec.damage) == 3 and all("the later piece's samples were kept" in d for d in rec.damage)


@pytest.mark.realdata
def test_raw_and_deglitched_reference_do_not_mix(insight):
    r = CliRunner().invoke(main, ["info", str(insight / S0235B), str(insight / REFERENCE)])
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and S0235B.split("/")[1] in lines[0] and REFERENCE.split("/")[1] in lines[0]


@pytest.mark.realdata
def test_mps_overlaps_agree_and_ucla_pieces_do_not(insight):
    """MPS S0105a: its two pieces carry the same samples. UCLA S0105a: they differ on a few samples (refused)."""
    mps = read_record(insight / "background/XB.ELYSE.02.BH_S0105a_deglitched_MPS_v1.mseed")
    assert all(o.identical for o in mps.overlaps) and mps.damage == []
    with pytest.raises(DataError, match="pieces of this file overlap with different samples"):
        read_records(insight / UCLA_S0105A)
    rec = read_record(insight / UCLA_S0105A, allow_damaged=True)
    assert len(rec.damage) == 3 and rec.npts == mps.npts


# -------------------------------------------------------------------------------------------- the commands
def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _damaged_files(tmp_path, clean) -> dict[str, bytes]:
    return {"cut-mid-record": clean[: len(clean) // 2 + 100],
            "cut-at-boundary": clean[: len(clean) // 2 // RECLEN * RECLEN],
            "header-garbage": _poke(clean, 10 * RECLEN, b"\xab" * 48),
            "garbage-appended": clean + b"\x07" * 700,
            "zero-block": _poke(clean, 20 * RECLEN, bytes(4 * RECLEN)),
            "header-time": _poke(clean, 10 * RECLEN + 24, bytes([(clean[10 * RECLEN + 24] + 5) % 24])),
            "frames": _steim_frames_damaged(clean, 0)[0]}


@pytest.mark.parametrize("command", ["info", "features", "separate"])
def test_commands_refuse_damaged_files(tmp_path, clean, command):
    for name, data in _damaged_files(tmp_path, clean).items():
        p = _write(tmp_path, data, f"{name}.mseed")
        out = tmp_path / f"out-{command}-{name}"
        args = {"info": ["info", p],
                "features": ["features", p, "--out", out / "store.h5", "--device", "cpu"],
                "separate": ["separate", p, "--out", out, "--method", "highpass"]}[command]
        r = _cli(*args)
        assert r.exit_code == 2, (name, r.output)
        assert "Traceback" not in r.output
        errors = [ln for ln in r.stderr.splitlines() if "damaged miniSEED" in ln]
        assert len(errors) == 1 and str(p) in errors[0], (name, r.stderr)
        written = [f for f in out.rglob("*") if f.is_file()] if out.exists() else []
        assert written == [], (name, written)
        assert p.read_bytes() == data


def test_info_and_separate_with_allow_damaged(tmp_path, clean):
    p = _write(tmp_path, _poke(clean, 20 * RECLEN, bytes(4 * RECLEN)), "zero.mseed")
    r = _cli("info", "--allow-damaged", p)
    assert r.exit_code == 0 and "DAMAGED: zero.mseed: 4 of" in r.output
    r = _cli("info", "--allow-damaged", "--json", p)
    summary = json.loads(r.stdout)
    assert any(rec["damage"] for rec in summary["records"]) and summary["traces"][0]["damage"]
    out = tmp_path / "out"
    r = _cli("separate", "--allow-damaged", p, "--out", out, "--method", "highpass")
    assert r.exit_code == 0, r.output
    prov = json.loads((out / "zero.provenance.json").read_text())
    assert len(prov["damage"]) == 1 and re.search(r"4 of \d+ records unreadable", prov["damage"][0])
    assert all(rec["damage"] == prov["damage"] for rec in prov["records"] if rec["start"] > str(T0 + 200))


def test_features_with_allow_damaged_notes_the_damage(tmp_path, clean):
    from unmix.features import FeatureConfig, build_store

    p = _write(tmp_path, _poke(clean, 20 * RECLEN, bytes(4 * RECLEN)), "zero.mseed")
    config = FeatureConfig(window=4096, hop=4096, scales=(1024, 4096), J=6)
    with pytest.raises(InputFileError):
        from unmix.features.store import features_for_file

        features_for_file(str(p), config.to_dict(), device="cpu")
    report = build_store([p], tmp_path / "store.h5", config, device="cpu", allow_damaged=True)
    assert report["n_windows"] > 0
    assert any("damaged input used" in n and "4 of" in n for n in report["notes"])


def test_prior_snippets_read_a_damaged_input_the_way_its_features_were_computed(tmp_path, clean):
    """A store built with --allow-damaged lists the damage of its inputs; reading their snippets again must not fail."""
    from unmix.hashing import file_sha256
    from unmix.snippets import _load_input

    p = _write(tmp_path, _poke(clean, 20 * RECLEN, bytes(4 * RECLEN)), "zero.mseed")
    options = {"gap_policy": "split", "max_fill": 0, "response": None}
    entry = {"path": str(p), "sha256": file_sha256(p), "records": [{"key": "XB.ELYSE.02.BH", "damage": []}]}
    with pytest.raises(InputFileError, match="damaged miniSEED"):
        _load_input(entry, options, None)
    entry["records"][0]["damage"] = ["zero.mseed: 4 of 265 records unreadable"]
    assert any(r.damage for r in _load_input(entry, options, None))

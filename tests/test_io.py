from pathlib import Path

import numpy as np
import pytest
from obspy import Stream, UTCDateTime, read

from tests.conftest import make_stream, make_trace
from unmix.errors import DataError, InputFileError, ResponseError
from unmix.io import build_records, read_file, read_record, read_records, read_stream, remove_response, rotate_to_zne

S0235B = "raw/XB.ELYSE.02.BH_2019-07-26T1149_S0235b_raw.mseed"
LOC03 = "raw/XB.ELYSE.03.BH_2019-05-22T2319_raw.mseed"
RESP02 = "response/XB.ELYSE.02.BH.xml"
RESP03 = "response/XB.ELYSE.03.BH_2019-05-18_2019-06-01.xml"


# ---------------------------------------------------------------- real files
@pytest.mark.realdata
def test_every_real_file_reads(insight):
    files = sorted(insight.glob("*/*.mseed"))
    assert len(files) == 15
    for f in files:
        st = read_file(f)
        assert len(st) >= 1
        assert {tr.stats.sampling_rate for tr in st} <= {10.0, 20.0}
        assert all(tr.stats.network == "XB" and tr.stats.station == "ELYSE" for tr in st)


@pytest.mark.realdata
def test_s0235b_record(insight):
    rec = read_record(insight / S0235B)
    assert rec.key == "XB.ELYSE.02.BH"
    assert rec.components == "UVW"
    assert rec.sampling_rate == 20.0
    # components start a few seconds apart: trimmed to the common span (latest start = BHV 11:49:06.411)
    assert rec.starttime == UTCDateTime("2019-07-26T11:49:06.411")
    assert rec.endtime == UTCDateTime("2019-07-26T13:48:08.361")
    assert rec.npts == 142840
    assert {tr.stats.starttime.timestamp for tr in rec.stream} == {rec.starttime.timestamp}
    assert rec.to_array().shape == (3, 142840)


@pytest.mark.realdata
def test_10sps_location03(insight):
    rec = read_record(insight / LOC03)
    assert rec.key == "XB.ELYSE.03.BH" and rec.sampling_rate == 10.0 and rec.npts == 110965


@pytest.mark.realdata
def test_mps_overlaps_are_merged(insight):
    f = insight / "background/XB.ELYSE.02.BH_S0105a_deglitched_MPS_v1.mseed"
    assert len(read(str(f))) == 6  # two overlapping traces per channel in the file
    rec = read_record(f)
    assert len(rec.stream) == 3
    assert len(rec.overlaps) == 3 and all(o.samples < 0 for o in rec.overlaps)
    assert rec.npts > 68000 + 24000 - 2100  # both pieces joined, overlap counted once
    assert any("overlap" in n for n in rec.notes)


@pytest.mark.realdata
def test_single_component_files(insight):
    recs = read_records(sorted((insight / "raw").glob("XB.ELYSE.02.BHV.*")))
    assert len(recs) == 6
    assert all(r.components == "V" and r.sampling_rate == 20.0 for r in recs)


@pytest.mark.realdata
def test_directory_and_glob_inputs(insight):
    by_dir = read_stream(insight / "background")
    by_glob = read_stream(str(insight / "background" / "*UCLA*.mseed"))
    assert len(by_dir) == 24 and len(by_glob) == 12


@pytest.mark.realdata
def test_response_removal_gives_plausible_velocity(insight):
    rec = read_record(insight / S0235B)
    before = rec.to_array().copy()
    vel = remove_response(rec, insight / RESP02, output="VEL")
    assert np.array_equal(rec.to_array(), before)  # input record untouched
    filt = vel.stream.copy().filter("bandpass", freqmin=0.01, freqmax=5.0, zerophase=True)
    for tr in filt:
        level = np.sqrt(np.median(tr.data[20000:-20000] ** 2))
        assert 1e-10 < level < 1e-7, level  # m/s: InSight noise is ~1e-9 m/s in this band
    acc = remove_response(rec, insight / RESP02, output="ACC")
    assert any("ACC" in n for n in acc.notes)


@pytest.mark.realdata
def test_rotation_to_zne(insight):
    rec = read_record(insight / S0235B)
    zne = rotate_to_zne(rec, insight / RESP02)
    assert zne.components == "ZNE"
    assert [tr.stats.channel for tr in zne.stream] == ["BHZ", "BHN", "BHE"]
    # rotation is orthonormal-ish: total energy roughly preserved
    e_in, e_out = np.sum(rec.to_array() ** 2), np.sum(zne.to_array() ** 2)
    assert 0.3 < e_out / e_in < 3


@pytest.mark.realdata
def test_response_not_covering_data(insight, tmp_path):
    rec = read_record(insight / LOC03)
    with pytest.raises(ResponseError, match="do not cover"):
        remove_response(rec, insight / RESP02)  # 02 metadata for 03 data
    st = read(str(insight / S0235B))
    for tr in st:
        tr.stats.starttime = UTCDateTime("2030-01-01")
    f = tmp_path / "future.mseed"
    st.write(str(f), format="MSEED")
    with pytest.raises(ResponseError, match=r"XB.ELYSE.02.BHU.*do not cover"):
        remove_response(read_record(f), insight / RESP02)


# ---------------------------------------------------------------- bad input
def _one_line(exc: Exception, path) -> str:
    msg = str(exc)
    assert "\n" not in msg
    assert str(path) in msg
    return msg


def test_missing_file(tmp_path):
    p = tmp_path / "nope.mseed"
    with pytest.raises(InputFileError) as ei:
        read_stream(p)
    assert "no such file" in _one_line(ei.value, p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.mseed"
    p.write_bytes(b"")
    with pytest.raises(InputFileError) as ei:
        read_file(p)
    assert "empty" in _one_line(ei.value, p)


def test_unknown_format(tmp_path):
    p = tmp_path / "notes.dat"
    p.write_text("this is not a seismogram\n" * 20)
    with pytest.raises(InputFileError) as ei:
        read_file(p)
    assert "unknown or unsupported" in _one_line(ei.value, p)
    assert "HDF5" not in str(ei.value)


def test_an_unmix_store_passed_as_a_waveform_is_named(tmp_path):
    import h5py

    p = tmp_path / "features.h5"
    with h5py.File(p, "w") as f:
        f["x"] = [1, 2, 3]
    with pytest.raises(InputFileError) as ei:
        read_file(p)
    assert "HDF5" in _one_line(ei.value, p) and "feature store" in str(ei.value)


def test_truncated_miniseed(tmp_path):
    good = tmp_path / "good.mseed"
    make_stream(npts=20000).write(str(good), format="MSEED", reclen=512, encoding="FLOAT64")
    data = good.read_bytes()
    p = tmp_path / "truncated.mseed"
    p.write_bytes(data[: 512 * 5 + 100])
    with pytest.raises(InputFileError) as ei:
        read_file(p)
    assert "truncated" in _one_line(ei.value, p)


def test_corrupt_miniseed(tmp_path, insight):
    data = bytearray((insight / S0235B).read_bytes()[: 4096 * 4])
    data[4096 + 200: 4096 + 600] = b"\xff" * 400
    p = tmp_path / "corrupt.mseed"
    p.write_bytes(bytes(data))
    with pytest.raises(InputFileError) as ei:
        read_file(p)
    assert "damaged miniSEED" in _one_line(ei.value, p) and "cannot be decoded" in str(ei.value)


def test_nan_samples(tmp_path):
    st = make_stream()
    st[1].data[100:105] = np.nan
    p = tmp_path / "nan.mseed"
    st.write(str(p), format="MSEED", encoding="FLOAT64")
    with pytest.raises(DataError) as ei:
        read_file(p)
    assert "NaN" in _one_line(ei.value, p) and "BHV" in str(ei.value)


def test_inf_samples(tmp_path):
    st = make_stream()
    st[0].data[7] = np.inf
    p = tmp_path / "inf.sac"
    st[0].write(str(p), format="SAC")
    with pytest.raises(DataError, match="infinite"):
        read_file(p)


def test_single_sample(tmp_path):
    st = Stream([make_trace(npts=1)])
    p = tmp_path / "one.mseed"
    st.write(str(p), format="MSEED", encoding="FLOAT64")
    with pytest.raises(DataError) as ei:
        read_file(p)
    assert "only 1 sample" in _one_line(ei.value, p)


def test_mixed_sampling_rates(tmp_path):
    st = make_stream("UV", npts=4000) + Stream([make_trace("BHW", npts=2000, rate=10.0)])
    p = tmp_path / "mixed.mseed"
    st.write(str(p), format="MSEED", encoding="FLOAT64")
    with pytest.raises(DataError) as ei:
        read_record(p)
    msg = _one_line(ei.value, p)
    assert "mixes sampling rates" in msg and "10" in msg and "20" in msg
    rec = read_record(p, resample_to=20.0)
    assert rec.sampling_rate == 20.0 and rec.components == "UVW"
    assert any("resampled" in n for n in rec.notes)


def test_mixed_stations(tmp_path):
    st = make_stream("UV") + Stream([make_trace("BHW", station="OTHER")])
    p = tmp_path / "mixed_sta.mseed"
    st.write(str(p), format="MSEED", encoding="FLOAT64")
    with pytest.raises(DataError) as ei:
        read_record(p)
    msg = _one_line(ei.value, p)
    assert "different instruments" in msg and "XB.OTHER.02.BH" in msg
    assert len(read_records(p)) == 2  # reading all records is fine: one per instrument


def test_bad_response_file(tmp_path):
    p = tmp_path / "resp.xml"
    p.write_text("<not stationxml/>")
    with pytest.raises(InputFileError) as ei:
        remove_response(build_records(make_stream())[0], p)
    assert "StationXML" in _one_line(ei.value, p)


# ---------------------------------------------------------------- gaps, alignment
def _gapped(tmp_path) -> Path:
    st = make_stream(npts=4000)
    parts = Stream()
    for tr in st:
        a = tr.slice(tr.stats.starttime, tr.stats.starttime + 99.95)  # 2000 samples
        b = tr.slice(tr.stats.starttime + 100.5, tr.stats.endtime)  # 10-sample gap
        parts += Stream([a, b])
    p = tmp_path / "gapped.mseed"
    parts.write(str(p), format="MSEED", encoding="FLOAT64")
    return p


def test_gap_split(tmp_path):
    recs = read_records(_gapped(tmp_path), gap_policy="split")
    assert len(recs) == 2
    assert [r.npts for r in recs] == [2000, 1990]
    assert all(len(r.gaps) == 3 for r in recs)
    assert all(g.samples == 10 for g in recs[0].gaps)


def test_gap_fill_short_only(tmp_path):
    p = _gapped(tmp_path)
    recs = read_records(p, gap_policy="fill", max_fill=10)
    assert len(recs) == 1 and recs[0].npts == 4000
    assert any("filled" in n for n in recs[0].notes)
    assert len(read_records(p, gap_policy="fill", max_fill=5)) == 2  # longer than allowed: still split


def test_gap_error(tmp_path):
    p = _gapped(tmp_path)
    with pytest.raises(DataError) as ei:
        read_records(p, gap_policy="error")
    assert "gap" in _one_line(ei.value, p)


def test_subsample_offsets_are_aligned():
    st = make_stream(npts=3000)
    st[1].stats.starttime += 0.013  # 0.26 sample
    recs = build_records(st)
    assert len(recs) == 1
    r = recs[0]
    assert len({tr.stats.starttime.timestamp for tr in r.stream}) == 1
    assert any("shifted" in n for n in r.notes)


def test_inputs_never_modified(tmp_path, insight):
    src = insight / "background/XB.ELYSE.02.BH_S0105a_deglitched_MPS_v1.mseed"
    before = src.read_bytes()
    rec = read_record(src)
    remove_response(rec, insight / RESP02)
    assert src.read_bytes() == before

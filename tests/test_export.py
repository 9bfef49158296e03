"""Batch separation export: ``unmix separate`` and :mod:`unmix.export`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from obspy import read

from tests.conftest import make_stream
from unmix.cli import main
from unmix.export import export_separation, file_sha256, output_stems
from unmix.io import read_record

S0235B = "raw/XB.ELYSE.02.BH_2019-07-26T1149_S0235b_raw.mseed"


def _write(tmp_path, name, npts=6000, seed=0):
    st = make_stream(npts=npts)
    for i, tr in enumerate(st):
        tr.data = np.random.default_rng(seed + i).standard_normal(npts) * 100
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    st.write(str(path), format="MSEED")
    return path


@pytest.mark.realdata
@pytest.mark.parametrize("fmt", ["MSEED", "SAC"])
def test_export_real_record_reads_back_with_identical_ids_and_times(insight, tmp_path, fmt):
    raw = insight / S0235B
    sha = file_sha256(raw)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["separate", str(raw), "--out", str(out), "--method", "highpass", "--format", fmt])
    assert res.exit_code == 0, res.output
    record = read_record(raw)
    stem = raw.stem
    ext = fmt.lower()
    sources = {}
    for name in ("background", "low_frequency"):
        files = sorted(out.glob(f"{stem}.{name}.*{ext}"))
        assert len(files) == (1 if fmt == "MSEED" else 3)
        st = read(str(out / f"{stem}.{name}.*{ext}"))
        sources[name] = st
        code = "B2" if name == "background" else "L2"  # derived products carry their own location code
        assert sorted(tr.id for tr in st) == sorted(tr.id.replace(".02.", f".{code}.") for tr in record.stream)
        for tr in st:
            ref = record.stream.select(channel=tr.stats.channel)[0]
            assert tr.stats.starttime == ref.stats.starttime
            assert tr.stats.sampling_rate == ref.stats.sampling_rate
            assert tr.stats.npts == ref.stats.npts
    for tr in record.stream:
        cha = tr.stats.channel
        total = sources["background"].select(channel=cha)[0].data + sources["low_frequency"].select(channel=cha)[0].data
        tol = 1e-6 if fmt == "MSEED" else 1e-3 * np.max(np.abs(tr.data))  # SAC stores float32
        np.testing.assert_allclose(total, tr.data, atol=tol)
    prov = json.loads((out / f"{stem}.provenance.json").read_text())
    assert prov["input_sha256"] == sha and prov["method"] == "highpass" and prov["version"]
    assert set(prov["timings"]) >= {"read_s", "separate_s", "write_s", "total_s"}
    assert all((out / name).exists() for name in prov["outputs"])
    assert file_sha256(raw) == sha  # the input is untouched
    again = CliRunner().invoke(main, ["separate", str(raw), "--out", str(out), "--method", "highpass", "--format", fmt])
    assert again.exit_code == 0 and "1 already done" in again.output


def test_rerun_skip_overwrite_and_bad_files(tmp_path):
    good = _write(tmp_path, "good.mseed")
    bad = tmp_path / "bad.mseed"
    bad.write_bytes(b"this is not miniSEED at all" * 40)
    out = tmp_path / "out"
    args = ["separate", str(good), str(bad), str(tmp_path / "missing.mseed"), "--out", str(out), "--method",
            "template"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2
    assert "bad.mseed" in res.output and "missing.mseed" in res.output and "2 of 3 input(s) failed" in res.output
    assert (out / "good.background.mseed").exists() and (out / "good.glitches.mseed").exists()
    assert not list(out.glob("bad.*"))
    first = (out / "good.provenance.json").read_text()
    # a re-run skips the finished input; another configuration refuses to replace it without --overwrite
    rep = export_separation([good], out, "template")
    assert rep.skipped == [str(good)] and not rep.done
    rep = export_separation([good], out, "template", {"min_variance_reduction": 0.5})
    assert rep.failed and "--overwrite" in rep.failed[0][1]
    assert (out / "good.provenance.json").read_text() == first
    rep = export_separation([good], out, "template", {"min_variance_reduction": 0.5}, overwrite=True)
    assert rep.done == [str(good)]
    assert json.loads((out / "good.provenance.json").read_text())["configuration"]["options"] == {
        "min_variance_reduction": 0.5}


def test_outputs_never_replace_inputs(tmp_path):
    a = _write(tmp_path, "y.mseed")
    b = _write(tmp_path, "y.background.mseed", seed=6)  # y's background output would land on this input
    before = file_sha256(b)
    rep = export_separation([a, b], tmp_path, "highpass", overwrite=True)
    assert [p for p, _ in rep.failed] == [str(a)] and "replace an input" in rep.failed[0][1]
    assert file_sha256(b) == before
    assert rep.done == [str(b)]


def test_output_stems_are_unique(tmp_path):
    files = [tmp_path / "a" / "rec.mseed", tmp_path / "b" / "rec.mseed", tmp_path / "c.mseed"]
    stems = output_stems(files)
    assert len(set(stems.values())) == 3 and stems[files[2]] == "c"


@pytest.mark.slow
def test_workers_and_sac_split_per_trace(tmp_path):
    paths = [_write(tmp_path / "in", f"r{i}.mseed", seed=i) for i in range(2)]
    out = tmp_path / "out"
    rep = export_separation([tmp_path / "in"], out, "highpass", fmt="SAC", workers=2)
    assert sorted(rep.done) == sorted(str(p) for p in paths) and not rep.failed
    sac = sorted(p.name for p in out.glob("r0.*.sac"))
    assert sac == [f"r0.{src}.XB.ELYSE.{loc}.BH{c}.sac" for src, loc in (("background", "B2"), ("low_frequency", "L2"))
                   for c in "UVW"]


def test_separate_cli_option_errors(tmp_path):
    good = _write(tmp_path, "g.mseed")
    runner = CliRunner()
    res = runner.invoke(main, ["separate", str(good), "--out", str(tmp_path / "o"), "--method", "scatcov"])
    assert res.exit_code == 2 and "needs a prior" in res.output
    table = tmp_path / "t.h5"
    table.write_bytes(b"x")
    res = runner.invoke(main, ["separate", str(good), "--out", str(tmp_path / "o"), "--table", str(table)])
    assert res.exit_code == 2 and "--background-cluster" in res.output
    res = runner.invoke(main, ["separate", str(good), "--out", str(tmp_path / "o"), "--table", str(table),
                               "--method", "template"])
    assert res.exit_code == 2 and "do not combine" in res.output


@pytest.mark.slow
def test_scatcov_export_with_a_prior_file(tmp_path):
    """The scatcov path of ``unmix separate --prior``: snippets of a clean file, one L-BFGS iteration."""
    target = _write(tmp_path, "t.mseed", npts=2048)
    clean = _write(tmp_path / "clean", "c.mseed", npts=8192, seed=9)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["separate", str(target), "--out", str(out), "--prior", str(clean),
                                    "--scatcov-opt", "max_iter=1", "--scatcov-opt", "n_prior=3",
                                    "--scatcov-opt", "piece=1024", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    prov = json.loads((out / "t.provenance.json").read_text())
    assert prov["method"] == "scatcov" and prov["model"]["prior_sha256"] == file_sha256(clean)
    bg, rm = read(str(out / "t.background.mseed")), read(str(out / "t.removed.mseed"))
    src = read(str(target))
    for tr in src:
        cha = tr.stats.channel
        np.testing.assert_allclose(bg.select(channel=cha)[0].data + rm.select(channel=cha)[0].data, tr.data, atol=1e-6)


@pytest.mark.slow
def test_hybrid_export_with_a_prior_file(tmp_path):
    """``unmix separate --method hybrid --prior``: the removed parts and the background add up to the input."""
    target = _write(tmp_path, "t.mseed", npts=4096)
    clean = _write(tmp_path / "clean", "c.mseed", npts=8192, seed=9)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["separate", str(target), "--out", str(out), "--method", "hybrid", "--prior",
                                    str(clean), "--hybrid-opt", "max_iter=1", "--hybrid-opt", "n_prior=3",
                                    "--device", "cpu"])
    assert res.exit_code == 0, res.output
    prov = json.loads((out / "t.provenance.json").read_text())
    assert prov["method"] == "hybrid" and prov["model"]["prior_sha256"] == file_sha256(clean)
    src = read(str(target))
    parts = [read(str(p)) for p in sorted(out.glob("t.*.mseed")) if ".background." not in p.name]
    bg = read(str(out / "t.background.mseed"))
    for tr in src:
        cha = tr.stats.channel
        total = bg.select(channel=cha)[0].data + sum(p.select(channel=cha)[0].data for p in parts)
        np.testing.assert_allclose(total, tr.data, atol=1e-6)
    res = CliRunner().invoke(main, ["separate", str(target), "--out", str(tmp_path / "o2"), "--method", "template",
                                    "--prior", str(clean)])
    assert res.exit_code == 2 and "do not combine" in res.output

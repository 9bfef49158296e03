import json

import pytest
from click.testing import CliRunner
from obspy import read

from unmix.cli import main

S0235B = "raw/XB.ELYSE.02.BH_2019-07-26T1149_S0235b_raw.mseed"


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.mark.realdata
def test_info_on_every_real_file(insight):
    for f in sorted(insight.glob("*/*.mseed")):
        # the two pieces of UCLA's S0105a disagree on a few overlapping samples: refused unless --allow-damaged
        damaged = f.name == "XB.ELYSE.02.BH_S0105a_deglitched_UCLA_v4.mseed"
        r = run("info", *(["--allow-damaged"] if damaged else []), f)
        assert r.exit_code == 0, r.output
        assert "XB.ELYSE." in r.output and "LMST" in r.output and "UTC" in r.output
        assert ("DAMAGED" in r.output) == damaged


@pytest.mark.realdata
def test_info_s0235b_content(insight):
    r = run("info", insight / S0235B)
    assert r.exit_code == 0
    out = r.output
    assert "XB.ELYSE.02.BH{UVW}  20 sps  142840 samples" in out
    assert "2019-07-26T11:49:06.411000Z" in out
    assert "S0235 " in out
    r = run("info", "--json", insight / S0235B)
    data = json.loads(r.output)
    assert data["records"][0]["npts"] == 142840 and len(data["traces"]) == 3


@pytest.mark.realdata
def test_info_reports_overlaps(insight):
    r = run("info", insight / "background/XB.ELYSE.02.BH_S0105a_deglitched_MPS_v1.mseed")
    assert r.exit_code == 0
    assert "overlaps: 3" in r.output and "overlap 2019-03-14T21:28:36" in r.output


@pytest.mark.parametrize("content, expect", [
    (b"", "empty"),
    (b"garbage that is not a seismogram" * 10, "unknown or unsupported"),
])
def test_bad_input_one_line_no_traceback(tmp_path, content, expect):
    p = tmp_path / "bad.mseed"
    p.write_bytes(content)
    r = CliRunner().invoke(main, ["info", str(p)])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(p) in lines[0] and expect in lines[0]
    assert "Traceback" not in r.output


def test_missing_input(tmp_path):
    r = CliRunner().invoke(main, ["info", str(tmp_path / "nothing.mseed")])
    assert r.exit_code == 2 and "no such file" in r.output


def test_synth_writes_and_refuses_overwrite(tmp_path):
    out = tmp_path / "syn"
    r = run("synth", "--hours", 2, "--out", out, "--seed", 3)
    assert r.exit_code == 0, r.output
    st = read(str(out / "mixture.mseed"))
    assert [tr.stats.channel for tr in st] == ["BHU", "BHV", "BHW"]
    assert abs(st[0].stats.npts - 2 * 3600 * 20) <= 1
    assert (out / "truth.json").exists()
    r = CliRunner().invoke(main, ["synth", "--hours", "2", "--out", str(out)])
    assert r.exit_code == 2 and "--overwrite" in r.output
    r = run("synth", "--hours", 2, "--out", out, "--overwrite", "--seed", 4)
    assert r.exit_code == 0


@pytest.mark.slow
def test_demo_runs_the_whole_chain(tmp_path):
    out = tmp_path / "demo"
    r = run("demo", "--out", out, "--hours", 3, "--epochs", 3, "--target-minutes", 3, "--max-iter", 5)
    assert r.exit_code == 0, r.output
    png = out / "overview.png"
    assert png.stat().st_size > 20_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "LMST" in r.output and "background cluster" in r.output
    quality = [ln for ln in r.output.splitlines() if ln.startswith("clusters at ")]
    assert len(quality) == 4 and all("ARI" in ln and "against the truth" in ln for ln in quality)
    from unmix.clusters import ClusterTable

    assert ClusterTable.load(out / "clusters.h5").suggestions  # names suggested from the truth, stored
    for method in ("template", "scatcov", "hybrid"):
        line = next(ln for ln in r.output.splitlines() if ln.startswith(f"{method}: BHU"))
        assert "gain" in line or "no glitch in the span" in line
        files = sorted((out / "separated" / method).glob("target.*.mseed"))
        assert {f.name.split(".")[1] for f in files} >= {"background"}
        target, background = read(out / "target.mseed"), read(files[0])
        assert [tr.id.replace(".B2.", ".02.") for tr in background] == [tr.id for tr in target]  # own location
        assert all(b.stats.starttime == t.stats.starttime for b, t in zip(background, target, strict=True))
        assert (out / "separated" / method / "target.provenance.json").exists()
    assert (out / "clusters.h5").exists() and (out / "model.pt").exists()
    r = run("demo", "--out", out, "--hours", 3)
    assert r.exit_code == 2 and "--overwrite" in r.output


def test_synth_sac_one_file_per_trace(tmp_path):
    out = tmp_path / "sac"
    r = run("synth", "--hours", 1, "--out", out, "--format", "SAC")
    assert r.exit_code == 0, r.output
    files = sorted(out.glob("mixture.*.sac"))
    assert [f.name for f in files] == [f"mixture.SY.ELYSE.02.BH{c}.sac" for c in "UVW"]
    r = run("info", out / "mixture.*.sac")
    assert r.exit_code == 0 and "SY.ELYSE.02.BH{UVW}" in r.output


def test_atomic_outputs_get_normal_permissions(tmp_path):
    import os

    from unmix.atomic import atomic_path

    with atomic_path(tmp_path / "x.txt") as tmp:
        tmp.write_text("ok")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "x.txt").stat().st_mode & 0o777 == 0o666 & ~umask

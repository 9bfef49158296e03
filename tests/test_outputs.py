"""Outputs that survive a crash and cannot pass for raw data (issue #14 §2–3, §5): the provenance file commits a
separation, stale temporary files are cleaned up, derived products have their own identity, synthetic records a
synthetic network, and file-system errors are one line."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from obspy import UTCDateTime, read
from obspy.core.inventory import Channel, Inventory, Network, Site, Station

from tests.conftest import make_stream
from unmix.atomic import STALE_AGE_S, atomic_path, remove_stale_parts, temp_prefix
from unmix.cli import main
from unmix.errors import describe_os_error
from unmix.export import export_separation, file_sha256
from unmix.io import build_records, read_stream

ROOT = Path(__file__).resolve().parents[1]


def _write(folder: Path, name: str, npts: int = 6000, seed: int = 0) -> Path:
    st = make_stream(npts=npts)
    for i, tr in enumerate(st):
        tr.data = np.random.default_rng(seed + i).standard_normal(npts) * 100
    folder.mkdir(parents=True, exist_ok=True)
    st.write(str(folder / name), format="MSEED")
    return folder / name


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _one_line_error(res) -> str:
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert lines[-1].startswith("error: "), res.output
    return lines[-1]


# -- the provenance file commits a separation ------------------------------------------------------------------------

# kills the process (SIGKILL) when the output KILL_AT has been written but not yet renamed into place
_KILL_ON_WRITE = """
import os, signal, sys
original = os.replace
def replace(src, dst, *args, **kwargs):
    if os.path.basename(dst) == os.environ["KILL_AT"]:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(src, dst, *args, **kwargs)
os.replace = replace
from unmix.cli import main
main(sys.argv[1:])
"""


def test_killed_separate_is_redone_without_overwrite_and_leaves_no_part(tmp_path):
    """A real ``unmix separate`` killed (SIGKILL) while writing the second output of the second input: the re-run
    without --overwrite skips the finished input, redoes the interrupted one and removes the stale ``.part``."""
    inputs = tmp_path / "in"
    a, b = _write(inputs, "a.mseed", seed=0), _write(inputs, "b.mseed", seed=5)
    out = tmp_path / "out"
    args = ["separate", str(inputs), "--out", str(out), "--method", "highpass"]
    killed = subprocess.run([sys.executable, "-c", _KILL_ON_WRITE, *args], cwd=ROOT, capture_output=True,
                            env={**os.environ, "KILL_AT": "b.low_frequency.mseed", "OMP_NUM_THREADS": "1"})
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert (out / "b.background.mseed").exists() and not (out / "b.provenance.json").exists()
    assert list(out.glob(".b.low_frequency.mseed.*.part"))  # the half-written output of the killed run
    finished = {p.name: (p.stat().st_mtime_ns, file_sha256(p)) for p in out.glob("a.*")}
    assert len(finished) == 3
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "1 separated, 1 already done" in res.output
    assert not [p for p in out.iterdir() if p.name.endswith(".part") or p.name.startswith(".")]
    assert {p.name: (p.stat().st_mtime_ns, file_sha256(p)) for p in out.glob("a.*")} == finished
    prov = json.loads((out / "b.provenance.json").read_text())
    assert sorted(prov["outputs"]) == ["b.background.mseed", "b.low_frequency.mseed"]
    for entry in prov["files"]:
        assert file_sha256(out / entry["name"]) == entry["sha256"]
        assert (out / entry["name"]).stat().st_size == entry["bytes"]
    clean = export_separation([b], tmp_path / "clean", "highpass")
    assert clean.done == [str(b)]
    for name in ("background", "low_frequency"):
        redone, ref = read(str(out / f"b.{name}.mseed")), read(str(tmp_path / "clean" / f"b.{name}.mseed"))
        for tr in ref:
            np.testing.assert_array_equal(redone.select(id=tr.id)[0].data, tr.data)
    assert file_sha256(a) == file_sha256(a) and read(str(b))  # inputs are untouched and readable


def test_output_that_no_longer_matches_its_provenance_is_redone(tmp_path):
    good = _write(tmp_path / "in", "g.mseed")
    out = tmp_path / "out"
    assert export_separation([good], out, "highpass").done == [str(good)]
    assert export_separation([good], out, "highpass").skipped == [str(good)]
    target = out / "g.background.mseed"
    target.write_bytes(target.read_bytes()[:4096])  # damaged after the run
    rep = export_separation([good], out, "highpass")
    assert rep.done == [str(good)] and not rep.failed
    prov = json.loads((out / "g.provenance.json").read_text())
    assert {e["name"]: e["sha256"] for e in prov["files"]}["g.background.mseed"] == file_sha256(target)


def test_a_file_no_note_claims_is_never_replaced_without_overwrite(tmp_path):
    good = _write(tmp_path / "in", "g.mseed")
    out = tmp_path / "out"
    out.mkdir()
    (out / "g.background.mseed").write_bytes(b"somebody else's file")
    rep = export_separation([good], out, "highpass")
    assert rep.failed and "--overwrite" in rep.failed[0][1]
    assert (out / "g.background.mseed").read_bytes() == b"somebody else's file"


def test_separate_into_its_own_input_folder_never_separates_its_outputs(tmp_path):
    folder = tmp_path / "data"
    raw = _write(folder, "r.mseed")
    args = ["separate", str(folder), "--out", str(folder), "--method", "highpass"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0 and "1 separated" in first.output, first.output
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert "0 separated, 1 already done, 0 failed, 2 own output(s) ignored" in again.output
    assert sorted(p.name for p in folder.iterdir()) == ["r.background.mseed", "r.low_frequency.mseed", "r.mseed",
                                                         "r.provenance.json"]
    assert read(str(raw))


@pytest.mark.parametrize("fmt", ["MSEED", "SAC"])
def test_products_of_another_run_are_refused_as_inputs(tmp_path, fmt):
    raw = _write(tmp_path / "in", "r.mseed")
    first = export_separation([raw], tmp_path / "out1", "highpass", fmt=fmt)
    assert first.done == [str(raw)]
    rep = export_separation([tmp_path / "out1"], tmp_path / "out2", "template", fmt=fmt)
    assert len(rep.failed) == (2 if fmt == "MSEED" else 6) and not rep.done
    assert all("is an Unmix output" in message and "separate the raw record" in message for _, message in rep.failed)
    assert not (tmp_path / "out2").exists() or not list((tmp_path / "out2").iterdir())


# -- stale temporary files -------------------------------------------------------------------------------------------

def test_atomic_path_removes_stale_parts_of_its_target_only(tmp_path):
    target = tmp_path / "store.h5"
    host_prefix = temp_prefix(target).rsplit("~", 2)[0]  # '.store.h5.unmix~<host>'
    dead = tmp_path / f"{host_prefix}~{_dead_pid()}~abc.part"
    live = tmp_path / f"{host_prefix}~{os.getppid()}~def.part"  # a process that still runs
    old_legacy, young_legacy = tmp_path / ".store.h5.k3j4h5g6.part", tmp_path / ".store.h5.z9y8x7w6.part"
    other = tmp_path / f".other.h5.unmix~x~{_dead_pid()}~abc.part"
    for p in (dead, live, old_legacy, young_legacy, other):
        p.write_bytes(b"partial")
    past = time.time() - STALE_AGE_S - 60
    os.utime(old_legacy, (past, past))
    with atomic_path(target) as tmp:
        assert tmp.name.startswith(temp_prefix(target)) and tmp.name.endswith(".part")
        tmp.write_bytes(b"complete")
    assert target.read_bytes() == b"complete"
    assert not dead.exists() and not old_legacy.exists()
    assert live.exists() and young_legacy.exists() and other.exists()
    assert remove_stale_parts(tmp_path / "other.h5") == []  # another host's name: kept until it is old


def test_synth_cleans_up_the_part_files_of_a_killed_run(tmp_path):
    out = tmp_path / "syn"
    out.mkdir()
    stale = out / f"{temp_prefix(out / 'mixture.mseed').rsplit('~', 2)[0]}~{_dead_pid()}~q1w2e3.part"
    stale.write_bytes(b"half")
    res = CliRunner().invoke(main, ["synth", "--hours", "0.1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert not stale.exists() and not list(out.glob(".*"))


def test_features_store_cleans_up_the_part_files_of_a_killed_run(tmp_path):
    synth = tmp_path / "syn"
    assert CliRunner().invoke(main, ["synth", "--hours", "0.2", "--out", str(synth)]).exit_code == 0
    store = tmp_path / "f.h5"
    stale = tmp_path / f"{temp_prefix(store).rsplit('~', 2)[0]}~{_dead_pid()}~a1s2d3.part"
    legacy = tmp_path / ".f.h5.k3j4h5g6.part"  # the naming before this change, from a run killed hours ago
    for p in (stale, legacy):
        p.write_bytes(b"\x89HDF half a store")
    past = time.time() - STALE_AGE_S - 60
    os.utime(legacy, (past, past))
    res = CliRunner().invoke(main, ["features", str(synth / "mixture.mseed"), "--out", str(store), "--window", "4096",
                                    "--hop", "2048", "--scales", "1024,4096", "--J", "6", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert store.exists() and not stale.exists() and not legacy.exists()


# -- derived products have an identity of their own ------------------------------------------------------------------

def _separated(tmp_path, *extra):
    raw = _write(tmp_path / "in", "r.mseed")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["separate", str(raw), "--out", str(out), "--method", "highpass", *extra])
    assert res.exit_code == 0, res.output
    return raw, out


def test_products_read_with_the_raw_record_stay_separate_records(tmp_path):
    raw, out = _separated(tmp_path)
    files = [raw, out / "r.background.mseed", out / "r.low_frequency.mseed"]
    records = build_records(read_stream(files))
    assert sorted(r.key for r in records) == ["XB.ELYSE.02.BH", "XB.ELYSE.B2.BH", "XB.ELYSE.L2.BH"]
    res = CliRunner().invoke(main, ["info", *map(str, files)])
    assert res.exit_code == 0 and "3 record(s)" in res.output, res.output
    for path in files[1:]:
        data = path.read_bytes()
        reclen = read(str(path))[0].stats.mseed.record_length
        assert {data[k + 6:k + 7] for k in range(0, len(data), reclen)} == {b"Q"}  # the quality byte of every record
    assert read(str(raw))[0].stats.mseed.dataquality == "D"
    prov = json.loads((out / "r.provenance.json").read_text())
    assert prov["dataquality"] == "Q" and prov["products"] == {"background": ["B2"], "low_frequency": ["L2"]}
    entry = {e["name"]: e for e in prov["files"]}["r.background.mseed"]
    assert entry["raw_ids"] == [f"XB.ELYSE.02.BH{c}" for c in "UVW"]
    assert entry["ids"] == [f"XB.ELYSE.B2.BH{c}" for c in "UVW"]
    assert any(p.startswith("unmix ") and "background of XB.ELYSE.02.BHU" in p for p in entry["processing"])
    assert any("filter" in p for p in entry["processing"])  # ObsPy's own history of the product is kept


def test_location_option_and_float32_output(tmp_path):
    _, out = _separated(tmp_path, "--location", "background=b0,low_frequency=F9", "--dtype", "float32")
    bg, low = read(str(out / "r.background.mseed")), read(str(out / "r.low_frequency.mseed"))
    assert {tr.stats.location for tr in bg} == {"B0"} and {tr.stats.location for tr in low} == {"F9"}
    for tr in (*bg, *low):
        assert tr.data.dtype == np.float32 and tr.stats.mseed.encoding == "FLOAT32"
    _, out64 = _separated(tmp_path / "b")
    assert {tr.stats.mseed.encoding for tr in read(str(out64 / "r.background.mseed"))} == {"FLOAT64"}
    raw = tmp_path / "in" / "r.mseed"
    for bad, said in (("background=B0,glitches=B0", "same location code"), ("background=TOO", "'TOO'"),
                      ("background=02", "'02' of background is the input's own"), ("backgrond=B0", "backgrond")):
        res = CliRunner().invoke(main, ["separate", str(raw), "--out", str(tmp_path / "x"), "--method", "highpass",
                                        "--location", bad])
        assert res.exit_code == 2 and "location" in res.output and said in res.output, res.output


def _inventory(path: Path) -> Path:
    start = UTCDateTime("2019-01-01")
    channels = [Channel(f"BH{c}", "02", 4.502384, 135.623447, -2613.4, 0.06, azimuth=az, dip=dip,
                        sample_rate=20.0, start_date=start)
                for c, az, dip in (("U", 135.1, -29.4), ("V", 15.0, -29.2), ("W", 255.0, -29.7))]
    station = Station("ELYSE", 4.502384, 135.623447, -2613.4, channels=channels, site=Site("InSight"),
                      start_date=start)
    Inventory([Network("XB", stations=[station])], source="test").write(str(path), format="STATIONXML")
    return path


def test_sac_products_carry_what_they_are_and_where_they_were_recorded(tmp_path):
    inv = _inventory(tmp_path / "inv.xml")
    _, out = _separated(tmp_path, "--format", "SAC", "--inventory", str(inv))
    tr = read(str(out / "r.background.XB.ELYSE.B2.BHU.sac"))[0]
    sac = tr.stats.sac
    assert (sac.kuser0, sac.kuser1, sac.kuser2, sac.kevnm) == ("unmix", "backgrou", "highpass", "background")
    assert sac.khole == "B2"
    assert sac.stla == pytest.approx(4.502384) and sac.stlo == pytest.approx(135.623447)
    assert sac.stel == pytest.approx(-2613.4) and sac.cmpaz == pytest.approx(135.1)
    assert sac.cmpinc == pytest.approx(90.0 - 29.4)  # SAC incidence from vertical, SEED dip from horizontal
    low = read(str(out / "r.low_frequency.XB.ELYSE.L2.BHW.sac"))[0].stats.sac
    assert (low.kuser1, low.kevnm, low.cmpaz) == ("low_freq", "low_frequency", pytest.approx(255.0))


# -- synthetic records ------------------------------------------------------------------------------------------------

def test_synthetic_records_carry_a_synthetic_network(tmp_path):
    res = CliRunner().invoke(main, ["synth", "--hours", "0.1", "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    assert {tr.stats.network for tr in read(str(tmp_path / "a" / "*.mseed"))} == {"SY"}
    res = CliRunner().invoke(main, ["synth", "--hours", "0.1", "--out", str(tmp_path / "b"), "--network", "ZZ"])
    assert res.exit_code == 0 and {tr.id[:8] for tr in read(str(tmp_path / "b" / "mixture.mseed"))} == {"ZZ.ELYSE"}
    res = CliRunner().invoke(main, ["synth", "--hours", "0.1", "--out", str(tmp_path / "c"), "--network", "X.Y"])
    assert "network code" in _one_line_error(res)


# -- file-system errors are one line ---------------------------------------------------------------------------------

def test_output_below_a_file_is_one_line(tmp_path):
    raw = _write(tmp_path / "in", "r.mseed")
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    runner = CliRunner()
    line = _one_line_error(runner.invoke(main, ["separate", str(raw), "--out", str(blocker / "o"), "--method",
                                                "highpass"]))
    assert "afile is a file, not a folder" in line
    line = _one_line_error(runner.invoke(main, ["synth", "--hours", "0.1", "--out", str(blocker / "s")]))
    assert str(blocker / "s") in line and "is a file, not a folder" in line
    line = _one_line_error(runner.invoke(main, ["features", str(raw), "--out", str(blocker / "f.h5")]))
    assert str(blocker) in line
    mkdir_error = FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(blocker))  # mkdir where a file is
    assert describe_os_error(mkdir_error) == f"{blocker}: is a file, not a folder"


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "disk full"), (errno.EACCES, "permission denied"),
                                         (errno.EISDIR, "is a folder, not a file")])
def test_os_errors_anywhere_in_a_command_are_one_line(tmp_path, monkeypatch, code, words):
    """The central handler (monkeypatched raise, so this covers the CLI's handling, not the file system)."""
    import unmix.workflows

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(tmp_path / "target"))

    monkeypatch.setattr(unmix.workflows, "run_synth", fail)
    line = _one_line_error(CliRunner().invoke(main, ["synth", "--out", str(tmp_path / "s")]))
    assert line == f"error: {tmp_path / 'target'}: {words}"


def _without_dac_override() -> list[str]:
    """Run as root but without the capabilities that let root ignore permission bits (tests run as root)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to drop CAP_DAC_OVERRIDE")
    return [setpriv, "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]


def test_unreadable_input_is_one_line(tmp_path):
    """A real permission error: the file is mode 000 and the command runs without CAP_DAC_OVERRIDE."""
    raw = _write(tmp_path / "in", "r.mseed")
    raw.chmod(0)
    unmix = [sys.executable, "-c", "from unmix.cli import main; main()"]
    for args in (["info", str(raw)], ["features", str(raw), "--out", str(tmp_path / "f.h5")]):
        res = subprocess.run([*_without_dac_override(), *unmix, *args], capture_output=True, text=True, cwd=ROOT)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert lines[-1] == f"error: {raw}: permission denied", res.stderr


def test_unwritable_output_folder_is_one_line(tmp_path):
    """A real write refusal: the output folder is immutable (chattr +i binds root too)."""
    raw = _write(tmp_path / "in", "r.mseed")
    folder = tmp_path / "locked"
    folder.mkdir()
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        runner = CliRunner()
        line = _one_line_error(runner.invoke(main, ["separate", str(raw), "--out", str(folder / "o"), "--method",
                                                    "highpass"]))
        assert line == f"error: {folder / 'o'}: operation not permitted"
        line = _one_line_error(runner.invoke(main, ["synth", "--hours", "0.1", "--out", str(folder)]))
        assert line == f"error: {folder}: operation not permitted"
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_disk_full_while_writing_leaves_nothing_that_looks_complete(tmp_path):
    """A real full disk: the output folder is a 256 KiB tmpfs, the second output does not fit."""
    raw = _write(tmp_path / "in", "r.mseed")  # outputs of 3 × 6000 float64 samples: ≈ 150 KB each
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(tiny)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs to mount a small tmpfs (root)")
    try:
        res = CliRunner().invoke(main, ["separate", str(raw), "--out", str(tiny), "--method", "highpass"])
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        assert f"{tiny / 'r.low_frequency.mseed'}: disk full" in res.output, res.output
        assert sorted(p.name for p in tiny.iterdir()) == []  # no output, no .part, no provenance, no note
        line = _one_line_error(CliRunner().invoke(main, ["synth", "--hours", "1", "--out", str(tiny / "s")]))
        assert "disk full" in line and str(tiny / "s") in line
        assert not [p for p in (tiny / "s").iterdir() if p.name.startswith(".")]
    finally:
        subprocess.run(["umount", str(tiny)], check=True)

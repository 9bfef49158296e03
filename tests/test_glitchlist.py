"""Glitch lists in and out of the template method: ``unmix glitches`` and ``unmix separate --detections``
(issue #15 item 8), on the real 10-sps record and the MPS (SEISglitch) list of its span."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from obspy import UTCDateTime, read

from unmix.catalogs import read_catalog, read_mps_glitches
from unmix.cli import main

pytestmark = pytest.mark.realdata

RAW03 = "raw/XB.ELYSE.03.BH_2019-05-22T2319_raw.mseed"
RESP03 = "response/XB.ELYSE.03.BH_2019-05-18_2019-06-01.xml"
MPS = "catalogs/glitches_MPS_XB.ELYSE.03.BH_2019-05-22T2318_2019-05-23T2359.txt"


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _removed(out) -> tuple[dict, list[dict]]:
    prov = json.loads(next(out.glob("*.provenance.json")).read_text())
    info = prov["records"][0]["info"]
    return info, info["catalogue"]


def test_separate_removes_only_the_glitches_of_the_mps_list(insight, tmp_path):
    r = cli("separate", insight / RAW03, "--inventory", insight / RESP03, "--detections", insight / MPS,
            "--out", tmp_path / "sep")
    assert r.exit_code == 0, r.output + r.stderr
    info, removed = _removed(tmp_path / "sep")
    listed = read_mps_glitches(insight / MPS).between(UTCDateTime("2019-05-22T23:19:27"),
                                                      UTCDateTime("2019-05-23T02:24:23"))
    assert len(listed) == 15 and info["detections"]["listed"] == sum(len(e.components) for e in listed) == 33
    assert 25 <= len(removed) <= 33 and info["detections"]["removed"] == len(removed)
    for g in removed:  # every removed glitch is a listed one, on a listed component, within the onset search
        t, comp = UTCDateTime(g["onset"]), g["channel"][-1]
        assert any(comp in e.components and abs(t - e.start) <= 3.0 for e in listed), g
    # the glitch product is zero away from the listed glitches (nothing else was fitted)
    glitches = read(str(next((tmp_path / "sep").glob("*.glitches.mseed"))))
    for tr in glitches:
        times = tr.times("timestamp")
        near = np.zeros(tr.stats.npts, bool)
        for e in listed:
            if tr.stats.channel[-1] in e.components:
                near |= (times >= e.start.timestamp - 8.0) & (times <= e.start.timestamp + 65.0)
        assert np.abs(tr.data[~near]).max() == 0.0 and np.abs(tr.data[near]).max() > 0


def test_a_list_of_another_location_or_method_is_one_line(insight, tmp_path):
    other = tmp_path / "glitches_MPS_XB.ELYSE.02.BH_2019-05-22T2318_2019-05-23T2359.txt"  # as if for location 02
    shutil.copy(insight / MPS, other)
    r = cli("separate", insight / RAW03, "--detections", other, "--out", tmp_path / "sep")
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "is for XB.ELYSE.02.BH?, not for the data's XB.ELYSE.03.BH?" in lines[0], lines
    r = cli("separate", insight / RAW03, "--detections", insight / MPS, "--method", "highpass", "--out", tmp_path / "x")
    assert r.exit_code == 2 and "--method highpass does not take a glitch list" in r.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text("000001 2019-05-22T23:31:39 only four\n")
    r = cli("separate", insight / RAW03, "--detections", bad, "--out", tmp_path / "y")
    assert r.exit_code == 2 and r.stderr.strip().splitlines() == [
        f"error: {bad}: line 1: expected 23 columns of an MPS glitch list, found 4"]
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_glitches_writes_a_list_that_separate_takes_back(insight, tmp_path):
    listing = tmp_path / "found.txt"
    r = cli("glitches", insight / RAW03, "--inventory", insight / RESP03, "--out", listing)
    assert r.exit_code == 0, r.output + r.stderr
    cat = read_catalog(listing)
    assert r.stdout.strip() == f"{listing}: {len(cat)} glitch(es) on XB.ELYSE.03.BH?"
    assert 20 <= len(cat) <= 40 and cat.seed_ids == ["XB.ELYSE.03.BH?"]
    auto = cli("separate", insight / RAW03, "--inventory", insight / RESP03, "--out", tmp_path / "auto")
    again = cli("separate", insight / RAW03, "--inventory", insight / RESP03, "--detections", listing,
                "--out", tmp_path / "listed")
    assert auto.exit_code == 0 and again.exit_code == 0, again.stderr
    found = {(g["channel"], round(UTCDateTime(g["onset"]).timestamp)) for g in _removed(tmp_path / "auto")[1]}
    refit = {(g["channel"], round(UTCDateTime(g["onset"]).timestamp)) for g in _removed(tmp_path / "listed")[1]}
    assert len(refit & found) >= 0.9 * len(found)  # its own list gives the template method back its glitches
    markers = tmp_path / "found.markers"
    assert cli("glitches", insight / RAW03, "--out", markers).exit_code == 0
    assert markers.read_text().startswith("# Snuffler Markers File Version 0.2\n")
    exists = cli("glitches", insight / RAW03, "--out", markers)
    assert exists.exit_code == 2 and "already exists" in exists.stderr
    assert cli("glitches", insight / RAW03, "--out", tmp_path / "list.csv").exit_code == 2

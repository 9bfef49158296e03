"""``protocol='paper'`` of the scattering-covariance separation (#18): the published settings by name, options
given explicitly win, LMST-limited prior windows counted per cluster, the spline detrend, end to end from the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tests.conftest import make_stream
from tests.test_snippets import make_table
from unmix.cli import main
from unmix.errors import ConfigError
from unmix.separation import get_method
from unmix.separation.scatcov import PROTOCOL_VALUES, ScatCovSeparator
from unmix.snippets import lmst_distance, select_windows, window_lmst_hours

PRIOR = np.random.default_rng(0).standard_normal((4, 1, 256))


def test_the_paper_protocol_resolves_to_the_published_values():
    table = make_table(1.56e9 + 51.2 * np.arange(20))
    paper = ScatCovSeparator(table=table, clusters=[0], scale=1024, protocol="paper")._checked()
    assert (paper.n_prior, paper.near_lmst, paper.lmst_tolerance, paper.max_iter, paper.tol) == (300, True, 2.0,
                                                                                                  1000, 0.1)
    assert (paper.standardize, paper.detrend, paper.per_cluster, paper.piece, paper.J, paper.Q) == (
        "time", "spline", True, 1024, 8, 1)
    assert paper.overlap == 0  # published: the target cut into pieces without overlap
    fast = ScatCovSeparator(table=table, clusters=[0], scale=1024)._checked()
    assert (fast.n_prior, fast.near_lmst, fast.max_iter, fast.detrend, fast.per_cluster) == (20, False, 100,
                                                                                               "spline", False)
    assert fast.overlap == 256
    # options given explicitly win over the protocol's values, whichever they are
    mine = ScatCovSeparator(table=table, clusters=[0], scale=1024, protocol="paper", n_prior=20, near_lmst=False,
                            max_iter=5, detrend="none", overlap=128)._checked()
    assert mine.overlap == 128
    assert (mine.n_prior, mine.near_lmst, mine.max_iter, mine.detrend, mine.per_cluster) == (20, False, 5, "none", True)
    assert ScatCovSeparator(prior=PRIOR, max_iter=100)._checked().max_iter == 100
    # every run records its protocol and detrend (a replay of a file from before fills them in as they were)
    assert ScatCovSeparator(prior=PRIOR).provenance_params()["detrend"] == "spline"
    assert ScatCovSeparator.unrecorded == {"protocol": "fast", "detrend": "none", "hold_mean": False}
    prov = ScatCovSeparator(prior=PRIOR, protocol="paper").provenance_params()
    assert prov["protocol"] == "paper" and prov["detrend"] == "spline" and prov["max_iter"] == 1000
    assert prov["n_prior"] == PRIOR.shape[0]  # a given array is the prior as it is
    assert set(PROTOCOL_VALUES) == {"fast", "paper"}
    for bad in (dict(protocol="papers"), dict(detrend="cubic"), dict(protocol="paper", n_prior=1)):
        with pytest.raises(ConfigError):
            ScatCovSeparator(prior=PRIOR, **bad).check_params()


def test_the_registry_offers_the_protocol_as_a_choice():
    from unmix.separation.registry import methods

    opts = {o.name: o for o in methods()["scatcov"].options()}
    assert opts["protocol"].default == "fast" and "Literal" in opts["protocol"].type
    assert "'paper'" in opts["protocol"].type
    assert get_method("scatcov", prior=PRIOR, protocol="paper").protocol == "paper"


def test_lmst_window_selection_keeps_only_windows_within_two_hours_and_counts_per_cluster():
    t = make_table(1.56e9 + 51.2 * np.arange(3000), k=3, seed=4)  # ~1.8 sols of 1024-sample windows
    hours = window_lmst_hours(t, 1024)
    target = (10.0, 10.9)  # an LMST span
    sel = select_windows(t, [0, 1], 1024, 40, near_lmst=target, lmst_tolerance_hours=2.0, per_cluster=True)
    assert sel.size and np.all(lmst_distance(hours[sel], target) <= 2.0)
    assert not np.all(lmst_distance(hours, target) <= 2.0)  # there were windows outside to leave out
    s = t.scale_index(1024)
    counts = {k: int((t.cluster[sel, s] == k).sum()) for k in (0, 1)}
    assert counts == {0: 40, 1: 40}  # R per prior cluster, not over their union
    union = select_windows(t, [0, 1], 1024, 40, near_lmst=target, lmst_tolerance_hours=2.0)
    assert union.size == 40


def test_a_paper_run_from_the_cli_end_to_end(tmp_path):
    record, prior = tmp_path / "record.mseed", tmp_path / "prior.mseed"
    st = make_stream("U", npts=2500)
    for tr in st:
        tr.data += 5000.0 + 0.5 * np.arange(tr.stats.npts)  # an offset and a drift the detrend takes off
    st.write(str(record), format="MSEED")
    make_stream("U", npts=12000, start="2019-05-20T00:00:00").write(str(prior), format="MSEED")
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["separate", str(record), "--out", str(out), "--method", "scatcov", "--prior",
                                  str(prior), "--device", "cpu", "--scatcov-opt", "protocol=paper",
                                  "--scatcov-opt", "max_iter=2", "--scatcov-opt", "J=6"])
    assert r.exit_code == 0, r.output
    (prov,) = out.glob("*.provenance.json")
    text = prov.read_text()
    assert '"protocol": "paper"' in text and '"detrend": "spline"' in text and '"max_iter": 2' in text
    info = json.loads(text)
    assert "n_iter" in json.dumps(info)
    from obspy import read

    bg = read(str(next(out.glob("*background*"))))[0].data
    assert abs(bg.mean() - st[0].data.mean()) < 0.05 * st[0].data.std() + 1.0  # the trend is back in the background


@pytest.mark.realdata
def test_paper_prior_from_a_cluster_table_per_cluster_near_the_target_and_detrended(insight):
    from unmix.clusters import ClusterTable
    from unmix.hashing import file_sha256
    from unmix.io import read_records
    from unmix.mars_time import sol_float

    path = insight / "background/XB.ELYSE.02.BH_S0185a_deglitched_UCLA_v4.mseed"
    rec = read_records(path)[0]
    fs, scale = rec.sampling_rate, 1024
    starts = rec.starttime.timestamp + np.arange(0, rec.npts - scale, scale // 2) / fs
    iv = np.stack([starts, starts + scale / fs], -1)[:, None]
    n = len(starts)
    p = np.random.default_rng(0).dirichlet(np.ones(2), size=(n, 1)).astype(np.float32)
    table = ClusterTable(scales=(scale,), intervals=iv, lmst=sol_float(iv), cluster=p.argmax(-1).astype(np.int16),
                         confidence=p.max(-1), probabilities=p, input_index=np.zeros(n, np.int32),
                         record_index=np.zeros(n, np.int32),
                         inputs=[{"path": str(path), "sha256": file_sha256(path),
                                  "records": [{"key": rec.key, "sampling_rate": fs}]}])
    target = rec.stream.slice(rec.starttime + 2000.0, rec.starttime + 2000.0 + 1500 / fs)
    res = ScatCovSeparator(table=table, clusters=[0, 1], scale=scale, protocol="paper", n_prior=3, max_iter=1, J=6,
                           device="cpu").separate(target)
    info = res.info["prior"]
    assert info["per_cluster"] and info["record_detrended"] and len(info["near_lmst_hours"]) == 2
    windows = info["windows"]
    assert sorted(table.cluster[windows, 0].tolist()) == [0, 0, 0, 1, 1, 1]  # R per prior cluster
    hours = window_lmst_hours(table, scale)[windows]
    assert np.all(lmst_distance(hours, tuple(info["near_lmst_hours"])) <= 2.0)
    assert res.info["params"]["protocol"] == "paper" and res.info["params"]["detrend"] == "spline"
    # the record's level is kept: the spline trend goes back into the background
    assert abs(res.background[0].data.mean() - target[0].data.mean()) < 0.2 * target[0].data.std()


def test_a_one_component_record_takes_its_component_of_a_prior_file(tmp_path):
    """A V-only record with a 3-component prior file: the prior's V row serves it (the file's component letters are
    handed to the method; without them the run stopped with "prior snippets have 3 components, the record 1")."""
    record, prior = tmp_path / "record.mseed", tmp_path / "prior.mseed"
    make_stream("V", npts=2048).write(str(record), format="MSEED")
    make_stream("UVW", npts=12000, start="2019-05-20T00:00:00").write(str(prior), format="MSEED")
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["separate", str(record), "--out", str(out), "--method", "scatcov", "--prior",
                                  str(prior), "--device", "cpu", "--scatcov-opt", "max_iter=1", "--scatcov-opt",
                                  "J=6"])
    assert r.exit_code == 0, r.output
    (prov,) = out.glob("*.provenance.json")
    assert json.loads(prov.read_text())["configuration"]["options"]["components"] == "UVW"

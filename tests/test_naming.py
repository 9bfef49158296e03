"""Cluster names: set by the user, suggested from evidence, stored in the table, used in place of numbers."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from obspy import UTCDateTime

from unmix import pipeline
from unmix.analysis.naming import accept, suggest
from unmix.catalogs import Catalog, CatalogEntry
from unmix.cli import main
from unmix.clusters import ClusterTable
from unmix.errors import ConfigError, InputFileError
from unmix.features import FeatureConfig, build_store
from unmix.mars_time import sol_float
from unmix.synthetic import SyntheticConfig, generate

SOL = 88775.244


def _table(n_per_sol: int = 96, sols: int = 2) -> tuple[ClusterTable, Catalog]:
    """Windows over ``sols`` sols: cluster 0 at night, 1 in the afternoon, 2 holds every catalogued glitch and 3 is
    the rest of the morning/evening (no rule holds)."""
    t0 = UTCDateTime("2019-05-23T00:00:00").timestamp
    lmst0 = float(sol_float(np.array([t0]))[0])
    start = t0 + (np.ceil(lmst0) - lmst0) * SOL  # LMST midnight
    starts = start + np.arange(n_per_sol * sols) * SOL / n_per_sol
    iv = np.stack([starts, starts + 300.0], -1)[:, None, :]
    hours = ((sol_float(starts + 150.0) % 1) * 24)
    cluster = np.where((hours >= 18) | (hours < 6), 0, np.where((hours >= 8) & (hours < 17), 1, 3))
    glitchy = np.arange(len(starts)) % 17 == 5
    cluster[glitchy] = 2
    entries = [CatalogEntry(UTCDateTime(a + 100), UTCDateTime(a + 130), "glitch") for a in starts[glitchy]]
    k = 4
    p = np.full((len(starts), 1, k), 0.01, np.float32)
    p[np.arange(len(starts)), 0, cluster] = 0.97
    table = ClusterTable(scales=(1024,), intervals=iv, lmst=sol_float(iv), cluster=cluster[:, None].astype(np.int16),
                         confidence=p.max(-1), probabilities=p)
    return table, Catalog(entries, "test")


def test_suggestions_follow_the_evidence():
    table, catalog = _table()
    found = {sg.cluster: sg for sg in suggest(table, 1024, catalog)}
    assert found[0].name == "quiet night" and found[1].name == "windy day" and found[2].name == "glitch"
    assert found[3].name == ""
    assert "100% hold a catalogued glitch" in found[2].evidence and "(record: " in found[2].evidence
    without = {sg.cluster: sg.name for sg in suggest(table, 1024)}
    assert without[2] in ("rare", "")  # no catalogue: nothing says glitch
    table.meta["glitch_class"] = {"cluster": 3, "share": 0.5, "evidence": True}  # the model's glitch class
    found = {sg.cluster: sg for sg in suggest(table, 1024)}
    assert found[3].name == "glitch" and "the template deglitcher explains at least 50%" in found[3].evidence
    assert table.label(1024, 3) == "3 (template glitches)"


def test_names_round_trip_resolve_and_accept(tmp_path):
    table, catalog = _table()
    table.set_name(1024, 0, "quiet")
    table.set_name(1024, 3, "quiet")
    table.suggestions = {1024: {sg.cluster: sg.to_dict() for sg in suggest(table, 1024, catalog) if sg.name}}
    assert table.resolve("quiet", 1024) == [0, 3]
    assert table.resolve("2, QUIET", 1024) == [2, 0, 3]
    with pytest.raises(ConfigError, match="no cluster named 'wind'.*names there: quiet"):
        table.resolve("wind", 1024)
    with pytest.raises(ConfigError, match="no cluster 9"):
        table.resolve("9", 1024)
    for bad in ("12", "a,b", "x" * 41, "tab\there", "   "):
        with pytest.raises(ConfigError, match="must be 1–40 printable"):
            table.set_name(1024, 1, bad)
    table.set_name(1024, 1, "x")
    table.set_name(1024, 1, "")  # '' removes a name
    assert table.name_of(1024, 1) == ""
    path = table.save(tmp_path / "t.h5")
    back = ClusterTable.load(path)
    assert back.names == {1024: {0: "quiet", 3: "quiet"}} and back.suggestions == table.suggestions
    assert accept(back) == 2  # clusters 1 and 2; 0 keeps the user's name
    assert back.name_of(1024, 0) == "quiet" and back.name_of(1024, 2) == "glitch"
    csv = back.save(tmp_path / "t.csv")
    header, first = csv.read_text().splitlines()[:2]
    assert header.endswith("name_1024") and first.endswith(",quiet")


@pytest.mark.parametrize(("attr", "value"), [
    ("names", {"999": {"0": "x"}}), ("names", {"1024": {"7": "x"}}), ("names", {"1024": {"0": 5}}),
    ("names", [1]), ("suggestions", {"1024": {"0": {"evidence": "no name"}}}), ("names", "{not json"),
])
def test_damaged_names_are_one_line(tmp_path, attr, value):
    table, _ = _table(n_per_sol=24, sols=1)
    path = table.save(tmp_path / "t.h5")
    with h5py.File(path, "r+") as f:
        f.attrs[attr] = value if isinstance(value, str) else json.dumps(value)
    with pytest.raises(InputFileError, match="damaged cluster table|not valid JSON|attribute"):
        ClusterTable.load(path)


def test_name_command_and_separate_by_name(tmp_path):
    generate(SyntheticConfig(hours=2.0, seed=8)).write(tmp_path / "syn")
    store = tmp_path / "s.h5"
    build_store([tmp_path / "syn" / "mixture.mseed"], store,
                FeatureConfig(window=4096, hop=1024, scales=(1024, 4096), normalize=None), device="cpu")
    model = pipeline.train(store, tmp_path / "m.pt", pipeline.default_model(hidden=16, latent=4, clusters=3,
                                                                            epochs=2), device="cpu").path
    table_path = tmp_path / "t.h5"
    pipeline.cluster(store, model, table_path, device="cpu")
    busiest = int(np.argmax(ClusterTable.load(table_path).occupancy(1024)))
    runner = CliRunner()
    r = runner.invoke(main, ["name", str(table_path), "--scale", "1024", "--cluster", str(busiest), "--as",
                             "quiet night"])
    assert r.exit_code == 0 and f"{busiest} (quiet night)" in r.output, r.output
    r = runner.invoke(main, ["name", str(table_path), "--suggest", "--catalog", str(tmp_path / "syn" / "truth.json")])
    assert r.exit_code == 0 and "at night (18–06 LMST; record " in r.output, r.output
    assert ClusterTable.load(table_path).name_of(1024, busiest) == "quiet night"
    r = runner.invoke(main, ["name", str(table_path), "--cluster", "0", "--as", "x"])
    assert r.exit_code == 2 and "needs --scale" in r.output
    generate(SyntheticConfig(hours=0.5, seed=9, start_sol=400)).write(tmp_path / "target")
    target = tmp_path / "target" / "mixture.mseed"
    r = runner.invoke(main, ["separate", str(target), "--out", str(tmp_path / "sep"),
                             "--method", "scatcov", "--table", str(table_path), "--background-cluster", "quiet night",
                             "--scale", "1024", "--device", "cpu", "--scatcov-opt", "max_iter=1"])
    assert r.exit_code == 0, r.output
    prov = json.loads((tmp_path / "sep" / "mixture.provenance.json").read_text())
    assert f'"clusters": [{busiest}]' in json.dumps(prov)
    r = runner.invoke(main, ["separate", str(target), "--out", str(tmp_path / "sep2"),
                             "--method", "scatcov", "--table", str(table_path), "--background-cluster", "wind",
                             "--scale", "1024"])
    assert r.exit_code == 2 and "no cluster named 'wind'" in r.output


def test_separate_the_most_confident_windows_of_a_cluster(tmp_path):
    """``separate --table T --target-cluster K --scale S --count N``: the published workflow's targets."""
    generate(SyntheticConfig(hours=2.0, seed=8)).write(tmp_path / "syn")
    store = tmp_path / "s.h5"
    build_store([tmp_path / "syn" / "mixture.mseed"], store,
                FeatureConfig(window=4096, hop=1024, scales=(1024, 4096), normalize=None), device="cpu")
    model = pipeline.train(store, tmp_path / "m.pt", pipeline.default_model(hidden=16, latent=4, clusters=3,
                                                                            epochs=2), device="cpu").path
    table_path = tmp_path / "t.h5"
    table = pipeline.cluster(store, model, table_path, device="cpu").table
    occupancy = table.occupancy(4096)
    usable = [c for c in np.argsort(occupancy, kind="stable") if occupancy[c] > 0
              and len(pipeline.cluster_targets(table, [int(c)], 4096, count=3)) >= 2]
    k = int(usable[0])  # the smallest cluster with two windows that do not overlap
    targets = pipeline.cluster_targets(table, [k], 4096, count=3)
    assert [t.confidence for t in targets] == sorted((t.confidence for t in targets), reverse=True)
    assert all(a.end <= b.start or b.end <= a.start for a in targets for b in targets if a is not b)
    table.set_name(4096, k, "odd")
    table.save(table_path, overwrite=True)
    args = ["separate", "--out", str(tmp_path / "sep"), "--method", "highpass", "--table", str(table_path),
            "--target-cluster", "odd", "--scale", "4096", "--count", "2"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "2 window(s) of cluster odd" in r.output, r.output
    provs = sorted((tmp_path / "sep").glob("*.provenance.json"))
    assert len(provs) == 2
    info = json.loads(provs[0].read_text())
    target = json.dumps(info)
    assert '"cluster_name": "odd"' in target and '"scale": 4096' in target
    from unmix.io import read_file

    background = read_file(next((tmp_path / "sep").glob("*background*")))
    assert len(background) == 3 and all(tr.stats.npts == 4096 for tr in background)
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "2 already done" in r.output
    r = CliRunner().invoke(main, ["separate", "--out", str(tmp_path / "x"), "--target-cluster", "0", "--scale",
                                  "4096"])
    assert r.exit_code == 2 and "needs the cluster table" in r.output
    r = CliRunner().invoke(main, ["separate", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "give INPUTS" in r.output


def test_match_two_runs_and_carry_names(tmp_path):
    generate(SyntheticConfig(hours=2.0, seed=8)).write(tmp_path / "syn")
    store = tmp_path / "s.h5"
    build_store([tmp_path / "syn" / "mixture.mseed"], store,
                FeatureConfig(window=4096, hop=1024, scales=(1024, 4096), normalize=None), device="cpu")
    tables = []
    for seed in (1, 2):
        m = pipeline.train(store, tmp_path / f"m{seed}.pt", pipeline.default_model(
            hidden=16, latent=4, clusters=3, epochs=2, seed=seed), device="cpu").path
        tables.append(pipeline.cluster(store, m, tmp_path / f"t{seed}.h5", device="cpu").table)
    a, b = tmp_path / "t1.h5", tmp_path / "t2.h5"
    runner = CliRunner()
    r = runner.invoke(main, ["match", str(a), str(a)])
    assert r.exit_code == 0 and "ARI 1.000, 100.0% on matched clusters" in r.output, r.output
    busiest = int(np.argmax(tables[0].occupancy(1024)))
    tables[0].set_name(1024, busiest, "bulk")
    tables[0].save(a, overwrite=True)
    r = runner.invoke(main, ["match", str(a), str(b), "--scale", "1024", "--copy-names", "--json",
                             str(tmp_path / "m.json")])
    assert r.exit_code == 0 and f"{busiest} (bulk) → " in r.output, r.output
    from unmix.matching import match_clusters

    m = match_clusters(tables[0].cluster[:, 0], tables[1].cluster[:, 0])
    assert f"ARI {m.ari:.3f}" in r.output
    assert ClusterTable.load(b).name_of(1024, m.mapping[busiest]) == "bulk"
    assert json.loads((tmp_path / "m.json").read_text())[0]["mapping"][str(busiest)] == m.mapping[busiest]
    r = runner.invoke(main, ["match", str(a), str(a), "--scale", "1024", "--scale-b", "4096"])
    assert r.exit_code == 0 and "scale 1024 → 4096" in r.output
    r = runner.invoke(main, ["match", str(a), str(b), "--scale", "1024", "--scale-b", "4096"])
    assert r.exit_code == 2 and "same table twice" in r.output


def test_a_record_of_one_night_does_not_make_every_cluster_a_quiet_night():
    table, _ = _table()
    hours = (table.lmst[:, 0].mean(axis=1) % 1) * 24
    night = (hours >= 18) | (hours < 6)
    only_night = ClusterTable(scales=table.scales, intervals=table.intervals[night], lmst=table.lmst[night],
                              cluster=table.cluster[night], confidence=table.confidence[night],
                              probabilities=table.probabilities[night])
    assert all(sg.name != "quiet night" for sg in suggest(only_night, 1024))
    assert "record 100%" in suggest(only_night, 1024)[0].evidence

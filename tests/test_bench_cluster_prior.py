"""``bench separation --prior clusters``: the prior comes from the quietest clusters of a model trained on the
record."""

from __future__ import annotations

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime

from unmix.clusters import ClusterTable
from unmix.evaluation.benchmark import run_synthetic_benchmark
from unmix.evaluation.cases import load_background
from unmix.evaluation.cluster_prior import (
    MIN_WINDOWS,
    PRIOR_WINDOWS,
    build_cluster_prior,
    cluster_stats,
    fitting_features,
    quietest_clusters,
)

N = 24576
FS = 20.0
START = UTCDateTime("2019-03-14T20:00:00")


def _background(path) -> None:
    """Three components of coloured noise whose level changes every 1024 samples (some loud, some quiet blocks)."""
    rng = np.random.default_rng(3)
    level = np.repeat(rng.choice([0.2, 1.0, 5.0], N // 1024), 1024)
    traces = []
    for comp in "UVW":
        x = np.convolve(rng.standard_normal(N + 7), np.ones(8) / 8, mode="valid")[:N] * level
        traces.append(Trace(x.astype(np.float64), header={"network": "XB", "station": "ELYSE", "location": "02",
                                                          "channel": f"BH{comp}", "sampling_rate": FS,
                                                          "starttime": START}))
    Stream(traces).write(str(path), format="MSEED")


def test_fitting_features_shrinks_the_window_only_when_needed():
    config, note = fitting_features(10**6)
    assert note is None and config.window == 65536
    config, note = fitting_features(N)
    assert config.window == 8192 and config.scales == (1024, 4096) and "8192" in note
    assert (N - config.window) // config.hop + 1 >= MIN_WINDOWS
    assert (N - 2 * config.window) // config.hop + 1 < MIN_WINDOWS  # the largest that gives enough windows
    config, note = fitting_features(N, window=4096)
    assert config.window == 4096 and config.scales == (1024, 4096) and "asked for" in note
    from unmix.errors import ConfigError

    with pytest.raises(ConfigError, match="prior window"):
        fitting_features(N, window=16384)  # 8 windows only


def test_quietest_clusters_are_added_until_they_hold_enough_windows():
    stats = {0: {"windows": 3, "median_rms": 0.5}, 1: {"windows": 4, "median_rms": 0.2},
             2: {"windows": 9, "median_rms": 0.9}, 3: {"windows": 0, "median_rms": float("inf")},
             4: {"windows": 5, "median_rms": 0.7}}
    assert quietest_clusters(stats, windows=10) == (1, 0, 4)  # 4 + 3 + 5 >= 10
    assert quietest_clusters(stats, windows=4) == (1,)
    assert quietest_clusters(stats, windows=100) == (1, 0, 4, 2)  # all that hold windows
    from unmix.errors import DataError

    with pytest.raises(DataError, match="fewer than 2"):
        quietest_clusters({0: {"windows": 1, "median_rms": 0.1}, 1: {"windows": 0, "median_rms": float("inf")}})
    labels = np.array([0, 0, 1, 1, 1, 2])
    rms = np.array([1.0, 3.0, 0.1, 0.2, 9.0, 0.0])
    got = cluster_stats(rms, labels, np.array([True, True, True, True, False, False]))
    assert got[0] == {"windows": 2, "median_rms": 2.0} and abs(got[1]["median_rms"] - 0.15) < 1e-12
    assert got[2]["windows"] == 0 and got[2]["median_rms"] == float("inf")


def test_cluster_prior_snippets_come_from_the_quietest_clusters(tmp_path):
    path = tmp_path / "XB.ELYSE.02.BH_test_background.mseed"
    _background(path)
    lines: list[str] = []
    res = run_synthetic_benchmark(
        [path], kinds=("glitches",), seeds=(0,), methods=("scatcov",), method_options={"scatcov": {"max_iter": 2}},
        glitch_options={"span": 2048, "count": 2, "prior_count": 2, "prior_length": 1024}, prior="clusters",
        prior_work=tmp_path / "work", prior_epochs=1, say=lines.append)
    case = res["cases"][0]
    info = case["info"]["prior"]
    assert any("too short" in line for line in lines)
    named = ", ".join(str(k) for k in info["clusters"])
    assert any(f"{named} at scale 1024, the quietest clusters, as many as hold >= {PRIOR_WINDOWS} windows together "
               "outside the target" in line for line in lines), lines
    method = case["methods"]["scatcov"]
    assert "skipped" not in method, method
    used = method["prior"]
    assert used["source"] == "clusters" and used["clusters"] == info["clusters"] and used["scale"] == info["scale"]
    windows = np.asarray(used["windows"])
    assert windows.size >= 2
    assert 0 <= method["n_iter"] <= 2 and method["n_prior"] == windows.size  # the solve's report is kept

    table = ClusterTable.load(info["table"])
    s = table.scale_index(info["scale"])
    assert info["scale"] == min(table.scales) == 1024
    assert np.all(np.isin(table.cluster[windows, s], info["clusters"]))
    members = np.flatnonzero(np.isin(table.cluster[:, s], info["clusters"]))
    assert set(windows.tolist()) <= set(members.tolist())
    assert abs(UTCDateTime(used["first_start"]).timestamp - table.intervals[windows[0], s, 0]) < 1 / FS
    # no snippet overlaps the separated span
    t0 = UTCDateTime(case["info"]["span_start"]).timestamp
    t1 = t0 + case["info"]["span_samples"] / FS
    iv = table.intervals[windows, s]
    assert np.all((iv[:, 1] <= t0) | (iv[:, 0] >= t1))

    # the chosen clusters are the quietest at the finest scale, added until they hold PRIOR_WINDOWS windows outside
    # the target (record-wide for the record's choice), recomputed here from the standardised samples
    bg = load_background(path)
    first = (table.intervals[:, s, 0] - bg.starttime.timestamp) * FS
    i0 = np.round(first).astype(int)
    rms = np.array([np.sqrt(np.mean(bg.data[:, a:a + 1024] ** 2)) for a in i0])
    labels = table.cluster[:, s]
    free = (table.intervals[:, s, 1] <= t0) | (table.intervals[:, s, 0] >= t1 + 1 / FS)

    def quietest(keep):
        medians = {k: np.median(rms[(labels == k) & keep]) for k in np.unique(labels) if np.any((labels == k) & keep)}
        chosen, held = [], 0
        for k in sorted(medians, key=lambda k: (medians[k], k)):
            chosen.append(int(k))
            held += int(np.sum((labels == k) & keep))
            if held >= PRIOR_WINDOWS:
                break
        return chosen, medians

    chosen, medians = quietest(free)
    assert info["clusters"] == chosen
    assert medians[chosen[0]] < np.median(rms)  # quieter than the record's typical window
    assert sum(int(np.sum((labels == k) & free)) for k in chosen) >= min(PRIOR_WINDOWS, int(free.sum()))
    assert info["record_clusters"] == quietest(np.ones_like(free))[0]

    again = build_cluster_prior(bg, tmp_path / "work", epochs=1)
    assert again.info["model_reused"] and list(again.clusters) == info["record_clusters"]
    assert again.info["clusters"] == list(again.clusters) and set(again.info["cluster_stats"]) == {
        str(k) for k in np.unique(labels)}

    # a target over every window of the record's first choice: the quietest of those left
    own = table.intervals[np.isin(labels, again.clusters[:1]), s]
    a, b = float(own[:, 0].min()), float(own[:, 1].max())
    left = (table.intervals[:, s, 1] <= a) | (table.intervals[:, s, 0] >= b)
    expected, _ = quietest(left)
    moved = again.for_target(a, b)
    assert list(moved.clusters) == expected and moved.clusters[0] != again.clusters[0]
    assert moved.info["record_clusters"] == list(again.clusters)


def test_prior_clusters_is_refused_with_real():
    from click.testing import CliRunner

    from unmix.cli import main

    out = CliRunner().invoke(main, ["bench", "separation", "--real", "--prior", "clusters"])
    assert out.exit_code != 0 and "--prior clusters" in out.output


def test_unknown_prior_source_is_refused(tmp_path):
    from unmix.errors import ConfigError

    with pytest.raises(ConfigError, match="prior source"):
        run_synthetic_benchmark([tmp_path / "x.mseed"], prior="elsewhere")


def test_table_says_when_a_method_ran_on_fewer_cases():
    from unmix.evaluation.benchmark import markdown_tables, summarise

    metrics = {"snr_in_db": 0.0, "snr_out_db": 3.0, "gain_db": 3.0, "corr_removed": 0.9}
    cases = [{"info": {"kind": "glitches"}, "methods": {"scatcov": {"seconds": 1.0, "components": {"U": metrics}}}},
             {"info": {"kind": "glitches"}, "methods": {"scatcov": {"skipped": "failed: DataError: too few windows",
                                                                    "seconds": 0.1}}}]
    text = markdown_tables({"mode": "synthetic", "prior": "clusters", "summary": summarise(cases)})
    assert "scatcov: mean over 1 case(s), 1 not run (last: failed: DataError: too few windows)" in text
    assert "`--prior clusters`" in text

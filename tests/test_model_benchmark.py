"""The clustering benchmark's labels and scores: five synthetic classes, glitch-cluster F1, seed agreement."""

from __future__ import annotations

import numpy as np
import pytest

from unmix.clusters import ClusterTable
from unmix.model.benchmark import LABELS, label_windows, score_scale, seed_agreement
from unmix.synthetic import SOURCES, WindowLabels


def _labels(energy: np.ndarray, starts: np.ndarray) -> WindowLabels:
    share = energy / energy.sum(1, keepdims=True)
    return WindowLabels(starts, 51.2, SOURCES, energy, share, np.asarray(SOURCES)[share.argmax(1)],
                        np.ones(len(starts), bool))


def test_five_classes_from_the_truth():
    # SOURCES: background, glitches, spikes, wind, quakes
    energy = np.array([[5, 1, 0, 1, 0],   # background at night → quiet night
                       [5, 1, 0, 1, 0],   # the same at noon → windy day
                       [1, 2, 2, 1, 0],   # glitch + spike energy wins → glitch
                       [1, 0, 0, 3, 0],   # wind burst
                       [1, 0, 0, 0, 9]], float)
    starts = 1.6e9 + np.arange(5) * 51.2
    lmst = np.array([10.1, 10.5, 10.1, 10.5, 10.0])  # 02:24, 12:00, 02:24, 12:00, 00:00 LMST
    got = label_windows(_labels(energy, starts), starts, lmst, 20.0)
    assert [LABELS[i] for i in got] == ["quiet night", "windy day", "glitch", "wind burst", "quake"]
    with pytest.raises(RuntimeError, match="line up"):
        label_windows(_labels(energy, starts), starts + 10.0, lmst, 20.0)


def _table(clusters: np.ndarray) -> ClusterTable:
    n = len(clusters)
    starts = 1.6e9 + np.arange(n) * 51.2
    iv = np.stack([starts, starts + 51.2], axis=1)[:, None, :]
    K = int(clusters.max()) + 1
    prob = np.eye(K, dtype=np.float32)[clusters][:, None, :]
    return ClusterTable(scales=(1024,), intervals=iv, lmst=iv / 88775.244, cluster=clusters[:, None].astype(np.int16),
                        confidence=np.ones((n, 1), np.float32), probabilities=prob)


def test_glitch_cluster_precision_recall_and_f1():
    labels = np.array([0] * 10 + [2] * 4 + [1] * 6)
    # cluster 2 holds 3 of the 4 glitch windows and 1 quiet one (glitch majority); the 4th glitch sits in cluster 0
    clusters = np.array([0] * 9 + [2] + [2, 2, 2, 0] + [1] * 6)
    sc = score_scale(_table(clusters), labels, 1024)
    assert sc.glitch_precision == pytest.approx(3 / 4) and sc.glitch_share == pytest.approx(3 / 4)
    assert sc.glitch_f1 == pytest.approx(0.75)
    assert sc.label_counts == {"quiet night": 10, "windy day": 6, "glitch": 4, "wind burst": 0, "quake": 0}
    perfect = score_scale(_table(np.array([0] * 10 + [2] * 4 + [1] * 6)), labels, 1024)
    assert perfect.ari == pytest.approx(1.0) and perfect.glitch_f1 == pytest.approx(1.0)
    none = score_scale(_table(np.array([0] * 14 + [1] * 6)), labels, 1024)
    assert none.glitch_f1 == 0.0 and none.glitch_share == 0.0


def test_seed_agreement_matches_renumbered_clusterings():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 3, 200)
    b = np.array([2, 0, 1])[a]
    c = a.copy()
    c[:50] = (c[:50] + 1) % 3
    out = seed_agreement({29: _table(a), 30: _table(b), 31: _table(c)})
    assert [o["seeds"] for o in out] == [[29, 30], [29, 31], [30, 31]]
    assert out[0]["ari"][1024] == pytest.approx(1.0) and out[0]["agreement"][1024] == pytest.approx(1.0)
    assert out[1]["agreement"][1024] == pytest.approx(0.75) and out[1]["ari"][1024] < 0.8


def test_bench_clustering_prints_glitch_f1_and_seed_agreement(monkeypatch):
    from click.testing import CliRunner

    import unmix.model.benchmark as bm
    from unmix.cli import main
    from unmix.pipeline import default_model

    seen = {}

    def fake(**kwargs):
        seen.update(kwargs)
        counts = {name: 1 for name in LABELS}
        runs = [{"seed": s, "training_s": 1.0, "occupancy": {},
                 "scores": [bm.ScaleScore(1024, 0.7 + 0.1 * i, 0.5, counts, 1.0, 2 / 3)]}
                for i, s in enumerate(kwargs["train_seeds"])]
        return {"features": {"window": 65536, "hop": 1024, "scales": [1024], "normalize": None}, "windows": 10,
                "runs": runs, "times": {"features_s": 0.0},
                "agreement": [{"seeds": [29, 30], "ari": {1024: 0.85}, "agreement": {1024: 0.9}}]}

    monkeypatch.setattr(bm, "synthetic_benchmark", fake)
    r = CliRunner().invoke(main, ["bench", "clustering", "--no-real", "--train-seeds", "29,30", "--epochs", "2"])
    assert r.exit_code == 0, r.output
    assert seen["model"] == default_model(epochs=2)  # the default path, only the asked-for change
    assert "glitch P/R/F1 1.00/0.50/0.67" in r.output
    assert "glitch F1 mean 0.67 (min 0.67)" in r.output and "ARI mean 0.750" in r.output
    assert "seed agreement ARI mean 0.850" in r.output and "seeds 29 vs 30: ARI 1024 0.850" in r.output

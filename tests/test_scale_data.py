"""Synthetic mission-scale cluster tables: the published window layout, valid posteriors, a Mars-like sol."""

from __future__ import annotations

import numpy as np
import pytest

from unmix.clusters import ClusterTable
from unmix.errors import ConfigError
from unmix.mars_time import SECONDS_PER_SOL, sol_float
from unmix.scale_data import synthetic_cluster_table


@pytest.fixture(scope="module")
def table() -> ClusterTable:
    return synthetic_cluster_table(6, seed=3)


def test_layout_is_the_published_one(table):
    n = (int(6 * SECONDS_PER_SOL * 20) - 65536) // 1024 + 1
    assert table.n_windows == n and table.scales == (1024, 4096, 16384, 65536) and table.n_clusters == 16
    iv = table.intervals
    np.testing.assert_allclose(np.diff(iv[:, :, 1], axis=0), 1024 / 20)  # contiguous at hop spacing
    np.testing.assert_allclose(iv[:, :, 1] - iv[:, :, 0], np.broadcast_to(np.array(table.scales) / 20, (n, 4)))
    np.testing.assert_allclose(iv[:, :, 1], np.broadcast_to(iv[:, -1:, 1], (n, 4)))  # each scale's last sub-window
    # the first window starts at LMST midnight of sol 200; the table's LMST is the intervals' sol_float
    assert sol_float(iv[0, -1, 0]) == pytest.approx(200.0, abs=1e-6)
    rows = [0, n // 2, n - 1]
    np.testing.assert_allclose(table.lmst[rows], sol_float(iv[rows]), atol=1e-8)


def test_posteriors_latents_and_round_trip(table, tmp_path):
    p = table.probabilities
    assert p.dtype == np.float32 and np.allclose(p.sum(-1), 1.0, atol=1e-5) and (p >= 0).all()
    assert (p.argmax(-1) == table.cluster).all()
    np.testing.assert_array_equal(table.confidence, p.max(-1))
    assert table.latent.shape == (table.n_windows, 4, 16) and np.isfinite(table.latent).all()
    # the latents are grouped by cluster: closer to their own cluster's mean than to another's
    z, k = table.latent[:, 0], table.cluster[:, 0]
    means = np.stack([z[k == c].mean(0) for c in range(2)])
    own = np.linalg.norm(z[k == 0] - means[0], axis=1).mean()
    assert own < np.linalg.norm(z[k == 0] - means[1], axis=1).mean()
    table.save(tmp_path / "t.h5")
    back = ClusterTable.load(tmp_path / "t.h5")  # passes the validation of untrusted tables
    np.testing.assert_array_equal(back.cluster, table.cluster)
    assert back.inputs[0]["records"][0]["key"] == "SY.ELYSE.02.BH" and back.meta["sampling_rate"] == 20.0


def test_time_of_day_structure(table):
    hours = (table.lmst.mean(axis=-1) % 1.0) * 24.0
    coarse = table.cluster[:, -1]
    evening = (hours[:, -1] > 19.5) & (hours[:, -1] < 23.5)
    afternoon = (hours[:, -1] > 12) & (hours[:, -1] < 14)
    assert (coarse[evening] <= 1).mean() > 0.8  # quiet evenings
    assert (coarse[afternoon] >= 6).mean() > 0.6  # windy afternoons: the upper wind levels of 0–11
    glitch = table.cluster >= 12
    # glitches are seen by the fine scales (at 4096 by ~4 windows each), the coarsest only has the 2 % random ones
    assert glitch[:, 1].sum() > 2 * glitch[:, 0].sum() > 6 * glitch[:, -1].sum()
    dawn_dusk = (np.abs(hours[:, 0] - 6) < 1.5) | (np.abs(hours[:, 0] - 17.5) < 2)
    assert glitch[dawn_dusk, 0].mean() > 2 * glitch[~dawn_dusk, 0].mean()


def test_seeded_options_and_errors():
    a, b = synthetic_cluster_table(1, seed=1, clusters=6, latent=None), synthetic_cluster_table(1, seed=1, clusters=6,
                                                                                                  latent=None)
    np.testing.assert_array_equal(a.cluster, b.cluster)
    assert a.latent is None and a.n_clusters == 6
    assert not np.array_equal(a.cluster, synthetic_cluster_table(1, seed=2, clusters=6, latent=None).cluster)
    small = synthetic_cluster_table(0.5, scales=(1024, 4096), clusters=3)
    assert small.scales == (1024, 4096) and small.cluster.max() < 3
    for kwargs in ({"sols": 0}, {"sols": 1, "scales": (1024, 131072)}, {"sols": 1, "clusters": 1},
                   {"sols": 0.01}):
        with pytest.raises(ConfigError):
            synthetic_cluster_table(**kwargs)

import h5py
import numpy as np
import pytest

from unmix.clusters import ClusterTable, read_summary
from unmix.errors import ConfigError, InputFileError, OutputExistsError


def table(n=50, scales=(1024, 4096), k=4, seed=0):
    rng = np.random.default_rng(seed)
    t0 = 1.564e9 + 51.2 * np.arange(n)
    intervals = np.stack([np.stack([t0 + 51.2 - s / 20, t0 + 51.2], -1) for s in scales], 1)
    p = rng.dirichlet(np.ones(k), size=(n, len(scales))).astype(np.float32)
    return ClusterTable(scales=scales, intervals=intervals, lmst=intervals / 88775.244 - 7000,
                        cluster=p.argmax(-1).astype(np.int16), confidence=p.max(-1), probabilities=p,
                        latent=rng.normal(size=(n, len(scales), 3)).astype(np.float32),
                        input_index=np.zeros(n, np.int32), record_index=np.zeros(n, np.int32),
                        inputs=[{"path": "x.mseed"}], meta={"model": "abc"})


def test_roundtrip_h5_and_members(tmp_path):
    t = table()
    t.save(tmp_path / "c.h5")
    u = ClusterTable.load(tmp_path / "c.h5")
    for name in ("intervals", "cluster", "confidence", "probabilities", "latent"):
        np.testing.assert_array_equal(getattr(t, name), getattr(u, name))
    assert u.scales == (1024, 4096) and u.meta == {"model": "abc"} and u.inputs == [{"path": "x.mseed"}]
    m = u.members([0, 1], 4096)
    assert set(u.cluster[m, 1]) <= {0, 1} and np.all(np.diff(u.confidence[m, 1]) <= 0)
    assert len(m) == (u.cluster[:, 1] <= 1).sum()
    assert u.occupancy(1024).sum() == 50
    with pytest.raises(OutputExistsError):
        t.save(tmp_path / "c.h5")


def test_csv_and_errors(tmp_path):
    t = table(n=3)
    t.save(tmp_path / "c.csv")
    lines = (tmp_path / "c.csv").read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("window,input,start_1024")
    with pytest.raises(ConfigError):
        t.scale_index(16384)
    with pytest.raises(InputFileError, match="not an Unmix cluster table|unreadable"):
        (tmp_path / "bad.h5").write_text("nope")
        ClusterTable.load(tmp_path / "bad.h5")


def test_summary_reads_a_table_without_its_arrays(tmp_path):
    t = table(n=50, k=4)
    t.set_name(4096, int(t.cluster[0, 1]), "wind")
    t.save(tmp_path / "c.h5")
    s = read_summary(tmp_path / "c.h5", rows=7)  # the cluster column in blocks of 7 windows
    assert s.scales == t.scales and s.inputs == t.inputs and s.meta == t.meta and s.names == t.names
    assert (s.n_windows, s.n_clusters) == (50, 4)
    for sc in t.scales:
        np.testing.assert_array_equal(s.occupancy(sc), t.occupancy(sc))
    assert s.label(4096, int(t.cluster[0, 1])) == t.label(4096, int(t.cluster[0, 1]))
    with h5py.File(tmp_path / "c.h5", "r+") as f:
        f["cluster"][45, 0] = 9  # past the 4 clusters
    with pytest.raises(InputFileError, match="cluster numbers outside"):
        read_summary(tmp_path / "c.h5", rows=7)
    (tmp_path / "bad.h5").write_text("nope")
    with pytest.raises(InputFileError, match="not an Unmix cluster table"):
        read_summary(tmp_path / "bad.h5")

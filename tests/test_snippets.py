import shutil

import numpy as np
import pytest
from obspy import UTCDateTime, read

from unmix.clusters import ClusterTable
from unmix.errors import ConfigError, DataError, InputFileError
from unmix.features import FeatureConfig, FeatureStore, build_store
from unmix.hashing import file_sha256
from unmix.jobs import Cancelled, CancelToken
from unmix.mars_time import lmst_hours, lmst_to_utc, sol_float
from unmix.snippets import hour_distance, lmst_distance, read_snippets, select_windows, window_lmst_hours
from unmix.synthetic import SyntheticConfig, generate

SMALL = FeatureConfig(window=16384, hop=1024, scales=(1024, 4096, 16384))


def make_table(starts, scales=(1024, 4096), k=3, seed=0, rate=20.0, inputs=None, record_index=None):
    """A table whose sub-windows end together at each start + 4096 samples (the published right-aligned pyramid)."""
    rng = np.random.default_rng(seed)
    starts = np.asarray(starts, dtype=float)
    end = starts + max(scales) / rate
    iv = np.stack([np.stack([end - s / rate, end], -1) for s in scales], 1)
    n = len(starts)
    p = rng.dirichlet(np.ones(k), size=(n, len(scales))).astype(np.float32)
    return ClusterTable(scales=scales, intervals=iv, lmst=sol_float(iv), cluster=p.argmax(-1).astype(np.int16),
                        confidence=p.max(-1), probabilities=p, input_index=np.zeros(n, np.int32),
                        record_index=np.zeros(n, np.int32) if record_index is None else record_index,
                        inputs=inputs or [{"path": "nowhere.mseed"}])


def _overlap(a, b):
    return a[0] < b[1] - 1e-6 and b[0] < a[1] - 1e-6


def test_selection_never_overlaps_and_is_greedy_by_confidence():
    t = make_table(1.5600e9 + 51.2 * np.arange(400), seed=1)
    target = (t.intervals[100, 1, 0], t.intervals[140, 1, 1])
    for scale in (1024, 4096):
        s = t.scale_index(scale)
        sel = select_windows(t, [0, 2], scale, 1000, exclude=[target])
        iv = t.intervals[sel, s]
        assert set(t.cluster[sel, s]) <= {0, 2}
        assert np.all(np.diff(t.confidence[sel, s]) <= 0)
        for i in range(len(sel)):
            assert not _overlap(iv[i], target)
            for j in range(i):
                assert not _overlap(iv[i], iv[j])
        # greedy and exhaustive: every member left out overlaps a more confident choice or the target
        chosen = set(sel.tolist())
        for m in t.members([0, 2], scale):
            if m in chosen:
                continue
            blockers = [target] + [t.intervals[c, s] for c in sel if t.confidence[c, s] >= t.confidence[m, s]]
            assert any(_overlap(t.intervals[m, s], b) for b in blockers)
    # 1024-sample sub-windows tile time: neighbours touch without overlapping, so all of them can be chosen
    fine = select_windows(t, [0, 1, 2], 1024, 1000)
    assert len(fine) == t.n_windows
    coarse = select_windows(t, [0, 1, 2], 4096, 1000)
    assert len(coarse) <= t.n_windows // 4 + 1 and len(coarse) >= t.n_windows // 7
    assert len(select_windows(t, [0, 1, 2], 1024, 5)) == 5


def test_selection_options_and_errors():
    t = make_table(1.5600e9 + 51.2 * np.arange(50))
    s = t.scale_index(1024)
    high = select_windows(t, [0, 1, 2], 1024, 100, min_confidence=0.6)
    assert len(high) == int((t.confidence[:, s] >= 0.6).sum())
    everything = (t.intervals[0, 0, 0], t.intervals[-1, 0, 1])
    assert select_windows(t, [0, 1, 2], 1024, 10, exclude=[everything]).size == 0
    assert select_windows(t, [7], 1024, 10).size == 0
    with pytest.raises(ConfigError):
        select_windows(t, 0, 1024, 0)
    with pytest.raises(ConfigError):
        select_windows(t, 0, 999, 3)
    with pytest.raises(ConfigError):
        select_windows(t, 0, 1024, 3, exclude=[(10.0, 5.0)])


def test_lmst_filter_wraps_around_midnight():
    hours = np.arange(0.0, 24.0, 0.25)
    mids = np.array([lmst_to_utc(300, h).timestamp for h in hours])
    t = make_table(mids - 4096 / 20 + 512 / 20, scales=(1024, 4096), k=1)  # 1024 sub-window centred on each mid
    got = window_lmst_hours(t, 1024)
    assert np.allclose(hour_distance(got, hours), 0.0, atol=1e-3)
    sel = select_windows(t, 0, 1024, 1000, near_lmst=23.5, lmst_tolerance_hours=1.0)
    want = {i for i, h in enumerate(hours) if h >= 22.5 - 1e-9 or h <= 0.5 + 1e-9}
    # windows exactly at the tolerance edge may fall either side by rounding; all others must match
    edge = {i for i, h in enumerate(hours) if abs(h - 22.5) < 1e-6 or abs(h - 0.5) < 1e-6}
    assert set(sel.tolist()) - edge == want - edge
    assert any(hours[i] < 1 for i in sel) and any(hours[i] > 23 for i in sel)
    assert np.allclose(hour_distance([23.5, 0.5, 12.0], [0.5, 23.5, 0.0]), [1.0, 1.0, 12.0])
    noon = select_windows(t, 0, 1024, 1000, near_lmst=36.0, lmst_tolerance_hours=0.3)  # 36 h = noon
    assert set(np.round(hours[noon], 2)) == {11.75, 12.0, 12.25}
    # a target span across midnight (23:10–00:40) widened by 27 min: 22:43 … 01:07
    span = select_windows(t, 0, 1024, 1000, near_lmst=(23.1667, 0.6667), lmst_tolerance_hours=0.45)
    assert set(np.round(hours[span], 2)) == {22.75, 23.0, 23.25, 23.5, 23.75, 0.0, 0.25, 0.5, 0.75, 1.0}
    np.testing.assert_allclose(lmst_distance([12.0, 23.5, 2.0], (23.0, 1.0)), [11.0, 0.0, 1.0])


@pytest.fixture(scope="module")
def synth_store(tmp_path_factory):
    d = tmp_path_factory.mktemp("snip")
    rec = generate(SyntheticConfig(hours=1.0, seed=4))
    rec.write(d / "syn")
    build_store([d / "syn" / "mixture.mseed"], d / "store.h5", SMALL, device="cpu")
    return d, rec, FeatureStore(d / "store.h5")


def _table_from_store(store, k=3, seed=0):
    w = store.windows()
    iv = np.stack([store.intervals(s) for s in store.scales], 1)
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(k), size=(store.n_windows, len(store.scales))).astype(np.float32)
    return ClusterTable(scales=store.scales, intervals=iv, lmst=np.stack([store.lmst(s) for s in store.scales], 1),
                        cluster=p.argmax(-1).astype(np.int16), confidence=p.max(-1), probabilities=p,
                        input_index=w["input"], record_index=w["record"], inputs=store.inputs,
                        meta={"feature_config": store.config.to_dict()})


def test_read_snippets_returns_the_samples_of_each_subwindow(synth_store):
    _, rec, store = synth_store
    t = _table_from_store(store)
    truth = np.stack([tr.data for tr in rec.mixture])
    fs = rec.mixture[0].stats.sampling_rate
    t_start = rec.mixture[0].stats.starttime.timestamp
    for scale in (1024, 16384):
        idx = select_windows(t, [0, 1, 2], scale, 4)
        cache: dict = {}
        seen: list[float] = []
        snip = read_snippets(t, idx, scale, progress=lambda f, m="", seen=seen: seen.append(f), cache=cache)
        assert snip.data.shape == (len(idx), 3, scale) and snip.data.dtype == np.float64
        assert snip.sampling_rate == fs and snip.ids == [tr.id for tr in rec.mixture]
        assert seen[-1] == 1.0 and len(cache) == 1
        for k, i in enumerate(idx):
            first = int(round((t.intervals[i, t.scale_index(scale), 0] - t_start) * fs))
            np.testing.assert_allclose(snip.data[k], truth[:, first:first + scale], rtol=1e-6)
            assert abs(snip.starts[k].timestamp - t.intervals[i, t.scale_index(scale), 0]) < 1e-6
    v = read_snippets(t, idx[:2], 1024, components="WU")
    np.testing.assert_allclose(v.data[:, 0], read_snippets(t, idx[:2], 1024, components="W").data[:, 0])
    assert [i[-1] for i in v.ids] == ["W", "U"]
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        read_snippets(t, idx, 1024, token=token)
    with pytest.raises(DataError, match="component Z"):
        read_snippets(t, idx[:1], 1024, components="Z")
    with pytest.raises(ConfigError):
        read_snippets(t, [t.n_windows], 1024)


def test_read_snippets_refuses_moved_or_changed_inputs(synth_store, tmp_path):
    d, _, store = synth_store
    t = _table_from_store(store)
    copy = tmp_path / "mixture.mseed"
    shutil.copy(d / "syn" / "mixture.mseed", copy)
    t.inputs = [dict(store.inputs[0], path=str(copy))]
    assert read_snippets(t, [0], 1024).data.shape == (1, 3, 1024)
    st = read(str(copy))
    st[0].data[100] += 1.0
    st.write(str(copy), format="MSEED")
    with pytest.raises(InputFileError, match="sha256"):
        read_snippets(t, [0], 1024)
    copy.unlink()
    with pytest.raises(InputFileError, match="missing"):
        read_snippets(t, [0], 1024)


@pytest.mark.realdata
def test_read_snippets_on_real_10sps_record(insight):
    path = insight / "raw" / "XB.ELYSE.03.BH_2019-05-22T2319_raw.mseed"
    st = read(str(path))
    st.merge()
    t0 = max(tr.stats.starttime for tr in st) + 600
    starts = t0.timestamp + 1024 / 10 * np.arange(20)
    entry = {"path": str(path), "sha256": file_sha256(path), "records": [{"key": "XB.ELYSE.03.BH",
                                                                          "sampling_rate": 10.0}]}
    t = make_table(starts, scales=(1024,), k=2, rate=10.0, inputs=[entry])
    snip = read_snippets(t, [0, 7, 19], 1024)
    assert snip.sampling_rate == 10.0 and snip.data.shape == (3, 3, 1024)
    for k, i in enumerate([0, 7, 19]):
        for c, comp in enumerate("UVW"):
            tr = st.select(component=comp)[0]
            first = int(round((starts[i] - tr.stats.starttime.timestamp) * 10.0))
            np.testing.assert_array_equal(snip.data[k, c], tr.data[first:first + 1024].astype(float))
    assert 0 <= lmst_hours(UTCDateTime(starts[0])) < 24


def test_reading_snippets_stops_on_a_cancelled_token(tmp_path):
    """Reading (and hashing) the table's input files checks the token, so a separation cancels while its prior loads."""
    from unmix.snippets import _load_input

    path = tmp_path / "x.mseed"
    generate(SyntheticConfig(hours=0.5, seed=3)).mixture.write(str(path), format="MSEED")
    token = CancelToken()
    token.cancel()
    entry = {"path": str(path), "sha256": file_sha256(path), "records": []}
    options = {"gap_policy": "split", "max_fill": 0, "response": None, "response_output": "VEL", "rotate": False}
    with pytest.raises(Cancelled):
        _load_input(entry, options, None, token)
    assert _load_input(entry, options, None)  # the default null token reads it

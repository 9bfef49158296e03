"""Scattering covariance: equality with the published code's numbers, invariants, speed-path consistency."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from unmix.errors import ConfigError
from unmix.scattering import (
    ScatteringCovariance,
    centre_frequencies,
    count_coefficients,
    filter_bank,
    pyramid,
)
from unmix.scattering.transform import Plan, dct2, dct3, half_idft

REF_DIR = Path(__file__).resolve().parents[1].parent / "shared/data/scatcov-reference"
F64 = torch.float64


def _sc(**kw) -> ScatteringCovariance:
    kw.setdefault("dtype", F64)
    kw.setdefault("device", "cpu")
    kw.setdefault("model", "cov")
    return ScatteringCovariance(**kw)


def _white(B: int, T: int, C: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randn(B, C, T, dtype=F64, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- reference equality


@pytest.fixture(scope="module")
def reference():
    if not (REF_DIR / "reference.npz").exists():
        pytest.skip(f"reference numbers of the published code not found in {REF_DIR}")
    ref = np.load(REF_DIR / "reference.npz", allow_pickle=False)
    desc = json.loads((REF_DIR / "descriptions.json").read_text())
    return ref, desc


def _ref_keys(d: dict) -> list[tuple]:
    def num(v: str) -> int:
        return -1 if v in ("<NA>", "nan") else int(float(v))

    keys = []
    for i, t in enumerate(d["c_type"]):
        k = (t, int(d["nl"][i]), int(d["nr"][i]), num(d["jl1"][i]))
        if t in ("phaseenv", "envelope"):
            k += (num(d["jr1"][i]), num(d["j2"][i]))
        keys.append(k)
    return keys


def _our_keys(desc: np.ndarray) -> list[tuple]:
    keys = []
    for r in desc:
        k = (str(r["c_type"]), int(r["nl"]), int(r["nr"]), int(r["jl1"]))
        if k[0] in ("phaseenv", "envelope"):
            k += (int(r["jr1"]), int(r["j2"]))
        keys.append(k)
    return keys


CASES = [
    ("cov_battle_lemarie", "battle_lemarie", "battle_lemarie", {}),
    ("cov_morlet", "morlet", "morlet", {}),
    ("cross_white_real", "cross_offdiag_nomean", "battle_lemarie", {"cross": True, "no_mean": True}),
]


def _compare(reference, array, dname, wavelet, kw, filter_dtype):
    ref, desc = reference
    sc = _sc(wavelet=wavelet, filter_dtype=filter_dtype, **kw)
    x = ref["signals"]
    x = x[None, [0, 2]] if sc.cross else x[:, None]
    ours = sc.transform(x)[:, 0].cpu().numpy()
    rk, ok = _ref_keys(desc[dname]), _our_keys(sc.description)
    assert sorted(rk) == sorted(ok) and len(set(ok)) == len(ok)
    pos = {k: i for i, k in enumerate(ok)}
    ours = ours[:, [pos[k] for k in rk]]
    theirs = ref[array]
    fams = np.array([k[0] for k in rk])
    errors = {}
    for f in dict.fromkeys(fams):
        a, b = ours[:, fams == f], theirs[:, fams == f]
        scale = np.abs(b).max()
        per_coef = np.abs(a - b) / np.maximum(np.abs(b), 1e-6 * scale)
        errors[f] = (np.abs(a - b).max() / scale, per_coef.max())
    return errors, rk == ok


@pytest.mark.parametrize("array,dname,wavelet,kw", CASES)
def test_reference_equality(reference, array, dname, wavelet, kw):
    errors, same_order = _compare(reference, array, dname, wavelet, kw, "float32")
    assert same_order, "our coefficient order should be the published order"
    for fam, (fam_err, coef_err) in errors.items():
        assert fam_err <= 1e-9, (fam, fam_err)
        assert coef_err <= 1e-9, (fam, coef_err)


def test_reference_float64_filters_differ_only_by_filter_rounding(reference):
    errors, _ = _compare(reference, *CASES[0][:3], {}, "float64")
    worst = max(e[0] for e in errors.values())
    assert 1e-12 < worst < 1e-6, errors


# ---------------------------------------------------------------- filters


@pytest.mark.parametrize("wavelet", ["battle_lemarie", "morlet"])
def test_filter_bank_basic_properties(wavelet):
    N, J = 4096, 8
    bank = filter_bank(N, J, 1, wavelet)
    assert bank.shape == (J + 1, N)
    assert np.all(np.abs(bank[:J, 0]) <= (0 if wavelet == "battle_lemarie" else 1e-16))
    assert bank[J, 0] == pytest.approx(1.0, abs=1e-12)
    assert np.all(bank[:J, N - N // 8 :] == 0)
    with pytest.raises(ValueError):
        bank[0, 1] = 1.0


def test_battle_lemarie_numbers():
    N, J = 4096, 8
    bank = filter_bank(N, J)
    xi = centre_frequencies(J, 1)
    lp = (bank**2).sum(0)[: N // 2]
    assert lp.min() == pytest.approx(0.848, abs=1e-3) and lp.max() <= 1 + 1e-12
    for j in range(J):
        assert bank[j].max() == pytest.approx(0.996, abs=1e-3)
        assert bank[j].argmax() / N == pytest.approx(0.896 * xi[j], rel=0.02)
        assert np.abs(np.fft.ifft(bank[j])).sum() == pytest.approx(1.255, abs=2e-3)
    np.testing.assert_allclose(bank[J], bank[J][(-np.arange(N)) % N], rtol=0, atol=1e-15)


def test_morlet_equals_kymatio():
    from kymatio.scattering1d.filter_bank import compute_sigma_psi, gauss_1d, morlet_1d

    N, J, Q = 2048, 6, 2
    bank = filter_bank(N, J, Q, "morlet")
    xi = 0.425 * 2.0 ** (-np.arange(J * Q) / Q)
    for j in range(J * Q):
        k = morlet_1d(N, xi[j], compute_sigma_psi(xi[j], Q))
        k[N - N // 8 :] = 0
        np.testing.assert_allclose(bank[j], k, rtol=0, atol=1e-15)
    np.testing.assert_allclose(bank[-1], gauss_1d(N, compute_sigma_psi(xi[-1], Q)), rtol=0, atol=1e-15)


def test_filter_bank_rejects_bad_options():
    with pytest.raises(ConfigError):
        filter_bank(4096, 8, 1, "haar")
    with pytest.raises(ConfigError):
        ScatteringCovariance(model="nope")


# ---------------------------------------------------------------- fast kernels vs direct formulas


@pytest.mark.parametrize("T", [16, 15])
def test_dct_and_half_idft_match_direct_formulas(T):
    plan = Plan(T, 2, 1, "battle_lemarie", 0.425, "cov", 1, "diag", None, False, F64, torch.device("cpu"))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, T, dtype=F64, generator=g)
    N = 2 * T
    n = torch.arange(T, dtype=F64)
    k = torch.arange(T + 1, dtype=F64)
    cos = torch.cos(math.pi * k[:, None] * (2 * n[None, :] + 1) / N)
    torch.testing.assert_close(dct2(x, plan), 2 * x @ cos.T, rtol=0, atol=1e-12)
    c = torch.randn(3, T + 1, dtype=F64, generator=g)
    c[:, T] = 0
    direct = (c[:, :1] + 2 * c[:, 1:T] @ cos[1:T]) / N
    torch.testing.assert_close(dct3(c, plan), direct, rtol=0, atol=1e-12)
    if T % 2 == 0:
        cf = torch.randn(3, N, dtype=F64, generator=g)
        kk = torch.arange(N, dtype=F64)
        e = torch.exp(1j * math.pi * kk[None, :] * (2 * n[:, None] + 1) / N)
        torch.testing.assert_close(half_idft(cf, plan), (cf.to(torch.complex128) @ e.T) / N, rtol=0, atol=1e-12)


@pytest.mark.parametrize("wavelet", ["battle_lemarie", "morlet"])
def test_decimated_path_equals_full_rate(wavelet):
    x = _white(4, 1024)
    fast = _sc(wavelet=wavelet, J=6).transform(x)
    slow = _sc(wavelet=wavelet, J=6, decimate=False).transform(x)
    assert ((fast - slow).abs().max() / slow.abs().max()).item() < 1e-13


# ---------------------------------------------------------------- counts and symmetries


@pytest.mark.parametrize("J", [4, 6, 8, 10])
def test_counts(J):
    expected = 1 + J + (J + 1) + J * (J + 1) // 2 + J * (J + 1) * (J + 2) // 6
    assert count_coefficients(J, 1, "cov") == expected
    assert count_coefficients(J, 1, "scat+cov") == expected + J * (J + 1) // 2
    assert count_coefficients(J, 1, "cov", 2, "offdiag") == 2 * (1 + J) + 2 * (expected - 1 - J)


def test_counts_j8():
    assert count_coefficients(8, 1, "cov") == 174
    assert count_coefficients(8, 1, "scat+cov") == 210
    assert count_coefficients(8, 2, "cov") == 914
    d = _sc(J=8).description
    assert (~d["real"]).sum() == 84


def test_sign_flip_and_time_reversal():
    sc = _sc(J=6, model="scat+cov")
    x = _white(2, 1024).cumsum(-1) + 0.3 * _white(2, 1024, seed=3) ** 2
    y = sc.transform(x)
    scale = y.abs().amax(-1, keepdim=True)
    types = sc.description["c_type"]
    flip = torch.from_numpy(np.isin(types, ["mean", "phaseenv"]))
    y_neg = sc.transform(-x)
    expected = torch.where(flip, -y, y)
    assert ((y_neg - expected).abs() / scale).max() < 1e-12
    y_rev = sc.transform(x.flip(-1))
    assert ((y_rev - y.conj()).abs() / scale).max() < 1e-12


def test_real_flags_are_real():
    sc = _sc(J=6, model="scat+cov")
    y = sc.transform(_white(2, 1024).cumsum(-1))
    real = torch.from_numpy(sc.description["real"])
    assert (y.imag[..., real].abs().max() / y.abs().max()) < 1e-12
    assert (y.imag[..., ~real].abs().max() / y.abs().max()) > 1e-6


def test_scaling_and_normalisation():
    x = _white(3, 1024).cumsum(-1)
    sc = _sc(J=6)
    d = sc.description["c_type"]
    y, y2 = sc.transform(x), sc.transform(-2.5 * x)
    powers = {"spars": 1, "ps": 2, "envelope": 2}
    for fam, p in powers.items():
        torch.testing.assert_close(y2[..., d == fam], 2.5**p * y[..., d == fam], rtol=1e-12, atol=0)
    for norm in ("each_ps", "batch_ps"):
        sn = _sc(J=6, normalize=norm)
        a, b = sn.transform(x), sn.transform(7.0 * x)
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)
    ps = _sc(J=6, normalize="each_ps").transform(x)[..., d == "ps"]
    torch.testing.assert_close(ps.real, torch.ones_like(ps.real), rtol=1e-12, atol=0)


def test_white_noise_sparsity():
    sc = _sc(J=8, normalize="batch_ps", model="cov")
    y = sc.transform(_white(24, 4096, seed=5))
    spars = y[:, 0, sc.description["c_type"] == "spars"].real.mean(0).numpy()
    assert np.all(np.abs(spars[1:] - math.sqrt(math.pi) / 2) < 0.01), spars
    assert abs(spars[0] - 0.851) < 0.01


def test_cross_statistics_structure():
    x = _white(2, 1024, C=2, seed=7)
    sc = _sc(J=6, cross=True, no_mean=True)
    y = sc.transform(x)
    d = sc.description
    ps01 = y[..., (d["c_type"] == "ps") & (d["nl"] == 0)]
    ps10 = y[..., (d["c_type"] == "ps") & (d["nl"] == 1)]
    torch.testing.assert_close(ps10, ps01.conj(), rtol=0, atol=1e-15)
    with_mean = _sc(J=6, cross=True).transform(x)
    changed = ((y - with_mean).abs() > 1e-14 * y.abs().max())[0, 0].numpy()
    assert changed.any() and np.all(d["low"][changed])
    zero = _sc(J=6, cross=True).transform(torch.stack([torch.zeros(1024, dtype=F64), x[0, 1]])[None])
    pairs = np.isin(d["c_type"], ["ps", "phaseenv", "envelope"])
    assert zero[0, 0, pairs].abs().max() == 0


# ---------------------------------------------------------------- pooling, pyramid, precision, batching, gradients


def test_pooling_and_pyramid():
    x = _white(2, 4096, C=2, seed=2).cumsum(-1)
    kw = {"J": 6, "model": "scat+cov", "normalize": "each_ps"}
    full = _sc(**kw).transform(x)
    fine = _sc(pooling=256, **kw).transform(x)
    assert fine.shape == full.shape + (16,)
    torch.testing.assert_close(fine.mean(-1), full, rtol=1e-12, atol=1e-14)
    coarse = _sc(pooling=1024, **kw).transform(x)
    torch.testing.assert_close(pyramid(fine, [1024], 256, keep="all")[1024], coarse, rtol=1e-12, atol=1e-14)
    last = pyramid(fine, [256, 1024, 4096], 256, keep="last")
    torch.testing.assert_close(last[1024], coarse[..., -1], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(last[4096], full, rtol=1e-12, atol=1e-14)
    sc = _sc(**kw)
    centre = sc.transform_pyramid(x, scales=(1024, 2048, 4096), keep="centre")
    torch.testing.assert_close(centre[2048], _sc(pooling=1024, **kw).transform(x)[..., 1:3].mean(-1))
    with pytest.raises(ConfigError):
        pyramid(coarse, [1024], 1024, keep="centre")


def test_float32_matches_float64():
    x = _white(4, 2048, seed=4).cumsum(-1)
    for model in ("cov", "scat+cov"):
        y64 = _sc(model=model).transform(x)
        y32 = _sc(model=model, dtype=torch.float32).transform(x.float())
        assert y32.dtype == torch.complex64
        d = _sc(model=model).description["c_type"]
        for fam in dict.fromkeys(d):
            a, b = y32[..., d == fam].to(torch.complex128), y64[..., d == fam]
            assert ((a - b).abs().max() / b.abs().max()).item() < 1e-4, fam


def test_batch_and_chunk_invariance():
    x = _white(5, 1024, C=2, seed=9)
    for kw in ({}, {"normalize": "each_ps"}, {"normalize": "batch_ps"}, {"cross": True}):
        big = _sc(J=6, **kw).transform(x)
        small = _sc(J=6, memory_budget=1, **kw).transform(x)
        torch.testing.assert_close(small, big, rtol=1e-13, atol=1e-15)
        if "normalize" not in kw:
            one = _sc(J=6, **kw).transform(x[2:3])
            torch.testing.assert_close(one, big[2:3], rtol=1e-13, atol=1e-15)
    sc = _sc(J=6, normalize="batch_ps").fit(x)
    torch.testing.assert_close(sc.transform(x[:2]), _sc(J=6, normalize="batch_ps").transform(x)[:2])


def test_input_shapes():
    sc = _sc(J=4)
    x = np.random.default_rng(0).standard_normal((3, 256))
    assert sc.transform(x).shape == (3, 1, sc.n_coefficients)
    assert sc.transform(x[0]).shape == (1, 1, sc.n_coefficients)
    assert sc.transform(torch.from_numpy(x)[:, None]).shape == (3, 1, sc.n_coefficients)


@pytest.mark.parametrize("kw", [{}, {"decimate": False, "model": "scat+cov"}, {"cross": True, "no_mean": True}])
def test_gradcheck(kw):
    C = 2 if kw.get("cross") else 1
    sc = _sc(J=3, **kw)
    x = (_white(1, 32, C=C, seed=11)).requires_grad_(True)
    w = torch.randn(sc.n_coefficients, dtype=torch.complex128, generator=torch.Generator().manual_seed(0))

    def f(z):
        return (sc.transform(z) * w).real.sum()

    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-6, rtol=1e-5)

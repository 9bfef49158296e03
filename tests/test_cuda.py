"""CUDA paths: the same numbers as on the CPU. Skipped where PyTorch sees no GPU (CI has none)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from tests import test_scattering
from tests.conftest import make_stream
from unmix.features import FeatureConfig, FeatureStore, build_store
from unmix.model import predict, preset, train
from unmix.scattering import ScatteringCovariance
from unmix.separation import ScatCovSeparator
from unmix.separation.hybrid import HybridSeparator
from unmix.separation.loss import SeparationLoss
from unmix.synthetic import SyntheticConfig, generate

# UNMIX_TEST_GPU=cpu runs these checks' logic on the CPU (for editing them on a machine without a GPU)
GPU = os.environ.get("UNMIX_TEST_GPU", "cuda")
pytestmark = pytest.mark.skipif(GPU == "cuda" and not torch.cuda.is_available(), reason="PyTorch sees no GPU")
F64 = torch.float64


reference = test_scattering.reference  # the published code's numbers (fixture)


@pytest.mark.parametrize("array,dname,wavelet,kw", test_scattering.CASES)
def test_reference_equality_on_cuda(reference, array, dname, wavelet, kw):
    errors, _ = test_scattering._compare(reference, array, dname, wavelet, {**kw, "device": GPU}, "float32")
    for fam, (fam_err, coef_err) in errors.items():
        assert fam_err <= 1e-9 and coef_err <= 1e-9, (fam, fam_err, coef_err)


@pytest.mark.parametrize("kw", [{}, {"model": "scat+cov"}, {"cross": True, "no_mean": True}, {"pooling": 256}])
def test_cuda_equals_cpu(kw):
    x = torch.randn(6, 2 if kw.get("cross") else 3, 2048, dtype=F64, generator=torch.Generator().manual_seed(1))
    base = {"J": 8, "model": "cov", **kw}
    cpu = ScatteringCovariance(dtype=F64, device="cpu", **base).transform(x)
    gpu = ScatteringCovariance(dtype=F64, device=GPU, **base).transform(x)
    assert gpu.device.type == GPU
    err = (gpu.cpu() - cpu).abs().max() / cpu.abs().max()
    assert err < 1e-11, err
    g32 = ScatteringCovariance(dtype=torch.float32, device=GPU, **base).transform(x).cpu().to(cpu.dtype)
    assert (g32 - cpu).abs().max() / cpu.abs().max() < 1e-4


def test_separation_loss_and_gradient_on_cuda():
    rng = np.random.default_rng(2)
    x, prior = rng.standard_normal((3, 1024)), rng.standard_normal((8, 3, 1024))
    group = [0, 1, 2]
    lc = SeparationLoss(x, prior, group=group, J=7, device="cpu")
    lg = SeparationLoss(x, prior, group=group, J=7, device=GPU)
    y = torch.as_tensor(0.9 * x)
    fc, gc = lc.loss_and_grad(y)
    fg, gg = lg.loss_and_grad(y.to(GPU))
    np.testing.assert_allclose(fg.cpu().numpy(), fc.numpy(), rtol=1e-9)
    np.testing.assert_allclose(gg.cpu().numpy(), gc.numpy(), rtol=1e-7, atol=1e-12 * gc.abs().max().item())


def test_scatcov_separator_on_cuda_matches_cpu():
    rng = np.random.default_rng(3)
    st = make_stream(npts=1500)
    for tr in st:
        tr.data[600:650] += 8.0
    prior = rng.standard_normal((6, 3, 512))
    kw = dict(prior=prior, piece=512, overlap=128, max_iter=10, J=6, tol=0.0)
    cpu = ScatCovSeparator(device="cpu", **kw).separate(st)
    gpu = ScatCovSeparator(device=GPU, **kw).separate(st)
    for a, b, x in zip(cpu.background, gpu.background, st, strict=True):
        assert np.isfinite(b.data).all()
        # L-BFGS in float64 follows the same path; rounding differences stay far below the signal
        assert np.abs(a.data - b.data).max() < 1e-6 * np.abs(x.data).max()


def test_hybrid_with_residual_on_cuda():
    rng = np.random.default_rng(1)
    prior = rng.standard_normal((6, 1, 512))
    st = make_stream("U", npts=2048)
    st[0].data[1024:1280] *= 8.0
    kw = dict(prior=prior, piece=256, max_iter=3, J=4, use_template_detector=False, fallback="none")
    cpu = HybridSeparator.from_options(device="cpu", **kw).separate(st)
    gpu = HybridSeparator.from_options(device=GPU, **kw).separate(st)
    assert gpu.info["mode"] == cpu.info["mode"]
    np.testing.assert_allclose(gpu.removed["residual"][0].data, cpu.removed["residual"][0].data,
                               atol=1e-6 * np.abs(st[0].data).max())


def test_training_and_prediction_on_cuda(tmp_path):
    generate(SyntheticConfig(hours=3.0, seed=3)).write(tmp_path / "synth")
    cfg = FeatureConfig(window=4096, hop=1024, scales=(1024, 4096), normalize=None)
    build_store([tmp_path / "synth" / "mixture.mseed"], tmp_path / "f.h5", cfg, device=GPU)
    build_store([tmp_path / "synth" / "mixture.mseed"], tmp_path / "c.h5", cfg, device="cpu")
    a, b = FeatureStore(tmp_path / "f.h5"), FeatureStore(tmp_path / "c.h5")
    for s in a.scales:
        fa, fb = a.features(s), b.features(s)
        assert np.allclose(fa, fb, rtol=1e-3, atol=1e-4 * np.abs(fb).max())
    tiny = preset("small", hidden=16, latent=4, clusters=4, epochs=4, batch_size=64, checkpoint_every=1)
    model = train(tmp_path / "f.h5", tmp_path / "m.pt", tiny, device=GPU)
    assert model.finished and np.isfinite(model.logs[-1]["loss"])
    on_gpu = predict(a, tmp_path / "m.pt", device=GPU)
    on_cpu = predict(a, tmp_path / "m.pt", device="cpu")
    assert np.allclose(on_gpu.probabilities, on_cpu.probabilities, atol=1e-4)
    assert (on_gpu.cluster == on_cpu.cluster).mean() > 0.99

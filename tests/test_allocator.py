"""Memory reuse (glibc mallopt): applied once, respects the user's settings, never breaks other platforms."""

from __future__ import annotations

import subprocess
import sys

import pytest

CODE = "from unmix.allocator import tune_allocator, release_memory; print(tune_allocator()); release_memory()"


def _run(env_extra: dict) -> str:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "UNMIX_NO_MALLOC_TUNING"}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True,
                          cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1])).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_applied_on_linux_unless_the_user_says_otherwise():
    import platform

    expected = "True" if platform.libc_ver()[0] == "glibc" else "False"
    assert _run({}) == expected
    assert _run({"UNMIX_NO_MALLOC_TUNING": "1"}) == "False"
    assert _run({"MALLOC_TRIM_THRESHOLD_": "131072"}) == "False"


def test_the_cli_entry_point_applies_it_and_the_transform_still_matches():
    """The transform's numbers do not depend on the allocator (same result before and after tuning)."""
    import numpy as np
    import torch

    from unmix.allocator import tune_allocator
    from unmix.scattering import ScatteringCovariance

    x = torch.randn(4, 1, 512, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sc = ScatteringCovariance(J=6, model="cov", dtype=torch.float64, device="cpu")
    before = sc.transform(x).numpy()
    tune_allocator()
    np.testing.assert_array_equal(sc.transform(x).numpy(), before)

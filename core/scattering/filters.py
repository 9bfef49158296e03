"""Fourier-domain wavelet filter banks of the scattering covariance (scattering spectra).

Filters are real arrays of length ``N = 2T`` (the reflection-padded length), in DFT bin order, built exactly as in the
published scattering-spectra code so that statistics match it to round-off:

* centre frequencies ``xi_j = high_freq * 2**(-j/Q)``, ``j = 0..JQ-1`` (``j = 0`` is the finest scale);
* Battle-Lemarie band-pass evaluated on the ``[0, 1)`` grid ``k/N`` (bins above ``N/2`` are read as frequencies in
  ``(0.5, 1)``), main lobe only; low-pass on the signed ``fftfreq`` grid, dilated to the last wavelet;
* Morlet band-pass and Gaussian low-pass from kymatio (sigma of the low-pass = sigma of the last wavelet);
* every band-pass has its last ``N/8`` bins set to zero.

The bank is returned as one ``(JQ + 1, N)`` array: rows ``0..JQ-1`` are band-pass, row ``JQ`` is the low-pass.
"""

from __future__ import annotations

import functools
import threading

import numpy as np
import torch

from unmix.errors import ConfigError

WAVELETS = ("battle_lemarie", "morlet")
BL_XI0 = 0.75 * 1.012470304985129
"""Centre frequency of the mother Battle-Lemarie wavelet used to dilate it to ``xi_j``."""


def centre_frequencies(J: int, Q: int, high_freq: float = 0.425) -> np.ndarray:
    """Centre frequencies ``xi_j = high_freq * 2**(-j/Q)`` in cycles/sample, ``j = 0..JQ-1``."""
    return high_freq * 2.0 ** (-np.arange(J * Q) / Q)


def _bl_poly(f: np.ndarray) -> np.ndarray:
    c = np.cos(np.pi * f) ** 2
    s = np.sin(np.pi * f) ** 2
    return (5 + 30 * c + 30 * s * c + 70 * c**2 + 2 * s**2 * c + (2 / 3) * s**3) / (105 * 2**8)


def battle_lemarie_psi_hat(f: np.ndarray) -> np.ndarray:
    """Mother Battle-Lemarie band-pass ``Psi(f)`` (real, >= 0), ``f`` in cycles/sample of the mother wavelet."""
    f = np.asarray(f, dtype=np.float64)
    out = np.zeros_like(f)
    nz = f != 0
    fn = f[nz]
    # B(f) tan^4(pi f / 2) = sin^8(pi f / 2) / (pi f)^4, which also removes the singularity at odd f.
    spline_tan = np.sin(np.pi * fn / 2) ** 8 / (np.pi * fn) ** 4
    out[nz] = np.sqrt(_bl_poly(fn / 2 + 0.5) / (_bl_poly(fn) * _bl_poly(fn / 2))) * spline_tan
    return out


def battle_lemarie_phi_hat(f: np.ndarray) -> np.ndarray:
    """Mother Battle-Lemarie low-pass ``Phi(f) = B(f) / sqrt(P(f))`` with ``Phi(0) = 1``."""
    f = np.asarray(f, dtype=np.float64)
    out = np.ones_like(f)
    nz = f != 0
    fn = f[nz]
    out[nz] = np.sin(np.pi * fn) ** 4 / (2 * np.pi * fn) ** 4 / np.sqrt(_bl_poly(fn))
    return out


def _main_lobe(h: np.ndarray) -> np.ndarray:
    """Zero everything after the first interior local minimum (scanning from bin 1)."""
    d = np.diff(h)
    for k in range(1, len(h) - 1):
        if d[k - 1] < 0 and d[k] >= 0:
            h = h.copy()
            h[k + 1 :] = 0.0
            break
    return h


def _battle_lemarie_bank(N: int, J: int, Q: int, high_freq: float) -> np.ndarray:
    xi = centre_frequencies(J, Q, high_freq)
    grid01 = np.arange(N) / N
    bank = np.zeros((J * Q + 1, N))
    for j, xij in enumerate(xi):
        bank[j] = _main_lobe(battle_lemarie_psi_hat(grid01 * BL_XI0 / xij))
    bank[-1] = battle_lemarie_phi_hat(np.fft.fftfreq(N) * BL_XI0 / xi[-1])
    return bank


def _morlet_bank(N: int, J: int, Q: int, high_freq: float) -> np.ndarray:
    from kymatio.scattering1d.filter_bank import compute_sigma_psi, gauss_1d, morlet_1d

    xi = centre_frequencies(J, Q, high_freq)
    sigma = np.array([compute_sigma_psi(x, Q) for x in xi])
    bank = np.zeros((J * Q + 1, N))
    for j in range(J * Q):
        bank[j] = morlet_1d(N, xi[j], sigma[j])
    bank[-1] = gauss_1d(N, sigma[-1])
    return bank


@functools.lru_cache(maxsize=32)
def _filter_bank_cached(N: int, J: int, Q: int, wavelet: str, high_freq: float, filter_dtype: str) -> np.ndarray:
    if wavelet == "battle_lemarie":
        bank = _battle_lemarie_bank(N, J, Q, high_freq)
    elif wavelet == "morlet":
        bank = _morlet_bank(N, J, Q, high_freq)
    else:
        raise ConfigError(f"unknown wavelet {wavelet!r}; choose one of {', '.join(WAVELETS)}")
    bank[:-1, N - N // 8 :] = 0.0
    if filter_dtype == "float32":
        bank = bank.astype(np.float32).astype(np.float64)
    elif filter_dtype != "float64":
        raise ConfigError(f"filter_dtype must be 'float64' or 'float32', got {filter_dtype!r}")
    bank.setflags(write=False)
    return bank


def filter_bank(
    N: int,
    J: int,
    Q: int = 1,
    wavelet: str = "battle_lemarie",
    high_freq: float = 0.425,
    filter_dtype: str = "float64",
) -> np.ndarray:
    """Filter bank ``(JQ + 1, N)`` float64 (read-only, cached): band-pass rows then the low-pass row.

    ``N`` is the padded length ``2T``.  ``filter_dtype='float32'`` rounds the values to float32 as the published
    srcsep code does (it stores its filters as float32), which reproduces its float64 statistics to round-off.
    """
    if N < 8 or N % 2:
        raise ConfigError(f"filter length must be even and >= 8, got {N}")
    if J < 1 or Q < 1:
        raise ConfigError(f"J and Q must be >= 1, got J={J}, Q={Q}")
    if not 0 < high_freq <= 0.5:
        raise ConfigError(f"high_freq must be in (0, 0.5], got {high_freq}")
    return _filter_bank_cached(int(N), int(J), int(Q), str(wavelet), float(high_freq), str(filter_dtype))


_torch_cache: dict[tuple, torch.Tensor] = {}
_torch_lock = threading.Lock()


def filter_bank_torch(
    N: int,
    J: int,
    Q: int = 1,
    wavelet: str = "battle_lemarie",
    high_freq: float = 0.425,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    filter_dtype: str = "float64",
) -> torch.Tensor:
    """The filter bank as a cached real torch tensor on ``device`` (do not modify it in place)."""
    device = torch.device(device)
    key = (N, J, Q, wavelet, float(high_freq), dtype, str(device), filter_dtype)
    with _torch_lock:
        t = _torch_cache.get(key)
        if t is None:
            bank = filter_bank(N, J, Q, wavelet, high_freq, filter_dtype)
            t = torch.from_numpy(np.array(bank)).to(device=device, dtype=dtype)
            _torch_cache[key] = t
    return t


def littlewood_paley(bank: np.ndarray) -> np.ndarray:
    """Littlewood-Paley sum ``sum_j |psi_j|^2 + |phi|^2`` per bin."""
    return np.sum(np.abs(bank) ** 2, axis=0)


def count_paths(J: int, Q: int) -> int:
    """Number of order-2 paths ``(j1, j2)`` with ``j1 // Q < j2 // Q``, ``j2 <= JQ`` (low-pass included)."""
    return sum(Q * (j2 // Q) for j2 in range(J * Q + 1))


__all__ = [
    "BL_XI0",
    "WAVELETS",
    "battle_lemarie_phi_hat",
    "battle_lemarie_psi_hat",
    "centre_frequencies",
    "count_paths",
    "filter_bank",
    "filter_bank_torch",
    "littlewood_paley",
]

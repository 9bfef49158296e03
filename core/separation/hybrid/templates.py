"""Glitch and spike templates of one channel at any real onset, and the whitened least-squares columns built from
them (shared by detection, onset fitting, rise times, spikes and amplitudes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unmix.instrument import Paz, antialias_window, step_response_spectrum

_OVERSAMPLE = 16


def next_pow2(n: int) -> int:
    """The smallest power of two ≥ ``n`` (at least 2)."""
    return int(2 ** np.ceil(np.log2(max(n, 2))))


class Templates:
    """Glitch and spike templates of one channel, plain and whitened, at any real onset (Fourier-domain shifts).

    A template placed at integer base ``i`` with shift ``δ`` (seconds) covers trace samples
    ``[i − pre_n − pad, i − pre_n − pad + length)`` and has its onset at ``i/fs + δ``; ``pad`` extra samples either
    side hold the whitened template's support.
    """

    def __init__(self, fs: float, paz: Paz, whitener: tuple[np.ndarray, np.ndarray], duration: float,
                 spike_duration: float, pre: float, pad: int, antialias: float = 0.8,
                 rise_times: tuple[float, ...] = (0.0,)) -> None:
        self.fs, self.pre, self.pad = fs, pre, pad
        self.pre_n = int(round(pre * fs))
        self.length = {"glitch": int(round((pre + duration) * fs)) + 2 * pad,
                       "spike": int(round((pre + spike_duration) * fs)) + 2 * pad}
        self.nfft = next_pow2(self.length["glitch"] + int(200.0 * fs) + 2 * pad)
        self.freqs = np.fft.rfftfreq(self.nfft, 1.0 / fs)
        wgain = np.interp(self.freqs, *whitener)
        self.spec: dict[tuple[str, bool, float], torch.Tensor] = {}
        for kind in ("glitch", "spike"):
            base = step_response_spectrum(kind, self.freqs, paz) * antialias_window(self.freqs, fs, antialias)
            # a glitch's tilt need not be instantaneous: a step spread evenly over τ seconds, centred on the onset
            for tau in rise_times if kind == "glitch" else (0.0,):
                raw = base * np.sinc(self.freqs * tau)
                fine = np.fft.irfft(raw * np.exp(-2j * np.pi * self.freqs * 5.0), self.nfft * _OVERSAMPLE)
                raw = raw / (fine[int(np.argmax(np.abs(fine)))] * _OVERSAMPLE)  # unit signed peak, continuous
                for white in (False, True):
                    self.spec[kind, white, float(tau)] = torch.as_tensor(raw * wgain if white else raw,
                                                                         dtype=torch.complex128)
        self._f = torch.as_tensor(self.freqs, dtype=torch.float64)
        self._delay0 = (self.pre_n + pad) / fs

    def waves(self, kind: str, shifts: torch.Tensor | np.ndarray, white: bool, rise: float = 0.0) -> torch.Tensor:
        """(len(shifts), length) templates with onset ``pre_n + pad + shift·fs`` samples after their first sample
        (glitches: rise time ``rise`` s, one of the ``rise_times`` given at construction)."""
        s = torch.as_tensor(shifts, dtype=torch.float64).reshape(-1, 1)
        phase = torch.exp(-2j * np.pi * self._f * (self._delay0 + s))
        return torch.fft.irfft(self.spec[kind, white, float(rise)] * phase, self.nfft)[:, : self.length[kind]]

    def start(self, base: int) -> int:
        """First trace sample covered by a template placed at integer base ``base``."""
        return base - self.pre_n - self.pad


@dataclass
class Whitened:
    """Time-aligned components of one sensor, whitened (``XW``, ``(C, n)``), their robust local noise level
    (``SIG``) and each component's templates under the same whitening."""

    XW: np.ndarray
    SIG: np.ndarray
    tpls: list[Templates]
    fs: float

    @property
    def n(self) -> int:
        return self.XW.shape[1]

    @property
    def pre(self) -> int:
        """Samples from a placed template's first sample to its onset."""
        return self.tpls[0].pre_n + self.tpls[0].pad

    @property
    def length(self) -> int:
        """Glitch template length (samples)."""
        return self.tpls[0].length["glitch"]

    def bank(self, kind: str, m: int) -> list[np.ndarray]:
        """Per component, whitened templates at the ``m`` sub-sample shifts ``0, 1/m, …`` of a sample."""
        return [t.waves(kind, np.arange(m) / m / self.fs, True).numpy() for t in self.tpls]


def place(out: np.ndarray, wave: np.ndarray, start: int, scale: float = 1.0) -> None:
    """Add ``scale · wave`` into ``out`` from sample ``start`` (clipped to ``out``)."""
    lo, hi = max(start, 0), min(start + wave.size, out.size)
    if hi > lo:
        out[lo:hi] += scale * wave[lo - start : hi - start]


def columns(bank: np.ndarray, positions: np.ndarray, start: int, width: int, pre: int) -> np.ndarray:
    """Whitened template columns ``(len(positions), width)`` on the window starting at ``start``."""
    m, length = bank.shape
    out = np.zeros((len(positions), width))
    for k, p in enumerate(positions):
        i = int(np.floor(p))
        j = int(round((p - i) * m))
        if j == m:
            i, j = i + 1, 0
        s = i - pre - start
        lo, hi = max(s, 0), min(s + length, width)
        if hi > lo:
            out[k, lo:hi] = bank[j, lo - s : hi - s]
    return out


def design(t: Templates, kind: str, positions: torch.Tensor, a: int, b: int,
           rises: np.ndarray | None = None) -> torch.Tensor:
    """Differentiable whitened columns ``(K, b − a)`` of templates at continuous onsets (trace samples)."""
    base = torch.floor(positions.detach())
    if rises is None or not np.any(rises):
        waves = t.waves(kind, (positions - base) / t.fs, True)
    else:  # one transform per distinct rise time
        parts = {float(r): np.flatnonzero(rises == r) for r in np.unique(rises)}
        waves = torch.zeros(len(positions), t.length[kind], dtype=torch.float64)
        for r, idx in parts.items():
            sel = torch.as_tensor(idx)
            waves = waves.index_copy(0, sel, t.waves(kind, (positions[sel] - base[sel]) / t.fs, True, r))
    cols = torch.zeros(len(positions), b - a, dtype=torch.float64)
    for k in range(len(positions)):
        s = t.start(int(base[k])) - a
        lo, hi = max(s, 0), min(s + waves.shape[1], b - a)
        if hi > lo:
            cols[k, lo:hi] = waves[k, lo - s : hi - s]
    return cols


def window(positions, pre: int, length: int, n: int, fs: float, search: float) -> tuple[int, int]:
    """Sample window ``[a, b)`` covering templates at ``positions`` and ``search`` s either side."""
    a = int(np.floor(min(positions))) - pre - int(np.ceil(search * fs)) - 1
    b = int(np.ceil(max(positions))) - pre + length + int(np.ceil(search * fs)) + 1
    return max(a, 0), min(b, n)


def overlapping(positions: np.ndarray, length: int) -> list[list[int]]:
    """Indices of consecutive glitches whose templates overlap, grouped."""
    groups, cur = [], [0]
    for k in range(1, len(positions)):
        if positions[k] - positions[cur[-1]] < length:
            cur.append(k)
        else:
            groups.append(cur)
            cur = [k]
    groups.append(cur)
    return groups

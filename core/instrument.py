"""InSight VBB instrument model: velocity poles/zeros and glitch / spike templates.

The VBB velocity transfer function is H(s) = A0 · Π(s − zₖ) / Π(s − pₖ) (s in rad/s, output volts per m/s up to the
stage gain). Templates are the instrument's output for steps of ground motion:

* **glitch** — a step in ground *acceleration* (thermal micro-tilt). In the Laplace domain the step is 1/s in
  acceleration, i.e. 1/s² in velocity, so the output is H(s)/s². The two zeros of H at the origin cancel that s²,
  leaving a strictly proper 2-zero / 5-pole system whose impulse response decays (it peaks ≈3 s after onset and falls
  below 1 % of its peak ≈19 s after onset). Without those zeros H(s)/s² would keep poles at 0 and never decay.
* **spike** — a step in ground *displacement*: 1/s in displacement is 1 in velocity, so the output is H(s) itself:
  a pulse of a few samples (fast poles at −46.7 ± 73.9i and −11.8 rad/s) followed by a small (≈2 %) long-period
  overshoot from the sensor's high-pass.

Templates are evaluated in the Fourier domain on a long FFT grid: G(i2πf) · W(f) · exp(−i2πf·(pre + shift)), where W is
a zero-phase cosine low-pass (flat up to ``antialias`` × Nyquist, zero at Nyquist) standing in for the SEIS decimation
FIRs. The inverse FFT then gives exact samples of the band-limited continuous waveform, so any sub-sample onset shift
is the *same* continuous function sampled at other times. Like the real FIR chain, W is acausal: templates carry a
small precursor before the onset, which is why they start ``pre`` seconds before it.

**Normalisation.** A template is divided by the peak |value| of its *unshifted band-limited continuous* waveform
(found by 16× band-limited interpolation), with the sign chosen so that this peak is +1. A template sampled with a
sub-sample shift therefore has max ≤ 1 (equal within ≈1 % at 20 sps), and multiplying by an amplitude a gives a signal
whose continuous peak is exactly a.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from obspy import UTCDateTime
from obspy.core.inventory import Inventory, PolesZerosResponseStage, Response
from obspy.core.inventory.response import InstrumentSensitivity

from unmix.errors import ResponseError

StepKind = Literal["glitch", "spike"]

_OVERSAMPLE = 16
_TAIL_SECONDS = 200.0  # slowest VBB pole decays as exp(−0.243 t): ≈1e-21 after 200 s, so no circular wrap-around


@dataclass(frozen=True)
class Paz:
    """Velocity poles and zeros (rad/s), normalisation factor A0 at ``norm_freq`` Hz and the stage gain."""

    zeros: tuple[complex, ...]
    poles: tuple[complex, ...]
    a0: float
    norm_freq: float = 0.1
    gain: float = 1.0

    def evaluate(self, freqs: np.ndarray) -> np.ndarray:
        """Complex velocity response A0·Π(s−z)/Π(s−p) at ``freqs`` Hz (without the stage gain)."""
        return _zpk_eval(np.asarray(freqs, dtype=float), self.zeros, self.poles, self.a0)

    def as_obspy_dict(self) -> dict:
        """ObsPy ``paz`` dict (``simulate``/``paz_to_freq_resp`` convention): poles, zeros, gain (=A0), sensitivity."""
        return {
            "poles": list(self.poles),
            "zeros": list(self.zeros),
            "gain": self.a0,
            "sensitivity": self.gain * abs(complex(self.evaluate(np.array([self.norm_freq]))[0])),
        }

    def to_stage(self, stage_sequence_number: int = 1) -> PolesZerosResponseStage:
        """An ObsPy ``PolesZerosResponseStage`` (M/S → V, Laplace rad/s)."""
        return PolesZerosResponseStage(
            stage_sequence_number=stage_sequence_number,
            stage_gain=self.gain,
            stage_gain_frequency=self.norm_freq,
            input_units="M/S",
            output_units="V",
            pz_transfer_function_type="LAPLACE (RADIANS/SECOND)",
            normalization_frequency=self.norm_freq,
            zeros=list(self.zeros),
            poles=list(self.poles),
            normalization_factor=self.a0,
        )

    def to_response(self) -> Response:
        """A one-stage ObsPy ``Response`` (analogue stage only, sensitivity = stage gain)."""
        sens = InstrumentSensitivity(
            value=self.gain, frequency=self.norm_freq, input_units="M/S", output_units="V"
        )
        return Response(instrument_sensitivity=sens, response_stages=[self.to_stage()])


VBB_PAZ = Paz(
    zeros=(0j, 0j, -109.316 + 0j, -10.1317 + 0j),
    poles=(-46.7264 + 73.9273j, -46.7264 - 73.9273j, -11.7674 + 0j, -0.243358 + 0.30515j, -0.243358 - 0.30515j),
    a0=80.2887,
    norm_freq=0.1,
    gain=257082.0,
)
"""InSight VBB velocity transfer function (StationXML stage 1 of XB.ELYSE.02/03.BH?, M/S → V, gain 257 082 V/(m/s))."""

VBB_F0 = 0.0621
VBB_DAMPING = 0.624
"""Second-order approximation of the VBB long-period response (the pole pair −0.2434 ± 0.3052i rad/s)."""


def _zpk_eval(freqs: np.ndarray, zeros: Sequence[complex], poles: Sequence[complex], k: float) -> np.ndarray:
    s = 2j * np.pi * freqs
    num = np.prod(s[..., None] - np.asarray(zeros, dtype=complex), axis=-1) if len(zeros) else np.ones_like(s)
    den = np.prod(s[..., None] - np.asarray(poles, dtype=complex), axis=-1) if len(poles) else np.ones_like(s)
    return k * num / den


def step_zpk(paz: Paz, kind: StepKind) -> tuple[tuple[complex, ...], tuple[complex, ...], float]:
    """Zeros, poles and gain of the output for a unit step of acceleration (``glitch``) or displacement (``spike``).

    The glitch divides H by s² and the spike by s⁰; factors of s are cancelled against zeros at the origin. Raises
    :class:`ResponseError` if poles at the origin would remain (a response that never decays).
    """
    order = {"glitch": 2, "spike": 0}[kind]
    zeros = list(paz.zeros)
    for _ in range(order):
        at_origin = [i for i, z in enumerate(zeros) if abs(z) < 1e-9]
        if not at_origin:
            raise ResponseError(
                f"the velocity response has fewer than {order} zeros at 0 rad/s: the {kind} step response "
                "H(s)/s^2 would not decay"
            )
        zeros.pop(at_origin[0])
    if len(zeros) >= len(paz.poles):
        raise ResponseError(f"the {kind} step response is not strictly proper (zeros ≥ poles)")
    return tuple(zeros), tuple(paz.poles), paz.a0


def step_response_spectrum(kind: StepKind, freqs: np.ndarray, paz: Paz = VBB_PAZ) -> np.ndarray:
    """Complex spectrum (per unit step, without stage gain) of the glitch or spike response at ``freqs`` Hz."""
    zeros, poles, k = step_zpk(paz, kind)
    return _zpk_eval(np.asarray(freqs, dtype=float), zeros, poles, k)


def antialias_window(freqs: np.ndarray, sampling_rate: float, start: float = 0.8) -> np.ndarray:
    """Zero-phase cosine low-pass: 1 up to ``start`` × Nyquist, falling to 0 at Nyquist."""
    nyq = sampling_rate / 2.0
    f1 = start * nyq
    x = np.clip((np.abs(freqs) - f1) / max(nyq - f1, 1e-12), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * x))


def _fft_length(n_out: int, sampling_rate: float) -> int:
    need = n_out + int(np.ceil(_TAIL_SECONDS * sampling_rate))
    return int(2 ** np.ceil(np.log2(need)))


def _spectrum(
    kind: StepKind, paz: Paz, sampling_rate: float, nfft: int, antialias: float | None
) -> tuple[np.ndarray, np.ndarray]:
    freqs = np.fft.rfftfreq(nfft, 1.0 / sampling_rate)
    spec = step_response_spectrum(kind, freqs, paz)
    if antialias is not None:
        spec = spec * antialias_window(freqs, sampling_rate, antialias)
    return freqs, spec


@lru_cache(maxsize=64)
def _peak(kind: StepKind, paz: Paz, sampling_rate: float, antialias: float | None) -> float:
    """Signed peak of the unshifted band-limited continuous waveform (16× band-limited interpolation)."""
    nfft = _fft_length(int(60 * sampling_rate), sampling_rate)
    freqs, spec = _spectrum(kind, paz, sampling_rate, nfft, antialias)
    pre = 5.0
    fine = np.fft.irfft(spec * np.exp(-2j * np.pi * freqs * pre), nfft * _OVERSAMPLE) * _OVERSAMPLE
    i = int(np.argmax(np.abs(fine)))
    return float(fine[i])


def step_template(
    kind: StepKind,
    sampling_rate: float,
    duration: float = 60.0,
    onset_shift: float | np.ndarray = 0.0,
    paz: Paz = VBB_PAZ,
    pre: float = 2.0,
    antialias: float | None = 0.8,
) -> np.ndarray:
    """Unit-peak output for a step (``glitch``: acceleration, ``spike``: displacement), sampled at ``sampling_rate``.

    Sample ``k`` is at ``t = k/sampling_rate − pre − onset_shift`` relative to the onset; there are
    ``round((pre + duration)·sampling_rate)`` samples. ``onset_shift`` (seconds, any real value, usually a fraction of
    a sample) may be an array of shape (m,), giving an (m, n) array. ``antialias`` is the fraction of Nyquist where
    the zero-phase low-pass starts (``None``: no low-pass, the raw continuous response is sampled in frequency).
    """
    if sampling_rate <= 0 or duration <= 0 or pre < 0:
        raise ValueError("sampling_rate and duration must be > 0 and pre ≥ 0")
    n_out = int(round((pre + duration) * sampling_rate))
    nfft = _fft_length(n_out, sampling_rate)
    freqs, spec = _spectrum(kind, paz, sampling_rate, nfft, antialias)
    shifts = np.asarray(onset_shift, dtype=float)
    delay = pre + shifts[..., None]
    out = np.fft.irfft(spec * np.exp(-2j * np.pi * freqs * delay), nfft, axis=-1)[..., :n_out]
    return out / _peak(kind, paz, float(sampling_rate), antialias)


def glitch_template(
    sampling_rate: float,
    duration: float = 60.0,
    onset_shift: float | np.ndarray = 0.0,
    paz: Paz = VBB_PAZ,
    pre: float = 2.0,
    antialias: float | None = 0.8,
) -> np.ndarray:
    """VBB output for a unit step in ground acceleration, H(s)/s², unit-peak; see :func:`step_template`."""
    return step_template("glitch", sampling_rate, duration, onset_shift, paz, pre, antialias)


def spike_template(
    sampling_rate: float,
    duration: float = 20.0,
    onset_shift: float | np.ndarray = 0.0,
    paz: Paz = VBB_PAZ,
    pre: float = 2.0,
    antialias: float | None = 0.8,
) -> np.ndarray:
    """VBB output for a unit step in ground displacement, H(s), unit-peak; see :func:`step_template`."""
    return step_template("spike", sampling_rate, duration, onset_shift, paz, pre, antialias)


def template_times(sampling_rate: float, duration: float, pre: float = 2.0) -> np.ndarray:
    """Times (s, relative to the unshifted onset) of the samples of a template built with the same arguments."""
    return np.arange(int(round((pre + duration) * sampling_rate))) / sampling_rate - pre


def damped_oscillator_template(
    sampling_rate: float,
    duration: float = 60.0,
    onset_shift: float | np.ndarray = 0.0,
    f0: float = VBB_F0,
    damping: float = VBB_DAMPING,
    pre: float = 2.0,
) -> np.ndarray:
    """Closed-form glitch of a 2nd-order velocity sensor, e^(−hω0t)·sin(ωd·t) for t ≥ 0, unit-peak (h < 1).

    This is S/(s² + 2hω0 s + ω0²), the acceleration-step output of T(s) = S·s²/(s² + 2hω0 s + ω0²); it is not
    band-limited (sampled directly), so use it for comparisons and generic sensors only.
    """
    if not 0 < damping < 1:
        raise ValueError("damping must be in (0, 1)")
    w0 = 2 * np.pi * f0
    wd = w0 * np.sqrt(1 - damping**2)
    t = template_times(sampling_rate, duration, pre) - np.asarray(onset_shift, dtype=float)[..., None]
    g = np.where(t >= 0, np.exp(-damping * w0 * np.clip(t, 0, None)) * np.sin(wd * t), 0.0)
    t_peak = np.arctan(wd / (damping * w0)) / wd
    peak = np.exp(-damping * w0 * t_peak) * np.sin(wd * t_peak)
    return g / peak


def paz_from_response(response: Response) -> Paz:
    """Velocity :class:`Paz` from the first poles/zeros stage of an ObsPy ``Response``.

    Hertz-type PZ are converted to rad/s (values × 2π, A0 rescaled). Displacement-input stages (M) lose one zero at
    the origin, acceleration-input stages (M/S**2) gain one, so the result is always a velocity response.
    """
    stage = next((s for s in response.response_stages if isinstance(s, PolesZerosResponseStage)), None)
    if stage is None:
        raise ResponseError("the response has no poles/zeros stage")
    zeros = [complex(z) for z in stage.zeros]
    poles = [complex(p) for p in stage.poles]
    a0 = float(stage.normalization_factor)
    kind = (stage.pz_transfer_function_type or "").upper()
    if "HERTZ" in kind:
        zeros = [2 * np.pi * z for z in zeros]
        poles = [2 * np.pi * p for p in poles]
        a0 *= (2 * np.pi) ** (len(poles) - len(zeros))
    elif "RADIANS" not in kind:
        raise ResponseError(f"unsupported poles/zeros transfer function type {stage.pz_transfer_function_type!r}")
    units = (stage.input_units or "M/S").upper().replace(" ", "")
    if units in ("M", "NM"):
        at_origin = [i for i, z in enumerate(zeros) if abs(z) < 1e-9]
        if not at_origin:
            raise ResponseError("displacement-input poles/zeros stage without a zero at the origin")
        zeros.pop(at_origin[0])
    elif units in ("M/S**2", "M/S2", "M/S/S", "NM/S**2"):
        zeros.append(0j)
    elif units not in ("M/S", "NM/S"):
        raise ResponseError(f"unsupported poles/zeros input units {stage.input_units!r}")
    norm_freq = float(stage.normalization_frequency or 0.1)
    return Paz(tuple(zeros), tuple(poles), a0, norm_freq, float(stage.stage_gain or 1.0))


def paz_from_inventory(inventory: Inventory, seed_id: str, time: UTCDateTime | str | None = None) -> Paz:
    """Velocity :class:`Paz` of channel ``seed_id`` (``'XB.ELYSE.02.BHU'``) at ``time`` from an ObsPy ``Inventory``."""
    try:
        response = inventory.get_response(seed_id, UTCDateTime(time) if time is not None else _first_epoch(
            inventory, seed_id))
    except Exception as exc:
        raise ResponseError(f"no response for {seed_id} at {time}: {exc}") from exc
    return paz_from_response(response)


def _first_epoch(inventory: Inventory, seed_id: str) -> UTCDateTime:
    net, sta, loc, cha = seed_id.split(".")
    sel = inventory.select(network=net, station=sta, location=loc, channel=cha)
    starts = [c.start_date for n in sel for s in n for c in s if c.start_date is not None]
    if not starts:
        raise ResponseError(f"{seed_id} is not in the inventory")
    return min(starts) + 1.0


def templates_from_inventory(
    inventory: Inventory,
    seed_id: str,
    time: UTCDateTime | str | None = None,
    sampling_rate: float | None = None,
    duration: float = 60.0,
    pre: float = 2.0,
    antialias: float | None = 0.8,
) -> dict[str, np.ndarray]:
    """Unit-peak ``{'glitch': …, 'spike': …}`` templates for a channel, from its first PAZ stage.

    ``sampling_rate`` defaults to the channel's sample rate in the inventory.
    """
    paz = paz_from_inventory(inventory, seed_id, time)
    if sampling_rate is None:
        net, sta, loc, cha = seed_id.split(".")
        sel = inventory.select(network=net, station=sta, location=loc, channel=cha,
                               time=UTCDateTime(time) if time is not None else None)
        rates = [c.sample_rate for n in sel for s in n for c in s if c.sample_rate]
        if not rates:
            raise ResponseError(f"no sample rate for {seed_id} in the inventory")
        sampling_rate = float(rates[0])
    return {
        "glitch": glitch_template(sampling_rate, duration, 0.0, paz, pre, antialias),
        "spike": spike_template(sampling_rate, duration, 0.0, paz, pre, antialias),
    }

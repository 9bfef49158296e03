"""The template part for one sensor: whitening, detection, onsets, rise times and amplitudes of the glitches, then
spikes near their onsets; the glitch and spike series and the catalogue of accepted glitches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unmix.instrument import Paz
from unmix.jobs import CancelToken
from unmix.separation.hybrid.amplitudes import amplitudes
from unmix.separation.hybrid.config import (
    DetectionConfig,
    OnsetConfig,
    RiseTimeConfig,
    SpikeConfig,
    TemplateConfig,
)
from unmix.separation.hybrid.detection import Window, detect
from unmix.separation.hybrid.onsets import refine
from unmix.separation.hybrid.rise_times import rise_times
from unmix.separation.hybrid.spikes import spike_onsets
from unmix.separation.hybrid.templates import Whitened, place
from unmix.separation.hybrid.whitening import whiten_group


@dataclass(frozen=True)
class FitSettings:
    """The validated configurations the template part uses."""

    templates: TemplateConfig
    detection: DetectionConfig
    onsets: OnsetConfig
    rise: RiseTimeConfig
    spikes: SpikeConfig


def fit_group(X: np.ndarray, fs: float, pazs: list[Paz], snippets: np.ndarray | None, extra: list[Window],
              cfg: FitSettings, token: CancelToken) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Glitch and spike series ``(C, n)`` of time-aligned components ``X`` and the accepted glitches."""
    C, n = X.shape
    W = whiten_group(X, fs, pazs, snippets, cfg.templates, cfg.detection, rise_times=cfg.rise.rise_times)
    glitches, spikes = np.zeros((C, n)), np.zeros((C, n))
    if n < W.length // 3:
        return glitches, spikes, []
    accepted = detect(W, cfg.detection, cfg.onsets.subsample, extra, token)
    if not accepted:
        return glitches, spikes, []
    search = cfg.detection.search
    positions = np.array([p for p, _ in accepted])
    masks = np.stack([m for _, m in accepted])
    positions, _ = refine(W, positions, masks, cfg.onsets.refine_iter, cfg.onsets.subsample, search)
    none = np.full(len(positions), np.nan)
    rises = rise_times(W, positions, masks, cfg.rise.rise_times, cfg.rise.rise_threshold, search)
    amps, _ = amplitudes(W, positions, masks, none, search, rises)
    for k, p in enumerate(positions):
        base = int(np.floor(p))
        for c in range(C):
            if amps[k, c] != 0.0:
                place(glitches[c], W.tpls[c].waves("glitch", [(p - base) / fs], False, rises[k])[0].numpy(),
                      W.tpls[c].start(base), amps[k, c])
    spike_pos, samps = none, np.zeros_like(amps)
    if cfg.spikes.fit_spikes:
        spike_pos, samps = _fit_spikes(X - glitches, fs, pazs, snippets, positions, masks, cfg)
    catalogue = _place_spikes(spikes, W, positions, amps, rises, spike_pos, samps)
    return glitches, spikes, catalogue


def _fit_spikes(rest: np.ndarray, fs: float, pazs: list[Paz], snippets: np.ndarray | None, positions: np.ndarray,
                masks: np.ndarray, cfg: FitSettings) -> tuple[np.ndarray, np.ndarray]:
    """Spike onsets (NaN: none) and amplitudes ``(K, C)`` on the full-band whitened rest ``X − glitches``
    (spikes are a few samples long: all frequencies matter)."""
    S = whiten_group(rest, fs, pazs, snippets, cfg.templates, cfg.detection, band_limit=False)
    spike_pos = spike_onsets(S, positions, cfg.spikes, cfg.onsets.subsample)
    samps = np.zeros((len(positions), rest.shape[0]))
    if np.isfinite(spike_pos).any():
        _, samps = amplitudes(S, positions, np.zeros_like(masks), spike_pos, cfg.detection.search)
    return spike_pos, samps


def _place_spikes(spikes: np.ndarray, W: Whitened, positions: np.ndarray, amps: np.ndarray, rises: np.ndarray,
                  spike_pos: np.ndarray, samps: np.ndarray) -> list[dict]:
    """Add the fitted spikes into ``spikes`` ``(C, n)``; the catalogue entry of every glitch."""
    catalogue = []
    for k, p in enumerate(positions):
        entry = {"onset_sample": float(p), "amplitudes": [float(a) for a in amps[k]], "rise_time": float(rises[k]),
                 "spike_sample": None, "spike_amplitudes": None}
        if np.isfinite(spike_pos[k]):
            sb = int(np.floor(spike_pos[k]))
            for c in range(spikes.shape[0]):
                if samps[k, c] != 0.0:
                    place(spikes[c], W.tpls[c].waves("spike", [(spike_pos[k] - sb) / W.fs], False)[0].numpy(),
                          W.tpls[c].start(sb), samps[k, c])
            entry["spike_sample"] = float(spike_pos[k])
            entry["spike_amplitudes"] = [float(a) for a in samps[k]]
        catalogue.append(entry)
    return catalogue

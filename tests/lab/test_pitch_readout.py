"""The pitch readout training term (lab/training/pitch.py): its target names a tone's pitch to a
quarter semitone, silence carries no target, and the term trains a readout toward the target."""

from __future__ import annotations

import numpy as np
import torch

from lab.training.pitch import BINS_PER_OCTAVE, LOW_HZ, PitchReadout

RATE, HOP = 44100, 2048


def tone(freq: float, frames: int = 32) -> torch.Tensor:
    t = np.arange(HOP * frames) / RATE
    return torch.tensor(np.stack([np.sin(2 * np.pi * freq * t)] * 2), dtype=torch.float32)[None]


def test_the_target_peaks_at_the_tone_and_ignores_silence() -> None:
    readout = PitchReadout(8, HOP, RATE)
    for freq in (65.0, 220.0, 441.0, 1500.0):
        dist, mask = readout.target(tone(freq), 32)
        peak = LOW_HZ * 2 ** (int(dist[0, :, 16].argmax()) / BINS_PER_OCTAVE)
        assert abs(np.log2(peak / freq)) * 12 < 0.26 and bool(mask[0, 16])  # within a quarter semitone
    audio = torch.cat([tone(220.0, 16), torch.zeros(1, 2, HOP * 16)], dim=-1)
    _, mask = readout.target(audio, 32)
    assert bool(mask[0, 4]) and not bool(mask[0, 28])


def test_the_term_trains_a_readout_on_latents_that_carry_the_pitch() -> None:
    """Latents that are the log frequency itself: a few hundred steps read it to within a semitone."""
    torch.manual_seed(0)
    readout = PitchReadout(2, HOP, RATE)
    opt = torch.optim.Adam(readout.parameters(), lr=3e-3)
    freqs = np.exp(np.linspace(np.log(100), np.log(1000), 8))
    audio = torch.cat([tone(f, 8) for f in freqs])
    latents = torch.tensor(np.log2(freqs / 440.0), dtype=torch.float32)[:, None, None].expand(-1, 2, 8).contiguous()
    first = float(readout(latents, audio).detach())
    for _ in range(300):
        opt.zero_grad()
        loss = readout(latents, audio)
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first
    k = readout.head(latents).argmax(dim=1)[:, 4].double()
    heard = LOW_HZ * 2 ** (k / BINS_PER_OCTAVE)
    assert np.median(np.abs(np.log2(heard.numpy() / freqs)) * 12) < 1.0

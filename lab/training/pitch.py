"""A pitch readout term for autoencoder training: the latents must say which pitches sound.

Why: longplay-mini's latents pin a steady sine's frequency only to ~5 % (scripts/frequency_probe.py),
ten times coarser than a decoder needs to render a held note at its pitch; the regression and
adversarial terms on the decoder's output never asked the encoder for more. This term does: a
small readout (two 1x1 convolutions, trained with the autoencoder and thrown away after) maps each
latent frame to a distribution over `BINS` log-frequency bins (quarter semitones, 55-3,520 Hz),
and is scored by cross-entropy against the input's own power spectrum in those bins, from a long
window (`WINDOW_HOPS` latent hops) centred on the frame. A latent a small network can read the pitches
from is what the frequency probe measures, and what a decoder can follow.

Hand-written: no library offers this training term; the spectrum is torch.stft and a triangular
log-frequency filterbank built here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOW_HZ = 55.0
BINS_PER_OCTAVE = 48  # quarter semitones
OCTAVES = 6  # 55-3,520 Hz
BINS = BINS_PER_OCTAVE * OCTAVES
HIDDEN = 256  # the readout's hidden width
WINDOW_HOPS = 8  # the analysis window: 8 latent hops (16,384 samples, 0.37 s at 44.1 kHz: 2.7 Hz bins)
SILENCE_DB = -60.0  # frames whose in-band power is this far under the batch's loudest carry no target


def log_filterbank(n_fft: int, sample_rate: int) -> Tensor:
    """`[BINS, n_fft // 2 + 1]` triangular filters centred on the log-frequency bins, each spanning
    its neighbours' centres (at least one FFT bin wide, so none is empty at the low end)."""
    freqs = torch.fft.rfftfreq(n_fft, 1.0 / sample_rate).double()
    centres = LOW_HZ * 2.0 ** (torch.arange(-1, BINS + 1, dtype=torch.float64) / BINS_PER_OCTAVE)
    spacing = sample_rate / n_fft
    fb = torch.zeros(BINS, len(freqs), dtype=torch.float64)
    for k in range(BINS):
        lo, mid, hi = centres[k], centres[k + 1], centres[k + 2]
        left, right = max(mid - lo, spacing), max(hi - mid, spacing)
        up = (freqs - (mid - left)) / left
        down = ((mid + right) - freqs) / right
        fb[k] = torch.clamp(torch.minimum(up, down), min=0.0)
    return (fb / fb.sum(dim=1, keepdim=True).clamp(min=1e-12)).float()


class PitchReadout(nn.Module):
    """latents `[B, D, L]` + the audio they encode `[B, C, L * hop]` -> the readout's cross-entropy."""

    def __init__(self, latent_dim: int, hop: int, sample_rate: int) -> None:
        super().__init__()
        self.hop = hop
        self.n_fft = WINDOW_HOPS * hop
        # A small MLP per frame: a linear map from 64 dims cannot draw a sharp peak at any of 288
        # bins unless the latents spell the pitch as Fourier features of its log; with a hidden
        # layer the encoder need only carry it in some smooth form (measured: the linear readout's
        # loss stayed at 2.2-2.4 nats over 200 steps and the frequency probe did not move).
        self.head = nn.Sequential(nn.Conv1d(latent_dim, HIDDEN, 1), nn.GELU(), nn.Conv1d(HIDDEN, BINS, 1))
        self.register_buffer("fb", log_filterbank(self.n_fft, sample_rate), persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def target(self, audio: Tensor, frames: int) -> tuple[Tensor, Tensor]:
        """(distribution over the bins `[B, BINS, L]`, mask of frames with sound `[B, L]`): the power
        spectrum of the window centred on each latent frame's middle."""
        mono = audio.float().mean(dim=1)  # [B, N]
        shifted = F.pad(mono, (0, self.hop))[:, self.hop // 2 :]  # frame k's centre at k * hop
        spec = torch.stft(shifted, self.n_fft, self.hop, window=self.window, center=True, return_complex=True)
        power = self.fb @ spec.abs().pow(2)[..., :frames]  # [B, BINS, L]
        total = power.sum(dim=1)
        loud = 10 * torch.log10(total.clamp(min=1e-20))
        mask = loud > loud.max() + SILENCE_DB
        return power / total.clamp(min=1e-20)[:, None, :], mask

    def forward(self, latents: Tensor, audio: Tensor) -> Tensor:
        dist, mask = self.target(audio, latents.shape[-1])
        logp = F.log_softmax(self.head(latents.float()), dim=1)
        ce = -(dist * logp).sum(dim=1)  # [B, L]
        if not bool(mask.any()):
            return ce.sum() * 0.0
        return ce[mask].mean() - _entropy(dist)[mask].mean()  # 0 when the readout is exact


def _entropy(p: Tensor) -> Tensor:
    return -(p * torch.log(p.clamp(min=1e-12))).sum(dim=1)


def readout_frequency(readout: PitchReadout, latents: Tensor) -> Tensor:
    """The frequency (Hz) the readout's peak names for each frame `[B, L]` (for tests and probes)."""
    k = readout.head(latents.float()).argmax(dim=1).double()
    return LOW_HZ * torch.pow(2.0, k / BINS_PER_OCTAVE)

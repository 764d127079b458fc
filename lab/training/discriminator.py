"""The autoencoder's adversary: a multi-resolution complex-STFT discriminator (EnCodec's MS-STFTD,
Défossez et al. 2022, section 3.4; Vocos and DAC use the same family), with hinge losses and
feature matching as stable-audio-tools trains the Oobleck decoder.

Why it is here: regression losses (L1, MR-STFT, mel) are minimised by the average over the phases
a decoder cannot tell apart, and for longplay-mini that average is a comb on the latent rate's
harmonics (model card, "Known limits"). A discriminator scores whether a spectrum *could* be real,
so an average that no real signal has is penalised. Two resolutions here span several latent hops
(FFT 4,096 and 8,192 at hop 2,048): their bins are 10.8 / 5.4 Hz apart, fine enough to see the
21.5 Hz comb between a note's harmonics, which windows of one hop or less cannot.

Written by hand: EnCodec's and DAC's discriminators live inside their training repositories (not
installable libraries); this is the same layer stack at a width a 2-core CPU affords.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

# FFT sizes; hop a quarter window. 1,024 and 2,048 are EnCodec's largest resolutions; 4,096 and
# 8,192 resolve the latent rate's comb (see the module doc). The short ones (<= 512) are left to
# the MR-STFT loss, which already pins transients.
DISC_FFT_SIZES = (1024, 2048, 4096, 8192)


class STFTDiscriminator(nn.Module):
    """One resolution: complex STFT of each channel as real/imag planes -> 2-D conv stack.

    Input audio `[B, C, N]`; returns (logits `[B, 1, T', F']`, the feature maps after each layer).
    Convs stride 2 along frequency and dilate 1/2/4 along time, as EnCodec's `DiscriminatorSTFT`;
    the first one strides too (EnCodec's does not): it halves the cost of every layer, which is
    what a CPU pays for (measured: the unstrided stack cost 3x the autoencoder's own step).
    """

    def __init__(self, n_fft: int, channels: int = 16, audio_channels: int = 2):
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        c = channels
        self.convs = nn.ModuleList(
            [
                weight_norm(nn.Conv2d(2 * audio_channels, c, (3, 9), stride=(1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), dilation=(1, 1), padding=(1, 4))),
                weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), dilation=(2, 1), padding=(2, 4))),
                weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), dilation=(4, 1), padding=(4, 4))),
                weight_norm(nn.Conv2d(c, c, (3, 3), padding=(1, 1))),
            ]
        )
        self.out = weight_norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        b, ch, n = x.shape
        spec = torch.stft(
            x.reshape(b * ch, n), self.n_fft, self.hop, window=self.window, return_complex=True, normalized=True
        )  # [B*C, F, T]
        z = torch.view_as_real(spec).reshape(b, ch, *spec.shape[1:], 2)  # [B, C, F, T, 2]
        z = z.permute(0, 1, 4, 3, 2).reshape(b, ch * 2, spec.shape[2], spec.shape[1])  # [B, 2C, T, F]
        feats: list[Tensor] = []
        for conv in self.convs:
            z = F.leaky_relu(conv(z), 0.2)
            feats.append(z)
        return self.out(z), feats


class MultiResolutionDiscriminator(nn.Module):
    """One `STFTDiscriminator` per FFT size; ~0.1 M parameters at 16 channels and five sizes."""

    def __init__(self, fft_sizes: tuple[int, ...] = DISC_FFT_SIZES, channels: int = 16, audio_channels: int = 2):
        super().__init__()
        self.discs = nn.ModuleList(STFTDiscriminator(n, channels, audio_channels) for n in fft_sizes)

    def forward(self, x: Tensor) -> list[tuple[Tensor, list[Tensor]]]:
        return [d(x) for d in self.discs]


class AdversarialLosses:
    """One step's losses: `generator` -> (hinge adversarial, feature matching), for the
    autoencoder's backward; `discriminator` -> its hinge loss, for its own. The real audio goes
    through the discriminator once and serves both (its features detached for feature matching).

    Feature matching is EnCodec's relative L1: |D_l(real) - D_l(fake)| / mean |D_l(real)| per
    layer, so each layer counts alike whatever its scale. The generator's terms leave gradients on
    the discriminator too; the training loop zeroes them before the discriminator's step."""

    def __init__(self, disc: MultiResolutionDiscriminator, real: Tensor):
        self.disc = disc
        self.reals = disc(real)

    def generator(self, fake: Tensor) -> tuple[Tensor, Tensor]:
        adv, fm = fake.new_zeros(()), fake.new_zeros(())
        for (_, fr), (lf, ff) in zip(self.reals, self.disc(fake)):
            adv = adv + F.relu(1 - lf).mean()
            fm = fm + sum(
                ((a.detach() - b).abs().mean() / (a.detach().abs().mean() + 1e-5) for a, b in zip(fr, ff)),
                fake.new_zeros(()),
            ) / len(fr)
        n = len(self.disc.discs)
        return adv / n, fm / n

    def discriminator(self, fake: Tensor) -> Tensor:
        """Mean over resolutions of relu(1 - D(real)) + relu(1 + D(fake)), `fake` detached."""
        total = fake.new_zeros(())
        for (lr, _), (lf, _) in zip(self.reals, self.disc(fake.detach())):
            total = total + F.relu(1 - lr).mean() + F.relu(1 + lf).mean()
        return total / len(self.disc.discs)

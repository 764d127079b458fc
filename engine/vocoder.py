"""A phase-vocoder decoder: latents -> short-time spectrum whose phase is integrated, -> iSTFT.

Why. An Oobleck decoder is a strided conv net: given latents that stay the
same from frame to frame it renders every frame alike, so a held note comes out periodic in the
latent hop (2,048 samples), all its energy on harmonics of 21.5 Hz. A decoder can only do better if
the latents carry each note's phase; longplay-mini's do not (a probe misses a tone's phase by 72-77
degrees, chance 90; model card, "Known limits"), and every fix on the Oobleck side we tried left
the buzz (frame-span and waveform terms, a deterministic autoencoder, Griffin-Lim).

This decoder needs no phase from the latents. It predicts, per STFT frame (hop 512, 4 per latent
frame), a log magnitude per channel and bin and, per bin, how far the phase advances from one frame
to the next: the bin's centre frequency plus a learned deviation (pi * tanh), plus learned-width
noise for what is noise-like. The phase is the running sum of those advances (a phase vocoder's
synthesis, Flanagan & Golden 1966), so a steady latent gives a steady tone at the predicted
frequency, continuous across frames and latent hops, and the hop-periodic comb cannot arise. Left
and right share that phase and differ in magnitude (level panning, no phase-smeared stereo).

With a `source` (an Oobleck decoder, e.g. the one this replaces, kept frozen) the vocoder
re-phases it: the log STFT magnitudes of the source's output (same frames as the synthesis) are
added to the predicted ones (the magnitude head starts at zero) and fed to the frame blocks, so
training starts from that decoder's magnitudes and spends itself on the phase advance. With
`source_phase` (the default) the phase also starts from the source's (per channel), the integrated
deviation added to it: an untrained vocoder renders what its source renders, and training moves
the phase only where the losses ask. At STFT 2,048 / hop 512 a signal that repeats every 2,048
samples has the same magnitudes as a held note in every frame; the buzz lives only in the phase.

The network is Vocos-like (Siuzdak 2023: ConvNeXt blocks, an iSTFT head), with two differences:
Vocos predicts each frame's phase outright (which again repeats when the input repeats); this one
integrates it. And it runs a few blocks at the latent rate before a learned 4x split into frames.

Status (session 8): trained on longplay-mini's frozen latents, every variant removed the buzz but
scored a worse mel distance than the Oobleck decoder (1.49-1.59 against 1.432), so longplay-mini
still ships that decoder; numbers and the oracle that explains them in its model card ("Known
limits") and `scripts/phase_oracle.py`. A phase integrated from arbitrary starting phases loses the
relations between the bins of one note or hit, which the per-frame offsets and the
phase-derivative term (`phase_derivative_loss`) recover only slowly.

Long signals: `features` is a conv net with a receptive field of ~14 latent frames, run in chunks by
`AutoencoderPretransform.decode`; `synthesize` (a cumulative sum and an iSTFT, cheap and linear in
length) integrates the phase over the whole signal, then renders spectra and inverse STFT in
chunks of 512 frames with margins, so chunked decode equals whole decode. Measured
(`benchmarks/bench_decoders.py`, 285 s, 2 threads): 0.29x the Oobleck decoder's time, peak 1.6 GB
over the model (one pass of the spectra: 3.3 GB), mostly the features of all 24,576 frames
(6,150 channels each); the Oobleck decoder's chunks peak at 0.3 GB.
Written by hand: no maintained library has a phase-integrating iSTFT decoder (Vocos' package
predicts phase per frame and pulls a hub download for its weights).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import PhaseVocoderConfig

# Upper bound of a predicted log magnitude: a full-scale sine peaks near n_fft / 4 (e^6.2 at 2048).
MAX_LOG_MAGNITUDE = 8.0
# The fixed seed of the noise inside the phase advance when not training: a render is a function
# of its latents.
NOISE_SEED = 0
# STFT frames per chunk of `synthesize` (6 s at hop 512): bounds the spectra's memory on long renders.
SYNTH_CHUNK_FRAMES = 512


class ConvNeXtBlock(nn.Module):
    """Depthwise conv k7 -> LayerNorm -> pointwise MLP (x3, GELU) -> layer scale, residual."""

    def __init__(self, dim: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pwconv1 = nn.Linear(dim, 3 * dim)
        self.pwconv2 = nn.Linear(3 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: Tensor) -> Tensor:  # [B, C, T]
        h = self.dwconv(x).transpose(1, 2)
        h = self.pwconv2(F.gelu(self.pwconv1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)


class PhaseVocoderDecoder(nn.Module):
    """Latents `[B, latent_dim, L]` -> audio `[B, audio_channels, L * frames_per_latent * hop_length]`."""

    def __init__(self, cfg: PhaseVocoderConfig):
        super().__init__()
        self.cfg = cfg
        ch, u = cfg.channels, cfg.frames_per_latent
        self.bins = cfg.n_fft // 2 + 1
        scale = 1.0 / max(1, cfg.latent_layers + cfg.frame_layers)
        self.embed = nn.Conv1d(cfg.latent_dim, ch, 7, padding=3)
        self.latent_blocks = nn.Sequential(*(ConvNeXtBlock(ch, scale) for _ in range(cfg.latent_layers)))
        self.split = nn.Linear(ch, ch * u)  # one latent frame -> u STFT frames
        self.frame_blocks = nn.Sequential(*(ConvNeXtBlock(ch, scale) for _ in range(cfg.frame_layers)))
        self.norm = nn.LayerNorm(ch)
        self.head = nn.Linear(ch, self.feature_channels - (cfg.audio_channels * self.bins if self.uses_source_phase else 0))
        self.source = None
        if cfg.source is not None:
            from .autoencoder import OobleckDecoder  # (autoencoder.py imports this module)

            self.source = OobleckDecoder(cfg.source)
            self.source_in = nn.Linear(cfg.audio_channels * self.bins, ch)
            with torch.no_grad():  # start from the source's magnitudes: the head adds to them
                mags = cfg.audio_channels * self.bins
                self.head.weight[:mags].zero_()
                self.head.bias[:mags].zero_()
                if cfg.source_phase:  # and from its phase: no deviation, no noise, offsets of 0
                    self.head.weight[mags:].zero_()
                    self.head.bias[mags:].zero_()
                    self.head.bias[mags + self.bins:mags + 2 * self.bins] = -12.0  # softplus: 6e-6
                    if cfg.phase_offsets:
                        self.head.bias[mags + 2 * self.bins:mags + 3 * self.bins] = 1.0  # angle of (1, 0)
        k = torch.arange(self.bins, dtype=torch.float64)
        # Phase advance of each bin's centre frequency per frame, mod 2 pi (computed in float64;
        # buffers are float32 so the module moves to MPS, which has no float64).
        self.register_buffer("centre_advance", torch.remainder(2 * math.pi * k * cfg.hop_length / cfg.n_fft,
                                                               2 * math.pi).float(), persistent=False)
        # Fixed, bin-wise random phases at frame 0: with equal ones every bin would line up into a
        # click at the start (and every n_fft / hop frames after it where the advance is the centre's).
        gen = torch.Generator().manual_seed(1)
        self.register_buffer("initial_phase", 2 * math.pi * torch.rand(self.bins, generator=gen), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)

    @property
    def uses_source_phase(self) -> bool:
        return self.cfg.source is not None and self.cfg.source_phase

    @property
    def feature_channels(self) -> int:
        """Log magnitude per audio channel and bin, then phase deviation and noise width per bin,
        then (with `phase_offsets`) the offset's 2-vector per bin, then (with a source's phase)
        that phase per audio channel and bin."""
        c = self.cfg.audio_channels
        return (c + 2 + (2 if self.cfg.phase_offsets else 0) + (c if self.uses_source_phase else 0)) * self.bins

    def features(self, z: Tensor) -> Tensor:
        """Latents `[B, D, L]` -> frame features `[B, feature_channels, L * frames_per_latent]`."""
        b, _, length = z.shape
        u = self.cfg.frames_per_latent
        h = self.latent_blocks(self.embed(z))  # [B, ch, L]
        h = self.split(h.transpose(1, 2)).reshape(b, length * u, -1).transpose(1, 2)  # [B, ch, L*u]
        if self.source is None:
            return self.head(self.norm(self.frame_blocks(h).transpose(1, 2))).transpose(1, 2)
        src, src_phase = self.source_spectrum(z)  # [B, C * bins, L*u] each
        h = self.frame_blocks(h + self.source_in(src.transpose(1, 2)).transpose(1, 2))
        out = self.head(self.norm(h.transpose(1, 2))).transpose(1, 2)
        mags = self.cfg.audio_channels * self.bins
        return torch.cat([out[:, :mags] + src, out[:, mags:]] + ([src_phase] if self.uses_source_phase else []), dim=1)

    def stft(self, audio: Tensor) -> Tensor:
        """`[..., N]` -> complex `[..., bins, N / hop_length + 1]`, frame t centred on sample
        t * hop_length: the synthesis's frames (the source's and the target's are taken so)."""
        shape = audio.shape
        spec = torch.stft(audio.reshape(-1, shape[-1]).float(), self.cfg.n_fft, self.cfg.hop_length,
                          window=self.window, center=True, return_complex=True)
        return spec.reshape(*shape[:-1], *spec.shape[-2:])

    def source_spectrum(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Log STFT magnitude and phase of the source decoder's audio, frames aligned with the
        synthesis's: `[B, audio_channels * bins, L * frames_per_latent]` each. No gradient flows
        into a frozen source."""
        from .autoencoder import unpatch

        assert self.source is not None
        train_source = torch.is_grad_enabled() and any(p.requires_grad for p in self.source.parameters())
        with torch.set_grad_enabled(train_source):
            audio = unpatch(self.source(z), self.cfg.patch_size)  # [B, C, N]
        b, c, n = audio.shape
        spec = self.stft(audio)[..., :n // self.cfg.hop_length].reshape(b, c * self.bins, -1)
        return torch.log(spec.abs() + 1e-5), spec.angle()

    def synthesize(self, feats: Tensor, generator: torch.Generator | None = None, return_phase: bool = False,
                   chunk_frames: int | None = SYNTH_CHUNK_FRAMES) -> Tensor | tuple[Tensor, Tensor]:
        """Frame features `[B, feature_channels, T]` -> audio `[B, audio_channels, T * hop_length]`
        (and, with `return_phase`, the phase it was synthesised with, `[B, 1 or audio_channels, bins, T]`).

        Noise in the phase advance is drawn from `generator`, or, when not training, from a fixed
        seed laid out frame by frame (a prefix of the frames gets a prefix of the noise). The phase
        is integrated over the whole signal at once; the spectra and the inverse STFT run in chunks
        of `chunk_frames` frames (None: one), each with n_fft / hop frames of margin on either side,
        so memory stays bounded and the result equals one pass."""
        feats = feats.float()
        b, _, frames = feats.shape
        c, nb, hop = self.cfg.audio_channels, self.bins, self.cfg.hop_length
        deviation = math.pi * torch.tanh(feats[:, c * nb:(c + 1) * nb])
        width = F.softplus(feats[:, (c + 1) * nb:(c + 2) * nb])
        if generator is None and not self.training:
            generator = torch.Generator().manual_seed(NOISE_SEED)
        noise = torch.randn(frames, nb, generator=generator, dtype=feats.dtype).to(feats.device).T
        # One frame past the end (its magnitude repeated): torch.istft's centred frames then cover
        # the last hop as fully as any other.
        # The running sums in float64 where the device has it (MPS does not): over 24,576 frames a
        # float32 sum of advances up to pi drifts by ~0.01 rad.
        acc = torch.float32 if feats.device.type == "mps" else torch.float64
        step = F.pad(deviation + width * noise, (0, 1), mode="replicate").to(acc)
        if not self.uses_source_phase:  # bins advance at their centre frequency plus the deviation
            step = step + self.centre_advance.to(acc)[:, None]
        # The integrated advance, frame 0 at 0, wrapped before going to float32.
        track = torch.remainder(torch.cumsum(step, dim=-1) - step, 2 * math.pi).float()  # [B, bins, T + 1]
        del step, noise, deviation, width
        if not self.uses_source_phase:
            track = track + self.initial_phase[:, None]
        chunk = frames if return_phase or not chunk_frames else chunk_frames
        margin = self.cfg.n_fft // hop
        pieces, phases = [], []
        for t0 in range(0, frames, chunk):
            t1 = min(frames, t0 + chunk)
            a, e = max(0, t0 - margin), min(frames + 1, t1 + margin)  # frames [a, e); frame T is the extra one
            phase = self._chunk_phase(feats, track, a, e)
            log_mag = self._frames(feats[:, :c * nb], a, e).reshape(b, c, nb, e - a).clamp(max=MAX_LOG_MAGNITUDE)
            spec = torch.polar(torch.exp(log_mag), phase.expand(b, c, nb, e - a))
            audio = torch.istft(spec.reshape(b * c, nb, e - a), self.cfg.n_fft, hop, window=self.window,
                                center=True, length=(e - a - 1) * hop).reshape(b, c, -1)
            pieces.append(audio[..., (t0 - a) * hop:(t1 - a) * hop])
            if return_phase:
                phases.append(phase[..., :frames - a])
        audio = torch.cat(pieces, dim=-1)
        return (audio, phases[0]) if return_phase else audio

    @staticmethod
    def _frames(x: Tensor, a: int, e: int) -> Tensor:
        """Frames [a, e) of `[B, K, T]`, the frame past the end (T) repeating the last."""
        frames = x.shape[-1]
        part = x[..., a:min(e, frames)]
        return F.pad(part, (0, e - frames), mode="replicate") if e > frames else part

    def _chunk_phase(self, feats: Tensor, track: Tensor, a: int, e: int) -> Tensor:
        """The synthesis phase of frames [a, e): `[B, 1 or C, bins, e - a]`."""
        b, frames = feats.shape[0], feats.shape[-1]
        c, nb = self.cfg.audio_channels, self.bins
        phase = track[:, None, :, a:e]
        if self.uses_source_phase:  # the source's phase per channel, extrapolated past the end
            src = feats[:, -c * nb:, a:min(e, frames)].reshape(b, c, nb, -1)
            if e > frames:
                src = torch.cat([src, src[..., -1:] + self.centre_advance[:, None]], dim=-1)
            phase = phase + src
        if self.cfg.phase_offsets:
            base = (c + 2) * nb
            offset = torch.atan2(self._frames(feats[:, base + nb:base + 2 * nb], a, e),
                                 self._frames(feats[:, base:base + nb], a, e))
            phase = phase + offset[:, None]
        return phase

    def forward(self, z: Tensor) -> Tensor:
        return self.synthesize(self.features(z))


def _anti_wrapped(d: Tensor) -> Tensor:
    """|d| after wrapping into [-pi, pi] (APNet's anti-wrapping function)."""
    return (d - 2 * math.pi * torch.round(d / (2 * math.pi))).abs()


def phase_derivative_loss(phase: Tensor, target: Tensor, vocoder: PhaseVocoderDecoder) -> Tensor:
    """Distance between the vocoder's phase `[B, P, bins, T]` and the target audio's `[B, C, N]`
    (its mid channel when P is 1, else each channel; same STFT frames) in what the latents can tell: how phase advances from frame to
    frame (instantaneous frequency) and from bin to bin (group delay), each anti-wrapped and
    weighted by the target's magnitude, in radians. The phase itself is left out: nothing in the
    latents says where a note's cycle starts (Ai & Ling 2023, APNet, minus its absolute term).
    Written here: no library has phase losses for a vocoder's synthesis."""
    b, p, nb, frames = phase.shape
    audio = target.mean(1, keepdim=True) if p == 1 else target
    spec = vocoder.stft(audio).reshape(b * p, nb, -1)[..., :frames]
    phase = phase.reshape(b * p, nb, frames)
    theta, weight = spec.angle(), spec.abs()
    weight = weight / weight.sum(dim=(1, 2), keepdim=True).clamp_min(1e-8)
    freq = (_anti_wrapped(phase.diff(dim=-1) - theta.diff(dim=-1)) * weight[..., 1:]).sum(dim=(1, 2))
    delay = (_anti_wrapped(phase.diff(dim=1) - theta.diff(dim=1)) * weight[:, 1:]).sum(dim=(1, 2))
    return (freq + delay).mean()

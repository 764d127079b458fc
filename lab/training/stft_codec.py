"""A frame-domain "STFT codec": an autoencoder at the latent rate (hop 2,048 at 44.1 kHz) that
reads a fine log-magnitude spectrum and writes magnitudes plus a phase-vocoder phase, so a steady
sine is a constant per-bin frequency deviation and renders phase-continuous (issue 19)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

# A full-scale sine peaks at log(n_fft / 4) = 6.2 in an n_fft-2,048 Hann frame; at the old bound
# (12) single bins reached 400x that and the output 100x the input's level early in training.
MAX_LOG_MAG = 7.0


@dataclass(frozen=True)
class STFTCodecConfig:
    channels: int = 2
    latent_dim: int = 64
    dim: int = 256
    enc_blocks: int = 3
    dec_blocks: int = 4
    enc_fft: int = 4096
    dec_fft: int = 2048
    frame_hop: int = 512
    down: int = 4  # frame_hop * down = latent hop (2,048)
    max_dev: float = 2.0  # bound of the instantaneous-frequency deviation, in bins
    # Bound of the per-frame phase residual (radians). Unbounded and randomly initialised, it put a
    # random phase on every frame and a sine's energy spread over its neighbours (tone 0.000 after
    # 157 steps); bounded and starting at 0 the phase starts as a pure phase vocoder.
    max_residual: float = 0.5
    # The log-magnitude head's gain: a sine at -12 dBFS peaks at log ~4.9 per bin, 9 above where
    # the head starts (-4); Adam moves a weight ~lr a step, so at gain 1 the magnitudes had not
    # moved after 250 steps (a near-silent decoder). The head starts at 0 and moves `mag_gain`x faster.
    mag_gain: float = 8.0
    phase_lock: bool = False  # decode with `lock_phase`
    # Bins of the encoder's STFT (lowest first) that also get a phase-derived frequency feature:
    # the instantaneous-frequency deviation from the phase advance, gated by the bin's level. From
    # magnitudes alone the stage-1 encoder placed a sine to 1.3 % (the frequency probe) — 6 Hz at
    # 441 Hz, over a quarter of a decoder bin; the phase advance gives it to a small fraction of a bin.
    if_bins: int = 0
    # Width of a hidden layer beside the linear head (0: none; its output branch starts at zero).
    # The linear head maps `dim` = 256 features to 1,025 bins, rank 256; not used so far, because
    # the best rank-256 map already reproduces 3-sine log-spectra to 0.42 nats at their peaks
    # (lab/runs/stftcodec/README.md, session 14): the quiet partials were the loss's weighting.
    head_hidden: int = 0
    block_scale: float = 1e-2  # ConvNeXt layer scale at init

    @property
    def hop(self) -> int:
        return self.frame_hop * self.down


class ConvNeXt1d(nn.Module):
    """ConvNeXt block on `[B, C, T]`: depthwise conv, LayerNorm, 4x MLP, residual."""

    def __init__(self, dim: int, kernel: int = 7, scale: float = 1e-2) -> None:
        super().__init__()
        self.dw = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.gamma = nn.Parameter(torch.full((dim,), scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dw(x).transpose(1, 2)  # [B, T, C]
        h = self.mlp(self.norm(h)) * self.gamma
        return x + h.transpose(1, 2)


def phase_vocoder_phase(dev: torch.Tensor, residual: torch.Tensor, hop: int, n_fft: int) -> torch.Tensor:
    """phi[t, k] = sum_{s<=t} 2 pi hop (k + dev[s, k]) / n_fft + pi k + residual[t, k] for `[B, K, T]`,

    plus pi k: torch's frames start at the window's edge, not its centre, so a sine's neighbouring
    bins alternate in phase by pi. Without that term the vocoder put every frame's tone at the
    frame's edges, where the synthesis window is zero: a sine came back at -32 dB and the
    codec trained to near silence (tone fidelity 0.000; tests/lab/test_stft_codec.py).

    The bin-centre part k (t hop + n_fft / 2) / n_fft is taken exactly in integers modulo n_fft;
    the deviation part is a float64 cumsum wrapped mod 2 pi, so a 24.5k-frame decode keeps its
    precision."""
    _, bins, frames = dev.shape
    k = torch.arange(bins, device=dev.device, dtype=torch.int64)[:, None]
    t = torch.arange(1, frames + 1, device=dev.device, dtype=torch.int64)[None]
    centre = ((k * (t * hop + n_fft // 2)) % n_fft).to(torch.float64) * (2 * math.pi / n_fft)  # [K, T]
    drift = torch.cumsum(dev.to(torch.float64) * (2 * math.pi * hop / n_fft), dim=-1)
    drift = torch.remainder(drift, 2 * math.pi)
    return (torch.remainder(centre + drift, 2 * math.pi) + residual.to(torch.float64)).to(dev.dtype)


def lock_phase(log_mag: torch.Tensor, phase: torch.Tensor, reach: int = 2) -> torch.Tensor:
    """Identity phase locking (Laroche & Dolson 1999): each bin takes the phase of the loudest bin
    within `reach` bins, plus pi per bin of distance (torch's frames alternate a sine's bins by pi).
    A partial's main lobe then renders as one coherent sinusoid even where the heads' deviations
    disagree from bin to bin, which an unlocked vocoder turns into cancelling phases."""
    padded = torch.nn.functional.pad(log_mag.transpose(1, 2), (reach, reach), value=-1e4)  # [B, T, K + 2r]
    offset = padded.unfold(-1, 2 * reach + 1, 1).argmax(-1).transpose(1, 2) - reach  # [B, K, T] in [-r, r]
    k = torch.arange(log_mag.shape[1], device=log_mag.device)[:, None]
    peak = (k + offset).clamp(0, log_mag.shape[1] - 1)
    return phase.gather(1, peak) - math.pi * offset.to(phase.dtype)


def synthesize(
    log_mag: torch.Tensor,
    dev: torch.Tensor,
    residual: torch.Tensor,
    hop: int,
    n_fft: int,
    length: int,
    lock: bool = False,
) -> torch.Tensor:
    """`[B, K, T]` log-magnitude, deviation (bins) and phase residual -> `[B, N]` audio by iSTFT."""
    phase = phase_vocoder_phase(dev, residual, hop, n_fft)
    if lock:
        phase = lock_phase(log_mag, phase)
    spec = torch.polar(torch.exp(log_mag.clamp(max=MAX_LOG_MAG)), phase)
    window = torch.hann_window(n_fft, device=log_mag.device, dtype=log_mag.dtype)
    return torch.istft(spec, n_fft, hop, window=window, center=True, length=length)


def analysis_loss(
    log_mag: torch.Tensor,
    dev: torch.Tensor,
    audio: torch.Tensor,
    hop: int,
    n_fft: int,
    floor: float = -7.0,
    compressed: float = 1.0,
    convergence: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Direct targets for the heads from the input's own STFT (the synthesis STFT, so these are
    exactly what reproduces it): L1 on log-magnitudes (floored at `floor`), `compressed` x L1 on
    |X|^0.3, `convergence` x spectral convergence, and a wrapped
    instantaneous-frequency loss 1 - cos(predicted phase advance - measured advance), weighted by
    the root magnitude. The multi-resolution STFT losses alone moved the deviation head so slowly
    that a sine kept none of its energy at its frequency after 300 steps.

    `log_mag`, `dev`: `[B * C, K, T]` from `STFTCodec.heads`; `audio` `[B, C, N]`, N = (T - 1) hop."""
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(audio.reshape(-1, audio.shape[-1]), n_fft, hop, window=window, return_complex=True)
    edge = n_fft // (2 * hop)  # frames whose window reaches into the crop's reflect padding: no target
    spec, log_mag, dev = spec[..., edge:-edge], log_mag[..., edge:-edge], dev[..., edge:-edge]
    mag = spec.abs()
    # L1 on log magnitude (floored) plus L1 on compressed magnitude |X|^0.3, which weighs the loud
    # bins: averaged over 1,025 bins the log term alone let the decoder learn "quiet everywhere"
    # and miss a sine's own bins by 9 nats after 270 steps.
    target = torch.log(mag + 1e-5).clamp(min=floor)
    l_mag = (log_mag.clamp(min=floor) - target).abs().mean()
    l_mag = l_mag + compressed * (torch.exp(0.3 * log_mag) - (mag + 1e-5).pow(0.3)).abs().mean()
    if convergence:
        # Spectral convergence ||Y| - |X||_F / ||X||_F per item: weighs bins by their level. Both
        # terms above average over 1,025 bins, so a partial's 3 bins count for ~0.3 % of them: a
        # stage-1 codec placed loud steady sines right but 2.5-3.7 nats (20-30 dB) too quiet.
        err = (torch.exp(log_mag) - mag).flatten(1).norm(dim=1)
        l_mag = l_mag + convergence * (err / mag.flatten(1).norm(dim=1).clamp(min=1e-3)).mean()
    k = torch.arange(spec.shape[1], device=audio.device, dtype=audio.dtype)[:, None]
    advance = torch.angle(spec[..., 1:] * spec[..., :-1].conj())  # measured phase advance, wrapped
    predicted = 2 * math.pi * hop * (k + dev[..., 1:]) / n_fft
    weight = (mag[..., 1:] * mag[..., :-1]).pow(0.25)  # root magnitude of both frames
    l_if = ((1 - torch.cos(predicted - advance)) * weight).sum() / weight.sum().clamp(min=1e-8)
    return l_mag, l_if


class STFTCodec(nn.Module):
    """Encode `[B, C, N]` (N a multiple of 2,048) to `[B, D, N / 2,048]` latents and back."""

    def __init__(self, config: STFTCodecConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.enc_in = nn.Conv1d(c.channels * (c.enc_fft // 2 + 1 + c.if_bins), c.dim, 1)
        self.enc_blocks = nn.Sequential(*[ConvNeXt1d(c.dim, scale=c.block_scale) for _ in range(c.enc_blocks)])
        self.enc_down = nn.Conv1d(c.dim, c.dim, c.down, stride=c.down)
        self.enc_out = nn.Conv1d(c.dim, 2 * c.latent_dim, 1)
        self.dec_in = nn.Conv1d(c.latent_dim, c.dim, 3, padding=1)
        self.dec_up = nn.ConvTranspose1d(c.dim, c.dim, c.down, stride=c.down)
        self.dec_blocks = nn.Sequential(*[ConvNeXt1d(c.dim, scale=c.block_scale) for _ in range(c.dec_blocks)])
        self.dec_norm = nn.LayerNorm(c.dim)  # as Vocos's backbone ends: the heads see unit-scale features
        self.dec_out = nn.Conv1d(c.dim, c.channels * 3 * (c.dec_fft // 2 + 1), 1)
        if c.head_hidden:
            self.dec_mlp_in = nn.Conv1d(c.dim, c.head_hidden, 1)
            self.dec_mlp_out = nn.Conv1d(c.head_hidden, c.channels * 3 * (c.dec_fft // 2 + 1), 1)
            nn.init.zeros_(self.dec_mlp_out.weight)
            nn.init.zeros_(self.dec_mlp_out.bias)
        with torch.no_grad():  # deviation and residual start at 0: a phase vocoder at bin centres
            rows = self.dec_out.weight.view(c.channels, 3, c.dec_fft // 2 + 1, c.dim, 1)
            rows.zero_()  # the log magnitude starts flat at -4 (see `mag_gain`)
            self.dec_out.bias.zero_()

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """`[B, C, N]` -> `[B, C * (enc_fft/2+1 + if_bins), N / frame_hop]`: log-magnitudes, then
        (with `if_bins`) each low bin's frequency deviation times its log-magnitude."""
        c = self.config
        b, ch, n = audio.shape
        frames = n // c.frame_hop
        window = torch.hann_window(c.enc_fft, device=audio.device, dtype=audio.dtype)
        spec = torch.stft(audio.reshape(b * ch, n), c.enc_fft, c.frame_hop, window=window, return_complex=True)
        # log(1 + |X| / 1e-3) / 4: a silent bin reads 0 and a loud one ~3. (As (log(|X| + 1e-5) + 4) / 4
        # every silent bin read -1.9: the 4,098 inputs summed to a constant that swamped the few
        # bins a sine lights, latents of different sines differed by 3 % of their norm and the
        # decoder learned one output for every input.)
        mag = torch.log1p(spec.abs()[..., :frames] / 1e-3) / 4.0  # [B*C, F, T]
        if c.if_bins:
            mag = torch.cat([mag, mag[:, : c.if_bins] * self.deviation(spec[:, : c.if_bins, : frames + 1])], 1)
        return mag.reshape(b, ch * mag.shape[1], mag.shape[2])

    def deviation(self, spec: torch.Tensor) -> torch.Tensor:
        """`[B, K, T + 1]` STFT -> `[B, K, T]` each bin's frequency offset from its centre, in bins
        of the encoder's STFT / 4, from the phase advance to the next frame (unambiguous within
        ±n_fft / (2 hop) = ±4 bins, wider than a Hann main lobe), 0 where the bin is silent."""
        c = self.config
        k = torch.arange(spec.shape[1], device=spec.device, dtype=spec.real.dtype)[:, None]
        advance = torch.angle(spec[..., 1:] * spec[..., :-1].conj())
        wrapped = torch.remainder(advance - 2 * math.pi * c.frame_hop * k / c.enc_fft + math.pi, 2 * math.pi) - math.pi
        return wrapped * c.enc_fft / (2 * math.pi * c.frame_hop) / 4.0

    def grow_from(self, state: dict[str, torch.Tensor]) -> None:
        """Load `state` from a codec without (or with fewer) frequency features, or without the
        head's hidden layer: the new input columns and the hidden branch's output start at zero, so
        the grown codec computes what the old one did."""
        c = self.config
        w = state["enc_in.weight"]
        per_channel = w.shape[1] // c.channels
        if per_channel != c.enc_fft // 2 + 1 + c.if_bins:
            grown = torch.zeros_like(self.enc_in.weight)
            view, old = grown.view(grown.shape[0], c.channels, -1), w.view(w.shape[0], c.channels, per_channel)
            view[:, :, :per_channel] = old
            state = {**state, "enc_in.weight": grown}
        own = self.state_dict()
        state = {**{k: v for k, v in own.items() if k.startswith("dec_mlp_")}, **state}
        self.load_state_dict(state)

    def encode_dist(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.enc_blocks(self.enc_in(self.features(audio)))
        mean, log_scale = self.enc_out(self.enc_down(h)).chunk(2, dim=1)
        return mean, log_scale.clamp(-8.0, 2.0)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Deterministic latents (the posterior mean), `[B, D, N / hop]`."""
        return self.encode_dist(audio)[0]

    def heads(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`[B, D, L]` -> log-magnitude, deviation, residual, each `[B * C, K, 4 L + 1]`."""
        c = self.config
        h = self.dec_blocks(self.dec_up(self.dec_in(latents)))
        h = self.dec_norm(h.transpose(1, 2)).transpose(1, 2)
        h = torch.cat([h, h[..., -1:]], dim=-1)  # iSTFT with centre wants N / hop + 1 frames
        out = self.dec_out(h)
        if self.config.head_hidden:
            out = out + self.dec_mlp_out(nn.functional.gelu(self.dec_mlp_in(h)))
        b, _, t = out.shape
        out = out.reshape(b * c.channels, 3, c.dec_fft // 2 + 1, t)
        log_mag, dev, residual = out.unbind(1)
        return c.mag_gain * log_mag - 4.0, c.max_dev * torch.tanh(dev), c.max_residual * torch.tanh(residual)

    def decode(self, latents: torch.Tensor, chunk_frames: int | None = None) -> torch.Tensor:
        """`[B, D, L]` -> `[B, C, L * hop]`. The phase is whole-sequence; only the iSTFT may be
        chunked (not yet needed: a 285 s decode is 24.5k frames)."""
        return self.render(self.heads(latents))

    def render(self, heads: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """`heads`' (log-magnitude, deviation, residual), `[B * C, K, T]` -> `[B, C, (T - 1) frame_hop]`:
        the synthesis `decode` ends with, which training calls on the heads it also scores."""
        c = self.config
        log_mag, dev, residual = heads
        n = (log_mag.shape[-1] - 1) * c.frame_hop
        audio = synthesize(log_mag, dev, residual, c.frame_hop, c.dec_fft, n, lock=c.phase_lock)
        return audio.reshape(-1, c.channels, n)

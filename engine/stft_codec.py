"""The STFT codec (issue 19): an autoencoder at the latent rate (hop 2,048 at 44.1 kHz) that reads
a fine log-magnitude spectrum and writes magnitudes plus a phase-vocoder phase, so a steady sine is
a constant per-bin frequency deviation and renders phase-continuous — the Oobleck's transposed
convolutions put a buzz on the latent rate's harmonics instead (docs/codec.md).

Written here by hand: no maintained library has a latent-rate phase-vocoder decoder; the layout
follows Vocos (ConvNeXt backbone, iSTFT head) with the phase from an integrated frequency
deviation. Training (losses, growth, the adversary) is `lab/training/stft_codec*.py`."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .autoencoder import Pretransform, run_chunked
from .stft_codec_config import STFTCodecConfig

# A full-scale sine peaks at log(n_fft / 4) = 6.2 in an n_fft-2,048 Hann frame; at the old bound
# (12) single bins reached 400x that and the output 100x the input's level early in training.
MAX_LOG_MAG = 7.0


class ConvNeXt1d(nn.Module):
    """ConvNeXt block on `[B, C, T]`: depthwise conv, LayerNorm, 4x MLP, residual."""

    def __init__(self, dim: int, kernel: int = 7, scale: float = 1e-2) -> None:
        super().__init__()
        self.dw = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.gamma = nn.Parameter(torch.full((dim,), scale))

    def forward(self, x: Tensor) -> Tensor:
        h = self.dw(x).transpose(1, 2)  # [B, T, C]
        h = self.mlp(self.norm(h)) * self.gamma
        out: Tensor = x + h.transpose(1, 2)
        return out


def phase_vocoder_phase(
    dev: Tensor, residual: Tensor, hop: int, n_fft: int, start: int = 0, carry: Tensor | None = None
) -> Tensor:
    """phi[t, k] = sum_{s<=t} 2 pi hop (k + dev[s, k]) / n_fft + pi k + residual[t, k] for `[B, K, T]`,

    plus pi k: torch's frames start at the window's edge, not its centre, so a sine's neighbouring
    bins alternate in phase by pi. Without that term the vocoder put every frame's tone at the
    frame's edges, where the synthesis window is zero: a sine came back at -32 dB and the
    codec trained to near silence (tone fidelity 0.000; tests/lab/test_stft_codec.py).

    The bin-centre part k (t hop + n_fft / 2) / n_fft is taken exactly in integers modulo n_fft;
    the deviation part is a float64 cumsum wrapped mod 2 pi, so a 24.5k-frame decode keeps its
    precision. A chunk of a longer sequence starts at frame `start`, `carry` `[B, K]` being the
    deviation part reached before it (`drift_after`)."""
    _, bins, frames = dev.shape
    k = torch.arange(bins, device=dev.device, dtype=torch.int64)[:, None]
    t = torch.arange(start + 1, start + frames + 1, device=dev.device, dtype=torch.int64)[None]
    centre = ((k * (t * hop + n_fft // 2)) % n_fft).to(torch.float64) * (2 * math.pi / n_fft)  # [K, T]
    drift = torch.cumsum(dev.to(torch.float64) * (2 * math.pi * hop / n_fft), dim=-1)
    if carry is not None:
        drift = drift + carry[..., None]
    drift = torch.remainder(drift, 2 * math.pi)
    return (torch.remainder(centre + drift, 2 * math.pi) + residual.to(torch.float64)).to(dev.dtype)


def drift_after(dev: Tensor, hop: int, n_fft: int, carry: Tensor | None = None) -> Tensor:
    """`phase_vocoder_phase`'s deviation part after the frames of `dev` `[B, K, T]` -> `[B, K]`."""
    total = dev.to(torch.float64).sum(-1) * (2 * math.pi * hop / n_fft)
    return torch.remainder(total if carry is None else total + carry, 2 * math.pi)


def lock_phase(log_mag: Tensor, phase: Tensor, reach: int = 2) -> Tensor:
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
    log_mag: Tensor,
    dev: Tensor,
    residual: Tensor,
    hop: int,
    n_fft: int,
    length: int,
    lock: bool = False,
) -> Tensor:
    """`[B, K, T]` log-magnitude, deviation (bins) and phase residual -> `[B, N]` audio by iSTFT."""
    spec = spectrum(log_mag, dev, residual, hop, n_fft, lock)
    window = torch.hann_window(n_fft, device=log_mag.device, dtype=log_mag.dtype)
    return torch.istft(spec, n_fft, hop, window=window, center=True, length=length)


def spectrum(
    log_mag: Tensor,
    dev: Tensor,
    residual: Tensor,
    hop: int,
    n_fft: int,
    lock: bool,
    start: int = 0,
    carry: Tensor | None = None,
) -> Tensor:
    """The heads' complex spectrum `[B, K, T]`: magnitudes (bounded) with the phase vocoder's phase,
    locked when `lock`; `start` / `carry` as for `phase_vocoder_phase`."""
    phase = phase_vocoder_phase(dev, residual, hop, n_fft, start=start, carry=carry)
    if lock:
        phase = lock_phase(log_mag, phase)
    return torch.polar(torch.exp(log_mag.clamp(max=MAX_LOG_MAG)), phase)


def synthesize_chunked(
    heads: Callable[[int, int], tuple[Tensor, Tensor, Tensor]],
    frames: int,
    hop: int,
    n_fft: int,
    length: int,
    lock: bool = False,
    chunk: int = 2048,
) -> Tensor:
    """`synthesize` of `frames` frames in chunks of `chunk`, `heads(a, b)` giving frames [a, b):
    the same audio (tested) in bounded memory. The whole-sequence synthesis of a 285 s decode
    peaked at 2.35 GB (benchmarks/bench_codec.py); this holds one chunk's heads and the output.

    By hand because torch.istft takes the whole spectrogram: each chunk's frames are inverted
    (irfft), windowed and overlap-added (`fold`) into the centred output, the phase's deviation part
    carried across chunks; then divided by the window's overlap-added square, as torch.istft does."""
    out: Tensor | None = None
    envelope: Tensor | None = None
    window: Tensor | None = None
    carry: Tensor | None = None
    for a in range(0, frames, chunk):
        b = min(frames, a + chunk)
        log_mag, dev, residual = heads(a, b)
        spec = spectrum(log_mag, dev, residual, hop, n_fft, lock, start=a, carry=carry)  # [B, K, F]
        carry = drift_after(dev, hop, n_fft, carry)
        if out is None or envelope is None or window is None:  # the first chunk: its device and dtype
            out = log_mag.new_zeros(spec.shape[0], (frames - 1) * hop + n_fft)
            envelope = log_mag.new_zeros((frames - 1) * hop + n_fft)
            window = torch.hann_window(n_fft, device=log_mag.device, dtype=log_mag.dtype)
        span = (b - a - 1) * hop + n_fft
        parts = torch.fft.irfft(spec, n=n_fft, dim=1) * window[:, None]  # [B, n_fft, F]
        fold = dict(output_size=(1, span), kernel_size=(1, n_fft), stride=(1, hop))
        out[:, a * hop : a * hop + span] += nn.functional.fold(parts, **fold).reshape(spec.shape[0], span)
        squares = (window**2)[None, :, None].expand(1, n_fft, b - a)
        envelope[a * hop : a * hop + span] += nn.functional.fold(squares, **fold).reshape(span)
    assert out is not None and envelope is not None
    centre = slice(n_fft // 2, n_fft // 2 + length)
    return out[:, centre] / envelope[centre].clamp(min=1e-11)


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
        # Deviation and residual start at 0 (a phase vocoder at bin centres), the log magnitude flat
        # at -4 (see `mag_gain`), the hidden branch at nothing.
        with torch.no_grad():
            for p in [*self.dec_out.parameters(), *(self.dec_mlp_out.parameters() if c.head_hidden else ())]:
                p.zero_()

    def features(self, audio: Tensor) -> Tensor:
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

    def deviation(self, spec: Tensor) -> Tensor:
        """`[B, K, T + 1]` STFT -> `[B, K, T]` each bin's frequency offset from its centre, in bins
        of the encoder's STFT / 4, from the phase advance to the next frame (unambiguous within
        ±n_fft / (2 hop) = ±4 bins, wider than a Hann main lobe), 0 where the bin is silent."""
        c = self.config
        k = torch.arange(spec.shape[1], device=spec.device, dtype=spec.real.dtype)[:, None]
        advance = torch.angle(spec[..., 1:] * spec[..., :-1].conj())
        wrapped = torch.remainder(advance - 2 * math.pi * c.frame_hop * k / c.enc_fft + math.pi, 2 * math.pi) - math.pi
        return wrapped * c.enc_fft / (2 * math.pi * c.frame_hop) / 4.0

    @property
    def cfg(self) -> STFTCodecConfig:  # the name the Oobleck autoencoder's config goes by
        return self.config

    @property
    def pre_channels(self) -> int:
        """Channels of `encode_pre`: the posterior's mean and scale parameter."""
        return 2 * self.config.latent_dim

    chunk_frames = 512  # latent frames per chunk, ~24 s: 256 channels at 4x the latent rate

    def encode_dist(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        """`[B, C, N]` -> the posterior's mean and log standard deviation, each `[B, D, N / hop]`."""
        h = self.enc_blocks(self.enc_in(self.features(audio)))
        mean, log_scale = self.enc_out(self.enc_down(h)).chunk(2, dim=1)
        return mean, log_scale.clamp(-8.0, 2.0)

    def encode(self, audio: Tensor) -> Tensor:
        """Deterministic latents (the posterior mean), `[B, D, N / hop]`."""
        return self.encode_dist(audio)[0]

    def encode_pre(self, audio: Tensor) -> Tensor:
        """`[B, 2D, L]` (mean, scale parameter) in the Oobleck bottleneck's convention (std =
        softplus(scale) + 1e-4), so an encoded corpus and `vae_sample` read either autoencoder."""
        mean, log_scale = self.encode_dist(audio)
        std = torch.exp(log_scale) - 1e-4  # >= exp(-8) - 1e-4 > 0
        return torch.cat([mean, torch.log(torch.expm1(std))], dim=1)

    def trunk(self, latents: Tensor) -> Tensor:
        """`[B, D, L]` -> the backbone's `[B, dim, down * L]` features: local (a few latent frames
        of reach), so it may run in overlapping chunks; the heads are per frame."""
        h = self.dec_blocks(self.dec_up(self.dec_in(latents)))
        out: Tensor = self.dec_norm(h.transpose(1, 2)).transpose(1, 2)
        return out

    def head(self, h: Tensor, extend: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """Backbone features `[B, dim, T]` -> log-magnitude, deviation, residual, each `[B * C, K, T + 1]`
        (`extend`: the last frame repeated, as the centred iSTFT wants N / hop + 1; else T)."""
        c = self.config
        if extend:
            h = torch.cat([h, h[..., -1:]], dim=-1)
        out = self.dec_out(h)
        if c.head_hidden:
            out = out + self.dec_mlp_out(nn.functional.gelu(self.dec_mlp_in(h)))
        b, _, t = out.shape
        out = out.reshape(b * c.channels, 3, c.dec_fft // 2 + 1, t)
        log_mag, dev, residual = out.unbind(1)
        return c.mag_gain * log_mag - 4.0, c.max_dev * torch.tanh(dev), c.max_residual * torch.tanh(residual)

    def heads(self, latents: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """`[B, D, L]` -> log-magnitude, deviation, residual, each `[B * C, K, 4 L + 1]`."""
        return self.head(self.trunk(latents))

    def decode(self, latents: Tensor) -> Tensor:
        """`[B, D, L]` -> `[B, C, L * hop]`, whole (`STFTCodecPretransform.decode` runs in chunks)."""
        return self.render(self.heads(latents))

    def render(self, heads: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        """`heads`' (log-magnitude, deviation, residual), `[B * C, K, T]` -> `[B, C, (T - 1) frame_hop]`:
        the synthesis `decode` ends with, which training calls on the heads it also scores. The
        phase is integrated over the whole sequence (float64: a 285 s decode is 24.5k frames)."""
        c = self.config
        log_mag, dev, residual = heads
        n = (log_mag.shape[-1] - 1) * c.frame_hop
        audio = synthesize(log_mag, dev, residual, c.frame_hop, c.dec_fft, n, lock=c.phase_lock)
        return audio.reshape(-1, c.channels, n)


class STFTCodecPretransform(Pretransform):
    """The codec as the DiT's pretransform, as `AutoencoderPretransform` is the Oobleck (keys
    `model.*`); its `decode` synthesises chunk by chunk."""

    model: STFTCodec
    cfg: STFTCodecConfig
    SYNTH_CHUNK = 2048  # STFT frames (~24 s) synthesised at a time (`synthesize_chunked`)

    def __init__(self, cfg: STFTCodecConfig):
        super().__init__(cfg, STFTCodec(cfg))

    def decode(self, latents: Tensor, chunk_frames: int | None = None, overlap_frames: int = 32) -> Tensor:
        """Latents `[B, D, L]` -> audio `[B, C, L * hop]`: the backbone in overlapping chunks, then
        heads and synthesis chunk by chunk with the phase carried across (`synthesize_chunked`)."""
        z = latents * self.scale
        chunk = chunk_frames or self.default_chunk_frames
        c = self.cfg
        h = run_chunked(self.model.trunk, z, chunk, overlap_frames, 1, c.down, c.dim)
        h = torch.cat([h, h[..., -1:]], dim=-1)  # the centred iSTFT's N / hop + 1 frames
        n = (h.shape[-1] - 1) * c.frame_hop
        audio = synthesize_chunked(
            lambda a, b: self.model.head(h[..., a:b], extend=False),
            h.shape[-1],
            c.frame_hop,
            c.dec_fft,
            n,
            lock=c.phase_lock,
            chunk=self.SYNTH_CHUNK,
        )
        return audio.reshape(-1, c.channels, n)

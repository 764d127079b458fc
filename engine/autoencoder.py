"""Oobleck autoencoder (Stable Audio 2, section 2.1): weight-normed convs, SnakeBeta, VAE bottleneck.

State-dict layout equals stable-audio-tools' `OobleckEncoder`/`OobleckDecoder` wrapped in an
`AudioAutoencoder` wrapped in an `AutoencoderPretransform`, so released weights load unchanged:
`pretransform.model.encoder.layers.1.layers.0.layers.1.weight_g`, ...

Weight norm is written by hand (not `torch.nn.utils.parametrizations.weight_norm`) because the
parametrization API stores `parametrizations.weight.original0/1`, not the `weight_g`/`weight_v`
keys the released checkpoints use; a hand-written one also lets inference fold the norm once.

Long audio is encoded/decoded in overlapping chunks whose edges are cropped (the receptive field
of the convs is a few latent frames), so memory is bounded whatever the length.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import fastconv
from .config import AutoencoderConfig, OobleckConfig


class WNConv1d(nn.Module):
    """Conv1d (or ConvTranspose1d) with weight norm stored as `weight_g` / `weight_v`.

    g has one entry per dim-0 slice of the weight: `[out,1,1]` for a conv, `[in,1,1]` for a
    transposed conv (whose weight is `[in, out, k]`), matching `torch.nn.utils.weight_norm`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | str = 0,
        dilation: int = 1,
        bias: bool = True,
        transpose: bool = False,
    ):
        super().__init__()
        self.transpose = transpose
        self.stride, self.dilation = stride, dilation
        # padding="same" (stride 1): total k-1 split with the extra sample on the right, as torch does.
        total = dilation * (kernel_size - 1)
        self.pad_lr = (total // 2, total - total // 2) if padding == "same" else (0, 0)
        self.padding = 0 if padding == "same" else int(padding)
        shape = (in_channels, out_channels, kernel_size) if transpose else (out_channels, in_channels, kernel_size)
        v = torch.empty(shape)
        nn.init.kaiming_uniform_(v, a=math.sqrt(5))
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(v.flatten(1).norm(dim=1).view(-1, 1, 1).clone())
        if bias:
            fan_in = in_channels * kernel_size
            bound = 1 / math.sqrt(fan_in)
            self.bias: nn.Parameter | None = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)
        # Inference cache of the folded weight; never part of the state dict. Keyed on the
        # parameters' identity and in-place version, so any change (load_state_dict, an optimizer
        # step, `p.copy_`, `.to()`) refreshes it.
        self._folded: Tensor | None = None
        self._stamp: tuple[object, ...] = ()

    def weight(self) -> Tensor:
        v = self.weight_v
        norm: Tensor = v.flatten(1).norm(dim=1)  # [out]; torch's stubs leave Tensor.norm untyped
        return self.weight_g * v / norm.clamp_min(1e-12).view(-1, 1, 1)

    def _weight_for_forward(self) -> Tensor:
        if self.training or torch.is_grad_enabled():
            self._folded = None
            return self.weight()
        key = fastconv.stamp(self.weight_g, self.weight_v)
        if self._folded is None or key != self._stamp:
            self._folded, self._stamp = self.weight().detach(), key
        return self._folded

    def _load_from_state_dict(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._folded = None
        super()._load_from_state_dict(*args, **kwargs)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        """`residual` (inference fast path of ResidualUnit) is added to the output."""
        w = self._weight_for_forward()
        if self.transpose:
            y = fastconv.conv_transpose1d(x, w, self.bias, self.stride, self.padding, self.dilation)
            return y if residual is None else y + residual
        if self.pad_lr != (0, 0):
            x = F.pad(x, self.pad_lr)
        return fastconv.conv1d(x, w, self.bias, self.stride, self.padding, self.dilation, residual=residual)


class SnakeBeta(nn.Module):
    """SnakeBeta with log-scale parameters: x + 1/(e^beta + 1e-9) * sin(e^alpha * x)^2."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        # Inference fold of (e^alpha, 1/(e^beta + 1e-9)), refreshed when the parameters change.
        self._folded: tuple[Tensor, Tensor] | None = None
        self._stamp: tuple[object, ...] = ()

    def forward(self, x: Tensor) -> Tensor:  # x: [B, C, T]
        if self.training or torch.is_grad_enabled():
            alpha = self.alpha.exp().view(1, -1, 1)
            inv_beta = 1.0 / (self.beta.exp().view(1, -1, 1) + 1e-9)
            return x + inv_beta * torch.sin(alpha * x).pow(2)
        key = fastconv.stamp(self.alpha, self.beta)
        if self._folded is None or key != self._stamp:
            self._folded = (self.alpha.exp().detach(), 1.0 / (self.beta.exp().detach() + 1e-9))
            self._stamp = key
        return fastconv.snake_beta(x, *self._folded)


def _act(use_snake: bool, channels: int) -> nn.Module:
    return SnakeBeta(channels) if use_snake else nn.ELU()


class ResidualUnit(nn.Module):
    def __init__(self, channels: int, dilation: int, use_snake: bool):
        super().__init__()
        self.layers = nn.Sequential(
            _act(use_snake, channels),
            WNConv1d(channels, channels, 7, dilation=dilation, padding=3 * dilation),
            _act(use_snake, channels),
            WNConv1d(channels, channels, 1),
        )

    @property
    def dilated_conv(self) -> WNConv1d:
        """`layers.1`, the k=7 conv whose dilation sets the unit's reach."""
        return cast(WNConv1d, self.layers[1])

    def forward(self, x: Tensor) -> Tensor:
        if fastconv.enabled():  # the residual add rides in the k=1 conv's GEMM accumulator
            return cast(Tensor, self.layers[3](self.layers[2](self.layers[1](self.layers[0](x))), residual=x))
        return x + cast(Tensor, self.layers(x))


def _reach(units: list[ResidualUnit]) -> int:
    """Samples each side that a stack of residual units reads: sum of dilation * (k - 1) / 2."""
    return sum(u.dilated_conv.dilation * (u.dilated_conv.weight_v.shape[-1] - 1) // 2 for u in units)


class EncoderBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, use_snake: bool):
        super().__init__()
        units = [ResidualUnit(in_ch, d, use_snake) for d in (1, 3, 9)]
        self.layers = nn.Sequential(
            *units,
            _act(use_snake, in_ch),
            WNConv1d(in_ch, out_ch, 2 * stride, stride=stride, padding=math.ceil(stride / 2)),
        )
        self.stride, self.out_ch = stride, out_ch
        # Input samples an output reads beyond its stride window: residual units + kernel 2*stride.
        self.halo = _reach(units) + 2 * stride

    def forward(self, x: Tensor) -> Tensor:
        if fastconv.enabled() and self.stride % 2 == 0:
            return fastconv.run_tiled(self.layers, x, self.halo, down=self.stride, out_channels=self.out_ch)
        return cast(Tensor, self.layers(x))


def _nearest_upsample(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    # Same nesting as stable-audio-tools (Sequential(Upsample, conv)): keys `layers.1.1.*`.
    return nn.Sequential(
        nn.Upsample(scale_factor=stride, mode="nearest"),
        WNConv1d(in_ch, out_ch, 2 * stride, padding="same", bias=False),
    )


class DecoderBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, use_snake: bool, nearest: bool):
        super().__init__()
        up: nn.Module
        if nearest:
            up = _nearest_upsample(in_ch, out_ch, stride)
        else:
            up = WNConv1d(in_ch, out_ch, 2 * stride, stride=stride, padding=math.ceil(stride / 2), transpose=True)
        act = _act(use_snake, in_ch)
        units = [ResidualUnit(out_ch, d, use_snake) for d in (1, 3, 9)]
        self.layers = nn.Sequential(act, up, *units)
        self.stride, self.out_ch = stride, out_ch
        # Input samples an output reads around its position: residual units (at the output rate)
        # plus the two (transposed) or ~2 (nearest + conv 2*stride) input taps of the upsampler.
        self.halo = -(-_reach(units) // stride) + 3

    def forward(self, x: Tensor) -> Tensor:
        if fastconv.enabled() and self.stride % 2 == 0:
            return fastconv.run_tiled(self.layers, x, self.halo, up=self.stride, out_channels=self.out_ch)
        return cast(Tensor, self.layers(x))


class OobleckEncoder(nn.Module):
    """Audio `[B, audio_channels, N]` -> pre-bottleneck latents `[B, latent_dim, N / hop]`."""

    def __init__(self, cfg: OobleckConfig):
        super().__init__()
        ch, mults = cfg.channels, (1,) + tuple(cfg.c_mults)
        layers: list[nn.Module] = [WNConv1d(cfg.audio_channels, mults[0] * ch, 7, padding=3)]
        for i in range(len(mults) - 1):
            layers.append(EncoderBlock(mults[i] * ch, mults[i + 1] * ch, cfg.strides[i], cfg.use_snake))
        layers += [_act(cfg.use_snake, mults[-1] * ch), WNConv1d(mults[-1] * ch, cfg.latent_dim, 3, padding=1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if not fastconv.enabled():
            return cast(Tensor, self.layers(x))
        head = cast(WNConv1d, self.layers[0])  # audio-rate conv k7: reaches 3 samples; tiled like the blocks
        x = fastconv.run_tiled(head, x, 3, out_channels=head.weight_v.shape[0])
        return cast(Tensor, self.layers[1:](x))


class OobleckDecoder(nn.Module):
    """Latents `[B, latent_dim, L]` -> audio `[B, audio_channels, L * hop]`."""

    def __init__(self, cfg: OobleckConfig):
        super().__init__()
        ch, mults = cfg.channels, (1,) + tuple(cfg.c_mults)
        layers: list[nn.Module] = [WNConv1d(cfg.latent_dim, mults[-1] * ch, 7, padding=3)]
        for i in range(len(mults) - 1, 0, -1):
            layers.append(
                DecoderBlock(
                    mults[i] * ch, mults[i - 1] * ch, cfg.strides[i - 1], cfg.use_snake, cfg.use_nearest_upsample
                )
            )
        layers += [
            _act(cfg.use_snake, mults[0] * ch),
            WNConv1d(mults[0] * ch, cfg.audio_channels, 7, padding=3, bias=False),
        ]
        if cfg.final_tanh:
            layers.append(nn.Tanh())
        else:
            layers.append(nn.Identity())
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if not fastconv.enabled():
            return cast(Tensor, self.layers(x))
        x = self.layers[:-3](x)
        tail = cast(nn.Sequential, self.layers[-3:])  # act, audio-rate conv k7 (reaches 3 samples), tanh: tiled
        return fastconv.run_tiled(tail, x, 3, out_channels=cast(WNConv1d, tail[1]).weight_v.shape[0])


def unpatch(x: Tensor, p: int) -> Tensor:
    """`[B, C * p, N / p]` -> `[B, C, N]`: undoes the "patched" pretransform's fold."""
    if p == 1:
        return x
    b, cp, n = x.shape
    return x.reshape(b, cp // p, p, n).transpose(2, 3).reshape(b, cp // p, n * p)


def _vae_std(scale: Tensor) -> Tensor:
    return F.softplus(scale) + 1e-4


def vae_kl(mean: Tensor, scale: Tensor) -> Tensor:
    """KL of the VAE posterior (std = softplus(scale) + 1e-4) from the unit Gaussian, summed over
    channels, averaged over batch and time."""
    var = _vae_std(scale) ** 2
    return (mean * mean + var - torch.log(var) - 1).sum(1).mean()


def vae_sample(mean: Tensor, scale: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Reparameterised sample and KL of the VAE bottleneck."""
    # Drawn on the generator's device and moved, so a seed gives the same latents on any device.
    gen_device = generator.device if generator is not None else mean.device
    noise = torch.randn(mean.shape, generator=generator, device=gen_device, dtype=mean.dtype).to(mean.device)
    return mean + _vae_std(scale) * noise, vae_kl(mean, scale)


class AudioAutoencoder(nn.Module):
    """Encoder + VAE bottleneck + decoder. Keys `encoder.*`, `decoder.*` (the bottleneck has none)."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = OobleckEncoder(cfg.encoder)
        self.decoder = OobleckDecoder(cfg.decoder)

    def patch(self, audio: Tensor) -> Tensor:
        """`[B, C, N]` -> `[B, C * p, N / p]`, channel c*p + h at frame l = sample l*p + h of
        channel c: stable-audio-tools' "patched" pretransform (`b c (l h) -> b (c h) l`)."""
        p = self.cfg.patch_size
        if p == 1:
            return audio
        b, c, n = audio.shape
        return audio.reshape(b, c, n // p, p).transpose(2, 3).reshape(b, c * p, n // p)

    def unpatch(self, x: Tensor) -> Tensor:
        """The exact inverse of `patch`."""
        return unpatch(x, self.cfg.patch_size)

    @property
    def pre_channels(self) -> int:
        """Channels of `encode_pre` (the STFT codec has the same name)."""
        return self.cfg.encoder.latent_dim

    @property
    def chunk_frames(self) -> int:
        """Latent frames per chunk of a long signal (the STFT codec has the same name)."""
        return default_chunk_frames(self.cfg)

    def encode_pre(self, audio: Tensor) -> Tensor:
        """Audio `[B, C, N]` -> pre-bottleneck `[B, encoder latent_dim, N / hop]`."""
        return cast(Tensor, self.encoder(self.patch(audio)))

    def decode_audio(self, latents: Tensor) -> Tensor:
        """Latents `[B, D, L]` -> audio `[B, C, L * hop]` (decode without the pretransform's scale)."""
        return self.unpatch(self.decoder(latents))

    def encode(
        self, audio: Tensor, sample: bool = True, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """`[B, C, N]` -> (latents `[B, D, N/hop]`, kl). `sample=False` returns the mean."""
        h = self.encode_pre(audio)
        if self.cfg.bottleneck != "vae":
            return h, h.new_zeros(())
        mean, scale = h.chunk(2, dim=1)
        if not sample:
            return mean, h.new_zeros(())
        return vae_sample(mean, scale, generator)

    def encode_mean(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        """`[B, C, N]` -> (posterior mean, the posterior's KL): what a deterministic autoencoder
        decodes, and the term that keeps its scale (`encode(sample=False)` leaves the KL out)."""
        h = self.encode_pre(audio)
        if self.cfg.bottleneck != "vae":
            return h, h.new_zeros(())
        mean, scale = h.chunk(2, dim=1)
        return mean, vae_kl(mean, scale)

    def decode(self, latents: Tensor) -> Tensor:
        return self.decode_audio(latents)


def _chunk_starts(total: int, chunk: int, hop: int) -> list[int]:
    starts = list(range(0, max(total - chunk, 0) + 1, hop))
    if starts[-1] + chunk < total:
        starts.append(total - chunk)
    return starts


def run_chunked(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    chunk: int,
    overlap: int,
    in_per_frame: int,
    out_per_frame: int,
    out_channels: int,
) -> Tensor:
    """Apply a conv net `fn` over time in overlapping chunks, cropping overlap/2 at inner edges.

    Units are latent frames: `x` has `in_per_frame` samples per frame and the output
    `out_per_frame`. Chunks overlap by `overlap` frames; each keeps its middle, so the result
    equals the whole-signal result wherever the receptive field fits inside overlap/2.
    """
    frames = x.shape[-1] // in_per_frame
    if frames <= chunk:
        return fn(x)
    if overlap >= chunk:
        raise ValueError(f"overlap ({overlap}) must be smaller than the chunk ({chunk})")
    half = overlap // 2
    starts = _chunk_starts(frames, chunk, chunk - overlap)
    out = x.new_zeros(x.shape[0], out_channels, frames * out_per_frame)
    for n, s in enumerate(starts):
        y = fn(x[..., s * in_per_frame : (s + chunk) * in_per_frame])
        keep_from = 0 if n == 0 else half
        keep_to = chunk if n == len(starts) - 1 else chunk - half
        if n > 0:
            # The previous chunk kept frames up to its end minus `half`; start exactly there.
            prev_end = starts[n - 1] + (chunk - half)
            keep_from = prev_end - s
        out[..., (s + keep_from) * out_per_frame : (s + keep_to) * out_per_frame] = y[
            ..., keep_from * out_per_frame : keep_to * out_per_frame
        ]
    return out


def default_chunk_frames(cfg: AutoencoderConfig) -> int:
    """128 latent frames per chunk for SAO-width models (stable-audio-tools' default); narrower
    models take longer chunks at the same activation memory, so less is spent on overlaps
    (a 32-frame overlap costs 33 % at 128 frames, 6 % at 512)."""
    widest = max(cfg.encoder.channels, cfg.decoder.channels)
    return 128 * max(1, min(8, 128 // max(widest, 1)))


class Pretransform(nn.Module):
    """The DiT's view of an autoencoder (`model`: `encode_pre`, `pre_channels`): audio <-> latents /
    scale, chunked for long signals. `AutoencoderPretransform` (Oobleck) and
    `engine.stft_codec.STFTCodecPretransform` each add their `decode`."""

    model: Any  # each subclass names its own (`encode_pre`, `pre_channels`, `chunk_frames`, what decode calls)

    def __init__(self, cfg: Any, model: nn.Module, vae: bool = True):
        super().__init__()
        self.cfg = cfg
        self.model = model
        self.vae = vae
        self.downsampling_ratio: int = cfg.downsampling_ratio
        self.io_channels: int = cfg.io_channels
        self.latent_dim: int = cfg.latent_dim
        self.scale: float = cfg.scale

    @property
    def default_chunk_frames(self) -> int:
        return int(self.model.chunk_frames)

    def encode(
        self,
        audio: Tensor,
        sample: bool = True,
        generator: torch.Generator | None = None,
        chunk_frames: int | None = None,
        overlap_frames: int = 32,
    ) -> Tensor:
        """Audio `[B, C, N]` (N a multiple of the hop) -> latents `[B, D, N / hop]` (a VAE's
        posterior sampled when `sample`, else its mean)."""
        hop = self.downsampling_ratio
        if audio.shape[-1] % hop:
            raise ValueError(f"audio length {audio.shape[-1]} is not a multiple of the hop {hop}")
        chunk_frames = chunk_frames or self.default_chunk_frames
        pre = run_chunked(self.model.encode_pre, audio, chunk_frames, overlap_frames, hop, 1, self.model.pre_channels)
        if self.vae:
            mean, scale = pre.chunk(2, dim=1)
            latents = vae_sample(mean, scale, generator)[0] if sample else mean
        else:
            latents = pre
        return latents / self.scale


class AutoencoderPretransform(Pretransform):
    """The Oobleck autoencoder as the DiT's pretransform."""

    model: AudioAutoencoder
    cfg: AutoencoderConfig

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__(cfg, AudioAutoencoder(cfg), vae=cfg.bottleneck == "vae")

    def decode(self, latents: Tensor, chunk_frames: int | None = None, overlap_frames: int = 32) -> Tensor:
        """Latents `[B, D, L]` -> audio `[B, C, L * hop]`, bounded memory for any L."""
        z = latents * self.scale
        chunk_frames = chunk_frames or self.default_chunk_frames
        return run_chunked(
            self.model.decode_audio, z, chunk_frames, overlap_frames, 1, self.downsampling_ratio, self.io_channels
        )

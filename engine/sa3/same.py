"""The SAME autoencoder: diffusers' modules, arranged as the released checkpoints attend.

Built from diffusers' `autoencoder_same` classes (`PatchEmbed`, `SoftNormBottleneck`,
`SAMEEncoder`/`SAMEDecoder` and their `TransformerBlock`s), so a diffusers-format `vae/` folder
loads into it key for key. Where the release differs from `AutoencoderSAME`, the release wins
(stable-audio-3's `TransformerResamplingBlock` is the reference):

- **Chunked attention with a midpoint shift (SAME-S).** The released SAME-S attends within chunks
  of two latents (34 tokens), the first half of the layers on chunks aligned to even latents, the
  second half on chunks shifted by one latent (the sequence extended by a copy of its first and
  last latent's tokens). diffusers runs every SAME with a +-17-token band mask instead.
- **Kernel-3 channel mapping (SAME-S decoder).** `conv_mapping` in the release; diffusers always
  maps with a kernel-1 conv.
- **Padding to the chunk grid.** The release pads the encoder input to whole chunks and the
  decoder's latents (zeros after the input projection) to an even count.
- **Band attention in linear time (SAME-L).** Same math as diffusers' band mask (`attention.py`).

Also decoded here, deliberately not as released: the reference adds N(0, 0.01^2) to the decoder's
query tokens (`mask_noise`) and N(0, (1e-3 running_std)^2) to the latents (`noise_regularize`) at
inference. Both are training regularisers left on; diffusers omits them and so do we, so a seed
reproduces a render and a windowed decode equals a whole one.

Every layer runs through `attention.same_layer` (diffusers' modules and weights, the same math in
fewer passes over memory: measured, see there). `decode` works in overlapping windows of latents
(bounded memory at any length: 380 s decodes in the memory of one window); the windows overlap by
at least the decoder's receptive field and start on the chunk grid, so the result equals a
whole-sequence decode (tested). In bf16 it runs a bf16 copy of the decoder (`half_decoder`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .attention import same_layer
from .config import SAMEConfig, SAMESide
from .deps import diffusers_module

DecodeCallback = Callable[[dict[str, Any]], None]


def _diffusers_same() -> Any:
    return diffusers_module("models.autoencoders.autoencoder_same")


def _pad_to(x: Tensor, multiple: int, dim: int) -> Tensor:
    size = x.shape[dim]
    pad = (multiple - size % multiple) % multiple
    if not pad:
        return x
    shape = list(x.shape)
    shape[dim] = pad
    return torch.cat([x, x.new_zeros(shape)], dim=dim)


class SAMEResampler(nn.Module):
    """One transformer resampling block: `stride` fine frames <-> one coarse frame.

    Encoder: S frames + one learned token per segment -> keep that token (downsample by S).
    Decoder: one frame + S learned tokens per segment -> keep the S tokens (upsample by S).
    State-dict names are diffusers' `SAMETransformerResamplingBlock`'s."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        mode: str,
        depth: int,
        side: SAMESide,
        sinusoidal_blocks: int,
    ) -> None:
        super().__init__()
        same = _diffusers_same()
        self.mode, self.stride, self.in_channels, self.out_channels = mode, stride, in_channels, out_channels
        self.side = side
        tdim = out_channels if mode == "encoder" else in_channels
        self.tdim = tdim
        if in_channels == out_channels:
            self.mapping: nn.Module = nn.Identity()
        else:
            kernel = 3 if side.conv_mapping else 1
            self.mapping = same._wn_conv1d(
                in_channels, out_channels, kernel, padding=kernel // 2, bias=side.mapping_bias
            )
        self.transformers = nn.ModuleList(
            same.TransformerBlock(
                tdim,
                dim_heads=min(side.dim_heads, tdim),
                use_differential=side.differential,
                ff_mult=side.ff_mult,
                sinusoidal=(depth - i) < sinusoidal_blocks,
            )
            for i in range(depth)
        )
        self.new_tokens = nn.Parameter(1e-5 * torch.randn(1, 1, tdim))
        sub = stride + 1
        # Band attention reaches `window` whole segments (S + 1 tokens each) either side.
        self.band = (
            None if side.sliding_window is None else (side.sliding_window[0] * sub, side.sliding_window[1] * sub)
        )
        self.block = 8 * sub
        self.chunk_latents = 0 if side.sliding_window is not None else side.chunk_size // stride

    def _attend(self, x: Tensor) -> Tensor:
        """x: `[B, n * (S + 1), C]`, n a multiple of the chunk (chunked attention)."""
        b, t, c = x.shape
        layers = list(self.transformers)
        if not self.chunk_latents:
            for layer in layers:
                x = same_layer(layer, x, self.band, self.block)
            return x
        e = self.chunk_latents * (self.stride + 1)  # tokens per chunk
        split = len(layers) // 2 if self.side.chunk_midpoint_shift else len(layers)
        x = x.reshape(b * (t // e), e, c)  # [B * chunks, E, C]: RoPE positions restart per chunk
        for layer in layers[:split]:
            x = same_layer(layer, x)
        x = x.reshape(b, t, c)
        if split == len(layers):
            return x
        shift = e // 2  # whole segments, since chunk_latents is even (checked in config)
        x = torch.cat([x[:, :shift], x, x[:, -shift:]], dim=1)  # [B, T + E, C]: edges repeated
        x = x.reshape(b * (t // e + 1), e, c)
        for layer in layers[split:]:
            x = same_layer(layer, x)
        return x.reshape(b, t + e, c)[:, shift:-shift]

    def forward(self, x: Tensor) -> Tensor:
        """Encoder `[B, C_in, T] -> [B, C_out, ceil(T / S)]` (chunk-padded); decoder `[B, C_in, T] -> [B, C_out, T * S]`."""
        s = self.stride
        if self.mode == "encoder":
            b, _, t = x.shape
            x = _pad_to(x, self.chunk_latents * s if self.chunk_latents else s, -1)
            x = self.mapping(x)  # [B, C, Tp]
            n = x.shape[-1] // s
            x = x.transpose(1, 2).reshape(b * n, s, self.tdim)  # [B*n, S, C]
            x = torch.cat([x, self.new_tokens.expand(b * n, 1, -1)], dim=1)  # [B*n, S+1, C]
            x = self._attend(x.reshape(b, n * (s + 1), self.tdim))
            x = x.reshape(b, n, s + 1, self.tdim)[:, :, -1]  # [B, n, C]
            return x.transpose(1, 2)  # [B, C, n]
        b, _, t = x.shape
        x = _pad_to(x.transpose(1, 2), self.chunk_latents or 1, 1)  # [B, Tp, C]: zero latents, already projected
        n = x.shape[1]
        x = torch.cat([x.reshape(b * n, 1, self.tdim), self.new_tokens.expand(b * n, s, -1)], dim=1)
        x = self._attend(x.reshape(b, n * (s + 1), self.tdim))
        x = x.reshape(b, n, s + 1, self.tdim)[:, :, 1:].reshape(b, n * s, self.tdim)  # [B, Tp*S, C]
        mapped: Tensor = self.mapping(x.transpose(1, 2))
        return mapped[..., : t * s]  # [B, C_out, T*S]


class SAMEAutoencoder(nn.Module):
    """Audio `[B, 2, N]` <-> latents `[B, 256, N / 4096]` (SAME-S/L), names as diffusers' AutoencoderSAME."""

    def __init__(self, cfg: SAMEConfig) -> None:
        super().__init__()
        with warnings.catch_warnings():  # diffusers' weight-norm convs use torch's deprecated API
            warnings.simplefilter("ignore", FutureWarning)
            self._build(cfg)

    def _build(self, cfg: SAMEConfig) -> None:
        same = _diffusers_same()
        self.config = cfg
        self.patch_embed = same.PatchEmbed(cfg.patch_size)
        patched = cfg.audio_channels * cfg.patch_size
        enc, dec = cfg.encoder, cfg.decoder
        zeros = [0] * len(enc.strides)
        # diffusers' containers (their forward is block after block, then/after a linear
        # projection); the blocks inside are replaced by the release's (built empty first).
        self.encoder = same.SAMEEncoder(
            patched,
            enc.channels,
            list(enc.c_mults),
            list(enc.strides),
            zeros,
            cfg.latent_dim,
            sinusoidal_blocks=[0] * len(zeros),
        )
        ch = [patched] + enc.dims
        self.encoder.blocks = nn.ModuleList(
            SAMEResampler(ch[i], ch[i + 1], enc.strides[i], "encoder", enc.depths[i], enc, enc.sinusoidal_blocks[i])
            for i in range(len(enc.strides))
        )
        self.bottleneck = same.SoftNormBottleneck(cfg.latent_dim)
        self.decoder = same.SAMEDecoder(
            patched,
            dec.channels,
            list(dec.c_mults),
            list(dec.strides),
            [0] * len(dec.strides),
            cfg.latent_dim,
            sinusoidal_blocks=[0] * len(dec.strides),
        )
        ch = [patched] + dec.dims
        self.decoder.blocks = nn.ModuleList(
            SAMEResampler(ch[i + 1], ch[i], dec.strides[i], "decoder", dec.depths[i], dec, dec.sinusoidal_blocks[i])
            for i in range(len(dec.strides) - 1, -1, -1)
        )

    @property
    def downsampling_ratio(self) -> int:
        return self.config.downsampling_ratio

    def receptive_latents(self) -> int:
        """Latent frames either side that can change one latent's decoded samples (an upper bound)."""
        dec = self.config.decoder
        total = 0
        for lvl, depth in enumerate(dec.depths):
            if dec.sliding_window is not None:  # each layer reaches `window` segments further
                total += depth * max(dec.sliding_window)
            else:  # a chunk of c frames, then (shifted) another: 2c - 1 frames away at most
                c = dec.chunk_latents(lvl)
                total += 2 * c - 1 if dec.chunk_midpoint_shift else c - 1
        return total + (1 if dec.conv_mapping else 0)  # the kernel-3 mapping reaches one frame into a neighbour

    def encode(self, audio: Tensor) -> Tensor:
        """`[B, C, N]` audio -> `[B, latent_dim, ceil(N / ratio)]` latents (the bottleneck's output)."""
        x = self.patch_embed.encode(audio)  # [B, C*P, N/P]
        frames = x.shape[-1]
        x = self.encoder(x)
        latents: Tensor = self.bottleneck.encode(x)
        return latents[..., : -(-frames // math.prod(self.config.encoder.strides))]

    def decode_whole(self, latents: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """`[B, latent_dim, L]` -> `[B, C, L * ratio]` float32 in one pass (memory grows with L).
        `dtype` bfloat16 runs the decoder in bf16 throughout (`half_decoder`)."""
        x = self.bottleneck.decode(latents.float())
        if dtype in (None, torch.float32):
            x = self.decoder(x)
        else:
            x = self.half_decoder(dtype)(x.to(dtype)).float()
        audio: Tensor = self.patch_embed.decode(x)
        return torch.tanh(audio) if self.config.soft_clip else audio

    def half_decoder(self, dtype: torch.dtype) -> nn.Module:
        """A copy of the decoder with weights in `dtype`, made once and kept (not in the state dict).

        Measured on 30 s of SAME-S (2-core AVX512-BF16 EPYC, random weights): fp32 10.5 s, bf16
        autocast 6.1 s (44.7 dB SNR vs fp32), all-bf16 4.7 s (43.1 dB): autocast re-casts every
        weight and keeps a float32 residual stream, so most of its element-wise passes move twice
        the bytes. A bf16 residual costs 1.6 dB of SNR, far under what a listener hears.
        Rebuilt when the model has moved to another device; weights are frozen after loading."""
        cache: dict[torch.dtype, nn.Module] = self.__dict__.setdefault("_half_decoders", {})
        device = self.bottleneck.bias.device
        if dtype not in cache or next(cache[dtype].parameters()).device != device:
            with torch.device("meta"):
                shell = SAMEAutoencoder(self.config)
            state = {
                k: v.detach().to(dtype) if v.is_floating_point() else v for k, v in self.decoder.state_dict().items()
            }
            shell.decoder.load_state_dict(state, assign=True)
            reset_rope_buffers(shell.decoder)
            cache[dtype] = shell.decoder.to(device).eval().requires_grad_(False)
        return cache[dtype]

    def decode(
        self,
        latents: Tensor,
        window: int = 256,
        callback: DecodeCallback | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """`[B, latent_dim, L]` -> `[B, C, L * ratio]`, `window` latents at a time (plus context).

        Equal to `decode_whole` (tested); memory is that of one window. `callback` gets
        `{"i": k, "n": windows}` after each window and may raise to cancel."""
        length = latents.shape[-1]
        align = max(1, self.config.decoder.chunk_latents(0)) if self.config.decoder.sliding_window is None else 1
        context = -(-self.receptive_latents() // align) * align
        window = max(align, window // align * align)
        if length <= window + 2 * context:
            out = self.decode_whole(latents, dtype)
            if callback is not None:
                callback({"i": 1, "n": 1})
            return out
        ratio = self.downsampling_ratio
        starts = list(range(0, length, window))
        pieces = []
        for k, start in enumerate(starts):
            stop = min(start + window, length)
            lo, hi = max(0, start - context), min(length, stop + context)
            audio = self.decode_whole(latents[..., lo:hi], dtype)  # [B, C, (hi - lo) * ratio]
            pieces.append(audio[..., (start - lo) * ratio : (stop - lo) * ratio])
            if callback is not None:
                callback({"i": k + 1, "n": len(starts)})
        return torch.cat(pieces, dim=-1)


def reset_rope_buffers(module: nn.Module) -> None:
    """Recompute SAME's RoPE frequencies (non-persistent buffers, absent from every checkpoint),
    after a model built on the meta device was loaded with `assign=True`."""
    same = _diffusers_same()
    for m in module.modules():
        if isinstance(m, same.RotaryEmbedding):
            dim = m.inv_freq.numel() * 2
            m.inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))

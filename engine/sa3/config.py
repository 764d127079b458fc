"""Stable Audio 3 hyperparameters: one typed config for either release layout (parsed in `layouts.py`).

Two layouts are released for the same weights (see `engine/sa3/folder.py`):

- the original folder (`Stability-AI/stable-audio-3`'s own loader): `model_config.json` +
  `model.safetensors`, the T5Gemma encoder in a subfolder (`t5gemma-b-b-ul2/`);
- the diffusers folder: `model_index.json` + `transformer/`, `vae/`, `duration_embedder/`,
  `scheduler/`, `text_encoder/`, `tokenizer/`, each with a `config.json`.

Both parse (`layouts.py`) into the frozen dataclasses here; layers never see a dict. Defaults
are the released small models' (`sm-music` with SAME-S).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ConfigError

# The reference DiT's RMSNorm default (stable_audio_3/models/transformer.py `RMSNorm(eps=1e-5)`);
# diffusers' StableAudio3RMSNorm uses 1e-6. The release wins: blocks are built with this eps.
RELEASE_NORM_EPS = 1e-5
# Longest render per model size, from the repository README's model table (small 120 s,
# medium 380 s); only used where a layout does not say (`sample_size` in model_config.json).
MAX_SECONDS_SMALL, MAX_SECONDS_MEDIUM = 120.0, 380.0


@dataclass(frozen=True)
class SAMESide:
    """One half (encoder or decoder) of a SAME autoencoder: a stack of transformer resampling blocks.

    `sliding_window` (latents left, right) selects band attention (SAME-L); None selects the
    release's chunked attention over `chunk_size` fine frames, optionally with the second half of
    the layers on chunks shifted by half a chunk (`chunk_midpoint_shift`, SAME-S)."""

    channels: int = 128
    c_mults: tuple[int, ...] = (6,)
    strides: tuple[int, ...] = (16,)
    depths: tuple[int, ...] = (6,)
    sinusoidal_blocks: tuple[int, ...] = (0,)
    dim_heads: int = 64
    differential: bool = True
    ff_mult: float = 3.0
    sliding_window: tuple[int, int] | None = None
    chunk_size: int = 32
    chunk_midpoint_shift: bool = True
    conv_mapping: bool = False  # kernel-3 channel mapping (the SAME-S decoder) instead of kernel 1
    mapping_bias: bool = True

    @property
    def dims(self) -> list[int]:
        return [self.channels * m for m in self.c_mults]

    def chunk_latents(self, level: int = 0) -> int:
        """Coarse frames per attention chunk at `level` (chunked attention only)."""
        return self.chunk_size // self.strides[level]


@dataclass(frozen=True)
class SAMEConfig:
    audio_channels: int = 2
    patch_size: int = 256
    latent_dim: int = 256
    encoder: SAMESide = field(default_factory=SAMESide)
    decoder: SAMESide = field(default_factory=lambda: SAMESide(conv_mapping=True))
    soft_clip: bool = False
    auto_scale: bool = True  # the bottleneck holds a running_std (SAME-S/L: yes)
    sample_rate: int = 44100

    @property
    def downsampling_ratio(self) -> int:
        return self.patch_size * math.prod(self.encoder.strides)

    @property
    def latent_align(self) -> int:
        """Latent lengths are rounded up to this many frames (the reference's `_adapt_sample_size`:
        `chunk_size // strides[0]` of the encoder, whatever its attention)."""
        return max(1, self.encoder.chunk_size // self.encoder.strides[0])


@dataclass(frozen=True)
class SA3DiTConfig:
    """The SA3 DiT; defaults are `sm-music` (1024 wide x 20 deep, 16 heads, 64 memory tokens)."""

    io_channels: int = 256
    embed_dim: int = 1024
    depth: int = 20
    num_heads: int = 16
    cond_token_dim: int = 768
    global_cond_dim: int = 768
    local_add_cond_dim: int = 257  # 0: no inpainting input
    timestep_features_dim: int = 256
    ff_mult: float = 4.0
    num_memory_tokens: int = 64
    differential: bool = False  # sm-music/sm-sfx: plain attention; medium: differential
    patch_size: int = 1
    norm_eps: float = RELEASE_NORM_EPS

    @property
    def dim_heads(self) -> int:
        return self.embed_dim // self.num_heads


@dataclass(frozen=True)
class SA3TextConfig:
    model_name: str = "google/t5gemma-b-b-ul2"
    max_length: int = 256
    padding_mode: str = "learned"  # learned | zero | none (the reference's PaddingMode)
    subfolder: str = "t5gemma-b-b-ul2"  # where the original layout keeps the encoder


@dataclass(frozen=True)
class SA3DurationConfig:
    """The `seconds_total` number conditioner (diffusers' StableAudio3DurationEmbedder)."""

    min_val: float = 0.0
    max_val: float = 384.0
    fourier_dim: int = 256


@dataclass(frozen=True)
class SA3Config:
    layout: str  # "original" | "diffusers"
    sample_rate: int
    audio_channels: int
    max_seconds: float
    dit: SA3DiTConfig
    same: SAMEConfig
    text: SA3TextConfig
    duration: SA3DurationConfig
    objective: str = "rf_denoiser"  # distilled (ping-pong); "rectified_flow" for base checkpoints
    inpaint: bool = True  # the DiT takes [mask, masked latents] as local conditioning
    default_steps: int = 8
    logsnr_min: float = -6.2
    logsnr_max: float = 2.0

    @property
    def window_seconds(self) -> float:
        """The longest render (one window), under the name `engine.config.ModelConfig` gives it."""
        return self.max_seconds

    @property
    def latent_rate(self) -> float:
        return self.sample_rate / self.same.downsampling_ratio

    @property
    def distilled(self) -> bool:
        return self.objective == "rf_denoiser"


def check_same_side(side: SAMESide, where: str) -> SAMESide:
    n = len(side.c_mults)
    if not (len(side.strides) == len(side.depths) == len(side.sinusoidal_blocks) == n) or n == 0:
        raise ConfigError(
            f"{where}: c_mults, strides, transformer_depths and sinusoidal_blocks need one entry per level"
        )
    if side.sliding_window is None:
        for lvl, s in enumerate(side.strides):
            if side.chunk_size % s:
                raise ConfigError(f"{where}: chunk_size {side.chunk_size} is not a multiple of stride {s}")
            if side.chunk_midpoint_shift and side.chunk_latents(lvl) % 2:
                raise ConfigError(
                    f"{where}: chunk_midpoint_shift needs an even number of frames per chunk "
                    f"(chunk_size/stride = {side.chunk_latents(lvl)})"
                )
    return side


def default_max_seconds(dit: SA3DiTConfig) -> float:
    return MAX_SECONDS_SMALL if dit.embed_dim <= 1024 else MAX_SECONDS_MEDIUM

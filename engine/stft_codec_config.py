"""The STFT codec's configuration (issue 19), torch-free so `engine.config` parses a model folder
without loading torch. The modules are `engine/stft_codec.py`; `docs/codec.md` says why a
frame-domain codec replaced the Oobleck autoencoder in longplay-mini v2.

In a `diffusion_cond` config it is the pretransform `{"type": "stft_codec", "config": {...}}`; an
autoencoder folder of its own has `"model_type": "stft_codec"` and the same block as `model`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

PRETRANSFORM_TYPE = "stft_codec"


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
    phase_lock: bool = False  # decode with `lock_phase` (shipped models: true)
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
    scale: float = 1.0  # the DiT sees latents / scale (the pretransform's, as the Oobleck's)

    @property
    def hop(self) -> int:
        return self.frame_hop * self.down

    # The names the rest of the engine reads off any pretransform config.
    @property
    def downsampling_ratio(self) -> int:
        return self.hop

    @property
    def io_channels(self) -> int:
        return self.channels

    def to_json(self) -> dict[str, Any]:
        """The config block, with the derived `downsampling_ratio` and `io_channels` written out
        (tools that read any pretransform block find them where stable-audio-tools puts them)."""
        out = dataclasses.asdict(self)
        out.update(downsampling_ratio=self.downsampling_ratio, io_channels=self.io_channels)
        return out


_FIELDS = {f.name: f for f in dataclasses.fields(STFTCodecConfig)}


def parse_stft_codec(cfg: Mapping[str, Any], section: str = "pretransform.config") -> STFTCodecConfig:
    """A config block (`to_json`'s shape; absent fields take their defaults) -> the config, or a
    ConfigError naming the bad key."""
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{section} must be an object")
    unknown = sorted(set(cfg) - set(_FIELDS) - {"downsampling_ratio", "io_channels", "sample_rate"})
    if unknown:
        raise ConfigError(f"{section}: unknown key(s) {unknown} for an stft_codec")
    values: dict[str, Any] = {}
    for name, value in cfg.items():
        if name not in _FIELDS:
            continue
        kind = type(_FIELDS[name].default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not kind:
            raise ConfigError(f"{section}.{name} must be {kind.__name__}, got {value!r}")
        values[name] = value
    out = STFTCodecConfig(**values)
    for name in ("channels", "latent_dim", "dim", "enc_fft", "dec_fft", "frame_hop", "down"):
        if getattr(out, name) < 1:
            raise ConfigError(f"{section}.{name} must be at least 1, got {getattr(out, name)}")
    if out.if_bins < 0 or out.if_bins > out.enc_fft // 2 + 1:
        raise ConfigError(f"{section}.if_bins must be 0-{out.enc_fft // 2 + 1}, got {out.if_bins}")
    if out.dec_fft < 2 * out.frame_hop:
        raise ConfigError(f"{section}: dec_fft {out.dec_fft} must be at least twice frame_hop {out.frame_hop}")
    if not out.scale > 0:
        raise ConfigError(f"{section}.scale must be positive, got {out.scale}")
    for key, want in (("downsampling_ratio", out.downsampling_ratio), ("io_channels", out.io_channels)):
        if key in cfg and cfg[key] != want:
            raise ConfigError(f"{section}.{key} is {cfg[key]!r}, but the codec's fields give {want}")
    return out

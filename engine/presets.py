"""Small model configs built in memory: the `debug` model tests and examples run on.

They are real `model_config.json` dicts (stable-audio-tools format), so everything downstream
(save, load, render) is exercised exactly as with a released model, only smaller.
"""

from __future__ import annotations

import copy
from typing import Any

# The key token (`conditioners.KeyConditioner`): reads the key the prompt names.
KEY_CONDITIONER: dict[str, Any] = {"id": "key", "type": "longplay_key", "config": {"source": "prompt"}}


def tiny_config(
    window_seconds: float = 2.0,
    sample_rate: int = 44100,
    text: str = "longplay_text",
    embed_dim: int = 64,
    depth: int = 2,
    key: bool = False,
) -> dict[str, Any]:
    """A model of a few hundred kB: hop 256 (172 latent frames/s), DiT 64 wide, byte text encoder
    (`key`: plus the key token, `KEY_CONDITIONER`)."""
    hop = 256
    frames = max(1, int(round(window_seconds * sample_rate / hop)))
    cond_dim = 32
    prompt: dict[str, Any] = (
        {"id": "prompt", "type": "longplay_text", "config": {"max_length": 32, "width": 32, "depth": 1, "num_heads": 2}}
        if text == "longplay_text"
        else {"id": "prompt", "type": "t5", "config": {"t5_model_name": "t5-small", "max_length": 16}}
    )
    if text != "longplay_text":
        cond_dim = 512
    keyed = [KEY_CONDITIONER] if key else []
    return copy.deepcopy(
        {
            "model_type": "diffusion_cond",
            "sample_size": frames * hop,
            "sample_rate": sample_rate,
            "audio_channels": 2,
            "model": {
                "pretransform": {
                    "type": "autoencoder",
                    "iterate_batch": True,
                    "config": {
                        "encoder": {
                            "type": "oobleck",
                            "config": {
                                "in_channels": 2,
                                "channels": 4,
                                "c_mults": [1, 2, 2],
                                "strides": [4, 8, 8],
                                "latent_dim": 16,
                                "use_snake": True,
                            },
                        },
                        "decoder": {
                            "type": "oobleck",
                            "config": {
                                "out_channels": 2,
                                "channels": 4,
                                "c_mults": [1, 2, 2],
                                "strides": [4, 8, 8],
                                "latent_dim": 8,
                                "use_snake": True,
                                "final_tanh": False,
                            },
                        },
                        "bottleneck": {"type": "vae"},
                        "latent_dim": 8,
                        "downsampling_ratio": hop,
                        "io_channels": 2,
                    },
                },
                "conditioning": {
                    "configs": [
                        prompt,
                        {"id": "seconds_start", "type": "number", "config": {"min_val": 0, "max_val": 512}},
                        {"id": "seconds_total", "type": "number", "config": {"min_val": 0, "max_val": 512}},
                        *keyed,
                    ],
                    "cond_dim": cond_dim,
                },
                "diffusion": {
                    "cross_attention_cond_ids": ["prompt", "seconds_start", "seconds_total", *(c["id"] for c in keyed)],
                    "global_cond_ids": ["seconds_start", "seconds_total"],
                    "type": "dit",
                    "config": {
                        "io_channels": 8,
                        "embed_dim": embed_dim,
                        "depth": depth,
                        "num_heads": 2,
                        "cond_token_dim": cond_dim,
                        "global_cond_dim": 2 * cond_dim,
                        "project_cond_tokens": False,
                        "transformer_type": "continuous_transformer",
                        **({"add_last_cond_token": True} if key else {}),
                    },
                },
                "io_channels": 8,
            },
        }
    )


def sao_small_like_config() -> dict[str, Any]:
    """Stable Audio Open Small's architecture as far as it is public: DiT 1024 wide x 16 deep,
    8 heads, projected cond tokens, LayerNorm on q/k, `seconds_total` only, rf_denoiser objective
    (8-step ping-pong sampling), 524288-sample window. Used to check the variant builds and runs."""
    cfg = tiny_config()
    cfg["sample_size"] = 524288
    cfg["model"]["pretransform"]["config"] = {
        "encoder": {
            "type": "oobleck",
            "config": {
                "in_channels": 2,
                "channels": 128,
                "c_mults": [1, 2, 4, 8, 16],
                "strides": [2, 4, 4, 8, 8],
                "latent_dim": 128,
                "use_snake": True,
            },
        },
        "decoder": {
            "type": "oobleck",
            "config": {
                "out_channels": 2,
                "channels": 128,
                "c_mults": [1, 2, 4, 8, 16],
                "strides": [2, 4, 4, 8, 8],
                "latent_dim": 64,
                "use_snake": True,
                "final_tanh": False,
            },
        },
        "bottleneck": {"type": "vae"},
        "latent_dim": 64,
        "downsampling_ratio": 2048,
        "io_channels": 2,
    }
    cfg["model"]["conditioning"] = {
        "configs": [
            {"id": "prompt", "type": "t5", "config": {"t5_model_name": "t5-base", "max_length": 64}},
            {"id": "seconds_total", "type": "number", "config": {"min_val": 0, "max_val": 256}},
        ],
        "cond_dim": 768,
    }
    cfg["model"]["diffusion"] = {
        "cross_attention_cond_ids": ["prompt", "seconds_total"],
        "global_cond_ids": ["seconds_total"],
        "diffusion_objective": "rf_denoiser",
        "type": "dit",
        "config": {
            "io_channels": 64,
            "embed_dim": 1024,
            "depth": 16,
            "num_heads": 8,
            "cond_token_dim": 768,
            "global_cond_dim": 768,
            "project_cond_tokens": True,
            "transformer_type": "continuous_transformer",
            "attn_kwargs": {"qk_norm": "ln"},
        },
    }
    cfg["model"]["io_channels"] = 64
    return cfg


def mini_autoencoder_config(
    channels: int = 32,
    c_mults: tuple[int, ...] = (1, 2, 4, 8),
    strides: tuple[int, ...] = (4, 4, 4, 8),
    latent_dim: int = 32,
    patch_size: int = 4,
) -> dict[str, Any]:
    """A small Oobleck at the paper's 21.5 Hz latent rate (hop 2048 at 44.1 kHz) for CPU training.

    `patch_size` folds that many samples into channels first (stable-audio-tools' "patched"
    pretransform), so no layer runs at the audio rate. Measured here (1 thread, 10 s of audio):
    ch16 strides 2-4-4-8-8 unpatched encodes at 0.16 s/s and decodes at 0.18 s/s; patch 4 with
    ch32 strides 4-4-4-8 at 0.08 / 0.06 s/s with more parameters (2.4 M vs 2.0 M).
    """
    hop = patch_size
    for s in strides:
        hop *= s
    side = {"channels": channels, "c_mults": list(c_mults), "strides": list(strides), "use_snake": True}
    io = 2
    raw: dict[str, Any] = {
        "encoder": {
            "type": "oobleck",
            "config": {"in_channels": io * patch_size, "latent_dim": 2 * latent_dim, **side},
        },
        "decoder": {
            "type": "oobleck",
            "config": {"out_channels": io * patch_size, "latent_dim": latent_dim, "final_tanh": False, **side},
        },
        "bottleneck": {"type": "vae"},
        "latent_dim": latent_dim,
        "downsampling_ratio": hop,
        "io_channels": io,
    }
    if patch_size > 1:
        raw["pretransform"] = {"type": "patched", "config": {"channels": io, "patch_size": patch_size}}
    return raw


def diffusion_config(
    ae_raw: dict[str, Any],
    window_seconds: float = 190.0,
    embed_dim: int = 256,
    depth: int = 8,
    num_heads: int = 4,
    text_width: int = 256,
    text_depth: int = 2,
    text_max_length: int = 96,
    attn_window: int = 0,
    global_layers: tuple[int, ...] = (),
    sample_rate: int = 44100,
    patch_size: int = 1,
    beat_phase: bool = False,
    pretransform_type: str = "autoencoder",
    key: bool = False,
) -> dict[str, Any]:
    """A `diffusion_cond` config around a trained autoencoder (`pretransform_type` "autoencoder",
    an Oobleck, or "stft_codec"), with our byte-level text encoder.
    `patch_size` latent frames make one DiT token; the window is rounded up to whole tokens;
    `beat_phase` adds the tempo-grid input (see `DiTConfig.beat_phase`); `key` a token for the key
    the prompt names (`conditioners.KeyConditioner`), read by cross-attention and added to every
    DiT token (`DiTConfig.add_last_cond_token`)."""
    hop = int(ae_raw["downsampling_ratio"])
    frames = -(-int(round(window_seconds * sample_rate / hop)) // patch_size) * patch_size
    cond_dim = embed_dim
    dit: dict[str, Any] = {
        "io_channels": ae_raw["latent_dim"],
        "embed_dim": embed_dim,
        "depth": depth,
        "num_heads": num_heads,
        "cond_token_dim": cond_dim,
        "global_cond_dim": 2 * cond_dim,
        "project_cond_tokens": False,
        "transformer_type": "continuous_transformer",
    }
    if attn_window:
        dit.update(attn_window=attn_window, global_layers=list(global_layers))
    if patch_size > 1:
        dit["patch_size"] = patch_size
    if beat_phase:
        dit["beat_phase"] = True
    keyed = [copy.deepcopy(KEY_CONDITIONER)] if key else []  # a config of its own, as ae_raw below
    if key:  # the key token is the last cross-attention token; it is also added to every DiT token
        dit["add_last_cond_token"] = True
    return {
        "model_type": "diffusion_cond",
        "sample_size": frames * hop,
        "sample_rate": sample_rate,
        "audio_channels": 2,
        "model": {
            "pretransform": {"type": pretransform_type, "iterate_batch": True, "config": copy.deepcopy(ae_raw)},
            "conditioning": {
                "configs": [
                    {
                        "id": "prompt",
                        "type": "longplay_text",
                        "config": {
                            "max_length": text_max_length,
                            "width": text_width,
                            "depth": text_depth,
                            "num_heads": max(1, text_width // 64),
                        },
                    },
                    {"id": "seconds_start", "type": "number", "config": {"min_val": 0, "max_val": 512}},
                    {"id": "seconds_total", "type": "number", "config": {"min_val": 0, "max_val": 512}},
                    *keyed,
                ],
                "cond_dim": cond_dim,
            },
            "diffusion": {
                "cross_attention_cond_ids": ["prompt", "seconds_start", "seconds_total", *(c["id"] for c in keyed)],
                "global_cond_ids": ["seconds_start", "seconds_total"],
                "type": "dit",
                "diffusion_objective": "v",
                "config": dit,
            },
            "io_channels": ae_raw["latent_dim"],
        },
    }

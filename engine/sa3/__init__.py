"""Stable Audio 3 in the engine: SAME autoencoders, the SA3 DiT, T5Gemma, ping-pong sampling, inpainting.

    from engine.sa3 import load_sa3
    model = load_sa3("path/to/stable-audio-3-small-music")       # either release layout
    audio = model.generate("warm analog house, 124 BPM", seconds=30, seed=1)   # [2, N] float32, 44.1 kHz

Importing this package is cheap (no diffusers, no transformers): `is_sa3_folder` and
`read_sa3_config` only read JSON. diffusers and transformers are imported when a model is built.
Which parts are diffusers' classes and which are ours, and why: `docs/sa3.md`.
"""

from __future__ import annotations

from .config import SA3Config, SA3DiTConfig, SAMEConfig, SAMESide
from .folder import DIFFUSERS, ORIGINAL, build_empty, detect_layout, is_sa3_folder, load_sa3, read_sa3_config
from .layouts import is_sa3_config, parse_diffusers, parse_original
from .model import HEADROOM_SECONDS, PromptEmbedding, SA3Model
from .sampling import SA3Conditioning, SA3Denoiser, apg_project, sa3_sigmas, sample, sample_pingpong

__all__ = [
    "DIFFUSERS",
    "HEADROOM_SECONDS",
    "ORIGINAL",
    "PromptEmbedding",
    "SA3Conditioning",
    "SA3Config",
    "SA3DiTConfig",
    "SA3Denoiser",
    "SA3Model",
    "SAMEConfig",
    "SAMESide",
    "apg_project",
    "build_empty",
    "detect_layout",
    "is_sa3_config",
    "is_sa3_folder",
    "load_sa3",
    "parse_diffusers",
    "parse_original",
    "read_sa3_config",
    "sa3_sigmas",
    "sample",
    "sample_pingpong",
]

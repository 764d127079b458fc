"""Longplay's engine: the public API. Everything torch lives behind these names.

Doors (bridge/, CLI) import only from here:

    model = load_model("longplay-mini")            # or a folder path
    gen = Generator(model)                          # picks CUDA / MPS / CPU
    results = gen.render(RenderRequest(prompt="warm analog house", seconds=30), on_progress, cancel)
"""

from __future__ import annotations

from .audio_io import fade_edges, load_audio, write_audio_atomic, write_json_atomic
from .checkpoint import (ModelInfo, find_models, load_model, model_search_paths, read_config, resolve_model, save_model,
                         trained_latents)
from .config import ModelConfig, parse_model_config
from .data import build_corpus
from .devices import pick_device
from .errors import (AudioInputError, ConfigError, EngineError, ModelLoadError, RenderCancelled,
                     RequestError, TextEncoderMissingError)
from .model import ConditionedDiffusionModel, build_model
from .waveform import peaks, waveform_png
from .presets import diffusion_config, mini_autoencoder_config, tiny_config
from .training.autoencoder import AETrainConfig, autoencoder_config, load_autoencoder, train_autoencoder
from .training.diffusion import DiTTrainConfig, encode_corpus, package_model, train_dit
from .pipeline import Generator, Progress, RenderRequest, RenderResult, model_defaults
from .sampling import SAMPLERS
from .evaluation import run_eval

__all__ = [
    "peaks", "waveform_png",
    "AETrainConfig", "DiTTrainConfig", "autoencoder_config", "diffusion_config", "encode_corpus", "load_autoencoder",
    "mini_autoencoder_config", "package_model", "train_autoencoder", "train_dit",
    "build_corpus",
    "AudioInputError", "ConditionedDiffusionModel", "ConfigError", "EngineError", "Generator",
    "fade_edges",
    "ModelConfig", "ModelInfo", "ModelLoadError", "Progress", "RenderCancelled", "RenderRequest",
    "RenderResult", "RequestError", "SAMPLERS", "TextEncoderMissingError", "build_model",
    "find_models", "load_audio", "load_model", "model_defaults", "model_search_paths",
    "parse_model_config", "pick_device", "read_config", "tiny_config", "resolve_model", "save_model", "trained_latents",
    "write_audio_atomic",
    "write_json_atomic",
    "run_eval",
]

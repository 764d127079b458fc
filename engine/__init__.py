"""Longplay's engine: the public API. Everything torch lives behind these names.

Doors (bridge/, CLI) import only from here. The lab (corpus, training, evaluation) is the `lab`
package beside this one: it imports the engine, never the other way, so `import engine` stays the
runtime alone (no mido, pedalboard or auraloss; tests/test_rooms.py reads sys.modules).

    model = load_model("longplay-mini")            # or a folder path
    gen = Generator(model)                          # picks CUDA / MPS / CPU
    results = gen.render(RenderRequest(prompt="warm analog house", seconds=30), on_progress, cancel)
"""

from __future__ import annotations

from .audio_io import fade_edges, load_audio, write_audio_atomic, write_json_atomic
from .checkpoint import (ModelInfo, find_models, load_model, model_search_paths, read_config, resolve_model, save_model,
                         trained_latents)
from .config import ModelConfig, parse_model_config
from .devices import pick_device
from .errors import (AudioInputError, AudioNotFound, ConfigError, EngineError, ModelLoadError, RenderCancelled,
                     RequestError, RequestTooLong, TextEncoderMissingError)
from .model import ConditionedDiffusionModel, build_model
from .waveform import peaks, waveform_png
from .presets import diffusion_config, mini_autoencoder_config, tiny_config
from .pipeline import Generator, Progress, RenderRequest, RenderResult, model_defaults
from .sampling import SAMPLERS

__all__ = [
    "peaks", "waveform_png",
    "diffusion_config", "mini_autoencoder_config",
    "AudioInputError", "AudioNotFound", "ConditionedDiffusionModel", "ConfigError", "EngineError", "Generator",
    "fade_edges",
    "ModelConfig", "ModelInfo", "ModelLoadError", "Progress", "RenderCancelled", "RenderRequest",
    "RenderResult", "RequestError", "RequestTooLong", "SAMPLERS", "TextEncoderMissingError", "build_model",
    "find_models", "load_audio", "load_model", "model_defaults", "model_search_paths",
    "parse_model_config", "pick_device", "read_config", "tiny_config", "resolve_model", "save_model", "trained_latents",
    "write_audio_atomic",
    "write_json_atomic",
]

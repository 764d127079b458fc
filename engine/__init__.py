"""Longplay's engine: the public API. Everything torch lives behind these names.

Doors (bridge/, CLI) import only from here. The names load on first use (PEP 562): `from engine
import LIMITS` costs no torch, so the CLI checks its arguments against the one table of limits in
milliseconds, and `import engine` alone loads nothing heavy. The lab (corpus, training, evaluation) is the `lab`
package beside this one: it imports the engine, never the other way, so `import engine` stays the
runtime alone (no mido, pedalboard or auraloss; tests/test_rooms.py reads sys.modules).

    model = load_model("longplay-mini")            # or a folder path
    gen = Generator(model)                          # picks CUDA / MPS / CPU
    results = gen.render(RenderRequest(prompt="warm analog house", seconds=30), on_progress, cancel)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # `name as name`: an explicit re-export (PEP 484), so type checkers see these as the public API
    from .audio_io import (
        MAX_SOURCE_SECONDS as MAX_SOURCE_SECONDS,
        SOURCE_RATE_RANGE as SOURCE_RATE_RANGE,
        fade_edges as fade_edges,
        file_sha256 as file_sha256,
        load_audio as load_audio,
        source_limits_error as source_limits_error,
        write_audio_atomic as write_audio_atomic,
        write_json_atomic as write_json_atomic,
    )
    from .checkpoint import (
        ModelInfo as ModelInfo,
        find_models as find_models,
        load_model as load_model,
        model_search_paths as model_search_paths,
        read_config as read_config,
        resolve_model as resolve_model,
        save_model as save_model,
        trained_latents as trained_latents,
    )
    from .config import (
        ModelConfig as ModelConfig,
        parse_model_config as parse_model_config,
    )
    from .devices import (
        pick_device as pick_device,
    )
    from .errors import (
        AudioInputError as AudioInputError,
        AudioNotFound as AudioNotFound,
        ConfigError as ConfigError,
        EngineError as EngineError,
        ModelLoadError as ModelLoadError,
        RenderCancelled as RenderCancelled,
        RequestError as RequestError,
        RequestTooLong as RequestTooLong,
        TextEncoderMissingError as TextEncoderMissingError,
    )
    from .limits import (
        DEFAULT_STRENGTH as DEFAULT_STRENGTH,
        LIMITS as LIMITS,
        MAX_SEED as MAX_SEED,
        MAX_VARIATIONS as MAX_VARIATIONS,
        Bound as Bound,
    )
    from .model import (
        ConditionedDiffusionModel as ConditionedDiffusionModel,
        build_model as build_model,
    )
    from .pipeline import (
        Generator as Generator,
        model_defaults as model_defaults,
    )
    from .presets import (
        diffusion_config as diffusion_config,
        mini_autoencoder_config as mini_autoencoder_config,
        tiny_config as tiny_config,
    )
    from .request import (
        Progress as Progress,
        RenderRequest as RenderRequest,
        RenderResult as RenderResult,
        prompt_bpm as prompt_bpm,
    )
    from .sa3 import (
        SA3Model as SA3Model,
    )
    from .sampling import (
        SAMPLERS as SAMPLERS,
    )
    from .waveform import (
        peaks as peaks,
        waveform_png as waveform_png,
    )

# public name -> the module (in this package) that defines it
_EXPORTS: dict[str, str] = {
    "AudioInputError": "errors",
    "AudioNotFound": "errors",
    "Bound": "limits",
    "ConditionedDiffusionModel": "model",
    "ConfigError": "errors",
    "EngineError": "errors",
    "Generator": "pipeline",
    "LIMITS": "limits",
    "DEFAULT_STRENGTH": "limits",
    "MAX_SEED": "limits",
    "MAX_SOURCE_SECONDS": "audio_io",
    "MAX_VARIATIONS": "limits",
    "ModelConfig": "config",
    "ModelInfo": "checkpoint",
    "ModelLoadError": "errors",
    "Progress": "request",
    "RenderCancelled": "errors",
    "RenderRequest": "request",
    "RenderResult": "request",
    "RequestError": "errors",
    "RequestTooLong": "errors",
    "SA3Model": "sa3",
    "SAMPLERS": "sampling",
    "SOURCE_RATE_RANGE": "audio_io",
    "TextEncoderMissingError": "errors",
    "build_model": "model",
    "diffusion_config": "presets",
    "fade_edges": "audio_io",
    "find_models": "checkpoint",
    "load_audio": "audio_io",
    "load_model": "checkpoint",
    "mini_autoencoder_config": "presets",
    "model_defaults": "pipeline",
    "model_search_paths": "checkpoint",
    "parse_model_config": "config",
    "peaks": "waveform",
    "prompt_bpm": "request",
    "pick_device": "devices",
    "read_config": "checkpoint",
    "resolve_model": "checkpoint",
    "save_model": "checkpoint",
    "source_limits_error": "audio_io",
    "tiny_config": "presets",
    "trained_latents": "checkpoint",
    "waveform_png": "waveform",
    "write_audio_atomic": "audio_io",
    "write_json_atomic": "audio_io",
    "file_sha256": "audio_io",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # next time a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

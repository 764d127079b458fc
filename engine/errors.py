"""Typed engine errors. Each carries a message a person can act on."""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class ModelLoadError(EngineError):
    """A model folder, config or checkpoint cannot be turned into a working model."""


class ConfigError(ModelLoadError):
    """A `model_config.json` asks for something this engine does not build."""


class TextEncoderMissingError(ModelLoadError):
    """The config needs a text encoder (e.g. T5) whose weights are not on this machine."""


class AudioInputError(EngineError):
    """An init/source audio file is missing, unreadable, empty or not audio."""


class AudioNotFound(AudioInputError):
    """The init/source audio file does not exist."""


class RequestError(EngineError):
    """A render request has a value outside what the model can do."""


class RequestTooLong(RequestError):
    """A render request asks for more seconds than the model renders (or than audio-to-audio may)."""


class LoRAError(RequestError):
    """A LoRA file asked for is missing, unreadable, or does not fit the loaded model (or the model
    takes no LoRA)."""


class RenderCancelled(EngineError):
    """The render was cancelled between two sampler steps."""

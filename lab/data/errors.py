"""Typed errors of the data generator, each with a reason a person can act on."""

from __future__ import annotations

from engine.errors import EngineError


class DataError(EngineError):
    """Base class of errors raised while making training data."""


class SynthMissingError(DataError):
    """FluidSynth or a General MIDI soundfont is not installed where we look."""


class SynthFailedError(DataError):
    """FluidSynth ran but did not produce the audio it was asked for."""


class CorpusBuildError(DataError):
    """A corpus folder cannot be built or resumed (bad arguments, foreign files, disk)."""

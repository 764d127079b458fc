"""Typed training errors: a run asked for something it cannot do, with a reason a person can act on."""

from __future__ import annotations

from engine.errors import EngineError


class TrainingError(EngineError):
    """A training option, or a combination of options, that cannot be carried out."""

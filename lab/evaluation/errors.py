"""Typed errors of the evaluation suite, each with a reason a person can act on."""

from __future__ import annotations

from engine.errors import EngineError


class EvaluationError(EngineError):
    """Base class of errors raised while evaluating a model."""


class EvalDependencyError(EvaluationError):
    """An optional library (the `eval` extra) or a system tool (espeak-ng) is not installed."""


def require(module: str) -> None:
    """Raise `EvalDependencyError` naming the install command when `module` cannot be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise EvalDependencyError(
            f"the evaluation suite needs {module!r}: install the eval extra with "
            f"`pip install -e '.[eval]'` (librosa, mir_eval, matplotlib)"
        )

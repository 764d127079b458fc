"""The level renders leave the doors at (CLI, OSC, drop folder, app), and its one parser.

Kept apart from `requests` so the CLI can name the default without loading torch (`engine.LIMITS`
is torch-free).
"""

from __future__ import annotations

import math
from typing import Any

from engine import LIMITS

from .errors import UsageError

# Renders leave every door at -14 LUFS integrated (ITU-R BS.1770), peaks under -1 dBFS: auditioned
# variations compare at one level and land in a DAW near where mixes sit. "off" keeps the model's
# own level (the engine's default, as Stable Audio samples).
DEFAULT_LOUDNESS = -14.0
LOUDNESS_RANGE = (LIMITS["loudness"].lo, LIMITS["loudness"].hi)
OFF = ("off", "none")


def parse_loudness(value: Any, key: str = "loudness") -> float | None:
    """A target in LUFS within LOUDNESS_RANGE (a number, or text such as "-16"), or "off" /
    "none" / null for the model's own level (None). `UsageError` names `key` otherwise."""
    if value is None or (isinstance(value, str) and value.strip().lower() in OFF):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise UsageError(f'{key} must be a number of LUFS or "off" (got {value!r})') from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f'{key} must be a finite number of LUFS or "off" (got {value!r})')
    lo, hi = LOUDNESS_RANGE
    if not lo <= value <= hi:
        raise UsageError(f"{key} must be between {lo:g} and {hi:g} LUFS (got {value:g})")
    return float(value)

"""The one table of what a render request may ask: every door (CLI, OSC, drop folder, the app's
form) and the engine itself check against `LIMITS`, and `docs/osc.md`'s key table is held to it by
a test (`tests/bridge/test_limits.py`). A limit changes here and nowhere else.

Lengths (`seconds`, `bars` at a `bpm`) are not here: they depend on the loaded model's window and
whether its windows can continue each other (`Generator.max_seconds`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class Bound:
    """An inclusive range; `integer` values must be whole numbers. `unit` is for messages."""

    lo: float
    hi: float
    integer: bool = False
    unit: str = ""

    def contains(self, value: float) -> bool:
        return (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and self.lo <= value <= self.hi
            and (not self.integer or float(value).is_integer())
        )

    def describe(self) -> str:
        """The bound in words ("between 1 and 500"), as every door's error message says it."""
        lo, hi = (int(self.lo), int(self.hi)) if self.integer else (f"{self.lo:g}", f"{self.hi:g}")
        return f"between {lo} and {hi}" + (f" {self.unit}" if self.unit else "")


MAX_VARIATIONS = 16
# Audio-to-audio's strength when a request names none, at every door. 0.8, not 0.7: on the held-out
# beatbox set (issue 20; `scripts/measure_groove.py`, 2 x 24 renders) onset F1 0.871 vs 0.820,
# both with the source heard (engine/groove.py); kits apart 6.6 dB vs 5.7 dB.
DEFAULT_STRENGTH = 0.8
MAX_LORAS = 4  # LoRA files stacked on one render (Stable Audio 3 models)
LIMITS: Mapping[str, Bound] = MappingProxyType(
    {
        "steps": Bound(1, 500, integer=True),
        "cfg": Bound(0, 25),
        "cfg_rescale": Bound(0, 1),
        "key_cfg": Bound(0, 25),
        "bpm": Bound(20, 300, unit="BPM"),
        "bars": Bound(1, 512, integer=True),
        "beats_per_bar": Bound(1, 32, integer=True),
        "variations": Bound(1, MAX_VARIATIONS, integer=True),
        # Variation i renders with seed + i, so the last seed a request may name leaves room for them.
        "seed": Bound(0, MAX_SEED - MAX_VARIATIONS, integer=True),
        "strength": Bound(0, 1),
        # A click guard, not a musical fade: 100 ms is already audible as one.
        "fade_ms": Bound(0, 100, unit="ms"),
        "loudness": Bound(-60, 0, unit="LUFS"),
        "prompt": Bound(1, 1000, integer=True, unit="characters"),
        "name": Bound(1, 64, integer=True, unit="characters"),
        # A LoRA file's strength (the release's UI range: 0 disables it, above 1 amplifies it).
        "lora_scale": Bound(0, 10),
        "loras": Bound(0, MAX_LORAS, integer=True, unit="files"),
    }
)

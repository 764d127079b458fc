"""diffusers, imported when a Stable Audio 3 model is built (never by `import engine`).

diffusers holds the SA3 DiT, the SAME modules and the duration embedder this package builds on
(`docs/sa3.md`); importing it takes seconds, so only building a model pays for it, and a machine
without it gets a ModelLoadError that says what to install instead of an ImportError.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import ModelLoadError

DIFFUSERS_MIN = "0.42"


def diffusers_module(name: str) -> ModuleType:
    """`diffusers.<name>`, or a ModelLoadError naming the package to install."""
    try:
        return importlib.import_module(f"diffusers.{name}")
    except ImportError as exc:
        raise ModelLoadError(
            f"Stable Audio 3 models need the diffusers package (>= {DIFFUSERS_MIN}, with its "
            f"StableAudio3 classes): pip install 'diffusers>={DIFFUSERS_MIN}' ({exc})"
        ) from exc

"""Output file names and recipe sidecars, shared by every door that writes renders.

Names follow the drop-folder contract of DESIGN.md: ``<name>_<bpm>bpm_<bars>bar_s<seed>_v<n>.wav``
(``<name>_s<seed>_v<n>.wav`` when no tempo grid was asked for). Existing files are never overwritten.
"""

from __future__ import annotations

import re
from pathlib import Path

AUDIO_SUFFIXES = (".wav", ".flac")


def slug(text: str, max_len: int = 40) -> str:
    """A filesystem-safe lowercase name from a prompt: ``"Dusty Lo-fi, 90s!"`` → ``dusty-lo-fi-90s``."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:max_len].rstrip("-") or "render"


def _num(x: float) -> str:
    return f"{x:g}"


def output_name(
    name: str, *, seed: int, variation: int, bpm: float | None = None, bars: int | None = None, suffix: str = ".wav"
) -> str:
    """The file name of one render; ``variation`` counts from 1."""
    grid = f"_{_num(bpm)}bpm_{bars}bar" if bpm is not None and bars is not None else ""
    return f"{name}{grid}_s{seed}_v{variation}{suffix}"


def unique_path(path: Path) -> Path:
    """``path`` itself if free, else ``stem-1.ext``, ``stem-2.ext``…, so nothing is overwritten."""
    if not path.exists():
        return path
    n = 1
    while True:
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        if not candidate.exists():
            return candidate
        n += 1


def sidecar_path(audio_path: Path) -> Path:
    return audio_path.with_suffix(".json")

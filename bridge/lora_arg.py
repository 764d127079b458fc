"""The ``lora`` request key (Stable Audio 3 models only): ``FILE`` or ``FILE:SCALE``, or a list of them,
checked at the door (absolute paths to existing ``.safetensors`` files under the allowed roots,
scales within ``LIMITS["lora_scale"]``, at most ``LIMITS["loras"]`` files); the engine checks each
file against the model (``engine/sa3/lora.py``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine import LIMITS

from .errors import SourceNotFound, UsageError
from .requests import MAX_SOURCE_PATH, Limits, as_text, kind, show


def parse_lora(value: Any, limits: Limits) -> tuple[tuple[str, float], ...]:
    """`lora`: one ``FILE`` or ``FILE:SCALE`` (scale 1 when left out), or a list of them (the drop
    folder's JSON; OSC repeats the key); each an absolute path to an existing ``.safetensors`` file
    (under an allowed root when roots are configured). Stable Audio 3 models only: the engine says
    so for others, and checks each file against the model."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise UsageError(f"lora must be text (FILE or FILE:SCALE) or a list of them (got {kind(value)})")
    if not items:
        raise UsageError("lora: an empty list names no file (leave the key out for none)")
    most = int(LIMITS["loras"].hi)
    if len(items) > most:
        raise UsageError(f"lora: at most {most} files (got {len(items)})")
    out = []
    for item in items:
        text = as_text("lora", item, MAX_SOURCE_PATH + 32)
        path, scale = split_lora(text)
        if scale is None:
            raise UsageError(f"lora scale must be a number (got {show(text)})")
        bound = LIMITS["lora_scale"]
        if not bound.contains(scale):
            raise UsageError(f"lora scale must be {bound.describe()} (got {scale:g} in {show(text)})")
        real = _lora_file(path, limits)
        out.append((str(real), scale))
    return tuple(out)


def split_lora(text: str) -> tuple[str, float | None]:
    """``FILE:SCALE`` -> (FILE, SCALE); ``FILE`` -> (FILE, 1.0). The scale is what follows the last
    ``:`` when that reads as a number (so ``C:\\x.safetensors`` is a path); a ``:`` followed by
    something else is part of the path, and ``FILE:`` is (FILE, None)."""
    head, sep, tail = text.rpartition(":")
    if not sep:
        return text, 1.0
    if not tail.strip():
        return head, None
    try:
        scale = float(tail)
    except ValueError:
        return text, 1.0
    return head, scale


def _lora_file(text: str, limits: Limits) -> Path:
    if not text or "\x00" in text:
        raise UsageError("lora must name a file")
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise UsageError(f"lora must be an absolute path (got {show(text)})")
    real = Path(os.path.realpath(path))
    if limits.allowed_roots and not any(real.is_relative_to(Path(os.path.realpath(r))) for r in limits.allowed_roots):
        raise UsageError(f"lora {show(text)} is outside the allowed source folders")
    if not real.is_file():
        raise SourceNotFound(f"lora: no such file: {show(text)}")
    if real.suffix != ".safetensors":
        raise UsageError(f"lora {show(text)} is not a .safetensors file (the Stable Audio 3 release's LoRA format)")
    return real

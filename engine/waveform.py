"""Waveform previews: min/max peaks per pixel column, and a PNG of them (Pillow).

Peaks are computed once per render (O(N)) and are all a view needs to draw at any width up to
the number of columns; the PNG is what `make demo` prints and what the README shows.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def peaks(audio: np.ndarray, columns: int) -> np.ndarray:
    """`[C, N]` audio -> `[C, columns, 2]` (min, max) per column; silent columns are (0, 0)."""
    if audio.ndim == 1:
        audio = audio[None]
    c, n = audio.shape
    columns = max(1, min(columns, n))
    edges = np.linspace(0, n, columns + 1).astype(np.int64)
    out = np.zeros((c, columns, 2), dtype=np.float32)
    # reduceat over column starts: one pass over the samples, no Python loop per column.
    starts = edges[:-1]
    out[:, :, 0] = np.minimum.reduceat(audio, starts, axis=1)
    out[:, :, 1] = np.maximum.reduceat(audio, starts, axis=1)
    return out


def waveform_png(
    audio: np.ndarray, path: str | os.PathLike[str], width: int = 1200, height: int = 320, title: str = ""
) -> Path:
    """Draw each channel's peaks in its own lane and save a PNG (atomically)."""
    from PIL import Image, ImageDraw

    p = peaks(audio, width)
    c = p.shape[0]
    img = Image.new("RGB", (width, height), (24, 26, 32))
    draw = ImageDraw.Draw(img)
    lane = height / c
    for ch in range(c):
        mid = lane * (ch + 0.5)
        draw.line([(0, mid), (width, mid)], fill=(60, 64, 76))
        for x in range(p.shape[1]):
            lo, hi = np.clip(p[ch, x], -1.0, 1.0)
            draw.line([(x, mid - hi * lane * 0.45), (x, mid - lo * lane * 0.45)], fill=(110, 190, 255))
    if title:
        draw.text((8, 6), title, fill=(220, 220, 220))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    img.save(tmp, format="PNG")
    os.replace(tmp, target)
    return target

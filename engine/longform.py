"""Renders longer than the model's window: windows that continue each other.

The DiT sees one window of latents (longplay-mini: 285 s, Stable Audio Open 1.0: 47.5 s). A longer
render is sampled as a chain of windows: the first as any render, every later one starting
`context` frames before the end of what exists, with those frames held to the latents already
sampled (the denoised estimate of that prefix is replaced by them at every step, so the sampler's
path through the prefix converges to them and the network always hears the music it continues;
"replacement" inpainting, the simplest form of Song et al. 2021's conditional sampling). The
chain's latents are stitched where each window's new frames begin (the prefix is identical, so the
seam needs no crossfade) and decoded once, in the decoder's own overlapping chunks.

Timing: the seed paper's models learned `seconds_start` / `seconds_total` from crops of songs no
longer than their window. A continuation window is conditioned on a position inside that range
with the same distance to the end as the real one (so the last window ends the music where the
request ends, and earlier ones do not wind down), and, for a tempo grid, on a start that differs
from the real one by whole 4-bar phrases (so the beat grid runs on unbroken across windows).

Hand-written: no library does continuation for stable-audio-tools models (its own outpainting
needs a model trained with an inpainting mask input, which the public configs are not).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor

# Latent frames a continuation window re-hears of what came before: ~30 s at 21.5 Hz, capped at
# half the window (a small model's window may be a few seconds). Measured on longplay-mini, 600 s,
# 2 seeds (benchmarks/bench_longform.py's seam novelty, as a percentile of the render's own; 50 is
# an ordinary moment): 10 s of context 74, 30 s 61, 60 s 67; continuation windows of half the
# window (so their start can sit later in the trained range) 74; windows before the last told the
# music runs on to seconds_total 512 instead of the real distance 60. Wall time within 10 %.
CONTEXT_SECONDS = 30.0
# The longest render the doors accept from a model that can continue: 20 minutes.
MAX_LONG_SECONDS = 1200.0
PHRASE_BEATS = 16  # the tempo grid's longest period: a 4-bar phrase of 4/4


@dataclass(frozen=True)
class Segment:
    """One window of a long render, in latent frames of the whole render."""

    start: int  # first frame of the window
    frames: int  # frames sampled in this window
    known: int  # frames at its start held to what earlier windows sampled (0 for the first)


def plan_segments(total: int, window: int, context: int, unit: int = 1) -> list[Segment]:
    """Windows covering `total` frames: each `window` frames long (the last may be shorter,
    rounded up to `unit`, but never past the window) and overlapping the previous by `context`.
    Full-attention models pass unit = window: every window is a whole one, as they were trained."""
    if total <= window:
        return [Segment(0, total, 0)]
    if not 0 < context < window:
        raise ValueError(f"context must be between 1 and {window - 1} frames (got {context})")
    segments = [Segment(0, window, 0)]
    end = window
    while end < total:
        start = end - context
        need = total - start
        frames = min(window, -(-need // unit) * unit)
        segments.append(Segment(start, frames, context))
        end = start + frames
    return segments


def context_frames(window: int, rate: float, unit: int = 1) -> int:
    """CONTEXT_SECONDS in frames, in whole `unit`s (local attention blocks), at most half the window
    (but at least one unit)."""
    frames = min(round(CONTEXT_SECONDS * rate), window // 2)
    return max(unit, frames // unit * unit)


def window_timing(
    start_s: float, total_s: float, seg_s: float, window_s: float, beat_s: float | None
) -> tuple[float, float]:
    """(seconds_start, seconds_total) to condition a window that starts `start_s` into a render of
    `total_s` and samples `seg_s` seconds: the real values if the window lies inside the model's
    trained range (`window_s`), else a start moved back into it by whole 4-bar phrases (any
    amount without a tempo grid) with the real distance to the end kept. A whole window fits the
    range only at 0; with a grid its start is then the real one modulo a phrase (< 48 s)."""
    latest = max(window_s - seg_s, 0.0)
    if start_s <= latest:
        fake = start_s
    elif beat_s:
        phrase = PHRASE_BEATS * beat_s
        fake = start_s - phrase * math.ceil((start_s - latest) / phrase)
        if fake < 0:
            fake = start_s % phrase
    else:
        fake = latest
    return fake, fake + (total_s - start_s)


class KnownPrefix:
    """A denoiser whose estimate of the first `frames` latent frames is `known` at every sigma."""

    def __init__(self, denoiser: Callable[..., Tensor], known: Tensor) -> None:
        self.denoiser, self.known = denoiser, known
        self.frames = known.shape[-1]
        self.sigma_data = getattr(denoiser, "sigma_data", 1.0)

    def __call__(self, x: Tensor, sigma: Tensor, **extra: Any) -> Tensor:
        denoised = self.denoiser(x, sigma, **extra)
        denoised[..., : self.frames] = self.known.to(denoised.dtype)
        return denoised

"""Stable Audio 3 renders longer than the model's window: windows continuing each other through
the DiT's own inpainting input.

The windows are planned as for every long render (`engine.longform.plan_segments`, with
`context_frames`' ~30 s of context, at most half the window, in whole latent-alignment units):
the first samples a whole window; each later one starts `context` frames before the end of what
exists. Where `engine/longform.py` holds those frames by replacing the denoised estimate
(`KnownPrefix`, for models trained without an inpainting input), an SA3 window is told them the way
the model was trained to continue audio: the local conditioning `[mask, latents * mask]` with the
mask 1 over the held frames and 0 over the rest (the release's "causal" training mask, and its
documented continuation: inpainting with the mask starting where the audio ends). The window's
own sample of the held frames is dropped: the chain keeps the frames already sampled and appends
each window's new ones, so the held frames equal the previous window's exactly, and the whole chain
decodes once (SAME's windowed decode: bounded memory, no seam of its own).

Duration: each window is conditioned on its own length (`seconds_total`), as a one-window render of
that length would be: a window before the last on its whole length (all music; the release's
training crops of longer songs end mid-music at that length too), the last on the audio it keeps
(the request's end minus where the window starts), sampled with the release's 6 s of headroom past
it. The conditioner knows nothing past its range (`max_val` 384 s, beyond every window) and SA3
has no `seconds_start`, so telling a window the whole render's length would be out of its training.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .. import longform
from ..devices import autocast_for
from .model import HEADROOM_SECONDS, PromptEmbedding, SA3Model
from .sampling import SA3Denoiser, sa3_sigmas, sample

Callback = Callable[[dict[str, Any]], None]


def window_frames(model: SA3Model) -> int:
    """Latent frames of the model's longest render (one window)."""
    c = model.config
    return int(round(c.max_seconds * c.sample_rate)) // c.same.downsampling_ratio


def plan(model: SA3Model, seconds: float, headroom: float = HEADROOM_SECONDS) -> list[longform.Segment]:
    """The windows a render of `seconds` samples: windows of the model's length overlapping by
    `longform.context_frames` (in whole alignment units) over the frames `seconds` covers, the last
    one extended by the release's headroom (as a one-window render of its length; capped at the
    window)."""
    c = model.config
    ratio, align = c.same.downsampling_ratio, c.same.latent_align
    need = -(-int(math.ceil(seconds * c.sample_rate)) // ratio)
    need = -(-need // align) * align
    window = window_frames(model)
    context = longform.context_frames(window, c.latent_rate, align)
    segments = longform.plan_segments(need, window, context, align)
    last = segments[-1]
    tail = model.latent_frames(seconds - last.start * ratio / c.sample_rate, headroom)
    segments[-1] = longform.Segment(last.start, max(last.frames, tail), last.known)
    return segments


def window_seconds(model: SA3Model, seg: longform.Segment, seconds: float, last: bool) -> float:
    """The length a window is conditioned on (`seconds_total`): its whole length, or for the last
    window the audio it keeps (see the module doc)."""
    c = model.config
    start = seg.start * c.same.downsampling_ratio / c.sample_rate
    length = seg.frames * c.same.downsampling_ratio / c.sample_rate
    return min(seconds - start, length) if last else length


@torch.no_grad()
def sample_long(
    model: SA3Model,
    prompt: PromptEmbedding,
    seconds: float,
    seed: int,
    steps: int,
    cfg: float = 1.0,
    *,
    negative: PromptEmbedding | None = None,
    apg_scale: float = 1.0,
    callback: Callback | None = None,
    precision: str = "auto",
    windows: list[Tensor] | None = None,
) -> Tensor:
    """Latents `[1, C, frames]` for `seconds` of audio (and the headroom), in windows continuing each
    other. `callback` gets every sampler step of every window with `i` and `steps` counted over the
    whole render (`"stage": "sampling"`, `"window"`, `"windows"`); raising in it cancels. Each
    window's own latents are appended to `windows` when given (tests). One noise stream (seed) runs
    through the windows: same seed, same render."""
    c = model.config
    if not c.inpaint:
        raise ValueError("windows continuing each other need a Stable Audio 3 model with an inpainting input")
    segments = plan(model, seconds)
    total_steps = steps * len(segments)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    sigmas = sa3_sigmas(steps, 1.0, c.logsnr_min, c.logsnr_max, device=model.device)
    latents: Tensor | None = None
    for w, seg in enumerate(segments):
        last = w == len(segments) - 1
        length = window_seconds(model, seg, seconds, last)
        mask = torch.zeros(1, 1, seg.frames)
        held = None
        if seg.known and latents is not None:
            mask[..., : seg.known] = 1.0
            held = latents[..., seg.start : seg.start + seg.known]  # [1, C, known]
        local = model._local(seg.frames, length, mask if held is not None else None, held, None, True)
        cond = model.conditioning(prompt, length, negative, guidance=cfg != 1.0, local=local)
        noise = torch.randn((1, c.dit.io_channels, seg.frames), generator=gen).to(model.device)  # [1, C, L]
        done = w * steps

        def on_step(info: dict[str, Any], done: int = done, w: int = w) -> None:
            if callback is not None:
                i = done + int(info["i"])
                callback(
                    {**info, "i": i, "stage": "sampling", "steps": total_steps, "window": w, "windows": len(segments)}
                )

        with autocast_for(model.device, precision):
            out = sample(
                c.objective,
                SA3Denoiser(model.dit, cond, cfg, apg_scale),
                noise,
                sigmas,
                callback=on_step,
                generator=gen,
            ).float()
        if windows is not None:
            windows.append(out)
        latents = (
            out if latents is None else torch.cat([latents[..., : seg.start + seg.known], out[..., seg.known :]], -1)
        )
    assert latents is not None
    return latents
